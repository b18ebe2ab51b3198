//! The `keystamp` command line. Results go to stdout (plain `key: value` lines or tables, or JSON
//! with `--json`); errors are one line on stderr, `keystamp: error: ...`, with a non-zero exit.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::ca::{self, CaCert, CaCerts, KeyProtection};
use crate::passphrase::read_passphrase;
use crate::project::{PROFILE_FILE, Profile, Project, ProjectError};
use crate::registry::{
    AuditRecord, CertKind, CertRecord, ChipSerial, DeviceRecord, IssueRequest, Registry,
};

/// keystamp: provision ATECC608 secure elements with per-device certificates.
#[derive(Debug, Parser)]
#[command(name = "keystamp", version, about)]
pub struct Cli {
    /// Project directory (holds keystamp.toml).
    #[arg(
        long,
        short = 'C',
        global = true,
        env = "KEYSTAMP_PROJECT",
        default_value = "."
    )]
    pub project: PathBuf,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a project: keystamp.toml, a CA (root + signer), the registry.
    Init(InitArgs),
    /// The project's certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// The registry of devices and certificates.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Certificate definitions: generate, compress, split, rebuild, pack, show, export as C.
    #[command(subcommand)]
    Certdef(crate::cli_certdef::CertdefCommand),
    /// Provision devices: one station per --port (or --simulate N), in parallel.
    Provision(crate::cli_provision::ProvisionArgs),
    /// Re-read devices' chains, check them against the CA and the registry, challenge the keys.
    Verify(crate::cli_provision::VerifyArgs),
    /// Run simulated devices (the real agent on emulated chips) and print their ports.
    Sim(crate::cli_provision::SimArgs),
    /// Provision N simulated devices in a throwaway demo project, verify them, show the results.
    Demo(crate::cli_provision::DemoArgs),
}

/// `keystamp init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the project in (default: --project, i.e. the current directory).
    pub dir: Option<PathBuf>,
    /// Store the CA keys unencrypted (throwaway and demo projects only).
    #[arg(long)]
    pub insecure_no_passphrase: bool,
    /// Organization (O) for the root and signer subjects.
    #[arg(long)]
    pub organization: Option<String>,
}

/// `keystamp ca ...`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the root and signer certificates: subject, issuer, serial, validity, fingerprints.
    Show(JsonFlag),
    /// Check the CA: the passphrase opens both keys, keys match certificates, signatures verify.
    Check,
}

/// `keystamp registry ...`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// List every device with its current certificate.
    List(JsonFlag),
    /// Show one device (by chip serial) or certificate (by certificate serial).
    Show(ShowArgs),
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
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

/// An error for the user: printed as one line.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

/// Runs the CLI from the process arguments; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match run(cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = stdout.flush();
            // One line, always: collapse anything multi-line a lower layer produced.
            let msg = e.0.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("keystamp: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Init(args) => init(&cli.project, args, out),
        Command::Ca(CaCommand::Show(f)) => ca_show(&cli.project, f.json, out),
        Command::Ca(CaCommand::Check) => ca_check(&cli.project, out),
        Command::Registry(RegistryCommand::List(f)) => registry_list(&cli.project, f.json, out),
        Command::Certdef(c) => crate::cli_certdef::run(c, out),
        Command::Provision(a) => crate::cli_provision::provision(&cli.project, a, out),
        Command::Verify(a) => crate::cli_provision::verify(&cli.project, a, out),
        Command::Sim(a) => crate::cli_provision::sim(&cli.project, a, out),
        Command::Demo(a) => crate::cli_provision::demo(a, out),
        Command::Registry(RegistryCommand::Show(a)) => {
            registry_show(&cli.project, &a.serial, a.json, out)
        }
    }
}

fn io_err(e: std::io::Error) -> CliError {
    CliError(format!("writing output: {e}"))
}

