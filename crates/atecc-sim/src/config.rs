//! The 128-byte configuration zone: factory image, field offsets and the slot/key policy bits
//! (reference §5 and §7.1).

/// Size of the configuration zone.
pub const CONFIG_SIZE: usize = 128;
/// Size of the OTP zone.
pub const OTP_SIZE: usize = 64;
/// Number of data slots.
pub const SLOT_COUNT: usize = 16;

/// Offset of `I2C_Address` (8-bit form).
pub const I2C_ADDRESS: usize = 16;
/// Offset of `ChipMode`.
pub const CHIP_MODE: usize = 19;
/// Offset of `SlotConfig[0]` (u16 LE each).
pub const SLOT_CONFIG: usize = 20;
/// Offset of `Counter[0]`; `Counter[1]` follows 8 bytes later.
pub const COUNTER: usize = 52;
/// Offset of `VolatileKeyPermission`.
pub const VOLATILE_KEY_PERMISSION: usize = 69;
/// Offset of `UserExtra` (written only by UpdateExtra mode 0).
pub const USER_EXTRA: usize = 84;
/// Offset of `UserExtraAdd` (written only by UpdateExtra mode 1).
pub const USER_EXTRA_ADD: usize = 85;
/// Offset of `LockValue` (data + OTP lock; 0x55 = unlocked).
pub const LOCK_VALUE: usize = 86;
/// Offset of `LockConfig` (0x55 = unlocked).
pub const LOCK_CONFIG: usize = 87;
/// Offset of `SlotLocked` (u16 LE, bit n = 1 → slot n unlocked).
pub const SLOT_LOCKED: usize = 88;
/// Offset of `ChipOptions` (u16 LE).
pub const CHIP_OPTIONS: usize = 90;
/// Offset of `KeyConfig[0]` (u16 LE each).
pub const KEY_CONFIG: usize = 96;

/// Largest value of a monotonic counter (reference §4.2 Counter).
pub const COUNTER_MAX: u32 = 2_097_151;

/// The chip revision that Info(Revision) reports and that config bytes 4–7 hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Revision {
    /// ATECC608A: RevNum `00 00 60 02`.
    #[default]
    Atecc608A,
    /// ATECC608B: RevNum `00 00 60 03`.
    Atecc608B,
}

impl Revision {
    /// The four RevNum bytes (reference §4.2 Info, §5.1).
    pub fn rev_num(self) -> [u8; 4] {
        match self {
            Revision::Atecc608A => [0x00, 0x00, 0x60, 0x02],
            Revision::Atecc608B => [0x00, 0x00, 0x60, 0x03],
        }
    }

    /// Factory value of config byte 13 (`AES_Enable` with factory upper bits) seen on real parts.
    fn aes_enable_byte(self) -> u8 {
        match self {
            Revision::Atecc608A => 0xC1,
            Revision::Atecc608B => 0x61,
        }
    }
}

/// Bytes 16..128 of the factory default of an unlocked ATECC608A (reference §7.1, identical in
/// five independent real dumps [HW]).
const FACTORY_16_127: [u8; 112] = [
    0xC0, 0x00, 0x00, 0x00, 0x83, 0x20, 0x87, 0x20, 0x8F, 0x20, 0xC4, 0x8F, 0x8F, 0x8F, 0x8F, 0x8F,
    0x9F, 0x8F, 0xAF, 0x8F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xAF, 0x8F, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x55, 0x55, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x33, 0x00, 0x33, 0x00, 0x33, 0x00, 0x1C, 0x00, 0x1C, 0x00, 0x1C, 0x00, 0x1C, 0x00, 0x1C, 0x00,
    0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x3C, 0x00, 0x1C, 0x00,
];

/// Values of byte 14 (`I2C_Enable`) seen on real blank parts; it varies per chip (§7.1).
pub const FACTORY_I2C_ENABLE_VALUES: [u8; 4] = [0x35, 0x39, 0x55, 0x61];

