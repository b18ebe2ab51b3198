//! Driver behaviour against embedded-hal-mock transcripts built from the reference
//! (`shared/reference/atecc608.md` §1.2–§1.5, §2, §4): wake, busy polling, CRC re-read,
//! resend on 0xFF, watchdog status and budget, sleep/idle, and the typed operations.

use std::cell::RefCell;
use std::rc::Rc;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
use keystamp_atecc::command::CounterId;
use keystamp_atecc::driver::{Atecc, Error, Timing, WakeError};
use keystamp_atecc::{Direction, ResponseError, Status, TracingI2c};

const ADDR: u8 = 0x60;

mod common;
use common::INDEPENDENT;

/// Append the CRC (independent implementation) to count‖payload.
fn group(body: &[u8]) -> Vec<u8> {
    let mut v = body.to_vec();
    v.extend(INDEPENDENT.checksum(body).to_le_bytes());
    v
}

/// A command group: count opcode p1 p2 data crc.
fn packet(opcode: u8, p1: u8, p2: u16, data: &[u8]) -> Vec<u8> {
    let mut v = vec![(7 + data.len()) as u8, opcode, p1];
    v.extend(p2.to_le_bytes());
    v.extend(data);
    group(&v)
}

/// A data response group.
fn data_reply(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![(3 + payload.len()) as u8];
    v.extend(payload);
    group(&v)
}

fn status_reply(code: u8) -> Vec<u8> {
    group(&[0x04, code])
}

fn nack() -> ErrorKind {
    ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
}

fn wake() -> Vec<T> {
    vec![
        T::write(0x00, vec![0x01]).with_error(nack()),
        T::read(ADDR, vec![0x04, 0x11, 0x33, 0x43]),
    ]
}

fn send(p: &[u8]) -> T {
    let mut v = vec![0x03];
    v.extend(p);
    T::write(ADDR, v)
}

fn busy(n: usize) -> Vec<T> {
    (0..n)
        .map(|_| T::read(ADDR, vec![0]).with_error(nack()))
        .collect()
}

fn reply(g: &[u8]) -> Vec<T> {
    vec![count(g), T::read(ADDR, g[1..].to_vec())]
}

fn idle() -> T {
    T::write(ADDR, vec![0x02])
}

/// Word address 0x00: reset the output-buffer read pointer.
fn reset() -> T {
    T::write(ADDR, vec![0x00])
}

/// The count byte of `g`, read.
fn count(g: &[u8]) -> T {
    T::read(ADDR, vec![g[0]])
}

/// The read of the rest of `g` (after its count byte), NACKed.
fn rest_nacked(g: &[u8]) -> T {
    T::read(ADDR, vec![0; g.len() - 1]).with_error(nack())
}

/// Counter(Increment, counter 0) and the reply carrying the new value 5.
fn counter_increment_to_5() -> (Vec<u8>, Vec<u8>) {
    (packet(0x24, 0x01, 0x0000, &[]), data_reply(&[5, 0, 0, 0]))
}

/// Wake, send Counter(Increment), then `response` (the reads of the reply), then Idle: the
/// driver must return 5 having sent the command exactly once. Returns the waits.
fn increment_once_to_5(response: Vec<T>) -> Vec<u32> {
    let (inc, _) = counter_increment_to_5();
    let s = Script::new()
        .add(wake())
        .one(send(&inc))
        .add(response)
        .one(idle());
    let (mut d, clock) = s.driver();
    assert_eq!(d.counter_increment(CounterId::Zero).unwrap(), 5);
    finish(d);
    clock.waits()
}

/// A delay that records every wait in microseconds.
#[derive(Clone, Default)]
struct Clock(Rc<RefCell<Vec<u32>>>);

impl DelayNs for Clock {
    fn delay_ns(&mut self, ns: u32) {
        self.0.borrow_mut().push(ns.div_ceil(1000));
    }
    fn delay_us(&mut self, us: u32) {
        self.0.borrow_mut().push(us);
    }
    fn delay_ms(&mut self, ms: u32) {
        self.0.borrow_mut().push(ms * 1000);
    }
}

impl Clock {
    fn waits(&self) -> Vec<u32> {
        self.0.borrow().clone()
    }
    fn total(&self) -> u32 {
        self.0.borrow().iter().sum()
    }
}

struct Script(Vec<T>);

impl Script {
    fn new() -> Self {
        Script(Vec::new())
    }
    fn add(mut self, t: impl IntoIterator<Item = T>) -> Self {
        self.0.extend(t);
        self
    }
    fn one(mut self, t: T) -> Self {
        self.0.push(t);
        self
    }
    fn driver(&self) -> (Atecc<Mock, Clock>, Clock) {
        let clock = Clock::default();
        (Atecc::new(Mock::new(&self.0), clock.clone()), clock)
    }
}

fn finish(d: Atecc<Mock, Clock>) {
    let (mut i2c, _) = d.release();
    i2c.done();
}

