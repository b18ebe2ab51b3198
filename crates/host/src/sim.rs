//! Simulated devices: the real agent (`keystamp-agent`) driving the real ATECC driver
//! (`keystamp-atecc`) against an emulated chip (`keystamp-atecc-sim`), served over a link the
//! host opens by name with [`crate::link::open_port`], exactly as it opens `/dev/ttyUSB0` or
//! `COM3`: one end of a pseudo-terminal pair ([`SimLink::Pty`], Unix), or an in-process channel
//! ([`SimLink::InProcess`], everywhere; the default where pseudo-terminals do not exist).
//!
//! Each device keeps its chip in `<state dir>/<name>.chip.json` (saved after every change) and
//! its definition-blob "flash" in `<state dir>/<name>.flash`, so it remembers being provisioned.
//! A new simulated chip's serial starts with 0xEE, a byte no real ATECC608 serial starts with.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use keystamp_agent::{Action, Agent};
use keystamp_atecc::{Atecc, TraceEvent, TracingI2c};
use keystamp_atecc_sim::{FaultConfig, Part, SharedSimChip, SimChip, SimOptions, StdDelay, Timing};
use keystamp_wire::FirmwareVersion;

use crate::link::Port;
use crate::link::inproc::InProcessListener;
use crate::microchip::{DEFAULT_TEST_CA_LABEL, MicrochipDef, TestMicrochipCa};

pub mod faults;

use faults::FaultStream;

/// Capacity of a simulated device's blob partition.
pub const FLASH_SIZE: usize = 32 * 1024;

/// What the device prints on its UART at boot, before the agent runs (the ESP32 ROM banner and a
/// log line): the host must skip it as noise.
const BOOT_BANNER: &[u8] =
    b"ESP-ROM:esp32c3-api1-20210207\r\nBuild:Feb  7 2021\r\nrst:0x1 (POWERON),boot:0xc (SPI_FAST_FLASH_BOOT)\r\nI (42) keystamp: agent ready\r\n";

/// JSON-lines sink for `--trace-i2c`.
pub type TraceSink = Arc<Mutex<Box<dyn Write + Send>>>;

/// A factory-fresh emulated chip whose serial is in the simulated range
/// ([`crate::project::SIMULATED_SERIAL_FIRST_BYTE`] where real chips have 0x01), so that it can
/// never claim a real chip's serial and the registry can tell it apart.
pub fn new_simulated_chip(options: SimOptions) -> SimChip {
    let mut nv = SimChip::new(options.clone()).state().clone();
    nv.config[0] = crate::project::SIMULATED_SERIAL_FIRST_BYTE;
    SimChip::from_state(nv, options)
}

/// Which part a new simulated device carries.
#[derive(Clone, Debug)]
pub struct SimPart {
    /// Blank, TrustFLEX or Trust&GO.
    pub part: Part,
    /// Label of the test "Microchip" CA that issued a Trust&GO part's certificates
    /// ([`TestMicrochipCa::new`]); another label makes a part that is not "genuine" for a
    /// project trusting the default test root.
    pub microchip_ca: String,
}

impl Default for SimPart {
    fn default() -> Self {
        SimPart::new(Part::Blank)
    }
}

impl SimPart {
    /// `part`, certified (Trust&GO) by the default test CA.
    pub fn new(part: Part) -> SimPart {
        SimPart {
            part,
            microchip_ca: DEFAULT_TEST_CA_LABEL.to_string(),
        }
    }
}

/// A new simulated chip of `part`: a blank part as [`new_simulated_chip`]; a pre-configured one
/// as Microchip ships it, with a simulated-range serial, and for Trust&GO the device and signer
/// certificates issued by the part's test CA written into slots 10–12.
pub fn new_part_chip(part: &SimPart, options: SimOptions) -> io::Result<SimChip> {
    if part.part == Part::Blank {
        return Ok(new_simulated_chip(options));
    }
    let mut chip = SimChip::new_part(part.part, options);
    chip.factory_program(|nv| nv.config[0] = crate::project::SIMULATED_SERIAL_FIRST_BYTE);
    if part.part.is_trust_and_go() {
        trust_and_go_certify(&mut chip, &part.microchip_ca)?;
    }
    Ok(chip)
}

