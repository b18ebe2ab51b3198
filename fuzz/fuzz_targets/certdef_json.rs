//! cryptoauthlib-shaped JSON definitions: any text parses to an error or to definitions that
//! survive validation, the blob and a JSON round trip without panicking.
#![no_main]

use keystamp_certdef::{CertDefBuf, DefBlob, Role, parse_defs_json, write_blob};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(defs) = parse_defs_json(text) else {
        return;
    };
    for d in &defs {
        let json = d.to_json();
        let back = CertDefBuf::from_json(&json).expect("our own JSON parses");
        assert_eq!(back.template, d.template);
        if let Ok(def) = d.as_def() {
            let mut blob = vec![0u8; 70_000];
            if let Ok(n) = write_blob(&[(Role::Device, &def)], None, &mut blob) {
                let parsed = DefBlob::parse(&blob[..n]).expect("our own blob parses");
                assert_eq!(parsed.device_def().map(|p| p.template), Some(def.template));
            }
        }
    }
});
