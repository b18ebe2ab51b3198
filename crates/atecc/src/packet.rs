//! Command and response groups (reference §2.1, §2.4).

use crate::crc::{Crc16, crc16};
use crate::status::Status;

/// Word address byte written before a command group.
pub const WORD_ADDRESS_COMMAND: u8 = 0x03;
/// Word address byte that resets the output-buffer read pointer.
pub const WORD_ADDRESS_RESET: u8 = 0x00;
/// Word address byte that puts the chip to sleep.
pub const WORD_ADDRESS_SLEEP: u8 = 0x01;
/// Word address byte that puts the chip into idle.
pub const WORD_ADDRESS_IDLE: u8 = 0x02;

/// Smallest command or response group (count, one byte, CRC).
pub const MIN_GROUP_LEN: usize = 4;
/// Largest command group the chip accepts (count value).
pub const MAX_COMMAND_LEN: usize = 155;
/// Largest response group any command in this crate can produce (GenKey, Sign: 67). Sized with
/// headroom for 72-byte payloads some other commands return.
pub const MAX_RESPONSE_LEN: usize = 75;
/// Bytes of a command group besides data: count, opcode, param1, param2 (2), CRC (2).
pub const COMMAND_OVERHEAD: usize = 7;

/// The wake reply `04 11 33 43`.
pub const WAKE_RESPONSE: [u8; 4] = [0x04, 0x11, 0x33, 0x43];

/// Why a command group could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncodeError {
    /// The output buffer is shorter than the group.
    BufferTooSmall,
    /// The group would exceed 155 bytes.
    TooLong,
    /// A parameter is outside what the command accepts (e.g. SHA end with more than 63 bytes).
    InvalidParam,
}

/// Encode a command group (`count opcode p1 p2_lo p2_hi data… crc_lo crc_hi`, without the
/// 0x03 word address) into `out`; returns its length.
pub fn encode_command(
    opcode: u8,
    param1: u8,
    param2: u16,
    data: &[&[u8]],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let data_len: usize = data.iter().map(|d| d.len()).sum();
    let count = COMMAND_OVERHEAD + data_len;
    if count > MAX_COMMAND_LEN {
        return Err(EncodeError::TooLong);
    }
    let out = out.get_mut(..count).ok_or(EncodeError::BufferTooSmall)?;
    let [p2_lo, p2_hi] = param2.to_le_bytes();
    let (head, rest) = out.split_at_mut(5);
    head.copy_from_slice(&[count as u8, opcode, param1, p2_lo, p2_hi]);
    let (body, crc_out) = rest.split_at_mut(data_len);
    let mut at = 0;
    for part in data {
        let dst = body
            .get_mut(at..at + part.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        dst.copy_from_slice(part);
        at += part.len();
    }
    let crc = Crc16::new().update(head).update(body).value();
    crc_out.copy_from_slice(&crc.to_le_bytes());
    Ok(count)
}

/// Why a response group is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ResponseError {
    /// No bytes at all.
    Empty,
    /// The count byte is below 4 or above the largest response.
    BadCount(u8),
    /// Fewer bytes than the count byte announces.
    Truncated {
        /// The count byte.
        count: u8,
        /// Bytes available.
        available: usize,
    },
    /// The CRC does not match.
    Crc {
        /// CRC computed over the received bytes.
        computed: u16,
        /// CRC carried by the group.
        received: u16,
    },
}

impl core::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ResponseError::Empty => write!(f, "empty response"),
            ResponseError::BadCount(c) => write!(f, "response count byte {c} out of range"),
            ResponseError::Truncated { count, available } => {
                write!(f, "response truncated: count {count}, {available} bytes")
            }
            ResponseError::Crc { computed, received } => write!(
                f,
                "response CRC mismatch: computed 0x{computed:04X}, received 0x{received:04X}"
            ),
        }
    }
}

/// A checked response group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Response<'a> {
    /// A 4-byte group: one status byte.
    Status(Status),
    /// A longer group: the payload between count and CRC.
    Data(&'a [u8]),
}

/// Check a response group's count and CRC. Bytes after `count` are ignored.
pub fn parse_response(group: &[u8]) -> Result<Response<'_>, ResponseError> {
    let count = *group.first().ok_or(ResponseError::Empty)?;
    let n = count as usize;
    if !(MIN_GROUP_LEN..=MAX_RESPONSE_LEN).contains(&n) {
        return Err(ResponseError::BadCount(count));
    }
    let body = group.get(..n).ok_or(ResponseError::Truncated {
        count,
        available: group.len(),
    })?;
    let (covered, crc) = body.split_at(n - 2);
    let received = u16::from_le_bytes([crc[0], crc[1]]);
    let computed = crc16(covered);
    if computed != received {
        return Err(ResponseError::Crc { computed, received });
    }
    let payload = &covered[1..];
    if n == MIN_GROUP_LEN {
        Ok(Response::Status(Status::from_code(payload[0])))
    } else {
        Ok(Response::Data(payload))
    }
}

/// What a 4-byte wake reply says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WakeReply {
    /// `04 11 33 43`: awake and ready.
    Awake,
    /// A CRC-valid 4-byte group with status 0x07: the power-on self test failed. (cryptoauthlib
    /// compares against `04 07 C4 40`, whose CRC is wrong; the valid group is `04 07 40 C2`.)
    SelfTestFailure,
    /// Anything else (stale output of an earlier command, noise).
    Unexpected,
}

/// Classify the 4 bytes read after a wake pulse.
pub fn classify_wake(reply: &[u8; 4]) -> WakeReply {
    if *reply == WAKE_RESPONSE {
        return WakeReply::Awake;
    }
    match parse_response(reply) {
        Ok(Response::Status(Status::SelfTestError)) => WakeReply::SelfTestFailure,
        _ => WakeReply::Unexpected,
    }
}
