//! `--faults SPEC` from the command line: a bad SPEC is refused before anything starts; a faulty
//! run either provisions or fails with one line, and a rerun of the same command recovers.

mod common;

use common::{keystamp, ok, run_cli};

#[test]
fn a_bad_fault_spec_is_refused_with_the_names_it_knows() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run_cli(keystamp(tmp.path()).args([
        "provision",
        "--simulate",
        "1",
        "--faults",
        "lightning=1",
    ]));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown fault `lightning`"), "{err}");
    assert!(err.contains("brownout"), "names the known faults: {err}");
}

#[test]
fn provision_with_faults_recovers_on_a_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(run_cli(
        keystamp(dir).args(["init", "--insecure-no-passphrase"]),
    ));
    // Log lines before answers, CRC errors and NACK bursts on the I2C bus, UART bit flips.
    let faulty = [
        "provision",
        "--simulate",
        "2",
        "--timing",
        "instant",
        "--link",
        "in-process",
        "--json",
        "--faults",
        "seed=5,log=0.5,crc=0.05,nack=0.02,flip=0.0002",
    ];
    let _first = run_cli(keystamp(dir).args(faulty));
    // The devices kept their state; the same command again (the reset already happened).
    let again = run_cli(keystamp(dir).args(faulty));
    let text = String::from_utf8_lossy(&again.stdout).to_string();
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON summary");
    let counts = &v["counts"];
    assert_eq!(
        counts["provisioned"].as_u64().unwrap() + counts["verified"].as_u64().unwrap(),
        2,
        "{text}"
    );
    assert!(again.status.success(), "{text}");
}
