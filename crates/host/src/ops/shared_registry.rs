//! `keystamp registry migrate` and `keystamp registry copy`: the operations that set up a
//! PostgreSQL registry several hosts share (docs/factory-guide.md "One line or many").

use super::OpsError;
use crate::project::Project;
use crate::registry::copy::CopyReport;
use crate::registry::{Registry, RegistryError};
use crate::registry_url::Location;

/// What `registry migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Where the registry is.
    pub location: Location,
    /// Schema version before.
    pub from: i64,
    /// Schema version after.
    pub to: i64,
}

/// Brings the project's registry to this keystamp's schema. On PostgreSQL this is the only
/// command that changes the schema (run it with a role that may); an SQLite registry is
/// migrated by any command that writes it, and here too.
pub fn migrate_registry(project: &Project) -> Result<Migrated, OpsError> {
    let location = project.registry_location();
    let (from, to) = match &location {
        Location::Postgres(url) => Registry::migrate_postgres(url)?,
        Location::Sqlite(path) => {
            let before = Registry::open_project_read_only(path, None)
                .and_then(|r| r.schema_version())
                .or_else(|e| match e {
                    RegistryError::OlderSchema { version, .. } => Ok(version),
                    e => Err(e),
                })?;
            let reg = super::open_registry_for_update(project)?;
            (before, reg.schema_version()?)
        }
    };
    Ok(Migrated { location, from, to })
}

/// Copies the project's SQLite registry into the migrated, empty PostgreSQL registry at `to`
/// and verifies the copy (row counts, and the record chain against the project's signers, as
/// `registry audit` does).
/// The project keeps using the SQLite file until `registry.url` names the copy.
pub fn copy_registry(project: &Project, to: &str) -> Result<CopyReport, OpsError> {
    let Location::Postgres(url) = Location::parse(to, &project.dir).map_err(RegistryError::from)?
    else {
        return Err(RegistryError::Copy(crate::registry::copy::CopyError::Engines).into());
    };
    let source = Registry::open_project_read_only(
        &project.registry_path(),
        project.profile.registry.id.as_deref(),
    )?;
    let target = Registry::open_postgres(&url)?;
    let signers = super::project::project_signers(project, &source)?;
    Ok(source.copy_to(&target, &signers)?)
}
