//! `keystamp registry list`, `keystamp registry show` and `keystamp registry adopt`.

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::CliError;
use super::args::JsonFlag;
use super::output::{io_err, print_json};
use crate::ops;
use crate::pki::ca;
use crate::project::Project;
use crate::registry::lots::DeviceOrigin;
use crate::registry::{AuditRecord, CertRecord, ChipSerial, DeviceRecord, Registry};

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
    /// Verify the registry's record chain (sequence, hashes, signer signatures, status columns)
    /// and name the first bad row; needs only the signer certificate, no passphrase.
    Audit,
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
    }
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
        let certificate = registry.live_certificate(device.chip_serial)?;
        let origin = origin(&registry, device.chip_serial)?;
        rows.push(DeviceListing {
            device,
            origin,
            certificate,
        });
    }
    if json {
        return print_json(&rows, out);
    }
    (|| {
        writeln!(
            out,
            "{:<18}  {:<3}  {:<12}  {:<11}  {:<24}  {:<32}  {:<10}  UPDATED",
            "CHIP SERIAL", "SIM", "LOT", "STATE", "CN", "CERT SERIAL", "STATUS"
        )?;
        for r in &rows {
            let (serial, status) = match &r.certificate {
                Some(c) => (c.serial.as_str(), c.status.as_str()),
                None => ("-", "-"),
            };
            writeln!(
                out,
                "{:<18}  {:<3}  {:<12}  {:<11}  {:<24}  {:<32}  {:<10}  {}",
                r.device.chip_serial,
                if r.origin.simulated { "yes" } else { "no" },
                r.origin.lot.as_deref().unwrap_or("-"),
                r.device.state,
                r.device.cn.as_deref().unwrap_or("-"),
                serial,
                status,
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
}

impl<'a> CertDetail<'a> {
    fn of(record: &'a CertRecord) -> Self {
        Self {
            record,
            sha256: ca::colon_hex(&ca::sha256(&record.der)),
            pem: ca::der_to_pem(&record.der),
        }
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
            certificates: certs.iter().map(CertDetail::of).collect(),
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
    let detail = CertDetail::of(&cert);
    if json {
        return print_json(&detail, out);
    }
    (|| {
        detail.print("", out)?;
        write!(out, "{}", detail.pem)
    })()
    .map_err(io_err)
}
