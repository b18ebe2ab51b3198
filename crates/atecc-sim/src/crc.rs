//! The chip's CRC-16 (reference §2.2): polynomial 0x8005, initial value 0, input bits taken
//! LSB-first, output not reflected, no final XOR; appended low byte first.
//!
//! Implemented here from the reference rather than borrowed from the driver crate so that the
//! emulator and the driver cannot agree on a wrong CRC by construction.

/// CRC-16 of `data` as the chip computes it.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        for bit in 0..8 {
            let data_bit = (byte >> bit) & 1;
            let crc_bit = (crc >> 15) as u8;
            crc <<= 1;
            if data_bit != crc_bit {
                crc ^= 0x8005;
            }
        }
    }
    crc
}

/// CRC-16 of `data` in wire order (low byte first).
pub fn crc16_le(data: &[u8]) -> [u8; 2] {
    crc16(data).to_le_bytes()
}

/// Builds a response group `count | payload | crc_lo | crc_hi`.
pub fn response_group(payload: &[u8]) -> Vec<u8> {
    let count = payload.len() + 3;
    let mut out = Vec::with_capacity(count);
    // Responses are at most 67 + a few bytes, so the count always fits one byte.
    out.push(count as u8);
    out.extend_from_slice(payload);
    let crc = crc16_le(&out);
    out.extend_from_slice(&crc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers from reference §2.3 (computed [X], the first two also seen on hardware [HW]).
    #[test]
    fn reference_vectors() {
        assert_eq!(crc16(b"123456789"), 0xBCDD);
        let table: &[(&[u8], [u8; 2])] = &[
            (&[0x04, 0x11], [0x33, 0x43]),
            (&[0x07, 0x00, 0x00, 0x00, 0x00], [0x03, 0xAD]),
            (&[0x04, 0x00], [0x03, 0x40]),
            (&[0x04, 0x01], [0x00, 0xC3]),
            (&[0x04, 0x03], [0x83, 0x42]),
            (&[0x04, 0x05], [0xC3, 0x43]),
            (&[0x04, 0x07], [0x40, 0xC2]),
            (&[0x04, 0x08], [0x60, 0xC0]),
            (&[0x04, 0x0F], [0x23, 0x42]),
            (&[0x04, 0xEE], [0x31, 0x41]),
            (&[0x04, 0xFF], [0x01, 0x42]),
            (&[0x07, 0x00, 0x00, 0x60, 0x02], [0x80, 0x38]),
            (&[0x07, 0x00, 0x00, 0x60, 0x03], [0x83, 0xBB]),
            (&[0x07, 0x00, 0x00, 0x55, 0x55], [0xF5, 0x52]),
            // Full command packets from §2.3.
            (&[0x07, 0x30, 0x00, 0x00, 0x00], [0x03, 0x5D]),
            (&[0x07, 0x1B, 0x00, 0x00, 0x00], [0x24, 0xCD]),
            (&[0x07, 0x02, 0x80, 0x00, 0x00], [0x09, 0xAD]),
            (&[0x07, 0x17, 0x80, 0x00, 0x00], [0x39, 0x8D]),
            (&[0x07, 0x40, 0x04, 0x00, 0x00], [0x83, 0x87]),
            (&[0x07, 0x77, 0x3B, 0x00, 0x00], [0x9D, 0xFB]),
        ];
        for (data, crc) in table {
            assert_eq!(crc16_le(data), *crc, "crc of {data:02X?}");
        }
    }

    #[test]
    fn random_prelock_response_vector() {
        // §2.3: "Random response pre-lock: 23 (FF FF 00 00)x8 41 1A".
        let payload: Vec<u8> = [0xFF, 0xFF, 0x00, 0x00].repeat(8);
        let group = response_group(&payload);
        assert_eq!(group[0], 0x23);
        assert_eq!(&group[33..], &[0x41, 0x1A]);
    }
}
