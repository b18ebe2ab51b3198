//! Golden frames. The expected lines were computed outside this crate (Python's `zlib.crc32`
//! and `base64.urlsafe_b64encode`) from postcard bytes derived by hand from the postcard spec
//! (varint u16/u32, variant index first, `Option` tag byte, length-prefixed strings).

mod support;

use ::base64::Engine;
use ::base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keystamp_wire::*;
use support::*;

fn encode_req(r: &Request, seq: u16) -> String {
    let mut buf = [0u8; MAX_LINE + 1];
    let n = r.encode(seq, &mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn encode_resp(r: &Response, seq: u16) -> String {
    let mut buf = [0u8; MAX_LINE + 1];
    let n = r.encode(seq, &mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn golden_request_frames() {
    let cases = [
        (Request::Hello, 0x0001, "~K2 Q0001 AA E216F781\n"),
        (
            Request::GenKey { slot: 0 },
            0x002A,
            "~K2 Q002A BAA 81DF83E4\n",
        ),
        (
            Request::LockConfig { crc: 0x1234 },
            0x1234,
            "~K2 Q1234 A7Qk FB1B3A23\n",
        ),
        (
            Request::LockData { crc: None },
            0xFFFF,
            "~K2 QFFFF CgA E907381B\n",
        ),
        (
            Request::LockData { crc: Some(0xABCD) },
            7,
            "~K2 Q0007 CgHN1wI C6382B9B\n",
        ),
        (
            Request::Finish { reboot: true },
            0x00FF,
            "~K2 Q00FF EgE 4186808B\n",
        ),
    ];
    for (req, seq, line) in cases {
        assert_eq!(encode_req(&req, seq), line, "{req:?}");
        let mut dec = LineDecoder::new();
        let (frames, noise) = decode_all(&mut dec, line.as_bytes());
        assert!(noise.is_empty());
        assert_eq!(
            frames[0].0,
            FrameHeader {
                version: 2,
                dir: Dir::Request,
                seq
            }
        );
        assert_eq!(Request::decode(&frames[0].1).unwrap(), req);
    }
}

#[test]
fn golden_response_frames() {
    let err = Response::Error(WireError::new(ErrorCode::ChipStatus(0x0F), "x"));
    assert_eq!(encode_resp(&Response::Ok, 1), "~K2 R0001 AQ 9159D915\n");
    assert_eq!(encode_resp(&err, 0xBEEF), "~K2 RBEEF CgQPAXg E2C6F3A1\n");
}

#[test]
fn other_version_frame_parses_with_its_version() {
    let mut dec = LineDecoder::new();
    let (frames, _) = decode_all(&mut dec, b"~K3 R0003 AQ 2A1755B5\n");
    assert_eq!(
        frames[0].0,
        FrameHeader {
            version: 3,
            dir: Dir::Response,
            seq: 3
        }
    );
}

/// Every sample frame checked against independent CRC-32 (crc32fast) and base64 (base64 crate)
/// implementations, and postcard's own decoder.
#[test]
fn all_frames_match_independent_implementations() {
    let mut lines = Vec::new();
    for (i, r) in sample_requests().iter().enumerate() {
        lines.push((encode_req(r, i as u16), postcard::to_allocvec(r).unwrap()));
    }
    for (i, r) in sample_responses().iter().enumerate() {
        lines.push((encode_resp(r, i as u16), postcard::to_allocvec(r).unwrap()));
    }
    for (line, postcard_bytes) in lines {
        assert!(line.len() - 1 <= MAX_LINE, "{} chars", line.len());
        let body = line.strip_suffix('\n').unwrap();
        assert!(body.bytes().all(|b| (0x20..0x7F).contains(&b)));
        let (covered, crc_hex) = body.split_at(body.len() - 8);
        assert_eq!(
            u32::from_str_radix(crc_hex, 16).unwrap(),
            crc32fast::hash(covered.as_bytes())
        );
        let fields: Vec<&str> = body.split(' ').collect();
        assert_eq!(fields.len(), 4);
        assert_eq!(URL_SAFE_NO_PAD.decode(fields[2]).unwrap(), postcard_bytes);
    }
}

#[test]
fn hand_derived_postcard_bytes() {
    // HelloInfo: max_line 1024 = varint 80 08, max_chunk 512 = 80 04, features 7, fw 0.1.0,
    // revision, serial, two bools, slot_locked 0, def_blob None, protocol 2, lifecycle Factory
    // (variant 0), blob_untrusted false, maintenance false, four Unknown platform flags.
    let mut expect = vec![
        0x00, 0x80, 0x08, 0x80, 0x04, 0x07, 0, 1, 0, 0, 0, 0x60, 0x02,
    ];
    expect.extend([
        0x01, 0x23, 0x6B, 0x2C, 0x8E, 0x0F, 0x41, 0x97, 0xEE, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
    ]);
    assert_eq!(
        postcard::to_allocvec(&Response::Hello(hello_info())).unwrap(),
        expect
    );
    // WriteSlot: id 7, slot 10, offset 0, length 72, bytes.
    let data = bytes::<512>(72, 3);
    let mut expect = vec![0x07, 10, 0, 72];
    expect.extend(&data);
    let r = Request::WriteSlot {
        slot: 10,
        offset: 0,
        data,
    };
    assert_eq!(postcard::to_allocvec(&r).unwrap(), expect);
}
