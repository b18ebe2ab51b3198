//! Command execution: parses a checked command group and applies it to the chip's state with the
//! lock-state matrix and slot policies of reference §6.3–§6.4.
//!
//! Every rule carries its reference tag in a comment; rules the reference marks [INF] are the
//! emulator's documented choice, listed in `docs/atecc-sim.md`.

use crate::config::{self, COUNTER_MAX, ConfigZone, WritePolicy, slot_size};
use crate::state::NvState;
use crate::timing::opcode::*;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{NonZeroScalar, PublicKey, SecretKey};
use rand::RngCore;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// Status codes of 4-byte response groups (reference §2.5).
pub mod status {
    /// Success.
    pub const SUCCESS: u8 = 0x00;
    /// Verify / CheckMac miscompare.
    pub const MISCOMPARE: u8 = 0x01;
    /// Parse error.
    pub const PARSE_ERROR: u8 = 0x03;
    /// ECC fault.
    pub const ECC_FAULT: u8 = 0x05;
    /// Self-test error.
    pub const SELF_TEST_ERROR: u8 = 0x07;
    /// Execution error.
    pub const EXECUTION_ERROR: u8 = 0x0F;
    /// After wake, before the first command.
    pub const AFTER_WAKE: u8 = 0x11;
    /// Watchdog about to expire; command not executed.
    pub const WATCHDOG: u8 = 0xEE;
    /// CRC or other communication error.
    pub const COMM_ERROR: u8 = 0xFF;
}
use status::*;

/// A command group after count and CRC checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Opcode.
    pub opcode: u8,
    /// Param1 (mode / zone).
    pub param1: u8,
    /// Param2 (little-endian on the wire).
    pub param2: u16,
    /// Data bytes.
    pub data: Vec<u8>,
}

impl Command {
    /// Splits a CRC-checked group `count | opcode | p1 | p2 | data | crc` (count ≥ 7).
    pub fn from_group(group: &[u8]) -> Option<Self> {
        if group.len() < 7 {
            return None;
        }
        Some(Self {
            opcode: group[1],
            param1: group[2],
            param2: u16::from_le_bytes([group[3], group[4]]),
            data: group[5..group.len() - 2].to_vec(),
        })
    }
}

/// TempKey with its flags (reference §4.2 Sign-internal and §6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TempKey {
    /// 64-byte register; most commands use the first 32 bytes.
    pub value: [u8; 64],
    /// `TempKey.Valid`.
    pub valid: bool,
    /// Holds 64 meaningful bytes (Nonce fixed 64).
    pub is_64: bool,
    /// `TempKey.KeyID`.
    pub key_id: u8,
    /// `TempKey.SourceFlag`: false = random (Nonce random mode), true = input.
    pub source_input: bool,
    /// `TempKey.GenDigData`.
    pub gen_dig: bool,
    /// `TempKey.GenKeyData`.
    pub gen_key: bool,
    /// `TempKey.NoMacFlag`.
    pub no_mac: bool,
    /// Holds a P-256 private key from GenKey with KeyID 0xFFFF.
    pub private_key: bool,
}

impl Default for TempKey {
    fn default() -> Self {
        Self {
            value: [0; 64],
            valid: false,
            is_64: false,
            key_id: 0,
            source_input: false,
            gen_dig: false,
            gen_key: false,
            no_mac: false,
            private_key: false,
        }
    }
}

impl TempKey {
    /// The flag byte of the Sign-internal message and of Info(State).
    pub fn flags(&self) -> u8 {
        (self.key_id & 0x0F)
            | (u8::from(self.source_input) << 4)
            | (u8::from(self.gen_dig) << 5)
            | (u8::from(self.gen_key) << 6)
            | (u8::from(self.no_mac) << 7)
    }
}

/// State the chip loses on Sleep, watchdog expiry and power loss, and keeps across Idle
/// (reference §1.3, §6.1).
#[derive(Clone, Debug, Default)]
pub struct Volatile {
    /// TempKey.
    pub tempkey: TempKey,
    /// Message digest buffer (64 bytes), if valid.
    pub msg_dig: Option<[u8; 64]>,
    /// Alternate key buffer, if valid.
    pub alt_key: Option<[u8; 32]>,
    /// SHA context between Start and End.
    pub sha: Option<Sha256>,
}

/// Result of executing one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Response payload (a single status byte, or data).
    pub payload: Vec<u8>,
    /// The command changed non-volatile state.
    pub nv_changed: bool,
    /// The command or mode exists on a real chip but is not modelled; answered with 0x03.
    pub unsupported: bool,
}

type Res = Result<Vec<u8>, u8>;

fn ok() -> Res {
    Ok(vec![SUCCESS])
}

/// Everything a command may touch.
pub struct Exec<'a> {
    /// Non-volatile state.
    pub nv: &'a mut NvState,
    /// Volatile state.
    pub vol: &'a mut Volatile,
    /// The chip's random generator.
    pub rng: &'a mut ChaCha20Rng,
    /// Volatile key permit latch (Info mode 4).
    pub latch: &'a mut bool,
    nv_changed: bool,
    unsupported: bool,
}

impl<'a> Exec<'a> {
    /// Bundles the state for one command.
    pub fn new(
        nv: &'a mut NvState,
        vol: &'a mut Volatile,
        rng: &'a mut ChaCha20Rng,
        latch: &'a mut bool,
    ) -> Self {
        Self {
            nv,
            vol,
            rng,
            latch,
            nv_changed: false,
            unsupported: false,
        }
    }

