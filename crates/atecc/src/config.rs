//! The 128-byte configuration zone as a typed model (reference §5), the Write operations that
//! program it on a blank chip, and the summary CRCs the Lock command checks.

use crate::command::{ClockDivider, UpdateExtra, WriteData};
use crate::crc::{Crc16, crc16};
use crate::zone::{CONFIG_SIZE, OTP_SIZE, SLOT_COUNT, ZoneAddr, slot_size};

/// How a slot may be written by the Write command (SlotConfig.WriteConfig, reference §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WriteMode {
    /// `0000`: clear writes of 4 or 32 bytes.
    Always,
    /// `0001`: only when the stored public key has been invalidated.
    PubInvalid,
    /// `1xxx` or `xx1x` (without `x1xx`): never.
    Never,
    /// `x1xx`: 32-byte encrypted writes with a MAC only.
    Encrypt,
}

/// SlotConfig: 16 bits per slot, little-endian in config bytes 20–51.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlotConfig(pub u16);

impl SlotConfig {
    /// Bits 3:0. For non-key slots: the key used for encrypted reads.
    pub const fn read_key(self) -> u8 {
        (self.0 & 0x000F) as u8
    }
    /// Private-key slots (ReadKey bit 0): external Sign allowed.
    pub const fn ext_sign(self) -> bool {
        self.0 & 0x0001 != 0
    }
    /// Private-key slots (ReadKey bit 1): internal Sign allowed.
    pub const fn int_sign(self) -> bool {
        self.0 & 0x0002 != 0
    }
    /// Private-key slots (ReadKey bit 2): ECDH allowed.
    pub const fn ecdh(self) -> bool {
        self.0 & 0x0004 != 0
    }
    /// Private-key slots (ReadKey bit 3): ECDH result written to slot N|1 instead of output.
    pub const fn ecdh_to_slot(self) -> bool {
        self.0 & 0x0008 != 0
    }
    /// Bit 4: NoMac.
    pub const fn no_mac(self) -> bool {
        self.0 & 0x0010 != 0
    }
    /// Bit 5: LimitedUse (uses Counter 0).
    pub const fn limited_use(self) -> bool {
        self.0 & 0x0020 != 0
    }
    /// Bit 6: EncryptRead.
    pub const fn encrypt_read(self) -> bool {
        self.0 & 0x0040 != 0
    }
    /// Bit 7: IsSecret.
    pub const fn is_secret(self) -> bool {
        self.0 & 0x0080 != 0
    }
    /// Bits 11:8: WriteKey.
    pub const fn write_key(self) -> u8 {
        ((self.0 >> 8) & 0x0F) as u8
    }
    /// Bits 15:12: WriteConfig (raw).
    pub const fn write_config(self) -> u8 {
        ((self.0 >> 12) & 0x0F) as u8
    }
    /// WriteConfig decoded for the Write command.
    pub const fn write_mode(self) -> WriteMode {
        let wc = self.write_config();
        if wc & 0b0100 != 0 {
            WriteMode::Encrypt
        } else if wc & 0b1010 != 0 {
            WriteMode::Never
        } else if wc == 0b0001 {
            WriteMode::PubInvalid
        } else {
            WriteMode::Always
        }
    }
    /// Private-key slots (WriteConfig bit 1, 0x2000): GenKey may create a new key here.
    pub const fn gen_key_allowed(self) -> bool {
        self.0 & 0x2000 != 0
    }
    /// Private-key slots (WriteConfig bit 2, 0x4000): encrypted PrivWrite allowed.
    pub const fn priv_write_allowed(self) -> bool {
        self.0 & 0x4000 != 0
    }
}

/// KeyConfig.KeyType (bits 4:2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KeyType {
    /// 0: B283 (not on the 608).
    B283,
    /// 1: K283 (not on the 608).
    K283,
    /// 4: NIST P-256.
    P256,
    /// 6: AES.
    Aes,
    /// 7: SHA key or other data.
    ShaOrData,
    /// 2, 3, 5: reserved.
    Reserved(u8),
}

