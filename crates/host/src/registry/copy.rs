//! `keystamp registry copy --to postgres://…`: moves a registry, row for row, into an empty,
//! migrated PostgreSQL registry, then verifies the copy.
//!
//! Rows keep their ids and every stored value (the record chain hashes them), the registry id
//! comes along in `meta` (the chain start and `keystamp.toml` name it), and the whole copy is
//! one transaction: a failed copy leaves the target empty. The verification counts the rows of
//! every table on both sides and runs the chain audit on the target.

use std::fmt;

use super::backend::{Connection, Value};
use super::{Registry, RegistryError, chain};

/// The registry's tables, parents before children (foreign keys).
pub const TABLES: &[&str] = &[
    "meta",
    "lots",
    "lot_serials",
    "devices",
    "certificates",
    "certificate_status",
    "chain_start",
    "audit",
    "revocations",
    "crls",
    "identity_proofs",
    "stations",
];

/// The tables whose `id` is an identity on PostgreSQL (their sequences go on after the
/// copied ids).
const IDENTITY_TABLES: [&str; 6] = [
    "identity_proofs",
    "lots",
    "certificates",
    "certificate_status",
    "chain_start",
    "audit",
];

/// Why a copy was refused or did not verify.
#[derive(Debug)]
pub enum CopyError {
    /// The target is not PostgreSQL (or the source is not SQLite).
    Engines,
    /// The target already holds rows in this table: copy only into an empty registry.
    TargetNotEmpty(String),
    /// The two schemas differ in this table's columns (migrate both to the same version).
    Columns {
        /// The table.
        table: String,
        /// Its columns in the source.
        source: Vec<String>,
        /// Its columns in the target.
        target: Vec<String>,
    },
    /// A table's row count differs after the copy.
    Count {
        /// The table.
        table: String,
        /// Rows in the source.
        source: i64,
        /// Rows in the target.
        target: i64,
    },
    /// The chain audit of the copy found problems (the source's own audit says whether the
    /// source had them too).
    Audit(String),
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Engines => f.write_str(
                "registry copy moves an SQLite registry into a PostgreSQL one \
                 (--to postgres://…)",
            ),
            Self::TargetNotEmpty(t) => write!(
                f,
                "the target registry already has rows in {t}: copy only into a new, migrated, \
                 empty database"
            ),
            Self::Columns {
                table,
                source,
                target,
            } => write!(
                f,
                "table {table} differs (source columns {}, target {}): run `keystamp registry \
                 migrate` on both with this keystamp",
                source.join(","),
                target.join(",")
            ),
            Self::Count {
                table,
                source,
                target,
            } => write!(
                f,
                "the copy of {table} has {target} rows, the source {source}: the copy is not \
                 complete"
            ),
            Self::Audit(why) => write!(f, "the copy does not audit clean: {why}"),
        }
    }
}

impl std::error::Error for CopyError {}

/// What a verified copy moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Rows per table, in [`TABLES`] order.
    pub rows: Vec<(&'static str, i64)>,
    /// The target's chain audit.
    pub audit: chain::AuditReport,
}

fn columns(conn: &Connection, table: &str) -> Result<Vec<String>, RegistryError> {
    let sql = match conn.engine() {
        super::backend::Engine::Sqlite => "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
        super::backend::Engine::Postgres => {
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position"
        }
    };
    Ok(conn.query_map(sql, [table], |r| r.get(0))?)
}

fn count(conn: &Connection, table: &str) -> Result<i64, RegistryError> {
    Ok(conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), (), |r| r.get(0))?)
}

