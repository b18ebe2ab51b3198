//! The firmware's DER walk for the subject CN (crates/firmware/src/cert_info.rs, plain `core`,
//! included by path because the firmware crate builds only for the ESP32 targets): any input
//! gives `None` or a slice of the input, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/firmware/src/cert_info.rs"]
mod cert_info;

fuzz_target!(|data: &[u8]| {
    if let Some(cn) = cert_info::subject_common_name(data) {
        let start = cn.as_ptr() as usize;
        let base = data.as_ptr() as usize;
        assert!(start >= base && start + cn.len() <= base + data.len());
    }
});
