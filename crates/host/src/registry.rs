//! The registry: every device, certificate, station and provisioning step, in SQLite (one
//! host) or PostgreSQL (several hosts share one registry): [`backend`], decision 0008.
//!
//! Issuance is write-ahead: [`Registry::begin_issue`] records a certificate as `pending` in the
//! same transaction that checks for one to reuse, *before* the certificate is sent to a device.
//! A rerun on the same chip with the same public key gets that record back instead of a second
//! identity ([`IssueOutcome::Reused`]). [`Registry::mark_written`] and
//! [`Registry::mark_verified`] move it forward once the device holds it and has proven it.
//!
//! Every certificate, status change and audit entry is also a signed, hash-chained record
//! ([`chain`]; docs/decisions/0007-registry-chain.md): writing one needs the record signer
//! ([`Registry::set_record_signer`]), and [`Registry::verify_chain`] checks them all.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use backend::{Connection, DbError, OptionalExt, Row, params};
use rusqlite::OpenFlags;
use serde::Serialize;

use crate::project::CHIP_SERIAL_LEN;

pub mod backend;
pub mod chain;
pub mod copy;
pub mod lots;
pub mod pg_cluster;
pub mod proof;
pub mod revocation;

pub use revocation::{Revocation, RevocationReason, RevokedCert};

/// Current schema version (SQLite `user_version`): 2 added lots, 3 the registry id, 4
/// revocations and CRL numbers, 5 identity proofs ([`proof`]), 6 the record chain ([`chain`]),
/// 7 revocations as records and the signer key of each record ([`chain::SCHEMA_SIGNERS`]).
pub const SCHEMA_VERSION: i64 = 7;

/// The schema version that adds the record chain ([`chain::SCHEMA_CHAIN`]).
const CHAIN_SCHEMA_VERSION: i64 = 6;

/// Version 3: the registry's id, which `keystamp.toml` records (`registry.id`).
const SCHEMA_V3: &str = "
CREATE TABLE meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
";

/// The `meta` key of the registry id.
const META_REGISTRY_ID: &str = "registry_id";

const SCHEMA_V1: &str = "
CREATE TABLE devices (
    chip_serial TEXT PRIMARY KEY,          -- 18 upper-case hex digits
    state       TEXT NOT NULL,
    cn          TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE certificates (
    id          INTEGER PRIMARY KEY,
    serial      TEXT NOT NULL UNIQUE,      -- certificate serial number, upper-case hex
    chip_serial TEXT REFERENCES devices(chip_serial),
    kind        TEXT NOT NULL CHECK (kind IN ('device', 'signer')),
    public_key  TEXT NOT NULL,             -- 64 bytes X||Y, upper-case hex
    subject_cn  TEXT NOT NULL,
    der         BLOB NOT NULL,
    not_before  TEXT NOT NULL,
    not_after   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'issued', 'verified', 'superseded')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX certificates_chip ON certificates(chip_serial);
CREATE TABLE stations (
    name        TEXT PRIMARY KEY,
    port        TEXT,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    time        TEXT NOT NULL,
    station     TEXT,
    chip_serial TEXT,
    step        TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'skipped')),
    detail      TEXT NOT NULL
);
CREATE INDEX audit_chip ON audit(chip_serial);
";

/// A chip serial number (9 bytes); displayed and stored as 18 upper-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChipSerial(pub [u8; CHIP_SERIAL_LEN]);

impl fmt::Display for ChipSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

impl std::str::FromStr for ChipSerial {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut b = [0u8; CHIP_SERIAL_LEN];
        hex::decode_to_slice(s.trim(), &mut b)
            .map_err(|_| format!("{s:?} is not a chip serial (18 hex digits)"))?;
        Ok(Self(b))
    }
}

