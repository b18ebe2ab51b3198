//! Verification certificates: proof that the operator holds a CA's private key.
//!
//! Azure IoT Hub / DPS ("verify certificate") and AWS IoT (`register-ca-certificate
//! --verification-cert`) both hand out a code and ask for a certificate whose subject CN is
//! that code, signed by the CA being registered. The subject key of that certificate is a
//! throwaway: neither cloud asks for it, so it is generated here and dropped.

use std::fmt;
use std::time::SystemTime;

use p256::ecdsa::SigningKey;
use p256::elliptic_curve::Generate;

use super::ca::{self, CaCert, CaError};
use super::signer_key::SignerKey;

/// Longest code accepted: X.520 `ub-common-name` (64) bounds a CN.
pub const MAX_CODE_LEN: usize = 64;

/// Validity of a verification certificate in whole years (the clouds check it only once).
const VALIDITY_YEARS: u8 = 1;

/// Why a verification certificate could not be made.
#[derive(Debug)]
pub enum VerificationError {
    /// The code is empty, longer than [`MAX_CODE_LEN`], or has characters other than ASCII
    /// letters, digits, `-`, `_` and `.` (the clouds' codes are hex or alphanumeric).
    BadCode(String),
    /// Generating the throwaway key or building the certificate failed.
    Ca(CaError),
}

impl fmt::Display for VerificationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadCode(why) => write!(
                f,
                "verification code {why}: paste the code exactly as the cloud console shows it"
            ),
            Self::Ca(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for VerificationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BadCode(_) => None,
            Self::Ca(e) => Some(e),
        }
    }
}

impl From<CaError> for VerificationError {
    fn from(e: CaError) -> Self {
        Self::Ca(e)
    }
}

/// Checks a verification code before it becomes a CN.
pub fn check_code(code: &str) -> Result<(), VerificationError> {
    if code.is_empty() {
        return Err(VerificationError::BadCode("is empty".into()));
    }
    if code.len() > MAX_CODE_LEN {
        return Err(VerificationError::BadCode(format!(
            "is {} characters long (at most {MAX_CODE_LEN})",
            code.len()
        )));
    }
    if let Some(c) = code
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(VerificationError::BadCode(format!(
            "has the character {:?} (only letters, digits, '-', '_' and '.')",
            c.escape_default().to_string()
        )));
    }
    Ok(())
}

/// A certificate with subject `O = organization, CN = code`, issued by `ca_cert` and signed
/// by `ca_key` (software or token).
pub fn verification_certificate(
    ca_cert: &CaCert,
    ca_key: &SignerKey,
    organization: &str,
    code: &str,
    now: SystemTime,
) -> Result<CaCert, VerificationError> {
    check_code(code)?;
    let throwaway = SigningKey::try_generate().map_err(|e| {
        VerificationError::Ca(CaError::Key {
            what: "generating the throwaway key",
            source: Box::new(e),
        })
    })?;
    let subject = ca::ca_name(organization, code)?;
    Ok(ca::issue_end_entity(
        ca_cert,
        ca_key,
        subject,
        throwaway.verifying_key(),
        VALIDITY_YEARS,
        now,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_checked_before_they_become_a_cn() {
        // Azure's verification codes are hex, AWS's registration codes 64 hex digits.
        check_code("1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F7081").expect("azure");
        check_code(&"a".repeat(MAX_CODE_LEN)).expect("64 characters");
        for bad in ["", "CN=x,O=y", "code with space", "\u{202e}abc", "ab\ncd"] {
            assert!(
                matches!(check_code(bad), Err(VerificationError::BadCode(_))),
                "{bad:?}"
            );
        }
        assert!(check_code(&"a".repeat(MAX_CODE_LEN + 1)).is_err());
    }
}
