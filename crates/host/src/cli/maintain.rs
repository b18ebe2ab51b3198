//! `keystamp maintain`: authenticated maintenance of a locked device. The device issues a nonce
//! from its chip's RNG; the station signs it (with the chip serial) with the project's signer
//! key, which the device checks against the signer public key locked in its slot 11. Only then
//! does a Locked device accept writes — for this connection only.

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use keystamp_wire::{HelloInfo, Lifecycle, Tristate};

use super::CliError;
use super::output::summarize;
use crate::engine::MaintenanceOp;
use crate::ops::Run;
use crate::project::Project;

/// `keystamp maintain`.
#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// Serial port of the device.
    #[arg(long, value_name = "PATH")]
    pub port: String,
    /// Baud rate.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// What to do once authenticated.
    #[command(subcommand)]
    pub operation: Operation,
}

/// A maintenance operation.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Operation {
    /// Authenticate and report the device's life cycle, locks, blob and platform security.
    Status,
    /// Store the project's signed definition blob again, then verify the device.
    StoreBlob,
}

/// `keystamp maintain`.
pub fn maintain(
    project_dir: &Path,
    args: MaintainArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let project = Project::open(project_dir)?;
    let run = Run::prepare(project)?;
    let op = match args.operation {
        Operation::Status => MaintenanceOp::Status,
        Operation::StoreBlob => MaintenanceOp::StoreBlob,
    };
    let (report, state) = run.maintain(&args.port, args.baud, op);
    if let (Some(hello), Operation::Status, crate::engine::DeviceResult::AlreadyProvisioned) =
        (&state, args.operation, &report.result)
    {
        return print_status(hello, out);
    }
    summarize(std::slice::from_ref(&report), false, out)
}

fn print_status(h: &HelloInfo, out: &mut dyn Write) -> Result<(), CliError> {
    let io = CliError::Output;
    let lifecycle = match h.lifecycle {
        Lifecycle::Factory => "factory (config unlocked)",
        Lifecycle::Provisioning => "provisioning (data or trust anchor not locked)",
        Lifecycle::Locked => "locked",
    };
    let tri = |t: Tristate| match t {
        Tristate::On => "on",
        Tristate::Off => "off",
        Tristate::Unknown => "unknown",
    };
    let blob = match (&h.def_blob, h.blob_untrusted) {
        (_, true) => "untrusted (signature does not verify; not used)".to_string(),
        (Some(b), false) => format!("{} bytes, sha256 {}", b.len, hex::encode(b.digest)),
        (None, false) => "none".to_string(),
    };
    let lines = [
        ("chip serial", hex::encode_upper(h.chip.serial)),
        (
            "authenticated",
            "yes (signer key verified by the chip)".into(),
        ),
        ("protocol", h.protocol.to_string()),
        (
            "firmware",
            format!(
                "{}.{}.{}",
                h.firmware.major, h.firmware.minor, h.firmware.patch
            ),
        ),
        ("life cycle", lifecycle.into()),
        ("slots locked", format!("0x{:04X}", h.chip.slot_locked)),
        ("definition blob", blob),
        ("secure boot", tri(h.platform.secure_boot).into()),
        ("flash encryption", tri(h.platform.flash_encryption).into()),
        ("jtag disabled", tri(h.platform.jtag_disabled).into()),
        (
            "download mode disabled",
            tri(h.platform.download_mode_disabled).into(),
        ),
    ];
    for (k, v) in lines {
        writeln!(out, "{k}: {v}").map_err(io)?;
    }
    Ok(())
}
