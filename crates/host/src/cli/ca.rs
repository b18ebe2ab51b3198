//! `keystamp ca show`, `keystamp ca check` and `keystamp ca crl`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::CliError;
use super::args::JsonFlag;
use super::output::{io_err, print_json};
use crate::ops;
use crate::pki::ca::{self, CaCert, CaCerts, CaKey};
use crate::project::Project;

/// `keystamp ca ...`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the root and signer certificates: subject, issuer, serial, validity, fingerprints.
    Show(JsonFlag),
    /// Check the CA: the passphrase opens both keys, keys match certificates, signatures verify.
    Check,
    /// Write the signer's CRL: every revoked and superseded device certificate.
    Crl(CrlArgs),
    /// Move the signer into a PKCS#11 token: generate its key there (non-extractable), have the
    /// root certify it, and record `[ca.pkcs11]` in keystamp.toml. PIN: KEYSTAMP_PKCS11_PIN or
    /// a prompt.
    SignerToToken(SignerToTokenArgs),
    /// Write a verification certificate (cloud proof of possession): subject CN = the code
    /// Azure DPS / IoT Hub or AWS IoT gave, signed by the chosen CA key.
    VerificationCert(VerificationCertArgs),
}

/// `keystamp ca signer-to-token`.
#[derive(Debug, Args)]
pub struct SignerToTokenArgs {
    /// The token vendor's PKCS#11 module (.so).
    #[arg(long)]
    pub module: PathBuf,
    /// Label of the token.
    #[arg(long)]
    pub token: String,
    /// Label for the new signer key pair in the token.
    #[arg(long, default_value = "keystamp-signer")]
    pub key_label: String,
}

/// Which CA key signs a verification certificate.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CaChoice {
    /// The root.
    Root,
    /// The signer.
    Signer,
}

/// `keystamp ca verification-cert`.
#[derive(Debug, Args)]
pub struct VerificationCertArgs {
    /// The verification (Azure) or registration (AWS) code.
    #[arg(long)]
    pub code: String,
    /// Which CA to prove possession of.
    #[arg(long = "ca", value_enum, default_value = "signer")]
    pub which: CaChoice,
    /// Write the PEM certificate to this file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `keystamp ca crl`.
#[derive(Debug, Args)]
pub struct CrlArgs {
    /// Write the CRL to this file (default: PEM on standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Days until nextUpdate (1 to 366).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// DER instead of PEM (only with --out).
    #[arg(long, requires = "out")]
    pub der: bool,
}

/// Runs one `ca` command.
pub fn run(dir: &Path, cmd: CaCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        CaCommand::Show(f) => ca_show(dir, f.json, out),
        CaCommand::Check => ca_check(dir, out),
        CaCommand::Crl(a) => ca_crl(dir, &a, out),
        CaCommand::SignerToToken(a) => ca_signer_to_token(dir, a, out),
        CaCommand::VerificationCert(a) => ca_verification_cert(dir, &a, out),
    }
}

fn ca_signer_to_token(
    dir: &Path,
    args: SignerToTokenArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let project = Project::open(dir)?;
    let cfg = crate::project::Pkcs11Section {
        module: args.module,
        token: args.token,
        key_label: args.key_label,
    };
    let signer = ops::pkcs11::signer_to_token(&project, &cfg)?;
    let cn = ca::common_name(signer.cert.tbs_certificate().subject()).unwrap_or_default();
    (|| {
        writeln!(out, "signer: {}", cn.escape_debug())?;
        writeln!(
            out,
            "signer.sha256: {}",
            ca::colon_hex(&signer.fingerprint())
        )?;
        writeln!(
            out,
            "the old software key is {}: destroy it once the token works",
            project.ca_dir().join(ca::RETIRED_SIGNER_KEY).display()
        )
    })()
    .map_err(io_err)
}

