//! The typed messages carried in frames, postcard-encoded.
//!
//! Wire ids are postcard's enum variant indexes, so **variants are only ever appended, never
//! reordered or removed** within a protocol version; changing an id needs a new
//! [`crate::PROTOCOL_VERSION`]. docs/protocol.md §4 lists every field.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::frame::{Dir, EncodeError, encode_frame, header};
use crate::{
    CONFIG_SIZE, MAX_CHUNK, MAX_DEF_BLOB, MAX_DETAIL, MAX_PAYLOAD, MAX_SLOT_SIZE, OTP_SIZE,
};

/// Bytes of one chunked transfer (slot data, blob, certificate).
pub type Chunk = Vec<u8, MAX_CHUNK>;
/// Human-readable error detail.
pub type Detail = String<MAX_DETAIL>;

/// Feature bit in [`HelloInfo::features`]: the device honours [`Request::SetBaud`].
pub const FEATURE_SET_BAUD: u32 = 1 << 0;
/// Feature bit: the device answers [`Request::ReadCert`] with the rebuilt DER bytes.
pub const FEATURE_READ_CERT: u32 = 1 << 1;
/// Feature bit: the device serves [`Request::ReadOtp`] / [`Request::WriteOtp`].
pub const FEATURE_OTP: u32 = 1 << 2;
/// Feature bit: the device serves [`Request::MaintenanceBegin`] / [`Request::MaintenanceAuth`].
pub const FEATURE_MAINTENANCE: u32 = 1 << 3;
/// Feature bit: the device serves [`Request::StoreIoKey`] (IO protection, docs/atecc.md).
pub const FEATURE_IO_KEY: u32 = 1 << 4;

/// Domain label of the definition-blob signature: the signer signs
/// SHA-256(`BLOB_LABEL` ‖ SHA-256(blob)) (docs/certdef-format.md, "Signed blob").
pub const BLOB_LABEL: &[u8] = b"keystamp-blob-v1";
/// Domain label of the identity proof: the device key signs
/// SHA-256(`IDENTITY_LABEL` ‖ host nonce ‖ device nonce).
pub const IDENTITY_LABEL: &[u8] = b"keystamp-identity-v1";
/// Domain label of maintenance authentication: the signer key signs
/// SHA-256(`MAINTENANCE_LABEL` ‖ chip serial (9 bytes) ‖ device nonce).
pub const MAINTENANCE_LABEL: &[u8] = b"keystamp-maint-v1";

