//! A CA private key wherever it lives: in software (decrypted PKCS#8) or in a PKCS#11 token.
//!
//! Every signature a CA key makes goes through [`SignerKey::sign_prehash`]: device
//! certificates, CRLs, the blob envelope, maintenance challenges and verification
//! certificates. [`SignerKey`] also implements the `signature` traits the X.509 builder uses,
//! so certificates are built the same way for either kind of key.

use std::fmt;

use der::asn1::ObjectIdentifier;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::signature::{Error as SignatureError, Keypair, Signer as SignatureSigner};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use x509_cert::spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier};

use super::ca::sha256;
use super::pkcs11::{Pkcs11Error, TokenKey};

/// ecdsa-with-SHA256 (RFC 5758): the signature algorithm of everything keystamp signs.
const OID_ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// A CA private key: software or token. Clones share one token session (the registry's
/// record signer and the station's issuer are the same key).
#[derive(Clone)]
pub enum SignerKey {
    /// Decrypted from a PKCS#8 file.
    Software(SigningKey),
    /// In a PKCS#11 token; only signatures come out.
    Token(std::sync::Arc<TokenKey>),
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Software(_) => f.write_str("SignerKey::Software(..)"),
            Self::Token(t) => f.debug_tuple("SignerKey::Token").field(t).finish(),
        }
    }
}

/// Why a key could not sign.
#[derive(Debug)]
pub enum SignError {
    /// The software ECDSA failed (only on a broken key).
    Software(SignatureError),
    /// The token refused or failed.
    Token(Pkcs11Error),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Software(e) => write!(f, "signing failed: {e}"),
            Self::Token(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Software(e) => Some(e),
            Self::Token(e) => Some(e),
        }
    }
}

impl SignerKey {
    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            Self::Software(k) => *k.verifying_key(),
            Self::Token(t) => *t.verifying_key(),
        }
    }

    /// ECDSA P-256 over a SHA-256 digest; R‖S, low S.
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        match self {
            Self::Software(k) => {
                let sig: Signature = k.sign_prehash(digest).map_err(SignError::Software)?;
                // Low-S form: some verifiers (and the chip's own Verify) accept either, none
                // rejects it.
                let mut out = [0u8; 64];
                out.copy_from_slice(&sig.normalize_s().to_bytes());
                Ok(out)
            }
            Self::Token(t) => t.sign_prehash(digest).map_err(SignError::Token),
        }
    }

    /// ECDSA P-256 with SHA-256 over `message`, DER-encoded (what X.509 structures carry).
    pub fn sign_der(&self, message: &[u8]) -> Result<DerSignature, SignError> {
        let raw = self.sign_prehash(&sha256(message))?;
        Signature::from_slice(&raw)
            .map(|s| s.to_der())
            .map_err(SignError::Software)
    }
}

impl Keypair for SignerKey {
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        SignerKey::verifying_key(self)
    }
}

impl SignatureSigner<DerSignature> for SignerKey {
    fn try_sign(&self, msg: &[u8]) -> Result<DerSignature, SignatureError> {
        self.sign_der(msg).map_err(SignatureError::from_source)
    }
}

impl DynSignatureAlgorithmIdentifier for SignerKey {
    fn signature_algorithm_identifier(&self) -> x509_cert::spki::Result<AlgorithmIdentifierOwned> {
        // RFC 5758 §3.2: the parameters field is absent for ecdsa-with-SHA256.
        Ok(AlgorithmIdentifierOwned {
            oid: OID_ECDSA_WITH_SHA256,
            parameters: None,
        })
    }
}
