//! The registry's record chain: every certificate issued, every status change of a certificate
//! and every audit entry is a *record* with a sequence number (one sequence over all of them,
//! without gaps), the hash of the record before it and the signer's signature, so that a row
//! edited, deleted, added or reordered behind keystamp's back is found by `keystamp registry
//! audit` ([`verify`]). docs/decisions/0007-registry-chain.md gives the reasons.
//!
//! # Canonical encoding, version 1
//!
//! A record's bytes are, in this order:
//!
//! * the 15 ASCII bytes `keystamp-record`, then one byte: the encoding version, `1`;
//! * one byte: the record kind — `1` chain start, `2` certificate, `3` certificate status
//!   change, `4` audit entry;
//! * the sequence number, 8 bytes big-endian;
//! * the kind's fields, in the order [`Kind`] lists them. An integer is 8 bytes big-endian
//!   (two's complement). Text and bytes are a 4-byte big-endian length then the bytes (text as
//!   UTF-8, exactly as stored). An absent value (SQL `NULL`) is the length `0xFFFF_FFFF` with
//!   no bytes.
//!
//! With `prev` the hash of the record before (32 zero bytes for the chain start), a record's
//! hash is `SHA-256(record ‖ prev)` and its signature is ECDSA P-256 with SHA-256 over the same
//! bytes `record ‖ prev` (so over that hash), in low-S form, stored as R‖S (64 bytes). Each row
//! stores its `seq`, `prev_hash` and `signature`; the registry's `meta` table keeps the head
//! (`chain_head`: sequence number and hash of the last record) so that appending needs no walk,
//! and so that a deleted tail shows up as a head the chain does not reach.
//!
//! Rows written before the registry had a chain keep no sequence number. The chain start
//! (table `chain_start`) counts them and holds the SHA-256 of their records (encoded as above
//! with sequence number 0, certificates by id with their status at the chain start appended,
//! then audit entries by id), so from then on they cannot change unnoticed either.

use std::fmt;
use std::path::Path;

use super::backend::{Connection, DbError, OptionalExt, Value, params};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::Generate;
use sha2::{Digest, Sha256};

use super::RegistryError;

/// The schema the chain adds: sequence number, previous hash and signature on certificates and
/// audit entries, certificate status changes, the chain start. A separate migration step so
/// that its number can change when other migrations land first.
pub(super) const SCHEMA_CHAIN: &str = "
ALTER TABLE certificates ADD COLUMN seq INTEGER;
ALTER TABLE certificates ADD COLUMN prev_hash BLOB;
ALTER TABLE certificates ADD COLUMN signature BLOB;
CREATE UNIQUE INDEX certificates_seq ON certificates(seq);
ALTER TABLE audit ADD COLUMN seq INTEGER;
ALTER TABLE audit ADD COLUMN prev_hash BLOB;
ALTER TABLE audit ADD COLUMN signature BLOB;
CREATE UNIQUE INDEX audit_seq ON audit(seq);
CREATE TABLE certificate_status (
    id             INTEGER PRIMARY KEY,
    certificate_id INTEGER NOT NULL REFERENCES certificates(id),
    from_status    TEXT NOT NULL,
    to_status      TEXT NOT NULL,
    time           TEXT NOT NULL,
    seq            INTEGER UNIQUE,
    prev_hash      BLOB,
    signature      BLOB
);
CREATE INDEX certificate_status_cert ON certificate_status(certificate_id);
CREATE TABLE chain_start (
    id                   INTEGER PRIMARY KEY,
    time                 TEXT NOT NULL,
    registry_id          TEXT,
    earlier_certificates INTEGER NOT NULL,
    earlier_audit        INTEGER NOT NULL,
    earlier_digest       BLOB NOT NULL,
    seq                  INTEGER UNIQUE,
    prev_hash            BLOB,
    signature            BLOB
);
";

/// The `meta` key of the chain head: `SEQ:HASH` (decimal, hex).
const META_CHAIN_HEAD: &str = "chain_head";

/// The first bytes of every record.
const MAGIC: &[u8; 15] = b"keystamp-record";
/// The canonical encoding's version.
pub const ENCODING_VERSION: u8 = 1;

/// Signs records: the project's signer ([`crate::pki::ca::Signer`]) in a project.
pub trait RecordSigner: Send {
    /// ECDSA P-256 over a SHA-256 digest (the record hash), low-S, R‖S.
    fn sign_record(&self, digest: &[u8; 32]) -> Result<[u8; 64], ChainError>;
}

