//! CA keys in PKCS#11 tokens and verification certificates: unlocking a token signer or the
//! root wherever it is, moving the signer into a token (`keystamp ca signer-to-token`, a new
//! key certified by the root or the software key imported), a token signer issued by an
//! offline root (`ca import-signer` after `ca signer-request --module ...`), an imported CA
//! whose signer key is in a token (`ca import --module ...`), and proof-of-possession
//! certificates for the clouds (`keystamp ca verification-cert`).

use std::path::Path;
use std::time::SystemTime;

use super::OpsError;
use super::project::{
    ProfileFile, create_project_with, key_passphrase, record_signer, regenerate_definitions, unlock,
};
use crate::pki::ca::{self, CaCert, CaCerts, CaKey, Signer};
use crate::pki::ceremony::{self, CeremonyError, RootKeyPlace};
use crate::pki::pkcs11::{TokenKey, read_pin};
use crate::pki::signer_key::SignerKey;
use crate::pki::verification::verification_certificate;
use crate::project::{Pkcs11Section, Profile, Project};

/// Logs in to the token `cfg` names (PIN from the environment or a prompt) and returns the
/// signer backed by its key.
pub fn unlock_token(ca_dir: &Path, cfg: &Pkcs11Section) -> Result<Signer, OpsError> {
    let pin = read_pin()?;
    let token = TokenKey::open(cfg, &pin)?;
    Ok(Signer::with_token(ca_dir, token)?)
}

/// The root key wherever this machine has it: root.key (its passphrase asked for when
/// encrypted) or the token [`ceremony::ROOT_TOKEN_FILE`] names (PIN), checked against
/// root.pem. On a station of an offline root, [`CeremonyError::RootOffline`] says that `needs`
/// it and to run `run_there` on the offline machine.
pub fn unlock_root_key(
    ca_dir: &Path,
    needs: &'static str,
    run_there: impl FnOnce() -> String,
) -> Result<SignerKey, OpsError> {
    let key = match ceremony::root_key_place(ca_dir)? {
        RootKeyPlace::File => {
            let pass = key_passphrase(ca_dir, CaKey::Root)?;
            SignerKey::Software(ca::unlock_root(ca_dir, pass.as_ref().map(|p| p.as_str()))?)
        }
        RootKeyPlace::Token(cfg) => {
            let pin = read_pin()?;
            SignerKey::Token(std::sync::Arc::new(TokenKey::open(&cfg, &pin)?))
        }
        RootKeyPlace::Offline => {
            return Err(CeremonyError::RootOffline {
                needs,
                run_there: run_there(),
            }
            .into());
        }
    };
    let root = CaCert::read(&ca::CaPaths::new(ca_dir).root_cert)?;
    if ca::public_key_of(&key.verifying_key()) != root.public_key()? {
        return Err(
            ca::CaError::Mismatch("the root key does not belong to root.pem".into()).into(),
        );
    }
    Ok(key)
}

/// How `ca signer-to-token` is to be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToToken {
    /// Generate a new key in the token and have the root certify it (a new signer
    /// certificate).
    Generate,
    /// Import the current software signer key into the token (non-extractable, sensitive)
    /// and keep the signer certificate.
    Import,
}

