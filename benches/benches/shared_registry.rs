//! Several hosts, one registry (`cargo xtask bench shared_registry`): provisioning throughput
//! in devices per hour of 1 host × 16 stations on SQLite and on PostgreSQL, and of 3 hosts ×
//! 16 stations sharing one PostgreSQL registry, against one station alone; and registry
//! issuance transactions per second on each engine.
//!
//! Simulated devices under the realistic timing model behind pseudo-terminals at 115200 baud
//! (as `provision`), a throwaway PostgreSQL server with `fsync` on (`PgCluster::start_durable`)
//! and SQLite in WAL mode on the same disk. The three hosts are three `Run`s in one process,
//! each with its own database connection and 16 stations of its own. Not a criterion bench:
//! each sample changes its chips for good; medians over fresh devices are printed.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use keystamp::engine::DeviceResult;
use keystamp::ops::{Run, SimOptions, StationMode, start_sims};
use keystamp::project::{Project, with_registry};
use keystamp::registry::chain::EphemeralKey;
use keystamp::registry::pg_cluster::PgCluster;
use keystamp::registry::{CertKind, ChipSerial, IssueRequest, Registry};

const BAUD: u32 = 115_200;

fn cli(dir: &Path, args: &[&str]) {
    use clap::Parser;
    let mut argv = vec!["keystamp", "--project", dir.to_str().expect("utf-8 path")];
    argv.extend_from_slice(args);
    let mut sink = Vec::new();
    keystamp::cli::run(keystamp::cli::Cli::parse_from(argv), &mut sink)
        .unwrap_or_else(|e| panic!("keystamp {args:?}: {e}"));
}

/// Provisions `n` fresh simulated devices per host on `hosts` hosts at once; the wall time.
fn hosts(dir: &Path, registry: Option<&str>, name: &str, hosts: usize, n: usize) -> Duration {
    let runs: Vec<Run> = (0..hosts)
        .map(|_| {
            let project = with_registry(registry, || Project::open(dir)).expect("project");
            Run::prepare(project).expect("run")
        })
        .collect();
    let options = SimOptions {
        timing: keystamp_atecc_sim::Timing::Realistic,
        trace_i2c: None,
        platform: keystamp_wire::PlatformSecurity::UNKNOWN,
        link: keystamp::sim::SimLink::default(),
        part: keystamp_atecc_sim::Part::Blank,
        faults: Default::default(),
    };
    let sims: Vec<_> = (0..hosts)
        .map(|h| start_sims(n, &dir.join(format!("{name}-h{h}")), &options, BAUD).expect("sims"))
        .collect();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (run, devices) in runs.iter().zip(&sims) {
            let ports: Vec<String> = devices.iter().map(|d| d.port_path().to_string()).collect();
            let stop = &stop;
            scope.spawn(move || {
                let reports = run.stations(&ports, BAUD, true, StationMode::Provision, false, stop);
                for r in reports {
                    assert_eq!(r.result, DeviceResult::Provisioned, "{r:?}");
                }
            });
        }
    });
    started.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn per_hour(devices: usize, wall: Duration) -> f64 {
    devices as f64 * 3600.0 / wall.as_secs_f64()
}

/// Issuance transactions (`begin_issue`, each a new write-ahead record) per second.
fn issuance_rate(reg: &mut Registry, first: u32, n: u32) -> f64 {
    let started = Instant::now();
    for i in first..first + n {
        let b = i.to_be_bytes();
        let pk = [b[3].max(1); 64];
        let mut serial = [0x40u8; 9];
        serial[5..].copy_from_slice(&b);
        let mut chip = [0u8; 9];
        chip[5..].copy_from_slice(&b);
        let mut key = pk;
        key[..4].copy_from_slice(&b);
        reg.begin_issue(&IssueRequest {
            kind: CertKind::Device,
            chip_serial: Some(ChipSerial(chip)),
            serial: &serial,
            public_key: &key,
            subject_cn: "bench",
            der: &[0x30; 480],
            not_before: "2026-01-01T00:00:00Z",
            not_after: "2046-01-01T00:00:00Z",
        })
        .expect("issue");
    }
    f64::from(n) / started.elapsed().as_secs_f64()
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter
        .as_deref()
        .is_some_and(|f| !"shared_registry".contains(f))
    {
        return;
    }
    let cluster = match PgCluster::start_durable() {
        Ok(c) => c,
        Err(e) => {
            println!("shared_registry: skipped: {e}");
            return;
        }
    };
    let tmp = tempfile::tempdir().expect("tmp");

    // Registry issuance transactions per second, one connection each.
    let mut sqlite = Registry::open(&tmp.path().join("tx.sqlite")).expect("sqlite");
    sqlite.set_record_signer(Box::new(EphemeralKey::generate().expect("key")));
    let url = cluster.new_database().expect("db");
    Registry::migrate_postgres(&url).expect("migrate");
    let mut pg = Registry::open_postgres(&url).expect("pg");
    pg.set_record_signer(Box::new(EphemeralKey::generate().expect("key")));
    let (mut s_rates, mut p_rates) = (Vec::new(), Vec::new());
    for round in 0..3 {
        s_rates.push(issuance_rate(&mut sqlite, 1 + round * 300, 300));
        p_rates.push(issuance_rate(&mut pg, 1 + round * 300, 300));
    }
    println!(
        "shared_registry/issuance_tx  SQLite median {:.0}/s, PostgreSQL median {:.0}/s \
         (300 begin_issue per round, 3 rounds, each a signed chain record)",
        median(s_rates),
        median(p_rates)
    );

    // A project on SQLite, and the same project copied to PostgreSQL.
    let dir = tmp.path().join("proj");
    cli(&dir, &["init", "--insecure-no-passphrase"]);
    let url = cluster.new_database().expect("db");
    cli(&dir, &["registry", "migrate", "--registry", &url]);
    cli(&dir, &["registry", "copy", "--to", &url]);

    let single: Vec<f64> = (0..3)
        .map(|i| hosts(&dir, Some(&url), &format!("one{i}"), 1, 1).as_secs_f64())
        .collect();
    let t1 = median(single.clone());
    let one_station = 3600.0 / t1;
    println!(
        "shared_registry/1_station     PostgreSQL: median {t1:.2} s per device = {one_station:.0} \
         devices/hour (runs {single:.2?})"
    );
    let w = hosts(&dir, None, "sq16", 1, 16);
    println!(
        "shared_registry/1x16_sqlite   {:.2} s wall, {:.0} devices/hour",
        w.as_secs_f64(),
        per_hour(16, w)
    );
    let w = hosts(&dir, Some(&url), "pg16", 1, 16);
    println!(
        "shared_registry/1x16_postgres {:.2} s wall, {:.0} devices/hour",
        w.as_secs_f64(),
        per_hour(16, w)
    );
    let w = hosts(&dir, Some(&url), "pg48", 3, 16);
    let rate = per_hour(48, w);
    println!(
        "shared_registry/3x16_postgres {:.2} s wall, {rate:.0} devices/hour = {:.1}x one \
         station (goal >= 40x)",
        w.as_secs_f64(),
        rate / one_station
    );
}
