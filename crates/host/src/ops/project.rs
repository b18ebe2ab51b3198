//! Creating a project (CA, definitions, profile, registry) and unlocking its signer.

use std::path::{Path, PathBuf};

use super::{ModeError, OpsError};
use crate::pki::ca::{self, CaCerts, CaKey, CaProtection, KeyProtection, Signer};
use crate::pki::passphrase::read_passphrase;
use crate::project::{DEVELOPMENT_MARKER, Mode, Profile, Project};
use crate::registry::{CertKind, IssueRequest, Registry, RegistryError};
use crate::registry_url::Location;
use crate::setup;

/// Whether `create_project` writes a new `keystamp.toml` or completes the operator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileFile {
    /// There is none: write it (refusing to overwrite one that appeared meanwhile).
    New,
    /// The operator wrote it before `init`: its keys are `base`; rewrite it with the generated
    /// definitions added.
    Existing,
}

/// Creates a project in `dir`: CA (each key protected as `protection` says; a single
/// `KeyProtection` protects both alike), definitions generated from it, profile naming them.
///
/// A development project's organization gets [`DEVELOPMENT_MARKER`] appended (in the profile,
/// so the root, signer and device certificates all carry it); a production project refuses
/// unencrypted keys.
pub fn create_project(
    dir: &Path,
    base: &Profile,
    protection: impl Into<CaProtection>,
    file: ProfileFile,
) -> Result<Project, OpsError> {
    let protection = protection.into();
    let encrypted = [&protection.root, &protection.signer]
        .iter()
        .all(|p| matches!(p, KeyProtection::Passphrase(_)));
    create_project_with(dir, base, encrypted, file, |ca_dir, profile| {
        ca::create(
            ca_dir,
            &profile.ca,
            &protection,
            std::time::SystemTime::now(),
        )?;
        Ok(Signer::unlock(ca_dir, protection.signer.passphrase())?)
    })
}

/// Creates a project whose CA `make_ca` puts in place (given the CA directory and the final
/// profile) and returns unlocked: [`create_project`], the offline ceremony's station
/// (`ca import-signer`) and an imported CA (`ca import`). `keys_encrypted` says whether the
/// keys will be encrypted: a production project refuses them unencrypted before `make_ca`
/// runs.
pub fn create_project_with(
    dir: &Path,
    base: &Profile,
    keys_encrypted: bool,
    file: ProfileFile,
    make_ca: impl FnOnce(&Path, &Profile) -> Result<Signer, OpsError>,
) -> Result<Project, OpsError> {
    let mut profile = base.clone();
    match profile.mode {
        Mode::Development => {
            if !profile.ca.organization.ends_with(DEVELOPMENT_MARKER) {
                profile.ca.organization.push_str(DEVELOPMENT_MARKER);
            }
        }
        Mode::Production => {
            if !keys_encrypted {
                return Err(
                    ModeError::UnencryptedKeys(profile.resolve(dir, &profile.ca.dir)).into(),
                );
            }
        }
    }
    profile.validate(dir)?;
    // Refuse a leftover registry before writing anything (the CA would be left half made).
    let registry_path = profile.resolve(dir, &profile.registry.path);
    if registry_path.exists() {
        return Err(crate::registry::RegistryError::Exists(registry_path).into());
    }
    let ca_dir = profile.resolve(dir, &profile.ca.dir);
    let signer = make_ca(&ca_dir, &profile)?;
    let (device_def, signer_def) = setup::generate_definitions(&profile, &signer)?;
    setup::write_definitions(dir, &device_def, &signer_def)?;
    profile.certificates.device_def = Some(PathBuf::from(setup::DEVICE_DEF_FILE));
    profile.certificates.signer_def = Some(PathBuf::from(setup::SIGNER_DEF_FILE));
    // The registry first: its id goes into the profile, which makes the directory a project.
    let (mut registry, id) = Registry::create(&registry_path)?;
    registry.set_record_signer(Box::new(signer.clone()));
    profile.registry.id = Some(id);
    match file {
        ProfileFile::New => Project::write_profile(dir, &profile)?,
        ProfileFile::Existing => Project::replace_profile(dir, &profile)?,
    };
    let project = Project::open(dir)?;
    std::fs::create_dir_all(project.output_dir()).map_err(|source| OpsError::Io {
        path: project.output_dir(),
        source,
    })?;
    record_signer(&mut registry, signer.certs())?;
    Ok(project)
}

