//! What the commands do, without parsing or printing: create a project and record its signer,
//! unlock the signer, start simulated devices, run stations and count their results,
//! certificate-definition operations, revocation and the CRL. Everything here may be called from a test or a bench
//! without the command line; nothing here imports [`crate::cli`].

use std::fmt;
use std::path::PathBuf;

use crate::pki::ca::CaError;
use crate::pki::ceremony::CeremonyError;
use crate::pki::crl::CrlError;
use crate::pki::passphrase::PassphraseError;
use crate::pki::pkcs11::Pkcs11Error;
use crate::pki::verification::VerificationError;
use crate::project::{PROFILE_FILE, ProjectError};
use crate::registry::RegistryError;
use crate::setup::SetupError;

pub mod certdef;
pub mod export;
pub mod lot;
pub mod pkcs11;
pub mod project;
pub mod revocation;
pub mod run;
pub mod shared_registry;
pub mod sim;
pub mod stations;
pub mod tls;

pub use lot::{LotFileError, ModeError, check_mode, issuance_policy};
pub use project::{
    ProfileFile, adopt_registry, audit_registry, create_project, create_project_with,
    open_registry, open_registry_for_update, record_signer, regenerate_definitions, unlock,
};
pub use run::{Run, StationMode};
pub use sim::{SimDirLock, SimOptions, TEST_ROOT_FILE, lock_sim_dir, start_sims, write_test_root};
pub use stations::{Tally, check_ports, run_stations, stop_on_interrupt};

/// Why an operation failed.
#[derive(Debug)]
pub enum OpsError {
    /// The project directory or its profile.
    Project(ProjectError),
    /// The CA: loading, unlocking, creating.
    Ca(CaError),
    /// The registry database.
    Registry(RegistryError),
    /// Preparing the run: definitions, material.
    Setup(SetupError),
    /// The CA passphrase could not be read.
    Passphrase(PassphraseError),
    /// The signer's PKCS#11 token: loading, PIN, key.
    Pkcs11(Pkcs11Error),
    /// A verification certificate could not be made.
    Verification(VerificationError),
    /// A file or directory could not be created or written.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The registry the profile names does not exist.
    NoRegistry(PathBuf),
    /// A serial list could not be imported.
    LotFile(LotFileError),
    /// The project's mode refuses the run.
    Mode(ModeError),
    /// Serial ports named on the command line that do not exist (nothing was started).
    MissingPorts(Vec<String>),
    /// Another run holds the simulated-device state directory.
    SimDirInUse {
        /// The state directory.
        dir: PathBuf,
        /// The process holding it, when its lock file says.
        holder: Option<u32>,
        /// The lock file.
        lock: PathBuf,
    },
    /// The project predates registry ids: `keystamp registry adopt` gives it one.
    RegistryWithoutId(PathBuf),
    /// `registry adopt` on a project whose registry has an id already.
    RegistryHasId {
        /// The database file.
        path: PathBuf,
        /// Its id in `keystamp.toml`.
        id: String,
    },
    /// `registry adopt` found a database without this project's signer certificate.
    RegistryNotOurs(PathBuf),
    /// A simulated device could not be started.
    SimDevice {
        /// Its index (`devNN`).
        index: usize,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Building or signing the CRL failed.
    Crl(CrlError),
    /// A step of the offline root ceremony or a CA import failed.
    Ceremony(CeremonyError),
    /// A signed export was asked for without the unlocked signer.
    ExportNeedsSigner,
    /// Encoding an export as JSON failed.
    ExportJson(serde_json::Error),
    /// Mutual TLS with a simulated device's identity failed (`sim connect`).
    Tls(tls::TlsError),
    /// A CRL validity outside 1..=[`revocation::MAX_CRL_DAYS`] days.
    CrlDays(u32),
    /// A registry record that cannot be what it claims (its certificate DER or a time).
    BadRecord {
        /// The certificate serial.
        serial: String,
        /// What is wrong.
        why: String,
    },
}

impl fmt::Display for OpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Project(e) => e.fmt(f),
            Self::Tls(e) => e.fmt(f),
            Self::Ca(e) => e.fmt(f),
            Self::Registry(e) => e.fmt(f),
            Self::Setup(e) => e.fmt(f),
            Self::Passphrase(e) => e.fmt(f),
            Self::Pkcs11(e) => e.fmt(f),
            Self::Verification(e) => e.fmt(f),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::NoRegistry(path) => write!(
                f,
                "registry {} does not exist: check registry.path in {PROFILE_FILE} \
                 (keystamp init creates it)",
                path.display()
            ),
            Self::MissingPorts(ports) => {
                let (noun, verb) = if ports.len() == 1 {
                    ("port", "does")
                } else {
                    ("ports", "do")
                };
                write!(
                    f,
                    "serial {noun} {} {verb} not exist: check the name and that the device is \
                     plugged in (nothing was started)",
                    ports.join(", ")
                )
            }
            Self::SimDirInUse { dir, holder, lock } => {
                write!(f, "simulated devices in {} are in use", dir.display())?;
                if let Some(pid) = holder {
                    write!(f, " by keystamp process {pid}")?;
                }
                write!(
                    f,
                    ": give this run its own --state-dir, or wait for that run to end (if none \
                     runs, delete {})",
                    lock.display()
                )
            }
            Self::RegistryWithoutId(path) => write!(
                f,
                "registry {} has no id in {PROFILE_FILE} (a project made before registry ids): \
                 run `keystamp registry adopt` once to record it",
                path.display()
            ),
            Self::RegistryHasId { path, id } => write!(
                f,
                "registry {} already has id {id} in {PROFILE_FILE}: nothing to adopt",
                path.display()
            ),
            Self::RegistryNotOurs(path) => write!(
                f,
                "registry {} does not hold this project's signer certificate: it belongs to \
                 another project; restore this project's registry or fix registry.path",
                path.display()
            ),
            Self::SimDevice { index, source } => {
                write!(f, "cannot start simulated device {index}: {source}")
            }
            Self::LotFile(e) => e.fmt(f),
            Self::Mode(e) => e.fmt(f),
            Self::Crl(e) => e.fmt(f),
            Self::Ceremony(e) => e.fmt(f),
            Self::ExportNeedsSigner => f.write_str("the manifest is signed: unlock the signer"),
            Self::ExportJson(e) => write!(f, "encoding the export: {e}"),
            Self::CrlDays(d) => write!(
                f,
                "a CRL valid for {d} days: use --days between 1 and {}",
                revocation::MAX_CRL_DAYS
            ),
            Self::BadRecord { serial, why } => write!(
                f,
                "registry record of certificate {serial} is damaged ({why}): restore the \
                 registry from backup"
            ),
        }
    }
}

