//! Direct-I2C attack on a chip provisioned with keystamp's default config the way the host
//! provisions it (config write and lock with CRC, GenKey slot 0, data lock, certificate and
//! signer-key slots written, slots 10–12 locked): someone with the bus sends GenKey, Write,
//! PrivWrite and Lock to every slot, in every form the reference describes (§4.2). Afterwards the
//! device key (slot 0's public key) and slots 10–12 are unchanged, and the chip still signs with
//! its key and verifies with its trust anchor.
//!
//! The same attack against the previous default (slot 0 SlotConfig 0x2081, certificate slots
//! left unlocked) replaces the key and the trust anchor — the control that shows the attack
//! reaches what it should.

mod common;

use common::*;
use keystamp_atecc::default_config::{
    DEFAULT_CONFIG, SLOT_DEVICE_CERT, SLOT_DEVICE_KEY, SLOT_SIGNER_CERT, SLOT_SIGNER_PUBKEY,
};
use keystamp_atecc::driver::public_key_to_slot;
use keystamp_atecc::{Atecc, ConfigZone};
use keystamp_atecc_sim::{SimChip, SimOptions, VirtualClock, VirtualDelay};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};

const CERT_SLOTS: [u8; 3] = [SLOT_DEVICE_CERT, SLOT_SIGNER_PUBKEY, SLOT_SIGNER_CERT];

fn signer_key() -> p256::ecdsa::SigningKey {
    host_signing_key(0x4B)
}

fn signer_public() -> [u8; 64] {
    public_xy(&signer_key())
}

/// What provisioning wrote into slots 10, 11, 12 (72 bytes each).
fn cert_slot_contents() -> [Vec<u8>; 3] {
    [
        (0..72).map(|i| (i as u8).wrapping_mul(13) ^ 0x10).collect(),
        public_key_to_slot(&signer_public()).to_vec(),
        (0..72).map(|i| (i as u8).wrapping_mul(29) ^ 0x12).collect(),
    ]
}

/// Provision like the host (docs/decisions/0004-lock-order.md): config, config lock with the
/// read-back's CRC, GenKey slot 0, data lock, certificate slots, then (if `lock_slots`) the
/// slot locks. Returns the chip, its clock and the device public key.
fn provision(
    config: &ConfigZone,
    lock_slots: bool,
    seed: u64,
) -> (SimChip, VirtualClock, [u8; 64]) {
    let clock = VirtualClock::new();
    let chip = SimChip::new(
        SimOptions::default()
            .with_seed(seed)
            .with_clock(clock.clone()),
    );
    let mut d: Atecc<SimChip, VirtualDelay> = Atecc::new(chip, clock.delay());
    let back = d.write_config_zone(config).unwrap();
    d.lock_config(Some(back.lock_crc())).unwrap();
    let public = d.genkey(SLOT_DEVICE_KEY).unwrap();
    d.lock_data(None).unwrap();
    for (slot, data) in CERT_SLOTS.iter().zip(cert_slot_contents()) {
        d.write_slot(*slot, &data).unwrap();
    }
    if lock_slots {
        for slot in CERT_SLOTS {
            d.lock_slot(slot).unwrap();
        }
    }
    let (chip, _) = d.release();
    (chip, clock, public)
}

/// Every GenKey, Write, PrivWrite and Lock form of §4.2 against every slot, plus the zone locks
/// and config writes. Statuses are ignored: only the chip's state afterwards counts.
fn attack(h: &mut Host) {
    let mut key = vec![0u8; 68];
    key[4..36].fill(0x42);
    for slot in 0..16u16 {
        // GenKey: private key (0x04), with PubKey digest (0x0C).
        h.cmd(op::GENKEY, 0x04, slot, &[]);
        h.nonce_fixed(&[0x01; 32]);
        h.cmd(op::GENKEY, 0x0C, slot, &[]);
        // Write: every 32-byte block, every word of the first three blocks, encrypted forms.
        for block in 0..13u16 {
            h.cmd(
                op::WRITE,
                0x82,
                Host::data_addr(slot, block, 0),
                &[0xA5; 32],
            );
            h.cmd(
                op::WRITE,
                0xC2,
                Host::data_addr(slot, block, 0),
                &[0xA5; 64],
            );
        }
        for block in 0..3u16 {
            for word in 0..8u16 {
                h.cmd(
                    op::WRITE,
                    0x02,
                    Host::data_addr(slot, block, word),
                    &[0x5A; 4],
                );
            }
        }
        // PrivWrite: clear and encrypted.
        h.cmd(op::PRIVWRITE, 0x00, slot, &key);
        h.cmd(op::PRIVWRITE, 0x40, slot, &key);
        // Lock(slot), with and without the CRC-ignore bit.
        let mode = 0x02 | ((slot as u8) << 2);
        h.cmd(op::LOCK, mode, 0, &[]);
        h.cmd(op::LOCK, 0x80 | mode, 0, &[]);
    }
    // Zone locks again, and config writes (SlotConfig/KeyConfig live there).
    for mode in [0x00u8, 0x01, 0x80, 0x81] {
        h.cmd(op::LOCK, mode, 0, &[]);
    }
    for block in 0..4u16 {
        h.cmd(op::WRITE, 0x80, block << 3, &[0x00; 32]);
    }
}

