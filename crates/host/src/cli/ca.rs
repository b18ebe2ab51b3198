//! `keystamp ca show`, `check` and `crl`; the offline root ceremony (`init-root`,
//! `signer-request`, `sign-signer`, `import-signer`) and `import` (bring your own CA).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::CliError;
use super::args::JsonFlag;
use super::init::{ModeArg, starting_profile};
use super::output::{io_err, print_json};
use crate::ops;
use crate::pki::byo::{self, ImportFiles};
use crate::pki::ca::{self, CaCert, CaCerts, CaKey, KeyProtection, Signer};
use crate::pki::ceremony;
use crate::pki::passphrase::read_passphrase;
use crate::project::{PROFILE_FILE, Profile, Project};

/// `keystamp ca ...`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the root and signer certificates: subject, issuer, serial, validity, fingerprints.
    Show(JsonFlag),
    /// Check the CA: the passphrase opens both keys, keys match certificates, signatures verify.
    Check,
    /// Write the signer's CRL: every revoked and superseded device certificate.
    Crl(CrlArgs),
    /// Offline machine: create the root key and certificate only (the offline root ceremony).
    InitRoot(InitRootArgs),
    /// Station: create a fresh signer key and a PKCS#10 request for the offline root to sign.
    SignerRequest(SignerRequestArgs),
    /// Offline machine: check a signer request and issue its signer certificate with the root.
    SignSigner(SignSignerArgs),
    /// Station: install the signer certificate the offline root issued (and the root
    /// certificate) and create the project; the root key never comes to the station.
    ImportSigner(ImportSignerArgs),
    /// Create the project from an existing CA: the company's root certificate, a signer
    /// certificate it issued and the signer's key.
    Import(ImportArgs),
    /// Move the signer into a PKCS#11 token: generate its key there (non-extractable) and have
    /// the root certify it, or `--import` the software key once (non-extractable) keeping the
    /// signer certificate; record `[ca.pkcs11]` in keystamp.toml. PIN: KEYSTAMP_PKCS11_PIN or
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
    /// Import the current software signer key into the token (once; non-extractable and
    /// sensitive there) and keep the signer certificate, instead of a new key certified by
    /// the root (the way when the root is offline and no new signer is wanted).
    #[arg(long)]
    pub import: bool,
}

/// A key in a PKCS#11 token instead of a file (`--module`, `--token`, `--key-label`).
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token vendor's PKCS#11 module (.so): the key is in that token, not in a file.
    #[arg(long, requires = "token")]
    pub module: Option<PathBuf>,
    /// Label of the token.
    #[arg(long, requires = "module")]
    pub token: Option<String>,
    /// Label (CKA_LABEL) of the key pair in the token.
    #[arg(long, requires = "module")]
    pub key_label: Option<String>,
}

