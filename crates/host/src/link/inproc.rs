//! In-process serial ports: a duplex byte channel between two threads of this process, for
//! simulated devices where pseudo-terminals do not exist (Windows), or when asked for.
//!
//! The device side is an [`InProcessListener`], registered under a port name such as
//! `inproc:dev00#3`. [`open_port`](super::open_port) resolves such a name with [`connect`], which
//! hands the host a fresh connection — as opening a serial port by path does — implementing
//! [`serialport::SerialPort`], so stations, the engine and tests use it unchanged. Like a serial
//! port opened by `serialport` (exclusive), a name has at most one open host end: a second open
//! is refused as busy. Bytes the device writes while no host has the port open are lost, as on a
//! UART with nothing attached.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};

use super::Port;

/// How in-process port names start; nothing else is opened as one.
pub const PREFIX: &str = "inproc:";

/// Bytes one direction holds before a write waits for the reader (a UART driver's buffer is
/// of this order; requests and answers are far smaller).
const CAPACITY: usize = 64 * 1024;

/// The in-process ports of this process, by name. `Weak`: a dropped listener's name resolves
/// to nothing even before its `Drop` removes it.
static PORTS: Mutex<BTreeMap<String, Weak<Shared>>> = Mutex::new(BTreeMap::new());

/// Numbers the ports, so two devices of the same name (two runs, two tests) never share one.
static NEXT_PORT: AtomicU64 = AtomicU64::new(0);

