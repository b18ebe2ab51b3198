//! Starting simulated devices for `provision --simulate`, `sim` and `demo`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keystamp_atecc_sim::{FaultConfig, Timing};

use super::OpsError;
use crate::sim::{SimDevice, SimDeviceOptions, SimLink, TraceSink};

/// Options shared by everything that starts simulated devices.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Chip timing model.
    pub timing: Timing,
    /// Write every I2C transaction to this file as JSON lines.
    pub trace_i2c: Option<PathBuf>,
    /// How the devices are connected (pseudo-terminals or in-process channels).
    pub link: SimLink,
}

fn trace_sink(path: &Option<PathBuf>) -> Result<Option<TraceSink>, OpsError> {
    match path {
        None => Ok(None),
        Some(p) => {
            let f = std::fs::File::create(p).map_err(|source| OpsError::Io {
                path: p.clone(),
                source,
            })?;
            let w: Box<dyn Write + Send> = Box::new(std::io::BufWriter::new(f));
            Ok(Some(Arc::new(Mutex::new(w))))
        }
    }
}

/// Starts `n` simulated devices named `dev00`, `dev01`, ... in `state_dir`.
pub fn start_sims(
    n: usize,
    state_dir: &Path,
    options: &SimOptions,
    baud: u32,
) -> Result<Vec<SimDevice>, OpsError> {
    let trace = trace_sink(&options.trace_i2c)?;
    (0..n)
        .map(|index| {
            SimDevice::start_on(
                SimDeviceOptions {
                    name: format!("dev{index:02}"),
                    state_dir: state_dir.to_path_buf(),
                    timing: options.timing,
                    baud: Some(baud),
                    seed: None,
                    faults: FaultConfig::default(),
                    trace: trace.clone(),
                },
                options.link,
            )
            .map_err(|source| OpsError::SimDevice { index, source })
        })
        .collect()
}