// Reference §2.3 packets.
const INFO_REV: [u8; 7] = [0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D];
const RANDOM: [u8; 7] = [0x07, 0x1B, 0x00, 0x00, 0x00, 0x24, 0xCD];
const SHA_START: [u8; 7] = [0x07, 0x47, 0x00, 0x00, 0x00, 0x2E, 0x85];
const SIGN_EXT_MSGDIG_0: [u8; 7] = [0x07, 0x41, 0xA0, 0x00, 0x00, 0x7B, 0x85];
const GENKEY_PRIVATE_0: [u8; 7] = [0x07, 0x40, 0x04, 0x00, 0x00, 0x83, 0x87];
const GENKEY_PUBLIC_0: [u8; 7] = [0x07, 0x40, 0x00, 0x00, 0x00, 0x00, 0x05];
/// What cryptoauthlib's `calib_sign` sends first on a 608 ("make sure RNG has updated its
/// seed"): Random, seed update; the driver discards the output.
fn random_first() -> Vec<T> {
    let mut v = vec![send(&RANDOM)];
    v.extend(reply(&data_reply(&[0x3C; 32])));
    v
}

/// Nonce pass-through (mode 0x03) into the message digest buffer (target bits 0x40): the
/// message load of cryptoauthlib's `calib_sign`, `calib_verify_extern` and
/// `calib_verify_stored` on a 608 (`NONCE_MODE_TARGET_MSGDIGBUF`).
fn nonce_msgdig(digest: &[u8; 32]) -> Vec<u8> {
    packet(0x16, 0x43, 0, digest)
}

const INFO_REPLY_608A: [u8; 7] = [0x07, 0x00, 0x00, 0x60, 0x02, 0x80, 0x38];

#[test]
fn info_wakes_polls_and_idles() {
    let s = Script::new()
        .add(wake())
        .one(send(&INFO_REV))
        .add(busy(2))
        .add(reply(&INFO_REPLY_608A))
        .one(idle());
    let (mut d, clock) = s.driver();
    assert_eq!(d.info().unwrap(), [0x00, 0x00, 0x60, 0x02]);
    // tWHI 1500 µs after the pulse; first poll after 1 ms, then every 1 ms.
    assert_eq!(clock.waits(), [1500, 1000, 1000, 1000]);
    assert_eq!(d.awake_for_us(), None);
    finish(d);
}

/// Info against a chip that NACKs `polls` polls, with `timing`: must time out. Returns the
/// time spent polling (after tWHI).
fn info_polled_until_timeout(polls: usize, timing: Timing) -> u32 {
    let s = Script::new()
        .add(wake())
        .one(send(&INFO_REV))
        .add(busy(polls))
        .one(idle());
    let (mut d, clock) = s.driver();
    d.set_timing(timing);
    assert_eq!(d.info(), Err(Error::Timeout));
    finish(d);
    let waits = clock.waits();
    assert_eq!(waits[0], 1500);
    waits[1..].iter().sum()
}

#[test]
fn polling_gives_up_at_the_commands_max_time() {
    // Info: 5 ms max (§4.3) + 50% margin = 7.5 ms: polls at 1, 2, ... 7, 7.5 ms (no NACK
    // allowance here).
    let timing = Timing {
        nack_allowance_us: 0,
        ..Timing::default()
    };
    assert_eq!(info_polled_until_timeout(8, timing), 7500);
}

#[test]
fn nack_allowance_extends_every_deadline() {
    // Default: 7.5 ms + 10 ms allowance for bus-noise NACKs = 17.5 ms: polls at 1 … 17, 17.5.
    assert_eq!(info_polled_until_timeout(18, Timing::default()), 17_500);
}

#[test]
fn slow_command_is_polled_until_ready() {
    // GenKey private: 115 ms max. The key arrives after 80 polls.
    let pubkey: Vec<u8> = (0..64).collect();
    let s = Script::new()
        .add(wake())
        .one(send(&GENKEY_PRIVATE_0))
        .add(busy(80))
        .add(reply(&data_reply(&pubkey)))
        .one(idle());
    let (mut d, clock) = s.driver();
    assert_eq!(d.genkey(0).unwrap().to_vec(), pubkey);
    assert_eq!(clock.total(), 1500 + 81 * 1000);
    finish(d);
}

#[test]
fn bad_response_crc_is_reread_not_resent() {
    // Counter increment must not run twice: the response is read again after resetting the
    // read pointer (word address 0x00).
    let (_, good) = counter_increment_to_5();
    let mut bad = good.clone();
    bad[5] ^= 0xFF;
    let mut response = reply(&bad);
    response.push(reset());
    response.extend(reply(&good));
    increment_once_to_5(response);
}

#[test]
fn persistent_bad_crc_gives_up_after_bounded_rereads() {
    let good = data_reply(&[5, 0, 0, 0]);
    let mut bad = good.clone();
    bad[6] ^= 0x01;
    let inc = packet(0x24, 0x00, 0x0001, &[]);
    let mut s = Script::new().add(wake()).one(send(&inc)).add(reply(&bad));
    for _ in 0..2 {
        s = s.one(reset()).add(reply(&bad));
    }
    let s = s.one(idle());
    let (mut d, _) = s.driver();
    match d.counter_read(CounterId::One) {
        Err(Error::Response(ResponseError::Crc { .. })) => {}
        other => panic!("{other:?}"),
    }
    finish(d);
}