impl Registry {
    /// Copies this (SQLite) registry into `target` (PostgreSQL, migrated, empty) and verifies
    /// the copy against the signers `registry audit` trusts — see the module docs.
    pub fn copy_to(
        &self,
        target: &Registry,
        signers: &chain::SignerSet,
    ) -> Result<CopyReport, RegistryError> {
        use super::backend::Engine;
        if self.conn.engine() != Engine::Sqlite || target.conn.engine() != Engine::Postgres {
            return Err(CopyError::Engines.into());
        }
        let tx = target.conn.write_transaction()?;
        for &table in TABLES {
            // `migrate` gave the new database an id of its own: the source's replaces it.
            if table != "meta" && count(&tx, table)? > 0 {
                return Err(CopyError::TargetNotEmpty(table.to_string()).into());
            }
            let (source, dest) = (columns(&self.conn, table)?, columns(&tx, table)?);
            let mut sorted = (source.clone(), dest.clone());
            sorted.0.sort();
            sorted.1.sort();
            if sorted.0 != sorted.1 {
                return Err(CopyError::Columns {
                    table: table.to_string(),
                    source,
                    target: dest,
                }
                .into());
            }
        }
        tx.execute("DELETE FROM meta", ())?;
        for &table in TABLES {
            let cols = columns(&self.conn, table)?;
            let list = cols.join(", ");
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            let insert = format!("INSERT INTO {table} ({list}) VALUES ({})", marks.join(", "));
            let rows = self
                .conn
                .query(&format!("SELECT {list} FROM {table} ORDER BY 1"), ())?;
            for row in rows {
                let values: Vec<Value> = (0..row.len())
                    .map(|i| row.get(i))
                    .collect::<Result<_, _>>()?;
                tx.execute(&insert, values)?;
            }
        }
        tx.reset_identities(&IDENTITY_TABLES)?;
        tx.commit()?;

        let mut rows = Vec::with_capacity(TABLES.len());
        for &table in TABLES {
            let (source, copied) = (count(&self.conn, table)?, count(&target.conn, table)?);
            if source != copied {
                return Err(CopyError::Count {
                    table: table.to_string(),
                    source,
                    target: copied,
                }
                .into());
            }
            rows.push((table, copied));
        }
        let audit = target.verify_chain(signers)?;
        if let chain::AuditReport::Bad(findings) = &audit {
            let first = findings.first().map(|f| f.to_string()).unwrap_or_default();
            return Err(
                CopyError::Audit(format!("{} problems, first {first}", findings.len())).into(),
            );
        }
        Ok(CopyReport { rows, audit })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::chain::{EphemeralKey, RecordSigner};
    use crate::registry::pg_cluster::skip_or_fail;
    use crate::registry::{
        CertKind, ChipSerial, IssueOutcome, IssueRequest, Outcome, RevocationReason,
    };

    /// One key for both registries (the copy goes on recording with the project's signer).
    struct SharedKey(Arc<EphemeralKey>);

    impl RecordSigner for SharedKey {
        fn sign_record(&self, digest: &[u8; 32]) -> Result<[u8; 64], chain::ChainError> {
            self.0.sign_record(digest)
        }

        fn record_key(&self) -> Result<[u8; 64], chain::ChainError> {
            self.0.record_key()
        }
    }

    fn issue(reg: &mut Registry, serial: u8, chip: u8, key: u8) -> IssueOutcome {
        let pk = [key; 64];
        reg.begin_issue(&IssueRequest {
            kind: CertKind::Device,
            chip_serial: Some(ChipSerial([chip; 9])),
            serial: &[0x40, serial],
            public_key: &pk,
            subject_cn: "dev",
            der: b"\x30\x00",
            not_before: "2026-01-01T00:00:00Z",
            not_after: "2046-01-01T00:00:00Z",
        })
        .expect("issue")
    }

    #[test]
    fn a_copy_to_postgres_has_every_row_audits_clean_and_goes_on_recording() {
        let Some(cluster) = skip_or_fail("a_copy_to_postgres_has_every_row") else {
            return;
        };
        let key = Arc::new(EphemeralKey::generate().expect("key"));
        let xy = chain::SignerSet::single(&key.public_key()).expect("signers");
        let dir = tempfile::tempdir().expect("tmp");
        let (mut source, id) = Registry::create(&dir.path().join("r.sqlite")).expect("create");
        source.set_record_signer(Box::new(SharedKey(Arc::clone(&key))));
        source.create_lot("line-1", 10).expect("lot");
        issue(&mut source, 1, 1, 1);
        source.mark_written("4001").expect("written");
        source.mark_verified("4001").expect("verified");
        issue(&mut source, 2, 2, 2);
        issue(&mut source, 3, 2, 3); // supersedes 4002
        source
            .revoke("4003", RevocationReason::KeyCompromise)
            .expect("revoke");
        source
            .audit(
                Some("h:p"),
                Some(ChipSerial([1; 9])),
                "probe",
                Outcome::Ok,
                "x",
            )
            .expect("audit");
        source.register_station("h:p", Some("p")).expect("station");

        let url = cluster.new_database().expect("db");
        Registry::migrate_postgres(&url).expect("migrate");
        let mut target = Registry::open_postgres(&url).expect("open");
        let report = source.copy_to(&target, &xy).expect("copy");
        assert!(
            matches!(report.audit, chain::AuditReport::Clean { .. }),
            "{report:?}"
        );
        for (table, n) in &report.rows {
            assert_eq!(*n, count(&source.conn, table).expect("count"), "{table}");
        }
        assert_eq!(target.id().expect("id").as_deref(), Some(id.as_str()));
        assert_eq!(
            target.certificates().expect("certs"),
            source.certificates().expect("certs")
        );
        // A second copy into the same (now full) registry is refused.
        assert!(matches!(
            source.copy_to(&target, &xy),
            Err(RegistryError::Copy(CopyError::TargetNotEmpty(_)))
        ));

        // The copy goes on: new rows get new ids, the chain continues and verifies.
        target.set_record_signer(Box::new(SharedKey(Arc::clone(&key))));
        let out = issue(&mut target, 9, 9, 9);
        assert!(matches!(out, IssueOutcome::New(_)));
        assert!(matches!(
            target.verify_chain(&xy).expect("audit"),
            chain::AuditReport::Clean { .. }
        ));
        // An edit behind keystamp's back is found on PostgreSQL as on SQLite.
        target
            .conn
            .execute(
                "UPDATE audit SET detail = 'edited' WHERE step = 'probe'",
                (),
            )
            .expect("tamper");
        assert!(matches!(
            target.verify_chain(&xy).expect("audit"),
            chain::AuditReport::Bad(_)
        ));
    }
}
