//! `cargo xtask soak --runs N [--seed S]`: N provisionings of fresh simulated devices, each with
//! faults drawn from the seed (chip CRC errors, NACK bursts, a brown-out, a device reset at some
//! request, UART bit flips, log lines), rerun up to three times when a run fails, as an operator
//! would; three runs in ten also negotiate a faster line (`SetBaud`), some losing the
//! confirmation frame or with a UART that cannot switch. Prints how the runs ended and the anomalies, each of which must be 0:
//!
//! * duplicate identity — one public key certified for two chips, or one chip holding two live
//!   certificates;
//! * a lock over unverified bytes — a device whose trust anchor is locked (Locked) whose chain
//!   does not verify against the registry on a clean link;
//! * a registry row without matching device state — a certificate recorded `verified` for a chip
//!   that is not Locked or whose chain does not verify;
//! * a lot count that disagrees with the registry — the lot's used places against the chips
//!   that took one.
//!
//! Exits nonzero on any anomaly.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use keystamp::engine::{DeviceResult, Material, Station};
use keystamp::link::{self, Link};
use keystamp::pki::ca::{self, KeyProtection, Signer};
use keystamp::project::Profile;
use keystamp::registry::Registry;
use keystamp::setup;
use keystamp::sim::faults::{FaultSpec, FaultStream};
use keystamp::sim::{LinkFaults, SIM_MAX_BAUD, SimDevice, SimDeviceOptions, SimLink};
use keystamp_atecc_sim::{FaultConfig, Timing};
use keystamp_wire::RetryPolicy;

/// Reruns after a failed run.
const RERUNS: usize = 3;

/// Name of the counted lot every device takes a place in.
const LOT: &str = "soak";

/// How the runs ended, and the anomalies.
#[derive(Default, Debug)]
struct Tally {
    first_time: usize,
    after_rerun: usize,
    failed_cleanly: usize,
    duplicate_identity: usize,
    lock_over_unverified: usize,
    row_without_device_state: usize,
    lot_count_mismatch: usize,
}

impl Tally {
    fn anomalies(&self) -> usize {
        self.duplicate_identity
            + self.lock_over_unverified
            + self.row_without_device_state
            + self.lot_count_mismatch
    }
}

/// The per-run fault plan's draws.
struct Draw(FaultStream);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// `true` `percent` times in a hundred.
    fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// 1..=n.
    fn upto(&mut self, n: u64) -> u64 {
        1 + self.next() % n
    }
}

/// The faults of run `run` (seeded from `seed` and `run`), and whether the run negotiates a
/// faster line (`--baud-max 921600`).
fn plan(seed: u64, run: u64) -> (FaultSpec, bool) {
    let mut d = Draw(FaultStream::new(
        seed ^ run.wrapping_mul(0xA24B_AED4_963E_E407),
    ));
    let stream = d.next();
    let negotiate = d.percent(30);
    let spec = FaultSpec {
        chip: FaultConfig {
            seed: stream,
            crc_corruption: if d.percent(40) { 0.03 } else { 0.0 },
            nack_burst: if d.percent(40) { 0.02 } else { 0.0 },
            nack_burst_max: 3,
            // A fresh provisioning runs about 60 chip commands.
            brownout_at_command: d.percent(30).then(|| d.upto(70)),
            wake_self_test_failure: false,
        },
        link: LinkFaults {
            seed: stream ^ 0x5EED,
            bit_flip: if d.percent(25) { 0.0003 } else { 0.0 },
            log_line: if d.percent(50) { 0.2 } else { 0.0 },
            // About 20 requests per fresh provisioning.
            reset_at_request: d.percent(30).then(|| d.upto(25)),
            lose_baud_confirmation: negotiate && d.percent(15),
            baud_switch_fails: negotiate && d.percent(15),
        },
    };
    (spec, negotiate)
}

struct Project {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    signer: Signer,
    material: Material,
    registry: Mutex<Registry>,
}

fn project(runs: usize) -> Result<Project, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let path = dir.path().to_path_buf();
    let profile = Profile::default();
    let ca_dir = path.join("ca");
    ca::create(
        &ca_dir,
        &profile.ca,
        &KeyProtection::Unencrypted,
        SystemTime::now(),
    )
    .map_err(|e| format!("CA: {e}"))?;
    let signer = Signer::unlock(&ca_dir, None).map_err(|e| format!("signer: {e}"))?;
    let (device_def, signer_def) =
        setup::generate_definitions(&profile, &signer).map_err(|e| format!("definitions: {e}"))?;
    let material = setup::material_from_parts(
        &profile,
        &signer,
        device_def,
        signer_def,
        setup::default_config_bytes(&profile).map_err(|e| format!("config: {e}"))?,
        path.join("devices"),
    )
    .map_err(|e| format!("material: {e}"))?;
    let mut registry =
        Registry::open(&path.join("registry.sqlite")).map_err(|e| format!("registry: {e}"))?;
    registry.set_record_signer(Box::new(signer.clone()));
    registry
        .create_lot(LOT, runs.max(1) as u64)
        .map_err(|e| format!("lot: {e}"))?;
    Ok(Project {
        _dir: dir,
        dir: path,
        signer,
        material,
        registry: Mutex::new(registry),
    })
}

