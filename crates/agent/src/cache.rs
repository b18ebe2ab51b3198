//! What the agent remembers of the chip between requests, so each zone is read once per need
//! (docs/decisions/0010-minimal-flow.md).
//!
//! The config zone, the revision and the device key's public key change only through commands
//! this agent sends (Write/UpdateExtra/Lock for the config zone, GenKey for a key), so a copy
//! read once stays true until one of them runs. Each such operation updates the copy with what a
//! successful command leaves in the chip (reference §3 lock bytes: 0x00 when locked; SlotLocked
//! bit cleared) or forgets it; a failed or interrupted one always forgets it, because the chip
//! may have executed a command whose answer was lost.

use crate::chip::{CONFIG_SIZE, Chip, ChipError};

use keystamp_atecc::config::{LOCK_CONFIG_BYTE, LOCK_VALUE_BYTE, LOCKED};

/// Config byte 88: SlotLocked (16 bits, little-endian, a 0 bit means locked).
const SLOT_LOCKED: usize = 88;

/// A [`Chip`] that keeps the config zone, the revision and the last public key it saw.
pub struct CachedChip<C> {
    chip: C,
    config: Option<[u8; CONFIG_SIZE]>,
    revision: Option<[u8; 4]>,
    public_key: Option<(u8, [u8; 64])>,
}

impl<C: Chip> CachedChip<C> {
    /// Wraps `chip` with nothing remembered.
    pub fn new(chip: C) -> Self {
        CachedChip {
            chip,
            config: None,
            revision: None,
            public_key: None,
        }
    }

    /// The chip itself; everything remembered is forgotten (the caller may change the chip).
    pub fn inner(&mut self) -> &mut C {
        self.forget();
        &mut self.chip
    }

    /// Gives back the chip.
    pub fn into_inner(self) -> C {
        self.chip
    }

    /// Forgets everything remembered: the next reads go to the chip.
    pub fn forget(&mut self) {
        self.config = None;
        self.revision = None;
        self.public_key = None;
    }

    /// Applies `change` to the remembered config zone after a successful command, or forgets
    /// it after a failed one.
    fn config_after<T>(
        &mut self,
        result: Result<T, ChipError>,
        change: impl FnOnce(&mut [u8; CONFIG_SIZE]),
    ) -> Result<T, ChipError> {
        match (&result, self.config.as_mut()) {
            (Ok(_), Some(cfg)) => change(cfg),
            _ => self.config = None,
        }
        result
    }
}

impl<C: Chip> Chip for CachedChip<C> {
    fn revision(&mut self) -> Result<[u8; 4], ChipError> {
        if let Some(r) = self.revision {
            return Ok(r);
        }
        let r = self.chip.revision()?;
        self.revision = Some(r);
        Ok(r)
    }

    fn read_config(&mut self) -> Result<[u8; CONFIG_SIZE], ChipError> {
        if let Some(c) = self.config {
            return Ok(c);
        }
        let c = self.chip.read_config()?;
        self.config = Some(c);
        Ok(c)
    }

    fn write_config(
        &mut self,
        current: &[u8; CONFIG_SIZE],
        target: &[u8; CONFIG_SIZE],
    ) -> Result<[u8; CONFIG_SIZE], ChipError> {
        // The driver reads the zone back to check the write: that read is the new copy.
        let result = self.chip.write_config(current, target);
        self.config = result.ok();
        result
    }

    fn lock_config(&mut self, crc: u16) -> Result<(), ChipError> {
        let result = self.chip.lock_config(crc);
        self.config_after(result, |cfg| cfg[LOCK_CONFIG_BYTE] = LOCKED)
    }

    fn lock_data(&mut self, crc: Option<u16>) -> Result<(), ChipError> {
        let result = self.chip.lock_data(crc);
        self.config_after(result, |cfg| cfg[LOCK_VALUE_BYTE] = LOCKED)
    }

    fn lock_slot(&mut self, slot: u8) -> Result<(), ChipError> {
        let result = self.chip.lock_slot(slot);
        self.config_after(result, |cfg| {
            let bits = u16::from_le_bytes([cfg[SLOT_LOCKED], cfg[SLOT_LOCKED + 1]])
                & !(1u16.checked_shl(u32::from(slot)).unwrap_or(0));
            let [lo, hi] = bits.to_le_bytes();
            cfg[SLOT_LOCKED] = lo;
            cfg[SLOT_LOCKED + 1] = hi;
        })
    }

    fn genkey(&mut self, slot: u8) -> Result<[u8; 64], ChipError> {
        self.public_key = None;
        let pk = self.chip.genkey(slot)?;
        self.public_key = Some((slot, pk));
        Ok(pk)
    }

    fn public_key(&mut self, slot: u8) -> Result<[u8; 64], ChipError> {
        if let Some((s, pk)) = self.public_key
            && s == slot
        {
            return Ok(pk);
        }
        let pk = self.chip.public_key(slot)?;
        self.public_key = Some((slot, pk));
        Ok(pk)
    }

    fn read_slot(&mut self, slot: u8, offset: u16, out: &mut [u8]) -> Result<(), ChipError> {
        self.chip.read_slot(slot, offset, out)
    }

    fn write_slot(&mut self, slot: u8, offset: u16, data: &[u8]) -> Result<(), ChipError> {
        if self.public_key.is_some_and(|(s, _)| s == slot) {
            self.public_key = None;
        }
        self.chip.write_slot(slot, offset, data)
    }

    fn read_otp(&mut self, offset: u8, out: &mut [u8]) -> Result<(), ChipError> {
        self.chip.read_otp(offset, out)
    }

    fn write_otp(&mut self, offset: u8, data: &[u8]) -> Result<(), ChipError> {
        self.chip.write_otp(offset, data)
    }

