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
//! `--profile custom|trustflex|trustandgo` (default custom) picks the parts and the flow: blank
//! chips configured by keystamp, ATECC608B-TFLXTLS parts as shipped, or ATECC608A-TNGTLS parts
//! whose Microchip chain is verified and registered (docs/factory-guide.md "Timing").
//!
//! Not a criterion bench: one provisioning is seconds long and changes the chip for good, so each
//! sample needs a fresh chip. The median of several fresh devices is reported.
//!
//! The same signer key is also imported into a throwaway SoftHSM2 token (same certificates and
//! definitions), and single-station runs alternate between the software signer and the token
//! signer: the per-device cost of signing through PKCS#11 (skipped with a message when
//! SoftHSM2 is not installed).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use keystamp::engine::{DeviceResult, Material, minimal};
use keystamp::ops::{SimOptions, run_stations, start_sims};
use keystamp::pki::ca::{self, KeyProtection, Signer};
use keystamp::project::{PartProfile, Profile};
use keystamp::registry::Registry;
use keystamp::setup;

const BAUD: u32 = 115_200;

struct Setup {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    signer: Signer,
    material: Material,
    part: keystamp_atecc_sim::Part,
}

/// The setup's signer key imported into a fresh SoftHSM2 token in `dir`, as a token signer
/// with the same certificates; `None` (with the reason printed) without SoftHSM2.
fn token_signer(s: &Setup, dir: &std::path::Path) -> Option<Signer> {
    use keystamp_benches::{SOFTHSM_LABEL, SOFTHSM_PIN, softhsm_token};
    let Some((conf, module)) = softhsm_token(dir) else {
        eprintln!("SKIP provision/single_station_softhsm2: SoftHSM2 not installed");
        return None;
    };
    // SoftHSM2 reads SOFTHSM2_CONF when it initializes. This runs in main before any other
    // thread exists (the simulated devices start later), so it races with nothing.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", &conf);
    }
    let cfg = keystamp::project::Pkcs11Section {
        module,
        token: SOFTHSM_LABEL.into(),
        key_label: "bench-signer".into(),
    };
    let pin = cryptoki::types::AuthPin::from(SOFTHSM_PIN.to_string());
    let ca_dir = s.dir.join("ca");
    let key = ca::unlock_signer_key(&ca_dir, None).expect("software signer key");
    let token = keystamp::pki::pkcs11::TokenKey::import(&cfg, &pin, &key).expect("import");
    Some(Signer::with_token(&ca_dir, token).expect("token signer"))
}

