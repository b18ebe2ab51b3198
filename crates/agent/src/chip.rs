//! The agent's view of the secure element: the operations the provisioning flow and the run-time
//! identity need, each returning a typed [`ChipError`].
//!
//! Implemented for the `keystamp-atecc` driver over any `embedded_hal` I2C bus and delay; tests
//! and the simulator use the same implementation over the emulated chip.

/// Size of the config zone (the chip layer's constant).
pub use keystamp_atecc::zone::CONFIG_SIZE;
/// Size of the OTP zone (the chip layer's constant).
pub use keystamp_atecc::zone::OTP_SIZE;

/// Why a chip operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChipError {
    /// The chip did not answer (no ACK to wake, or the bus failed).
    Absent,
    /// The chip answered with this status byte (0x0F execution error, 0x03 parse error, ...).
    Status(u8),
    /// The answer was corrupt every time (CRC) or had the wrong length.
    Communication,
    /// The request cannot be expressed as chip commands (bad slot, offset or length).
    OutOfRange,
    /// The config zone read back after a write differs from what was written: the chip did not
    /// take the bytes (a locked zone, or a byte it does not let the host write).
    ConfigMismatch,
}

impl core::fmt::Display for ChipError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChipError::Absent => f.write_str("the secure element does not answer"),
            ChipError::Status(s) => write!(f, "the secure element answered status 0x{s:02X}"),
            ChipError::Communication => f.write_str("the secure element's answers are corrupt"),
            ChipError::OutOfRange => f.write_str("outside the chip's zone or slot"),
            ChipError::ConfigMismatch => {
                f.write_str("the config zone read back differs from what was written")
            }
        }
    }
}

impl core::error::Error for ChipError {}

/// Data-slot size of the ATECC608 (0 for a slot number that does not exist).
pub const fn slot_size(slot: u8) -> usize {
    if slot < 16 {
        keystamp_atecc::slot_size(slot as usize)
    } else {
        0
    }
}

/// What the agent needs from an ATECC608.
pub trait Chip {
    /// Info(Revision): 4 bytes, e.g. `00 00 60 02` for an ATECC608A.
    fn revision(&mut self) -> Result<[u8; 4], ChipError>;
    /// The whole 128-byte config zone.
    fn read_config(&mut self) -> Result<[u8; CONFIG_SIZE], ChipError>;
    /// Programs the writable config bytes to `target` (bytes 16–83 and 88–127 by Write; 84/85 by
    /// UpdateExtra while still zero), given the `current` zone as last read with nothing written
    /// since (only differing bytes are written). Factory and lock bytes in `target` are ignored.
    /// Returns the zone as read back to check the write.
    fn write_config(
        &mut self,
        current: &[u8; CONFIG_SIZE],
        target: &[u8; CONFIG_SIZE],
    ) -> Result<[u8; CONFIG_SIZE], ChipError>;
    /// Locks the config zone; the chip refuses unless its CRC of the zone equals `crc`.
    fn lock_config(&mut self, crc: u16) -> Result<(), ChipError>;
    /// Locks the data and OTP zones, with the summary CRC checked by the chip when given.
    fn lock_data(&mut self, crc: Option<u16>) -> Result<(), ChipError>;
    /// Locks one slot.
    fn lock_slot(&mut self, slot: u8) -> Result<(), ChipError>;
    /// Creates a new private key in `slot`; returns its public key (X ‖ Y).
    fn genkey(&mut self, slot: u8) -> Result<[u8; 64], ChipError>;
    /// The public key of the private key in `slot`.
    fn public_key(&mut self, slot: u8) -> Result<[u8; 64], ChipError>;
    /// Reads `out.len()` bytes of data slot `slot` from byte `offset`.
    fn read_slot(&mut self, slot: u8, offset: u16, out: &mut [u8]) -> Result<(), ChipError>;
    /// Writes `data` into data slot `slot` at `offset` (a multiple of 32 before the data zone is
    /// locked, 4 after; the length a multiple of 4).
    fn write_slot(&mut self, slot: u8, offset: u16, data: &[u8]) -> Result<(), ChipError>;
    /// Reads OTP bytes.
    fn read_otp(&mut self, offset: u8, out: &mut [u8]) -> Result<(), ChipError>;
    /// Writes OTP bytes (32-byte blocks).
    fn write_otp(&mut self, offset: u8, data: &[u8]) -> Result<(), ChipError>;
    /// Signs a 32-byte message digest with the private key in `slot`; returns R ‖ S.
    fn sign_digest(&mut self, slot: u8, digest: &[u8; 32]) -> Result<[u8; 64], ChipError>;
    /// Verifies `signature` (R ‖ S) of `digest` against the external `public_key` (X ‖ Y), using
    /// the chip's Verify command, so the device needs no P-256 code of its own.
    fn verify_extern(
        &mut self,
        digest: &[u8; 32],
        signature: &[u8; 64],
        public_key: &[u8; 64],
    ) -> Result<bool, ChipError>;
    /// Verifies `signature` (R ‖ S) of `digest` against the public key stored in `key_slot`
    /// (the chip's Verify in stored mode), so a key the chip holds in a locked slot decides.
    /// `Ok(false)` for a signature that does not verify.
    fn verify_stored(
        &mut self,
        key_slot: u8,
        digest: &[u8; 32],
        signature: &[u8; 64],
    ) -> Result<bool, ChipError>;
    /// 32 random bytes.
    fn random(&mut self) -> Result<[u8; 32], ChipError>;
    /// Puts the chip into idle between requests (keeps TempKey, stops the watchdog).
    fn idle(&mut self);
    /// While `true`, operations leave the chip awake for the next one (several commands per
    /// wake, the driver watching the watchdog); the caller ends the run with [`Chip::idle`].
    /// While `false` (the default), each operation idles the chip when done.
    fn hold_awake(&mut self, hold: bool) {
        let _ = hold;
    }
}

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use keystamp_atecc::{Atecc, ConfigZone, Error, Zone};

