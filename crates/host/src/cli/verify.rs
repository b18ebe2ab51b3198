//! `keystamp verify`: re-read devices' chains, check them, challenge the keys.

use std::io::Write;
use std::path::Path;

use clap::Args;

use super::CliError;
use super::output::summarize;
use crate::ops::{Run, StationMode, check_ports, stop_on_interrupt};
use crate::project::Project;

/// `keystamp verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Serial port of the device (repeat to verify several).
    #[arg(long = "port", value_name = "PATH", required = true)]
    pub ports: Vec<String>,
    /// Baud rate.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `keystamp verify`.
pub fn verify(project_dir: &Path, args: VerifyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let project = Project::open(project_dir)?;
    let stop = stop_on_interrupt()
        .map_err(|e| CliError::Invalid(format!("cannot install the Ctrl-C handler: {e}")))?;
    check_ports(&args.ports)?;
    let run = Run::prepare(project)?;
    let reports = run.stations(
        &args.ports,
        args.baud,
        false,
        StationMode::Verify,
        !args.json,
        &stop,
    );
    summarize(&reports, args.json, out)
}
