//! Issue 14, crash at every step: `keystamp provision --simulate 2` killed with SIGKILL (the
//! engine's `KEYSTAMP_TEST_KILL_AT` hook, docs/architecture.md "Test hooks") when a station
//! reaches each point of the flow, then run again on the same simulated chips (their state is
//! in files under `--state-dir`). After each rerun: every chip holds exactly one certificate
//! (no double issuance), verified; the lot's count of places used equals the registry's count of
//! certificates for the lot's chips; `keystamp registry audit` is clean.
#![cfg(unix)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::{keystamp, ok, run_cli};

/// Every point the hook can kill at: the start of each step, and `done` (certificate recorded
/// verified, PEM files not yet written).
const POINTS: [&str; 9] = [
    "probe",
    "config",
    "key",
    "issue",
    "certificates",
    "definitions",
    "verify",
    "lock_slots",
    "done",
];

fn query(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .expect("open")
        .query_row(sql, [], |r| r.get(0))
        .expect("query")
}

fn provision(dir: &Path, state: &Path, kill_at: Option<&str>) -> std::process::Output {
    let mut cmd = keystamp(dir);
    cmd.args([
        "provision",
        "--simulate",
        "2",
        "--timing",
        "instant",
        "--json",
    ])
    .arg("--state-dir")
    .arg(state)
    .env_remove("KEYSTAMP_TEST_KILL_AT");
    if let Some(point) = kill_at {
        cmd.env("KEYSTAMP_TEST_KILL_AT", point);
    }
    run_cli(&mut cmd)
}

#[test]
fn a_run_killed_at_any_step_and_rerun_issues_once_counts_right_and_audits_clean() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    ok(run_cli(
        keystamp(dir).args(["init", "--insecure-no-passphrase"]),
    ));
    ok(run_cli(keystamp(dir).args([
        "lot", "create", "--count", "100", "--name", "crash",
    ])));
    let db = dir.join("registry.sqlite");
    for point in POINTS {
        let state = dir.join(format!("sim-{point}"));
        let killed = provision(dir, &state, Some(point));
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "the run must die by SIGKILL at {point}: {killed:?}"
        );

        let rerun = provision(dir, &state, None);
        let out = ok(rerun);
        let summary: serde_json::Value = serde_json::from_str(&out).expect("json");
        let devices = summary["devices"].as_array().expect("devices");
        assert_eq!(devices.len(), 2, "{out}");
        for d in devices {
            let chip = d["chip_serial"].as_str().expect("chip serial");
            // One certificate per chip, ever, and it is the verified one.
            let certs = query(
                &db,
                &format!(
                    "SELECT COUNT(*) FROM certificates WHERE chip_serial = '{chip}' \
                     AND kind = 'device'"
                ),
            );
            assert_eq!(certs, 1, "chip {chip} after a kill at {point}: {out}");
            let verified = query(
                &db,
                &format!(
                    "SELECT COUNT(*) FROM certificates c JOIN devices d \
                     ON d.chip_serial = c.chip_serial WHERE c.chip_serial = '{chip}' \
                     AND c.status = 'verified' AND d.state = 'provisioned' \
                     AND c.id NOT IN (SELECT cert_id FROM revocations)"
                ),
            );
            assert_eq!(verified, 1, "chip {chip} not verified after {point}");
            assert!(
                dir.join("devices").join(chip).join("device.pem").is_file(),
                "{chip}: PEM files after {point}"
            );
        }
        let used = query(&db, "SELECT used FROM lots WHERE name = 'crash'");
        let in_lot = query(
            &db,
            "SELECT COUNT(*) FROM certificates c JOIN devices d ON d.chip_serial = c.chip_serial \
             JOIN lots l ON l.id = d.lot_id WHERE l.name = 'crash' AND c.kind = 'device'",
        );
        assert_eq!(
            used, in_lot,
            "lot count vs registry after a kill at {point}"
        );
        let audit = ok(run_cli(keystamp(dir).args(["registry", "audit"])));
        assert!(audit.contains("chain intact"), "after {point}: {audit}");
    }
    // 9 points, 2 chips each: every chip took exactly one place.
    assert_eq!(query(&db, "SELECT used FROM lots WHERE name = 'crash'"), 18);
}
