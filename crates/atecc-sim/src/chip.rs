//! The emulated chip behind `embedded_hal::i2c::I2c`: power states, wake, word addresses, the
//! input FIFO, CRC and count checks, busy windows, the watchdog, faults and the command log
//! (reference §1, §2, §6.1–§6.2).

use crate::clock::{Clock, StdClock};
use crate::commands::{Command, Exec, Outcome, TempKey, Volatile, status};
use crate::config::{self, ConfigZone, Revision};
use crate::crc::{crc16, response_group};
use crate::faults::{FaultConfig, FaultEvent, Faults};
use crate::parts::{self, Part};
use crate::state::{self, NvState, RngState, SaveCrash};
use crate::timing::{self, WAKE_DELAY, WATCHDOG_LONG, WATCHDOG_SHORT};
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource, Operation};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Default 7-bit I2C address (config byte 16 = 0xC0, reference §1.1).
pub const DEFAULT_ADDRESS: u8 = 0x60;

/// The wake reply `04 11 33 43` (reference §1.2).
pub const WAKE_REPLY: [u8; 4] = [0x04, 0x11, 0x33, 0x43];
/// The self-test-failure wake reply with its correct CRC (reference §1.2).
pub const WAKE_SELF_TEST_FAILURE: [u8; 4] = [0x04, 0x07, 0x40, 0xC2];

/// How execution time is modelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Timing {
    /// Commands complete at once and the chip answers right after a wake; the watchdog still
    /// runs on the clock.
    #[default]
    Instant,
    /// The chip NACKs for tWHI after a wake and for each command's documented execution time
    /// (reference §4.3, column by `ChipMode` clock divider).
    Realistic,
}

/// Power state (reference §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerState {
    /// Asleep (also after power-on); volatile state lost.
    Sleep,
    /// Idle; volatile state kept.
    Idle,
    /// Awake, executing a command or waiting out tWHI: the address is NACKed.
    Busy,
    /// Awake and answering.
    Awake,
}

/// Options for a new emulated chip.
#[derive(Clone)]
pub struct SimOptions {
    /// Seed for the serial number, keys, nonces and random output; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Chip revision.
    pub revision: Revision,
    /// Timing model.
    pub timing: Timing,
    /// Faults to inject.
    pub faults: FaultConfig,
    /// 7-bit I2C address; stored in config byte 16 of a fresh chip (default 0x60).
    pub address: u8,
    /// Time source; `None` uses real time ([`StdClock`]).
    pub clock: Option<Arc<dyn Clock>>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            seed: None,
            revision: Revision::Atecc608A,
            timing: Timing::Instant,
            faults: FaultConfig::default(),
            address: DEFAULT_ADDRESS,
            clock: None,
        }
    }
}

impl fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimOptions")
            .field("seed", &self.seed)
            .field("revision", &self.revision)
            .field("timing", &self.timing)
            .field("faults", &self.faults)
            .field("address", &self.address)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl SimOptions {
    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Sets the revision.
    pub fn with_revision(mut self, revision: Revision) -> Self {
        self.revision = revision;
        self
    }
    /// Sets the timing model.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }
    /// Sets the faults.
    pub fn with_faults(mut self, faults: FaultConfig) -> Self {
        self.faults = faults;
        self
    }
    /// Sets the 7-bit address of a fresh chip.
    pub fn with_address(mut self, address: u8) -> Self {
        self.address = address;
        self
    }
    /// Sets the clock.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }
}

/// One executed (or refused) command group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    /// 1-based sequence number among executed commands (0 for groups refused before execution:
    /// CRC, count and watchdog errors).
    pub seq: u64,
    /// Opcode (0 when the group was too short to have one).
    pub opcode: u8,
    /// Param1.
    pub param1: u8,
    /// Param2.
    pub param2: u16,
    /// Number of data bytes.
    pub data_len: usize,
    /// Status of a 4-byte response, or 0x00 for a data response.
    pub status: u8,
    /// Length of the response group.
    pub response_len: usize,
    /// The chip's documented execution time for this command (charged as busy time only in
    /// `Timing::Realistic`, logged always).
    pub exec_time: Duration,
    /// The command exists on a real chip but is not modelled (answered 0x03).
    pub unsupported: bool,
    /// Clock time when execution started.
    pub at: Duration,
}

/// Bus error of the emulated chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimI2cError(pub ErrorKind);

impl fmt::Display for SimI2cError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "emulated I2C: {}", self.0)
    }
}

