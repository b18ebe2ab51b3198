//! Links esp-hal's linker scripts and prepares the optional compiled-in default blob.

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    // esp-hal ships the linker scripts; linkall.x is the one an application names.
    println!("cargo:rustc-link-arg=-Tlinkall.x");

    // KEYSTAMP_DEFAULT_BLOB=<file>: a certificate-definition blob (as written by the host's
    // `keystamp` tool) that the firmware stores into an empty `keystamp` partition on first boot.
    // Unset: no default blob; the device reports none until the host provisions one.
    println!("cargo:rerun-if-env-changed=KEYSTAMP_DEFAULT_BLOB");
    let blob = match env::var_os("KEYSTAMP_DEFAULT_BLOB").filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            let blob = fs::read(&path)
                .unwrap_or_else(|e| panic!("KEYSTAMP_DEFAULT_BLOB={}: {e}", path.display()));
            // The same check the agent applies when it loads a stored blob, so a bad file fails
            // the build instead of being ignored on the device.
            if let Err(e) = keystamp_agent::definitions_of(&blob) {
                panic!(
                    "KEYSTAMP_DEFAULT_BLOB={} is not a usable definition blob: {e:?}",
                    path.display()
                );
            }
            blob
        }
        None => Vec::new(),
    };
    // KEYSTAMP_DEFAULT_BLOB_SIGNATURE=<file>: the signer's 64-byte signature (R ‖ S) of that
    // blob (docs/certdef-format.md, "Signed blob"). Without it the default blob is stored
    // unsigned and the device reports it untrusted instead of using it.
    println!("cargo:rerun-if-env-changed=KEYSTAMP_DEFAULT_BLOB_SIGNATURE");
    let signature = match env::var_os("KEYSTAMP_DEFAULT_BLOB_SIGNATURE").filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            let sig = fs::read(&path).unwrap_or_else(|e| {
                panic!("KEYSTAMP_DEFAULT_BLOB_SIGNATURE={}: {e}", path.display())
            });
            assert!(
                sig.len() == 64,
                "KEYSTAMP_DEFAULT_BLOB_SIGNATURE={} must hold 64 bytes (R ‖ S)",
                path.display()
            );
            sig
        }
        None => vec![0u8; 64],
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("default_blob.bin"), blob).expect("write OUT_DIR/default_blob.bin");
    fs::write(out.join("default_blob.sig"), signature).expect("write OUT_DIR/default_blob.sig");
}
