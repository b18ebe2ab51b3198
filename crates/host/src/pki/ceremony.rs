//! The offline root ceremony: the root key stays on an offline machine, stations hold the root
//! certificate only.
//!
//! 1. offline: [`init_root`] makes root.key + root.pem ([`init_root_in_token`]: the root key in
//!    the offline machine's token, root.pem + [`ROOT_TOKEN_FILE`]);
//! 2. station: [`signer_request`] makes a fresh signer.key and a PKCS#10 request for it
//!    ([`signer_request_in_token`]: the key in the station's token, remembered in
//!    [`PENDING_TOKEN_FILE`] until its certificate comes back);
//! 3. offline: [`sign_signer`] checks the request's self-signature and issues the signer
//!    certificate (CA, path length 0, keyCertSign|cRLSign, serial `0x40 ‖ signer id`) with the
//!    root key wherever [`root_key_place`] finds it;
//! 4. station: [`import_signer`] checks the certificate belongs to its key and chains to the root
//!    certificate it is given, then stores both certificates next to the key
//!    ([`check_token_signer`] for a token key, also when it replaces a project's signer).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use der::asn1::ObjectIdentifier;
use der::pem::LineEnding;
use der::{DecodePem, Encode, EncodePem};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use x509_cert::Certificate;
use x509_cert::builder::Builder;
use x509_cert::request::{CertReq, RequestBuilder};

use crate::pki::byo::{self, ByoError};
use crate::pki::ca::{self, CaCert, CaCerts, CaError, CaPaths, KeyProtection};
pub use crate::pki::pkcs11::ROOT_TOKEN_FILE;
use crate::pki::pkcs11::{self, AuthPin, Pkcs11Error, TokenKey};
use crate::pki::signer_key::SignerKey;
use crate::project::{CaSection, Pkcs11Section};

/// File in the CA directory naming the token key of a signer request made with
/// [`signer_request_in_token`], until `import-signer` installs its certificate.
pub const PENDING_TOKEN_FILE: &str = "signer-request.pkcs11.toml";

/// ecdsa-with-SHA256 (RFC 5758 §3.2): the only request signature keystamp accepts.
const OID_ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Why a ceremony step failed. Display is one line saying what to do.
#[derive(Debug)]
pub enum CeremonyError {
    /// The CA files (reading, writing, keys, building certificates).
    Ca(CaError),
    /// A file the step writes exists already.
    Exists(PathBuf),
    /// A file the step needs is missing (what it is for).
    Missing(PathBuf, &'static str),
    /// Reading or writing a file failed.
    Io(PathBuf, std::io::Error),
    /// The signer request is not a PEM PKCS#10 request.
    MalformedRequest(der::Error),
    /// The request is signed with something other than ECDSA P-256 / SHA-256.
    RequestAlgorithm,
    /// The request's self-signature does not verify: it was altered, or not made with its key.
    RequestSignature,
    /// The requested signer name cannot be a keystamp signer (why).
    RequestSubject(String),
    /// The signer certificate fails the chain and compressibility checks.
    Signer(ByoError),
    /// A PKCS#11 token (the root's or the signer's) failed or refused.
    Token(Pkcs11Error),
    /// This machine holds the root certificate only; `needs` the root key, so `run_there`
    /// must run on the offline machine.
    RootOffline {
        /// What needs the root key.
        needs: &'static str,
        /// The command to run on the offline machine instead.
        run_there: String,
    },
    /// The signer certificate is issued by another root than the project's root.pem.
    OtherRoot,
    /// `ca signer-to-token` on a station of an offline root: the station cannot certify a new
    /// token key; the request-and-import steps for this token key configuration are the way.
    NeedsRequest(Pkcs11Section),
}

impl fmt::Display for CeremonyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ca(e) => e.fmt(f),
            Self::Exists(p) => write!(
                f,
                "{} already exists: refusing to replace it (move it away to start over)",
                p.display()
            ),
            Self::Missing(p, what) => write!(f, "{} is missing: {what}", p.display()),
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Self::MalformedRequest(e) => write!(
                f,
                "the signer request is not a PEM certificate request ({e}): use the file \
                 `keystamp ca signer-request` wrote"
            ),
            Self::RequestAlgorithm => f.write_str(
                "the signer request is not signed with ECDSA P-256 / SHA-256: keystamp signers \
                 are P-256 keys",
            ),
            Self::RequestSignature => f.write_str(
                "the signer request's signature does not verify: it was altered or not made \
                 with its key; make a new one on the station",
            ),
            Self::RequestSubject(why) => write!(f, "the signer request's subject {why}"),
            Self::Signer(e) => e.fmt(f),
            Self::Token(e) => e.fmt(f),
            Self::RootOffline { needs, run_there } => write!(
                f,
                "{needs} needs the root key, which is not on this machine (it holds root.pem \
                 only): run `{run_there}` on the offline machine, in the directory where \
                 `keystamp ca init-root` ran"
            ),
            Self::NeedsRequest(cfg) => write!(
                f,
                "the root key is offline, so this station cannot certify a new token key: run \
                 `keystamp ca signer-request --module {} --token {:?} --key-label {:?} --out \
                 signer.csr`, have the offline machine sign it (`keystamp ca sign-signer \
                 signer.csr --out signer.pem`), then run `keystamp ca import-signer signer.pem \
                 --root ca/root.pem` here; or keep the current signer certificate with \
                 `keystamp ca signer-to-token --import ...`",
                cfg.module.display(),
                cfg.token,
                cfg.key_label
            ),
            Self::OtherRoot => f.write_str(
                "the root certificate given is not this project's ca/root.pem: a new signer must \
                 be issued by the project's root (devices already hold its chain)",
            ),
        }
    }
}