    /// Executes `cmd` and returns the response payload.
    pub fn run(mut self, cmd: &Command) -> Outcome {
        let res = match cmd.opcode {
            INFO => self.info(cmd),
            READ => self.read(cmd),
            WRITE => self.write(cmd),
            LOCK => self.lock(cmd),
            GEN_KEY => self.genkey(cmd),
            SIGN => self.sign(cmd),
            VERIFY => self.verify(cmd),
            NONCE => self.nonce(cmd),
            RANDOM => self.random(cmd),
            SHA => self.sha(cmd),
            SELF_TEST => self.self_test(cmd),
            COUNTER => self.counter(cmd),
            ECDH => self.ecdh(cmd),
            UPDATE_EXTRA => self.update_extra(cmd),
            PRIV_WRITE => self.priv_write(cmd),
            AES | CHECK_MAC | DERIVE_KEY | GEN_DIG | KDF | MAC | SECURE_BOOT => self.unsupported(),
            _ => Err(PARSE_ERROR),
        };
        Outcome {
            payload: res.unwrap_or_else(|code| vec![code]),
            nv_changed: self.nv_changed,
            unsupported: self.unsupported,
        }
    }

    fn unsupported(&mut self) -> Res {
        self.unsupported = true;
        Err(PARSE_ERROR)
    }

    fn cfg(&self) -> &[u8; config::CONFIG_SIZE] {
        &self.nv.config
    }

    /// 32 random bytes; before the config lock the RNG is not running and the chip returns the
    /// `FF FF 00 00` test pattern (reference §4.2 Random, §6.3 [DS/CAL]).
    fn random_bytes(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if self.cfg().config_locked() {
            self.rng.fill_bytes(&mut out);
        } else {
            for chunk in out.chunks_mut(4) {
                chunk.copy_from_slice(&[0xFF, 0xFF, 0x00, 0x00]);
            }
        }
        out
    }

    fn new_private_key(&mut self) -> SecretKey {
        loop {
            let mut bytes = [0u8; 32];
            self.rng.fill_bytes(&mut bytes);
            if let Ok(key) = SecretKey::from_slice(&bytes) {
                return key;
            }
        }
    }

    /// The private key stored in a slot (`00 00 00 00 ‖ scalar`), if it is a valid scalar.
    fn slot_private_key(&self, slot: usize) -> Option<SecretKey> {
        SecretKey::from_slice(&self.nv.slot(slot)[4..36]).ok()
    }

    fn store_private_key(&mut self, slot: usize, key: &SecretKey) {
        let dst = &mut self.nv.slots[slot];
        dst[..4].fill(0);
        dst[4..36].copy_from_slice(&key.to_bytes());
        self.nv_changed = true;
    }

    // ---------------------------------------------------------------- Info

    fn info(&mut self, c: &Command) -> Res {
        if !c.data.is_empty() {
            return Err(PARSE_ERROR);
        }
        match c.param1 {
            // Revision [CAL, HW].
            0x00 => Ok(self.nv.revision.rev_num().to_vec()),
            // KeyValid: for P-256 private-key slots, whether the slot holds a valid key [INF].
            0x01 => {
                let slot = usize::from(c.param2);
                if slot > 15 {
                    return Err(PARSE_ERROR);
                }
                let valid = self.cfg().key_config(slot).is_p256_private()
                    && self.slot_private_key(slot).is_some();
                Ok(vec![u8::from(valid), 0, 0, 0])
            }
            // State: TempKey flags, then TempKey.Valid in bit 7 of the second byte [INF].
            0x02 => {
                let tk = &self.vol.tempkey;
                Ok(vec![tk.flags(), u8::from(tk.valid) << 7, 0, 0])
            }
            // GPIO is a single-wire feature; on I2C parts it reads as zero [INF].
            0x03 => Ok(vec![0, 0, 0, 0]),
            // VolatileKeyPermit: bit1 of param2 sets the latch to bit0; needs the permission
            // enabled in config byte 69 bit 7 to set [INF].
            0x04 => {
                if c.param2 & 0x02 != 0 {
                    if self.cfg()[config::VOLATILE_KEY_PERMISSION] & 0x80 == 0 {
                        return Err(EXECUTION_ERROR);
                    }
                    *self.latch = c.param2 & 0x01 != 0;
                }
                Ok(vec![u8::from(*self.latch), 0, 0, 0])
            }
            _ => Err(PARSE_ERROR),
        }
    }

    // ---------------------------------------------------------------- Read / Write

