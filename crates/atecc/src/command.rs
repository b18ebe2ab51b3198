//! Commands with typed parameters (reference §4). Each knows its opcode, parameters, data,
//! the length of its successful response group and its maximum execution time.

use crate::packet::{EncodeError, encode_command};
use crate::zone::{Size, Slot, ZoneAddr};

/// Opcodes of the ATECC608 (cryptoauthlib `calib_command.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[allow(missing_docs)] // the names are the datasheet's command names
pub enum Opcode {
    Aes,
    CheckMac,
    Counter,
    DeriveKey,
    Ecdh,
    GenDig,
    GenKey,
    Info,
    Kdf,
    Lock,
    Mac,
    Nonce,
    PrivWrite,
    Random,
    Read,
    SecureBoot,
    SelfTest,
    Sha,
    Sign,
    UpdateExtra,
    Verify,
    Write,
}

/// The clock divider selected by ChipMode bits 7:3, which scales execution times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClockDivider {
    /// 0x00: the default, fastest clock.
    #[default]
    M0,
    /// 0x05.
    M1,
    /// 0x0D.
    M2,
}

impl ClockDivider {
    /// From ChipMode bits 7:3; `None` for values the chip does not document.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0x00 => Some(ClockDivider::M0),
            0x05 => Some(ClockDivider::M1),
            0x0D => Some(ClockDivider::M2),
            _ => None,
        }
    }

    /// ChipMode bits 7:3 value.
    pub const fn bits(self) -> u8 {
        match self {
            ClockDivider::M0 => 0x00,
            ClockDivider::M1 => 0x05,
            ClockDivider::M2 => 0x0D,
        }
    }
}

impl Opcode {
    /// The opcode byte.
    pub const fn code(self) -> u8 {
        match self {
            Opcode::Aes => 0x51,
            Opcode::CheckMac => 0x28,
            Opcode::Counter => 0x24,
            Opcode::DeriveKey => 0x1C,
            Opcode::Ecdh => 0x43,
            Opcode::GenDig => 0x15,
            Opcode::GenKey => 0x40,
            Opcode::Info => 0x30,
            Opcode::Kdf => 0x56,
            Opcode::Lock => 0x17,
            Opcode::Mac => 0x08,
            Opcode::Nonce => 0x16,
            Opcode::PrivWrite => 0x46,
            Opcode::Random => 0x1B,
            Opcode::Read => 0x02,
            Opcode::SecureBoot => 0x80,
            Opcode::SelfTest => 0x77,
            Opcode::Sha => 0x47,
            Opcode::Sign => 0x41,
            Opcode::UpdateExtra => 0x20,
            Opcode::Verify => 0x45,
            Opcode::Write => 0x12,
        }
    }

    /// Maximum execution time in milliseconds for a clock divider: cryptoauthlib's ATECC608
    /// table (reference §4.3).
    pub const fn max_exec_ms(self, divider: ClockDivider) -> u32 {
        let (m0, m1, m2) = match self {
            Opcode::Aes => (27, 27, 27),
            Opcode::CheckMac => (40, 40, 40),
            Opcode::Counter => (25, 25, 25),
            Opcode::DeriveKey => (50, 50, 50),
            Opcode::Ecdh => (75, 172, 531),
            Opcode::GenDig => (25, 35, 35),
            Opcode::GenKey => (115, 215, 653),
            Opcode::Info => (5, 5, 5),
            Opcode::Kdf => (165, 165, 165),
            Opcode::Lock => (35, 35, 35),
            Opcode::Mac => (55, 55, 55),
            Opcode::Nonce => (20, 20, 20),
            Opcode::PrivWrite => (50, 50, 50),
            Opcode::Random => (23, 23, 23),
            Opcode::Read => (5, 5, 5),
            Opcode::SecureBoot => (80, 160, 480),
            Opcode::SelfTest => (250, 625, 2324),
            Opcode::Sha => (36, 42, 75),
            Opcode::Sign => (115, 220, 665),
            Opcode::UpdateExtra => (10, 10, 10),
            Opcode::Verify => (105, 295, 1085),
            Opcode::Write => (45, 45, 45),
        };
        match divider {
            ClockDivider::M0 => m0,
            ClockDivider::M1 => m1,
            ClockDivider::M2 => m2,
        }
    }
}

/// Length of a status-only response group.
pub const STATUS_RESPONSE_LEN: usize = 4;