impl std::error::Error for CeremonyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ca(e) => Some(e),
            Self::Io(_, e) => Some(e),
            Self::MalformedRequest(e) => Some(e),
            Self::Signer(e) => Some(e),
            Self::Token(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CaError> for CeremonyError {
    fn from(e: CaError) -> Self {
        Self::Ca(e)
    }
}

impl From<Pkcs11Error> for CeremonyError {
    fn from(e: Pkcs11Error) -> Self {
        Self::Token(e)
    }
}

impl From<ByoError> for CeremonyError {
    fn from(e: ByoError) -> Self {
        Self::Signer(e)
    }
}

fn refuse_existing(paths: &[&Path]) -> Result<(), CeremonyError> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(CeremonyError::Exists(p.to_path_buf())),
        None => Ok(()),
    }
}

fn create_dir(dir: &Path) -> Result<(), CeremonyError> {
    std::fs::create_dir_all(dir).map_err(|e| CeremonyError::Io(dir.into(), e))
}

/// Offline machine: a new root key and self-signed certificate in `ca_dir` (no signer).
pub fn init_root(
    ca_dir: &Path,
    settings: &CaSection,
    protection: &KeyProtection,
    now: SystemTime,
) -> Result<CaCert, CeremonyError> {
    let paths = CaPaths::new(ca_dir);
    refuse_existing_root(ca_dir)?;
    create_dir(ca_dir)?;
    let (key, root) = ca::make_root(settings, now)?;
    ca::write_key_file(&paths.root_key, &key, protection)?;
    write_cert(&paths.root_cert, &root)?;
    Ok(root)
}

/// Refuses a CA directory that already has a root (key file, certificate or token file).
pub fn refuse_existing_root(ca_dir: &Path) -> Result<(), CeremonyError> {
    let paths = CaPaths::new(ca_dir);
    refuse_existing(&[
        &paths.root_key,
        &paths.root_cert,
        &ca_dir.join(ROOT_TOKEN_FILE),
    ])
}

/// Offline machine: a new root key generated in the token `cfg` names (non-extractable,
/// sensitive; logged in with `pin`), its self-signed certificate in `ca_dir` and
/// [`ROOT_TOKEN_FILE`] saying where the key is. No key file is written.
pub fn init_root_in_token(
    ca_dir: &Path,
    settings: &CaSection,
    cfg: &Pkcs11Section,
    pin: &AuthPin,
    now: SystemTime,
) -> Result<CaCert, CeremonyError> {
    refuse_existing_root(ca_dir)?;
    create_dir(ca_dir)?;
    let key = SignerKey::Token(std::sync::Arc::new(TokenKey::generate(cfg, pin)?));
    let root = ca::root_certificate(settings, &key, now)?;
    pkcs11::write_token_file(&ca_dir.join(ROOT_TOKEN_FILE), cfg)?;
    write_cert(&CaPaths::new(ca_dir).root_cert, &root)?;
    Ok(root)
}

