//! The host end of one serial link: frames requests with `keystamp-wire`, paces them at the
//! configured baud rate, reads answers (skipping boot output and logs), and retransmits with the
//! same sequence number after a timeout.
//!
//! A port is named as the OS names it — `/dev/ttyUSB0`, `/dev/ttyACM0`, `/dev/cu.usbserial-*`,
//! `COM3` — or, for simulated devices in this process, `inproc:<device>#<n>` ([`inproc`]).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use keystamp_wire::{
    HostError, HostEvent, HostSession, Poll, Request, Response, RetryPolicy, WireError,
};

pub mod inproc;

/// A byte stream with a read timeout: a serial port, a pseudo-terminal, an in-process channel,
/// or a test double.
pub trait Port: Read + Write + Send {
    /// Sets how long one `read` may block.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;
    /// Switches the line to `baud` (a port without a line speed ignores it).
    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        let _ = baud;
        Ok(())
    }
}

impl Port for Box<dyn serialport::SerialPort> {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_timeout(timeout).map_err(io::Error::other)
    }

    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        self.set_baud_rate(baud).map_err(io::Error::other)
    }
}

/// Opens a serial port (or pseudo-terminal) by path or COM name, or an in-process port by its
/// `inproc:` name.
pub fn open_port(path: &str, baud: u32) -> Result<Box<dyn serialport::SerialPort>, LinkError> {
    let opened = if inproc::is_in_process(path) {
        inproc::connect(path).map(|mut end| {
            // Only reported back: the channel has no line speed.
            let _ = serialport::SerialPort::set_baud_rate(&mut end, baud);
            Box::new(end) as Box<dyn serialport::SerialPort>
        })
    } else {
        serialport::new(path, baud)
            .timeout(Duration::from_millis(20))
            .open()
    };
    opened.map_err(|source| LinkError::Open {
        port: path.to_string(),
        source,
    })
}

/// Why a request over the link failed.
#[derive(Debug)]
pub enum LinkError {
    /// The port could not be opened.
    Open {
        /// Port path.
        port: String,
        /// The OS's reason.
        source: serialport::Error,
    },
    /// No answer after every retransmission.
    NoAnswer {
        /// The request's name.
        request: &'static str,
        /// Transmissions made.
        attempts: u8,
    },
    /// The device answered with an error.
    Device {
        /// The request's name.
        request: &'static str,
        /// The device's error.
        error: WireError,
    },
    /// The answer broke the protocol (wrong version, wrong type, undecodable).
    Protocol {
        /// The request's name.
        request: &'static str,
        /// What was wrong.
        error: HostError,
    },
    /// Reading or writing the port failed.
    Io(io::Error),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Open { port, source } => write!(f, "cannot open {port}: {source}"),
            LinkError::NoAnswer { request, attempts } => write!(
                f,
                "the device did not answer {request} ({attempts} attempts); check the cable, \
                 that the device runs the keystamp firmware, and the baud rate"
            ),
            LinkError::Device { request, error } => {
                // WireError's Display escapes the device's detail text (hostile input).
                write!(f, "the device refused {request}: {error}")
            }
            LinkError::Protocol { request, error } => match error {
                // "device speaks protocol version N, this keystamp speaks M: update ...".
                HostError::VersionMismatch { .. } => write!(f, "{error}"),
                other => write!(f, "bad answer to {request}: {other}"),
            },
            LinkError::Io(e) => write!(f, "serial I/O failed: {e}"),
        }
    }
}

impl std::error::Error for LinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LinkError::Io(e) => Some(e),
            LinkError::Open { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<io::Error> for LinkError {
    fn from(e: io::Error) -> Self {
        LinkError::Io(e)
    }
}

/// Counters for one link, for the timing report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Requests answered.
    pub requests: u64,
    /// Bytes written (frames and retransmissions).
    pub bytes_out: u64,
    /// Bytes read (answers and noise).
    pub bytes_in: u64,
    /// Retransmissions after a timeout.
    pub retries: u64,
    /// Lines that were not frames.
    pub noise_lines: u64,
    /// The line speed at the end (after any `SetBaud` negotiation).
    pub baud: u32,
}

/// The rates the host proposes with `SetBaud`, fastest first (ESP32 UARTs reach 921600 with
/// the usual USB bridges).
pub const BAUD_STEPS: &[u32] = &[921_600, 460_800, 230_400];