/// KeyConfig: 16 bits per slot, little-endian in config bytes 96–127.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KeyConfig(pub u16);

impl KeyConfig {
    /// Bit 0: the slot holds an ECC private key.
    pub const fn private(self) -> bool {
        self.0 & 0x0001 != 0
    }
    /// Bit 1: PubInfo (private slot: public key may be generated; public slot: must be
    /// validated).
    pub const fn pub_info(self) -> bool {
        self.0 & 0x0002 != 0
    }
    /// Bits 4:2 raw.
    pub const fn key_type_bits(self) -> u8 {
        ((self.0 >> 2) & 0x07) as u8
    }
    /// Bits 4:2 decoded.
    pub const fn key_type(self) -> KeyType {
        match self.key_type_bits() {
            0 => KeyType::B283,
            1 => KeyType::K283,
            4 => KeyType::P256,
            6 => KeyType::Aes,
            7 => KeyType::ShaOrData,
            other => KeyType::Reserved(other),
        }
    }
    /// Bit 5: the slot may be locked individually.
    pub const fn lockable(self) -> bool {
        self.0 & 0x0020 != 0
    }
    /// Bit 6: a random nonce is required.
    pub const fn req_random(self) -> bool {
        self.0 & 0x0040 != 0
    }
    /// Bit 7: prior authorization with AuthKey required.
    pub const fn req_auth(self) -> bool {
        self.0 & 0x0080 != 0
    }
    /// Bits 11:8: AuthKey.
    pub const fn auth_key(self) -> u8 {
        ((self.0 >> 8) & 0x0F) as u8
    }
    /// Bit 12: use requires the persistent latch.
    pub const fn persistent_disable(self) -> bool {
        self.0 & 0x1000 != 0
    }
    /// Bits 15:14: X509id.
    pub const fn x509_id(self) -> u8 {
        (self.0 >> 14) as u8
    }
}

/// ChipMode, config byte 19.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChipMode(pub u8);

