//! Line decoder behaviour on everything that is not a clean frame.

mod support;

use keystamp_wire::*;
use support::*;

use support::request_line as frame;

#[test]
fn log_lines_and_boot_output_are_noise() {
    let mut input = b"ESP-ROM:esp32c3-api1-20210207\r\nBuild:Feb  7 2021\r\n".to_vec();
    input.extend(b"rst:0x1 (POWERON),boot:0xc (SPI_FAST_FLASH_BOOT)\r\n\r\n\n");
    input.extend(b"I (31) boot: ESP-IDF v5.1 2nd stage bootloader\n");
    input.extend(frame(&Request::Hello, 5));
    let mut dec = LineDecoder::new();
    let (frames, noise) = decode_all(&mut dec, &input);
    assert_eq!(noise, vec![NoiseKind::NotFrame; 4]);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0.seq, 5);
}

#[test]
fn garbage_without_newline_before_a_frame_is_split_off() {
    // The boot ROM at the wrong baud rate prints junk with no line end.
    let mut input = vec![0xFF, 0x00, 0x8A, b'x', 0x1B];
    input.extend(frame(&Request::Random, 9));
    let mut dec = LineDecoder::new();
    let (frames, noise) = decode_all(&mut dec, &input);
    assert_eq!(noise, vec![NoiseKind::NotFrame]);
    assert_eq!(Request::decode(&frames[0].1).unwrap(), Request::Random);
}

#[test]
fn half_frame_cut_by_next_frame_is_truncated_noise() {
    let full = frame(&Request::GenKey { slot: 0 }, 1);
    let mut input = full[..full.len() / 2].to_vec();
    input.extend(frame(&Request::GenKey { slot: 0 }, 2));
    let mut dec = LineDecoder::new();
    let (frames, noise) = decode_all(&mut dec, &input);
    assert_eq!(noise, vec![NoiseKind::Truncated]);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0.seq, 2);
}

#[test]
fn log_line_inside_a_frame_kills_only_that_frame() {
    let f = frame(&Request::ReadConfig, 3);
    let mut input = f[..7].to_vec();
    input.extend(b"W (120) uart: rx overflow\n");
    input.extend(&f[7..]);
    input.extend(frame(&Request::ReadConfig, 4));
    let mut dec = LineDecoder::new();
    let (frames, noise) = decode_all(&mut dec, &input);
    assert_eq!(noise, vec![NoiseKind::Malformed, NoiseKind::NotFrame]);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0.seq, 4);
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let f = frame(&Request::LockConfig { crc: 0xBEEF }, 0x77);
    for i in 0..f.len() - 1 {
        for bit in 0..8 {
            let mut g = f.clone();
            g[i] ^= 1 << bit;
            let mut dec = LineDecoder::new();
            let (frames, _) = decode_all(&mut dec, &g);
            assert!(frames.is_empty(), "flip byte {i} bit {bit} accepted");
        }
    }
}

#[test]
fn dropped_or_duplicated_byte_is_rejected() {
    let f = frame(
        &Request::WriteSlot {
            slot: 10,
            offset: 0,
            data: bytes(72, 1),
        },
        0x10,
    );
    let (original, _) = decode_all(&mut LineDecoder::new(), &f);
    for i in 0..f.len() - 1 {
        let mut dropped = f.clone();
        dropped.remove(i);
        let mut dup = f.clone();
        dup.insert(i, f[i]);
        for g in [dropped, dup] {
            let mut dec = LineDecoder::new();
            let (frames, _) = decode_all(&mut dec, &g);
            // The one harmless case: a doubled `~` leaves a one-byte noise line and the intact
            // frame. Anything accepted must be the original.
            assert!(
                frames.is_empty() || frames == original,
                "mutation at {i} accepted"
            );
            if !frames.is_empty() {
                assert_eq!(i, 0);
            }
        }
    }
}

#[test]
fn overlong_line_is_noise_and_decoder_recovers() {
    let mut input = vec![b'A'; MAX_LINE * 3];
    input.push(b'\n');
    input.extend(frame(&Request::Hello, 1));
    let mut dec = LineDecoder::new();
    let (frames, noise) = decode_all(&mut dec, &input);
    assert_eq!(noise, vec![NoiseKind::Overlong]);
    assert_eq!(frames.len(), 1);
}

#[test]
fn line_endings_cr_crlf_lf_all_work() {
    for end in [&b"\n"[..], b"\r\n", b"\r", b"\n\r\n\n"] {
        let mut f = frame(&Request::Hello, 1);
        f.pop();
        f.extend(end);
        let mut twice = f.clone();
        twice.extend(&f);
        let mut dec = LineDecoder::new();
        let (frames, noise) = decode_all(&mut dec, &twice);
        assert!(noise.is_empty());
        assert_eq!(frames.len(), 2);
    }
}

#[test]
fn byte_at_a_time_feeding_equals_bulk() {
    let mut input = b"noise\n".to_vec();
    for (i, r) in sample_requests().iter().enumerate() {
        input.extend(frame(r, i as u16));
    }
    let mut bulk = LineDecoder::new();
    let expect = decode_all(&mut bulk, &input);
    let mut dec = LineDecoder::new();
    let mut frames = Vec::new();
    let mut noise = Vec::new();
    for b in &input {
        let (used, ev) = dec.feed(std::slice::from_ref(b));
        assert_eq!(used, 1);
        match ev {
            Some(Event::Frame(f)) => frames.push((f.header, f.payload.to_vec())),
            Some(Event::Noise { kind, .. }) => noise.push(kind),
            None => {}
        }
    }
    // A one-byte feed that hits a `~` after buffered text returns the noise without consuming
    // the `~`; feeding byte by byte never has that case here because every line ends first.
    assert_eq!((frames, noise), expect);
}

#[test]
fn malformed_variants() {
    let cases: [&[u8]; 8] = [
        b"~K1 Q0001 AA 7bf49180\n",  // lower-case CRC
        b"~K01 Q0001 AA 7BF49180\n", // leading zero in version
        b"~K1 X0001 AA 7BF49180\n",  // unknown direction
        b"~K1 Q001 AA 7BF49180\n",   // short seq
        b"~K1 Q0001  7BF49180\n",    // empty payload
        b"~K1 Q0001 AA 7BF49180 \n", // trailing space
        b"~K1000 Q0001 AA 00000000\n",
        b"~K1 Q0001 A= 7BF49180\n",
    ];
    for c in cases {
        let mut dec = LineDecoder::new();
        let (frames, noise) = decode_all(&mut dec, c);
        assert!(frames.is_empty());
        assert_eq!(
            noise,
            vec![NoiseKind::Malformed],
            "{}",
            String::from_utf8_lossy(c)
        );
    }
    let mut dec = LineDecoder::new();
    let (_, noise) = decode_all(&mut dec, b"~K1 Q0001 AA 7BF49181\n");
    assert_eq!(noise, vec![NoiseKind::BadCrc]);
}

#[test]
fn non_canonical_base64_with_valid_crc_is_bad_payload() {
    // "AB" leaves non-zero bits: a sender bug, reported as BadPayload, never as a frame.
    let head = "~K1 Q0001 AB ";
    let line = format!("{head}{:08X}\n", crc32fast::hash(head.as_bytes()));
    let mut dec = LineDecoder::new();
    let (frames, noise) = decode_all(&mut dec, line.as_bytes());
    assert!(frames.is_empty());
    assert_eq!(noise, vec![NoiseKind::BadPayload]);
}