#[test]
fn nack_after_the_count_byte_is_polled_again_from_the_start() {
    // The chip (or the bus) NACKs the read of the rest after the count byte: wait a poll
    // interval, reset the read pointer (word address 0x00, §1.3) and read count and rest again
    // (§1.4: outputs can be read repeatedly). The command is not resent.
    let (_, good) = counter_increment_to_5();
    let mut response = vec![count(&good), rest_nacked(&good), reset()];
    response.extend(reply(&good));
    // tWHI, first poll, then one poll interval before the re-read.
    assert_eq!(increment_once_to_5(response), [1500, 1000, 1000]);
}

#[test]
fn nacks_on_every_step_of_a_reread_are_polled_through() {
    // NACK on the rest, then on the pointer reset, then on the count byte of the re-read, then
    // a CRC error whose re-read NACKs once more: each NACK costs one poll interval, the CRC
    // error one re-read; the response still arrives.
    let (_, good) = counter_increment_to_5();
    let mut bad = good.clone();
    bad[5] ^= 0x01;
    let mut response = vec![
        count(&good),
        rest_nacked(&good),
        reset().with_error(nack()),
        reset(),
        T::read(ADDR, vec![0]).with_error(nack()),
        reset(),
    ];
    response.extend(reply(&bad));
    response.extend([reset(), count(&good), rest_nacked(&good), reset()]);
    response.extend(reply(&good));
    assert_eq!(
        increment_once_to_5(response),
        [1500, 1000, 1000, 1000, 1000, 1000]
    );
}

#[test]
fn nacks_after_the_count_byte_stop_at_the_commands_deadline() {
    // Info: 5 ms max + 50 % + 10 ms = 17.5 ms. The count arrives at the first poll, then every
    // read of the rest (and every re-read) is NACKed: polling ends at the deadline with a
    // timeout, not a bus error, and never resends.
    let mut s = Script::new()
        .add(wake())
        .one(send(&INFO_REV))
        .one(count(&INFO_REPLY_608A))
        .one(rest_nacked(&INFO_REPLY_608A));
    // Re-reads at 2, 3, ... 17, 17.5 ms: reset, count, rest NACKed.
    for _ in 0..17 {
        s = s
            .one(reset())
            .one(count(&INFO_REPLY_608A))
            .one(rest_nacked(&INFO_REPLY_608A));
    }
    let (mut d, clock) = s.one(idle()).driver();
    assert_eq!(d.info(), Err(Error::Timeout));
    assert_eq!(clock.waits()[1..].iter().sum::<u32>(), 17_500);
    finish(d);
}

#[test]
fn nack_storm_on_the_reply_to_a_wake_is_outlasted() {
    // Three NACKed reads (bus noise; the chip woke at the first pulse and ignores the others,
    // §1.2), then the wake reply.
    let mut s = Script::new();
    for _ in 0..3 {
        s = s
            .one(T::write(0x00, vec![0x01]).with_error(nack()))
            .one(T::read(ADDR, vec![0; 4]).with_error(nack()));
    }
    let (mut d, _) = s.add(wake()).driver();
    d.wake().unwrap();
    // The watchdog account starts at the first pulse.
    assert_eq!(d.awake_for_us(), Some(4 * 1500 + 5 * 9 * 10));
    finish(d);
}

/// After `s` (the chip awake): Info answered 0xFF, resent, answered; then Idle.
fn info_resent_after_0xff(s: Script) {
    let s = s
        .one(send(&INFO_REV))
        .add(reply(&[0x04, 0xFF, 0x01, 0x42]))
        .one(send(&INFO_REV))
        .add(reply(&INFO_REPLY_608A))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.info().unwrap(), [0, 0, 0x60, 0x02]);
    finish(d);
}

#[test]
fn chip_crc_error_status_resends_the_command() {
    // 0xFF: "not parsed or executed, resend" (§2.5).
    info_resent_after_0xff(Script::new().add(wake()));
}

#[test]
fn resends_are_bounded() {
    let mut s = Script::new().add(wake());
    for _ in 0..3 {
        s = s.one(send(&INFO_REV)).add(reply(&[0x04, 0xFF, 0x01, 0x42]));
    }
    let (mut d, _) = s.one(idle()).driver();
    assert_eq!(d.info(), Err(Error::Status(Status::CommunicationError)));
    finish(d);
}

#[test]
fn watchdog_status_idles_wakes_and_resends() {
    // 0xEE: not executed; only Idle/Sleep then wake restart the watchdog (§1.5). Idle keeps the
    // message digest buffer, so the Nonce → Sign pair survives. The sequence (Random, Nonce
    // into the message digest buffer, Sign external from it) is cryptoauthlib's `calib_sign`.
    let digest = [0xD1u8; 32];
    let nonce = nonce_msgdig(&digest);
    let sig: Vec<u8> = (100..164).collect();
    let s = Script::new()
        .add(wake())
        .add(random_first())
        .one(send(&nonce))
        .add(reply(&[0x04, 0xEE, 0x31, 0x41]))
        .one(idle())
        .add(wake())
        .one(send(&nonce))
        .add(reply(&status_reply(0x00)))
        .one(send(&SIGN_EXT_MSGDIG_0))
        .add(reply(&data_reply(&sig)))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.sign_digest(0, &digest).unwrap().to_vec(), sig);
    finish(d);
}

