//! The operator traps of issue 12, items 8–10, each tried the way an operator meets it: through
//! the `keystamp` binary on a real (temporary) project with simulated devices.
//!
//! `KEYSTAMP_TEST_BIN=/path/to/keystamp` runs them against another build (e.g. an older one,
//! to see each test fail there).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use keystamp::registry::Registry;

fn keystamp(project: &Path) -> Command {
    let bin = std::env::var_os("KEYSTAMP_TEST_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_keystamp").into());
    let mut c = Command::new(bin);
    c.arg("--project")
        .arg(project)
        .env_remove("KEYSTAMP_CA_PASSPHRASE")
        .env_remove("KEYSTAMP_PROJECT")
        .stdin(Stdio::null());
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "keystamp failed: {}", text(&o.stderr));
    text(&o.stdout)
}

/// A project with an unencrypted CA (no passphrase prompt in tests).
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(keystamp(dir.path())
        .args(["init", "--insecure-no-passphrase"])
        .output()
        .expect("run keystamp init"));
    dir
}

/// Waits (polling, generously bounded) until `done` holds; a wait, not a timing assertion.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Trap 8: Ctrl-C during `provision` finishes the current step of each station, prints the
/// table with `interrupted` rows, writes an audit entry and exits non-zero (130, as a shell
/// reports SIGINT). Before: the process died at once, silently, mid-step.
#[cfg(unix)]
#[test]
fn trap8_sigint_during_provision_stops_between_steps_and_reports() {
    let dir = project();
    let registry = dir.path().join("registry.sqlite");
    // A slow link (1200 baud, paced) keeps the stations busy for many seconds, so the signal
    // lands in the middle of the run.
    let child = keystamp(dir.path())
        .args(["provision", "--simulate", "2", "--baud", "1200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keystamp provision");
    // Both stations have probed their chips: they are past the first step.
    wait_until("both stations to probe their chips", || {
        Registry::open(&registry)
            .and_then(|r| r.audit_log(None))
            .is_ok_and(|log| log.iter().filter(|a| a.step == "probe").count() >= 2)
    });
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait for keystamp");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout {stdout}\nstderr {stderr}"
    );
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for row in &rows {
        assert!(row.contains("interrupted before "), "{row}");
    }
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("keystamp: error: interrupted: 2 of 2 devices"),
        "{stderr}"
    );
    let log = Registry::open(&registry)
        .and_then(|r| r.audit_log(None))
        .expect("audit log");
    assert!(
        log.iter()
            .any(|a| a.step == "run" && a.station.is_none() && a.detail.contains("interrupted")),
        "no run-level interrupt entry: {log:?}"
    );
    let stopped = log
        .iter()
        .filter(|a| a.detail.starts_with("interrupted before "))
        .count();
    assert_eq!(stopped, 2, "one entry per stopped station: {log:?}");
    // Rerunning resumes both devices to the end.
    let rerun = keystamp(dir.path())
        .args(["provision", "--simulate", "2", "--timing", "instant"])
        .output()
        .expect("rerun");
    let rerun_out = ok(rerun);
    assert_eq!(rerun_out.matches("provisioned").count(), 2, "{rerun_out}");
}
