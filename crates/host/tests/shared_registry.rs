//! Several provisioning hosts, one PostgreSQL registry (issue 16), through the `keystamp`
//! binary against a real, throwaway PostgreSQL server: migrate, copy, provision, list, audit;
//! three host processes × 16 stations with a lot quota and chips that move between hosts; a
//! host killed mid-run; the database stopped mid-run. Each test skips with a printed reason
//! only when the PostgreSQL server is not installed (never under CI=true).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Output, Stdio};

use common::{error_line, keystamp, ok, run_cli};
use keystamp::registry::pg_cluster::{PgCluster, own_or_skip, skip_or_fail};

fn init(dir: &Path) {
    ok(run_cli(
        keystamp(dir).args(["init", "--insecure-no-passphrase"]),
    ));
}

/// A project whose SQLite registry was moved into a fresh PostgreSQL database, used through
/// `registry.url` in keystamp.toml from here on.
fn project_on_postgres(cluster: &PgCluster, dir: &Path) -> String {
    init(dir);
    let url = cluster.new_database().expect("database");
    let migrated = ok(run_cli(keystamp(dir).args([
        "registry",
        "migrate",
        "--registry",
        &url,
    ])));
    assert!(migrated.contains("schema version"), "{migrated}");
    let copied = ok(run_cli(
        keystamp(dir).args(["registry", "copy", "--to", &url]),
    ));
    assert!(copied.contains("copy verified"), "{copied}");
    let toml = dir.join("keystamp.toml");
    let text = std::fs::read_to_string(&toml).expect("toml");
    let text = text.replacen("[registry]\n", &format!("[registry]\nurl = \"{url}\"\n"), 1);
    std::fs::write(&toml, text).expect("toml");
    url
}

/// `keystamp provision --simulate n` as host `host` (its own station names) on `state`.
fn host(dir: &Path, name: &str, state: &Path, n: usize, timing: &str) -> std::process::Command {
    let mut c = keystamp(dir);
    c.args([
        "provision",
        "--simulate",
        &n.to_string(),
        "--link",
        "in-process",
        "--timing",
        timing,
        "--json",
        "--state-dir",
    ])
    .arg(state)
    .env("COMPUTERNAME", name)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

fn listing(dir: &Path) -> Vec<serde_json::Value> {
    let out = ok(run_cli(keystamp(dir).args(["registry", "list", "--json"])));
    serde_json::from_str(&out).expect("json list")
}

/// Every device certificate in the registry: (chip serial, certificate serial, status).
fn certificates(url: &str) -> Vec<(String, String, String)> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    c.query(
        "SELECT chip_serial, serial, status FROM certificates WHERE kind = 'device'",
        &[],
    )
    .expect("query")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// No serial twice, no chip with two live identities (superseded certificates are not live).
fn assert_one_identity_per_chip(url: &str) -> usize {
    let certs = certificates(url);
    let serials: HashSet<&str> = certs.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(serials.len(), certs.len(), "a certificate serial repeats");
    let mut live: HashMap<&str, usize> = HashMap::new();
    for (chip, _, status) in &certs {
        if status != "superseded" {
            *live.entry(chip).or_default() += 1;
        }
    }
    for (chip, n) in &live {
        assert_eq!(*n, 1, "chip {chip} has {n} live certificates");
    }
    live.len()
}

fn assert_audit_clean(dir: &Path) {
    let audit = ok(run_cli(keystamp(dir).args(["registry", "audit"])));
    assert!(audit.contains("chain intact"), "{audit}");
}

fn results(o: &Output) -> Vec<String> {
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("\"result\": \""))
        .map(|r| r.trim_end_matches([',', '"']).to_string())
        .collect()
}

/// Every one of `n` devices ends provisioned: now, or already before this run (`verified`).
fn assert_all_done(o: &Output, n: usize) {
    let r = results(o);
    assert_eq!(r.len(), n, "{r:?}");
    assert!(
        r.iter().all(|r| r == "provisioned" || r == "verified"),
        "{r:?}"
    );
}