fn init(project_flag: &Path, args: InitArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = args.dir.unwrap_or_else(|| project_flag.to_path_buf());
    let mut profile = Profile::default();
    if let Some(org) = args.organization {
        profile.ca.organization = org;
    }
    profile.validate(&dir)?;
    // Check for an existing project before asking for a passphrase.
    let profile_path = dir.join(PROFILE_FILE);
    if profile_path.exists() {
        return Err(ProjectError::AlreadyAProject(profile_path).into());
    }
    let protection = if args.insecure_no_passphrase {
        KeyProtection::Unencrypted
    } else {
        KeyProtection::Passphrase(read_passphrase(true).map_err(CliError)?)
    };
    // CA, certificate definitions generated from it, profile naming them, registry.
    let project = crate::cli_provision::create_project(&dir, &profile, &protection)?;
    let certs = CaCerts::load(&project.ca_dir())?;
    // Report absolute paths: the operator will copy them into scripts and backups.
    let dir = dir.canonicalize().unwrap_or(dir);
    let profile_path = dir.join(PROFILE_FILE);
    let ca_dir = profile.resolve(&dir, &profile.ca.dir);
    if args.insecure_no_passphrase {
        eprintln!(
            "keystamp: warning: CA keys stored UNENCRYPTED in {} (--insecure-no-passphrase)",
            ca_dir.display()
        );
    }
    let w = |out: &mut dyn Write, k: &str, v: &dyn fmt::Display| writeln!(out, "{k}: {v}");
    (|| {
        w(out, "project", &dir.display())?;
        w(out, "profile", &profile_path.display())?;
        w(out, "ca", &ca_dir.display())?;
        w(
            out,
            "keys",
            &if certs.keys_encrypted {
                "encrypted"
            } else {
                "unencrypted"
            },
        )?;
        w(
            out,
            "root.sha256",
            &ca::colon_hex(&certs.root.fingerprint()),
        )?;
        w(
            out,
            "signer.sha256",
            &ca::colon_hex(&certs.signer.fingerprint()),
        )?;
        w(out, "registry", &project.registry_path().display())?;
        w(out, "devices", &project.output_dir().display())
    })()
    .map_err(io_err)
}

/// Records the signer certificate in the registry (it was issued by the root at `init`).
pub(crate) fn record_signer(registry: &mut Registry, certs: &CaCerts) -> Result<(), CliError> {
    let s = &certs.signer;
    let tbs = s.cert.tbs_certificate();
    let validity = tbs.validity();
    let cn = ca::common_name(tbs.subject()).unwrap_or_default();
    let serial = s.serial();
    let public_key = s.public_key()?;
    let not_before = validity.not_before.to_string();
    let not_after = validity.not_after.to_string();
    let outcome = registry.begin_issue(&IssueRequest {
        kind: CertKind::Signer,
        chip_serial: None,
        serial: &serial,
        public_key: &public_key,
        subject_cn: &cn,
        der: &s.der,
        not_before: &not_before,
        not_after: &not_after,
    })?;
    registry.mark_written(&outcome.record().serial)?;
    Ok(())
}

#[derive(Serialize)]
struct CertSummary {
    subject: String,
    issuer: String,
    serial: String,
    not_before: String,
    not_after: String,
    sha256: String,
}

impl CertSummary {
    fn of(c: &CaCert) -> Self {
        let tbs = c.cert.tbs_certificate();
        Self {
            subject: tbs.subject().to_string(),
            issuer: tbs.issuer().to_string(),
            serial: hex::encode_upper(c.serial()),
            not_before: tbs.validity().not_before.to_string(),
            not_after: tbs.validity().not_after.to_string(),
            sha256: ca::colon_hex(&c.fingerprint()),
        }
    }

    fn print(&self, prefix: &str, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{prefix}.subject: {}", self.subject)?;
        writeln!(out, "{prefix}.issuer: {}", self.issuer)?;
        writeln!(out, "{prefix}.serial: {}", self.serial)?;
        writeln!(out, "{prefix}.not_before: {}", self.not_before)?;
        writeln!(out, "{prefix}.not_after: {}", self.not_after)?;
        writeln!(out, "{prefix}.sha256: {}", self.sha256)
    }
}

