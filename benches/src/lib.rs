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
