//! How a CA private key is protected at rest: writing encrypted PKCS#8 with the scrypt cost
//! keystamp uses now, and reading back what protects an existing key file.
//!
//! An encrypted PKCS#8 key (PBES2, RFC 8018) carries its own KDF parameters, so keys written
//! with an older, lower cost (N = 2^14, what keystamp used before) still decrypt; only new keys
//! get the new cost. Parameters are bounded before any decryption: a damaged or hostile key
//! file must not make keystamp try to allocate gigabytes.

use std::fmt;

use der::Decode;
use der::pem::LineEnding;
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use pkcs8::pkcs5::{EncryptionScheme, pbes2, scrypt};
use zeroize::Zeroizing;

/// log2 of the scrypt cost N for new keys: N = 2^17 (the scrypt crate's recommendation, and
/// 8 times the work and memory of the N = 2^14 that pkcs8 uses by default).
pub const SCRYPT_LOG_N: u8 = 17;
/// scrypt block size r for new keys.
pub const SCRYPT_R: u32 = 8;
/// scrypt parallelism p for new keys.
pub const SCRYPT_P: u32 = 1;

/// Most memory (128 · r · N bytes) an existing key's scrypt parameters may ask for: 1 GiB,
/// eight times what new keys use.
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
/// Largest scrypt parallelism accepted when reading (time grows linearly with it).
pub const MAX_SCRYPT_P: u64 = 16;
/// Largest PBKDF2 iteration count accepted when reading (OpenSSL writes 2048 by default).
pub const MAX_PBKDF2_ITERATIONS: u64 = 10_000_000;

const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";
const PLAIN_LABEL: &str = "PRIVATE KEY";

/// What protects a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// Plain PKCS#8.
    Unencrypted,
    /// PBES2 with scrypt.
    Scrypt {
        /// Cost N.
        n: u64,
        /// Block size r.
        r: u64,
        /// Parallelism p.
        p: u64,
        /// The cipher (e.g. `aes-256-cbc`).
        cipher: &'static str,
    },
    /// PBES2 with PBKDF2 (what `openssl pkcs8 -topk8` writes by default).
    Pbkdf2 {
        /// Iteration count.
        iterations: u64,
        /// The cipher.
        cipher: &'static str,
    },
    /// An encryption keystamp does not open (PBES1, an unknown KDF or cipher).
    Unsupported(String),
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unencrypted => f.write_str("unencrypted"),
            Self::Scrypt { n, r, p, cipher } => {
                write!(f, "encrypted (PBES2, scrypt N={n} r={r} p={p}, {cipher})")
            }
            Self::Pbkdf2 { iterations, cipher } => {
                write!(
                    f,
                    "encrypted (PBES2, PBKDF2 {iterations} iterations, {cipher})"
                )
            }
            Self::Unsupported(what) => write!(f, "encrypted with {what} (not supported)"),
        }
    }
}

impl Protection {
    /// Whether a passphrase is needed.
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Self::Unencrypted)
    }

    /// Why keystamp refuses to try decrypting with these parameters, if it does.
    pub fn out_of_bounds(&self) -> Option<String> {
        match *self {
            Self::Scrypt { n, r, p, .. } => {
                let memory = 128u64.saturating_mul(r).saturating_mul(n);
                (memory > MAX_SCRYPT_MEMORY || p > MAX_SCRYPT_P).then(|| {
                    format!(
                        "scrypt N={n} r={r} p={p} needs more than keystamp allows \
                         ({} MiB, p ≤ {MAX_SCRYPT_P})",
                        MAX_SCRYPT_MEMORY >> 20
                    )
                })
            }
            Self::Pbkdf2 { iterations, .. } => (iterations > MAX_PBKDF2_ITERATIONS).then(|| {
                format!("PBKDF2 with {iterations} iterations is more than keystamp allows")
            }),
            Self::Unsupported(ref what) => Some(format!("{what} is not supported")),
            Self::Unencrypted => None,
        }
    }
}

fn cipher_name(scheme: &pbes2::EncryptionScheme) -> &'static str {
    match scheme {
        pbes2::EncryptionScheme::Aes128Cbc { .. } => "aes-128-cbc",
        pbes2::EncryptionScheme::Aes192Cbc { .. } => "aes-192-cbc",
        pbes2::EncryptionScheme::Aes256Cbc { .. } => "aes-256-cbc",
        _ => "another cipher",
    }
}

