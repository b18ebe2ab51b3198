//! One frame = one text line: `~K<version> <dir><seq> <payload> <crc>`.
//!
//! The grammar (docs/protocol.md §2) is parsed with `nom`; the CRC-32 covers every byte from the
//! `~` up to and including the space before the CRC field.

use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_while_m_n, take_while1},
    combinator::{eof, map_opt},
};

use crate::base64;
use crate::crc::{Crc32, crc32};
use crate::{MAX_LINE, MAX_PAYLOAD, PROTOCOL_VERSION};

/// Which way a frame travels. Part of the checksummed header, so a device never takes an echo of
/// its own response (or a host of its own request) for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dir {
    /// `Q`: host → device (a request).
    Request,
    /// `R`: device → host (a response).
    Response,
}

impl Dir {
    /// The frame character.
    pub const fn as_byte(self) -> u8 {
        match self {
            Dir::Request => b'Q',
            Dir::Response => b'R',
        }
    }
}

/// The checked header of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameHeader {
    /// Protocol version the sender speaks.
    pub version: u8,
    /// Request or response.
    pub dir: Dir,
    /// Sequence number: a response carries its request's.
    pub seq: u16,
}

/// A frame that passed the grammar and the CRC, with its payload decoded from base64url.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Frame<'a> {
    /// Version, direction and sequence number.
    pub header: FrameHeader,
    /// The postcard-encoded message bytes (not yet interpreted).
    pub payload: &'a [u8],
    /// The frame's CRC-32 (identifies a retransmitted request).
    pub crc: u32,
}

/// Why a line is not a frame. Every one of these is noise: the line is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NoiseKind {
    /// The line does not start with the `~K` marker (a log line, boot ROM output, garbage).
    NotFrame,
    /// Starts with `~K` but does not follow the frame grammar.
    Malformed,
    /// Follows the grammar but the CRC does not match: a corrupted frame.
    BadCrc,
    /// Grammar and CRC are right but the payload is not canonical base64url or too long for
    /// [`MAX_PAYLOAD`] (only a broken sender produces this).
    BadPayload,
    /// Longer than [`MAX_LINE`] characters; only the first [`MAX_LINE`] are kept for logging.
    Overlong,
    /// Cut short by the `~` of the next frame before its line ended.
    Truncated,
}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncodeError {
    /// The message does not fit [`MAX_PAYLOAD`] (or the serializer failed).
    PayloadTooLong,
    /// The output buffer is too small for the line.
    BufferTooSmall,
}

fn is_upper_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'A'..=b'F').contains(&c)
}

fn parse_version(digits: &[u8]) -> Option<u8> {
    // One canonical spelling: no leading zeros.
    if digits.len() > 1 && digits.first() == Some(&b'0') {
        return None;
    }
    let mut v: u16 = 0;
    for &d in digits {
        v = v * 10 + u16::from(d - b'0');
    }
    u8::try_from(v).ok()
}

fn parse_hex(digits: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &d in digits {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u32::from(n);
    }
    Some(v)
}

fn dir(input: &[u8]) -> IResult<&[u8], Dir> {
    let (rest, c) = take_while_m_n(1, 1, |c| c == b'Q' || c == b'R').parse(input)?;
    Ok((
        rest,
        if c == b"Q" {
            Dir::Request
        } else {
            Dir::Response
        },
    ))
}

/// Parsed, unchecked pieces of a frame line.
struct RawFrame<'a> {
    header: FrameHeader,
    payload_text: &'a [u8],
    crc: u32,
    /// Everything the CRC covers.
    covered: &'a [u8],
}

