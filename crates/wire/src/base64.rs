//! Unpadded base64url (RFC 4648 §5, alphabet `A–Z a–z 0–9 - _`, no `=`), strict: the decoder
//! rejects a length of 4n+1 and non-zero leftover bits, so one byte string has exactly one text
//! form.

/// Characters needed to encode `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    (n / 3) * 4
        + match n % 3 {
            0 => 0,
            1 => 2,
            _ => 3,
        }
}

/// Bytes produced by decoding `n` characters (`None` when `n % 4 == 1`, which no input encodes to).
pub const fn decoded_len(n: usize) -> Option<usize> {
    match n % 4 {
        0 => Some(n / 4 * 3),
        2 => Some(n / 4 * 3 + 1),
        3 => Some(n / 4 * 3 + 2),
        _ => None,
    }
}

fn enc(v: u8) -> u8 {
    match v {
        0..=25 => b'A' + v,
        26..=51 => b'a' + (v - 26),
        52..=61 => b'0' + (v - 52),
        62 => b'-',
        _ => b'_',
    }
}

/// The 6-bit value of one base64url character.
pub fn dec(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Whether `c` belongs to the base64url alphabet.
pub fn is_char(c: u8) -> bool {
    dec(c).is_some()
}

/// Encodes `input` into the start of `out`; returns the number of characters written, or `None`
/// when `out` is too small.
pub fn encode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let need = encoded_len(input.len());
    let out = out.get_mut(..need)?;
    let mut o = out.iter_mut();
    for chunk in input.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let sextets = [
            b0 >> 2,
            ((b0 & 3) << 4) | (b1 >> 4),
            ((b1 & 0xF) << 2) | (b2 >> 6),
            b2 & 0x3F,
        ];
        for s in sextets.iter().take(chunk.len() + 1) {
            if let Some(slot) = o.next() {
                *slot = enc(*s);
            }
        }
    }
    Some(need)
}

/// Why a base64url string did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base64Error {
    /// A character outside the alphabet.
    BadChar,
    /// Length 4n+1, or non-zero bits left over in the last character.
    NotCanonical,
    /// The output buffer is too small.
    TooLong,
}

/// Decodes `input` into the start of `out`; returns the number of bytes written.
pub fn decode(input: &[u8], out: &mut [u8]) -> Result<usize, Base64Error> {
    let need = decoded_len(input.len()).ok_or(Base64Error::NotCanonical)?;
    let out = out.get_mut(..need).ok_or(Base64Error::TooLong)?;
    let mut o = out.iter_mut();
    for chunk in input.chunks(4) {
        let mut acc: u32 = 0;
        for &c in chunk {
            acc = (acc << 6) | u32::from(dec(c).ok_or(Base64Error::BadChar)?);
        }
        // Left-align the chunk's bits in 24 bits; the partial tail must have zero padding bits.
        let (bytes, pad_bits) = match chunk.len() {
            4 => (3, 0),
            3 => (2, 2),
            _ => (1, 4),
        };
        if acc & ((1 << pad_bits) - 1) != 0 {
            return Err(Base64Error::NotCanonical);
        }
        let acc = (acc >> pad_bits) << (24 - bytes * 8);
        for i in 0..bytes {
            if let Some(slot) = o.next() {
                *slot = (acc >> (16 - 8 * i)) as u8;
            }
        }
    }
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        // RFC 4648 §10 test vectors, padding stripped.
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (raw, text) in cases {
            let mut buf = [0u8; 16];
            let n = encode(raw, &mut buf).unwrap();
            assert_eq!(&buf[..n], text.as_bytes());
            let mut back = [0u8; 16];
            let m = decode(text.as_bytes(), &mut back).unwrap();
            assert_eq!(&back[..m], raw);
        }
    }

    #[test]
    fn strict() {
        let mut out = [0u8; 8];
        assert_eq!(decode(b"Zh", &mut out), Err(Base64Error::NotCanonical));
        assert_eq!(decode(b"Z", &mut out), Err(Base64Error::NotCanonical));
        assert_eq!(decode(b"Zm9=", &mut out), Err(Base64Error::BadChar));
        assert_eq!(
            decode(b"Zm9vYmFy", &mut out[..5]),
            Err(Base64Error::TooLong)
        );
        assert_eq!(decode(b"-_", &mut out), Err(Base64Error::NotCanonical));
        assert_eq!(decode(b"-w", &mut out), Ok(1));
        assert_eq!(out[0], 0xFB);
    }
}