/// What protects the PKCS#8 PEM `text`. `Err` says why it is not a PKCS#8 private key.
pub fn inspect(text: &str) -> Result<Protection, String> {
    let (label, der) =
        der::pem::decode_vec(text.trim_start().as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    match label {
        PLAIN_LABEL => Ok(Protection::Unencrypted),
        ENCRYPTED_LABEL => {
            let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der)
                .map_err(|e| format!("not an encrypted PKCS#8 key: {e}"))?;
            Ok(match info.encryption_algorithm {
                EncryptionScheme::Pbes2(params) => {
                    let cipher = cipher_name(&params.encryption);
                    if let Some(s) = params.kdf.scrypt() {
                        Protection::Scrypt {
                            n: s.cost_parameter,
                            r: u64::from(s.block_size),
                            p: u64::from(s.parallelization),
                            cipher,
                        }
                    } else if let Some(p) = params.kdf.pbkdf2() {
                        Protection::Pbkdf2 {
                            iterations: u64::from(p.iteration_count),
                            cipher,
                        }
                    } else {
                        Protection::Unsupported("an unknown key derivation".into())
                    }
                }
                EncryptionScheme::Pbes1(_) => Protection::Unsupported("PBES1".into()),
                _ => Protection::Unsupported("an unknown scheme".into()),
            })
        }
        other => Err(format!("PEM label {other:?} is not a private key")),
    }
}

/// Encrypts `key` as PKCS#8 PEM: PBES2, scrypt N = 2^[`SCRYPT_LOG_N`], r = [`SCRYPT_R`],
/// p = [`SCRYPT_P`], AES-256-CBC, random 16-byte salt and IV.
pub fn encrypt_pem(key: &SigningKey, passphrase: &str) -> Result<Zeroizing<String>, pkcs8::Error> {
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    getrandom::fill(&mut salt)
        .and_then(|()| getrandom::fill(&mut iv))
        .map_err(|_| pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::Rng))?;
    let cost = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
        .map_err(|_| pkcs8::Error::ParametersMalformed)?;
    let params = pbes2::Parameters::generate_scrypt_aes256cbc(cost, &salt, iv)?;
    let plain = key.to_pkcs8_der()?;
    let info = pkcs8::PrivateKeyInfoRef::try_from(plain.as_bytes())?;
    let encrypted = info.encrypt_with_params(params, passphrase.as_bytes())?;
    Ok(encrypted.to_pem(ENCRYPTED_LABEL, LineEnding::LF)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::Generate;
    use p256::pkcs8::DecodePrivateKey;

    #[test]
    fn new_keys_use_n_2_17_and_decrypt() {
        let key = SigningKey::try_generate().expect("key");
        let pem = encrypt_pem(&key, "pass phrase").expect("encrypt");
        assert_eq!(
            inspect(&pem),
            Ok(Protection::Scrypt {
                n: 131_072,
                r: 8,
                p: 1,
                cipher: "aes-256-cbc"
            })
        );
        let back = SigningKey::from_pkcs8_encrypted_pem(&pem, "pass phrase").expect("decrypt");
        assert_eq!(back.verifying_key(), key.verifying_key());
        assert!(SigningKey::from_pkcs8_encrypted_pem(&pem, "other").is_err());
    }

    #[test]
    fn bounds_refuse_absurd_parameters() {
        let ok = Protection::Scrypt {
            n: 1 << 17,
            r: 8,
            p: 1,
            cipher: "aes-256-cbc",
        };
        assert_eq!(ok.out_of_bounds(), None);
        let huge = Protection::Scrypt {
            n: 1 << 40,
            r: 8,
            p: 1,
            cipher: "aes-256-cbc",
        };
        assert!(huge.out_of_bounds().is_some());
        let wide = Protection::Scrypt {
            n: 1 << 14,
            r: 8,
            p: 1000,
            cipher: "aes-256-cbc",
        };
        assert!(wide.out_of_bounds().is_some());
        assert!(
            Protection::Unsupported("PBES1".into())
                .out_of_bounds()
                .is_some()
        );
    }
}
