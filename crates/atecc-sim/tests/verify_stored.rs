//! Verify stored mode (0x45 mode 0x00, §4.2) and its key-slot rules (§5.3, §6.3, §6.4), with the
//! message in TempKey or in the message digest buffer (mode bit 5, loaded by Nonce pass-through
//! target 01 = mode 0x43) — the sequence cryptoauthlib's `calib_verify_stored` sends on a 608.
//! Signatures come from an independent P-256 implementation (p256).

mod common;

use common::*;
use p256::ecdsa::signature::hazmat::PrehashSigner;

/// KeyConfig bits (§5.3).
const P256_PUBLIC: u16 = 4 << 2; // Private 0, PubInfo 0, KeyType 4
const PUB_INFO: u16 = 0x0002;
const LOCKABLE: u16 = 0x0020;
const DATA: u16 = 7 << 2;

/// Slot 9: P-256 public (usable); 10: P-256 public with PubInfo = 1 (must be validated first,
/// §5.3); 11: data (KeyType 7); 12: private P-256 key. Each public slot holds the host key.
fn chip(seed: u64, lock_data: bool) -> Host {
    let mut h = Host::new(seed);
    let mut cfg = h.read_config();
    let mut set = |slot: usize, slot_config: u16, key_config: u16| {
        cfg[20 + 2 * slot..22 + 2 * slot].copy_from_slice(&slot_config.to_le_bytes());
        cfg[96 + 2 * slot..98 + 2 * slot].copy_from_slice(&key_config.to_le_bytes());
    };
    set(9, 0x0000, P256_PUBLIC | LOCKABLE);
    set(10, 0x0000, P256_PUBLIC | PUB_INFO | LOCKABLE);
    set(11, 0x0000, DATA | LOCKABLE);
    set(12, 0x2083, 0x0033);
    h.write_config_bytes(&cfg);
    assert_eq!(h.lock_config_crc(), 0x00);
    assert_eq!(h.genkey(12).len(), 64);
    let xy = public_xy(&host_key());
    let mut padded = [0u8; 96];
    padded[4..36].copy_from_slice(&xy[..32]);
    padded[40..72].copy_from_slice(&xy[32..]);
    for slot in [9u16, 10, 11] {
        for block in 0..3u16 {
            let b = usize::from(block) * 32;
            let addr = Host::data_addr(slot, block, 0);
            assert_eq!(h.status(op::WRITE, 0x82, addr, &padded[b..b + 32]), 0x00);
        }
    }
    if lock_data {
        assert_eq!(h.status(op::LOCK, 0x81, 0, &[]), 0x00);
    }
    h
}

fn host_key() -> p256::ecdsa::SigningKey {
    host_signing_key(0x3A)
}

fn signature(digest: &[u8; 32]) -> Vec<u8> {
    let sig: p256::ecdsa::Signature = host_key().sign_prehash(digest).unwrap();
    sig.to_bytes().to_vec()
}

/// Nonce pass-through into the message digest buffer, then Verify stored from it.
fn verify_msgdig(h: &mut Host, slot: u16, digest: &[u8; 32], sig: &[u8]) -> u8 {
    assert_eq!(h.status(op::NONCE, 0x43, 0, digest), 0x00);
    h.status(op::VERIFY, 0x20, slot, sig)
}

#[test]
fn verify_stored_from_the_message_digest_buffer() {
    let mut h = chip(401, true);
    let digest = [0x6Du8; 32];
    let sig = signature(&digest);
    assert_eq!(verify_msgdig(&mut h, 9, &digest, &sig), 0x00);
    // Miscompare (0x01) for another digest and for an altered signature.
    assert_eq!(verify_msgdig(&mut h, 9, &[0x6E; 32], &sig), 0x01);
    let mut bad = sig.clone();
    bad[5] ^= 0x10;
    assert_eq!(verify_msgdig(&mut h, 9, &digest, &bad), 0x01);
    // TempKey as the source (mode 0x00) works too.
    assert_eq!(h.nonce_fixed(&digest), 0x00);
    assert_eq!(h.status(op::VERIFY, 0x00, 9, &sig), 0x00);
    // The message digest buffer survives Idle (§1.3), as for Sign.
    assert_eq!(h.status(op::NONCE, 0x43, 0, &digest), 0x00);
    h.idle();
    assert_eq!(h.status(op::VERIFY, 0x20, 9, &sig), 0x00);
    // Slot-locking the key slot keeps it usable.
    assert_eq!(h.status(op::LOCK, 0x02 | (9 << 2), 0, &[]), 0x00);
    assert_eq!(verify_msgdig(&mut h, 9, &digest, &sig), 0x00);
}

#[test]
fn verify_stored_key_slot_rules() {
    let mut h = chip(402, true);
    let digest = [0x6Du8; 32];
    let sig = signature(&digest);
    // §5.3: PubInfo = 1 on a public-key slot: the key must be validated first → 0x0F.
    assert_eq!(verify_msgdig(&mut h, 10, &digest, &sig), 0x0F);
    // Not a P-256 key slot, and a private-key slot → 0x0F (§6.4).
    assert_eq!(verify_msgdig(&mut h, 11, &digest, &sig), 0x0F);
    assert_eq!(verify_msgdig(&mut h, 12, &digest, &sig), 0x0F);
    // Slot number out of range → parse error.
    assert_eq!(verify_msgdig(&mut h, 16, &digest, &sig), 0x03);
    // Message digest buffer not loaded (fresh wake after sleep clears it, §6.1) → 0x0F.
    h.sleep();
    assert_eq!(h.status(op::VERIFY, 0x20, 9, &sig), 0x0F);
}

#[test]
fn verify_stored_needs_the_data_lock() {
    // §6.3: Sign / ECDH / Verify(stored) → 0x0F before the data lock.
    let mut h = chip(403, false);
    let digest = [0x6Du8; 32];
    assert_eq!(verify_msgdig(&mut h, 9, &digest, &signature(&digest)), 0x0F);
}