/// Does what Microchip's factory does to a Trust&GO part before it ships: issues its device and
/// signer certificates with the test CA `ca_label` for the key in slot 0 and the chip's current
/// serial, and writes them (slots 10–12) past the locks.
pub fn trust_and_go_certify(chip: &mut SimChip, ca_label: &str) -> io::Result<()> {
    let nv = chip.state();
    let device_def = MicrochipDef::for_otp_code(&nv.otp)
        .ok_or_else(|| io::Error::other("part without a known OTP code"))?;
    let key = p256::SecretKey::from_slice(nv.slot(0).get(4..36).unwrap_or_default())
        .map_err(|_| io::Error::other("part without a device key in slot 0"))?;
    let public_key = crate::microchip::public_xy(&key.into());
    let ca = TestMicrochipCa::new(ca_label);
    let certs = crate::microchip::trust_and_go_factory(
        &ca,
        device_def,
        &nv.config,
        &nv.slots,
        &public_key,
        crate::microchip::issue_date_now(),
    )
    .map_err(io::Error::other)?;
    chip.factory_program(|nv| {
        for (slot, offset, bytes) in certs.signer.writes.iter().chain(&certs.device.writes) {
            let start = usize::from(*offset);
            if let Some(dst) = nv
                .slots
                .get_mut(usize::from(*slot))
                .and_then(|s| s.get_mut(start..start + bytes.len()))
            {
                dst.copy_from_slice(bytes);
            }
        }
    });
    Ok(())
}

/// How a simulated device is connected to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimLink {
    /// A pseudo-terminal pair (Unix only): the host opens `/dev/pts/N`, and so can another
    /// process (`keystamp sim`).
    Pty,
    /// An in-process duplex channel named `inproc:<device>#<n>`: only this process can open it.
    InProcess,
}

impl Default for SimLink {
    /// Pseudo-terminals where they exist, the in-process channel elsewhere (Windows).
    fn default() -> Self {
        if cfg!(unix) {
            SimLink::Pty
        } else {
            SimLink::InProcess
        }
    }
}

/// How to run one simulated device.
#[derive(Clone)]
pub struct SimDeviceOptions {
    /// Device name (also the trace's `station` field).
    pub name: String,
    /// Directory holding the device's chip and flash files.
    pub state_dir: PathBuf,
    /// Chip timing model.
    pub timing: Timing,
    /// Pace the device's UART output at this baud rate (10 bits per byte).
    pub baud: Option<u32>,
    /// Seed for a new chip (serial number, keys); `None` draws one.
    pub seed: Option<u64>,
    /// Chip faults to inject.
    pub faults: FaultConfig,
    /// Write every I2C transaction here as a JSON line.
    pub trace: Option<TraceSink>,
    /// The board security state the device reports in `Hello` (a real board reads eFuses).
    pub platform: keystamp_wire::PlatformSecurity,
    /// Highest UART rate the device switches to on `SetBaud` (0: not supported).
    pub max_baud: u32,
    /// Faults on the device's UART side.
    pub link_faults: LinkFaults,
}

/// The highest rate a simulated device accepts by default: what the ESP32 firmware offers.
pub const SIM_MAX_BAUD: u32 = 921_600;

/// Faults a simulated device injects on its UART side. Every decision comes from one stream
/// seeded by `seed`. The default injects none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Seed of the fault stream.
    pub seed: u64,
    /// Probability (0..=1) that a byte crossing the link (either way) gets one bit flipped.
    pub bit_flip: f64,
    /// Probability (0..=1) that the device prints a log line before an answer (a firmware log
    /// the host must skip).
    pub log_line: f64,
    /// The device resets (as its reset button would) on receiving this request, counted from 1
    /// over the device's life, before answering it.
    pub reset_at_request: Option<u64>,
    /// The first frame the host sends after a baud switch is lost.
    pub lose_baud_confirmation: bool,
    /// The device answers `SetBaud` with `Ok` but its UART stays at the old rate (a driver
    /// that could not make the rate).
    pub baud_switch_fails: bool,
}

