//! Compressed-certificate decoding: any 72 bytes decode to a typed error or to fields that
//! re-encode to exactly the same bytes.
#![no_main]

use keystamp_certdef::CompressedCert;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = CompressedCert::from_slice(data) {
        assert!(c.issue_date.is_valid());
        let b = c.to_bytes().expect("decoded fields re-encode");
        assert_eq!(&b[..], data);
    }
});
