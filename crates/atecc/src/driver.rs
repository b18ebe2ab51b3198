//! The driver: wake / idle / sleep, command execution with polling, bounded retries and
//! watchdog tracking, and one typed method per operation the project needs.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, I2c};

use crate::command::{
    ClockDivider, Command, Counter, CounterId, Ecdh, GenKey, Info, Lock, MessageSource, Nonce,
    NonceTarget, PrivWrite, Random, Read, STATUS_RESPONSE_LEN, SelfTest, Sha, Sign, UpdateExtra,
    VerifyExternal, VerifyStored, Write, WriteData,
};
use crate::config::{ConfigWriteOp, ConfigZone, config_write_ops};
use crate::packet::{
    EncodeError, MAX_COMMAND_LEN, MAX_RESPONSE_LEN, ResponseError, WORD_ADDRESS_COMMAND,
    WORD_ADDRESS_IDLE, WORD_ADDRESS_RESET, WORD_ADDRESS_SLEEP, WakeReply, classify_wake,
    parse_response,
};
use crate::status::Status;
use crate::zone::{AddressError, CONFIG_SIZE, Size, Slot, Zone, ZoneAddr};

/// Default 7-bit I2C address (config byte 16 = 0xC0).
pub const DEFAULT_ADDRESS: u8 = 0x60;

/// 7-bit address of Microchip's pre-configured ATECC608x-TNGTLS (Trust&Go) parts (config
/// byte 16 = 0x6A, reference §7.2).
pub const TRUST_AND_GO_ADDRESS: u8 = 0x35;

/// 7-bit address of Microchip's pre-configured ATECC608B-TFLXTLS (TrustFLEX) parts (config
/// byte 16 = 0x6C, reference §7.3).
pub const TRUSTFLEX_ADDRESS: u8 = 0x36;

/// The addresses parts leave Microchip's factory at, in the order [`Atecc::locate`] tries them
/// after the configured one: blank ATECC608A/B, Trust&Go, TrustFLEX.
pub const FACTORY_ADDRESSES: [u8; 3] = [DEFAULT_ADDRESS, TRUST_AND_GO_ADDRESS, TRUSTFLEX_ADDRESS];

/// The 32 bytes Random returns before the config zone is locked (`FF FF 00 00` × 8).
pub const RANDOM_TEST_PATTERN: [u8; 32] = [
    0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00,
    0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00,
];

/// Timing and retry policy. The defaults follow cryptoauthlib's polling scheme with shorter
/// poll intervals; see `docs/atecc.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timing {
    /// Delay after the wake pulse before reading the wake reply (tWHI ≥ 1500 µs).
    pub wake_delay_us: u32,
    /// Wake pulses tried before giving up (cryptoauthlib retries the wake 20 times, §1.4;
    /// a NACKed or stale reply costs one attempt).
    pub wake_attempts: u8,
    /// Delay between sending a command and the first poll.
    pub first_poll_us: u32,
    /// Delay between polls while the chip NACKs (busy).
    pub poll_interval_us: u32,
    /// Polling continues up to the command's maximum execution time plus this percentage
    /// (the table is cryptoauthlib's 608A table; the 608B is documented as "relatively minor"
    /// different).
    pub timeout_margin_percent: u32,
    /// Time per command for NACKs that come from bus noise rather than a busy chip. It is
    /// added to the polling deadline (each NACKed response read costs a poll interval), so
    /// there is room even when the chip takes its full execution time; and a NACKed command
    /// write is followed by Idle, wake and the write again while the wakes' tWHI waits add
    /// up to less than it. cryptoauthlib polls every command for up to 2.5 s (§1.4).
    pub nack_allowance_us: u32,
    /// How often a command is resent when the chip answered that it did not execute it
    /// (status 0xFF, 0xEE, 0x11).
    pub resend_limit: u8,
    /// How often a response with a bad count or CRC is read again (read pointer reset, no
    /// resend: the command already ran and may not be repeatable). NACKed response reads are
    /// not counted here: they are polled again until the command's deadline.
    pub reread_limit: u8,
    /// Awake time after which the driver re-wakes (idle, then wake) before a command that
    /// could otherwise run into the watchdog. The chip's short watchdog is ~1.3 s.
    pub watchdog_budget_us: u32,
    /// Bus clock used to estimate transfer time for the watchdog account.
    pub bus_hz: u32,
    /// Send Idle at the end of every high-level operation (keeps TempKey, restarts the
    /// watchdog, lowers power; the next operation wakes the chip again).
    pub idle_after_op: bool,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            wake_delay_us: 1500,
            wake_attempts: 20,
            first_poll_us: 1000,
            poll_interval_us: 1000,
            timeout_margin_percent: 50,
            nack_allowance_us: 10_000,
            resend_limit: 2,
            reread_limit: 2,
            watchdog_budget_us: 1_000_000,
            bus_hz: 100_000,
            idle_after_op: true,
        }
    }
}

/// Why a wake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WakeError {
    /// The chip never acknowledged the read after the wake pulse.
    NoResponse,
    /// The chip answered with a CRC-valid status 0x07: its power-on self test failed.
    SelfTestFailure,
    /// The chip answered something other than `04 11 33 43`.
    Unexpected([u8; 4]),
}

/// Driver errors, generic over the I2C bus error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error<E> {
    /// A bus error other than a NACK.
    I2c(E),
    /// The chip did not acknowledge a command even after waking it again (bounded by
    /// [`Timing::nack_allowance_us`]).
    NoAck,
    /// Wake failed.
    Wake(WakeError),
    /// The chip returned an error status.
    Status(Status),
    /// The response stayed malformed (bad count or CRC) after re-reading it.
    Response(ResponseError),
    /// A response of the wrong length for the command.
    UnexpectedLength {
        /// Count byte expected.
        expected: u8,
        /// Count byte received.
        got: u8,
    },
    /// No response within the command's maximum execution time (plus margin).
    Timeout,
    /// The command could not be encoded.
    Encode(EncodeError),
    /// An address, slot or length outside what the chip supports.
    Address(AddressError),
    /// Random returned the pre-config-lock test pattern, which is not random.
    RandomTestPattern,
    /// After writing the config zone, the read-back differs at this byte offset.
    ConfigMismatch {
        /// First differing byte.
        offset: u8,
    },
}

