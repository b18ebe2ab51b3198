//! Microchip's own library agrees with keystamp on a Trust&GO part: a simulated TNGTLS part is
//! registered by the `trustandgo` profile, then cryptoauthlib (the PyPI wheel's C library,
//! `tng_atcacert_read_device_cert`) reads the same emulated chip over the kit protocol and
//! rebuilds the device certificate with its own definitions; it must be byte for byte the one
//! keystamp registered. Skips with a printed reason when python3, the cryptoauthlib package or
//! `cc` is missing.

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
#[path = "../../atecc-sim/tests/common/cal.rs"]
mod cal;

#[cfg(target_os = "linux")]
#[test]
fn cryptoauthlib_rebuilds_the_device_certificate_keystamp_registered() {
    // 608A: template 2 (`tngtls_cert_def_2_device`); 608B: template 3 with the EUI-48.
    rebuild_agrees(keystamp_atecc_sim::Part::TrustAndGo, 101);
    rebuild_agrees(keystamp_atecc_sim::Part::TrustAndGo608B, 102);
}

#[cfg(target_os = "linux")]
fn rebuild_agrees(part: keystamp_atecc_sim::Part, seed: u64) {
    use std::process::Command;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use common::{device_part, fixture_for, output_of, run};
    use keystamp::engine::DeviceResult;
    use keystamp::project::PartProfile;
    use keystamp::registry::ChipSerial;
    use keystamp::sim::SimPart;
    use keystamp_atecc_sim::kit::KitServer;
    use keystamp_atecc_sim::{SimChip, StdDelay};
    use serde_json::Value;

    let fx = fixture_for(PartProfile::TrustAndGo);
    let shim = match cal::prerequisites(fx.dir.path()) {
        Ok(shim) => shim,
        Err(reason) => {
            eprintln!("SKIP cryptoauthlib Trust&GO rebuild: {reason}");
            return;
        }
    };
    let state = fx.dir.path().join("sim");
    let dev = device_part(&state, "tng-cal", seed, &SimPart::new(part));
    let report = run(&fx, &dev);
    assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
    let serial = report.chip_serial.unwrap();
    let registered = fx
        .registry
        .lock()
        .unwrap()
        .live_certificate(ChipSerial(serial))
        .unwrap()
        .expect("registered");
    dev.stop();

    // The same chip (its saved state) behind a kit-protocol pty, served in this process.
    let chip = SimChip::load(state.join("tng-cal.chip.json")).unwrap();
    let (mut master, slave) = serialport::TTYPort::pair().unwrap();
    let slave_path = serialport::SerialPort::name(&slave).unwrap();
    assert!(slave_path.len() <= 18, "pty path too long for the HAL");
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut kit = KitServer::for_chip(chip, StdDelay);
            let _ = kit.serve(&mut master, &stop);
        })
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/microchip_kit.py");
    let out = output_of(
        Command::new("python3")
            .arg(script)
            .arg(&slave_path)
            .env("LD_PRELOAD", &shim)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(std::process::Stdio::null()),
    )
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    drop(slave);
    let _ = server.join();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "script failed: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["init"], 0, "{v}");
    assert_eq!(v["read_device_cert"], 0, "{v}");
    assert_eq!(v["device_public_key_status"], 0, "{v}");
    let theirs = hex::decode(v["device_cert"].as_str().unwrap()).unwrap();
    assert_eq!(
        hex::encode_upper(&theirs),
        hex::encode_upper(&registered.der),
        "cryptoauthlib's rebuild differs from keystamp's registered certificate"
    );
    assert_eq!(
        v["device_public_key"].as_str().unwrap(),
        hex::encode_upper(registered.public_key)
    );
}