#[test]
fn watchdog_budget_rewakes_before_a_command_that_would_cross_it() {
    // With a 150 ms budget, Sign (115 ms + 50%) after Random and Nonce would cross it: idle +
    // wake first (the message digest buffer survives Idle, §1.3).
    let digest = [0x42u8; 32];
    let nonce = nonce_msgdig(&digest);
    let sig = [0x5Au8; 64];
    let s = Script::new()
        .add(wake())
        .add(random_first())
        .one(send(&nonce))
        .add(reply(&status_reply(0x00)))
        .one(idle())
        .add(wake())
        .one(send(&SIGN_EXT_MSGDIG_0))
        .add(busy(3))
        .add(reply(&data_reply(&sig)))
        .one(idle());
    let (mut d, _) = s.driver();
    d.set_timing(Timing {
        watchdog_budget_us: 150_000,
        ..Timing::default()
    });
    assert_eq!(d.sign_digest(0, &digest).unwrap(), sig);
    finish(d);
}

#[test]
fn default_budget_keeps_a_short_sequence_in_one_wake() {
    // cryptoauthlib's `calib_sign` on a 608, in one wake: Random, Nonce → MsgDigBuf, Sign 0xA0.
    let digest = [0x42u8; 32];
    let nonce = nonce_msgdig(&digest);
    let sig = [0x5Au8; 64];
    let s = Script::new()
        .add(wake())
        .add(random_first())
        .one(send(&nonce))
        .add(reply(&status_reply(0x00)))
        .one(send(&SIGN_EXT_MSGDIG_0))
        .add(busy(50))
        .add(reply(&data_reply(&sig)))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.sign_digest(0, &digest).unwrap(), sig);
    finish(d);
}

#[test]
fn long_polling_accumulates_towards_the_watchdog() {
    // Without idling between operations, awake time adds up across commands; once the next
    // command could cross the 1 s budget the driver idles and wakes first.
    let pubkey = [0x11u8; 64];
    let mut s = Script::new().add(wake());
    // Each GenKey: 160 ms of polling plus ~7 ms of bus time at 100 kHz. After 5 (~840 ms), the
    // next one (115 ms + 50%) could cross 1 s.
    for _ in 0..5 {
        s = s
            .one(send(&GENKEY_PUBLIC_0))
            .add(busy(159))
            .add(reply(&data_reply(&pubkey)));
    }
    let s = s
        .one(idle())
        .add(wake())
        .one(send(&GENKEY_PUBLIC_0))
        .add(reply(&data_reply(&pubkey)));
    let (mut d, _) = s.driver();
    d.set_timing(Timing {
        idle_after_op: false,
        ..Timing::default()
    });
    for _ in 0..6 {
        assert_eq!(d.get_public_key(0).unwrap(), pubkey);
    }
    assert!(d.awake_for_us().unwrap() < 10_000);
    finish(d);
}

#[test]
fn command_nack_idles_wakes_and_resends() {
    let s = Script::new()
        .add(wake())
        .one(send(&INFO_REV))
        .add(reply(&INFO_REPLY_608A))
        // The caller was away for seconds; the watchdog put the chip to sleep.
        .one(send(&INFO_REV).with_error(nack()))
        // Idle first: harmless to a sleeping chip, flushes the I/O buffer of an awake one.
        .one(idle().with_error(nack()))
        .add(wake())
        .one(send(&INFO_REV))
        .add(reply(&INFO_REPLY_608A));
    let (mut d, _) = s.driver();
    d.set_timing(Timing {
        idle_after_op: false,
        ..Timing::default()
    });
    d.info().unwrap();
    d.info().unwrap();
    finish(d);
}

#[test]
fn command_nacks_after_a_good_wake_are_outlasted_then_bounded() {
    // Noise NACKs the command write right after a clean wake. Each time: Idle (flushes any
    // partial command; here the noise takes it too), wake, write again. The wakes' tWHI waits
    // may add up to the 10 ms NACK allowance: 7 re-wakes, then `NoAck`. Status resends are a
    // separate budget.
    let mut s = Script::new().add(wake());
    for _ in 0..7 {
        s = s
            .one(send(&INFO_REV).with_error(nack()))
            .one(idle().with_error(nack()))
            .add(wake());
    }
    let s = s.one(send(&INFO_REV).with_error(nack())).one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.info(), Err(Error::NoAck));
    finish(d);

    // Two NACKed writes, then the chip takes the command and answers 0xFF once: still fine.
    let mut s = Script::new().add(wake());
    for _ in 0..2 {
        s = s
            .one(send(&INFO_REV).with_error(nack()))
            .one(idle())
            .add(wake());
    }
    info_resent_after_0xff(s);
}

#[test]
fn wake_self_test_failure_is_recognised() {
    let s = Script::new()
        .one(T::write(0x00, vec![0x01]).with_error(nack()))
        .one(T::read(ADDR, vec![0x04, 0x07, 0x40, 0xC2]));
    let (mut d, clock) = s.driver();
    assert_eq!(d.wake(), Err(Error::Wake(WakeError::SelfTestFailure)));
    assert_eq!(clock.waits(), [1500]);
    finish(d);
}

