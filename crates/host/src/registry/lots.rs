//! Lots: which chips a project may issue to, and how many.
//!
//! A *listed* lot names its chip serials (imported from a reel's serial list); a *counted* lot
//! only has a size (`lot create --count N`, for chips whose serials are not known beforehand).
//! A chip takes one place in a lot the first time a certificate is issued to it; the place is
//! taken inside [`Registry::begin_issue`]'s `BEGIN IMMEDIATE` transaction (the same one as the
//! write-ahead record), and `CHECK (used <= count)` holds in SQL as well, so two stations can
//! never both take a lot's last place. [`Registry::admit`] asks the same questions read-only at
//! the probe step, so a refusal comes before anything is written to the chip.

use std::fmt;

use super::backend::{Connection, DbError, OptionalExt, Row, params};
use serde::Serialize;

use super::{ChipSerial, Registry, RegistryError, now_rfc3339};
use crate::project::is_simulated_serial;

/// The schema lots add (version 2).
pub(super) const SCHEMA_V2: &str = "
CREATE TABLE lots (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('listed', 'counted')),
    count       INTEGER NOT NULL CHECK (count > 0),
    used        INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= count),
    status      TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    source      TEXT,
    created_at  TEXT NOT NULL,
    closed_at   TEXT
);
CREATE TABLE lot_serials (
    lot_id      INTEGER NOT NULL REFERENCES lots(id),
    chip_serial TEXT NOT NULL,
    PRIMARY KEY (lot_id, chip_serial)
);
CREATE INDEX lot_serials_chip ON lot_serials(chip_serial);
ALTER TABLE devices ADD COLUMN lot_id INTEGER REFERENCES lots(id);
ALTER TABLE devices ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0 CHECK (simulated IN (0, 1));
";

/// What the registry enforces at issuance, from the project's mode and profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IssuancePolicy {
    /// Every device must be in an open lot (production), even when no lot is open.
    pub lot_required: bool,
    /// Certificates a chip may get after its first (`[issuance] max_reissues`); `None`: no cap.
    pub max_reissues: Option<u32>,
    /// Refuse chips whose serial is in the simulated range (production).
    pub refuse_simulated: bool,
}

/// Whether a lot names its serials or only counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LotKind {
    /// Imported serials: only those chips.
    Listed,
    /// A number of chips whose serials are not known in advance.
    Counted,
}

impl LotKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Listed => "listed",
            Self::Counted => "counted",
        }
    }
}

impl fmt::Display for LotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LotRecord {
    /// Row id.
    pub id: i64,
    /// Name (unique).
    pub name: String,
    /// Listed or counted.
    pub kind: LotKind,
    /// How many chips it may hold.
    pub count: u64,
    /// How many chips have taken a place (a certificate was issued to them).
    pub used: u64,
    /// Open (issuing) or closed.
    pub open: bool,
    /// The file the serials came from (listed lots).
    pub source: Option<String>,
    /// When created, RFC 3339.
    pub created_at: String,
    /// When closed, RFC 3339.
    pub closed_at: Option<String>,
}

/// Where a device stands with lots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceOrigin {
    /// The lot it took a place in, if any.
    pub lot: Option<String>,
    /// Its serial is in the simulated range.
    pub simulated: bool,
}

/// Why a lot refused or a lot operation failed. Display is one line saying what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LotError {
    /// Open lots exist but none lists this chip and no counted lot is open.
    NotInOpenLot(ChipSerial),
    /// The lot has no free place.
    Full {
        /// Lot name.
        lot: String,
        /// Places taken.
        used: u64,
        /// Size.
        count: u64,
    },
    /// The project requires a lot (production) and none is open.
    NoOpenLot(ChipSerial),
    /// The chip took its place in a lot that is now closed.
    Closed {
        /// Lot name.
        lot: String,
        /// The chip.
        chip: ChipSerial,
    },
    /// The chip already had as many certificates as the profile allows.
    ReissueLimit {
        /// The chip.
        chip: ChipSerial,
        /// Certificates it already has.
        issued: u64,
        /// `[issuance] max_reissues`.
        max_reissues: u32,
    },
    /// A simulated serial in a project that refuses them.
    Simulated(ChipSerial),
    /// No lot with that name.
    Unknown(String),
    /// A lot with that name exists.
    NameTaken(String),
    /// A lot needs at least one chip.
    Empty,
    /// More chips than a lot holds.
    TooLarge(u64),
    /// A lot name that is empty, too long or not printable.
    BadName,
}