/// Builds the factory configuration zone for `revision` with the given per-device bytes.
///
/// `sn_random` fills SN[2..4] and SN[4..8]; SN[0..2] is the factory prefix `01 23` and SN[8] is
/// `0xEE` as on generic parts.
pub fn factory_config(revision: Revision, sn_random: [u8; 6], i2c_enable: u8) -> [u8; CONFIG_SIZE] {
    let mut cfg = [0u8; CONFIG_SIZE];
    cfg[0] = 0x01;
    cfg[1] = 0x23;
    cfg[2..4].copy_from_slice(&sn_random[0..2]);
    cfg[4..8].copy_from_slice(&revision.rev_num());
    cfg[8..12].copy_from_slice(&sn_random[2..6]);
    cfg[12] = 0xEE;
    cfg[13] = revision.aes_enable_byte();
    cfg[14] = i2c_enable;
    cfg[15] = 0x00;
    cfg[16..].copy_from_slice(&FACTORY_16_127);
    cfg
}

/// Nine-byte serial number: config bytes 0–3 ‖ 8–12 (reference §3).
pub fn serial_number(cfg: &[u8; CONFIG_SIZE]) -> [u8; 9] {
    let mut sn = [0u8; 9];
    sn[..4].copy_from_slice(&cfg[0..4]);
    sn[4..].copy_from_slice(&cfg[8..13]);
    sn
}

/// Bytes of the configuration zone that Write may change before the config lock (reference §5.1:
/// 0–15 are factory, 84–87 change only through UpdateExtra and Lock).
pub fn is_config_byte_writable(offset: usize) -> bool {
    (16..84).contains(&offset) || (88..CONFIG_SIZE).contains(&offset)
}

/// Size in bytes of data slot `slot` (reference §3).
pub fn slot_size(slot: usize) -> usize {
    match slot {
        0..=7 => 36,
        8 => 416,
        _ => 72,
    }
}

/// How Write is governed by a slot's `SlotConfig.WriteConfig` (reference §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritePolicy {
    /// `0000`: clear 4- or 32-byte writes.
    Always,
    /// `0001`: only when the stored public key is invalidated.
    PubInvalid,
    /// `1xxx` or `xx1x` (and not `x1xx`): never.
    Never,
    /// `x1xx`: only encrypted 32-byte writes with a MAC.
    Encrypt,
}

/// A slot's 16-bit `SlotConfig` (reference §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotConfig(pub u16);

impl SlotConfig {
    /// `ReadKey` (bits 3:0); for private-key slots bit0 = external Sign, bit1 = internal Sign,
    /// bit2 = ECDH, bit3 = ECDH result to slot N|1.
    pub fn read_key(self) -> u8 {
        (self.0 & 0x0F) as u8
    }
    /// `EncryptRead` (bit 6).
    pub fn encrypt_read(self) -> bool {
        self.0 & 0x0040 != 0
    }
    /// `IsSecret` (bit 7).
    pub fn is_secret(self) -> bool {
        self.0 & 0x0080 != 0
    }
    /// `WriteConfig` (bits 15:12).
    pub fn write_config(self) -> u8 {
        (self.0 >> 12) as u8
    }
    /// `WriteConfig` decoded for Write.
    pub fn write_policy(self) -> WritePolicy {
        let wc = self.write_config();
        if wc & 0b0100 != 0 {
            WritePolicy::Encrypt
        } else if wc & 0b1010 != 0 {
            WritePolicy::Never
        } else if wc == 0b0001 {
            WritePolicy::PubInvalid
        } else {
            WritePolicy::Always
        }
    }
}

/// A slot's 16-bit `KeyConfig` (reference §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyConfig(pub u16);