impl Serialize for ChipSerial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),* }

        impl $name {
            /// The text stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }

            fn parse(s: &str) -> Result<Self, DbError> {
                match s {
                    $($s => Ok(Self::$v),)*
                    other => Err(DbError::Conversion {
                        column: 0,
                        expected: stringify!($name),
                        found: format!("{other:?}"),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Where a device is in provisioning, as far as the registry knows.
    DeviceState {
        /// Seen (probed) but no certificate issued yet.
        New = "new",
        /// A certificate is recorded (write-ahead) but not yet confirmed on the device.
        Issuing = "issuing",
        /// The device holds its certificate; not yet verified.
        Written = "written",
        /// Chain rebuilt on the device, compared and proof of possession checked.
        Provisioned = "provisioned",
    }
}

text_enum! {
    /// Certificate kind.
    CertKind {
        /// A device certificate (its key lives in a chip).
        Device = "device",
        /// A signer certificate (issued by the root).
        Signer = "signer",
    }
}

text_enum! {
    /// Certificate status.
    CertStatus {
        /// Recorded before being sent to a device (write-ahead).
        Pending = "pending",
        /// Written to the device.
        Issued = "issued",
        /// Verified on the device (rebuilt, compared, proof of possession).
        Verified = "verified",
        /// Replaced by a newer certificate for the same chip; never again handed out.
        Superseded = "superseded",
    }
}

text_enum! {
    /// Outcome of an audited step.
    Outcome {
        /// The step succeeded.
        Ok = "ok",
        /// The step failed.
        Failed = "failed",
        /// The step was not needed (already done).
        Skipped = "skipped",
    }
}

/// A registry error. Display is one line saying what to do.
#[derive(Debug)]
pub enum RegistryError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// The database failed (PostgreSQL, or a value of the wrong type).
    Database(backend::DbError),
    /// A PostgreSQL registry whose schema is older than this keystamp's: `registry migrate`.
    MigrationNeeded {
        /// Its schema version (0: not migrated at all).
        version: i64,
    },
    /// The registry location was refused (a URL with a password).
    Location(crate::registry_url::LocationError),
    /// `registry copy` was refused or the copy did not verify.
    Copy(copy::CopyError),
    /// The registry file could not be opened or read as a registry.
    File {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A registry opened read-only has an older schema, which only a writing command upgrades.
    OlderSchema {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        version: i64,
    },
    /// The registry file could not be inspected.
    Io(PathBuf, std::io::Error),
    /// The registry file is 0 bytes: not a registry (SQLite would silently start a new one).
    Empty(PathBuf),
    /// `init` found a registry file where it would create one.
    Exists(PathBuf),
    /// The database's id is not the one `keystamp.toml` records.
    Foreign {
        /// The database file.
        path: PathBuf,
        /// `registry.id` in `keystamp.toml`.
        expected: String,
        /// The database's id (`None`: it has none).
        found: Option<String>,
    },
    /// The registry already has an id (adopting refuses to change it).
    HasId(String),
    /// No random id could be made.
    Random(String),
    /// The database was written by a newer keystamp.
    NewerSchema(i64),
    /// A certificate with this serial number is already recorded.
    DuplicateSerial(String),
    /// The chip already has a verified certificate for a different public key.
    AlreadyProvisioned {
        /// The chip.
        chip_serial: ChipSerial,
        /// Serial of its verified certificate.
        cert_serial: String,
    },
    /// No certificate with that serial (or an illegal status change).
    UnknownCertificate(String),
    /// A status change that would go backwards (e.g. verified → pending).
    BadTransition {
        /// Certificate serial.
        serial: String,
        /// Current status.
        from: CertStatus,
        /// Requested status.
        to: CertStatus,
    },
    /// A lot refused the chip, or a lot operation failed.
    Lot(lots::LotError),
    /// Only device certificates are revoked here (this serial is the signer's).
    NotRevocable(String),
    /// The certificate is already revoked.
    AlreadyRevoked {
        /// Certificate serial.
        serial: String,
        /// Why it was revoked.
        reason: RevocationReason,
        /// When, RFC 3339.
        revoked_at: String,
    },
    /// The chip presents a public key whose certificate was revoked: no new certificate for it.
    KeyRevoked {
        /// The chip.
        chip_serial: ChipSerial,
        /// The revoked certificate for that key.
        cert_serial: String,
        /// Why it was revoked.
        reason: RevocationReason,
    },
    /// Every CRL number up to 2^63-1 was used.
    CrlNumberExhausted,
    /// The certificate was revoked: it is not marked written or verified any more.
    Revoked {
        /// Certificate serial.
        serial: String,
        /// Why it was revoked.
        reason: RevocationReason,
    },
    /// A record could not be added to the record chain.
    Chain(chain::ChainError),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(e) => write!(f, "registry database: {e}"),
            Self::Database(e) if e.is_unreachable() => write!(
                f,
                "registry database unreachable ({e}): nothing was recorded for this step and \
                 no further chip operation runs; run again when the database is back"
            ),
            Self::Database(e) if e.is_authentication() => write!(
                f,
                "registry database refused the login ({e}): give the role's password in \
                 PGPASSWORD or a pgpass file (~/.pgpass, or the file PGPASSFILE names), never \
                 in the URL"
            ),
            Self::Database(e) => write!(f, "registry database: {e}"),
            Self::MigrationNeeded { version } => write!(
                f,
                "the registry database has schema version {version}, this keystamp needs \
                 {SCHEMA_VERSION}: run `keystamp registry migrate` (with a role that may \
                 change the schema) first"
            ),
            Self::Location(e) => e.fmt(f),
            Self::Copy(e) => e.fmt(f),
            Self::File { path, source } => {
                write!(f, "registry {}: {source}", path.display())?;
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
                    f.write_str(
                        " (not a keystamp registry: check registry.path in keystamp.toml)",
                    )?;
                }
                Ok(())
            }
            Self::OlderSchema { path, version } => write!(
                f,
                "registry {} has schema version {version}, older than this keystamp's \
                 ({SCHEMA_VERSION}); a command that records (e.g. keystamp provision) \
                 upgrades it",
                path.display()
            ),
            Self::Io(path, e) => write!(f, "registry {}: {e}", path.display()),
            Self::Empty(path) => write!(
                f,
                "registry {} is empty (0 bytes), not this project's registry: restore it from a \
                 backup, or point registry.path in keystamp.toml at the real one",
                path.display()
            ),
            Self::Exists(path) => write!(
                f,
                "registry {} already exists: refusing to replace it (move it away to start over)",
                path.display()
            ),
            Self::Foreign {
                path,
                expected,
                found,
            } => write!(
                f,
                "registry {} belongs to another project (its id is {}, keystamp.toml records \
                 {expected}): restore this project's registry, or point registry.path at it",
                path.display(),
                found.as_deref().unwrap_or("missing")
            ),
            Self::HasId(id) => write!(f, "the registry already has id {id}"),
            Self::Random(e) => write!(f, "no random registry id: {e}"),
            Self::NewerSchema(v) => write!(
                f,
                "registry schema version {v} is newer than this keystamp ({SCHEMA_VERSION}): \
                 upgrade keystamp"
            ),
            Self::DuplicateSerial(s) => write!(
                f,
                "certificate serial {s} is already in the registry: serials must be unique \
                 (use a serial-number source that differs per issuance)"
            ),
            Self::AlreadyProvisioned {
                chip_serial,
                cert_serial,
            } => write!(
                f,
                "chip {chip_serial} already has verified certificate {cert_serial} for another \
                 key: not issuing a second identity (investigate the device)"
            ),
            Self::UnknownCertificate(s) => write!(f, "no certificate with serial {s}"),
            Self::BadTransition { serial, from, to } => {
                write!(f, "certificate {serial} is {from}; it cannot become {to}")
            }
            Self::NotRevocable(s) => write!(
                f,
                "certificate {s} is the signer's: keystamp revokes device certificates only \
                 (a signer is revoked by its root)"
            ),
            Self::AlreadyRevoked {
                serial,
                reason,
                revoked_at,
            } => write!(
                f,
                "certificate {serial} is already revoked ({reason}, {revoked_at}): nothing to do"
            ),
            Self::KeyRevoked {
                chip_serial,
                cert_serial,
                reason,
            } => write!(
                f,
                "chip {chip_serial} presents the key of revoked certificate {cert_serial} \
                 ({reason}): not issuing for it again (generate a new key on the device)"
            ),
            Self::CrlNumberExhausted => {
                f.write_str("the registry has used every CRL number: start a new registry")
            }
            Self::Revoked { serial, reason } => write!(
                f,
                "certificate {serial} was revoked ({reason}) while this device was being \
                 provisioned: run it again to get a new certificate for a new key"
            ),
            Self::Lot(e) => e.fmt(f),
            Self::Chain(e) => e.fmt(f),
        }
    }
}

/// `path` as an SQLite URI that opens it immutable (no locks, no shared memory).
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            '%' => uri.push_str("%25"),
            '\\' if cfg!(windows) => uri.push('/'),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

impl RegistryError {
    /// Names the database file in a bare SQLite error (errors that already name it, or are
    /// not SQLite's, are returned unchanged).
    pub fn in_file(self, path: &Path) -> Self {
        match self {
            Self::Sqlite(source) => Self::File {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        }
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sqlite(e) | Self::File { source: e, .. } => Some(e),
            Self::Database(e) => Some(e),
            Self::Location(e) => Some(e),
            Self::Copy(e) => Some(e),
            Self::Lot(e) => Some(e),
            Self::Chain(e) => Some(e),
            Self::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for RegistryError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(err, Some(msg)) = &e
            && err.code == rusqlite::ErrorCode::ConstraintViolation
            && msg.contains("certificates.serial")
        {
            return Self::DuplicateSerial(msg.clone());
        }
        Self::Sqlite(e)
    }
}

impl From<copy::CopyError> for RegistryError {
    fn from(e: copy::CopyError) -> Self {
        Self::Copy(e)
    }
}

impl From<crate::registry_url::LocationError> for RegistryError {
    fn from(e: crate::registry_url::LocationError) -> Self {
        Self::Location(e)
    }
}

impl From<backend::DbError> for RegistryError {
    fn from(e: backend::DbError) -> Self {
        if e.is_unique_violation("certificates", "serial") {
            return Self::DuplicateSerial(e.to_string());
        }
        match e {
            backend::DbError::Sqlite(e) => Self::Sqlite(e),
            e => Self::Database(e),
        }
    }
}

/// One certificate row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertRecord {
    /// Row id.
    pub id: i64,
    /// Certificate serial number, upper-case hex.
    pub serial: String,
    /// The chip it was issued for (device certificates).
    pub chip_serial: Option<ChipSerial>,
    /// Device or signer.
    pub kind: CertKind,
    /// Subject public key, 64 bytes X‖Y.
    #[serde(serialize_with = "ser_hex")]
    pub public_key: [u8; 64],
    /// Subject CN.
    pub subject_cn: String,
    /// The certificate DER.
    #[serde(skip)]
    pub der: Vec<u8>,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// Status.
    pub status: CertStatus,
    /// When recorded.
    pub created_at: String,
    /// Last status change.
    pub updated_at: String,
}

fn ser_hex<S: serde::Serializer>(b: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode_upper(b))
}

