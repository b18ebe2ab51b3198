//! Ports for driving a [`Station`](super::Station) with device answers chosen by a test or a
//! fuzzer instead of a real device: [`ScriptedDevice`] answers every request with a closure
//! (in memory, no device at all); [`Tamper`] sits between the host and a real (or simulated)
//! device and lets a closure replace the device's answers. Both speak the real framing, so the
//! engine, the link and the protocol run unchanged.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Duration;

use keystamp_wire::{Dir, MAX_LINE, MAX_PAYLOAD, Request, Response, parse_frame};

use crate::link::Port;

/// Splits complete `\n`-terminated lines off `buf` (the terminator and a `\r` before it
/// removed); a partial line stays. A line longer than a frame can be is dropped unread.
fn take_lines(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    while let Some(end) = buf.iter().position(|&b| b == b'\n') {
        let mut line: Vec<u8> = buf.drain(..=end).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        lines.push(line);
    }
    if buf.len() > 2 * MAX_LINE {
        buf.clear();
    }
    lines
}

/// The request a host frame line carries, with its sequence number.
fn request_of(line: &[u8]) -> Option<(u16, Request)> {
    let mut payload = [0u8; MAX_PAYLOAD];
    let frame = parse_frame(line, &mut payload).ok()?;
    if frame.header.dir != Dir::Request {
        return None;
    }
    Request::decode(frame.payload)
        .ok()
        .map(|r| (frame.header.seq, r))
}

/// A response frame line (with `\n`) for request `seq`, or `None` if it cannot be encoded.
fn response_line(seq: u16, response: &Response) -> Option<Vec<u8>> {
    let mut out = vec![0u8; MAX_LINE + 1];
    let n = response.encode(seq, &mut out).ok()?;
    out.truncate(n);
    Some(out)
}

/// What a scripted device sends back for one request.
// Made once per request and moved once; boxing the answer would only burden the scripts.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// A well-formed answer frame.
    Answer(Response),
    /// Raw bytes written as they are (a broken frame, noise, a frame for another sequence).
    Raw(Vec<u8>),
    /// Raw bytes (boot output, logs, a corrupted frame), then a well-formed answer.
    After(Vec<u8>, Response),
    /// Nothing: the host times out and retransmits.
    Silence,
}

/// An in-memory device: every request the host writes is decoded and answered by `answer`.
pub struct ScriptedDevice<F> {
    answer: F,
    from_host: Vec<u8>,
    to_host: VecDeque<u8>,
    timeout: Duration,
}

impl<F: FnMut(&Request) -> Reply + Send> ScriptedDevice<F> {
    /// A device answering with `answer`.
    pub fn new(answer: F) -> Self {
        ScriptedDevice {
            answer,
            from_host: Vec::new(),
            to_host: VecDeque::new(),
            timeout: Duration::from_millis(20),
        }
    }
}

