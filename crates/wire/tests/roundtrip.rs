//! Every message survives encode → LineDecoder → decode unchanged.

mod support;

use keystamp_wire::*;
use proptest::prelude::*;
use support::*;

#[test]
fn samples_cover_every_variant() {
    let mut req = [false; REQUEST_VARIANTS];
    for r in sample_requests() {
        req[request_id(&r)] = true;
    }
    assert!(
        req.iter().all(|&b| b),
        "request variant without sample: {req:?}"
    );
    let mut resp = [false; RESPONSE_VARIANTS];
    for r in sample_responses() {
        resp[response_id(&r)] = true;
    }
    assert!(
        resp.iter().all(|&b| b),
        "response variant without sample: {resp:?}"
    );
}

#[test]
fn postcard_variant_index_is_the_documented_id() {
    for r in sample_requests() {
        assert_eq!(
            postcard::to_allocvec(&r).unwrap()[0] as usize,
            request_id(&r)
        );
    }
    for r in sample_responses() {
        assert_eq!(
            postcard::to_allocvec(&r).unwrap()[0] as usize,
            response_id(&r)
        );
    }
}

#[test]
fn every_request_round_trips_and_validates() {
    let mut dec = LineDecoder::new();
    for (i, r) in sample_requests().into_iter().enumerate() {
        assert_eq!(r.validate(), Ok(()), "{r:?}");
        let seq = (i as u16).wrapping_mul(4099);
        let mut buf = [0u8; MAX_LINE + 1];
        let n = r.encode(seq, &mut buf).unwrap();
        let (frames, noise) = decode_all(&mut dec, &buf[..n]);
        assert!(noise.is_empty(), "{noise:?}");
        assert_eq!(frames.len(), 1);
        assert_eq!(
            frames[0].0,
            FrameHeader {
                version: PROTOCOL_VERSION,
                dir: Dir::Request,
                seq
            }
        );
        assert_eq!(Request::decode(&frames[0].1).unwrap(), r);
    }
}

#[test]
fn every_response_round_trips() {
    let mut dec = LineDecoder::new();
    for (i, r) in sample_responses().into_iter().enumerate() {
        let mut buf = [0u8; MAX_LINE + 1];
        let n = r.encode(i as u16, &mut buf).unwrap();
        // With CRLF endings too.
        let mut crlf = buf[..n - 1].to_vec();
        crlf.extend(b"\r\n");
        for input in [&buf[..n], &crlf[..]] {
            let (frames, noise) = decode_all(&mut dec, input);
            assert!(noise.is_empty());
            assert_eq!(Response::decode(&frames[0].1).unwrap(), r);
        }
    }
}

#[test]
fn out_of_range_requests_are_rejected() {
    use heapless::Vec;
    let bad = [
        Request::GenKey { slot: 16 },
        Request::ReadSlot {
            slot: 8,
            offset: 400,
            len: 32,
        },
        Request::ReadSlot {
            slot: 8,
            offset: 0,
            len: 0,
        },
        Request::WriteSlot {
            slot: 10,
            offset: 16,
            data: bytes(32, 0),
        },
        Request::WriteSlot {
            slot: 10,
            offset: 0,
            data: bytes(6, 0),
        },
        Request::WriteSlot {
            slot: 10,
            offset: 0,
            data: Vec::new(),
        },
        Request::WriteConfig {
            offset: 100,
            data: bytes(64, 0),
        },
        Request::ReadOtp { offset: 60, len: 8 },
        Request::WriteOtp {
            offset: 8,
            data: bytes(8, 0),
        },
        Request::StoreDefBlob {
            total_len: 10,
            digest: [0; 32],
            signature: Signature {
                r: [0xFF; 32],
                s: [0xFF; 32],
            },
            offset: 8,
            data: bytes(4, 0),
        },
        Request::StoreDefBlob {
            total_len: 0,
            digest: [0; 32],
            signature: Signature {
                r: [0xFF; 32],
                s: [0xFF; 32],
            },
            offset: 0,
            data: Vec::new(),
        },
        Request::StoreDefBlob {
            total_len: MAX_DEF_BLOB as u32 + 1,
            digest: [0; 32],
            signature: Signature {
                r: [0xFF; 32],
                s: [0xFF; 32],
            },
            offset: 0,
            data: Vec::new(),
        },
        Request::ReadCert {
            cert: CertKind::Device,
            offset: 0,
            len: 513,
        },
        Request::SetBaud { baud: 0 },
    ];
    for r in bad {
        assert_eq!(r.validate(), Err(ErrorCode::BadRequest), "{r:?}");
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut p = postcard::to_allocvec(&Request::Random).unwrap();
    p.push(0);
    assert_eq!(Request::decode(&p), Err(DecodeError::TrailingBytes));
    assert_eq!(Request::decode(&[0x7F]), Err(DecodeError::Postcard));
    assert_eq!(Response::decode(&[]), Err(DecodeError::Postcard));
}

fn chunk(max: usize) -> impl Strategy<Value = heapless::Vec<u8, MAX_CHUNK>> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(|v| v.into_iter().collect())
}

