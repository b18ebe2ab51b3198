//! The agent against the emulated chip: requests in as frames, answers out as frames.

use keystamp_agent::Agent;
use keystamp_agent::store::MemStore;
use keystamp_atecc::Atecc;
use keystamp_atecc_sim::{SimChip, SimOptions, VirtualClock};
use keystamp_wire::{CertKind, ErrorCode, Event, FirmwareVersion, LineDecoder, Request, Response};

type Dut = Agent<Atecc<SimChip, keystamp_atecc_sim::VirtualDelay>, MemStore<8192>, 4096>;

fn agent(seed: u64) -> Dut {
    let clock = VirtualClock::new();
    let chip = SimChip::new(
        SimOptions::default()
            .with_seed(seed)
            .with_clock(clock.clone()),
    );
    let driver = Atecc::new(chip, clock.delay());
    Agent::new(
        driver,
        MemStore::default(),
        FirmwareVersion {
            major: 1,
            minor: 2,
            patch: 3,
        },
    )
}

/// Sends one request as a frame line and decodes the one answer line.
fn call(dut: &mut Dut, seq: u16, req: &Request) -> Response {
    let mut line = [0u8; 1100];
    let n = req.encode(seq, &mut line).unwrap();
    let mut out = Vec::new();
    dut.feed(&line[..n], |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .unwrap();
    let mut dec = LineDecoder::new();
    let (_, ev) = dec.feed(&out);
    match ev {
        Some(Event::Frame(f)) => {
            assert_eq!(
                f.header.seq, seq,
                "answer carries the request's sequence number"
            );
            Response::decode(f.payload).unwrap()
        }
        other => panic!(
            "no answer frame: {other:?} from {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
}

#[test]
fn hello_reports_the_factory_chip() {
    let mut dut = agent(5);
    let Response::Hello(h) = call(&mut dut, 1, &Request::Hello) else {
        panic!()
    };
    // Factory state of a blank ATECC608A (reference §7.1): SN prefix 01 23, suffix EE, unlocked.
    assert_eq!(
        (h.chip.serial[0], h.chip.serial[1], h.chip.serial[8]),
        (0x01, 0x23, 0xEE)
    );
    assert_eq!(h.chip.revision[2], 0x60, "ATECC608 device revision byte");
    assert!(!h.chip.config_locked && !h.chip.data_locked);
    assert_eq!(h.chip.slot_locked, 0);
    assert_eq!(h.def_blob, None);
    assert_eq!(
        h.firmware,
        FirmwareVersion {
            major: 1,
            minor: 2,
            patch: 3
        }
    );
}

#[test]
fn the_chip_refuses_what_the_lock_state_forbids_and_the_agent_says_so() {
    let mut dut = agent(6);
    // Data-zone reads are refused before the data lock (reference §6.3): execution error 0x0F.
    match call(
        &mut dut,
        1,
        &Request::ReadSlot {
            slot: 10,
            offset: 0,
            len: 32,
        },
    ) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::ChipStatus(0x0F)),
        other => panic!("{other:?}"),
    }
    // A key cannot be generated before the config lock.
    assert!(matches!(
        call(&mut dut, 2, &Request::GenKey { slot: 0 }),
        Response::Error(_)
    ));
    // Nothing rebuilt yet.
    match call(
        &mut dut,
        3,
        &Request::ReadCert {
            cert: CertKind::Device,
            offset: 0,
            len: 16,
        },
    ) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::NotLocked),
        other => panic!("{other:?}"),
    }
    match call(&mut dut, 4, &Request::RebuildChain) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::NoBlob),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_wrong_config_crc_is_refused_by_the_chip_and_the_right_one_locks() {
    let mut dut = agent(7);
    let target = keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES;
    let data = heapless::Vec::from_slice(&target).unwrap();
    assert_eq!(
        call(&mut dut, 1, &Request::WriteConfig { offset: 0, data }),
        Response::Ok
    );
    let Response::Config(back) = call(&mut dut, 2, &Request::ReadConfig) else {
        panic!()
    };
    let zone = keystamp_atecc::ConfigZone::from_slice(&back).unwrap();
    assert_eq!(
        zone.first_setting_difference(&keystamp_atecc::DEFAULT_CONFIG),
        None
    );
    let crc = zone.lock_crc();
    assert!(matches!(
        call(&mut dut, 3, &Request::LockConfig { crc: crc ^ 1 }),
        Response::Error(e) if e.code == ErrorCode::ChipStatus(0x0F)
    ));
    assert_eq!(
        call(&mut dut, 4, &Request::LockConfig { crc }),
        Response::Ok
    );
    let Response::Hello(h) = call(&mut dut, 5, &Request::Hello) else {
        panic!()
    };
    assert!(h.chip.config_locked && !h.chip.data_locked);
    // After the config lock GenKey works and the public key is a point on P-256.
    let Response::PublicKey(pk) = call(&mut dut, 6, &Request::GenKey { slot: 0 }) else {
        panic!()
    };
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&pk.x);
    sec1.extend_from_slice(&pk.y);
    assert!(p256::PublicKey::from_sec1_bytes(&sec1).is_ok());
}