fn start(p: &Project, name: &str, faults: &FaultSpec) -> Result<SimDevice, String> {
    SimDevice::start_on(
        SimDeviceOptions {
            name: name.into(),
            state_dir: p.dir.join("sims"),
            timing: Timing::Instant,
            baud: None,
            seed: None,
            faults: faults.chip.clone(),
            trace: None,
            platform: keystamp_wire::PlatformSecurity::UNKNOWN,
            max_baud: SIM_MAX_BAUD,
            link_faults: faults.link.clone(),
        },
        SimLink::InProcess,
    )
    .map_err(|e| format!("simulated device {name}: {e}"))
}

fn station<'a>(
    p: &'a Project,
    dev: &SimDevice,
) -> Option<Station<'a, Box<dyn serialport::SerialPort>>> {
    let port = link::open_port(dev.port_path(), 115_200).ok()?;
    let link = Link::new(
        port,
        RetryPolicy {
            base_timeout_ms: 300,
            ..RetryPolicy::default()
        },
        None,
    );
    Some(Station::new(
        dev.name().into(),
        dev.port_path().into(),
        link,
        &p.material,
        &p.signer,
        &p.registry,
        &|_, _| {},
    ))
}

fn ok(result: &DeviceResult) -> bool {
    matches!(
        result,
        DeviceResult::Provisioned | DeviceResult::AlreadyProvisioned
    )
}

/// One run: a fresh faulty device provisioned, rerun up to [`RERUNS`] times; then its state
/// checked on a clean link.
fn run(p: &Project, name: &str, faults: &FaultSpec, tally: &mut Tally) -> Result<(), String> {
    let dev = start(p, name, faults)?;
    let mut attempts = 0;
    let mut provisioned = false;
    let mut last = String::new();
    while attempts <= RERUNS && !provisioned {
        attempts += 1;
        match station(p, &dev).map(|s| s.run().result) {
            Some(result) if ok(&result) => provisioned = true,
            Some(result) => last = format!("{result:?}"),
            None => last = "the port did not open".into(),
        }
    }
    if !provisioned {
        // Failed cleanly (the checks below say whether it was clean): the last reason.
        eprintln!("soak: {name} failed {attempts} times, last: {last}");
    }
    match (provisioned, attempts) {
        (true, 1) => tally.first_time += 1,
        (true, _) => tally.after_rerun += 1,
        (false, _) => tally.failed_cleanly += 1,
    }
    let chip = dev.chip().lock().state().clone();
    dev.stop();
    // The device as it is, without faults: what the registry says must be what it holds.
    let clean = start(p, name, &FaultSpec::default())?;
    let serial: [u8; 9] = {
        let c = &chip.config;
        [c[0], c[1], c[2], c[3], c[8], c[9], c[10], c[11], c[12]]
    };
    let locked = chip.config[86] == 0x00
        && u16::from_le_bytes([chip.config[88], chip.config[89]]) & (1 << keystamp_agent_anchor())
            == 0;
    let verifies = station(p, &clean).is_some_and(|s| ok(&s.verify_only().result));
    let verified_rows = rows(p, &serial, "verified")?;
    if locked && !verifies {
        tally.lock_over_unverified += 1;
    }
    if verified_rows > 0 && (!locked || !verifies) {
        tally.row_without_device_state += 1;
    }
    clean.stop();
    Ok(())
}

/// The trust-anchor slot (decision 0006).
fn keystamp_agent_anchor() -> u16 {
    u16::from(keystamp_atecc::default_config::SLOT_SIGNER_PUBKEY)
}

/// Device certificates of `serial` in `status`.
fn rows(p: &Project, serial: &[u8; 9], status: &str) -> Result<i64, String> {
    let conn = open_db(&p.dir)?;
    let hex: String = serial.iter().map(|b| format!("{b:02X}")).collect();
    conn.query_row(
        "SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND chip_serial = ?1 AND status = ?2",
        [hex.as_str(), status],
        |r| r.get(0),
    )
    .map_err(|e| format!("registry: {e}"))
}