/// Host → device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Id 0. Who are you? Never de-duplicated; starts a session (resets the device's sequence
    /// tracking). Answer: [`Response::Hello`].
    Hello,
    /// Id 1. Read the whole 128-byte config zone. Answer: [`Response::Config`].
    ReadConfig,
    /// Id 2. Write config bytes `offset..offset+data.len()`. The device writes the bytes the chip
    /// lets it write (16–83, 88–127; 84/85 through UpdateExtra when still 0) and skips the
    /// factory/lock bytes 0–15 and 86–87. Answer: [`Response::Ok`].
    WriteConfig {
        /// First config byte.
        offset: u8,
        /// Target bytes.
        data: Vec<u8, CONFIG_SIZE>,
    },
    /// Id 3. Lock the config zone; the chip refuses unless its CRC-16 of the zone equals `crc`.
    /// Answer: [`Response::Ok`].
    LockConfig {
        /// ATECC CRC-16 of the 128 config bytes the host read back and checked.
        crc: u16,
    },
    /// Id 4. Create a new private key in `slot`. Answer: [`Response::PublicKey`].
    GenKey {
        /// Key slot 0–15.
        slot: u8,
    },
    /// Id 5. Public key of the private key in `slot`. Answer: [`Response::PublicKey`].
    GetPublicKey {
        /// Key slot 0–15.
        slot: u8,
    },
    /// Id 6. Read `len` bytes of a slot from `offset`. Answer: [`Response::Data`].
    ReadSlot {
        /// Slot 0–15.
        slot: u8,
        /// First byte.
        offset: u16,
        /// Byte count, 1..=[`MAX_CHUNK`].
        len: u16,
    },
    /// Id 7. Write `data` into a slot at `offset` (a multiple of 32; the length a multiple of 4;
    /// a slot's last block may be written whole, the chip ignores the excess). Answer:
    /// [`Response::Ok`].
    WriteSlot {
        /// Slot 0–15.
        slot: u8,
        /// First byte, a multiple of 32.
        offset: u16,
        /// Bytes to write.
        data: Chunk,
    },
    /// Id 8. Read `len` OTP bytes from `offset`. Answer: [`Response::Data`].
    ReadOtp {
        /// First byte (0–63).
        offset: u8,
        /// Byte count, 1..=64.
        len: u8,
    },
    /// Id 9. Write OTP bytes at `offset` (multiple of 32). Answer: [`Response::Ok`].
    WriteOtp {
        /// First byte, 0 or 32.
        offset: u8,
        /// Bytes to write (a multiple of 4).
        data: Vec<u8, OTP_SIZE>,
    },
    /// Id 10. Lock the data and OTP zones, with the chip checking `crc` (CRC-16 over all
    /// non-private slots then OTP) when given. Answer: [`Response::Ok`].
    LockData {
        /// Summary CRC, or `None` to lock without a check (only when nothing was written yet).
        crc: Option<u16>,
    },
    /// Id 11. Lock one slot (KeyConfig.Lockable must be set). Answer: [`Response::Ok`].
    LockSlot {
        /// Slot 0–15.
        slot: u8,
    },
    /// Id 12. Store (part of) the signed certificate-definition blob in the device's flash.
    ///
    /// Idempotent and resumable: a blob is named by `(total_len, digest, signature)`; a new name
    /// discards a partial upload; a chunk whose `offset` is not the device's `received` count is
    /// not written (the answer tells the host where to continue); an empty chunk only asks for
    /// progress. When the last byte arrives the device checks the SHA-256 (transfer integrity),
    /// then the signature with the chip's Verify against the trust anchor (signer public key in
    /// slot 11), then parses the blob. Answer: [`Response::DefBlob`].
    StoreDefBlob {
        /// Whole blob length, 1..=[`MAX_DEF_BLOB`].
        total_len: u32,
        /// SHA-256 of the whole blob (transfer integrity only; it authenticates nothing).
        #[serde(with = "fixed")]
        digest: [u8; 32],
        /// The signer's signature of SHA-256([`BLOB_LABEL`] ‖ `digest`).
        signature: Signature,
        /// Where `data` goes.
        offset: u32,
        /// The bytes (may be empty).
        data: Chunk,
    },
    /// Id 13. Rebuild the device and signer certificates from what the chip holds and the stored
    /// definition, and verify both signatures. Answer: [`Response::Chain`].
    RebuildChain,
    /// Id 14. Read the rebuilt DER certificate (after [`Request::RebuildChain`]). Answer:
    /// [`Response::CertChunk`].
    ReadCert {
        /// Which certificate.
        cert: CertKind,
        /// First byte.
        offset: u16,
        /// Byte count, 1..=[`MAX_CHUNK`].
        len: u16,
    },
    /// Id 15. Prove the device key: the device takes a nonce from the chip's RNG and signs
    /// SHA-256([`IDENTITY_LABEL`] ‖ `host_nonce` ‖ device nonce) with the device key, so the
    /// signed digest is never one the host chose. Answer: [`Response::IdentityProof`].
    IdentityProof {
        /// Fresh random bytes from the host.
        #[serde(with = "fixed")]
        host_nonce: [u8; 32],
    },
    /// Id 16. 32 bytes from the chip's RNG. Answer: [`Response::Random`].
    Random,
    /// Id 17. Switch the UART to `baud` right after sending the answer (see docs/protocol.md §6).
    /// Answer: [`Response::Ok`].
    SetBaud {
        /// New baud rate.
        baud: u32,
    },
    /// Id 18. End of provisioning (or of a maintenance session: clears its authentication).
    /// Answer: [`Response::Ok`], then the device reboots if asked.
    Finish {
        /// Reboot after answering.
        reboot: bool,
    },
    /// Id 19. Start maintenance authentication: the device draws a nonce from the chip's RNG and
    /// remembers it for this connection only (a new nonce replaces it). Answer:
    /// [`Response::MaintenanceNonce`].
    MaintenanceBegin,
    /// Id 20. Authenticate for maintenance: `signature` by the signer key over
    /// SHA-256([`MAINTENANCE_LABEL`] ‖ chip serial ‖ nonce), checked with the chip's Verify
    /// against the locked trust-anchor slot. The nonce is used up whatever the outcome. Answer:
    /// [`Response::Ok`].
    MaintenanceAuth {
        /// R ‖ S.
        signature: Signature,
    },
    /// Id 21. Keep the chip's IO-protection key in the device's flash (docs/atecc.md "IO
    /// protection"). Served only while the chip's data zone is unlocked — the only time the key
    /// can still be written to its slot — else [`ErrorCode::LockedDown`]; no request ever returns
    /// the key. Answer: [`Response::Ok`].
    StoreIoKey {
        /// The 32-byte key the host wrote to the IO-protection key slot.
        key: IoKey,
    },
}

