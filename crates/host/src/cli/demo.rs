//! `keystamp demo`: a throwaway project, simulated devices, provision, verify, show.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::CliError;
use super::output::summarize;
use crate::engine::DeviceResult;
use crate::ops::{
    ProfileFile, Run, SimOptions, StationMode, create_project, lock_sim_dir, start_sims,
};
use crate::pki::ca::{self, KeyProtection, Signer};
use crate::project::{Mode, Profile, Project};
use crate::sim::SimLink;

/// `keystamp demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of simulated devices.
    #[arg(long, default_value_t = 8)]
    pub devices: usize,
    /// Demo project directory (created with a throwaway, unencrypted demo CA if it has none).
    #[arg(long, default_value = "keystamp-demo")]
    pub dir: PathBuf,
}

/// `keystamp demo`.
pub fn demo(args: DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = args.dir.clone();
    let io = CliError::Output;
    let created = !dir.join(crate::project::PROFILE_FILE).exists();
    if created {
        let mut profile = Profile::default();
        profile.ca.organization = "keystamp DEMO - not for production".into();
        create_project(
            &dir,
            &profile,
            &KeyProtection::Unencrypted,
            ProfileFile::New,
        )?;
        writeln!(
            out,
            "demo project created in {} (throwaway CA, keys NOT encrypted)",
            dir.display()
        )
        .map_err(io)?;
    } else {
        writeln!(out, "demo project in {} (existing)", dir.display()).map_err(io)?;
    }
    let project = Project::open(&dir)?;
    if project.profile.mode == Mode::Production || ca::keys_encrypted(&project.ca_dir())? {
        return Err(CliError::Invalid(format!(
            "{} is not a demo project (production, or its CA keys are encrypted); use another \
             --dir",
            dir.display()
        )));
    }
    let signer = Signer::unlock(&project.ca_dir(), None)?;
    let run = Run::with_signer(project, signer)?;
    let project = &run.project;
    let flags = SimOptions {
        timing: keystamp_atecc_sim::Timing::Realistic,
        trace_i2c: None,
        platform: keystamp_wire::PlatformSecurity::UNKNOWN,
        link: SimLink::default(),
        part: keystamp_atecc_sim::Part::Blank,
        faults: Default::default(),
    };
    let state = project.dir.join("sim");
    let _lock = lock_sim_dir(&state)?;
    let sims = start_sims(args.devices, &state, &flags, 115_200)?;
    let ports: Vec<String> = sims.iter().map(|d| d.port_path().to_string()).collect();
    writeln!(
        out,
        "provisioning {} simulated devices (realistic chip timing, 115200 baud)...",
        ports.len()
    )
    .map_err(io)?;
    // The demo's project is throwaway: Ctrl-C simply ends it.
    let never = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let reports = run.stations(&ports, 115_200, true, StationMode::Provision, true, &never);
    let wall = started.elapsed();
    summarize(&reports, false, out)?;
    writeln!(
        out,
        "verifying every device again (rebuild, compare, challenge)..."
    )
    .map_err(io)?;
    let verified = run.stations(&ports, 115_200, true, StationMode::Verify, false, &never);
    let ok = verified
        .iter()
        .filter(|r| r.result == DeviceResult::AlreadyProvisioned)
        .count();
    writeln!(out, "verified: {ok}/{}", verified.len()).map_err(io)?;
    let issued = crate::ops::Tally::of(&reports).issued;
    writeln!(
        out,
        "issued this run: {issued} certificate(s); provisioning wall time {:.2} s",
        wall.as_secs_f64()
    )
    .map_err(io)?;
    writeln!(out, "registry: {}", project.registry_path().display()).map_err(io)?;
    writeln!(
        out,
        "certificates: {}/<chip serial>/{{device,signer,chain}}.pem",
        project.output_dir().display()
    )
    .map_err(io)?;
    writeln!(out, "CA: {}  (check a chain: openssl verify -CAfile {}/root.pem -untrusted <dir>/signer.pem <dir>/device.pem)", project.ca_dir().display(), project.ca_dir().display()).map_err(io)?;
    writeln!(
        out,
        "run again: the same simulated chips are verified and nothing new is issued"
    )
    .map_err(io)?;
    drop(sims);
    if ok != verified.len() {
        return Err(CliError::Invalid(format!(
            "{} device(s) failed verification",
            verified.len() - ok
        )));
    }
    Ok(())
}
