//! End to end over pseudo-terminals: fresh emulated chips → provisioned devices, through the real
//! host engine, the real wire protocol, the real agent and the real ATECC driver.

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use keystamp::ca::{self, KeyProtection, Signer};
use keystamp::engine::{DeviceResult, Material, Station};
use keystamp::link::{self, Link};
use keystamp::project::Profile;
use keystamp::registry::{ChipSerial, Registry};
use keystamp::setup;
use keystamp::sim::{SimDevice, SimDeviceOptions};
use keystamp_atecc_sim::{FaultConfig, Timing};
use keystamp_wire::RetryPolicy;

struct Fixture {
    dir: tempfile::TempDir,
    signer: Signer,
    material: Material,
    registry: Mutex<Registry>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::default();
    let ca_dir = dir.path().join("ca");
    ca::create(
        &ca_dir,
        &profile.ca,
        &KeyProtection::Unencrypted,
        SystemTime::now(),
    )
    .unwrap();
    let signer = Signer::unlock(&ca_dir, None).unwrap();
    let (device_def, signer_def) = setup::generate_definitions(&profile, &signer).unwrap();
    let material = setup::material_from_parts(
        &profile,
        &signer,
        device_def,
        signer_def,
        keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES,
        dir.path().join("devices"),
    )
    .unwrap();
    let registry = Mutex::new(Registry::open(&dir.path().join("registry.sqlite")).unwrap());
    Fixture {
        dir,
        signer,
        material,
        registry,
    }
}

fn device(state: &Path, name: &str, seed: u64, faults: FaultConfig) -> SimDevice {
    SimDevice::start(SimDeviceOptions {
        name: name.into(),
        state_dir: state.to_path_buf(),
        timing: Timing::Instant,
        baud: None,
        seed: Some(seed),
        faults,
        trace: None,
    })
    .unwrap()
}

fn run(fx: &Fixture, dev: &SimDevice) -> keystamp::engine::DeviceReport {
    let port = link::open_port(dev.port_path(), 115_200).unwrap();
    let link = Link::new(
        port,
        RetryPolicy {
            base_timeout_ms: 300,
            ..RetryPolicy::default()
        },
        None,
    );
    let station = Station::new(
        dev.name().into(),
        dev.port_path().into(),
        link,
        &fx.material,
        &fx.signer,
        &fx.registry,
        &|station, step| eprintln!("{station}: {step:?}"),
    );
    station.run()
}

#[test]
fn fresh_chip_is_provisioned_verified_and_a_rerun_issues_nothing() {
    let fx = fixture();
    let state = fx.dir.path().join("sim");
    let dev = device(&state, "dev0", 7, FaultConfig::default());
    let report = run(&fx, &dev);
    assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
    let serial = report.chip_serial.unwrap();
    // Factory prefix and suffix of the emulated chip's serial number.
    assert_eq!((serial[0], serial[1], serial[8]), (0x01, 0x23, 0xEE));
    assert_eq!(
        report.cn.as_deref(),
        Some(hex::encode_upper(serial).as_str())
    );

    // The chip is locked (config and data) and the registry holds one verified certificate.
    {
        let chip = dev.chip().lock();
        let cfg = chip.state().config;
        assert_ne!(cfg[87], 0x55, "config zone locked");
        assert_ne!(cfg[86], 0x55, "data zone locked");
    }
    let certs = fx
        .registry
        .lock()
        .unwrap()
        .certificates_for(ChipSerial(serial))
        .unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].status.as_str(), "verified");

    // Rerun: verified again, nothing issued.
    let again = run(&fx, &dev);
    assert_eq!(again.result, DeviceResult::AlreadyProvisioned, "{again:?}");
    let certs = fx
        .registry
        .lock()
        .unwrap()
        .certificates_for(ChipSerial(serial))
        .unwrap();
    assert_eq!(
        certs.len(),
        1,
        "a rerun must not issue a second certificate"
    );

    // The chain the device rebuilt verifies against the root with OpenSSL.
    let out = fx
        .dir
        .path()
        .join("devices")
        .join(hex::encode_upper(serial));
    let chain = out.join("chain.pem");
    assert!(chain.exists(), "{} missing", chain.display());
    openssl_verify(
        &fx.dir.path().join("ca/root.pem"),
        &out.join("signer.pem"),
        &out.join("device.pem"),
    );
}

fn openssl_verify(root: &Path, signer: &Path, device: &Path) {
    let Ok(out) = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(signer)
        .arg(device)
        .output()
    else {
        eprintln!("skipping the OpenSSL check: openssl is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "openssl verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