impl TokenArgs {
    /// The token configuration, if `--module` was given.
    fn config(self, default_label: &str) -> Option<crate::project::Pkcs11Section> {
        Some(crate::project::Pkcs11Section {
            module: self.module?,
            token: self.token?,
            key_label: self.key_label.unwrap_or_else(|| default_label.into()),
        })
    }
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

/// `keystamp ca init-root`.
#[derive(Debug, Args)]
pub struct InitRootArgs {
    /// Store the root key unencrypted (throwaway tests only).
    #[arg(long, conflicts_with = "module")]
    pub insecure_no_passphrase: bool,
    /// Generate the root key in the offline machine's PKCS#11 token (key label default
    /// `keystamp-root`; PIN: KEYSTAMP_PKCS11_PIN or a prompt) instead of root.key.
    #[command(flatten)]
    pub token: TokenArgs,
    /// Organization (O) of the root subject (default: keystamp.toml's, else the default).
    #[arg(long)]
    pub organization: Option<String>,
}

/// `keystamp ca signer-request`.
#[derive(Debug, Args)]
pub struct SignerRequestArgs {
    /// Where to write the request (PEM).
    #[arg(long)]
    pub out: PathBuf,
    /// Store the signer key unencrypted (development projects only).
    #[arg(long, conflicts_with = "module")]
    pub insecure_no_passphrase: bool,
    /// Generate the signer key in a PKCS#11 token (key label default `keystamp-signer`; PIN:
    /// KEYSTAMP_PKCS11_PIN or a prompt) instead of signer.key; also in a project, to replace
    /// its signer under an offline root.
    #[command(flatten)]
    pub token: TokenArgs,
    /// Organization (O) of the signer subject (default: keystamp.toml's, else the default).
    #[arg(long)]
    pub organization: Option<String>,
}

/// `keystamp ca sign-signer`.
#[derive(Debug, Args)]
pub struct SignSignerArgs {
    /// The station's signer request (PEM).
    pub request: PathBuf,
    /// Where to write the signer certificate (PEM).
    #[arg(long)]
    pub out: PathBuf,
    /// Validity in whole years (default: keystamp.toml's signer_validity_years).
    #[arg(long)]
    pub years: Option<u8>,
}

/// `keystamp ca import-signer`.
#[derive(Debug, Args)]
pub struct ImportSignerArgs {
    /// The signer certificate `ca sign-signer` issued (PEM).
    pub cert: PathBuf,
    /// The root certificate (PEM) from the offline machine.
    #[arg(long)]
    pub root: PathBuf,
    /// Production or development (default: keystamp.toml's, else asked, else development).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
}

/// `keystamp ca import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The company's root certificate (PEM).
    #[arg(long)]
    pub root: PathBuf,
    /// The signer certificate the root issued (PEM).
    #[arg(long)]
    pub signer: PathBuf,
    /// The signer's private key: PKCS#8 PEM, encrypted (its passphrase from
    /// KEYSTAMP_SIGNER_PASSPHRASE or a prompt; it stays the key's passphrase).
    #[arg(long, required_unless_present = "module", conflicts_with = "module")]
    pub signer_key: Option<PathBuf>,
    /// The signer's key is in a PKCS#11 token instead (key label default `keystamp-signer`;
    /// PIN: KEYSTAMP_PKCS11_PIN or a prompt).
    #[command(flatten)]
    pub token: TokenArgs,
    /// Production or development (default: keystamp.toml's, else asked, else development).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Accept and store an unencrypted signer key (development projects only).
    #[arg(long, conflicts_with = "module")]
    pub insecure_no_passphrase: bool,
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
        CaCommand::InitRoot(a) => init_root(dir, a, out),
        CaCommand::SignerRequest(a) => signer_request(dir, a, out),
        CaCommand::SignSigner(a) => sign_signer(dir, &a, out),
        CaCommand::ImportSigner(a) => import_signer(dir, a, out),
        CaCommand::Import(a) => import(dir, a, out),
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
    let how = if args.import {
        ops::pkcs11::ToToken::Import
    } else {
        ops::pkcs11::ToToken::Generate
    };
    let signer = ops::pkcs11::signer_to_token(&project, &cfg, how)?;
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
    let cert = match args.which {
        CaChoice::Signer => {
            ops::pkcs11::signer_verification_cert(&Project::open(dir)?, &args.code)?
        }
        // The offline machine's directory is no project: its keystamp.toml if any, else the
        // defaults, say where the CA is.
        CaChoice::Root => {
            let profile = draft_profile(dir, None)?;
            let ca_dir = profile.resolve(dir, &profile.ca.dir);
            ops::pkcs11::root_verification_cert(&ca_dir, &profile.ca.organization, &args.code)?
        }
    };
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
        root_key: root_key_protection(&project.ca_dir())?,
        signer_key: signer_key_protection(&project)?,
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
    let root_pass = if ca::root_key_present(&ca_dir) {
        ops::project::key_passphrase(&ca_dir, CaKey::Root)?
    } else {
        None
    };
    let root_pass = root_pass.as_deref().map(String::as_str);
    let certs = if project.profile.ca.pkcs11.is_some() {
        // The token's signer: logging in and matching its key to signer.pem is the check.
        ca::check_with(ops::unlock(&project)?, &ca_dir, root_pass)?
    } else {
        let signer_pass = ops::project::key_passphrase(&ca_dir, CaKey::Signer)?;
        ca::check(
            &ca_dir,
            root_pass,
            signer_pass.as_deref().map(String::as_str),
        )?
    };
    let root_protection = root_key_protection(&ca_dir)?;
    let signer_protection = signer_key_protection(&project)?;
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

/// What protects the root key: its file's protection, its token, or `offline` when this
/// machine holds root.pem only.
fn root_key_protection(ca_dir: &Path) -> Result<String, CliError> {
    Ok(
        match ceremony::root_key_place(ca_dir).map_err(ops::OpsError::from)? {
            ceremony::RootKeyPlace::File => ca::key_protection(ca_dir, CaKey::Root)?.to_string(),
            ceremony::RootKeyPlace::Token(p) => token_description(&p),
            ceremony::RootKeyPlace::Offline => OFFLINE.into(),
        },
    )
}

fn token_description(p: &crate::project::Pkcs11Section) -> String {
    format!("PKCS#11 token {:?}, key {:?}", p.token, p.key_label)
}

/// What protects the signer key: its PKCS#11 token, or the key file's protection.
fn signer_key_protection(project: &Project) -> Result<String, CliError> {
    Ok(match &project.profile.ca.pkcs11 {
        Some(p) => token_description(p),
        None => ca::key_protection(&project.ca_dir(), CaKey::Signer)?.to_string(),
    })
}

/// How `ca show` and `ca check` name a root key kept on the offline machine.
const OFFLINE: &str = "offline";

/// The profile of a directory that is not (yet) a project: its keystamp.toml if any, else
/// the defaults; `organization` overrides.
fn draft_profile(dir: &Path, organization: Option<String>) -> Result<Profile, CliError> {
    let mut profile = if dir.join(PROFILE_FILE).exists() {
        Project::read_profile(dir)?
    } else {
        Profile::default()
    };
    if let Some(org) = organization {
        profile.ca.organization = org;
    }
    Ok(profile)
}

/// A new key's protection: a new passphrase for `key` (asked twice, or its variable) unless
/// `insecure`.
fn new_protection(key: CaKey, insecure: bool) -> Result<KeyProtection, CliError> {
    Ok(if insecure {
        KeyProtection::Unencrypted
    } else {
        KeyProtection::Passphrase(read_passphrase(key, true)?)
    })
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, data).map_err(|source| CliError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}

fn init_root(dir: &Path, args: InitRootArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let profile = draft_profile(dir, args.organization)?;
    let ca_dir = profile.resolve(dir, &profile.ca.dir);
    let now = std::time::SystemTime::now();
    // Refused before a passphrase or PIN is asked for.
    ceremony::refuse_existing_root(&ca_dir).map_err(ops::OpsError::from)?;
    let (root, key_line) = match args.token.config("keystamp-root") {
        Some(cfg) => {
            let pin = crate::pki::pkcs11::read_pin().map_err(ops::OpsError::from)?;
            let root = ceremony::init_root_in_token(&ca_dir, &profile.ca, &cfg, &pin, now)
                .map_err(ops::OpsError::from)?;
            (root, token_description(&cfg))
        }
        None => {
            let protection = new_protection(CaKey::Root, args.insecure_no_passphrase)?;
            let root = ceremony::init_root(&ca_dir, &profile.ca, &protection, now)
                .map_err(ops::OpsError::from)?;
            (root, ca_dir.join("root.key").display().to_string())
        }
    };
    let summary = CertSummary::of(&root);
    (|| {
        summary.print("root", out)?;
        writeln!(out, "root.key: {key_line}")?;
        writeln!(out, "root.pem: {}", ca_dir.join("root.pem").display())
    })()
    .map_err(io_err)
}

fn signer_request(
    dir: &Path,
    args: SignerRequestArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let profile = draft_profile(dir, args.organization)?;
    let ca_dir = profile.resolve(dir, &profile.ca.dir);
    let (pem, key_line) = match args.token.config("keystamp-signer") {
        Some(cfg) => {
            let read_pin = crate::pki::pkcs11::read_pin;
            let pem = ceremony::signer_request_in_token(&ca_dir, &profile.ca, &cfg, read_pin)
                .map_err(ops::OpsError::from)?;
            (pem, token_description(&cfg))
        }
        None => {
            let protection = new_protection(CaKey::Signer, args.insecure_no_passphrase)?;
            let pem = ceremony::signer_request(&ca_dir, &profile.ca, &protection)
                .map_err(ops::OpsError::from)?;
            (pem, ca_dir.join("signer.key").display().to_string())
        }
    };
    write_file(&args.out, pem.as_bytes())?;
    (|| {
        writeln!(out, "signer.key: {key_line}")?;
        writeln!(out, "request: {}", args.out.display())
    })()
    .map_err(io_err)
}

fn sign_signer(dir: &Path, args: &SignSignerArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let profile = draft_profile(dir, None)?;
    let ca_dir = profile.resolve(dir, &profile.ca.dir);
    let request = std::fs::read_to_string(&args.request).map_err(|source| ops::OpsError::Io {
        path: args.request.clone(),
        source,
    })?;
    // Check the request before asking for the root passphrase or PIN.
    ceremony::check_request(&request).map_err(ops::OpsError::from)?;
    let root_key = ops::pkcs11::unlock_root_key(&ca_dir, "signing a signer request", || {
        format!(
            "keystamp ca sign-signer {} --out signer.pem",
            args.request.display()
        )
    })?;
    let signer = ceremony::sign_signer(
        &ca_dir,
        &root_key,
        &request,
        args.years.unwrap_or(profile.ca.signer_validity_years),
        std::time::SystemTime::now(),
    )
    .map_err(ops::OpsError::from)?;
    write_file(&args.out, signer.to_pem().as_bytes())?;
    let summary = CertSummary::of(&signer);
    (|| {
        summary.print("signer", out)?;
        writeln!(out, "certificate: {}", args.out.display())
    })()
    .map_err(io_err)
}

fn import_signer(dir: &Path, args: ImportSignerArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let signer = ceremony::read_cert(&args.cert).map_err(ops::OpsError::from)?;
    let root = ceremony::read_cert(&args.root).map_err(ops::OpsError::from)?;
    // A project that made a request in a token is replacing its signer.
    if let Ok(project) = Project::open(dir)
        && project.registry_path().exists()
        && ceremony::pending_token_request(&project.ca_dir())
            .map_err(ops::OpsError::from)?
            .is_some()
    {
        let new = ops::pkcs11::rotate_to_requested_token(&project, &signer, &root)?;
        let cn = ca::common_name(new.cert.tbs_certificate().subject()).unwrap_or_default();
        let key = signer_key_protection(&Project::open(dir)?)?;
        return (|| {
            writeln!(out, "signer: {}", cn.escape_debug())?;
            writeln!(out, "signer.sha256: {}", ca::colon_hex(&new.fingerprint()))?;
            writeln!(out, "signer.key: {key}")
        })()
        .map_err(io_err);
    }
    let (profile, file, _) = starting_profile(dir, None, args.mode)?;
    let ca_dir = profile.resolve(dir, &profile.ca.dir);
    if ceremony::pending_token_request(&ca_dir)
        .map_err(ops::OpsError::from)?
        .is_some()
    {
        let project =
            ops::pkcs11::import_requested_token_signer(dir, &profile, file, &signer, &root)?;
        return print_created(&project, out);
    }
    let encrypted = ca::key_encrypted(&ca_dir, CaKey::Signer)?;
    let pass = ops::project::key_passphrase(&ca_dir, CaKey::Signer)?;
    let pass = pass.as_deref().map(String::as_str);
    let project = ops::create_project_with(dir, &profile, encrypted, file, |ca_dir, _| {
        ceremony::import_signer(ca_dir, &signer, &root, pass)?;
        Ok(Signer::unlock(ca_dir, pass)?)
    })?;
    print_created(&project, out)
}

fn import(dir: &Path, args: ImportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (profile, file, _) = starting_profile(dir, None, args.mode)?;
    if let Some(cfg) = args.token.config("keystamp-signer") {
        let root = ceremony::read_cert(&args.root).map_err(ops::OpsError::from)?;
        let signer = ceremony::read_cert(&args.signer).map_err(ops::OpsError::from)?;
        let (project, extractable) =
            ops::pkcs11::import_ca_with_token(dir, &profile, file, &cfg, &root, &signer)?;
        print_created(&project, out)?;
        if extractable != Some(false) {
            writeln!(
                out,
                "warning: the token does not mark key {:?} non-extractable and sensitive: \
                 anyone with the PIN may be able to export it",
                cfg.key_label
            )
            .map_err(io_err)?;
        }
        return Ok(());
    }
    let Some(signer_key) = args.signer_key else {
        return Err(CliError::Invalid(
            "give the signer key: --signer-key KEY.pem, or --module/--token/--key-label".into(),
        ));
    };
    let key_text = std::fs::read_to_string(&signer_key).map_err(|source| ops::OpsError::Io {
        path: signer_key.clone(),
        source,
    })?;
    // An encrypted key keeps its passphrase; a plain one is accepted only when asked for.
    let protection = if key_text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        KeyProtection::Passphrase(read_passphrase(CaKey::Signer, false)?)
    } else if args.insecure_no_passphrase {
        KeyProtection::Unencrypted
    } else {
        return Err(CliError::Invalid(format!(
            "{} is not encrypted: encrypt it (openssl pkcs8 -topk8 -scrypt) or pass \
             --insecure-no-passphrase (development only)",
            signer_key.display()
        )));
    };
    let encrypted = protection.passphrase().is_some();
    let files = ImportFiles {
        root: &args.root,
        signer: &args.signer,
        signer_key: &signer_key,
    };
    let project = ops::create_project_with(dir, &profile, encrypted, file, |ca_dir, _| {
        byo::import(ca_dir, files, protection.passphrase(), &protection)?;
        Ok(Signer::unlock(ca_dir, protection.passphrase())?)
    })?;
    print_created(&project, out)
}

/// What `import-signer` and `import` made.
fn print_created(project: &Project, out: &mut dyn Write) -> Result<(), CliError> {
    let certs = CaCerts::load(&project.ca_dir())?;
    (|| {
        writeln!(out, "project: {}", project.dir.display())?;
        writeln!(out, "mode: {}", project.profile.mode)?;
        writeln!(out, "ca: {}", project.ca_dir().display())?;
        writeln!(out, "root.key: {OFFLINE}")?;
        writeln!(
            out,
            "root.sha256: {}",
            ca::colon_hex(&certs.root.fingerprint())
        )?;
        writeln!(
            out,
            "signer.sha256: {}",
            ca::colon_hex(&certs.signer.fingerprint())
        )?;
        writeln!(out, "registry: {}", project.registry_path().display())
    })()
    .map_err(io_err)
}