impl RecordSigner for crate::pki::ca::Signer {
    fn sign_record(&self, digest: &[u8; 32]) -> Result<[u8; 64], ChainError> {
        self.sign_digest(digest)
            .map_err(|e| ChainError::Sign(e.to_string()))
    }
}

/// A throwaway record key, for registries that live only as long as the process (in-memory
/// registries, tests): their chain verifies against nothing a project holds.
pub struct EphemeralKey(SigningKey);

impl EphemeralKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, ChainError> {
        SigningKey::try_generate()
            .map(Self)
            .map_err(|e| ChainError::Sign(e.to_string()))
    }

    /// Its public key, X‖Y.
    pub fn public_key(&self) -> [u8; 64] {
        let point = self.0.verifying_key().to_sec1_point(false);
        let mut xy = [0u8; 64];
        xy.copy_from_slice(point.as_bytes().get(1..65).unwrap_or(&[0u8; 64]));
        xy
    }
}

impl RecordSigner for EphemeralKey {
    fn sign_record(&self, digest: &[u8; 32]) -> Result<[u8; 64], ChainError> {
        let sig: Signature = self
            .0
            .sign_prehash(digest)
            .map_err(|e| ChainError::Sign(e.to_string()))?;
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.normalize_s().to_bytes());
        Ok(out)
    }
}

/// Why a record could not be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// The registry has no signer to sign records with (a writing command that did not unlock
    /// the signer).
    NoSigner,
    /// Signing failed.
    Sign(String),
    /// The stored chain head is unreadable or missing while records exist.
    Head(String),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSigner => f.write_str(
                "registry records are signed by the signer, which this command did not unlock \
                 (nothing was recorded)",
            ),
            Self::Sign(e) => write!(f, "signing a registry record: {e}"),
            Self::Head(e) => write!(
                f,
                "the registry's record chain is damaged ({e}): nothing was recorded; run \
                 `keystamp registry audit`"
            ),
        }
    }
}

impl std::error::Error for ChainError {}

impl From<ChainError> for RegistryError {
    fn from(e: ChainError) -> Self {
        Self::Chain(e)
    }
}

/// The tables whose rows are records, with their kind byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `chain_start`: time, registry id, earlier certificates (integer), earlier audit entries
    /// (integer), earlier digest (bytes).
    ChainStart = 1,
    /// `certificates`: id (integer), serial, chip serial, kind, public key (text, hex as
    /// stored), subject CN, DER (bytes), not before, not after, created at.
    Certificate = 2,
    /// `certificate_status`: id (integer), certificate id (integer), from status, to status,
    /// time.
    Status = 3,
    /// `audit`: id (integer), time, station, chip serial, step, outcome, detail.
    Audit = 4,
}

impl Kind {
    /// The table holding records of this kind.
    pub fn table(self) -> &'static str {
        match self {
            Self::ChainStart => "chain_start",
            Self::Certificate => "certificates",
            Self::Status => "certificate_status",
            Self::Audit => "audit",
        }
    }

    /// The record's columns after its id, in canonical order.
    fn columns(self) -> &'static str {
        match self {
            Self::ChainStart => {
                "time, registry_id, earlier_certificates, earlier_audit, earlier_digest"
            }
            Self::Certificate => {
                "serial, chip_serial, kind, public_key, subject_cn, der, not_before, not_after, \
                 created_at"
            }
            Self::Status => "certificate_id, from_status, to_status, time",
            Self::Audit => "time, station, chip_serial, step, outcome, detail",
        }
    }

    /// Whether the row id is a field of the record (the chain start has one row).
    fn has_id(self) -> bool {
        self != Self::ChainStart
    }

    const ALL: [Kind; 4] = [
        Self::ChainStart,
        Self::Certificate,
        Self::Status,
        Self::Audit,
    ];
}

/// Appends the canonical form of one value.
fn put_value(out: &mut Vec<u8>, v: &Value) {
    let bytes: std::borrow::Cow<'_, [u8]> = match v {
        Value::Null => {
            out.extend_from_slice(&u32::MAX.to_be_bytes());
            return;
        }
        Value::Integer(i) => {
            out.extend_from_slice(&i.to_be_bytes());
            return;
        }
        // Not a type keystamp stores; encoded as its text so that it still hashes.
        Value::Real(r) => r.to_string().into_bytes().into(),
        Value::Text(t) => t.as_bytes().into(),
        Value::Blob(b) => b.as_slice().into(),
    };
    // Rows are bounded far below 4 GiB (SQLite's own limit is 1 GB); saturate regardless.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX - 1);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes);
}

