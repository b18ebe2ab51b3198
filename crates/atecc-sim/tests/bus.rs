//! Bus-level behaviour against reference §1–§2 and §6.2.

mod common;

use common::*;
use embedded_hal::i2c::{ErrorKind, I2c, NoAcknowledgeSource, Operation};
use keystamp_atecc_sim::{FaultConfig, PowerState, Revision, SimOptions, Timing};
use std::time::Duration;

fn is_address_nack(e: impl embedded_hal::i2c::Error) -> bool {
    e.kind() == ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
}

/// §1.2 [CAL, X]: wake reply `04 11 33 43`; §6.2: power-on → Sleep, NACK while asleep.
#[test]
fn wake_reply_and_nack_while_asleep() {
    let mut h = Host::new(1);
    assert_eq!(h.chip.power_state(), PowerState::Sleep);
    let mut buf = [0u8; 4];
    assert!(is_address_nack(h.chip.read(ADDR, &mut buf).unwrap_err()));
    assert!(is_address_nack(h.chip.write(ADDR, &[0x03]).unwrap_err()));
    assert_eq!(h.wake(), [0x04, 0x11, 0x33, 0x43]);
    // Outputs can be read repeatedly after a reset of the address counter (§1.4 [DS]).
    h.chip.write(ADDR, &[0x00]).unwrap();
    h.chip.read(ADDR, &mut buf).unwrap();
    assert_eq!(buf, [0x04, 0x11, 0x33, 0x43]);
}

/// §1.2: the self-test-failure wake reply uses the correct CRC `40 C2` [X].
#[test]
fn self_test_failure_wake_reply() {
    let faults = FaultConfig {
        wake_self_test_failure: true,
        ..FaultConfig::default()
    };
    let mut h = Host::with(SimOptions::default().with_seed(1).with_faults(faults));
    h.chip.write(0x00, &[0x01]).unwrap_err();
    let mut buf = [0u8; 4];
    h.chip.read(ADDR, &mut buf).unwrap();
    assert_eq!(buf, [0x04, 0x07, 0x40, 0xC2]);
}

/// §1.2 [DS]: in Realistic timing the chip answers only tWHI (1500 µs) after the pulse.
#[test]
fn wake_needs_twhi_in_realistic_timing() {
    let mut h = Host::realistic(1);
    h.chip.write(0x00, &[0x01]).unwrap_err();
    let mut buf = [0u8; 4];
    h.clock.advance(Duration::from_micros(1400));
    assert!(h.chip.read(ADDR, &mut buf).is_err());
    h.clock.advance(Duration::from_micros(100));
    h.chip.read(ADDR, &mut buf).unwrap();
    assert_eq!(buf, [0x04, 0x11, 0x33, 0x43]);
}

/// §2.3 command packets, §4.2 Info: revision `00 00 60 02` (608A) / `00 00 60 03` (608B), with
/// the response CRCs of §2.3.
#[test]
fn info_revision_known_answers() {
    for (rev, expected) in [
        (
            Revision::Atecc608A,
            [0x07, 0x00, 0x00, 0x60, 0x02, 0x80, 0x38],
        ),
        (
            Revision::Atecc608B,
            [0x07, 0x00, 0x00, 0x60, 0x03, 0x83, 0xBB],
        ),
    ] {
        let mut h = Host::with(SimOptions::default().with_seed(2).with_revision(rev));
        h.wake();
        let resp = h.raw(&[0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D]);
        assert_eq!(resp, expected);
    }
}

/// §2.1/§2.5/§6.2: bad CRC → `04 FF 01 42`; count outside 4..=155 → `04 FF`.
#[test]
fn crc_and_count_errors() {
    let mut h = Host::new(3);
    h.wake();
    assert_eq!(
        h.raw(&[0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5E]),
        [0x04, 0xFF, 0x01, 0x42]
    );
    assert_eq!(h.raw(&[0x03]), [0x04, 0xFF, 0x01, 0x42]);
    let mut long = vec![156u8];
    long.extend(std::iter::repeat_n(0u8, 10));
    assert_eq!(h.raw(&long), [0x04, 0xFF, 0x01, 0x42]);
    // A well-formed group with an unknown opcode → parse error 0x03 (`04 03 83 42`).
    assert_eq!(h.raw(&packet(0x7F, 0, 0, &[])), [0x04, 0x03, 0x83, 0x42]);
    // HMAC (0x11) does not exist on the 608 (§4.1).
    assert_eq!(h.raw(&packet(0x11, 0, 0, &[])), [0x04, 0x03, 0x83, 0x42]);
}