impl std::error::Error for SimI2cError {}

impl embedded_hal::i2c::Error for SimI2cError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

const NACK_ADDRESS: SimI2cError =
    SimI2cError(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));

/// Word addresses (reference §1.3).
mod word_address {
    pub const RESET: u8 = 0x00;
    pub const SLEEP: u8 = 0x01;
    pub const IDLE: u8 = 0x02;
    pub const COMMAND: u8 = 0x03;
}

/// Group size limits (reference §2.1).
const MIN_COUNT: usize = 4;
const MAX_COUNT: usize = 155;

/// An emulated ATECC608A/B.
pub struct SimChip {
    nv: NvState,
    vol: Volatile,
    latch: bool,
    rng: ChaCha20Rng,
    faults: Faults,
    timing: Timing,
    clock: Arc<dyn Clock>,
    power: PowerState,
    /// Address latched at power-up / wake from sleep.
    address: u8,
    ready_at: Duration,
    watchdog_deadline: Duration,
    input: Vec<u8>,
    output: Vec<u8>,
    read_ptr: usize,
    command_count: u64,
    log: Vec<CommandRecord>,
    autosave: Option<PathBuf>,
}

impl fmt::Debug for SimChip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimChip")
            .field("serial", &hex::encode_upper(self.serial_number()))
            .field("revision", &self.nv.revision)
            .field("power", &self.power)
            .field("address", &self.address)
            .field("command_count", &self.command_count)
            .finish_non_exhaustive()
    }
}

impl SimChip {
    /// A factory-fresh chip (reference §7.1) with a serial number drawn from the seed.
    pub fn new(options: SimOptions) -> Self {
        let seed = options.seed.unwrap_or_else(rand::random);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut sn = [0u8; 6];
        rng.fill_bytes(&mut sn);
        let i2c_enable = config::FACTORY_I2C_ENABLE_VALUES[(rng.next_u32() % 4) as usize];
        let mut cfg = config::factory_config(options.revision, sn, i2c_enable);
        cfg[config::I2C_ADDRESS] = options.address << 1;
        let nv = NvState::new(options.revision, cfg);
        Self::from_parts(nv, rng, options)
    }

    /// A new chip of a pre-configured `part` as Microchip ships it ([`crate::parts`]); a blank
    /// part is [`SimChip::new`]. The part's revision and I2C address come from its reference
    /// dump, not from `options`.
    pub fn new_part(part: Part, options: SimOptions) -> Self {
        let seed = options.seed.unwrap_or_else(rand::random);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        match parts::part_state(part, &mut rng) {
            Some(nv) => Self::from_parts(nv, rng, options),
            None => Self::new(options),
        }
    }

    /// Changes the non-volatile state directly, as the manufacturer's provisioning does before
    /// the part ships (e.g. the certificates Microchip writes into a Trust&GO part before the
    /// data lock). Not a chip command: no lock or slot rule applies, and the random generator
    /// continues where it was (unlike [`SimChip::from_state`], which reseeds it).
    pub fn factory_program(&mut self, program: impl FnOnce(&mut NvState)) {
        program(&mut self.nv);
    }

    /// A chip with the given non-volatile state (e.g. a configuration prepared by a test).
    pub fn from_state(nv: NvState, options: SimOptions) -> Self {
        let seed = options.seed.unwrap_or_else(rand::random);
        Self::from_parts(nv, ChaCha20Rng::seed_from_u64(seed), options)
    }

    fn from_parts(nv: NvState, rng: ChaCha20Rng, options: SimOptions) -> Self {
        let clock = options.clock.unwrap_or_else(|| Arc::new(StdClock::new()));
        let address = nv.config.i2c_address();
        Self {
            nv,
            vol: Volatile::default(),
            latch: false,
            rng,
            faults: Faults::new(options.faults),
            timing: options.timing,
            clock,
            power: PowerState::Sleep,
            address,
            ready_at: Duration::ZERO,
            watchdog_deadline: Duration::ZERO,
            input: Vec::new(),
            output: Vec::new(),
            read_ptr: 0,
            command_count: 0,
            log: Vec::new(),
            autosave: None,
        }
    }

    // ------------------------------------------------------------------ persistence

    /// Saves the non-volatile state to `path` atomically (see [`crate::state`] for the format).
    pub fn save(&self, path: impl AsRef<Path>) -> io::Result<()> {
        state::write_atomic(path.as_ref(), &self.encoded_state())
    }