/// A running simulated device.
pub struct SimDevice {
    name: String,
    path: String,
    chip: SharedSimChip,
    stop: Arc<AtomicBool>,
    reset: Arc<AtomicBool>,
    boots: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SimDevice {
    /// Creates (or reloads) the device's chip and starts its agent behind this OS's
    /// default link ([`SimLink::default`]).
    pub fn start(opts: SimDeviceOptions) -> io::Result<SimDevice> {
        Self::start_on(opts, SimLink::default())
    }

    /// Creates (or reloads) the device's chip and starts its agent behind a new `link`.
    pub fn start_on(opts: SimDeviceOptions, link: SimLink) -> io::Result<SimDevice> {
        Self::start_part(opts, link, &SimPart::default())
    }

    /// Creates (or reloads) the device's chip — a new one of `part` — and starts its agent
    /// behind a new `link`.
    pub fn start_part(
        opts: SimDeviceOptions,
        link: SimLink,
        part: &SimPart,
    ) -> io::Result<SimDevice> {
        fs::create_dir_all(&opts.state_dir)?;
        let chip_path = opts.state_dir.join(format!("{}.chip.json", opts.name));
        let flash_path = opts.state_dir.join(format!("{}.flash", opts.name));
        let mut sim_opts = SimOptions::default()
            .with_timing(opts.timing)
            .with_faults(opts.faults.clone());
        if let Some(seed) = opts.seed {
            sim_opts = sim_opts.with_seed(seed);
        }
        let mut chip = if chip_path.exists() {
            SimChip::load_with(&chip_path, sim_opts)?
        } else {
            let chip = new_part_chip(part, sim_opts)?;
            chip.save(&chip_path)?;
            chip
        };
        chip.set_autosave(Some(chip_path));
        let chip = chip.shared();
        let (port, path) = match link {
            SimLink::Pty => open_pty()?,
            SimLink::InProcess => {
                let listener = InProcessListener::bind(&opts.name);
                let name = listener.port_name().to_string();
                (Box::new(listener) as Box<dyn Port>, name)
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let reset = Arc::new(AtomicBool::new(false));
        let boots = Arc::new(AtomicU64::new(0));
        let thread = {
            let (chip, stop, reset, boots) =
                (chip.clone(), stop.clone(), reset.clone(), boots.clone());
            let opts = opts.clone();
            std::thread::Builder::new()
                .name(format!("sim-{}", opts.name))
                .spawn(move || {
                    run_device(port, chip, flash_path, opts, stop, reset, boots);
                })?
        };
        Ok(SimDevice {
            name: opts.name,
            path,
            chip,
            stop,
            reset,
            boots,
            thread: Some(thread),
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port name to open with [`crate::link::open_port`] (`/dev/pts/N`, or
    /// `inproc:<device>#<n>`).
    pub fn port_path(&self) -> &str {
        &self.path
    }

    /// The emulated chip, for inspection.
    pub fn chip(&self) -> &SharedSimChip {
        &self.chip
    }

    /// Simulates pressing the reset button: the agent restarts (its RAM state — upload progress,
    /// cached answer, rebuilt chain — is lost) and prints its boot banner.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
    }

    /// How many times the agent has booted.
    pub fn boots(&self) -> u64 {
        self.boots.load(Ordering::SeqCst)
    }

    /// Stops the device thread (state is already on disk).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The device's blob partition as a file, rewritten atomically on every write.
pub struct FileFlash {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl FileFlash {
    /// Opens (or creates, erased) the flash file.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        bytes.resize(FLASH_SIZE, 0xFF);
        Ok(FileFlash {
            path: path.to_path_buf(),
            bytes,
        })
    }
}

impl embedded_storage::ReadStorage for FileFlash {
    type Error = io::ErrorKind;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let start = offset as usize;
        let src = self
            .bytes
            .get(start..start + bytes.len())
            .ok_or(io::ErrorKind::InvalidInput)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        FLASH_SIZE
    }
}

impl embedded_storage::Storage for FileFlash {
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let start = offset as usize;
        self.bytes
            .get_mut(start..start + bytes.len())
            .ok_or(io::ErrorKind::InvalidInput)?
            .copy_from_slice(bytes);
        let tmp = self.path.with_extension("flash.tmp");
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&self.bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| e.kind())
    }
}

fn trace_callback(sink: Option<TraceSink>, station: String) -> impl FnMut(TraceEvent<'_>) {
    move |ev: TraceEvent<'_>| {
        let Some(sink) = &sink else { return };
        let dir = match ev.direction {
            keystamp_atecc::Direction::Write => "write",
            keystamp_atecc::Direction::Read => "read",
        };
        let mut line = serde_json::json!({
            "station": station,
            "dir": dir,
            "addr": format!("0x{:02x}", ev.address),
            "bytes": hex::encode(ev.bytes),
        });
        if let Some(e) = ev.error {
            line["error"] = serde_json::Value::String(format!("{e:?}"));
        }
        if let Ok(mut w) = sink.lock() {
            let _ = writeln!(w, "{line}");
        }
    }
}

/// The master end of a new pseudo-terminal pair, and the slave's path for the host.
#[cfg(unix)]
fn open_pty() -> io::Result<(Box<dyn Port>, String)> {
    use serialport::SerialPort;
    let (master, slave) = serialport::TTYPort::pair().map_err(io::Error::other)?;
    let path = slave
        .name()
        .ok_or_else(|| io::Error::other("pseudo-terminal has no name"))?;
    // The host opens the slave by path with an exclusive lock, so ours must go. Until a host
    // attaches, reads on the master fail (EIO on Linux); the device thread waits them out.
    drop(slave);
    Ok((Box::new(master), path))
}

/// Pseudo-terminals do not exist here.
#[cfg(not(unix))]
fn open_pty() -> io::Result<(Box<dyn Port>, String)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "pseudo-terminals exist only on Unix; simulated devices here use in-process links",
    ))
}