/// §1.4 [DS]: the group may be split over several writes; a read while it is partial is NACKed;
/// execution starts at the STOP after the last byte.
#[test]
fn command_split_across_writes() {
    let mut h = Host::new(4);
    h.wake();
    let pkt = packet(op::INFO, 0, 0, &[]);
    h.chip.write(ADDR, &[0x03, pkt[0], pkt[1]]).unwrap();
    let mut buf = [0u8; 1];
    assert!(is_address_nack(h.chip.read(ADDR, &mut buf).unwrap_err()));
    h.chip.write(ADDR, &[0x03, pkt[2], pkt[3], pkt[4]]).unwrap();
    h.chip
        .write(ADDR, &[0x03, pkt[5], pkt[6], 0xAA, 0xBB])
        .unwrap(); // extra bytes ignored
    let resp = h.receive();
    assert_eq!(resp, [0x07, 0x00, 0x00, 0x60, 0x02, 0x80, 0x38]);
}

/// eh1 transaction semantics: adjacent writes are one message; a read after a complete command
/// but before STOP finds no data.
#[test]
fn transaction_with_adjacent_writes() {
    let mut h = Host::new(4);
    h.wake();
    let pkt = packet(op::INFO, 0, 0, &[]);
    let mut first = vec![0x03];
    first.extend_from_slice(&pkt[..3]);
    let mut ops = [Operation::Write(&first), Operation::Write(&pkt[3..])];
    h.chip.transaction(ADDR, &mut ops).unwrap();
    assert_eq!(h.receive(), [0x07, 0x00, 0x00, 0x60, 0x02, 0x80, 0x38]);

    let mut msg = vec![0x03];
    msg.extend_from_slice(&pkt);
    let mut rd = [0u8; 7];
    let mut ops = [Operation::Write(&msg), Operation::Read(&mut rd)];
    assert!(h.chip.transaction(ADDR, &mut ops).is_err());
    // The STOP still started the command.
    assert_eq!(h.receive(), [0x07, 0x00, 0x00, 0x60, 0x02, 0x80, 0x38]);
}