fn setup(part_profile: PartProfile) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let profile = Profile {
        profile: part_profile,
        ..Profile::default()
    };
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
    let config = match part_profile {
        PartProfile::TrustFlex => setup::trust_flex_config(),
        _ => keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES,
    };
    let mut material = setup::material_from_parts(
        &profile,
        &signer,
        device_def,
        signer_def,
        config,
        path.join("devices"),
    )
    .expect("material");
    if part_profile == PartProfile::TrustAndGo {
        // The simulated parts' test Microchip root.
        let ca =
            keystamp::microchip::TestMicrochipCa::new(keystamp::microchip::DEFAULT_TEST_CA_LABEL);
        material.microchip_root = Some(keystamp::engine::MicrochipRoot {
            public_key: ca.root_public_key(),
            der: ca.root_der().to_vec(),
        });
    }
    Setup {
        _dir: dir,
        dir: path,
        signer,
        material,
        part: match part_profile {
            PartProfile::Custom => keystamp_atecc_sim::Part::Blank,
            PartProfile::TrustFlex => keystamp_atecc_sim::Part::TrustFlex,
            PartProfile::TrustAndGo => keystamp_atecc_sim::Part::TrustAndGo,
        },
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

fn batch(s: &Setup, signer: &Signer, name: &str, n: usize) -> Batch {
    let state = s.dir.join(name);
    let flags = SimOptions {
        timing: keystamp_atecc_sim::Timing::Realistic,
        trace_i2c: None,
        platform: keystamp_wire::PlatformSecurity::UNKNOWN,
        link: keystamp::sim::SimLink::default(),
        part: s.part,
        faults: Default::default(),
    };
    let sims = start_sims(n, &state, &flags, BAUD).expect("sims");
    let ports: Vec<String> = sims.iter().map(|d| d.port_path().to_string()).collect();
    let mut registry = Registry::open(&s.dir.join(format!("{name}.sqlite"))).expect("registry");
    // Records are signed by the signer, as in a provisioning run.
    registry.set_record_signer(Box::new(signer.clone()));
    let registry = Mutex::new(registry);
    let started = Instant::now();
    let reports = run_stations(
        &ports,
        BAUD,
        true,
        &s.material,
        signer,
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

fn main() {
    // `cargo bench` passes `--bench`; `--profile P` picks the flow; any other argument filters
    // like criterion's would.
    let mut part_profile = PartProfile::Custom;
    let mut filter = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--profile" {
            part_profile = match args.next().as_deref() {
                Some("trustflex") => PartProfile::TrustFlex,
                Some("trustandgo") => PartProfile::TrustAndGo,
                Some("custom") => PartProfile::Custom,
                other => panic!("--profile {other:?}: custom, trustflex or trustandgo"),
            };
        } else if !a.starts_with('-') && filter.is_none() {
            filter = Some(a);
        }
    }
    if filter.as_deref().is_some_and(|f| !"provision".contains(f)) {
        return;
    }
    println!("provision/profile         {part_profile}");
    let mut s = setup(part_profile);
    let token_dir = tempfile::tempdir().expect("tempdir");
    let token = token_signer(&s, token_dir.path());
    measure(&s, token.as_ref(), "115200");
    // `provision --baud-max 921600`: SetBaud after Hello (simulated devices offer 921600).
    s.material.baud_max = Some(921_600);
    measure(&s, None, "negotiated");
}

/// One station, five fresh devices one after another (with `token`, the token signer's runs
/// interleaved), then sixteen stations at once; prints the figures under `label`.
fn measure(s: &Setup, token: Option<&Signer>, label: &str) {
    let mut single = Vec::new();
    let mut single_token = Vec::new();
    let mut floors = Vec::new();
    let mut bytes = Vec::new();
    let mut chip = Vec::new();
    let mut baud = BAUD;
    for i in 0..5 {
        let b = batch(s, &s.signer, &format!("{label}single{i}"), 1);
        single.push(b.per_device[0]);
        floors.push(b.floors[0]);
        bytes.push(b.wire_bytes[0]);
        chip.push(b.chip_floor[0]);
        baud = b.baud;
        if let Some(token) = token {
            let b = batch(s, token, &format!("{label}token{i}"), 1);
            single_token.push(b.per_device[0]);
        }
    }
    let t1 = median(single.clone());
    let floor = median(floors.clone());
    // Sixteen stations at once.
    let b16 = batch(s, &s.signer, &format!("{label}parallel16"), 16);
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
    if !single_token.is_empty() {
        let tt = median(single_token.clone());
        println!(
            "provision/single_station_softhsm2  median {:.3} s per device, signer in SoftHSM2 \
             through PKCS#11 ({:+.1} ms vs software; runs: {:?})",
            tt.as_secs_f64(),
            (tt.as_secs_f64() - t1.as_secs_f64()) * 1000.0,
            single_token
                .iter()
                .map(|d| format!("{:.3}", d.as_secs_f64()))
                .collect::<Vec<_>>()
        );
    }
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
    // commands, priced with the same table, plus the wire bytes this run's frames needed. The
    // list is the custom flow's (blank parts); the pre-configured profiles have none yet.
    if s.part == keystamp_atecc_sim::Part::Blank {
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
    }
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
