//! The project's certificate authority: a P-256 root and a P-256 signer.
//!
//! The root is self-signed; the signer is signed by the root and signs device certificates.
//! Both keys live in the CA directory as PKCS#8 PEM, each encrypted with its own passphrase
//! (PBES2: scrypt N = 2^17, r = 8, p = 1 + AES-256-CBC, see [`crate::pki::protection`]) unless
//! the project was created with `--insecure-no-passphrase`.
//!
//! The signer certificate follows cryptoauthlib's conventions so that a signer certificate
//! definition can compress it into the 72 bytes a chip holds: a 4-hex-digit signer id at the end
//! of its CN, serial number `0x40 ‖ signer id` (`SNSRC_SIGNER_ID`), dates on a whole hour and an
//! expiry a whole number of years after issue, SHA-1 key identifiers (RFC 5280 method 1).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use der::asn1::{GeneralizedTime, ObjectIdentifier};
use der::pem::LineEnding;
use der::{Any, DateTime, Decode, DecodePem, Encode, EncodePem, Tag};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};
use zeroize::Zeroizing;

use crate::pki::passphrase;
use crate::pki::pkcs11::TokenKey;
use crate::pki::protection::{self, Protection};
use crate::pki::signer_key::SignerKey;
use crate::project::CaSection;

/// Environment variable that supplies one passphrase for both CA keys (the fallback when the
/// per-key variables are unset; see [`passphrase`]).
pub const PASSPHRASE_ENV: &str = "KEYSTAMP_CA_PASSPHRASE";

/// One of the two CA keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKey {
    /// The root key: signs the signer certificate only.
    Root,
    /// The signer key: signs device certificates and the CRL.
    Signer,
}

impl CaKey {
    /// `root` or `signer`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Signer => "signer",
        }
    }
}

impl fmt::Display for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const ROOT_KEY: &str = "root.key";
const ROOT_CERT: &str = "root.pem";
const SIGNER_KEY: &str = "signer.key";
const SIGNER_CERT: &str = "signer.pem";

const ENCRYPTED_LABEL: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";

const OID_ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// How one CA key is (to be) protected at rest.
#[derive(Clone)]
pub enum KeyProtection {
    /// Encrypted PKCS#8 with this passphrase.
    Passphrase(Zeroizing<String>),
    /// Plain PKCS#8: only on explicit request (`--insecure-no-passphrase`).
    Unencrypted,
}

impl KeyProtection {
    /// The passphrase, if any.
    pub fn passphrase(&self) -> Option<&str> {
        match self {
            Self::Passphrase(p) => Some(p.as_str()),
            Self::Unencrypted => None,
        }
    }
}

/// How the root and the signer key are (to be) protected: each its own passphrase.
#[derive(Clone)]
pub struct CaProtection {
    /// The root key's.
    pub root: KeyProtection,
    /// The signer key's.
    pub signer: KeyProtection,
}

/// One protection for both keys (unencrypted throwaway CAs, tests, the single-variable
/// fallback).
impl From<&KeyProtection> for CaProtection {
    fn from(p: &KeyProtection) -> Self {
        Self {
            root: p.clone(),
            signer: p.clone(),
        }
    }
}

impl From<&CaProtection> for CaProtection {
    fn from(p: &CaProtection) -> Self {
        p.clone()
    }
}

/// A CA error. Display is one line saying what to do.
#[derive(Debug)]
pub enum CaError {
    /// Reading or writing a CA file failed.
    Io(PathBuf, std::io::Error),
    /// A CA file exists where `init` would create one.
    Exists(PathBuf),
    /// The passphrase does not decrypt this key.
    WrongPassphrase(CaKey, PathBuf),
    /// The key is encrypted and no passphrase was available.
    PassphraseRequired(CaKey, PathBuf),
    /// The key file's encryption is one keystamp does not open (or asks for absurd cost).
    UnsupportedProtection(PathBuf, String),
    /// A file is not the PEM object expected.
    Malformed(PathBuf, BoxError),
    /// The key and certificate on disk do not belong together.
    Mismatch(String),
    /// Building or signing a certificate failed.
    Build(BoxError),
    /// Encoding, encrypting or generating key material failed (`what` says which).
    Key {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: BoxError,
    },
    /// A device public key that is not a P-256 point.
    NotAP256Point,
    /// The system clock is before 1970 or after 9999.
    Clock,
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Self::Exists(p) => write!(
                f,
                "{} already exists: refusing to replace a CA (move it away to start over)",
                p.display()
            ),
            Self::WrongPassphrase(key, p) => write!(
                f,
                "wrong {key} key passphrase for {}: check {} (or {PASSPHRASE_ENV}) or retype it",
                p.display(),
                passphrase::env_var(*key)
            ),
            Self::PassphraseRequired(key, p) => write!(
                f,
                "{} is encrypted: set {} (or {PASSPHRASE_ENV}) or run in a terminal to be \
                 prompted",
                p.display(),
                passphrase::env_var(*key)
            ),
            Self::UnsupportedProtection(p, why) => write!(
                f,
                "{}: {why}; re-encrypt it with `openssl pkcs8 -topk8 -scrypt` or restore it \
                 from backup",
                p.display()
            ),
            Self::Malformed(p, m) => write!(
                f,
                "{} is not a valid CA file ({m}): restore it from your backup",
                p.display()
            ),
            Self::Mismatch(m) => write!(f, "CA files do not match: {m}; restore them from backup"),
            Self::Build(e) => write!(f, "building a CA certificate failed: {e}"),
            Self::Key { what, source } => {
                write!(f, "building a CA certificate failed: {what}: {source}")
            }
            Self::NotAP256Point => f.write_str(
                "building a CA certificate failed: device public key is not a P-256 point",
            ),
            Self::Clock => write!(f, "the system clock is out of range; set the date"),
        }
    }
}

impl std::error::Error for CaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(_, e) => Some(e),
            Self::Malformed(_, e) | Self::Build(e) | Self::Key { source: e, .. } => Some(&**e),
            _ => None,
        }
    }
}