/// The canonical record header.
fn header(kind: Kind, seq: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(ENCODING_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// Encodes a record from its field values (the row id first where the kind has one).
pub fn encode(kind: Kind, seq: i64, fields: &[Value]) -> Vec<u8> {
    let mut out = header(kind, seq);
    for v in fields {
        put_value(&mut out, v);
    }
    out
}

/// `SHA-256(record ‖ prev)`: the record's hash, and the digest its signature covers.
pub fn record_hash(record: &[u8], prev: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(record);
    h.update(prev);
    h.finalize().into()
}

/// The field values of one row of `kind` (id first where the kind has one), read as stored.
fn row_fields(conn: &Connection, kind: Kind, id: i64) -> Result<Vec<Value>, DbError> {
    let cols = kind.columns();
    let n = cols.split(',').count();
    conn.query_row(
        &format!("SELECT id, {cols} FROM {} WHERE id = ?1", kind.table()),
        [id],
        |r| {
            let mut v = Vec::with_capacity(n + 1);
            if kind.has_id() {
                v.push(r.get::<_, Value>(0)?);
            }
            for i in 1..=n {
                v.push(r.get::<_, Value>(i)?);
            }
            Ok(v)
        },
    )
}

/// The chain head (sequence number and hash), if the chain has started.
fn head(conn: &Connection) -> Result<Option<(i64, [u8; 32])>, ChainError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [META_CHAIN_HEAD],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| ChainError::Head(e.to_string()))?;
    let Some(text) = text else {
        return Ok(None);
    };
    parse_head(&text)
        .map(Some)
        .ok_or_else(|| ChainError::Head(format!("chain head {text:?} is not SEQ:HASH")))
}

fn parse_head(text: &str) -> Option<(i64, [u8; 32])> {
    let (seq, hash) = text.split_once(':')?;
    let seq = seq.parse().ok()?;
    let mut h = [0u8; 32];
    hex::decode_to_slice(hash, &mut h).ok()?;
    Some((seq, h))
}

/// Makes the row `id` of `kind` (already inserted, in the caller's transaction) the next
/// record: gives it the next sequence number and the previous hash, signs it, moves the head.
/// Starts the chain first if it has not started.
pub(super) fn append(
    conn: &Connection,
    signer: Option<&dyn RecordSigner>,
    kind: Kind,
    id: i64,
) -> Result<(), RegistryError> {
    let signer = signer.ok_or(ChainError::NoSigner)?;
    let (prev_seq, prev) = match head(conn)? {
        Some(h) => h,
        None => start(conn, signer, (kind, id))?,
    };
    seal(conn, signer, kind, id, prev_seq + 1, &prev)
}

/// Gives one row its sequence number, previous hash and signature; moves the head.
fn seal(
    conn: &Connection,
    signer: &dyn RecordSigner,
    kind: Kind,
    id: i64,
    seq: i64,
    prev: &[u8; 32],
) -> Result<(), RegistryError> {
    let record = encode(kind, seq, &row_fields(conn, kind, id)?);
    let hash = record_hash(&record, prev);
    let signature = signer.sign_record(&hash)?;
    conn.execute(
        &format!(
            "UPDATE {} SET seq = ?2, prev_hash = ?3, signature = ?4 WHERE id = ?1",
            kind.table()
        ),
        params![id, seq, prev.as_slice(), signature.as_slice()],
    )?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = ?2",
        [META_CHAIN_HEAD, &format!("{seq}:{}", hex::encode(hash))],
    )?;
    Ok(())
}

/// Starts the chain: the chain start record (seq 1) sealing the rows written before it.
/// `appending`: the row about to become the record after the start (not an earlier row).
fn start(
    conn: &Connection,
    signer: &dyn RecordSigner,
    appending: (Kind, i64),
) -> Result<(i64, [u8; 32]), RegistryError> {
    let earlier = earlier_rows(conn, &StatusAtStart::Column, Some(appending))?;
    let registry_id: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [super::META_REGISTRY_ID],
            |r| r.get(0),
        )
        .optional()?;
    let id = conn.insert_id(
        "INSERT INTO chain_start (time, registry_id, earlier_certificates, earlier_audit,
         earlier_digest) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            super::now_rfc3339(),
            registry_id,
            earlier.certificates,
            earlier.audit,
            earlier.digest.as_slice()
        ],
    )?;
    seal(conn, signer, Kind::ChainStart, id, 1, &[0u8; 32])?;
    Ok(head(conn)?.unwrap_or((1, [0u8; 32])))
}

