//! What the device trusts and what it serves: the life cycle derived from the chip's lock bytes,
//! the requests each state serves, and the three signed digests (blob envelope, identity proof,
//! maintenance), each under its own domain label so a signature made for one purpose is useless
//! for another (docs/decisions/0006-trust-anchor.md).
//!
//! The host computes the same digests with these functions, so both ends share one definition.

use keystamp_wire::{BLOB_LABEL, IDENTITY_LABEL, Lifecycle, MAINTENANCE_LABEL, Request};

use crate::chip::CONFIG_SIZE;
use crate::store::sha256;

/// The trust anchor: the chip slot holding the signer's public key. Written before the blob is
/// stored, slot-locked after verification; blob signatures and maintenance authentication are
/// checked against it with the chip's Verify in stored mode.
pub const ANCHOR_SLOT: u8 = keystamp_atecc::default_config::SLOT_SIGNER_PUBKEY;
/// The device key slot used for the identity proof when no trusted definition names another.
pub const DEVICE_KEY_SLOT: u8 = keystamp_atecc::default_config::SLOT_DEVICE_KEY;
/// The slots a locked device lets anyone read: device certificate, signer public key, signer
/// certificate (public data the chain rebuild uses).
pub const PUBLIC_SLOTS: [u8; 3] = [
    keystamp_atecc::default_config::SLOT_DEVICE_CERT,
    keystamp_atecc::default_config::SLOT_SIGNER_PUBKEY,
    keystamp_atecc::default_config::SLOT_SIGNER_CERT,
];

use keystamp_atecc::config::{
    LOCK_CONFIG_BYTE as LOCK_CONFIG, LOCK_VALUE_BYTE as LOCK_VALUE, UNLOCKED,
};

/// Config bytes 88–89: SlotLocked, one bit per slot, 0 = locked.
const SLOT_LOCKED: usize = 88;

/// The life-cycle state the config zone's lock bytes say: Factory while the config zone is
/// unlocked, Provisioning until both the data zone and the trust-anchor slot are locked, then
/// Locked. Nothing but the chip decides, so it survives reboots and flash erasure.
pub fn lifecycle(config: &[u8; CONFIG_SIZE]) -> Lifecycle {
    if config[LOCK_CONFIG] == UNLOCKED {
        return Lifecycle::Factory;
    }
    let slot_locked = u16::from_le_bytes([config[SLOT_LOCKED], config[SLOT_LOCKED + 1]]);
    let anchor_locked = slot_locked & (1 << ANCHOR_SLOT) == 0;
    if config[LOCK_VALUE] == UNLOCKED || !anchor_locked {
        Lifecycle::Provisioning
    } else {
        Lifecycle::Locked
    }
}

/// The chip serial number: config bytes 0–3 ‖ 8–12.
pub fn serial(config: &[u8; CONFIG_SIZE]) -> [u8; 9] {
    let mut s = [0u8; 9];
    s[..4].copy_from_slice(&config[..4]);
    s[4..].copy_from_slice(&config[8..13]);
    s
}

/// Whether a locked device serves `request` without maintenance authentication: only what
/// cannot change the identity or sign a digest the caller chose.
pub fn allowed_when_locked(request: &Request) -> bool {
    match request {
        Request::Hello
        | Request::ReadConfig
        | Request::GetPublicKey { .. }
        | Request::RebuildChain
        | Request::ReadCert { .. }
        | Request::Random
        | Request::IdentityProof { .. }
        | Request::MaintenanceBegin
        | Request::MaintenanceAuth { .. }
        | Request::SetBaud { .. }
        | Request::Finish { .. } => true,
        Request::ReadSlot { slot, .. } => PUBLIC_SLOTS.contains(slot),
        Request::WriteConfig { .. }
        | Request::LockConfig { .. }
        | Request::GenKey { .. }
        | Request::WriteSlot { .. }
        | Request::ReadOtp { .. }
        | Request::WriteOtp { .. }
        | Request::LockData { .. }
        | Request::LockSlot { .. }
        | Request::StoreDefBlob { .. }
        | Request::StoreIoKey { .. } => false,
    }
}