/// An underlying error from one of the crates the CA is built on (der, x509-cert, ecdsa,
/// pkcs8, getrandom).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn malformed(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> CaError {
    CaError::Malformed(path.to_path_buf(), Box::new(e))
}

fn build_err(e: impl std::error::Error + Send + Sync + 'static) -> CaError {
    CaError::Build(Box::new(e))
}

fn key_err(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> CaError {
    CaError::Key {
        what,
        source: Box::new(e),
    }
}

/// Paths of the CA files in a CA directory.
#[derive(Debug, Clone)]
pub struct CaPaths {
    /// Root private key (PKCS#8 PEM).
    pub root_key: PathBuf,
    /// Root certificate (PEM).
    pub root_cert: PathBuf,
    /// Signer private key (PKCS#8 PEM).
    pub signer_key: PathBuf,
    /// Signer certificate (PEM).
    pub signer_cert: PathBuf,
}

impl CaPaths {
    /// The CA files under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            root_key: dir.join(ROOT_KEY),
            root_cert: dir.join(ROOT_CERT),
            signer_key: dir.join(SIGNER_KEY),
            signer_cert: dir.join(SIGNER_CERT),
        }
    }

    /// The private-key file of `key`.
    pub fn key(&self, key: CaKey) -> &Path {
        match key {
            CaKey::Root => &self.root_key,
            CaKey::Signer => &self.signer_key,
        }
    }

    fn all(&self) -> [&PathBuf; 4] {
        [
            &self.root_key,
            &self.root_cert,
            &self.signer_key,
            &self.signer_cert,
        ]
    }
}

/// One CA certificate with its DER encoding.
#[derive(Debug, Clone)]
pub struct CaCert {
    /// Parsed certificate.
    pub cert: Certificate,
    /// DER encoding (exactly as stored).
    pub der: Vec<u8>,
}

impl CaCert {
    /// Parses a DER certificate.
    pub fn from_der(der: Vec<u8>) -> Result<Self, der::Error> {
        Ok(Self {
            cert: Certificate::from_der(&der)?,
            der,
        })
    }

    /// Reads a PEM certificate file.
    pub fn read(path: &Path) -> Result<Self, CaError> {
        let pem = std::fs::read_to_string(path).map_err(|e| CaError::Io(path.into(), e))?;
        let cert = Certificate::from_pem(pem.as_bytes()).map_err(|e| malformed(path, e))?;
        let der = cert.to_der().map_err(|e| malformed(path, e))?;
        Ok(Self { cert, der })
    }

    /// PEM text of the certificate.
    pub fn to_pem(&self) -> String {
        der_to_pem(&self.der)
    }

    /// The subject public key as 64 bytes X‖Y (the form the chip and certdef use).
    pub fn public_key(&self) -> Result<[u8; 64], CaError> {
        public_key_xy(
            &self
                .cert
                .tbs_certificate()
                .subject_public_key_info()
                .to_owned(),
        )
    }

    /// SHA-256 fingerprint of the DER.
    pub fn fingerprint(&self) -> [u8; 32] {
        sha256(&self.der)
    }

    /// The certificate serial number bytes.
    pub fn serial(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate()
            .serial_number()
            .as_bytes()
            .to_vec()
    }
}

/// PEM text for a certificate DER.
pub fn der_to_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", LineEnding::LF, der)
        .unwrap_or_else(|_| String::from("(unencodable)"))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Formats bytes as colon-separated upper-case hex (the way OpenSSL prints fingerprints).
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The X‖Y of an uncompressed P-256 public key.
pub fn public_key_xy(spki: &SubjectPublicKeyInfoOwned) -> Result<[u8; 64], CaError> {
    let raw = spki.subject_public_key.raw_bytes();
    match raw {
        [0x04, rest @ ..] if rest.len() == 64 => {
            let mut xy = [0u8; 64];
            xy.copy_from_slice(rest);
            Ok(xy)
        }
        _ => Err(CaError::Mismatch(
            "public key is not an uncompressed P-256 point".into(),
        )),
    }
}

/// The CA's certificates (public; no passphrase needed).
#[derive(Debug, Clone)]
pub struct CaCerts {
    /// The self-signed root.
    pub root: CaCert,
    /// The signer, issued by the root.
    pub signer: CaCert,
    /// Whether the private keys on disk are encrypted.
    pub keys_encrypted: bool,
}

impl CaCerts {
    /// Loads the root and signer certificates from `dir`.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let paths = CaPaths::new(dir);
        let root = CaCert::read(&paths.root_cert)?;
        let signer = CaCert::read(&paths.signer_cert)?;
        // A signer whose key is in a PKCS#11 token has no signer.key.
        let keys_encrypted = paths.signer_key.exists() && is_encrypted(&paths.signer_key)?;
        Ok(Self {
            root,
            signer,
            keys_encrypted,
        })
    }

    /// The root public key as 64 bytes X‖Y (what the certificate-definition blob carries).
    pub fn root_public_key(&self) -> Result<[u8; 64], CaError> {
        self.root.public_key()
    }

    /// The signer public key as 64 bytes X‖Y.
    pub fn signer_public_key(&self) -> Result<[u8; 64], CaError> {
        self.signer.public_key()
    }

    /// The 2-byte signer id, from the last four characters of the signer CN.
    pub fn signer_id(&self) -> Result<[u8; 2], CaError> {
        let cn = common_name(self.signer.cert.tbs_certificate().subject())
            .ok_or_else(|| CaError::Mismatch("signer certificate has no CN".into()))?;
        parse_signer_id(&cn)
            .ok_or_else(|| CaError::Mismatch(format!("signer CN {cn:?} has no 4-hex-digit id")))
    }
}

/// The last four characters of a CN as a signer id (cryptoauthlib reads either case).
pub fn parse_signer_id(cn: &str) -> Option<[u8; 2]> {
    let tail = cn.get(cn.len().checked_sub(4)?..)?;
    let mut id = [0u8; 2];
    hex::decode_to_slice(tail, &mut id).ok()?;
    Some(id)
}

/// The first CN of a name, as text.
pub fn common_name(name: &Name) -> Option<String> {
    name.common_name().ok().flatten().map(String::from)
}

