//! keystamp's default target configuration, modelled on Microchip's TrustFLEX (TFLXTLS) layout.
//!
//! | slot | size | role | SlotConfig | KeyConfig |
//! |---|---|---|---|---|
//! | 0 | 36 | device P-256 private key: GenKey only, external Sign only, never read or written in clear | 0x2081 | 0x0033 |
//! | 1–7 | 36 | spare P-256 private keys (same policy as slot 0) | 0x2081 | 0x0033 |
//! | 8 | 416 | general data, clear read, clear write, lockable | 0x0F0F | 0x003C |
//! | 9 | 72 | general data | 0x0F0F | 0x003C |
//! | 10 | 72 | device compressed certificate | 0x0F0F | 0x003C |
//! | 11 | 72 | signer public key (padded X‖Y) | 0x0F0F | 0x0030 |
//! | 12 | 72 | signer compressed certificate | 0x0F0F | 0x003C |
//! | 13–15 | 72 | general data | 0x0F0F | 0x003C |
//!
//! Other settings: I2C address 0xC0 (7-bit 0x60, the factory value), ChipMode 0x00 (short
//! ~1.3 s watchdog, default clock, address fixed), counters at 0, no SecureBoot, UseLock,
//! VolatileKeyPermission, CountMatch, ChipOptions or X509format. Bytes 0–15 (serial number,
//! revision) are factory-set and never written; the values here are placeholders.

use crate::config::ConfigZone;

/// The default target config as the 128 bytes a config read returns on a freshly programmed,
/// still unlocked chip (bytes 0–15 are placeholders).
pub const DEFAULT_CONFIG_BYTES: [u8; 128] = [
    // 0: SN[0..4], RevNum, SN[4..9], AES_Enable, I2C_Enable, reserved (factory; not written)
    0x01, 0x23, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0x00, 0x00, 0x00, 0x00, 0xEE, 0x01, 0x01, 0x00,
    // 16: I2C_Address, reserved, CountMatch, ChipMode; SlotConfig 0..5
    0xC0, 0x00, 0x00, 0x00, 0x81, 0x20, 0x81, 0x20, 0x81, 0x20, 0x81, 0x20, 0x81, 0x20, 0x81, 0x20,
    // 32: SlotConfig 6..15
    0x81, 0x20, 0x81, 0x20, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F,
    // 48: SlotConfig 14, 15; Counter[0]
    0x0F, 0x0F, 0x0F, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF,
    // 64: Counter[1] (end), UseLock, VolatileKeyPermission, SecureBoot, KdflvLoc, KdflvStr, reserved
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // 80: reserved, UserExtra, UserExtraAdd, LockValue, LockConfig, SlotLocked, ChipOptions, X509format
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x55, 0x55, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // 96: KeyConfig 0..7
    0x33, 0x00, 0x33, 0x00, 0x33, 0x00, 0x33, 0x00, 0x33, 0x00, 0x33, 0x00, 0x33, 0x00, 0x33, 0x00,
    // 112: KeyConfig 8..15
    0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x30, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00,
];

/// The default target config as a model.
pub const DEFAULT_CONFIG: ConfigZone = ConfigZone::from_bytes(&DEFAULT_CONFIG_BYTES);

/// Slot of the device private key.
pub const SLOT_DEVICE_KEY: u8 = 0;
/// Slot of the device compressed certificate.
pub const SLOT_DEVICE_CERT: u8 = 10;
/// Slot of the signer public key.
pub const SLOT_SIGNER_PUBKEY: u8 = 11;
/// Slot of the signer compressed certificate.
pub const SLOT_SIGNER_CERT: u8 = 12;