/// Whether `name` names an in-process port (rather than a serial port path or COM name).
pub fn is_in_process(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// Whether a simulated device of this process serves the in-process port `name` now.
pub fn exists(name: &str) -> bool {
    lock(&PORTS)
        .get(name)
        .is_some_and(|port| port.strong_count() > 0)
}

/// Locks, taking over a mutex a panicking thread left behind: the queues stay consistent
/// because every critical section is a single push or drain.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One direction: bytes written by one end, read by the other.
#[derive(Default)]
struct Pipe {
    state: Mutex<PipeState>,
    changed: Condvar,
    /// The line speeds of the writing and the reading end: bytes sent while they differ arrive
    /// garbled, as on a UART whose ends disagree on the rate.
    writer_baud: AtomicU32,
    reader_baud: AtomicU32,
}

/// What a receiver at the wrong rate makes of a byte: never a frame's printable ASCII or a line
/// end, so nothing sent at the wrong rate can be read as a frame.
fn garbled(byte: u8) -> u8 {
    byte | 0x80
}

#[derive(Default)]
struct PipeState {
    bytes: VecDeque<u8>,
    writer_gone: bool,
    reader_gone: bool,
}

impl Pipe {
    fn reader_gone(&self) -> bool {
        lock(&self.state).reader_gone
    }
}

/// One end of a duplex byte channel: reads wait up to the timeout, as a serial port's do.
pub struct DuplexEnd {
    name: String,
    rx: Arc<Pipe>,
    tx: Arc<Pipe>,
    timeout: Duration,
    baud: u32,
    data_bits: DataBits,
    flow_control: FlowControl,
    parity: Parity,
    stop_bits: StopBits,
}

/// A connected pair of ends named `name` (what [`SerialPort::name`] reports).
pub fn duplex(name: &str) -> (DuplexEnd, DuplexEnd) {
    let (a, b) = (Arc::new(Pipe::default()), Arc::new(Pipe::default()));
    let end = |rx: &Arc<Pipe>, tx: &Arc<Pipe>| DuplexEnd {
        name: name.to_string(),
        rx: rx.clone(),
        tx: tx.clone(),
        timeout: Duration::from_millis(20),
        baud: 115_200,
        data_bits: DataBits::Eight,
        flow_control: FlowControl::None,
        parity: Parity::None,
        stop_bits: StopBits::One,
    };
    for pipe in [&a, &b] {
        pipe.writer_baud.store(115_200, Ordering::Relaxed);
        pipe.reader_baud.store(115_200, Ordering::Relaxed);
    }
    (end(&a, &b), end(&b, &a))
}

impl DuplexEnd {
    /// This end's line speed: what it sends and how it samples what it receives.
    fn set_line_speed(&mut self, baud: u32) {
        self.baud = baud;
        self.tx.writer_baud.store(baud, Ordering::Relaxed);
        self.rx.reader_baud.store(baud, Ordering::Relaxed);
    }

    /// Whether the other end has been dropped (it can neither read nor write any more).
    pub fn peer_gone(&self) -> bool {
        self.tx.reader_gone()
    }
}

impl Read for DuplexEnd {
    /// Up to `buf.len()` bytes; waits up to the timeout for the first one. `Ok(0)`: the other
    /// end is gone and everything it wrote has been read. No byte in time: `TimedOut`.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + self.timeout;
        let mut state = lock(&self.rx.state);
        loop {
            if !state.bytes.is_empty() {
                let n = buf.len().min(state.bytes.len());
                for (dst, src) in buf.iter_mut().zip(state.bytes.drain(..n)) {
                    *dst = src;
                }
                self.rx.changed.notify_all();
                return Ok(n);
            }
            if state.writer_gone {
                return Ok(0);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            state = self
                .rx
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Write for DuplexEnd {
    /// Queues the bytes for the other end; waits up to the timeout while its buffer is full.
    /// The other end gone: `BrokenPipe`.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + self.timeout;
        let mut state = lock(&self.tx.state);
        loop {
            if state.reader_gone {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let room = CAPACITY.saturating_sub(state.bytes.len());
            if room > 0 {
                let n = room.min(buf.len());
                let mismatch = self.tx.writer_baud.load(Ordering::Relaxed)
                    != self.tx.reader_baud.load(Ordering::Relaxed);
                if mismatch {
                    state.bytes.extend(buf.iter().take(n).map(|&b| garbled(b)));
                } else {
                    state.bytes.extend(buf.iter().take(n));
                }
                self.tx.changed.notify_all();
                return Ok(n);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            state = self
                .tx
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for DuplexEnd {
    fn drop(&mut self) {
        lock(&self.rx.state).reader_gone = true;
        self.rx.changed.notify_all();
        lock(&self.tx.state).writer_gone = true;
        self.tx.changed.notify_all();
    }
}

impl Port for DuplexEnd {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.timeout = timeout;
        Ok(())
    }

    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        self.set_line_speed(baud);
        Ok(())
    }
}

/// The settings are kept and reported back but change nothing: the channel has no line to
/// configure. The modem lines read as a cable with everything connected.
impl SerialPort for DuplexEnd {
    fn name(&self) -> Option<String> {
        Some(self.name.clone())
    }
    fn baud_rate(&self) -> serialport::Result<u32> {
        Ok(self.baud)
    }
    fn data_bits(&self) -> serialport::Result<DataBits> {
        Ok(self.data_bits)
    }
    fn flow_control(&self) -> serialport::Result<FlowControl> {
        Ok(self.flow_control)
    }
    fn parity(&self) -> serialport::Result<Parity> {
        Ok(self.parity)
    }
    fn stop_bits(&self) -> serialport::Result<StopBits> {
        Ok(self.stop_bits)
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn set_baud_rate(&mut self, baud_rate: u32) -> serialport::Result<()> {
        self.set_line_speed(baud_rate);
        Ok(())
    }
    fn set_data_bits(&mut self, data_bits: DataBits) -> serialport::Result<()> {
        self.data_bits = data_bits;
        Ok(())
    }
    fn set_flow_control(&mut self, flow_control: FlowControl) -> serialport::Result<()> {
        self.flow_control = flow_control;
        Ok(())
    }
    fn set_parity(&mut self, parity: Parity) -> serialport::Result<()> {
        self.parity = parity;
        Ok(())
    }
    fn set_stop_bits(&mut self, stop_bits: StopBits) -> serialport::Result<()> {
        self.stop_bits = stop_bits;
        Ok(())
    }
    fn set_timeout(&mut self, timeout: Duration) -> serialport::Result<()> {
        self.timeout = timeout;
        Ok(())
    }
    fn write_request_to_send(&mut self, _level: bool) -> serialport::Result<()> {
        Ok(())
    }
    fn write_data_terminal_ready(&mut self, _level: bool) -> serialport::Result<()> {
        Ok(())
    }
    fn read_clear_to_send(&mut self) -> serialport::Result<bool> {
        Ok(true)
    }
    fn read_data_set_ready(&mut self) -> serialport::Result<bool> {
        Ok(true)
    }
    fn read_ring_indicator(&mut self) -> serialport::Result<bool> {
        Ok(false)
    }
    fn read_carrier_detect(&mut self) -> serialport::Result<bool> {
        Ok(true)
    }
    fn bytes_to_read(&self) -> serialport::Result<u32> {
        Ok(u32::try_from(lock(&self.rx.state).bytes.len()).unwrap_or(u32::MAX))
    }
    fn bytes_to_write(&self) -> serialport::Result<u32> {
        // Written bytes are in the other end's input at once.
        Ok(0)
    }
    fn clear(&self, buffer_to_clear: ClearBuffer) -> serialport::Result<()> {
        if matches!(buffer_to_clear, ClearBuffer::Input | ClearBuffer::All) {
            lock(&self.rx.state).bytes.clear();
            self.rx.changed.notify_all();
        }
        Ok(())
    }
    fn try_clone(&self) -> serialport::Result<Box<dyn SerialPort>> {
        Err(serialport::Error::new(
            serialport::ErrorKind::Unknown,
            "an in-process port cannot be cloned",
        ))
    }
    fn set_break(&self) -> serialport::Result<()> {
        Ok(())
    }
    fn clear_break(&self) -> serialport::Result<()> {
        Ok(())
    }
}

/// What a listener shares with [`connect`]: the next connection for the device, and the host
/// end of the latest one (to refuse a second open).
#[derive(Default)]
struct Shared {
    incoming: Mutex<Option<DuplexEnd>>,
    /// The pipe the latest host end reads from: its `reader_gone` says the host closed it.
    host_reads: Mutex<Option<Arc<Pipe>>>,
}

/// The device side of an in-process port: accepts each new host connection in turn, and
/// behaves like a UART while none is open (reads time out, writes are lost).
pub struct InProcessListener {
    name: String,
    shared: Arc<Shared>,
    current: Option<DuplexEnd>,
    timeout: Duration,
    /// The device's line speed, kept across connections.
    baud: u32,
}

impl InProcessListener {
    /// Registers a new in-process port for the device `device`; the name to open is
    /// [`InProcessListener::port_name`] (`inproc:<device>#<n>`, unique in this process).
    pub fn bind(device: &str) -> Self {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{device}#{n}");
        let shared = Arc::new(Shared::default());
        lock(&PORTS).insert(name.clone(), Arc::downgrade(&shared));
        Self {
            name,
            shared,
            current: None,
            timeout: Duration::from_millis(20),
            baud: 115_200,
        }
    }

    /// The name a host opens.
    pub fn port_name(&self) -> &str {
        &self.name
    }

    /// Takes a connection the host opened since the last call (the newest replaces the old).
    fn accept(&mut self) {
        if let Some(mut new) = lock(&self.shared.incoming).take() {
            new.set_line_speed(self.baud);
            self.current = Some(new);
        }
    }
}

impl Drop for InProcessListener {
    fn drop(&mut self) {
        lock(&PORTS).remove(&self.name);
    }
}

impl Read for InProcessListener {
    /// From the open connection; `NotConnected` after waiting the timeout while none is open
    /// or when the host closed it (a pseudo-terminal's master reports EIO likewise).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.accept();
        let Some(end) = self.current.as_mut() else {
            std::thread::sleep(self.timeout);
            return Err(io::ErrorKind::NotConnected.into());
        };
        end.timeout = self.timeout;
        match end.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.current = None;
                Err(io::ErrorKind::NotConnected.into())
            }
            other => other,
        }
    }
}

impl Write for InProcessListener {
    /// To the open connection; with none open (or the host gone) the bytes are lost.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.accept();
        let Some(end) = self.current.as_mut() else {
            return Ok(buf.len());
        };
        end.timeout = self.timeout;
        match end.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.current = None;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Port for InProcessListener {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.timeout = timeout;
        Ok(())
    }

    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        self.baud = baud;
        if let Some(end) = self.current.as_mut() {
            end.set_line_speed(baud);
        }
        Ok(())
    }
}

/// Opens the in-process port `name`: a new connection to its device. Refused when no device
/// of this process has that name, or when the port is already open.
pub fn connect(name: &str) -> Result<DuplexEnd, serialport::Error> {
    let shared = lock(&PORTS)
        .get(name)
        .and_then(Weak::upgrade)
        .ok_or_else(|| {
            serialport::Error::new(
                serialport::ErrorKind::NoDevice,
                "no simulated device of this process has that port (in-process ports exist only \
             inside the keystamp process that started the devices)",
            )
        })?;
    let mut host_reads = lock(&shared.host_reads);
    if host_reads.as_ref().is_some_and(|pipe| !pipe.reader_gone()) {
        return Err(serialport::Error::new(
            serialport::ErrorKind::NoDevice,
            "port busy: already open in this process",
        ));
    }
    let (device, host) = duplex(name);
    *host_reads = Some(host.rx.clone());
    *lock(&shared.incoming) = Some(device);
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_exact(end: &mut impl Read, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        let mut filled = 0;
        while filled < n {
            match end.read(&mut got[filled..]) {
                Ok(0) => panic!("end of stream after {filled} bytes"),
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn bytes_cross_in_both_directions_in_order() {
        let (mut a, mut b) = duplex("t");
        a.write_all(b"hello ").unwrap();
        a.write_all(b"device").unwrap();
        assert_eq!(read_exact(&mut b, 12), b"hello device");
        b.write_all(&[0, 1, 2, 255]).unwrap();
        assert_eq!(read_exact(&mut a, 4), [0, 1, 2, 255]);
    }

    #[test]
    fn a_read_with_nothing_sent_times_out_like_a_serial_port() {
        let (mut a, _b) = duplex("t");
        SerialPort::set_timeout(&mut a, Duration::from_millis(1)).unwrap();
        let err = a.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn the_other_end_gone_ends_reads_and_breaks_writes() {
        let (mut a, mut b) = duplex("t");
        b.write_all(b"last").unwrap();
        drop(b);
        assert!(a.peer_gone());
        // What was sent before the drop is still delivered, then end of stream.
        assert_eq!(read_exact(&mut a, 4), b"last");
        assert_eq!(a.read(&mut [0u8; 4]).unwrap(), 0);
        assert_eq!(a.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_full_channel_makes_the_writer_wait_then_time_out() {
        let (mut a, _b) = duplex("t");
        SerialPort::set_timeout(&mut a, Duration::from_millis(1)).unwrap();
        let big = vec![0x55u8; CAPACITY + 10];
        assert_eq!(a.write(&big).unwrap(), CAPACITY);
        assert_eq!(a.write(&big).unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn a_listener_serves_each_connection_and_refuses_a_second_open() {
        let mut device = InProcessListener::bind("dev0");
        let name = device.port_name().to_string();
        assert!(is_in_process(&name));
        // Before any host: device output is lost, reads report no connection.
        device.write_all(b"boot banner").unwrap();
        device.set_read_timeout(Duration::from_millis(1)).unwrap();
        assert_eq!(
            device.read(&mut [0u8; 8]).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );

        let mut host = connect(&name).unwrap();
        assert_eq!(host.name().as_deref(), Some(name.as_str()));
        let busy = connect(&name).map(|_| ()).unwrap_err();
        assert!(busy.description.contains("busy"), "{busy}");
        host.write_all(b"ping").unwrap();
        assert_eq!(read_exact(&mut device, 4), b"ping");
        device.write_all(b"pong").unwrap();
        assert_eq!(read_exact(&mut host, 4), b"pong");
        // The banner written before the host opened the port never arrives.
        SerialPort::set_timeout(&mut host, Duration::from_millis(1)).unwrap();
        assert!(host.read(&mut [0u8; 16]).is_err());

        // Closed and opened again: a fresh connection to the same device.
        drop(host);
        let mut again = connect(&name).unwrap();
        again.write_all(b"two").unwrap();
        assert_eq!(read_exact(&mut device, 3), b"two");
    }

    #[test]
    fn names_are_unique_and_vanish_with_their_device() {
        let a = InProcessListener::bind("dev0");
        let b = InProcessListener::bind("dev0");
        assert_ne!(a.port_name(), b.port_name());
        let name = a.port_name().to_string();
        assert!(exists(&name));
        drop(a);
        assert!(!exists(&name));
        let gone = connect(&name).map(|_| ()).unwrap_err();
        assert_eq!(gone.kind, serialport::ErrorKind::NoDevice);
        assert!(connect("inproc:nothing#0").is_err());
    }
}
