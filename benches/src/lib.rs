//! Support for keystamp's criterion benchmarks (the benches live in `benches/benches/`).

use std::path::PathBuf;

/// The project's shared reference folder (`../shared` beside the repository, or `$KEYSTAMP_SHARED`),
/// if it is present. Benchmarks that need known-answer data skip with a message when it is absent.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KEYSTAMP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    dir.is_dir().then_some(dir)
}

/// User PIN of the benches' throwaway SoftHSM2 token.
pub const SOFTHSM_PIN: &str = "246810";
/// Label of the benches' throwaway SoftHSM2 token.
pub const SOFTHSM_LABEL: &str = "keystamp-bench";

/// Where Debian (any architecture) puts SoftHSM2's PKCS#11 module, if installed.
pub fn softhsm_module() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        candidates.extend(
            entries
                .flatten()
                .map(|e| e.path().join("softhsm/libsofthsm2.so")),
        );
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// A throwaway SoftHSM2 token ([`SOFTHSM_LABEL`], PIN [`SOFTHSM_PIN`]) in `dir`; returns the
/// configuration (the value for SOFTHSM2_CONF) and module paths, or `None` when SoftHSM2 is
/// not installed.
pub fn softhsm_token(dir: &std::path::Path) -> Option<(PathBuf, PathBuf)> {
    let module = softhsm_module()?;
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).ok()?;
    let conf = dir.join("softhsm2.conf");
    let text = format!(
        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
        tokens.display()
    );
    std::fs::write(&conf, text).ok()?;
    let ok = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", SOFTHSM_LABEL])
        .args(["--pin", SOFTHSM_PIN, "--so-pin", "13579111"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some((conf, module))
}