impl fmt::Display for LotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInOpenLot(chip) => write!(
                f,
                "serial {chip} is not in any open lot: set the device aside, or import its \
                 reel's serial list (`keystamp lot import FILE`)"
            ),
            Self::Full { lot, used, count } => write!(
                f,
                "lot {lot} is full: {used}/{count} (open another lot to issue more)"
            ),
            Self::NoOpenLot(chip) => write!(
                f,
                "serial {chip} is not in any open lot and this production project has none: \
                 `keystamp lot import FILE` or `keystamp lot create --count N` first"
            ),
            Self::Closed { lot, chip } => write!(
                f,
                "serial {chip} belongs to lot {lot}, which is closed: nothing more is issued to it"
            ),
            Self::ReissueLimit {
                chip,
                issued,
                max_reissues,
            } => write!(
                f,
                "chip {chip} already has {issued} certificate(s) and [issuance] max_reissues = \
                 {max_reissues}: not issuing another (a chip whose key keeps changing may be a \
                 clone; investigate it)"
            ),
            Self::Simulated(chip) => write!(
                f,
                "serial {chip} is a simulated chip's (first byte EE): a production project \
                 issues only to real chips"
            ),
            Self::Unknown(name) => write!(f, "no lot named {name:?} (see `keystamp lot list`)"),
            Self::NameTaken(name) => {
                write!(
                    f,
                    "a lot named {name:?} exists already: choose another --name"
                )
            }
            Self::Empty => f.write_str("a lot needs at least one chip"),
            Self::BadName => f.write_str(
                "a lot name is 1 to 64 printable characters without spaces at either end",
            ),
            Self::TooLarge(n) => write!(
                f,
                "{n} chips is more than one lot holds ({MAX_LOT_COUNT}): split it"
            ),
        }
    }
}

impl std::error::Error for LotError {}

impl From<LotError> for RegistryError {
    fn from(e: LotError) -> Self {
        Self::Lot(e)
    }
}

/// The largest lot (a bound on `--count` and on imported lists).
pub const MAX_LOT_COUNT: u64 = 10_000_000;

const LOT_COLUMNS: &str = "id, name, kind, count, used, status, source, created_at, closed_at";

fn lot_from_row(r: &Row) -> Result<LotRecord, DbError> {
    let kind = match r.get::<_, String>(2)?.as_str() {
        "listed" => LotKind::Listed,
        _ => LotKind::Counted,
    };
    let count: i64 = r.get(3)?;
    let used: i64 = r.get(4)?;
    Ok(LotRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        kind,
        count: u64::try_from(count).unwrap_or(0),
        used: u64::try_from(used).unwrap_or(0),
        open: r.get::<_, String>(5)? == "open",
        source: r.get(6)?,
        created_at: r.get(7)?,
        closed_at: r.get(8)?,
    })
}

fn lot_by_id(conn: &Connection, id: i64) -> Result<LotRecord, RegistryError> {
    Ok(conn.query_row(
        &format!("SELECT {LOT_COLUMNS} FROM lots WHERE id = ?1"),
        [id],
        lot_from_row,
    )?)
}