impl std::error::Error for OpsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Project(e) => Some(e),
            Self::Tls(e) => Some(e),
            Self::Ca(e) => Some(e),
            Self::Registry(e) => Some(e),
            Self::Setup(e) => Some(e),
            Self::Passphrase(e) => Some(e),
            Self::Pkcs11(e) => Some(e),
            Self::Verification(e) => Some(e),
            Self::NoRegistry(_)
            | Self::MissingPorts(_)
            | Self::SimDirInUse { .. }
            | Self::RegistryWithoutId(_)
            | Self::RegistryHasId { .. }
            | Self::RegistryNotOurs(_)
            | Self::CrlDays(_)
            | Self::BadRecord { .. }
            | Self::ExportNeedsSigner => None,
            Self::LotFile(e) => Some(e),
            Self::Mode(e) => Some(e),
            Self::Crl(e) => Some(e),
            Self::Ceremony(e) => Some(e),
            Self::ExportJson(e) => Some(e),
            Self::Io { source, .. } | Self::SimDevice { source, .. } => Some(source),
        }
    }
}

impl From<ProjectError> for OpsError {
    fn from(e: ProjectError) -> Self {
        Self::Project(e)
    }
}

impl From<Pkcs11Error> for OpsError {
    fn from(e: Pkcs11Error) -> Self {
        Self::Pkcs11(e)
    }
}

impl From<VerificationError> for OpsError {
    fn from(e: VerificationError) -> Self {
        Self::Verification(e)
    }
}

impl From<CaError> for OpsError {
    fn from(e: CaError) -> Self {
        Self::Ca(e)
    }
}

impl From<RegistryError> for OpsError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

impl From<SetupError> for OpsError {
    fn from(e: SetupError) -> Self {
        Self::Setup(e)
    }
}

impl From<LotFileError> for OpsError {
    fn from(e: LotFileError) -> Self {
        Self::LotFile(e)
    }
}

impl From<ModeError> for OpsError {
    fn from(e: ModeError) -> Self {
        Self::Mode(e)
    }
}

impl From<CrlError> for OpsError {
    fn from(e: CrlError) -> Self {
        Self::Crl(e)
    }
}

impl From<CeremonyError> for OpsError {
    fn from(e: CeremonyError) -> Self {
        Self::Ceremony(e)
    }
}