impl KeyConfig {
    /// `Private` (bit 0).
    pub fn private(self) -> bool {
        self.0 & 0x0001 != 0
    }
    /// `PubInfo` (bit 1).
    pub fn pub_info(self) -> bool {
        self.0 & 0x0002 != 0
    }
    /// `KeyType` (bits 4:2); 4 = P-256.
    pub fn key_type(self) -> u8 {
        ((self.0 >> 2) & 0x07) as u8
    }
    /// True for a P-256 private-key slot (`Private` = 1, `KeyType` = 4).
    pub fn is_p256_private(self) -> bool {
        self.private() && self.key_type() == 4
    }
    /// `Lockable` (bit 5).
    pub fn lockable(self) -> bool {
        self.0 & 0x0020 != 0
    }
}

/// Read-only helpers over a configuration zone image.
pub trait ConfigZone {
    /// The raw 128 bytes.
    fn bytes(&self) -> &[u8; CONFIG_SIZE];

    /// `SlotConfig[slot]`.
    fn slot_config(&self, slot: usize) -> SlotConfig {
        let b = self.bytes();
        let o = SLOT_CONFIG + 2 * (slot & 0x0F);
        SlotConfig(u16::from_le_bytes([b[o], b[o + 1]]))
    }
    /// `KeyConfig[slot]`.
    fn key_config(&self, slot: usize) -> KeyConfig {
        let b = self.bytes();
        let o = KEY_CONFIG + 2 * (slot & 0x0F);
        KeyConfig(u16::from_le_bytes([b[o], b[o + 1]]))
    }
    /// True once the config zone is locked (`LockConfig` != 0x55).
    fn config_locked(&self) -> bool {
        self.bytes()[LOCK_CONFIG] != 0x55
    }
    /// True once the data and OTP zones are locked (`LockValue` != 0x55).
    fn data_locked(&self) -> bool {
        self.bytes()[LOCK_VALUE] != 0x55
    }
    /// True while slot `slot` has not been slot-locked (its `SlotLocked` bit is still 1).
    fn slot_unlocked(&self, slot: usize) -> bool {
        let b = self.bytes();
        let word = u16::from_le_bytes([b[SLOT_LOCKED], b[SLOT_LOCKED + 1]]);
        word & (1 << (slot & 0x0F)) != 0
    }
    /// The 7-bit I2C address the chip answers on: `I2C_Address` >> 1, or `UserExtraAdd` >> 1 when
    /// `ChipMode` bit 0 is set and that byte is non-zero (reference §1.1).
    fn i2c_address(&self) -> u8 {
        let b = self.bytes();
        if b[CHIP_MODE] & 0x01 != 0 && b[USER_EXTRA_ADD] != 0 {
            b[USER_EXTRA_ADD] >> 1
        } else {
            b[I2C_ADDRESS] >> 1
        }
    }
    /// Watchdog period selected by `ChipMode` bit 2 (~1.3 s or ~13 s, reference §1.5).
    fn watchdog_long(&self) -> bool {
        self.bytes()[CHIP_MODE] & 0x04 != 0
    }
    /// `ChipMode` clock divider bits 7:3.
    fn clock_divider(&self) -> u8 {
        self.bytes()[CHIP_MODE] >> 3
    }
    /// `ChipOptions` ECDH protection bits 9:8.
    fn ecdh_protection(&self) -> u8 {
        let b = self.bytes();
        let opts = u16::from_le_bytes([b[CHIP_OPTIONS], b[CHIP_OPTIONS + 1]]);
        ((opts >> 8) & 0x03) as u8
    }
    /// Current value of monotonic counter `id` (0 or 1) decoded from its config bytes.
    fn counter(&self, id: usize) -> u32 {
        let o = COUNTER + 8 * (id & 1);
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&self.bytes()[o..o + 8]);
        decode_counter(raw)
    }
}

impl ConfigZone for [u8; CONFIG_SIZE] {
    fn bytes(&self) -> &[u8; CONFIG_SIZE] {
        self
    }
}

