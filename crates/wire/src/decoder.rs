//! Sans-IO line splitter: bytes in, [`Event`]s out, one fixed buffer.

use crate::frame::{Frame, NoiseKind, parse_frame};
use crate::{MAX_LINE, MAX_PAYLOAD};

/// What one finished line turned out to be.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'a> {
    /// A frame whose grammar and CRC are right.
    Frame(Frame<'a>),
    /// A line that is not a frame: log output, boot ROM text, a corrupted or cut frame.
    Noise {
        /// Why it is noise.
        kind: NoiseKind,
        /// The line's bytes (at most [`MAX_LINE`]), for logging; may be any bytes.
        text: &'a [u8],
    },
}

/// Splits a byte stream into lines and classifies each line.
///
/// Lines end at `\n` or `\r` (so `\r\n`, `\n` and `\r` all work; empty lines are skipped). A `~`
/// always starts a new frame: whatever came before it on the same line (say boot ROM garbage
/// without a newline, or the first half of a frame cut off by a reset) is reported as noise first.
pub struct LineDecoder {
    line: [u8; MAX_LINE],
    len: usize,
    overlong: bool,
    /// The previous call returned an event borrowing `line`; clear it on the next call.
    reported: bool,
    payload: [u8; MAX_PAYLOAD],
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl LineDecoder {
    /// An empty decoder.
    pub const fn new() -> Self {
        Self {
            line: [0; MAX_LINE],
            len: 0,
            overlong: false,
            reported: false,
            payload: [0; MAX_PAYLOAD],
        }
    }

    /// Forgets a partly received line.
    pub fn reset(&mut self) {
        self.len = 0;
        self.overlong = false;
        self.reported = false;
    }

    /// Consumes bytes from `input` up to and including the first one that completes an event.
    ///
    /// Returns how many bytes were consumed and the event, if any. Call again with the rest of
    /// the input until it is used up: `(input.len(), None)` means everything was buffered.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Event<'_>>) {
        if self.reported {
            self.reset();
        }
        for (i, &b) in input.iter().enumerate() {
            match b {
                b'\n' | b'\r' => {
                    if self.len == 0 && !self.overlong {
                        continue;
                    }
                    self.reported = true;
                    return (i + 1, Some(self.finish()));
                }
                // A `~` mid-line starts a new frame; report what was before it without consuming
                // the `~`, so the next call starts the new line with it.
                b'~' if self.len > 0 || self.overlong => {
                    self.reported = true;
                    let kind = if self.overlong {
                        NoiseKind::Overlong
                    } else if self.text().starts_with(b"~K") {
                        NoiseKind::Truncated
                    } else {
                        NoiseKind::NotFrame
                    };
                    return (
                        i,
                        Some(Event::Noise {
                            kind,
                            text: self.text(),
                        }),
                    );
                }
                _ => match self.line.get_mut(self.len) {
                    Some(slot) => {
                        *slot = b;
                        self.len += 1;
                    }
                    None => self.overlong = true,
                },
            }
        }
        (input.len(), None)
    }

    fn text(&self) -> &[u8] {
        self.line.get(..self.len).unwrap_or_default()
    }

    fn finish(&mut self) -> Event<'_> {
        if self.overlong {
            return Event::Noise {
                kind: NoiseKind::Overlong,
                text: self.text(),
            };
        }
        let line = self.line.get(..self.len).unwrap_or_default();
        match parse_frame(line, &mut self.payload) {
            Ok(frame) => Event::Frame(frame),
            Err(kind) => Event::Noise { kind, text: line },
        }
    }
}