/// The 32-byte IO-protection key. Its `Debug` never shows the bytes, so a logged request does
/// not leak it.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoKey(#[serde(with = "fixed")] pub [u8; 32]);

impl core::fmt::Debug for IoKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IoKey(..)")
    }
}

/// Device → host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Id 0. Answer to [`Request::Hello`].
    Hello(HelloInfo),
    /// Id 1. Done, nothing to return.
    Ok,
    /// Id 2. The 128-byte config zone.
    Config(Vec<u8, CONFIG_SIZE>),
    /// Id 3. An uncompressed P-256 public key.
    PublicKey(PublicKey),
    /// Id 4. Slot or OTP bytes.
    Data(Chunk),
    /// Id 5. Upload progress of the definition blob.
    DefBlob(DefBlobProgress),
    /// Id 6. The rebuilt and verified chain.
    Chain(ChainReport),
    /// Id 7. Part of a rebuilt certificate.
    CertChunk(CertChunk),
    /// Id 8. Answer to [`Request::IdentityProof`].
    IdentityProof(IdentityProof),
    /// Id 9. Random bytes.
    Random(#[serde(with = "fixed")] [u8; 32]),
    /// Id 10. The request failed; nothing (more) was done.
    Error(WireError),
    /// Id 11. Answer to [`Request::MaintenanceBegin`]: the nonce to sign.
    MaintenanceNonce(#[serde(with = "fixed")] [u8; 32]),
}

/// The device's answer to [`Request::IdentityProof`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProof {
    /// The nonce the device drew from the chip's RNG.
    #[serde(with = "fixed")]
    pub device_nonce: [u8; 32],
    /// The device key's signature of SHA-256([`IDENTITY_LABEL`] ‖ host nonce ‖ device nonce).
    pub signature: Signature,
}

/// Where the device is in its life, derived from the chip's lock bytes alone (so it survives
/// reboots and flash erasure).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Lifecycle {
    /// Id 0. Config zone unlocked.
    Factory,
    /// Id 1. Config zone locked; data zone unlocked or the trust-anchor slot not locked.
    Provisioning,
    /// Id 2. Data zone locked and the trust-anchor slot locked: only reads, the chain rebuild and
    /// the identity proof are served without maintenance authentication.
    Locked,
}

/// A platform security feature as the device knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Tristate {
    /// Id 0. The firmware cannot read it (no API, or not applicable).
    Unknown,
    /// Id 1. Known off.
    Off,
    /// Id 2. Known on.
    On,
}