/// Slot 0's public key (GenKey public, §4.2) and the first 72 bytes of slots 10–12 (32-byte
/// reads of blocks 0–2, §3), read with the test's own encoder.
fn snapshot(h: &mut Host) -> (Vec<u8>, Vec<Vec<u8>>) {
    let public = h.cmd(op::GENKEY, 0x00, u16::from(SLOT_DEVICE_KEY), &[]);
    let slots = CERT_SLOTS
        .iter()
        .map(|&slot| {
            let mut v = Vec::new();
            for block in 0..3u16 {
                v.extend(h.cmd(
                    op::READ,
                    0x82,
                    Host::data_addr(u16::from(slot), block, 0),
                    &[],
                ));
            }
            v.truncate(72);
            v
        })
        .collect();
    (public, slots)
}

#[test]
fn default_config_survives_direct_i2c_attack() {
    let (chip, clock, public) = provision(&DEFAULT_CONFIG, true, 501);
    let mut h = Host::from_chip(chip, clock.clone());
    let before = snapshot(&mut h);
    assert_eq!(before.0, public.to_vec());
    assert_eq!(before.1, cert_slot_contents().to_vec());
    let config_before = h.read_config();

    attack(&mut h);

    assert_eq!(
        snapshot(&mut h),
        before,
        "device key or certificate slots changed"
    );
    // The config zone (slot policies, lock bytes) is unchanged except SlotLocked bits of spare
    // data slots the attacker was allowed to lock (they hold nothing keystamp uses).
    let config_after = h.read_config();
    let mut masked = config_after.clone();
    masked[88..90].copy_from_slice(&config_before[88..90]);
    assert_eq!(masked, config_before);
    let slot_locked = u16::from_le_bytes([config_after[88], config_after[89]]);
    for slot in CERT_SLOTS {
        assert_eq!(slot_locked & (1 << slot), 0, "slot {slot} still locked");
    }

    // The device still signs with the same key and verifies against its trust anchor.
    let mut d = Atecc::new(h.chip, clock.delay());
    let digest = [0x7Eu8; 32];
    let sig = d.sign_digest(SLOT_DEVICE_KEY, &digest).unwrap();
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(&public);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
        .unwrap()
        .verify_prehash(&digest, &p256::ecdsa::Signature::from_slice(&sig).unwrap())
        .unwrap();
    let anchor_sig: p256::ecdsa::Signature = signer_key().sign_prehash(&digest).unwrap();
    let anchor_sig: [u8; 64] = anchor_sig.to_bytes().into();
    assert!(
        d.verify_stored(SLOT_SIGNER_PUBKEY, &digest, &anchor_sig)
            .unwrap()
    );
}

#[test]
fn previous_default_falls_to_the_same_attack() {
    // Slot 0 SlotConfig 0x2081 (GenKey allowed after the data lock), certificate slots not
    // locked: the attack must replace the key and overwrite the trust anchor.
    let mut old = DEFAULT_CONFIG;
    old.slot_config[usize::from(SLOT_DEVICE_KEY)].0 = 0x2081;
    let (chip, clock, _) = provision(&old, false, 502);
    let mut h = Host::from_chip(chip, clock);
    let before = snapshot(&mut h);
    attack(&mut h);
    let after = snapshot(&mut h);
    assert_ne!(after.0, before.0, "the key should have been regenerated");
    for (i, slot) in CERT_SLOTS.iter().enumerate() {
        assert_ne!(
            after.1[i], before.1[i],
            "slot {slot} should have been overwritten"
        );
    }
}
