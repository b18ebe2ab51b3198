//! Fault injection: seedable, reproducible bus and power faults.
//!
//! Every decision comes from one ChaCha20 stream seeded by [`FaultConfig::seed`], drawn in bus
//! order, so the same seed and the same sequence of transactions give the same faults.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Which faults to inject. The default injects none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Seed of the fault stream.
    pub seed: u64,
    /// Probability (0..=1) that a read delivering a response's CRC bytes gets one CRC bit
    /// flipped, as bus noise would; a re-read of the same response is clean again.
    pub crc_corruption: f64,
    /// Probability (0..=1) that a transaction to the chip starts a burst of address NACKs.
    pub nack_burst: f64,
    /// Longest burst (≥ 1 transactions, including the first).
    pub nack_burst_max: u32,
    /// Power fails while executing this command (1-based count of executed commands). The
    /// command's non-volatile effect either fully happens or not at all (drawn from the seed);
    /// no response is produced and the chip powers up asleep.
    pub brownout_at_command: Option<u64>,
    /// The wake reply reports a self-test failure (`04 07 40 C2`, reference §1.2).
    pub wake_self_test_failure: bool,
}

/// A fault that was injected, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultEvent {
    /// The CRC bytes of a response read were corrupted (bit `bit` of response byte `byte`).
    CrcCorrupted {
        /// Index of the corrupted byte within the response group.
        byte: usize,
        /// Bit flipped.
        bit: u8,
    },
    /// A burst of `len` transactions was NACKed.
    NackBurst {
        /// Number of NACKed transactions.
        len: u32,
    },
    /// Power failed during command number `command`.
    BrownOut {
        /// 1-based command count.
        command: u64,
        /// Whether the command's non-volatile effect was committed.
        took_effect: bool,
    },
}

/// Fault decision state.
#[derive(Clone, Debug)]
pub(crate) struct Faults {
    pub(crate) config: FaultConfig,
    rng: ChaCha20Rng,
    nack_remaining: u32,
    pub(crate) log: Vec<FaultEvent>,
}

impl Faults {
    pub(crate) fn new(config: FaultConfig) -> Self {
        Self {
            rng: ChaCha20Rng::seed_from_u64(config.seed),
            config,
            nack_remaining: 0,
            log: Vec::new(),
        }
    }

    /// True when this transaction to the chip must be NACKed.
    pub(crate) fn nack_now(&mut self) -> bool {
        if self.nack_remaining > 0 {
            self.nack_remaining -= 1;
            return true;
        }
        if self.config.nack_burst > 0.0 && self.rng.random_bool(self.config.nack_burst.min(1.0)) {
            let len = self.rng.random_range(1..=self.config.nack_burst_max.max(1));
            self.nack_remaining = len - 1;
            self.log.push(FaultEvent::NackBurst { len });
            return true;
        }
        false
    }

    /// Possibly corrupts the CRC bytes among `delivered`, which holds response bytes
    /// `start..start + delivered.len()` of a group of `group_len` bytes.
    pub(crate) fn corrupt_read(&mut self, delivered: &mut [u8], start: usize, group_len: usize) {
        if self.config.crc_corruption <= 0.0 || group_len < 2 {
            return;
        }
        let crc_start = group_len - 2;
        let end = start + delivered.len();
        if end <= crc_start || start >= group_len {
            return;
        }
        if !self.rng.random_bool(self.config.crc_corruption.min(1.0)) {
            return;
        }
        let first = crc_start.max(start);
        let last = group_len.min(end);
        let byte = self.rng.random_range(first..last);
        let bit = self.rng.random_range(0..8u8);
        delivered[byte - start] ^= 1 << bit;
        self.log.push(FaultEvent::CrcCorrupted { byte, bit });
    }

    /// Whether command number `count` is hit by a brown-out, and if so whether it takes effect.
    pub(crate) fn brownout(&mut self, count: u64) -> Option<bool> {
        if self.config.brownout_at_command != Some(count) {
            return None;
        }
        let took_effect = self.rng.random_bool(0.5);
        self.log.push(FaultEvent::BrownOut {
            command: count,
            took_effect,
        });
        Some(took_effect)
    }
}
