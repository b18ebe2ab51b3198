//! Packet bytes, CRCs and response parsing against the reference's vectors and real-chip
//! captures (`shared/reference/atecc608.md` §1.2, §2.3, §2.5), plus an independent CRC
//! implementation (the `crc` crate with the parameters the reference gives).

mod common;

use keystamp_atecc::command::*;
use keystamp_atecc::packet::{WakeReply, classify_wake, encode_command};
use keystamp_atecc::zone::{Size, Slot, Zone, ZoneAddr};
use keystamp_atecc::{Response, ResponseError, Status, crc16, parse_response};

use common::INDEPENDENT;

#[test]
fn crc_check_value() {
    // §2.2: check value of "123456789" is 0xBCDD.
    assert_eq!(crc16(b"123456789"), 0xBCDD);
    assert_eq!(crc16(&[]), 0);
}

#[test]
fn crc_table_from_reference() {
    let Some(text) = common::reference() else {
        return;
    };
    let rows = common::crc_table(&text);
    assert!(
        rows.len() >= 14,
        "expected the §2.3 table, got {} rows",
        rows.len()
    );
    for (data, crc) in rows {
        assert_eq!(crc16(&data).to_le_bytes(), crc, "CRC of {data:02X?}");
    }
}

#[test]
fn crc_agrees_with_independent_implementation() {
    let mut seed = 0x1234_5678u32;
    for len in 0..300 {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        assert_eq!(crc16(&data), INDEPENDENT.checksum(&data), "len {len}");
    }
}

