//! The operator traps of issue 12, items 8–10, each tried the way an operator meets it: through
//! the `keystamp` binary on a real (temporary) project with simulated devices.
//!
//! `KEYSTAMP_TEST_BIN=/path/to/keystamp` runs them against another build (e.g. an older one,
//! to see each test fail there).

use std::path::Path;
use std::process::{Command, Output, Stdio};
#[cfg(unix)]
use std::time::{Duration, Instant};

#[cfg(unix)]
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
#[cfg(unix)] // Only the SIGINT tests (Unix: `kill -INT`) use it.
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
    let child = slow_provision(dir.path(), 2, &[]);
    interrupt(&child);
    let out = child.wait_with_output().expect("wait for keystamp");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout {stdout}\nstderr {stderr}"
    );
    let rows: Vec<&str> = stdout.lines().skip(1).take(2).collect();
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
    let resumed = rerun_out
        .lines()
        .filter(|l| l.ends_with("  provisioned"))
        .count();
    assert_eq!(resumed, 2, "{rerun_out}");
}

/// The one `keystamp: error:` line of a failed run (and nothing else on stderr).
fn one_error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure: {}", text(&o.stdout));
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line, got {err:?}");
    assert!(lines[0].starts_with("keystamp: error: "), "{err}");
    lines[0].to_string()
}

/// Trap 9: a missing port is refused before any station starts: one line naming it, no table
/// row, no "rerun to resume" (nothing was started), in text and JSON alike. Before: a table
/// row `FAILED: cannot open ...` and "see the table above and rerun to resume".
#[test]
fn trap9_a_missing_port_is_one_line_before_any_station() {
    let dir = project();
    for json in [false, true] {
        let mut cmd = keystamp(dir.path());
        cmd.args(["provision", "--port", "/dev/keystamp-no-such-port"]);
        if json {
            cmd.arg("--json");
        }
        let o = cmd.output().expect("run provision");
        let line = one_error_line(&o);
        assert!(line.contains("/dev/keystamp-no-such-port"), "{line}");
        assert!(line.contains("does not exist"), "{line}");
        assert!(!line.contains("rerun") && !line.contains("table"), "{line}");
        assert!(o.stdout.is_empty(), "no table: {}", text(&o.stdout));
    }
}

/// Trap 9: with `--json` a failed device's message points at the JSON, not at a table, and a
/// device that was never reached gets no "rerun to resume". (`/dev/null` exists but is no
/// serial port, so its station fails on opening it.) Before: "see the table above and rerun
/// to resume" under JSON output.
#[cfg(unix)]
#[test]
fn trap9_json_failures_do_not_point_at_a_table() {
    let dir = project();
    let o = keystamp(dir.path())
        .args(["provision", "--port", "/dev/null", "--json"])
        .output()
        .expect("run provision");
    let line = one_error_line(&o);
    assert!(line.contains("1 of 1 devices failed"), "{line}");
    assert!(line.contains("\"error\""), "{line}");
    assert!(!line.contains("table"), "{line}");
    assert!(!line.contains("rerun"), "nothing to resume: {line}");
    let results: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON results");
    assert_eq!(results["devices"][0]["result"], "failed");
}

/// Trap 9: a reader that stops early (`keystamp registry list | head`) is not an error worth
/// a message. The pipe's reading end is closed before keystamp starts, so every write fails
/// with EPIPE. Before: `keystamp: error: writing output: Broken pipe`.
#[test]
fn trap9_broken_pipe_exits_quietly() {
    let dir = project();
    for args in [
        &["ca", "show"][..],
        &["registry", "list"],
        &["registry", "list", "--json"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let o = keystamp(dir.path())
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run keystamp");
        assert_eq!(text(&o.stderr), "", "{args:?}");
        assert!(
            !o.status.success(),
            "{args:?}: the output was not delivered"
        );
    }
}

/// Trap 9: a definition file of the wrong shape says what the file must be, not the name of
/// a Rust type. Before: `expected struct JDef with 18 elements`.
#[test]
fn trap9_definition_errors_name_no_internal_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in [("array.json", "[]"), ("number.json", "7")] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write");
        let o = keystamp(dir.path())
            .arg("certdef")
            .arg("show")
            .arg(&path)
            .output()
            .expect("run certdef show");
        let line = one_error_line(&o);
        assert!(!line.contains("JDef") && !line.contains("struct"), "{line}");
        assert!(line.contains("certificate definition"), "{line}");
    }
}