/// Where this machine's root key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKeyPlace {
    /// `root.key`, a PKCS#8 file (normally encrypted).
    File,
    /// A PKCS#11 token ([`ROOT_TOKEN_FILE`]).
    Token(Pkcs11Section),
    /// Not here: this machine holds root.pem only (a station of an offline root).
    Offline,
}

/// Where the root key of the CA in `ca_dir` is.
pub fn root_key_place(ca_dir: &Path) -> Result<RootKeyPlace, CeremonyError> {
    if ca::root_key_present(ca_dir) {
        return Ok(RootKeyPlace::File);
    }
    Ok(match pkcs11::read_root_token(ca_dir)? {
        Some(cfg) => RootKeyPlace::Token(cfg),
        None => RootKeyPlace::Offline,
    })
}

fn write_cert(path: &Path, cert: &CaCert) -> Result<(), CeremonyError> {
    std::fs::write(path, cert.to_pem()).map_err(|e| CeremonyError::Io(path.into(), e))
}

/// Station: a fresh signer key in `ca_dir` (protected as `protection` says) and a PKCS#10
/// request for it, subject `O=organization, CN=<signer_cn_prefix> <4 hex digits>` (the random
/// signer id the chip's signer definition reads from the CN). Returns the request as PEM.
pub fn signer_request(
    ca_dir: &Path,
    settings: &CaSection,
    protection: &KeyProtection,
) -> Result<String, CeremonyError> {
    let paths = CaPaths::new(ca_dir);
    refuse_existing(&[&paths.signer_key, &paths.signer_cert])?;
    create_dir(ca_dir)?;
    let key = SigningKey::try_generate().map_err(|e| build(Box::new(e)))?;
    let pem = request_pem(settings, &SignerKey::Software(key.clone()))?;
    ca::write_key_file(&paths.signer_key, &key, protection)?;
    Ok(pem)
}

/// Station: a fresh signer key generated in the token `cfg` names (non-extractable,
/// sensitive; `pin` logs in) and a PKCS#10 request signed by it, as [`signer_request`]. The
/// token key is remembered in [`PENDING_TOKEN_FILE`] for `import-signer`. Works in a
/// directory without a CA (a new station) and in a project (a new signer in a token: a
/// rotation under an offline root, which cannot certify a token key on the station).
pub fn signer_request_in_token(
    ca_dir: &Path,
    settings: &CaSection,
    cfg: &Pkcs11Section,
    pin: impl FnOnce() -> Result<AuthPin, Pkcs11Error>,
) -> Result<String, CeremonyError> {
    let pending = ca_dir.join(PENDING_TOKEN_FILE);
    // Refused before the PIN is asked for.
    refuse_existing(&[&pending])?;
    let pin = pin()?;
    create_dir(ca_dir)?;
    let key = SignerKey::Token(std::sync::Arc::new(TokenKey::generate(cfg, &pin)?));
    let pem = request_pem(settings, &key)?;
    pkcs11::write_token_file(&pending, cfg)?;
    Ok(pem)
}

/// A PEM request for `key` with a fresh signer subject.
fn request_pem(settings: &CaSection, key: &SignerKey) -> Result<String, CeremonyError> {
    let (_, subject) = ca::new_signer_subject(settings)?;
    let request = RequestBuilder::new(subject)
        .and_then(|b| b.build::<_, p256::ecdsa::DerSignature>(key))
        .map_err(|e| build(Box::new(e)))?;
    request
        .to_pem(LineEnding::LF)
        .map_err(|e| build(Box::new(e)))
}

/// The token key of a pending signer request ([`PENDING_TOKEN_FILE`]), if any.
pub fn pending_token_request(ca_dir: &Path) -> Result<Option<Pkcs11Section>, CeremonyError> {
    Ok(pkcs11::read_token_file(&ca_dir.join(PENDING_TOKEN_FILE))?)
}