/// Records the signer certificate in the registry (it was issued by the root at `init`), unless
/// it is recorded already: every signer that ever signed records stays in the registry, so
/// `registry audit` can verify its records after the signer changed.
pub fn record_signer(registry: &mut Registry, certs: &CaCerts) -> Result<(), OpsError> {
    let s = &certs.signer;
    let serial = s.serial();
    if registry
        .certificate(&hex::encode_upper(&serial))?
        .is_some_and(|c| c.der == s.der)
    {
        return Ok(());
    }
    let tbs = s.cert.tbs_certificate();
    let validity = tbs.validity();
    let cn = ca::common_name(tbs.subject()).unwrap_or_default();
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
/// is written, so a read-only project works. Refuses a registry file that does not exist
/// rather than creating an empty one, an empty (0-byte) file, a database whose id is not
/// `registry.id` of `keystamp.toml`, and — in a project made before registry ids — asks for
/// `keystamp registry adopt` once.
pub fn open_registry(project: &Project) -> Result<Registry, OpsError> {
    if let Location::Postgres(url) = project.registry_location() {
        return open_shared(project, &url);
    }
    let path = project.registry_path();
    if !path.exists() {
        return Err(OpsError::NoRegistry(path));
    }
    open_checked(project, path, Registry::open_project_read_only)
}

/// [`open_registry`] for changes (`lot import|create|close`): the same refusals, opened for
/// writing.
pub fn open_registry_for_update(project: &Project) -> Result<Registry, OpsError> {
    if let Location::Postgres(url) = project.registry_location() {
        return open_shared(project, &url);
    }
    let path = project.registry_path();
    if !path.exists() {
        return Err(OpsError::NoRegistry(path));
    }
    open_checked(project, path, Registry::open_project)
}

/// A PostgreSQL registry (`registry.url`): migrated by `keystamp registry migrate`, never on
/// open, and its id must be the project's.
fn open_shared(project: &Project, url: &str) -> Result<Registry, OpsError> {
    let Some(id) = project.profile.registry.id.as_deref() else {
        return Err(OpsError::RegistryWithoutId(url.into()));
    };
    Ok(Registry::open_project_postgres(url, Some(id))?)
}

fn open_checked(
    project: &Project,
    path: PathBuf,
    open: fn(&Path, Option<&str>) -> Result<Registry, RegistryError>,
) -> Result<Registry, OpsError> {
    let Some(id) = project.profile.registry.id.as_deref() else {
        // Still refuse an empty file first: adopting cannot fix that.
        open(&path, None)?;
        return Err(OpsError::RegistryWithoutId(path));
    };
    Ok(open(&path, Some(id))?)
}

/// Gives the registry of a project made before registry ids an id and records it in
/// `keystamp.toml`, after checking the database holds this project's signer certificate (so a
/// foreign database is not adopted). Returns the id.
pub fn adopt_registry(project: &Project) -> Result<String, OpsError> {
    let path = project.registry_path();
    if !path.exists() {
        return Err(OpsError::NoRegistry(path));
    }
    if let Some(id) = &project.profile.registry.id {
        return Err(OpsError::RegistryHasId {
            path,
            id: id.clone(),
        });
    }
    let registry = Registry::open_project(&path, None)?;
    let certs = CaCerts::load(&project.ca_dir())?;
    let ours = registry
        .certificate(&hex::encode_upper(certs.signer.serial()))?
        .is_some_and(|c| c.der == certs.signer.der);
    if !ours {
        return Err(OpsError::RegistryNotOurs(path));
    }
    let id = match registry.id()? {
        Some(id) => id,
        None => {
            let id = Registry::new_id()?;
            registry.set_id(&id)?;
            id
        }
    };
    let mut profile = project.profile.clone();
    profile.registry.id = Some(id.clone());
    Project::replace_profile(&project.dir, &profile)?;
    Ok(id)
}

/// Rebuilds the project's device and signer definitions from its profile and CA (after the
/// CN scheme or validity changed) and writes them where the profile names them, or to the
/// default files, recorded in the profile. Returns their paths.
pub fn regenerate_definitions(project: &Project) -> Result<(PathBuf, PathBuf), OpsError> {
    let signer = unlock(project)?;
    let (device_def, signer_def) = setup::generate_definitions(&project.profile, &signer)?;
    let mut profile = project.profile.clone();
    let certs = &mut profile.certificates;
    let device_path = certs
        .device_def
        .get_or_insert_with(|| PathBuf::from(setup::DEVICE_DEF_FILE))
        .clone();
    let signer_path = certs
        .signer_def
        .get_or_insert_with(|| PathBuf::from(setup::SIGNER_DEF_FILE))
        .clone();
    let device_path = profile.resolve(&project.dir, &device_path);
    let signer_path = profile.resolve(&project.dir, &signer_path);
    setup::write_definitions_to(&device_path, &device_def, &signer_path, &signer_def)?;
    if profile != project.profile {
        Project::replace_profile(&project.dir, &profile)?;
    }
    Ok((device_path, signer_path))
}

/// Unlocks the project's signer, asking for the signer key's passphrase when it is encrypted,
/// or logging in to its PKCS#11 token (`[ca.pkcs11]`) with the PIN from the environment or a
/// prompt. A wrong passphrase or PIN fails here, before any port or device is touched.
pub fn unlock(project: &Project) -> Result<Signer, OpsError> {
    let dir = project.ca_dir();
    if let Some(cfg) = &project.profile.ca.pkcs11 {
        return super::pkcs11::unlock_token(&dir, cfg);
    }
    let pass = key_passphrase(&dir, CaKey::Signer)?;
    Ok(Signer::unlock(&dir, pass.as_ref().map(|p| p.as_str()))?)
}

/// The passphrase of `key` in the CA directory `dir`, asked for only when the key is encrypted.
pub fn key_passphrase(
    dir: &Path,
    key: CaKey,
) -> Result<Option<zeroize::Zeroizing<String>>, OpsError> {
    if !ca::key_encrypted(dir, key)? {
        return Ok(None);
    }
    Ok(Some(
        read_passphrase(key, false).map_err(OpsError::Passphrase)?,
    ))
}

/// `registry audit`: verifies the registry's record chain against the project's signer keys:
/// the signer certificate in the CA directory (which must chain to the root), earlier signers'
/// certificates kept in `ca/signers/` and the signer certificates the registry recorded. Each
/// is trusted only if the root signed it. Reads only; needs no passphrase.
pub fn audit_registry(project: &Project) -> Result<crate::registry::chain::AuditReport, OpsError> {
    let registry = open_registry(project)?;
    Ok(registry.verify_chain(&project_signers(project, &registry)?)?)
}

/// The keys whose records `registry audit` accepts: the project's signer and every earlier
/// signer (the CA directory's history, the signer certificates the registry recorded) whose
/// certificate chains to the root; the others are named as untrusted.
pub fn project_signers(
    project: &Project,
    registry: &Registry,
) -> Result<crate::registry::chain::SignerSet, OpsError> {
    let dir = project.ca_dir();
    let certs = CaCerts::load(&dir)?;
    let root = certs.root_public_key()?;
    ca::verify_signed_by(&certs.signer.cert, &root)?;
    let mut signers = crate::registry::chain::SignerSet::default();
    signers.trust(&certs.signer_public_key()?)?;
    let mut earlier = ca::signer_history(&dir)?;
    for rec in registry.certificates()? {
        if rec.kind == CertKind::Signer
            && let Ok(cert) = ca::CaCert::from_der(rec.der)
        {
            earlier.push(cert);
        }
    }
    for cert in earlier {
        let Ok(xy) = cert.public_key() else {
            continue;
        };
        match ca::verify_signed_by(&cert.cert, &root) {
            Ok(()) => signers.trust(&xy)?,
            Err(_) => signers.distrust(
                &xy,
                &format!(
                    "belongs to signer certificate {} that does not chain to the project root",
                    hex::encode_upper(cert.serial())
                ),
            ),
        }
    }
    Ok(signers)
}
