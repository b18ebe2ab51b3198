//! CRC-32/ISO-HDLC (the zlib / Ethernet CRC): reflected polynomial 0xEDB88320, initial value and
//! final XOR 0xFFFFFFFF. Check value for `"123456789"` is `0xCBF43926`.
//!
//! The arithmetic is the `crc` crate's catalogued algorithm with its byte-wise table (1 KiB of
//! flash, built at compile time, no RAM).

use crc::{CRC_32_ISO_HDLC, Crc, Digest};

/// The algorithm with its byte-wise table, in flash.
static CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// Incremental CRC-32 (for checksumming a frame that is written in pieces).
#[derive(Clone)]
pub struct Crc32(Digest<'static, u32>);

impl core::fmt::Debug for Crc32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Crc32({:08X})", self.clone().finish())
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A fresh checksum.
    pub const fn new() -> Self {
        Self(CRC32.digest())
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The checksum of everything added so far.
    pub fn finish(self) -> u32 {
        self.0.finalize()
    }
}

/// CRC-32/ISO-HDLC of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The catalogued check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn pieces_equal_whole() {
        let mut c = Crc32::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xCBF4_3926);
    }
}
