//! The minimal flow (docs/decisions/0010-minimal-flow.md): the chip commands a fresh device's
//! provisioning needs with the default profile, per step, priced with the emulator's
//! execution-time table (reference §4.3, cryptoauthlib's ATECC608 M0 column). The benchmark
//! reports it as the floor of the work that has to happen, beside the floor of keystamp's own
//! trace.

use std::time::Duration;

use keystamp_atecc_sim::timing::{execution_time, opcode as op};

/// One line of the minimal flow: `count` × `opcode`, and why the flow needs it.
#[derive(Clone, Copy, Debug)]
pub struct ChipWork {
    /// The engine step the commands belong to.
    pub step: &'static str,
    /// Opcode (reference §4.1).
    pub opcode: u8,
    /// How many times.
    pub count: u32,
    /// Why the flow needs it.
    pub why: &'static str,
}

const fn w(step: &'static str, opcode: u8, count: u32, why: &'static str) -> ChipWork {
    ChipWork {
        step,
        opcode,
        count,
        why,
    }
}

/// The chip commands of a fresh device's provisioning (default profile: key slot 0, compressed
/// certificates in slots 10 and 12, trust anchor in slot 11, no IO-protection key).
pub const MINIMAL_FLOW: &[ChipWork] = &[
    w("probe", op::INFO, 1, "revision for Hello"),
    w(
        "probe",
        op::READ,
        4,
        "config zone: serial, lock bytes, slot locks",
    ),
    w(
        "config",
        op::WRITE,
        5,
        "the config words and blocks that differ from factory",
    ),
    w(
        "config",
        op::READ,
        4,
        "read-back: the zone the lock CRC covers",
    ),
    w("config", op::LOCK, 1, "config lock"),
    w("key", op::GEN_KEY, 1, "the device key"),
    w("key", op::LOCK, 1, "data lock"),
    w(
        "key",
        op::RANDOM,
        1,
        "identity proof: device nonce (and the Sign's seed update)",
    ),
    w(
        "key",
        op::NONCE,
        1,
        "identity proof: digest into the message digest buffer",
    ),
    w("key", op::SIGN, 1, "identity proof: signature"),
    w(
        "certificates",
        op::WRITE,
        9,
        "slots 10, 11, 12: 72 bytes = 3 32-byte blocks each (the chip ignores the last block's \
         24 bytes past the slot's end)",
    ),
    w("definitions", op::NONCE, 1, "blob signature: digest"),
    w(
        "definitions",
        op::VERIFY,
        1,
        "blob signature vs the anchor (stored mode)",
    ),
    w(
        "verify",
        op::READ,
        9,
        "slots 10, 11, 12: 3 reads each (block 2 as one 32-byte read)",
    ),
    w(
        "verify",
        op::NONCE,
        2,
        "signer and device certificate digests",
    ),
    w(
        "verify",
        op::VERIFY,
        2,
        "signer cert vs root, device cert vs signer (external)",
    ),
    w(
        "lock_slots",
        op::LOCK,
        3,
        "slots 10, 12, then the anchor 11",
    ),
];

/// The chip time of `flow` at clock divider `divider` (0 = column M0, the default ChipMode).
pub fn chip_time(flow: &[ChipWork], divider: u8) -> Duration {
    flow.iter()
        .map(|w| execution_time(w.opcode, divider) * w.count)
        .sum()
}

/// Time on a UART at `baud` for `bytes` bytes (10 bits per byte: start, 8 data, stop).
pub fn wire_time(bytes: u64, baud: u32) -> Duration {
    Duration::from_micros(bytes * 10_000_000 / u64::from(baud.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_chip_time_is_the_sum_of_the_datasheet_times() {
        // Reference §4.3, M0 column: Info 5, Read 5, Write 45, Lock 35, GenKey 115, Random 23,
        // Nonce 20, Sign 115, Verify 105 ms.
        let ms = 5
            + 4 * 5
            + 5 * 45
            + 4 * 5
            + 35
            + 115
            + 35
            + 23
            + 20
            + 115
            + 9 * 45
            + 20
            + 105
            + 9 * 5
            + 2 * 20
            + 2 * 105
            + 3 * 35;
        assert_eq!(chip_time(MINIMAL_FLOW, 0), Duration::from_millis(ms));
    }

    #[test]
    fn wire_time_counts_ten_bits_a_byte() {
        assert_eq!(wire_time(11_520, 115_200), Duration::from_secs(1));
    }
}
