//! Device and host state machines: de-duplication, stale frames, versions, retries.

mod support;

use keystamp_wire::*;

fn run_device(dev: &mut DeviceSession, mut input: &[u8]) -> Vec<String> {
    // Executes each request with a counter so double execution is visible.
    let mut out = Vec::new();
    while !input.is_empty() {
        let (used, ev) = dev.feed(input);
        input = &input[used..];
        match ev {
            Some(DeviceEvent::Request { seq, request }) => {
                let resp = match request {
                    Request::Random => Response::Random([seq as u8; 32]),
                    Request::Hello => Response::Hello(support::hello_info()),
                    _ => Response::Ok,
                };
                out.push(format!("exec {seq}"));
                out.push(String::from_utf8(dev.respond(seq, &resp).to_vec()).unwrap());
            }
            Some(DeviceEvent::Send { bytes, reason }) => {
                out.push(format!("{reason:?}"));
                out.push(String::from_utf8(bytes.to_vec()).unwrap());
            }
            Some(DeviceEvent::Ignored { header, reason }) => {
                out.push(format!("ignored {} {reason:?}", header.seq))
            }
            Some(DeviceEvent::Noise { .. }) => out.push("noise".into()),
            None => {}
        }
    }
    out
}

use support::request_line as req;

#[test]
fn retransmitted_request_is_answered_from_cache_not_executed() {
    let mut dev = DeviceSession::new();
    let f = req(&Request::GenKey { slot: 0 }, 10);
    let out = run_device(&mut dev, &[f.clone(), f.clone(), f].concat());
    assert_eq!(out[0], "exec 10");
    assert_eq!(out[2], "Replay");
    assert_eq!(out[3], out[1]);
    assert_eq!(out[4], "Replay");
    assert_eq!(out.len(), 6);
}

#[test]
fn same_seq_different_request_is_executed() {
    let mut dev = DeviceSession::new();
    let a = req(&Request::GenKey { slot: 0 }, 10);
    let b = req(&Request::GenKey { slot: 2 }, 10);
    let out = run_device(&mut dev, &[a, b].concat());
    assert_eq!(out.iter().filter(|l| l.starts_with("exec")).count(), 2);
}

#[test]
fn old_sequence_numbers_are_stale_but_hello_always_runs() {
    let mut dev = DeviceSession::new();
    let input = [
        req(&Request::Random, 100),
        req(&Request::Random, 101),
        req(&Request::Random, 100),
        req(&Request::Hello, 95),
        req(&Request::Random, 96),
    ]
    .concat();
    let out = run_device(&mut dev, &input);
    assert_eq!(out[4], "ignored 100 Stale");
    assert_eq!(out[5], "exec 95");
    assert_eq!(out[7], "exec 96");
}

#[test]
fn wrong_version_gets_version_mismatch_in_our_version() {
    // A v1 Hello (an old host): same envelope, version 1.
    let head = "~K1 Q0009 AA ";
    let line = format!("{head}{:08X}\n", crc32fast::hash(head.as_bytes()));
    let mut dev = DeviceSession::new();
    let out = run_device(&mut dev, line.as_bytes());
    assert_eq!(out[0], "VersionMismatch");
    let mut dec = LineDecoder::new();
    let (frames, _) = support::decode_all(&mut dec, out[1].as_bytes());
    assert_eq!(
        frames[0].0,
        FrameHeader {
            version: 2,
            dir: Dir::Response,
            seq: 9
        }
    );
    match Response::decode(&frames[0].1).unwrap() {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::VersionMismatch { device: 2 }),
        other => panic!("{other:?}"),
    }
}

#[test]
fn undecodable_or_invalid_request_gets_bad_request() {
    let head = "~K2 Q0002 fw ";
    let line = format!("{head}{:08X}\n", crc32fast::hash(head.as_bytes()));
    let mut input = line.into_bytes();
    input.extend(req(&Request::GenKey { slot: 0 }, 3));
    // Bypass the host's validation: encode an out-of-range request directly.
    input.extend(req(&Request::GenKey { slot: 99 }, 4));
    let mut dev = DeviceSession::new();
    let out = run_device(&mut dev, &input);
    assert_eq!(out[0], "BadRequest");
    assert_eq!(out[2], "exec 3");
    assert_eq!(out[4], "BadRequest");
}