    fn read(&mut self, c: &Command) -> Res {
        if c.param1 & !0x83 != 0 || !c.data.is_empty() {
            return Err(PARSE_ERROR);
        }
        let len = if c.param1 & 0x80 != 0 { 32 } else { 4 };
        let addr = usize::from(c.param2);
        match c.param1 & 0x03 {
            0 => {
                // Config reads are allowed in every lock state [§6.3].
                if addr & !0x1F != 0 {
                    return Err(PARSE_ERROR);
                }
                let off = zone_offset(addr, len);
                Ok(self.cfg()[off..off + len].to_vec())
            }
            1 => {
                // OTP reads before the data lock → 0x0F [§6.3 INF].
                if !self.cfg().data_locked() {
                    return Err(EXECUTION_ERROR);
                }
                if addr & !0x0F != 0 {
                    return Err(PARSE_ERROR);
                }
                let off = zone_offset(addr, len);
                Ok(self.nv.otp[off..off + len].to_vec())
            }
            2 => {
                let (slot, block, word) = data_address(addr);
                if block > 12 {
                    return Err(PARSE_ERROR);
                }
                // Data reads need both locks [§6.3 CAL test `read_zone`].
                if !self.cfg().config_locked() || !self.cfg().data_locked() {
                    return Err(EXECUTION_ERROR);
                }
                let kc = self.cfg().key_config(slot);
                let sc = self.cfg().slot_config(slot);
                // Private keys never leave the chip; secret slots need EncryptRead with a
                // GenDig TempKey, which is not modelled, so they are refused too [§6.4].
                if kc.private() || sc.is_secret() {
                    return Err(EXECUTION_ERROR);
                }
                let size = slot_size(slot);
                let off = block * 32 + if len == 4 { word * 4 } else { 0 };
                if off >= size || (len == 4 && off + 4 > size) {
                    return Err(EXECUTION_ERROR);
                }
                // A 32-byte read of a partial last block answers 32 bytes [CAL calib_read_pubkey];
                // bytes past the slot read as zero [INF].
                let mut out = vec![0u8; len];
                let avail = (size - off).min(len);
                out[..avail].copy_from_slice(&self.nv.slot(slot)[off..off + avail]);
                Ok(out)
            }
            _ => Err(PARSE_ERROR),
        }
    }

    fn write(&mut self, c: &Command) -> Res {
        if c.param1 & !0xC3 != 0 {
            return Err(PARSE_ERROR);
        }
        let is32 = c.param1 & 0x80 != 0;
        let encrypted = c.param1 & 0x40 != 0;
        let len = if is32 { 32 } else { 4 };
        // MAC only with 32-byte writes [CAL].
        if encrypted && !is32 {
            return Err(PARSE_ERROR);
        }
        if c.data.len() != len + if encrypted { 32 } else { 0 } {
            return Err(PARSE_ERROR);
        }
        let value = &c.data[..len];
        let addr = usize::from(c.param2);
        match c.param1 & 0x03 {
            0 => {
                if addr & !0x1F != 0 {
                    return Err(PARSE_ERROR);
                }
                // Config writes only before the config lock [§6.3].
                if self.cfg().config_locked() || encrypted {
                    return Err(EXECUTION_ERROR);
                }
                let off = zone_offset(addr, len);
                // Bytes 0–15 are factory, 84–87 change only via UpdateExtra/Lock [§5.1 INF].
                if !(off..off + len).all(config::is_config_byte_writable) {
                    return Err(EXECUTION_ERROR);
                }
                self.nv.config[off..off + len].copy_from_slice(value);
                self.nv_changed = true;
                ok()
            }
            1 => {
                if addr & !0x0F != 0 {
                    return Err(PARSE_ERROR);
                }
                // OTP: 32-byte clear writes between the two locks [§6.3 INF].
                if !self.cfg().config_locked() || self.cfg().data_locked() || !is32 || encrypted {
                    return Err(EXECUTION_ERROR);
                }
                let off = zone_offset(addr, 32);
                self.nv.otp[off..off + 32].copy_from_slice(value);
                self.nv_changed = true;
                ok()
            }
            2 => {
                let (slot, block, word) = data_address(addr);
                if block > 12 {
                    return Err(PARSE_ERROR);
                }
                // No data write before the config lock [§6.3 forum answer].
                if !self.cfg().config_locked() {
                    return Err(EXECUTION_ERROR);
                }
                let kc = self.cfg().key_config(slot);
                let sc = self.cfg().slot_config(slot);
                // Private-key slots take keys only through GenKey / PrivWrite [§6.3 CAL tests,
                // §6.4].
                if kc.private() {
                    return Err(EXECUTION_ERROR);
                }
                // Encrypted writes need a GenDig TempKey, which is not modelled [§6.4].
                if encrypted {
                    return Err(EXECUTION_ERROR);
                }
                let size = slot_size(slot);
                if !self.cfg().data_locked() {
                    // Before the data lock: 32-byte clear writes only; excess past the end of
                    // the slot is ignored [§3 CAL test write_invalid_block_len, §6.3].
                    if !is32 {
                        return Err(EXECUTION_ERROR);
                    }
                    let off = block * 32;
                    if off >= size {
                        return Err(EXECUTION_ERROR);
                    }
                    let n = (size - off).min(32);
                    self.nv.slots[slot][off..off + n].copy_from_slice(&value[..n]);
                    self.nv_changed = true;
                    return ok();
                }
                // After the data lock: SlotLocked, then WriteConfig [§6.4].
                if !self.cfg().slot_unlocked(slot) {
                    return Err(EXECUTION_ERROR);
                }
                match sc.write_policy() {
                    WritePolicy::Always => {}
                    // PubInvalid needs an invalidated public key (Verify invalidate is not
                    // modelled); Never and Encrypt refuse clear writes.
                    WritePolicy::PubInvalid | WritePolicy::Never | WritePolicy::Encrypt => {
                        return Err(EXECUTION_ERROR);
                    }
                }
                let off = block * 32 + if is32 { 0 } else { word * 4 };
                if off >= size || (!is32 && off + 4 > size) {
                    return Err(EXECUTION_ERROR);
                }
                let n = (size - off).min(len);
                self.nv.slots[slot][off..off + n].copy_from_slice(&value[..n]);
                self.nv_changed = true;
                ok()
            }
            _ => Err(PARSE_ERROR),
        }
    }

