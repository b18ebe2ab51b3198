//! Running stations: one per port, in parallel, each provisioning (or verifying) the device on
//! its port, with a progress bar per station on stderr; and counting what they did.

use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use keystamp_wire::RetryPolicy;

use crate::engine::{DeviceReport, DeviceResult, Material, Station, Step};
use crate::link::{self, Link};
use crate::pki::ca::Signer;
use crate::registry::Registry;

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
    Ok(Link::new(p, policy, pace.then_some(baud)))
}

fn panic_report() -> DeviceReport {
    DeviceReport::failed("?", "?", "station thread panicked".into())
}

/// What a run of stations did, by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Devices that received a certificate in this run.
    pub provisioned: usize,
    /// Devices found already provisioned, and verified.
    pub verified: usize,
    /// Devices that failed.
    pub failed: usize,
}

impl Tally {
    /// Counts `reports` by result.
    pub fn of(reports: &[DeviceReport]) -> Self {
        let mut t = Self::default();
        for r in reports {
            match r.result {
                DeviceResult::Provisioned => t.provisioned += 1,
                DeviceResult::AlreadyProvisioned => t.verified += 1,
                DeviceResult::Failed(_) => t.failed += 1,
            }
        }
        t
    }

    /// Every device counted.
    pub fn total(&self) -> usize {
        self.provisioned + self.verified + self.failed
    }
}
