//! Bring your own CA: a signer certificate (and its key) issued by the company's own root.
//!
//! A chip keeps the signer certificate compressed (72 bytes) and rebuilds it from the signer
//! definition generated from the certificate, so the certificate must have the shape
//! cryptoauthlib can compress: checked up front by [`check_signer`], with what to change.

use std::fmt;
use std::path::{Path, PathBuf};

use p256::ecdsa::SigningKey;
use p256::pkcs8::DecodePrivateKey;
use x509_cert::ext::pkix::BasicConstraints;
use zeroize::Zeroizing;

use crate::pki::ca::{self, CaCert, CaCerts, CaPaths, KeyProtection};
use crate::pki::ceremony::{self, CeremonyError};
use crate::pki::from_cert::{CertRole, FromCertError, FromCertOptions, from_cert};

/// Why a signer certificate cannot be this project's signer. Display says what to change.
#[derive(Debug)]
pub enum ByoError {
    /// The signer certificate's key is not the signer key.
    KeyMismatch,
    /// The signer is not issued by the root given (names or signature).
    NotChained(&'static str),
    /// The signer certificate is not a CA certificate.
    NotCa,
    /// The certificates' keys are not P-256.
    NotP256(&'static str),
    /// The subject CN does not end in the 4-hex-digit signer id (the CN found).
    SignerId(Option<String>),
    /// The serial is not `0x40 ‖ signer id` (the serial found, the one expected).
    Serial {
        /// The certificate's serial.
        found: Vec<u8>,
        /// `0x40 ‖ signer id`.
        expected: [u8; 3],
    },
    /// A shape a signer definition cannot compress (dates, lengths, structure).
    NotCompressible(FromCertError),
    /// The key file could not be read or decrypted.
    Key(PathBuf, String),
}

impl fmt::Display for ByoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyMismatch => f.write_str(
                "the signer certificate is not for the signer key: give the certificate issued \
                 for this key",
            ),
            Self::NotChained(why) => write!(
                f,
                "the signer certificate does not chain to the root certificate given: {why}"
            ),
            Self::NotCa => f.write_str(
                "the signer certificate is not a CA certificate: reissue it with \
                 basicConstraints CA:TRUE (pathlen 0) and keyUsage keyCertSign, cRLSign",
            ),
            Self::NotP256(which) => write!(
                f,
                "the {which} key is not an ECDSA P-256 key: the ATECC608 verifies P-256 only"
            ),
            Self::SignerId(cn) => write!(
                f,
                "the signer subject CN {} must end in a 4-hex-digit signer id (e.g. \
                 \"Example Signer C48B\"): the chip's signer definition reads it from there; \
                 reissue the signer with such a CN",
                match cn {
                    // Debug quoting escapes control characters from a hostile certificate.
                    Some(cn) => format!("{cn:?}"),
                    None => "(none)".into(),
                }
            ),
            Self::Serial { found, expected } => write!(
                f,
                "the signer serial number {} cannot be rebuilt on the chip: reissue the signer \
                 with serial {} (0x40 followed by the signer id from its CN; cryptoauthlib's \
                 SNSRC_SIGNER_ID)",
                hex::encode_upper(found),
                hex::encode_upper(expected)
            ),
            Self::NotCompressible(e) => write!(
                f,
                "the signer certificate cannot be compressed by its definition: {e}; reissue \
                 the signer accordingly"
            ),
            Self::Key(p, why) => write!(f, "{}: {why}", p.display()),
        }
    }
}

impl std::error::Error for ByoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NotCompressible(e) => Some(e),
            _ => None,
        }
    }
}

/// Checks that `signer` can be this project's signer under `root`: its key is
/// `signer_key` (X‖Y), it is a CA issued by `root` (issuer name and signature), and a signer
/// definition can compress it (CN ending in the signer id, serial `0x40 ‖ id`, whole-hour
/// dates and whole-year validity, lengths and structure — the checks of `certdef from-cert`).
pub fn check_signer(root: &CaCert, signer: &CaCert, signer_key: &[u8; 64]) -> Result<(), ByoError> {
    let signer_xy = signer
        .public_key()
        .map_err(|_| ByoError::NotP256("signer"))?;
    if &signer_xy != signer_key {
        return Err(ByoError::KeyMismatch);
    }
    let root_xy = root.public_key().map_err(|_| ByoError::NotP256("root"))?;
    let (root_tbs, signer_tbs) = (root.cert.tbs_certificate(), signer.cert.tbs_certificate());
    if signer_tbs.issuer() != root_tbs.subject() {
        return Err(ByoError::NotChained("its issuer is not the root's subject"));
    }
    ca::verify_signed_by(&signer.cert, &root_xy)
        .map_err(|_| ByoError::NotChained("the root key did not sign it"))?;
    let is_ca = matches!(
        signer_tbs.get_extension::<BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    );
    if !is_ca {
        return Err(ByoError::NotCa);
    }
    let cn = ca::common_name(signer_tbs.subject());
    let id = cn
        .as_deref()
        .and_then(ca::parse_signer_id)
        .ok_or_else(|| ByoError::SignerId(cn.clone()))?;
    let expected = [0x40, id[0], id[1]];
    if signer.serial() != expected {
        return Err(ByoError::Serial {
            found: signer.serial(),
            expected,
        });
    }
    from_cert(
        &signer.der,
        &FromCertOptions::new("signer", CertRole::Signer),
    )
    .map_err(ByoError::NotCompressible)?;
    Ok(())
}