impl<E> From<EncodeError> for Error<E> {
    fn from(e: EncodeError) -> Self {
        Error::Encode(e)
    }
}

impl<E> From<AddressError> for Error<E> {
    fn from(e: AddressError) -> Self {
        Error::Address(e)
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for Error<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::I2c(e) => write!(f, "I2C error: {e:?}"),
            Error::NoAck => write!(f, "chip did not acknowledge the command"),
            Error::Wake(WakeError::NoResponse) => write!(f, "no wake reply"),
            Error::Wake(WakeError::SelfTestFailure) => write!(f, "wake reply: self-test failure"),
            Error::Wake(WakeError::Unexpected(b)) => write!(f, "unexpected wake reply {b:02X?}"),
            Error::Status(s) => write!(f, "{s}"),
            Error::Response(e) => write!(f, "{e}"),
            Error::UnexpectedLength { expected, got } => {
                write!(f, "response length {got}, expected {expected}")
            }
            Error::Timeout => write!(f, "no response within the command's execution time"),
            Error::Encode(e) => write!(f, "cannot encode command: {e:?}"),
            Error::Address(e) => write!(f, "bad address: {e:?}"),
            Error::RandomTestPattern => {
                write!(
                    f,
                    "Random returned the test pattern (config zone not locked)"
                )
            }
            Error::ConfigMismatch { offset } => {
                write!(f, "config read-back differs at byte {offset}")
            }
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for Error<E> {}

/// What one command returned (after retries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reply {
    /// A 4-byte status group.
    Status(Status),
    /// A data group; the payload is `len` bytes at offset 1 of the response buffer.
    Data {
        /// Payload length.
        len: usize,
    },
}

/// ATECC608A/B driver over an embedded-hal 1.0 I2C bus and delay.
///
/// A whole operation on the wire (wake, command, one busy poll, response, idle):
///
/// ```
/// use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
/// use embedded_hal_mock::eh1::{delay::NoopDelay, i2c::{Mock, Transaction as T}};
/// use keystamp_atecc::Atecc;
///
/// let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
/// let bus = Mock::new(&[
///     T::write(0x00, vec![0x01]).with_error(nack),      // wake pulse (NACK expected)
///     T::read(0x60, vec![0x04, 0x11, 0x33, 0x43]),      // wake reply
///     T::write(0x60, vec![0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D]), // Info
///     T::read(0x60, vec![0x00]).with_error(nack),       // busy
///     T::read(0x60, vec![0x07]),                        // count
///     T::read(0x60, vec![0x00, 0x00, 0x60, 0x02, 0x80, 0x38]),
///     T::write(0x60, vec![0x02]),                       // idle
/// ]);
/// let mut chip = Atecc::new(bus, NoopDelay::new());
/// assert_eq!(chip.info().unwrap(), [0x00, 0x00, 0x60, 0x02]);
/// let (mut bus, _) = chip.release();
/// bus.done();
/// ```
pub struct Atecc<I2C, D> {
    i2c: I2C,
    delay: D,
    address: u8,
    timing: Timing,
    clock: ClockDivider,
    /// Time since the last wake as far as the driver can tell (delays it issued plus estimated
    /// bus time); `None` when the chip is believed asleep or idle.
    awake_us: Option<u32>,
    /// A command was sent since the last wake (a fresh wake is never repeated).
    used_since_wake: bool,
    /// A Random with seed update ran since the last wake: [`Atecc::sign_digest`]'s own seed
    /// update would repeat it (docs/decisions/0010-minimal-flow.md).
    seed_updated: bool,
}

fn is_nack<E: embedded_hal::i2c::Error>(e: &E) -> bool {
    matches!(e.kind(), ErrorKind::NoAcknowledge(_))
}

/// `Ok(true)` when the transfer went through, `Ok(false)` when the chip NACKed it; other bus
/// errors are returned.
fn acked<E: embedded_hal::i2c::Error>(r: Result<(), E>) -> Result<bool, Error<E>> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if is_nack(&e) => Ok(false),
        Err(e) => Err(Error::I2c(e)),
    }
}

/// Outcome of one attempt at reading a response.
enum Attempt {
    /// A well-formed group of this many bytes is in the buffer.
    Complete(usize),
    /// A transfer was NACKed (busy, or bus noise): wait and read again.
    Nack,
    /// Count or CRC bad: read again without waiting.
    Malformed(ResponseError),
}

impl<I2C: I2c, D: DelayNs> Atecc<I2C, D> {
    /// A driver for a chip at the default address 0x60 with default timing.
    pub fn new(i2c: I2C, delay: D) -> Self {
        Atecc {
            i2c,
            delay,
            address: DEFAULT_ADDRESS,
            timing: Timing::default(),
            clock: ClockDivider::M0,
            awake_us: None,
            used_since_wake: false,
            seed_updated: false,
        }
    }

    /// Use another 7-bit address (e.g. 0x35 for TNGTLS, 0x36 for TFLXTLS).
    pub fn set_address(&mut self, address: u8) {
        self.address = address;
    }

