//! `keystamp certdef ...`: certificate definitions from the command line — generate one from a
//! sample certificate, compress / split / rebuild certificates with one, pack definitions into
//! the device blob, show them, and export them as cryptoauthlib C source.
//!
//! Machine-readable results go to `out` (stdout); errors are [`CliError`]s (one line).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use keystamp_certdef::blob::BLOB_MAGIC;
use keystamp_certdef::rebuild::DeviceData;
use keystamp_certdef::{
    CertDef, CertDefBuf, CertLoc, CompressedCert, DefBlob, DeviceImage, DeviceLoc, Role, SnSource,
    StdElement, Transform, compress, read_plan, rebuild, split,
};
use serde::Serialize;

use super::CliError;
use super::output::io_err;
use crate::certdef_io::{
    DeviceImageJson, defs_to_json, load_cert, load_def, load_defs, parse_hex, parse_public_key,
};
use crate::ops::certdef::{export_c, pack};
use crate::pki::ca::{self, CaCerts};
use crate::pki::from_cert::{CertRole, FromCertOptions, HexCase, from_cert};

/// `keystamp certdef ...`.
#[derive(Debug, Subcommand)]
pub enum CertdefCommand {
    /// Generate a definition from a sample certificate (PEM or DER).
    FromCert(FromCertArgs),
    /// Print a certificate's 72-byte compressed form (144 hex digits).
    Compress(CompressArgs),
    /// Split a certificate into the device image that rebuilds it (JSON).
    Split(SplitArgs),
    /// Rebuild a certificate from a definition and a device image.
    Rebuild(RebuildArgs),
    /// Pack definitions (and the root public key) into the device definition blob.
    Pack(PackArgs),
    /// Summarise a definition file or a definition blob.
    Show(ShowArgs),
    /// Export a definition as cryptoauthlib C source (an `atcacert_def_t` initialiser).
    ExportC(ExportCArgs),
}

/// `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// A device certificate.
    Device,
    /// A signer (intermediate CA) certificate.
    Signer,
}

/// `--cn-serial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaseArg {
    /// Upper-case hex.
    Upper,
    /// Lower-case hex.
    Lower,
}

/// `keystamp certdef from-cert`.
#[derive(Debug, Args)]
pub struct FromCertArgs {
    /// Sample certificate (PEM or DER).
    pub cert: PathBuf,
    /// Which certificate of the chain the sample is.
    #[arg(long, value_enum, default_value = "device")]
    pub role: RoleArg,
    /// Name of the definition (default: `device` or `signer`).
    #[arg(long)]
    pub name: Option<String>,
    /// Serial-number source (`SNSRC_...`; default: detected from the sample's serial number).
    #[arg(long)]
    pub sn_source: Option<String>,
    /// Data slot holding a stored serial number (SNSRC_STORED / SNSRC_STORED_DYNAMIC).
    #[arg(long)]
    pub cert_sn_slot: Option<u16>,
    /// Template id, 0–15 (default: 2 for a device, 1 for a signer).
    #[arg(long, value_parser = four_bit_id)]
    pub template_id: Option<u8>,
    /// Chain id, 0–15.
    #[arg(long, default_value_t = 0, value_parser = four_bit_id)]
    pub chain_id: u8,
    /// Device private key slot; a device's public key is read from it via GenKey.
    #[arg(long, default_value_t = 0, value_parser = slot)]
    pub device_key_slot: u16,
    /// Slot of the compressed certificate (default: 10 for a device, 12 for a signer).
    #[arg(long, value_parser = slot)]
    pub comp_cert_slot: Option<u16>,
    /// Slot holding the subject public key in the 72-byte padded form (default: 11 for a
    /// signer; a device uses GenKey of --device-key-slot unless this is given).
    #[arg(long, value_parser = slot)]
    pub public_key_slot: Option<u16>,
    /// Put the chip serial number (18 hex digits in the sample's subject CN) into the CN.
    #[arg(long, value_enum)]
    pub cn_serial: Option<CaseArg>,
    /// Name of the issuer's definition (`ca_cert_def`).
    #[arg(long)]
    pub ca_def: Option<String>,
    /// Write the definition here instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// `--def` and `--cert`.
#[derive(Debug, Args)]
pub struct DefCertArgs {
    /// Definition file (JSON); `FILE#NAME` picks one definition of a file holding several.
    #[arg(long = "def")]
    pub def: String,
    /// Certificate (PEM or DER).
    #[arg(long)]
    pub cert: PathBuf,
}

/// `keystamp certdef compress`.
#[derive(Debug, Args)]
pub struct CompressArgs {
    /// Definition and certificate.
    #[command(flatten)]
    pub io: DefCertArgs,
}

/// `keystamp certdef split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Definition and certificate.
    #[command(flatten)]
    pub io: DefCertArgs,
    /// The chip's 9-byte serial number (hex); required for SNSRC_DEVICE_SN_HASH*.
    #[arg(long)]
    pub device_sn: Option<String>,
    /// Issuer public key X‖Y (hex, 64 bytes, optional 04 prefix): checks the authority key id.
    #[arg(long)]
    pub ca_public_key: Option<String>,
}

