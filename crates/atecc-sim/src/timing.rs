//! Execution times (reference §4.3): cryptoauthlib's ATECC608 table, columns by the `ChipMode`
//! clock divider. The emulator charges these as the busy window in `Timing::Realistic` and logs
//! them in every mode.

use std::time::Duration;

/// Opcodes (reference §4.1).
pub mod opcode {
    /// AES.
    pub const AES: u8 = 0x51;
    /// CheckMac.
    pub const CHECK_MAC: u8 = 0x28;
    /// Counter.
    pub const COUNTER: u8 = 0x24;
    /// DeriveKey.
    pub const DERIVE_KEY: u8 = 0x1C;
    /// ECDH.
    pub const ECDH: u8 = 0x43;
    /// GenDig.
    pub const GEN_DIG: u8 = 0x15;
    /// GenKey.
    pub const GEN_KEY: u8 = 0x40;
    /// Info.
    pub const INFO: u8 = 0x30;
    /// KDF.
    pub const KDF: u8 = 0x56;
    /// Lock.
    pub const LOCK: u8 = 0x17;
    /// MAC.
    pub const MAC: u8 = 0x08;
    /// Nonce.
    pub const NONCE: u8 = 0x16;
    /// PrivWrite.
    pub const PRIV_WRITE: u8 = 0x46;
    /// Random.
    pub const RANDOM: u8 = 0x1B;
    /// Read.
    pub const READ: u8 = 0x02;
    /// SecureBoot.
    pub const SECURE_BOOT: u8 = 0x80;
    /// SelfTest.
    pub const SELF_TEST: u8 = 0x77;
    /// SHA.
    pub const SHA: u8 = 0x47;
    /// Sign.
    pub const SIGN: u8 = 0x41;
    /// UpdateExtra.
    pub const UPDATE_EXTRA: u8 = 0x20;
    /// Verify.
    pub const VERIFY: u8 = 0x45;
    /// Write.
    pub const WRITE: u8 = 0x12;
}

/// Milliseconds for `opcode` in columns M0 / M1 / M2, or `None` for an opcode the 608 lacks.
fn table_ms(opcode: u8) -> Option<[u32; 3]> {
    use opcode::*;
    Some(match opcode {
        AES => [27, 27, 27],
        CHECK_MAC => [40, 40, 40],
        COUNTER => [25, 25, 25],
        DERIVE_KEY => [50, 50, 50],
        ECDH => [75, 172, 531],
        GEN_DIG => [25, 35, 35],
        GEN_KEY => [115, 215, 653],
        INFO => [5, 5, 5],
        KDF => [165, 165, 165],
        LOCK => [35, 35, 35],
        MAC => [55, 55, 55],
        NONCE => [20, 20, 20],
        PRIV_WRITE => [50, 50, 50],
        RANDOM => [23, 23, 23],
        READ => [5, 5, 5],
        SECURE_BOOT => [80, 160, 480],
        SELF_TEST => [250, 625, 2324],
        SHA => [36, 42, 75],
        SIGN => [115, 220, 665],
        UPDATE_EXTRA => [10, 10, 10],
        VERIFY => [105, 295, 1085],
        WRITE => [45, 45, 45],
        _ => return None,
    })
}

/// Execution time of `opcode` at `ChipMode` clock divider `divider` (bits 7:3): 0x05 selects
/// column M1, 0x0D column M2, anything else M0. Unknown opcodes are rejected by the parser within
/// about a millisecond.
pub fn execution_time(opcode: u8, divider: u8) -> Duration {
    let column = match divider {
        0x05 => 1,
        0x0D => 2,
        _ => 0,
    };
    let ms = table_ms(opcode).map_or(1, |row| row[column]);
    Duration::from_millis(u64::from(ms))
}

/// Time from the wake pulse until the chip answers (tWHI, reference §1.2).
pub const WAKE_DELAY: Duration = Duration::from_micros(1500);
/// Short watchdog period (`ChipMode` bit 2 = 0).
pub const WATCHDOG_SHORT: Duration = Duration::from_millis(1300);
/// Long watchdog period (`ChipMode` bit 2 = 1).
pub const WATCHDOG_LONG: Duration = Duration::from_millis(13_000);