/// A command with typed parameters.
pub trait Command {
    /// The opcode.
    fn opcode(&self) -> Opcode;
    /// Param1 (mode / zone).
    fn param1(&self) -> u8;
    /// Param2 (sent little-endian).
    fn param2(&self) -> u16;
    /// Data bytes, as up to three consecutive parts.
    fn data(&self) -> [&[u8]; 3] {
        [&[], &[], &[]]
    }
    /// Length (count byte value) of the successful response group; 4 means status only.
    fn response_len(&self) -> usize;
    /// Check parameters the types cannot express.
    fn check(&self) -> Result<(), EncodeError> {
        Ok(())
    }
    /// Maximum execution time for a clock divider.
    fn max_exec_ms(&self, divider: ClockDivider) -> u32 {
        self.opcode().max_exec_ms(divider)
    }
    /// Encode the command group (without the 0x03 word address) into `out`; returns its length.
    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        self.check()?;
        encode_command(
            self.opcode().code(),
            self.param1(),
            self.param2(),
            &self.data(),
            out,
        )
    }
}

static ZEROS: [u8; 32] = [0; 32];

/// Info command (0x30). Response: 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Info {
    /// Mode 0x00: revision (`00 00 60 02` 608A, `00 00 60 03` 608B).
    Revision,
    /// Mode 0x01: whether the key in a slot is valid.
    KeyValid(Slot),
    /// Mode 0x02: volatile device state.
    State,
}

impl Command for Info {
    fn opcode(&self) -> Opcode {
        Opcode::Info
    }
    fn param1(&self) -> u8 {
        match self {
            Info::Revision => 0x00,
            Info::KeyValid(_) => 0x01,
            Info::State => 0x02,
        }
    }
    fn param2(&self) -> u16 {
        match self {
            Info::KeyValid(s) => s.number() as u16,
            _ => 0,
        }
    }
    fn response_len(&self) -> usize {
        7
    }
}

/// Read command (0x02) in clear: 4 or 32 bytes from a zone address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Read {
    /// Where to read.
    pub addr: ZoneAddr,
    /// How much.
    pub size: Size,
}

impl Command for Read {
    fn opcode(&self) -> Opcode {
        Opcode::Read
    }
    fn param1(&self) -> u8 {
        self.addr.zone().code() | self.size.param1_bit()
    }
    fn param2(&self) -> u16 {
        self.addr.param2()
    }
    fn response_len(&self) -> usize {
        3 + self.size.bytes()
    }
}

/// Data of a clear Write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WriteData<'a> {
    /// 4 bytes.
    Word(&'a [u8; 4]),
    /// 32 bytes.
    Block(&'a [u8; 32]),
}

/// Write command (0x12) in clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Write<'a> {
    /// Where to write.
    pub addr: ZoneAddr,
    /// What.
    pub data: WriteData<'a>,
}

impl Command for Write<'_> {
    fn opcode(&self) -> Opcode {
        Opcode::Write
    }
    fn param1(&self) -> u8 {
        self.addr.zone().code()
            | match self.data {
                WriteData::Word(_) => Size::Word.param1_bit(),
                WriteData::Block(_) => Size::Block.param1_bit(),
            }
    }
    fn param2(&self) -> u16 {
        self.addr.param2()
    }
    fn data(&self) -> [&[u8]; 3] {
        match self.data {
            WriteData::Word(w) => [w, &[], &[]],
            WriteData::Block(b) => [b, &[], &[]],
        }
    }
    fn response_len(&self) -> usize {
        STATUS_RESPONSE_LEN
    }
}

/// Lock command (0x17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Lock {
    /// Lock the config zone; with `Some(crc)` the chip refuses if its contents differ.
    Config(Option<u16>),
    /// Lock the data and OTP zones; with `Some(crc)` the chip refuses if contents differ.
    Data(Option<u16>),
    /// Lock one slot (KeyConfig.Lockable must be set).
    Slot(Slot),
}

impl Command for Lock {
    fn opcode(&self) -> Opcode {
        Opcode::Lock
    }
    fn param1(&self) -> u8 {
        match self {
            Lock::Config(Some(_)) => 0x00,
            Lock::Config(None) => 0x80,
            Lock::Data(Some(_)) => 0x01,
            Lock::Data(None) => 0x81,
            Lock::Slot(s) => 0x02 | (s.number() << 2),
        }
    }
    fn param2(&self) -> u16 {
        match self {
            Lock::Config(Some(crc)) | Lock::Data(Some(crc)) => *crc,
            _ => 0,
        }
    }
    fn response_len(&self) -> usize {
        STATUS_RESPONSE_LEN
    }
}

/// GenKey command (0x40).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GenKey {
    /// Mode 0x04: create a new private key in the slot; returns its public key.
    Private(Slot),
    /// Mode 0x00: compute the public key of the slot's stored private key.
    Public(Slot),
}

