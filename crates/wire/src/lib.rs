//! keystamp-wire: the line-oriented provisioning protocol between the factory host and the
//! device agent, shared unchanged by both.
//!
//! * [`frame`]: one frame per text line, `~K1 Q002A <base64url postcard> <CRC-32>`; anything else
//!   on the line is noise.
//! * [`LineDecoder`]: sans-IO splitter, bytes in, [`Event`]s out, one fixed buffer.
//! * [`Request`] / [`Response`]: the typed messages of the provisioning flow (postcard inside).
//! * [`DeviceSession`] and [`HostSession`]: the two ends' state machines: sequence numbers,
//!   de-duplication of retransmitted requests, timeouts and retries driven by explicit `now`
//!   arguments.
//!
//! No I/O, no clocks, no allocation, no panics on any input. The specification is
//! `docs/protocol.md`.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod base64;
pub mod crc;
mod decoder;
mod device;
mod error;
pub mod frame;
mod host;
mod message;

pub use decoder::{Event, LineDecoder};
pub use device::{DeviceEvent, DeviceSession, IgnoreReason, SendReason};
pub use frame::{Dir, EncodeError, Frame, FrameHeader, NoiseKind, encode_frame, parse_frame};
pub use host::{HostError, HostEvent, HostSession, Poll, RetryPolicy};
pub use message::*;

/// The protocol version this crate speaks (the number after `~K`). Version 2: signed
/// definition blobs, the identity proof instead of challenge signing, maintenance
/// authentication, life cycle and platform security in Hello (docs/protocol.md).
pub const PROTOCOL_VERSION: u8 = 2;
/// Longest frame line in characters, not counting the line terminator. Both ends need one buffer
/// of this size to receive and one to send.
pub const MAX_LINE: usize = 1024;
/// Largest postcard payload of a frame (its base64url text plus the header still fits
/// [`MAX_LINE`]).
pub const MAX_PAYLOAD: usize = 750;
/// Largest data chunk in one message (slot data, blob, certificate bytes).
pub const MAX_CHUNK: usize = 512;
/// Size of the ATECC608 config zone.
pub const CONFIG_SIZE: usize = 128;
/// Size of the ATECC608 OTP zone.
pub const OTP_SIZE: usize = 64;
/// Size of the largest data slot (slot 8).
pub const MAX_SLOT_SIZE: usize = 416;
/// Largest certificate-definition blob the protocol carries.
pub const MAX_DEF_BLOB: usize = 16 * 1024;
/// Longest error detail text in bytes.
pub const MAX_DETAIL: usize = 64;

// The longest frame (3-digit version, full payload) must fit the line limit.
const _: () = assert!(frame::line_len(255, MAX_PAYLOAD) - 1 <= MAX_LINE);
