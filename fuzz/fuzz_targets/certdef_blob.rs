//! Definition blob parsing: any bytes → `DefBlob::parse` never panics. The target fixes up the
//! trailing SHA-256 when the header's length fits, so the fuzzer gets past the digest check.
//! Parsed definitions are not semantically validated on the device, so each one is also
//! rebuilt (from device data taken from the input) exactly as the device would.
#![no_main]

use keystamp_certdef::rebuild::BLOCK_SIZE;
use keystamp_certdef::{DefBlob, DeviceData, DeviceLoc, read_plan, rebuild};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// Device data: every location reads bytes from the fuzz input (wrapping), so any plan works.
struct Pool<'a>(&'a [u8]);

impl DeviceData for Pool<'_> {
    fn read(&self, loc: &DeviceLoc) -> Option<&[u8]> {
        let start = loc.offset as usize % self.0.len().max(1);
        self.0.get(start..start + loc.count as usize)
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = DefBlob::parse(data);
    let mut fixed = data.to_vec();
    if fixed.len() >= 16 {
        let total = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]) as usize;
        if total >= 48 && total <= fixed.len() {
            let d = Sha256::digest(&fixed[..total - 32]);
            fixed[total - 32..total].copy_from_slice(&d);
        }
    }
    if let Ok(blob) = DefBlob::parse(&fixed) {
        let _ = blob.blob_id();
        let _ = blob.validate();
        let mut out = [0u8; 2048];
        for (_, def) in blob.defs() {
            let _ = read_plan(&def, BLOCK_SIZE);
            let _ = rebuild(&def, &Pool(data), blob.root_public_key(), &mut out);
            let _ = blob.ca_def_of(&def);
            for el in def.cert_elements.iter() {
                let _ = el.id.as_str();
            }
        }
    }
});
