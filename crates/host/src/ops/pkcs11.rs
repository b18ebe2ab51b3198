//! The signer in a PKCS#11 token and verification certificates: unlocking a token signer,
//! moving the signer into a token (`keystamp ca signer-to-token`), and proof-of-possession
//! certificates for the clouds (`keystamp ca verification-cert`).

use std::path::Path;
use std::time::SystemTime;

use super::OpsError;
use super::project::{key_passphrase, record_signer, regenerate_definitions, unlock};
use crate::pki::ca::{self, CaCert, CaCerts, CaKey, Signer};
use crate::pki::pkcs11::{TokenKey, read_pin};
use crate::pki::signer_key::SignerKey;
use crate::pki::verification::verification_certificate;
use crate::project::{Pkcs11Section, Project};

/// Logs in to the token `cfg` names (PIN from the environment or a prompt) and returns the
/// signer backed by its key.
pub fn unlock_token(ca_dir: &Path, cfg: &Pkcs11Section) -> Result<Signer, OpsError> {
    let pin = read_pin()?;
    let token = TokenKey::open(cfg, &pin)?;
    Ok(Signer::with_token(ca_dir, token)?)
}

/// Moves the project's signer into a PKCS#11 token: generates a P-256 key pair in the token
/// (non-extractable, sensitive), has the root certify it (root passphrase), installs the new
/// signer certificate (the software `signer.key` is renamed to `signer.key.retired`), records
/// `[ca.pkcs11]` in `keystamp.toml`, records the new signer in the registry and regenerates the
/// definitions. Returns the new signer certificate.
pub fn signer_to_token(project: &Project, cfg: &Pkcs11Section) -> Result<CaCert, OpsError> {
    let dir = project.ca_dir();
    // Everything that can be refused is checked before the token is changed.
    let root_pass = key_passphrase(&dir, CaKey::Root)?;
    let root_key = ca::unlock_root(&dir, root_pass.as_ref().map(|p| p.as_str()))?;
    let certs = CaCerts::load(&dir)?;
    let mut registry = super::open_registry_for_update(project)?;
    let pin = read_pin()?;
    let token = TokenKey::generate(cfg, &pin)?;
    let signer = ca::certify_signer(
        &project.profile.ca,
        &certs.root,
        &SignerKey::Software(root_key),
        token.verifying_key(),
        SystemTime::now(),
    )?;
    ca::install_token_signer(&dir, &signer)?;
    let mut profile = project.profile.clone();
    profile.ca.pkcs11 = Some(cfg.clone());
    Project::replace_profile(&project.dir, &profile)?;
    let project = Project::open(&project.dir)?;
    // The registry's records are signed by the signer: from now on, the token's key.
    let new_signer = ca::Signer::with_token(&dir, token)?;
    registry.set_record_signer(Box::new(new_signer.clone()));
    record_signer(&mut registry, new_signer.certs())?;
    drop(registry);
    drop(new_signer);
    regenerate_definitions(&project)?;
    Ok(signer)
}

/// Which CA key signs a verification certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationCa {
    /// The root (Azure DPS enrollment groups / AWS IoT CA registration of the root).
    Root,
    /// The signer (the CA that issues device certificates).
    Signer,
}

/// A verification certificate for `code`, signed by the chosen CA key (the signer from
/// software or its token; the root from its encrypted key).
pub fn verification_cert(
    project: &Project,
    which: VerificationCa,
    code: &str,
) -> Result<CaCert, OpsError> {
    // A bad code is refused before any passphrase or PIN is asked for.
    crate::pki::verification::check_code(code)?;
    let org = &project.profile.ca.organization;
    let now = SystemTime::now();
    match which {
        VerificationCa::Signer => {
            let signer = unlock(project)?;
            Ok(verification_certificate(
                &signer.certs().signer,
                signer.key(),
                org,
                code,
                now,
            )?)
        }
        VerificationCa::Root => {
            let dir = project.ca_dir();
            let pass = key_passphrase(&dir, CaKey::Root)?;
            let key = ca::unlock_root(&dir, pass.as_ref().map(|p| p.as_str()))?;
            let certs = CaCerts::load(&dir)?;
            Ok(verification_certificate(
                &certs.root,
                &SignerKey::Software(key),
                org,
                code,
                now,
            )?)
        }
    }
}