impl Command for GenKey {
    fn opcode(&self) -> Opcode {
        Opcode::GenKey
    }
    fn param1(&self) -> u8 {
        match self {
            GenKey::Private(_) => 0x04,
            GenKey::Public(_) => 0x00,
        }
    }
    fn param2(&self) -> u16 {
        match self {
            GenKey::Private(s) | GenKey::Public(s) => s.number() as u16,
        }
    }
    fn response_len(&self) -> usize {
        67
    }
}

/// Where the message of an external Sign or Verify comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageSource {
    /// TempKey (loaded by Nonce pass-through or SHA).
    TempKey,
    /// The message digest buffer.
    MsgDigBuf,
}

impl MessageSource {
    const fn bit5(self) -> u8 {
        match self {
            MessageSource::TempKey => 0x00,
            MessageSource::MsgDigBuf => 0x20,
        }
    }
}

/// Sign command (0x41). Response: R‖S, 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Sign {
    /// Sign an externally supplied 32-byte digest (mode 0x80 / 0xA0).
    External {
        /// Private key slot.
        slot: Slot,
        /// Where the digest was loaded.
        source: MessageSource,
    },
    /// Sign an internally generated message (mode 0x00, or 0x40 to include the full SN).
    Internal {
        /// Private key slot.
        slot: Slot,
        /// Include the full serial number in the message.
        include_sn: bool,
    },
}

impl Command for Sign {
    fn opcode(&self) -> Opcode {
        Opcode::Sign
    }
    fn param1(&self) -> u8 {
        match self {
            Sign::External { source, .. } => 0x80 | source.bit5(),
            Sign::Internal { include_sn, .. } => {
                if *include_sn {
                    0x40
                } else {
                    0x00
                }
            }
        }
    }
    fn param2(&self) -> u16 {
        match self {
            Sign::External { slot, .. } | Sign::Internal { slot, .. } => slot.number() as u16,
        }
    }
    fn response_len(&self) -> usize {
        67
    }
}

/// Verify command (0x45), external mode: check an ECDSA P-256 signature of the 32-byte message
/// in TempKey or the message digest buffer against a public key supplied in the command.
/// Status 0x00 means valid, 0x01 means not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VerifyExternal<'a> {
    /// Where the digest was loaded.
    pub source: MessageSource,
    /// R‖S, big-endian.
    pub signature: &'a [u8; 64],
    /// X‖Y, big-endian.
    pub public_key: &'a [u8; 64],
}

/// Verify Param2 for an external P-256 key.
pub const KEY_TYPE_P256: u16 = 0x0004;

impl Command for VerifyExternal<'_> {
    fn opcode(&self) -> Opcode {
        Opcode::Verify
    }
    fn param1(&self) -> u8 {
        0x02 | self.source.bit5()
    }
    fn param2(&self) -> u16 {
        KEY_TYPE_P256
    }
    fn data(&self) -> [&[u8]; 3] {
        [self.signature, self.public_key, &[]]
    }
    fn response_len(&self) -> usize {
        STATUS_RESPONSE_LEN
    }
}

/// Verify command (0x45), stored mode: check an ECDSA P-256 signature of the 32-byte message in
/// TempKey or the message digest buffer against the public key stored in a slot (mode 0x00 /
/// 0x20, Param2 = slot, data = R‖S; cryptoauthlib `calib_verify_stored`). Status 0x00 means
/// valid, 0x01 means not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VerifyStored<'a> {
    /// Where the digest was loaded.
    pub source: MessageSource,
    /// The slot holding the public key (KeyConfig: P-256, not private).
    pub key_slot: Slot,
    /// R‖S, big-endian.
    pub signature: &'a [u8; 64],
}

impl Command for VerifyStored<'_> {
    fn opcode(&self) -> Opcode {
        Opcode::Verify
    }
    fn param1(&self) -> u8 {
        self.source.bit5()
    }
    fn param2(&self) -> u16 {
        self.key_slot.number() as u16
    }
    fn data(&self) -> [&[u8]; 3] {
        [self.signature, &[], &[]]
    }
    fn response_len(&self) -> usize {
        STATUS_RESPONSE_LEN
    }
}

/// Destination of a pass-through Nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NonceTarget {
    /// TempKey.
    TempKey,
    /// Message digest buffer.
    MsgDigBuf,
    /// Alternate key buffer.
    AltKeyBuf,
}

impl NonceTarget {
    const fn bits(self) -> u8 {
        match self {
            NonceTarget::TempKey => 0x00,
            NonceTarget::MsgDigBuf => 0x40,
            NonceTarget::AltKeyBuf => 0x80,
        }
    }
}

