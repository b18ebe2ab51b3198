//! `keystamp provision`: one station per port (or simulated device), in parallel, with a
//! progress bar per station and a summary table.

use std::io::Write;
use std::path::Path;

use clap::Args;

use super::CliError;
use super::args::SimFlags;
use super::output::summarize;
use crate::ops::{
    Run, StationMode, Tally, check_mode, check_ports, lock_sim_dir, start_sims, stop_on_interrupt,
};
use crate::project::Project;

/// `keystamp provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// A serial port with a device on it (one station each; repeat for parallel stations).
    #[arg(long = "port", value_name = "PATH")]
    pub ports: Vec<String>,
    /// Start N simulated devices in-process and provision them.
    #[arg(long, value_name = "N")]
    pub simulate: Option<usize>,
    /// Baud rate (simulated links are paced at this rate, 10 bits per byte).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// After Hello, raise the line speed with the device's SetBaud up to this rate (921600,
    /// 460800 or 230400 are proposed, fastest first); any doubt falls back to --baud.
    #[arg(long, value_name = "BAUD")]
    pub baud_max: Option<u32>,
    /// Simulated-device options.
    #[command(flatten)]
    pub sim: SimFlags,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Re-stamp devices that hold a valid chain from another signer (another project); without
    /// it they are refused before anything is written.
    #[arg(long)]
    pub reprovision: bool,
}

/// `keystamp provision`.
pub fn provision(
    project_dir: &Path,
    args: ProvisionArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let project = Project::open(project_dir)?;
    // Installed before anything touches a device, so Ctrl-C never kills a station mid-step.
    let stop = stop_on_interrupt()
        .map_err(|e| CliError::Invalid(format!("cannot install the Ctrl-C handler: {e}")))?;
    // Production refusals come before any simulated device starts or any port is opened.
    check_mode(&project, args.simulate.is_some())?;
    check_ports(&args.ports)?;
    let state = args
        .sim
        .state_dir
        .clone()
        .unwrap_or_else(|| project.dir.join("sim"));
    if args.simulate.is_some() && keystamp_atecc_sim::Part::from(args.sim.part).is_trust_and_go() {
        // Simulated Trust&GO parts chain to the test root; a simulation project names it.
        crate::ops::write_test_root(&state)?;
    }
    // Everything the profile and definitions decide is checked here, before any device.
    let mut run = Run::prepare(project)?;
    run.material.reprovision = args.reprovision;
    run.material.baud_max = args.baud_max;
    let mut ports = args.ports.clone();
    let mut sims = Vec::new();
    let mut _sim_lock = None;
    if let Some(n) = args.simulate {
        _sim_lock = Some(lock_sim_dir(&state)?);
        sims = start_sims(n, &state, &args.sim.options(), args.baud)?;
        ports.extend(sims.iter().map(|d| d.port_path().to_string()));
    }
    if ports.is_empty() {
        return Err(CliError::Invalid(
            "name at least one --port PATH (or --simulate N)".into(),
        ));
    }
    let reports = run.stations(
        &ports,
        args.baud,
        !sims.is_empty(),
        StationMode::Provision,
        !args.json,
        &stop,
    );
    drop(sims);
    let tally = Tally::of(&reports);
    // The summary is printed either way; an interruption that could not be recorded then
    // fails the command.
    let recorded = if tally.interrupted > 0 {
        run.audit_interrupt(&tally)
    } else {
        Ok(())
    };
    summarize(&reports, args.json, out)?;
    Ok(recorded?)
}
