//! `keystamp provision`, `keystamp verify`, `keystamp sim` and `keystamp demo`: stations over
//! serial ports (or simulated devices behind pseudo-terminals), with a progress bar per station
//! and a summary table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use keystamp_atecc_sim::{FaultConfig, Timing};
use keystamp_wire::RetryPolicy;

use crate::ca::{self, KeyProtection, Signer};
use crate::cli::CliError;
use crate::engine::{DeviceReport, DeviceResult, Material, Station, Step};
use crate::link::{self, Link};
use crate::project::{Profile, Project};
use crate::registry::Registry;
use crate::setup;
use crate::sim::{SimDevice, SimDeviceOptions, TraceSink};

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
    /// Where simulated devices keep their chips and flash (default: <project>/sim).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Chip timing model of simulated devices.
    #[arg(long, value_enum, default_value = "realistic")]
    pub timing: TimingArg,
    /// Write every I2C transaction of simulated devices to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub trace_i2c: Option<PathBuf>,
}

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
    /// Simulated-device options.
    #[command(flatten)]
    pub sim: SimFlags,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

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

fn unlock(project: &Project) -> Result<Signer, CliError> {
    let dir = project.ca_dir();
    let encrypted = ca::keys_encrypted(&dir)?;
    let pass = if encrypted {
        Some(crate::passphrase::read_passphrase(false).map_err(CliError)?)
    } else {
        None
    };
    Ok(Signer::unlock(&dir, pass.as_ref().map(|p| p.as_str()))?)
}

fn open_project(dir: &Path) -> Result<Project, CliError> {
    Ok(Project::open(dir)?)
}

fn trace_sink(path: &Option<PathBuf>) -> Result<Option<TraceSink>, CliError> {
    match path {
        None => Ok(None),
        Some(p) => {
            let f =
                std::fs::File::create(p).map_err(|e| CliError(format!("{}: {e}", p.display())))?;
            let w: Box<dyn Write + Send> = Box::new(std::io::BufWriter::new(f));
            Ok(Some(Arc::new(Mutex::new(w))))
        }
    }
}

/// Starts `n` simulated devices named `dev00`, `dev01`, ... in `state_dir`.
pub fn start_sims(
    n: usize,
    state_dir: &Path,
    flags: &SimFlags,
    baud: u32,
) -> Result<Vec<SimDevice>, CliError> {
    let trace = trace_sink(&flags.trace_i2c)?;
    (0..n)
        .map(|i| {
            SimDevice::start(SimDeviceOptions {
                name: format!("dev{i:02}"),
                state_dir: state_dir.to_path_buf(),
                timing: flags.timing.into(),
                baud: Some(baud),
                seed: None,
                faults: FaultConfig::default(),
                trace: trace.clone(),
            })
            .map_err(|e| CliError(format!("cannot start simulated device {i}: {e}")))
        })
        .collect()
}