#[test]
fn wake_with_cryptoauthlibs_wrong_selftest_constant_is_unexpected() {
    // `04 07 C4 40` has a bad CRC (§1.2): not a self-test reply, just garbage.
    let mut s = Script::new();
    for _ in 0..Timing::default().wake_attempts {
        s = s
            .one(T::write(0x00, vec![0x01]).with_error(nack()))
            .one(T::read(ADDR, vec![0x04, 0x07, 0xC4, 0x40]))
            .one(idle());
    }
    let (mut d, _) = s.driver();
    assert_eq!(
        d.wake(),
        Err(Error::Wake(WakeError::Unexpected([0x04, 0x07, 0xC4, 0x40])))
    );
    finish(d);
}

#[test]
fn wake_while_already_awake_idles_and_wakes_again() {
    // An awake chip ignores the pulse and returns stale output; idle it, then wake cleanly.
    let s = Script::new()
        .one(T::write(0x00, vec![0x01]).with_error(nack()))
        .one(T::read(ADDR, vec![0x07, 0x00, 0x00, 0x60]))
        .one(idle())
        .add(wake());
    let (mut d, _) = s.driver();
    d.wake().unwrap();
    assert!(d.awake_for_us().is_some());
    finish(d);
}

#[test]
fn wake_without_answer_is_no_response() {
    // cryptoauthlib tries the wake 20 times (§1.4); so does the default policy.
    assert_eq!(Timing::default().wake_attempts, 20);
    let mut s = Script::new();
    for _ in 0..20 {
        s = s
            .one(T::write(0x00, vec![0x01]).with_error(nack()))
            .one(T::read(ADDR, vec![0; 4]).with_error(nack()));
    }
    let (mut d, _) = s.driver();
    assert_eq!(d.wake(), Err(Error::Wake(WakeError::NoResponse)));
    finish(d);
}

#[test]
fn bus_errors_other_than_nack_are_reported() {
    let s = Script::new()
        .add(wake())
        .one(send(&INFO_REV).with_error(ErrorKind::ArbitrationLoss))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.info(), Err(Error::I2c(ErrorKind::ArbitrationLoss)));
    finish(d);
}

#[test]
fn sleep_and_idle_word_addresses() {
    let s = Script::new()
        .add(wake())
        .one(T::write(ADDR, vec![0x02]))
        .add(wake())
        .one(T::write(ADDR, vec![0x01]));
    let (mut d, _) = s.driver();
    d.wake().unwrap();
    d.idle().unwrap();
    assert_eq!(d.awake_for_us(), None);
    d.wake().unwrap();
    d.sleep().unwrap();
    assert_eq!(d.awake_for_us(), None);
    finish(d);
}

#[test]
fn idle_is_not_sent_to_a_chip_the_driver_already_idled() {
    // An idle or sleeping chip NACKs its address (§1.4): an operation already ends with Idle,
    // so a caller's Idle afterwards (the agent idles after every request), a second Idle, or
    // an Idle after Sleep sends nothing. The mock fails on any unexpected transfer.
    let s = Script::new()
        .add(wake())
        .one(send(&INFO_REV))
        .add(reply(&INFO_REPLY_608A))
        .one(idle())
        .add(wake())
        .one(T::write(ADDR, vec![0x01]));
    let (mut d, _) = s.driver();
    d.idle().unwrap(); // never woken
    d.info().unwrap();
    d.idle().unwrap();
    d.idle().unwrap();
    d.wake().unwrap();
    d.sleep().unwrap();
    d.idle().unwrap();
    finish(d);
}

#[test]
fn sleep_when_already_asleep_is_fine() {
    let s = Script::new().one(T::write(ADDR, vec![0x01]).with_error(nack()));
    let (mut d, _) = s.driver();
    d.sleep().unwrap();
    finish(d);
}

fn verify_script(code_twice: Option<u8>, code: u8) -> Script {
    let digest = [0xABu8; 32];
    let sig = [0x01u8; 64];
    let key = [0x02u8; 64];
    // cryptoauthlib's `calib_verify_extern` on a 608: Nonce → MsgDigBuf, Verify external
    // (mode 0x02) with source MsgDigBuf (0x20), key type P-256.
    let nonce = nonce_msgdig(&digest);
    let mut data = sig.to_vec();
    data.extend(key);
    let verify = packet(0x45, 0x22, 0x0004, &data);
    let mut s = Script::new()
        .add(wake())
        .one(send(&nonce))
        .add(reply(&status_reply(0)));
    if let Some(first) = code_twice {
        s = s
            .one(send(&verify))
            .add(reply(&status_reply(first)))
            .one(send(&nonce))
            .add(reply(&status_reply(0)));
    }
    s.one(send(&verify))
        .add(busy(20))
        .add(reply(&status_reply(code)))
        .one(idle())
}