/// Moves the project's signer into a PKCS#11 token, then installs it
/// ([`adopt_token_signer`]). [`ToToken::Generate`]: a P-256 key pair generated in the token
/// (non-extractable, sensitive), certified by the root (root passphrase or the root's token);
/// refused with the request-and-import steps to follow when the root is offline.
/// [`ToToken::Import`]: the software signer key (signer passphrase) is imported once into the
/// token, non-extractable and sensitive, and the signer certificate stays. Returns the signer
/// certificate.
pub fn signer_to_token(
    project: &Project,
    cfg: &Pkcs11Section,
    how: ToToken,
) -> Result<CaCert, OpsError> {
    let dir = project.ca_dir();
    // Everything that can be refused is checked before the token is changed.
    let certs = CaCerts::load(&dir)?;
    let registry = super::open_registry_for_update(project)?;
    match how {
        ToToken::Generate => {
            if ceremony::root_key_place(&dir)? == RootKeyPlace::Offline {
                return Err(CeremonyError::NeedsRequest(cfg.clone()).into());
            }
            let root_key = unlock_root_key(&dir, "certifying a token signer", String::new)?;
            let pin = read_pin()?;
            let token = TokenKey::generate(cfg, &pin)?;
            let signer = ca::certify_signer(
                &project.profile.ca,
                &certs.root,
                &root_key,
                token.verifying_key(),
                SystemTime::now(),
            )?;
            adopt_token_signer(project, registry, cfg, token, &signer)?;
            Ok(signer)
        }
        ToToken::Import => {
            let key_file = ca::CaPaths::new(&dir).signer_key;
            if !key_file.exists() {
                return Err(CeremonyError::Missing(
                    key_file,
                    "there is no software signer key to import (is the signer in a token \
                     already? `keystamp ca show` says)",
                )
                .into());
            }
            let pass = key_passphrase(&dir, CaKey::Signer)?;
            let software = Signer::unlock(&dir, pass.as_ref().map(|p| p.as_str()))?;
            let SignerKey::Software(key) = software.key() else {
                return Err(
                    ca::CaError::Mismatch("the signer key is not a software key".into()).into(),
                );
            };
            let pin = read_pin()?;
            let token = TokenKey::import(cfg, &pin, key)?;
            adopt_token_signer(project, registry, cfg, token, &certs.signer)?;
            Ok(certs.signer)
        }
    }
}

/// Makes `token`'s key the project's signer with certificate `signer` (already checked to
/// belong to it and to chain to the project's root): replaces signer.pem (the software
/// `signer.key`, if any, becomes `signer.key.retired`), records `[ca.pkcs11]` in
/// `keystamp.toml`, has the registry sign its records with the token's key (recording a new
/// signer certificate there) and regenerates the definitions.
fn adopt_token_signer(
    project: &Project,
    mut registry: crate::registry::Registry,
    cfg: &Pkcs11Section,
    token: TokenKey,
    signer: &CaCert,
) -> Result<(), OpsError> {
    let dir = project.ca_dir();
    let new_certificate = CaCerts::load(&dir)?.signer.der != signer.der;
    ca::install_token_signer(&dir, signer)?;
    let mut profile = project.profile.clone();
    profile.ca.pkcs11 = Some(cfg.clone());
    Project::replace_profile(&project.dir, &profile)?;
    let project = Project::open(&project.dir)?;
    // The registry's records are signed by the signer: from now on, the token's key.
    let new_signer = ca::Signer::with_token(&dir, token)?;
    registry.set_record_signer(Box::new(new_signer.clone()));
    if new_certificate {
        record_signer(&mut registry, new_signer.certs())?;
    }
    drop(registry);
    drop(new_signer);
    regenerate_definitions(&project)?;
    Ok(())
}

/// `ca import-signer` in a project for a request made in a token (`ca signer-request
/// --module ...`): a new signer under an offline root. Checks `signer` belongs to the pending
/// token key and chains to `root`, the project's root, then replaces the project's signer
/// ([`adopt_token_signer`]) and clears the pending request. Returns the new signer
/// certificate.
pub fn rotate_to_requested_token(
    project: &Project,
    signer: &CaCert,
    root: &CaCert,
) -> Result<CaCert, OpsError> {
    let ca_dir = project.ca_dir();
    let cfg = pending(&ca_dir)?;
    let registry = super::open_registry_for_update(project)?;
    let pin = read_pin()?;
    let token = TokenKey::open(&cfg, &pin)?;
    ceremony::check_token_signer(&ca_dir, signer, root, token.verifying_key())?;
    adopt_token_signer(project, registry, &cfg, token, signer)?;
    clear_pending(&ca_dir)?;
    Ok(signer.clone())
}

