//! A SoftHSM2 token of the test's own, in a temporary directory (SOFTHSM2_CONF points at a
//! configuration whose token directory is inside it), removed with the directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The token's label, user PIN and security-officer PIN.
pub const LABEL: &str = "keystamp-test";
/// User PIN of the test token.
pub const PIN: &str = "246810";
const SO_PIN: &str = "13579111";

/// A fresh, initialized SoftHSM2 token.
pub struct SoftHsm {
    /// Holds the configuration and the token directory.
    pub dir: tempfile::TempDir,
    /// The configuration file (the value for SOFTHSM2_CONF).
    pub conf: PathBuf,
    /// The PKCS#11 module.
    pub module: PathBuf,
}

/// Where Debian (any architecture) and source builds put the module.
fn module_path() -> Option<PathBuf> {
    let mut candidates = vec![
        PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        PathBuf::from("/usr/local/lib/softhsm/libsofthsm2.so"),
    ];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        for e in entries.flatten() {
            candidates.push(e.path().join("softhsm/libsofthsm2.so"));
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

impl SoftHsm {
    /// A new token, or `None` (with the reason printed) when SoftHSM2 is not installed.
    pub fn new(what: &str) -> Option<Self> {
        let Some(module) = module_path() else {
            eprintln!("SKIP {what}: SoftHSM2 not installed (apt-get install softhsm2)");
            return None;
        };
        let util_runs = Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_ok();
        if !util_runs {
            eprintln!("SKIP {what}: softhsm2-util not on PATH");
            return None;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("conf");
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", LABEL])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .output()
            .expect("softhsm2-util");
        assert!(
            out.status.success(),
            "init token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Self { dir, conf, module })
    }

    /// The module path as text (for `--module`).
    pub fn module_arg(&self) -> &str {
        self.module.to_str().expect("utf-8 module path")
    }

    /// The configuration path.
    pub fn conf(&self) -> &Path {
        &self.conf
    }
}
