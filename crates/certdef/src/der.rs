//! The little DER the codec needs: lengths, INTEGERs and the ECDSA signatureValue BIT STRING.

use crate::Error;

/// Smallest usual DER signatureValue for P-256 (R and S of 31 bytes).
pub const TYPICAL_MIN_DER_SIG_LEN: usize = 71;
/// Largest DER signatureValue for P-256 (`03 49 00 30 46 02 21 00 R 02 21 00 S`).
pub const MAX_DER_SIG_LEN: usize = 75;

/// Smallest P-256 signatureValue (`03 08 00 30 06 02 01 r 02 01 s`).
pub const MIN_DER_SIG_LEN: usize = 11;

/// Bytes needed to encode `len` as a DER length.
pub const fn length_size(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        let mut n = 1;
        let mut v = len;
        while v > 0 {
            n += 1;
            v >>= 8;
        }
        n
    }
}

/// Encodes `len` as a minimal DER length into `out`, returning the size written.
pub fn encode_length(len: usize, out: &mut [u8]) -> Result<usize, Error> {
    let size = length_size(len);
    let out = out.get_mut(..size).ok_or(Error::too_small(size))?;
    if size == 1 {
        out[0] = len as u8;
    } else {
        out[0] = 0x80 | (size - 1) as u8;
        for (i, b) in out[1..].iter_mut().enumerate() {
            *b = (len >> (8 * (size - 2 - i))) as u8;
        }
    }
    Ok(size)
}

/// Decodes a DER length at the start of `data`: `(length, bytes used)`. Indefinite lengths and
/// lengths that do not fit a `usize` are [`Error::Decoding`] (non-minimal forms are accepted, as
/// cryptoauthlib does).
#[inline(always)] // measured: smaller device image inlined
pub fn decode_length(data: &[u8]) -> Result<(usize, usize), Error> {
    let first = *data.first().ok_or(Error::Decoding)?;
    if first & 0x80 == 0 {
        return Ok((first as usize, 1));
    }
    let n = (first & 0x7F) as usize;
    if n == 0 || n > core::mem::size_of::<usize>() {
        return Err(Error::Decoding);
    }
    let bytes = data.get(1..1 + n).ok_or(Error::Decoding)?;
    let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
    Ok((len, 1 + n))
}

/// Adds `delta` to the DER length encoded at the start of `data`, in place. The length-of-length
/// may not change ([`Error::LengthOfLengthChange`]): headers are never resized.
pub fn adjust_length(data: &mut [u8], delta: isize) -> Result<usize, Error> {
    let (old, size) = decode_length(data)?;
    let new = old.checked_add_signed(delta).ok_or(Error::BadCert)?;
    if length_size(new) != size {
        return Err(Error::LengthOfLengthChange);
    }
    encode_length(new, data)?;
    Ok(new)
}