/// `keystamp certdef rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Definition file (JSON); `FILE#NAME` picks one definition of a file holding several.
    #[arg(long = "def")]
    pub def: String,
    /// Device image (JSON, as `certdef split` prints).
    #[arg(long)]
    pub device_image: PathBuf,
    /// Issuer public key X‖Y (hex): sets the authority key id (else the template's is kept).
    #[arg(long)]
    pub ca_public_key: Option<String>,
    /// Write DER bytes instead of PEM.
    #[arg(long)]
    pub der: bool,
}

/// `keystamp certdef pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// Definition files (JSON; `FILE#NAME` picks one). The first definition that no other
    /// names as its CA is the device's; one named as a CA is the signer's.
    #[arg(required = true)]
    pub defs: Vec<String>,
    /// Root public key X‖Y (hex) to store in the blob.
    #[arg(long, conflicts_with = "ca_dir")]
    pub root_public_key: Option<String>,
    /// Take the root public key from a CA directory (root.pem).
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
    /// Output blob file.
    #[arg(short = 'o', long, required = true)]
    pub output: PathBuf,
}

/// `keystamp certdef show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A definition file (JSON) or a definition blob.
    pub file: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `keystamp certdef export-c`.
#[derive(Debug, Args)]
pub struct ExportCArgs {
    /// Definition file (JSON); `FILE#NAME` picks one definition of a file holding several.
    #[arg(long = "def")]
    pub def: String,
    /// C identifier of the `atcacert_def_t` (the template and elements arrays get suffixes).
    #[arg(long)]
    pub name: String,
    /// C identifier of the CA's definition (default: `g_cert_def_` + its `ca_cert_def` name).
    #[arg(long)]
    pub ca_name: Option<String>,
    /// Header to include.
    #[arg(long, default_value = "atcacert/atcacert_def.h")]
    pub include: String,
}

/// Runs one `certdef` command.
pub fn run(cmd: CertdefCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        CertdefCommand::FromCert(a) => cmd_from_cert(a, out),
        CertdefCommand::Compress(a) => cmd_compress(a, out),
        CertdefCommand::Split(a) => cmd_split(a, out),
        CertdefCommand::Rebuild(a) => cmd_rebuild(a, out),
        CertdefCommand::Pack(a) => cmd_pack(a, out),
        CertdefCommand::Show(a) => cmd_show(a, out),
        CertdefCommand::ExportC(a) => {
            let def = load_def(&a.def)?;
            let c = export_c(&def, &a.name, a.ca_name.as_deref(), &a.include)?;
            out.write_all(c.as_bytes()).map_err(io_err)
        }
    }
}