#[test]
fn provisioning_runs_on_a_postgres_registry_end_to_end() {
    let Some(cluster) = skip_or_fail("provisioning_runs_on_a_postgres_registry_end_to_end") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("proj");
    let url = project_on_postgres(&cluster, &dir);
    let o = run_cli(&mut host(
        &dir,
        "line-a",
        &tmp.path().join("sim"),
        3,
        "instant",
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(results(&o), ["provisioned"; 3]);
    let list = listing(&dir);
    assert_eq!(list.len(), 3);
    for d in &list {
        assert_eq!(d["state"], "provisioned", "{d}");
        let station = d["station"].as_str().expect("station");
        assert!(station.starts_with("line-a:"), "{station}");
    }
    assert_eq!(assert_one_identity_per_chip(&url), 3);
    assert_audit_clean(&dir);
    // Reading commands work on it as on SQLite.
    let chip = list[0]["chip_serial"].as_str().expect("chip");
    let show = ok(run_cli(keystamp(&dir).args(["registry", "show", chip])));
    assert!(show.contains("verified"), "{show}");
    let csv = ok(run_cli(
        keystamp(&dir).args(["registry", "export", "--format", "csv"]),
    ));
    for d in &list {
        let chip = d["chip_serial"].as_str().expect("chip");
        assert!(csv.contains(chip), "{chip} missing from {csv}");
    }

    // Stations never migrate: a database nobody migrated is refused with what to run.
    let fresh = cluster.new_database().expect("db");
    let line = error_line(&run_cli(keystamp(&dir).args([
        "registry",
        "list",
        "--registry",
        &fresh,
    ])));
    assert!(line.contains("keystamp registry migrate"), "{line}");
    // `init` makes an SQLite registry and says how to move it, instead of ignoring the URL.
    let line = error_line(&run_cli(keystamp(&tmp.path().join("other")).args([
        "init",
        "--registry",
        &fresh,
    ])));
    assert!(line.contains("registry copy"), "{line}");
    // A password never goes in the URL.
    let with_password = url.replace("postgres@", "postgres:secret@");
    let line = error_line(&run_cli(keystamp(&dir).args([
        "registry",
        "list",
        "--registry",
        &with_password,
    ])));
    assert!(line.contains("PGPASSWORD"), "{line}");
}

/// The password of a role that needs one comes from PGPASSWORD or a pgpass file, never from
/// the URL; without either the server refuses the connection.
#[test]
fn the_password_comes_from_pgpassword_or_a_pgpass_file() {
    let Some(cluster) = skip_or_fail("the_password_comes_from_pgpassword_or_a_pgpass_file") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("proj");
    let url = project_on_postgres(&cluster, &dir);
    let db = url.rsplit('/').next().expect("db name").to_string();
    cluster
        .execute(
            &db,
            "CREATE ROLE line2 LOGIN PASSWORD 'line-2-secret';
             GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO line2;
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO line2;",
        )
        .expect("role");
    cluster.require_password_for("line2").expect("hba");
    let line2 = url.replace("postgres@", "line2@");
    let list = |env: &[(&str, &str)]| {
        let mut c = keystamp(&dir);
        c.args(["registry", "list", "--registry", &line2])
            .env_remove("PGPASSWORD")
            .env("PGPASSFILE", tmp.path().join("absent"));
        for (k, v) in env {
            c.env(k, v);
        }
        run_cli(&mut c)
    };
    let line = error_line(&list(&[]));
    assert!(line.contains("PGPASSWORD"), "{line}");
    ok(list(&[("PGPASSWORD", "line-2-secret")]));
    let pgpass = tmp.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{}:{db}:line2:line-2-secret\n", cluster.port()),
    )
    .expect("pgpass");
    ok(list(&[("PGPASSFILE", pgpass.to_str().expect("utf-8"))]));
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "*:*:*:line2:nope\n").expect("pgpass");
    let line = error_line(&list(&[("PGPASSFILE", wrong.to_str().expect("utf-8"))]));
    assert!(line.contains("refused the login"), "{line}");
}

