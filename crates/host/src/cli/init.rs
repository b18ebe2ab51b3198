//! `keystamp init`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use super::output::io_err;
use crate::ops::create_project;
use crate::pki::ca::{self, CaCerts, KeyProtection};
use crate::pki::passphrase::read_passphrase;
use crate::project::{PROFILE_FILE, Profile, ProjectError};

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

/// Runs `keystamp init`.
pub fn init(project_flag: &Path, args: InitArgs, out: &mut dyn Write) -> Result<(), CliError> {
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
        KeyProtection::Passphrase(read_passphrase(true)?)
    };
    // CA, certificate definitions generated from it, profile naming them, registry.
    let project = create_project(&dir, &profile, &protection)?;
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
    if let Some(warning) = ca::KEY_FILE_ACCESS.warning(&ca_dir) {
        eprintln!("keystamp: warning: {warning}");
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