impl ChipMode {
    /// Bit 0: use UserExtraAdd (byte 85) as the I2C address when non-zero.
    pub const fn user_extra_add(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// Bit 1: TTL input levels.
    pub const fn ttl_enable(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// Bit 2: long (~13 s) watchdog instead of ~1.3 s.
    pub const fn watchdog_long(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// Bits 7:3 raw.
    pub const fn clock_divider_bits(self) -> u8 {
        self.0 >> 3
    }
    /// Bits 7:3 decoded (`None` for undocumented values).
    pub const fn clock_divider(self) -> Option<ClockDivider> {
        ClockDivider::from_bits(self.clock_divider_bits())
    }
}

/// ChipOptions, config bytes 90–91 (little-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChipOptions(pub u16);

impl ChipOptions {
    /// Bit 0: power-on self test.
    pub const fn power_on_self_test(self) -> bool {
        self.0 & 0x0001 != 0
    }
    /// Bit 1: IO protection key enabled.
    pub const fn io_protection(self) -> bool {
        self.0 & 0x0002 != 0
    }
    /// Bit 2: KDF AES mode enabled.
    pub const fn kdf_aes(self) -> bool {
        self.0 & 0x0004 != 0
    }
    /// Bit 3: auto-clear the first self-test failure.
    pub const fn auto_clear_first_fail(self) -> bool {
        self.0 & 0x0008 != 0
    }
    /// Bits 9:8: ECDH output protection.
    pub const fn ecdh_protection(self) -> u8 {
        ((self.0 >> 8) & 0x03) as u8
    }
    /// Bits 11:10: KDF output protection.
    pub const fn kdf_protection(self) -> u8 {
        ((self.0 >> 10) & 0x03) as u8
    }
    /// Bits 15:12: IO protection key slot.
    pub const fn io_key(self) -> u8 {
        (self.0 >> 12) as u8
    }
}

/// ChipOptions bit 1: the IO protection key is enabled (reference §5.1).
pub const CHIP_OPT_IO_PROTECTION: u16 = 0x0002;
/// ECDH / KDF output protection value (bits 9:8 and 11:10, reference §5.1): output in clear
/// allowed.
pub const OUTPUT_CLEAR_ALLOWED: u8 = 0b00;
/// Output protection value: output only encrypted with the IO protection key (cryptoauthlib's
/// `ATCA_CHIP_OPT_ECDH_PROT` / `ATCA_CHIP_OPT_KDF_PROT` field; "0x01: Encrypted only").
pub const OUTPUT_ENCRYPTED_ONLY: u8 = 0b01;
/// Output protection value: no output, the result stays in TempKey or a slot only.
pub const OUTPUT_NONE: u8 = 0b10;

impl ChipOptions {
    /// IO protection with the key in `slot` and ECDH and KDF outputs only encrypted with it;
    /// the other bits (self test, KDF-AES, auto-clear) taken from `self`.
    pub const fn with_io_protection(self, slot: u8) -> Self {
        let keep = self.0 & 0x000D;
        ChipOptions(
            keep | CHIP_OPT_IO_PROTECTION
                | ((OUTPUT_ENCRYPTED_ONLY as u16) << 8)
                | ((OUTPUT_ENCRYPTED_ONLY as u16) << 10)
                | (((slot & 0x0F) as u16) << 12),
        )
    }
}

/// One X509format byte (config bytes 92–95).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct X509Format(pub u8);

impl X509Format {
    /// Bits 3:0: public key position.
    pub const fn public_position(self) -> u8 {
        self.0 & 0x0F
    }
    /// Bits 7:4: template length.
    pub const fn template_length(self) -> u8 {
        self.0 >> 4
    }
}

/// The 8-byte storage of one monotonic counter (reference §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CounterBytes(pub [u8; 8]);

impl CounterBytes {
    /// Encode a value (cryptoauthlib `calib_write_config_counter`). `None` above 2 097 151.
    pub const fn encode(value: u32) -> Option<Self> {
        if value > crate::command::COUNTER_MAX {
            return None;
        }
        let lin_a = shr16(value % 32);
        let (lin_b, bin_b) = if value >= 16 {
            (shr16((value - 16) % 32), (value - 16) / 32)
        } else {
            (0xFFFF, 0)
        };
        let bin_a = value / 32;
        let a = lin_a.to_be_bytes();
        let b = lin_b.to_be_bytes();
        let c = (bin_a as u16).to_be_bytes();
        let d = (bin_b as u16).to_be_bytes();
        Some(CounterBytes([
            a[0], a[1], b[0], b[1], c[0], c[1], d[0], d[1],
        ]))
    }

    /// The value these bytes encode; `None` if they are not a valid encoding.
    pub const fn value(self) -> Option<u32> {
        let b = self.0;
        let lin_a = u16::from_be_bytes([b[0], b[1]]);
        let lin_b = u16::from_be_bytes([b[2], b[3]]);
        let bin_a = u16::from_be_bytes([b[4], b[5]]) as u32;
        let low = if lin_a != 0 {
            16 - lin_a.count_ones()
        } else {
            32 - lin_b.count_ones()
        };
        let value = bin_a * 32 + low;
        match Self::encode(value) {
            Some(enc) if eq8(enc.0, b) => Some(value),
            _ => None,
        }
    }
}

const fn shr16(n: u32) -> u16 {
    if n >= 16 { 0 } else { 0xFFFF >> n }
}

const fn eq8(a: [u8; 8], b: [u8; 8]) -> bool {
    let mut i = 0;
    while i < 8 {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Value of LockValue / LockConfig while unlocked.
pub const UNLOCKED: u8 = 0x55;
/// Value the Lock command leaves in LockValue / LockConfig (reference §config map: 0x00). Test
/// for "locked" with `!= UNLOCKED`, as cryptoauthlib's `calib_is_locked` does.
pub const LOCKED: u8 = 0x00;
/// Config-zone byte LockValue: the data and OTP zones' lock.
pub const LOCK_VALUE_BYTE: usize = 86;
/// Config-zone byte LockConfig: the config zone's lock.
pub const LOCK_CONFIG_BYTE: usize = 87;

/// The configuration zone with every field named. Parses from and emits to exactly 128 bytes;
/// every byte is kept, so `ConfigZone::from_bytes(b).to_bytes() == b` for any input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigZone {
    /// Bytes 0–3: `SN[0..4]` (`01 23 ..`).
    pub sn_0_3: [u8; 4],
    /// Bytes 4–7: RevNum (`00 00 60 02` 608A, `00 00 60 03` 608B).
    pub revision: [u8; 4],
    /// Bytes 8–12: `SN[4..9]` (`SN[8]` is 0xEE on generic parts, 0x01 on TNG/TFLX).
    pub sn_4_8: [u8; 5],
    /// Byte 13: AES_Enable (bit 0).
    pub aes_enable: u8,
    /// Byte 14: I2C_Enable (bit 0: 1 = I2C).
    pub i2c_enable: u8,
    /// Byte 15: reserved.
    pub reserved_15: u8,
    /// Byte 16: I2C address, 8-bit form (7-bit address << 1).
    pub i2c_address: u8,
    /// Byte 17: reserved.
    pub reserved_17: u8,
    /// Byte 18: CountMatch (bit 0 enable, bits 7:4 key slot).
    pub count_match: u8,
    /// Byte 19: ChipMode.
    pub chip_mode: ChipMode,
    /// Bytes 20–51: SlotConfig per slot.
    pub slot_config: [SlotConfig; SLOT_COUNT],
    /// Bytes 52–67: the two monotonic counters.
    pub counters: [CounterBytes; 2],
    /// Byte 68: UseLock.
    pub use_lock: u8,
    /// Byte 69: VolatileKeyPermission.
    pub volatile_key_permission: u8,
    /// Bytes 70–71: SecureBoot (little-endian; bits 1:0 mode).
    pub secure_boot: u16,
    /// Byte 72: KdflvLoc.
    pub kdflv_loc: u8,
    /// Bytes 73–74: KdflvStr.
    pub kdflv_str: [u8; 2],
    /// Bytes 75–83: reserved.
    pub reserved_75: [u8; 9],
    /// Byte 84: UserExtra (set by UpdateExtra mode 0).
    pub user_extra: u8,
    /// Byte 85: UserExtraAdd (set by UpdateExtra mode 1).
    pub user_extra_add: u8,
    /// Byte 86: LockValue (data/OTP; 0x55 unlocked).
    pub lock_value: u8,
    /// Byte 87: LockConfig (0x55 unlocked).
    pub lock_config: u8,
    /// Bytes 88–89: SlotLocked (bit n = 1: slot n not locked).
    pub slot_locked: u16,
    /// Bytes 90–91: ChipOptions.
    pub chip_options: ChipOptions,
    /// Bytes 92–95: X509format.
    pub x509_format: [X509Format; 4],
    /// Bytes 96–127: KeyConfig per slot.
    pub key_config: [KeyConfig; SLOT_COUNT],
}

/// The input is not exactly 128 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigLengthError {
    /// Length given.
    pub len: usize,
}

impl ConfigZone {
    /// Parse 128 bytes. Infallible: every byte pattern is representable.
    pub const fn from_bytes(b: &[u8; CONFIG_SIZE]) -> Self {
        let mut slot_config = [SlotConfig(0); SLOT_COUNT];
        let mut key_config = [KeyConfig(0); SLOT_COUNT];
        let mut i = 0;
        while i < SLOT_COUNT {
            slot_config[i] = SlotConfig(u16::from_le_bytes([b[20 + 2 * i], b[21 + 2 * i]]));
            key_config[i] = KeyConfig(u16::from_le_bytes([b[96 + 2 * i], b[97 + 2 * i]]));
            i += 1;
        }
        ConfigZone {
            sn_0_3: [b[0], b[1], b[2], b[3]],
            revision: [b[4], b[5], b[6], b[7]],
            sn_4_8: [b[8], b[9], b[10], b[11], b[12]],
            aes_enable: b[13],
            i2c_enable: b[14],
            reserved_15: b[15],
            i2c_address: b[16],
            reserved_17: b[17],
            count_match: b[18],
            chip_mode: ChipMode(b[19]),
            slot_config,
            counters: [
                CounterBytes([b[52], b[53], b[54], b[55], b[56], b[57], b[58], b[59]]),
                CounterBytes([b[60], b[61], b[62], b[63], b[64], b[65], b[66], b[67]]),
            ],
            use_lock: b[68],
            volatile_key_permission: b[69],
            secure_boot: u16::from_le_bytes([b[70], b[71]]),
            kdflv_loc: b[72],
            kdflv_str: [b[73], b[74]],
            reserved_75: [
                b[75], b[76], b[77], b[78], b[79], b[80], b[81], b[82], b[83],
            ],
            user_extra: b[84],
            user_extra_add: b[85],
            lock_value: b[86],
            lock_config: b[87],
            slot_locked: u16::from_le_bytes([b[88], b[89]]),
            chip_options: ChipOptions(u16::from_le_bytes([b[90], b[91]])),
            x509_format: [
                X509Format(b[92]),
                X509Format(b[93]),
                X509Format(b[94]),
                X509Format(b[95]),
            ],
            key_config,
        }
    }

    /// Parse a slice that must be exactly 128 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, ConfigLengthError> {
        let arr: &[u8; CONFIG_SIZE] = b
            .try_into()
            .map_err(|_| ConfigLengthError { len: b.len() })?;
        Ok(Self::from_bytes(arr))
    }

    /// Emit the 128 bytes.
    pub const fn to_bytes(&self) -> [u8; CONFIG_SIZE] {
        let mut b = [0u8; CONFIG_SIZE];
        put(&mut b, 0, &self.sn_0_3);
        put(&mut b, 4, &self.revision);
        put(&mut b, 8, &self.sn_4_8);
        b[13] = self.aes_enable;
        b[14] = self.i2c_enable;
        b[15] = self.reserved_15;
        b[16] = self.i2c_address;
        b[17] = self.reserved_17;
        b[18] = self.count_match;
        b[19] = self.chip_mode.0;
        let mut i = 0;
        while i < SLOT_COUNT {
            put(&mut b, 20 + 2 * i, &self.slot_config[i].0.to_le_bytes());
            put(&mut b, 96 + 2 * i, &self.key_config[i].0.to_le_bytes());
            i += 1;
        }
        put(&mut b, 52, &self.counters[0].0);
        put(&mut b, 60, &self.counters[1].0);
        b[68] = self.use_lock;
        b[69] = self.volatile_key_permission;
        put(&mut b, 70, &self.secure_boot.to_le_bytes());
        b[72] = self.kdflv_loc;
        put(&mut b, 73, &self.kdflv_str);
        put(&mut b, 75, &self.reserved_75);
        b[84] = self.user_extra;
        b[85] = self.user_extra_add;
        b[86] = self.lock_value;
        b[87] = self.lock_config;
        put(&mut b, 88, &self.slot_locked.to_le_bytes());
        put(&mut b, 90, &self.chip_options.0.to_le_bytes());
        let mut j = 0;
        while j < 4 {
            b[92 + j] = self.x509_format[j].0;
            j += 1;
        }
        b
    }

    /// The 9-byte serial number (bytes 0–3 ‖ 8–12).
    pub const fn serial_number(&self) -> [u8; 9] {
        let a = self.sn_0_3;
        let c = self.sn_4_8;
        [a[0], a[1], a[2], a[3], c[0], c[1], c[2], c[3], c[4]]
    }

    /// 7-bit I2C address the chip answers at after power-up, taking ChipMode.I2C_UserExtraAdd
    /// and byte 85 into account.
    pub const fn i2c_address_7bit(&self) -> u8 {
        if self.chip_mode.user_extra_add() && self.user_extra_add != 0 {
            self.user_extra_add >> 1
        } else {
            self.i2c_address >> 1
        }
    }

    /// True for an ATECC608B (RevNum byte 3 above 0x02).
    pub const fn is_608b(&self) -> bool {
        self.revision[2] == 0x60 && self.revision[3] > 0x02
    }

    /// Config zone locked (byte 87 not 0x55).
    pub const fn config_locked(&self) -> bool {
        self.lock_config != UNLOCKED
    }

    /// Data and OTP zones locked (byte 86 not 0x55).
    pub const fn data_locked(&self) -> bool {
        self.lock_value != UNLOCKED
    }

    /// Slot individually locked (SlotLocked bit cleared).
    pub const fn slot_is_locked(&self, slot: usize) -> bool {
        slot < SLOT_COUNT && self.slot_locked & (1 << slot) == 0
    }

    /// Value of counter 0 or 1, `None` if the stored bytes are not a valid encoding.
    pub const fn counter(&self, id: usize) -> Option<u32> {
        if id < 2 {
            self.counters[id].value()
        } else {
            None
        }
    }

    /// The CRC the Lock command expects for the config zone: CRC-16 over all 128 bytes as they
    /// are (with LockConfig still 0x55). Compute it on bytes read back from the chip.
    pub const fn lock_crc(&self) -> u16 {
        crc16(&self.to_bytes())
    }

    /// First byte offset inside the writable region (16–83, 88–127, i.e. every byte Write can
    /// set) where `self` and `target` differ; `None` when they agree.
    pub fn first_writable_difference(&self, target: &ConfigZone) -> Option<usize> {
        let a = self.to_bytes();
        let b = target.to_bytes();
        (16..CONFIG_SIZE)
            .filter(|i| !(84..88).contains(i))
            .find(|&i| a.get(i) != b.get(i))
    }

    /// First byte offset where `self` and `target` differ in what cryptoauthlib compares before
    /// locking (16–51, 68–83, 90–127: counters and SlotLocked change with use), or in
    /// UserExtra/UserExtraAdd when the target sets them.
    pub fn first_setting_difference(&self, target: &ConfigZone) -> Option<usize> {
        let a = self.to_bytes();
        let b = target.to_bytes();
        let extra = [(84usize, target.user_extra), (85, target.user_extra_add)];
        (16..52)
            .chain(68..84)
            .chain(90..CONFIG_SIZE)
            .find(|&i| a.get(i) != b.get(i))
            .or_else(|| {
                extra
                    .into_iter()
                    .find(|&(i, v)| v != 0 && a.get(i) != Some(&v))
                    .map(|x| x.0)
            })
    }

    /// Size in bytes of each slot.
    pub const fn slot_size(slot: usize) -> usize {
        slot_size(slot)
    }
}

const fn put(dst: &mut [u8; CONFIG_SIZE], at: usize, src: &[u8]) {
    let mut i = 0;
    while i < src.len() {
        dst[at + i] = src[i];
        i += 1;
    }
}

/// One step of programming a config zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigWriteOp {
    /// A 4-byte clear Write.
    Word {
        /// Config address.
        addr: ZoneAddr,
        /// Byte offset in the zone.
        offset: u8,
        /// Bytes.
        data: [u8; 4],
    },
    /// A 32-byte clear Write.
    Block {
        /// Config address.
        addr: ZoneAddr,
        /// Byte offset in the zone.
        offset: u8,
        /// Bytes.
        data: [u8; 32],
    },
    /// UpdateExtra for byte 84 or 85 (only emitted for non-zero target values).
    UpdateExtra(UpdateExtra),
}

impl ConfigWriteOp {
    /// The Write data, if this is a Write.
    pub fn write_data(&self) -> Option<WriteData<'_>> {
        match self {
            ConfigWriteOp::Word { data, .. } => Some(WriteData::Word(data)),
            ConfigWriteOp::Block { data, .. } => Some(WriteData::Block(data)),
            ConfigWriteOp::UpdateExtra(_) => None,
        }
    }
}

