//! A noisy-channel model driven by proptest.
//!
//! Both directions of the UART pass through [`Channel`], which per byte drops, flips a bit in,
//! inserts a random byte before, or duplicates the byte, and per line interleaves a device log
//! line in the middle of the frame or truncates the line (losing its end and its terminator).
//! The device answers with `\n` or `\r\n` endings and prints log lines between frames. Some
//! answers are delayed past the host's timeout, so the host retransmits while the first answer is
//! still on its way.
//!
//! Properties:
//! * safety, at every rate: every answer the host accepts is byte-for-byte the answer the device
//!   produced for that sequence number; no request other than `Hello` is ever executed twice;
//!   the host never sees a checksummed frame that fails to decode;
//! * liveness at the realistic rates (`REALISTIC`): with up to 16 attempts per request, every
//!   request of the full provisioning flow completes.

mod support;

use keystamp_wire::*;
use proptest::prelude::*;
use std::collections::HashMap;
use support::fake::{FakeDevice, provisioning_flow};

#[derive(Clone, Copy, Debug)]
struct Rates {
    /// Per byte.
    drop: f64,
    flip: f64,
    insert: f64,
    duplicate: f64,
    /// Per line.
    log_inside: f64,
    truncate: f64,
    /// Per answer: arrives only after the host's timeout.
    late: f64,
}

/// "Realistic" here is pessimistic for a USB-UART at 115200 baud (byte errors there are rarer
/// than 1e-6), but matches a noisy factory fixture with long unshielded leads and a device that
/// logs freely.
const REALISTIC: Rates = Rates {
    drop: 1e-4,
    flip: 1e-4,
    insert: 1e-4,
    duplicate: 1e-4,
    log_inside: 0.02,
    truncate: 0.01,
    late: 0.05,
};