fn encoded(cmd: &dyn Command) -> Vec<u8> {
    let mut buf = [0u8; 160];
    let n = cmd.encode(&mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn command_packets_from_reference() {
    let Some(text) = common::reference() else {
        return;
    };
    let s0 = Slot::new(0).unwrap();
    let mut checked = 0;
    for (name, bytes) in common::command_packets(&text) {
        let cmd: Box<dyn Command> = match name.as_str() {
            "Info(rev)" => Box::new(Info::Revision),
            "Info(KeyValid, slot 0)" => Box::new(Info::KeyValid(s0)),
            "Random" => Box::new(Random { update_seed: true }),
            "Read config 32B block 0" => Box::new(Read {
                addr: ZoneAddr::config(0, 0).unwrap(),
                size: Size::Block,
            }),
            "Read config word 0x15" => Box::new(Read {
                addr: ZoneAddr::config(2, 5).unwrap(),
                size: Size::Word,
            }),
            "Lock config, no CRC" => Box::new(Lock::Config(None)),
            "Lock data, no CRC" => Box::new(Lock::Data(None)),
            "GenKey private slot 0" => Box::new(GenKey::Private(s0)),
            "GenKey public slot 0" => Box::new(GenKey::Public(s0)),
            "Sign ext TempKey slot 0" => Box::new(Sign::External {
                slot: s0,
                source: MessageSource::TempKey,
            }),
            "Sign ext MsgDig slot 0" => Box::new(Sign::External {
                slot: s0,
                source: MessageSource::MsgDigBuf,
            }),
            "SHA start" => Box::new(Sha::Start),
            "Counter read #0" => Box::new(Counter::Read(CounterId::Zero)),
            "SelfTest all (0x3B)" => Box::new(SelfTest {
                tests: SELF_TEST_ALL,
            }),
            other if other.starts_with("Random response pre-lock") => continue,
            other => panic!("reference packet {other:?} has no mapping in this test"),
        };
        assert_eq!(encoded(cmd.as_ref()), bytes, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 14);
}

#[test]
fn random_prelock_response_from_reference() {
    let Some(text) = common::reference() else {
        return;
    };
    // "Random response pre-lock: 23 (FF FF 00 00)x8 41 1A"
    let line = text
        .lines()
        .find(|l| l.starts_with("Random response pre-lock"))
        .unwrap();
    assert!(line.contains("23 (FF FF 00 00)x8 41 1A"));
    let mut group = vec![0x23];
    for _ in 0..8 {
        group.extend([0xFF, 0xFF, 0x00, 0x00]);
    }
    group.extend([0x41, 0x1A]);
    match parse_response(&group).unwrap() {
        Response::Data(d) => assert_eq!(d, &keystamp_atecc::driver::RANDOM_TEST_PATTERN),
        other => panic!("{other:?}"),
    }
}

#[test]
fn status_groups_parse_to_typed_statuses() {
    // §2.3 status groups and §2.5 meanings.
    let cases = [
        ([0x04, 0x00, 0x03, 0x40], Status::Success),
        ([0x04, 0x01, 0x00, 0xC3], Status::Miscompare),
        ([0x04, 0x03, 0x83, 0x42], Status::ParseError),
        ([0x04, 0x05, 0xC3, 0x43], Status::EccFault),
        ([0x04, 0x07, 0x40, 0xC2], Status::SelfTestError),
        ([0x04, 0x08, 0x60, 0xC0], Status::HealthTestError),
        ([0x04, 0x0F, 0x23, 0x42], Status::ExecutionError),
        ([0x04, 0x11, 0x33, 0x43], Status::AfterWake),
        ([0x04, 0xEE, 0x31, 0x41], Status::WatchdogAboutToExpire),
        ([0x04, 0xFF, 0x01, 0x42], Status::CommunicationError),
    ];
    for (group, status) in cases {
        assert_eq!(parse_response(&group), Ok(Response::Status(status)));
        assert_eq!(Status::from_code(status.code()), status);
    }
    assert_eq!(Status::from_code(0x42), Status::Unknown(0x42));
}

#[test]
fn real_capture_lock_word_read() {
    // §2.3: a Read of config word 0x15 on a locked chip answered `07 00 00 00 00 03 AD`.
    let group = [0x07, 0x00, 0x00, 0x00, 0x00, 0x03, 0xAD];
    assert_eq!(parse_response(&group), Ok(Response::Data(&[0, 0, 0, 0])));
    // Info revision replies of a 608A and a 608B.
    let a = [0x07, 0x00, 0x00, 0x60, 0x02, 0x80, 0x38];
    let b = [0x07, 0x00, 0x00, 0x60, 0x03, 0x83, 0xBB];
    assert_eq!(parse_response(&a), Ok(Response::Data(&[0, 0, 0x60, 0x02])));
    assert_eq!(parse_response(&b), Ok(Response::Data(&[0, 0, 0x60, 0x03])));
}

#[test]
fn malformed_responses_are_typed_errors() {
    assert_eq!(parse_response(&[]), Err(ResponseError::Empty));
    assert_eq!(
        parse_response(&[0x03, 0, 0]),
        Err(ResponseError::BadCount(3))
    );
    assert_eq!(parse_response(&[0xFF]), Err(ResponseError::BadCount(0xFF)));
    assert_eq!(
        parse_response(&[0x07, 0, 0]),
        Err(ResponseError::Truncated {
            count: 7,
            available: 3
        })
    );
    assert_eq!(
        parse_response(&[0x04, 0x00, 0x03, 0x41]),
        Err(ResponseError::Crc {
            computed: 0x4003,
            received: 0x4103
        })
    );
    // Trailing bytes after `count` are ignored.
    assert_eq!(
        parse_response(&[0x04, 0x00, 0x03, 0x40, 0xAA]),
        Ok(Response::Status(Status::Success))
    );
}

#[test]
fn wake_replies() {
    assert_eq!(classify_wake(&[0x04, 0x11, 0x33, 0x43]), WakeReply::Awake);
    // §1.2: the valid self-test-failure group is 04 07 40 C2 ...
    assert_eq!(
        classify_wake(&[0x04, 0x07, 0x40, 0xC2]),
        WakeReply::SelfTestFailure
    );
    // ... and cryptoauthlib's constant 04 07 C4 40 has a wrong CRC.
    assert_eq!(
        classify_wake(&[0x04, 0x07, 0xC4, 0x40]),
        WakeReply::Unexpected
    );
    assert_eq!(
        classify_wake(&[0xFF, 0xFF, 0xFF, 0xFF]),
        WakeReply::Unexpected
    );
    assert_eq!(
        classify_wake(&[0x04, 0x00, 0x03, 0x40]),
        WakeReply::Unexpected
    );
}

fn check_group(bytes: &[u8], opcode: u8, p1: u8, p2: u16, data_len: usize) {
    assert_eq!(bytes.len(), 7 + data_len);
    assert_eq!(
        bytes[0] as usize,
        bytes.len(),
        "count includes itself and the CRC"
    );
    assert_eq!(bytes[1], opcode);
    assert_eq!(bytes[2], p1);
    assert_eq!(u16::from_le_bytes([bytes[3], bytes[4]]), p2);
    let n = bytes.len();
    assert_eq!(
        INDEPENDENT.checksum(&bytes[..n - 2]).to_le_bytes(),
        [bytes[n - 2], bytes[n - 1]]
    );
}

#[test]
fn every_command_encodes_per_the_reference_table() {
    // §4.2: opcode, param1, param2, data lengths and counts.
    let s = |n| Slot::new(n).unwrap();
    let key = [0x11u8; 64];
    let sig = [0x22u8; 64];
    let d32 = [0x33u8; 32];
    let d64 = [0x44u8; 64];
    let num_in = [0x55u8; 20];
    let w4 = [1u8, 2, 3, 4];

    check_group(&encoded(&Info::State), 0x30, 0x02, 0, 0);
    check_group(&encoded(&Info::KeyValid(s(9))), 0x30, 0x01, 9, 0);
    // Data zone slot 10 block 2 word 0: addr = 2<<8 | 10<<3.
    let a = ZoneAddr::data(10, 2, 0).unwrap();
    check_group(
        &encoded(&Read {
            addr: a,
            size: Size::Block,
        }),
        0x02,
        0x82,
        0x0250,
        0,
    );
    let otp = ZoneAddr::otp(1, 7).unwrap();
    check_group(
        &encoded(&Read {
            addr: otp,
            size: Size::Word,
        }),
        0x02,
        0x01,
        0x000F,
        0,
    );
    let cfg = ZoneAddr::config(0, 4).unwrap();
    let wr = encoded(&Write {
        addr: cfg,
        data: WriteData::Word(&w4),
    });
    check_group(&wr, 0x12, 0x00, 0x0004, 4);
    assert_eq!(wr.len(), 11);
    let wr = encoded(&Write {
        addr: a,
        data: WriteData::Block(&d32),
    });
    check_group(&wr, 0x12, 0x82, 0x0250, 32);
    assert_eq!(wr.len(), 39);
    check_group(&encoded(&Lock::Config(Some(0xBEEF))), 0x17, 0x00, 0xBEEF, 0);
    check_group(&encoded(&Lock::Data(Some(0x1234))), 0x17, 0x01, 0x1234, 0);
    // §4.2: "slot lock 10 → 0x2A".
    check_group(&encoded(&Lock::Slot(s(10))), 0x17, 0x2A, 0, 0);
    check_group(&encoded(&GenKey::Private(s(3))), 0x40, 0x04, 3, 0);
    check_group(
        &encoded(&Sign::Internal {
            slot: s(1),
            include_sn: true,
        }),
        0x41,
        0x40,
        1,
        0,
    );
    let v = encoded(&VerifyExternal {
        source: MessageSource::TempKey,
        signature: &sig,
        public_key: &key,
    });
    check_group(&v, 0x45, 0x02, 0x0004, 128);
    assert_eq!(v.len(), 135);
    assert_eq!(&v[5..69], &sig);
    assert_eq!(&v[69..133], &key);
    let v = encoded(&VerifyExternal {
        source: MessageSource::MsgDigBuf,
        signature: &sig,
        public_key: &key,
    });
    check_group(&v, 0x45, 0x22, 0x0004, 128);
    let n = encoded(&Nonce::Random {
        num_in: &num_in,
        update_seed: true,
    });
    check_group(&n, 0x16, 0x00, 0, 20);
    assert_eq!(n.len(), 27);
    check_group(
        &encoded(&Nonce::Fixed32 {
            target: NonceTarget::TempKey,
            value: &d32,
        }),
        0x16,
        0x03,
        0,
        32,
    );
    check_group(
        &encoded(&Nonce::Fixed32 {
            target: NonceTarget::MsgDigBuf,
            value: &d32,
        }),
        0x16,
        0x43,
        0,
        32,
    );
    check_group(
        &encoded(&Nonce::Fixed32 {
            target: NonceTarget::AltKeyBuf,
            value: &d32,
        }),
        0x16,
        0x83,
        0,
        32,
    );
    check_group(
        &encoded(&Nonce::Fixed64 {
            target: NonceTarget::TempKey,
            value: &d64,
        }),
        0x16,
        0x23,
        0,
        64,
    );
    check_group(
        &encoded(&Nonce::Fixed64 {
            target: NonceTarget::MsgDigBuf,
            value: &d64,
        }),
        0x16,
        0x63,
        0,
        64,
    );
    check_group(&encoded(&Random { update_seed: false }), 0x1B, 0x01, 0, 0);
    check_group(&encoded(&Sha::Update(&d64)), 0x47, 0x01, 64, 64);
    check_group(&encoded(&Sha::End(&d32[..5])), 0x47, 0x02, 5, 5);
    check_group(&encoded(&Sha::End(&[])), 0x47, 0x02, 0, 0);
    check_group(
        &encoded(&Counter::Increment(CounterId::One)),
        0x24,
        0x01,
        1,
        0,
    );
    let e = encoded(&Ecdh {
        slot: s(2),
        public_key: &key,
    });
    check_group(&e, 0x43, 0x00, 2, 64);
    assert_eq!(e.len(), 71);
    check_group(&encoded(&UpdateExtra::UserExtra(0x42)), 0x20, 0x00, 0x42, 0);
    check_group(
        &encoded(&UpdateExtra::UserExtraAdd(0x6A)),
        0x20,
        0x01,
        0x6A,
        0,
    );
    let p = encoded(&PrivWrite {
        slot: s(1),
        key: &d32,
    });
    check_group(&p, 0x46, 0x00, 1, 68);
    assert_eq!(p.len(), 75);
    assert_eq!(&p[5..9], &[0, 0, 0, 0]);
    assert_eq!(&p[9..41], &d32);
    assert_eq!(&p[41..73], &[0u8; 32]);
}

#[test]
fn response_lengths_and_times() {
    let s0 = Slot::new(0).unwrap();
    let d32 = [0u8; 32];
    let key = [0u8; 64];
    assert_eq!(Info::Revision.response_len(), 7);
    assert_eq!(
        Read {
            addr: ZoneAddr::config(0, 0).unwrap(),
            size: Size::Block
        }
        .response_len(),
        35
    );
    assert_eq!(
        Read {
            addr: ZoneAddr::config(0, 0).unwrap(),
            size: Size::Word
        }
        .response_len(),
        7
    );
    assert_eq!(GenKey::Public(s0).response_len(), 67);
    assert_eq!(
        Sign::External {
            slot: s0,
            source: MessageSource::TempKey
        }
        .response_len(),
        67
    );
    assert_eq!(Random { update_seed: true }.response_len(), 35);
    assert_eq!(Sha::End(&[]).response_len(), 35);
    assert_eq!(Sha::Start.response_len(), 4);
    assert_eq!(
        Nonce::Fixed32 {
            target: NonceTarget::TempKey,
            value: &d32
        }
        .response_len(),
        4
    );
    assert_eq!(
        Nonce::Random {
            num_in: &[0; 20],
            update_seed: true
        }
        .response_len(),
        35
    );
    assert_eq!(Counter::Read(CounterId::Zero).response_len(), 7);
    assert_eq!(
        Ecdh {
            slot: s0,
            public_key: &key
        }
        .response_len(),
        35
    );
    assert_eq!(Lock::Config(None).response_len(), 4);
    // §4.3, M0 column and the other dividers.
    let m0 = ClockDivider::M0;
    assert_eq!(GenKey::Private(s0).max_exec_ms(m0), 115);
    assert_eq!(
        Sign::External {
            slot: s0,
            source: MessageSource::TempKey
        }
        .max_exec_ms(m0),
        115
    );
    assert_eq!(Opcode::Verify.max_exec_ms(m0), 105);
    assert_eq!(Opcode::Verify.max_exec_ms(ClockDivider::M2), 1085);
    assert_eq!(Opcode::Ecdh.max_exec_ms(ClockDivider::M1), 172);
    assert_eq!(Opcode::SelfTest.max_exec_ms(ClockDivider::M2), 2324);
    assert_eq!(Opcode::Read.max_exec_ms(m0), 5);
    assert_eq!(Opcode::Write.max_exec_ms(m0), 45);
    assert_eq!(Opcode::Lock.max_exec_ms(m0), 35);
    assert_eq!(Opcode::Nonce.max_exec_ms(m0), 20);
}

#[test]
fn invalid_parameters_are_rejected() {
    let mut buf = [0u8; 160];
    assert_eq!(
        Sha::End(&[0; 64]).encode(&mut buf),
        Err(keystamp_atecc::packet::EncodeError::InvalidParam)
    );
    assert!(SelfTest { tests: 0 }.encode(&mut buf).is_err());
    assert!(SelfTest { tests: 0x04 }.encode(&mut buf).is_err());
    let mut small = [0u8; 6];
    assert_eq!(
        Info::Revision.encode(&mut small),
        Err(keystamp_atecc::packet::EncodeError::BufferTooSmall)
    );
    assert_eq!(
        encode_command(0x12, 0, 0, &[&[0u8; 149]], &mut buf),
        Err(keystamp_atecc::packet::EncodeError::TooLong)
    );
    assert_eq!(
        encode_command(0x12, 0, 0, &[&[0u8; 148]], &mut buf),
        Ok(155)
    );
    assert!(Slot::new(16).is_none());
    assert!(ZoneAddr::config(4, 0).is_err());
    assert!(ZoneAddr::config(0, 8).is_err());
    assert!(ZoneAddr::otp(2, 0).is_err());
    assert!(ZoneAddr::data(16, 0, 0).is_err());
    // Slot 0-7 are 36 bytes: block 1 word 0 exists, word 1 does not.
    assert!(ZoneAddr::data(0, 1, 0).is_ok());
    assert!(ZoneAddr::data(0, 1, 1).is_err());
    // Slot 8 has blocks 0-12.
    assert!(ZoneAddr::data(8, 12, 7).is_ok());
    assert!(ZoneAddr::data(8, 13, 0).is_err());
    assert!(ZoneAddr::for_offset(Zone::Config, 0, 2, Size::Word).is_err());
    assert!(ZoneAddr::for_offset(Zone::Config, 0, 4, Size::Block).is_err());
    assert_eq!(
        ZoneAddr::for_offset(Zone::Config, 0, 84, Size::Word)
            .unwrap()
            .param2(),
        0x15
    );
    assert_eq!(
        ZoneAddr::for_offset(Zone::Data, 11, 64, Size::Block)
            .unwrap()
            .param2(),
        0x0258
    );
}

#[test]
fn slot_sizes() {
    // §3.
    let sizes: Vec<usize> = (0..16).map(keystamp_atecc::slot_size).collect();
    assert_eq!(
        sizes,
        [
            36, 36, 36, 36, 36, 36, 36, 36, 416, 72, 72, 72, 72, 72, 72, 72
        ]
    );
    assert_eq!(keystamp_atecc::slot_size(16), 0);
}
