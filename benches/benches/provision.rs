//! End-to-end provisioning time under the realistic timing model (`cargo xtask bench provision`).
//!
//! Simulated devices (the real agent + ATECC driver on emulated chips whose commands take their
//! documented execution times) behind pseudo-terminals; both ends' UART output paced at 115200
//! baud, 10 bits per byte, then again with the rate negotiated up to 921600 (`--baud-max`).
//! Reports, per device: the wall time at one station, the floor for the same trace (bytes on
//! the wire / baud + the sum of the chip's execution times), the minimal-flow floor (decision
//! 0010: the chip commands the flow needs, priced with the same table, + the same wire bytes),
//! the ratios, and the throughput of 16 parallel stations relative to one.
//!
//! Not a criterion bench: one provisioning is seconds long and changes the chip for good, so each
//! sample needs a fresh chip. The median of several fresh devices is reported.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use keystamp::engine::{DeviceResult, Material, minimal};
use keystamp::ops::{SimOptions, run_stations, start_sims};
use keystamp::pki::ca::{self, KeyProtection, Signer};
use keystamp::project::Profile;
use keystamp::registry::Registry;
use keystamp::setup;

const BAUD: u32 = 115_200;

struct Setup {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    signer: Signer,
    material: Material,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let profile = Profile::default();
    let ca_dir = path.join("ca");
    ca::create(
        &ca_dir,
        &profile.ca,
        &KeyProtection::Unencrypted,
        SystemTime::now(),
    )
    .expect("CA");
    let signer = Signer::unlock(&ca_dir, None).expect("signer");
    let (device_def, signer_def) =
        setup::generate_definitions(&profile, &signer).expect("definitions");
    let material = setup::material_from_parts(
        &profile,
        &signer,
        device_def,
        signer_def,
        keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES,
        path.join("devices"),
    )
    .expect("material");
    Setup {
        _dir: dir,
        dir: path,
        signer,
        material,
    }
}

struct Batch {
    wall: Duration,
    per_device: Vec<Duration>,
    floors: Vec<Duration>,
    wire_bytes: Vec<u64>,
    chip_floor: Vec<Duration>,
    /// The rate the links ended at.
    baud: u32,
}

fn batch(s: &Setup, name: &str, n: usize) -> Batch {
    let state = s.dir.join(name);
    let flags = SimOptions {
        timing: keystamp_atecc_sim::Timing::Realistic,
        trace_i2c: None,
        platform: keystamp_wire::PlatformSecurity::UNKNOWN,
        link: keystamp::sim::SimLink::default(),
        faults: Default::default(),
    };
    let sims = start_sims(n, &state, &flags, BAUD).expect("sims");
    let ports: Vec<String> = sims.iter().map(|d| d.port_path().to_string()).collect();
    let mut registry = Registry::open(&s.dir.join(format!("{name}.sqlite"))).expect("registry");
    // Records are signed by the signer, as in a provisioning run.
    registry.set_record_signer(Box::new(s.signer.clone()));
    let registry = Mutex::new(registry);
    let started = Instant::now();
    let reports = run_stations(
        &ports,
        BAUD,
        true,
        &s.material,
        &s.signer,
        &registry,
        false,
        false,
        &std::sync::atomic::AtomicBool::new(false),
    );
    let wall = started.elapsed();
    let mut b = Batch {
        wall,
        per_device: vec![],
        floors: vec![],
        wire_bytes: vec![],
        chip_floor: vec![],
        baud: BAUD,
    };
    for (r, sim) in reports.iter().zip(&sims) {
        assert_eq!(r.result, DeviceResult::Provisioned, "{r:?}");
        let bytes = r.link.bytes_out + r.link.bytes_in;
        // Priced at the rate the link ended at (with a negotiated rate, Hello and SetBaud went
        // at 115200: about 150 bytes, 13 ms, priced too low by 11 ms).
        let wire = minimal::wire_time(bytes, r.link.baud);
        b.baud = r.link.baud;
        let chip = sim.chip().lock().execution_floor();
        b.per_device.push(r.elapsed);
        b.wire_bytes.push(bytes);
        b.chip_floor.push(chip);
        b.floors.push(wire + chip);
    }
    b
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One station, five fresh devices one after another, then sixteen stations at once; prints
/// the figures under `label`.
fn measure(s: &Setup, label: &str) {
    let mut single = Vec::new();
    let mut floors = Vec::new();
    let mut bytes = Vec::new();
    let mut chip = Vec::new();
    let mut baud = BAUD;
    for i in 0..5 {
        let b = batch(s, &format!("{label}single{i}"), 1);
        single.push(b.per_device[0]);
        floors.push(b.floors[0]);
        bytes.push(b.wire_bytes[0]);
        chip.push(b.chip_floor[0]);
        baud = b.baud;
    }
    let t1 = median(single.clone());
    let floor = median(floors.clone());
    let b16 = batch(s, &format!("{label}parallel16"), 16);
    let throughput_1 = 1.0 / t1.as_secs_f64();
    let throughput_16 = 16.0 / b16.wall.as_secs_f64();
    let wire_bytes = bytes[bytes.len() / 2];
    println!("-- {label}: link at {baud} baud");
    println!(
        "provision/single_station  median {:.3} s per device (runs: {:?})",
        t1.as_secs_f64(),
        single
            .iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    println!(
        "provision/floor           median {:.3} s  (wire {wire_bytes} bytes = {:.3} s at {baud} baud + chip execution {:.3} s)",
        floor.as_secs_f64(),
        minimal::wire_time(wire_bytes, baud).as_secs_f64(),
        median(chip).as_secs_f64()
    );
    println!(
        "provision/ratio_to_floor  {:.3}  (target <= 1.25)",
        t1.as_secs_f64() / floor.as_secs_f64()
    );
    // The floor of the work that has to happen (decision 0010): the minimal flow's chip
    // commands, priced with the same table, plus the wire bytes this run's frames needed.
    let minimal_chip = minimal::chip_time(minimal::MINIMAL_FLOW, 0);
    let minimal = minimal_chip + minimal::wire_time(wire_bytes, baud);
    println!(
        "provision/minimal_floor   {:.3} s  (minimal-flow chip time {:.3} s + the same wire bytes)",
        minimal.as_secs_f64(),
        minimal_chip.as_secs_f64()
    );
    println!(
        "provision/ratio_minimal   {:.3}  (target <= 1.15); own-trace floor / minimal floor {:.3}",
        t1.as_secs_f64() / minimal.as_secs_f64(),
        floor.as_secs_f64() / minimal.as_secs_f64()
    );
    println!(
        "provision/16_stations     {:.3} s wall for 16 devices; per device median {:.3} s",
        b16.wall.as_secs_f64(),
        median(b16.per_device.clone()).as_secs_f64()
    );
    println!(
        "provision/scaling_16      {:.2}x single-station throughput (target >= 12)",
        throughput_16 / throughput_1
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters like criterion's would.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.as_deref().is_some_and(|f| !"provision".contains(f)) {
        return;
    }
    let mut s = setup();
    measure(&s, "115200");
    // `provision --baud-max 921600`: SetBaud after Hello (simulated devices offer 921600).
    s.material.baud_max = Some(921_600);
    measure(&s, "negotiated");
}