/// Station: checks a signer certificate for the token key `token_key` of a pending request:
/// it chains to `root` and can be compressed ([`byo::check_signer`]), and when `ca_dir`
/// already holds a root certificate (a project rotating its signer), `root` is that one.
pub fn check_token_signer(
    ca_dir: &Path,
    signer: &CaCert,
    root: &CaCert,
    token_key: &VerifyingKey,
) -> Result<(), CeremonyError> {
    let root_path = CaPaths::new(ca_dir).root_cert;
    if root_path.exists() && CaCert::read(&root_path)?.der != root.der {
        return Err(CeremonyError::OtherRoot);
    }
    byo::check_signer(root, signer, &ca::public_key_of(token_key))?;
    Ok(())
}

fn build(e: ca::BoxError) -> CeremonyError {
    CeremonyError::Ca(CaError::Build(e))
}

/// A checked signer request: its subject and key.
#[derive(Debug, Clone)]
pub struct SignerRequest {
    /// The requested subject.
    pub subject: x509_cert::name::Name,
    /// The requested key.
    pub key: VerifyingKey,
    /// The signer id at the end of the subject CN.
    pub signer_id: [u8; 2],
}

/// Parses a PEM signer request and checks it: ECDSA P-256 / SHA-256, its self-signature
/// verifies with the key it carries, its CN ends in the 4-hex-digit signer id.
pub fn check_request(pem: &str) -> Result<SignerRequest, CeremonyError> {
    use p256::ecdsa::signature::Verifier;
    let req = CertReq::from_pem(pem.as_bytes()).map_err(CeremonyError::MalformedRequest)?;
    if req.algorithm.oid != OID_ECDSA_WITH_SHA256 || req.algorithm.parameters.is_some() {
        return Err(CeremonyError::RequestAlgorithm);
    }
    let spki = req.info.public_key.clone();
    let xy = ca::public_key_xy(&spki).map_err(|_| CeremonyError::RequestAlgorithm)?;
    let key = ca::verifying_key_from_xy(&xy).map_err(|_| CeremonyError::RequestAlgorithm)?;
    let info = req.info.to_der().map_err(CeremonyError::MalformedRequest)?;
    let sig = req
        .signature
        .as_bytes()
        .and_then(|b| p256::ecdsa::DerSignature::from_bytes(b).ok())
        .ok_or(CeremonyError::RequestSignature)?;
    key.verify(&info, &sig)
        .map_err(|_| CeremonyError::RequestSignature)?;
    let subject = req.info.subject;
    let cn = ca::common_name(&subject)
        .ok_or_else(|| CeremonyError::RequestSubject("has no CN".into()))?;
    let signer_id = ca::parse_signer_id(&cn).ok_or_else(|| {
        CeremonyError::RequestSubject(format!("CN {cn:?} does not end in a 4-hex-digit signer id"))
    })?;
    Ok(SignerRequest {
        subject,
        key,
        signer_id,
    })
}

/// Offline machine: checks the request and issues its signer certificate with `root_key`
/// (from root.key or the root's token), valid `years` whole years from this hour.
pub fn sign_signer(
    ca_dir: &Path,
    root_key: &SignerKey,
    request_pem: &str,
    years: u8,
    now: SystemTime,
) -> Result<CaCert, CeremonyError> {
    let request = check_request(request_pem)?;
    let root = CaCert::read(&CaPaths::new(ca_dir).root_cert)?;
    if ca::public_key_of(&root_key.verifying_key()) != root.public_key()? {
        return Err(CaError::Mismatch("the root key does not belong to root.pem".into()).into());
    }
    Ok(ca::issue_signer(
        root_key,
        &root,
        request.subject,
        &request.key,
        request.signer_id,
        years,
        now,
    )?)
}

/// Reads a PEM certificate (any file, for imports).
pub fn read_cert(path: &Path) -> Result<CaCert, CeremonyError> {
    let pem = std::fs::read_to_string(path).map_err(|e| CeremonyError::Io(path.into(), e))?;
    let cert = Certificate::from_pem(pem.as_bytes())
        .map_err(|e| CaError::Malformed(path.into(), Box::new(e)))?;
    let der = cert
        .to_der()
        .map_err(|e| CaError::Malformed(path.into(), Box::new(e)))?;
    Ok(CaCert { cert, der })
}