fn is_encrypted(path: &Path) -> Result<bool, CaError> {
    let text = std::fs::read_to_string(path).map_err(|e| CaError::Io(path.into(), e))?;
    Ok(text.trim_start().starts_with(ENCRYPTED_LABEL))
}

/// Whether the signer key in `dir` is encrypted (so a passphrase is needed to sign).
pub fn keys_encrypted(dir: &Path) -> Result<bool, CaError> {
    key_encrypted(dir, CaKey::Signer)
}

/// Whether `key` in `dir` is encrypted.
pub fn key_encrypted(dir: &Path, key: CaKey) -> Result<bool, CaError> {
    is_encrypted(CaPaths::new(dir).key(key))
}

/// What protects `key` in `dir` (needs no passphrase).
pub fn key_protection(dir: &Path, key: CaKey) -> Result<Protection, CaError> {
    let path = CaPaths::new(dir).key(key).to_path_buf();
    let text =
        Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| CaError::Io(path.clone(), e))?);
    protection::inspect(&text).map_err(|why| CaError::Malformed(path, why.into()))
}

fn read_key(dir: &Path, which: CaKey, passphrase: Option<&str>) -> Result<SigningKey, CaError> {
    let path = CaPaths::new(dir).key(which).to_path_buf();
    let text =
        Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| CaError::Io(path.clone(), e))?);
    let protection =
        protection::inspect(&text).map_err(|why| CaError::Malformed(path.clone(), why.into()))?;
    if !protection.is_encrypted() {
        return SigningKey::from_pkcs8_pem(&text).map_err(|e| malformed(&path, e));
    }
    // The file names its own KDF cost (older keys: N = 2^14); refuse absurd ones before
    // deriving anything.
    if let Some(why) = protection.out_of_bounds() {
        return Err(CaError::UnsupportedProtection(path, why));
    }
    let pass = passphrase.ok_or_else(|| CaError::PassphraseRequired(which, path.clone()))?;
    // A wrong passphrase shows up as bad CBC padding or as undecodable plaintext; both mean the
    // same thing to the operator.
    SigningKey::from_pkcs8_encrypted_pem(&text, pass)
        .map_err(|_| CaError::WrongPassphrase(which, path))
}

fn write_key(path: &Path, key: &SigningKey, protection: &KeyProtection) -> Result<(), CaError> {
    let pem = match protection {
        KeyProtection::Passphrase(pass) => {
            protection::encrypt_pem(key, pass).map_err(|e| key_err("encrypting key", e))?
        }
        KeyProtection::Unencrypted => key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| key_err("encoding key", e))?,
    };
    write_private(path, pem.as_bytes())
}

/// How the file system protects the private key files this build writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFileAccess {
    /// Created readable and writable by their owner only (Unix mode 0600).
    OwnerOnly,
    /// Created with the access rights (ACL) inherited from their folder (Windows): whoever may
    /// read the CA folder may read the key files. The passphrase encryption still protects
    /// them; the folder's rights are the operator's to restrict.
    InheritedAcl,
}

/// The protection of key files written by this build: mode 0600 on Unix; elsewhere (Windows)
/// the folder's inherited ACL. keystamp does not rewrite Windows ACLs itself: no well-kept
/// crate does it, and raw security-descriptor code it could not test here would be a worse
/// guarantee than a clear warning with the `icacls` command that does it
/// ([`KeyFileAccess::warning`]).
pub const KEY_FILE_ACCESS: KeyFileAccess = if cfg!(unix) {
    KeyFileAccess::OwnerOnly
} else {
    KeyFileAccess::InheritedAcl
};

impl KeyFileAccess {
    /// What the operator must do about the key files in `ca_dir`, if anything: for inherited
    /// ACLs, restrict the folder to their own account.
    pub fn warning(self, ca_dir: &Path) -> Option<String> {
        match self {
            KeyFileAccess::OwnerOnly => None,
            KeyFileAccess::InheritedAcl => Some(format!(
                "the CA key files in {dir} keep the access rights inherited from the folder \
                 (Windows ACL), so every account that may read the folder may read them; \
                 restrict it to your account: icacls \"{dir}\" /inheritance:r /grant:r \
                 \"%USERNAME%:(OI)(CI)F\"",
                dir = plain_windows_path(ca_dir)
            )),
        }
    }
}

/// `path` for a Windows operator: without the `\\?\` prefix `canonicalize` adds to drive paths
/// (cmd and icacls users do not type it; it is only needed past 260 characters).
fn plain_windows_path(path: &Path) -> String {
    let text = path.display().to_string();
    match text.strip_prefix(r"\\?\") {
        Some(rest) if rest.as_bytes().get(1) == Some(&b':') => rest.to_string(),
        _ => text,
    }
}

/// Writes a file readable by the owner only (private keys) where the OS has file modes;
/// elsewhere see [`KEY_FILE_ACCESS`].
fn write_private(path: &Path, data: &[u8]) -> Result<(), CaError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| CaError::Io(path.into(), e))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| CaError::Io(path.into(), e))
}

/// The signer, unlocked: signs device certificates (and the registry's records, through a
/// copy the registry holds).
#[derive(Clone)]
pub struct Signer {
    key: SignerKey,
    certs: CaCerts,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("certs", &self.certs)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads the CA certificates and decrypts the signer key (`passphrase` is ignored for an
    /// unencrypted key). Checks that the key belongs to the signer certificate.
    pub fn unlock(dir: &Path, passphrase: Option<&str>) -> Result<Self, CaError> {
        let certs = CaCerts::load(dir)?;
        let key = read_key(dir, CaKey::Signer, passphrase)?;
        Self::with_key(certs, SignerKey::Software(key), "signer.key")
    }

    /// Loads the CA certificates and uses the signer key in a PKCS#11 token (already logged
    /// in). Checks that the token's key belongs to the signer certificate.
    pub fn with_token(dir: &Path, token: TokenKey) -> Result<Self, CaError> {
        let certs = CaCerts::load(dir)?;
        Self::with_key(
            certs,
            SignerKey::Token(std::sync::Arc::new(token)),
            "the token's signer key",
        )
    }

    fn with_key(certs: CaCerts, key: SignerKey, what: &str) -> Result<Self, CaError> {
        if verifying_key_xy(&key.verifying_key()) != certs.signer_public_key()? {
            return Err(CaError::Mismatch(format!(
                "{what} does not belong to signer.pem"
            )));
        }
        Ok(Self { key, certs })
    }

    /// The signer's private key (software or token).
    pub fn key(&self) -> &SignerKey {
        &self.key
    }

    /// The CA certificates.
    pub fn certs(&self) -> &CaCerts {
        &self.certs
    }

    /// Signs a SHA-256 digest (e.g. a device certificate's TBS digest) and returns the raw
    /// signature R‖S, 32 bytes each — the form a compressed certificate stores.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], CaError> {
        self.key.sign_prehash(digest).map_err(build_err)
    }