#[test]
fn echo_of_own_response_is_ignored() {
    let mut dev = DeviceSession::new();
    let mut buf = [0u8; MAX_LINE + 1];
    let n = Response::Ok.encode(1, &mut buf).unwrap();
    let out = run_device(&mut dev, &buf[..n]);
    assert_eq!(out, vec!["ignored 1 WrongDirection"]);
}

fn host_feed(host: &mut HostSession, mut input: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (used, ev) = host.feed(input);
        input = &input[used..];
        if let Some(ev) = ev {
            out.push(match ev {
                HostEvent::Response { seq, response } => format!("resp {seq} {}", response.name()),
                HostEvent::Failed { seq, error } => format!("failed {seq} {error:?}"),
                HostEvent::Noise { kind, .. } => format!("noise {kind:?}"),
                HostEvent::Ignored { header } => format!("ignored {}", header.seq),
            });
        }
    }
    out
}

#[test]
fn host_times_out_resends_same_bytes_then_gives_up() {
    let policy = RetryPolicy {
        base_timeout_ms: 100,
        baud: 115_200,
        max_attempts: 3,
    };
    let mut host = HostSession::new(policy, 500);
    let first = host.send(&Request::Random, 1_000).unwrap().to_vec();
    assert_eq!(host.send(&Request::Random, 1_000), Err(HostError::Busy));
    // 100 ms slack + 100 ms device hint + (60 + 1025) chars at 115200 baud = 95 ms.
    let timeout = policy.timeout_ms(&Request::Random, first.len());
    assert_eq!(
        timeout,
        100 + 100 + (first.len() as u32 + 1025) * 10_000 / 115_200 + 1
    );
    assert_eq!(
        host.poll(1_000 + u64::from(timeout) - 1),
        Poll::Wait {
            deadline_ms: 1_000 + u64::from(timeout)
        }
    );
    let again = match host.poll(1_000 + u64::from(timeout)) {
        Poll::Resend(b) => b.to_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(again, first);
    assert!(matches!(host.poll(5_000), Poll::Resend(_)));
    assert_eq!(
        host.poll(10_000),
        Poll::GaveUp {
            seq: 500,
            attempts: 3
        }
    );
    assert_eq!(host.poll(10_001), Poll::Idle);
    // The next request gets the next number.
    host.send(&Request::Hello, 10_002).unwrap();
    assert_eq!(host.pending_seq(), Some(501));
}

#[test]
fn host_accepts_only_the_awaited_answer() {
    let mut host = HostSession::new(RetryPolicy::default(), 7);
    let line = host.send(&Request::Random, 0).unwrap().to_vec();
    let mut dev = DeviceSession::new();
    let dev_out = run_device(&mut dev, &line);
    let answer = dev_out[1].as_bytes();
    let mut other = [0u8; MAX_LINE + 1];
    let n = Response::Random([0; 32]).encode(6, &mut other).unwrap();
    let input = [&b"I (5) log\n"[..], &other[..n], &line, answer, answer].concat();
    let out = host_feed(&mut host, &input);
    assert_eq!(
        out,
        vec![
            "noise NotFrame",
            "ignored 6",
            "ignored 7", // echo of our own request
            "resp 7 Random",
            "ignored 7", // duplicate answer after completion
        ]
    );
}

#[test]
fn host_rejects_wrong_answer_type_and_foreign_version() {
    let mut host = HostSession::new(RetryPolicy::default(), 1);
    host.send(&Request::Random, 0).unwrap();
    let mut buf = [0u8; MAX_LINE + 1];
    let n = Response::Ok.encode(1, &mut buf).unwrap();
    assert_eq!(
        host_feed(&mut host, &buf[..n]),
        vec!["failed 1 UnexpectedResponse"]
    );

    host.send(&Request::Random, 0).unwrap();
    let head = "~K3 R0002 AQ ";
    let line = format!("{head}{:08X}\n", crc32fast::hash(head.as_bytes()));
    assert_eq!(
        host_feed(&mut host, line.as_bytes()),
        vec!["failed 2 VersionMismatch { host: 2, device: 3 }"]
    );
}

#[test]
fn host_refuses_invalid_requests_before_sending() {
    let mut host = HostSession::new(RetryPolicy::default(), 1);
    assert_eq!(
        host.send(&Request::LockSlot { slot: 16 }, 0),
        Err(HostError::Invalid(ErrorCode::BadRequest))
    );
    assert_eq!(host.poll(0), Poll::Idle);
}
