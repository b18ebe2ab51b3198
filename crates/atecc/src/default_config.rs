//! keystamp's default target configuration, modelled on Microchip's TrustFLEX (TFLXTLS) layout,
//! with the device key made permanent the way Trust&GO (TNGTLS) makes it (reference §7.2, slot 0
//! SlotConfig 0x0085: "no GenKey, not lockable, permanent").
//!
//! | slot | size | role | SlotConfig | KeyConfig |
//! |---|---|---|---|---|
//! | 0 | 36 | device P-256 private key: created by GenKey before the data lock only, permanent after it; external Sign only; never read or written in clear | 0x0081 | 0x0013 |
//! | 1–7 | 36 | general data (no private keys besides the device key), clear read, clear write, lockable | 0x0F0F | 0x003C |
//! | 8 | 416 | general data, clear read, clear write, lockable | 0x0F0F | 0x003C |
//! | 9 | 72 | general data | 0x0F0F | 0x003C |
//! | 10 | 72 | device compressed certificate, lockable | 0x0F0F | 0x003C |
//! | 11 | 72 | signer public key (padded X‖Y) = the device's trust anchor, P-256 public, PubInfo 0 (Verify stored mode needs no validation), lockable | 0x0F0F | 0x0030 |
//! | 12 | 72 | signer compressed certificate, lockable | 0x0F0F | 0x003C |
//! | 13–15 | 72 | general data | 0x0F0F | 0x003C |
//!
//! Bit meanings (reference §5.2, §5.3, §6.4). Slot 0: SlotConfig 0x0081 = ReadKey bit 0
//! (external Sign), IsSecret (bit 7), WriteConfig 0: once the data zone is locked GenKey needs
//! WriteConfig bit 1 (0x2000) and PrivWrite bit 2 (0x4000), so neither can replace the key; the
//! chip refuses clear Write to a private slot in every state. KeyConfig 0x0013 = Private, PubInfo
//! (the public key can be recomputed with GenKey mode 0x00), KeyType 4 (P-256), not Lockable:
//! a permanent key has nothing to lock. Slots 10–12: KeyConfig Lockable (bit 5, 0x0020) so the
//! host freezes them with Lock(slot) after verification. Slot 11: KeyConfig 0x0030 = Private 0,
//! PubInfo 0, KeyType 4, Lockable — a public P-256 key usable by Verify stored mode; with PubInfo
//! = 1 a public-key slot must first be validated (§5.3), which keystamp does not do.
//!
//! Slots 1–7 are plain data, not spare keys: a second private key with external Sign would be a
//! signing oracle for caller-chosen digests, and a GenKey-able one a key anyone on the bus can
//! replace. A profile that needs another key asks for it in its own config (the linter checks it).
//!
//! Other settings: I2C address 0xC0 (7-bit 0x60, the factory value), ChipMode 0x00 (short
//! ~1.3 s watchdog, default clock, address fixed), counters at 0, no SecureBoot, UseLock,
//! VolatileKeyPermission, CountMatch, ChipOptions or X509format. Bytes 0–15 (serial number,
//! revision) are factory-set and never written; the values here are placeholders.

use crate::config::{ConfigZone, KeyConfig, SlotConfig};

/// The default target config as the 128 bytes a config read returns on a freshly programmed,
/// still unlocked chip (bytes 0–15 are placeholders).
pub const DEFAULT_CONFIG_BYTES: [u8; 128] = [
    // 0: SN[0..4], RevNum, SN[4..9], AES_Enable, I2C_Enable, reserved (factory; not written)
    0x01, 0x23, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0x00, 0x00, 0x00, 0x00, 0xEE, 0x01, 0x01, 0x00,
    // 16: I2C_Address, reserved, CountMatch, ChipMode; SlotConfig 0..5
    0xC0, 0x00, 0x00, 0x00, 0x81, 0x00, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F,
    // 32: SlotConfig 6..15
    0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F,
    // 48: SlotConfig 14, 15; Counter[0]
    0x0F, 0x0F, 0x0F, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF,
    // 64: Counter[1] (end), UseLock, VolatileKeyPermission, SecureBoot, KdflvLoc, KdflvStr, reserved
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // 80: reserved, UserExtra, UserExtraAdd, LockValue, LockConfig, SlotLocked, ChipOptions, X509format
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x55, 0x55, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // 96: KeyConfig 0..7
    0x13, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00,
    // 112: KeyConfig 8..15
    0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x30, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00,
];

/// The default target config as a model.
pub const DEFAULT_CONFIG: ConfigZone = ConfigZone::from_bytes(&DEFAULT_CONFIG_BYTES);

/// Slot of the device private key.
pub const SLOT_DEVICE_KEY: u8 = 0;
/// Slot of the device compressed certificate.
pub const SLOT_DEVICE_CERT: u8 = 10;
/// Slot of the signer public key: the device's trust anchor (public P-256, usable by Verify
/// stored mode, locked after verification).
pub const SLOT_SIGNER_PUBKEY: u8 = 11;
/// Slot of the signer compressed certificate.
pub const SLOT_SIGNER_CERT: u8 = 12;

/// The IO-protection key slot when the profile turns IO protection on and names none: slot 6,
/// Microchip's TNGTLS IO protection key slot (reference §7.2).
pub const DEFAULT_IO_KEY_SLOT: u8 = 6;
/// SlotConfig of the IO-protection key slot: IsSecret (bit 7) with EncryptRead clear, so Read
/// is refused once the data zone is locked (§6.4); WriteConfig Never (0x8000), so the one clear
/// 32-byte write the chip accepts is the one before the data lock (§6.3); ReadKey and WriteKey
/// 0xF as in TNGTLS's slot 6 (unused: no encrypted read, no encrypted write).
pub const IO_KEY_SLOT_CONFIG: u16 = 0x8F8F;
/// KeyConfig of the IO-protection key slot: not Private, KeyType 7 (SHA/other data: a 32-byte
/// symmetric key, §5.3), not Lockable (never writable after the data lock, nothing to lock).
pub const IO_KEY_KEY_CONFIG: u16 = 0x001C;

/// Whether `slot` may hold the IO-protection key: any slot but the device key (0) and the
/// certificate and trust-anchor slots (10–12).
pub const fn io_key_slot_allowed(slot: u8) -> bool {
    slot >= 1 && slot <= 15 && !(slot >= SLOT_DEVICE_CERT && slot <= SLOT_SIGNER_CERT)
}

/// The default config with IO protection (docs/atecc.md "IO protection"): ChipOptions with
/// the IO protection key enabled in `slot` and ECDH and KDF outputs only encrypted with it
/// (§5.1), and `slot` a secret, never-readable key written once before the data lock. `None`
/// for a slot [`io_key_slot_allowed`] refuses.
pub const fn io_protected_config_bytes(slot: u8) -> Option<[u8; 128]> {
    if !io_key_slot_allowed(slot) {
        return None;
    }
    let mut zone = DEFAULT_CONFIG;
    zone.chip_options = zone.chip_options.with_io_protection(slot);
    zone.slot_config[slot as usize] = SlotConfig(IO_KEY_SLOT_CONFIG);
    zone.key_config[slot as usize] = KeyConfig(IO_KEY_KEY_CONFIG);
    Some(zone.to_bytes())
}