#[test]
fn a_blob_upload_resumes_and_a_bad_digest_or_blob_is_refused() {
    let mut dut = agent(8);
    let blob = vec![0x5Au8; 900];
    let digest: [u8; 32] = sha2_digest(&blob);
    let chunk = |o: usize, n: usize| heapless::Vec::from_slice(&blob[o..o + n]).unwrap();
    // First chunk lands.
    let Response::DefBlob(p) = call(
        &mut dut,
        1,
        &Request::StoreDefBlob {
            total_len: 900,
            digest,
            signature: NO_SIGNATURE,
            offset: 0,
            data: chunk(0, 400),
        },
    ) else {
        panic!()
    };
    assert_eq!((p.received, p.complete), (400, false));
    // A chunk at the wrong offset is not written; the answer says where to continue.
    let Response::DefBlob(p) = call(
        &mut dut,
        2,
        &Request::StoreDefBlob {
            total_len: 900,
            digest,
            signature: NO_SIGNATURE,
            offset: 100,
            data: chunk(100, 400),
        },
    ) else {
        panic!()
    };
    assert_eq!(p.received, 400);
    // An empty chunk only asks for progress.
    let Response::DefBlob(p) = call(
        &mut dut,
        3,
        &Request::StoreDefBlob {
            total_len: 900,
            digest,
            signature: NO_SIGNATURE,
            offset: 400,
            data: heapless::Vec::new(),
        },
    ) else {
        panic!()
    };
    assert_eq!(p.received, 400);
    // The rest arrives: the digest matches but nothing signed them (and this factory chip has
    // no trust anchor yet), so they are not stored.
    match call(
        &mut dut,
        4,
        &Request::StoreDefBlob {
            total_len: 900,
            digest,
            signature: NO_SIGNATURE,
            offset: 400,
            data: chunk(400, 500),
        },
    ) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::BlobUntrusted),
        other => panic!("{other:?}"),
    }
    // A digest that does not match the bytes.
    let mut wrong = digest;
    wrong[0] ^= 1;
    call(
        &mut dut,
        5,
        &Request::StoreDefBlob {
            total_len: 900,
            digest: wrong,
            signature: NO_SIGNATURE,
            offset: 0,
            data: chunk(0, 450),
        },
    );
    match call(
        &mut dut,
        6,
        &Request::StoreDefBlob {
            total_len: 900,
            digest: wrong,
            signature: NO_SIGNATURE,
            offset: 450,
            data: chunk(450, 450),
        },
    ) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::DigestMismatch),
        other => panic!("{other:?}"),
    }
    let Response::Hello(h) = call(&mut dut, 7, &Request::Hello) else {
        panic!()
    };
    assert_eq!(h.def_blob, None, "nothing invalid became the stored blob");
}

#[test]
fn a_retransmitted_request_is_answered_from_the_cache_not_executed_twice() {
    let mut dut = agent(9);
    // Before the config lock the chip's Random is a fixed test pattern (reference §6.3); the
    // agent refuses to pass it off as random.
    match call(&mut dut, 1, &Request::Random) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::ChipStatus(0x0F)),
        other => panic!("{other:?}"),
    }
    let target = keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES;
    let data = heapless::Vec::from_slice(&target).unwrap();
    assert_eq!(
        call(&mut dut, 2, &Request::WriteConfig { offset: 0, data }),
        Response::Ok
    );
    let Response::Config(back) = call(&mut dut, 3, &Request::ReadConfig) else {
        panic!()
    };
    let crc = keystamp_atecc::ConfigZone::from_slice(&back)
        .unwrap()
        .lock_crc();
    assert_eq!(
        call(&mut dut, 4, &Request::LockConfig { crc }),
        Response::Ok
    );
    let Response::Random(a) = call(&mut dut, 10, &Request::Random) else {
        panic!()
    };
    // Same sequence number again (the host's retry after a lost answer): the same bytes back.
    let Response::Random(b) = call(&mut dut, 10, &Request::Random) else {
        panic!()
    };
    assert_eq!(a, b);
    // A new sequence number executes again: fresh random bytes.
    let Response::Random(c) = call(&mut dut, 11, &Request::Random) else {
        panic!()
    };
    assert_ne!(a, c);
}

/// No signature: the upload tests below stop before the trust check or fail it.
const NO_SIGNATURE: keystamp_wire::Signature = keystamp_wire::Signature {
    r: [0; 32],
    s: [0; 32],
};

fn sha2_digest(data: &[u8]) -> [u8; 32] {
    keystamp_agent::store::sha256(data)
}

#[test]
fn set_baud_is_offered_only_up_to_the_firmware_maximum_and_switches_after_the_answer() {
    use keystamp_agent::Action;
    use keystamp_wire::FEATURE_SET_BAUD;
    let mut dut = agent(19);
    // Not enabled by the firmware: not offered, refused.
    let Response::Hello(h) = call(&mut dut, 1, &Request::Hello) else {
        panic!()
    };
    assert_eq!(h.features & FEATURE_SET_BAUD, 0);
    match call(&mut dut, 2, &Request::SetBaud { baud: 921_600 }) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::Unsupported),
        other => panic!("{other:?}"),
    }
    dut.set_max_baud(460_800);
    let Response::Hello(h) = call(&mut dut, 3, &Request::Hello) else {
        panic!()
    };
    assert_ne!(h.features & FEATURE_SET_BAUD, 0);
    match call(&mut dut, 4, &Request::SetBaud { baud: 921_600 }) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::OutOfRange),
        other => panic!("{other:?}"),
    }
    // Within the maximum: Ok, written first, then the firmware is told to switch.
    let mut line = [0u8; 64];
    let n = Request::SetBaud { baud: 460_800 }
        .encode(5, &mut line)
        .unwrap();
    let mut written = 0;
    let action = dut
        .feed(&line[..n], |b| {
            written += b.len();
            Ok::<(), ()>(())
        })
        .unwrap();
    assert!(written > 0, "the answer goes out at the old rate");
    assert_eq!(action, Action::SetBaud { baud: 460_800 });
}