/// Where the status at the chain start of an earlier certificate comes from.
enum StatusAtStart<'a> {
    /// Its `status` column (at the chain start itself).
    Column,
    /// The first status change recorded after the start, else the column (when verifying).
    FirstChange(&'a std::collections::HashMap<i64, String>),
}

/// The rows written before the chain: how many, and their digest.
struct Earlier {
    certificates: i64,
    audit: i64,
    digest: [u8; 32],
}

fn earlier_rows(
    conn: &Connection,
    status: &StatusAtStart<'_>,
    except: Option<(Kind, i64)>,
) -> Result<Earlier, RegistryError> {
    let mut h = Sha256::new();
    let mut certificates = 0;
    let mut audit = 0;
    for kind in [Kind::Certificate, Kind::Audit] {
        let ids: Vec<i64> = {
            let mut st = conn.prepare(&format!(
                "SELECT id FROM {} WHERE seq IS NULL ORDER BY id",
                kind.table()
            ))?;
            st.query_map((), |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for id in ids.into_iter().filter(|&id| except != Some((kind, id))) {
            let mut fields = row_fields(conn, kind, id)?;
            if kind == Kind::Certificate {
                certificates += 1;
                let column: Value =
                    conn.query_row("SELECT status FROM certificates WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })?;
                let at_start = match status {
                    StatusAtStart::FirstChange(first) => {
                        first.get(&id).map(|s| Value::Text(s.clone()))
                    }
                    StatusAtStart::Column => None,
                };
                fields.push(at_start.unwrap_or(column));
            } else {
                audit += 1;
            }
            h.update(encode(kind, 0, &fields));
        }
    }
    Ok(Earlier {
        certificates,
        audit,
        digest: h.finalize().into(),
    })
}

/// Changes a certificate's status (`from` → `to`, at `time`) in the caller's transaction and
/// records the change as the next record. Every status change goes through here (a change made
/// only in the `status` column is what `registry audit` reports).
pub(crate) fn change_status(
    conn: &Connection,
    signer: Option<&dyn RecordSigner>,
    certificate_id: i64,
    from: &str,
    to: &str,
    time: &str,
) -> Result<(), RegistryError> {
    conn.execute(
        "UPDATE certificates SET status = ?2, updated_at = ?3 WHERE id = ?1",
        params![certificate_id, to, time],
    )?;
    let id = conn.insert_id(
        "INSERT INTO certificate_status (certificate_id, from_status, to_status, time)
         VALUES (?1, ?2, ?3, ?4)",
        params![certificate_id, from, to, time],
    )?;
    append(conn, signer, Kind::Status, id)
}

/// A problem `registry audit` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The table of the bad row.
    pub table: &'static str,
    /// Its sequence number (`None`: a row outside the chain).
    pub seq: Option<i64>,
    /// Its row id.
    pub id: i64,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(
                f,
                "{} row id {} (seq {seq}): {}",
                self.table, self.id, self.problem
            ),
            None => write!(
                f,
                "{} row id {} (no seq): {}",
                self.table, self.id, self.problem
            ),
        }
    }
}

/// What `registry audit` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditReport {
    /// Every record checked out.
    Clean {
        /// Records checked (the chain's length).
        records: i64,
        /// The last record's hash.
        head: [u8; 32],
        /// Rows written before the chain started (certificates, audit entries), sealed by
        /// the chain start.
        earlier: (i64, i64),
    },
    /// The registry has rows but no chain yet (written before keystamp kept one).
    NotStarted {
        /// Certificates recorded.
        certificates: i64,
        /// Audit entries recorded.
        audit: i64,
    },
    /// Problems, the first (lowest sequence number; rows outside the chain last) first.
    Bad(Vec<Finding>),
}

/// One chained row, as read for verification.
struct Link {
    kind: Kind,
    id: i64,
    seq: i64,
    prev: Value,
    signature: Value,
}

fn bytes32(v: &Value) -> Option<[u8; 32]> {
    match v {
        Value::Blob(b) => b.as_slice().try_into().ok(),
        _ => None,
    }
}

