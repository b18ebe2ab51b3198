//! `keystamp init`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::io::IsTerminal;

use clap::{Args, ValueEnum};

use super::CliError;
use super::output::io_err;
use crate::ops::{ProfileFile, create_project};
use crate::pki::ca::{self, CaCerts, CaKey, CaProtection, KeyProtection};
use crate::pki::passphrase::read_passphrase;
use crate::project::{Mode, PROFILE_FILE, Profile, Project, ProjectError};

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
    /// Production or development (default: asked on a terminal, else development).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Real chips in open lots only, encrypted CA keys.
    Production,
    /// Simulated chips and unencrypted keys allowed; certificates marked development.
    Development,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Production => Mode::Production,
            ModeArg::Development => Mode::Development,
        }
    }
}

/// The mode from `--mode`, or asked on a terminal, or development; `true` when it defaulted
/// (the output then says so).
fn choose_mode(arg: Option<ModeArg>) -> Result<(Mode, bool), CliError> {
    if let Some(m) = arg {
        return Ok((m.into(), false));
    }
    if !std::io::stdin().is_terminal() {
        return Ok((Mode::Development, true));
    }
    loop {
        eprint!("Mode for this project, production or development? [development] ");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(CliError::Output)?;
        match line.trim().to_ascii_lowercase().as_str() {
            "" | "development" | "d" => return Ok((Mode::Development, false)),
            "production" | "p" => return Ok((Mode::Production, false)),
            _ => eprintln!("answer production or development"),
        }
    }
}

/// The profile a new project starts from: the operator's `keystamp.toml` when there is one
/// (refused if it is a project already), else the defaults; `--organization` and `--mode`
/// applied. Also says which profile file to write and whether the mode defaulted.
pub(crate) fn starting_profile(
    dir: &Path,
    organization: Option<String>,
    mode: Option<ModeArg>,
) -> Result<(Profile, ProfileFile, bool), CliError> {
    // Check for an existing project before asking for a passphrase.
    let profile_path = dir.join(PROFILE_FILE);
    let (mut profile, file) = if profile_path.exists() {
        let profile = Project::read_profile(dir)?;
        let certs = &profile.certificates;
        if certs.device_def.is_some()
            || certs.signer_def.is_some()
            || profile.resolve(dir, &profile.registry.path).exists()
        {
            return Err(ProjectError::AlreadyAProject(profile_path).into());
        }
        (profile, ProfileFile::Existing)
    } else {
        (Profile::default(), ProfileFile::New)
    };
    if let Some(org) = organization {
        profile.ca.organization = org;
    }
    profile.validate(dir)?;
    // An operator's keystamp.toml that names its mode keeps it unless --mode overrides.
    let (mode, defaulted) = match (mode, file) {
        (None, ProfileFile::Existing) => (profile.mode, false),
        (m, _) => choose_mode(m)?,
    };
    profile.mode = mode;
    Ok((profile, file, defaulted))
}

/// Runs `keystamp init`.
///
/// A `keystamp.toml` the operator wrote before `init` is the profile to create the project
/// with (its `[ca]` keys name the CA, its `[certificates]` keys shape the definitions); `init`
/// adds the generated definitions to it. A directory whose profile already names definitions,
/// or that has a registry, is a project already and is left alone.
pub fn init(project_flag: &Path, args: InitArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = args.dir.unwrap_or_else(|| project_flag.to_path_buf());
    let (profile, file, defaulted) = starting_profile(&dir, args.organization, args.mode)?;
    if profile.mode == Mode::Production && args.insecure_no_passphrase {
        return Err(CliError::Invalid(
            "a production project refuses --insecure-no-passphrase: its CA keys must be \
             encrypted"
                .into(),
        ));
    }
    let protection = if args.insecure_no_passphrase {
        CaProtection::from(&KeyProtection::Unencrypted)
    } else {
        let root = read_passphrase(CaKey::Root, true)?;
        let signer = read_passphrase(CaKey::Signer, true)?;
        if *root == *signer {
            // Allowed (one variable for both still works), but whoever may sign devices can
            // then also issue signers.
            eprintln!(
                "keystamp: note: the root and signer keys get the same passphrase; give the \
                 root its own to keep it from the stations' operators"
            );
        }
        CaProtection {
            root: KeyProtection::Passphrase(root),
            signer: KeyProtection::Passphrase(signer),
        }
    };
    // CA, certificate definitions generated from it, profile naming them, registry.
    let project = create_project(&dir, &profile, &protection, file)?;
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
        if defaulted {
            w(
                out,
                "mode",
                &"development (no --mode and no terminal to ask; use --mode production for \
                  real devices)",
            )?;
        } else {
            w(out, "mode", &project.profile.mode)?;
        }
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