/// The lot a chip would take a place in, or `None` when no lot binds it. Read-only.
fn choose_lot(
    conn: &Connection,
    chip: ChipSerial,
    policy: IssuancePolicy,
) -> Result<Option<LotRecord>, RegistryError> {
    let listed = conn
        .query_row(
            &format!(
                "SELECT {LOT_COLUMNS} FROM lots WHERE status = 'open' AND kind = 'listed'
                 AND id IN (SELECT lot_id FROM lot_serials WHERE chip_serial = ?1)
                 ORDER BY id LIMIT 1"
            ),
            [chip.to_string()],
            lot_from_row,
        )
        .optional()?;
    if let Some(lot) = listed {
        return if lot.used < lot.count {
            Ok(Some(lot))
        } else {
            Err(LotError::Full {
                lot: lot.name,
                used: lot.used,
                count: lot.count,
            }
            .into())
        };
    }
    let counted: Vec<LotRecord> = {
        let mut st = conn.prepare(&format!(
            "SELECT {LOT_COLUMNS} FROM lots WHERE status = 'open' AND kind = 'counted' ORDER BY id"
        ))?;
        st.query_map((), lot_from_row)?.collect::<Result<_, _>>()?
    };
    if let Some(free) = counted.iter().find(|l| l.used < l.count) {
        return Ok(Some(free.clone()));
    }
    if let Some(full) = counted.into_iter().next() {
        return Err(LotError::Full {
            lot: full.name,
            used: full.used,
            count: full.count,
        }
        .into());
    }
    let any_open: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM lots WHERE status = 'open')",
        (),
        |r| r.get(0),
    )?;
    if any_open {
        return Err(LotError::NotInOpenLot(chip).into());
    }
    if policy.lot_required {
        return Err(LotError::NoOpenLot(chip).into());
    }
    Ok(None)
}