/// The board's security state, read from its eFuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PlatformSecurity {
    /// Secure Boot (v2) enabled.
    pub secure_boot: Tristate,
    /// Flash encryption enabled.
    pub flash_encryption: Tristate,
    /// JTAG permanently disabled.
    pub jtag_disabled: Tristate,
    /// ROM download mode disabled (or secure download mode).
    pub download_mode_disabled: Tristate,
}

impl PlatformSecurity {
    /// Nothing known.
    pub const UNKNOWN: Self = Self {
        secure_boot: Tristate::Unknown,
        flash_encryption: Tristate::Unknown,
        jtag_disabled: Tristate::Unknown,
        download_mode_disabled: Tristate::Unknown,
    };
}

/// Device facts, sent in answer to [`Request::Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloInfo {
    /// Longest line the device accepts and sends (characters before the terminator).
    pub max_line: u16,
    /// Largest chunk the device accepts in one request.
    pub max_chunk: u16,
    /// `FEATURE_*` bits.
    pub features: u32,
    /// Firmware version.
    pub firmware: FirmwareVersion,
    /// The secure element.
    pub chip: ChipInfo,
    /// The stored certificate-definition blob, if one is stored and its signature verifies
    /// against the trust anchor.
    pub def_blob: Option<DefBlobId>,
    /// The protocol version the device speaks ([`crate::PROTOCOL_VERSION`]).
    pub protocol: u8,
    /// Life-cycle state derived from the chip.
    pub lifecycle: Lifecycle,
    /// A blob is stored but its signature does not verify (it is not used).
    pub blob_untrusted: bool,
    /// This connection is authenticated for maintenance.
    pub maintenance: bool,
    /// The board's security state.
    pub platform: PlatformSecurity,
}

/// Semantic version of the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch.
    pub patch: u8,
}

/// What the device knows about its secure element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChipInfo {
    /// Info(Revision) bytes, e.g. `00 00 60 02` for an ATECC608A.
    pub revision: [u8; 4],
    /// Serial number: config bytes 0–3 ‖ 8–12.
    pub serial: [u8; 9],
    /// Config zone locked (byte 87 ≠ 0x55).
    pub config_locked: bool,
    /// Data/OTP zones locked (byte 86 ≠ 0x55).
    pub data_locked: bool,
    /// Bit n set = slot n is locked (the inverse of the chip's SlotLocked bytes 88–89).
    pub slot_locked: u16,
}

/// Names a stored definition blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefBlobId {
    /// Length in bytes.
    pub len: u32,
    /// SHA-256 of the blob.
    #[serde(with = "fixed")]
    pub digest: [u8; 32],
}

/// How much of a definition blob the device holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefBlobProgress {
    /// Bytes received so far (the next chunk's offset).
    pub received: u32,
    /// Whole blob length.
    pub total_len: u32,
    /// All bytes received, digest checked and blob parsed; it is now the stored definition.
    pub complete: bool,
}

/// The chain the device rebuilt and verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// The device certificate.
    pub device: CertSummary,
    /// The signer certificate.
    pub signer: CertSummary,
}

/// Length and SHA-256 of a rebuilt DER certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    /// DER length.
    pub len: u16,
    /// SHA-256 of the DER bytes.
    #[serde(with = "fixed")]
    pub digest: [u8; 32],
}

/// Which rebuilt certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertKind {
    /// Id 0: the device certificate.
    Device,
    /// Id 1: the signer (intermediate CA) certificate.
    Signer,
}

/// Part of a rebuilt certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertChunk {
    /// Whole DER length.
    pub total_len: u16,
    /// Offset of `data`.
    pub offset: u16,
    /// The bytes.
    pub data: Chunk,
}

/// An uncompressed P-256 public key (big-endian coordinates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// X coordinate.
    #[serde(with = "fixed")]
    pub x: [u8; 32],
    /// Y coordinate.
    #[serde(with = "fixed")]
    pub y: [u8; 32],
}