    /// Signs `message` (ECDSA P-256 with SHA-256, low S) and returns the DER signature: what an
    /// X.509 structure such as a CRL carries in its signature BIT STRING.
    pub fn sign_der(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        self.sign_digest(&sha256(message))
            .and_then(|raw| Signature::from_slice(&raw).map_err(build_err))
            .map(|sig| sig.to_der().as_bytes().to_vec())
    }
}

/// What goes into a device certificate issued directly (not through a certificate definition).
#[derive(Debug, Clone)]
pub struct DeviceCertRequest<'a> {
    /// Chip serial number; the certificate serial is `0x40 ‖ chip serial` (cryptoauthlib's
    /// `SNSRC_DEVICE_SN`).
    pub chip_serial: [u8; 9],
    /// The device public key, X‖Y.
    pub public_key: [u8; 64],
    /// Organization (O) of the subject.
    pub organization: &'a str,
    /// Subject CN.
    pub cn: &'a str,
    /// Validity in whole years; 0 means no expiration (9999-12-31 23:59:59).
    pub validity_years: u8,
    /// Issue time (rounded down to the hour).
    pub now: SystemTime,
}

impl Signer {
    /// Issues a device certificate signed by the signer: issuer = signer subject, whole-hour
    /// dates, keyUsage digitalSignature, extKeyUsage clientAuth, SKI and AKI. This is the shape
    /// a device certificate definition is generated from (a sample certificate), and what a
    /// definition-driven issue reproduces byte for byte apart from the variable elements.
    pub fn issue_device_certificate(
        &self,
        req: &DeviceCertRequest<'_>,
    ) -> Result<Vec<u8>, CaError> {
        let device_key =
            verifying_key_from_xy(&req.public_key).map_err(|_| CaError::NotAP256Point)?;
        let (start, end) = if req.validity_years == 0 {
            let (start, _) = whole_year_validity(req.now, 0)?;
            (
                start,
                DateTime::new(9999, 12, 31, 23, 59, 59).map_err(|_| CaError::Clock)?,
            )
        } else {
            whole_year_validity(req.now, req.validity_years)?
        };
        let mut serial = [0x40u8; 10];
        serial[1..].copy_from_slice(&req.chip_serial);
        let profile = IssueProfile {
            subject: ca_name(req.organization, req.cn)?,
            issuer: Some(self.certs.signer.cert.tbs_certificate().subject().clone()),
            role: Role::Device,
        };
        let cert = build_cert(
            profile,
            &serial,
            validity(start, end),
            &device_key,
            &self.key,
        )?;
        Ok(cert.der)
    }
}

/// A P-256 public key from its 64-byte X‖Y form.
pub fn verifying_key_from_xy(xy: &[u8; 64]) -> Result<VerifyingKey, CaError> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(xy);
    VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| CaError::Mismatch("public key is not a P-256 point".into()))
}

fn verifying_key_xy(key: &VerifyingKey) -> [u8; 64] {
    let point = key.to_sec1_point(false);
    let mut xy = [0u8; 64];
    // An uncompressed SEC1 point is 0x04 ‖ X ‖ Y.
    xy.copy_from_slice(&point.as_bytes()[1..]);
    xy
}

/// Builds a subject name `O=organization, CN=cn` with UTF8String values.
pub fn ca_name(organization: &str, cn: &str) -> Result<Name, CaError> {
    let mut seq = RdnSequence::default();
    for (oid, value) in [(OID_ORGANIZATION, organization), (OID_COMMON_NAME, cn)] {
        let mut rdn = RelativeDistinguishedName::default();
        rdn.insert(x509_cert::attr::AttributeTypeAndValue {
            oid,
            value: Any::new(Tag::Utf8String, value.as_bytes()).map_err(build_err)?,
        })
        .map_err(build_err)?;
        seq.push(rdn);
    }
    Name::from_der(&seq.to_der().map_err(build_err)?).map_err(build_err)
}

/// Validity from `now` rounded down to the hour, to the same moment `years` later.
///
/// Whole hours and whole years are what a compressed certificate can express (it stores the
/// issue date to the hour and the validity in years). On 29 February the start moves back to
/// 28 February 23:00 so that the end date exists.
pub fn whole_year_validity(now: SystemTime, years: u8) -> Result<(DateTime, DateTime), CaError> {
    let now = DateTime::from_system_time(now).map_err(|_| CaError::Clock)?;
    let (mut day, mut hour) = (now.day(), now.hour());
    if now.month() == 2 && day == 29 {
        day = 28;
        hour = 23;
    }
    let start =
        DateTime::new(now.year(), now.month(), day, hour, 0, 0).map_err(|_| CaError::Clock)?;
    let end = DateTime::new(now.year() + u16::from(years), now.month(), day, hour, 0, 0)
        .map_err(|_| CaError::Clock)?;
    Ok((start, end))
}

/// Validity as X.509 times; the builder turns years before 2050 into UTCTime (RFC 5280).
fn validity(start: DateTime, end: DateTime) -> Validity {
    Validity::new(
        Time::GeneralTime(GeneralizedTime::from_date_time(start)),
        Time::GeneralTime(GeneralizedTime::from_date_time(end)),
    )
}

/// What a certificate is for; decides its extensions.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// A CA: basicConstraints CA (critical) with this path length, keyUsage keyCertSign|cRLSign.
    Ca { path_len: Option<u8> },
    /// A device: keyUsage digitalSignature (critical), extKeyUsage clientAuth (TLS client).
    Device,
}

