//! `keystamp registry list`, `show`, `adopt`, `revoke`, `export`, `audit`, `migrate` and `copy`.

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::CliError;
use super::args::JsonFlag;
use super::output::{io_err, print_json};
use crate::ops;
use crate::ops::export::{self, ExportFormat};
use crate::pki::ca;
use crate::project::{PartProfile, Project};
use crate::registry::lots::DeviceOrigin;
use crate::registry::{
    AuditRecord, CertRecord, ChipSerial, DeviceRecord, Registry, Revocation, RevocationReason,
};

/// `keystamp registry ...`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// List every device with its current certificate.
    List(JsonFlag),
    /// Show one device (by chip serial) or certificate (by certificate serial).
    Show(ShowArgs),
    /// Give the registry of a project made before registry ids its id, recorded in
    /// keystamp.toml (checks the database holds this project's signer certificate).
    Adopt,
    /// Revoke a device certificate; `keystamp ca crl` then lists it.
    Revoke(RevokeArgs),
    /// Export the live device certificates: CSV, JSON, Azure DPS enrollments, AWS IoT
    /// registration input, or a signed manifest.
    Export(ExportArgs),
    /// Bring the registry's schema to this keystamp's version. On a PostgreSQL registry
    /// (registry.url or --registry) this is the only command that changes the schema: run it
    /// once per release with a role that may; stations need no such rights.
    Migrate,
    /// Copy the project's SQLite registry into a migrated, empty PostgreSQL registry and
    /// verify the copy (row counts, record chain); then set registry.url to use it.
    Copy(CopyArgs),
    /// Verify the registry's record chain (sequence, hashes, signer signatures, status columns)
    /// and name the first bad row; needs only the signer certificate, no passphrase.
    Audit,
}

/// `keystamp registry copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The PostgreSQL registry, `postgres://user@host:port/db` (no password in it).
    #[arg(long, value_name = "URL")]
    pub to: String,
}

