//! Starting simulated devices for `provision --simulate`, `sim` and `demo`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keystamp_atecc_sim::Timing;

use super::OpsError;
use crate::sim::{SimDevice, SimDeviceOptions, SimLink, SimPart, TraceSink};

/// Options shared by everything that starts simulated devices.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Chip timing model.
    pub timing: Timing,
    /// Write every I2C transaction to this file as JSON lines.
    pub trace_i2c: Option<PathBuf>,
    /// The board security the devices report in `Hello`.
    pub platform: keystamp_wire::PlatformSecurity,
    /// How the devices are connected (pseudo-terminals or in-process channels).
    pub link: SimLink,
    /// The part a new device carries.
    pub part: keystamp_atecc_sim::Part,
    /// Faults the devices inject (`--faults SPEC`).
    pub faults: crate::sim::faults::FaultSpec,
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

/// Where `sim --part trustandgo` writes the test Microchip root (in the state directory).
pub const TEST_ROOT_FILE: &str = "microchip-test-root.pem";

/// Writes the test Microchip root that simulated Trust&GO parts chain to into `state_dir`
/// ([`TEST_ROOT_FILE`]), for a simulation project's `[microchip] root` (never Microchip's:
/// docs/atecc-sim.md). Returns its path.
pub fn write_test_root(state_dir: &Path) -> Result<PathBuf, OpsError> {
    let path = state_dir.join(TEST_ROOT_FILE);
    let ca = crate::microchip::TestMicrochipCa::new(crate::microchip::DEFAULT_TEST_CA_LABEL);
    std::fs::create_dir_all(state_dir)
        .and_then(|()| std::fs::write(&path, ca.root_pem()))
        .map_err(|source| OpsError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// Starts `n` simulated devices named `dev00`, `dev01`, ... in `state_dir`.
pub fn start_sims(
    n: usize,
    state_dir: &Path,
    options: &SimOptions,
    baud: u32,
) -> Result<Vec<SimDevice>, OpsError> {
    let trace = trace_sink(&options.trace_i2c)?;
    let part = SimPart::new(options.part);
    if options.part.is_trust_and_go() {
        write_test_root(state_dir)?;
    }
    (0..n)
        .map(|index| {
            SimDevice::start_part(
                SimDeviceOptions {
                    name: format!("dev{index:02}"),
                    state_dir: state_dir.to_path_buf(),
                    timing: options.timing,
                    baud: Some(baud),
                    seed: None,
                    faults: options.faults.for_device(index).chip,
                    trace: trace.clone(),
                    platform: options.platform,
                    max_baud: crate::sim::SIM_MAX_BAUD,
                    link_faults: options.faults.for_device(index).link,
                },
                options.link,
                &part,
            )
            .map_err(|source| OpsError::SimDevice { index, source })
        })
        .collect()
}

/// The lock file that keeps two runs from driving the same simulated chips.
pub const SIM_LOCK_FILE: &str = "keystamp-sim.lock";

/// Holds a simulated-device state directory for one run; the lock file goes away on drop.
#[derive(Debug)]
pub struct SimDirLock {
    path: PathBuf,
}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes `state_dir` for this process: two runs on one state directory would load, change and
/// save the same chip files and corrupt each other's chips. A lock left by a process that no
/// longer runs (Linux: no `/proc/<pid>`) is taken over.
pub fn lock_sim_dir(state_dir: &Path) -> Result<SimDirLock, OpsError> {
    let io = |source| OpsError::Io {
        path: state_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(state_dir).map_err(io)?;
    let path = state_dir.join(SIM_LOCK_FILE);
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let _ = writeln!(f, "{}", std::process::id());
                return Ok(SimDirLock { path });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok());
                let gone = holder.is_some_and(|pid| {
                    Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
                });
                if !gone {
                    return Err(OpsError::SimDirInUse {
                        dir: state_dir.to_path_buf(),
                        holder,
                        lock: path,
                    });
                }
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => return Err(io(e)),
        }
    }
    Err(OpsError::SimDirInUse {
        dir: state_dir.to_path_buf(),
        holder: None,
        lock: path,
    })
}
