//! Operator-facing text for every error and noise reason of this crate (`Display`,
//! `core::error::Error`, `source()`).
//!
//! Messages say what happened in the operator's words. An error that wraps another names only
//! its own part and hands the inner one out through `source()`, so a caller that prints the
//! chain (`a: b: c`) never sees a cause twice. Text that came from a device is printed escaped:
//! it is hostile input and may hold terminal control sequences.

use core::fmt;

use crate::base64::Base64Error;
use crate::frame::{EncodeError, NoiseKind};
use crate::host::HostError;
use crate::message::{DecodeError, ErrorCode, WireError};

/// Writes `text` with everything except printable ASCII escaped as `\u{..}`, so a device cannot
/// move the cursor, change colours or hide text in the operator's terminal.
pub(crate) fn write_sanitized(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        if c == ' ' || c.is_ascii_graphic() {
            fmt::Write::write_char(f, c)?;
        } else {
            write!(f, "\\u{{{:x}}}", u32::from(c))?;
        }
    }
    Ok(())
}

/// Operator words for a secure-element status byte (docs/reference atecc608 status table).
fn chip_status_meaning(status: u8) -> &'static str {
    match status {
        0x01 => "verify or CheckMac miscompare",
        0x03 => "parse error: the chip rejected the command's length, opcode or parameters",
        0x05 => "ECC fault during the computation; a retry may succeed",
        0x07 => "self-test failure; the chip stays in failure mode until cleared",
        0x08 => "random-number health test failure",
        0x0F => {
            "execution error: the command cannot run in the chip's current state \
             (lock state, slot policy)"
        }
        0x11 => "the chip was woken but has not run a command yet",
        0xEE => "watchdog about to expire; the command was not run",
        0xFF => "CRC or communication error on the chip bus; the command was not run",
        _ => "status not documented for the ATECC608",
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::VersionMismatch { device } => write!(
                f,
                "device speaks protocol version {device}, this keystamp speaks {}: {}",
                crate::PROTOCOL_VERSION,
                if *device > crate::PROTOCOL_VERSION {
                    "update keystamp"
                } else {
                    "update the device firmware"
                }
            ),
            ErrorCode::BadRequest => {
                f.write_str("the device could not decode the request or a field was out of range")
            }
            ErrorCode::Unsupported => {
                f.write_str("the device firmware does not support this request")
            }
            ErrorCode::ChipAbsent => f.write_str("the secure element does not answer"),
            ErrorCode::ChipStatus(s) => write!(
                f,
                "the secure element answered status 0x{s:02X} ({})",
                chip_status_meaning(*s)
            ),
            ErrorCode::Locked => f.write_str("the zone or slot is already locked"),
            ErrorCode::NotLocked => f.write_str("the zone must be locked first"),
            ErrorCode::BlobInvalid => {
                f.write_str("the certificate-definition blob does not parse on the device")
            }
            ErrorCode::DigestMismatch => f.write_str(
                "the uploaded definition blob's SHA-256 differs from the announced digest",
            ),
            ErrorCode::NoBlob => {
                f.write_str("no certificate-definition blob is stored on the device")
            }
            ErrorCode::VerifyFailed => {
                f.write_str("a certificate rebuilt on the device does not verify")
            }
            ErrorCode::Busy => f.write_str("the device is busy; retry later"),
            ErrorCode::OutOfRange => {
                f.write_str("offset or length lies outside the zone, slot or certificate")
            }
            ErrorCode::Storage => f.write_str("the device's flash storage failed"),
            ErrorCode::Internal => f.write_str("the device reported an internal error"),
            ErrorCode::LockedDown => f.write_str(
                "the device is locked: this request needs maintenance authentication \
                 (keystamp maintain)",
            ),
            ErrorCode::BlobUntrusted => f.write_str(
                "the definition blob is not signed by the signer whose key the chip holds \
                 (unsigned, mis-signed or altered)",
            ),
            ErrorCode::AuthFailed => f.write_str(
                "maintenance authentication failed (no fresh nonce, or the signature does not \
                 verify against the chip's trust anchor)",
            ),
        }
    }
}

impl core::error::Error for ErrorCode {}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device error: {}", self.code)?;
        if !self.detail.is_empty() {
            f.write_str(" (device says \"")?;
            write_sanitized(f, &self.detail)?;
            f.write_str("\")")?;
        }
        Ok(())
    }
}