    /// Like [`SimChip::save`] but simulates a power failure at `crash`; the file at `path` keeps
    /// its previous content.
    pub fn save_with_crash(&self, path: impl AsRef<Path>, crash: SaveCrash) -> io::Result<()> {
        state::write_atomic_with_crash(path.as_ref(), &self.encoded_state(), crash)
    }

    fn encoded_state(&self) -> Vec<u8> {
        let rng = RngState {
            seed: self.rng.get_seed(),
            word_pos: self.rng.get_word_pos(),
        };
        state::encode(&self.nv, &rng)
    }

    /// Loads a chip saved with [`SimChip::save`], with default options (real clock, instant
    /// timing, no faults). The chip starts asleep, as after power-up.
    pub fn load(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::load_with(path, SimOptions::default())
    }

    /// Loads a saved chip with the given timing, faults and clock; `seed`, `revision` and
    /// `address` come from the file.
    pub fn load_with(path: impl AsRef<Path>, options: SimOptions) -> io::Result<Self> {
        let text = std::fs::read(path.as_ref())?;
        let (nv, rng_state) = state::decode(&text)?;
        let mut rng = ChaCha20Rng::from_seed(rng_state.seed);
        rng.set_word_pos(rng_state.word_pos);
        Ok(Self::from_parts(nv, rng, options))
    }

    /// Loads `path` if it exists, else creates a fresh chip from `options` and saves it there.
    pub fn open_or_create(path: impl AsRef<Path>, options: SimOptions) -> io::Result<Self> {
        let path = path.as_ref();
        if path.exists() {
            Self::load_with(path, options)
        } else {
            let chip = Self::new(options);
            chip.save(path)?;
            Ok(chip)
        }
    }

    /// After every command that changed non-volatile state, save to `path` (or stop saving).
    pub fn set_autosave(&mut self, path: Option<PathBuf>) {
        self.autosave = path;
    }

    // ------------------------------------------------------------------ introspection

    /// The non-volatile state (read-only).
    pub fn state(&self) -> &NvState {
        &self.nv
    }

    /// TempKey and its flags (read-only).
    pub fn tempkey(&self) -> &TempKey {
        &self.vol.tempkey
    }

    /// The 9-byte serial number.
    pub fn serial_number(&self) -> [u8; 9] {
        config::serial_number(&self.nv.config)
    }

    /// Current 7-bit address (latched at power-up and wake from sleep).
    pub fn address(&self) -> u8 {
        self.address
    }

    /// Power state now.
    pub fn power_state(&mut self) -> PowerState {
        self.tick();
        match self.power {
            PowerState::Awake if self.clock.now() < self.ready_at => PowerState::Busy,
            other => other,
        }
    }

    /// Number of commands executed since creation or load.
    pub fn command_count(&self) -> u64 {
        self.command_count
    }

    /// Log of command groups received.
    pub fn command_log(&self) -> &[CommandRecord] {
        &self.log
    }

    /// Empties the command log.
    pub fn clear_command_log(&mut self) {
        self.log.clear();
    }

    /// Sum of the documented execution times of every logged command: the time a real chip
    /// would have spent computing.
    pub fn execution_floor(&self) -> Duration {
        self.log.iter().map(|r| r.exec_time).sum()
    }

    /// Faults injected so far.
    pub fn fault_log(&self) -> &[FaultEvent] {
        &self.faults.log
    }

    /// The clock the chip reads.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Simulates removing and restoring power: volatile state and the latch are lost and the chip
    /// comes up asleep.
    pub fn power_cycle(&mut self) {
        self.enter_sleep();
        self.latch = false;
    }

    /// Wraps the chip for sharing between threads; the handle implements `I2c` too.
    pub fn shared(self) -> SharedSimChip {
        SharedSimChip(Arc::new(Mutex::new(self)))
    }

    // ------------------------------------------------------------------ bus model

    fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Applies the watchdog: at the deadline an awake chip falls asleep (reference §1.5).
    fn tick(&mut self) {
        if self.power == PowerState::Awake && self.now() >= self.watchdog_deadline {
            self.enter_sleep();
        }
    }

    fn enter_sleep(&mut self) {
        self.power = PowerState::Sleep;
        self.vol = Volatile::default();
        self.input.clear();
        self.output.clear();
        self.read_ptr = 0;
    }