#[derive(Serialize)]
struct CaShow {
    root: CertSummary,
    signer: CertSummary,
    signer_id: String,
    keys: &'static str,
    ca_dir: String,
}

fn ca_show(dir: &Path, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let project = Project::open(dir)?;
    let certs = CaCerts::load(&project.ca_dir())?;
    let show = CaShow {
        root: CertSummary::of(&certs.root),
        signer: CertSummary::of(&certs.signer),
        signer_id: hex::encode_upper(certs.signer_id()?),
        keys: if certs.keys_encrypted {
            "encrypted"
        } else {
            "unencrypted"
        },
        ca_dir: project.ca_dir().display().to_string(),
    };
    if json {
        return print_json(&show, out);
    }
    (|| {
        show.root.print("root", out)?;
        show.signer.print("signer", out)?;
        writeln!(out, "signer.id: {}", show.signer_id)?;
        writeln!(out, "keys: {}", show.keys)?;
        writeln!(out, "ca: {}", show.ca_dir)
    })()
    .map_err(io_err)
}

fn ca_check(dir: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let project = Project::open(dir)?;
    let ca_dir = project.ca_dir();
    let passphrase = if ca::keys_encrypted(&ca_dir)? {
        Some(read_passphrase(false).map_err(CliError)?)
    } else {
        None
    };
    let certs = ca::check(&ca_dir, passphrase.as_deref().map(String::as_str))?;
    (|| {
        writeln!(out, "root: ok")?;
        writeln!(out, "signer: ok")?;
        writeln!(
            out,
            "signer.id: {}",
            hex::encode_upper(certs.signer_id().unwrap_or_default())
        )?;
        writeln!(
            out,
            "keys: {}",
            if certs.keys_encrypted {
                "encrypted"
            } else {
                "unencrypted"
            }
        )
    })()
    .map_err(io_err)
}

fn print_json<T: Serialize>(value: &T, out: &mut dyn Write) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out).map_err(io_err)
}

fn open_registry(dir: &Path) -> Result<Registry, CliError> {
    let project = Project::open(dir)?;
    let path = project.registry_path();
    if !path.exists() {
        return Err(CliError(format!(
            "registry {} does not exist: check registry.path in {PROFILE_FILE} \
             (keystamp init creates it)",
            path.display()
        )));
    }
    Ok(Registry::open(&path)?)
}

#[derive(Serialize)]
struct DeviceListing {
    #[serde(flatten)]
    device: DeviceRecord,
    certificate: Option<CertRecord>,
}

fn registry_list(dir: &Path, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let registry = open_registry(dir)?;
    let mut rows = Vec::new();
    for device in registry.devices()? {
        let certificate = registry.live_certificate(device.chip_serial)?;
        rows.push(DeviceListing {
            device,
            certificate,
        });
    }
    if json {
        return print_json(&rows, out);
    }
    (|| {
        writeln!(
            out,
            "{:<18}  {:<11}  {:<24}  {:<32}  {:<10}  UPDATED",
            "CHIP SERIAL", "STATE", "CN", "CERT SERIAL", "STATUS"
        )?;
        for r in &rows {
            let (serial, status) = match &r.certificate {
                Some(c) => (c.serial.as_str(), c.status.as_str()),
                None => ("-", "-"),
            };
            writeln!(
                out,
                "{:<18}  {:<11}  {:<24}  {:<32}  {:<10}  {}",
                r.device.chip_serial,
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
            certificates: certs.iter().map(CertDetail::of).collect(),
            audit: &audit,
        };
        if json {
            return print_json(&detail, out);
        }
        return (|| {
            writeln!(out, "chip_serial: {}", device.chip_serial)?;
            writeln!(out, "state: {}", device.state)?;
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
        return Err(CliError(format!(
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