/// Nonce command (0x16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Nonce<'a> {
    /// Random mode: TempKey = SHA-256(RandOut ‖ NumIn ‖ 0x16 ‖ mode ‖ 0x00); returns RandOut.
    Random {
        /// 20 bytes of host input.
        num_in: &'a [u8; 20],
        /// Update the RNG seed first (mode 0x00) or not (0x01).
        update_seed: bool,
    },
    /// Pass-through of 32 bytes (mode 0x03 | target).
    Fixed32 {
        /// Destination buffer.
        target: NonceTarget,
        /// Value.
        value: &'a [u8; 32],
    },
    /// Pass-through of 64 bytes (mode 0x23 | target).
    Fixed64 {
        /// Destination buffer.
        target: NonceTarget,
        /// Value.
        value: &'a [u8; 64],
    },
}

impl Command for Nonce<'_> {
    fn opcode(&self) -> Opcode {
        Opcode::Nonce
    }
    fn param1(&self) -> u8 {
        match self {
            Nonce::Random {
                update_seed: true, ..
            } => 0x00,
            Nonce::Random {
                update_seed: false, ..
            } => 0x01,
            Nonce::Fixed32 { target, .. } => 0x03 | target.bits(),
            Nonce::Fixed64 { target, .. } => 0x23 | target.bits(),
        }
    }
    fn param2(&self) -> u16 {
        0
    }
    fn data(&self) -> [&[u8]; 3] {
        match self {
            Nonce::Random { num_in, .. } => [*num_in, &[], &[]],
            Nonce::Fixed32 { value, .. } => [*value, &[], &[]],
            Nonce::Fixed64 { value, .. } => [*value, &[], &[]],
        }
    }
    fn response_len(&self) -> usize {
        match self {
            Nonce::Random { .. } => 35,
            _ => STATUS_RESPONSE_LEN,
        }
    }
}

/// Random command (0x1B): 32 random bytes (`FF FF 00 00` × 8 before the config lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Random {
    /// Update the RNG seed first (mode 0x00) or not (0x01).
    pub update_seed: bool,
}

impl Command for Random {
    fn opcode(&self) -> Opcode {
        Opcode::Random
    }
    fn param1(&self) -> u8 {
        if self.update_seed { 0x00 } else { 0x01 }
    }
    fn param2(&self) -> u16 {
        0
    }
    fn response_len(&self) -> usize {
        35
    }
}

/// SHA command (0x47), SHA-256 on the chip. Longest data in `End` is 63 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Sha<'a> {
    /// Mode 0: initialise the context.
    Start,
    /// Mode 1: absorb exactly one 64-byte block.
    Update(&'a [u8; 64]),
    /// Mode 2: absorb the final 0–63 bytes and return the 32-byte digest.
    End(&'a [u8]),
}

/// Largest final chunk of a SHA End.
pub const SHA_END_MAX: usize = 63;

impl Command for Sha<'_> {
    fn opcode(&self) -> Opcode {
        Opcode::Sha
    }
    fn param1(&self) -> u8 {
        match self {
            Sha::Start => 0,
            Sha::Update(_) => 1,
            Sha::End(_) => 2,
        }
    }
    fn param2(&self) -> u16 {
        match self {
            Sha::Start => 0,
            Sha::Update(_) => 64,
            Sha::End(d) => d.len() as u16,
        }
    }
    fn data(&self) -> [&[u8]; 3] {
        match self {
            Sha::Start => [&[], &[], &[]],
            Sha::Update(b) => [*b, &[], &[]],
            Sha::End(d) => [d, &[], &[]],
        }
    }
    fn check(&self) -> Result<(), EncodeError> {
        match self {
            Sha::End(d) if d.len() > SHA_END_MAX => Err(EncodeError::InvalidParam),
            _ => Ok(()),
        }
    }
    fn response_len(&self) -> usize {
        match self {
            Sha::End(_) => 35,
            _ => STATUS_RESPONSE_LEN,
        }
    }
}

/// SelfTest command (0x77). The 4-byte response carries a bitmap of failed tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SelfTest {
    /// Which tests: bitwise OR of the `SELF_TEST_*` constants.
    pub tests: u8,
}

