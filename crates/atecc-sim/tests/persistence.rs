//! Persistence, crash safety and brown-out atomicity.

mod common;

use common::*;
use embedded_hal::i2c::I2c;
use keystamp_atecc_sim::{FaultConfig, FaultEvent, PowerState, SaveCrash, SimChip, SimOptions};
use std::path::PathBuf;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("atecc-sim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn reload(h: &Host, path: &std::path::Path) -> Host {
    let chip = SimChip::load_with(path, SimOptions::default().with_clock(h.clock.clone())).unwrap();
    Host::from_chip(chip, h.clock.clone())
}

#[test]
fn round_trip_keeps_keys_locks_and_rng() {
    let dir = TempDir::new("roundtrip");
    let path = dir.file("chip.json");
    let mut h = host_at(Stage::BothLocked, 40);
    assert_eq!(
        h.status(op::WRITE, 0x82, Host::data_addr(8, 0, 0), &[0x5A; 32]),
        0x00
    );
    assert_eq!(h.status(op::LOCK, 0x02 | (10 << 2), 0, &[]), 0x00);
    h.cmd(op::COUNTER, 0x01, 1, &[]);
    let public = h.cmd(op::GENKEY, 0x00, 0, &[]);
    h.chip.save(&path).unwrap();

    let mut loaded = reload(&h, &path);
    assert_eq!(loaded.chip.state(), h.chip.state());
    assert_eq!(
        loaded.chip.power_state(),
        PowerState::Sleep,
        "a loaded chip powers up asleep"
    );
    assert_eq!(loaded.cmd(op::GENKEY, 0x00, 0, &[]), public);
    assert_eq!(loaded.cmd(op::COUNTER, 0x00, 1, &[]), [1, 0, 0, 0]);
    assert_eq!(
        loaded.status(op::WRITE, 0x82, Host::data_addr(10, 0, 0), &[1; 32]),
        0x0F
    );
    // The random generator continues where it was saved.
    assert_eq!(
        loaded.cmd(op::RANDOM, 0, 0, &[]),
        h.cmd(op::RANDOM, 0, 0, &[])
    );
    // The file is the documented versioned JSON.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"format\": \"keystamp-atecc-sim\""));
    assert!(text.contains("\"version\": 1"));
}

#[test]
fn crash_during_save_keeps_previous_state() {
    let dir = TempDir::new("crash");
    let path = dir.file("chip.json");
    let mut h = host_at(Stage::BothLocked, 41);
    h.chip.save(&path).unwrap();
    let before = h.chip.state().clone();
    assert_eq!(
        h.status(op::WRITE, 0x82, Host::data_addr(8, 0, 0), &[0x77; 32]),
        0x00
    );
    for crash in [SaveCrash::DuringTempWrite, SaveCrash::BeforeRename] {
        assert!(h.chip.save_with_crash(&path, crash).is_err());
        let loaded = SimChip::load(&path).unwrap();
        assert_eq!(loaded.state(), &before, "{crash:?}");
    }
    h.chip.save(&path).unwrap();
    assert_eq!(SimChip::load(&path).unwrap().state(), h.chip.state());
}

#[test]
fn open_or_create_and_autosave() {
    let dir = TempDir::new("openorcreate");
    let path = dir.file("chip.json");
    let a = SimChip::open_or_create(&path, SimOptions::default().with_seed(5)).unwrap();
    assert!(path.exists());
    // The second open loads; the seed in the options no longer matters.
    let b = SimChip::open_or_create(&path, SimOptions::default().with_seed(6)).unwrap();
    assert_eq!(a.serial_number(), b.serial_number());

    let mut h = Host::from_chip(b, keystamp_atecc_sim::VirtualClock::new());
    let clock = h.clock.clone();
    h.chip = SimChip::load_with(&path, SimOptions::default().with_clock(clock)).unwrap();
    h.chip.set_autosave(Some(path.clone()));
    assert_eq!(h.status(op::LOCK, 0x80, 0, &[]), 0x00);
    let saved = SimChip::load(&path).unwrap();
    assert_eq!(saved.state().config[87], 0x00, "lock persisted by autosave");
}

#[test]
fn rejects_bad_state_files() {
    let dir = TempDir::new("bad");
    let path = dir.file("chip.json");
    std::fs::write(&path, b"{\"format\":\"keystamp-atecc-sim\",\"version\":99}").unwrap();
    assert!(SimChip::load(&path).is_err());
    std::fs::write(&path, b"not json").unwrap();
    assert!(SimChip::load(&path).is_err());
}

/// Brown-out during a 32-byte data write: afterwards the slot holds either the old or the new
/// block, never a mix; the chip gave no response and comes back asleep. Both outcomes occur
/// across fault seeds, and each seed always gives the same outcome.
#[test]
fn brownout_is_all_or_nothing_and_reproducible() {
    let dir = TempDir::new("brownout");
    let path = dir.file("base.json");
    let base = host_at(Stage::BothLocked, 42);
    base.chip.save(&path).unwrap();
    let old = base.chip.state().slot(8)[..32].to_vec();
    let new = [0xC3u8; 32];

    let run = |fault_seed: u64| -> (bool, Vec<FaultEvent>) {
        let clock = keystamp_atecc_sim::VirtualClock::new();
        let faults = FaultConfig {
            seed: fault_seed,
            brownout_at_command: Some(2),
            ..FaultConfig::default()
        };
        let chip = SimChip::load_with(
            &path,
            SimOptions::default()
                .with_faults(faults)
                .with_clock(clock.clone()),
        )
        .unwrap();
        let mut h = Host::from_chip(chip, clock);
        assert_eq!(h.cmd(op::INFO, 0, 0, &[]).len(), 4); // command 1
        let mut msg = vec![0x03];
        msg.extend(packet(op::WRITE, 0x82, Host::data_addr(8, 0, 0), &new)); // command 2
        h.chip.write(ADDR, &msg).unwrap();
        let mut buf = [0u8; 1];
        assert!(
            h.chip.read(ADDR, &mut buf).is_err(),
            "no response after power loss"
        );
        assert_eq!(h.chip.power_state(), PowerState::Sleep);
        let slot = h.chip.state().slot(8)[..32].to_vec();
        assert!(slot == old || slot == new, "torn write: {slot:02X?}");
        (slot == new, h.chip.fault_log().to_vec())
    };
    let outcomes: Vec<(bool, Vec<FaultEvent>)> = (0..16).map(run).collect();
    assert!(outcomes.iter().any(|o| o.0) && outcomes.iter().any(|o| !o.0));
    for (seed, outcome) in outcomes.iter().enumerate() {
        assert_eq!(&run(seed as u64), outcome, "seed {seed} reproducible");
        assert_eq!(
            outcome.1,
            [FaultEvent::BrownOut {
                command: 2,
                took_effect: outcome.0
            }],
            "fault log"
        );
    }
}
