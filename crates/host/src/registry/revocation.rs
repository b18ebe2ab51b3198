//! Revocation: which device certificates are revoked, why and since when, and the numbers of the
//! CRLs issued from them.
//!
//! A revocation is a row of its own (`revocations`, one per certificate) rather than a
//! certificate status: a certificate keeps the status it reached (`verified`, `superseded`, …)
//! and is revoked on top of it. A certificate that becomes `superseded` is revoked with reason
//! `superseded` in the same transaction ([`revoke_superseded`]), because a superseded
//! certificate may have reached a device before the device's key changed.

use std::fmt;
use std::str::FromStr;

use super::backend::{Connection, DbError, OptionalExt, Transaction, params};
use serde::Serialize;

use super::chain::RecordSigner;
use super::{CERT_COLUMNS, CertKind, CertRecord, Outcome, Registry, RegistryError, cert_from_row};
use super::{ChipSerial, now_rfc3339};

/// Schema version 4: revocations and CRL numbers. Certificates superseded under version 1 are
/// revoked (reason superseded, at their last change) so that the first CRL lists them too.
pub(super) const SCHEMA_V4: &str = "
CREATE TABLE revocations (
    cert_id     INTEGER PRIMARY KEY REFERENCES certificates(id),
    reason      TEXT NOT NULL,
    revoked_at  TEXT NOT NULL
);
CREATE TABLE crls (
    number      INTEGER PRIMARY KEY CHECK (number > 0),
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    entries     INTEGER NOT NULL,
    sha256      TEXT,                      -- of the signed DER, once written
    created_at  TEXT NOT NULL
);
INSERT INTO revocations (cert_id, reason, revoked_at)
    SELECT id, 'superseded', updated_at FROM certificates
    WHERE status = 'superseded' AND kind = 'device';
";

/// Why a certificate is revoked: the RFC 5280 §5.3.1 `CRLReason` values a device certificate
/// can have here. `certificateHold` and `removeFromCRL` are left out on purpose: a revocation in
/// this registry is permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    /// No reason given (RFC 5280: the reasonCode entry extension is then omitted).
    Unspecified,
    /// The device's private key is known or suspected to be compromised.
    KeyCompromise,
    /// The issuing CA's key is known or suspected to be compromised.
    CaCompromise,
    /// The subject's name or other information changed.
    AffiliationChanged,
    /// The certificate was replaced (for this registry: the chip got a new key).
    Superseded,
    /// The device is taken out of service.
    CessationOfOperation,
    /// A privilege in the certificate was withdrawn.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason, in RFC 5280 order.
    pub const ALL: [Self; 7] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::PrivilegeWithdrawn,
    ];

    /// The RFC 5280 name, as stored and as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// The `CRLReason` ENUMERATED value (RFC 5280 §5.3.1).
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::PrivilegeWithdrawn => 9,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = String;

    /// Accepts the RFC 5280 names in any case (`keyCompromise`, `keycompromise`).
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|r| r.as_str()).collect();
                format!(
                    "{s:?} is not a revocation reason (one of: {})",
                    names.join(", ")
                )
            })
    }
}

impl Serialize for RevocationReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The revocation of one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocation {
    /// Why.
    pub reason: RevocationReason,
    /// When, RFC 3339.
    pub revoked_at: String,
}

/// A revoked certificate with its revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevokedCert {
    /// The certificate.
    pub certificate: CertRecord,
    /// Its revocation.
    pub revocation: Revocation,
}

/// A CRL number handed out by [`Registry::allocate_crl_number`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlNumber(pub u64);

fn reason_from_sql(s: &str) -> Result<RevocationReason, DbError> {
    s.parse().map_err(|e: String| DbError::Conversion {
        column: 1,
        expected: "a revocation reason",
        found: e,
    })
}

