//! What a provisioning or verification run shares, prepared once: the project, its unlocked
//! signer, the material every station uses, the registry.

use std::sync::Mutex;

use super::{OpsError, run_stations, unlock};
use crate::engine::{DeviceReport, MaintenanceOp, Material, Station};
use crate::pki::ca::Signer;
use crate::project::Project;
use crate::registry::Registry;
use crate::setup;

/// Whether stations provision their devices or only verify them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StationMode {
    /// Provision (or resume, or find already provisioned and verify).
    Provision,
    /// Re-read and check the chain, challenge the key; change nothing.
    Verify,
}

/// A prepared run.
pub struct Run {
    /// The project.
    pub project: Project,
    /// Its unlocked signer.
    pub signer: Signer,
    /// What every station needs.
    pub material: Material,
    /// The registry, shared by the stations.
    pub registry: Mutex<Registry>,
}

impl Run {
    /// Unlocks the project's signer (asking for the passphrase if needed) and prepares the run.
    pub fn prepare(project: Project) -> Result<Self, OpsError> {
        let signer = unlock(&project)?;
        Self::with_signer(project, signer)
    }

    /// Prepares the run with an already unlocked signer.
    pub fn with_signer(project: Project, signer: Signer) -> Result<Self, OpsError> {
        let material = setup::material(&project, &signer)?;
        let registry = Mutex::new(Registry::open(&project.registry_path())?);
        Ok(Run {
            project,
            signer,
            material,
            registry,
        })
    }

    /// One station per port, in parallel; the reports in port order. `pace`: simulated links
    /// are paced at `baud`. `show_progress`: progress bars on stderr.
    pub fn stations(
        &self,
        ports: &[String],
        baud: u32,
        pace: bool,
        mode: StationMode,
        show_progress: bool,
    ) -> Vec<DeviceReport> {
        run_stations(
            ports,
            baud,
            pace,
            &self.material,
            &self.signer,
            &self.registry,
            mode == StationMode::Verify,
            show_progress,
        )
    }

    /// `keystamp maintain`: one device on `port`, authenticated with the signer key, then `op`.
    /// Returns the report and the device's state as `Hello` reported it.
    pub fn maintain(
        &self,
        port: &str,
        baud: u32,
        op: MaintenanceOp,
    ) -> (DeviceReport, Option<keystamp_wire::HelloInfo>) {
        let link = match super::stations::open_link(port, baud, false) {
            Ok(l) => l,
            Err(e) => return (DeviceReport::failed("maintain", port, e.to_string()), None),
        };
        Station::new(
            "maintain".into(),
            port.into(),
            link,
            &self.material,
            &self.signer,
            &self.registry,
            &|_, _| {},
        )
        .maintain(op)
    }
}
