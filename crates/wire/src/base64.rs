//! Unpadded base64url (RFC 4648 §5, alphabet `A–Z a–z 0–9 - _`, no `=`), strict: the decoder
//! rejects a length of 4n+1 and non-zero leftover bits, so one byte string has exactly one text
//! form.
//!
//! The coding itself is RustCrypto's `base64ct` (`Base64UrlUnpadded`, which checks canonical
//! form); this module keeps the frame grammar's pieces that must be `const` or byte-wise (the
//! lengths and the alphabet test) and the crate's error type.

use base64ct::{Base64UrlUnpadded, Encoding};

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

/// Whether `c` belongs to the base64url alphabet.
pub fn is_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Encodes `input` into the start of `out`; returns the number of characters written, or `None`
/// when `out` is too small.
pub fn encode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    Base64UrlUnpadded::encode(input, out).ok().map(str::len)
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
    match Base64UrlUnpadded::decode(input, out) {
        Ok(bytes) => Ok(bytes.len()),
        // base64ct reports one "invalid encoding" for both causes; tell them apart here.
        Err(_) if !input.iter().all(|&c| is_char(c)) => Err(Base64Error::BadChar),
        Err(_) => Err(Base64Error::NotCanonical),
    }
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
            assert_eq!(n, encoded_len(raw.len()));
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
        assert_eq!(decode(b"Zm+v", &mut out), Err(Base64Error::BadChar));
        assert_eq!(
            decode(b"Zm9vYmFy", &mut out[..5]),
            Err(Base64Error::TooLong)
        );
        assert_eq!(decode(b"-_", &mut out), Err(Base64Error::NotCanonical));
        assert_eq!(decode(b"-w", &mut out), Ok(1));
        assert_eq!(out[0], 0xFB);
        assert_eq!(encode(b"foo", &mut out[..3]), None);
    }

    #[test]
    fn alphabet_is_exactly_rfc4648_url_safe() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for c in 0..=255u8 {
            assert_eq!(is_char(c), alphabet.contains(&c), "{c:#04x}");
        }
    }
}
