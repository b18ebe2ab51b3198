//! The chip's CRC-16: polynomial 0x8005, initial value 0, input bits LSB first, output not
//! reflected, no final XOR (reference §2.2). Sent little-endian on the wire.

/// Incremental CRC-16 as computed by the ATECC608 over packets and lock summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Crc16 {
    state: u16,
}

impl Crc16 {
    /// A fresh CRC (initial value 0x0000).
    pub const fn new() -> Self {
        Crc16 { state: 0 }
    }

    /// Feed bytes. Bit-serial on purpose: 512 bytes of table cost more flash than the
    /// microseconds it would save on packets of at most 155 bytes.
    pub const fn update(mut self, data: &[u8]) -> Self {
        let mut i = 0;
        while i < data.len() {
            let byte = data[i];
            let mut bit = 0;
            while bit < 8 {
                let d = (byte >> bit) & 1;
                let c = (self.state >> 15) as u8;
                self.state <<= 1;
                if d != c {
                    self.state ^= 0x8005;
                }
                bit += 1;
            }
            i += 1;
        }
        self
    }

    /// The CRC value; its low byte goes first on the wire.
    pub const fn value(self) -> u16 {
        self.state
    }
}

/// CRC-16 of `data` in one go.
pub const fn crc16(data: &[u8]) -> u16 {
    Crc16::new().update(data).value()
}

/// CRC-16 of `data` as the two bytes the chip expects on the wire (low byte first).
pub const fn crc16_bytes(data: &[u8]) -> [u8; 2] {
    crc16(data).to_le_bytes()
}