    // ---------------------------------------------------------------- Lock

    fn lock(&mut self, c: &Command) -> Res {
        // Bit 6 must be 0 (mask 0xBF) [CAL].
        if c.param1 & 0x40 != 0 || !c.data.is_empty() {
            return Err(PARSE_ERROR);
        }
        let check_crc = c.param1 & 0x80 == 0;
        match c.param1 & 0x03 {
            0 => {
                if self.cfg().config_locked() {
                    return Err(EXECUTION_ERROR);
                }
                // Summary CRC over all 128 config bytes as they are [§6.3 RS, CAL].
                if check_crc && crate::crc::crc16(self.cfg()) != c.param2 {
                    return Err(EXECUTION_ERROR);
                }
                self.nv.config[config::LOCK_CONFIG] = 0x00;
                self.nv_changed = true;
                ok()
            }
            1 => {
                if !self.cfg().config_locked() || self.cfg().data_locked() {
                    return Err(EXECUTION_ERROR);
                }
                if check_crc && data_zone_crc(self.nv) != c.param2 {
                    return Err(EXECUTION_ERROR);
                }
                self.nv.config[config::LOCK_VALUE] = 0x00;
                self.nv_changed = true;
                ok()
            }
            2 => {
                let slot = usize::from((c.param1 >> 2) & 0x0F);
                if !self.cfg().config_locked() || !self.cfg().data_locked() {
                    return Err(EXECUTION_ERROR);
                }
                // Lockable and not yet locked; the CRC is not checked (cryptoauthlib sends 0 and
                // passes on hardware) [§6.3 CAL calib_lock_data_slot, issue #370].
                if !self.cfg().key_config(slot).lockable() || !self.cfg().slot_unlocked(slot) {
                    return Err(EXECUTION_ERROR);
                }
                let word = u16::from_le_bytes([
                    self.nv.config[config::SLOT_LOCKED],
                    self.nv.config[config::SLOT_LOCKED + 1],
                ]) & !(1 << slot);
                self.nv.config[config::SLOT_LOCKED..config::SLOT_LOCKED + 2]
                    .copy_from_slice(&word.to_le_bytes());
                self.nv_changed = true;
                ok()
            }
            _ => Err(PARSE_ERROR),
        }
    }

    // ---------------------------------------------------------------- GenKey

    fn genkey(&mut self, c: &Command) -> Res {
        let mode = c.param1;
        // Modes 0x00, 0x04, 0x08, 0x0C, 0x10 [CAL GENKEY_*].
        if mode & !0x1C != 0 || (mode & 0x10 != 0 && mode & 0x0C != 0) {
            return Err(PARSE_ERROR);
        }
        if !(c.data.is_empty() || c.data.len() == 3) || (mode == 0x10 && c.data.len() != 3) {
            return Err(PARSE_ERROR);
        }
        // GenKey needs the config lock [§6.3].
        if !self.cfg().config_locked() {
            return Err(EXECUTION_ERROR);
        }
        let key_id = c.param2;
        if mode & 0x04 != 0 && key_id == 0xFFFF {
            // Private key into TempKey (608) [§4.2].
            if mode & 0x08 != 0 {
                return Err(PARSE_ERROR);
            }
            let key = self.new_private_key();
            let tk = &mut self.vol.tempkey;
            *tk = TempKey::default();
            tk.value[..32].copy_from_slice(&key.to_bytes());
            tk.valid = true;
            tk.gen_key = true;
            tk.private_key = true;
            return Ok(public_key_bytes(&key.public_key()).to_vec());
        }
        if key_id > 15 {
            return Err(PARSE_ERROR);
        }
        let slot = usize::from(key_id);
        let kc = self.cfg().key_config(slot);
        let sc = self.cfg().slot_config(slot);
        if mode == 0x10 {
            // Digest of a stored public key into TempKey.
            if kc.private() || kc.key_type() != 4 || !self.vol.tempkey.valid {
                return Err(EXECUTION_ERROR);
            }
            let public = padded_public_key(self.nv.slot(slot));
            self.genkey_digest(mode, key_id, &c.data, &public);
            return ok();
        }
        let public = if mode & 0x04 != 0 {
            // Private P-256 slot; once data is locked also WriteConfig GenKey bit and not
            // slot-locked; ReqRandom does not block it [§6.3, §6.4 DS/HW].
            if !kc.is_p256_private() {
                return Err(EXECUTION_ERROR);
            }
            if self.cfg().data_locked()
                && (sc.write_config() & 0x2 == 0 || !self.cfg().slot_unlocked(slot))
            {
                return Err(EXECUTION_ERROR);
            }
            let key = self.new_private_key();
            self.store_private_key(slot, &key);
            public_key_bytes(&key.public_key())
        } else {
            // Public key of a stored private key: Private=1 and PubInfo=1 [§6.3 DS TNGTLS].
            if !kc.is_p256_private() || !kc.pub_info() {
                return Err(EXECUTION_ERROR);
            }
            // A slot without a valid scalar cannot produce a point [INF].
            let key = self.slot_private_key(slot).ok_or(ECC_FAULT)?;
            public_key_bytes(&key.public_key())
        };
        if mode & 0x08 != 0 {
            // The digest folds in TempKey, so it must be valid [CAL atcah_gen_key_msg].
            if !self.vol.tempkey.valid {
                return Err(EXECUTION_ERROR);
            }
            self.genkey_digest(mode, key_id, &c.data, &public);
        }
        Ok(public.to_vec())
    }