/// Encodes a counter value as the chip stores it in config bytes 52–59 / 60–67 (reference §5.4).
pub fn encode_counter(v: u32) -> [u8; 8] {
    // 16-bit shifts by 16 or more give 0.
    fn ones_shifted(by: u32) -> u16 {
        if by >= 16 {
            0
        } else {
            (0xFFFFu32 >> by) as u16
        }
    }
    let lin_a = ones_shifted(v % 32);
    let lin_b = if v >= 16 {
        ones_shifted((v - 16) % 32)
    } else {
        0xFFFF
    };
    let bin_a = (v / 32) as u16;
    let bin_b = if v >= 16 { ((v - 16) / 32) as u16 } else { 0 };
    let mut out = [0u8; 8];
    out[0..2].copy_from_slice(&lin_a.to_be_bytes());
    out[2..4].copy_from_slice(&lin_b.to_be_bytes());
    out[4..6].copy_from_slice(&bin_a.to_be_bytes());
    out[6..8].copy_from_slice(&bin_b.to_be_bytes());
    out
}

/// Decodes the counter storage of [`encode_counter`]: `bin_a * 32 + (v mod 32)`, where `v mod 32`
/// is read from the run of ones in `lin_a` (or, once that is empty, in `lin_b`).
pub fn decode_counter(raw: [u8; 8]) -> u32 {
    let lin_a = u16::from_be_bytes([raw[0], raw[1]]);
    let lin_b = u16::from_be_bytes([raw[2], raw[3]]);
    let bin_a = u16::from_be_bytes([raw[4], raw[5]]) as u32;
    let low = if lin_a != 0 {
        16 - lin_a.count_ones()
    } else {
        (32 - lin_b.count_ones()).min(31)
    };
    bin_a * 32 + low
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference §5.4: encodings validated against three real dumps [HW, X].
    #[test]
    fn counter_encoding_vectors() {
        let table: &[(u32, [u8; 8])] = &[
            (0, [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]),
            (1, [0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]),
            (4, [0x0F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]),
            (16, [0x00, 0x00, 0xFF, 0xFF, 0, 0, 0, 0]),
            (31, [0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0]),
            (32, [0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]),
            (45, [0x00, 0x07, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]),
            (100, [0x0F, 0xFF, 0x00, 0x00, 0x00, 0x03, 0x00, 0x02]),
            (2_097_151, [0x00, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF]),
        ];
        for (v, raw) in table {
            assert_eq!(encode_counter(*v), *raw, "encode {v}");
            assert_eq!(decode_counter(*raw), *v, "decode {v}");
        }
        for v in (0..5000).chain(COUNTER_MAX - 100..=COUNTER_MAX) {
            assert_eq!(decode_counter(encode_counter(v)), v);
        }
    }

    /// Reference §7.1 decode: slots 0–2 P-256 private, 3–7 & 15 secret (WriteConfig Never),
    /// 8–14 clear data, Always write.
    #[test]
    fn factory_decode() {
        let cfg = factory_config(Revision::Atecc608A, [0; 6], 0x55);
        for slot in 0..3 {
            assert!(cfg.key_config(slot).is_p256_private());
            assert!(cfg.key_config(slot).pub_info());
            assert_eq!(cfg.slot_config(slot).write_config() & 0x2, 0x2);
        }
        assert_eq!(cfg.slot_config(0).0, 0x2083);
        for slot in (3..8).chain([15]) {
            assert_eq!(
                cfg.slot_config(slot).write_policy(),
                WritePolicy::Never,
                "slot {slot}"
            );
            assert!(cfg.slot_config(slot).is_secret());
        }
        for slot in 8..15 {
            assert_eq!(cfg.slot_config(slot).write_policy(), WritePolicy::Always);
            assert!(!cfg.slot_config(slot).is_secret());
        }
        assert!(!cfg.config_locked());
        assert!(!cfg.data_locked());
        assert_eq!(cfg.i2c_address(), 0x60);
        assert_eq!(cfg.counter(0), 0);
        assert_eq!(cfg.counter(1), 0);
    }
}