/// One host↔device link.
pub struct Link<P: Port> {
    port: P,
    session: HostSession,
    epoch: Instant,
    /// Pace writes at this baud rate (10 bits per byte), as a real UART would.
    pace_baud: Option<u32>,
    /// The line speed now.
    baud: u32,
    rx: Vec<u8>,
    stats: LinkStats,
    last_noise: Option<String>,
}

impl<P: Port> Link<P> {
    /// A link over `port`. `pace_baud` makes writes take as long as they would on a UART at that
    /// rate (used for pseudo-terminals, which have no speed of their own).
    pub fn new(port: P, policy: RetryPolicy, pace_baud: Option<u32>) -> Self {
        // A per-run starting sequence number, so a restarted host does not collide with the
        // device's cached answer from the previous run.
        let first_seq = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            & 0x7FFF) as u16;
        Self {
            port,
            session: HostSession::new(policy, first_seq),
            epoch: Instant::now(),
            pace_baud,
            baud: pace_baud.unwrap_or(115_200),
            rx: Vec::with_capacity(2048),
            stats: LinkStats::default(),
            last_noise: None,
        }
    }

    /// Says the port was opened at `baud` (the rate negotiation starts from).
    pub fn with_baud(mut self, baud: u32) -> Self {
        self.baud = baud;
        self
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        LinkStats {
            baud: self.baud,
            ..self.stats
        }
    }

    /// The line speed now.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// Switches this end of the line to `baud` (pacing and timeouts follow).
    pub fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        self.port.set_baud(baud)?;
        self.baud = baud;
        if self.pace_baud.is_some() {
            self.pace_baud = Some(baud);
        }
        let policy = RetryPolicy {
            baud,
            ..*self.session.policy()
        };
        self.session.set_policy(policy);
        Ok(())
    }

    /// Raises the line speed with the device's `SetBaud` (docs/protocol.md §4.2): proposes the
    /// [`BAUD_STEPS`] up to `max`, fastest first, going one step lower when the device says a
    /// rate is above its maximum; after the device's `Ok` both ends switch and a `Hello` at the
    /// new rate confirms it. On any doubt — no answer to `SetBaud`, no confirmation — the host
    /// goes back to the old rate and waits (up to the device's own fallback,
    /// [`keystamp_agent::BAUD_CONFIRM_MS`], and a margin) until the device answers there; only
    /// if it never does is the new rate tried once more (the device did confirm, its answer
    /// was lost). Returns the rate both ends use at the end. A device that does not support
    /// `SetBaud` (its `Hello` features) is not asked.
    pub fn negotiate_baud(&mut self, max: u32, features: u32) -> Result<u32, LinkError> {
        if features & keystamp_wire::FEATURE_SET_BAUD == 0 {
            return Ok(self.baud);
        }
        let start = self.baud;
        for &rate in BAUD_STEPS.iter().filter(|&&r| r <= max && r > start) {
            match self.call(&Request::SetBaud { baud: rate }) {
                Ok(_) => {}
                // Above this device's maximum: the next step down.
                Err(LinkError::Device { error, .. })
                    if error.code == keystamp_wire::ErrorCode::OutOfRange =>
                {
                    continue;
                }
                // Refused (not supported after all): stay.
                Err(LinkError::Device { .. }) => return Ok(start),
                // The device may or may not have switched: wait for it at the old rate.
                Err(LinkError::NoAnswer { .. } | LinkError::Protocol { .. }) => {
                    return self.fall_back(start, rate);
                }
                Err(e) => return Err(e),
            }
            self.set_baud(rate)?;
            if self.answers_hello()? {
                return Ok(rate);
            }
            return self.fall_back(start, rate);
        }
        Ok(start)
    }

    /// For a device that does not answer `Hello` at this rate: it may still be at a rate an
    /// earlier session negotiated (it returns to 115200 only after 4 s of silence). Tries the
    /// [`BAUD_STEPS`] up to `max`; returns the rate it answered at, or `None` (the line back at
    /// the rate it was).
    pub fn find_rate(&mut self, max: u32) -> Result<Option<u32>, LinkError> {
        let start = self.baud;
        for &rate in BAUD_STEPS.iter().filter(|&&r| r <= max && r != start) {
            self.set_baud(rate)?;
            if self.answers_hello()? {
                return Ok(Some(rate));
            }
        }
        self.set_baud(start)?;
        Ok(None)
    }

    /// Back to `old` until the device answers there; `new` once more if it never does.
    fn fall_back(&mut self, old: u32, new: u32) -> Result<u32, LinkError> {
        self.set_baud(old)?;
        let patience = Duration::from_millis(u64::from(keystamp_agent::BAUD_CONFIRM_MS) + 2000);
        let started = Instant::now();
        while started.elapsed() < patience {
            if self.answers_hello()? {
                return Ok(old);
            }
        }
        self.set_baud(new)?;
        if self.answers_hello()? {
            return Ok(new);
        }
        // Neither: leave the line at the rate the device returns to after a reset.
        self.set_baud(old)?;
        Err(LinkError::NoAnswer {
            request: "Hello",
            attempts: 0,
        })
    }

    /// Whether the device answers `Hello` now (after its retransmissions).
    fn answers_hello(&mut self) -> Result<bool, LinkError> {
        match self.call(&Request::Hello) {
            Ok(Response::Hello(_)) => Ok(true),
            Ok(_)
            | Err(
                LinkError::NoAnswer { .. } | LinkError::Protocol { .. } | LinkError::Device { .. },
            ) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The last line that was not a frame (boot output, logs), for error messages.
    pub fn last_noise(&self) -> Option<&str> {
        self.last_noise.as_deref()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn write_paced(
        port: &mut P,
        stats: &mut LinkStats,
        pace: Option<u32>,
        bytes: &[u8],
    ) -> io::Result<()> {
        let started = Instant::now();
        port.write_all(bytes)?;
        port.flush()?;
        stats.bytes_out += bytes.len() as u64;
        if let Some(baud) = pace {
            let wire =
                Duration::from_micros(bytes.len() as u64 * 10_000_000 / u64::from(baud.max(1)));
            if let Some(rest) = wire.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        Ok(())
    }

    /// Sends `request` and waits for its answer, retransmitting after timeouts. A
    /// [`Response::Error`] becomes [`LinkError::Device`].
    pub fn call(&mut self, request: &Request) -> Result<Response, LinkError> {
        let name = request.name();
        let now = self.now_ms();
        let protocol = |error| LinkError::Protocol {
            request: name,
            error,
        };
        let bytes = self.session.send(request, now).map_err(protocol)?;
        Self::write_paced(&mut self.port, &mut self.stats, self.pace_baud, bytes)?;
        // Anything already buffered belongs to earlier exchanges.
        self.rx.clear();
        let mut buf = [0u8; 1024];
        loop {
            // Handle what is buffered first.
            while !self.rx.is_empty() {
                let (used, event) = self.session.feed(&self.rx);
                let outcome = match event {
                    Some(HostEvent::Response { response, .. }) => Some(Ok(response)),
                    Some(HostEvent::Failed { error, .. }) => Some(Err(protocol(error))),
                    Some(HostEvent::Noise { text, .. }) => {
                        self.stats.noise_lines += 1;
                        let line = String::from_utf8_lossy(text).trim().to_string();
                        if !line.is_empty() {
                            self.last_noise = Some(line);
                        }
                        None
                    }
                    Some(HostEvent::Ignored { .. }) | None => None,
                };
                self.rx.drain(..used.min(self.rx.len()));
                if let Some(result) = outcome {
                    self.stats.requests += 1;
                    return match result {
                        Ok(Response::Error(error)) => Err(LinkError::Device {
                            request: name,
                            error,
                        }),
                        other => other,
                    };
                }
                if used == 0 {
                    break;
                }
            }
            let now = self.now_ms();
            let deadline = match self.session.poll(now) {
                Poll::Idle => {
                    return Err(LinkError::NoAnswer {
                        request: name,
                        attempts: 0,
                    });
                }
                Poll::Wait { deadline_ms } => deadline_ms,
                Poll::Resend(bytes) => {
                    self.stats.retries += 1;
                    Self::write_paced(&mut self.port, &mut self.stats, self.pace_baud, bytes)?;
                    continue;
                }
                Poll::GaveUp { attempts, .. } => {
                    return Err(LinkError::NoAnswer {
                        request: name,
                        attempts,
                    });
                }
            };
            let wait = Duration::from_millis(deadline.saturating_sub(now).clamp(1, 50));
            self.port.set_read_timeout(wait)?;
            match self.port.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    self.stats.bytes_in += n as u64;
                    self.rx.extend_from_slice(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(LinkError::Io(e)),
            }
        }
    }
}
