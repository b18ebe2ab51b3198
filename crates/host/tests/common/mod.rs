//! Helpers the CLI test files share: the `keystamp` binary with a clean environment, and
//! reading `key: value` output.

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::Path;
use std::process::{Command, Stdio};

/// The keystamp binary on `project`, with no passphrase or project variable inherited and
/// standard input closed (so nothing prompts).
pub fn keystamp(project: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keystamp"));
    c.arg("--project")
        .arg(project)
        .env_remove("KEYSTAMP_CA_PASSPHRASE")
        .env_remove("KEYSTAMP_ROOT_PASSPHRASE")
        .env_remove("KEYSTAMP_SIGNER_PASSPHRASE")
        .env_remove("KEYSTAMP_PROJECT")
        .stdin(Stdio::null());
    c
}

/// The value of the `key: value` line for `key`.
pub fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}