    /// PubKey digest into TempKey: SHA-256 over `TempKey[32] ‖ 0x40 ‖ (mode ‖ KeyID | OtherData)
    /// ‖ SN[8] ‖ SN[0..2] ‖ 25 zeros ‖ X ‖ Y` [§4.2 CAL atcah_gen_key_msg].
    fn genkey_digest(&mut self, mode: u8, key_id: u16, other: &[u8], public: &[u8; 64]) {
        let sn = config::serial_number(self.cfg());
        let mut msg = [0u8; 128];
        msg[..32].copy_from_slice(&self.vol.tempkey.value[..32]);
        msg[32] = GEN_KEY;
        if mode & 0x10 != 0 {
            msg[33..36].copy_from_slice(other);
        } else {
            msg[33] = mode;
            msg[34..36].copy_from_slice(&key_id.to_le_bytes());
        }
        msg[36] = sn[8];
        msg[37..39].copy_from_slice(&sn[0..2]);
        msg[64..].copy_from_slice(public);
        let digest = Sha256::digest(msg);
        let tk = &mut self.vol.tempkey;
        tk.value = [0; 64];
        tk.value[..32].copy_from_slice(&digest);
        tk.valid = true;
        tk.is_64 = false;
        tk.gen_key = true;
        tk.gen_dig = false;
        tk.private_key = false;
        tk.key_id = (key_id & 0x0F) as u8;
    }

    // ---------------------------------------------------------------- Sign / Verify

