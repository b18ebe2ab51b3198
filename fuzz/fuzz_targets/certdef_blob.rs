//! Definition blob parsing: any bytes → `DefBlob::parse` never panics. The target fixes up the
//! trailing SHA-256 when the header's length fits, so the fuzzer gets past the digest check.
#![no_main]

use keystamp_certdef::rebuild::BLOCK_SIZE;
use keystamp_certdef::{DefBlob, read_plan};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

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
        for (_, def) in blob.defs() {
            let _ = read_plan(&def, BLOCK_SIZE);
            let _ = blob.ca_def_of(&def);
            for el in def.cert_elements.iter() {
                let _ = el.id.as_str();
            }
        }
    }
});
