//! Device side of keystamp-wire: arbitrary bytes from the host into a `DeviceSession`.
//! Checks: no panic; every accepted frame line is canonical (re-encodes to the same bytes);
//! every request handed out validates and round-trips through postcard; answers encode.
#![no_main]

use keystamp_wire::{DeviceEvent, DeviceSession, MAX_LINE, Response, encode_frame, parse_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Frame level: a line that parses is the one canonical spelling of its contents.
    for line in data.split(|&b| b == b'\n') {
        let mut payload = [0u8; 1024];
        if let Ok(frame) = parse_frame(line, &mut payload) {
            let mut out = [0u8; MAX_LINE + 1];
            let n = encode_frame(frame.header, frame.payload, &mut out).expect("re-encode");
            assert_eq!(&out[..n - 1], line);
        }
    }
    // Session level.
    let mut dev = DeviceSession::new();
    let mut input = data;
    while !input.is_empty() {
        let (used, ev) = dev.feed(input);
        assert!(used > 0 || ev.is_some());
        input = &input[used..];
        if let Some(DeviceEvent::Request { seq, request }) = ev {
            assert!(request.validate().is_ok());
            let mut buf = [0u8; MAX_LINE + 1];
            let n = request
                .encode(seq, &mut buf)
                .expect("valid request encodes");
            assert!(n <= MAX_LINE + 1);
            let bytes = dev.respond(seq, &Response::Ok);
            assert!(bytes.ends_with(b"\n"));
        }
    }
});