/// Trap 9: an out-of-range slot reads as a human range. Before: "16 is not in 0..16".
#[test]
fn trap9_slot_ranges_read_as_0_to_15() {
    let dir = tempfile::tempdir().expect("tempdir");
    for flag in ["--comp-cert-slot", "--device-key-slot", "--public-key-slot"] {
        let o = keystamp(dir.path())
            .args(["certdef", "from-cert", "cert.pem", flag, "16"])
            .output()
            .expect("run certdef from-cert");
        let err = text(&o.stderr);
        assert!(!o.status.success());
        assert!(!err.contains("0..16"), "{err}");
        assert!(err.contains("0 to 15"), "{err}");
    }
    let o = keystamp(dir.path())
        .args(["certdef", "from-cert", "cert.pem", "--template-id", "16"])
        .output()
        .expect("run certdef from-cert");
    let err = text(&o.stderr);
    assert!(!err.contains("0..16") && err.contains("0 to 15"), "{err}");
}

/// Every number in `v` is an integer (no float noise such as `0.30000000000000004`).
fn assert_integers(v: &serde_json::Value) {
    match v {
        serde_json::Value::Number(n) => assert!(n.is_u64() || n.is_i64(), "float {n}"),
        serde_json::Value::Array(a) => a.iter().for_each(assert_integers),
        serde_json::Value::Object(o) => o.values().for_each(assert_integers),
        _ => {}
    }
}

