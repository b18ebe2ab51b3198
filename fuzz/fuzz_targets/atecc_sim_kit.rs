//! Arbitrary kit-protocol lines and state files: the emulator's text parsers must never panic,
//! and every request line gets at most one reply line without a newline in it.
#![no_main]

use keystamp_atecc_sim::kit::KitServer;
use keystamp_atecc_sim::{SimChip, SimOptions, VirtualClock};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keystamp_atecc_sim::state::decode(data);
    let clock = VirtualClock::new();
    let chip = SimChip::new(SimOptions::default().with_seed(0).with_clock(clock.clone()));
    let mut kit = KitServer::for_chip(chip, clock.delay());
    for line in String::from_utf8_lossy(data).split('\n') {
        if let Some(reply) = kit.handle_line(line) {
            assert!(!reply.contains('\n'));
        }
    }
});