/// Reads a PKCS#8 PEM private key (encrypted with `passphrase`, or plain).
pub fn read_key(path: &Path, passphrase: Option<&str>) -> Result<SigningKey, ByoError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| ByoError::Key(path.into(), e.to_string()))?,
    );
    let bad = |why: &str| ByoError::Key(path.into(), why.into());
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        let pass = passphrase.ok_or_else(|| bad("encrypted: the signer passphrase is needed"))?;
        SigningKey::from_pkcs8_encrypted_pem(&text, pass).map_err(|_| {
            bad("wrong passphrase, or not an encrypted PKCS#8 P-256 key (openssl pkcs8 -topk8)")
        })
    } else {
        SigningKey::from_pkcs8_pem(&text)
            .map_err(|_| bad("not a PKCS#8 P-256 private key (convert with openssl pkcs8 -topk8)"))
    }
}

/// Files of an imported CA.
#[derive(Debug, Clone, Copy)]
pub struct ImportFiles<'a> {
    /// The company's root certificate (PEM).
    pub root: &'a Path,
    /// The signer certificate it issued (PEM).
    pub signer: &'a Path,
    /// The signer's private key (PKCS#8 PEM, normally encrypted).
    pub signer_key: &'a Path,
}

/// Imports a CA: checks everything ([`check_signer`]) before writing, then stores the root and
/// signer certificates and the signer key (re-encrypted as `protection` says) in `ca_dir`.
/// The root key is never asked for.
pub fn import(
    ca_dir: &Path,
    files: ImportFiles<'_>,
    key_passphrase: Option<&str>,
    protection: &KeyProtection,
) -> Result<CaCerts, CeremonyError> {
    let paths = CaPaths::new(ca_dir);
    if let Some(p) = [&paths.root_key, &paths.signer_key]
        .into_iter()
        .find(|p| p.exists())
    {
        return Err(CeremonyError::Exists(p.clone()));
    }
    let root = ceremony::read_cert(files.root)?;
    let signer = ceremony::read_cert(files.signer)?;
    let key = read_key(files.signer_key, key_passphrase)?;
    check_signer(&root, &signer, &ca::public_key_of(key.verifying_key()))?;
    std::fs::create_dir_all(ca_dir).map_err(|e| CeremonyError::Io(ca_dir.into(), e))?;
    ca::write_key_file(&paths.signer_key, &key, protection)?;
    ceremony::install_certs(ca_dir, &root, &signer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ca::{DeviceCertRequest, Signer};
    use crate::pki::signer_key::SignerKey;
    use crate::project::CaSection;
    use p256::elliptic_curve::Generate;
    use std::time::SystemTime;

    fn ca() -> (tempfile::TempDir, Signer) {
        let dir = tempfile::tempdir().expect("tmp");
        ca::create(
            dir.path(),
            &CaSection::default(),
            &KeyProtection::Unencrypted,
            SystemTime::now(),
        )
        .expect("ca");
        let signer = Signer::unlock(dir.path(), None).expect("unlock");
        (dir, signer)
    }

    #[test]
    fn our_own_signer_passes() {
        let (_dir, signer) = ca();
        let certs = signer.certs();
        let key = certs.signer_public_key().expect("key");
        check_signer(&certs.root, &certs.signer, &key).expect("compressible and chained");
    }

    #[test]
    fn a_certificate_that_is_not_a_ca_is_refused() {
        let (_dir, signer) = ca();
        let device_key = SigningKey::try_generate().expect("key");
        let xy = ca::public_key_of(device_key.verifying_key());
        let der = signer
            .issue_device_certificate(&DeviceCertRequest {
                chip_serial: [0x01, 0x23, 0, 0, 0, 0, 0, 0, 0xEE],
                public_key: xy,
                organization: "Acme",
                cn: "Acme Device 0A1B",
                validity_years: 1,
                now: SystemTime::now(),
            })
            .expect("device cert");
        let leaf = CaCert::from_der(der).expect("parse");
        let e = check_signer(&signer.certs().signer, &leaf, &xy).expect_err("not a CA");
        assert!(matches!(e, ByoError::NotCa), "{e}");
    }

    #[test]
    fn a_signer_cn_without_signer_id_is_refused_with_an_example() {
        let (dir, signer) = ca();
        let root_key = ca::unlock_root(dir.path(), None).expect("root key");
        let signer_key = SigningKey::try_generate().expect("key");
        let cert = ca::issue_signer(
            &SignerKey::Software(root_key),
            &signer.certs().root,
            ca::ca_name("Acme", "Acme Signer").expect("name"),
            signer_key.verifying_key(),
            [0x0A, 0x1B],
            5,
            SystemTime::now(),
        )
        .expect("signer");
        let xy = ca::public_key_of(signer_key.verifying_key());
        let e = check_signer(&signer.certs().root, &cert, &xy).expect_err("no id");
        assert!(matches!(e, ByoError::SignerId(_)), "{e}");
        assert!(e.to_string().contains("\"Acme Signer\""), "{e}");
    }

    #[test]
    fn a_signer_of_another_root_or_key_is_refused() {
        let (_a, ours) = ca();
        let (_b, theirs) = ca();
        let key = theirs.certs().signer_public_key().expect("key");
        let e =
            check_signer(&ours.certs().root, &theirs.certs().signer, &key).expect_err("other root");
        assert!(matches!(e, ByoError::NotChained(_)), "{e}");
        let other_key = ours.certs().signer_public_key().expect("key");
        let e = check_signer(&theirs.certs().root, &theirs.certs().signer, &other_key)
            .expect_err("other key");
        assert!(matches!(e, ByoError::KeyMismatch), "{e}");
    }
}
