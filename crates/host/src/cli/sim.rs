//! `keystamp sim`: simulated devices on pseudo-terminals until standard input ends.

use std::io::Write;
use std::path::Path;

use clap::Args;

use super::CliError;
use super::args::SimFlags;
use crate::ops::{lock_sim_dir, start_sims};
use crate::sim::SimLink;

/// `keystamp sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Number of simulated devices.
    #[arg(long, default_value_t = 1)]
    pub devices: usize,
    /// Pace each device's UART output at this baud rate.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Simulated-device options.
    #[command(flatten)]
    pub sim: SimFlags,
}

/// `keystamp sim`: runs simulated devices and prints their ports until stdin closes or Ctrl-C.
pub fn sim(project_dir: &Path, args: SimArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let state = args
        .sim
        .state_dir
        .clone()
        .unwrap_or_else(|| project_dir.join("sim"));
    let options = args.sim.options();
    if options.link != SimLink::Pty {
        return Err(CliError::Invalid(
            "`keystamp sim` serves devices to other processes, which needs pseudo-terminals \
             (Unix); here run them in-process with `keystamp provision --simulate N` or \
             `keystamp demo`"
                .into(),
        ));
    }
    let _lock = lock_sim_dir(&state)?;
    let sims = start_sims(args.devices, &state, &options, args.baud)?;
    for d in &sims {
        writeln!(out, "{} {}", d.name(), d.port_path()).map_err(CliError::Output)?;
    }
    out.flush().map_err(CliError::Output)?;
    eprintln!(
        "keystamp: {} simulated device(s) running, state in {}; press Ctrl-D (end of input) to stop",
        sims.len(),
        state.display()
    );
    // Until standard input ends; the chips save themselves after every change.
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    Ok(())
}