/// Subject, issuer and extensions of a certificate we issue. Every certificate gets SKI and AKI.
struct IssueProfile {
    subject: Name,
    issuer: Option<Name>,
    role: Role,
}

const OID_KP_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

impl BuilderProfile for IssueProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        self.issuer.clone().unwrap_or_else(|| subject.clone())
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let subject = tbs.subject();
        let mut ext = Vec::new();
        match self.role {
            Role::Ca { path_len } => {
                let bc = BasicConstraints {
                    ca: true,
                    path_len_constraint: path_len,
                };
                ext.push(bc.to_extension(subject, &ext)?);
                let ku = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
                ext.push(ku.to_extension(subject, &ext)?);
            }
            Role::Device => {
                let ku = KeyUsage(KeyUsages::DigitalSignature.into());
                ext.push(ku.to_extension(subject, &ext)?);
                let eku = ExtendedKeyUsage(vec![OID_KP_CLIENT_AUTH]);
                ext.push(eku.to_extension(subject, &ext)?);
            }
        }
        // RFC 5280 method 1: SHA-1 of the subjectPublicKey bits — what cryptoauthlib computes
        // for the SKI/AKI elements of a certificate definition.
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        ext.push(ski.to_extension(subject, &ext)?);
        let issuer_ski = SubjectKeyIdentifier::try_from(issuer_spk)?;
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(issuer_ski.0),
            ..Default::default()
        };
        ext.push(aki.to_extension(subject, &ext)?);
        Ok(ext)
    }
}

fn build_cert(
    profile: IssueProfile,
    serial: &[u8],
    validity: Validity,
    subject_key: &VerifyingKey,
    issuer_key: &SignerKey,
) -> Result<CaCert, CaError> {
    let spki = SubjectPublicKeyInfoOwned::from_key(subject_key).map_err(build_err)?;
    let serial = SerialNumber::new(serial).map_err(build_err)?;
    let builder = CertificateBuilder::new(profile, serial, validity, spki).map_err(build_err)?;
    let cert = builder
        .build::<_, p256::ecdsa::DerSignature>(issuer_key)
        .map_err(build_err)?;
    CaCert::from_der(cert.to_der().map_err(build_err)?).map_err(build_err)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], CaError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| key_err("random source", e))?;
    Ok(b)
}

/// A new root key and its self-signed certificate per `settings` (not written anywhere).
pub fn make_root(settings: &CaSection, now: SystemTime) -> Result<(SigningKey, CaCert), CaError> {
    let root_key = SigningKey::try_generate().map_err(build_err)?;
    let root = root_certificate(settings, &SignerKey::Software(root_key.clone()), now)?;
    Ok((root_key, root))
}

/// The self-signed root certificate for `root_key` (software or token) per `settings`:
/// basicConstraints CA without path length, a random positive 16-byte serial.
fn root_certificate(
    settings: &CaSection,
    root_key: &SignerKey,
    now: SystemTime,
) -> Result<CaCert, CaError> {
    let (root_start, root_end) = whole_year_validity(now, settings.root_validity_years)?;
    // 16 random bytes, forced positive without a leading zero byte.
    let mut root_serial: [u8; 16] = random_bytes()?;
    root_serial[0] = (root_serial[0] & 0x7F) | 0x40;
    build_cert(
        IssueProfile {
            subject: ca_name(&settings.organization, &settings.root_cn)?,
            issuer: None,
            role: Role::Ca { path_len: None },
        },
        &root_serial,
        validity(root_start, root_end),
        &root_key.verifying_key(),
        root_key,
    )
}

/// A fresh random signer id and the signer subject `O=organization, CN=<signer_cn_prefix>
/// <4 hex digits>` that carries it (cryptoauthlib reads the id back from the CN).
pub fn new_signer_subject(settings: &CaSection) -> Result<([u8; 2], Name), CaError> {
    let signer_id: [u8; 2] = random_bytes()?;
    let cn = format!(
        "{} {}",
        settings.signer_cn_prefix,
        hex::encode_upper(signer_id)
    );
    Ok((signer_id, ca_name(&settings.organization, &cn)?))
}

/// A signer certificate for `subject_key`, signed by the root: basicConstraints CA with path
/// length 0, keyUsage keyCertSign|cRLSign, serial `0x40 ‖ signer id` (cryptoauthlib
/// `SNSRC_SIGNER_ID`), whole-hour dates `years` whole years apart.
pub fn issue_signer(
    root_key: &SignerKey,
    root: &CaCert,
    subject: Name,
    subject_key: &VerifyingKey,
    signer_id: [u8; 2],
    years: u8,
    now: SystemTime,
) -> Result<CaCert, CaError> {
    let (start, end) = whole_year_validity(now, years)?;
    build_cert(
        IssueProfile {
            subject,
            issuer: Some(root.cert.tbs_certificate().subject().clone()),
            role: Role::Ca { path_len: Some(0) },
        },
        &[0x40, signer_id[0], signer_id[1]],
        validity(start, end),
        subject_key,
        root_key,
    )
}

/// Writes `key` to `path` (refusing to replace a file), protected as `protection` says,
/// owner-readable only.
pub fn write_key_file(
    path: &Path,
    key: &SigningKey,
    protection: &KeyProtection,
) -> Result<(), CaError> {
    write_key(path, key, protection)
}

/// Whether the root key is on this machine (a station of an offline-root CA holds only
/// root.pem).
pub fn root_key_present(dir: &Path) -> bool {
    CaPaths::new(dir).root_key.exists()
}