fn err(msg: impl Into<String>) -> CliError {
    CliError::Invalid(msg.into())
}

fn def_err(what: &str) -> impl Fn(keystamp_certdef::Error) -> CliError + '_ {
    move |source| CliError::Codec {
        what: what.to_string(),
        source,
    }
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |source| CliError::WriteFile {
        path: path.to_path_buf(),
        source,
    }
}

fn write_output(path: Option<&Path>, data: &[u8], out: &mut dyn Write) -> Result<(), CliError> {
    match path {
        Some(p) => std::fs::write(p, data).map_err(write_err(p)),
        None => out.write_all(data).map_err(io_err),
    }
}

fn cmd_from_cert(a: FromCertArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let der = load_cert(&a.cert)?;
    let role = match a.role {
        RoleArg::Device => CertRole::Device,
        RoleArg::Signer => CertRole::Signer,
    };
    let default_name = match role {
        CertRole::Device => "device",
        CertRole::Signer => "signer",
    };
    let mut opts = FromCertOptions::new(a.name.as_deref().unwrap_or(default_name), role);
    if let Some(s) = &a.sn_source {
        opts.sn_source = Some(parse_sn_source(s)?);
    }
    if let Some(id) = a.template_id {
        opts.template_id = id;
    }
    opts.chain_id = a.chain_id;
    opts.private_key_slot = a.device_key_slot;
    opts.comp_cert_loc = a.comp_cert_slot.map(|s| DeviceLoc::data(s, 0, 72));
    opts.public_key_loc = a.public_key_slot.map(|s| DeviceLoc::data(s, 0, 72));
    if let Some(slot) = a.cert_sn_slot {
        let sn_len = serial_len(&der)?;
        let dynamic = opts.sn_source == Some(SnSource::StoredDynamic);
        opts.cert_sn_loc = Some(DeviceLoc::data(slot, 0, sn_len + u16::from(dynamic)));
    }
    opts.cn_serial = a.cn_serial.map(|c| match c {
        CaseArg::Upper => HexCase::Upper,
        CaseArg::Lower => HexCase::Lower,
    });
    opts.ca_cert_def = a.ca_def;
    let def = from_cert(&der, &opts)
        .map_err(|e| CliError::Invalid(format!("{}: {e}", a.cert.display())))?;
    warn_if_sample_does_not_rebuild(&def, &der);
    write_output(a.output.as_deref(), defs_to_json(&[&def]).as_bytes(), out)
}

/// The sample need not rebuild from its own definition (its serial number may be random while
/// devices get generated ones), but the operator should know: a note on stderr.
fn warn_if_sample_does_not_rebuild(buf: &CertDefBuf, der: &[u8]) {
    let Ok(def) = buf.as_def() else { return };
    let Ok(len) = scratch_len(&def) else { return };
    let mut image = Box::<DeviceImage>::default();
    let mut scratch = vec![0u8; len];
    match split(&def, der, None, None, &mut image, &mut scratch) {
        Ok(_) | Err(keystamp_certdef::Error::MissingDeviceSn) => {}
        Err(e) => eprintln!(
            "keystamp: warning: the sample does not rebuild from this definition ({e}): \
             certificates built from it differ there (expected for a generated serial number \
             such as {}; otherwise check the options)",
            def.sn_source.c_name()
        ),
    }
}

fn parse_sn_source(s: &str) -> Result<SnSource, CliError> {
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SNSRC_") {
        upper
    } else {
        format!("SNSRC_{upper}")
    };
    SnSource::from_c_name(&name).ok_or_else(|| {
        let all: Vec<_> = SnSource::ALL.iter().map(|s| s.c_name()).collect();
        err(format!(
            "--sn-source {s}: unknown; one of {}",
            all.join(", ")
        ))
    })
}

