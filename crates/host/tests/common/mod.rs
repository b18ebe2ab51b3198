//! Shared by the tests: the `keystamp` binary with a clean environment (no passphrase or project
//! variable, stdin closed), reading `key: value` output, and a project (CA, definitions,
//! material, registry) in a temporary directory with simulated devices (behind ptys, or the
//! in-process link) and one station run.

#![allow(dead_code)] // Each test file uses its own subset.

pub mod backends;
pub mod mosquitto;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use keystamp::engine::{Material, Station};
use keystamp::link::{self, Link};
use keystamp::microchip::{DEFAULT_TEST_CA_LABEL, TestMicrochipCa};
use keystamp::pki::ca::{self, KeyProtection, Signer};
use keystamp::project::{PartProfile, Profile};
use keystamp::registry::Registry;
use keystamp::setup;
use keystamp::sim::{SimDevice, SimDeviceOptions, SimLink, SimPart};
use keystamp_atecc_sim::{FaultConfig, Timing};
use keystamp_wire::RetryPolicy;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub signer: Signer,
    pub material: Material,
    pub registry: Mutex<Registry>,
}

pub fn fixture() -> Fixture {
    fixture_with(Profile::default())
}

/// A project for `part_profile`: the TrustFLEX layout as its config for `trustflex`; for
/// `trustandgo` the simulated test Microchip root (also written to `<dir>/microchip-root.pem`).
pub fn fixture_for(part_profile: PartProfile) -> Fixture {
    let profile = Profile {
        profile: part_profile,
        ..Profile::default()
    };
    let mut fx = fixture_with(profile.clone());
    if part_profile == PartProfile::TrustFlex {
        let (device_def, signer_def) = setup::generate_definitions(&profile, &fx.signer).unwrap();
        fx.material = setup::material_from_parts(
            &profile,
            &fx.signer,
            device_def,
            signer_def,
            setup::trust_flex_config(),
            fx.dir.path().join("devices"),
        )
        .unwrap();
    }
    if part_profile == PartProfile::TrustAndGo {
        let ca = TestMicrochipCa::new(DEFAULT_TEST_CA_LABEL);
        std::fs::write(fx.dir.path().join("microchip-root.pem"), ca.root_pem()).unwrap();
        fx.material.microchip_root = Some(keystamp::engine::MicrochipRoot {
            public_key: ca.root_public_key(),
            der: ca.root_der().to_vec(),
        });
    }
    fx
}

/// A project with `profile`.
pub fn fixture_with(profile: Profile) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
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
        setup::default_config_bytes(&profile).unwrap(),
        dir.path().join("devices"),
    )
    .unwrap();
    let mut registry = Registry::open(&dir.path().join("registry.sqlite")).unwrap();
    registry.set_record_signer(Box::new(signer.clone()));
    let registry = Mutex::new(registry);
    Fixture {
        dir,
        signer,
        material,
        registry,
    }
}

pub fn device(state: &Path, name: &str, seed: u64, faults: FaultConfig) -> SimDevice {
    device_with(
        state,
        name,
        seed,
        faults,
        keystamp_wire::PlatformSecurity::UNKNOWN,
        SimLink::default(),
    )
}

/// A simulated device on a board reporting `platform`.
pub fn device_on(
    state: &Path,
    name: &str,
    seed: u64,
    faults: FaultConfig,
    platform: keystamp_wire::PlatformSecurity,
) -> SimDevice {
    device_with(state, name, seed, faults, platform, SimLink::default())
}

/// A simulated device on `link`: a pty on Unix by default; the in-process link is what
/// Windows uses.
pub fn device_over(
    state: &Path,
    name: &str,
    seed: u64,
    faults: FaultConfig,
    link: SimLink,
) -> SimDevice {
    device_with(
        state,
        name,
        seed,
        faults,
        keystamp_wire::PlatformSecurity::UNKNOWN,
        link,
    )
}

/// A simulated device carrying `part` (instant chip timing, no faults).
pub fn device_part(state: &Path, name: &str, seed: u64, part: &SimPart) -> SimDevice {
    device_part_with(
        state,
        name,
        seed,
        FaultConfig::default(),
        keystamp_wire::PlatformSecurity::UNKNOWN,
        SimLink::default(),
        part,
    )
}

fn device_with(
    state: &Path,
    name: &str,
    seed: u64,
    faults: FaultConfig,
    platform: keystamp_wire::PlatformSecurity,
    link: SimLink,
) -> SimDevice {
    device_part_with(
        state,
        name,
        seed,
        faults,
        platform,
        link,
        &SimPart::default(),
    )
}

fn device_part_with(
    state: &Path,
    name: &str,
    seed: u64,
    faults: FaultConfig,
    platform: keystamp_wire::PlatformSecurity,
    link: SimLink,
    part: &SimPart,
) -> SimDevice {
    SimDevice::start_part(
        SimDeviceOptions {
            name: name.into(),
            state_dir: state.to_path_buf(),
            timing: Timing::Instant,
            baud: None,
            seed: Some(seed),
            faults,
            trace: None,
            platform,
            max_baud: keystamp::sim::SIM_MAX_BAUD,
            link_faults: Default::default(),
        },
        link,
        part,
    )
    .unwrap()
}