/// One station per port, in parallel; returns the reports in port order.
#[allow(clippy::too_many_arguments)]
pub fn run_stations(
    ports: &[String],
    baud: u32,
    pace: bool,
    material: &Material,
    signer: &Signer,
    registry: &Mutex<Registry>,
    verify_only: bool,
    show_progress: bool,
) -> Vec<DeviceReport> {
    let multi = MultiProgress::with_draw_target(if show_progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:24}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars: Vec<ProgressBar> = ports
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let bar = multi.add(ProgressBar::new(Step::Done.index().1));
            bar.set_style(style.clone());
            bar.set_prefix(format!("station{}", i + 1));
            bar
        })
        .collect();
    let names: Vec<String> = (0..ports.len())
        .map(|i| format!("station{}", i + 1))
        .collect();
    let progress = |name: &str, step: Step| {
        if let Some(i) = names.iter().position(|n| n == name)
            && let Some(bar) = bars.get(i)
        {
            bar.set_position(step.index().0);
            bar.set_message(step.name());
        }
    };
    let reports: Vec<DeviceReport> = std::thread::scope(|s| {
        let handles: Vec<_> = ports
            .iter()
            .zip(names.iter())
            .map(|(port, name)| {
                let progress = &progress;
                s.spawn(move || {
                    let failed = |msg: String| DeviceReport::failed(name, port, msg);
                    let p = match link::open_port(port, baud) {
                        Ok(p) => p,
                        Err(e) => return failed(e.to_string()),
                    };
                    let policy = RetryPolicy {
                        baud,
                        ..RetryPolicy::default()
                    };
                    let link = Link::new(p, policy, pace.then_some(baud));
                    let station = Station::new(
                        name.clone(),
                        port.clone(),
                        link,
                        material,
                        signer,
                        registry,
                        progress,
                    );
                    if verify_only {
                        station.verify_only()
                    } else {
                        station.run()
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic_report()))
            .collect()
    });
    for (bar, r) in bars.iter().zip(&reports) {
        match &r.result {
            DeviceResult::Failed(_) => bar.abandon_with_message("failed"),
            DeviceResult::Provisioned => bar.finish_with_message("provisioned"),
            DeviceResult::AlreadyProvisioned => bar.finish_with_message("verified"),
        }
    }
    reports
}

fn panic_report() -> DeviceReport {
    DeviceReport::failed("?", "?", "station thread panicked".into())
}

/// Prints the summary table (or JSON) and returns an error when any device failed.
pub fn summarize(
    reports: &[DeviceReport],
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError(e.to_string());
    if json {
        let rows: Vec<_> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "station": r.station,
                    "port": r.port,
                    "chip_serial": r.chip_serial.map(hex::encode_upper),
                    "cn": r.cn,
                    "cert_serial": r.cert_serial,
                    "seconds": r.elapsed.as_secs_f64(),
                    "result": result_word(&r.result),
                    "error": match &r.result { DeviceResult::Failed(m) => Some(m.clone()), _ => None },
                    "bytes_out": r.link.bytes_out,
                    "bytes_in": r.link.bytes_in,
                    "retries": r.link.retries,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        )
        .map_err(io)?;
    } else {
        writeln!(
            out,
            "{:<9} {:<18} {:<20} {:<20} {:>7}  result",
            "station", "chip serial", "CN", "certificate serial", "time"
        )
        .map_err(io)?;
        for r in reports {
            writeln!(
                out,
                "{:<9} {:<18} {:<20} {:<20} {:>6.2}s  {}",
                r.station,
                r.chip_serial
                    .map(hex::encode_upper)
                    .unwrap_or_else(|| "-".into()),
                r.cn.as_deref().unwrap_or("-"),
                r.cert_serial.as_deref().unwrap_or("-"),
                r.elapsed.as_secs_f64(),
                match &r.result {
                    DeviceResult::Failed(m) => format!("FAILED: {m}"),
                    other => result_word(other).to_string(),
                }
            )
            .map_err(io)?;
        }
    }
    let failed = reports
        .iter()
        .filter(|r| matches!(r.result, DeviceResult::Failed(_)))
        .count();
    if failed > 0 {
        return Err(CliError(format!(
            "{failed} of {} devices failed; see the table above and rerun to resume",
            reports.len()
        )));
    }
    Ok(())
}

fn result_word(r: &DeviceResult) -> &'static str {
    match r {
        DeviceResult::Provisioned => "provisioned",
        DeviceResult::AlreadyProvisioned => "verified",
        DeviceResult::Failed(_) => "failed",
    }
}

/// `keystamp provision`.
pub fn provision(
    project_dir: &Path,
    args: ProvisionArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let project = open_project(project_dir)?;
    let mut ports = args.ports.clone();
    let mut sims = Vec::new();
    if let Some(n) = args.simulate {
        let state = args
            .sim
            .state_dir
            .clone()
            .unwrap_or_else(|| project.dir.join("sim"));
        sims = start_sims(n, &state, &args.sim, args.baud)?;
        ports.extend(sims.iter().map(|d| d.port_path().to_string()));
    }
    if ports.is_empty() {
        return Err(CliError(
            "name at least one --port PATH (or --simulate N)".into(),
        ));
    }
    let signer = unlock(&project)?;
    let material = setup::material(&project, &signer).map_err(|e| CliError(e.to_string()))?;
    let registry = Mutex::new(Registry::open(&project.registry_path())?);
    let reports = run_stations(
        &ports,
        args.baud,
        !sims.is_empty(),
        &material,
        &signer,
        &registry,
        false,
        !args.json,
    );
    drop(sims);
    summarize(&reports, args.json, out)
}

/// `keystamp verify`.
pub fn verify(project_dir: &Path, args: VerifyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let project = open_project(project_dir)?;
    let signer = unlock(&project)?;
    let material = setup::material(&project, &signer).map_err(|e| CliError(e.to_string()))?;
    let registry = Mutex::new(Registry::open(&project.registry_path())?);
    let reports = run_stations(
        &args.ports,
        args.baud,
        false,
        &material,
        &signer,
        &registry,
        true,
        !args.json,
    );
    summarize(&reports, args.json, out)
}

