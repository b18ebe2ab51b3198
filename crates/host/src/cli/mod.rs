//! The `keystamp` command line. Results go to stdout (plain `key: value` lines or tables, or JSON
//! with `--json`); errors are one line on stderr, `keystamp: error: ...`, with a non-zero exit.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod args;
pub mod ca;
pub mod certdef;
pub mod demo;
pub mod error;
pub mod init;
pub mod lot;
pub mod maintain;
pub mod output;
pub mod provision;
pub mod registry;
pub mod sim;
pub mod verify;

pub use error::CliError;

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
    /// The registry for this command instead of keystamp.toml's `[registry]`: a PostgreSQL
    /// URL `postgres://user@host:port/db` (password from PGPASSWORD or ~/.pgpass, never
    /// here) or an SQLite file.
    #[arg(
        long,
        global = true,
        env = "KEYSTAMP_REGISTRY",
        value_name = "URL|PATH"
    )]
    pub registry: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a project: keystamp.toml, a CA (root + signer), the registry.
    Init(init::InitArgs),
    /// The project's certificate authority.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// The registry of devices and certificates.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Lots: which chips (and how many) the project may issue certificates to.
    #[command(subcommand)]
    Lot(lot::LotCommand),
    /// Certificate definitions: generate, compress, split, rebuild, pack, show, export as C.
    #[command(subcommand)]
    Certdef(certdef::CertdefCommand),
    /// Provision devices: one station per --port (or --simulate N), in parallel.
    Provision(provision::ProvisionArgs),
    /// Re-read devices' chains, check them against the CA and the registry, challenge the keys.
    Verify(verify::VerifyArgs),
    /// Authenticated maintenance of a locked device (signer key): status, store the blob again.
    Maintain(maintain::MaintainArgs),
    /// Run simulated devices (the real agent on emulated chips) and print their ports.
    Sim(sim::SimArgs),
    /// Provision N simulated devices in a throwaway demo project, verify them, show the results.
    Demo(demo::DemoArgs),
}

/// Runs the CLI from the process arguments; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match run(cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        // Quiet, with the status a shell gives a process SIGPIPE ends (128 + 13).
        Err(e) if error::is_broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            let _ = stdout.flush();
            eprintln!("keystamp: error: {}", error::one_line(&e));
            match e {
                // 128 + SIGINT, what a shell reports for a process Ctrl-C ended.
                CliError::Interrupted { .. } => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Runs one parsed command, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let project = cli.project.clone();
    let registry = cli.registry.clone();
    let result = crate::project::with_registry(registry.as_deref(), || run_command(cli, out));
    // SQLite's own messages name no file; the project's profile says which one it was.
    result.map_err(|e| match crate::project::Project::open(&project) {
        Ok(p) => e.naming_registry(&p.registry_path()),
        Err(_) => e,
    })
}

fn run_command(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Init(_)
            if cli
                .registry
                .as_deref()
                .is_some_and(crate::registry_url::is_postgres_url) =>
        {
            Err(CliError::Invalid(
                "init creates the project's SQLite registry; move it to PostgreSQL afterwards \
                 with `keystamp registry migrate --registry URL` and `keystamp registry copy \
                 --to URL` (docs/factory-guide.md, \"One line or many\")"
                    .into(),
            ))
        }
        Command::Init(args) => init::init(&cli.project, args, out),
        Command::Ca(c) => ca::run(&cli.project, c, out),
        Command::Registry(c) => registry::run(&cli.project, c, out),
        Command::Lot(c) => lot::run(&cli.project, c, out),
        Command::Certdef(c) => certdef::run(&cli.project, c, out),
        Command::Provision(a) => provision::provision(&cli.project, a, out),
        Command::Verify(a) => verify::verify(&cli.project, a, out),
        Command::Maintain(a) => maintain::maintain(&cli.project, a, out),
        Command::Sim(a) => sim::sim(&cli.project, a, out),
        Command::Demo(a) => demo::demo(a, out),
    }
}
