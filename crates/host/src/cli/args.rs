//! Argument types shared by several commands.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use keystamp_atecc_sim::Timing;

use crate::ops::SimOptions;
use crate::sim::SimLink;
use crate::sim::faults::FaultSpec;

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Chip timing model of simulated devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TimingArg {
    /// Commands complete at once (tests).
    Instant,
    /// Each command keeps the chip busy for its documented execution time.
    Realistic,
}

impl From<TimingArg> for Timing {
    fn from(t: TimingArg) -> Self {
        match t {
            TimingArg::Instant => Timing::Instant,
            TimingArg::Realistic => Timing::Realistic,
        }
    }
}

/// Options shared by everything that starts simulated devices.
#[derive(Debug, Args, Clone)]
pub struct SimFlags {
    /// Where simulated devices keep their chips and flash (default: `<project>/sim`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Chip timing model of simulated devices.
    #[arg(long, value_enum, default_value = "realistic")]
    pub timing: TimingArg,
    /// Write every I2C transaction of simulated devices to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub trace_i2c: Option<PathBuf>,
    /// Board security the simulated devices report (a real board reads its eFuses).
    #[arg(long, value_enum, default_value = "unknown")]
    pub board: BoardArg,
    /// How simulated devices connect [default: pty on Unix, in-process elsewhere].
    #[arg(long, value_enum, value_name = "LINK")]
    pub link: Option<LinkArg>,
    /// Faults the simulated devices inject, e.g. `seed=7,crc=0.02,nack=0.01,brownout=30,
    /// reset=12,flip=0.0005,log=0.1` (docs/factory-guide.md "Fault injection").
    #[arg(long, value_name = "SPEC", value_parser = FaultSpec::parse)]
    pub faults: Option<FaultSpec>,
    /// Which part a new simulated device carries: an unconfigured chip (`blank`), or one
    /// pre-configured by Microchip (`trustflex`, `trustandgo`; Trust&GO certificates come from a
    /// TEST "Microchip" CA, see docs/atecc-sim.md).
    #[arg(long, value_enum, default_value = "blank")]
    pub part: PartArg,
}

/// The part of a new simulated device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PartArg {
    /// Unconfigured ATECC608A (keystamp's custom profile configures it).
    Blank,
    /// ATECC608B-TFLXTLS as shipped.
    Trustflex,
    /// ATECC608A-TNGTLS as shipped, certificates from the simulated test CA.
    Trustandgo,
    /// ATECC608B-TNGTLS as shipped (EUI-48 in slot 5, template 3), certificates from the
    /// simulated test CA.
    #[value(name = "trustandgo-608b")]
    Trustandgo608b,
}

impl From<PartArg> for keystamp_atecc_sim::Part {
    fn from(p: PartArg) -> Self {
        match p {
            PartArg::Blank => keystamp_atecc_sim::Part::Blank,
            PartArg::Trustflex => keystamp_atecc_sim::Part::TrustFlex,
            PartArg::Trustandgo => keystamp_atecc_sim::Part::TrustAndGo,
            PartArg::Trustandgo608b => keystamp_atecc_sim::Part::TrustAndGo608B,
        }
    }
}

/// Board security a simulated device reports in `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BoardArg {
    /// Nothing known (as firmware without eFuse access).
    Unknown,
    /// A development board: Secure Boot, flash encryption off; JTAG and download mode enabled.
    Development,
    /// A hardened board: all four protections on.
    Hardened,
}

impl From<BoardArg> for keystamp_wire::PlatformSecurity {
    fn from(b: BoardArg) -> Self {
        use keystamp_wire::Tristate;
        let all = |t| keystamp_wire::PlatformSecurity {
            secure_boot: t,
            flash_encryption: t,
            jtag_disabled: t,
            download_mode_disabled: t,
        };
        match b {
            BoardArg::Unknown => all(Tristate::Unknown),
            BoardArg::Development => all(Tristate::Off),
            BoardArg::Hardened => all(Tristate::On),
        }
    }
}

/// How simulated devices connect to the stations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LinkArg {
    /// Pseudo-terminals (Unix): other processes can open them too.
    Pty,
    /// In-process channels: only this keystamp process can open them.
    InProcess,
}

impl From<LinkArg> for SimLink {
    fn from(l: LinkArg) -> Self {
        match l {
            LinkArg::Pty => SimLink::Pty,
            LinkArg::InProcess => SimLink::InProcess,
        }
    }
}

impl SimFlags {
    /// The operation's options for these flags.
    pub fn options(&self) -> SimOptions {
        SimOptions {
            timing: self.timing.into(),
            trace_i2c: self.trace_i2c.clone(),
            platform: self.board.into(),
            link: self.link.map(SimLink::from).unwrap_or_default(),
            faults: self.faults.clone().unwrap_or_default(),
            part: self.part.into(),
        }
    }
}