#[cfg(unix)]
impl Port for serialport::TTYPort {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        serialport::SerialPort::set_timeout(self, timeout).map_err(io::Error::other)
    }
    // A pseudo-terminal has no line speed: the simulated device paces its output at its own
    // rate (`SimDeviceOptions::baud`, switched by `SetBaud`) instead.
}

fn write_paced(port: &mut dyn Port, bytes: &[u8], baud: Option<u32>) -> io::Result<()> {
    let started = Instant::now();
    port.write_all(bytes)?;
    port.flush()?;
    if let Some(baud) = baud {
        let wire = Duration::from_micros(bytes.len() as u64 * 10_000_000 / u64::from(baud.max(1)));
        if let Some(rest) = wire.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok(())
}

/// The rate a device's UART starts at after every reset (the firmware's `HOST_BAUD`).
pub const BOOT_BAUD: u32 = 115_200;

/// A firmware log line the host must skip (ESP-IDF's format).
const LOG_LINE: &[u8] = b"W (4242) wifi: sta disconnected, reason 201\r\n";

fn run_device(
    mut port: Box<dyn Port>,
    chip: SharedSimChip,
    flash_path: PathBuf,
    opts: SimDeviceOptions,
    stop: Arc<AtomicBool>,
    reset: Arc<AtomicBool>,
    boots: Arc<AtomicU64>,
) {
    let firmware = firmware_version();
    let faults = &opts.link_faults;
    let mut stream = FaultStream::new(faults.seed);
    // Requests received over the device's life (for `reset_at_request`): line ends fed.
    let mut received = 0u64;
    let _ = port.set_read_timeout(Duration::from_millis(20));
    while !stop.load(Ordering::SeqCst) {
        reset.store(false, Ordering::SeqCst);
        boots.fetch_add(1, Ordering::SeqCst);
        let flash = match FileFlash::open(&flash_path) {
            Ok(f) => f,
            Err(_) => return,
        };
        let i2c = TracingI2c::new(
            chip.clone(),
            trace_callback(opts.trace.clone(), opts.name.clone()),
        );
        let mut driver = Atecc::new(i2c, StdDelay);
        // The firmware is built for its board's part; pre-configured parts answer at their own
        // address (config byte 16).
        driver.set_address(chip.lock().address());
        let mut agent: Box<Agent<_, _, { keystamp_wire::MAX_DEF_BLOB }>> =
            Box::new(Agent::new(driver, flash, firmware));
        agent.set_platform(opts.platform);
        agent.set_max_baud(opts.max_baud);
        // Every boot starts at the firmware's rate; `opts.baud` only says whether to pace.
        let mut rate = BOOT_BAUD;
        let _ = port.set_baud(rate);
        let pace = |rate: u32| opts.baud.map(|_| rate);
        // Switched by SetBaud, not yet confirmed by a frame at the new rate: (old rate, since).
        let mut unconfirmed: Option<(u32, Instant)> = None;
        let mut dropping_frame = false;
        let mut last_answer = Instant::now();
        let confirm = Duration::from_millis(u64::from(keystamp_agent::BAUD_CONFIRM_MS));
        let _ = write_paced(port.as_mut(), BOOT_BANNER, pace(rate));
        let mut buf = [0u8; 512];
        'boot: while !stop.load(Ordering::SeqCst) && !reset.load(Ordering::SeqCst) {
            if let Some((old, since)) = unconfirmed
                && since.elapsed() >= confirm
            {
                // No frame at the new rate: back to the rate the host last reached us at.
                rate = old;
                let _ = port.set_baud(rate);
                unconfirmed = None;
            }
            if rate != BOOT_BAUD && last_answer.elapsed() >= confirm + confirm {
                // The host went silent at the faster rate (gone without Finish): as the
                // firmware does, back to the boot rate for the next one.
                rate = BOOT_BAUD;
                let _ = port.set_baud(rate);
                unconfirmed = None;
            }
            let n = match port.read(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if e.kind() == io::ErrorKind::TimedOut
                        || e.kind() == io::ErrorKind::WouldBlock =>
                {
                    continue;
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            let mut input = &mut buf[..n];
            if dropping_frame {
                // The frame after the switch is lost up to its line end.
                match input.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        dropping_frame = false;
                        input = &mut input[end + 1..];
                    }
                    None => continue,
                }
            }
            stream.flip_bits(input, faults.bit_flip);
            for (i, &b) in input.iter().enumerate() {
                if b != b'\n' {
                    continue;
                }
                received += 1;
                if faults.reset_at_request == Some(received) {
                    // Reset before this request is served: what came before it was.
                    let _ = feed_paced(
                        agent.as_mut(),
                        &input[..i],
                        port.as_mut(),
                        pace(rate),
                        &mut stream,
                        faults,
                    );
                    break 'boot;
                }
            }
            let (answered, result) = feed_paced(
                agent.as_mut(),
                input,
                port.as_mut(),
                pace(rate),
                &mut stream,
                faults,
            );
            if answered {
                unconfirmed = None;
                last_answer = Instant::now();
            }
            match result {
                Ok(Action::Finished { reboot: true }) => break,
                Ok(Action::Finished { reboot: false }) => {
                    // The session is over: the next host starts at the boot rate.
                    rate = BOOT_BAUD;
                    let _ = port.set_baud(rate);
                    unconfirmed = None;
                }
                // The answer has left the UART (writes are paced): switch (unless the fault
                // says the UART cannot).
                Ok(Action::SetBaud { baud }) if !faults.baud_switch_fails => {
                    unconfirmed = Some((rate, Instant::now()));
                    rate = baud;
                    let _ = port.set_baud(rate);
                    dropping_frame = faults.lose_baud_confirmation;
                }
                _ => {}
            }
        }
    }
}