/// One device row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRecord {
    /// Chip serial number.
    pub chip_serial: ChipSerial,
    /// State.
    pub state: DeviceState,
    /// Subject CN of its certificate, once known.
    pub cn: Option<String>,
    /// First seen.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// One audit-log row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Row id (monotonic).
    pub id: i64,
    /// When, RFC 3339.
    pub time: String,
    /// Station name.
    pub station: Option<String>,
    /// Chip serial.
    pub chip_serial: Option<ChipSerial>,
    /// Step name (the provisioning engine's words, e.g. `probe`, `lock_config`).
    pub step: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Free-form detail.
    pub detail: String,
}

/// A station row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StationRecord {
    /// Station name.
    pub name: String,
    /// Port path.
    pub port: Option<String>,
    /// First seen.
    pub first_seen: String,
    /// Last seen.
    pub last_seen: String,
}

/// What to record before a certificate goes to a device.
#[derive(Debug, Clone)]
pub struct IssueRequest<'a> {
    /// Device or signer.
    pub kind: CertKind,
    /// The chip (required for device certificates).
    pub chip_serial: Option<ChipSerial>,
    /// Certificate serial number bytes.
    pub serial: &'a [u8],
    /// Subject public key X‖Y.
    pub public_key: &'a [u8; 64],
    /// Subject CN.
    pub subject_cn: &'a str,
    /// Full certificate DER.
    pub der: &'a [u8],
    /// notBefore, RFC 3339.
    pub not_before: &'a str,
    /// notAfter, RFC 3339.
    pub not_after: &'a str,
}

/// The result of [`Registry::begin_issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// A new pending record was written; send this certificate to the device.
    New(CertRecord),
    /// The chip already has a live certificate for this public key: send *this* one (the new
    /// certificate was not recorded and must be discarded).
    Reused(CertRecord),
}

impl IssueOutcome {
    /// The record to use either way.
    pub fn record(&self) -> &CertRecord {
        match self {
            Self::New(r) | Self::Reused(r) => r,
        }
    }
}

/// An audit entry that a state change writes in its own transaction
/// ([`Registry::begin_issue_recorded`], [`Registry::mark_written_recorded`],
/// [`Registry::mark_verified_recorded`]).
#[derive(Debug, Clone, Copy)]
pub struct StepRecord<'a> {
    /// Station name.
    pub station: Option<&'a str>,
    /// Step name (the engine's words).
    pub step: &'a str,
    /// Outcome.
    pub outcome: Outcome,
    /// Detail (already sanitized by the caller when it carries device text).
    pub detail: &'a str,
}

/// Writes one audit entry in the caller's transaction as the next record of the chain.
fn insert_audit(
    conn: &Connection,
    signer: Option<&dyn chain::RecordSigner>,
    chip: Option<ChipSerial>,
    entry: &StepRecord<'_>,
) -> Result<(), RegistryError> {
    let id = conn.insert_id(
        "INSERT INTO audit (time, station, chip_serial, step, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            now_rfc3339(),
            entry.station,
            chip.map(|c| c.to_string()),
            entry.step,
            entry.outcome.as_str(),
            entry.detail
        ],
    )?;
    chain::append(conn, signer, chain::Kind::Audit, id)
}