/// `keystamp registry export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write to this file (default: standard output).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// `keystamp registry revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Certificate serial (hex, as `registry list` and `registry show` print it).
    pub serial: String,
    /// RFC 5280 CRLReason: unspecified, keyCompromise, cACompromise, affiliationChanged,
    /// superseded, cessationOfOperation, privilegeWithdrawn.
    #[arg(long)]
    pub reason: RevocationReason,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `keystamp registry show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Chip serial (18 hex digits) or certificate serial (hex).
    pub serial: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs one `registry` command.
pub fn run(dir: &Path, cmd: RegistryCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        RegistryCommand::List(f) => registry_list(dir, f.json, out),
        RegistryCommand::Show(a) => registry_show(dir, &a.serial, a.json, out),
        RegistryCommand::Audit => registry_audit(dir, out),
        RegistryCommand::Adopt => {
            let project = Project::open(dir)?;
            let id = ops::adopt_registry(&project)?;
            writeln!(
                out,
                "registry {}: id {id} recorded in keystamp.toml",
                project.registry_path().display()
            )
            .map_err(io_err)
        }
        RegistryCommand::Revoke(a) => registry_revoke(dir, &a, out),
        RegistryCommand::Migrate => {
            let m = ops::shared_registry::migrate_registry(&Project::open(dir)?)?;
            writeln!(
                out,
                "registry {}: schema version {} (was {})",
                m.location, m.to, m.from
            )
            .map_err(io_err)
        }
        RegistryCommand::Copy(a) => {
            let project = Project::open(dir)?;
            let report = ops::shared_registry::copy_registry(&project, &a.to)?;
            (|| {
                for (table, rows) in &report.rows {
                    writeln!(out, "{table}: {rows} rows copied")?;
                }
                writeln!(
                    out,
                    "copy verified (row counts, record chain); set registry.url = \"{}\" in \
                     keystamp.toml to use it",
                    a.to
                )
            })()
            .map_err(io_err)
        }
        RegistryCommand::Export(a) => registry_export(dir, &a, out),
    }
}

fn registry_revoke(dir: &Path, args: &RevokeArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let project = Project::open(dir)?;
    let mut registry = ops::open_registry_for_update(&project)?;
    // The revocation's audit entry is a record of the chain: the signer signs it.
    registry.set_record_signer(Box::new(ops::unlock(&project)?));
    let wanted = args.serial.trim().trim_start_matches("0x");
    let revoked = ops::revocation::revoke(&mut registry, wanted, args.reason)?;
    if args.json {
        return print_json(&revoked, out);
    }
    let c = &revoked.certificate;
    (|| {
        writeln!(out, "serial: {}", c.serial)?;
        if let Some(chip) = c.chip_serial {
            writeln!(out, "chip_serial: {chip}")?;
        }
        writeln!(out, "status: {}", c.status)?;
        writeln!(out, "revoked: {}", revoked.revocation.reason)?;
        writeln!(out, "revoked_at: {}", revoked.revocation.revoked_at)
    })()
    .map_err(io_err)
}

fn registry_audit(dir: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    use crate::registry::chain::AuditReport;
    match ops::audit_registry(&Project::open(dir)?)? {
        AuditReport::Clean {
            records,
            head,
            earlier: (certificates, audit),
        } => {
            writeln!(
                out,
                "registry audit: {records} records checked, chain intact, head {}",
                hex::encode(head)
            )
            .map_err(io_err)?;
            if certificates + audit > 0 {
                writeln!(
                    out,
                    "({certificates} certificate(s) and {audit} audit entr(ies) predate the \
                     chain; its start record seals them)"
                )
                .map_err(io_err)?;
            }
            Ok(())
        }
        AuditReport::NotStarted {
            certificates,
            audit,
        } if certificates + audit == 0 => writeln!(
            out,
            "registry audit: the registry is empty, nothing to check"
        )
        .map_err(io_err),
        AuditReport::NotStarted {
            certificates,
            audit,
        } => Err(CliError::Invalid(format!(
            "registry audit: the registry has {certificates} certificate(s) and {audit} audit \
             entr(ies) but no record chain yet (written before keystamp kept one): nothing is \
             verified. The chain starts, sealing these rows, with the next record written: \
             run `keystamp provision` or `keystamp verify` once"
        ))),
        AuditReport::Bad(findings) => {
            let more = match findings.len() {
                0 | 1 => String::new(),
                n => format!(" ({} more problem(s) after it)", n - 1),
            };
            let first = findings
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            Err(CliError::Invalid(format!(
                "registry audit: first bad row: {first}{more}"
            )))
        }
    }
}

fn open_registry(dir: &Path) -> Result<Registry, CliError> {
    Ok(ops::open_registry(&Project::open(dir)?)?)
}

#[derive(Serialize)]
struct DeviceListing {
    #[serde(flatten)]
    device: DeviceRecord,
    #[serde(flatten)]
    origin: DeviceOrigin,
    certificate: Option<CertRecord>,
    /// The certificate's revocation, when it is revoked.
    revoked: Option<Revocation>,
    /// The station (`host:port`) that issued it.
    station: Option<String>,
}

/// A device's lot and simulated flag (unknown chips: no lot, not simulated).
fn origin(registry: &Registry, chip: ChipSerial) -> Result<DeviceOrigin, CliError> {
    Ok(registry.device_origin(chip)?.unwrap_or(DeviceOrigin {
        lot: None,
        simulated: false,
    }))
}

fn registry_list(dir: &Path, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let registry = open_registry(dir)?;
    let mut rows = Vec::new();
    for device in registry.devices()? {
        // A revoked certificate is no longer live; the listing still shows it, as revoked.
        let certificate = match registry.live_certificate(device.chip_serial)? {
            Some(c) => Some(c),
            None => registry.latest_certificate(device.chip_serial)?,
        };
        let revoked = match &certificate {
            Some(c) => registry.revocation(&c.serial)?,
            None => None,
        };
        let origin = origin(&registry, device.chip_serial)?;
        let station = registry.issuing_station(device.chip_serial)?;
        rows.push(DeviceListing {
            device,
            origin,
            certificate,
            revoked,
            station,
        });
    }
    if json {
        return print_json(&rows, out);
    }
    (|| {
        writeln!(
            out,
            "{:<18}  {:<3}  {:<12}  {:<11}  {:<24}  {:<32}  {:<10}  {:<20}  UPDATED",
            "CHIP SERIAL", "SIM", "LOT", "STATE", "CN", "CERT SERIAL", "STATUS", "STATION"
        )?;
        for r in &rows {
            let (serial, status) = match (&r.certificate, &r.revoked) {
                (Some(c), Some(_)) => (c.serial.as_str(), "revoked"),
                (Some(c), None) => (c.serial.as_str(), c.status.as_str()),
                (None, _) => ("-", "-"),
            };
            writeln!(
                out,
                "{:<18}  {:<3}  {:<12}  {:<11}  {:<24}  {:<32}  {:<10}  {:<20}  {}",
                r.device.chip_serial,
                if r.origin.simulated { "yes" } else { "no" },
                r.origin.lot.as_deref().unwrap_or("-"),
                r.device.state,
                r.device.cn.as_deref().unwrap_or("-"),
                serial,
                status,
                r.station.as_deref().unwrap_or("-"),
                r.device.updated_at
            )?;
        }
        Ok(())
    })()
    .map_err(io_err)
}

#[derive(Serialize)]
struct CertDetail<'a> {
    #[serde(flatten)]
    record: &'a CertRecord,
    sha256: String,
    pem: String,
    revoked: Option<Revocation>,
}

impl<'a> CertDetail<'a> {
    fn of(record: &'a CertRecord, registry: &Registry) -> Result<Self, CliError> {
        Ok(Self {
            record,
            sha256: ca::colon_hex(&ca::sha256(&record.der)),
            pem: ca::der_to_pem(&record.der),
            revoked: registry.revocation(&record.serial)?,
        })
    }

    fn print(&self, prefix: &str, out: &mut dyn Write) -> std::io::Result<()> {
        let r = self.record;
        writeln!(out, "{prefix}serial: {}", r.serial)?;
        writeln!(out, "{prefix}kind: {}", r.kind)?;
        writeln!(out, "{prefix}status: {}", r.status)?;
        if let Some(chip) = r.chip_serial {
            writeln!(out, "{prefix}chip_serial: {chip}")?;
        }
        writeln!(out, "{prefix}subject_cn: {}", r.subject_cn)?;
        writeln!(
            out,
            "{prefix}public_key: {}",
            hex::encode_upper(r.public_key)
        )?;
        writeln!(out, "{prefix}not_before: {}", r.not_before)?;
        writeln!(out, "{prefix}not_after: {}", r.not_after)?;
        writeln!(out, "{prefix}sha256: {}", self.sha256)?;
        if let Some(r) = &self.revoked {
            writeln!(out, "{prefix}revoked: {}", r.reason)?;
            writeln!(out, "{prefix}revoked_at: {}", r.revoked_at)?;
        }
        writeln!(out, "{prefix}created_at: {}", r.created_at)?;
        writeln!(out, "{prefix}updated_at: {}", r.updated_at)
    }
}

#[derive(Serialize)]
struct DeviceDetail<'a> {
    device: &'a DeviceRecord,
    origin: DeviceOrigin,
    certificates: Vec<CertDetail<'a>>,
    audit: &'a [AuditRecord],
}

fn registry_show(
    dir: &Path,
    serial: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let registry = open_registry(dir)?;
    let wanted = serial.trim().trim_start_matches("0x");
    // A chip serial is exactly 9 bytes; a certificate serial may be too, so try both (a device
    // match wins, as the more specific question).
    if let Ok(chip) = wanted.parse::<ChipSerial>()
        && let Some(device) = registry.device(chip)?
    {
        let certs = registry.certificates_for(chip)?;
        let audit = registry.audit_log(Some(chip))?;
        let detail = DeviceDetail {
            device: &device,
            origin: origin(&registry, chip)?,
            certificates: certs
                .iter()
                .map(|c| CertDetail::of(c, &registry))
                .collect::<Result<_, _>>()?,
            audit: &audit,
        };
        if json {
            return print_json(&detail, out);
        }
        return (|| {
            writeln!(out, "chip_serial: {}", device.chip_serial)?;
            writeln!(out, "state: {}", device.state)?;
            writeln!(out, "simulated: {}", detail.origin.simulated)?;
            writeln!(out, "lot: {}", detail.origin.lot.as_deref().unwrap_or("-"))?;
            writeln!(out, "cn: {}", device.cn.as_deref().unwrap_or("-"))?;
            writeln!(out, "created_at: {}", device.created_at)?;
            writeln!(out, "updated_at: {}", device.updated_at)?;
            for (i, c) in detail.certificates.iter().enumerate() {
                c.print(&format!("certificate[{i}]."), out)?;
            }
            for a in &audit {
                writeln!(
                    out,
                    "audit: {} {} {} {} {}",
                    a.time,
                    a.station.as_deref().unwrap_or("-"),
                    a.step,
                    a.outcome,
                    a.detail
                )?;
            }
            Ok(())
        })()
        .map_err(io_err);
    }
    let Some(cert) = registry.certificate(wanted)? else {
        return Err(CliError::Invalid(format!(
            "{serial}: no device with that chip serial and no certificate with that serial \
             (see `keystamp registry list`)"
        )));
    };
    let detail = CertDetail::of(&cert, &registry)?;
    if json {
        return print_json(&detail, out);
    }
    (|| {
        detail.print("", out)?;
        write!(out, "{}", detail.pem)
    })()
    .map_err(io_err)
}

/// The project's `[microchip] root` certificate, the anchor of its Trust&Go devices' chains.
fn microchip_root_cert(project: &Project) -> Result<ca::CaCert, CliError> {
    let root = crate::setup::microchip_root(project)?;
    // Already parsed once by `microchip_root`: a failure here is not expected.
    ca::CaCert::from_der(root.der)
        .map_err(|e| CliError::Invalid(format!("the Microchip root certificate: {e}")))
}

fn registry_export(dir: &Path, args: &ExportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let project = Project::open(dir)?;
    let registry = ops::open_registry(&project)?;
    let format = args.format;
    let signer = if format.needs_signer() {
        Some(ops::unlock(&project)?)
    } else {
        None
    };
    let certs = ca::CaCerts::load(&project.ca_dir())?;
    // Trust&Go devices carry Microchip's chain, not the project's.
    let microchip_root = match project.profile.profile {
        PartProfile::TrustAndGo => Some(microchip_root_cert(&project)?),
        _ => None,
    };
    let issuers = match &microchip_root {
        Some(root) => export::Issuers::Microchip { root },
        None => export::Issuers::Project,
    };
    let devices = export::devices(&registry, issuers)?;
    let text = export::export(&devices, &certs, issuers, signer.as_ref(), format)?;
    match &args.out {
        None => out.write_all(text.as_bytes()).map_err(io_err),
        Some(path) => {
            std::fs::write(path, text).map_err(|source| CliError::WriteFile {
                path: path.clone(),
                source,
            })?;
            writeln!(out, "devices: {}", devices.len()).map_err(io_err)?;
            writeln!(out, "export: {}", path.display()).map_err(io_err)
        }
    }
}