/// Length of the serial-number INTEGER content of a certificate.
fn serial_len(der: &[u8]) -> Result<u16, CliError> {
    let cert: x509_cert::Certificate =
        der::Decode::from_der(der).map_err(|source| CliError::Der {
            what: "certificate".into(),
            source,
        })?;
    let n = cert.tbs_certificate().serial_number().as_bytes().len();
    u16::try_from(n).map_err(|_| err("serial number too long"))
}

fn cmd_compress(a: CompressArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let buf = load_def(&a.io.def)?;
    let def = buf.as_def().map_err(def_err("definition"))?;
    let der = load_cert(&a.io.cert)?;
    // The certificate must fit the definition, as for split: a clear error instead of a
    // compressed form of the wrong bytes.
    keystamp_certdef::split::check_template(&def, &der)
        .map_err(|e| err(format!("{}: {e}", a.io.cert.display())))?;
    let comp = compress(&def, &der).map_err(def_err("compress"))?;
    writeln!(out, "{}", hex::encode(comp)).map_err(io_err)
}

fn cmd_split(a: SplitArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let buf = load_def(&a.io.def)?;
    let def = buf.as_def().map_err(def_err("definition"))?;
    let der = load_cert(&a.io.cert)?;
    let device_sn = match &a.device_sn {
        Some(s) => Some(
            <[u8; 9]>::try_from(parse_hex(s, "--device-sn")?).map_err(|b| {
                err(format!(
                    "--device-sn: a chip serial number is 9 bytes (18 hex digits), got {}",
                    b.len()
                ))
            })?,
        ),
        None => None,
    };
    let ca_key = a
        .ca_public_key
        .as_deref()
        .map(|s| parse_public_key(s, "--ca-public-key"))
        .transpose()?;
    let mut image = Box::<DeviceImage>::default();
    let mut scratch = vec![0u8; scratch_len(&def)?];
    split(
        &def,
        &der,
        ca_key.as_ref(),
        device_sn.as_ref(),
        &mut image,
        &mut scratch,
    )
    .map_err(|e| err(format!("split {}: {e}", a.io.cert.display())))?;
    let json = DeviceImageJson::from_image(&image, &def);
    serde_json::to_writer_pretty(&mut *out, &json)?;
    writeln!(out).map_err(io_err)
}

fn scratch_len(def: &CertDef<'_>) -> Result<usize, CliError> {
    Ok(def
        .max_cert_size()
        .map_err(def_err("definition"))?
        .max(def.template.len())
        + 16)
}

fn cmd_rebuild(a: RebuildArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let buf = load_def(&a.def)?;
    let def = buf.as_def().map_err(def_err("definition"))?;
    let json = DeviceImageJson::load(&a.device_image)?;
    let image = Box::new(json.to_image()?);
    let ca_key = a
        .ca_public_key
        .as_deref()
        .map(|s| parse_public_key(s, "--ca-public-key"))
        .transpose()?;
    check_image(&def, &image)?;
    let mut cert = vec![0u8; scratch_len(&def)?];
    let n = rebuild(&def, &*image, ca_key.as_ref(), &mut cert).map_err(def_err("rebuild"))?;
    let der = cert.get(..n).ok_or_else(|| err("rebuild: bad length"))?;
    if a.der {
        out.write_all(der).map_err(io_err)
    } else {
        out.write_all(ca::der_to_pem(der).as_bytes())
            .map_err(io_err)
    }
}

/// Names the image entry a rebuild would stumble on: a missing GenKey public key, or a
/// compressed certificate that does not decode.
fn check_image(def: &CertDef<'_>, image: &DeviceImage) -> Result<(), CliError> {
    for l in [&def.public_key_dev_loc, &def.comp_cert_dev_loc] {
        if l.is_present() && l.is_genkey && image.read(l).is_none() {
            return Err(err(format!(
                "rebuild: the device image has no public key for GenKey slot {} (public_keys.{})",
                l.slot, l.slot
            )));
        }
    }
    let l = &def.comp_cert_dev_loc;
    if l.is_present()
        && let Some(bytes) = image.read(l)
    {
        CompressedCert::from_slice(bytes).map_err(|e| {
            err(format!(
                "rebuild: the compressed certificate at {} is not valid: {e}",
                DevLocSummary::from(*l)
            ))
        })?;
    }
    Ok(())
}

