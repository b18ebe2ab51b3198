//! Per-device outputs: `<output dir>/<chip serial>/{device,signer,chain}.pem`.
//!
//! `chain.pem` holds the device certificate followed by the signer certificate — what a device
//! presents in TLS; the root stays with the cloud service (`openssl verify -CAfile root.pem
//! -untrusted chain.pem chain.pem` checks it).

use std::path::{Path, PathBuf};

use crate::pki::ca::der_to_pem;
use crate::registry::ChipSerial;

/// The files written for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOutputs {
    /// The device's directory.
    pub dir: PathBuf,
    /// Device certificate.
    pub device: PathBuf,
    /// Signer certificate.
    pub signer: PathBuf,
    /// Device then signer.
    pub chain: PathBuf,
}

impl DeviceOutputs {
    /// The paths for `chip` under `output_dir` (nothing is written).
    pub fn paths(output_dir: &Path, chip: ChipSerial) -> Self {
        let dir = output_dir.join(chip.to_string());
        Self {
            device: dir.join("device.pem"),
            signer: dir.join("signer.pem"),
            chain: dir.join("chain.pem"),
            dir,
        }
    }
}

/// Writes the PEM files for one device, replacing earlier ones. Each file is written to a
/// temporary name first and renamed, so a reader never sees half a file.
pub fn write_device_outputs(
    output_dir: &Path,
    chip: ChipSerial,
    device_der: &[u8],
    signer_der: &[u8],
) -> std::io::Result<DeviceOutputs> {
    let out = DeviceOutputs::paths(output_dir, chip);
    std::fs::create_dir_all(&out.dir)?;
    let device_pem = der_to_pem(device_der);
    let signer_pem = der_to_pem(signer_der);
    let chain_pem = format!("{device_pem}{signer_pem}");
    for (path, text) in [
        (&out.device, &device_pem),
        (&out.signer, &signer_pem),
        (&out.chain, &chain_pem),
    ] {
        let tmp = path.with_extension("pem.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_three_pem_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let chip = ChipSerial([0x01, 0x23, 0, 0, 0, 0, 0, 0, 0xEE]);
        let out = write_device_outputs(dir.path(), chip, b"dev", b"sig").expect("write");
        assert_eq!(out.dir, dir.path().join("0123000000000000EE"));
        let chain = std::fs::read_to_string(&out.chain).expect("chain");
        assert_eq!(chain.matches("-----BEGIN CERTIFICATE-----").count(), 2);
        // "dev" in base64 is "ZGV2", "sig" is "c2ln"; device first.
        assert!(chain.find("ZGV2").expect("dev") < chain.find("c2ln").expect("sig"));
        assert!(
            std::fs::read_to_string(&out.device)
                .expect("d")
                .contains("ZGV2")
        );
        assert!(
            std::fs::read_to_string(&out.signer)
                .expect("s")
                .contains("c2ln")
        );
    }
}