    fn wake(&mut self) {
        match self.power {
            // In I2C mode a wake while awake is ignored [DS].
            PowerState::Awake | PowerState::Busy => {}
            PowerState::Sleep | PowerState::Idle => {
                if self.power == PowerState::Sleep {
                    // Power-up reads the configuration again, including the address [INF].
                    self.address = self.nv.config.i2c_address();
                }
                let now = self.now();
                self.power = PowerState::Awake;
                self.ready_at = match self.timing {
                    Timing::Instant => now,
                    Timing::Realistic => now + WAKE_DELAY,
                };
                let period = if self.nv.config.watchdog_long() {
                    WATCHDOG_LONG
                } else {
                    WATCHDOG_SHORT
                };
                self.watchdog_deadline = now + period;
                self.input.clear();
                self.output = if self.faults.config.wake_self_test_failure {
                    WAKE_SELF_TEST_FAILURE.to_vec()
                } else {
                    WAKE_REPLY.to_vec()
                };
                self.read_ptr = 0;
            }
        }
    }

    fn command_complete(&self) -> bool {
        match self.input.first() {
            None => false,
            Some(&count) => {
                let count = usize::from(count);
                !(MIN_COUNT..=MAX_COUNT).contains(&count) || self.input.len() >= count
            }
        }
    }

    fn handle_write(&mut self, message: &[u8], pending_power: &mut Option<PowerState>) {
        let Some((&wa, rest)) = message.split_first() else {
            return; // address-only write: ACKed, nothing else
        };
        match wa {
            word_address::RESET => {
                self.input.clear();
                self.read_ptr = 0;
            }
            word_address::SLEEP => *pending_power = Some(PowerState::Sleep),
            word_address::IDLE => *pending_power = Some(PowerState::Idle),
            word_address::COMMAND => {
                // The FIFO takes bytes until it holds `count`; later bytes are ignored [DS].
                for &b in rest {
                    if self.command_complete() {
                        break;
                    }
                    self.input.push(b);
                }
            }
            // Reserved word addresses are ignored [INF].
            _ => {}
        }
    }

    fn handle_read(&mut self, buf: &mut [u8]) {
        let start = self.read_ptr;
        for (i, b) in buf.iter_mut().enumerate() {
            // Past the end of the output buffer the bus floats high [INF].
            *b = self.output.get(start + i).copied().unwrap_or(0xFF);
        }
        self.read_ptr = start + buf.len();
        let group_len = self.output.len();
        self.faults.corrupt_read(buf, start, group_len);
    }

    fn respond_status(&mut self, code: u8) {
        self.output = response_group(&[code]);
        self.read_ptr = 0;
    }

    /// Runs the group in the FIFO (called at STOP).
    fn execute_pending(&mut self) {
        let group = std::mem::take(&mut self.input);
        let now = self.now();
        let count = usize::from(group[0]);
        let mut record = CommandRecord {
            seq: 0,
            opcode: group.get(1).copied().unwrap_or(0),
            param1: group.get(2).copied().unwrap_or(0),
            param2: match (group.get(3), group.get(4)) {
                (Some(&lo), Some(&hi)) => u16::from_le_bytes([lo, hi]),
                _ => 0,
            },
            data_len: count.saturating_sub(7),
            status: status::COMM_ERROR,
            response_len: 4,
            exec_time: Duration::ZERO,
            unsupported: false,
            at: now,
        };
        // Count outside 4..=155 → I/O error; CRC errors come before every other error [DS].
        let crc_ok = (MIN_COUNT..=MAX_COUNT).contains(&count)
            && crc16(&group[..count - 2]).to_le_bytes() == group[count - 2..count];
        if !crc_ok {
            self.respond_status(status::COMM_ERROR);
            self.log.push(record);
            return;
        }
        let Some(cmd) = Command::from_group(&group) else {
            // 4..=6-byte groups cannot carry opcode and params.
            self.respond_status(status::PARSE_ERROR);
            record.status = status::PARSE_ERROR;
            self.log.push(record);
            return;
        };
        let exec_time = timing::execution_time(cmd.opcode, self.nv.config.clock_divider());
        let busy = match self.timing {
            Timing::Instant => Duration::ZERO,
            Timing::Realistic => exec_time,
        };
        // Not enough watchdog time left → 0xEE without executing (reference §1.5, §6.2).
        if now + busy > self.watchdog_deadline {
            self.respond_status(status::WATCHDOG);
            record.status = status::WATCHDOG;
            self.log.push(record);
            return;
        }
        self.command_count += 1;
        record.seq = self.command_count;
        record.exec_time = exec_time;

        if let Some(took_effect) = self.faults.brownout(self.command_count) {
            // Power fails mid-command: the EEPROM update is all or nothing, no response.
            let before = self.nv.clone();
            let outcome = self.run_command(&cmd);
            if !took_effect {
                self.nv = before;
            } else if outcome.nv_changed {
                self.autosave_now();
            }
            record.status = status::COMM_ERROR;
            record.response_len = 0;
            self.log.push(record);
            self.power_cycle();
            return;
        }

        let outcome = self.run_command(&cmd);
        record.status = if outcome.payload.len() == 1 {
            outcome.payload[0]
        } else {
            status::SUCCESS
        };
        record.unsupported = outcome.unsupported;
        self.output = response_group(&outcome.payload);
        record.response_len = self.output.len();
        self.read_ptr = 0;
        self.ready_at = now + busy;
        self.log.push(record);
        if outcome.nv_changed {
            self.autosave_now();
        }
    }