/// The layout of the writes: (offset, 32-byte?) — block 0 words 4–7, block 1 whole, block 2
/// words 0–4 and 6–7 (word 5 holds 84–87: UserExtra, UserExtraAdd and the lock bytes, which
/// Write cannot set), block 3 whole. Same split as cryptoauthlib `calib_write_config_zone`.
const WRITE_PLAN: [(u8, bool); 13] = [
    (16, false),
    (20, false),
    (24, false),
    (28, false),
    (32, true),
    (64, false),
    (68, false),
    (72, false),
    (76, false),
    (80, false),
    (88, false),
    (92, false),
    (96, true),
];

/// Number of Write operations `config_write_ops` yields before any UpdateExtra.
pub const CONFIG_WRITE_COUNT: usize = WRITE_PLAN.len();

/// The Write operations that program `target` on a blank (config-unlocked) chip: every byte
/// Write can set (16–83, 88–127) in 4- and 32-byte writes, then UpdateExtra for bytes 84/85
/// when the target sets them non-zero. Bytes 0–15 (factory) and 86–87 (lock bytes) are never
/// written.
pub fn config_write_ops(target: &ConfigZone) -> impl Iterator<Item = ConfigWriteOp> {
    let bytes = target.to_bytes();
    let writes = WRITE_PLAN.into_iter().filter_map(move |(offset, block)| {
        let off = offset as usize;
        // The plan only holds offsets inside the zone, so the address is always valid.
        let addr = ZoneAddr::config((off / 32) as u8, ((off % 32) / 4) as u8).ok()?;
        if block {
            let data: [u8; 32] = bytes.get(off..off + 32)?.try_into().ok()?;
            Some(ConfigWriteOp::Block { addr, offset, data })
        } else {
            let data: [u8; 4] = bytes.get(off..off + 4)?.try_into().ok()?;
            Some(ConfigWriteOp::Word { addr, offset, data })
        }
    });
    let extras = [
        (target.user_extra != 0).then_some(ConfigWriteOp::UpdateExtra(UpdateExtra::UserExtra(
            target.user_extra,
        ))),
        (target.user_extra_add != 0).then_some(ConfigWriteOp::UpdateExtra(
            UpdateExtra::UserExtraAdd(target.user_extra_add),
        )),
    ];
    writes.chain(extras.into_iter().flatten())
}

