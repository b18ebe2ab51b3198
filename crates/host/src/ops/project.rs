//! Creating a project (CA, definitions, profile, registry) and unlocking its signer.

use std::path::{Path, PathBuf};

use super::{ModeError, OpsError};
use crate::pki::ca::{self, CaCerts, KeyProtection, Signer};
use crate::pki::passphrase::read_passphrase;
use crate::project::{DEVELOPMENT_MARKER, Mode, Profile, Project};
use crate::registry::{CertKind, IssueRequest, Registry};
use crate::setup;

/// Creates a project in `dir`: CA, definitions generated from it, profile naming them.
///
/// A development project's organization gets [`DEVELOPMENT_MARKER`] appended (in the profile,
/// so the root, signer and device certificates all carry it); a production project refuses
/// unencrypted keys.
pub fn create_project(
    dir: &Path,
    base: &Profile,
    protection: &KeyProtection,
) -> Result<Project, OpsError> {
    let mut profile = base.clone();
    match profile.mode {
        Mode::Development => {
            if !profile.ca.organization.ends_with(DEVELOPMENT_MARKER) {
                profile.ca.organization.push_str(DEVELOPMENT_MARKER);
            }
        }
        Mode::Production => {
            if matches!(protection, KeyProtection::Unencrypted) {
                return Err(
                    ModeError::UnencryptedKeys(profile.resolve(dir, &profile.ca.dir)).into(),
                );
            }
        }
    }
    profile.validate(dir)?;
    let ca_dir = profile.resolve(dir, &profile.ca.dir);
    ca::create(
        &ca_dir,
        &profile.ca,
        protection,
        std::time::SystemTime::now(),
    )?;
    let pass = match protection {
        KeyProtection::Passphrase(p) => Some(p.as_str()),
        KeyProtection::Unencrypted => None,
    };
    let signer = Signer::unlock(&ca_dir, pass)?;
    let (device_def, signer_def) = setup::generate_definitions(&profile, &signer)?;
    setup::write_definitions(dir, &device_def, &signer_def)?;
    profile.certificates.device_def = Some(PathBuf::from(setup::DEVICE_DEF_FILE));
    profile.certificates.signer_def = Some(PathBuf::from(setup::SIGNER_DEF_FILE));
    Project::write_profile(dir, &profile)?;
    let project = Project::open(dir)?;
    std::fs::create_dir_all(project.output_dir()).map_err(|source| OpsError::Io {
        path: project.output_dir(),
        source,
    })?;
    let mut registry = Registry::open(&project.registry_path())?;
    record_signer(&mut registry, signer.certs())?;
    Ok(project)
}

/// Records the signer certificate in the registry (it was issued by the root at `init`).
pub fn record_signer(registry: &mut Registry, certs: &CaCerts) -> Result<(), OpsError> {
    let s = &certs.signer;
    let tbs = s.cert.tbs_certificate();
    let validity = tbs.validity();
    let cn = ca::common_name(tbs.subject()).unwrap_or_default();
    let serial = s.serial();
    let public_key = s.public_key()?;
    let not_before = validity.not_before.to_string();
    let not_after = validity.not_after.to_string();
    let outcome = registry.begin_issue(&IssueRequest {
        kind: CertKind::Signer,
        chip_serial: None,
        serial: &serial,
        public_key: &public_key,
        subject_cn: &cn,
        der: &s.der,
        not_before: &not_before,
        not_after: &not_after,
    })?;
    registry.mark_written(&outcome.record().serial)?;
    Ok(())
}

/// Opens the project's registry for reading only (`registry list`, `registry show`): nothing
/// is written, so a read-only project works; refuses a registry file that does not exist.
pub fn open_registry(project: &Project) -> Result<Registry, OpsError> {
    let path = project.registry_path();
    if !path.exists() {
        return Err(OpsError::NoRegistry(path));
    }
    Ok(Registry::open_read_only(&path)?)
}

/// Opens the project's existing registry for changes (`lot import|create|close`); refuses a
/// registry file that does not exist rather than creating an empty one.
pub fn open_registry_for_update(project: &Project) -> Result<Registry, OpsError> {
    let path = project.registry_path();
    if !path.exists() {
        return Err(OpsError::NoRegistry(path));
    }
    Ok(Registry::open(&path)?)
}

/// Unlocks the project's signer, asking for the passphrase when its keys are encrypted.
pub fn unlock(project: &Project) -> Result<Signer, OpsError> {
    let dir = project.ca_dir();
    let pass = if ca::keys_encrypted(&dir)? {
        Some(read_passphrase(false).map_err(OpsError::Passphrase)?)
    } else {
        None
    };
    Ok(Signer::unlock(&dir, pass.as_ref().map(|p| p.as_str()))?)
}