    fn message_source(&self, msg_dig: bool) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        if msg_dig {
            out.copy_from_slice(&self.vol.msg_dig.as_ref()?[..32]);
        } else {
            if !self.vol.tempkey.valid {
                return None;
            }
            out.copy_from_slice(&self.vol.tempkey.value[..32]);
        }
        Some(out)
    }

    fn sign(&mut self, c: &Command) -> Res {
        // Mask 0xE1 [CAL]; the datasheets list 0x80 or 0xC0 (TempKey) for external signing, so
        // bit 6 is accepted and ignored there; bit 0 belongs to internal signing.
        let external = c.param1 & 0x80 != 0;
        if c.param1 & !0xE1 != 0 || (external && c.param1 & 0x01 != 0) || !c.data.is_empty() {
            return Err(PARSE_ERROR);
        }
        if c.param2 > 15 {
            return Err(PARSE_ERROR);
        }
        let slot = usize::from(c.param2);
        // Sign needs both locks [§6.3 INF, cryptoauthlib tests require the data lock].
        if !self.cfg().config_locked() || !self.cfg().data_locked() {
            return Err(EXECUTION_ERROR);
        }
        let kc = self.cfg().key_config(slot);
        let read_key = self.cfg().slot_config(slot).read_key();
        let allowed = if external {
            read_key & 0x1 != 0
        } else {
            read_key & 0x2 != 0
        };
        if !kc.is_p256_private() || !allowed {
            return Err(EXECUTION_ERROR);
        }
        let source = self
            .message_source(c.param1 & 0x20 != 0)
            .ok_or(EXECUTION_ERROR)?;
        let digest: [u8; 32] = if external {
            source
        } else {
            // Internal signing signs a message about a TempKey from GenKey/GenDig [§6.4 DS].
            let tk = &self.vol.tempkey;
            if !(tk.valid && (tk.gen_key || tk.gen_dig)) {
                return Err(EXECUTION_ERROR);
            }
            Sha256::digest(self.internal_sign_message(c.param1, c.param2, &source)).into()
        };
        let key = self.slot_private_key(slot).ok_or(ECC_FAULT)?;
        Ok(self.ecdsa_sign(&key, &digest).to_vec())
    }

    /// The 55-byte Sign-internal message [§4.2 CAL atcah_sign_internal_msg].
    fn internal_sign_message(&self, mode: u8, key_id: u16, source: &[u8; 32]) -> [u8; 55] {
        let cfg = self.cfg();
        let tk = &self.vol.tempkey;
        let tk_slot = usize::from(tk.key_id & 0x0F);
        let sn = config::serial_number(cfg);
        let full_sn = mode & 0x40 != 0;
        let mut m = [0u8; 55];
        m[..32].copy_from_slice(source);
        m[32] = SIGN;
        m[33] = mode;
        m[34..36].copy_from_slice(&key_id.to_le_bytes());
        m[36..38].copy_from_slice(&cfg.slot_config(tk_slot).0.to_le_bytes());
        m[38..40].copy_from_slice(&cfg.key_config(tk_slot).0.to_le_bytes());
        m[40] = tk.flags();
        // m[41..43] = 00 00
        m[43] = sn[8];
        if full_sn {
            m[44..48].copy_from_slice(&sn[4..8]);
        }
        m[48..50].copy_from_slice(&sn[0..2]);
        if full_sn {
            m[50..52].copy_from_slice(&sn[2..4]);
        }
        m[52] = if cfg.slot_unlocked(tk_slot) {
            0x01
        } else {
            0x00
        };
        m[53] = 0x00; // PubKeyValid: validated public keys are not modelled.
        m[54] = 0x00;
        m
    }

    /// ECDSA with a per-signature nonce from the chip's generator (like the chip, not RFC 6979).
    fn ecdsa_sign(&mut self, key: &SecretKey, digest: &[u8; 32]) -> [u8; 64] {
        let d = key.to_nonzero_scalar();
        loop {
            let mut k_bytes = [0u8; 32];
            self.rng.fill_bytes(&mut k_bytes);
            let Some(k) = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr(k_bytes.into()))
            else {
                continue;
            };
            if let Ok((sig, _)) = ecdsa::hazmat::sign_prehashed::<p256::NistP256>(&d, &k, digest) {
                let mut out = [0u8; 64];
                out.copy_from_slice(&sig.to_bytes());
                return out;
            }
        }
    }

    fn verify(&mut self, c: &Command) -> Res {
        // bits 2:0 mode, bit 5 source, bit 7 MAC output [CAL calib_verify*].
        if c.param1 & 0x58 != 0 {
            return Err(PARSE_ERROR);
        }
        let mode = c.param1 & 0x07;
        if c.param1 & 0x80 != 0 {
            return self.unsupported();
        }
        let (sig, public) = match mode {
            0x02 => {
                // External: key type 0x0004 = P-256, data = sig ‖ pubkey.
                if c.param2 != 0x0004 || c.data.len() != 128 {
                    return Err(PARSE_ERROR);
                }
                // Needs the config lock [§6.3 INF].
                if !self.cfg().config_locked() {
                    return Err(EXECUTION_ERROR);
                }
                let mut pk = [0u8; 64];
                pk.copy_from_slice(&c.data[64..]);
                (&c.data[..64], pk)
            }
            0x00 => {
                // Stored: the public key in a slot; data = sig.
                if c.param2 > 15 || c.data.len() != 64 {
                    return Err(PARSE_ERROR);
                }
                if !self.cfg().config_locked() || !self.cfg().data_locked() {
                    return Err(EXECUTION_ERROR);
                }
                let slot = usize::from(c.param2);
                let kc = self.cfg().key_config(slot);
                // A public P-256 slot; with PubInfo=1 the key must have been validated, which
                // is not modelled [§5.3, §6.4].
                if kc.private() || kc.key_type() != 4 || kc.pub_info() {
                    return Err(EXECUTION_ERROR);
                }
                let stored = self.nv.slot(slot);
                let pk = if stored.len() >= 72 {
                    padded_public_key(stored)
                } else {
                    let mut pk = [0u8; 64];
                    pk[..32].copy_from_slice(&stored[..32]);
                    pk
                };
                (&c.data[..64], pk)
            }
            0x01 | 0x03 | 0x07 => return self.unsupported(),
            _ => return Err(PARSE_ERROR),
        };
        let digest = self
            .message_source(c.param1 & 0x20 != 0)
            .ok_or(EXECUTION_ERROR)?;
        let key = parse_public_key(&public).ok_or(EXECUTION_ERROR)?;
        let Ok(signature) = p256::ecdsa::Signature::from_slice(sig) else {
            return Err(MISCOMPARE);
        };
        let point = key.to_projective();
        match ecdsa::hazmat::verify_prehashed::<p256::NistP256>(&point, &digest, &signature) {
            Ok(()) => ok(),
            Err(_) => Err(MISCOMPARE),
        }
    }

    // ---------------------------------------------------------------- Nonce / Random / SHA

    fn nonce(&mut self, c: &Command) -> Res {
        let mode = c.param1 & 0x03;
        let input64 = c.param1 & 0x20 != 0;
        let target = c.param1 >> 6;
        if c.param1 & 0x1C != 0 || target == 3 || mode == 2 {
            return Err(PARSE_ERROR);
        }
        if mode == 3 {
            // Fixed / pass-through: 32 or 64 bytes into the target [§4.2 DS TNGTLS, CAL].
            let len = if input64 { 64 } else { 32 };
            if c.data.len() != len || (target == 2 && input64) {
                return Err(PARSE_ERROR);
            }
            match target {
                0 => {
                    let tk = &mut self.vol.tempkey;
                    *tk = TempKey::default();
                    tk.value[..len].copy_from_slice(&c.data);
                    tk.valid = true;
                    tk.is_64 = input64;
                    tk.source_input = true;
                }
                1 => {
                    let mut buf = [0u8; 64];
                    buf[..len].copy_from_slice(&c.data);
                    self.vol.msg_dig = Some(buf);
                }
                _ => {
                    let mut buf = [0u8; 32];
                    buf.copy_from_slice(&c.data);
                    self.vol.alt_key = Some(buf);
                }
            }
            return ok();
        }
        // Random modes: 20-byte NumIn, TempKey target [INF]; the 608 "calc mode" in param2 is not
        // modelled.
        if input64 || target != 0 || c.data.len() != 20 {
            return Err(PARSE_ERROR);
        }
        if c.param2 != 0 {
            return self.unsupported();
        }
        let rand_out = self.random_bytes();
        // TempKey = SHA-256(RandOut ‖ NumIn ‖ 0x16 ‖ mode ‖ 0x00) [§4.2 DS, CAL atcah_nonce].
        let mut h = Sha256::new();
        h.update(rand_out);
        h.update(&c.data);
        h.update([NONCE, c.param1, 0x00]);
        let digest = h.finalize();
        let tk = &mut self.vol.tempkey;
        *tk = TempKey::default();
        tk.value[..32].copy_from_slice(&digest);
        tk.valid = true;
        Ok(rand_out.to_vec())
    }

    fn random(&mut self, c: &Command) -> Res {
        if c.param1 > 1 || !c.data.is_empty() {
            return Err(PARSE_ERROR);
        }
        Ok(self.random_bytes().to_vec())
    }

    fn sha(&mut self, c: &Command) -> Res {
        let mode = c.param1 & 0x07;
        let target = c.param1 >> 6;
        if c.param1 & 0x38 != 0 || target == 2 {
            return Err(PARSE_ERROR);
        }
        match mode {
            0x00 => {
                if !c.data.is_empty() {
                    return Err(PARSE_ERROR);
                }
                self.vol.sha = Some(Sha256::new());
                ok()
            }
            0x01 => {
                // Update takes exactly one 64-byte block [§4.2 CAL].
                if c.data.len() != 64 || usize::from(c.param2) != 64 {
                    return Err(PARSE_ERROR);
                }
                let ctx = self.vol.sha.as_mut().ok_or(EXECUTION_ERROR)?;
                ctx.update(&c.data);
                ok()
            }
            0x02 => {
                if c.data.len() > 63 || usize::from(c.param2) != c.data.len() {
                    return Err(PARSE_ERROR);
                }
                let mut ctx = self.vol.sha.take().ok_or(EXECUTION_ERROR)?;
                ctx.update(&c.data);
                let digest: [u8; 32] = ctx.finalize().into();
                // Target 00 TempKey, 01 MsgDigBuf, 11 output only [CAL SHA_MODE_TARGET_*].
                match target {
                    0 => {
                        let tk = &mut self.vol.tempkey;
                        *tk = TempKey::default();
                        tk.value[..32].copy_from_slice(&digest);
                        tk.valid = true;
                        tk.source_input = true;
                    }
                    1 => {
                        let mut buf = [0u8; 64];
                        buf[..32].copy_from_slice(&digest);
                        self.vol.msg_dig = Some(buf);
                    }
                    _ => {}
                }
                Ok(digest.to_vec())
            }
            _ => self.unsupported(),
        }
    }

    // ---------------------------------------------------------------- SelfTest / Counter

    fn self_test(&mut self, c: &Command) -> Res {
        // Bitmap 0x01 RNG, 0x02 ECDSA, 0x08 ECDH, 0x10 AES, 0x20 SHA [CAL].
        if c.param1 & !0x3B != 0 || !c.data.is_empty() {
            return Err(PARSE_ERROR);
        }
        let mut failed = 0u8;
        if c.param1 & 0x20 != 0 && !sha_self_test() {
            failed |= 0x20;
        }
        if c.param1 & 0x0A != 0 && !ecc_self_test() {
            failed |= c.param1 & 0x0A;
        }
        Ok(vec![failed])
    }

    fn counter(&mut self, c: &Command) -> Res {
        if c.param1 > 1 || c.param2 > 1 || !c.data.is_empty() {
            return Err(PARSE_ERROR);
        }
        // Counter needs the config lock [§6.3 CAL test].
        if !self.cfg().config_locked() {
            return Err(EXECUTION_ERROR);
        }
        let id = usize::from(c.param2);
        let mut value = self.cfg().counter(id);
        if c.param1 == 1 {
            if value >= COUNTER_MAX {
                return Err(EXECUTION_ERROR);
            }
            value += 1;
            let off = config::COUNTER + 8 * id;
            self.nv.config[off..off + 8].copy_from_slice(&config::encode_counter(value));
            self.nv_changed = true;
        }
        Ok(value.to_le_bytes().to_vec())
    }

    // ---------------------------------------------------------------- ECDH

    fn ecdh(&mut self, c: &Command) -> Res {
        // bit0 source, bit1 encrypted output, bits 3:2 copy mode [§4.2].
        if c.param1 & 0xF0 != 0 || c.data.len() != 64 {
            return Err(PARSE_ERROR);
        }
        let from_tempkey = c.param1 & 0x01 != 0;
        let copy = (c.param1 >> 2) & 0x03;
        if c.param1 & 0x02 != 0 || copy == 1 {
            return self.unsupported();
        }
        if !self.cfg().config_locked() || !self.cfg().data_locked() {
            return Err(EXECUTION_ERROR);
        }
        let mut read_key = 0;
        let slot = usize::from(c.param2 & 0x0F);
        let key = if from_tempkey {
            let tk = &self.vol.tempkey;
            if !(tk.valid && tk.private_key) {
                return Err(EXECUTION_ERROR);
            }
            SecretKey::from_slice(&tk.value[..32]).map_err(|_| ECC_FAULT)?
        } else {
            if c.param2 > 15 {
                return Err(PARSE_ERROR);
            }
            let kc = self.cfg().key_config(slot);
            read_key = self.cfg().slot_config(slot).read_key();
            // Private P-256 slot with ReadKey bit 2 (ECDH permitted) [§6.4].
            if !kc.is_p256_private() || read_key & 0x4 == 0 {
                return Err(EXECUTION_ERROR);
            }
            self.slot_private_key(slot).ok_or(ECC_FAULT)?
        };
        let peer =
            parse_public_key(c.data[..64].try_into().unwrap_or(&[0; 64])).ok_or(EXECUTION_ERROR)?;
        let shared = key.diffie_hellman(&peer);
        let secret: [u8; 32] = (*shared.raw_secret_bytes()).into();
        match copy {
            0 if !from_tempkey && read_key & 0x8 != 0 => {
                // ReadKey bit 3: the secret goes to slot N|1 and only a status comes back; an odd
                // N would overwrite its own key [INF].
                if slot & 1 == 1 {
                    return Err(EXECUTION_ERROR);
                }
                self.nv.slots[slot | 1][..32].copy_from_slice(&secret);
                self.nv_changed = true;
                ok()
            }
            2 => {
                let tk = &mut self.vol.tempkey;
                *tk = TempKey::default();
                tk.value[..32].copy_from_slice(&secret);
                tk.valid = true;
                ok()
            }
            _ => {
                // Clear output unless ChipOptions ECDH protection asks otherwise [§6.4 INF].
                if self.cfg().ecdh_protection() != 0 {
                    return Err(EXECUTION_ERROR);
                }
                Ok(secret.to_vec())
            }
        }
    }

    // ---------------------------------------------------------------- UpdateExtra / PrivWrite

    fn update_extra(&mut self, c: &Command) -> Res {
        if !c.data.is_empty() {
            return Err(PARSE_ERROR);
        }
        let offset = match c.param1 {
            0x00 => config::USER_EXTRA,
            0x01 => config::USER_EXTRA_ADD,
            0x02 => return self.unsupported(),
            _ => return Err(PARSE_ERROR),
        };
        // Each byte is writable once, while it is still 0x00, in any lock state [§6.3, §6.4].
        if self.nv.config[offset] != 0 {
            return Err(EXECUTION_ERROR);
        }
        self.nv.config[offset] = (c.param2 & 0xFF) as u8;
        self.nv_changed = true;
        ok()
    }

    fn priv_write(&mut self, c: &Command) -> Res {
        if c.param1 & !0x40 != 0 || c.param2 > 15 || c.data.len() != 68 {
            return Err(PARSE_ERROR);
        }
        let slot = usize::from(c.param2);
        if !self.cfg().config_locked() || !self.cfg().key_config(slot).is_p256_private() {
            return Err(EXECUTION_ERROR);
        }
        // Clear PrivWrite only before the data lock; encrypted input needs a GenDig TempKey,
        // which is not modelled [INF].
        if self.cfg().data_locked() || c.param1 & 0x40 != 0 || c.data[..4] != [0; 4] {
            return Err(EXECUTION_ERROR);
        }
        let key = SecretKey::from_slice(&c.data[4..36]).map_err(|_| EXECUTION_ERROR)?;
        self.store_private_key(slot, &key);
        ok()
    }
}

