//! `keystamp ca show` and `keystamp ca check`.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;
use serde::Serialize;

use super::CliError;
use super::args::JsonFlag;
use super::output::{io_err, print_json};
use crate::pki::ca::{self, CaCert, CaCerts};
use crate::pki::passphrase::read_passphrase;
use crate::project::Project;

/// `keystamp ca ...`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the root and signer certificates: subject, issuer, serial, validity, fingerprints.
    Show(JsonFlag),
    /// Check the CA: the passphrase opens both keys, keys match certificates, signatures verify.
    Check,
}

/// Runs one `ca` command.
pub fn run(dir: &Path, cmd: CaCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        CaCommand::Show(f) => ca_show(dir, f.json, out),
        CaCommand::Check => ca_check(dir, out),
    }
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
        Some(read_passphrase(false)?)
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