impl<F: FnMut(&Request) -> Reply + Send> Write for ScriptedDevice<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.from_host.extend_from_slice(buf);
        for line in take_lines(&mut self.from_host) {
            let Some((seq, request)) = request_of(&line) else {
                continue;
            };
            match (self.answer)(&request) {
                Reply::Answer(r) => {
                    // An answer the wire cannot carry becomes silence, as on a real link.
                    if let Some(bytes) = response_line(seq, &r) {
                        self.to_host.extend(bytes);
                    }
                }
                Reply::Raw(bytes) => self.to_host.extend(bytes),
                Reply::After(bytes, r) => {
                    self.to_host.extend(bytes);
                    if let Some(bytes) = response_line(seq, &r) {
                        self.to_host.extend(bytes);
                    }
                }
                Reply::Silence => {}
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<F> Read for ScriptedDevice<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.to_host.is_empty() {
            // Nothing to say: behave like a quiet serial port (block for the timeout).
            std::thread::sleep(self.timeout);
            return Err(io::ErrorKind::TimedOut.into());
        }
        let n = buf.len().min(self.to_host.len());
        for (slot, byte) in buf.iter_mut().zip(self.to_host.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl<F: FnMut(&Request) -> Reply + Send> Port for ScriptedDevice<F> {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.timeout = timeout;
        Ok(())
    }
}

/// A port in front of `inner` (a device) whose answers pass through `hook` (the request, the
/// device's answer) before the host sees them; lines that are not answer frames pass unchanged.
pub struct Tamper<P, F> {
    inner: P,
    hook: F,
    from_host: Vec<u8>,
    /// Requests written and not yet answered, by sequence number (retransmissions repeat one).
    requests: VecDeque<(u16, Request)>,
    from_device: Vec<u8>,
    to_host: VecDeque<u8>,
}

impl<P: Port, F: FnMut(&Request, Response) -> Response + Send> Tamper<P, F> {
    /// `inner` with its answers rewritten by `hook`.
    pub fn new(inner: P, hook: F) -> Self {
        Tamper {
            inner,
            hook,
            from_host: Vec::new(),
            requests: VecDeque::new(),
            from_device: Vec::new(),
            to_host: VecDeque::new(),
        }
    }
}

impl<P: Port, F: FnMut(&Request, Response) -> Response + Send> Write for Tamper<P, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.from_host.extend_from_slice(&buf[..n.min(buf.len())]);
        for line in take_lines(&mut self.from_host) {
            if let Some(entry) = request_of(&line) {
                self.requests.push_back(entry);
                // Only the latest few can still be answered.
                while self.requests.len() > 8 {
                    self.requests.pop_front();
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<P: Port, F: FnMut(&Request, Response) -> Response + Send> Read for Tamper<P, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.to_host.is_empty() {
            let mut raw = [0u8; 1024];
            let n = self.inner.read(&mut raw)?;
            self.from_device.extend_from_slice(&raw[..n.min(raw.len())]);
            for line in take_lines(&mut self.from_device) {
                let mut payload = [0u8; MAX_PAYLOAD];
                let answer = parse_frame(&line, &mut payload)
                    .ok()
                    .filter(|f| f.header.dir == Dir::Response)
                    .and_then(|f| Some((f.header.seq, Response::decode(f.payload).ok()?)));
                let request = answer.as_ref().and_then(|(seq, _)| {
                    self.requests
                        .iter()
                        .rev()
                        .find(|(s, _)| s == seq)
                        .map(|(_, r)| r.clone())
                });
                match (answer, request) {
                    (Some((seq, response)), Some(request)) => {
                        let rewritten = (self.hook)(&request, response);
                        if let Some(bytes) = response_line(seq, &rewritten) {
                            self.to_host.extend(bytes);
                        }
                    }
                    _ => {
                        self.to_host.extend(line);
                        self.to_host.push_back(b'\n');
                    }
                }
            }
        }
        let n = buf.len().min(self.to_host.len());
        for (slot, byte) in buf.iter_mut().zip(self.to_host.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl<P: Port, F: FnMut(&Request, Response) -> Response + Send> Port for Tamper<P, F> {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.inner.set_read_timeout(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystamp_wire::{HostEvent, HostSession, RetryPolicy};

    #[test]
    fn a_scripted_device_answers_the_request_it_was_sent_with_the_same_sequence() {
        let mut dev = ScriptedDevice::new(|r: &Request| match r {
            Request::LockSlot { slot: 10 } => Reply::Answer(Response::Ok),
            _ => Reply::Silence,
        });
        let mut host = HostSession::new(RetryPolicy::default(), 0x1234);
        let line = host
            .send(&Request::LockSlot { slot: 10 }, 0)
            .expect("encodes")
            .to_vec();
        dev.write_all(&line).expect("written");
        let mut buf = [0u8; 256];
        let n = dev.read(&mut buf).expect("an answer");
        let (_, event) = host.feed(&buf[..n]);
        assert!(matches!(
            event,
            Some(HostEvent::Response {
                response: Response::Ok,
                ..
            })
        ));
    }

    #[test]
    fn an_overlong_line_without_terminator_is_dropped() {
        let mut buf = vec![b'x'; 3 * MAX_LINE];
        assert!(take_lines(&mut buf).is_empty());
        assert!(buf.is_empty());
    }
}