/// Revokes (reason superseded, at `now`) the live pending or issued device certificates of
/// `chip` that the caller is about to mark superseded, each revocation a record of the chain.
/// Runs in the caller's transaction.
pub(super) fn revoke_superseded(
    tx: &Transaction<'_>,
    signer: Option<&dyn RecordSigner>,
    chip: &str,
    now: &str,
) -> Result<(), RegistryError> {
    let ids: Vec<i64> = {
        let mut st = tx.prepare(
            "SELECT id FROM certificates WHERE chip_serial = ?1 AND kind = 'device'
             AND status IN ('pending', 'issued') AND id NOT IN (SELECT cert_id FROM revocations)
             ORDER BY id",
        )?;
        st.query_map([chip], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for id in ids {
        insert(tx, signer, id, RevocationReason::Superseded, now)?;
    }
    Ok(())
}

/// Writes the revocation of certificate row `cert_id` and makes it the next record.
fn insert(
    tx: &Transaction<'_>,
    signer: Option<&dyn RecordSigner>,
    cert_id: i64,
    reason: RevocationReason,
    now: &str,
) -> Result<(), RegistryError> {
    tx.execute(
        "INSERT INTO revocations (cert_id, reason, revoked_at) VALUES (?1, ?2, ?3)",
        params![cert_id, reason.as_str(), now],
    )?;
    super::chain::append(tx, signer, super::chain::Kind::Revocation, cert_id)
}

/// SQL condition: the certificate row `certificates.id` is not revoked.
pub(super) const NOT_REVOKED: &str = "id NOT IN (SELECT cert_id FROM revocations)";

/// A revoked device certificate of `chip` for `public_key_hex`, if any (a key whose certificate
/// was revoked never gets another one).
pub(super) fn revoked_for_key(
    tx: &Transaction<'_>,
    chip: &str,
    public_key_hex: &str,
) -> Result<Option<(String, RevocationReason)>, RegistryError> {
    let row: Option<(String, String)> = tx
        .query_row(
            "SELECT c.serial, r.reason FROM certificates c JOIN revocations r ON r.cert_id = c.id
             WHERE c.chip_serial = ?1 AND c.kind = 'device' AND c.public_key = ?2
             ORDER BY c.id LIMIT 1",
            params![chip, public_key_hex],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(serial, reason)| Ok((serial, reason_from_sql(&reason)?)))
        .transpose()
}

impl Registry {
    /// Revokes the device certificate with this serial (upper- or lower-case hex) and records
    /// an audit row, in one transaction. Signer certificates are refused: they are the root's
    /// to revoke, and the CRL keystamp writes is the signer's.
    pub fn revoke(
        &mut self,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<RevokedCert, RegistryError> {
        let now = now_rfc3339();
        let tx = self.conn.write_transaction()?;
        let wanted = serial.trim().to_ascii_uppercase();
        let certificate = tx
            .query_row(
                &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = ?1"),
                [&wanted],
                cert_from_row,
            )
            .optional()?
            // Typed by the operator: escaped, so a stray control character cannot reach the
            // terminal through the error line.
            .ok_or_else(|| RegistryError::UnknownCertificate(wanted.escape_debug().to_string()))?;
        if certificate.kind != CertKind::Device {
            return Err(RegistryError::NotRevocable(certificate.serial));
        }
        if let Some(existing) = revocation_by_id(&tx, certificate.id)? {
            return Err(RegistryError::AlreadyRevoked {
                serial: certificate.serial,
                reason: existing.reason,
                revoked_at: existing.revoked_at,
            });
        }
        let signer = self.record_signer.as_deref();
        insert(&tx, signer, certificate.id, reason, &now)?;
        // Both the revocation and its audit entry are records (decision 0007).
        let detail = format!("certificate {} revoked: {reason}", certificate.serial);
        let entry = super::StepRecord {
            station: None,
            step: "revoke",
            outcome: Outcome::Ok,
            detail: &detail,
        };
        super::insert_audit(&tx, signer, certificate.chip_serial, &entry)?;
        tx.commit()?;
        Ok(RevokedCert {
            certificate,
            revocation: Revocation {
                reason,
                revoked_at: now,
            },
        })
    }

    /// The revocation of the certificate with this serial, if it is revoked.
    pub fn revocation(&self, serial: &str) -> Result<Option<Revocation>, RegistryError> {
        query_revocation(
            &self.conn,
            "SELECT r.reason, r.revoked_at FROM revocations r
             JOIN certificates c ON c.id = r.cert_id WHERE c.serial = ?1",
            serial.trim().to_ascii_uppercase(),
        )
    }

    /// Every revoked certificate, in revocation order (what a CRL lists).
    pub fn revoked_certificates(&self) -> Result<Vec<RevokedCert>, RegistryError> {
        let columns: Vec<String> = CERT_COLUMNS
            .split(',')
            .map(|c| format!("c.{}", c.trim()))
            .collect();
        let mut st = self.conn.prepare(&format!(
            "SELECT {}, r.reason, r.revoked_at FROM revocations r
             JOIN certificates c ON c.id = r.cert_id ORDER BY r.revoked_at, c.id",
            columns.join(", ")
        ))?;
        let rows = st.query_map((), |row| {
            let certificate = cert_from_row(row)?;
            let reason: String = row.get(12)?;
            Ok(RevokedCert {
                certificate,
                revocation: Revocation {
                    reason: reason_from_sql(&reason)?,
                    revoked_at: row.get(13)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Hands out the next CRL number (one more than any issued, starting at 1) and records the
    /// CRL it is for. Numbers are never reused, even when writing that CRL then fails.
    pub fn allocate_crl_number(
        &mut self,
        this_update: &str,
        next_update: &str,
        entries: usize,
    ) -> Result<CrlNumber, RegistryError> {
        let tx = self.conn.write_transaction()?;
        let last: i64 = tx.query_row("SELECT COALESCE(MAX(number), 0) FROM crls", (), |r| {
            r.get(0)
        })?;
        let number = last
            .checked_add(1)
            .ok_or(RegistryError::CrlNumberExhausted)?;
        tx.execute(
            "INSERT INTO crls (number, this_update, next_update, entries, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                number,
                this_update,
                next_update,
                i64::try_from(entries).unwrap_or(i64::MAX),
                now_rfc3339()
            ],
        )?;
        tx.commit()?;
        u64::try_from(number)
            .map(CrlNumber)
            .map_err(|_| RegistryError::CrlNumberExhausted)
    }

    /// Records the SHA-256 of the signed CRL with this number.
    pub fn record_crl_digest(
        &mut self,
        number: CrlNumber,
        sha256: &[u8; 32],
    ) -> Result<(), RegistryError> {
        let number = i64::try_from(number.0).map_err(|_| RegistryError::CrlNumberExhausted)?;
        self.conn.execute(
            "UPDATE crls SET sha256 = ?2 WHERE number = ?1",
            params![number, hex::encode_upper(sha256)],
        )?;
        Ok(())
    }

    /// Whether a chip's device certificate is revoked (for listings).
    pub fn is_revoked(&self, cert: &CertRecord) -> Result<bool, RegistryError> {
        Ok(revocation_by_id(&self.conn, cert.id)?.is_some())
    }

    /// The latest device certificate of a chip, revoked or not (for listings).
    pub fn latest_certificate(
        &self,
        chip: ChipSerial,
    ) -> Result<Option<CertRecord>, RegistryError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {CERT_COLUMNS} FROM certificates
                     WHERE chip_serial = ?1 AND kind = 'device' ORDER BY id DESC LIMIT 1"
                ),
                [chip.to_string()],
                cert_from_row,
            )
            .optional()?)
    }
}

/// The revocation of the certificate row `cert_id`, if revoked (in the caller's transaction).
pub(super) fn revocation_of(
    tx: &Transaction<'_>,
    cert_id: i64,
) -> Result<Option<Revocation>, RegistryError> {
    revocation_by_id(tx, cert_id)
}

fn revocation_by_id(conn: &Connection, cert_id: i64) -> Result<Option<Revocation>, RegistryError> {
    query_revocation(
        conn,
        "SELECT reason, revoked_at FROM revocations WHERE cert_id = ?1",
        cert_id,
    )
}

/// Runs a query for one `(reason, revoked_at)` row.
fn query_revocation(
    conn: &Connection,
    sql: &str,
    key: impl super::backend::ToValue,
) -> Result<Option<Revocation>, RegistryError> {
    let row: Option<(String, String)> = conn
        .query_row(sql, [key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(reason, revoked_at)| {
        Ok(Revocation {
            reason: reason_from_sql(&reason)?,
            revoked_at,
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CertStatus, IssueOutcome, IssueRequest};

    const CHIP: ChipSerial = ChipSerial([0x01, 0x23, 1, 2, 3, 4, 5, 6, 0xEE]);

    fn issue(reg: &mut Registry, serial: u8, key: u8) -> Result<IssueOutcome, RegistryError> {
        reg.begin_issue(&IssueRequest {
            kind: CertKind::Device,
            chip_serial: Some(CHIP),
            serial: &[0x40, serial],
            public_key: &[key; 64],
            subject_cn: "dev",
            der: b"\x30\x00",
            not_before: "2026-01-01T00:00:00Z",
            not_after: "2046-01-01T00:00:00Z",
        })
    }

    fn revoked_serials(reg: &Registry) -> Vec<(String, RevocationReason)> {
        reg.revoked_certificates()
            .expect("revoked")
            .into_iter()
            .map(|r| (r.certificate.serial, r.revocation.reason))
            .collect()
    }

    #[test]
    fn reasons_are_the_rfc5280_names_in_any_case() {
        assert_eq!(
            "keyCompromise".parse::<RevocationReason>(),
            Ok(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            "CACOMPROMISE".parse::<RevocationReason>(),
            Ok(RevocationReason::CaCompromise)
        );
        for r in RevocationReason::ALL {
            assert_eq!(r.as_str().parse::<RevocationReason>(), Ok(r));
        }
        // A hold can be lifted; a revocation here cannot.
        assert!("certificateHold".parse::<RevocationReason>().is_err());
        let e = "\u{1b}[2Jx".parse::<RevocationReason>().expect_err("bad");
        assert!(!e.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn superseding_revokes_in_the_same_transaction() {
        for (mut reg, _server) in
            crate::registry::testing::registries("superseding_revokes_in_the_same_transaction")
        {
            issue(&mut reg, 1, 1).expect("first");
            reg.mark_written("4001").expect("written");
            assert!(revoked_serials(&reg).is_empty());
            // The chip's key changed before verification: the first certificate may be on the
            // device, so it is revoked as well as superseded.
            issue(&mut reg, 2, 2).expect("new key");
            assert_eq!(
                revoked_serials(&reg),
                [("4001".to_string(), RevocationReason::Superseded)]
            );
            let first = reg.certificate("4001").expect("q").expect("first");
            assert_eq!(first.status, CertStatus::Superseded);
            // A failed begin_issue (duplicate serial) revokes nothing: same transaction.
            let before = revoked_serials(&reg);
            let e = issue(&mut reg, 2, 3).expect_err("duplicate serial");
            assert!(matches!(e, RegistryError::DuplicateSerial(_)), "{e}");
            assert_eq!(revoked_serials(&reg), before);
        }
    }

    #[test]
    fn revoke_records_reason_time_and_audit_and_refuses_twice() {
        for (mut reg, _server) in crate::registry::testing::registries(
            "revoke_records_reason_time_and_audit_and_refuses_twice",
        ) {
            issue(&mut reg, 1, 1).expect("issue");
            reg.mark_written("4001").expect("w");
            reg.mark_verified("4001").expect("v");
            let r = reg
                .revoke("4001", RevocationReason::CessationOfOperation)
                .expect("revoke");
            assert_eq!(r.certificate.serial, "4001");
            assert_eq!(
                reg.revocation("4001").expect("q"),
                Some(r.revocation.clone())
            );
            let log = reg.audit_log(Some(CHIP)).expect("log");
            assert!(
                log.iter()
                    .any(|a| a.step == "revoke" && a.detail.contains("cessationOfOperation")),
                "{log:?}"
            );
            let e = reg
                .revoke("4001", RevocationReason::KeyCompromise)
                .expect_err("twice");
            assert!(matches!(e, RegistryError::AlreadyRevoked { .. }), "{e}");
            assert_eq!(
                reg.revocation("4001").expect("q").map(|r| r.reason),
                Some(RevocationReason::CessationOfOperation)
            );
            let e = reg
                .revoke("\u{1b}]0;x\u{7}", RevocationReason::KeyCompromise)
                .expect_err("unknown");
            assert!(matches!(e, RegistryError::UnknownCertificate(_)), "{e}");
            assert!(!e.to_string().contains('\u{1b}'), "{e}");
        }
    }

    #[test]
    fn a_revoked_certificate_is_never_handed_out_again() {
        for (mut reg, _server) in
            crate::registry::testing::registries("a_revoked_certificate_is_never_handed_out_again")
        {
            issue(&mut reg, 1, 1).expect("issue");
            reg.mark_written("4001").expect("w");
            reg.mark_verified("4001").expect("v");
            reg.revoke("4001", RevocationReason::KeyCompromise)
                .expect("revoke");
            assert_eq!(reg.live_certificate(CHIP).expect("q"), None);
            // Same key again: refused, not reused.
            let e = issue(&mut reg, 2, 1).expect_err("revoked key");
            assert!(matches!(e, RegistryError::KeyRevoked { .. }), "{e}");
            // A new key gets a new certificate: the revoked verified one no longer blocks it.
            let out = issue(&mut reg, 3, 3).expect("new key");
            assert!(matches!(out, IssueOutcome::New(_)));
            assert_eq!(
                reg.latest_certificate(CHIP).expect("q").map(|c| c.serial),
                Some("4003".into())
            );
        }
    }

    #[test]
    fn a_certificate_revoked_mid_provisioning_goes_no_further() {
        for (mut reg, _server) in crate::registry::testing::registries(
            "a_certificate_revoked_mid_provisioning_goes_no_further",
        ) {
            issue(&mut reg, 1, 1).expect("issue");
            reg.revoke("4001", RevocationReason::KeyCompromise)
                .expect("revoke while pending");
            let e = reg.mark_written("4001").expect_err("revoked");
            assert!(matches!(e, RegistryError::Revoked { .. }), "{e}");
            let e = reg.mark_verified("4001").expect_err("revoked");
            assert!(matches!(e, RegistryError::Revoked { .. }), "{e}");
            assert_eq!(
                reg.certificate("4001").expect("q").map(|c| c.status),
                Some(CertStatus::Pending)
            );
        }
    }

    #[test]
    fn signer_certificates_are_not_revoked_here() {
        for (mut reg, _server) in
            crate::registry::testing::registries("signer_certificates_are_not_revoked_here")
        {
            reg.begin_issue(&IssueRequest {
                kind: CertKind::Signer,
                chip_serial: None,
                serial: &[0x40, 0xAB, 0xCD],
                public_key: &[9; 64],
                subject_cn: "signer ABCD",
                der: b"\x30\x00",
                not_before: "2026-01-01T00:00:00Z",
                not_after: "2056-01-01T00:00:00Z",
            })
            .expect("signer");
            let e = reg
                .revoke("40abcd", RevocationReason::KeyCompromise)
                .expect_err("signer");
            assert!(matches!(e, RegistryError::NotRevocable(_)), "{e}");
            assert!(revoked_serials(&reg).is_empty());
        }
    }

    #[test]
    fn crl_numbers_increase_and_are_never_reused() {
        for (mut reg, _server) in
            crate::registry::testing::registries("crl_numbers_increase_and_are_never_reused")
        {
            let t = "2026-01-01T00:00:00Z";
            let a = reg.allocate_crl_number(t, t, 0).expect("1");
            let b = reg.allocate_crl_number(t, t, 0).expect("2");
            assert_eq!((a, b), (CrlNumber(1), CrlNumber(2)));
            reg.record_crl_digest(b, &[0xAA; 32]).expect("digest");
            let digest: Option<String> = reg
                .conn
                .query_row("SELECT sha256 FROM crls WHERE number = 2", (), |r| r.get(0))
                .expect("row");
            assert_eq!(digest, Some("AA".repeat(32)));
        }
    }

    /// A registry written by schema version 1 (no revocations table) with a superseded
    /// certificate: opening it migrates and revokes that certificate.
    #[test]
    fn version_1_registries_get_their_superseded_certificates_revoked() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(super::super::SCHEMA_V1).expect("v1");
            conn.execute_batch(
                "INSERT INTO devices VALUES ('0123010203040506EE', 'issuing', 'dev', 't', 't');
                 INSERT INTO certificates (serial, chip_serial, kind, public_key, subject_cn,
                   der, not_before, not_after, status, created_at, updated_at) VALUES
                   ('4001', '0123010203040506EE', 'device', 'AA', 'dev', x'3000', 'a', 'b',
                    'superseded', 't0', '2026-03-04T05:06:07Z'),
                   ('4002', '0123010203040506EE', 'device', 'BB', 'dev', x'3000', 'a', 'b',
                    'pending', 't1', 't1');
                 PRAGMA user_version = 1;",
            )
            .expect("v1 rows");
        }
        let reg = Registry::open(&path).expect("migrate");
        assert_eq!(
            reg.schema_version().expect("v"),
            super::super::SCHEMA_VERSION
        );
        assert_eq!(
            reg.revocation("4001").expect("q"),
            Some(Revocation {
                reason: RevocationReason::Superseded,
                revoked_at: "2026-03-04T05:06:07Z".into(),
            })
        );
        assert_eq!(reg.revocation("4002").expect("q"), None);
    }
}