fn cmd_pack(a: PackArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut defs = Vec::new();
    for spec in &a.defs {
        defs.extend(load_defs(spec)?);
    }
    let root = match (&a.root_public_key, &a.ca_dir) {
        (Some(k), _) => Some(parse_public_key(k, "--root-public-key")?),
        (None, Some(dir)) => Some(CaCerts::load(dir)?.root_public_key()?),
        (None, None) => None,
    };
    let blob = pack(&defs, root.as_ref())?;
    let n = blob.len();
    let parsed = DefBlob::parse_validated(&blob).map_err(def_err("pack: the written blob"))?;
    std::fs::write(&a.output, &blob).map_err(write_err(&a.output))?;
    let summary = BlobSummary::of(&parsed)?;
    writeln!(out, "blob: {}", a.output.display()).map_err(io_err)?;
    writeln!(out, "size: {n}").map_err(io_err)?;
    writeln!(out, "blob_id: {}", summary.blob_id).map_err(io_err)?;
    writeln!(out, "digest: {}", summary.digest).map_err(io_err)?;
    for d in &summary.definitions {
        writeln!(
            out,
            "definition: {} ({})",
            d.name,
            d.role.as_deref().unwrap_or("-")
        )
        .map_err(io_err)?;
    }
    Ok(())
}

/// JSON / text summary of a location in the certificate.
#[derive(Debug, Serialize)]
struct LocSummary {
    offset: u16,
    count: u16,
}

impl From<CertLoc> for LocSummary {
    fn from(l: CertLoc) -> Self {
        LocSummary {
            offset: l.offset,
            count: l.count,
        }
    }
}

#[derive(Debug, Serialize)]
struct DevLocSummary {
    zone: &'static str,
    slot: u16,
    is_genkey: bool,
    offset: u16,
    count: u16,
}

impl From<DeviceLoc> for DevLocSummary {
    fn from(l: DeviceLoc) -> Self {
        DevLocSummary {
            zone: l.zone.c_name(),
            slot: l.slot,
            is_genkey: l.is_genkey,
            offset: l.offset,
            count: l.count,
        }
    }
}

impl std::fmt::Display for DevLocSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.zone {
            "DEVZONE_DATA" if self.is_genkey => write!(f, "GenKey slot {}", self.slot)?,
            "DEVZONE_DATA" => write!(f, "slot {}", self.slot)?,
            z => f.write_str(
                z.trim_start_matches("DEVZONE_")
                    .to_ascii_lowercase()
                    .as_str(),
            )?,
        }
        write!(
            f,
            " bytes {}..{}",
            self.offset,
            self.offset as usize + self.count as usize
        )
    }
}

#[derive(Debug, Serialize)]
struct ElementSummary {
    id: String,
    device_loc: DevLocSummary,
    cert_loc: LocSummary,
    transforms: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct DefSummary {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(rename = "type")]
    cert_type: &'static str,
    template_id: u8,
    chain_id: u8,
    private_key_slot: u16,
    sn_source: &'static str,
    issue_date_format: &'static str,
    expire_date_format: &'static str,
    expire_years: u8,
    template_size: usize,
    max_cert_size: usize,
    tbs_cert_loc: LocSummary,
    std_cert_elements: BTreeMap<&'static str, LocSummary>,
    public_key_dev_loc: Option<DevLocSummary>,
    comp_cert_dev_loc: Option<DevLocSummary>,
    cert_sn_dev_loc: Option<DevLocSummary>,
    cert_elements: Vec<ElementSummary>,
    read_plan: Vec<DevLocSummary>,
    ca_cert_def: Option<String>,
}

