//! The error at the CLI edge: the typed error of whichever layer failed, printed as one line
//! (`keystamp: error: ...`) that says what happened and what to do.

use std::fmt;

use crate::certdef_io::InputError;
use crate::ops::OpsError;
use crate::ops::certdef::{ExportCError, PackError};
use crate::pki::ca::CaError;
use crate::pki::from_cert::FromCertError;
use crate::pki::passphrase::PassphraseError;
use crate::project::ProjectError;
use crate::registry::RegistryError;
use crate::setup::SetupError;

/// An error for the user: the failing layer's typed error, or a problem the command line found
/// itself. Shown as one line; [`std::error::Error::source`] reaches the layer's error.
#[derive(Debug)]
pub enum CliError {
    /// An operation failed.
    Ops(OpsError),
    /// The project or its profile.
    Project(ProjectError),
    /// The CA.
    Ca(CaError),
    /// The registry.
    Registry(RegistryError),
    /// Preparing a run.
    Setup(SetupError),
    /// The CA passphrase.
    Passphrase(PassphraseError),
    /// A certificate, definition or hex input.
    Input(InputError),
    /// Generating a definition from a sample certificate.
    FromCert(FromCertError),
    /// Exporting a definition as C.
    ExportC(ExportCError),
    /// Packing definitions into a blob.
    Pack(PackError),
    /// The certificate-definition codec refused (`what` says which input or operation).
    Codec {
        /// The input or operation.
        what: String,
        /// The codec's reason.
        source: keystamp_certdef::Error,
    },
    /// A certificate that does not parse.
    Der {
        /// Which certificate.
        what: String,
        /// The parser's reason.
        source: der::Error,
    },
    /// A file could not be written.
    WriteFile {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Writing to standard output failed.
    Output(std::io::Error),
    /// Serializing JSON output failed.
    Json(serde_json::Error),
    /// Some devices failed at their stations (the table or JSON above says which).
    DevicesFailed {
        /// How many failed.
        failed: usize,
        /// How many there were.
        total: usize,
        /// The results went out as JSON (there is no table to point at).
        json: bool,
        /// A failed device was reached, so rerunning resumes it.
        resumable: bool,
    },
    /// The operator interrupted the run (Ctrl-C); the stations stopped at a step boundary.
    Interrupted {
        /// Devices whose station stopped before finishing.
        stopped: usize,
        /// How many there were.
        total: usize,
    },
    /// A problem the command line found in its own arguments or state, said in full.
    Invalid(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ops(e) => e.fmt(f),
            Self::Project(e) => e.fmt(f),
            Self::Ca(e) => e.fmt(f),
            Self::Registry(e) => e.fmt(f),
            Self::Setup(e) => e.fmt(f),
            Self::Passphrase(e) => e.fmt(f),
            Self::Input(e) => e.fmt(f),
            Self::FromCert(e) => e.fmt(f),
            Self::ExportC(e) => e.fmt(f),
            Self::Pack(e) => e.fmt(f),
            Self::Codec { what, source } => write!(f, "{what}: {source}"),
            Self::Der { what, source } => write!(f, "{what}: {source}"),
            Self::WriteFile { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Output(e) => write!(f, "writing output: {e}"),
            Self::Json(e) => write!(f, "writing JSON: {e}"),
            Self::DevicesFailed {
                failed,
                total,
                json,
                resumable,
            } => {
                let why = if *json {
                    "each result's \"error\" says why"
                } else {
                    "the table says why"
                };
                write!(f, "{failed} of {total} devices failed; {why}")?;
                if *resumable {
                    f.write_str("; rerun the same command to resume")?;
                }
                Ok(())
            }
            Self::Interrupted { stopped, total } => write!(
                f,
                "interrupted: {stopped} of {total} devices stopped between steps; rerun the \
                 same command to resume them"
            ),
            Self::Invalid(m) => f.write_str(m),
        }
    }
}

impl CliError {
    /// Names the registry file in a bare database error, which SQLite reports without one.
    pub fn naming_registry(self, path: &std::path::Path) -> Self {
        match self {
            Self::Registry(e) => Self::Registry(e.in_file(path)),
            Self::Ops(OpsError::Registry(e)) => Self::Ops(OpsError::Registry(e.in_file(path))),
            other => other,
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ops(e) => Some(e),
            Self::Project(e) => Some(e),
            Self::Ca(e) => Some(e),
            Self::Registry(e) => Some(e),
            Self::Setup(e) => Some(e),
            Self::Passphrase(e) => Some(e),
            Self::Input(e) => Some(e),
            Self::FromCert(e) => Some(e),
            Self::ExportC(e) => Some(e),
            Self::Pack(e) => Some(e),
            Self::Codec { source, .. } => Some(source),
            Self::Der { source, .. } => Some(source),
            Self::WriteFile { source, .. } => Some(source),
            Self::Output(e) => Some(e),
            Self::Json(e) => Some(e),
            Self::DevicesFailed { .. } | Self::Interrupted { .. } | Self::Invalid(_) => None,
        }
    }
}

macro_rules! from_layer {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for CliError {
            fn from(e: $ty) -> Self {
                Self::$variant(e)
            }
        })*
    };
}

from_layer!(
    Ops(OpsError),
    Project(ProjectError),
    Ca(CaError),
    Registry(RegistryError),
    Setup(SetupError),
    Passphrase(PassphraseError),
    Input(InputError),
    FromCert(FromCertError),
    ExportC(ExportCError),
    Pack(PackError),
    Json(serde_json::Error),
);

/// Whether `e` is standard output closing early (`keystamp registry list | head`): the reader
/// has what it wanted, so this is not reported.
pub fn is_broken_pipe(e: &CliError) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    if let CliError::Json(j) = e {
        return j.io_error_kind() == Some(BrokenPipe);
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The one line printed for `e`: its message with any line breaks a lower layer produced
/// collapsed, so a log line stays one line.
pub fn one_line(e: &CliError) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_multi_line_lower_error_prints_as_one_line() {
        let e = CliError::Invalid("first line\n  second line\r\nthird".into());
        assert_eq!(one_line(&e), "first line second line third");
    }

    #[test]
    fn the_edge_error_keeps_the_layer_error_as_its_source() {
        let e = CliError::from(RegistryError::NewerSchema(99));
        let source = e.source().expect("the registry error");
        assert!(source.downcast_ref::<RegistryError>().is_some());
        assert_eq!(e.to_string(), source.to_string());
    }
}