/// The significant bytes of a big-endian integer as DER INTEGER content: `(pad, start)` where
/// `pad` says a 0x00 must be prepended and `start` is the first byte kept.
fn integer_shape(value: &[u8], is_unsigned: bool) -> (bool, usize) {
    if is_unsigned && value.first().is_some_and(|&b| b & 0x80 != 0) {
        return (true, 0);
    }
    let mut start = 0;
    while start + 1 < value.len() {
        let (a, b) = (value[start], value[start + 1]);
        if (a == 0x00 && b & 0x80 == 0) || (a == 0xFF && b & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    (false, start)
}

/// Encodes `value` (big endian) as a DER INTEGER TLV into `out` (`atcacert_der_enc_integer`):
/// unsigned values with the top bit set get a 0x00 prefix; redundant leading bytes are trimmed.
pub fn encode_integer(value: &[u8], is_unsigned: bool, out: &mut [u8]) -> Result<usize, Error> {
    if value.is_empty() {
        return Err(Error::Decoding);
    }
    let (pad, start) = integer_shape(value, is_unsigned);
    let content = value.len() - start + pad as usize;
    let hdr = 1 + length_size(content);
    let total = hdr + content;
    let out = out.get_mut(..total).ok_or(Error::too_small(total))?;
    out[0] = 0x02;
    encode_length(content, &mut out[1..])?;
    let mut at = hdr;
    if pad {
        out[at] = 0;
        at += 1;
    }
    out[at..].copy_from_slice(&value[start..]);
    Ok(total)
}

/// Decodes a DER INTEGER TLV at the start of `data`: `(content, bytes used)`.
pub fn decode_integer(data: &[u8]) -> Result<(&[u8], usize), Error> {
    if data.first() != Some(&0x02) {
        return Err(Error::Decoding);
    }
    let (len, lsize) = decode_length(data.get(1..).ok_or(Error::Decoding)?)?;
    if len == 0 {
        return Err(Error::Decoding);
    }
    let start = 1 + lsize;
    let end = start.checked_add(len).ok_or(Error::Decoding)?;
    Ok((data.get(start..end).ok_or(Error::Decoding)?, end))
}

/// DER INTEGER shape of an unsigned 32-byte signature half: `(first byte kept, 0x00 pad)`.
/// (For an unsigned value only leading zeros are ever redundant.)
#[inline(always)] // measured: smaller device image inlined
fn half_shape(half: &[u8]) -> (usize, usize) {
    let mut start = 0;
    while let Some(&[0, next, ..]) = half.get(start..) {
        if next & 0x80 != 0 {
            break;
        }
        start += 1;
    }
    // Only an unstripped first byte can have its top bit set (a stripped zero never precedes one).
    let pad = half.get(start).is_some_and(|&b| b & 0x80 != 0) as usize;
    (start, pad)
}

/// Writes one signature half as a DER INTEGER TLV `02 n [00] value` at the start of `out`
/// (zeroed, so the pad byte is already there), returning its size.
#[inline(never)] // two calls: one copy in flash
fn put_sig_int(half: &[u8], out: &mut [u8]) -> usize {
    let (start, pad) = half_shape(half);
    let value = half.get(start..).unwrap_or(&[]);
    let n = value.len() + pad;
    if let Some([tag, len, ..]) = out.get_mut(..2) {
        *tag = 0x02;
        *len = n as u8;
    }
    if let Some(d) = out.get_mut(2 + pad..2 + n) {
        d.copy_from_slice(value);
    }
    2 + n
}

/// DER size of the signatureValue BIT STRING for raw signature `sig` (R‖S).
pub fn ecdsa_sig_size(sig: &[u8; 64]) -> usize {
    let int_len = |half: &[u8]| {
        let (start, pad) = half_shape(half);
        2 + half.len() - start + pad
    };
    let seq = int_len(&sig[..32]) + int_len(&sig[32..]);
    // BIT STRING content = unused-bits byte + SEQUENCE TLV (short form: at most 70 bytes).
    2 + 1 + 2 + seq
}

/// Encodes R‖S as the X.509 signatureValue BIT STRING (`atcacert_der_enc_ecdsa_sig_value`):
/// `03 L 00 30 L2 (02 lr R) (02 ls S)`. Every length is below 128 (short form).
pub fn encode_ecdsa_sig(sig: &[u8; 64], out: &mut [u8]) -> Result<usize, Error> {
    let (enc, total) = ecdsa_sig_der(sig);
    out.get_mut(..total)
        .ok_or(Error::too_small(total))?
        .copy_from_slice(enc.get(..total).unwrap_or(&[]));
    Ok(total)
}

/// [`encode_ecdsa_sig`] into a fixed buffer: `(bytes, size used)`. The shape of each half is
/// worked out once (the device path calls this, not [`ecdsa_sig_size`]).
#[inline(always)] // one caller each on the device (set_signature) and the host
pub(crate) fn ecdsa_sig_der(sig: &[u8; 64]) -> ([u8; MAX_DER_SIG_LEN], usize) {
    let mut enc = [0u8; MAX_DER_SIG_LEN];
    let mut at = 5;
    for half in sig.chunks_exact(32) {
        at += put_sig_int(half, enc.get_mut(at..).unwrap_or_default());
    }
    if let Some(h) = enc.get_mut(..5) {
        h.copy_from_slice(&[0x03, (at - 2) as u8, 0x00, 0x30, (at - 5) as u8]);
    }
    (enc, at)
}

/// One signature INTEGER → 32 bytes, left-padded: `(value, bytes used)`.
fn sig_int(data: &[u8]) -> Result<([u8; 32], usize), Error> {
    let (content, used) = decode_integer(data)?;
    // At most 32 bytes, or 33 with a leading 0x00 pad.
    let content = match content {
        [0, rest @ ..] if content.len() == 33 => rest,
        c if c.len() <= 32 => c,
        _ => return Err(Error::Decoding),
    };
    let mut out = [0u8; 32];
    if let Ok(full) = <&[u8; 32]>::try_from(content) {
        out = *full; // the common case: one fixed-size copy
    } else {
        out[32 - content.len()..].copy_from_slice(content);
    }
    Ok((out, used))
}

/// Decodes a signatureValue BIT STRING at the start of `data` into R‖S (each left-padded to 32
/// bytes), strictly as `atcacert_der_dec_ecdsa_sig_value` does: `(signature, bytes used)`.
pub fn decode_ecdsa_sig(data: &[u8]) -> Result<([u8; 64], usize), Error> {
    match decode_ecdsa_sig_short(data) {
        Some(ok) => Ok(ok),
        None => decode_ecdsa_sig_general(data),
    }
}

/// Any length form.
fn decode_ecdsa_sig_general(data: &[u8]) -> Result<([u8; 64], usize), Error> {
    if data.first() != Some(&0x03) {
        return Err(Error::Decoding);
    }
    let (bs_len, bs_lsize) = decode_length(data.get(1..).ok_or(Error::Decoding)?)?;
    let bs_start = 1 + bs_lsize;
    let bs_end = bs_start.checked_add(bs_len).ok_or(Error::Decoding)?;
    let bs = data.get(bs_start..bs_end).ok_or(Error::Decoding)?;
    // Unused-bits byte must be 0, followed by the SEQUENCE.
    if bs.first() != Some(&0x00) || bs.get(1) != Some(&0x30) {
        return Err(Error::Decoding);
    }
    let (seq_len, seq_lsize) = decode_length(bs.get(2..).ok_or(Error::Decoding)?)?;
    let seq_start = 2 + seq_lsize;
    if seq_start.checked_add(seq_len) != Some(bs.len()) {
        return Err(Error::Decoding);
    }
    let seq = &bs[seq_start..];
    let (r, r_used) = sig_int(seq)?;
    let (s, s_used) = sig_int(seq.get(r_used..).ok_or(Error::Decoding)?)?;
    if r_used + s_used != seq_len {
        return Err(Error::Decoding);
    }
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r);
    sig[32..].copy_from_slice(&s);
    Ok((sig, bs_end))
}

/// Every real P-256 signatureValue uses short-form lengths only: this straight-line decoder
/// accepts exactly what [`decode_ecdsa_sig`] accepts in that shape and returns `None` for
/// anything else (long-form lengths, or any error — the general decoder then reports it).
#[inline]
fn decode_ecdsa_sig_short(data: &[u8]) -> Option<([u8; 64], usize)> {
    let &[0x03, bs_len, 0x00, 0x30, seq_len, ref rest @ ..] = data else {
        return None;
    };
    let (bs_len, seq_len) = (bs_len as usize, seq_len as usize);
    // BIT STRING = unused-bits byte, SEQUENCE tag, its length byte, the SEQUENCE content.
    if bs_len >= 0x80 || seq_len + 3 != bs_len {
        return None;
    }
    let seq = rest.get(..seq_len)?;
    let mut sig = [0u8; 64];
    let mut at = 0;
    for half in sig.chunks_exact_mut(32) {
        let &[0x02, n, ..] = seq.get(at..)? else {
            return None;
        };
        let n = n as usize;
        let content = match seq.get(at + 2..at + 2 + n)? {
            [0, rest @ ..] if n == 33 => rest,
            c if (1..=32).contains(&n) => c,
            _ => return None,
        };
        if let Ok(full) = <&[u8; 32]>::try_from(content) {
            half.copy_from_slice(full); // the common case: one fixed-size copy
        } else {
            half.get_mut(32 - content.len()..)?.copy_from_slice(content);
        }
        at += 2 + n;
    }
    (at == seq_len).then_some((sig, 2 + bs_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use MAX_DER_SIG_LEN;

    /// The short-form decoder agrees with the general one on every signature shape and on
    /// every single-byte corruption of them.
    #[test]
    fn short_form_sig_decoder_matches_the_general_one() {
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for case in 0..400 {
            let mut sig = [0u8; 64];
            sig.iter_mut().for_each(|b| *b = next() as u8);
            // Leading zeros and top bits set, to get every INTEGER length (31–33 and shorter).
            for half in [0, 32] {
                match case % 5 {
                    0 => sig[half] |= 0x80,
                    1 => sig[half] &= 0x7F,
                    2 => sig[half..half + 2].fill(0),
                    3 => sig[half..half + 31].fill(0),
                    _ => {}
                }
            }
            let mut der = [0u8; MAX_DER_SIG_LEN + 1];
            let n = encode_ecdsa_sig(&sig, &mut der).unwrap();
            assert_eq!(decode_ecdsa_sig_short(&der[..n]), Some((sig, n)));
            for at in 0..n {
                for v in [0x00, 0x01, 0x02, 0x20, 0x21, 0x30, 0x7F, 0x80, 0x81, 0xFF] {
                    let mut bad = der;
                    bad[at] = v;
                    for len in [n - 1, n, n + 1] {
                        let general = decode_ecdsa_sig_general(&bad[..len]).ok();
                        if let Some(short) = decode_ecdsa_sig_short(&bad[..len]) {
                            assert_eq!(Some(short), general, "case {case} byte {at} = {v:#x}");
                        }
                        assert_eq!(decode_ecdsa_sig(&bad[..len]).ok(), general);
                    }
                }
            }
        }
    }
}