/// §1.4/§4.3: in Realistic timing the chip NACKs for the documented time (Sign 115 ms at M0).
#[test]
fn busy_window_matches_execution_table() {
    let mut h = host_at(Stage::BothLocked, 5);
    h.chip.set_autosave(None);
    let mut h = {
        // Rebuild the same chip with realistic timing on the same clock.
        let dir = std::env::temp_dir().join(format!("atecc-sim-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chip.json");
        h.chip.save(&path).unwrap();
        let clock = h.clock.clone();
        let chip = keystamp_atecc_sim::SimChip::load_with(
            &path,
            SimOptions::default()
                .with_timing(Timing::Realistic)
                .with_clock(clock.clone()),
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        Host::from_chip(chip, clock)
    };
    h.wake();
    h.chip.write(ADDR, &[0x03]).unwrap(); // empty command write: nothing queued
    let mut msg = vec![0x03];
    msg.extend(packet(op::NONCE, 0x03, 0, &[0x42; 32]));
    h.chip.write(ADDR, &msg).unwrap();
    h.advance_ms(19);
    assert!(h.chip.write(ADDR, &[0x00]).is_err(), "Nonce busy for 20 ms");
    h.advance_ms(1);
    assert_eq!(h.receive(), [0x04, 0x00, 0x03, 0x40]);
    let mut msg = vec![0x03];
    msg.extend(packet(op::SIGN, 0x80, 0, &[]));
    h.chip.write(ADDR, &msg).unwrap();
    h.advance_ms(114);
    assert_eq!(h.chip.power_state(), PowerState::Busy);
    assert!(h.chip.write(ADDR, &[0x00]).is_err());
    h.advance_ms(1);
    assert_eq!(h.receive().len(), 67);
    let log = h.chip.command_log();
    let sign = log.iter().rev().find(|r| r.opcode == op::SIGN).unwrap();
    assert_eq!(sign.exec_time, Duration::from_millis(115));
}

/// §1.5/§6.2: a command that cannot finish before the watchdog gets `04 EE 31 41` and is not
/// executed; at the deadline the chip sleeps and loses TempKey.
#[test]
fn watchdog_ee_and_expiry() {
    let mut h = Host::realistic(6);
    h.wake();
    h.advance_ms(1290);
    // SelfTest takes 250 ms: not enough time left.
    let resp = h.raw(&packet(op::SELFTEST, 0x3B, 0, &[]));
    assert_eq!(resp, [0x04, 0xEE, 0x31, 0x41]);
    assert_eq!(h.chip.command_count(), 0);
    h.advance_ms(10);
    assert_eq!(h.chip.power_state(), PowerState::Sleep);
    let mut buf = [0u8; 1];
    assert!(h.chip.read(ADDR, &mut buf).is_err());
}

/// §1.3 [CAL]: TempKey, MsgDigBuf and the SHA context survive Idle; Sleep clears them.
#[test]
fn volatile_state_survives_idle_not_sleep() {
    let mut h = Host::new(7);
    h.wake();
    assert_eq!(h.status(op::SHA, 0x00, 0, &[]), 0x00);
    assert_eq!(h.nonce_fixed(&[0x5A; 32]), 0x00);
    h.idle();
    assert_eq!(h.chip.power_state(), PowerState::Idle);
    let mut buf = [0u8; 1];
    assert!(h.chip.read(ADDR, &mut buf).is_err(), "NACK while idle");
    assert!(h.chip.tempkey().valid);
    // Wake from idle gives the wake reply again, and the SHA context is still there.
    assert_eq!(h.wake(), [0x04, 0x11, 0x33, 0x43]);
    assert_eq!(h.cmd(op::SHA, 0x02, 3, b"abc").len(), 32);
    h.sleep();
    assert_eq!(h.chip.power_state(), PowerState::Sleep);
    assert!(!h.chip.tempkey().valid);
    h.wake();
    assert_eq!(
        h.status(op::SHA, 0x02, 0, &[]),
        0x0F,
        "SHA end without start after sleep"
    );
}

/// §1.5: wake again after Idle restarts the watchdog; idling stops it.
#[test]
fn idle_stops_watchdog() {
    let mut h = Host::realistic(8);
    h.wake();
    h.advance_ms(1000);
    h.idle();
    h.advance_ms(5000);
    assert_eq!(h.chip.power_state(), PowerState::Idle);
    assert_eq!(h.wake(), [0x04, 0x11, 0x33, 0x43]);
    h.advance_ms(1200);
    assert_eq!(h.chip.power_state(), PowerState::Awake);
}

/// §1.1: a configured address takes effect after sleep (power-up reads config) [INF]; other
/// addresses are NACKed.
#[test]
fn address_from_config() {
    let mut h = Host::with(SimOptions::default().with_seed(9).with_address(0x35));
    h.chip.write(0x00, &[0x01]).unwrap_err();
    let mut buf = [0u8; 4];
    assert!(h.chip.read(0x60, &mut buf).is_err());
    h.chip.read(0x35, &mut buf).unwrap();
    assert_eq!(buf, [0x04, 0x11, 0x33, 0x43]);
}

/// Fault injection: NACK bursts and CRC corruption are drawn from the seed; the same seed and
/// bus traffic reproduce the same faults.
#[test]
fn faults_reproducible_from_seed() {
    fn run(seed: u64) -> (Vec<keystamp_atecc_sim::FaultEvent>, Vec<Vec<u8>>) {
        let faults = FaultConfig {
            seed,
            crc_corruption: 0.3,
            nack_burst: 0.2,
            nack_burst_max: 4,
            ..FaultConfig::default()
        };
        let mut h = Host::with(SimOptions::default().with_seed(1).with_faults(faults));
        let _ = h.chip.write(0x00, &[0x01]);
        let mut seen = Vec::new();
        for _ in 0..200 {
            let mut msg = vec![0x03];
            msg.extend(packet(op::INFO, 0, 0, &[]));
            if h.chip.write(ADDR, &msg).is_err() {
                seen.push(vec![]);
                continue;
            }
            let mut resp = [0u8; 7];
            let _ = h.chip.write(ADDR, &[0x00]);
            match h.chip.read(ADDR, &mut resp) {
                Ok(()) => seen.push(resp.to_vec()),
                Err(_) => seen.push(vec![0]),
            }
        }
        (h.chip.fault_log().to_vec(), seen)
    }
    let a = run(11);
    let b = run(11);
    let c = run(12);
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    let corrupted =
        a.1.iter()
            .filter(|r| r.len() == 7 && r[5..] != [0x80, 0x38])
            .count();
    assert!(
        corrupted > 10,
        "CRC corruption visible to the host: {corrupted}"
    );
    assert!(
        a.0.iter()
            .any(|e| matches!(e, keystamp_atecc_sim::FaultEvent::NackBurst { .. }))
    );
}
