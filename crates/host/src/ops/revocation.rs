//! Revoking certificates and writing the signer's CRL from the registry.

use std::time::{Duration, SystemTime};

use der::Decode;
use x509_cert::Certificate;

use super::OpsError;
use crate::pki::ca::{self, Signer};
use crate::pki::crl::{self, CrlEntry, CrlReason, CrlRequest};
use crate::registry::{Registry, RevocationReason, RevokedCert};

/// Longest CRL validity `ca crl --days` accepts (RFC 5280 leaves it to the issuer; a year
/// keeps a forgotten CRL from vouching for a device for ever).
pub const MAX_CRL_DAYS: u32 = 366;

/// Revokes a device certificate by its serial (as `registry list` shows it).
pub fn revoke(
    registry: &mut Registry,
    serial: &str,
    reason: RevocationReason,
) -> Result<RevokedCert, OpsError> {
    Ok(registry.revoke(serial, reason)?)
}

/// A CRL written by [`issue_crl`].
#[derive(Debug, Clone)]
pub struct IssuedCrl {
    /// The signed CRL.
    pub crl: crl::Crl,
    /// Its CRL number.
    pub number: u64,
    /// The certificates it lists.
    pub entries: usize,
    /// thisUpdate.
    pub this_update: SystemTime,
    /// nextUpdate.
    pub next_update: SystemTime,
}

fn crl_reason(reason: RevocationReason) -> CrlReason {
    match reason {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}

fn entry(revoked: &RevokedCert, signer: &Signer) -> Result<Option<CrlEntry>, OpsError> {
    let record = &revoked.certificate;
    let bad = |why: String| OpsError::BadRecord {
        serial: record.serial.clone(),
        why,
    };
    let cert = Certificate::from_der(&record.der).map_err(|e| bad(e.to_string()))?;
    let tbs = cert.tbs_certificate();
    // A CRL speaks for one issuer: certificates of another signer (an earlier CA) are not ours
    // to list.
    if tbs.issuer() != signer.certs().signer.cert.tbs_certificate().subject() {
        return Ok(None);
    }
    let revoked_at = revoked
        .revocation
        .revoked_at
        .parse::<der::DateTime>()
        .map_err(|e| bad(format!("revocation time: {e}")))?
        .to_system_time();
    Ok(Some(CrlEntry {
        // As encoded in the certificate: what a verifier compares.
        serial: tbs.serial_number().clone(),
        revoked_at,
        reason: Some(crl_reason(revoked.revocation.reason)),
    }))
}

/// Builds and signs a CRL of every revoked device certificate the signer issued, valid for
/// `days` days from `now`, with the next CRL number from the registry (recorded there with
/// the CRL's SHA-256).
pub fn issue_crl(
    registry: &mut Registry,
    signer: &Signer,
    days: u32,
    now: SystemTime,
) -> Result<IssuedCrl, OpsError> {
    if days == 0 || days > MAX_CRL_DAYS {
        return Err(OpsError::CrlDays(days));
    }
    let mut entries = Vec::new();
    for revoked in registry.revoked_certificates()? {
        if let Some(e) = entry(&revoked, signer)? {
            entries.push(e);
        }
    }
    // Whole seconds: what UTCTime holds.
    let this_update = der::DateTime::from_system_time(now)
        .map_err(|_| OpsError::Ca(ca::CaError::Clock))?
        .to_system_time();
    let next_update = this_update + Duration::from_secs(u64::from(days) * 86_400);
    let rfc3339 = |t: SystemTime| {
        der::DateTime::from_system_time(t)
            .map(|d| d.to_string())
            .map_err(|_| OpsError::Ca(ca::CaError::Clock))
    };
    let number = registry.allocate_crl_number(
        &rfc3339(this_update)?,
        &rfc3339(next_update)?,
        entries.len(),
    )?;
    let crl = crl::build(
        signer,
        &CrlRequest {
            number: number.0,
            this_update,
            next_update,
            entries: &entries,
        },
    )?;
    registry.record_crl_digest(number, &ca::sha256(&crl.der))?;
    Ok(IssuedCrl {
        crl,
        number: number.0,
        entries: entries.len(),
        this_update,
        next_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ca::KeyProtection;
    use crate::project::CaSection;

    #[test]
    fn crl_validity_is_bounded_and_numbers_follow_the_registry() {
        let dir = tempfile::tempdir().expect("tmp");
        let now = SystemTime::now();
        ca::create(
            dir.path(),
            &CaSection::default(),
            &KeyProtection::Unencrypted,
            now,
        )
        .expect("ca");
        let signer = Signer::unlock(dir.path(), None).expect("signer");
        let mut registry = Registry::open_in_memory().expect("registry");
        for days in [0, MAX_CRL_DAYS + 1] {
            let e = issue_crl(&mut registry, &signer, days, now).expect_err("days");
            assert!(matches!(e, OpsError::CrlDays(d) if d == days), "{e}");
        }
        // Refused validities used no number.
        let first = issue_crl(&mut registry, &signer, 1, now).expect("crl");
        assert_eq!((first.number, first.entries), (1, 0));
        assert_eq!(
            first
                .next_update
                .duration_since(first.this_update)
                .expect("later"),
            Duration::from_secs(86_400)
        );
        let second = issue_crl(&mut registry, &signer, MAX_CRL_DAYS, now).expect("crl");
        assert_eq!(second.number, 2);
    }
}