/// The device's lot (if it took a place) and how many device certificates it has.
fn device_standing(
    conn: &Connection,
    chip: ChipSerial,
) -> Result<(Option<i64>, u64, bool), RegistryError> {
    let chip_s = chip.to_string();
    let lot: Option<i64> = conn
        .query_row(
            "SELECT lot_id FROM devices WHERE chip_serial = ?1",
            [&chip_s],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let (issued, verified): (i64, bool) = conn.query_row(
        "SELECT COUNT(*), COALESCE(MAX(CASE WHEN status = 'verified' THEN 1 ELSE 0 END), 0) FROM certificates
         WHERE chip_serial = ?1 AND kind = 'device'",
        [&chip_s],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((lot, u64::try_from(issued).unwrap_or(u64::MAX), verified))
}

fn check_common(
    chip: ChipSerial,
    policy: IssuancePolicy,
    issued: u64,
) -> Result<(), RegistryError> {
    if policy.refuse_simulated && is_simulated_serial(&chip.0) {
        return Err(LotError::Simulated(chip).into());
    }
    if let Some(max) = policy.max_reissues
        && issued > u64::from(max)
    {
        return Err(LotError::ReissueLimit {
            chip,
            issued,
            max_reissues: max,
        }
        .into());
    }
    Ok(())
}

/// Takes the chip's place for a new certificate, inside the caller's issuance transaction:
/// checks the policy, the chip's lot (or finds one with a free place), counts the place and
/// records the device's lot and whether it is simulated. Called by [`Registry::begin_issue`]
/// only when a new certificate is about to be recorded for the chip.
pub(super) fn claim(
    conn: &Connection,
    chip: ChipSerial,
    policy: IssuancePolicy,
    now: &str,
) -> Result<(), RegistryError> {
    let (lot, issued, _) = device_standing(conn, chip)?;
    check_common(chip, policy, issued)?;
    let lot_id = match lot {
        Some(id) => {
            let lot = lot_by_id(conn, id)?;
            if !lot.open {
                return Err(LotError::Closed {
                    lot: lot.name,
                    chip,
                }
                .into());
            }
            Some(id)
        }
        None => match choose_lot(conn, chip, policy)? {
            Some(lot) => {
                // CHECK (used <= count) makes an overdraw fail in SQL even if the check above
                // were wrong; the transaction is IMMEDIATE, so no other station sits in between.
                conn.execute(
                    "UPDATE lots SET used = used + 1 WHERE id = ?1 AND status = 'open'",
                    [lot.id],
                )?;
                Some(lot.id)
            }
            None => None,
        },
    };
    conn.execute(
        "INSERT INTO devices (chip_serial, state, created_at, updated_at)
         VALUES (?1, 'new', ?2, ?2) ON CONFLICT(chip_serial) DO NOTHING",
        params![chip.to_string(), now],
    )?;
    conn.execute(
        "UPDATE devices SET lot_id = ?2, simulated = ?3 WHERE chip_serial = ?1",
        params![chip.to_string(), lot_id, is_simulated_serial(&chip.0)],
    )?;
    Ok(())
}

impl Registry {
    /// Sets what [`Registry::begin_issue`] enforces (from the project's mode and profile).
    pub fn set_issuance_policy(&mut self, policy: IssuancePolicy) {
        self.policy = policy;
    }

    /// The probe step's check, before anything is written to the chip: may this chip get a
    /// certificate? `new_key`: the chip's data zone is unlocked, so a new key (and so a new
    /// certificate) would follow. Records whether the device is simulated. The issuance
    /// transaction checks again; this early answer is for a clear refusal at no cost.
    pub fn admit(&self, chip: ChipSerial, new_key: bool) -> Result<(), RegistryError> {
        let (lot, issued, verified) = device_standing(&self.conn, chip)?;
        self.conn.execute(
            "UPDATE devices SET simulated = ?2 WHERE chip_serial = ?1",
            params![chip.to_string(), is_simulated_serial(&chip.0)],
        )?;
        // A chip that already holds a certificate is re-run to resume or re-verify; the same
        // key gets the same certificate without a new place.
        let resume = issued > 0 && !new_key;
        check_common(chip, self.policy, if resume { 0 } else { issued })?;
        if lot.is_some() || resume || verified {
            return Ok(());
        }
        choose_lot(&self.conn, chip, self.policy).map(|_| ())
    }

    /// A device's lot and whether it is simulated (`None` if the chip is unknown).
    pub fn device_origin(&self, chip: ChipSerial) -> Result<Option<DeviceOrigin>, RegistryError> {
        Ok(self
            .conn
            .query_row(
                "SELECT l.name, d.simulated FROM devices d LEFT JOIN lots l ON l.id = d.lot_id
                 WHERE d.chip_serial = ?1",
                [chip.to_string()],
                |r| {
                    Ok(DeviceOrigin {
                        lot: r.get(0)?,
                        simulated: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Creates an open listed lot of `serials` (duplicates count once). Returns the lot.
    pub fn import_lot(
        &mut self,
        name: &str,
        serials: &[ChipSerial],
        source: Option<&str>,
    ) -> Result<LotRecord, RegistryError> {
        let mut unique: Vec<String> = serials.iter().map(ChipSerial::to_string).collect();
        unique.sort_unstable();
        unique.dedup();
        let count = u64::try_from(unique.len()).unwrap_or(u64::MAX);
        let tx = self.conn.write_transaction()?;
        let id = insert_lot(&tx, name, LotKind::Listed, count, source)?;
        {
            let mut st =
                tx.prepare("INSERT INTO lot_serials (lot_id, chip_serial) VALUES (?1, ?2)")?;
            for s in &unique {
                st.execute(params![id, s])?;
            }
        }
        let lot = lot_by_id(&tx, id)?;
        tx.commit()?;
        Ok(lot)
    }

    /// Creates an open counted lot of `count` chips.
    pub fn create_lot(&mut self, name: &str, count: u64) -> Result<LotRecord, RegistryError> {
        let tx = self.conn.write_transaction()?;
        let id = insert_lot(&tx, name, LotKind::Counted, count, None)?;
        let lot = lot_by_id(&tx, id)?;
        tx.commit()?;
        Ok(lot)
    }

    /// A name for the next lot: `lot-N`, N one more than the number of lots.
    pub fn next_lot_name(&self) -> Result<String, RegistryError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM lots", (), |r| r.get(0))?;
        Ok(format!("lot-{}", n + 1))
    }

    /// All lots, oldest first.
    pub fn lots(&self) -> Result<Vec<LotRecord>, RegistryError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {LOT_COLUMNS} FROM lots ORDER BY id"))?;
        let rows = st.query_map((), lot_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A lot by name.
    pub fn lot(&self, name: &str) -> Result<LotRecord, RegistryError> {
        self.conn
            .query_row(
                &format!("SELECT {LOT_COLUMNS} FROM lots WHERE name = ?1"),
                [name],
                lot_from_row,
            )
            .optional()?
            .ok_or_else(|| LotError::Unknown(name.to_string()).into())
    }

    /// The chips that took a place in a lot, in order.
    pub fn lot_devices(&self, name: &str) -> Result<Vec<ChipSerial>, RegistryError> {
        let lot = self.lot(name)?;
        let mut st = self
            .conn
            .prepare("SELECT chip_serial FROM devices WHERE lot_id = ?1 ORDER BY chip_serial")?;
        let rows: Vec<String> = st
            .query_map([lot.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows.iter().filter_map(|s| s.parse().ok()).collect())
    }

    /// Closes a lot: no chip gets a certificate from it any more. Idempotent.
    pub fn close_lot(&mut self, name: &str) -> Result<LotRecord, RegistryError> {
        let lot = self.lot(name)?;
        self.conn.execute(
            "UPDATE lots SET status = 'closed', closed_at = ?2 WHERE id = ?1 AND status = 'open'",
            params![lot.id, now_rfc3339()],
        )?;
        lot_by_id(&self.conn, lot.id)
    }
}

fn insert_lot(
    conn: &Connection,
    name: &str,
    kind: LotKind,
    count: u64,
    source: Option<&str>,
) -> Result<i64, RegistryError> {
    if name.is_empty()
        || name.len() > 64
        || name.trim() != name
        || name.chars().any(char::is_control)
    {
        return Err(LotError::BadName.into());
    }
    if count == 0 {
        return Err(LotError::Empty.into());
    }
    if count > MAX_LOT_COUNT {
        return Err(LotError::TooLarge(count).into());
    }
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM lots WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?;
    if exists {
        return Err(LotError::NameTaken(name.to_string()).into());
    }
    Ok(conn.insert_id(
        "INSERT INTO lots (name, kind, count, used, status, source, created_at)
         VALUES (?1, ?2, ?3, 0, 'open', ?4, ?5)",
        params![
            name,
            kind.as_str(),
            i64::try_from(count).unwrap_or(i64::MAX),
            source,
            now_rfc3339()
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CertKind, IssueOutcome, IssueRequest};

    const A: ChipSerial = ChipSerial([0x01, 0x23, 0, 0, 0, 0, 0, 0, 0xA1]);
    const B: ChipSerial = ChipSerial([0x01, 0x23, 0, 0, 0, 0, 0, 0, 0xB2]);
    const C: ChipSerial = ChipSerial([0x01, 0x23, 0, 0, 0, 0, 0, 0, 0xC3]);
    const SIM: ChipSerial = ChipSerial([0xEE, 0x23, 0, 0, 0, 0, 0, 0, 0xEE]);

    /// A device certificate request; `n` makes serial and key unique.
    fn issue(reg: &mut Registry, chip: ChipSerial, n: u8) -> Result<IssueOutcome, RegistryError> {
        let mut serial = [0x40u8; 10];
        serial[1..].copy_from_slice(&chip.0);
        serial[9] ^= n;
        let pk = [n; 64];
        reg.begin_issue(&IssueRequest {
            kind: CertKind::Device,
            chip_serial: Some(chip),
            serial: &serial,
            public_key: &pk,
            subject_cn: "dev",
            der: b"\x30\x00",
            not_before: "2026-01-01T00:00:00Z",
            not_after: "2046-01-01T00:00:00Z",
        })
    }

    fn lot_err(r: Result<impl fmt::Debug, RegistryError>) -> LotError {
        match r {
            Err(RegistryError::Lot(e)) => e,
            other => panic!("expected a lot refusal, got {other:?}"),
        }
    }

    #[test]
    fn without_lots_development_issues_freely() {
        for (mut reg, _server) in
            crate::registry::testing::registries("without_lots_development_issues_freely")
        {
            reg.admit(A, true).expect("admit");
            issue(&mut reg, A, 1).expect("issue");
            assert_eq!(
                reg.device_origin(A).expect("q"),
                Some(DeviceOrigin {
                    lot: None,
                    simulated: false
                })
            );
        }
    }

    #[test]
    fn a_serial_outside_every_open_lot_is_refused_at_probe_and_at_issuance() {
        for (mut reg, _server) in crate::registry::testing::registries(
            "a_serial_outside_every_open_lot_is_refused_at_probe_and_at_issuance",
        ) {
            reg.upsert_device(C).expect("seen");
            let lot = reg.import_lot("reel-1", &[A, B, A], None).expect("import");
            assert_eq!((lot.count, lot.used, lot.kind), (2, 0, LotKind::Listed));
            assert_eq!(lot_err(reg.admit(C, true)), LotError::NotInOpenLot(C));
            let e = lot_err(issue(&mut reg, C, 1));
            assert_eq!(e, LotError::NotInOpenLot(C));
            assert!(
                e.to_string()
                    .starts_with(&format!("serial {C} is not in any open lot"))
            );
            // Nothing recorded for the refused chip.
            assert!(reg.certificates_for(C).expect("q").is_empty());
            reg.admit(A, true).expect("listed");
            issue(&mut reg, A, 1).expect("listed chip issues");
            assert_eq!(reg.lot("reel-1").expect("lot").used, 1);
            assert_eq!(reg.lot_devices("reel-1").expect("devices"), [A]);
            // A same-key rerun reuses and takes no second place.
            assert!(matches!(issue(&mut reg, A, 1), Ok(IssueOutcome::Reused(_))));
            assert_eq!(reg.lot("reel-1").expect("lot").used, 1);
        }
    }

    #[test]
    fn the_lots_n_plus_first_device_is_refused() {
        for (mut reg, _server) in
            crate::registry::testing::registries("the_lots_n_plus_first_device_is_refused")
        {
            reg.create_lot("batch", 2).expect("create");
            issue(&mut reg, A, 1).expect("1st");
            issue(&mut reg, B, 2).expect("2nd");
            let full = LotError::Full {
                lot: "batch".into(),
                used: 2,
                count: 2,
            };
            assert_eq!(
                full.to_string(),
                "lot batch is full: 2/2 (open another lot to issue more)"
            );
            assert_eq!(lot_err(reg.admit(C, true)), full);
            assert_eq!(lot_err(issue(&mut reg, C, 3)), full);
            assert_eq!(reg.lot("batch").expect("lot").used, 2);
            // A chip that took its place may still be re-issued (new key) within the cap.
            issue(&mut reg, A, 4).expect("re-issue in place");
            assert_eq!(reg.lot("batch").expect("lot").used, 2);
            // Another lot opens more places.
            reg.create_lot("batch-2", 1).expect("create");
            issue(&mut reg, C, 3).expect("next lot");
            assert_eq!(
                reg.device_origin(C)
                    .expect("q")
                    .and_then(|o| o.lot)
                    .as_deref(),
                Some("batch-2")
            );
        }
    }

    #[test]
    fn the_sql_constraint_alone_refuses_an_overdrawn_lot() {
        for (reg, _server) in crate::registry::testing::registries(
            "the_sql_constraint_alone_refuses_an_overdrawn_lot",
        ) {
            reg.conn
                .execute(
                    "INSERT INTO lots (name, kind, count, used, status, created_at)
                 VALUES ('x', 'counted', 1, 1, 'open', 'now')",
                    (),
                )
                .expect("insert");
            let e = reg
                .conn
                .execute("UPDATE lots SET used = used + 1 WHERE name = 'x'", ())
                .expect_err("beyond count");
            assert!(e.is_check_violation(), "{e}");
        }
    }

    #[test]
    fn two_stations_racing_for_the_last_place_one_wins() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        race_for_the_last_place(&|| Registry::open(&path).expect("open"));
        // The same on PostgreSQL, the two stations on two connections (two hosts).
        if let Some(cluster) = crate::registry::pg_cluster::skip_or_fail(
            "two_stations_racing_for_the_last_place_one_wins on PostgreSQL",
        ) {
            let url = cluster.new_database().expect("db");
            Registry::migrate_postgres(&url).expect("migrate");
            race_for_the_last_place(&|| Registry::open_postgres(&url).expect("open"));
        }
    }

    /// Two stations, each with its own connection from `open`, issue at once into a lot with
    /// one place left: one wins, the other is told the lot is full.
    fn race_for_the_last_place(open: &(dyn Fn() -> Registry + Sync)) {
        let mut reg = open();
        reg.set_record_signer(Box::new(
            super::super::chain::EphemeralKey::generate().expect("key"),
        ));
        reg.create_lot("last", 1).expect("create");
        drop(reg);
        let barrier = std::sync::Barrier::new(2);
        let results: Vec<Result<IssueOutcome, RegistryError>> = std::thread::scope(|s| {
            let handles: Vec<_> = [(A, 1u8), (B, 2u8)]
                .into_iter()
                .map(|(chip, n)| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        let mut reg = open();
                        reg.set_record_signer(Box::new(
                            super::super::chain::EphemeralKey::generate().expect("key"),
                        ));
                        barrier.wait();
                        issue(&mut reg, chip, n)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        let lost = results.into_iter().find(Result::is_err).expect("a loser");
        assert!(matches!(
            lot_err(lost),
            LotError::Full {
                used: 1,
                count: 1,
                ..
            }
        ));
        let reg = open();
        assert_eq!(reg.lot("last").expect("lot").used, 1);
        // The count matches the registry: one device holds the lot's one place.
        assert_eq!(reg.lot_devices("last").expect("devices").len(), 1);
        assert_eq!(reg.certificates().expect("all").len(), 1);
    }

    #[test]
    fn a_failed_issuance_takes_no_place() {
        for (mut reg, _server) in
            crate::registry::testing::registries("a_failed_issuance_takes_no_place")
        {
            reg.create_lot("l", 2).expect("create");
            issue(&mut reg, A, 1).expect("A");
            // B's certificate reuses A's serial number: the insert fails after B's place was
            // counted, and the whole transaction (place included) rolls back.
            let mut serial = [0x40u8; 10];
            serial[1..].copy_from_slice(&A.0);
            serial[9] ^= 1;
            let e = reg
                .begin_issue(&IssueRequest {
                    kind: CertKind::Device,
                    chip_serial: Some(B),
                    serial: &serial,
                    public_key: &[2; 64],
                    subject_cn: "dev",
                    der: b"\x30\x00",
                    not_before: "2026-01-01T00:00:00Z",
                    not_after: "2046-01-01T00:00:00Z",
                })
                .expect_err("duplicate serial");
            assert!(matches!(e, RegistryError::DuplicateSerial(_)), "{e}");
            assert_eq!(reg.lot("l").expect("lot").used, 1);
            assert_eq!(reg.lot_devices("l").expect("devices"), [A]);
        }
    }

    #[test]
    fn reissues_are_capped() {
        for (mut reg, _server) in crate::registry::testing::registries("reissues_are_capped") {
            reg.set_issuance_policy(IssuancePolicy {
                max_reissues: Some(1),
                ..IssuancePolicy::default()
            });
            issue(&mut reg, A, 1).expect("first");
            issue(&mut reg, A, 2).expect("one re-issue");
            let e = lot_err(issue(&mut reg, A, 3));
            assert!(
                matches!(
                    e,
                    LotError::ReissueLimit {
                        issued: 2,
                        max_reissues: 1,
                        ..
                    }
                ),
                "{e}"
            );
            // At probe: a new key would be refused, a resume (same key) is not.
            assert!(matches!(
                lot_err(reg.admit(A, true)),
                LotError::ReissueLimit { .. }
            ));
            reg.admit(A, false).expect("resume");
            assert!(matches!(issue(&mut reg, A, 2), Ok(IssueOutcome::Reused(_))));
        }
    }

    #[test]
    fn production_requires_a_lot_and_refuses_simulated_serials() {
        for (mut reg, _server) in crate::registry::testing::registries(
            "production_requires_a_lot_and_refuses_simulated_serials",
        ) {
            reg.set_issuance_policy(IssuancePolicy {
                lot_required: true,
                max_reissues: Some(2),
                refuse_simulated: true,
            });
            assert_eq!(lot_err(reg.admit(A, true)), LotError::NoOpenLot(A));
            assert_eq!(lot_err(issue(&mut reg, A, 1)), LotError::NoOpenLot(A));
            reg.create_lot("p", 10).expect("create");
            assert_eq!(lot_err(reg.admit(SIM, true)), LotError::Simulated(SIM));
            assert_eq!(lot_err(issue(&mut reg, SIM, 1)), LotError::Simulated(SIM));
            issue(&mut reg, A, 1).expect("real chip in a lot");
        }
    }

    #[test]
    fn simulated_devices_are_flagged() {
        for (mut reg, _server) in
            crate::registry::testing::registries("simulated_devices_are_flagged")
        {
            reg.upsert_device(SIM).expect("seen");
            reg.admit(SIM, true).expect("development admits");
            assert!(reg.device_origin(SIM).expect("q").expect("known").simulated);
            issue(&mut reg, SIM, 1).expect("issue");
            assert!(reg.device_origin(SIM).expect("q").expect("known").simulated);
            issue(&mut reg, A, 2).expect("issue");
            assert!(!reg.device_origin(A).expect("q").expect("known").simulated);
        }
    }

    #[test]
    fn a_closed_lot_issues_nothing_more() {
        for (mut reg, _server) in
            crate::registry::testing::registries("a_closed_lot_issues_nothing_more")
        {
            reg.create_lot("c", 5).expect("create");
            issue(&mut reg, A, 1).expect("issue");
            let lot = reg.close_lot("c").expect("close");
            assert!(!lot.open && lot.closed_at.is_some());
            reg.close_lot("c").expect("idempotent");
            // No open lot and development: B is unbound; A's lot is closed.
            issue(&mut reg, B, 2).expect("unbound");
            assert!(matches!(
                lot_err(issue(&mut reg, A, 3)),
                LotError::Closed { .. }
            ));
            assert!(matches!(lot_err(reg.lot("nope")), LotError::Unknown(_)));
            assert!(matches!(
                lot_err(reg.create_lot("c", 1)),
                LotError::NameTaken(_)
            ));
            assert!(matches!(lot_err(reg.create_lot("z", 0)), LotError::Empty));
            assert!(matches!(
                lot_err(reg.create_lot("z", MAX_LOT_COUNT + 1)),
                LotError::TooLarge(_)
            ));
        }
    }

    #[test]
    fn a_version_1_registry_is_migrated() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(super::super::SCHEMA_V1).expect("v1");
            conn.pragma_update(None, "user_version", 1).expect("v");
            conn.execute(
                "INSERT INTO devices (chip_serial, state, created_at, updated_at)
                 VALUES (?1, 'new', 'then', 'then')",
                [A.to_string()],
            )
            .expect("row");
        }
        let reg = Registry::open(&path).expect("migrate");
        assert_eq!(
            reg.schema_version().expect("v"),
            crate::registry::SCHEMA_VERSION
        );
        assert_eq!(
            reg.device_origin(A).expect("q"),
            Some(DeviceOrigin {
                lot: None,
                simulated: false
            })
        );
    }
}
