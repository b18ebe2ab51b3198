//! The host end: numbers requests, matches answers, retransmits after timeouts.

use crate::decoder::{Event, LineDecoder};
use crate::frame::{Dir, EncodeError, FrameHeader, NoiseKind};
use crate::message::{DecodeError, ErrorCode, Request, Response};
use crate::{MAX_LINE, PROTOCOL_VERSION};

/// Timeout and retry rules (docs/protocol.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Slack added to every timeout, in ms (host and OS latency, device scheduling).
    pub base_timeout_ms: u32,
    /// Link speed, used to add the time both lines take on the wire.
    pub baud: u32,
    /// Transmissions of one request before giving up (first send included).
    pub max_attempts: u8,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_timeout_ms: 100,
            baud: 115_200,
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// Milliseconds `chars` characters take on the wire (10 bits each: start, 8 data, stop).
    pub fn wire_ms(&self, chars: usize) -> u32 {
        let bits = (chars as u64).saturating_mul(10_000);
        let baud = u64::from(self.baud.max(1));
        u32::try_from(bits.div_ceil(baud)).unwrap_or(u32::MAX)
    }

    /// How long to wait for the answer to `request` sent as a `line_len`-character line: the
    /// request and the longest possible answer on the wire, the device's work, and the slack.
    pub fn timeout_ms(&self, request: &Request, line_len: usize) -> u32 {
        self.base_timeout_ms
            .saturating_add(request.device_time_hint_ms())
            .saturating_add(self.wire_ms(line_len.saturating_add(MAX_LINE + 1)))
    }
}

/// Why a request failed on the host side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// A request is still outstanding; wait for its answer or [`HostSession::abandon`] it.
    Busy,
    /// The request breaks the protocol's limits ([`Request::validate`]).
    Invalid(ErrorCode),
    /// The request does not encode.
    Encode(EncodeError),
    /// The device answered in another protocol version.
    VersionMismatch {
        /// Ours.
        host: u8,
        /// The version in the device's frame.
        device: u8,
    },
    /// A checksummed answer whose payload does not decode (a device bug, not noise).
    BadResponse(DecodeError),
    /// An answer of the wrong type for the request.
    UnexpectedResponse,
}

/// What a received line meant for the host.
// Without alloc the response cannot be boxed; an event is moved once, so the size is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum HostEvent<'a> {
    /// The answer to the outstanding request (which is now finished). May be
    /// [`Response::Error`].
    Response {
        /// Its sequence number.
        seq: u16,
        /// The answer.
        response: Response,
    },
    /// The outstanding request failed for good.
    Failed {
        /// Its sequence number.
        seq: u16,
        /// Why.
        error: HostError,
    },
    /// A line that is not a frame (device logs, boot output, corrupted frames).
    Noise {
        /// Why it is noise.
        kind: NoiseKind,
        /// The line.
        text: &'a [u8],
    },
    /// A valid frame that is not the awaited answer (a duplicate, an echo): ignored.
    Ignored {
        /// Its header.
        header: FrameHeader,
    },
}

/// What [`HostSession::poll`] says to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll<'a> {
    /// Nothing outstanding.
    Idle,
    /// Keep reading until `deadline_ms`.
    Wait {
        /// When to poll again.
        deadline_ms: u64,
    },
    /// The timeout passed: write these bytes again (same sequence number), then keep reading.
    Resend(&'a [u8]),
    /// All attempts timed out; the request is dropped. The device may or may not have executed
    /// it, so the caller re-reads state (e.g. [`Request::Hello`]) before going on.
    GaveUp {
        /// The request's sequence number.
        seq: u16,
        /// How many times it was sent.
        attempts: u8,
    },
}

struct Pending {
    seq: u16,
    request: Request,
    attempts: u8,
    timeout_ms: u32,
    deadline_ms: u64,
}

/// Client-side state machine: at most one request in flight.
pub struct HostSession {
    decoder: LineDecoder,
    policy: RetryPolicy,
    next_seq: u16,
    pending: Option<Pending>,
    tx: [u8; MAX_LINE + 1],
    tx_len: usize,
}