/// Trap 10: `provision` closes with a count line (provisioned / verified / failed / issued),
/// in text and in JSON, and JSON times are whole milliseconds. Before: the table ended with
/// its last row, and JSON had `"seconds": 1.234567`.
#[test]
fn trap10_provision_closes_with_counts_and_integer_milliseconds() {
    let dir = project();
    let first = ok(keystamp(dir.path())
        .args(["provision", "--simulate", "2", "--timing", "instant"])
        .output()
        .expect("provision"));
    assert_eq!(
        first.lines().last(),
        Some("2 devices: 2 provisioned, 0 verified, 0 failed; 2 certificates issued"),
        "{first}"
    );
    let again = ok(keystamp(dir.path())
        .args([
            "provision",
            "--simulate",
            "2",
            "--timing",
            "instant",
            "--json",
        ])
        .output()
        .expect("provision --json"));
    let v: serde_json::Value = serde_json::from_str(&again).expect("JSON");
    assert_eq!(
        v["counts"],
        serde_json::json!({"provisioned": 0, "verified": 2, "failed": 0, "interrupted": 0, "issued": 0})
    );
    let devices = v["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 2);
    for d in devices {
        assert!(d["milliseconds"].is_u64(), "{d}");
    }
    assert_integers(&v);
}

/// Starts a slow `provision --simulate N` (a paced 1200-baud link keeps the stations busy for
/// many seconds) and waits until each station has probed its chip, i.e. holds its simulated
/// device and its station row and is in the middle of the run.
#[cfg(unix)] // Only the SIGINT tests (Unix: `kill -INT`) use it.
fn slow_provision(dir: &Path, n: usize, extra: &[&str]) -> std::process::Child {
    let registry = dir.join("registry.sqlite");
    let probes = || {
        Registry::open(&registry)
            .and_then(|r| r.audit_log(None))
            .map(|l| l.iter().filter(|a| a.step == "probe").count())
            .unwrap_or(0)
    };
    let before = probes();
    let child = keystamp(dir)
        .args(["provision", "--simulate", &n.to_string(), "--baud", "1200"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keystamp provision");
    wait_until("the stations to probe their chips", || {
        probes() >= before + n
    });
    child
}

/// Sends SIGINT (Ctrl-C) to `child`.
#[cfg(unix)] // Only the SIGINT tests (Unix: `kill -INT`) use it.
fn interrupt(child: &std::process::Child) {
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
}

/// Trap 10: two `provision` processes on one project. A second run on the same simulated
/// devices is refused with one line (they would load and save the same chip files); with its
/// own `--state-dir` it runs, and the two stations keep their own rows in the registry (named
/// host:port). Before: the second run drove the same chips, and both stations were `station1`.
#[cfg(unix)]
#[test]
fn trap10_two_provision_processes_on_one_project() {
    let dir = project();
    let first = slow_provision(dir.path(), 1, &[]);
    let refused = keystamp(dir.path())
        .args(["provision", "--simulate", "1", "--timing", "instant"])
        .output()
        .expect("second provision");
    let line = one_error_line(&refused);
    assert!(line.contains("in use by keystamp process"), "{line}");
    assert!(line.contains("--state-dir"), "{line}");
    let other = dir.path().join("sim-b");
    ok(keystamp(dir.path())
        .args([
            "provision",
            "--simulate",
            "1",
            "--timing",
            "instant",
            "--state-dir",
        ])
        .arg(&other)
        .output()
        .expect("second provision, own state dir"));
    interrupt(&first);
    let out = first.wait_with_output().expect("wait for the first run");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let registry = Registry::open(&dir.path().join("registry.sqlite")).expect("registry");
    let stations = registry.stations().expect("stations");
    assert_eq!(stations.len(), 2, "{stations:?}");
    assert_ne!(stations[0].name, stations[1].name);
    // The lock goes with the run: the default state directory is free again.
    ok(keystamp(dir.path())
        .args(["provision", "--simulate", "1", "--timing", "instant"])
        .output()
        .expect("third provision"));
}

/// Trap 10: `registry list` and `registry show` open the registry read-only: the file is not
/// written (so they work on a read-only project, e.g. a copy for the auditors). Before: every
/// open migrated, i.e. wrote, the database.
#[cfg(unix)]
#[test]
fn trap10_read_only_commands_leave_the_registry_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let dir = project();
    ok(keystamp(dir.path())
        .args(["provision", "--simulate", "1", "--timing", "instant"])
        .output()
        .expect("provision"));
    let db = dir.path().join("registry.sqlite");
    let before = std::fs::read(&db).expect("read registry");
    // Read-only for everyone but root (root ignores modes; the byte check still holds).
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let listing = ok(keystamp(dir.path())
        .args(["registry", "list", "--json"])
        .output()
        .expect("registry list"));
    let devices: serde_json::Value = serde_json::from_str(&listing).expect("JSON");
    let chip = devices[0]["chip_serial"]
        .as_str()
        .expect("chip serial")
        .to_string();
    ok(keystamp(dir.path())
        .args(["registry", "list"])
        .output()
        .expect("registry list"));
    let shown = ok(keystamp(dir.path())
        .args(["registry", "show", &chip])
        .output()
        .expect("registry show"));
    assert!(shown.contains(&chip), "{shown}");
    as_nobody_if_root(dir.path());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(
        std::fs::read(&db).expect("read registry") == before,
        "the registry was written"
    );
}

/// Root ignores file modes, so as root `registry list` is run once more as `nobody` (via
/// `setpriv`, when present), for whom the project really is read-only.
#[cfg(unix)]
fn as_nobody_if_root(project: &Path) {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0");
    if !root {
        return;
    }
    let nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_keystamp"))
            .arg("--project")
            .arg(project)
            .args(args)
            .env_remove("KEYSTAMP_PROJECT")
            .output()
    };
    let Ok(o) = nobody(&["registry", "list"]) else {
        eprintln!("SKIP read-only run as nobody: setpriv not found");
        return;
    };
    assert!(o.status.success(), "as nobody: {}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("provisioned"),
        "{}",
        text(&o.stdout)
    );
}

/// Trap 10: a database error names the file. Before: `registry database: file is not a
/// database`, with no path.
#[test]
fn trap10_database_errors_name_the_file() {
    let dir = project();
    let db = dir.path().join("registry.sqlite");
    std::fs::write(&db, vec![b'x'; 4096]).expect("overwrite registry");
    for args in [&["registry", "list"][..], &["provision", "--simulate", "1"]] {
        let o = keystamp(dir.path())
            .args(args)
            .output()
            .expect("run keystamp");
        let line = one_error_line(&o);
        assert!(line.contains(&db.display().to_string()), "{args:?}: {line}");
    }
}

/// Trap 10: a database error after the registry opened (here a table dropped behind
/// keystamp's back, through SQLite itself) also names the file, at the command line and in a
/// station's result. Before: `registry database: no such table: lots`, no file.
#[test]
fn trap10_database_errors_after_opening_name_the_file() {
    let dir = project();
    let db = dir.path().join("registry.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("open registry with SQLite");
    conn.execute_batch("DROP TABLE lot_serials; DROP TABLE lots;")
        .expect("drop the lot tables");
    drop(conn);
    let o = keystamp(dir.path())
        .args(["lot", "list"])
        .output()
        .expect("run keystamp");
    let line = one_error_line(&o);
    assert!(line.contains("no such table"), "{line}");
    assert!(line.contains(&db.display().to_string()), "{line}");
    let o = keystamp(dir.path())
        .args([
            "provision",
            "--simulate",
            "1",
            "--timing",
            "instant",
            "--json",
        ])
        .output()
        .expect("run keystamp");
    assert!(!o.status.success());
    let json: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("provision --json output");
    let error = json
        .pointer("/devices/0/error")
        .and_then(|e| e.as_str())
        .unwrap_or_default();
    assert!(error.contains("no such table"), "{error}");
    assert!(error.contains(&db.display().to_string()), "{error}");
}

/// Trap 10: input files are size-capped (1 MiB) with a clear error before they are read: a
/// definition, a certificate and the profile, each a sparse 64 MiB file here. Before: the
/// whole file was read (a 2.8 GB JSON took 8.7 GB of memory) and then failed to parse.
#[test]
fn trap10_oversized_input_files_are_refused_before_reading() {
    let dir = project();
    let big = |name: &str| {
        let path = dir.path().join(name);
        let f = std::fs::File::create(&path).expect("create");
        f.set_len(64 << 20).expect("sparse 64 MiB");
        path
    };
    let def = big("huge-def.json");
    let cert = big("huge-cert.pem");
    for (args, path) in [
        (
            vec!["certdef".into(), "show".into(), def.display().to_string()],
            &def,
        ),
        (
            vec![
                "certdef".into(),
                "compress".into(),
                "--def".into(),
                dir.path().join("device-def.json").display().to_string(),
                "--cert".into(),
                cert.display().to_string(),
            ],
            &cert,
        ),
    ] {
        let o = keystamp(dir.path()).args(&args).output().expect("run");
        let line = one_error_line(&o);
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(
            line.contains("67108864 bytes") && line.contains("1 MiB"),
            "{line}"
        );
    }
    let profile = dir.path().join("keystamp.toml");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&profile)
        .and_then(|f| f.set_len(64 << 20))
        .expect("grow the profile");
    let line = one_error_line(
        &keystamp(dir.path())
            .args(["registry", "list"])
            .output()
            .expect("registry list"),
    );
    assert!(
        line.contains("keystamp.toml") && line.contains("1 MiB"),
        "{line}"
    );
}
