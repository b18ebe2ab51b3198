//! The keystamp atecc driver runs unchanged against the emulator through a full provisioning
//! sequence: program config, lock with CRC, GenKey, write certificate slots, lock data with CRC,
//! read back, sign a challenge, verify.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use embedded_hal::i2c::{ErrorKind, I2c};
use keystamp_atecc::config::data_lock_crc;
use keystamp_atecc::default_config::{
    DEFAULT_CONFIG, SLOT_DEVICE_CERT, SLOT_DEVICE_KEY, SLOT_SIGNER_CERT, SLOT_SIGNER_PUBKEY,
};
use keystamp_atecc::{Atecc, Direction, Error, Status, TraceEvent, TracingI2c, Zone, slot_size};
use keystamp_atecc_sim::{
    FaultConfig, FaultEvent, SimChip, SimOptions, Timing, VirtualClock, VirtualDelay,
};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256};

type Driver = Atecc<SimChip, VirtualDelay>;

fn driver(options: SimOptions) -> (Driver, VirtualClock) {
    let clock = VirtualClock::new();
    let chip = SimChip::new(options.with_clock(clock.clone()));
    (Atecc::new(chip, clock.delay()), clock)
}

/// Deterministic filler for slot `slot`.
fn slot_contents(slot: usize) -> Vec<u8> {
    (0..slot_size(slot))
        .map(|i| (i as u8).wrapping_mul(7) ^ slot as u8)
        .collect()
}

fn provision<B: I2c>(d: &mut Atecc<B, VirtualDelay>) -> [u8; 64] {
    assert_eq!(d.info().unwrap(), [0x00, 0x00, 0x60, 0x02]);
    let r = d.random();
    assert!(matches!(r, Err(Error::RandomTestPattern)), "{r:?}");
    let back = d.write_config_zone(&DEFAULT_CONFIG).unwrap();
    d.lock_config(Some(back.lock_crc())).unwrap();
    assert_eq!(d.lock_status().unwrap(), (false, true));
    let public = d.genkey(SLOT_DEVICE_KEY).unwrap();

    // Certificates and every other non-private slot get known contents, so the data-lock CRC
    // covers everything it freezes.
    let mut contents: Vec<Vec<u8>> = (0..16).map(slot_contents).collect();
    contents[usize::from(SLOT_SIGNER_PUBKEY)] =
        keystamp_atecc::driver::public_key_to_slot(&signer_public()).to_vec();
    for slot in 1..16u8 {
        d.write_slot(slot, &contents[usize::from(slot)]).unwrap();
    }
    let otp: [u8; 64] = core::array::from_fn(|i| i as u8);
    d.write_bytes(Zone::Otp, 0, 0, &otp).unwrap();
    let config = keystamp_atecc::ConfigZone::from_bytes(&d.read_config_zone().unwrap());
    let slots: [&[u8]; 16] = core::array::from_fn(|i| contents[i].as_slice());
    d.lock_data(Some(data_lock_crc(&config, &slots, &otp).unwrap()))
        .unwrap();
    assert_eq!(d.lock_status().unwrap(), (true, true));

    // Read back what was written.
    for slot in [SLOT_DEVICE_CERT, SLOT_SIGNER_PUBKEY, SLOT_SIGNER_CERT, 8] {
        let mut buf = vec![0u8; contents[usize::from(slot)].len()];
        d.read_bytes(Zone::Data, slot, 0, &mut buf).unwrap();
        assert_eq!(buf, contents[usize::from(slot)], "slot {slot}");
    }
    public
}

/// A host-side signer key (p256, independent of the emulator).
fn signer_key() -> p256::ecdsa::SigningKey {
    common::host_signing_key(0x5C)
}

/// X‖Y of [`signer_key`].
fn signer_public() -> [u8; 64] {
    common::public_xy(&signer_key())
}

/// Verify stored mode against the signer public key slot: a p256 signature by the signer key
/// verifies, a tampered digest or signature does not, and a private-key slot cannot serve as
/// the stored key (reference §6.4: stored Verify needs a public P-256 slot).
fn check_verify_stored<B: I2c>(d: &mut Atecc<B, VirtualDelay>) {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let digest: [u8; 32] = Sha256::digest(b"definition blob").into();
    let sig: p256::ecdsa::Signature = signer_key().sign_prehash(&digest).unwrap();
    let sig: [u8; 64] = sig.to_bytes().into();
    assert!(d.verify_stored(SLOT_SIGNER_PUBKEY, &digest, &sig).unwrap());
    let mut other = digest;
    other[0] ^= 1;
    assert!(!d.verify_stored(SLOT_SIGNER_PUBKEY, &other, &sig).unwrap());
    let mut bad = sig;
    bad[63] ^= 1;
    assert!(!d.verify_stored(SLOT_SIGNER_PUBKEY, &digest, &bad).unwrap());
    assert!(matches!(
        d.verify_stored(SLOT_DEVICE_KEY, &digest, &sig),
        Err(Error::Status(Status::ExecutionError))
    ));
}

