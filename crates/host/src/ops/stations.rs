//! Running stations: one per port, in parallel, each provisioning (or verifying) the device on
//! its port, with a progress bar per station on stderr; and counting what they did.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use keystamp_wire::RetryPolicy;

use super::OpsError;
use crate::engine::{DeviceReport, DeviceResult, Material, Station, Step};
use crate::link::{self, Link};
use crate::pki::ca::Signer;
use crate::registry::Registry;

/// A flag that Ctrl-C (SIGINT) sets, for stations to stop at their next step boundary; a
/// second Ctrl-C ends the process at once (exit status 130, as a shell reports SIGINT).
pub fn stop_on_interrupt() -> std::io::Result<Arc<AtomicBool>> {
    use signal_hook::consts::SIGINT;
    let stop = Arc::new(AtomicBool::new(false));
    // Order matters: the shutdown hook runs first and only fires once the flag is already set,
    // i.e. on the second signal.
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&stop))?;
    signal_hook::flag::register(SIGINT, Arc::clone(&stop))?;
    Ok(stop)
}

/// The registry name of the station on `port`: this host's name and the port, so stations
/// of two processes (or two hosts) sharing one registry never take each other's rows. A port
/// is held by one process at a time, so the pair is unique among running stations.
pub fn station_name(port: &str) -> String {
    format!("{}:{port}", host_name())
}

/// This computer's name, for station names; the process id when the system does not say.
pub fn host_name() -> String {
    let from_file = |p: &str| std::fs::read_to_string(p).ok();
    let name = std::env::var("COMPUTERNAME")
        .ok()
        .or_else(|| from_file("/proc/sys/kernel/hostname"))
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok());
    // Sanitized: it ends up in the registry and in tables.
    let clean: String = name
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(64)
        .collect();
    if clean.is_empty() {
        format!("pid{}", std::process::id())
    } else {
        clean
    }
}

/// Checks that every port exists before any station starts, so a mistyped port is one clear
/// error instead of a failed station. An in-process name (`inproc:`) exists while a simulated
/// device of this process serves it; a file path must exist. Names that are not file paths
/// (Windows `COM3`, `\\.\COM10`) are left to the station, which reports what opening them
/// says: the device namespace has no files to look at.
pub fn check_ports(ports: &[String]) -> Result<(), OpsError> {
    let missing: Vec<String> = ports.iter().filter(|p| !port_exists(p)).cloned().collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(OpsError::MissingPorts(missing))
    }
}

/// Whether `port` is known to exist, or cannot be checked before opening it.
fn port_exists(port: &str) -> bool {
    if link::inproc::is_in_process(port) {
        link::inproc::exists(port)
    } else if is_path(port) {
        std::path::Path::new(port).exists()
    } else {
        true
    }
}

/// Whether `port` names a file: every name on Unix (`/dev/ttyUSB0`); on Windows only names
/// with a separator outside the device namespace (`COM3` and `\\.\COM3` are not files).
fn is_path(port: &str) -> bool {
    cfg!(unix) || (port.contains(['/', '\\']) && !port.starts_with(r"\\.\"))
}

/// One station per port, in parallel; returns the reports in port order. Once `stop` is set,
/// each station finishes its current step and reports [`DeviceResult::Interrupted`].
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
    stop: &AtomicBool,
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
        .map(|port| {
            let bar = multi.add(ProgressBar::new(Step::Done.index().1));
            bar.set_style(style.clone());
            bar.set_prefix(port.clone());
            bar
        })
        .collect();
    let names: Vec<String> = ports.iter().map(|p| station_name(p)).collect();
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
                    let link = match open_link(port, baud, pace) {
                        Ok(l) => l,
                        Err(e) => return failed(e.to_string()),
                    };
                    let station = Station::new(
                        name.clone(),
                        port.clone(),
                        link,
                        material,
                        signer,
                        registry,
                        progress,
                    )
                    .with_stop(stop);
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
            DeviceResult::Interrupted { .. } => bar.abandon_with_message("interrupted"),
        }
    }
    reports
}

/// The link a station uses: `port` at `baud` with the default retry policy (paced at `baud` for
/// simulated devices).
pub fn open_link(
    port: &str,
    baud: u32,
    pace: bool,
) -> Result<Link<Box<dyn serialport::SerialPort>>, link::LinkError> {
    let p = link::open_port(port, baud)?;
    let policy = RetryPolicy {
        baud,
        ..RetryPolicy::default()
    };
    Ok(Link::new(p, policy, pace.then_some(baud)).with_baud(baud))
}

fn panic_report() -> DeviceReport {
    DeviceReport::failed("?", "?", "station thread panicked".into())
}

/// What a run of stations did, by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Devices that received a certificate in this run.
    pub provisioned: usize,
    /// Devices found already provisioned, and verified.
    pub verified: usize,
    /// Devices that failed.
    pub failed: usize,
    /// Devices whose station stopped on an interrupt.
    pub interrupted: usize,
    /// New certificates issued in this run (a resumed device reuses its recorded one).
    pub issued: usize,
}

impl Tally {
    /// Counts `reports` by result.
    pub fn of(reports: &[DeviceReport]) -> Self {
        let mut t = Self::default();
        for r in reports {
            t.issued += usize::from(r.issued);
            match r.result {
                DeviceResult::Provisioned => t.provisioned += 1,
                DeviceResult::AlreadyProvisioned => t.verified += 1,
                DeviceResult::Failed(_) => t.failed += 1,
                DeviceResult::Interrupted { .. } => t.interrupted += 1,
            }
        }
        t
    }

    /// Every device counted.
    pub fn total(&self) -> usize {
        self.provisioned + self.verified + self.failed + self.interrupted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::inproc::InProcessListener;

    fn missing(ports: &[&str]) -> Vec<String> {
        let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
        match check_ports(&ports) {
            Ok(()) => Vec::new(),
            Err(OpsError::MissingPorts(missing)) => missing,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    /// An in-process port is no file: it passes while its device runs (a file-existence check
    /// would refuse it on Unix) and is refused once no device serves it (a name-only check
    /// would let it through on Windows).
    #[test]
    fn an_in_process_port_exists_while_its_device_serves_it() {
        let device = InProcessListener::bind("check");
        let name = device.port_name().to_string();
        assert!(missing(&[&name]).is_empty());
        drop(device);
        assert_eq!(missing(&[&name]), [name.as_str()]);
        assert_eq!(
            missing(&["inproc:typo#9", &name]),
            ["inproc:typo#9", name.as_str()]
        );
    }

    #[test]
    fn a_file_path_that_does_not_exist_is_missing() {
        let dir = tempfile::tempdir().expect("tmp");
        let there = dir.path().join("ttyUSB0");
        std::fs::write(&there, b"").expect("write");
        let absent = dir.path().join("ttyUSB1");
        let (there, absent) = (there.display().to_string(), absent.display().to_string());
        assert_eq!(missing(&[&there, &absent]), [absent]);
    }

    /// COM names live in the device namespace, not the file system: only opening them says
    /// whether they exist, so they are left to the station.
    #[cfg(windows)]
    #[test]
    fn com_names_are_left_to_the_station() {
        assert!(missing(&["COM3", "COM250", r"\\.\COM10"]).is_empty());
    }
}
