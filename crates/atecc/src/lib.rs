//! keystamp-atecc: the ATECC608A/B command layer and an embedded-hal 1.0 driver.
//!
//! - [`crc`]: the chip's CRC-16.
//! - [`packet`]: command group encoding, response parsing with CRC check, wake replies.
//! - [`status`]: every status code, typed.
//! - [`command`]: typed commands that know their response length and execution time.
//! - [`zone`]: zones, slots, Read/Write addressing, slot sizes.
//! - [`config`]: the config zone model, the Write operations that program it, lock CRCs.
//! - [`mod@lint`]: a config linter with stable rule ids.
//! - [`default_config`]: keystamp's default target config.
//! - [`driver`]: [`Atecc`], the driver over `I2c` + `DelayNs` (polling, retries, watchdog).
//! - [`trace`]: [`TracingI2c`], a transfer-reporting bus adapter.
//!
//! `no_std`, no allocation, no panics on any input. See `docs/atecc.md`.
#![cfg_attr(not(test), no_std)]

pub mod command;
pub mod config;
pub mod crc;
pub mod default_config;
pub mod driver;
pub mod lint;
pub mod packet;
pub mod status;
pub mod trace;
pub mod zone;

pub use command::{ClockDivider, Command, Opcode};
pub use config::{
    ChipMode, ChipOptions, ConfigWriteOp, ConfigZone, KeyConfig, KeyType, SlotConfig, WriteMode,
    X509Format, config_write_ops, data_lock_crc,
};
pub use crc::{Crc16, crc16};
pub use default_config::DEFAULT_CONFIG;
pub use driver::{
    Atecc, DEFAULT_ADDRESS, Error, FACTORY_ADDRESSES, Reply, TRUST_AND_GO_ADDRESS,
    TRUSTFLEX_ADDRESS, Timing, WakeError,
};
pub use lint::{Finding, LintProfile, LintReport, Rule, Severity, lint, lint_in};
pub use packet::{Response, ResponseError, parse_response};
pub use status::Status;
pub use trace::{Direction, TraceEvent, TracingI2c};
pub use zone::{Size, Slot, Zone, ZoneAddr, slot_size};
