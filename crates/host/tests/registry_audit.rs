//! `keystamp registry audit` on a demo-size run: clean, then tampered with outside keystamp.

mod common;

use std::path::Path;
use std::process::Output;

use common::backends::each_backend;
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

/// `keystamp demo` with `devices` simulated devices in `tmp/demo`; returns the project.
fn demo(tmp: &Path, devices: u32) -> std::path::PathBuf {
    let dir = tmp.join("demo");
    let demo = keystamp(tmp)
        .args(["demo", "--devices", &devices.to_string(), "--dir"])
        .arg(&dir)
        .output()
        .expect("demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    dir
}

#[test]
fn a_demo_run_audits_clean_and_an_edited_row_is_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = demo(tmp.path(), 8);

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

/// A new software signer put in place by hand (a signer request signed by the root, key and
/// certificate replaced in `ca/`): the old signer's records still verify with the old signer
/// certificate the registry recorded at `init`, the new one's with `ca/signer.pem`; the old
/// signer's device still verifies on a rerun.
#[test]
fn records_of_the_old_and_a_new_software_signer_both_audit_clean() {
    use keystamp::pki::ca::KeyProtection;
    use keystamp::pki::ceremony;
    each_backend(
        "records_of_the_old_and_a_new_software_signer_both_audit_clean",
        |b| {
            let tmp = tempfile::tempdir().expect("tmp");
            let dir = tmp.path().join("p");
            let ok = |o: Output| {
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                String::from_utf8_lossy(&o.stdout).into_owned()
            };
            let provision = |state: &str| {
                keystamp(&dir)
                    .args(["provision", "--simulate", "1", "--timing", "instant"])
                    .arg("--state-dir")
                    .arg(tmp.path().join(state))
                    .output()
                    .expect("provision")
            };
            std::fs::create_dir(&dir).expect("dir");
            ok(keystamp(&dir)
                .args(["init", "--insecure-no-passphrase"])
                .output()
                .expect("init"));
            b.adopt(&dir);
            ok(provision("sim-a"));

            // The new signer: a request made elsewhere, signed with the project's root key.
            let station = tmp.path().join("station");
            let profile = keystamp::project::Project::open(&dir)
                .expect("project")
                .profile;
            let request =
                ceremony::signer_request(&station, &profile.ca, &KeyProtection::Unencrypted)
                    .expect("req");
            let ca_dir = dir.join("ca");
            let root_key = keystamp::pki::signer_key::SignerKey::Software(
                keystamp::pki::ca::unlock_root(&ca_dir, None).expect("root key"),
            );
            let signer = ceremony::sign_signer(
                &ca_dir,
                &root_key,
                &request,
                5,
                std::time::SystemTime::now(),
            )
            .expect("sign");
            std::fs::copy(station.join("signer.key"), ca_dir.join("signer.key")).expect("key");
            std::fs::write(ca_dir.join("signer.pem"), signer.to_pem()).expect("cert");
            keystamp::ops::project::regenerate_definitions(
                &keystamp::project::Project::open(&dir).expect("project"),
            )
            .expect("definitions");
            ok(provision("sim-b"));

            assert_eq!(
                b.query_i64(
                    &dir,
                    "SELECT COUNT(DISTINCT signer_key) FROM audit WHERE signer_key IS NOT NULL"
                ),
                2
            );
            assert!(!ca_dir.join("signers").exists(), "only the registry has it");
            let out = ok(audit(&dir));
            assert!(out.contains("chain intact"), "{out}");

            // The device provisioned under the old signer (its locked slots hold the old chain) is
            // verified by a rerun, not refused as another project's, and gets nothing new.
            let devices = "SELECT COUNT(*) FROM certificates WHERE kind = 'device'";
            let before = b.query_i64(&dir, devices);
            let rerun = provision("sim-a");
            assert!(
                rerun.status.success(),
                "old signer's device: {}",
                String::from_utf8_lossy(&rerun.stderr)
            );
            assert_eq!(
                b.query_i64(&dir, devices),
                before,
                "nothing issued on the rerun"
            );
            let out = ok(audit(&dir));
            assert!(out.contains("chain intact"), "{out}");
        },
    );
}

/// `registry revoke` writes a revocation record: deleting its row with sqlite3 (the revoked
/// certificate would look valid again, e.g. to the next CRL) is reported by `registry audit`.
#[test]
fn a_revocation_row_deleted_with_sqlite3_is_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = demo(tmp.path(), 2);
    let db = dir.join("registry.sqlite");
    let serial: String = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT serial FROM certificates WHERE kind = 'device' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("serial");
    let revoke = keystamp(&dir)
        .args(["registry", "revoke", &serial, "--reason", "keyCompromise"])
        .output()
        .expect("revoke");
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    assert!(audit(&dir).status.success());
    let seq = query(&db, "SELECT seq FROM revocations");
    tamper(&db, "DELETE FROM revocations;");
    let bad = audit(&dir);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(&format!("record seq {seq} is missing")),
        "{stderr}"
    );
}