/// Verifies the whole chain against the signer's public key `signer_xy`: sequence numbers
/// from 1 without gaps or repeats, each previous hash, each signature, each certificate's
/// status against its last recorded change, rows outside the chain, the chain start's seal of
/// earlier rows and the stored head.
pub fn verify(conn: &Connection, signer_xy: &[u8; 64]) -> Result<AuditReport, RegistryError> {
    let key = crate::pki::ca::verifying_key_from_xy(signer_xy)
        .map_err(|e| ChainError::Sign(e.to_string()))?;
    let mut links = Vec::new();
    for kind in Kind::ALL {
        let mut st = conn.prepare(&format!(
            "SELECT id, seq, prev_hash, signature FROM {} WHERE seq IS NOT NULL",
            kind.table()
        ))?;
        let rows = st.query_map((), |r| {
            Ok(Link {
                kind,
                id: r.get(0)?,
                seq: r.get::<_, Value>(1).map(|v| match v {
                    Value::Integer(i) => i,
                    _ => -1,
                })?,
                prev: r.get(2)?,
                signature: r.get(3)?,
            })
        })?;
        for l in rows {
            links.push(l?);
        }
    }
    let count = |table: &str| -> Result<i64, DbError> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), (), |r| r.get(0))
    };
    if links.is_empty() {
        let (certificates, audit) = (count("certificates")?, count("audit")?);
        if head(conn).ok().flatten().is_some() {
            return Ok(AuditReport::Bad(vec![Finding {
                table: "meta",
                seq: None,
                id: 0,
                problem: "the registry recorded a chain head, but no row carries a sequence \
                          number: the chain's rows were deleted or stripped"
                    .into(),
            }]));
        }
        return Ok(AuditReport::NotStarted {
            certificates,
            audit,
        });
    }
    links.sort_by_key(|l| (l.seq, l.kind, l.id));

    let mut findings = Vec::new();
    let mut prev = [0u8; 32];
    let mut expected = 1i64;
    // Certificates' status as the chain says, and the first recorded change of each.
    let mut status: std::collections::HashMap<i64, (i64, String)> = Default::default();
    let mut first_change: std::collections::HashMap<i64, String> = Default::default();
    let mut start: Option<(i64, Vec<Value>)> = None;
    for l in &links {
        let bad = |problem: String| Finding {
            table: l.kind.table(),
            seq: Some(l.seq),
            id: l.id,
            problem,
        };
        if l.seq != expected {
            findings.push(bad(if l.seq < expected {
                format!("sequence number {} repeats", l.seq)
            } else if expected == l.seq - 1 {
                format!("record seq {expected} is missing (deleted?)")
            } else {
                format!(
                    "records seq {expected} to {} are missing (deleted?)",
                    l.seq - 1
                )
            }));
            break;
        }
        if expected == 1 && l.kind != Kind::ChainStart {
            findings.push(bad(
                "the chain does not begin with its chain start record".into()
            ));
            break;
        }
        if bytes32(&l.prev) != Some(prev) {
            findings.push(bad(format!(
                "its previous hash is not the hash of record seq {} (rows reordered or \
                 replaced?)",
                l.seq - 1
            )));
            break;
        }
        let fields = row_fields(conn, l.kind, l.id)?;
        let record = encode(l.kind, l.seq, &fields);
        let hash = record_hash(&record, &prev);
        let sig = match &l.signature {
            Value::Blob(b) => Signature::from_slice(b).ok(),
            _ => None,
        };
        if sig.is_none_or(|s| key.verify_prehash(&hash, &s).is_err()) {
            findings.push(bad(
                "its signature does not verify with the signer certificate: the row was \
                 edited, or signed by another key"
                    .into(),
            ));
            break;
        }
        match l.kind {
            Kind::ChainStart => start = Some((l.seq, fields)),
            Kind::Certificate => {
                status.insert(l.id, (l.seq, "pending".into()));
            }
            Kind::Status => {
                let cert = match fields.get(1) {
                    Some(Value::Integer(i)) => *i,
                    _ => -1,
                };
                let text = |i: usize| match fields.get(i) {
                    Some(Value::Text(t)) => t.clone(),
                    _ => String::new(),
                };
                let (from, to) = (text(2), text(3));
                match status.get_mut(&cert) {
                    Some((_, now)) if *now == from => *now = to,
                    Some((_, now)) => {
                        findings.push(bad(format!(
                            "changes certificate id {cert} from {from}, but it was {now}"
                        )));
                        break;
                    }
                    None => {
                        first_change.entry(cert).or_insert(from);
                    }
                }
            }
            Kind::Audit => {}
        }
        prev = hash;
        expected += 1;
    }
    let checked = expected - 1;
    // A broken walk names the first bad record; what follows from it would only repeat it.
    let walked = findings.is_empty();

    // Certificates: the status column against the chain's.
    {
        let mut st = conn.prepare("SELECT id, seq, status FROM certificates ORDER BY id")?;
        let rows = st.query_map((), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Value>(2)?,
            ))
        })?;
        for row in rows {
            let (id, seq, column) = row?;
            let column = match column {
                Value::Text(t) => t,
                other => format!("{other:?}"),
            };
            if !walked {
                break;
            }
            if let Some((cert_seq, chained)) = status.get(&id)
                && *chained != column
            {
                findings.push(Finding {
                    table: "certificates",
                    seq: Some(*cert_seq),
                    id,
                    problem: format!(
                        "its status column says {column}, its recorded changes say {chained}"
                    ),
                });
            } else if seq.is_some() && !status.contains_key(&id) && findings.is_empty() {
                // A sequence number the walk did not reach (it stopped early otherwise).
                findings.push(Finding {
                    table: "certificates",
                    seq,
                    id,
                    problem: "not reached by the chain".into(),
                });
            }
        }
    }
    // Rows outside the chain: allowed only before the chain start, which seals them.
    if let Some((seq, fields)) = start.as_ref().filter(|_| walked) {
        let earlier = earlier_rows(conn, &StatusAtStart::FirstChange(&first_change), None)?;
        let sealed = (fields.get(2), fields.get(3), fields.get(4));
        let ok = matches!(sealed,
            (Some(Value::Integer(c)), Some(Value::Integer(a)), Some(Value::Blob(d)))
            if *c == earlier.certificates && *a == earlier.audit && d.as_slice() == earlier.digest);
        if !ok {
            // Name the first row outside the chain: added after the start, or a sealed one
            // changed.
            let first = first_unchained(conn)?;
            findings.push(match first {
                Some((table, id)) => Finding {
                    table,
                    seq: None,
                    id,
                    problem: format!(
                        "rows outside the chain differ from what the chain start (seq {seq}) \
                         sealed: {} certificate(s) and {} audit entr(ies) now, a row added, \
                         edited or deleted",
                        earlier.certificates, earlier.audit
                    ),
                },
                None => Finding {
                    table: "chain_start",
                    seq: Some(*seq),
                    id: 1,
                    problem: "rows it sealed (written before the chain) were deleted".into(),
                },
            });
        }
    }
    if findings.is_empty() {
        match head(conn) {
            Ok(Some((seq, hash))) if seq == checked && hash == prev => {}
            Ok(Some((seq, _))) if seq > checked => findings.push(Finding {
                table: "meta",
                seq: Some(checked + 1),
                id: 0,
                problem: format!(
                    "the chain ends at seq {checked}, but seq {seq} was recorded: the last \
                     record(s) were deleted"
                ),
            }),
            other => findings.push(Finding {
                table: "meta",
                seq: None,
                id: 0,
                problem: format!(
                    "the recorded chain head ({}) is not the chain's last record (seq {checked})",
                    match other {
                        Ok(Some((s, _))) => format!("seq {s}"),
                        Ok(None) => "missing".into(),
                        Err(e) => e.to_string(),
                    }
                ),
            }),
        }
    }
    if findings.is_empty() {
        let earlier = start
            .as_ref()
            .and_then(|(_, f)| match (f.get(2), f.get(3)) {
                (Some(Value::Integer(c)), Some(Value::Integer(a))) => Some((*c, *a)),
                _ => None,
            })
            .unwrap_or((0, 0));
        return Ok(AuditReport::Clean {
            records: checked,
            head: prev,
            earlier,
        });
    }
    findings.sort_by_key(|f| (f.seq.is_none(), f.seq));
    Ok(AuditReport::Bad(findings))
}

