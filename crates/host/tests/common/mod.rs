//! Helpers shared by the tests that run the `keystamp` binary.

use std::path::Path;
use std::process::{Command, Stdio};

/// `keystamp --project DIR` with no passphrase or project from the environment and no stdin
/// (so nothing can prompt).
pub fn keystamp(project: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keystamp"));
    c.arg("--project")
        .arg(project)
        .env_remove("KEYSTAMP_CA_PASSPHRASE")
        .env_remove("KEYSTAMP_PROJECT")
        .stdin(Stdio::null());
    c
}