    fn sign_digest(&mut self, slot: u8, digest: &[u8; 32]) -> Result<[u8; 64], ChipError> {
        self.chip.sign_digest(slot, digest)
    }

    fn verify_extern(
        &mut self,
        digest: &[u8; 32],
        signature: &[u8; 64],
        public_key: &[u8; 64],
    ) -> Result<bool, ChipError> {
        self.chip.verify_extern(digest, signature, public_key)
    }

    fn verify_stored(
        &mut self,
        key_slot: u8,
        digest: &[u8; 32],
        signature: &[u8; 64],
    ) -> Result<bool, ChipError> {
        self.chip.verify_stored(key_slot, digest, signature)
    }

    fn random(&mut self) -> Result<[u8; 32], ChipError> {
        self.chip.random()
    }

    fn hold_awake(&mut self, hold: bool) {
        self.chip.hold_awake(hold);
    }

    fn idle(&mut self) {
        self.chip.idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chip that counts config reads and answers a factory-like zone.
    struct Counting {
        config: [u8; CONFIG_SIZE],
        reads: usize,
        fail_lock: bool,
    }

    impl Chip for Counting {
        fn revision(&mut self) -> Result<[u8; 4], ChipError> {
            Ok([0, 0, 0x60, 2])
        }
        fn read_config(&mut self) -> Result<[u8; CONFIG_SIZE], ChipError> {
            self.reads += 1;
            Ok(self.config)
        }
        fn write_config(
            &mut self,
            _: &[u8; CONFIG_SIZE],
            t: &[u8; CONFIG_SIZE],
        ) -> Result<[u8; CONFIG_SIZE], ChipError> {
            self.config = *t;
            Ok(*t)
        }
        fn lock_config(&mut self, _: u16) -> Result<(), ChipError> {
            if self.fail_lock {
                return Err(ChipError::Communication);
            }
            self.config[LOCK_CONFIG_BYTE] = 0;
            Ok(())
        }
        fn lock_data(&mut self, _: Option<u16>) -> Result<(), ChipError> {
            self.config[LOCK_VALUE_BYTE] = 0;
            Ok(())
        }
        fn lock_slot(&mut self, slot: u8) -> Result<(), ChipError> {
            self.config[SLOT_LOCKED + usize::from(slot / 8)] &= !(1 << (slot % 8));
            Ok(())
        }
        fn genkey(&mut self, _: u8) -> Result<[u8; 64], ChipError> {
            Ok([7; 64])
        }
        fn public_key(&mut self, _: u8) -> Result<[u8; 64], ChipError> {
            Ok([7; 64])
        }
        fn read_slot(&mut self, _: u8, _: u16, _: &mut [u8]) -> Result<(), ChipError> {
            Ok(())
        }
        fn write_slot(&mut self, _: u8, _: u16, _: &[u8]) -> Result<(), ChipError> {
            Ok(())
        }
        fn read_otp(&mut self, _: u8, _: &mut [u8]) -> Result<(), ChipError> {
            Ok(())
        }
        fn write_otp(&mut self, _: u8, _: &[u8]) -> Result<(), ChipError> {
            Ok(())
        }
        fn sign_digest(&mut self, _: u8, _: &[u8; 32]) -> Result<[u8; 64], ChipError> {
            Ok([0; 64])
        }
        fn verify_extern(
            &mut self,
            _: &[u8; 32],
            _: &[u8; 64],
            _: &[u8; 64],
        ) -> Result<bool, ChipError> {
            Ok(true)
        }
        fn verify_stored(&mut self, _: u8, _: &[u8; 32], _: &[u8; 64]) -> Result<bool, ChipError> {
            Ok(true)
        }
        fn random(&mut self) -> Result<[u8; 32], ChipError> {
            Ok([1; 32])
        }
        fn idle(&mut self) {}
    }

    fn factory() -> Counting {
        let mut c = Counting {
            config: [0; CONFIG_SIZE],
            reads: 0,
            fail_lock: false,
        };
        c.config[LOCK_CONFIG_BYTE] = 0x55;
        c.config[LOCK_VALUE_BYTE] = 0x55;
        c.config[SLOT_LOCKED] = 0xFF;
        c.config[SLOT_LOCKED + 1] = 0xFF;
        c
    }

    #[test]
    fn the_remembered_zone_follows_every_lock_exactly_as_the_chip_does() {
        let mut c = CachedChip::new(factory());
        c.read_config().unwrap();
        c.lock_config(0).unwrap();
        c.lock_data(None).unwrap();
        c.lock_slot(11).unwrap();
        c.lock_slot(10).unwrap();
        let remembered = c.read_config().unwrap();
        assert_eq!(c.chip.reads, 1, "one read for all of it");
        // Independent fact: the chip's own bytes after the same commands.
        assert_eq!(remembered, c.chip.config);
        // Slots 10 and 11 are bits 2 and 3 of byte 89.
        assert_eq!(remembered[SLOT_LOCKED + 1], 0b1111_0011);
    }

    #[test]
    fn a_failed_lock_forgets_the_zone_so_the_next_read_asks_the_chip() {
        let mut chip = factory();
        chip.fail_lock = true;
        let mut c = CachedChip::new(chip);
        c.read_config().unwrap();
        assert!(c.lock_config(0).is_err());
        c.read_config().unwrap();
        assert_eq!(c.chip.reads, 2);
    }

    #[test]
    fn handing_out_the_chip_forgets_everything() {
        let mut c = CachedChip::new(factory());
        c.read_config().unwrap();
        c.inner().config[0] = 9;
        assert_eq!(c.read_config().unwrap()[0], 9);
    }
}