fn map<E>(e: Error<E>) -> ChipError {
    match e {
        Error::Status(s) => ChipError::Status(s.code()),
        Error::I2c(_) | Error::NoAck | Error::Wake(_) | Error::Timeout => ChipError::Absent,
        Error::Response(_) | Error::UnexpectedLength { .. } => ChipError::Communication,
        // The config read-back differed: the chip did not take what was written.
        Error::ConfigMismatch { .. } => ChipError::ConfigMismatch,
        Error::RandomTestPattern => ChipError::Status(0x0F),
        Error::Encode(_) | Error::Address(_) => ChipError::OutOfRange,
    }
}

// Each method out of line: inlined into the agent's request dispatcher, their results (up to
// 128 bytes) were kept in registers and spilled byte by byte, several KB of device code.
impl<I2C: I2c, D: DelayNs> Chip for Atecc<I2C, D> {
    #[inline(never)]
    fn revision(&mut self) -> Result<[u8; 4], ChipError> {
        self.info().map_err(map)
    }

    #[inline(never)]
    fn read_config(&mut self) -> Result<[u8; CONFIG_SIZE], ChipError> {
        self.read_config_zone().map_err(map)
    }

    #[inline(never)]
    fn write_config(
        &mut self,
        current: &[u8; CONFIG_SIZE],
        target: &[u8; CONFIG_SIZE],
    ) -> Result<[u8; CONFIG_SIZE], ChipError> {
        self.write_config_zone_over(current, &ConfigZone::from_bytes(target))
            .map(|zone| zone.to_bytes())
            .map_err(map)
    }

    #[inline(never)]
    fn lock_config(&mut self, crc: u16) -> Result<(), ChipError> {
        Atecc::lock_config(self, Some(crc)).map_err(map)
    }

    #[inline(never)]
    fn lock_data(&mut self, crc: Option<u16>) -> Result<(), ChipError> {
        Atecc::lock_data(self, crc).map_err(map)
    }

    #[inline(never)]
    fn lock_slot(&mut self, slot: u8) -> Result<(), ChipError> {
        Atecc::lock_slot(self, slot).map_err(map)
    }

    #[inline(never)]
    fn genkey(&mut self, slot: u8) -> Result<[u8; 64], ChipError> {
        Atecc::genkey(self, slot).map_err(map)
    }

    #[inline(never)]
    fn public_key(&mut self, slot: u8) -> Result<[u8; 64], ChipError> {
        self.get_public_key(slot).map_err(map)
    }

    #[inline(never)]
    fn read_slot(&mut self, slot: u8, offset: u16, out: &mut [u8]) -> Result<(), ChipError> {
        if offset as usize + out.len() > slot_size(slot) {
            return Err(ChipError::OutOfRange);
        }
        self.read_bytes(Zone::Data, slot, offset as usize, out)
            .map_err(map)
    }

    #[inline(never)]
    fn write_slot(&mut self, slot: u8, offset: u16, data: &[u8]) -> Result<(), ChipError> {
        // Bytes past a slot's end in its last 32-byte block are ignored by the chip, so a whole
        // last block is accepted (the form the chip requires before the data lock).
        if offset as usize + data.len() > slot_size(slot).next_multiple_of(32) {
            return Err(ChipError::OutOfRange);
        }
        self.write_bytes(Zone::Data, slot, offset as usize, data)
            .map_err(map)
    }

    #[inline(never)]
    fn read_otp(&mut self, offset: u8, out: &mut [u8]) -> Result<(), ChipError> {
        if offset as usize + out.len() > OTP_SIZE {
            return Err(ChipError::OutOfRange);
        }
        self.read_bytes(Zone::Otp, 0, offset as usize, out)
            .map_err(map)
    }

    #[inline(never)]
    fn write_otp(&mut self, offset: u8, data: &[u8]) -> Result<(), ChipError> {
        if offset as usize + data.len() > OTP_SIZE {
            return Err(ChipError::OutOfRange);
        }
        self.write_bytes(Zone::Otp, 0, offset as usize, data)
            .map_err(map)
    }

    #[inline(never)]
    fn sign_digest(&mut self, slot: u8, digest: &[u8; 32]) -> Result<[u8; 64], ChipError> {
        Atecc::sign_digest(self, slot, digest).map_err(map)
    }

    #[inline(never)]
    fn verify_extern(
        &mut self,
        digest: &[u8; 32],
        signature: &[u8; 64],
        public_key: &[u8; 64],
    ) -> Result<bool, ChipError> {
        Atecc::verify_extern(self, digest, signature, public_key).map_err(map)
    }

    #[inline(never)]
    fn verify_stored(
        &mut self,
        key_slot: u8,
        digest: &[u8; 32],
        signature: &[u8; 64],
    ) -> Result<bool, ChipError> {
        Atecc::verify_stored(self, key_slot, digest, signature).map_err(map)
    }

    #[inline(never)]
    fn random(&mut self) -> Result<[u8; 32], ChipError> {
        Atecc::random(self).map_err(map)
    }

    #[inline(never)]
    fn hold_awake(&mut self, hold: bool) {
        let mut timing = *self.timing();
        timing.idle_after_op = !hold;
        self.set_timing(timing);
    }

    #[inline(never)]
    fn idle(&mut self) {
        // Best effort: a chip that does not answer now will say so on the next request.
        let _ = Atecc::idle(self);
    }
}