#[test]
fn verify_extern_true_false_and_errors() {
    let (digest, sig, key) = ([0xABu8; 32], [0x01u8; 64], [0x02u8; 64]);
    let (mut d, _) = verify_script(None, 0x00).driver();
    assert_eq!(d.verify_extern(&digest, &sig, &key), Ok(true));
    finish(d);
    let (mut d, _) = verify_script(None, 0x01).driver();
    assert_eq!(d.verify_extern(&digest, &sig, &key), Ok(false));
    finish(d);
    // An ECC fault is an error, never "false".
    let (mut d, _) = verify_script(None, 0x05).driver();
    assert_eq!(
        d.verify_extern(&digest, &sig, &key),
        Err(Error::Status(Status::EccFault))
    );
    finish(d);
    // Execution error (TempKey lost): the Nonce+Verify pair is retried once.
    let (mut d, _) = verify_script(Some(0x0F), 0x00).driver();
    assert_eq!(d.verify_extern(&digest, &sig, &key), Ok(true));
    finish(d);
    let (mut d, _) = verify_script(Some(0x0F), 0x0F).driver();
    assert_eq!(
        d.verify_extern(&digest, &sig, &key),
        Err(Error::Status(Status::ExecutionError))
    );
    finish(d);
}

#[test]
fn self_test_results() {
    let st = packet(0x77, 0x3B, 0, &[]);
    let run = |code: u8| {
        let s = Script::new()
            .add(wake())
            .one(send(&st))
            .add(reply(&status_reply(code)))
            .one(idle());
        let (mut d, _) = s.driver();
        let r = d.self_test(0x3B);
        finish(d);
        r
    };
    assert_eq!(run(0x00), Ok(0));
    // Bits inside the requested set are failed tests (here ECDSA and SHA).
    assert_eq!(run(0x22), Ok(0x22));
    // 0x0F has bit 0x04, which was not requested: a real status.
    assert_eq!(run(0x0F), Err(Error::Status(Status::ExecutionError)));
}

#[test]
fn random_rejects_the_prelock_test_pattern() {
    let mut pattern = Vec::new();
    for _ in 0..8 {
        pattern.extend([0xFF, 0xFF, 0x00, 0x00]);
    }
    let s = Script::new()
        .add(wake())
        .one(send(&RANDOM))
        .add(reply(&data_reply(&pattern)))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.random(), Err(Error::RandomTestPattern));
    finish(d);
    let rnd: Vec<u8> = (0..32).map(|i| i * 7).collect();
    let s = Script::new()
        .add(wake())
        .one(send(&RANDOM))
        .add(reply(&data_reply(&rnd)))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.random().unwrap().to_vec(), rnd);
    finish(d);
}

#[test]
fn sha256_start_update_end() {
    let data: Vec<u8> = (0..70).collect();
    let digest = [0x99u8; 32];
    let s = Script::new()
        .add(wake())
        .one(send(&SHA_START))
        .add(reply(&status_reply(0)))
        .one(send(&packet(0x47, 0x01, 64, &data[..64])))
        .add(reply(&status_reply(0)))
        .one(send(&packet(0x47, 0x02, 6, &data[64..])))
        .add(reply(&data_reply(&digest)))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.sha256(&data).unwrap(), digest);
    finish(d);
    // Exactly one block: the end carries no data.
    let s = Script::new()
        .add(wake())
        .one(send(&SHA_START))
        .add(reply(&status_reply(0)))
        .one(send(&packet(0x47, 0x01, 64, &data[..64])))
        .add(reply(&status_reply(0)))
        .one(send(&packet(0x47, 0x02, 0, &[])))
        .add(reply(&data_reply(&digest)))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.sha256(&data[..64]).unwrap(), digest);
    finish(d);
}

#[test]
fn read_config_zone_and_serial_number() {
    let cfg: Vec<u8> = (0..128).map(|i| i as u8).collect();
    let mut s = Script::new().add(wake());
    for block in 0..4u16 {
        s = s
            .one(send(&packet(0x02, 0x80, block << 3, &[])))
            .add(reply(&data_reply(&cfg[block as usize * 32..][..32])));
    }
    let s = s
        .one(idle())
        .add(wake())
        .one(send(&[0x07, 0x02, 0x80, 0x00, 0x00, 0x09, 0xAD]))
        .add(reply(&data_reply(&cfg[..32])))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.read_config_zone().unwrap().to_vec(), cfg);
    assert_eq!(d.serial_number().unwrap(), [0, 1, 2, 3, 8, 9, 10, 11, 12]);
    finish(d);
}

#[test]
fn lock_status_reads_word_0x15() {
    let s = Script::new()
        .add(wake())
        .one(send(&[0x07, 0x02, 0x00, 0x15, 0x00, 0x17, 0x5D]))
        .add(reply(&[0x07, 0x00, 0x00, 0x55, 0x55, 0xF5, 0x52]))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.lock_status().unwrap(), (false, false));
    finish(d);
}