/// Byte offset in the config or OTP zone: `block*32 + word*4`, word ignored for 32-byte access.
fn zone_offset(addr: usize, len: usize) -> usize {
    let block = addr >> 3;
    let word = addr & 0x07;
    block * 32 + if len == 32 { 0 } else { word * 4 }
}

/// Splits a data-zone address into (slot, block, word) [§3].
fn data_address(addr: usize) -> (usize, usize, usize) {
    ((addr >> 3) & 0x0F, addr >> 8, addr & 0x07)
}

/// X ‖ Y of a public key.
pub fn public_key_bytes(key: &PublicKey) -> [u8; 64] {
    let point = key.to_sec1_point(false);
    let mut out = [0u8; 64];
    out.copy_from_slice(&point.as_bytes()[1..65]);
    out
}

/// Parses X ‖ Y; `None` when the point is not on the curve.
pub fn parse_public_key(xy: &[u8; 64]) -> Option<PublicKey> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(xy);
    PublicKey::from_sec1_bytes(&sec1).ok()
}

/// X ‖ Y from the 72-byte padded slot layout `00000000 ‖ X ‖ 00000000 ‖ Y` [§3].
pub fn padded_public_key(slot: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    if slot.len() >= 72 {
        out[..32].copy_from_slice(&slot[4..36]);
        out[32..].copy_from_slice(&slot[40..72]);
    }
    out
}