fn raw_frame(line: &[u8]) -> IResult<&[u8], RawFrame<'_>> {
    let start = line;
    let (i, _) = tag(&b"~K"[..]).parse(line)?;
    let (i, version) = map_opt(
        take_while_m_n(1, 3, |c: u8| c.is_ascii_digit()),
        parse_version,
    )
    .parse(i)?;
    let (i, _) = tag(&b" "[..]).parse(i)?;
    let (i, dir) = dir(i)?;
    let (i, seq) = map_opt(take_while_m_n(4, 4, is_upper_hex), parse_hex).parse(i)?;
    let (i, _) = tag(&b" "[..]).parse(i)?;
    let (i, payload_text) = take_while1(base64::is_char).parse(i)?;
    let (i, _) = tag(&b" "[..]).parse(i)?;
    let covered_len = start.len() - i.len();
    let (i, crc) = map_opt(take_while_m_n(8, 8, is_upper_hex), parse_hex).parse(i)?;
    let (i, _) = eof(i)?;
    let header = FrameHeader {
        version,
        dir,
        seq: seq as u16,
    };
    let covered = start.get(..covered_len).unwrap_or_default();
    Ok((
        i,
        RawFrame {
            header,
            payload_text,
            crc,
            covered,
        },
    ))
}

/// Parses one line (without its terminator) as a frame, decoding the payload into `payload_buf`.
pub fn parse_frame<'p>(line: &[u8], payload_buf: &'p mut [u8]) -> Result<Frame<'p>, NoiseKind> {
    if !line.starts_with(b"~K") {
        return Err(NoiseKind::NotFrame);
    }
    let (_, raw) = raw_frame(line).map_err(|_| NoiseKind::Malformed)?;
    if crc32(raw.covered) != raw.crc {
        return Err(NoiseKind::BadCrc);
    }
    let buf_len = payload_buf.len().min(MAX_PAYLOAD);
    let buf = payload_buf.get_mut(..buf_len).unwrap_or_default();
    let n = base64::decode(raw.payload_text, buf).map_err(|_| NoiseKind::BadPayload)?;
    let payload = payload_buf.get(..n).unwrap_or_default();
    Ok(Frame {
        header: raw.header,
        payload,
        crc: raw.crc,
    })
}

/// Small cursor over an output buffer; every write is bounds-checked.
struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn put_hex(&mut self, v: u32, digits: u32) -> Result<(), EncodeError> {
        for i in (0..digits).rev() {
            let n = ((v >> (4 * i)) & 0xF) as u8;
            let c = if n < 10 { b'0' + n } else { b'A' + n - 10 };
            self.put(&[c])?;
        }
        Ok(())
    }
}

/// Characters of the frame line for a payload of `payload_len` bytes, with the `\n`.
pub const fn line_len(version: u8, payload_len: usize) -> usize {
    let vdigits = if version >= 100 {
        3
    } else if version >= 10 {
        2
    } else {
        1
    };
    // "~K" v " " d seq(4) " " payload " " crc(8) "\n"
    2 + vdigits + 1 + 1 + 4 + 1 + base64::encoded_len(payload_len) + 1 + 8 + 1
}

/// Writes the frame line for `payload` (already postcard-encoded) into `out`, `\n` included;
/// returns its length.
pub fn encode_frame(
    header: FrameHeader,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    if payload.is_empty() || payload.len() > MAX_PAYLOAD {
        return Err(EncodeError::PayloadTooLong);
    }
    let len = line_len(header.version, payload.len());
    // MAX_LINE counts the characters before the terminator.
    if len - 1 > MAX_LINE {
        return Err(EncodeError::PayloadTooLong);
    }
    let mut o = Out { buf: out, pos: 0 };
    o.put(b"~K")?;
    let v = header.version;
    if v >= 100 {
        o.put(&[b'0' + v / 100])?;
    }
    if v >= 10 {
        o.put(&[b'0' + (v / 10) % 10])?;
    }
    o.put(&[b'0' + v % 10, b' ', header.dir.as_byte()])?;
    o.put_hex(u32::from(header.seq), 4)?;
    o.put(b" ")?;
    let n = base64::encode(payload, o.buf.get_mut(o.pos..).unwrap_or_default())
        .ok_or(EncodeError::BufferTooSmall)?;
    o.pos += n;
    o.put(b" ")?;
    let mut crc = Crc32::new();
    crc.update(o.buf.get(..o.pos).unwrap_or_default());
    o.put_hex(crc.finish(), 8)?;
    o.put(b"\n")?;
    Ok(o.pos)
}

/// A header for this crate's protocol version.
pub const fn header(dir: Dir, seq: u16) -> FrameHeader {
    FrameHeader {
        version: PROTOCOL_VERSION,
        dir,
        seq,
    }
}