#[test]
fn locks_carry_their_crc_little_endian() {
    let s = Script::new()
        .add(wake())
        .one(send(&packet(0x17, 0x00, 0xA1B2, &[])))
        .add(reply(&status_reply(0)))
        .one(idle())
        .add(wake())
        .one(send(&[0x07, 0x17, 0x81, 0x00, 0x00, 0x3A, 0x07]))
        .add(reply(&status_reply(0)))
        .one(idle())
        .add(wake())
        .one(send(&packet(0x17, 0x2A, 0, &[])))
        .add(reply(&status_reply(0x0F)))
        .one(idle());
    let (mut d, _) = s.driver();
    d.lock_config(Some(0xA1B2)).unwrap();
    d.lock_data(None).unwrap();
    assert_eq!(d.lock_slot(10), Err(Error::Status(Status::ExecutionError)));
    assert!(matches!(d.lock_slot(16), Err(Error::Address(_))));
    finish(d);
}

#[test]
fn write_slot_uses_only_32_byte_writes() {
    // 72-byte compressed cert into slot 10: blocks 0, 1 and a padded block 2 (§3).
    let cert: Vec<u8> = (0..72).map(|i| (i * 3) as u8).collect();
    let mut s = Script::new().add(wake());
    for block in 0..3u16 {
        let mut data = [0u8; 32];
        let chunk = &cert[block as usize * 32..(block as usize * 32 + 32).min(72)];
        data[..chunk.len()].copy_from_slice(chunk);
        s = s
            .one(send(&packet(0x12, 0x82, (block << 8) | (10 << 3), &data)))
            .add(reply(&status_reply(0)));
    }
    let (mut d, _) = s.one(idle()).driver();
    d.write_slot(10, &cert).unwrap();
    finish(d);
}

#[test]
fn ecdh_clear_or_stored() {
    let key = [0x07u8; 64];
    let p = packet(0x43, 0x00, 2, &key);
    let secret = [0x33u8; 32];
    let s = Script::new()
        .add(wake())
        .one(send(&p))
        .add(reply(&data_reply(&secret)))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.ecdh(2, &key).unwrap(), Some(secret));
    finish(d);
    let s = Script::new()
        .add(wake())
        .one(send(&p))
        .add(reply(&status_reply(0)))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(d.ecdh(2, &key).unwrap(), None);
    finish(d);
}

#[test]
fn priv_write_and_update_extra_packets() {
    let k = [0x44u8; 32];
    let mut data = vec![0u8; 4];
    data.extend(k);
    data.extend([0u8; 32]);
    let s = Script::new()
        .add(wake())
        .one(send(&packet(0x46, 0x00, 3, &data)))
        .add(reply(&status_reply(0)))
        .one(idle())
        .add(wake())
        .one(send(&packet(0x20, 0x01, 0x6A, &[])))
        .add(reply(&status_reply(0x0F)))
        .one(idle());
    let (mut d, _) = s.driver();
    d.priv_write(3, &k).unwrap();
    assert_eq!(
        d.update_extra(keystamp_atecc::command::UpdateExtra::UserExtraAdd(0x6A)),
        Err(Error::Status(Status::ExecutionError))
    );
    finish(d);
}

#[test]
fn unexpected_response_length_is_an_error() {
    // A 35-byte reply to Info (7 expected).
    let s = Script::new()
        .add(wake())
        .one(send(&INFO_REV))
        .add(reply(&data_reply(&[0; 32])))
        .one(idle());
    let (mut d, _) = s.driver();
    assert_eq!(
        d.info(),
        Err(Error::UnexpectedLength {
            expected: 7,
            got: 35
        })
    );
    finish(d);
}

#[test]
fn tracing_adapter_reports_every_transfer() {
    let s = Script::new()
        .add(wake())
        .one(send(&INFO_REV))
        .add(busy(1))
        .add(reply(&INFO_REPLY_608A))
        .one(idle());
    let events = Rc::new(RefCell::new(Vec::new()));
    let sink = events.clone();
    let traced = TracingI2c::new(Mock::new(&s.0), move |e: keystamp_atecc::TraceEvent<'_>| {
        sink.borrow_mut()
            .push((e.direction, e.address, e.bytes.to_vec(), e.error))
    });
    let mut d = Atecc::new(traced, Clock::default());
    d.info().unwrap();
    let (traced, _) = d.release();
    traced.into_inner().done();
    let ev = events.borrow();
    assert_eq!(ev.len(), 7);
    assert_eq!(ev[0], (Direction::Write, 0x00, vec![0x01], Some(nack())));
    assert_eq!(
        ev[1],
        (Direction::Read, ADDR, vec![0x04, 0x11, 0x33, 0x43], None)
    );
    let mut cmd = vec![0x03];
    cmd.extend(INFO_REV);
    assert_eq!(ev[2], (Direction::Write, ADDR, cmd, None));
    assert_eq!(ev[3].3, Some(nack()));
    assert_eq!(ev[4], (Direction::Read, ADDR, vec![0x07], None));
    assert_eq!(
        ev[5],
        (Direction::Read, ADDR, INFO_REPLY_608A[1..].to_vec(), None)
    );
    assert_eq!(ev[6], (Direction::Write, ADDR, vec![0x02], None));
}

#[test]
fn address_setter_targets_tng_parts() {
    let s = Script::new()
        .one(T::write(0x00, vec![0x01]).with_error(nack()))
        .one(T::read(0x35, vec![0x04, 0x11, 0x33, 0x43]))
        .one(T::write(0x35, vec![0x01]));
    let (mut d, _) = s.driver();
    d.set_address(0x35);
    assert_eq!(d.address(), 0x35);
    d.wake().unwrap();
    d.sleep().unwrap();
    finish(d);
}