    fn run_command(&mut self, cmd: &Command) -> Outcome {
        Exec::new(&mut self.nv, &mut self.vol, &mut self.rng, &mut self.latch).run(cmd)
    }

    fn autosave_now(&mut self) {
        if let Some(path) = self.autosave.clone()
            && let Err(e) = self.save(&path)
        {
            // The bus has no way to report a host-side disk error; keep serving.
            eprintln!("atecc-sim: autosave to {} failed: {e}", path.display());
        }
    }

    /// One I2C transaction (START … STOP) as the chip sees it.
    fn transact(&mut self, address: u8, ops: &mut [Operation<'_>]) -> Result<(), SimI2cError> {
        self.tick();
        if address == 0x00 {
            // The all-zero address byte at ≤100 kHz holds SDA low long enough to wake the chip;
            // nobody ACKs it (reference §1.2).
            if ops.iter().any(|op| matches!(op, Operation::Write(_))) {
                self.wake();
            }
            return Err(NACK_ADDRESS);
        }
        if address != self.address {
            return Err(NACK_ADDRESS);
        }
        if self.faults.nack_now() {
            return Err(NACK_ADDRESS);
        }
        // Asleep, idle, waking or busy: the address is NACKed (reference §1.4).
        if self.power != PowerState::Awake || self.now() < self.ready_at {
            return Err(NACK_ADDRESS);
        }
        let mut pending_power = None;
        let mut result = Ok(());
        let mut i = 0;
        while i < ops.len() {
            match &mut ops[i] {
                Operation::Write(_) => {
                    // Adjacent writes form one message (no repeated START between them).
                    let mut message = Vec::new();
                    while let Some(Operation::Write(bytes)) = ops.get(i) {
                        message.extend_from_slice(bytes);
                        i += 1;
                    }
                    self.handle_write(&message, &mut pending_power);
                }
                Operation::Read(buf) => {
                    // A read with a command in the FIFO (partial, or complete but not yet
                    // started by a STOP) finds no data: NACK (reference §1.4).
                    if !self.input.is_empty() {
                        result = Err(NACK_ADDRESS);
                        break;
                    }
                    self.handle_read(buf);
                    i += 1;
                }
            }
        }
        // STOP.
        if self.command_complete() {
            self.execute_pending();
        }
        match pending_power {
            Some(PowerState::Sleep) => self.enter_sleep(),
            Some(PowerState::Idle) => {
                self.power = PowerState::Idle;
                self.input.clear();
                self.output.clear();
                self.read_ptr = 0;
            }
            _ => {}
        }
        result
    }
}

impl embedded_hal::i2c::ErrorType for SimChip {
    type Error = SimI2cError;
}

impl embedded_hal::i2c::I2c for SimChip {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.transact(address, operations)
    }
}

/// A [`SimChip`] shared between threads (e.g. a driver in one thread, a test inspecting state in
/// another). Clones refer to the same chip.
#[derive(Clone, Debug)]
pub struct SharedSimChip(Arc<Mutex<SimChip>>);

impl SharedSimChip {
    /// Locks the chip for inspection or direct use.
    pub fn lock(&self) -> MutexGuard<'_, SimChip> {
        // A panic while holding the lock leaves the chip usable for inspection.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl embedded_hal::i2c::ErrorType for SharedSimChip {
    type Error = SimI2cError;
}

impl embedded_hal::i2c::I2c for SharedSimChip {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.lock().transact(address, operations)
    }
}