/// Three host processes × 16 stations share one registry with a 40-device lot: 48 devices
/// offered, exactly 40 certificates. Then chips move between hosts (a chip provisioned on
/// host A is met again on host B, one refused on A is offered on B): still one identity per
/// chip and 40 certificates. The record chain verifies.
#[test]
fn three_hosts_share_one_registry_and_one_lot_quota() {
    let Some(cluster) = skip_or_fail("three_hosts_share_one_registry_and_one_lot_quota") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("proj");
    let url = project_on_postgres(&cluster, &dir);
    ok(run_cli(keystamp(&dir).args([
        "lot", "create", "--name", "line", "--count", "40",
    ])));
    let states: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|h| tmp.path().join(format!("sim-{h}")))
        .collect();
    let children: Vec<Child> = ["host-a", "host-b", "host-c"]
        .iter()
        .zip(&states)
        .map(|(name, state)| {
            host(&dir, name, state, 16, "instant")
                .spawn()
                .expect("spawn host")
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("host"))
        .collect();
    let all: Vec<String> = outputs.iter().flat_map(results).collect();
    assert_eq!(all.len(), 48, "every station reported");
    assert_eq!(
        all.iter().filter(|r| *r == "provisioned").count(),
        40,
        "{all:?}"
    );
    assert_eq!(assert_one_identity_per_chip(&url), 40);

    // Chips move: host B meets two of A's chips (one provisioned, whichever) as its own
    // dev16/dev17, and all of A's chips that the lot refused.
    let a_chips = |suffix: &str| -> Vec<String> {
        (0..16)
            .map(|i| format!("dev{i:02}{suffix}"))
            .filter(|f| states[0].join(f).exists())
            .collect()
    };
    let mut next = 16;
    for f in a_chips(".chip.json") {
        let stem = f.trim_end_matches(".chip.json").to_string();
        let to = format!("dev{next:02}");
        for ext in [".chip.json", ".flash"] {
            let from = states[0].join(format!("{stem}{ext}"));
            if from.exists() {
                std::fs::copy(&from, states[1].join(format!("{to}{ext}"))).expect("copy chip");
            }
        }
        next += 1;
    }
    let n = next;
    let o = run_cli(&mut host(&dir, "host-b", &states[1], n, "instant"));
    assert_eq!(
        results(&o).len(),
        n,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        assert_one_identity_per_chip(&url),
        40,
        "a chip met on a second host got no second identity and the quota held"
    );
    assert_audit_clean(&dir);
}