/// Far beyond any working link: only safety is asserted.
const HARSH: Rates = Rates {
    drop: 5e-3,
    flip: 5e-3,
    insert: 5e-3,
    duplicate: 5e-3,
    log_inside: 0.3,
    truncate: 0.1,
    late: 0.3,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

struct Channel {
    rates: Rates,
    rng: Rng,
    crlf: bool,
}

const LOGS: [&[u8]; 3] = [
    b"I (4711) keystamp: chip awake\r\n",
    b"W (4712) uart: fifo overflow~\n",
    b"E (99) panic'ed: ~K1 R0001 AQ 08BBBF14",
];

impl Channel {
    fn carry(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        for line in data.split_inclusive(|&b| b == b'\n') {
            let mut line = line.to_vec();
            if self.crlf && line.last() == Some(&b'\n') {
                line.pop();
                line.extend(b"\r\n");
            }
            if self.rng.chance(self.rates.truncate) {
                let keep = self.rng.below(line.len());
                line.truncate(keep);
            }
            if self.rng.chance(self.rates.log_inside) {
                let at = self.rng.below(line.len() + 1);
                let log = LOGS[self.rng.below(LOGS.len())];
                line.splice(at..at, log.iter().copied());
            }
            for &b in &line {
                let r = self.rates;
                if self.rng.chance(r.insert) {
                    out.push(self.rng.next() as u8);
                }
                if self.rng.chance(r.drop) {
                    continue;
                }
                let b = if self.rng.chance(r.flip) {
                    b ^ (1 << self.rng.below(8))
                } else {
                    b
                };
                out.push(b);
                if self.rng.chance(r.duplicate) {
                    out.push(b);
                }
            }
        }
        out
    }
}

#[derive(Debug, Default)]
struct Outcome {
    completed: usize,
    gave_up: usize,
    attempts: usize,
}

fn run(seed: u64, rates: Rates, crlf: bool, max_attempts: u8) -> Result<Outcome, TestCaseError> {
    let mut to_dev = Channel {
        rates,
        rng: Rng(seed | 1),
        crlf: false,
    };
    let mut to_host = Channel {
        rates,
        rng: Rng(seed.rotate_left(17) | 1),
        crlf,
    };
    let mut rng = Rng(seed ^ 0xDEAD_BEEF_1234_5678 | 1);
    let policy = RetryPolicy {
        base_timeout_ms: 50,
        baud: 115_200,
        max_attempts,
    };
    let mut host = HostSession::new(policy, (seed >> 7) as u16);
    let mut dev = FakeDevice::new();
    let mut now: u64 = 0;
    let mut late: Vec<u8> = Vec::new();
    let mut out = Outcome::default();
    // Boot banner before anything.
    let mut pending_rx = to_host.carry(b"ESP-ROM:esp32c3-api1-20210207\nrst:0x1 (POWERON)\n");

    for request in provisioning_flow(256) {
        let mut line = host.send(&request, now).unwrap().to_vec();
        let done = loop {
            out.attempts += 1;
            let reply = dev.handle(&to_dev.carry(&line));
            let mut rx = std::mem::take(&mut pending_rx);
            rx.extend(std::mem::take(&mut late));
            if rng.chance(rates.late) {
                late = to_host.carry(&reply); // arrives after the next retransmission
            } else {
                rx.extend(to_host.carry(&reply));
            }
            let mut input = &rx[..];
            let mut answer = None;
            while !input.is_empty() {
                let (used, ev) = host.feed(input);
                input = &input[used..];
                match ev {
                    Some(HostEvent::Response { seq, response }) => {
                        // Safety: exactly what the device produced for this seq.
                        let produced: Vec<_> =
                            dev.executed.iter().filter(|(s, ..)| *s == seq).collect();
                        prop_assert!(!produced.is_empty(), "answer for unexecuted seq {}", seq);
                        prop_assert_eq!(&produced.last().unwrap().2, &response);
                        answer = Some(response);
                    }
                    Some(HostEvent::Failed { seq, error }) => {
                        prop_assert!(false, "seq {} failed: {:?}", seq, error);
                    }
                    _ => {}
                }
            }
            if answer.is_some() {
                break true;
            }
            now += 10_000;
            match host.poll(now) {
                Poll::Resend(b) => line = b.to_vec(),
                Poll::GaveUp { .. } => break false,
                other => prop_assert!(false, "unexpected poll {:?}", other),
            }
        };
        if done {
            out.completed += 1
        } else {
            out.gave_up += 1
        }
        now += 1;
    }
    // Safety: nothing but Hello executed twice for one seq.
    let mut seen: HashMap<u16, usize> = HashMap::new();
    for (seq, req, _) in &dev.executed {
        if *req != Request::Hello {
            *seen.entry(*seq).or_default() += 1;
        }
    }
    prop_assert!(
        seen.values().all(|&n| n == 1),
        "double execution: {:?}",
        seen
    );
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn realistic_noise_every_request_completes(seed in any::<u64>(), crlf in any::<bool>()) {
        let flow_len = provisioning_flow(256).len();
        let out = run(seed, REALISTIC, crlf, 16)?;
        prop_assert_eq!(out.gave_up, 0);
        prop_assert_eq!(out.completed, flow_len);
    }

    #[test]
    fn harsh_noise_never_accepts_a_corrupted_message(seed in any::<u64>(), crlf in any::<bool>()) {
        let out = run(seed, HARSH, crlf, 4)?;
        prop_assert_eq!(out.completed + out.gave_up, provisioning_flow(256).len());
    }
}

#[test]
fn clean_channel_needs_one_attempt_per_request() {
    let none = Rates {
        drop: 0.0,
        flip: 0.0,
        insert: 0.0,
        duplicate: 0.0,
        log_inside: 0.0,
        truncate: 0.0,
        late: 0.0,
    };
    let out = run(42, none, false, 1).unwrap();
    assert_eq!(out.completed, provisioning_flow(256).len());
    assert_eq!(out.attempts, out.completed);
}

/// Aggregate statistics at the realistic rates, printed for the report
/// (`cargo test -p keystamp-wire --test noisy_channel -- --nocapture`).
#[test]
fn realistic_noise_statistics() {
    let mut total = Outcome::default();
    let runs = 200;
    for seed in 0..runs {
        let o = run(seed * 7919 + 1, REALISTIC, seed % 2 == 0, 16).unwrap();
        total.completed += o.completed;
        total.gave_up += o.gave_up;
        total.attempts += o.attempts;
    }
    assert_eq!(total.gave_up, 0);
    let mut harsh = Outcome::default();
    for seed in 0..runs {
        let o = run(seed * 104_729 + 3, HARSH, seed % 2 == 1, 4).unwrap();
        harsh.completed += o.completed;
        harsh.gave_up += o.gave_up;
        harsh.attempts += o.attempts;
    }
    eprintln!(
        "harsh rates: {runs} sessions, {} completed, {} given up after 4 attempts, {} transmissions",
        harsh.completed, harsh.gave_up, harsh.attempts
    );
    eprintln!(
        "realistic rates: {runs} sessions, {} requests, {} transmissions ({:.3} per request)",
        total.completed,
        total.attempts,
        total.attempts as f64 / total.completed as f64
    );
}