/// SelfTest: RNG / DRBG.
pub const SELF_TEST_RNG: u8 = 0x01;
/// SelfTest: ECDSA sign and verify.
pub const SELF_TEST_ECDSA: u8 = 0x02;
/// SelfTest: ECDH.
pub const SELF_TEST_ECDH: u8 = 0x08;
/// SelfTest: AES.
pub const SELF_TEST_AES: u8 = 0x10;
/// SelfTest: SHA.
pub const SELF_TEST_SHA: u8 = 0x20;
/// SelfTest: all of the above (0x3B).
pub const SELF_TEST_ALL: u8 =
    SELF_TEST_RNG | SELF_TEST_ECDSA | SELF_TEST_ECDH | SELF_TEST_AES | SELF_TEST_SHA;

impl Command for SelfTest {
    fn opcode(&self) -> Opcode {
        Opcode::SelfTest
    }
    fn param1(&self) -> u8 {
        self.tests
    }
    fn param2(&self) -> u16 {
        0
    }
    fn check(&self) -> Result<(), EncodeError> {
        if self.tests == 0 || self.tests & !SELF_TEST_ALL != 0 {
            Err(EncodeError::InvalidParam)
        } else {
            Ok(())
        }
    }
    fn response_len(&self) -> usize {
        STATUS_RESPONSE_LEN
    }
}

/// One of the two monotonic counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CounterId {
    /// Counter 0.
    Zero,
    /// Counter 1.
    One,
}

/// Counter command (0x24). Response: 4-byte little-endian value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Counter {
    /// Mode 0: read.
    Read(CounterId),
    /// Mode 1: increment and return the new value.
    Increment(CounterId),
}

/// Largest counter value.
pub const COUNTER_MAX: u32 = 2_097_151;

impl Command for Counter {
    fn opcode(&self) -> Opcode {
        Opcode::Counter
    }
    fn param1(&self) -> u8 {
        match self {
            Counter::Read(_) => 0,
            Counter::Increment(_) => 1,
        }
    }
    fn param2(&self) -> u16 {
        match self {
            Counter::Read(id) | Counter::Increment(id) => match id {
                CounterId::Zero => 0,
                CounterId::One => 1,
            },
        }
    }
    fn response_len(&self) -> usize {
        7
    }
}

/// ECDH command (0x43), mode 0x00: shared secret with the private key in `slot`. Returns the
/// 32-byte X coordinate in clear, or only a status when the slot's SlotConfig says the result
/// goes to slot N|1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ecdh<'a> {
    /// Private key slot.
    pub slot: Slot,
    /// Peer public key X‖Y.
    pub public_key: &'a [u8; 64],
}

impl Command for Ecdh<'_> {
    fn opcode(&self) -> Opcode {
        Opcode::Ecdh
    }
    fn param1(&self) -> u8 {
        0x00
    }
    fn param2(&self) -> u16 {
        self.slot.number() as u16
    }
    fn data(&self) -> [&[u8]; 3] {
        [self.public_key, &[], &[]]
    }
    fn response_len(&self) -> usize {
        35
    }
}

/// UpdateExtra command (0x20): set config byte 84 or 85 once (only while it is 0x00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UpdateExtra {
    /// Mode 0: byte 84, UserExtra.
    UserExtra(u8),
    /// Mode 1: byte 85, UserExtraAdd (alternative I2C address).
    UserExtraAdd(u8),
}

impl Command for UpdateExtra {
    fn opcode(&self) -> Opcode {
        Opcode::UpdateExtra
    }
    fn param1(&self) -> u8 {
        match self {
            UpdateExtra::UserExtra(_) => 0,
            UpdateExtra::UserExtraAdd(_) => 1,
        }
    }
    fn param2(&self) -> u16 {
        match self {
            UpdateExtra::UserExtra(v) | UpdateExtra::UserExtraAdd(v) => *v as u16,
        }
    }
    fn response_len(&self) -> usize {
        STATUS_RESPONSE_LEN
    }
}

/// PrivWrite command (0x46), unencrypted (mode 0x00): write a P-256 private key into a slot.
/// Only accepted before the data zone is locked. Data = 4 zero bytes ‖ key ‖ 32-byte MAC
/// (zeros, ignored), as cryptoauthlib sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PrivWrite<'a> {
    /// Private key slot.
    pub slot: Slot,
    /// Private scalar, big-endian.
    pub key: &'a [u8; 32],
}

impl Command for PrivWrite<'_> {
    fn opcode(&self) -> Opcode {
        Opcode::PrivWrite
    }
    fn param1(&self) -> u8 {
        0x00
    }
    fn param2(&self) -> u16 {
        self.slot.number() as u16
    }
    fn data(&self) -> [&[u8]; 3] {
        [&ZEROS[..4], self.key, &ZEROS]
    }
    fn response_len(&self) -> usize {
        STATUS_RESPONSE_LEN
    }
}