/// Held for writing while a child process starts, for reading while a port opens.
///
/// Between fork and exec a child holds a copy of every descriptor of this process, among them
/// a port another test thread has just closed, together with the exclusive `flock` the
/// `serialport` crate takes on it: reopening that port in the window fails with "Unable to
/// acquire exclusive lock on serial port" (seen on a loaded CI machine). The copies are
/// close-on-exec and `Command::spawn` returns only after the exec, so once a reader holds the
/// gate no child still holds a closed port.
static SPAWN_GATE: RwLock<()> = RwLock::new(());

/// Opens `dev`'s port as the engine does, once no child process being started can still hold
/// an earlier handle to it.
pub fn open_port(dev: &SimDevice) -> Box<dyn serialport::SerialPort> {
    let _gate = SPAWN_GATE.read().unwrap_or_else(PoisonError::into_inner);
    link::open_port(dev.port_path(), 115_200).unwrap()
}

/// Starts `cmd` with stdout and stderr captured and waits for it, like `Command::output`, but
/// behind [`SPAWN_GATE`] so the child's inherited descriptors cannot block a port reopen.
/// Standard input is left as `cmd` sets it (inherited by default, unlike `output`).
pub fn output_of(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = {
        let _gate = SPAWN_GATE.write().unwrap_or_else(PoisonError::into_inner);
        cmd.spawn()?
    };
    child.wait_with_output()
}

pub fn run(fx: &Fixture, dev: &SimDevice) -> keystamp::engine::DeviceReport {
    let port = open_port(dev);
    run_with(fx, dev, port, &|station, step| {
        eprintln!("{station}: {step:?}")
    })
}

/// A link over `port` with the tests' retry policy.
pub fn link_over<P: link::Port>(port: P) -> Link<P> {
    Link::new(
        port,
        RetryPolicy {
            base_timeout_ms: 300,
            ..RetryPolicy::default()
        },
        None,
    )
}

/// A link to `dev` over its port, as the engine opens it.
pub fn link_to(dev: &SimDevice) -> Link<Box<dyn serialport::SerialPort>> {
    link_over(open_port(dev))
}

/// Runs one station over `port` with a progress hook.
pub fn run_with<P: link::Port>(
    fx: &Fixture,
    dev: &SimDevice,
    port: P,
    hook: &(dyn Fn(&str, keystamp::engine::Step) + Sync),
) -> keystamp::engine::DeviceReport {
    Station::new(
        dev.name().into(),
        dev.port_path().into(),
        link_over(port),
        &fx.material,
        &fx.signer,
        &fx.registry,
        hook,
    )
    .run()
}

/// A quiet station for `dev` over its port, signing with `signer`.
pub fn station<'a>(
    fx: &'a Fixture,
    signer: &'a Signer,
    dev: &SimDevice,
) -> Station<'a, Box<dyn serialport::SerialPort>> {
    Station::new(
        dev.name().into(),
        dev.port_path().into(),
        link_to(dev),
        &fx.material,
        signer,
        &fx.registry,
        &|_, _| {},
    )
}

/// The keystamp binary on `project`, with no passphrase or project variable inherited and
/// standard input closed (so nothing prompts).
pub fn keystamp(project: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keystamp"));
    c.arg("--project")
        .arg(project)
        .env_remove("KEYSTAMP_CA_PASSPHRASE")
        .env_remove("KEYSTAMP_ROOT_PASSPHRASE")
        .env_remove("KEYSTAMP_SIGNER_PASSPHRASE")
        .env_remove("KEYSTAMP_PROJECT")
        .env_remove("KEYSTAMP_REGISTRY")
        .stdin(Stdio::null());
    if let Some(url) = backends::registry_url(project) {
        c.env("KEYSTAMP_REGISTRY", url);
    }
    c
}

/// The value of the `key: value` line for `key`.
pub fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// Runs a command to its end.
pub fn run_cli(cmd: &mut Command) -> Output {
    output_of(cmd).expect("run keystamp")
}

/// The standard output of a run that must succeed (its standard error in the panic if not).
pub fn ok(o: Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "keystamp failed: {}{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The one `keystamp: error:` line of a failed run.
pub fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let line = err
        .lines()
        .find(|l| l.starts_with("keystamp: error: "))
        .unwrap_or_else(|| panic!("no error line in {err:?}"));
    line.to_string()
}

/// `openssl verify` of device ← signer ← root (skipped with a message without openssl).
pub fn openssl_verify(root: &Path, signer: &Path, device: &Path) {
    let Ok(out) = output_of(
        std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(root)
            .arg("-untrusted")
            .arg(signer)
            .arg(device)
            .stdin(std::process::Stdio::null()),
    ) else {
        eprintln!("skipping the OpenSSL check: openssl is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "openssl verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