/// The first row (certificates, then audit) without a sequence number.
fn first_unchained(conn: &Connection) -> Result<Option<(&'static str, i64)>, DbError> {
    for kind in [Kind::Certificate, Kind::Audit] {
        let id: Option<i64> = conn
            .query_row(
                &format!(
                    "SELECT id FROM {} WHERE seq IS NULL ORDER BY id LIMIT 1",
                    kind.table()
                ),
                (),
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = id {
            return Ok(Some((kind.table(), id)));
        }
    }
    Ok(None)
}

/// Opens `path` read-only and verifies its chain (for tests and tools that hold no project).
pub fn verify_file(path: &Path, signer_xy: &[u8; 64]) -> Result<AuditReport, RegistryError> {
    let reg = super::Registry::open_read_only(path)?;
    verify(&reg.conn, signer_xy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CertKind, ChipSerial, IssueRequest, Outcome, Registry};

    const CHIP: ChipSerial = ChipSerial([0x01, 0x23, 1, 2, 3, 4, 5, 6, 0xEE]);

    /// A file registry with a chain: chain start, two certificates (the first superseded),
    /// status changes and audit entries. Returns the key's public half.
    fn populated(path: &Path) -> [u8; 64] {
        let key = EphemeralKey::generate().expect("key");
        let xy = key.public_key();
        let mut reg = Registry::open(path).expect("open");
        reg.set_record_signer(Box::new(key));
        for (n, pk) in [(1u8, [1u8; 64]), (2, [2u8; 64])] {
            reg.begin_issue(&IssueRequest {
                kind: CertKind::Device,
                chip_serial: Some(CHIP),
                serial: &[0x40, n],
                public_key: &pk,
                subject_cn: "dev",
                der: b"\x30\x00",
                not_before: "2026-01-01T00:00:00Z",
                not_after: "2046-01-01T00:00:00Z",
            })
            .expect("issue");
            reg.audit(Some("st1"), Some(CHIP), "issue", Outcome::Ok, "one")
                .expect("audit");
            reg.mark_written(&format!("40{n:02X}")).expect("written");
            reg.audit(Some("st1"), Some(CHIP), "certificates", Outcome::Ok, "two")
                .expect("audit");
        }
        reg.mark_verified("4002").expect("verified");
        reg.audit(Some("st1"), Some(CHIP), "done", Outcome::Ok, "")
            .expect("audit");
        xy
    }

    /// Changes the database with the sqlite3 CLI when there is one, else through rusqlite:
    /// either way not through keystamp's code.
    fn tamper(path: &Path, sql: &str) {
        let cli = std::process::Command::new("sqlite3")
            .arg(path)
            .arg(sql)
            .status();
        if !matches!(cli, Ok(s) if s.success()) {
            rusqlite::Connection::open(path)
                .expect("open")
                .execute_batch(sql)
                .expect("tamper");
        }
    }

    fn first(report: AuditReport) -> Finding {
        match report {
            AuditReport::Bad(f) => f.into_iter().next().expect("a finding"),
            other => panic!("expected a finding, got {other:?}"),
        }
    }

    fn seq_of(path: &Path, table: &str, where_: &str) -> i64 {
        rusqlite::Connection::open(path)
            .expect("open")
            .query_row(
                &format!("SELECT seq FROM {table} WHERE {where_}"),
                (),
                |r| r.get(0),
            )
            .expect("seq")
    }

    #[test]
    fn an_untampered_chain_audits_clean_to_its_head() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let xy = populated(&path);
        // 1 start + 2 certificates + 5 audit + (issued, superseded, issued, verified).
        match verify_file(&path, &xy).expect("verify") {
            AuditReport::Clean { records, head, .. } => {
                assert_eq!(records, 12);
                let meta: String = rusqlite::Connection::open(&path)
                    .expect("open")
                    .query_row("SELECT value FROM meta WHERE key = 'chain_head'", (), |r| {
                        r.get(0)
                    })
                    .expect("head");
                assert_eq!(meta, format!("12:{}", hex::encode(head)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_edited_audit_row_is_the_first_bad_row() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let xy = populated(&path);
        let seq = seq_of(&path, "audit", "detail = 'two' ORDER BY id LIMIT 1");
        tamper(
            &path,
            &format!("UPDATE audit SET outcome = 'failed' WHERE seq = {seq};"),
        );
        let f = first(verify_file(&path, &xy).expect("verify"));
        assert_eq!((f.table, f.seq), ("audit", Some(seq)), "{f}");
        assert!(f.problem.contains("signature"), "{f}");
    }

    #[test]
    fn an_edited_status_column_is_reported_on_its_certificate() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let xy = populated(&path);
        // The superseded certificate made live again.
        tamper(
            &path,
            "UPDATE certificates SET status = 'verified' WHERE serial = '4001';",
        );
        let seq = seq_of(&path, "certificates", "serial = '4001'");
        let f = first(verify_file(&path, &xy).expect("verify"));
        assert_eq!((f.table, f.seq), ("certificates", Some(seq)), "{f}");
        assert!(f.problem.contains("superseded"), "{f}");
    }

    #[test]
    fn a_deleted_row_is_a_gap_named_at_the_next_record() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let xy = populated(&path);
        let seq = seq_of(&path, "audit", "detail = 'one' ORDER BY id LIMIT 1");
        tamper(&path, &format!("DELETE FROM audit WHERE seq = {seq};"));
        let f = first(verify_file(&path, &xy).expect("verify"));
        assert_eq!(f.seq, Some(seq + 1), "{f}");
        assert!(f.problem.contains(&format!("seq {seq} is missing")), "{f}");
    }

    #[test]
    fn a_deleted_last_row_is_reported_against_the_recorded_head() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let xy = populated(&path);
        tamper(&path, "DELETE FROM audit WHERE seq = 12;");
        let f = first(verify_file(&path, &xy).expect("verify"));
        assert_eq!((f.table, f.seq), ("meta", Some(12)), "{f}");
    }

    #[test]
    fn two_rows_reordered_are_reported_at_the_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let xy = populated(&path);
        let a = seq_of(&path, "audit", "detail = 'one' ORDER BY id LIMIT 1");
        let b = seq_of(&path, "audit", "detail = 'two' ORDER BY id LIMIT 1");
        // Swap their places in the sequence, keeping each row's hash and signature.
        tamper(
            &path,
            &format!(
                "UPDATE audit SET seq = -1 WHERE seq = {a}; \
                 UPDATE audit SET seq = {a} WHERE seq = {b}; \
                 UPDATE audit SET seq = {b} WHERE seq = -1;"
            ),
        );
        let f = first(verify_file(&path, &xy).expect("verify"));
        assert_eq!((f.table, f.seq), ("audit", Some(a.min(b))), "{f}");
    }

    #[test]
    fn records_signed_by_another_key_are_reported() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        populated(&path);
        let other = EphemeralKey::generate().expect("key").public_key();
        let f = first(verify_file(&path, &other).expect("verify"));
        assert_eq!((f.table, f.seq), ("chain_start", Some(1)), "{f}");
        assert!(f.problem.contains("another key"), "{f}");
    }

    #[test]
    fn a_row_added_outside_the_chain_is_reported() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let xy = populated(&path);
        tamper(
            &path,
            "INSERT INTO audit (time, station, chip_serial, step, outcome, detail) \
             VALUES ('2026-01-01T00:00:00Z', 'st1', NULL, 'issue', 'ok', 'forged');",
        );
        let f = first(verify_file(&path, &xy).expect("verify"));
        assert_eq!((f.table, f.seq), ("audit", None), "{f}");
    }

    /// A registry written before the chain: audit says so; the next record starts the chain
    /// and seals the earlier rows, whose later edit is reported.
    #[test]
    fn earlier_rows_are_sealed_by_the_chain_start() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let key = EphemeralKey::generate().expect("key");
        let xy = key.public_key();
        {
            let reg = Registry::open(&path).expect("open");
            reg.conn
                .execute_batch(
                    "INSERT INTO audit (time, station, chip_serial, step, outcome, detail) \
                     VALUES ('2025-01-01T00:00:00Z', 'st1', NULL, 'probe', 'ok', 'old');",
                )
                .expect("old row");
        }
        assert_eq!(
            verify_file(&path, &xy).expect("verify"),
            AuditReport::NotStarted {
                certificates: 0,
                audit: 1
            }
        );
        let mut reg = Registry::open(&path).expect("open");
        reg.set_record_signer(Box::new(key));
        reg.audit(None, None, "run", Outcome::Ok, "new").expect("a");
        drop(reg);
        assert!(matches!(
            verify_file(&path, &xy).expect("verify"),
            AuditReport::Clean {
                records: 2,
                earlier: (0, 1),
                ..
            }
        ));
        tamper(
            &path,
            "UPDATE audit SET detail = 'edited' WHERE seq IS NULL;",
        );
        let f = first(verify_file(&path, &xy).expect("verify"));
        assert_eq!((f.table, f.seq), ("audit", None), "{f}");
    }

    /// The encoding as docs/decisions/0007 writes it, byte by byte.
    #[test]
    fn canonical_encoding_is_the_documented_one() {
        let got = encode(
            Kind::Audit,
            258,
            &[
                Value::Integer(7),
                Value::Text("t".into()),
                Value::Null,
                Value::Blob(vec![0xAB, 0xCD]),
            ],
        );
        let mut want = b"keystamp-record".to_vec();
        want.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend_from_slice(&[0, 0, 0, 1, b't']);
        want.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        want.extend_from_slice(&[0, 0, 0, 2, 0xAB, 0xCD]);
        assert_eq!(got, want);
        let h: [u8; 32] = Sha256::digest([want.as_slice(), &[0u8; 32]].concat()).into();
        assert_eq!(record_hash(&got, &[0u8; 32]), h);
    }

    #[test]
    fn a_registry_without_a_record_signer_refuses_to_record() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::open(&dir.path().join("r.sqlite")).expect("open");
        let e = reg
            .audit(None, None, "run", Outcome::Ok, "x")
            .expect_err("no signer");
        assert!(
            matches!(e, RegistryError::Chain(ChainError::NoSigner)),
            "{e}"
        );
        assert!(reg.audit_log(None).expect("log").is_empty());
    }
}