/// Station: checks that `signer` belongs to the signer key made by [`signer_request`]
/// (`signer_passphrase` opens it), chains to `root` and can be compressed by its definition, then
/// stores both certificates in `ca_dir`. The root key is never needed.
pub fn import_signer(
    ca_dir: &Path,
    signer: &CaCert,
    root: &CaCert,
    signer_passphrase: Option<&str>,
) -> Result<CaCerts, CeremonyError> {
    let paths = CaPaths::new(ca_dir);
    if !paths.signer_key.exists() {
        return Err(CeremonyError::Missing(
            paths.signer_key,
            "import the signer certificate on the station that made the request \
             (`keystamp ca signer-request`)",
        ));
    }
    refuse_existing(&[&paths.root_cert, &paths.signer_cert])?;
    let key = ca::unlock_signer_key(ca_dir, signer_passphrase)?;
    byo::check_signer(root, signer, &ca::public_key_of(key.verifying_key()))?;
    install_certs(ca_dir, root, signer)
}

/// Writes root.pem and signer.pem into `ca_dir` (next to signer.key, or alone when the signer
/// key is in a token) and loads the CA back.
pub fn install_certs(
    ca_dir: &Path,
    root: &CaCert,
    signer: &CaCert,
) -> Result<CaCerts, CeremonyError> {
    let paths = CaPaths::new(ca_dir);
    refuse_existing(&[&paths.root_cert, &paths.signer_cert])?;
    create_dir(ca_dir)?;
    write_cert(&paths.root_cert, root)?;
    write_cert(&paths.signer_cert, signer)?;
    Ok(CaCerts::load(ca_dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CaSection {
        CaSection::default()
    }

    #[test]
    fn ceremony_in_two_directories_never_copies_the_root_key() {
        let offline = tempfile::tempdir().expect("tmp");
        let station = tempfile::tempdir().expect("tmp");
        let now = SystemTime::now();
        let none = KeyProtection::Unencrypted;
        let root = init_root(offline.path(), &settings(), &none, now).expect("root");
        let request = signer_request(station.path(), &settings(), &none).expect("request");
        let root_key = SignerKey::Software(ca::unlock_root(offline.path(), None).expect("root"));
        let signer = sign_signer(offline.path(), &root_key, &request, 3, now).expect("sign");
        let certs = import_signer(station.path(), &signer, &root, None).expect("import");
        assert!(!ca::root_key_present(station.path()));
        ca::check(station.path(), None, None).expect("station CA checks without root.key");
        assert_eq!(certs.signer.serial()[0], 0x40);
        // A second import finds the certificates there and refuses to replace them.
        let e = import_signer(station.path(), &signer, &root, None).expect_err("exists");
        assert!(matches!(e, CeremonyError::Exists(_)), "{e}");
        // The station has no root key, and another root key does not sign as this root.
        assert_eq!(
            root_key_place(station.path()).expect("place"),
            RootKeyPlace::Offline
        );
        let other = SignerKey::Software(SigningKey::try_generate().expect("key"));
        let e = sign_signer(station.path(), &other, &request, 3, now).expect_err("other key");
        assert!(matches!(e, CeremonyError::Ca(CaError::Mismatch(_))), "{e}");
    }

    #[test]
    fn a_request_with_a_changed_signature_or_subject_is_refused() {
        let station = tempfile::tempdir().expect("tmp");
        let pem = signer_request(station.path(), &settings(), &KeyProtection::Unencrypted)
            .expect("request");
        check_request(&pem).expect("genuine request");
        let mut req = CertReq::from_pem(pem.as_bytes()).expect("parse");
        // A request for another name, keeping the signature: must not verify.
        req.info.subject = ca::ca_name("Mallory", "Mallory Signer 0A1B").expect("name");
        let forged = req.to_pem(LineEnding::LF).expect("pem");
        let e = check_request(&forged).expect_err("forged");
        assert!(matches!(e, CeremonyError::RequestSignature), "{e}");
    }

    #[test]
    fn a_request_without_a_signer_id_is_refused() {
        let key = SigningKey::try_generate().expect("key");
        let subject = ca::ca_name("Acme", "Acme Signer").expect("name");
        let pem = RequestBuilder::new(subject)
            .and_then(|b| b.build::<_, p256::ecdsa::DerSignature>(&key))
            .expect("request")
            .to_pem(LineEnding::LF)
            .expect("pem");
        let e = check_request(&pem).expect_err("no signer id");
        assert!(matches!(e, CeremonyError::RequestSubject(_)), "{e}");
        assert!(e.to_string().contains("4-hex-digit signer id"), "{e}");
    }
}
