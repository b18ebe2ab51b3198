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
//!   change, `4` audit entry, `5` revocation;
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
//!
//! # Signer keys
//!
//! Each row also stores `signer_key`: the id of the key that signed it, upper-case hex
//! SHA-256 of the key's uncompressed point (`04 ‖ X ‖ Y`). It is not part of the signed bytes:
//! it only says which signer certificate to verify the signature with, and naming another key
//! makes the signature fail. A project whose signer changed (`keystamp ca signer-to-token`, a
//! new signer certificate) so has records signed by several keys; [`verify`] checks each record
//! with the key it names among the [`SignerSet`] (signer certificates that chain to the root),
//! and refuses a record signed by a key that an earlier record's key replaced. Rows written
//! before keys were named (`signer_key` NULL) are checked against every trusted key.

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

/// Schema version 7: revocations become records, and every record names the key that signed it
/// (signer rotation).
pub(super) const SCHEMA_SIGNERS: &str = "
ALTER TABLE revocations ADD COLUMN seq INTEGER;
ALTER TABLE revocations ADD COLUMN prev_hash BLOB;
ALTER TABLE revocations ADD COLUMN signature BLOB;
CREATE UNIQUE INDEX revocations_seq ON revocations(seq);
ALTER TABLE chain_start ADD COLUMN signer_key TEXT;
ALTER TABLE certificates ADD COLUMN signer_key TEXT;
ALTER TABLE certificate_status ADD COLUMN signer_key TEXT;
ALTER TABLE audit ADD COLUMN signer_key TEXT;
ALTER TABLE revocations ADD COLUMN signer_key TEXT;
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

    /// The signing key's public half, X‖Y: its [`key_id`] is stored with each record.
    fn record_key(&self) -> Result<[u8; 64], ChainError>;
}

impl RecordSigner for crate::pki::ca::Signer {
    fn sign_record(&self, digest: &[u8; 32]) -> Result<[u8; 64], ChainError> {
        self.sign_digest(digest)
            .map_err(|e| ChainError::Sign(e.to_string()))
    }

    fn record_key(&self) -> Result<[u8; 64], ChainError> {
        self.certs()
            .signer_public_key()
            .map_err(|e| ChainError::Sign(e.to_string()))
    }
}

/// The id of a signer key (X‖Y) as records store it: upper-case hex SHA-256 of `04 ‖ X ‖ Y`.
pub fn key_id(xy: &[u8; 64]) -> String {
    let mut h = Sha256::new();
    h.update([4u8]);
    h.update(xy);
    hex::encode_upper(h.finalize())
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
    fn record_key(&self) -> Result<[u8; 64], ChainError> {
        Ok(self.public_key())
    }

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
    /// `revocations`: certificate id (integer, the row's id), reason, revoked at.
    Revocation = 5,
}