fn config_reads(s: Script, image: &[u8; 128]) -> Script {
    let mut s = s.add(wake());
    for block in 0..4u16 {
        s = s
            .one(send(&packet(0x02, 0x80, block << 3, &[])))
            .add(reply(&data_reply(&image[block as usize * 32..][..32])));
    }
    s.one(idle())
}

/// Reads of a blank chip, then the writes that turn it into the default config (§5.1 plan:
/// block 0 words 4-7 with bytes 16-19 already equal, block 1, block 2 words all already equal on
/// a blank chip, block 3).
fn blank_to_default_writes(blank: &[u8; 128]) -> Script {
    let target = keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES;
    let mut s = config_reads(Script::new(), blank).add(wake());
    for (offset, len) in [(20usize, 4usize), (24, 4), (28, 4), (32, 32), (96, 32)] {
        let p1 = if len == 32 { 0x80 } else { 0x00 };
        let p = packet(0x12, p1, (offset / 4) as u16, &target[offset..offset + len]);
        s = s.one(send(&p)).add(reply(&status_reply(0)));
    }
    s.one(idle())
}

#[test]
fn write_config_zone_programs_a_blank_chip_and_verifies() {
    let Some(text) = common::reference() else {
        return;
    };
    let blank = common::config_dump(&text, "### 7.1 ");
    let target = keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES;
    // What the chip holds afterwards: factory bytes 0-15 and 84-87, the rest from the target.
    let mut programmed = blank;
    programmed[16..84].copy_from_slice(&target[16..84]);
    programmed[88..].copy_from_slice(&target[88..]);
    let (mut d, _) = config_reads(blank_to_default_writes(&blank), &programmed).driver();
    let back = d
        .write_config_zone(&keystamp_atecc::DEFAULT_CONFIG)
        .unwrap();
    assert_eq!(back.to_bytes(), programmed);
    assert_eq!(back.lock_crc(), INDEPENDENT.checksum(&programmed));
    finish(d);

    // A chip that ignored the writes: the read-back check names the first differing byte.
    let (mut d, _) = config_reads(blank_to_default_writes(&blank), &blank).driver();
    assert_eq!(
        d.write_config_zone(&keystamp_atecc::DEFAULT_CONFIG),
        Err(Error::ConfigMismatch { offset: 20 })
    );
    finish(d);
}

#[test]
fn write_config_zone_on_a_locked_chip_writes_nothing() {
    let Some(text) = common::reference() else {
        return;
    };
    let tng = common::config_dump(&text, "### 7.2 ");
    // §6.3: config writes after the config lock fail; the driver does not try. TNGTLS's
    // address byte (0x6A) is the first setting that differs from the default target.
    let (mut d, _) = config_reads(Script::new(), &tng).driver();
    assert_eq!(
        d.write_config_zone(&keystamp_atecc::DEFAULT_CONFIG),
        Err(Error::ConfigMismatch { offset: 16 })
    );
    finish(d);
    // A rerun against the same target on a locked chip succeeds without writes.
    let tng_cfg = keystamp_atecc::ConfigZone::from_bytes(&tng);
    let (mut d, _) = config_reads(Script::new(), &tng).driver();
    assert_eq!(d.write_config_zone(&tng_cfg), Ok(tng_cfg));
    finish(d);
}

/// cryptoauthlib's `calib_verify_stored` on a 608: Nonce pass-through into the message digest
/// buffer, then Verify stored mode (0x00) with source MsgDigBuf (0x20), Param2 = key slot,
/// data = R‖S (count 71, §4.2).
fn verify_stored_script(code: u8) -> Script {
    let digest = [0x5Eu8; 32];
    let sig = [0x0Bu8; 64];
    Script::new()
        .add(wake())
        .one(send(&nonce_msgdig(&digest)))
        .add(reply(&status_reply(0)))
        .one(send(&packet(0x45, 0x20, 11, &sig)))
        .add(busy(5))
        .add(reply(&status_reply(code)))
        .one(idle())
}

#[test]
fn verify_stored_true_false_and_errors() {
    let (digest, sig) = ([0x5Eu8; 32], [0x0Bu8; 64]);
    assert_eq!(packet(0x45, 0x20, 11, &sig)[0], 71);
    for (code, want) in [
        (0x00, Ok(true)),
        (0x01, Ok(false)),
        // An ECC fault is an error, never "false".
        (0x05, Err(Error::Status(Status::EccFault))),
    ] {
        let (mut d, _) = verify_stored_script(code).driver();
        assert_eq!(
            d.verify_stored(11, &digest, &sig),
            want,
            "status {code:#04x}"
        );
        finish(d);
    }
    // A slot number the chip does not have never reaches the bus.
    let (mut d, _) = Script::new().driver();
    assert_eq!(
        d.verify_stored(16, &digest, &sig),
        Err(Error::Address(keystamp_atecc::zone::AddressError::Slot))
    );
    finish(d);
}