fn present(l: DeviceLoc) -> Option<DevLocSummary> {
    l.is_present().then(|| l.into())
}

impl DefSummary {
    fn of(def: &CertDef<'_>, role: Option<Role>) -> Result<Self, CliError> {
        let std_cert_elements = StdElement::ALL
            .iter()
            .filter(|e| def.std_loc(**e).is_present())
            .map(|e| (e.json_name(), def.std_loc(*e).into()))
            .collect();
        let cert_elements = def
            .cert_elements
            .iter()
            .map(|e| ElementSummary {
                id: e.id.as_str().to_string(),
                device_loc: e.device_loc.into(),
                cert_loc: e.cert_loc.into(),
                transforms: e
                    .transforms
                    .iter()
                    .filter(|t| **t != Transform::None)
                    .map(|t| t.c_name())
                    .collect(),
            })
            .collect();
        let plan =
            read_plan(def, keystamp_certdef::rebuild::BLOCK_SIZE).map_err(def_err("read plan"))?;
        Ok(DefSummary {
            name: def.name.as_str().to_string(),
            role: role.map(|r| format!("{r:?}").to_ascii_lowercase()),
            cert_type: def.cert_type.c_name(),
            template_id: def.template_id,
            chain_id: def.chain_id,
            private_key_slot: def.private_key_slot,
            sn_source: def.sn_source.c_name(),
            issue_date_format: def.issue_date_format.c_name(),
            expire_date_format: def.expire_date_format.c_name(),
            expire_years: def.expire_years,
            template_size: def.template.len(),
            max_cert_size: def.max_cert_size().map_err(def_err("definition"))?,
            tbs_cert_loc: def.tbs_cert_loc.into(),
            std_cert_elements,
            public_key_dev_loc: present(def.public_key_dev_loc),
            comp_cert_dev_loc: present(def.comp_cert_dev_loc),
            cert_sn_dev_loc: present(def.cert_sn_dev_loc),
            cert_elements,
            read_plan: plan.iter().map(|l| (*l).into()).collect(),
            ca_cert_def: def.ca_cert_def.map(|n| n.as_str().to_string()),
        })
    }

    fn print(&self, p: &str, out: &mut String) {
        let _ = (|| -> std::fmt::Result {
            writeln!(out, "{p}.name: {}", self.name)?;
            if let Some(r) = &self.role {
                writeln!(out, "{p}.role: {r}")?;
            }
            writeln!(out, "{p}.type: {}", self.cert_type)?;
            writeln!(out, "{p}.template_id: {}", self.template_id)?;
            writeln!(out, "{p}.chain_id: {}", self.chain_id)?;
            writeln!(out, "{p}.sn_source: {}", self.sn_source)?;
            writeln!(out, "{p}.issue_date_format: {}", self.issue_date_format)?;
            writeln!(out, "{p}.expire_date_format: {}", self.expire_date_format)?;
            let years = match self.expire_years {
                0 => "0 (no expiration)".to_string(),
                y => y.to_string(),
            };
            writeln!(out, "{p}.expire_years: {years}")?;
            writeln!(out, "{p}.template_size: {}", self.template_size)?;
            writeln!(out, "{p}.max_cert_size: {}", self.max_cert_size)?;
            let l = &self.tbs_cert_loc;
            writeln!(out, "{p}.tbs_cert_loc: {} +{}", l.offset, l.count)?;
            for e in StdElement::ALL {
                if let Some(l) = self.std_cert_elements.get(e.json_name()) {
                    writeln!(out, "{p}.{}: {} +{}", e.json_name(), l.offset, l.count)?;
                }
            }
            for (k, v) in [
                ("public_key_dev_loc", &self.public_key_dev_loc),
                ("comp_cert_dev_loc", &self.comp_cert_dev_loc),
                ("cert_sn_dev_loc", &self.cert_sn_dev_loc),
            ] {
                if let Some(v) = v {
                    writeln!(out, "{p}.{k}: {v}")?;
                }
            }
            writeln!(out, "{p}.private_key_slot: {}", self.private_key_slot)?;
            for e in &self.cert_elements {
                writeln!(
                    out,
                    "{p}.element.{}: {} -> cert {} +{} [{}]",
                    e.id,
                    e.device_loc,
                    e.cert_loc.offset,
                    e.cert_loc.count,
                    e.transforms.join(", ")
                )?;
            }
            for l in &self.read_plan {
                writeln!(out, "{p}.read: {l}")?;
            }
            if let Some(ca) = &self.ca_cert_def {
                writeln!(out, "{p}.ca_cert_def: {ca}")?;
            }
            Ok(())
        })();
    }
}