impl Kind {
    /// The table holding records of this kind.
    pub fn table(self) -> &'static str {
        match self {
            Self::ChainStart => "chain_start",
            Self::Certificate => "certificates",
            Self::Status => "certificate_status",
            Self::Audit => "audit",
            Self::Revocation => "revocations",
        }
    }

    /// The table's row id column.
    fn id_column(self) -> &'static str {
        match self {
            Self::Revocation => "cert_id",
            _ => "id",
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
            Self::Revocation => "reason, revoked_at",
        }
    }

    /// Whether the row id is a field of the record (the chain start has one row).
    fn has_id(self) -> bool {
        self != Self::ChainStart
    }

    const ALL: [Kind; 5] = [
        Self::ChainStart,
        Self::Certificate,
        Self::Status,
        Self::Audit,
        Self::Revocation,
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
        &format!(
            "SELECT {id}, {cols} FROM {} WHERE {id} = ?1",
            kind.table(),
            id = kind.id_column()
        ),
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
    let key = key_id(&signer.record_key()?);
    conn.execute(
        &format!(
            "UPDATE {} SET seq = ?2, prev_hash = ?3, signature = ?4, signer_key = ?5 \
             WHERE {} = ?1",
            kind.table(),
            kind.id_column()
        ),
        params![id, seq, prev.as_slice(), signature.as_slice(), key],
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
    /// The key id the row names (`None`: written before keys were named).
    signer_key: Option<String>,
}

/// The keys whose records `registry audit` accepts: every signer certificate of the project
/// that chains to the root ([`SignerSet::trust`]), and for messages the ones that do not
/// ([`SignerSet::distrust`]).
#[derive(Default)]
pub struct SignerSet {
    trusted: Vec<(String, p256::ecdsa::VerifyingKey)>,
    untrusted: Vec<(String, String)>,
}

impl SignerSet {
    /// A set of one trusted key (X‖Y).
    pub fn single(xy: &[u8; 64]) -> Result<Self, RegistryError> {
        let mut set = Self::default();
        set.trust(xy)?;
        Ok(set)
    }

    /// Trusts records signed by `xy` (a signer certificate's key that chains to the root).
    pub fn trust(&mut self, xy: &[u8; 64]) -> Result<(), RegistryError> {
        let id = key_id(xy);
        if self.trusted.iter().any(|(k, _)| *k == id) {
            return Ok(());
        }
        let key = crate::pki::ca::verifying_key_from_xy(xy)
            .map_err(|e| ChainError::Sign(e.to_string()))?;
        self.untrusted.retain(|(k, _)| *k != id);
        self.trusted.push((id, key));
        Ok(())
    }

    /// Names a key (X‖Y) whose records are refused, and `why` (e.g. its certificate does not
    /// chain to the root). A key trusted already stays trusted.
    pub fn distrust(&mut self, xy: &[u8; 64], why: &str) {
        let id = key_id(xy);
        if !self.trusted.iter().any(|(k, _)| *k == id)
            && !self.untrusted.iter().any(|(k, _)| *k == id)
        {
            self.untrusted.push((id, why.to_string()));
        }
    }

    /// How many keys are trusted.
    pub fn trusted_count(&self) -> usize {
        self.trusted.len()
    }

    /// Which trusted key (index) verifies `signature` over `hash`: the one `named`, or with no
    /// name any. `Err`: why none does.
    fn verifying(
        &self,
        named: Option<&str>,
        hash: &[u8; 32],
        signature: &Value,
    ) -> Result<usize, String> {
        let sig = match signature {
            Value::Blob(b) => Signature::from_slice(b).ok(),
            _ => None,
        };
        let verifies = |i: &usize| {
            let key = &self.trusted[*i].1;
            sig.is_some_and(|s| key.verify_prehash(hash, &s).is_ok())
        };
        let edited = "its signature does not verify with the signer certificate: the row was \
                      edited, or signed by another key";
        match named {
            Some(id) => match self.trusted.iter().position(|(k, _)| k == id) {
                Some(i) if verifies(&i) => Ok(i),
                Some(_) => Err(edited.into()),
                None => Err(match self.untrusted.iter().find(|(k, _)| k == id) {
                    Some((_, why)) => format!("it is signed by signer key {id}, which {why}"),
                    None => format!(
                        "it is signed by signer key {id}, which no signer certificate of this \
                         project holds"
                    ),
                }),
            },
            None => (0..self.trusted.len())
                .find(verifies)
                .ok_or_else(|| edited.into()),
        }
    }
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
pub fn verify(conn: &Connection, signers: &SignerSet) -> Result<AuditReport, RegistryError> {
    let mut links = Vec::new();
    for kind in Kind::ALL {
        let mut st = conn.prepare(&format!(
            "SELECT {}, seq, prev_hash, signature, signer_key FROM {} WHERE seq IS NOT NULL",
            kind.id_column(),
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
                signer_key: r.get::<_, Value>(4).map(|v| match v {
                    Value::Text(t) => Some(t),
                    _ => None,
                })?,
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
    let mut current_signer: Option<usize> = None;
    let mut retired: Vec<(usize, i64)> = Vec::new();
    let mut revoked_in_chain: std::collections::HashSet<i64> = Default::default();
    let mut revoke_entries: Vec<(i64, i64, String)> = Vec::new();
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
        let signed_by = match signers.verifying(l.signer_key.as_deref(), &hash, &l.signature) {
            Ok(i) => i,
            Err(problem) => {
                findings.push(bad(problem));
                break;
            }
        };
        // A signer, once replaced in the chain, signs nothing after: its retired key (a
        // leftover signer.key.retired) cannot add records.
        if current_signer != Some(signed_by) {
            if let Some(&(_, replaced_at)) = retired.iter().find(|(k, _)| *k == signed_by) {
                findings.push(bad(format!(
                    "it is signed by signer key {}, which the chain replaced at seq \
                     {replaced_at}: a retired signer signs no later record",
                    signers.trusted[signed_by].0
                )));
                break;
            }
            if let Some(old) = current_signer {
                retired.push((old, l.seq));
            }
            current_signer = Some(signed_by);
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
            Kind::Audit => {
                // `registry revoke` writes an audit entry naming what it revoked: the
                // revocation row must exist (checked below).
                if let (Some(Value::Text(step)), Some(Value::Text(detail))) =
                    (fields.get(4), fields.get(6))
                    && step == "revoke"
                {
                    revoke_entries.push((l.seq, l.id, detail.clone()));
                }
            }
            Kind::Revocation => {
                revoked_in_chain.insert(l.id);
            }
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
    if walked {
        check_revocations(conn, &revoke_entries, &mut findings)?;
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

/// Revocations against what the chain says about them. Revocation rows written before they
/// were records (schema 7) carry no sequence number: each must be accounted for by a record (a
/// superseded certificate, or a `revoke` audit entry naming it). And whatever a record says
/// was revoked must still be: a superseded device certificate has its revocation row, a
/// `revoke` audit entry's certificate its row with that reason.
fn check_revocations(
    conn: &Connection,
    revoke_entries: &[(i64, i64, String)],
    findings: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let revoked: Vec<(i64, Option<i64>, String, String, String)> = {
        let mut st = conn.prepare(
            "SELECT r.cert_id, r.seq, r.reason, COALESCE(c.serial, ''), COALESCE(c.status, '')
             FROM revocations r LEFT JOIN certificates c ON c.id = r.cert_id ORDER BY r.cert_id",
        )?;
        st.query_map((), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let entry_text = |serial: &str, reason: &str| format!("certificate {serial} revoked: {reason}");
    for (cert_id, seq, reason, serial, status) in &revoked {
        let by_entry = revoke_entries
            .iter()
            .any(|(_, _, d)| *d == entry_text(serial, reason));
        let by_supersede = reason == "superseded" && status == "superseded";
        if seq.is_none() && !by_entry && !by_supersede {
            findings.push(Finding {
                table: "revocations",
                seq: None,
                id: *cert_id,
                problem: format!(
                    "revokes certificate {serial} ({reason}) outside the chain, and no record \
                     accounts for it: a row added or edited"
                ),
            });
        }
    }
    let superseded: Vec<(i64, Option<i64>, String)> = {
        let mut st = conn.prepare(
            "SELECT id, seq, serial FROM certificates WHERE kind = 'device'
             AND status = 'superseded' AND id NOT IN (SELECT cert_id FROM revocations)
             ORDER BY id",
        )?;
        st.query_map((), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    for (id, seq, serial) in superseded {
        findings.push(Finding {
            table: "certificates",
            seq,
            id,
            problem: format!(
                "certificate {serial} is superseded but its revocation row is missing (deleted?)"
            ),
        });
    }
    for (seq, id, detail) in revoke_entries {
        if !revoked
            .iter()
            .any(|(_, _, reason, serial, _)| *detail == entry_text(serial, reason))
        {
            findings.push(Finding {
                table: "audit",
                seq: Some(*seq),
                id: *id,
                problem: format!(
                    "records \"{detail}\", but that revocation row is missing or changed \
                     (deleted?)"
                ),
            });
        }
    }
    Ok(())
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
    verify(&reg.conn, &SignerSet::single(signer_xy)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CertKind, ChipSerial, IssueRequest, Outcome, Registry};
    use std::path::PathBuf;

    const CHIP: ChipSerial = ChipSerial([0x01, 0x23, 1, 2, 3, 4, 5, 6, 0xEE]);

    /// A registry with a chain: chain start, two certificates (the first superseded),
    /// status changes and audit entries. Returns the key's public half.
    fn populate(mut reg: Registry) -> [u8; 64] {
        let key = EphemeralKey::generate().expect("key");
        let xy = key.public_key();
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

    /// [`populate`] in a new file registry at `path`.
    fn populated(path: &Path) -> [u8; 64] {
        populate(Registry::open(path).expect("open"))
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

    /// Where a tamper test's registry lives. The tampering and the reads that find the rows
    /// to tamper with go around keystamp's code: the sqlite3 CLI or rusqlite for a file,
    /// plain SQL through the `postgres` client for a PostgreSQL database.
    enum Store {
        File(PathBuf),
        Postgres(String),
    }

    /// A fresh, empty registry on each backend: a file in `dir`, and a migrated database in
    /// the shared throwaway cluster when the server is installed (else the printed reason
    /// it is skipped). The cluster handle keeps the server alive for the test.
    fn stores(
        test: &str,
        dir: &Path,
    ) -> (
        Vec<Store>,
        Option<std::sync::Arc<super::super::pg_cluster::PgCluster>>,
    ) {
        let mut all = vec![Store::File(dir.join("r.sqlite"))];
        let cluster = super::super::pg_cluster::skip_or_fail(&format!("{test} on PostgreSQL"));
        if let Some(c) = &cluster {
            let url = c.new_database().expect("database");
            Registry::migrate_postgres(&url).expect("migrate");
            all.push(Store::Postgres(url));
        }
        (all, cluster)
    }

    impl Store {
        fn open(&self) -> Registry {
            match self {
                Self::File(path) => Registry::open(path).expect("open"),
                Self::Postgres(url) => Registry::open_postgres(url).expect("open"),
            }
        }

        fn name(&self) -> &'static str {
            match self {
                Self::File(_) => "SQLite",
                Self::Postgres(_) => "PostgreSQL",
            }
        }

        fn client(url: &str) -> postgres::Client {
            postgres::Client::connect(url, postgres::NoTls).expect("connect")
        }

        fn tamper(&self, sql: &str) {
            match self {
                Self::File(path) => tamper(path, sql),
                Self::Postgres(url) => Self::client(url).batch_execute(sql).expect("tamper"),
            }
        }

        /// One text value (`CAST(… AS TEXT)` reads the same on both engines).
        fn text(&self, sql: &str) -> String {
            match self {
                Self::File(path) => rusqlite::Connection::open(path)
                    .expect("open")
                    .query_row(sql, (), |r| r.get(0))
                    .expect("query"),
                Self::Postgres(url) => Self::client(url).query_one(sql, &[]).expect("query").get(0),
            }
        }

        fn seq_of(&self, table: &str, where_: &str) -> i64 {
            self.text(&format!(
                "SELECT CAST(seq AS TEXT) FROM {table} WHERE {where_}"
            ))
            .parse()
            .expect("seq")
        }

        fn verify(&self, xy: &[u8; 64]) -> AuditReport {
            let reg = match self {
                Self::File(path) => Registry::open_read_only(path).expect("open"),
                Self::Postgres(_) => self.open(),
            };
            verify(&reg.conn, &SignerSet::single(xy).expect("signer")).expect("verify")
        }
    }

    /// Runs `check` on a fresh registry of each backend.
    fn on_each_backend(test: &str, check: impl Fn(&Store)) {
        let dir = tempfile::tempdir().expect("tmp");
        let (stores, _cluster) = stores(test, dir.path());
        for store in &stores {
            eprintln!("{test}: {}", store.name());
            check(store);
        }
    }

    /// [`on_each_backend`] with two fresh registries of the same backend (one tampered one
    /// way, the other another way).
    fn on_each_backend_twice(test: &str, check: impl Fn(&Store, &Store)) {
        let (a, b) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let (one, _c1) = stores(test, a.path());
        let (two, _c2) = stores(test, b.path());
        for (x, y) in one.iter().zip(&two) {
            eprintln!("{test}: {}", x.name());
            check(x, y);
        }
    }

    #[test]
    fn an_untampered_chain_audits_clean_to_its_head() {
        on_each_backend("an_untampered_chain_audits_clean_to_its_head", |s| {
            let xy = populate(s.open());
            // 1 start + 2 certificates + 5 audit + (issued, superseded, issued, verified) +
            // the revocation of the superseded certificate.
            match s.verify(&xy) {
                AuditReport::Clean { records, head, .. } => {
                    assert_eq!(records, 13);
                    let meta = s.text("SELECT value FROM meta WHERE key = 'chain_head'");
                    assert_eq!(meta, format!("13:{}", hex::encode(head)));
                }
                other => panic!("{other:?}"),
            }
        });
    }

    #[test]
    fn an_edited_audit_row_is_the_first_bad_row() {
        on_each_backend("an_edited_audit_row_is_the_first_bad_row", |s| {
            let xy = populate(s.open());
            let seq = s.seq_of("audit", "detail = 'two' ORDER BY id LIMIT 1");
            s.tamper(&format!(
                "UPDATE audit SET outcome = 'failed' WHERE seq = {seq};"
            ));
            let f = first(s.verify(&xy));
            assert_eq!((f.table, f.seq), ("audit", Some(seq)), "{f}");
            assert!(f.problem.contains("signature"), "{f}");
        });
    }

    #[test]
    fn an_edited_status_column_is_reported_on_its_certificate() {
        on_each_backend(
            "an_edited_status_column_is_reported_on_its_certificate",
            |s| {
                let xy = populate(s.open());
                // The superseded certificate made live again.
                s.tamper("UPDATE certificates SET status = 'verified' WHERE serial = '4001';");
                let seq = s.seq_of("certificates", "serial = '4001'");
                let f = first(s.verify(&xy));
                assert_eq!((f.table, f.seq), ("certificates", Some(seq)), "{f}");
                assert!(f.problem.contains("superseded"), "{f}");
            },
        );
    }

    #[test]
    fn a_deleted_row_is_a_gap_named_at_the_next_record() {
        on_each_backend("a_deleted_row_is_a_gap_named_at_the_next_record", |s| {
            let xy = populate(s.open());
            let seq = s.seq_of("audit", "detail = 'one' ORDER BY id LIMIT 1");
            s.tamper(&format!("DELETE FROM audit WHERE seq = {seq};"));
            let f = first(s.verify(&xy));
            assert_eq!(f.seq, Some(seq + 1), "{f}");
            assert!(f.problem.contains(&format!("seq {seq} is missing")), "{f}");
        });
    }

    #[test]
    fn a_deleted_last_row_is_reported_against_the_recorded_head() {
        on_each_backend(
            "a_deleted_last_row_is_reported_against_the_recorded_head",
            |s| {
                let xy = populate(s.open());
                s.tamper("DELETE FROM audit WHERE seq = 13;");
                let f = first(s.verify(&xy));
                assert_eq!((f.table, f.seq), ("meta", Some(13)), "{f}");
            },
        );
    }

    #[test]
    fn two_rows_reordered_are_reported_at_the_first() {
        on_each_backend("two_rows_reordered_are_reported_at_the_first", |s| {
            let xy = populate(s.open());
            let a = s.seq_of("audit", "detail = 'one' ORDER BY id LIMIT 1");
            let b = s.seq_of("audit", "detail = 'two' ORDER BY id LIMIT 1");
            // Swap their places in the sequence, keeping each row's hash and signature.
            s.tamper(&format!(
                "UPDATE audit SET seq = -1 WHERE seq = {a}; \
                 UPDATE audit SET seq = {a} WHERE seq = {b}; \
                 UPDATE audit SET seq = {b} WHERE seq = -1;"
            ));
            let f = first(s.verify(&xy));
            assert_eq!((f.table, f.seq), ("audit", Some(a.min(b))), "{f}");
        });
    }

    #[test]
    fn records_signed_by_another_key_are_reported() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        populated(&path);
        let other = EphemeralKey::generate().expect("key").public_key();
        let f = first(verify_file(&path, &other).expect("verify"));
        assert_eq!((f.table, f.seq), ("chain_start", Some(1)), "{f}");
        assert!(
            f.problem.contains("no signer certificate of this project"),
            "{f}"
        );
    }

    #[test]
    fn a_row_added_outside_the_chain_is_reported() {
        on_each_backend("a_row_added_outside_the_chain_is_reported", |s| {
            let xy = populate(s.open());
            s.tamper(
                "INSERT INTO audit (time, station, chip_serial, step, outcome, detail) \
                 VALUES ('2026-01-01T00:00:00Z', 'st1', NULL, 'issue', 'ok', 'forged');",
            );
            let f = first(s.verify(&xy));
            assert_eq!((f.table, f.seq), ("audit", None), "{f}");
        });
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

    /// A revocation is a record: deleting the one written when 4001 was superseded leaves a
    /// gap in the chain, editing its reason breaks its signature.
    #[test]
    fn a_deleted_or_edited_revocation_row_is_reported() {
        on_each_backend_twice("a_deleted_or_edited_revocation_row_is_reported", |s, t| {
            let xy = populate(s.open());
            let seq = s.seq_of("revocations", "reason = 'superseded'");
            s.tamper("DELETE FROM revocations;");
            let f = first(s.verify(&xy));
            assert_eq!(f.seq, Some(seq + 1), "{f}");
            assert!(f.problem.contains(&format!("seq {seq} is missing")), "{f}");

            let xy = populate(t.open());
            assert_eq!(t.seq_of("revocations", "reason = 'superseded'"), seq);
            t.tamper(
                "UPDATE revocations SET reason = 'unspecified', \
                 revoked_at = '2030-01-01T00:00:00Z';",
            );
            let f = first(t.verify(&xy));
            assert_eq!((f.table, f.seq), ("revocations", Some(seq)), "{f}");
            assert!(f.problem.contains("signature"), "{f}");
        });
    }

    /// Two certificates issued, then `registry revoke` of the first as the last change.
    fn revoked_last(reg: Registry) -> [u8; 64] {
        let mut reg = reg;
        let key = EphemeralKey::generate().expect("key");
        let xy = key.public_key();
        reg.set_record_signer(Box::new(key));
        for n in 1u8..=2 {
            reg.begin_issue(&IssueRequest {
                kind: CertKind::Device,
                chip_serial: Some(ChipSerial([n; 9])),
                serial: &[0x40, n],
                public_key: &[n; 64],
                subject_cn: "dev",
                der: b"\x30\x00",
                not_before: "2026-01-01T00:00:00Z",
                not_after: "2046-01-01T00:00:00Z",
            })
            .expect("issue");
        }
        reg.revoke("4001", crate::registry::RevocationReason::KeyCompromise)
            .expect("revoke");
        xy
    }

    /// `registry revoke` as the last change: its revocation row deleted together with the
    /// audit entry is a deleted tail; a row added by hand outside the chain is named.
    #[test]
    fn a_revocation_added_by_hand_or_a_revoked_tail_deleted_is_reported() {
        on_each_backend_twice(
            "a_revocation_added_by_hand_or_a_revoked_tail_deleted_is_reported",
            |s, t| {
                let xy = revoked_last(s.open());
                assert!(matches!(s.verify(&xy), AuditReport::Clean { .. }));
                // A revocation nobody recorded (certificate 4002 made to look revoked).
                s.tamper(
                    "INSERT INTO revocations (cert_id, reason, revoked_at) \
                     SELECT id, 'keyCompromise', '2026-01-01T00:00:00Z' FROM certificates \
                     WHERE serial = '4002';",
                );
                let f = first(s.verify(&xy));
                assert_eq!((f.table, f.seq), ("revocations", None), "{f}");
                assert!(f.problem.contains("4002"), "{f}");
                // The revocation of 4001 deleted (it then looks valid again), audit entry and
                // all.
                let xy = revoked_last(t.open());
                t.tamper("DELETE FROM revocations; DELETE FROM audit WHERE step = 'revoke';");
                let f = first(t.verify(&xy));
                assert_eq!(f.table, "meta", "{f}");
                assert!(f.problem.contains("deleted"), "{f}");
            },
        );
    }

    /// A revocation written before revocations were records (no sequence number): accounted
    /// for by the superseded status it goes with; once deleted, the superseded certificate
    /// without one is reported.
    #[test]
    fn revocations_from_before_the_chain_are_checked_against_the_records() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let xy = populated(&path);
        // As schema 6 wrote it: no sequence number, no signature.
        tamper(
            &path,
            "UPDATE revocations SET seq = NULL, prev_hash = NULL, signature = NULL, \
             signer_key = NULL;",
        );
        // (The chain now has a gap where the record was: re-chaining is not what this test is
        // about, so check only the revocation findings.)
        let reg = Registry::open_read_only(&path).expect("open");
        let mut findings = Vec::new();
        check_revocations(&reg.conn, &[], &mut findings).expect("check");
        assert!(findings.is_empty(), "{findings:?}");
        drop(reg);
        tamper(&path, "DELETE FROM revocations;");
        let reg = Registry::open_read_only(&path).expect("open");
        check_revocations(&reg.conn, &[], &mut findings).expect("check");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].problem.contains("4001"), "{findings:?}");
        assert!(findings[0].problem.contains("missing"), "{findings:?}");
        let _ = xy;
    }

    /// The signer changes (e.g. `ca signer-to-token`): records of both keys verify with both
    /// signer certificates; without the old one its records are named; a record by the old key
    /// after the change, or by a key whose certificate does not chain to the root, is refused.
    #[test]
    fn records_of_a_rotated_signer_verify_and_a_retired_or_foreign_key_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        let old = EphemeralKey::generate().expect("key");
        let new = EphemeralKey::generate().expect("key");
        let (old_xy, new_xy) = (old.public_key(), new.public_key());
        let old_bytes = old.0.to_bytes();
        {
            let mut reg = Registry::open(&path).expect("open");
            reg.set_record_signer(Box::new(old));
            reg.audit(None, None, "run", Outcome::Ok, "old key")
                .expect("a");
            reg.set_record_signer(Box::new(new));
            reg.audit(None, None, "run", Outcome::Ok, "new key")
                .expect("a");
        }
        let both = |extra: Option<&[u8; 64]>| {
            let mut set = SignerSet::single(&old_xy).expect("set");
            set.trust(&new_xy).expect("trust");
            if let Some(xy) = extra {
                set.distrust(xy, "does not chain to the project root");
            }
            set
        };
        let verify_with = |set: &SignerSet| {
            let reg = Registry::open_read_only(&path).expect("open");
            verify(&reg.conn, set).expect("verify")
        };
        assert!(matches!(
            verify_with(&both(None)),
            AuditReport::Clean { records: 3, .. }
        ));
        let f = first(verify_with(&SignerSet::single(&new_xy).expect("set")));
        assert_eq!((f.table, f.seq), ("chain_start", Some(1)), "{f}");
        assert!(f.problem.contains(&key_id(&old_xy)), "{f}");
        let before = dir.path().join("before.sqlite");
        std::fs::copy(&path, &before).expect("copy");

        // The retired key signs one more record.
        {
            let mut reg = Registry::open(&path).expect("open");
            let key = SigningKey::from_bytes(&old_bytes).expect("key");
            reg.set_record_signer(Box::new(EphemeralKey(key)));
            reg.audit(None, None, "run", Outcome::Ok, "forged")
                .expect("a");
        }
        let f = first(verify_with(&both(None)));
        assert_eq!((f.table, f.seq), ("audit", Some(4)), "{f}");
        assert!(f.problem.contains("retired"), "{f}");

        // A key outside the project's signers (its certificate does not chain to the root),
        // on the registry as it was before the retired key's record.
        std::fs::copy(&before, &path).expect("restore");
        assert!(matches!(
            verify_with(&both(None)),
            AuditReport::Clean { records: 3, .. }
        ));
        let rogue = EphemeralKey::generate().expect("key");
        let rogue_xy = rogue.public_key();
        {
            let mut reg = Registry::open(&path).expect("open");
            reg.set_record_signer(Box::new(rogue));
            reg.audit(None, None, "run", Outcome::Ok, "rogue")
                .expect("a");
        }
        let f = first(verify_with(&both(Some(&rogue_xy))));
        assert_eq!((f.table, f.seq), ("audit", Some(4)), "{f}");
        assert!(
            f.problem.contains("does not chain to the project root"),
            "{f}"
        );
        // Renaming the record's key to a trusted one only breaks its signature.
        tamper(
            &path,
            &format!(
                "UPDATE audit SET signer_key = '{}' WHERE seq = 4;",
                key_id(&new_xy)
            ),
        );
        let f = first(verify_with(&both(Some(&rogue_xy))));
        assert_eq!((f.table, f.seq), ("audit", Some(4)), "{f}");
        assert!(f.problem.contains("signature does not verify"), "{f}");
    }

    /// Signs `n` records, then fails: a signer that breaks mid-transaction.
    struct FailsAfter(EphemeralKey, std::sync::atomic::AtomicUsize);

    impl RecordSigner for FailsAfter {
        fn sign_record(&self, digest: &[u8; 32]) -> Result<[u8; 64], ChainError> {
            let left = self.1.load(std::sync::atomic::Ordering::SeqCst);
            if left == 0 {
                return Err(ChainError::Sign("token removed".into()));
            }
            self.1.store(left - 1, std::sync::atomic::Ordering::SeqCst);
            self.0.sign_record(digest)
        }

        fn record_key(&self) -> Result<[u8; 64], ChainError> {
            self.0.record_key()
        }
    }

    /// The issuance, the status changes and the audit entries that describe them are one
    /// transaction: when the audit record cannot be written, the state change is not made
    /// either (and the other way round, nothing is audited that did not happen).
    #[test]
    fn a_state_change_and_its_audit_entry_commit_together_or_not_at_all() {
        use crate::registry::{CertStatus, StepRecord};
        let entry = StepRecord {
            station: Some("st1"),
            step: "issue",
            outcome: Outcome::Ok,
            detail: "issued 4001 (write-ahead)",
        };
        for (mut reg, _server) in crate::registry::testing::registries(
            "a_state_change_and_its_audit_entry_commit_together_or_not_at_all",
        ) {
            // Chain start + certificate signed, then the audit entry's signature fails.
            reg.set_record_signer(Box::new(FailsAfter(
                EphemeralKey::generate().expect("key"),
                2.into(),
            )));
            let req = IssueRequest {
                kind: CertKind::Device,
                chip_serial: Some(CHIP),
                serial: &[0x40, 1],
                public_key: &[1; 64],
                subject_cn: "dev",
                der: b"\x30\x00",
                not_before: "2026-01-01T00:00:00Z",
                not_after: "2046-01-01T00:00:00Z",
            };
            let e = reg
                .begin_issue_recorded(&req, &entry)
                .expect_err("audit fails");
            assert!(
                matches!(e, RegistryError::Chain(ChainError::Sign(_))),
                "{e}"
            );
            assert!(reg.certificates().expect("q").is_empty());
            assert!(reg.audit_log(None).expect("q").is_empty());
            assert!(reg.device(CHIP).expect("q").is_none());

            // Issued with its entry; then marking written fails at its audit entry.
            reg.set_record_signer(Box::new(FailsAfter(
                EphemeralKey::generate().expect("key"),
                4.into(),
            )));
            reg.begin_issue_recorded(&req, &entry).expect("issue");
            assert_eq!(reg.audit_log(None).expect("q").len(), 1);
            let e = reg
                .mark_written_recorded(
                    "4001",
                    &StepRecord {
                        step: "certificates",
                        ..entry
                    },
                )
                .expect_err("audit fails");
            assert!(matches!(e, RegistryError::Chain(_)), "{e}");
            let cert = reg.certificate("4001").expect("q").expect("cert");
            assert_eq!(cert.status, CertStatus::Pending);
            assert_eq!(reg.audit_log(None).expect("q").len(), 1);
        }
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