/// Creates a new CA in `dir` (root and signer keys and certificates) per `settings`, each key
/// protected as `protection` says (a single [`KeyProtection`] protects both alike).
///
/// Refuses to touch an existing CA file. Keys are written owner-readable only.
pub fn create(
    dir: &Path,
    settings: &CaSection,
    protection: impl Into<CaProtection>,
    now: SystemTime,
) -> Result<CaCerts, CaError> {
    let protection = protection.into();
    let paths = CaPaths::new(dir);
    if let Some(existing) = paths.all().into_iter().find(|p| p.exists()) {
        return Err(CaError::Exists(existing.clone()));
    }
    std::fs::create_dir_all(dir).map_err(|e| CaError::Io(dir.into(), e))?;

    let (root_key, root) = make_root(settings, now)?;
    let signer_key = SigningKey::try_generate().map_err(build_err)?;
    let signer = certify_signer(
        settings,
        &root,
        &SignerKey::Software(root_key.clone()),
        signer_key.verifying_key(),
        now,
    )?;

    write_key(&paths.root_key, &root_key, &protection.root)?;
    write_key(&paths.signer_key, &signer_key, &protection.signer)?;
    for (path, cert) in [(&paths.root_cert, &root), (&paths.signer_cert, &signer)] {
        let pem = cert.cert.to_pem(LineEnding::LF).map_err(build_err)?;
        std::fs::write(path, pem).map_err(|e| CaError::Io(path.clone(), e))?;
    }
    Ok(CaCerts {
        root,
        signer,
        keys_encrypted: matches!(protection.signer, KeyProtection::Passphrase(_)),
    })
}

/// Issues a signer certificate for `signer_public` under `root` (a fresh random signer id in
/// the CN, serial `0x40 ‖ signer id`, validity from `settings`), signed by `root_key`.
pub fn certify_signer(
    settings: &CaSection,
    root: &CaCert,
    root_key: &SignerKey,
    signer_public: &VerifyingKey,
    now: SystemTime,
) -> Result<CaCert, CaError> {
    let (signer_id, subject) = new_signer_subject(settings)?;
    issue_signer(
        root_key,
        root,
        subject,
        signer_public,
        signer_id,
        settings.signer_validity_years,
        now,
    )
}

/// Issues an end-entity certificate `subject` for `subject_key` under the CA certificate
/// `issuer` (whose key is `issuer_key`): a random positive 16-byte serial, whole-hour dates
/// `years` long, the device extensions. Verification certificates use this.
pub fn issue_end_entity(
    issuer: &CaCert,
    issuer_key: &SignerKey,
    subject: Name,
    subject_key: &VerifyingKey,
    years: u8,
    now: SystemTime,
) -> Result<CaCert, CaError> {
    let (start, end) = whole_year_validity(now, years)?;
    let mut serial: [u8; 16] = random_bytes()?;
    serial[0] = (serial[0] & 0x7F) | 0x40;
    build_cert(
        IssueProfile {
            subject,
            issuer: Some(issuer.cert.tbs_certificate().subject().clone()),
            role: Role::Device,
        },
        &serial,
        validity(start, end),
        subject_key,
        issuer_key,
    )
}

/// Where the software signer key goes when the signer moves into a token: kept (not deleted)
/// so that an operator can destroy it deliberately after checking the token works.
pub const RETIRED_SIGNER_KEY: &str = "signer.key.retired";

/// Makes `signer` the CA's signer certificate after its key moved into a token: the software
/// `signer.key` (if any) is renamed to [`RETIRED_SIGNER_KEY`] (refused if one is already
/// there) and `signer.pem` is replaced.
pub fn install_token_signer(dir: &Path, signer: &CaCert) -> Result<(), CaError> {
    let paths = CaPaths::new(dir);
    let retired = dir.join(RETIRED_SIGNER_KEY);
    archive_signer_cert(dir)?;
    if paths.signer_key.exists() {
        if retired.exists() {
            return Err(CaError::Exists(retired));
        }
        std::fs::rename(&paths.signer_key, &retired)
            .map_err(|e| CaError::Io(paths.signer_key.clone(), e))?;
    }
    // Write beside, then rename: a crash leaves either the old or the new signer.pem.
    let tmp = dir.join("signer.pem.new");
    std::fs::write(&tmp, signer.to_pem()).map_err(|e| CaError::Io(tmp.clone(), e))?;
    std::fs::rename(&tmp, &paths.signer_cert).map_err(|e| CaError::Io(paths.signer_cert, e))
}

/// Where a CA directory keeps the certificates of its earlier signers: the registry's records
/// they signed are verified with them (`keystamp registry audit`).
pub const SIGNER_HISTORY_DIR: &str = "signers";

/// Copies the current `signer.pem` (if any) into [`SIGNER_HISTORY_DIR`] as
/// `<SHA-256 fingerprint>.pem`, before it is replaced by another signer.
pub fn archive_signer_cert(dir: &Path) -> Result<(), CaError> {
    let paths = CaPaths::new(dir);
    if !paths.signer_cert.exists() {
        return Ok(());
    }
    let current = CaCert::read(&paths.signer_cert)?;
    let history = dir.join(SIGNER_HISTORY_DIR);
    std::fs::create_dir_all(&history).map_err(|e| CaError::Io(history.clone(), e))?;
    let path = history.join(format!("{}.pem", hex::encode(current.fingerprint())));
    std::fs::write(&path, current.to_pem()).map_err(|e| CaError::Io(path, e))
}

