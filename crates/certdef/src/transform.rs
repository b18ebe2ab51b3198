//! Custom-element transforms (`atcacert_transform_data`) and their inverses (for splitting).

use crate::{Error, Transform};

const HEX_UC: &[u8; 16] = b"0123456789ABCDEF";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Output size of `tf` applied to `input`.
pub fn output_size(tf: Transform, input: &[u8]) -> Result<usize, Error> {
    let n = input.len();
    Ok(match tf {
        Transform::None | Transform::Reverse => n,
        Transform::Bin2HexUc | Transform::Bin2HexLc => n * 2,
        Transform::Bin2HexSpaceUc | Transform::Bin2HexSpaceLc => (n * 3).saturating_sub(1),
        Transform::Hex2BinUc | Transform::Hex2BinLc => hex_digits(input, false)? / 2,
        Transform::Hex2BinSpaceUc | Transform::Hex2BinSpaceLc => hex_digits(input, true)? / 2,
    })
}

/// Counts hex digits, checking the separators cryptoauthlib checks (space variants: a non-hex
/// character is only allowed as a `' '` at every third position) and that the count is even.
#[inline(always)] // saves flash: folds into each caller's constant `spaced`
fn hex_digits(input: &[u8], spaced: bool) -> Result<usize, Error> {
    let mut digits = 0;
    for (i, &c) in input.iter().enumerate() {
        if hex_val(c).is_some() {
            digits += 1;
        } else if spaced && ((i + 1) % 3 != 0 || c != b' ') {
            return Err(Error::InvalidTransform);
        }
    }
    if digits % 2 != 0 {
        return Err(Error::InvalidTransform);
    }
    Ok(digits)
}

/// Applies `tf` to `input`, writing exactly `out.len()` bytes; the output size must equal
/// `out.len()` ([`Error::UnexpectedElemSize`] otherwise).
pub fn apply(tf: Transform, input: &[u8], out: &mut [u8]) -> Result<(), Error> {
    let size = output_size(tf, input)?;
    if size != out.len() {
        return Err(Error::elem_size(out.len(), size));
    }
    match tf {
        Transform::None => {
            for (o, i) in out.iter_mut().zip(input) {
                *o = *i;
            }
        }
        Transform::Reverse => {
            for (o, i) in out.iter_mut().zip(input.iter().rev()) {
                *o = *i;
            }
        }
        Transform::Bin2HexUc
        | Transform::Bin2HexLc
        | Transform::Bin2HexSpaceUc
        | Transform::Bin2HexSpaceLc => {
            // One loop for the four: odd values are lower case ('0'–'9' already have bit 5 set,
            // so OR-ing 0x20 only changes the letters); the space variants step by 3.
            let v = tf.value();
            let case = if v & 1 == 1 { 0x20 } else { 0 };
            let stride = if v >= 6 { 3 } else { 2 };
            out.fill(b' ');
            for (i, &b) in input.iter().enumerate() {
                if let Some(d) = out.get_mut(i * stride..i * stride + 2) {
                    d[0] = HEX_UC[(b >> 4) as usize] | case;
                    d[1] = HEX_UC[(b & 0xF) as usize] | case;
                }
            }
        }
        Transform::Hex2BinUc
        | Transform::Hex2BinLc
        | Transform::Hex2BinSpaceUc
        | Transform::Hex2BinSpaceLc => {
            let mut hi: Option<u8> = None;
            let mut at = 0;
            for v in input.iter().filter_map(|&c| hex_val(c)) {
                match hi.take() {
                    None => hi = Some(v),
                    Some(h) => {
                        if let Some(o) = out.get_mut(at) {
                            *o = (h << 4) | v;
                        }
                        at += 1;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The transform that undoes `tf` (hex output case follows the variant's nominal case).
pub const fn inverse(tf: Transform) -> Transform {
    match tf {
        Transform::None => Transform::None,
        Transform::Reverse => Transform::Reverse,
        Transform::Bin2HexUc => Transform::Hex2BinUc,
        Transform::Bin2HexLc => Transform::Hex2BinLc,
        Transform::Hex2BinUc => Transform::Bin2HexUc,
        Transform::Hex2BinLc => Transform::Bin2HexLc,
        Transform::Bin2HexSpaceUc => Transform::Hex2BinSpaceUc,
        Transform::Bin2HexSpaceLc => Transform::Hex2BinSpaceLc,
        Transform::Hex2BinSpaceUc => Transform::Bin2HexSpaceUc,
        Transform::Hex2BinSpaceLc => Transform::Bin2HexSpaceLc,
    }
}

/// Largest intermediate result of a two-step transform (cryptoauthlib's build-state buffers).
pub const SCRATCH_LEN: usize = 256;

/// Applies the transform list (stopping at the first `None`) to `input`, writing exactly
/// `out.len()` bytes.
#[inline(always)] // one device-path caller (rebuild)
pub fn apply_chain(tfs: &[Transform; 2], input: &[u8], out: &mut [u8]) -> Result<(), Error> {
    match tfs {
        [Transform::None, _] => apply(Transform::None, input, out),
        [t, Transform::None] => apply(*t, input, out),
        [t1, t2] => {
            let mut scratch = [0u8; SCRATCH_LEN];
            let n = output_size(*t1, input)?;
            let mid = scratch.get_mut(..n).ok_or(Error::too_small(n))?;
            apply(*t1, input, mid)?;
            apply(*t2, mid, out)
        }
    }
}

/// Undoes the transform list: certificate bytes → device bytes, exactly `out.len()` of them.
pub fn invert_chain(tfs: &[Transform; 2], cert: &[u8], out: &mut [u8]) -> Result<(), Error> {
    let inv = match tfs {
        [Transform::None, _] => [Transform::None, Transform::None],
        [t, Transform::None] => [inverse(*t), Transform::None],
        [t1, t2] => [inverse(*t2), inverse(*t1)],
    };
    apply_chain(&inv, cert, out)
}
