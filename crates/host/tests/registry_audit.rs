//! `keystamp registry audit` on a demo-size run: clean, then tampered with outside keystamp.

mod common;

use std::path::Path;
use std::process::Output;

use common::keystamp;

fn tamper(db: &Path, sql: &str) {
    // The sqlite3 CLI when installed, else rusqlite: either way not keystamp's code.
    let cli = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .status();
    if !matches!(cli, Ok(s) if s.success()) {
        rusqlite::Connection::open(db)
            .expect("open")
            .execute_batch(sql)
            .expect("tamper");
    }
}

fn query(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .expect("open")
        .query_row(sql, [], |r| r.get(0))
        .expect("query")
}

fn audit(dir: &Path) -> Output {
    keystamp(dir)
        .args(["registry", "audit"])
        .output()
        .expect("run")
}

#[test]
fn a_demo_run_audits_clean_and_an_edited_row_is_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("demo");
    let demo = keystamp(tmp.path())
        .args(["demo", "--devices", "8", "--dir"])
        .arg(&dir)
        .output()
        .expect("demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );

    let clean = audit(&dir);
    let stdout = String::from_utf8_lossy(&clean.stdout);
    assert!(
        clean.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let db = dir.join("registry.sqlite");
    // Every certificate (8 devices + the signer), status change and audit entry, plus the start.
    let records = query(
        &db,
        "SELECT (SELECT COUNT(*) FROM certificates) + (SELECT COUNT(*) FROM audit) + \
         (SELECT COUNT(*) FROM certificate_status) + 1",
    );
    assert!(records > 9 + 8, "{records}");
    assert!(
        stdout.contains(&format!("{records} records checked")),
        "{stdout}"
    );

    // A failed probe made to look like a success.
    let (id, seq) = (
        query(
            &db,
            "SELECT id FROM audit WHERE step = 'probe' ORDER BY seq LIMIT 1",
        ),
        query(
            &db,
            "SELECT seq FROM audit WHERE step = 'probe' ORDER BY seq LIMIT 1",
        ),
    );
    tamper(
        &db,
        &format!("UPDATE audit SET detail = 'revision 00000000' WHERE id = {id};"),
    );
    let bad = audit(&dir);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(&format!("first bad row: audit row id {id} (seq {seq})")),
        "{stderr}"
    );
}