/// kill -9 of a host mid-run: the chips it was provisioning move to another host, which
/// resumes them from the write-ahead records (found by chip serial and public key) without a
/// second identity.
#[test]
fn a_killed_hosts_devices_are_resumed_by_another_host() {
    let Some(cluster) = skip_or_fail("a_killed_hosts_devices_are_resumed_by_another_host") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("proj");
    let url = project_on_postgres(&cluster, &dir);
    let state = tmp.path().join("sim-a");
    let mut a = host(&dir, "host-a", &state, 16, "realistic")
        .spawn()
        .expect("spawn");
    // Kill once write-ahead records are pending (polled, not timed).
    let pending = |url: &str| {
        certificates(url)
            .iter()
            .filter(|c| c.2 == "pending")
            .count()
    };
    let mut seen = false;
    for _ in 0..600 {
        // Several stations mid-issuance at once, if they get there.
        let n = pending(&url);
        seen |= n > 0;
        if n >= 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    a.kill().expect("kill -9");
    a.wait().expect("reap");
    assert!(seen, "host A recorded nothing before it was killed");
    let before = certificates(&url);
    let pending_before: Vec<String> = before
        .iter()
        .filter(|c| c.2 == "pending")
        .map(|c| c.1.clone())
        .collect();
    // Host B takes the chips (the same state directory: the chips moved to its stations).
    let o = run_cli(&mut host(&dir, "host-b", &state, 16, "instant"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_all_done(&o, 16);
    assert_eq!(assert_one_identity_per_chip(&url), 16);
    let after = certificates(&url);
    assert!(after.len() >= before.len());
    assert!(
        after
            .iter()
            .all(|c| c.2 == "verified" || c.2 == "superseded")
    );
    // Each write-ahead record host A left was resumed by host B with the same certificate
    // (its chip still had the key) or superseded (the chip's key had not been saved yet):
    // never left pending.
    let resumed = pending_before
        .iter()
        .filter(|s| after.iter().any(|c| &c.1 == *s && c.2 == "verified"))
        .count();
    eprintln!(
        "host A left {} pending records; host B resumed {resumed} with the same certificate",
        pending_before.len()
    );
    assert_audit_clean(&dir);
}

/// The database stopped mid-run: stations fail with the registry's message, record nothing
/// half and send their chip no command after the failed registry call (I2C trace; the slot
/// locks are set only by the rerun); after the restart a rerun completes every device with
/// one identity each.
#[test]
fn a_database_stopped_mid_run_fails_cleanly_and_a_rerun_completes() {
    let Some(cluster) = own_or_skip("a_database_stopped_mid_run_fails_cleanly") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("proj");
    let url = project_on_postgres(&cluster, &dir);
    let state = tmp.path().join("sim");
    let trace = tmp.path().join("trace.jsonl");
    let a = host(&dir, "host-a", &state, 8, "realistic")
        .arg("--trace-i2c")
        .arg(&trace)
        .spawn()
        .expect("spawn");
    for _ in 0..600 {
        if !certificates(&url).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cluster.stop_server().expect("stop database");
    let o = a.wait_with_output().expect("host");
    assert!(!o.status.success(), "a run without its registry must fail");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("registry database unreachable"),
        "stations say why: {out}"
    );
    let (stopped, late) = stopped_by_the_registry(&o, &trace);
    assert!(!stopped.is_empty() || !late.is_empty(), "{out}");
    let locks_before: Vec<u16> = stopped.iter().map(|d| slot_locked(&state, d)).collect();
    cluster.start_server().expect("restart database");
    // A chip past its slot locks has its written certificate on record: the chip was never
    // ahead of the registry.
    let recorded = certificates(&url);
    for chip in &late {
        assert!(
            recorded
                .iter()
                .any(|c| &c.0 == chip && (c.2 == "written" || c.2 == "verified")),
            "{chip}: slots locked without a committed record: {recorded:?}"
        );
    }
    let o = run_cli(&mut host(&dir, "host-a", &state, 8, "instant"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_all_done(&o, 8);
    // The slot locks the stopped stations never got to are set by the rerun: the failed run
    // left each chip's lock state as it was when its registry call failed.
    for (d, before) in stopped.iter().zip(locks_before) {
        assert_ne!(
            slot_locked(&state, d),
            before,
            "{d}: locked only by the rerun"
        );
    }
    assert_eq!(assert_one_identity_per_chip(&url), 8);
    assert_audit_clean(&dir);
}

/// A simulated chip's `SlotLocked` config bytes 88–89 (u16 LE, bit n = 1: slot n still
/// unlocked; /work/shared/reference/atecc608.md, config zone map), read from its state file.
fn slot_locked(state: &Path, device: &str) -> u16 {
    let path = state.join(format!("{device}.chip.json"));
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("chip state")).expect("json");
    let config = hex::decode(file["config"].as_str().expect("config")).expect("hex");
    u16::from_le_bytes([config[88], config[89]])
}

/// The ATECC command packets a device's chip received, from the I2C trace: (opcode, param1).
/// A command is a write of word address 0x03, then count, opcode, param1, … (atecc608.md §1.3);
/// Write and Lock name the zone in param1 bits 1:0 (2: a data slot / a single slot).
fn chip_commands(trace: &str, device: &str) -> Vec<(u8, u8)> {
    trace
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["station"] == device && l["dir"] == "write" && l["addr"] == "0x60")
        .filter_map(|l| hex::decode(l["bytes"].as_str()?).ok())
        .filter(|b| b.len() >= 4 && b[0] == 0x03)
        .map(|b| (b[2], b[3]))
        .collect()
}

const WRITE: u8 = 0x12;
const LOCK: u8 = 0x17;

/// The devices whose station stopped because the registry was unreachable before the slot
/// locks (steps probe to definitions), after checking
/// from the I2C trace that their chip received no command after the failed registry call:
/// a station stopped before `certificates` wrote no data slot; one stopped at `certificates`
/// (its record of the written slots failed) sent nothing after its slot writes — no lock.
/// Returns those devices, and the chip serials of the devices stopped past the slot locks.
fn stopped_by_the_registry(o: &Output, trace: &Path) -> (Vec<String>, Vec<String>) {
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
    let trace = std::fs::read_to_string(trace).expect("trace");
    let (mut stopped, mut late) = (Vec::new(), Vec::new());
    for d in report["devices"].as_array().expect("devices") {
        let error = d["error"].as_str().unwrap_or_default();
        let Some((step, _)) = error.split_once(": registry database unreachable") else {
            continue;
        };
        let port = d["port"].as_str().expect("port");
        let device = port
            .strip_prefix("inproc:")
            .and_then(|p| p.split('#').next())
            .expect("in-process port")
            .to_string();
        let commands = chip_commands(&trace, &device);
        let data_write = |&(op, p1): &(u8, u8)| op == WRITE && p1 & 0x03 == 0x02;
        match step {
            "probe" | "config" | "key" | "issue" => {
                assert!(
                    !commands.iter().any(data_write),
                    "{device}: {commands:02X?}"
                );
            }
            "certificates" => {
                assert!(
                    commands.last().is_some_and(data_write),
                    "{device}: a command after its slot writes: {commands:02X?}"
                );
            }
            "definitions" => {}
            // Past the slot locks (verify, lock_slots, done): its chip may only be that far
            // if the record of its written slots was committed (checked by the caller).
            _ => {
                late.push(d["chip_serial"].as_str().expect("chip serial").to_string());
                continue;
            }
        }
        // Every step above comes before the slot locks.
        assert!(
            !commands
                .iter()
                .any(|&(op, p1)| op == LOCK && p1 & 0x03 == 0x02),
            "{device}: a slot was locked: {commands:02X?}"
        );
        stopped.push(device);
    }
    (stopped, late)
}