/// Why a data-zone lock CRC could not be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DataCrcError {
    /// A non-private slot's contents are not exactly the slot's size.
    SlotLength {
        /// Slot number.
        slot: u8,
        /// Bytes given.
        len: usize,
    },
}

/// The CRC the Lock(data) command expects: CRC-16 over the full contents of every slot whose
/// KeyConfig.Private is 0, in slot order, then the 64 OTP bytes. Contents of private-key slots
/// are ignored (pass an empty slice). Before the data lock the chip does not let you read the
/// data zone back, so the caller supplies what it wrote (or the known factory contents).
pub fn data_lock_crc(
    config: &ConfigZone,
    slots: &[&[u8]; SLOT_COUNT],
    otp: &[u8; OTP_SIZE],
) -> Result<u16, DataCrcError> {
    let mut crc = Crc16::new();
    for (i, (contents, key)) in slots.iter().zip(config.key_config.iter()).enumerate() {
        if key.private() {
            continue;
        }
        if contents.len() != slot_size(i) {
            return Err(DataCrcError::SlotLength {
                slot: i as u8,
                len: contents.len(),
            });
        }
        crc = crc.update(contents);
    }
    Ok(crc.update(otp).value())
}

// The lock-byte constants name the bytes `ConfigZone` reads its lock state from.
const _: () = {
    let mut b = [UNLOCKED; CONFIG_SIZE];
    b[LOCK_CONFIG_BYTE] = LOCKED;
    let z = ConfigZone::from_bytes(&b);
    assert!(z.config_locked() && !z.data_locked());
    let mut b = [UNLOCKED; CONFIG_SIZE];
    b[LOCK_VALUE_BYTE] = LOCKED;
    let z = ConfigZone::from_bytes(&b);
    assert!(!z.config_locked() && z.data_locked());
};
