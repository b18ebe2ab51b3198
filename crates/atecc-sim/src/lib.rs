//! A faithful ATECC608A/B emulator behind `embedded_hal::i2c::I2c`.
//!
//! [`SimChip`] models the chip at the I2C transaction level as the reference
//! (`shared/reference/atecc608.md` §1–§7) documents it: wake by a write to address 0x00, the
//! `04 11 33 43` wake reply, word addresses, commands split across writes, count and CRC checks,
//! NACK while asleep / idle / busy, the watchdog, volatile state kept across Idle and lost on
//! Sleep, the lock-state matrix and slot policies, real P-256 keys, persistence, a timing model,
//! fault injection and Microchip's kit protocol ([`kit`]). See `docs/atecc-sim.md`.
//!
//! ```
//! use embedded_hal::i2c::I2c;
//! use keystamp_atecc_sim::{SimChip, SimOptions};
//!
//! let mut chip = SimChip::new(SimOptions::default().with_seed(1));
//! let _ = chip.write(0x00, &[0x01]); // wake pulse; address 0x00 is never ACKed
//! let mut reply = [0u8; 4];
//! chip.read(0x60, &mut reply).unwrap();
//! assert_eq!(reply, [0x04, 0x11, 0x33, 0x43]);
//! ```

pub mod chip;
pub mod clock;
pub mod commands;
pub mod config;
pub mod crc;
pub mod faults;
pub mod kit;
pub mod parts;
pub mod state;
pub mod timing;

pub use chip::{
    CommandRecord, DEFAULT_ADDRESS, PowerState, SharedSimChip, SimChip, SimI2cError, SimOptions,
    Timing, WAKE_REPLY, WAKE_SELF_TEST_FAILURE,
};
pub use clock::{Clock, StdClock, StdDelay, VirtualClock, VirtualDelay};
pub use commands::status;
pub use config::{ConfigZone, KeyConfig, Revision, SlotConfig, WritePolicy};
pub use faults::{FaultConfig, FaultEvent};
pub use parts::Part;
pub use state::{NvState, SaveCrash};