    /// The 7-bit address in use.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// Finds the chip on the bus: tries `configured` first, then each of
    /// [`FACTORY_ADDRESSES`] not tried yet, with a wake and an Info(Revision) (a CRC-checked
    /// answer, so another device at that address is not taken for the chip). The first address
    /// that answers stays in use and is returned with the revision; the chip is left idle.
    ///
    /// When none answers, the driver stays at `configured` and the error of that first attempt
    /// is returned (the most useful one to report for the address the board says it uses).
    /// Every wake pulse wakes the chip whatever its address, so a chip found after failed
    /// attempts has been awake since the first one; the idle at the end restarts its
    /// watchdog before any real work.
    pub fn locate(&mut self, configured: u8) -> Result<(u8, [u8; 4]), Error<I2C::Error>> {
        let mut first_error = None;
        let candidates = core::iter::once(configured)
            .chain(FACTORY_ADDRESSES.into_iter().filter(|&a| a != configured));
        for address in candidates {
            self.address = address;
            match self.info() {
                Ok(revision) => {
                    self.idle()?;
                    return Ok((address, revision));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.address = configured;
        Err(first_error.unwrap_or(Error::Wake(WakeError::NoResponse)))
    }

    /// Replace the timing policy.
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// The timing policy.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Tell the driver which clock divider the chip's ChipMode selects (scales timeouts).
    pub fn set_clock_divider(&mut self, clock: ClockDivider) {
        self.clock = clock;
    }

    /// Time since the last wake as tracked by the driver, `None` if believed asleep/idle.
    pub fn awake_for_us(&self) -> Option<u32> {
        self.awake_us
    }

    /// Give back the bus and the delay.
    pub fn release(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }

    fn wait(&mut self, us: u32) {
        self.delay.delay_us(us);
        if let Some(t) = self.awake_us.as_mut() {
            *t = t.saturating_add(us);
        }
    }

    fn account_bus(&mut self, bytes: usize) {
        // Address byte plus data, 9 clocks each; µs per clock rounded up. 32-bit math on
        // purpose: a 64-bit division pulls ~1 KB of compiler builtins into rv32 firmware.
        let hz = self.timing.bus_hz.max(1);
        let us_per_bit = 1_000_000u32.div_ceil(hz);
        let bits = (bytes as u32).saturating_add(1).saturating_mul(9);
        if let Some(t) = self.awake_us.as_mut() {
            *t = t.saturating_add(bits.saturating_mul(us_per_bit));
        }
    }

    /// Wake the chip: a write to address 0x00 (at ≤100 kHz its all-zero address byte holds SDA
    /// low for ≥ 60 µs; the NACK is expected), wait tWHI, read 4 bytes and check them against
    /// `04 11 33 43`. A CRC-valid status 0x07 reply is reported as a self-test failure. When
    /// the chip was already awake (stale output), it is sent to idle and woken again.
    pub fn wake(&mut self) -> Result<(), Error<I2C::Error>> {
        let mut last = WakeError::NoResponse;
        // The watchdog may have started at any of the pulses (a NACKed reply read does not
        // mean the chip stayed asleep), so the account starts at the first one.
        let mut since_first_pulse = 0u32;
        self.awake_us = None;
        self.seed_updated = false;
        for _ in 0..self.timing.wake_attempts.max(1) {
            // NACK (or a HAL refusing address 0) is expected: the pulse is what matters.
            let _ = self.i2c.write(0x00, &[0x01]);
            self.delay.delay_us(self.timing.wake_delay_us);
            since_first_pulse = since_first_pulse.saturating_add(self.timing.wake_delay_us);
            let mut reply = [0u8; 4];
            match self.i2c.read(self.address, &mut reply) {
                Ok(()) => match classify_wake(&reply) {
                    WakeReply::Awake => {
                        self.awake_us = Some(since_first_pulse);
                        self.used_since_wake = false;
                        self.account_bus(4);
                        return Ok(());
                    }
                    WakeReply::SelfTestFailure => {
                        self.awake_us = Some(since_first_pulse);
                        return Err(Error::Wake(WakeError::SelfTestFailure));
                    }
                    WakeReply::Unexpected => {
                        last = WakeError::Unexpected(reply);
                        // Awake with stale output: idle so the next pulse gives a clean wake.
                        // If this write is lost too, the next attempt sees stale output again.
                        let _ = self.i2c.write(self.address, &[WORD_ADDRESS_IDLE]);
                    }
                },
                // Not awake yet, or noise on an awake chip: pulse again. A pulse to an awake
                // chip is ignored (§1.2) and a NACKed read moved no byte, so the next read
                // still finds the wake reply.
                Err(e) if is_nack(&e) => last = WakeError::NoResponse,
                Err(e) => return Err(Error::I2c(e)),
            }
        }
        Err(Error::Wake(last))
    }

    fn word_address(&mut self, word: u8) -> Result<(), Error<I2C::Error>> {
        self.awake_us = None;
        match self.i2c.write(self.address, &[word]) {
            Ok(()) => Ok(()),
            // Already asleep or idle: the chip ignores its address, which is the goal anyway.
            Err(e) if is_nack(&e) => Ok(()),
            Err(e) => Err(Error::I2c(e)),
        }
    }

    /// Idle: keeps TempKey, the message digest buffer and the SHA context; stops the watchdog.
    ///
    /// Nothing is sent when the driver already idled or slept the chip (or never woke it): an
    /// idle or sleeping chip NACKs its address (reference §1.4), so the Idle would only be a
    /// NACKed transfer on the bus.
    pub fn idle(&mut self) -> Result<(), Error<I2C::Error>> {
        if self.awake_us.is_none() {
            return Ok(());
        }
        self.word_address(WORD_ADDRESS_IDLE)
    }

    /// Sleep: lowest power; all volatile state is lost.
    pub fn sleep(&mut self) -> Result<(), Error<I2C::Error>> {
        self.word_address(WORD_ADDRESS_SLEEP)
    }

    fn ensure_awake(&mut self, need_us: u32) -> Result<(), Error<I2C::Error>> {
        match self.awake_us {
            Some(t) if t.saturating_add(need_us) <= self.timing.watchdog_budget_us => Ok(()),
            // Just woken: waking again cannot buy more time.
            Some(_) if !self.used_since_wake => Ok(()),
            Some(_) => {
                // Idle keeps TempKey, so a multi-command sequence survives the re-wake.
                self.idle()?;
                self.wake()
            }
            None => self.wake(),
        }
    }

    /// Send one command and return its reply, with polling, resends and CRC re-reads as
    /// described in `docs/atecc.md`. The response group is left in `resp`. Error statuses
    /// are returned as `Reply::Status`, not as errors.
    pub fn execute(
        &mut self,
        cmd: &dyn Command,
        resp: &mut [u8; MAX_RESPONSE_LEN],
    ) -> Result<Reply, Error<I2C::Error>> {
        let mut packet = [0u8; MAX_COMMAND_LEN + 1];
        packet[0] = WORD_ADDRESS_COMMAND;
        let len = cmd.encode(&mut packet[1..])?;
        let packet = packet
            .get(..len + 1)
            .ok_or(Error::Encode(EncodeError::TooLong))?;
        let exec_ms = cmd.max_exec_ms(self.clock);
        let n = self.run(packet, exec_ms, resp)?;
        let group = resp.get(..n).ok_or(Error::Response(ResponseError::Empty))?;
        Ok(match parse_response(group).map_err(Error::Response)? {
            crate::packet::Response::Status(s) => Reply::Status(s),
            crate::packet::Response::Data(p) => Reply::Data { len: p.len() },
        })
    }

    fn run(
        &mut self,
        packet: &[u8],
        exec_ms: u32,
        resp: &mut [u8; MAX_RESPONSE_LEN],
    ) -> Result<usize, Error<I2C::Error>> {
        let exec_us = exec_ms.saturating_mul(1000);
        let timeout_us = exec_us
            .saturating_add((exec_us / 100).saturating_mul(self.timing.timeout_margin_percent))
            .saturating_add(self.timing.nack_allowance_us)
            .max(self.timing.first_poll_us);
        let mut resends = 0u8;
        // tWHI waits spent re-waking after NACKed command writes, bounded by the NACK allowance.
        let mut rewake_us = 0u32;
        loop {
            self.ensure_awake(timeout_us)?;
            match self.i2c.write(self.address, packet) {
                Ok(()) => {
                    self.used_since_wake = true;
                    self.account_bus(packet.len());
                }
                Err(e) if is_nack(&e) => {
                    // Either the chip went to sleep behind our back (watchdog while the caller
                    // was elsewhere) or bus noise NACKed a chip that is awake, possibly after
                    // part of the command went in. Idle then wake covers all three: Idle
                    // flushes the I/O buffer of an awake chip and keeps TempKey (§1.3), a
                    // sleeping chip just NACKs it, and the wake starts a clean watchdog period.
                    // Nothing ran, so this does not count as a resend.
                    if rewake_us >= self.timing.nack_allowance_us {
                        return Err(Error::NoAck);
                    }
                    rewake_us = rewake_us.saturating_add(self.timing.wake_delay_us.max(1));
                    self.idle()?;
                    continue;
                }
                Err(e) => return Err(Error::I2c(e)),
            }
            let n = self.receive(timeout_us, resp)?;
            if n == STATUS_RESPONSE_LEN {
                let status = Status::from_code(resp[1]);
                if status.is_resendable() && resends < self.timing.resend_limit {
                    resends += 1;
                    if status == Status::WatchdogAboutToExpire {
                        // Restart the watchdog; TempKey survives idle.
                        self.idle()?;
                    }
                    continue;
                }
            }
            return Ok(n);
        }
    }

    /// Poll for the response and read it: first poll after `first_poll_us`, then every
    /// `poll_interval_us` while the chip NACKs, up to `timeout_us`.
    ///
    /// A NACK on *any* transfer of the response — the count byte, the rest, or a re-read — is
    /// treated like busy: wait a poll interval and read again, until the deadline. A real chip
    /// NACKs while busy and a noisy bus can NACK at any time (reference §1.4); the output
    /// buffer stays until the next command, Idle, Sleep or the watchdog. Once any byte has been
    /// read, every later attempt writes word address 0x00 (reset the read pointer, §1.3) and
    /// reads count and rest again: outputs can be read repeatedly (§1.4 [DS]), and this is
    /// cryptoauthlib's poll loop (`calib_execute_command` retries the whole
    /// `calib_execute_receive` — word address 0x00, count, rest — after any failed read). A
    /// bad count or CRC is re-read the same way, at most `reread_limit` times (cryptoauthlib
    /// itself gives up on a CRC error; the command is not resent because it already ran).
    fn receive(
        &mut self,
        timeout_us: u32,
        resp: &mut [u8; MAX_RESPONSE_LEN],
    ) -> Result<usize, Error<I2C::Error>> {
        let first = self.timing.first_poll_us.min(timeout_us);
        self.wait(first);
        let mut waited = first;
        let mut rereads = 0u8;
        let mut answered = false;
        loop {
            match self.read_response(&mut answered, resp)? {
                Attempt::Complete(n) => return Ok(n),
                Attempt::Nack => {
                    if waited >= timeout_us {
                        return Err(Error::Timeout);
                    }
                    let step = self.timing.poll_interval_us.max(1).min(timeout_us - waited);
                    self.wait(step);
                    waited += step;
                }
                Attempt::Malformed(error) => {
                    if rereads >= self.timing.reread_limit {
                        return Err(Error::Response(error));
                    }
                    rereads += 1;
                }
            }
        }
    }

    /// One attempt at reading the whole response. `answered` is set once the chip has sent
    /// any byte; from then on the attempt starts by resetting the read pointer.
    fn read_response(
        &mut self,
        answered: &mut bool,
        resp: &mut [u8; MAX_RESPONSE_LEN],
    ) -> Result<Attempt, Error<I2C::Error>> {
        if *answered {
            if !acked(self.i2c.write(self.address, &[WORD_ADDRESS_RESET]))? {
                return Ok(Attempt::Nack);
            }
            self.account_bus(1);
        }
        if !acked(self.i2c.read(self.address, &mut resp[..1]))? {
            return Ok(Attempt::Nack);
        }
        *answered = true;
        self.account_bus(1);
        let count = resp[0];
        let n = count as usize;
        let Some(rest) = resp.get_mut(1..n).filter(|_| n >= STATUS_RESPONSE_LEN) else {
            return Ok(Attempt::Malformed(ResponseError::BadCount(count)));
        };
        if !acked(self.i2c.read(self.address, rest))? {
            return Ok(Attempt::Nack);
        }
        self.account_bus(n - 1);
        Ok(match parse_response(&resp[..n]) {
            Ok(_) => Attempt::Complete(n),
            Err(e) => Attempt::Malformed(e),
        })
    }

    /// Run `f` as one operation: afterwards the chip is sent to idle (if the policy says so).
    fn op<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, Error<I2C::Error>>,
    ) -> Result<T, Error<I2C::Error>> {
        let result = f(self);
        if self.timing.idle_after_op && self.awake_us.is_some() {
            let idle = self.idle();
            if result.is_ok() {
                idle?;
            }
        }
        result
    }

    fn status_cmd(&mut self, cmd: &dyn Command) -> Result<(), Error<I2C::Error>> {
        let mut resp = [0u8; MAX_RESPONSE_LEN];
        match self.execute(cmd, &mut resp)? {
            Reply::Status(Status::Success) => Ok(()),
            Reply::Status(s) => Err(Error::Status(s)),
            Reply::Data { len } => Err(unexpected(STATUS_RESPONSE_LEN, len + 3)),
        }
    }

    fn data_cmd<const N: usize>(
        &mut self,
        cmd: &dyn Command,
    ) -> Result<[u8; N], Error<I2C::Error>> {
        let mut resp = [0u8; MAX_RESPONSE_LEN];
        match self.execute(cmd, &mut resp)? {
            Reply::Data { len } if len == N => {
                let mut out = [0u8; N];
                out.copy_from_slice(resp.get(1..1 + N).ok_or(Error::Timeout)?);
                Ok(out)
            }
            Reply::Data { len } => Err(unexpected(N + 3, len + 3)),
            Reply::Status(Status::Success) => Err(unexpected(N + 3, STATUS_RESPONSE_LEN)),
            Reply::Status(s) => Err(Error::Status(s)),
        }
    }

    /// Info(Revision): `00 00 60 02` on a 608A, `00 00 60 03` on a 608B.
    pub fn info(&mut self) -> Result<[u8; 4], Error<I2C::Error>> {
        self.op(|d| d.data_cmd(&Info::Revision))
    }

    /// Info(KeyValid): whether the slot holds a valid key.
    pub fn key_valid(&mut self, slot: u8) -> Result<bool, Error<I2C::Error>> {
        let slot = slot_of(slot)?;
        self.op(|d| d.data_cmd::<4>(&Info::KeyValid(slot)).map(|r| r[0] == 1))
    }

    /// Read 4 bytes.
    pub fn read_word(&mut self, addr: ZoneAddr) -> Result<[u8; 4], Error<I2C::Error>> {
        self.op(|d| {
            d.data_cmd(&Read {
                addr,
                size: Size::Word,
            })
        })
    }

    /// Read 32 bytes.
    pub fn read_block(&mut self, addr: ZoneAddr) -> Result<[u8; 32], Error<I2C::Error>> {
        self.op(|d| {
            d.data_cmd(&Read {
                addr,
                size: Size::Block,
            })
        })
    }

    /// Write 4 bytes.
    pub fn write_word(&mut self, addr: ZoneAddr, data: &[u8; 4]) -> Result<(), Error<I2C::Error>> {
        self.op(|d| {
            d.status_cmd(&Write {
                addr,
                data: WriteData::Word(data),
            })
        })
    }

    /// Write 32 bytes.
    pub fn write_block(
        &mut self,
        addr: ZoneAddr,
        data: &[u8; 32],
    ) -> Result<(), Error<I2C::Error>> {
        self.op(|d| {
            d.status_cmd(&Write {
                addr,
                data: WriteData::Block(data),
            })
        })
    }

    /// Read `buf.len()` bytes from byte `offset` of a zone (`slot` for the data zone), using
    /// 32-byte reads where a whole block is wanted and 4-byte reads otherwise.
    pub fn read_bytes(
        &mut self,
        zone: Zone,
        slot: u8,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), Error<I2C::Error>> {
        self.op(|d| {
            let end = offset.saturating_add(buf.len());
            let mut pos = offset - offset % 4;
            while pos < end {
                let block = pos.is_multiple_of(32) && end - pos >= 32;
                let size = if block { Size::Block } else { Size::Word };
                let addr = ZoneAddr::for_offset(zone, slot, pos, size)?;
                let mut chunk = [0u8; 32];
                if block {
                    chunk = d.data_cmd::<32>(&Read { addr, size })?;
                } else {
                    let w = d.data_cmd::<4>(&Read { addr, size })?;
                    chunk[..4].copy_from_slice(&w);
                }
                let from = offset.max(pos);
                let to = end.min(pos + size.bytes());
                let dst = buf.get_mut(from - offset..to - offset);
                let src = chunk.get(from - pos..to - pos);
                if let (Some(dst), Some(src)) = (dst, src) {
                    dst.copy_from_slice(src);
                }
                pos += size.bytes();
            }
            Ok(())
        })
    }

    /// Write `data` at byte `offset` of a zone (`slot` for the data zone): 32-byte writes on
    /// block boundaries, 4-byte writes otherwise. `offset` and `data.len()` must be multiples
    /// of 4. (Before the data lock the chip only accepts 32-byte data writes; use
    /// [`Atecc::write_slot`] then.)
    pub fn write_bytes(
        &mut self,
        zone: Zone,
        slot: u8,
        offset: usize,
        data: &[u8],
    ) -> Result<(), Error<I2C::Error>> {
        if !offset.is_multiple_of(4) || !data.len().is_multiple_of(4) {
            return Err(Error::Address(AddressError::Alignment));
        }
        self.op(|d| {
            let mut pos = 0;
            while pos < data.len() {
                let at = offset.saturating_add(pos);
                let rest = data.get(pos..).unwrap_or(&[]);
                if at.is_multiple_of(32) && rest.len() >= 32 {
                    let addr = ZoneAddr::for_offset(zone, slot, at, Size::Block)?;
                    let block = first_n::<32>(rest)?;
                    d.status_cmd(&Write {
                        addr,
                        data: WriteData::Block(&block),
                    })?;
                    pos += 32;
                } else {
                    let addr = ZoneAddr::for_offset(zone, slot, at, Size::Word)?;
                    let word = first_n::<4>(rest)?;
                    d.status_cmd(&Write {
                        addr,
                        data: WriteData::Word(&word),
                    })?;
                    pos += 4;
                }
            }
            Ok(())
        })
    }

    /// Write `data` from the start of a data slot using only 32-byte writes (the form the chip
    /// accepts between the config lock and the data lock). The last block is padded with
    /// zeros; bytes beyond the slot's end are ignored by the chip.
    pub fn write_slot(&mut self, slot: u8, data: &[u8]) -> Result<(), Error<I2C::Error>> {
        let s = slot_of(slot)?;
        if data.len() > s.size() {
            return Err(Error::Address(AddressError::Offset));
        }
        self.op(|d| {
            for (block, chunk) in data.chunks(32).enumerate() {
                let mut buf = [0u8; 32];
                buf.get_mut(..chunk.len())
                    .ok_or(Error::Encode(EncodeError::TooLong))?
                    .copy_from_slice(chunk);
                let addr = ZoneAddr::data(slot, block as u8, 0)?;
                d.status_cmd(&Write {
                    addr,
                    data: WriteData::Block(&buf),
                })?;
            }
            Ok(())
        })
    }

    /// The 9-byte serial number (config bytes 0–3 ‖ 8–12).
    pub fn serial_number(&mut self) -> Result<[u8; 9], Error<I2C::Error>> {
        let b = self.read_block(ZoneAddr::config(0, 0)?)?;
        Ok([b[0], b[1], b[2], b[3], b[8], b[9], b[10], b[11], b[12]])
    }

    /// All 128 config bytes (four 32-byte reads).
    pub fn read_config_zone(&mut self) -> Result<[u8; CONFIG_SIZE], Error<I2C::Error>> {
        self.op(|d| {
            let mut out = [0u8; CONFIG_SIZE];
            for (block, dst) in out.chunks_mut(32).enumerate() {
                let addr = ZoneAddr::config(block as u8, 0)?;
                dst.copy_from_slice(&d.data_cmd::<32>(&Read {
                    addr,
                    size: Size::Block,
                })?);
            }
            Ok(out)
        })
    }

    /// Lock state from config word 0x15: `(data_locked, config_locked)`.
    pub fn lock_status(&mut self) -> Result<(bool, bool), Error<I2C::Error>> {
        let w = self.read_word(ZoneAddr::config(2, 5)?)?;
        Ok((
            w[2] != crate::config::UNLOCKED,
            w[3] != crate::config::UNLOCKED,
        ))
    }

    /// Program `target` on a config-unlocked chip: read the current zone, send the
    /// [`config_write_ops`] whose bytes differ (UpdateExtra only while the byte is still 0),
    /// read the zone back and check every setting. Returns the read-back zone, whose
    /// [`ConfigZone::lock_crc`] is the CRC to pass to [`Atecc::lock_config`].
    ///
    /// On a chip whose config zone is already locked nothing is written: the result is the
    /// current zone if its settings equal the target's (check
    /// [`ConfigZone::config_locked`] before locking), else [`Error::ConfigMismatch`].
    pub fn write_config_zone(
        &mut self,
        target: &ConfigZone,
    ) -> Result<ConfigZone, Error<I2C::Error>> {
        let current = self.read_config_zone()?;
        self.write_config_zone_over(&current, target)
    }

    /// [`Atecc::write_config_zone`] for a caller that already holds the current zone (read with
    /// nothing written since): the zone is not read again before the writes, only after them.
    pub fn write_config_zone_over(
        &mut self,
        current: &[u8; CONFIG_SIZE],
        target: &ConfigZone,
    ) -> Result<ConfigZone, Error<I2C::Error>> {
        if ConfigZone::from_bytes(current).config_locked() {
            // Nothing can be written any more; a rerun on a chip already programmed and locked
            // with this target succeeds, anything else names the first differing byte.
            let current = ConfigZone::from_bytes(current);
            return match current.first_setting_difference(target) {
                Some(offset) => Err(Error::ConfigMismatch {
                    offset: offset as u8,
                }),
                None => Ok(current),
            };
        }
        self.op(|d| {
            for op in config_write_ops(target) {
                match op {
                    ConfigWriteOp::Word { addr, offset, data } => {
                        let o = offset as usize;
                        if current.get(o..o + 4) != Some(&data[..]) {
                            d.status_cmd(&Write {
                                addr,
                                data: WriteData::Word(&data),
                            })?;
                        }
                    }
                    ConfigWriteOp::Block { addr, offset, data } => {
                        let o = offset as usize;
                        if current.get(o..o + 32) != Some(&data[..]) {
                            d.status_cmd(&Write {
                                addr,
                                data: WriteData::Block(&data),
                            })?;
                        }
                    }
                    ConfigWriteOp::UpdateExtra(u) => {
                        let (o, v) = match u {
                            UpdateExtra::UserExtra(v) => (84, v),
                            UpdateExtra::UserExtraAdd(v) => (85, v),
                        };
                        if current.get(o) != Some(&v) {
                            d.status_cmd(&u)?;
                        }
                    }
                }
            }
            Ok(())
        })?;
        let back = ConfigZone::from_bytes(&self.read_config_zone()?);
        match back.first_setting_difference(target) {
            Some(offset) => Err(Error::ConfigMismatch {
                offset: offset as u8,
            }),
            None => Ok(back),
        }
    }

    /// Lock the config zone. Pass `Some(crc)` (from [`ConfigZone::lock_crc`] of the verified
    /// read-back) so the chip refuses if its contents differ; `None` skips the check.
    pub fn lock_config(&mut self, crc: Option<u16>) -> Result<(), Error<I2C::Error>> {
        self.op(|d| d.status_cmd(&Lock::Config(crc)))
    }

    /// Lock the data and OTP zones (CRC from [`crate::config::data_lock_crc`], or `None`).
    pub fn lock_data(&mut self, crc: Option<u16>) -> Result<(), Error<I2C::Error>> {
        self.op(|d| d.status_cmd(&Lock::Data(crc)))
    }

    /// Lock one slot (KeyConfig.Lockable must be set).
    pub fn lock_slot(&mut self, slot: u8) -> Result<(), Error<I2C::Error>> {
        let slot = slot_of(slot)?;
        self.op(|d| d.status_cmd(&Lock::Slot(slot)))
    }

    /// Create a new private key in `slot`; returns its public key X‖Y.
    pub fn genkey(&mut self, slot: u8) -> Result<[u8; 64], Error<I2C::Error>> {
        let slot = slot_of(slot)?;
        self.op(|d| d.data_cmd(&GenKey::Private(slot)))
    }

    /// The public key X‖Y of the private key in `slot`.
    pub fn get_public_key(&mut self, slot: u8) -> Result<[u8; 64], Error<I2C::Error>> {
        let slot = slot_of(slot)?;
        self.op(|d| d.data_cmd(&GenKey::Public(slot)))
    }

    /// Load 32 bytes into TempKey (Nonce pass-through).
    pub fn load_tempkey(&mut self, value: &[u8; 32]) -> Result<(), Error<I2C::Error>> {
        self.op(|d| {
            d.status_cmd(&Nonce::Fixed32 {
                target: NonceTarget::TempKey,
                value,
            })
        })
    }

    /// Sign a 32-byte digest with the key in `slot` (the slot's SlotConfig must allow external
    /// Sign). Returns R‖S. The sequence is cryptoauthlib's `calib_sign` on a 608: Random (seed
    /// update; cryptoauthlib: "make sure RNG has updated its seed", the output is discarded),
    /// Nonce pass-through of the digest into the message digest buffer, then Sign external
    /// from the message digest buffer.
    pub fn sign_digest(
        &mut self,
        slot: u8,
        digest: &[u8; 32],
    ) -> Result<[u8; 64], Error<I2C::Error>> {
        let slot = slot_of(slot)?;
        self.op(|d| {
            // The seed update once per wake: a Random just before (the identity proof's device
            // nonce) already did it.
            if !d.seed_updated {
                d.data_cmd::<32>(&Random { update_seed: true })?;
            }
            d.msg_dig_sequence(digest, |d| {
                d.data_cmd(&Sign::External {
                    slot,
                    source: MessageSource::MsgDigBuf,
                })
            })
        })
    }

    /// Verify an ECDSA P-256 signature R‖S of a 32-byte digest against a public key X‖Y on the
    /// chip: Nonce pass-through into the message digest buffer, then Verify external from it
    /// (cryptoauthlib `calib_verify_extern` on a 608). `Ok(true)` only for status 0x00,
    /// `Ok(false)` only for status 0x01 (verify miscompare); anything else is an error.
    pub fn verify_extern(
        &mut self,
        digest: &[u8; 32],
        signature: &[u8; 64],
        public_key: &[u8; 64],
    ) -> Result<bool, Error<I2C::Error>> {
        self.op(|d| {
            d.msg_dig_sequence(digest, |d| {
                d.verify_cmd(&VerifyExternal {
                    source: MessageSource::MsgDigBuf,
                    signature,
                    public_key,
                })
            })
        })
    }

    /// Verify an ECDSA P-256 signature R‖S of a 32-byte digest against the public key stored in
    /// `key_slot` (KeyConfig P-256, not private; with PubInfo = 1 the key must have been
    /// validated first): Nonce pass-through into the message digest buffer, then Verify stored
    /// mode from it (cryptoauthlib `calib_verify_stored` on a 608). `Ok(true)` only for status
    /// 0x00, `Ok(false)` only for status 0x01 (verify miscompare); anything else — including
    /// the execution error a chip returns for a slot that cannot be used — is an error.
    pub fn verify_stored(
        &mut self,
        key_slot: u8,
        digest: &[u8; 32],
        signature: &[u8; 64],
    ) -> Result<bool, Error<I2C::Error>> {
        let key_slot = slot_of(key_slot)?;
        self.op(|d| {
            d.msg_dig_sequence(digest, |d| {
                d.verify_cmd(&VerifyStored {
                    source: MessageSource::MsgDigBuf,
                    key_slot,
                    signature,
                })
            })
        })
    }

    /// Run a Verify command: status 0x00 → `true`, 0x01 (miscompare) → `false`, other statuses
    /// are errors.
    fn verify_cmd(&mut self, cmd: &dyn Command) -> Result<bool, Error<I2C::Error>> {
        let mut resp = [0u8; MAX_RESPONSE_LEN];
        match self.execute(cmd, &mut resp)? {
            Reply::Status(Status::Success) => Ok(true),
            Reply::Status(Status::Miscompare) => Ok(false),
            Reply::Status(s) => Err(Error::Status(s)),
            Reply::Data { len } => Err(unexpected(STATUS_RESPONSE_LEN, len + 3)),
        }
    }

    /// Nonce pass-through of `value` into the message digest buffer, then `then`. If `then`
    /// fails with an execution error (buffer lost, e.g. the chip slept in between), the pair is
    /// run once more; a second execution error is returned.
    fn msg_dig_sequence<T>(
        &mut self,
        value: &[u8; 32],
        mut then: impl FnMut(&mut Self) -> Result<T, Error<I2C::Error>>,
    ) -> Result<T, Error<I2C::Error>> {
        let nonce = Nonce::Fixed32 {
            target: NonceTarget::MsgDigBuf,
            value,
        };
        self.status_cmd(&nonce)?;
        match then(self) {
            Err(Error::Status(Status::ExecutionError)) => {
                self.status_cmd(&nonce)?;
                then(self)
            }
            other => other,
        }
    }

    /// 32 random bytes. Errors with [`Error::RandomTestPattern`] before the config lock, when
    /// the chip returns a fixed pattern instead of random data.
    pub fn random(&mut self) -> Result<[u8; 32], Error<I2C::Error>> {
        let r: [u8; 32] = self.op(|d| d.data_cmd(&Random { update_seed: true }))?;
        if r == RANDOM_TEST_PATTERN {
            Err(Error::RandomTestPattern)
        } else {
            // Only while the chip stays awake (an idle or sleep in `op` ends the wake).
            self.seed_updated = self.awake_us.is_some();
            Ok(r)
        }
    }

    /// SHA-256 of `data` on the chip (SHA start, update per 64 bytes, end).
    pub fn sha256(&mut self, data: &[u8]) -> Result<[u8; 32], Error<I2C::Error>> {
        self.op(|d| {
            d.status_cmd(&Sha::Start)?;
            let full = data.len() / 64 * 64;
            let (blocks, tail) = data.split_at(full);
            for block in blocks.chunks_exact(64) {
                d.status_cmd(&Sha::Update(&first_n::<64>(block)?))?;
            }
            d.data_cmd(&Sha::End(tail))
        })
    }

    /// Run the chip's self test (`tests`: bitwise OR of `SELF_TEST_*`). Returns the bitmap of
    /// failed tests (0 = all passed). A reply with bits outside `tests` is a status error.
    pub fn self_test(&mut self, tests: u8) -> Result<u8, Error<I2C::Error>> {
        self.op(|d| {
            let mut resp = [0u8; MAX_RESPONSE_LEN];
            match d.execute(&SelfTest { tests }, &mut resp)? {
                Reply::Status(s) if s.code() & !tests == 0 => Ok(s.code()),
                Reply::Status(s) => Err(Error::Status(s)),
                Reply::Data { len } => Err(unexpected(STATUS_RESPONSE_LEN, len + 3)),
            }
        })
    }

    /// Read a monotonic counter.
    pub fn counter_read(&mut self, id: CounterId) -> Result<u32, Error<I2C::Error>> {
        self.op(|d| d.data_cmd(&Counter::Read(id)).map(u32::from_le_bytes))
    }

    /// Increment a monotonic counter; returns the new value.
    pub fn counter_increment(&mut self, id: CounterId) -> Result<u32, Error<I2C::Error>> {
        self.op(|d| d.data_cmd(&Counter::Increment(id)).map(u32::from_le_bytes))
    }

    /// ECDH with the private key in `slot` and a peer public key X‖Y. Returns the shared
    /// secret (X coordinate), or `None` when the slot's SlotConfig stores it in slot N|1.
    pub fn ecdh(
        &mut self,
        slot: u8,
        public_key: &[u8; 64],
    ) -> Result<Option<[u8; 32]>, Error<I2C::Error>> {
        let slot = slot_of(slot)?;
        self.op(|d| match d.data_cmd::<32>(&Ecdh { slot, public_key }) {
            Ok(s) => Ok(Some(s)),
            Err(Error::UnexpectedLength { got: 4, .. }) => Ok(None),
            Err(e) => Err(e),
        })
    }

    /// UpdateExtra: set config byte 84 or 85 (only while it is still 0).
    pub fn update_extra(&mut self, update: UpdateExtra) -> Result<(), Error<I2C::Error>> {
        self.op(|d| d.status_cmd(&update))
    }

    /// Unencrypted PrivWrite of a P-256 private key (only before the data lock).
    pub fn priv_write(&mut self, slot: u8, key: &[u8; 32]) -> Result<(), Error<I2C::Error>> {
        let slot = slot_of(slot)?;
        self.op(|d| d.status_cmd(&PrivWrite { slot, key }))
    }
}

fn slot_of<E>(slot: u8) -> Result<Slot, Error<E>> {
    Slot::new(slot).ok_or(Error::Address(AddressError::Slot))
}

fn unexpected<E>(expected: usize, got: usize) -> Error<E> {
    Error::UnexpectedLength {
        expected: expected as u8,
        got: got as u8,
    }
}

fn first_n<const N: usize>(data: &[u8]) -> Result<[u8; N], EncodeError> {
    data.get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or(EncodeError::BufferTooSmall)
}

/// Public key X‖Y in the 72-byte slot layout cryptoauthlib uses for stored public keys:
/// `00×4 ‖ X ‖ 00×4 ‖ Y`.
pub fn public_key_to_slot(public_key: &[u8; 64]) -> [u8; 72] {
    let mut out = [0u8; 72];
    out[4..36].copy_from_slice(&public_key[..32]);
    out[40..72].copy_from_slice(&public_key[32..]);
    out
}

/// Public key X‖Y from the 72-byte slot layout (the pad bytes are ignored).
pub fn public_key_from_slot(slot: &[u8; 72]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&slot[4..36]);
    out[32..].copy_from_slice(&slot[40..72]);
    out
}