/// CRC of the data zone for Lock(data): all slots at full size, skipping every slot with
/// `KeyConfig.Private` = 1, then the OTP zone [§6.3 CAL atcab_lock_data_zone_crc].
pub fn data_zone_crc(nv: &NvState) -> u16 {
    let mut all = Vec::with_capacity(1400);
    for slot in 0..config::SLOT_COUNT {
        if !nv.config.key_config(slot).private() {
            all.extend_from_slice(nv.slot(slot));
        }
    }
    all.extend_from_slice(&nv.otp);
    crate::crc::crc16(&all)
}

fn sha_self_test() -> bool {
    // FIPS 180-2 "abc".
    let expected =
        hex::decode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad").ok();
    expected.as_deref() == Some(Sha256::digest(b"abc").as_slice())
}

fn ecc_self_test() -> bool {
    let Ok(key) = SecretKey::from_slice(&[0x11; 32]) else {
        return false;
    };
    let d = key.to_nonzero_scalar();
    let Some(k) = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr([0x22; 32].into())) else {
        return false;
    };
    let digest = [0x33; 32];
    let Ok((sig, _)) = ecdsa::hazmat::sign_prehashed::<p256::NistP256>(&d, &k, &digest) else {
        return false;
    };
    let point = key.public_key().to_projective();
    ecdsa::hazmat::verify_prehashed::<p256::NistP256>(&point, &digest, &sig).is_ok()
}