fn ca_verification_cert(
    dir: &Path,
    args: &VerificationCertArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let project = Project::open(dir)?;
    let which = match args.which {
        CaChoice::Root => ops::pkcs11::VerificationCa::Root,
        CaChoice::Signer => ops::pkcs11::VerificationCa::Signer,
    };
    let cert = ops::pkcs11::verification_cert(&project, which, &args.code)?;
    let pem = cert.to_pem();
    let Some(path) = &args.out else {
        return out.write_all(pem.as_bytes()).map_err(io_err);
    };
    std::fs::write(path, pem).map_err(|source| ops::OpsError::Io {
        path: path.clone(),
        source,
    })?;
    writeln!(out, "verification certificate: {}", path.display()).map_err(io_err)
}

fn ca_crl(dir: &Path, args: &CrlArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let project = Project::open(dir)?;
    let mut registry = ops::open_registry_for_update(&project)?;
    let signer = ops::unlock(&project)?;
    let issued = ops::revocation::issue_crl(
        &mut registry,
        &signer,
        args.days,
        std::time::SystemTime::now(),
    )?;
    let pem = issued.crl.to_pem().map_err(ops::OpsError::from)?;
    let Some(path) = &args.out else {
        return out.write_all(pem.as_bytes()).map_err(io_err);
    };
    let bytes = if args.der {
        issued.crl.der.clone()
    } else {
        pem.into_bytes()
    };
    std::fs::write(path, bytes).map_err(|source| ops::OpsError::Io {
        path: path.clone(),
        source,
    })?;
    let time = |t| {
        der::DateTime::from_system_time(t)
            .map(|d| d.to_string())
            .unwrap_or_default()
    };
    (|| {
        writeln!(out, "crl: {}", path.display())?;
        writeln!(out, "number: {}", issued.number)?;
        writeln!(out, "entries: {}", issued.entries)?;
        writeln!(out, "this_update: {}", time(issued.this_update))?;
        writeln!(out, "next_update: {}", time(issued.next_update))?;
        writeln!(
            out,
            "sha256: {}",
            ca::colon_hex(&ca::sha256(&issued.crl.der))
        )
    })()
    .map_err(io_err)
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
    root_key: String,
    signer_key: String,
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
        root_key: ca::key_protection(&project.ca_dir(), CaKey::Root)?.to_string(),
        signer_key: match &project.profile.ca.pkcs11 {
            Some(p) => format!("PKCS#11 token {:?}, key {:?}", p.token, p.key_label),
            None => ca::key_protection(&project.ca_dir(), CaKey::Signer)?.to_string(),
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
        writeln!(out, "root.key: {}", show.root_key)?;
        writeln!(out, "signer.key: {}", show.signer_key)?;
        writeln!(out, "ca: {}", show.ca_dir)
    })()
    .map_err(io_err)
}

fn ca_check(dir: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let project = Project::open(dir)?;
    let ca_dir = project.ca_dir();
    let root_pass = ops::project::key_passphrase(&ca_dir, CaKey::Root)?;
    let root_pass = root_pass.as_deref().map(String::as_str);
    let (certs, signer_protection) = match &project.profile.ca.pkcs11 {
        // The token's signer: logging in and matching its key to signer.pem is the check.
        Some(p) => (
            ca::check_with(ops::unlock(&project)?, &ca_dir, root_pass)?,
            format!("PKCS#11 token {:?}, key {:?}", p.token, p.key_label),
        ),
        None => {
            let signer_pass = ops::project::key_passphrase(&ca_dir, CaKey::Signer)?;
            let certs = ca::check(
                &ca_dir,
                root_pass,
                signer_pass.as_deref().map(String::as_str),
            )?;
            (
                certs,
                ca::key_protection(&ca_dir, CaKey::Signer)?.to_string(),
            )
        }
    };
    let root_protection = ca::key_protection(&ca_dir, CaKey::Root)?;
    (|| {
        writeln!(out, "root: ok")?;
        writeln!(out, "signer: ok")?;
        writeln!(out, "root.key: {root_protection}")?;
        writeln!(out, "signer.key: {signer_protection}")?;
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