fn check_signing<B: I2c>(d: &mut Atecc<B, VirtualDelay>, public: &[u8; 64]) {
    let challenge: [u8; 32] = Sha256::digest(b"host challenge").into();
    let sig = d.sign_digest(SLOT_DEVICE_KEY, &challenge).unwrap();
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(public);
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    vk.verify_prehash(
        &challenge,
        &p256::ecdsa::Signature::from_slice(&sig).unwrap(),
    )
    .unwrap();
    assert!(d.verify_extern(&challenge, &sig, public).unwrap());
    let mut other = challenge;
    other[31] ^= 1;
    assert!(!d.verify_extern(&other, &sig, public).unwrap());
    assert_eq!(&d.get_public_key(SLOT_DEVICE_KEY).unwrap(), public);
    check_verify_stored(d);
}

#[test]
fn full_provisioning_sequence_realistic_timing() {
    let (mut d, clock) = driver(
        SimOptions::default()
            .with_seed(90)
            .with_timing(Timing::Realistic),
    );
    let public = provision(&mut d);
    check_signing(&mut d, &public);

    // Slot lock freezes the certificate slot.
    d.lock_slot(SLOT_DEVICE_CERT).unwrap();
    assert_eq!(
        d.write_slot(SLOT_DEVICE_CERT, &[0u8; 72]),
        Err(Error::Status(Status::ExecutionError))
    );
    let (chip, _) = d.release();
    let floor = chip.execution_floor();
    eprintln!(
        "provisioning: {} commands, chip execution floor {:?}, virtual time {:?}",
        chip.command_count(),
        floor,
        keystamp_atecc_sim::Clock::now(&clock)
    );
    assert!(floor > std::time::Duration::from_millis(500));
    assert!(keystamp_atecc_sim::Clock::now(&clock) >= floor);
}

#[test]
fn provisioning_survives_seeded_bus_faults() {
    let faults = FaultConfig {
        seed: 5,
        crc_corruption: 0.05,
        nack_burst: 0.05,
        nack_burst_max: 3,
        ..FaultConfig::default()
    };
    let (mut d, _clock) = driver(
        SimOptions::default()
            .with_seed(91)
            .with_timing(Timing::Realistic)
            .with_faults(faults),
    );
    let public = provision(&mut d);
    check_signing(&mut d, &public);
    let (chip, _) = d.release();
    assert!(!chip.fault_log().is_empty(), "faults were injected");
}

/// One transfer as the tracing adapter saw it.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    direction: Direction,
    len: usize,
    nack: bool,
}

#[test]
fn provisioning_survives_seeded_nack_bursts() {
    // Real chips NACK while busy, and a noisy bus can NACK any transfer (reference §1.4). This
    // fault seed NACKs, among others, the read of a response's remaining bytes right after its
    // count byte was read: the driver used to give up there with `Error::I2c`.
    let faults = FaultConfig {
        seed: 2,
        nack_burst: 0.05,
        nack_burst_max: 3,
        ..FaultConfig::default()
    };
    let clock = VirtualClock::new();
    let chip = SimChip::new(
        SimOptions::default()
            .with_seed(93)
            .with_timing(Timing::Realistic)
            .with_faults(faults)
            .with_clock(clock.clone()),
    );
    let trace = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&trace);
    let bus = TracingI2c::new(chip, move |e: TraceEvent<'_>| {
        sink.borrow_mut().push(Transfer {
            direction: e.direction,
            len: e.bytes.len(),
            nack: matches!(e.error, Some(ErrorKind::NoAcknowledge(_))),
        })
    });
    let mut d = Atecc::new(bus, clock.delay());
    let public = provision(&mut d);
    check_signing(&mut d, &public);

    let nack_after_count = trace.borrow().windows(2).any(|w| {
        w[0].direction == Direction::Read
            && w[0].len == 1
            && !w[0].nack
            && w[1].direction == Direction::Read
            && w[1].len >= 3
            && w[1].nack
    });
    assert!(
        nack_after_count,
        "the seed no longer NACKs after a count byte"
    );
    let (bus, _) = d.release();
    let bursts = bus
        .into_inner()
        .fault_log()
        .iter()
        .filter(|e| matches!(e, FaultEvent::NackBurst { .. }))
        .count();
    assert!(bursts > 10, "{bursts} NACK bursts");
}

#[test]
fn provisioned_chip_survives_restart() {
    let dir = std::env::temp_dir().join(format!("atecc-sim-driver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chip.json");
    let (mut d, _) = driver(SimOptions::default().with_seed(92));
    let public = provision(&mut d);
    let (chip, _) = d.release();
    chip.save(&path).unwrap();

    let clock = VirtualClock::new();
    let chip = SimChip::load_with(&path, SimOptions::default().with_clock(clock.clone())).unwrap();
    let mut d = Atecc::new(chip, clock.delay());
    assert_eq!(d.lock_status().unwrap(), (true, true));
    check_signing(&mut d, &public);
    let _ = std::fs::remove_dir_all(&dir);
}