/// `keystamp sim`: runs simulated devices and prints their ports until stdin closes or Ctrl-C.
pub fn sim(project_dir: &Path, args: SimArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let state = args
        .sim
        .state_dir
        .clone()
        .unwrap_or_else(|| project_dir.join("sim"));
    let sims = start_sims(args.devices, &state, &args.sim, args.baud)?;
    for d in &sims {
        writeln!(out, "{} {}", d.name(), d.port_path()).map_err(|e| CliError(e.to_string()))?;
    }
    out.flush().map_err(|e| CliError(e.to_string()))?;
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

/// `keystamp demo`.
pub fn demo(args: DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = args.dir.clone();
    let io = |e: std::io::Error| CliError(e.to_string());
    let created = !dir.join(crate::project::PROFILE_FILE).exists();
    if created {
        let mut profile = Profile::default();
        profile.ca.organization = "keystamp DEMO - not for production".into();
        create_project(&dir, &profile, &KeyProtection::Unencrypted)?;
        writeln!(
            out,
            "demo project created in {} (throwaway CA, keys NOT encrypted)",
            dir.display()
        )
        .map_err(io)?;
    } else {
        writeln!(out, "demo project in {} (existing)", dir.display()).map_err(io)?;
    }
    let project = open_project(&dir)?;
    if ca::keys_encrypted(&project.ca_dir())? {
        return Err(CliError(format!(
            "{} is not a demo project (its CA keys are encrypted); use another --dir",
            dir.display()
        )));
    }
    let signer = Signer::unlock(&project.ca_dir(), None)?;
    let material = setup::material(&project, &signer).map_err(|e| CliError(e.to_string()))?;
    let registry = Mutex::new(Registry::open(&project.registry_path())?);
    let flags = SimFlags {
        state_dir: None,
        timing: TimingArg::Realistic,
        trace_i2c: None,
    };
    let state = project.dir.join("sim");
    let sims = start_sims(args.devices, &state, &flags, 115_200)?;
    let ports: Vec<String> = sims.iter().map(|d| d.port_path().to_string()).collect();
    writeln!(
        out,
        "provisioning {} simulated devices (realistic chip timing, 115200 baud)...",
        ports.len()
    )
    .map_err(io)?;
    let started = Instant::now();
    let reports = run_stations(
        &ports, 115_200, true, &material, &signer, &registry, false, true,
    );
    let wall = started.elapsed();
    summarize(&reports, false, out)?;
    writeln!(
        out,
        "verifying every device again (rebuild, compare, challenge)..."
    )
    .map_err(io)?;
    let verified = run_stations(
        &ports, 115_200, true, &material, &signer, &registry, true, false,
    );
    let ok = verified
        .iter()
        .filter(|r| !matches!(r.result, DeviceResult::Failed(_)))
        .count();
    writeln!(out, "verified: {ok}/{}", verified.len()).map_err(io)?;
    let issued = reports
        .iter()
        .filter(|r| r.result == DeviceResult::Provisioned)
        .count();
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
        return Err(CliError(format!(
            "{} device(s) failed verification",
            verified.len() - ok
        )));
    }
    Ok(())
}

/// Creates a project in `dir`: CA, definitions generated from it, profile naming them.
pub fn create_project(
    dir: &Path,
    base: &Profile,
    protection: &KeyProtection,
) -> Result<Project, CliError> {
    let mut profile = base.clone();
    profile.validate(dir)?;
    let ca_dir = profile.resolve(dir, &profile.ca.dir);
    ca::create(
        &ca_dir,
        &profile.ca,
        protection,
        std::time::SystemTime::now(),
    )?;
    let pass = match protection {
        KeyProtection::Passphrase(p) => Some(p.as_str()),
        KeyProtection::Unencrypted => None,
    };
    let signer = Signer::unlock(&ca_dir, pass)?;
    let (device_def, signer_def) =
        setup::generate_definitions(&profile, &signer).map_err(|e| CliError(e.to_string()))?;
    setup::write_definitions(dir, &device_def, &signer_def).map_err(|e| CliError(e.to_string()))?;
    profile.certificates.device_def = Some(PathBuf::from(setup::DEVICE_DEF_FILE));
    profile.certificates.signer_def = Some(PathBuf::from(setup::SIGNER_DEF_FILE));
    Project::write_profile(dir, &profile)?;
    let project = Project::open(dir)?;
    std::fs::create_dir_all(project.output_dir())
        .map_err(|e| CliError(format!("{}: {e}", project.output_dir().display())))?;
    let mut registry = Registry::open(&project.registry_path())?;
    crate::cli::record_signer(&mut registry, signer.certs())?;
    Ok(project)
}