#[derive(Debug, Serialize)]
struct BlobSummary {
    format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<usize>,
    #[serde(skip_serializing_if = "String::is_empty")]
    blob_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    root_public_key: Option<String>,
    definitions: Vec<DefSummary>,
}

impl BlobSummary {
    fn of(blob: &DefBlob<'_>) -> Result<Self, CliError> {
        Ok(BlobSummary {
            format: "blob",
            version: Some(keystamp_certdef::blob::BLOB_VERSION),
            size: Some(blob.as_bytes().len()),
            blob_id: hex::encode(blob.blob_id()),
            digest: hex::encode(blob.digest()),
            root_public_key: blob.root_public_key().map(hex::encode),
            definitions: blob
                .defs()
                .map(|(r, d)| DefSummary::of(&d, Some(r)))
                .collect::<Result<_, _>>()?,
        })
    }
}

fn cmd_show(a: ShowArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path_only = match a.file.rsplit_once('#') {
        Some((p, _)) if !Path::new(&a.file).exists() => p,
        _ => a.file.as_str(),
    };
    let bytes = crate::certdef_io::read(Path::new(path_only))?;
    let summary = if bytes.starts_with(&BLOB_MAGIC) {
        let blob = DefBlob::parse_validated(&bytes).map_err(def_err(&a.file))?;
        BlobSummary::of(&blob)?
    } else {
        let defs = load_defs(&a.file)?;
        BlobSummary {
            format: "json",
            version: None,
            size: None,
            blob_id: String::new(),
            digest: String::new(),
            root_public_key: None,
            definitions: defs
                .iter()
                .map(|d| DefSummary::of(&d.as_def_unchecked(), None))
                .collect::<Result<_, _>>()?,
        }
    };
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &summary)?;
        return writeln!(out).map_err(io_err);
    }
    let mut s = String::new();
    let _ = writeln!(s, "format: {}", summary.format);
    if let (Some(v), Some(n)) = (summary.version, summary.size) {
        let _ = writeln!(s, "version: {v}");
        let _ = writeln!(s, "size: {n}");
        let _ = writeln!(s, "blob_id: {}", summary.blob_id);
        let _ = writeln!(s, "digest: {}", summary.digest);
        let _ = writeln!(
            s,
            "root_public_key: {}",
            summary.root_public_key.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(s, "definitions: {}", summary.definitions.len());
    for (i, d) in summary.definitions.iter().enumerate() {
        d.print(&format!("definition[{i}]"), &mut s);
    }
    out.write_all(s.as_bytes()).map_err(io_err)
}

/// A chip slot number for the command line: the ATECC608 has 16 slots, so 0–15.
fn slot(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(n) if n <= 15 => Ok(n),
        _ => Err("a slot must be a number from 0 to 15 (the ATECC608 has 16 slots)".into()),
    }
}

/// A template or chain id for the command line: 4 bits in the compressed certificate, so 0–15.
fn four_bit_id(text: &str) -> Result<u8, String> {
    match text.trim().parse::<u8>() {
        Ok(n) if n <= 15 => Ok(n),
        _ => Err("must be a number from 0 to 15 (4 bits of the compressed certificate)".into()),
    }
}