/// SHA-256(`label` ‖ each part), for the short fixed-size messages below.
fn labelled(label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut buf = [0u8; 96];
    let mut at = 0usize;
    for part in core::iter::once(&label).chain(parts) {
        let end = at + part.len();
        if let Some(dst) = buf.get_mut(at..end) {
            dst.copy_from_slice(part);
        }
        at = end.min(buf.len());
    }
    sha256(buf.get(..at).unwrap_or_default())
}

/// The digest the signer signs for a definition blob: SHA-256("keystamp-blob-v1" ‖
/// SHA-256(blob)). Hashing the blob's own digest keeps the device's check one-shot; SHA-256's
/// collision resistance makes it as binding as hashing the blob itself.
pub fn blob_envelope_digest(blob_digest: &[u8; 32]) -> [u8; 32] {
    labelled(BLOB_LABEL, &[blob_digest])
}

/// The digest the device key signs for an identity proof: SHA-256("keystamp-identity-v1" ‖
/// host nonce ‖ device nonce).
pub fn identity_digest(host_nonce: &[u8; 32], device_nonce: &[u8; 32]) -> [u8; 32] {
    labelled(IDENTITY_LABEL, &[host_nonce, device_nonce])
}

/// The digest the signer key signs to authenticate maintenance: SHA-256("keystamp-maint-v1" ‖
/// chip serial ‖ device nonce).
pub fn maintenance_digest(serial: &[u8; 9], nonce: &[u8; 32]) -> [u8; 32] {
    labelled(MAINTENANCE_LABEL, &[serial, nonce])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn config(lock_config: u8, lock_value: u8, slot_locked: u16) -> [u8; CONFIG_SIZE] {
        let mut c = [0u8; 128];
        c[LOCK_CONFIG] = lock_config;
        c[LOCK_VALUE] = lock_value;
        c[88..90].copy_from_slice(&slot_locked.to_le_bytes());
        c
    }

    #[test]
    fn lifecycle_follows_the_lock_bytes() {
        // atecc608.md: 0x55 = unlocked, 0x00 = locked; SlotLocked bit 0 = locked.
        assert_eq!(lifecycle(&config(0x55, 0x55, 0xFFFF)), Lifecycle::Factory);
        assert_eq!(
            lifecycle(&config(0x00, 0x55, 0xFFFF)),
            Lifecycle::Provisioning
        );
        // Data locked, slot 11 still unlocked: the anchor could be replaced, not Locked yet.
        assert_eq!(
            lifecycle(&config(0x00, 0x00, 0xFFFF)),
            Lifecycle::Provisioning
        );
        assert_eq!(
            lifecycle(&config(0x00, 0x00, !(1 << 11))),
            Lifecycle::Locked
        );
        // Other slots locked but not the anchor: still Provisioning.
        assert_eq!(
            lifecycle(&config(0x00, 0x00, !(1 << 10 | 1 << 12))),
            Lifecycle::Provisioning
        );
    }

    #[test]
    fn digests_are_the_labelled_sha256() {
        let h = [1u8; 32];
        let d = [2u8; 32];
        let mut want = Sha256::new();
        want.update(b"keystamp-identity-v1");
        want.update(h);
        want.update(d);
        assert_eq!(identity_digest(&h, &d), <[u8; 32]>::from(want.finalize()));
        let serial = [9u8; 9];
        let mut want = Sha256::new();
        want.update(b"keystamp-maint-v1");
        want.update(serial);
        want.update(d);
        assert_eq!(
            maintenance_digest(&serial, &d),
            <[u8; 32]>::from(want.finalize())
        );
        let mut want = Sha256::new();
        want.update(b"keystamp-blob-v1");
        want.update(h);
        assert_eq!(blob_envelope_digest(&h), <[u8; 32]>::from(want.finalize()));
    }

    #[test]
    fn the_three_digests_never_coincide() {
        // Domain separation: the same bytes under two labels give two digests.
        let n = [7u8; 32];
        assert_ne!(blob_envelope_digest(&n), identity_digest(&n, &n));
        assert_ne!(identity_digest(&n, &n), maintenance_digest(&[7; 9], &n));
    }
}
