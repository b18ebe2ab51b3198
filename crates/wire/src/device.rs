//! The device end: receives requests, answers each sequence number once, replays the cached
//! answer when the host retransmits.

use crate::decoder::{Event, LineDecoder};
use crate::frame::{Dir, FrameHeader, NoiseKind};
use crate::message::{ErrorCode, Request, Response, WireError};
use crate::{MAX_LINE, PROTOCOL_VERSION};

/// Requests with a sequence number this far behind the last answered one are old retransmissions
/// and are ignored (a fresh host starts with [`Request::Hello`], which is always served).
const STALE_WINDOW: u16 = 8;

/// Why the session itself produced bytes to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SendReason {
    /// The host retransmitted the last request: here is the same answer again.
    Replay,
    /// The request frame had another protocol version; the answer is
    /// [`ErrorCode::VersionMismatch`].
    VersionMismatch,
    /// The payload did not decode or failed [`Request::validate`]; the answer is
    /// [`ErrorCode::BadRequest`].
    BadRequest,
}

/// Why a checksummed frame was not acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IgnoreReason {
    /// A frame going the other way (an echo of our own output).
    WrongDirection,
    /// An old retransmission, superseded by a newer request.
    Stale,
}

/// What the device should do next.
// Without alloc the request cannot be boxed; an event is moved once, so the size is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum DeviceEvent<'a> {
    /// Execute `request`, then call [`DeviceSession::respond`] with the same `seq` and write the
    /// bytes it returns.
    Request {
        /// Sequence number to answer with.
        seq: u16,
        /// The validated request.
        request: Request,
    },
    /// Write `bytes` to the host; nothing to execute.
    Send {
        /// A whole frame line.
        bytes: &'a [u8],
        /// Why.
        reason: SendReason,
    },
    /// A line that is not a frame (may be logged).
    Noise {
        /// Why it is noise.
        kind: NoiseKind,
        /// The line.
        text: &'a [u8],
    },
    /// A valid frame that needs no action.
    Ignored {
        /// Its header.
        header: FrameHeader,
        /// Why.
        reason: IgnoreReason,
    },
}

/// Server-side state machine: one receive buffer, one cached answer.
pub struct DeviceSession {
    decoder: LineDecoder,
    cache: AnswerCache,
    /// `(seq, request CRC)` of the request handed out and not yet answered.
    executing: Option<(u16, u32)>,
}

/// The last answer, kept apart from the decoder so both can be borrowed at once.
struct AnswerCache {
    tx: [u8; MAX_LINE + 1],
    tx_len: usize,
    /// `(seq, request CRC)` of the request whose answer is in `tx`.
    answered: Option<(u16, u32)>,
}

impl Default for DeviceSession {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceSession {
    /// A session that has answered nothing yet.
    pub const fn new() -> Self {
        Self {
            decoder: LineDecoder::new(),
            cache: AnswerCache {
                tx: [0; MAX_LINE + 1],
                tx_len: 0,
                answered: None,
            },
            executing: None,
        }
    }

    /// Consumes input up to the next event (see [`LineDecoder::feed`]). Out of line on purpose
    /// (device image size: inlined into a single caller it grows the caller's frame).
    #[inline(never)]
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<DeviceEvent<'_>>) {
        let (used, event) = self.decoder.feed(input);
        let frame = match event {
            None => return (used, None),
            Some(Event::Noise { kind, text }) => {
                return (used, Some(DeviceEvent::Noise { kind, text }));
            }
            Some(Event::Frame(frame)) => frame,
        };
        let header = frame.header;
        let key = (header.seq, frame.crc);
        if header.dir != Dir::Request {
            return (
                used,
                Some(DeviceEvent::Ignored {
                    header,
                    reason: IgnoreReason::WrongDirection,
                }),
            );
        }
        if header.version != PROTOCOL_VERSION {
            let err = WireError::new(
                ErrorCode::VersionMismatch {
                    device: PROTOCOL_VERSION,
                },
                "device speaks another protocol version",
            );
            let bytes = self.cache.answer(key, &Response::Error(err));
            return (
                used,
                Some(DeviceEvent::Send {
                    bytes,
                    reason: SendReason::VersionMismatch,
                }),
            );
        }
        let request = Request::decode(frame.payload);
        let is_hello = matches!(request, Ok(Request::Hello));
        if !is_hello && let Some((last_seq, last_crc)) = self.cache.answered {
            if key == (last_seq, last_crc) {
                let bytes = self.cache.bytes();
                return (
                    used,
                    Some(DeviceEvent::Send {
                        bytes,
                        reason: SendReason::Replay,
                    }),
                );
            }
            let behind = last_seq.wrapping_sub(header.seq);
            if (1..=STALE_WINDOW).contains(&behind) {
                let reason = IgnoreReason::Stale;
                return (used, Some(DeviceEvent::Ignored { header, reason }));
            }
        }
        let checked = request
            .map_err(|_| "payload does not decode")
            .and_then(|r| r.validate().map(|()| r).map_err(|_| "field out of range"));
        match checked {
            Ok(request) => {
                self.executing = Some(key);
                (
                    used,
                    Some(DeviceEvent::Request {
                        seq: header.seq,
                        request,
                    }),
                )
            }
            Err(why) => {
                let err = WireError::new(ErrorCode::BadRequest, why);
                let bytes = self.cache.answer(key, &Response::Error(err));
                (
                    used,
                    Some(DeviceEvent::Send {
                        bytes,
                        reason: SendReason::BadRequest,
                    }),
                )
            }
        }
    }

    /// Encodes the answer to request `seq`, caches it for retransmissions and returns the frame
    /// line to write. A response that cannot be encoded is replaced by an
    /// [`ErrorCode::Internal`] error.
    pub fn respond(&mut self, seq: u16, response: &Response) -> &[u8] {
        let key = match self.executing.take() {
            Some(k) if k.0 == seq => k,
            // Not the request we handed out: answer, but never replay it for another request.
            _ => (seq, 0),
        };
        self.cache.answer(key, response)
    }

    /// The last answer sent, for a caller that wants to resend it (e.g. after a baud change).
    pub fn last_answer(&self) -> Option<&[u8]> {
        self.cache.answered.map(|_| self.cache.bytes())
    }

    /// Forgets the cached answer and any partial line (e.g. after a reboot request).
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.cache.answered = None;
        self.cache.tx_len = 0;
        self.executing = None;
    }
}

impl AnswerCache {
    fn bytes(&self) -> &[u8] {
        self.tx.get(..self.tx_len).unwrap_or_default()
    }

    fn answer(&mut self, key: (u16, u32), response: &Response) -> &[u8] {
        let len = match response.encode(key.0, &mut self.tx) {
            Ok(n) => n,
            Err(_) => {
                let err = WireError::new(ErrorCode::Internal, "response does not encode");
                Response::Error(err)
                    .encode(key.0, &mut self.tx)
                    .unwrap_or(0)
            }
        };
        self.tx_len = len;
        self.answered = Some(key);
        self.tx.get(..len).unwrap_or_default()
    }
}
