//! Zones, slots and the address word used by Read and Write (reference §3).

/// Config zone size in bytes.
pub const CONFIG_SIZE: usize = 128;
/// OTP zone size in bytes.
pub const OTP_SIZE: usize = 64;
/// Number of data slots.
pub const SLOT_COUNT: usize = 16;
/// Size of the largest data slot (slot 8), see [`slot_size`].
pub const MAX_SLOT_SIZE: usize = slot_size(8);
/// Bytes in one block, the unit of a 32-byte Read/Write ([`Size::Block`]).
pub const BLOCK_SIZE: usize = 32;
/// Bytes in one word, the unit of a 4-byte Read/Write ([`Size::Word`]).
pub const WORD_SIZE: usize = 4;

/// A memory zone, as encoded in Param1 bits 1:0 of Read and Write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Zone {
    /// 128-byte configuration zone.
    Config,
    /// 64-byte one-time-programmable zone.
    Otp,
    /// Data zone (16 slots).
    Data,
}

impl Zone {
    /// Param1 bits 1:0.
    pub const fn code(self) -> u8 {
        match self {
            Zone::Config => 0,
            Zone::Otp => 1,
            Zone::Data => 2,
        }
    }
}

/// A data slot number, 0..=15.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Slot(u8);

impl Slot {
    /// `Some` for 0..=15.
    pub const fn new(n: u8) -> Option<Slot> {
        if n < SLOT_COUNT as u8 {
            Some(Slot(n))
        } else {
            None
        }
    }

    /// The slot number.
    pub const fn number(self) -> u8 {
        self.0
    }

    /// The slot number as an index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Size of this slot in bytes.
    pub const fn size(self) -> usize {
        slot_size(self.0 as usize)
    }

    /// All slots in order.
    pub fn all() -> impl Iterator<Item = Slot> {
        (0..SLOT_COUNT as u8).map(Slot)
    }
}

/// Data slot size in bytes: slots 0–7 hold 36, slot 8 holds 416, slots 9–15 hold 72
/// (cryptoauthlib `calib_get_zone_size`). Out-of-range slots have size 0.
pub const fn slot_size(slot: usize) -> usize {
    match slot {
        0..=7 => 36,
        8 => 416,
        9..=15 => 72,
        _ => 0,
    }
}

/// Transfer size of a Read or Write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Size {
    /// One 4-byte word.
    Word,
    /// One 32-byte block.
    Block,
}

impl Size {
    /// Number of bytes transferred.
    pub const fn bytes(self) -> usize {
        match self {
            Size::Word => WORD_SIZE,
            Size::Block => BLOCK_SIZE,
        }
    }

    /// Param1 bit 7.
    pub const fn param1_bit(self) -> u8 {
        match self {
            Size::Word => 0x00,
            Size::Block => 0x80,
        }
    }
}

/// Why an address could not be formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AddressError {
    /// Block number outside the zone or slot.
    Block,
    /// Word number above 7.
    Word,
    /// Slot number above 15.
    Slot,
    /// Byte offset not on a word (4-byte) boundary, or a block access not on a block boundary.
    Alignment,
    /// Offset beyond the end of the zone or slot.
    Offset,
}

/// A checked zone + Param2 address for Read and Write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ZoneAddr {
    zone: Zone,
    addr: u16,
}

impl ZoneAddr {
    /// Config zone: block 0–3, word 0–7 (`addr = block << 3 | word`).
    pub const fn config(block: u8, word: u8) -> Result<Self, AddressError> {
        if block > 3 {
            return Err(AddressError::Block);
        }
        if word > 7 {
            return Err(AddressError::Word);
        }
        Ok(ZoneAddr {
            zone: Zone::Config,
            addr: ((block as u16) << 3) | word as u16,
        })
    }

    /// OTP zone: block 0–1, word 0–7.
    pub const fn otp(block: u8, word: u8) -> Result<Self, AddressError> {
        if block > 1 {
            return Err(AddressError::Block);
        }
        if word > 7 {
            return Err(AddressError::Word);
        }
        Ok(ZoneAddr {
            zone: Zone::Otp,
            addr: ((block as u16) << 3) | word as u16,
        })
    }

    /// Data zone: `addr = block << 8 | slot << 3 | word`. The block must start inside the slot
    /// (a 32-byte access to the last, partial block of a slot is allowed: the chip accepts it).
    pub const fn data(slot: u8, block: u8, word: u8) -> Result<Self, AddressError> {
        if slot > 15 {
            return Err(AddressError::Slot);
        }
        if word > 7 {
            return Err(AddressError::Word);
        }
        let offset = block as usize * 32 + word as usize * 4;
        if offset >= slot_size(slot as usize) {
            return Err(AddressError::Block);
        }
        Ok(ZoneAddr {
            zone: Zone::Data,
            addr: ((block as u16) << 8) | ((slot as u16) << 3) | word as u16,
        })
    }

    /// Address of byte `offset` (a multiple of 4; of 32 for `Size::Block`) in the config or
    /// OTP zone, or in a data slot (`slot` is ignored for config and OTP).
    pub const fn for_offset(
        zone: Zone,
        slot: u8,
        offset: usize,
        size: Size,
    ) -> Result<Self, AddressError> {
        if !offset.is_multiple_of(4) || (matches!(size, Size::Block) && !offset.is_multiple_of(32))
        {
            return Err(AddressError::Alignment);
        }
        let limit = match zone {
            Zone::Config => CONFIG_SIZE,
            Zone::Otp => OTP_SIZE,
            Zone::Data => {
                if slot > 15 {
                    return Err(AddressError::Slot);
                }
                slot_size(slot as usize)
            }
        };
        if offset >= limit {
            return Err(AddressError::Offset);
        }
        let block = (offset / 32) as u8;
        let word = ((offset % 32) / 4) as u8;
        match zone {
            Zone::Config => Self::config(block, word),
            Zone::Otp => Self::otp(block, word),
            Zone::Data => Self::data(slot, block, word),
        }
    }

    /// The zone.
    pub const fn zone(self) -> Zone {
        self.zone
    }

    /// Param2 value.
    pub const fn param2(self) -> u16 {
        self.addr
    }
}