/// The certificates of earlier signers kept in [`SIGNER_HISTORY_DIR`] (none when it does not
/// exist). A file that is not a certificate is an error: the history is the CA's own.
pub fn signer_history(dir: &Path) -> Result<Vec<CaCert>, CaError> {
    let history = dir.join(SIGNER_HISTORY_DIR);
    let entries = match std::fs::read_dir(&history) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CaError::Io(history, e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    paths.sort();
    paths.iter().map(|p| CaCert::read(p)).collect()
}

/// Verifies that `cert` is signed (ECDSA P-256 with SHA-256) by the key `issuer_public_key` (X‖Y).
pub fn verify_signed_by(cert: &Certificate, issuer_public_key: &[u8; 64]) -> Result<(), CaError> {
    use p256::ecdsa::signature::Verifier;
    let key = verifying_key_from_xy(issuer_public_key)?;
    let tbs = cert.tbs_certificate().to_der().map_err(build_err)?;
    let sig_bits = cert.signature().as_bytes().unwrap_or_default();
    let sig = p256::ecdsa::DerSignature::from_bytes(sig_bits)
        .map_err(|_| CaError::Mismatch("signature is not an ECDSA DER signature".into()))?;
    key.verify(&tbs, &sig)
        .map_err(|_| CaError::Mismatch("certificate signature does not verify".into()))
}

/// Checks the whole CA: each passphrase opens its key, each key belongs to its certificate,
/// the root is self-signed and the signer is signed by the root. Without root.key (the root
/// is offline) the root's passphrase is not asked for and only the certificates are checked.
pub fn check(
    dir: &Path,
    root_passphrase: Option<&str>,
    signer_passphrase: Option<&str>,
) -> Result<CaCerts, CaError> {
    check_with(
        Signer::unlock(dir, signer_passphrase)?,
        dir,
        root_passphrase,
    )
}

/// [`check`] with the signer already unlocked (e.g. from its PKCS#11 token): the root
/// passphrase opens the root key, the root key belongs to its certificate, the root is
/// self-signed and the signer is signed by the root.
pub fn check_with(
    signer: Signer,
    dir: &Path,
    root_passphrase: Option<&str>,
) -> Result<CaCerts, CaError> {
    let certs = signer.certs;
    let root_xy = certs.root_public_key()?;
    // A station of an offline-root CA holds root.pem only: nothing to match there.
    if root_key_present(dir) {
        let root_key = unlock_root(dir, root_passphrase)?;
        if verifying_key_xy(root_key.verifying_key()) != root_xy {
            return Err(CaError::Mismatch(
                "root.key does not belong to root.pem".into(),
            ));
        }
    }
    verify_signed_by(&certs.root.cert, &root_xy)
        .map_err(|_| CaError::Mismatch("root.pem is not self-signed by root.key".into()))?;
    verify_signed_by(&certs.signer.cert, &root_xy)
        .map_err(|_| CaError::Mismatch("signer.pem is not signed by the root".into()))?;
    Ok(certs)
}

/// Decrypts the signer key alone (before its certificate exists: the offline ceremony).
pub fn unlock_signer_key(dir: &Path, passphrase: Option<&str>) -> Result<SigningKey, CaError> {
    read_key(dir, CaKey::Signer, passphrase)
}

/// The X‖Y of a P-256 public key.
pub fn public_key_of(key: &VerifyingKey) -> [u8; 64] {
    verifying_key_xy(key)
}

/// Decrypts the root key (only needed to check a passphrase or to issue a new signer).
pub fn unlock_root(dir: &Path, passphrase: Option<&str>) -> Result<SigningKey, CaError> {
    read_key(dir, CaKey::Root, passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use std::time::{Duration, UNIX_EPOCH};

    fn settings() -> CaSection {
        CaSection::default()
    }

    #[test]
    fn validity_is_whole_hours_and_years() {
        // 2024-02-29 13:45:10 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_709_214_310);
        let (s, e) = whole_year_validity(t, 5).expect("validity");
        assert_eq!(
            (s.year(), s.month(), s.day(), s.hour(), s.minutes()),
            (2024, 2, 28, 23, 0)
        );
        assert_eq!((e.year(), e.month(), e.day(), e.hour()), (2029, 2, 28, 23));
        // 2026-11-26 01:34:12 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_795_656_852);
        let (s, e) = whole_year_validity(t, 30).expect("validity");
        assert_eq!(
            (s.year(), s.month(), s.day(), s.hour(), s.seconds()),
            (2026, 11, 26, 1, 0)
        );
        assert_eq!(e.year(), 2056);
    }

    #[test]
    fn key_file_access_warns_exactly_where_files_get_inherited_rights() {
        let dir = Path::new("C:\\factory\\ca");
        assert_eq!(KeyFileAccess::OwnerOnly.warning(dir), None);
        let warning = KeyFileAccess::InheritedAcl.warning(dir).expect("a warning");
        // Names the folder and the Windows command that removes inherited rights.
        assert!(warning.contains("C:\\factory\\ca"), "{warning}");
        assert!(
            warning.contains("icacls \"C:\\factory\\ca\" /inheritance:r"),
            "{warning}"
        );
        // A canonicalized path loses its verbatim prefix; a UNC share keeps its form.
        let verbatim = Path::new(r"\\?\C:\factory\ca");
        let warning = KeyFileAccess::InheritedAcl
            .warning(verbatim)
            .expect("a warning");
        assert!(warning.contains(r#"icacls "C:\factory\ca""#), "{warning}");
        let unc = Path::new(r"\\server\share\ca");
        let warning = KeyFileAccess::InheritedAcl.warning(unc).expect("a warning");
        assert!(
            warning.contains(r#"icacls "\\server\share\ca""#),
            "{warning}"
        );
        #[cfg(unix)]
        assert_eq!(KEY_FILE_ACCESS, KeyFileAccess::OwnerOnly);
        #[cfg(windows)]
        assert_eq!(KEY_FILE_ACCESS, KeyFileAccess::InheritedAcl);
    }

    #[test]
    fn signer_id_parsing() {
        assert_eq!(
            parse_signer_id("Example ATECC508A Signer C48B"),
            Some([0xC4, 0x8B])
        );
        assert_eq!(parse_signer_id("x 0a1b"), Some([0x0A, 0x1B]));
        assert_eq!(parse_signer_id("x 0G1B"), None);
        assert_eq!(parse_signer_id("AB"), None);
    }

    #[test]
    fn created_ca_unlocks_signs_and_rejects_wrong_passphrase() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pass = KeyProtection::Passphrase(Zeroizing::new("correct horse".into()));
        let certs = create(dir.path(), &settings(), &pass, SystemTime::now()).expect("create");
        assert!(certs.keys_encrypted);
        let id = certs.signer_id().expect("id");
        assert_eq!(certs.signer.serial(), vec![0x40, id[0], id[1]]);

        let e = Signer::unlock(dir.path(), Some("wrong")).expect_err("wrong passphrase");
        assert!(
            matches!(e, CaError::WrongPassphrase(CaKey::Signer, _)),
            "{e}"
        );
        let e = Signer::unlock(dir.path(), None).expect_err("no passphrase");
        assert!(
            matches!(e, CaError::PassphraseRequired(CaKey::Signer, _)),
            "{e}"
        );

        let signer = Signer::unlock(dir.path(), Some("correct horse")).expect("unlock");
        let digest = sha256(b"tbs");
        let sig = signer.sign_digest(&digest).expect("sign");
        let xy = certs.signer_public_key().expect("pk");
        let vk = verifying_key_from_xy(&xy).expect("vk");
        let sig = Signature::from_slice(&sig).expect("sig");
        vk.verify_prehash(&digest, &sig).expect("verifies");

        let e = create(dir.path(), &settings(), &pass, SystemTime::now()).expect_err("exists");
        assert!(matches!(e, CaError::Exists(_)));
        unlock_root(dir.path(), Some("correct horse")).expect("root unlocks");
    }

    #[test]
    fn root_and_signer_passphrases_open_only_their_own_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pass = |p: &str| KeyProtection::Passphrase(Zeroizing::new(p.into()));
        let protection = CaProtection {
            root: pass("root passphrase"),
            signer: pass("signer passphrase"),
        };
        create(dir.path(), &settings(), &protection, SystemTime::now()).expect("create");
        let e = Signer::unlock(dir.path(), Some("root passphrase")).expect_err("root's");
        assert!(
            matches!(e, CaError::WrongPassphrase(CaKey::Signer, _)),
            "{e}"
        );
        let e = unlock_root(dir.path(), Some("signer passphrase")).expect_err("signer's");
        assert!(matches!(e, CaError::WrongPassphrase(CaKey::Root, _)), "{e}");
        let e = check(
            dir.path(),
            Some("signer passphrase"),
            Some("signer passphrase"),
        )
        .expect_err("swapped");
        assert!(matches!(e, CaError::WrongPassphrase(CaKey::Root, _)), "{e}");
        check(
            dir.path(),
            Some("root passphrase"),
            Some("signer passphrase"),
        )
        .expect("each its own");
    }

    #[test]
    fn unencrypted_ca_needs_no_passphrase() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = create(
            dir.path(),
            &settings(),
            &KeyProtection::Unencrypted,
            SystemTime::now(),
        )
        .expect("create");
        assert!(!certs.keys_encrypted);
        assert!(!keys_encrypted(dir.path()).expect("read"));
        Signer::unlock(dir.path(), None).expect("unlock");
    }

    fn ski(cert: &Certificate) -> Vec<u8> {
        let (_, ski) = cert
            .tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>()
            .expect("decode")
            .expect("SKI present");
        ski.0.as_bytes().to_vec()
    }

    fn aki(cert: &Certificate) -> Vec<u8> {
        let (_, aki) = cert
            .tbs_certificate()
            .get_extension::<AuthorityKeyIdentifier>()
            .expect("decode")
            .expect("AKI present");
        aki.key_identifier.expect("key id").as_bytes().to_vec()
    }

    /// The conventions a certificate definition relies on (reference atcacert.md §3.1, §4, §7):
    /// key ids are SHA-1 over 0x04 ‖ X ‖ Y, the signer serial is 0x40 ‖ signer id, a device
    /// serial is 0x40 ‖ chip serial, "no expiration" is 9999-12-31 23:59:59 GeneralizedTime.
    #[test]
    fn certificates_follow_cryptoauthlib_conventions() {
        use sha1::Sha1;
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let certs = create(dir.path(), &settings(), &KeyProtection::Unencrypted, now).expect("ca");
        let key_id = |xy: [u8; 64]| {
            let mut point = vec![0x04];
            point.extend_from_slice(&xy);
            Sha1::digest(&point).to_vec()
        };
        let root_xy = certs.root_public_key().expect("root");
        let signer_xy = certs.signer_public_key().expect("signer");
        assert_eq!(ski(&certs.root.cert), key_id(root_xy));
        assert_eq!(aki(&certs.root.cert), key_id(root_xy));
        assert_eq!(ski(&certs.signer.cert), key_id(signer_xy));
        assert_eq!(aki(&certs.signer.cert), key_id(root_xy));
        verify_signed_by(&certs.signer.cert, &root_xy).expect("signer signed by root");
        verify_signed_by(&certs.root.cert, &signer_xy).expect_err("root not signed by signer");

        let signer = Signer::unlock(dir.path(), None).expect("unlock");
        let device_key = SigningKey::try_generate().expect("key");
        let device_xy = verifying_key_xy(device_key.verifying_key());
        let chip = [0x01, 0x23, 0x83, 0x32, 0xd9, 0x2c, 0xa5, 0x71, 0xee];
        for years in [0u8, 20] {
            let der = signer
                .issue_device_certificate(&DeviceCertRequest {
                    chip_serial: chip,
                    public_key: device_xy,
                    organization: "Example",
                    cn: "01238332D92CA571EE",
                    validity_years: years,
                    now,
                })
                .expect("issue");
            let cert = Certificate::from_der(&der).expect("parse");
            let tbs = cert.tbs_certificate();
            assert_eq!(
                tbs.serial_number().as_bytes(),
                &[0x40, 0x01, 0x23, 0x83, 0x32, 0xd9, 0x2c, 0xa5, 0x71, 0xee]
            );
            assert_eq!(tbs.issuer(), certs.signer.cert.tbs_certificate().subject());
            assert_eq!(
                common_name(tbs.subject()).as_deref(),
                Some("01238332D92CA571EE")
            );
            assert_eq!(aki(&cert), key_id(signer_xy));
            assert_eq!(ski(&cert), key_id(device_xy));
            verify_signed_by(&cert, &signer_xy).expect("device signed by signer");
            let not_after = tbs.validity().not_after;
            if years == 0 {
                assert!(matches!(not_after, Time::GeneralTime(_)));
                assert_eq!(not_after.to_string(), "9999-12-31T23:59:59Z");
            } else {
                let nb = tbs.validity().not_before.to_date_time();
                let na = not_after.to_date_time();
                assert_eq!(na.year() - nb.year(), 20);
                assert_eq!(
                    (na.month(), na.day(), na.hour()),
                    (nb.month(), nb.day(), nb.hour())
                );
                assert_eq!((nb.minutes(), nb.seconds()), (0, 0));
            }
        }
    }
}