fn open_db(dir: &Path) -> Result<rusqlite::Connection, String> {
    rusqlite::Connection::open_with_flags(
        dir.join("registry.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| format!("registry: {e}"))
}

/// The registry-wide checks: duplicate identities and the lot count.
fn global_checks(p: &Project, tally: &mut Tally) -> Result<(), String> {
    let conn = open_db(&p.dir)?;
    let count = |sql: &str| -> Result<i64, String> {
        conn.query_row(sql, [], |r| r.get(0))
            .map_err(|e| format!("registry: {e}"))
    };
    // One key certified for two chips.
    tally.duplicate_identity += count(
        "SELECT COUNT(*) FROM (SELECT public_key FROM certificates WHERE kind = 'device' \
         GROUP BY public_key HAVING COUNT(DISTINCT chip_serial) > 1)",
    )? as usize;
    // One chip with two live certificates.
    tally.duplicate_identity += count(
        "SELECT COUNT(*) FROM (SELECT chip_serial FROM certificates WHERE kind = 'device' \
         AND status IN ('issued', 'verified') GROUP BY chip_serial HAVING COUNT(*) > 1)",
    )? as usize;
    let used = count(&format!("SELECT used FROM lots WHERE name = '{LOT}'"))?;
    let placed = count(&format!(
        "SELECT COUNT(*) FROM devices WHERE lot_id = (SELECT id FROM lots WHERE name = '{LOT}')"
    ))?;
    let certified = count(&format!(
        "SELECT COUNT(DISTINCT chip_serial) FROM certificates WHERE kind = 'device' AND \
         chip_serial IN (SELECT chip_serial FROM devices WHERE lot_id = \
         (SELECT id FROM lots WHERE name = '{LOT}'))"
    ))?;
    if used != placed || placed != certified {
        eprintln!("soak: lot {LOT}: used {used}, devices placed {placed}, certified {certified}");
        tally.lot_count_mismatch += 1;
    }
    Ok(())
}

fn parse_args() -> Result<(usize, u64, u64), String> {
    let mut runs = 50usize;
    let mut from = 0u64;
    let mut seed = 19u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--runs" => {
                runs = value("--runs")?
                    .parse()
                    .map_err(|_| "--runs takes a number".to_string())?;
            }
            "--seed" => {
                seed = value("--seed")?
                    .parse()
                    .map_err(|_| "--seed takes a number".to_string())?;
            }
            "--from" => {
                from = value("--from")?
                    .parse()
                    .map_err(|_| "--from takes a number".to_string())?;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (--runs N, --seed S, --from FIRST_RUN)"
                ));
            }
        }
    }
    Ok((runs, seed, from))
}

fn main() -> ExitCode {
    match soak() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn soak() -> Result<bool, String> {
    let (runs, seed, from) = parse_args()?;
    let started = Instant::now();
    let mut p = project(runs)?;
    let mut tally = Tally::default();
    for i in from..from + runs as u64 {
        let (faults, negotiate) = plan(seed, i);
        p.material.baud_max = negotiate.then_some(921_600);
        run(&p, &format!("soak{i:05}"), &faults, &mut tally)?;
    }
    global_checks(&p, &mut tally)?;
    println!(
        "soak: {runs} fault-injected provisionings, seed {seed}, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    println!("  verified first time      {}", tally.first_time);
    println!("  verified after rerun     {}", tally.after_rerun);
    println!("  failed cleanly           {}", tally.failed_cleanly);
    println!("anomalies (must be 0):");
    println!("  duplicate identity       {}", tally.duplicate_identity);
    println!("  lock over unverified     {}", tally.lock_over_unverified);
    println!(
        "  registry row, no device  {}",
        tally.row_without_device_state
    );
    println!("  lot count mismatch       {}", tally.lot_count_mismatch);
    Ok(tally.anomalies() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry the soak's checks are pointed at, after one clean provisioning.
    fn provisioned() -> (Project, Tally) {
        let p = project(4).unwrap();
        let mut tally = Tally::default();
        run(&p, "clean", &FaultSpec::default(), &mut tally).unwrap();
        global_checks(&p, &mut tally).unwrap();
        assert_eq!((tally.first_time, tally.anomalies()), (1, 0), "{tally:?}");
        (p, tally)
    }

    fn write_db(p: &Project, sql: &str) {
        let conn = rusqlite::Connection::open(p.dir.join("registry.sqlite")).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    #[test]
    fn a_key_certified_for_a_second_chip_is_a_duplicate_identity() {
        let (p, _) = provisioned();
        write_db(
            &p,
            "INSERT INTO devices (chip_serial, state, created_at, updated_at) \
             VALUES ('EE0000000000000001', 'new', 'now', 'now'); \
             INSERT INTO certificates (serial, chip_serial, kind, public_key, subject_cn, der, \
             not_before, not_after, status, created_at, updated_at) \
             SELECT 'DUP', 'EE0000000000000001', kind, public_key, subject_cn, der, not_before, \
             not_after, 'issued', created_at, updated_at FROM certificates WHERE kind = 'device';",
        );
        let mut tally = Tally::default();
        global_checks(&p, &mut tally).unwrap();
        assert_eq!(tally.duplicate_identity, 1);
    }

    #[test]
    fn a_lot_count_off_by_one_is_reported() {
        let (p, _) = provisioned();
        write_db(&p, "UPDATE lots SET used = used + 1;");
        let mut tally = Tally::default();
        global_checks(&p, &mut tally).unwrap();
        assert_eq!(tally.lot_count_mismatch, 1);
    }

    #[test]
    fn a_verified_row_for_a_device_that_does_not_verify_is_reported() {
        let (p, _) = provisioned();
        // The registry now holds another certificate than the device: verify must fail.
        write_db(
            &p,
            "UPDATE certificates SET der = X'3000' WHERE kind = 'device';",
        );
        let mut tally = Tally::default();
        run(&p, "clean", &FaultSpec::default(), &mut tally).unwrap();
        assert!(
            tally.row_without_device_state + tally.lock_over_unverified >= 1,
            "{tally:?}"
        );
    }
}