/// An ECDSA P-256 signature (big-endian R and S), as the chip's Sign command returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// R.
    #[serde(with = "fixed")]
    pub r: [u8; 32],
    /// S.
    #[serde(with = "fixed")]
    pub s: [u8; 32],
}

/// A failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// What went wrong.
    pub code: ErrorCode,
    /// For humans; may be empty.
    pub detail: Detail,
}

impl WireError {
    /// An error with `detail` cut to [`MAX_DETAIL`] bytes (at a character boundary).
    pub fn new(code: ErrorCode, detail: &str) -> Self {
        let mut d = Detail::new();
        for c in detail.chars() {
            if d.push(c).is_err() {
                break;
            }
        }
        Self { code, detail: d }
    }
}

/// Typed error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Id 0. The request frame had another protocol version; `device` is the device's.
    VersionMismatch {
        /// The version the device speaks.
        device: u8,
    },
    /// Id 1. The payload did not decode, or a field is out of range.
    BadRequest,
    /// Id 2. This device does not implement the request.
    Unsupported,
    /// Id 3. The secure element does not answer.
    ChipAbsent,
    /// Id 4. The secure element answered with this status byte (e.g. 0x0F execution error).
    ChipStatus(u8),
    /// Id 5. The zone or slot is already locked.
    Locked,
    /// Id 6. The zone must be locked first.
    NotLocked,
    /// Id 7. The definition blob does not parse.
    BlobInvalid,
    /// Id 8. The uploaded blob's SHA-256 differs from the announced digest.
    DigestMismatch,
    /// Id 9. No definition blob is stored.
    NoBlob,
    /// Id 10. A rebuilt certificate's signature does not verify.
    VerifyFailed,
    /// Id 11. The device is busy; retry later.
    Busy,
    /// Id 12. Offset/length outside the zone, slot or certificate.
    OutOfRange,
    /// Id 13. Flash storage failed.
    Storage,
    /// Id 14. Anything else.
    Internal,
    /// Id 15. The device is locked: this request writes, generates, locks or signs and needs
    /// maintenance authentication first.
    LockedDown,
    /// Id 16. The definition blob is unsigned, mis-signed or altered (its signature does not
    /// verify against the trust anchor).
    BlobUntrusted,
    /// Id 17. Maintenance authentication failed (no nonce, nonce used up, or bad signature).
    AuthFailed,
}

/// Why a payload is not a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// postcard could not decode it.
    Postcard,
    /// Bytes were left after the message.
    TrailingBytes,
}

/// `[u8; N]` as a postcard tuple of N bytes (the same bytes serde's array impl writes), decoded
/// in a loop: serde's own array visitor is unrolled per element and was copied for every place
/// a 32-byte field is decoded (≈ 1.2 KB of device code each).
mod fixed {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(N)?;
        for b in v {
            t.serialize_element(b)?;
        }
        t.end()
    }

    struct Bytes<const N: usize>;

    impl<'de, const N: usize> Visitor<'de> for Bytes<N> {
        type Value = [u8; N];

        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a fixed number of bytes")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
            let mut out = [0u8; N];
            for (i, b) in out.iter_mut().enumerate() {
                *b = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(i, &self))?;
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        d.deserialize_tuple(N, Bytes::<N>)
    }
}

fn decode_exact<'de, T: Deserialize<'de>>(payload: &'de [u8]) -> Result<T, DecodeError> {
    let (msg, rest) = postcard::take_from_bytes(payload).map_err(|_| DecodeError::Postcard)?;
    if rest.is_empty() {
        Ok(msg)
    } else {
        Err(DecodeError::TrailingBytes)
    }
}

fn encode_msg<T: Serialize>(
    msg: &T,
    dir: Dir,
    seq: u16,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let payload = postcard::to_slice(msg, &mut buf).map_err(|_| EncodeError::PayloadTooLong)?;
    encode_frame(header(dir, seq), payload, out)
}

fn slot_ok(slot: u8) -> bool {
    slot < 16
}