/// `ca import-signer` on a new station for a request made in a token: checks `signer`
/// belongs to the pending token key and chains to `root`, then creates the project with
/// `[ca.pkcs11]` (a token key counts as protected: production accepts it) and clears the
/// pending request.
pub fn import_requested_token_signer(
    dir: &Path,
    profile: &Profile,
    file: ProfileFile,
    signer: &CaCert,
    root: &CaCert,
) -> Result<Project, OpsError> {
    let ca_dir = profile.resolve(dir, &profile.ca.dir);
    let cfg = pending(&ca_dir)?;
    let pin = read_pin()?;
    let token = TokenKey::open(&cfg, &pin)?;
    ceremony::check_token_signer(&ca_dir, signer, root, token.verifying_key())?;
    let mut profile = profile.clone();
    profile.ca.pkcs11 = Some(cfg);
    let project = create_project_with(dir, &profile, true, file, |ca_dir, _| {
        ceremony::install_certs(ca_dir, root, signer)?;
        Ok(Signer::with_token(ca_dir, token)?)
    })?;
    clear_pending(&ca_dir)?;
    Ok(project)
}

fn pending(ca_dir: &Path) -> Result<Pkcs11Section, OpsError> {
    ceremony::pending_token_request(ca_dir)?.ok_or_else(|| {
        CeremonyError::Missing(
            ca_dir.join(ceremony::PENDING_TOKEN_FILE),
            "run `keystamp ca signer-request --module ...` here first",
        )
        .into()
    })
}

fn clear_pending(ca_dir: &Path) -> Result<(), OpsError> {
    let path = ca_dir.join(ceremony::PENDING_TOKEN_FILE);
    std::fs::remove_file(&path).map_err(|source| OpsError::Io { path, source })
}

/// `ca import --module ...`: creates the project from a company CA whose signer key is already
/// in a token (`cfg`): checks the signer certificate belongs to the token's key, chains to
/// `root` and can be compressed, before anything is written. Returns the project and whether
/// the token would let the key out (a warning for the operator).
pub fn import_ca_with_token(
    dir: &Path,
    profile: &Profile,
    file: ProfileFile,
    cfg: &Pkcs11Section,
    root: &CaCert,
    signer: &CaCert,
) -> Result<(Project, Option<bool>), OpsError> {
    let pin = read_pin()?;
    let token = TokenKey::open(cfg, &pin)?;
    crate::pki::byo::check_signer(root, signer, &ca::public_key_of(token.verifying_key()))
        .map_err(CeremonyError::from)?;
    let extractable = token.extractable();
    let mut profile = profile.clone();
    profile.ca.pkcs11 = Some(cfg.clone());
    let project = create_project_with(dir, &profile, true, file, |ca_dir, _| {
        ceremony::install_certs(ca_dir, root, signer)?;
        Ok(Signer::with_token(ca_dir, token)?)
    })?;
    Ok((project, extractable))
}

/// Which CA key signs a verification certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationCa {
    /// The root (Azure DPS enrollment groups / AWS IoT CA registration of the root).
    Root,
    /// The signer (the CA that issues device certificates).
    Signer,
}

/// A verification certificate for `code` signed by the project's signer (software or
/// token).
pub fn signer_verification_cert(project: &Project, code: &str) -> Result<CaCert, OpsError> {
    // A bad code is refused before any passphrase or PIN is asked for.
    crate::pki::verification::check_code(code)?;
    let signer = unlock(project)?;
    Ok(verification_certificate(
        &signer.certs().signer,
        signer.key(),
        &project.profile.ca.organization,
        code,
        SystemTime::now(),
    )?)
}

/// A verification certificate for `code` signed by the root key of the CA in `ca_dir`
/// (root.key or the root's token): a project created by `init`, or the offline machine's
/// directory (no project there). On a station of an offline root it fails saying to run it on
/// the offline machine.
pub fn root_verification_cert(
    ca_dir: &Path,
    organization: &str,
    code: &str,
) -> Result<CaCert, OpsError> {
    crate::pki::verification::check_code(code)?;
    let key = unlock_root_key(ca_dir, "a root verification certificate", || {
        format!("keystamp ca verification-cert --ca root --code {code} --out verify-root.pem")
    })?;
    let root = CaCert::read(&ca::CaPaths::new(ca_dir).root_cert)?;
    Ok(verification_certificate(
        &root,
        &key,
        organization,
        code,
        SystemTime::now(),
    )?)
}
