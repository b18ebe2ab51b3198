//! What a provisioning or verification run shares, prepared once: the project, its unlocked
//! signer, the material every station uses, the registry.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use super::{OpsError, Tally, run_stations, unlock};
use crate::engine::{DeviceReport, MaintenanceOp, Material, Station};
use crate::pki::ca::Signer;
use crate::project::Project;
use crate::registry::{Outcome, Registry};
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
        let mut registry = super::open_registry_for_update(&project)?;
        registry.set_issuance_policy(super::issuance_policy(&project));
        // The stations' records (issuance, status changes, audit entries) are signed by the
        // signer they issue with (docs/decisions/0007-registry-chain.md).
        registry.set_record_signer(Box::new(signer.clone()));
        // A signer put in place by hand (a new signer certificate) is recorded before it signs.
        super::project::record_signer(&mut registry, signer.certs())?;
        let registry = Mutex::new(registry);
        Ok(Run {
            project,
            signer,
            material,
            registry,
        })
    }

    /// One station per port, in parallel; the reports in port order. `pace`: simulated links
    /// are paced at `baud`. `show_progress`: progress bars on stderr. `stop`: once set, the
    /// stations stop at their next step boundary.
    pub fn stations(
        &self,
        ports: &[String],
        baud: u32,
        pace: bool,
        mode: StationMode,
        show_progress: bool,
        stop: &AtomicBool,
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
            stop,
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

impl Run {
    /// Records in the audit log that the operator interrupted this run, and what the stations
    /// had done by then. Like every audit entry, a record of the chain: an error means it was
    /// not recorded.
    pub fn audit_interrupt(&self, tally: &Tally) -> Result<(), OpsError> {
        let reg = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let detail = format!(
            "run interrupted by the operator: {} stopped, {} provisioned, {} verified, \
             {} failed",
            tally.interrupted, tally.provisioned, tally.verified, tally.failed
        );
        Ok(reg.audit(None, None, "run", Outcome::Failed, &detail)?)
    }
}