impl core::error::Error for WireError {}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Postcard => "the payload is not a valid message",
            DecodeError::TrailingBytes => "bytes are left over after the message",
        })
    }
}

impl core::error::Error for DecodeError {}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::PayloadTooLong => "the message is too long for one frame",
            EncodeError::BufferTooSmall => "the output buffer is too small for the frame line",
        })
    }
}

impl core::error::Error for EncodeError {}

impl fmt::Display for NoiseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoiseKind::NotFrame => "the line is not a frame (no ~K marker)",
            NoiseKind::Malformed => "the line starts like a frame but breaks the frame grammar",
            NoiseKind::BadCrc => "the frame's CRC does not match: corrupted on the line",
            NoiseKind::BadPayload => {
                "the frame's payload is not canonical base64url or is too long"
            }
            NoiseKind::Overlong => "the line is longer than a frame may be",
            NoiseKind::Truncated => "the frame was cut short by the start of another frame",
        })
    }
}

impl core::error::Error for NoiseKind {}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Base64Error::BadChar => "a character outside the base64url alphabet",
            Base64Error::NotCanonical => "base64url text that is not canonical",
            Base64Error::TooLong => "decoded base64url data does not fit the buffer",
        })
    }
}

impl core::error::Error for Base64Error {}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Busy => {
                f.write_str("another request is still waiting for its answer from the device")
            }
            HostError::Invalid(_) => f.write_str("the request breaks the protocol's limits"),
            HostError::Encode(_) => f.write_str("the request could not be encoded"),
            HostError::VersionMismatch { host, device } => write!(
                f,
                "device speaks protocol version {device}, this keystamp speaks {host}: {}",
                if device > host {
                    "update keystamp"
                } else {
                    "update the device firmware"
                }
            ),
            HostError::BadResponse(_) => f.write_str(
                "the device's answer passed the checksum but does not decode (a firmware bug)",
            ),
            HostError::UnexpectedResponse => {
                f.write_str("the device answered with the wrong kind of response for the request")
            }
        }
    }
}

impl core::error::Error for HostError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            HostError::Invalid(code) => Some(code),
            HostError::Encode(e) => Some(e),
            HostError::BadResponse(e) => Some(e),
            HostError::Busy | HostError::VersionMismatch { .. } | HostError::UnexpectedResponse => {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::error::Error as _;

    #[test]
    fn wrapped_errors_are_sources_not_repeated() {
        let e = HostError::BadResponse(DecodeError::TrailingBytes);
        let outer = e.to_string();
        let inner = e.source().expect("source").to_string();
        assert!(!outer.contains(&inner), "{outer} repeats {inner}");
        assert_eq!(inner, "bytes are left over after the message");
        assert!(
            HostError::Encode(EncodeError::PayloadTooLong)
                .source()
                .is_some()
        );
        assert!(HostError::Invalid(ErrorCode::BadRequest).source().is_some());
        assert!(HostError::UnexpectedResponse.source().is_none());
    }

    #[test]
    fn chip_status_names_the_reference_meaning() {
        // atecc608.md status table: 0x0F = execution error, 0xEE = watchdog.
        let s = ErrorCode::ChipStatus(0x0F).to_string();
        assert!(s.contains("0x0F") && s.contains("execution error"), "{s}");
        assert!(ErrorCode::ChipStatus(0xEE).to_string().contains("watchdog"));
        assert!(ErrorCode::ChipStatus(0x42).to_string().contains("0x42"));
    }

    #[test]
    fn device_detail_cannot_reach_the_terminal_raw() {
        // Attack: a device puts an ANSI clear-screen and a right-to-left override in its detail.
        let e = WireError::new(ErrorCode::Internal, "x\u{1b}[2J\u{202e}\r\ny");
        let s = e.to_string();
        assert!(
            !s.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{s:?}"
        );
        assert!(s.contains("\\u{1b}[2J\\u{202e}\\u{d}\\u{a}"), "{s}");
        assert!(s.contains("internal error"));
    }

    #[test]
    fn version_mismatch_names_both_versions() {
        let s = HostError::VersionMismatch { host: 1, device: 2 }.to_string();
        assert_eq!(
            s,
            "device speaks protocol version 2, this keystamp speaks 1: update keystamp"
        );
        let s = HostError::VersionMismatch { host: 2, device: 1 }.to_string();
        assert!(s.ends_with("update the device firmware"), "{s}");
        let s = ErrorCode::VersionMismatch { device: 7 }.to_string();
        assert!(s.contains('7'), "{s}");
    }
}