impl HostSession {
    /// A session whose first request gets sequence number `first_seq` (pick it at random or from
    /// the clock, so a restarted host does not reuse the previous run's numbers).
    pub fn new(policy: RetryPolicy, first_seq: u16) -> Self {
        Self {
            decoder: LineDecoder::new(),
            policy,
            next_seq: first_seq,
            pending: None,
            tx: [0; MAX_LINE + 1],
            tx_len: 0,
        }
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Changes the retry policy (e.g. the baud rate after [`Request::SetBaud`]); applies from
    /// the next request.
    pub fn set_policy(&mut self, policy: RetryPolicy) {
        self.policy = policy;
    }

    /// Sequence number of the outstanding request.
    pub fn pending_seq(&self) -> Option<u16> {
        self.pending.as_ref().map(|p| p.seq)
    }

    /// Starts `request` at time `now_ms`; returns the frame line to write.
    pub fn send(&mut self, request: &Request, now_ms: u64) -> Result<&[u8], HostError> {
        if self.pending.is_some() {
            return Err(HostError::Busy);
        }
        request.validate().map_err(HostError::Invalid)?;
        let seq = self.next_seq;
        let len = request
            .encode(seq, &mut self.tx)
            .map_err(HostError::Encode)?;
        self.tx_len = len;
        self.next_seq = seq.wrapping_add(1);
        let timeout_ms = self.policy.timeout_ms(request, len);
        self.pending = Some(Pending {
            seq,
            request: request.clone(),
            attempts: 1,
            timeout_ms,
            deadline_ms: now_ms.saturating_add(timeout_ms.into()),
        });
        Ok(self.tx.get(..len).unwrap_or_default())
    }

    /// Drops the outstanding request without waiting.
    pub fn abandon(&mut self) {
        self.pending = None;
    }

    /// Checks the timeout at time `now_ms`.
    pub fn poll(&mut self, now_ms: u64) -> Poll<'_> {
        let Some(p) = self.pending.as_mut() else {
            return Poll::Idle;
        };
        if now_ms < p.deadline_ms {
            return Poll::Wait {
                deadline_ms: p.deadline_ms,
            };
        }
        if p.attempts >= self.policy.max_attempts {
            let (seq, attempts) = (p.seq, p.attempts);
            self.pending = None;
            return Poll::GaveUp { seq, attempts };
        }
        p.attempts += 1;
        p.deadline_ms = now_ms.saturating_add(p.timeout_ms.into());
        Poll::Resend(self.tx.get(..self.tx_len).unwrap_or_default())
    }

    /// Consumes input up to the next event (see [`crate::LineDecoder::feed`]).
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<HostEvent<'_>>) {
        let (used, event) = self.decoder.feed(input);
        let frame = match event {
            None => return (used, None),
            Some(Event::Noise { kind, text }) => {
                return (used, Some(HostEvent::Noise { kind, text }));
            }
            Some(Event::Frame(frame)) => frame,
        };
        let header = frame.header;
        let awaited = self.pending.as_ref().is_some_and(|p| p.seq == header.seq);
        if header.dir != Dir::Response || !awaited {
            return (used, Some(HostEvent::Ignored { header }));
        }
        let seq = header.seq;
        let result = if header.version != PROTOCOL_VERSION {
            Err(HostError::VersionMismatch {
                host: PROTOCOL_VERSION,
                device: header.version,
            })
        } else {
            match Response::decode(frame.payload) {
                Err(e) => Err(HostError::BadResponse(e)),
                Ok(response) => {
                    let fits = self
                        .pending
                        .as_ref()
                        .is_some_and(|p| p.request.expects(&response));
                    if fits {
                        Ok(response)
                    } else {
                        Err(HostError::UnexpectedResponse)
                    }
                }
            }
        };
        self.pending = None;
        let event = match result {
            Ok(response) => HostEvent::Response { seq, response },
            Err(error) => HostEvent::Failed { seq, error },
        };
        (used, Some(event))
    }
}
