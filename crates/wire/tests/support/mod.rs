//! Shared test data: one or more samples of every message variant, including the largest.
#![allow(dead_code)]

pub mod fake;
use heapless::Vec;
use keystamp_wire::*;

pub fn bytes<const N: usize>(len: usize, seed: u8) -> Vec<u8, N> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub fn arr32(seed: u8) -> [u8; 32] {
    core::array::from_fn(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
}

/// The postcard variant index of a request, by exhaustive match (a new variant fails to compile
/// here until a sample is added).
pub fn request_id(r: &Request) -> usize {
    match r {
        Request::Hello => 0,
        Request::ReadConfig => 1,
        Request::WriteConfig { .. } => 2,
        Request::LockConfig { .. } => 3,
        Request::GenKey { .. } => 4,
        Request::GetPublicKey { .. } => 5,
        Request::ReadSlot { .. } => 6,
        Request::WriteSlot { .. } => 7,
        Request::ReadOtp { .. } => 8,
        Request::WriteOtp { .. } => 9,
        Request::LockData { .. } => 10,
        Request::LockSlot { .. } => 11,
        Request::StoreDefBlob { .. } => 12,
        Request::RebuildChain => 13,
        Request::ReadCert { .. } => 14,
        Request::IdentityProof { .. } => 15,
        Request::Random => 16,
        Request::SetBaud { .. } => 17,
        Request::Finish { .. } => 18,
        Request::MaintenanceBegin => 19,
        Request::MaintenanceAuth { .. } => 20,
        Request::StoreIoKey { .. } => 21,
    }
}
pub const REQUEST_VARIANTS: usize = 22;

pub fn response_id(r: &Response) -> usize {
    match r {
        Response::Hello(_) => 0,
        Response::Ok => 1,
        Response::Config(_) => 2,
        Response::PublicKey(_) => 3,
        Response::Data(_) => 4,
        Response::DefBlob(_) => 5,
        Response::Chain(_) => 6,
        Response::CertChunk(_) => 7,
        Response::IdentityProof(_) => 8,
        Response::Random(_) => 9,
        Response::Error(_) => 10,
        Response::MaintenanceNonce(_) => 11,
    }
}
pub const RESPONSE_VARIANTS: usize = 12;

pub fn sample_requests() -> std::vec::Vec<Request> {
    vec![
        Request::Hello,
        Request::ReadConfig,
        Request::WriteConfig {
            offset: 0,
            data: bytes(128, 1),
        },
        Request::WriteConfig {
            offset: 16,
            data: bytes(4, 2),
        },
        Request::LockConfig { crc: 0xA55A },
        Request::GenKey { slot: 0 },
        Request::GenKey { slot: 15 },
        Request::GetPublicKey { slot: 2 },
        Request::ReadSlot {
            slot: 8,
            offset: 0,
            len: 416,
        },
        Request::ReadSlot {
            slot: 10,
            offset: 32,
            len: 40,
        },
        Request::WriteSlot {
            slot: 10,
            offset: 0,
            data: bytes(72, 3),
        },
        Request::WriteSlot {
            slot: 8,
            offset: 0,
            data: bytes(416, 4),
        },
        Request::ReadOtp { offset: 0, len: 64 },
        Request::WriteOtp {
            offset: 0,
            data: bytes(64, 5),
        },
        Request::LockData { crc: Some(0x1234) },
        Request::LockData { crc: None },
        Request::LockSlot { slot: 10 },
        Request::StoreDefBlob {
            total_len: MAX_DEF_BLOB as u32,
            digest: arr32(6),
            signature: Signature {
                r: arr32(20),
                s: arr32(21),
            },
            offset: (MAX_DEF_BLOB - MAX_CHUNK) as u32,
            data: bytes(MAX_CHUNK, 7),
        },
        Request::StoreDefBlob {
            total_len: 1000,
            digest: arr32(8),
            signature: Signature {
                r: arr32(22),
                s: arr32(23),
            },
            offset: 0,
            data: Vec::new(),
        },
        Request::RebuildChain,
        Request::ReadCert {
            cert: CertKind::Device,
            offset: 0,
            len: 512,
        },
        Request::ReadCert {
            cert: CertKind::Signer,
            offset: 256,
            len: 200,
        },
        Request::IdentityProof {
            host_nonce: arr32(9),
        },
        Request::MaintenanceBegin,
        Request::MaintenanceAuth {
            signature: Signature {
                r: arr32(24),
                s: arr32(25),
            },
        },
        Request::StoreIoKey {
            key: IoKey(arr32(26)),
        },
        Request::Random,
        Request::SetBaud { baud: 921_600 },
        Request::Finish { reboot: true },
        Request::Finish { reboot: false },
    ]
}

pub fn hello_info() -> HelloInfo {
    let mut h = fake::FakeDevice::new().hello_info();
    h.features |= FEATURE_SET_BAUD;
    h
}

pub fn sample_responses() -> std::vec::Vec<Response> {
    let mut locked = hello_info();
    locked.chip.config_locked = true;
    locked.chip.data_locked = true;
    locked.chip.slot_locked = 0x1C00;
    locked.def_blob = Some(DefBlobId {
        len: 1024,
        digest: arr32(1),
    });
    vec![
        Response::Hello(hello_info()),
        Response::Hello(locked),
        Response::Ok,
        Response::Config(bytes(128, 2)),
        Response::PublicKey(PublicKey {
            x: arr32(3),
            y: arr32(4),
        }),
        Response::Data(bytes(MAX_CHUNK, 5)),
        Response::Data(bytes(72, 6)),
        Response::DefBlob(DefBlobProgress {
            received: 512,
            total_len: 1024,
            complete: false,
        }),
        Response::DefBlob(DefBlobProgress {
            received: MAX_DEF_BLOB as u32,
            total_len: MAX_DEF_BLOB as u32,
            complete: true,
        }),
        Response::Chain(ChainReport {
            device: CertSummary {
                len: 500,
                digest: arr32(7),
            },
            signer: CertSummary {
                len: 520,
                digest: arr32(8),
            },
        }),
        Response::CertChunk(CertChunk {
            total_len: 600,
            offset: 0,
            data: bytes(MAX_CHUNK, 9),
        }),
        Response::IdentityProof(IdentityProof {
            device_nonce: arr32(13),
            signature: Signature {
                r: arr32(10),
                s: arr32(11),
            },
        }),
        Response::MaintenanceNonce(arr32(14)),
        Response::Random(arr32(12)),
        Response::Error(WireError::new(
            ErrorCode::ChipStatus(0x0F),
            "execution error",
        )),
        Response::Error(WireError::new(ErrorCode::VersionMismatch { device: 1 }, "")),
        Response::Error(WireError::new(ErrorCode::LockedDown, "")),
        Response::Error(WireError::new(ErrorCode::BlobUntrusted, "")),
        Response::Error(WireError::new(ErrorCode::AuthFailed, "")),
        Response::Error(WireError::new(ErrorCode::Internal, &"é".repeat(40))),
        Response::Error(WireError::new(ErrorCode::BadRequest, "")),
        Response::Error(WireError::new(ErrorCode::Unsupported, "")),
        Response::Error(WireError::new(ErrorCode::ChipAbsent, "")),
        Response::Error(WireError::new(ErrorCode::Locked, "")),
        Response::Error(WireError::new(ErrorCode::NotLocked, "")),
        Response::Error(WireError::new(ErrorCode::BlobInvalid, "")),
        Response::Error(WireError::new(ErrorCode::DigestMismatch, "")),
        Response::Error(WireError::new(ErrorCode::NoBlob, "")),
        Response::Error(WireError::new(ErrorCode::VerifyFailed, "")),
        Response::Error(WireError::new(ErrorCode::Busy, "")),
        Response::Error(WireError::new(ErrorCode::OutOfRange, "")),
        Response::Error(WireError::new(ErrorCode::Storage, "")),
    ]
}

/// The frame line of `r` with sequence number `seq`.
pub fn request_line(r: &Request, seq: u16) -> std::vec::Vec<u8> {
    let mut buf = [0u8; MAX_LINE + 1];
    let n = r.encode(seq, &mut buf).unwrap();
    buf[..n].to_vec()
}

/// Feeds `input` through `decoder`, collecting frames as (header, payload) and noise kinds.
pub fn decode_all(
    decoder: &mut LineDecoder,
    mut input: &[u8],
) -> (
    std::vec::Vec<(FrameHeader, std::vec::Vec<u8>)>,
    std::vec::Vec<NoiseKind>,
) {
    let mut frames = std::vec::Vec::new();
    let mut noise = std::vec::Vec::new();
    while !input.is_empty() {
        let (used, ev) = decoder.feed(input);
        match ev {
            Some(Event::Frame(f)) => frames.push((f.header, f.payload.to_vec())),
            Some(Event::Noise { kind, .. }) => noise.push(kind),
            None => {}
        }
        input = &input[used..];
    }
    (frames, noise)
}
