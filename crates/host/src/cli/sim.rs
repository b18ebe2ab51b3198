//! `keystamp sim`: simulated devices on pseudo-terminals until standard input ends.

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};

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
    /// Instead of serving devices: use a provisioned one's identity.
    #[command(subcommand)]
    pub action: Option<SimAction>,
}

/// What to do with an already provisioned simulated device.
#[derive(Debug, Subcommand)]
pub enum SimAction {
    /// Connect a provisioned simulated device to an MQTT broker over mutual TLS (the chip signs
    /// the handshake; device + signer certificates are sent) and publish one message to
    /// `devices/<CN>/hello`.
    Connect {
        /// The broker, `HOST:PORT` (e.g. 127.0.0.1:8883).
        #[arg(long)]
        broker: String,
        /// The device: its certificate's CN (the chip serial); default the first provisioned.
        #[arg(long)]
        device: Option<String>,
        /// PEM file of the CA (or certificate) the broker's server certificate chains to.
        #[arg(long)]
        ca: std::path::PathBuf,
    },
}

/// `keystamp sim`: runs simulated devices and prints their ports until stdin closes or Ctrl-C.
pub fn sim(project_dir: &Path, args: SimArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let state = args
        .sim
        .state_dir
        .clone()
        .unwrap_or_else(|| project_dir.join("sim"));
    if let Some(SimAction::Connect { broker, device, ca }) = args.action {
        // The chips' state is used in this process: no other run may hold it meanwhile.
        let _lock = lock_sim_dir(&state)?;
        let p = crate::ops::tls::sim_connect(&state, device.as_deref(), &broker, &ca)?;
        writeln!(out, "device: {}", p.client_id.escape_debug()).map_err(CliError::Output)?;
        writeln!(out, "topic: {}", p.topic.escape_debug()).map_err(CliError::Output)?;
        writeln!(out, "chip-signatures: {}", p.chip_signatures).map_err(CliError::Output)?;
        return Ok(());
    }
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
    if keystamp_atecc_sim::Part::from(args.sim.part).is_trust_and_go() {
        eprintln!(
            "keystamp: the simulated Trust&GO parts chain to a TEST Microchip root, {} (a \
             simulation project's [microchip] root; never Microchip's)",
            state.join(crate::ops::TEST_ROOT_FILE).display()
        );
    }
    // Until standard input ends; the chips save themselves after every change.
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    Ok(())
}