/// Feeds `input` to the agent, writing its answers paced (with the link faults on the way
/// out). Returns whether anything was answered, and the agent's action.
fn feed_paced<A: FeedAgent + ?Sized>(
    agent: &mut A,
    input: &[u8],
    port: &mut dyn Port,
    pace: Option<u32>,
    stream: &mut FaultStream,
    faults: &LinkFaults,
) -> (bool, io::Result<Action>) {
    let mut answered = false;
    let result = agent.feed_bytes(input, &mut |bytes: &[u8]| {
        answered = true;
        if stream.chance(faults.log_line) {
            write_paced(port, LOG_LINE, pace)?;
        }
        let mut out = bytes.to_vec();
        stream.flip_bits(&mut out, faults.bit_flip);
        write_paced(port, &out, pace)
    });
    (answered, result)
}

/// The one agent method the device loop needs, so `feed_paced` is not generic over the agent's
/// chip and storage types.
trait FeedAgent {
    fn feed_bytes(
        &mut self,
        input: &[u8],
        write: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<Action>;
}

impl<C: keystamp_agent::Chip, S: embedded_storage::Storage, const B: usize> FeedAgent
    for Agent<C, S, B>
{
    fn feed_bytes(
        &mut self,
        input: &[u8],
        write: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<Action> {
        self.feed(input, write)
    }
}

/// The firmware version the simulated agent reports (the host crate's version).
pub fn firmware_version() -> FirmwareVersion {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u8>().unwrap_or(0));
    FirmwareVersion {
        major: parts.next().unwrap_or(0),
        minor: parts.next().unwrap_or(0),
        patch: parts.next().unwrap_or(0),
    }
}