/// Current time as RFC 3339 UTC with seconds (`2026-11-26T01:34:12Z`).
pub fn now_rfc3339() -> String {
    der::DateTime::from_system_time(SystemTime::now())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The SQLite registry.
pub struct Registry {
    conn: Connection,
    policy: lots::IssuancePolicy,
    /// Signs the records of the chain; `None` refuses every write that makes a record.
    record_signer: Option<Box<dyn chain::RecordSigner>>,
}

impl Registry {
    /// The database file, for messages (`None` for an in-memory registry).
    pub fn path(&self) -> Option<PathBuf> {
        self.conn
            .as_sqlite()
            .and_then(|c| c.path())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

const CERT_COLUMNS: &str = "id, serial, chip_serial, kind, public_key, subject_cn, der, \
                            not_before, not_after, status, created_at, updated_at";

fn chip_from_sql(s: Option<String>) -> Result<Option<ChipSerial>, DbError> {
    s.map(|s| {
        s.parse().map_err(|e: String| DbError::Conversion {
            column: 0,
            expected: "a chip serial",
            found: e,
        })
    })
    .transpose()
}

fn cert_from_row(row: &Row) -> Result<CertRecord, DbError> {
    let pk: String = row.get(4)?;
    let mut public_key = [0u8; 64];
    hex::decode_to_slice(&pk, &mut public_key).map_err(|e| DbError::Conversion {
        column: 4,
        expected: "a 64-byte public key in hex",
        found: e.to_string(),
    })?;
    Ok(CertRecord {
        id: row.get(0)?,
        serial: row.get(1)?,
        chip_serial: chip_from_sql(row.get(2)?)?,
        kind: CertKind::parse(&row.get::<_, String>(3)?)?,
        public_key,
        subject_cn: row.get(5)?,
        der: row.get(6)?,
        not_before: row.get(7)?,
        not_after: row.get(8)?,
        status: CertStatus::parse(&row.get::<_, String>(9)?)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

fn device_from_row(row: &Row) -> Result<DeviceRecord, DbError> {
    let chip: String = row.get(0)?;
    Ok(DeviceRecord {
        chip_serial: chip_from_sql(Some(chip))?.unwrap_or(ChipSerial([0; CHIP_SERIAL_LEN])),
        state: DeviceState::parse(&row.get::<_, String>(1)?)?,
        cn: row.get(2)?,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
    })
}

impl Registry {
    /// Opens (creating if needed) the registry at `path` and migrates it to [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        rusqlite::Connection::open(path)
            .map_err(RegistryError::from)
            .and_then(Self::from_connection)
            .map_err(|e| e.in_file(path))
    }

    /// Opens the registry at `path` for reading only: nothing is created, migrated or
    /// written, so `registry list` works on a read-only project (and on a copy of a registry).
    pub fn open_read_only(path: &Path) -> Result<Self, RegistryError> {
        let read = |immutable: bool| -> Result<Self, RegistryError> {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = if immutable {
                rusqlite::Connection::open_with_flags(
                    immutable_uri(path),
                    flags | OpenFlags::SQLITE_OPEN_URI,
                )?
            } else {
                rusqlite::Connection::open_with_flags(path, flags)?
            };
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            let version: i64 = conn.query_row("PRAGMA user_version", (), |r| r.get(0))?;
            if version > SCHEMA_VERSION {
                return Err(RegistryError::NewerSchema(version));
            }
            if version < SCHEMA_VERSION {
                return Err(RegistryError::OlderSchema {
                    path: path.to_path_buf(),
                    version,
                });
            }
            Ok(Self {
                conn: Connection::sqlite(conn),
                policy: lots::IssuancePolicy::default(),
                record_signer: None,
            })
        };
        // A WAL database needs its shared-memory file even to be read; in a directory nobody
        // may write to, read it as immutable instead (nothing can be writing to it there).
        match read(false) {
            Err(RegistryError::Sqlite(e))
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
                ) =>
            {
                read(true)
            }
            other => other,
        }
        .map_err(|e| e.in_file(path))
    }

    /// An in-memory registry (tests, dry runs). It lives as long as the process, so its records
    /// are signed with a throwaway key ([`chain::EphemeralKey`]).
    pub fn open_in_memory() -> Result<Self, RegistryError> {
        let mut reg = Self::from_connection(rusqlite::Connection::open_in_memory()?)?;
        reg.set_record_signer(Box::new(chain::EphemeralKey::generate()?));
        Ok(reg)
    }

    /// Opens the PostgreSQL registry at `url` (no password in it: [`crate::registry_url::Location`]). Refuses
    /// a database whose schema is not this keystamp's: stations never change the schema,
    /// `keystamp registry migrate` does ([`Registry::migrate_postgres`]).
    pub fn open_postgres(url: &str) -> Result<Self, RegistryError> {
        let conn = Connection::connect_postgres(url)?;
        let version = conn.schema_version()?;
        if version > SCHEMA_VERSION {
            return Err(RegistryError::NewerSchema(version));
        }
        if version < SCHEMA_VERSION {
            return Err(RegistryError::MigrationNeeded { version });
        }
        Ok(Self {
            conn,
            policy: lots::IssuancePolicy::default(),
            record_signer: None,
        })
    }

    /// [`Registry::open_postgres`] for a project whose `keystamp.toml` records `expected` as
    /// the registry id: a database with another id is refused.
    pub fn open_project_postgres(url: &str, expected: Option<&str>) -> Result<Self, RegistryError> {
        let reg = Self::open_postgres(url)?;
        if let Some(expected) = expected {
            let found = reg.id()?;
            if found.as_deref() != Some(expected) {
                return Err(RegistryError::Foreign {
                    path: url.into(),
                    expected: expected.to_string(),
                    found,
                });
            }
        }
        Ok(reg)
    }

    /// Brings the PostgreSQL registry at `url` to [`SCHEMA_VERSION`] and gives it an id if it
    /// has none (`keystamp registry migrate`). Returns the versions before and after.
    pub fn migrate_postgres(url: &str) -> Result<(i64, i64), RegistryError> {
        let mut reg = Self {
            conn: Connection::connect_postgres(url)?,
            policy: lots::IssuancePolicy::default(),
            record_signer: None,
        };
        let versions = reg.migrate()?;
        if reg.id()?.is_none() {
            reg.set_id(&Self::new_id()?)?;
        }
        Ok(versions)
    }

    /// Which engine holds this registry.
    pub fn engine(&self) -> backend::Engine {
        self.conn.engine()
    }

    /// Sets the key that signs the records this registry writes (the project's signer):
    /// without one, issuing, status changes and audit entries are refused.
    pub fn set_record_signer(&mut self, signer: Box<dyn chain::RecordSigner>) {
        self.record_signer = Some(signer);
    }

    /// Verifies the record chain against the project's signer keys (those whose certificates
    /// chain to the root): `registry audit`.
    pub fn verify_chain(
        &self,
        signers: &chain::SignerSet,
    ) -> Result<chain::AuditReport, RegistryError> {
        // One snapshot for all its queries: stations (of any host) may be writing meanwhile,
        // and a head read after the rows it covers would look like a deleted tail.
        let snapshot = self.conn.read_transaction()?;
        chain::verify(&snapshot, signers)
    }

    fn from_connection(conn: rusqlite::Connection) -> Result<Self, RegistryError> {
        // Several stations share one file: wait for the lock instead of failing, and use WAL so
        // readers (`registry list`) never block writers.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", (), |r| r.get(0))?;
        let mut reg = Self {
            conn: Connection::sqlite(conn),
            policy: lots::IssuancePolicy::default(),
            record_signer: None,
        };
        reg.migrate()?;
        Ok(reg)
    }

    /// Applies the missing schema steps, the same on both engines (PostgreSQL's DDL is
    /// SQLite's with PostgreSQL's type names: [`backend::to_postgres_ddl`]), in one write
    /// transaction. Returns the versions before and after.
    fn migrate(&mut self) -> Result<(i64, i64), RegistryError> {
        let tx = self.conn.write_transaction()?;
        let version = tx.schema_version()?;
        if version > SCHEMA_VERSION {
            return Err(RegistryError::NewerSchema(version));
        }
        if version < 1 {
            tx.execute_schema(SCHEMA_V1)?;
        }
        if version < 2 {
            tx.execute_schema(lots::SCHEMA_V2)?;
        }
        if version < 3 {
            tx.execute_schema(SCHEMA_V3)?;
        }
        if version < 4 {
            tx.execute_schema(revocation::SCHEMA_V4)?;
        }
        if version < 5 {
            proof::migrate(&tx)?;
        }
        if version < CHAIN_SCHEMA_VERSION {
            tx.execute_schema(chain::SCHEMA_CHAIN)?;
        }
        if version < 7 {
            tx.execute_schema(chain::SCHEMA_SIGNERS)?;
        }
        tx.set_schema_version(SCHEMA_VERSION)?;
        tx.commit()?;
        Ok((version, SCHEMA_VERSION))
    }

    /// Creates the registry of a new project at `path` with a fresh random id, which the
    /// caller records in `keystamp.toml`. Refuses an existing file.
    pub fn create(path: &Path) -> Result<(Self, String), RegistryError> {
        if path.exists() {
            return Err(RegistryError::Exists(path.to_path_buf()));
        }
        let id = Self::new_id()?;
        let reg = Self::open(path)?;
        reg.set_id(&id)?;
        Ok((reg, id))
    }

    /// A fresh random registry id: 32 hex digits.
    pub fn new_id() -> Result<String, RegistryError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| RegistryError::Random(e.to_string()))?;
        Ok(hex::encode(id))
    }

    /// Opens the registry of a project whose `keystamp.toml` records `expected` as its id.
    /// Refuses a 0-byte file (SQLite would take it as a new, empty database), a database whose
    /// id differs, and one without an id when the project has one. `expected: None` (a project
    /// made before ids) opens any database but an empty one.
    pub fn open_project(path: &Path, expected: Option<&str>) -> Result<Self, RegistryError> {
        Self::open_checked(path, expected, Self::open)
    }

    /// [`Registry::open_project`] for reading only ([`Registry::open_read_only`]): the same
    /// refusals of an empty or foreign file, and nothing written.
    pub fn open_project_read_only(
        path: &Path,
        expected: Option<&str>,
    ) -> Result<Self, RegistryError> {
        Self::open_checked(path, expected, Self::open_read_only)
    }

    fn open_checked(
        path: &Path,
        expected: Option<&str>,
        open: fn(&Path) -> Result<Self, RegistryError>,
    ) -> Result<Self, RegistryError> {
        let len = std::fs::metadata(path)
            .map_err(|e| RegistryError::Io(path.to_path_buf(), e))?
            .len();
        if len == 0 {
            return Err(RegistryError::Empty(path.to_path_buf()));
        }
        let reg = open(path)?;
        if let Some(expected) = expected {
            let found = reg.id()?;
            if found.as_deref() != Some(expected) {
                return Err(RegistryError::Foreign {
                    path: path.to_path_buf(),
                    expected: expected.to_string(),
                    found,
                });
            }
        }
        Ok(reg)
    }

    /// The registry's id, if it has one (databases made before ids have none).
    pub fn id(&self) -> Result<Option<String>, RegistryError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [META_REGISTRY_ID],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Gives a registry without an id the id `id` (adopting a database made before ids);
    /// refuses to change an existing id.
    pub fn set_id(&self, id: &str) -> Result<(), RegistryError> {
        let n = self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
            [META_REGISTRY_ID, id],
        )?;
        if n == 0 && self.id()?.as_deref() != Some(id) {
            return Err(RegistryError::HasId(self.id()?.unwrap_or_default()));
        }
        Ok(())
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, RegistryError> {
        Ok(self.conn.schema_version()?)
    }

    /// Records a device as seen (state `new` if it was unknown); returns its record.
    pub fn upsert_device(&self, chip: ChipSerial) -> Result<DeviceRecord, RegistryError> {
        let now = now_rfc3339();
        self.conn.execute(
            "INSERT INTO devices (chip_serial, state, created_at, updated_at)
             VALUES (?1, 'new', ?2, ?2) ON CONFLICT(chip_serial) DO NOTHING",
            params![chip.to_string(), now],
        )?;
        self.device(chip)?
            .ok_or(RegistryError::Database(DbError::NoRows))
    }

    /// The device record for a chip.
    pub fn device(&self, chip: ChipSerial) -> Result<Option<DeviceRecord>, RegistryError> {
        Ok(self
            .conn
            .query_row(
                "SELECT chip_serial, state, cn, created_at, updated_at FROM devices
                 WHERE chip_serial = ?1",
                [chip.to_string()],
                device_from_row,
            )
            .optional()?)
    }

    /// All devices, oldest first.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, RegistryError> {
        let mut st = self.conn.prepare(
            "SELECT chip_serial, state, cn, created_at, updated_at FROM devices
             ORDER BY created_at, chip_serial",
        )?;
        let rows = st.query_map((), device_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Write-ahead issuance: records `req` as `pending` unless the chip already has a live
    /// (pending, issued or verified, not revoked) device certificate for the same public key,
    /// which is returned instead. Live pending/issued certificates of the chip for *another* key
    /// are marked superseded and revoked (the chip's key changed before they were verified); a
    /// verified one for another key is an error, and so is a key whose certificate was revoked
    /// ([`RegistryError::KeyRevoked`]). A new certificate for a chip also takes the chip's place in a lot per the issuance
    /// policy ([`lots`]). All in one transaction.
    pub fn begin_issue(&mut self, req: &IssueRequest<'_>) -> Result<IssueOutcome, RegistryError> {
        self.issue_in_tx(req, None)
    }

    /// [`Registry::begin_issue`] that also writes `entry` to the audit log, for the chip of the
    /// request, in the same transaction when a new certificate is recorded: a crash can never
    /// leave the issuance without its entry or the entry without the issuance.
    pub fn begin_issue_recorded(
        &mut self,
        req: &IssueRequest<'_>,
        entry: &StepRecord<'_>,
    ) -> Result<IssueOutcome, RegistryError> {
        self.issue_in_tx(req, Some(entry))
    }

    fn issue_in_tx(
        &mut self,
        req: &IssueRequest<'_>,
        entry: Option<&StepRecord<'_>>,
    ) -> Result<IssueOutcome, RegistryError> {
        let now = now_rfc3339();
        let serial = hex::encode_upper(req.serial);
        let pk_hex = hex::encode_upper(req.public_key);
        let policy = self.policy;
        let tx = self.conn.write_transaction()?;
        let chip = req.chip_serial.map(|c| c.to_string());
        if let (CertKind::Device, Some(chip)) = (req.kind, &chip) {
            // A revoked certificate is never handed out again, and its key gets no other.
            if let Some((cert_serial, reason)) = revocation::revoked_for_key(&tx, chip, &pk_hex)? {
                return Err(RegistryError::KeyRevoked {
                    chip_serial: req.chip_serial.unwrap_or(ChipSerial([0; CHIP_SERIAL_LEN])),
                    cert_serial,
                    reason,
                });
            }
            let live: Vec<CertRecord> = {
                let mut st = tx.prepare(&format!(
                    "SELECT {CERT_COLUMNS} FROM certificates
                     WHERE chip_serial = ?1 AND kind = 'device' AND status != 'superseded'
                     AND {} ORDER BY id",
                    revocation::NOT_REVOKED
                ))?;
                st.query_map([chip], cert_from_row)?
                    .collect::<Result<_, _>>()?
            };
            if let Some(same) = live.iter().find(|c| c.public_key == *req.public_key) {
                return Ok(IssueOutcome::Reused(same.clone()));
            }
            if let Some(v) = live.iter().find(|c| c.status == CertStatus::Verified) {
                return Err(RegistryError::AlreadyProvisioned {
                    chip_serial: req.chip_serial.unwrap_or(ChipSerial([0; CHIP_SERIAL_LEN])),
                    cert_serial: v.serial.clone(),
                });
            }
            if let Some(c) = req.chip_serial {
                lots::claim(&tx, c, policy, &now)?;
            }
            // Superseded certificates may have reached the device: revoke them in this
            // transaction, before they are marked.
            revocation::revoke_superseded(&tx, self.record_signer.as_deref(), chip, &now)?;
            // Each superseded certificate is a status change in the record chain.
            for old in live
                .iter()
                .filter(|c| matches!(c.status, CertStatus::Pending | CertStatus::Issued))
            {
                chain::change_status(
                    &tx,
                    self.record_signer.as_deref(),
                    old.id,
                    old.status.as_str(),
                    CertStatus::Superseded.as_str(),
                    &now,
                )?;
            }
            tx.execute(
                "INSERT INTO devices (chip_serial, state, cn, created_at, updated_at)
                 VALUES (?1, 'issuing', ?2, ?3, ?3)
                 ON CONFLICT(chip_serial) DO UPDATE SET state = 'issuing', cn = ?2,
                 updated_at = ?3",
                params![chip, req.subject_cn, now],
            )?;
        }
        tx.execute(
            "INSERT INTO certificates (serial, chip_serial, kind, public_key, subject_cn, der,
             not_before, not_after, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?9)",
            params![
                serial,
                chip,
                req.kind.as_str(),
                pk_hex,
                req.subject_cn,
                req.der,
                req.not_before,
                req.not_after,
                now
            ],
        )?;
        let record = tx.query_row(
            &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = ?1"),
            [&serial],
            cert_from_row,
        )?;
        chain::append(
            &tx,
            self.record_signer.as_deref(),
            chain::Kind::Certificate,
            record.id,
        )?;
        if let Some(entry) = entry {
            insert_audit(&tx, self.record_signer.as_deref(), req.chip_serial, entry)?;
        }
        tx.commit()?;
        Ok(IssueOutcome::New(record))
    }

    fn advance(
        &mut self,
        serial: &str,
        to: CertStatus,
        entry: Option<&StepRecord<'_>>,
    ) -> Result<CertRecord, RegistryError> {
        let now = now_rfc3339();
        let tx = self.conn.write_transaction()?;
        let current = tx
            .query_row(
                &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = ?1"),
                [serial],
                cert_from_row,
            )
            .optional()?
            .ok_or_else(|| RegistryError::UnknownCertificate(serial.to_string()))?;
        let allowed = matches!(
            (current.status, to),
            (CertStatus::Pending, CertStatus::Issued)
                | (
                    CertStatus::Pending | CertStatus::Issued,
                    CertStatus::Verified
                )
        ) || current.status == to;
        if !allowed {
            return Err(RegistryError::BadTransition {
                serial: serial.to_string(),
                from: current.status,
                to,
            });
        }
        // Revoked while a station was still writing or verifying it: it goes no further.
        if current.status != to
            && let Some(r) = revocation::revocation_of(&tx, current.id)?
        {
            return Err(RegistryError::Revoked {
                serial: current.serial,
                reason: r.reason,
            });
        }
        if current.status != to {
            chain::change_status(
                &tx,
                self.record_signer.as_deref(),
                current.id,
                current.status.as_str(),
                to.as_str(),
                &now,
            )?;
            if let (CertKind::Device, Some(chip)) = (current.kind, current.chip_serial) {
                let state = match to {
                    CertStatus::Verified => DeviceState::Provisioned,
                    _ => DeviceState::Written,
                };
                tx.execute(
                    "UPDATE devices SET state = ?2, updated_at = ?3 WHERE chip_serial = ?1",
                    params![chip.to_string(), state.as_str(), now],
                )?;
            }
        }
        let record = tx.query_row(
            &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE id = ?1"),
            [current.id],
            cert_from_row,
        )?;
        if let Some(entry) = entry {
            insert_audit(
                &tx,
                self.record_signer.as_deref(),
                record.chip_serial,
                entry,
            )?;
        }
        tx.commit()?;
        Ok(record)
    }

    /// The certificate reached the device (pending → issued). Idempotent.
    pub fn mark_written(&mut self, serial: &str) -> Result<CertRecord, RegistryError> {
        self.advance(serial, CertStatus::Issued, None)
    }

    /// The device rebuilt, matched and proved the certificate (→ verified). Idempotent.
    pub fn mark_verified(&mut self, serial: &str) -> Result<CertRecord, RegistryError> {
        self.advance(serial, CertStatus::Verified, None)
    }

    /// [`Registry::mark_written`] with `entry` written to the audit log (for the
    /// certificate's chip) in the same transaction.
    pub fn mark_written_recorded(
        &mut self,
        serial: &str,
        entry: &StepRecord<'_>,
    ) -> Result<CertRecord, RegistryError> {
        self.advance(serial, CertStatus::Issued, Some(entry))
    }

    /// [`Registry::mark_verified`] with `entry` written to the audit log (for the
    /// certificate's chip) in the same transaction.
    pub fn mark_verified_recorded(
        &mut self,
        serial: &str,
        entry: &StepRecord<'_>,
    ) -> Result<CertRecord, RegistryError> {
        self.advance(serial, CertStatus::Verified, Some(entry))
    }

    /// The live (neither superseded nor revoked) device certificate of a chip, for resuming.
    pub fn live_certificate(&self, chip: ChipSerial) -> Result<Option<CertRecord>, RegistryError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {CERT_COLUMNS} FROM certificates
                     WHERE chip_serial = ?1 AND kind = 'device' AND status != 'superseded'
                     AND {} ORDER BY id DESC LIMIT 1",
                    revocation::NOT_REVOKED
                ),
                [chip.to_string()],
                cert_from_row,
            )
            .optional()?)
    }

    /// Every certificate recorded for a chip, oldest first.
    pub fn certificates_for(&self, chip: ChipSerial) -> Result<Vec<CertRecord>, RegistryError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE chip_serial = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([chip.to_string()], cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A certificate by serial (upper- or lower-case hex).
    pub fn certificate(&self, serial: &str) -> Result<Option<CertRecord>, RegistryError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = ?1"),
                [serial.to_ascii_uppercase()],
                cert_from_row,
            )
            .optional()?)
    }

    /// All certificates, oldest first.
    pub fn certificates(&self) -> Result<Vec<CertRecord>, RegistryError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates ORDER BY id"
        ))?;
        let rows = st.query_map((), cert_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records (or refreshes) a station.
    pub fn register_station(&self, name: &str, port: Option<&str>) -> Result<(), RegistryError> {
        let now = now_rfc3339();
        self.conn.execute(
            "INSERT INTO stations (name, port, first_seen, last_seen) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(name) DO UPDATE SET port = ?2, last_seen = ?3",
            params![name, port, now],
        )?;
        Ok(())
    }

    /// All stations.
    pub fn stations(&self) -> Result<Vec<StationRecord>, RegistryError> {
        let mut st = self
            .conn
            .prepare("SELECT name, port, first_seen, last_seen FROM stations ORDER BY name")?;
        let rows = st.query_map((), |r| {
            Ok(StationRecord {
                name: r.get(0)?,
                port: r.get(1)?,
                first_seen: r.get(2)?,
                last_seen: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Appends one step to the audit log, as the next record of the chain, in its own
    /// transaction: an error means nothing was recorded (and the step must fail).
    pub fn audit(
        &self,
        station: Option<&str>,
        chip: Option<ChipSerial>,
        step: &str,
        outcome: Outcome,
        detail: &str,
    ) -> Result<(), RegistryError> {
        let tx = self.conn.write_transaction()?;
        let entry = StepRecord {
            station,
            step,
            outcome,
            detail,
        };
        insert_audit(&tx, self.record_signer.as_deref(), chip, &entry)?;
        tx.commit()?;
        Ok(())
    }

    /// The station (`host:port`) whose `issue` step last succeeded for this chip: which host
    /// issued its certificate, when several share the registry.
    pub fn issuing_station(&self, chip: ChipSerial) -> Result<Option<String>, RegistryError> {
        Ok(self
            .conn
            .query_row(
                "SELECT station FROM audit WHERE chip_serial = ?1 AND step = 'issue'
                 AND outcome = 'ok' ORDER BY id DESC LIMIT 1",
                [chip.to_string()],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// The audit log of one chip (or, with `None`, everything), in order.
    pub fn audit_log(&self, chip: Option<ChipSerial>) -> Result<Vec<AuditRecord>, RegistryError> {
        let map = |r: &Row| {
            Ok(AuditRecord {
                id: r.get(0)?,
                time: r.get(1)?,
                station: r.get(2)?,
                chip_serial: chip_from_sql(r.get(3)?)?,
                step: r.get(4)?,
                outcome: Outcome::parse(&r.get::<_, String>(5)?)?,
                detail: r.get(6)?,
            })
        };
        let sql = "SELECT id, time, station, chip_serial, step, outcome, detail FROM audit";
        let rows: Vec<AuditRecord> = match chip {
            Some(c) => {
                let mut st = self
                    .conn
                    .prepare(&format!("{sql} WHERE chip_serial = ?1 ORDER BY id"))?;
                st.query_map([c.to_string()], map)?
                    .collect::<Result<_, _>>()?
            }
            None => {
                let mut st = self.conn.prepare(&format!("{sql} ORDER BY id"))?;
                st.query_map((), map)?.collect::<Result<_, _>>()?
            }
        };
        Ok(rows)
    }
}

/// For tests: the registries to run a test against.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::{Registry, chain, pg_cluster};

    /// An in-memory SQLite registry, and a migrated registry in a fresh PostgreSQL database
    /// when the server is installed (else the printed reason it is skipped). Each comes with
    /// what keeps its server alive.
    pub(crate) fn registries(test: &str) -> Vec<(Registry, Option<Arc<pg_cluster::PgCluster>>)> {
        let mut all = vec![(Registry::open_in_memory().expect("sqlite"), None)];
        if let Some(cluster) = pg_cluster::skip_or_fail(&format!("{test} on PostgreSQL")) {
            let url = cluster.new_database().expect("database");
            Registry::migrate_postgres(&url).expect("migrate");
            let mut reg = Registry::open_postgres(&url).expect("open");
            reg.set_record_signer(Box::new(chain::EphemeralKey::generate().expect("key")));
            all.push((reg, Some(cluster)));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHIP: ChipSerial = ChipSerial([0x01, 0x23, 1, 2, 3, 4, 5, 6, 0xEE]);

    /// A version-1 database (before ids) migrates to one without an id; an id is set once and
    /// never changed; `open_project` refuses a 0-byte file and a differing id.
    #[test]
    fn registry_id_is_set_once_and_checked_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(reg.id().unwrap(), None);
        reg.set_id("aa").unwrap();
        reg.set_id("aa").unwrap();
        assert!(matches!(reg.set_id("bb"), Err(RegistryError::HasId(id)) if id == "aa"));
        drop(reg);
        Registry::open_project(&path, Some("aa")).unwrap();
        Registry::open_project(&path, None).unwrap();
        assert!(matches!(
            Registry::open_project(&path, Some("bb")),
            Err(RegistryError::Foreign { found: Some(f), .. }) if f == "aa"
        ));

        let empty = tmp.path().join("empty.sqlite");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            Registry::open_project(&empty, None),
            Err(RegistryError::Empty(_))
        ));
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
        assert!(matches!(
            Registry::create(&empty),
            Err(RegistryError::Exists(_))
        ));
        let (fresh, id) = Registry::create(&tmp.path().join("new.sqlite")).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(fresh.id().unwrap().as_deref(), Some(id.as_str()));
    }

    fn req<'a>(serial: &'a [u8], pk: &'a [u8; 64], chip: ChipSerial) -> IssueRequest<'a> {
        IssueRequest {
            kind: CertKind::Device,
            chip_serial: Some(chip),
            serial,
            public_key: pk,
            subject_cn: "dev",
            der: b"\x30\x00",
            not_before: "2026-01-01T00:00:00Z",
            not_after: "2046-01-01T00:00:00Z",
        }
    }

    #[test]
    fn write_ahead_then_written_then_verified() {
        for (mut reg, _server) in
            super::testing::registries("write_ahead_then_written_then_verified")
        {
            assert_eq!(reg.schema_version().expect("v"), SCHEMA_VERSION);
            let pk = [7u8; 64];
            let out = reg.begin_issue(&req(&[0x40, 1], &pk, CHIP)).expect("issue");
            let IssueOutcome::New(rec) = out else {
                panic!("expected a new record")
            };
            assert_eq!(rec.status, CertStatus::Pending);
            assert_eq!(rec.serial, "4001");
            assert_eq!(
                reg.device(CHIP).expect("q").expect("device").state,
                DeviceState::Issuing
            );

            let rec = reg.mark_written("4001").expect("written");
            assert_eq!(rec.status, CertStatus::Issued);
            assert_eq!(
                reg.device(CHIP).expect("q").expect("d").state,
                DeviceState::Written
            );
            let rec = reg.mark_verified("4001").expect("verified");
            assert_eq!(rec.status, CertStatus::Verified);
            assert_eq!(
                reg.device(CHIP).expect("q").expect("d").state,
                DeviceState::Provisioned
            );
            // Idempotent, never backwards.
            reg.mark_verified("4001").expect("again");
            let e = reg.mark_written("4001").expect_err("backwards");
            assert!(matches!(e, RegistryError::BadTransition { .. }), "{e}");
            assert!(matches!(
                reg.mark_written("FFFF").expect_err("unknown"),
                RegistryError::UnknownCertificate(_)
            ));
        }
    }

    #[test]
    fn rerun_with_same_key_reuses_instead_of_issuing_again() {
        for (mut reg, _server) in
            super::testing::registries("rerun_with_same_key_reuses_instead_of_issuing_again")
        {
            let pk = [7u8; 64];
            let first = reg.begin_issue(&req(&[0x40, 1], &pk, CHIP)).expect("issue");
            // Interrupted after write-ahead; the rerun builds a fresh cert (new serial) for the
            // same chip and key and must get the first one back.
            let second = reg.begin_issue(&req(&[0x40, 2], &pk, CHIP)).expect("rerun");
            assert!(matches!(second, IssueOutcome::Reused(_)));
            assert_eq!(second.record(), first.record());
            assert_eq!(reg.certificates().expect("all").len(), 1);
            assert!(reg.certificate("4002").expect("q").is_none());
            // Still reused after it was written and verified.
            reg.mark_written("4001").expect("w");
            reg.mark_verified("4001").expect("v");
            let third = reg.begin_issue(&req(&[0x40, 3], &pk, CHIP)).expect("rerun");
            assert_eq!(third.record().serial, "4001");
            assert_eq!(third.record().status, CertStatus::Verified);
        }
    }

    #[test]
    fn new_key_supersedes_unverified_but_not_verified() {
        for (mut reg, _server) in
            super::testing::registries("new_key_supersedes_unverified_but_not_verified")
        {
            reg.begin_issue(&req(&[0x40, 1], &[1u8; 64], CHIP))
                .expect("issue");
            reg.mark_written("4001").expect("w");
            let out = reg
                .begin_issue(&req(&[0x40, 2], &[2u8; 64], CHIP))
                .expect("new key");
            assert!(matches!(out, IssueOutcome::New(_)));
            let all = reg.certificates_for(CHIP).expect("all");
            let statuses: Vec<_> = all.iter().map(|c| c.status).collect();
            assert_eq!(statuses, [CertStatus::Superseded, CertStatus::Pending]);
            assert_eq!(
                reg.live_certificate(CHIP).expect("q").expect("live").serial,
                "4002"
            );
            // A superseded certificate can never come back.
            assert!(matches!(
                reg.mark_written("4001").expect_err("superseded"),
                RegistryError::BadTransition { .. }
            ));
            reg.mark_verified("4002").expect("v");
            let e = reg
                .begin_issue(&req(&[0x40, 3], &[3u8; 64], CHIP))
                .expect_err("verified");
            assert!(matches!(e, RegistryError::AlreadyProvisioned { .. }), "{e}");
            assert_eq!(reg.certificates().expect("all").len(), 2);
        }
    }

    #[test]
    fn certificate_serials_are_unique_across_chips() {
        for (mut reg, _server) in
            super::testing::registries("certificate_serials_are_unique_across_chips")
        {
            reg.begin_issue(&req(&[0x40, 1], &[1u8; 64], CHIP))
                .expect("issue");
            let other = ChipSerial([9; 9]);
            let e = reg
                .begin_issue(&req(&[0x40, 1], &[2u8; 64], other))
                .expect_err("dup");
            assert!(matches!(e, RegistryError::DuplicateSerial(_)), "{e}");
            // The failed transaction left nothing behind for the other chip.
            assert!(reg.device(other).expect("q").is_none());
        }
    }

    #[test]
    fn audit_and_stations() {
        for (reg, _server) in super::testing::registries("audit_and_stations") {
            reg.register_station("st1", Some("/dev/ttyUSB0"))
                .expect("station");
            reg.register_station("st1", Some("/dev/ttyUSB1"))
                .expect("station again");
            let st = reg.stations().expect("stations");
            assert_eq!(st.len(), 1);
            assert_eq!(st[0].port.as_deref(), Some("/dev/ttyUSB1"));
            reg.audit(Some("st1"), Some(CHIP), "probe", Outcome::Ok, "hello")
                .expect("a");
            reg.audit(Some("st1"), None, "open_port", Outcome::Failed, "busy")
                .expect("a");
            let log = reg.audit_log(Some(CHIP)).expect("log");
            assert_eq!(log.len(), 1);
            assert_eq!(
                (log[0].step.as_str(), log[0].outcome),
                ("probe", Outcome::Ok)
            );
            assert_eq!(reg.audit_log(None).expect("all").len(), 2);
        }
    }

    #[test]
    fn reopen_keeps_data_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        {
            let mut reg = Registry::open(&path).expect("open");
            reg.set_record_signer(Box::new(chain::EphemeralKey::generate().expect("key")));
            reg.begin_issue(&req(&[0x40, 1], &[1u8; 64], CHIP))
                .expect("issue");
        }
        let reg = Registry::open(&path).expect("reopen");
        assert_eq!(reg.certificates().expect("all").len(), 1);
        reg.conn
            .as_sqlite()
            .expect("sqlite")
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(reg);
        let e = Registry::open(&path).expect_err("newer");
        assert!(matches!(e, RegistryError::NewerSchema(_)), "{e}");
    }

    /// Stations never change the schema: an unmigrated PostgreSQL registry is refused with
    /// the command that fixes it, and a role with only SELECT, INSERT and UPDATE (the grants
    /// docs/factory-guide.md gives stations) issues but cannot migrate.
    #[test]
    fn postgres_stations_need_a_migrated_schema_and_no_ddl_rights() {
        let Some(cluster) = pg_cluster::skip_or_fail("postgres_stations_need_no_ddl_rights") else {
            return;
        };
        let url = cluster.new_database().expect("db");
        let e = Registry::open_postgres(&url).expect_err("unmigrated");
        assert!(
            matches!(e, RegistryError::MigrationNeeded { version: 0 }),
            "{e}"
        );
        assert!(e.to_string().contains("keystamp registry migrate"), "{e}");
        assert_eq!(
            Registry::migrate_postgres(&url).expect("migrate"),
            (0, SCHEMA_VERSION)
        );
        // Idempotent: a second host migrating finds nothing to do.
        assert_eq!(
            Registry::migrate_postgres(&url).expect("again"),
            (SCHEMA_VERSION, SCHEMA_VERSION)
        );
        let db = url.rsplit('/').next().expect("db name");
        cluster
            .execute(
                db,
                "CREATE ROLE station LOGIN;
                 GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO station;
                 GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO station;",
            )
            .expect("role");
        let station_url = url.replace("postgres@", "station@");
        let mut reg = Registry::open_postgres(&station_url).expect("station opens");
        reg.set_record_signer(Box::new(chain::EphemeralKey::generate().expect("key")));
        reg.begin_issue(&req(&[0x40, 1], &[1u8; 64], CHIP))
            .expect("station issues");
        reg.mark_written("4001").expect("station records");
        let e = Registry::migrate_postgres(&station_url).expect_err("no DDL rights");
        assert!(matches!(e, RegistryError::Database(_)), "{e}");
        // A schema from a newer keystamp is refused too.
        cluster
            .execute(
                db,
                &format!(
                    "UPDATE keystamp_schema SET version = {}",
                    SCHEMA_VERSION + 1
                ),
            )
            .expect("bump");
        assert!(matches!(
            Registry::open_postgres(&station_url),
            Err(RegistryError::NewerSchema(_))
        ));
    }

    #[test]
    fn chip_serial_parses_and_prints() {
        let c: ChipSerial = "0123010203040506ee".parse().expect("parse");
        assert_eq!(c, ChipSerial([0x01, 0x23, 1, 2, 3, 4, 5, 6, 0xEE]));
        assert_eq!(c.to_string(), "0123010203040506EE");
        assert!("0123".parse::<ChipSerial>().is_err());
    }
}