fn any_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u8>(), chunk(128)).prop_map(|(offset, d)| Request::WriteConfig {
            offset,
            data: d.into_iter().collect()
        }),
        (any::<u8>(), any::<u16>(), chunk(MAX_CHUNK))
            .prop_map(|(slot, offset, data)| Request::WriteSlot { slot, offset, data }),
        (
            any::<u32>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            chunk(MAX_CHUNK)
        )
            .prop_map(|(total_len, digest, offset, data)| Request::StoreDefBlob {
                total_len,
                digest,
                signature: Signature {
                    r: digest,
                    s: [7; 32]
                },
                offset,
                data
            }),
        any::<[u8; 32]>().prop_map(|host_nonce| Request::IdentityProof { host_nonce }),
        Just(Request::MaintenanceBegin),
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(r, s)| Request::MaintenanceAuth {
            signature: Signature { r, s }
        }),
        any::<[u8; 32]>().prop_map(|k| Request::StoreIoKey { key: IoKey(k) }),
        any::<Option<u16>>().prop_map(|crc| Request::LockData { crc }),
        any::<u32>().prop_map(|baud| Request::SetBaud { baud }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_requests_round_trip(r in any_request(), seq in any::<u16>()) {
        let mut buf = [0u8; MAX_LINE + 1];
        let n = r.encode(seq, &mut buf).unwrap();
        prop_assert!(n - 1 <= MAX_LINE);
        let mut dec = LineDecoder::new();
        let (frames, noise) = decode_all(&mut dec, &buf[..n]);
        prop_assert!(noise.is_empty());
        prop_assert_eq!(frames[0].0.seq, seq);
        prop_assert_eq!(Request::decode(&frames[0].1).unwrap(), r);
    }

    #[test]
    fn arbitrary_text_error_details_round_trip(s in ".{0,80}", seq in any::<u16>()) {
        let r = Response::Error(WireError::new(ErrorCode::Busy, &s));
        let detail = match &r { Response::Error(e) => e.detail.clone(), _ => Default::default() };
        prop_assert!(s.starts_with(detail.as_str()));
        let mut buf = [0u8; MAX_LINE + 1];
        let n = r.encode(seq, &mut buf).unwrap();
        let mut dec = LineDecoder::new();
        let (frames, _) = decode_all(&mut dec, &buf[..n]);
        prop_assert_eq!(Response::decode(&frames[0].1).unwrap(), r);
    }
}

#[test]
fn largest_valid_message_size_matches_the_doc() {
    // docs/protocol.md §7: the largest message is a StoreDefBlob with a full chunk.
    let r = Request::StoreDefBlob {
        total_len: MAX_DEF_BLOB as u32,
        digest: [0xFF; 32],
        signature: Signature {
            r: [0xFF; 32],
            s: [0xFF; 32],
        },
        offset: (MAX_DEF_BLOB - MAX_CHUNK) as u32,
        data: bytes(MAX_CHUNK, 0),
    };
    r.validate().unwrap();
    assert_eq!(postcard::to_allocvec(&r).unwrap().len(), 616);
    let mut buf = [0u8; MAX_LINE + 1];
    assert_eq!(r.encode(0xFFFF, &mut buf).unwrap(), 841 + 1);
}

/// The IO-protection key must not leave the station: a request logged with `{:?}` shows no key
/// bytes.
#[test]
fn io_key_never_shows_in_debug_output() {
    let r = Request::StoreIoKey {
        key: IoKey([0xA7; 32]),
    };
    let text = format!("{r:?}");
    assert!(
        !text.to_lowercase().contains("a7") && !text.contains("167"),
        "{text}"
    );
    assert!(r.validate().is_ok());
    assert!(r.expects(&Response::Ok));
}