fn span_ok(offset: u32, len: u32, limit: u32) -> bool {
    offset.checked_add(len).is_some_and(|end| end <= limit)
}

impl Request {
    /// Writes this request as a frame line (with `\n`) into `out`; returns its length.
    pub fn encode(&self, seq: u16, out: &mut [u8]) -> Result<usize, EncodeError> {
        encode_msg(self, Dir::Request, seq, out)
    }

    /// Decodes a request from a frame payload (the whole payload must be used).
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(payload)
    }

    /// Checks the protocol's limits (docs/protocol.md §4). The device answers a request that
    /// fails this with [`ErrorCode::BadRequest`] without executing it.
    pub fn validate(&self) -> Result<(), ErrorCode> {
        let ok = match self {
            Request::Hello | Request::ReadConfig | Request::RebuildChain | Request::Random => true,
            Request::IdentityProof { .. }
            | Request::MaintenanceBegin
            | Request::MaintenanceAuth { .. }
            | Request::StoreIoKey { .. } => true,
            Request::Finish { .. } | Request::LockConfig { .. } | Request::LockData { .. } => true,
            Request::WriteConfig { offset, data } => {
                !data.is_empty() && span_ok((*offset).into(), data.len() as u32, CONFIG_SIZE as u32)
            }
            Request::GenKey { slot }
            | Request::GetPublicKey { slot }
            | Request::LockSlot { slot } => slot_ok(*slot),
            Request::ReadSlot { slot, offset, len } => {
                slot_ok(*slot)
                    && *len >= 1
                    && usize::from(*len) <= MAX_CHUNK
                    && span_ok((*offset).into(), (*len).into(), MAX_SLOT_SIZE as u32)
            }
            Request::WriteSlot { slot, offset, data } => {
                slot_ok(*slot)
                    && offset % 32 == 0
                    && !data.is_empty()
                    && data.len() % 4 == 0
                    && span_ok((*offset).into(), data.len() as u32, MAX_SLOT_SIZE as u32)
            }
            Request::ReadOtp { offset, len } => {
                *len >= 1 && span_ok((*offset).into(), (*len).into(), OTP_SIZE as u32)
            }
            Request::WriteOtp { offset, data } => {
                offset % 32 == 0
                    && !data.is_empty()
                    && data.len() % 4 == 0
                    && span_ok((*offset).into(), data.len() as u32, OTP_SIZE as u32)
            }
            Request::StoreDefBlob {
                total_len,
                offset,
                data,
                ..
            } => {
                *total_len >= 1
                    && *total_len as usize <= MAX_DEF_BLOB
                    && span_ok(*offset, data.len() as u32, *total_len)
            }
            Request::ReadCert { len, .. } => *len >= 1 && usize::from(*len) <= MAX_CHUNK,
            Request::SetBaud { baud } => *baud >= 1200,
        };
        if ok {
            Ok(())
        } else {
            Err(ErrorCode::BadRequest)
        }
    }

    /// Whether `response` is a possible answer to this request ([`Response::Error`] always is).
    pub fn expects(&self, response: &Response) -> bool {
        use Request as Q;
        use Response as R;
        matches!(
            (self, response),
            (_, R::Error(_))
                | (Q::Hello, R::Hello(_))
                | (Q::ReadConfig, R::Config(_))
                | (Q::GenKey { .. } | Q::GetPublicKey { .. }, R::PublicKey(_))
                | (Q::ReadSlot { .. } | Q::ReadOtp { .. }, R::Data(_))
                | (Q::StoreDefBlob { .. }, R::DefBlob(_))
                | (Q::RebuildChain, R::Chain(_))
                | (Q::ReadCert { .. }, R::CertChunk(_))
                | (Q::IdentityProof { .. }, R::IdentityProof(_))
                | (Q::MaintenanceBegin, R::MaintenanceNonce(_))
                | (Q::Random, R::Random(_))
                | (
                    Q::WriteConfig { .. }
                        | Q::LockConfig { .. }
                        | Q::WriteSlot { .. }
                        | Q::WriteOtp { .. }
                        | Q::LockData { .. }
                        | Q::LockSlot { .. }
                        | Q::SetBaud { .. }
                        | Q::Finish { .. }
                        | Q::MaintenanceAuth { .. }
                        | Q::StoreIoKey { .. },
                    R::Ok
                )
        )
    }

    /// Upper bound on the device's work for this request in milliseconds (chip execution, flash
    /// writes, software signature checks), added to the host's timeout.
    pub fn device_time_hint_ms(&self) -> u32 {
        match self {
            // GenKey/Sign take up to 115 ms at the chip's default clock and up to ~665 ms with
            // the slowest ChipMode divider (atecc608.md §4.3); GetPublicKey is a GenKey too.
            Request::GenKey { .. } | Request::GetPublicKey { .. } => 800,
            // Random + Sign.
            Request::IdentityProof { .. } => 900,
            // Nonce + Verify.
            Request::MaintenanceAuth { .. } => 300,
            // Two software ECDSA verifications on a small MCU.
            Request::RebuildChain => 2000,
            // Flash erase/write of a sector plus SHA-256, the chip's Verify and parsing on the
            // last chunk.
            Request::StoreDefBlob { .. } => 700,
            // A flash sector read-modify-write.
            Request::StoreIoKey { .. } => 300,
            Request::LockConfig { .. } | Request::LockData { .. } | Request::LockSlot { .. } => 200,
            Request::WriteConfig { .. } | Request::WriteSlot { .. } | Request::WriteOtp { .. } => {
                300
            }
            _ => 100,
        }
    }

    /// The request's name as written in docs/protocol.md.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Hello => "Hello",
            Request::ReadConfig => "ReadConfig",
            Request::WriteConfig { .. } => "WriteConfig",
            Request::LockConfig { .. } => "LockConfig",
            Request::GenKey { .. } => "GenKey",
            Request::GetPublicKey { .. } => "GetPublicKey",
            Request::ReadSlot { .. } => "ReadSlot",
            Request::WriteSlot { .. } => "WriteSlot",
            Request::ReadOtp { .. } => "ReadOtp",
            Request::WriteOtp { .. } => "WriteOtp",
            Request::LockData { .. } => "LockData",
            Request::LockSlot { .. } => "LockSlot",
            Request::StoreDefBlob { .. } => "StoreDefBlob",
            Request::RebuildChain => "RebuildChain",
            Request::ReadCert { .. } => "ReadCert",
            Request::IdentityProof { .. } => "IdentityProof",
            Request::Random => "Random",
            Request::SetBaud { .. } => "SetBaud",
            Request::Finish { .. } => "Finish",
            Request::MaintenanceBegin => "MaintenanceBegin",
            Request::MaintenanceAuth { .. } => "MaintenanceAuth",
            Request::StoreIoKey { .. } => "StoreIoKey",
        }
    }
}

impl Response {
    /// Writes this response as a frame line (with `\n`) into `out`; returns its length.
    pub fn encode(&self, seq: u16, out: &mut [u8]) -> Result<usize, EncodeError> {
        encode_msg(self, Dir::Response, seq, out)
    }

    /// Decodes a response from a frame payload (the whole payload must be used).
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(payload)
    }

    /// The response's name as written in docs/protocol.md.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Hello(_) => "Hello",
            Response::Ok => "Ok",
            Response::Config(_) => "Config",
            Response::PublicKey(_) => "PublicKey",
            Response::Data(_) => "Data",
            Response::DefBlob(_) => "DefBlob",
            Response::Chain(_) => "Chain",
            Response::CertChunk(_) => "CertChunk",
            Response::IdentityProof(_) => "IdentityProof",
            Response::Random(_) => "Random",
            Response::Error(_) => "Error",
            Response::MaintenanceNonce(_) => "MaintenanceNonce",
        }
    }
}
