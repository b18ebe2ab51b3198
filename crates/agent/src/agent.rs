//! The provisioning server: wire requests in, chip and codec work, wire responses out.

use embedded_storage::Storage;
use keystamp_certdef::DefBlob;
use keystamp_wire::{
    CertChunk, CertKind, CertSummary, ChainReport, ChipInfo, Chunk, DefBlobId, DefBlobProgress,
    DeviceEvent, DeviceSession, ErrorCode, FEATURE_IO_KEY, FEATURE_MAINTENANCE, FEATURE_OTP,
    FEATURE_READ_CERT, FEATURE_SET_BAUD, FirmwareVersion, HelloInfo, IdentityProof, Lifecycle,
    MAX_CHUNK, MAX_LINE, PROTOCOL_VERSION, PlatformSecurity, PublicKey, Request, Response,
    Signature, WireError,
};

use crate::auth::{self, ANCHOR_SLOT, DEVICE_KEY_SLOT};
use crate::cache::CachedChip;
use crate::chip::{CONFIG_SIZE, Chip, ChipError, OTP_SIZE, slot_size};
use crate::identity::{self, Definitions, IdentityError};
use crate::store::{self, StoreError};

/// Largest DER certificate the agent rebuilds (P-256 certificates are typically 450–700 bytes).
pub const MAX_CERT: usize = 1024;

use keystamp_atecc::config::{LOCK_CONFIG_BYTE as LOCK_CONFIG, LOCK_VALUE_BYTE, UNLOCKED};

/// What the firmware should do after [`Agent::feed`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action {
    /// Keep serving.
    Continue,
    /// The host finished provisioning; reboot when `true` (after the answer was written).
    Finished {
        /// Reboot into the product path.
        reboot: bool,
    },
    /// The host asked for another baud rate and the answer (`Ok`) was written at the current
    /// one: once it has left the UART, switch to `baud`, and return to the current rate unless a
    /// request arrives at the new rate within [`BAUD_CONFIRM_MS`] (docs/protocol.md §4.2).
    SetBaud {
        /// The new rate.
        baud: u32,
    },
}

/// How long a device waits at a new baud rate for the host's first frame before it returns to
/// the rate it came from (docs/protocol.md §4.2 `SetBaud`).
pub const BAUD_CONFIRM_MS: u32 = 2000;

/// The device agent: one wire session, the chip, blob storage, and the rebuilt chain.
///
/// `B` is the largest certificate-definition blob the device accepts (RAM: two buffers of `B`
/// bytes — the active blob and an upload in progress).
pub struct Agent<C, S, const B: usize = 4096> {
    session: DeviceSession,
    core: Core<C, S, B>,
}

struct Core<C, S, const B: usize> {
    /// The chip, with what was read from it remembered while nothing changed it.
    chip: CachedChip<C>,
    store: S,
    firmware: FirmwareVersion,
    platform: PlatformSecurity,
    active: [u8; B],
    /// The active blob (stored, parsed, signature verified against the trust anchor).
    active_id: Option<store::Stored>,
    /// A blob is stored but its signature did not verify: it is not used.
    untrusted: bool,
    /// The active blob's signature verified against the anchor on this boot, and neither the
    /// blob nor the anchor slot changed since (a `RebuildChain` then needs no second Verify).
    anchor_verified: bool,
    staging: [u8; B],
    upload: Option<Upload>,
    device_der: [u8; MAX_CERT],
    signer_der: [u8; MAX_CERT],
    /// Lengths of the certificates last rebuilt and verified.
    chain: Option<(usize, usize)>,
    /// The life cycle as last read from the chip; re-read after every request that may lock.
    lifecycle: Option<Lifecycle>,
    /// The maintenance nonce issued on this connection and not used yet.
    maintenance_nonce: Option<[u8; 32]>,
    /// This connection authenticated for maintenance.
    maintenance: bool,
    /// Highest UART rate the firmware can switch to (0: `SetBaud` is not supported).
    max_baud: u32,
}

#[derive(Clone, Copy)]
struct Upload {
    total_len: u32,
    digest: [u8; 32],
    signature: [u8; 64],
    received: u32,
}

impl<C: Chip, S: Storage, const B: usize> Agent<C, S, B> {
    /// An agent over `chip` and `store`; loads the stored definition blob if there is a valid one.
    pub fn new(chip: C, store: S, firmware: FirmwareVersion) -> Self {
        let mut core = Core {
            chip: CachedChip::new(chip),
            store,
            firmware,
            platform: PlatformSecurity::UNKNOWN,
            active: [0; B],
            active_id: None,
            untrusted: false,
            anchor_verified: false,
            staging: [0; B],
            upload: None,
            device_der: [0; MAX_CERT],
            signer_der: [0; MAX_CERT],
            chain: None,
            lifecycle: None,
            maintenance_nonce: None,
            maintenance: false,
            max_baud: 0,
        };
        core.load_blob();
        core.chip.idle();
        Agent {
            session: DeviceSession::new(),
            core,
        }
    }

    /// Feeds bytes received from the host; writes every answer through `write`. Returns what the
    /// firmware should do next.
    pub fn feed<E>(
        &mut self,
        mut input: &[u8],
        mut write: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Action, E> {
        let mut action = Action::Continue;
        while !input.is_empty() {
            let (used, event) = self.session.feed(input);
            input = input.get(used..).unwrap_or_default();
            match event {
                Some(DeviceEvent::Request { seq, request }) => {
                    let mut response = Response::Ok;
                    // One wake for the whole request (the driver re-wakes before the watchdog
                    // would expire), one Idle after it, before the answer goes out.
                    self.core.chip.hold_awake(true);
                    self.core.execute(&request, &mut response);
                    self.core.chip.idle();
                    self.core.chip.hold_awake(false);
                    match (&request, &response) {
                        (Request::Finish { reboot }, Response::Ok) => {
                            action = Action::Finished { reboot: *reboot };
                        }
                        (Request::SetBaud { baud }, Response::Ok) => {
                            action = Action::SetBaud { baud: *baud };
                        }
                        _ => {}
                    }
                    write(self.session.respond(seq, &response))?;
                }
                Some(DeviceEvent::Send { bytes, .. }) => write(bytes)?,
                Some(DeviceEvent::Noise { .. } | DeviceEvent::Ignored { .. }) | None => {}
            }
            if used == 0 {
                break;
            }
        }
        Ok(action)
    }

    /// Serves the protocol on a byte stream until the host sends `Finish`; returns its reboot flag.
    /// (No baud switching here: [`Agent::set_max_baud`] is for firmware that polls with
    /// [`Agent::feed`] and acts on [`Action::SetBaud`].)
    pub fn serve<IO: embedded_io::Read + embedded_io::Write>(
        &mut self,
        io: &mut IO,
    ) -> Result<bool, IO::Error> {
        let mut buf = [0u8; 256];
        loop {
            let n = io.read(&mut buf)?;
            let chunk = buf.get(..n).unwrap_or_default();
            let action = self.feed(chunk, |bytes| io.write_all(bytes))?;
            io.flush()?;
            if let Action::Finished { reboot } = action {
                return Ok(reboot);
            }
        }
    }

    /// The highest UART rate the firmware switches to on the host's `SetBaud` (0, the default:
    /// not supported; `Hello` then leaves out [`keystamp_wire::FEATURE_SET_BAUD`]).
    pub fn set_max_baud(&mut self, max_baud: u32) {
        self.core.max_baud = max_baud;
    }

    /// Sets the board's security state reported in Hello (the firmware reads it from eFuses).
    pub fn set_platform(&mut self, platform: PlatformSecurity) {
        self.core.platform = platform;
    }

    /// The life-cycle state the chip's lock bytes say now.
    pub fn lifecycle(&mut self) -> Result<Lifecycle, ChipError> {
        self.core.lifecycle = None;
        self.core.chip.forget();
        self.core.current_lifecycle()
    }

    /// Whether this connection is authenticated for maintenance.
    pub fn maintenance_authenticated(&self) -> bool {
        self.core.maintenance
    }

    /// Forgets the connection: the wire session, a maintenance nonce and authentication (what a
    /// reset does; the firmware calls it when a host session ends).
    pub fn end_connection(&mut self) {
        self.session.reset();
        self.core.end_maintenance();
    }

    /// The definitions in the stored blob, if one is stored, parses and its signature verified.
    pub fn definitions(&self) -> Option<Definitions<'_>> {
        self.core.definitions().ok()
    }

    /// Whether a blob is stored whose signature does not verify against the trust anchor (the
    /// product path reports it instead of using the blob).
    pub fn blob_untrusted(&self) -> bool {
        self.core.untrusted
    }

    /// Rebuilds and verifies the device's chain from the chip into the caller's buffers (the
    /// product path's run-time identity). The blob's signature is checked with the chip first.
    pub fn rebuild_identity(
        &mut self,
        device_out: &mut [u8],
        signer_out: &mut [u8],
    ) -> Result<identity::ChainLens, IdentityError> {
        let core = &mut self.core;
        core.check_active_blob()?;
        let len = core.active_id.map_or(0, |a| a.len);
        let bytes = core.active.get(..len).unwrap_or_default();
        let defs = definitions_of(bytes)?;
        let lens = identity::rebuild_chain(&mut core.chip, &defs, device_out, signer_out)?;
        let dev = device_out.get(..lens.device).unwrap_or_default();
        let sig = signer_out.get(..lens.signer).unwrap_or_default();
        identity::verify_chain(&mut core.chip, &defs, dev, sig)?;
        Ok(lens)
    }

    /// The IO-protection key the station stored (docs/atecc.md "IO protection"): the firmware
    /// decrypts the chip's encrypted ECDH/KDF output with it. `None` if none is stored.
    pub fn io_protection_key(&mut self) -> Option<[u8; 32]> {
        store::load_io_key(&mut self.core.store).ok()
    }

    /// The chip, e.g. for the product path's signing. What the agent remembered of the chip is
    /// forgotten (the caller may change it).
    pub fn chip(&mut self) -> &mut C {
        self.core.anchor_verified = false;
        self.core.chip.inner()
    }

    /// Gives back the chip and the storage.
    pub fn release(self) -> (C, S) {
        (self.core.chip.into_inner(), self.core.store)
    }
}

/// The definitions held by a blob: device and signer definitions and the root public key.
pub fn definitions_of(blob: &[u8]) -> Result<Definitions<'_>, IdentityError> {
    let blob = DefBlob::parse(blob)?;
    let missing = IdentityError::Codec(keystamp_certdef::Error::BadBlob);
    Ok(Definitions {
        device: blob.device_def().ok_or(missing)?,
        signer: blob.signer_def().ok_or(missing)?,
        root_public_key: *blob.root_public_key().ok_or(missing)?,
    })
}

/// A failed request: the error code and its detail text. Small on purpose: every `?` in the
/// dispatcher moves it, and a full [`WireError`] (72 bytes) there cost hundreds of bytes of
/// device code per site; it becomes a `WireError` once, in [`Core::execute`].
#[derive(Clone, Copy)]
struct Fail {
    code: ErrorCode,
    detail: &'static str,
}

fn err(code: ErrorCode, detail: &'static str) -> Fail {
    Fail { code, detail }
}

fn chip_err(e: ChipError) -> Fail {
    match e {
        ChipError::Absent => err(ErrorCode::ChipAbsent, "secure element does not answer"),
        ChipError::Status(s) => err(ErrorCode::ChipStatus(s), "secure element refused"),
        ChipError::Communication => {
            err(ErrorCode::ChipAbsent, "secure element answers are corrupt")
        }
        ChipError::OutOfRange => err(ErrorCode::OutOfRange, "outside the zone or slot"),
        ChipError::ConfigMismatch => err(ErrorCode::ChipStatus(0x0F), "config read-back differs"),
    }
}

fn identity_err(e: IdentityError) -> Fail {
    match e {
        IdentityError::Chip(c) => chip_err(c),
        IdentityError::Codec(_) => err(
            ErrorCode::BlobInvalid,
            "definition does not fit the chip data",
        ),
        IdentityError::TooMuchDeviceData => {
            err(ErrorCode::BlobInvalid, "definition reads too much")
        }
        IdentityError::SignerSignature => err(ErrorCode::VerifyFailed, "signer certificate"),
        IdentityError::DeviceSignature => err(ErrorCode::VerifyFailed, "device certificate"),
        IdentityError::NoBlob => err(ErrorCode::NoBlob, "store a definition blob first"),
        IdentityError::BlobUntrusted => untrusted(),
    }
}

fn untrusted() -> Fail {
    err(ErrorCode::BlobUntrusted, "signature vs slot 11")
}

// The helpers below take the chip's 64 bytes by reference and are out of line, so the bytes
// are copied in memory instead of held in registers inside the request dispatcher.

/// X ‖ Y as a public-key answer.
#[inline(never)]
fn public_key(out: &mut Response, pk: &[u8; 64]) {
    let (x, y) = halves(pk);
    *out = Response::PublicKey(PublicKey { x, y });
}

/// R ‖ S as a wire signature.
fn signature(rs: &[u8; 64]) -> Signature {
    let (r, s) = halves(rs);
    Signature { r, s }
}

/// A wire signature as R ‖ S.
fn rs(sig: &Signature) -> [u8; 64] {
    let mut v = [0u8; 64];
    v[..32].copy_from_slice(&sig.r);
    v[32..].copy_from_slice(&sig.s);
    v
}

fn halves(v: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut a = [0; 32];
    let mut b = [0; 32];
    a.copy_from_slice(&v[..32]);
    b.copy_from_slice(&v[32..]);
    (a, b)
}

impl<C: Chip, S: Storage, const B: usize> Core<C, S, B> {
    /// Loads the stored blob; it becomes active only if it parses and its signature verifies
    /// against the trust anchor (a chip that does not answer leaves it inactive, not trusted).
    fn load_blob(&mut self) {
        self.active_id = None;
        self.untrusted = false;
        let Ok(stored) = store::load(&mut self.store, &mut self.active) else {
            return;
        };
        // Trust first (an altered blob is reported as untrusted even if it does not parse).
        self.active_id = Some(stored);
        if self.check_active_blob().is_err() {
            self.active_id = None;
            return;
        }
        let parses = self
            .active
            .get(..stored.len)
            .is_some_and(|b| definitions_of(b).is_ok());
        if !parses {
            self.active_id = None;
        }
    }

    /// Checks the active blob's signature with the chip (at load and before every use); an
    /// untrusted blob is dropped from use and reported.
    fn check_active_blob(&mut self) -> Result<(), IdentityError> {
        let stored = self.active_id.ok_or(IdentityError::NoBlob)?;
        let digest = auth::blob_envelope_digest(&stored.digest);
        self.anchor_verified = false;
        match self
            .chip
            .verify_stored(ANCHOR_SLOT, &digest, &stored.signature)
        {
            Ok(true) => {
                self.untrusted = false;
                self.anchor_verified = true;
                Ok(())
            }
            // A miscompare, or a Verify the chip refuses (no valid key in the anchor slot).
            Ok(false) | Err(ChipError::Status(_)) => {
                self.untrusted = true;
                self.active_id = None;
                self.chain = None;
                Err(IdentityError::BlobUntrusted)
            }
            Err(e) => Err(IdentityError::Chip(e)),
        }
    }

    fn definitions(&self) -> Result<Definitions<'_>, IdentityError> {
        let stored = self.active_id.ok_or(IdentityError::NoBlob)?;
        definitions_of(self.active.get(..stored.len).unwrap_or_default())
    }

    fn current_lifecycle(&mut self) -> Result<Lifecycle, ChipError> {
        if let Some(l) = self.lifecycle {
            return Ok(l);
        }
        let l = auth::lifecycle(&self.chip.read_config()?);
        self.lifecycle = Some(l);
        Ok(l)
    }

    fn end_maintenance(&mut self) {
        self.maintenance = false;
        self.maintenance_nonce = None;
    }

    /// Answers `request` in `out` (a failure as [`Response::Error`]). Out of line: with a single
    /// caller (the firmware's poll loop) it was inlined there with the session's decoder, and the
    /// merged frame spilled several KB of device code (docs/firmware.md "Image size").
    #[inline(never)]
    fn execute(&mut self, request: &Request, out: &mut Response) {
        let result = self
            .gate(request)
            .and_then(|()| self.try_execute(request, out));
        // A lock (or a config write) may change the life cycle: read it again next time.
        if matches!(
            request,
            Request::LockConfig { .. }
                | Request::LockData { .. }
                | Request::LockSlot { .. }
                | Request::WriteConfig { .. }
        ) {
            self.lifecycle = None;
        }
        if let Err(Fail { code, detail }) = result {
            *out = Response::Error(WireError::new(code, detail));
        }
    }

    /// Refuses what the life cycle forbids: on a locked chip, everything that writes, generates,
    /// locks or reads secrets needs maintenance authentication on this connection.
    fn gate(&mut self, request: &Request) -> Result<(), Fail> {
        if self.maintenance || auth::allowed_when_locked(request) {
            return Ok(());
        }
        match self.current_lifecycle().map_err(chip_err)? {
            Lifecycle::Locked => Err(err(
                ErrorCode::LockedDown,
                "maintenance authentication needed",
            )),
            Lifecycle::Factory | Lifecycle::Provisioning => Ok(()),
        }
    }

    // Each arm writes its answer through `out` rather than returning it: a `Response` (over 540
    // bytes) returned from every arm is merged and spilled field by field, several KB of
    // device code (docs/firmware.md "Image size").
    fn try_execute(&mut self, request: &Request, out: &mut Response) -> Result<(), Fail> {
        let chip = &mut self.chip;
        match request {
            Request::Hello => {
                // A new session: whatever was authenticated before is gone.
                self.end_maintenance();
                *out = Response::Hello(self.hello()?);
            }
            Request::ReadConfig => {
                let cfg = chip.read_config().map_err(chip_err)?;
                *out = Response::Config(heapless::Vec::from_slice(&cfg).map_err(|_| internal())?);
            }
            Request::WriteConfig { offset, data } => {
                let current = chip.read_config().map_err(chip_err)?;
                let mut target = current;
                if target[LOCK_CONFIG] != UNLOCKED {
                    return Err(err(ErrorCode::Locked, "config zone is locked"));
                }
                let start = *offset as usize;
                let dst = target
                    .get_mut(start..start + data.len())
                    .ok_or_else(|| err(ErrorCode::OutOfRange, "past the config zone"))?;
                dst.copy_from_slice(data);
                chip.write_config(&current, &target).map_err(chip_err)?;
                *out = Response::Ok;
            }
            Request::LockConfig { crc } => {
                chip.lock_config(*crc).map_err(chip_err)?;
                *out = Response::Ok;
            }
            Request::GenKey { slot } => {
                public_key(out, &chip.genkey(*slot).map_err(chip_err)?);
            }
            Request::GetPublicKey { slot } => {
                public_key(out, &chip.public_key(*slot).map_err(chip_err)?);
            }
            Request::ReadSlot { slot, offset, len } => {
                let mut buf = [0u8; MAX_CHUNK];
                let n = *len as usize;
                let end = *offset as usize + n;
                if end > slot_size(*slot) {
                    return Err(err(ErrorCode::OutOfRange, "past the end of the slot"));
                }
                let dst = buf.get_mut(..n).ok_or_else(internal)?;
                chip.read_slot(*slot, *offset, dst).map_err(chip_err)?;
                *out = Response::Data(Chunk::from_slice(dst).map_err(|_| internal())?);
            }
            Request::WriteSlot { slot, offset, data } => {
                if *slot == ANCHOR_SLOT {
                    self.anchor_verified = false;
                }
                chip.write_slot(*slot, *offset, data).map_err(chip_err)?;
                self.chain = None;
                *out = Response::Ok;
            }
            Request::ReadOtp { offset, len } => {
                let mut buf = [0u8; OTP_SIZE];
                let dst = buf.get_mut(..*len as usize).ok_or_else(internal)?;
                chip.read_otp(*offset, dst).map_err(chip_err)?;
                *out = Response::Data(Chunk::from_slice(dst).map_err(|_| internal())?);
            }
            Request::WriteOtp { offset, data } => {
                chip.write_otp(*offset, data).map_err(chip_err)?;
                *out = Response::Ok;
            }
            Request::LockData { crc } => {
                chip.lock_data(*crc).map_err(chip_err)?;
                *out = Response::Ok;
            }
            Request::LockSlot { slot } => {
                chip.lock_slot(*slot).map_err(chip_err)?;
                *out = Response::Ok;
            }
            Request::StoreDefBlob {
                total_len,
                digest,
                signature,
                offset,
                data,
            } => {
                let name = Upload {
                    total_len: *total_len,
                    digest: *digest,
                    signature: rs(signature),
                    received: 0,
                };
                *out = Response::DefBlob(self.store_blob(name, *offset, data)?);
            }
            Request::RebuildChain => *out = Response::Chain(self.rebuild_chain()?),
            Request::ReadCert { cert, offset, len } => {
                let (dev, sig) = self
                    .chain
                    .ok_or_else(|| err(ErrorCode::NotLocked, "rebuild the chain first"))?;
                let (der, total) = match cert {
                    CertKind::Device => (&self.device_der[..], dev),
                    CertKind::Signer => (&self.signer_der[..], sig),
                };
                let start = *offset as usize;
                let end = (start + *len as usize).min(total);
                let bytes = der
                    .get(start..end)
                    .ok_or_else(|| err(ErrorCode::OutOfRange, "past the certificate"))?;
                *out = Response::CertChunk(CertChunk {
                    total_len: total as u16,
                    offset: *offset,
                    data: Chunk::from_slice(bytes).map_err(|_| internal())?,
                });
            }
            Request::IdentityProof { host_nonce } => {
                *out = Response::IdentityProof(self.identity_proof(host_nonce)?);
            }
            Request::Random => *out = Response::Random(chip.random().map_err(chip_err)?),
            Request::SetBaud { baud } => {
                if self.max_baud == 0 {
                    return Err(err(ErrorCode::Unsupported, "baud switching is not enabled"));
                }
                if *baud > self.max_baud {
                    return Err(err(ErrorCode::OutOfRange, "above this device's maximum"));
                }
                // The switch itself is the firmware's, after this answer left the UART.
                *out = Response::Ok;
            }
            Request::Finish { .. } => {
                self.end_maintenance();
                *out = Response::Ok;
            }
            Request::MaintenanceBegin => {
                self.end_maintenance();
                let nonce = self.chip.random().map_err(chip_err)?;
                self.maintenance_nonce = Some(nonce);
                *out = Response::MaintenanceNonce(nonce);
            }
            Request::MaintenanceAuth { signature } => {
                self.maintenance_auth(signature)?;
                *out = Response::Ok;
            }
            Request::StoreIoKey { key } => {
                // Only while the chip still takes the key in clear: a key stored later could not
                // be the one in the slot (and maintenance does not change that).
                if chip.read_config().map_err(chip_err)?[LOCK_VALUE_BYTE] != UNLOCKED {
                    return Err(err(
                        ErrorCode::LockedDown,
                        "IO key only before the data lock",
                    ));
                }
                store::save_io_key(&mut self.store, &key.0)
                    .map_err(|_| err(ErrorCode::Storage, "flash write failed"))?;
                *out = Response::Ok;
            }
        }
        Ok(())
    }

    /// Signs SHA-256(label ‖ host nonce ‖ device nonce) with the device key: the device supplies
    /// half of what is signed, so no answer is ever a signature over a digest the host chose.
    fn identity_proof(&mut self, host_nonce: &[u8; 32]) -> Result<IdentityProof, Fail> {
        let slot = match self.definitions() {
            Ok(defs) => u8::try_from(defs.device.public_key_dev_loc.slot)
                .map_err(|_| err(ErrorCode::BlobInvalid, "device key slot"))?,
            Err(_) => DEVICE_KEY_SLOT,
        };
        let device_nonce = self.chip.random().map_err(chip_err)?;
        let digest = auth::identity_digest(host_nonce, &device_nonce);
        let sig = self.chip.sign_digest(slot, &digest).map_err(chip_err)?;
        Ok(IdentityProof {
            device_nonce,
            signature: signature(&sig),
        })
    }

    /// Checks the signer's signature of this connection's nonce with the chip's Verify against
    /// the trust anchor. The nonce is used up whatever the outcome; a failure also ends any
    /// earlier authentication.
    fn maintenance_auth(&mut self, sig: &Signature) -> Result<(), Fail> {
        let nonce = self.maintenance_nonce.take();
        self.maintenance = false;
        let nonce = nonce.ok_or_else(|| err(ErrorCode::AuthFailed, "no nonce"))?;
        let config = self.chip.read_config().map_err(chip_err)?;
        let digest = auth::maintenance_digest(&auth::serial(&config), &nonce);
        match self.chip.verify_stored(ANCHOR_SLOT, &digest, &rs(sig)) {
            Ok(true) => {
                self.maintenance = true;
                Ok(())
            }
            Ok(false) | Err(ChipError::Status(_)) => {
                Err(err(ErrorCode::AuthFailed, "signature vs slot 11"))
            }
            Err(e) => Err(chip_err(e)),
        }
    }

    fn hello(&mut self) -> Result<HelloInfo, Fail> {
        let revision = self.chip.revision().map_err(chip_err)?;
        let cfg = self.chip.read_config().map_err(chip_err)?;
        let lifecycle = auth::lifecycle(&cfg);
        self.lifecycle = Some(lifecycle);
        // SlotLocked bytes 88–89: a 0 bit means locked.
        let slot_locked = !u16::from_le_bytes([cfg[88], cfg[89]]);
        Ok(HelloInfo {
            max_line: MAX_LINE as u16,
            max_chunk: MAX_CHUNK as u16,
            features: FEATURE_READ_CERT
                | FEATURE_OTP
                | FEATURE_MAINTENANCE
                | FEATURE_IO_KEY
                | if self.max_baud > 0 {
                    FEATURE_SET_BAUD
                } else {
                    0
                },
            firmware: self.firmware,
            chip: ChipInfo {
                revision,
                serial: auth::serial(&cfg),
                config_locked: cfg[LOCK_CONFIG] != UNLOCKED,
                data_locked: cfg[LOCK_VALUE_BYTE] != UNLOCKED,
                slot_locked,
            },
            def_blob: self.active_id.map(|a| DefBlobId {
                len: a.len as u32,
                digest: a.digest,
            }),
            protocol: PROTOCOL_VERSION,
            lifecycle,
            blob_untrusted: self.untrusted,
            maintenance: self.maintenance,
            platform: self.platform,
        })
    }

    fn store_blob(
        &mut self,
        name: Upload,
        offset: u32,
        data: &[u8],
    ) -> Result<DefBlobProgress, Fail> {
        let total_len = name.total_len;
        if total_len as usize > B {
            return Err(err(
                ErrorCode::OutOfRange,
                "blob larger than this device accepts",
            ));
        }
        // The same blob with the same signature is already the stored one: nothing to do.
        if self.active_id.is_some_and(|a| {
            a.len == total_len as usize && a.digest == name.digest && a.signature == name.signature
        }) {
            self.upload = None;
            return Ok(DefBlobProgress {
                received: total_len,
                total_len,
                complete: true,
            });
        }
        let mut up = match self.upload {
            Some(u)
                if u.total_len == total_len
                    && u.digest == name.digest
                    && u.signature == name.signature =>
            {
                u
            }
            // A new name discards a partial upload.
            _ => name,
        };
        if offset == up.received && !data.is_empty() {
            let start = offset as usize;
            let end = start + data.len();
            if end > total_len as usize {
                return Err(err(
                    ErrorCode::OutOfRange,
                    "chunk past the announced length",
                ));
            }
            self.staging
                .get_mut(start..end)
                .ok_or_else(internal)?
                .copy_from_slice(data);
            up.received = end as u32;
        }
        self.upload = Some(up);
        if up.received < total_len {
            return Ok(DefBlobProgress {
                received: up.received,
                total_len,
                complete: false,
            });
        }
        self.upload = None;
        let blob = self
            .staging
            .get(..total_len as usize)
            .ok_or_else(internal)?;
        // Transfer integrity first (a corrupted upload is retried, not reported as forged)...
        let digest = store::sha256(blob);
        if digest != up.digest {
            return Err(err(
                ErrorCode::DigestMismatch,
                "blob digest differs; upload again",
            ));
        }
        // ...then authenticity: the signer's signature, checked by the chip against the anchor.
        let envelope = auth::blob_envelope_digest(&digest);
        match self
            .chip
            .verify_stored(ANCHOR_SLOT, &envelope, &up.signature)
        {
            Ok(true) => {}
            Ok(false) | Err(ChipError::Status(_)) => return Err(untrusted()),
            Err(e) => return Err(chip_err(e)),
        }
        if definitions_of(blob).is_err() {
            return Err(err(ErrorCode::BlobInvalid, "blob does not parse"));
        }
        store::save(&mut self.store, blob, &digest, &up.signature).map_err(|e| match e {
            StoreError::TooLarge => err(ErrorCode::OutOfRange, "blob larger than the partition"),
            _ => err(ErrorCode::Storage, "flash write failed"),
        })?;
        self.active
            .get_mut(..blob.len())
            .ok_or_else(internal)?
            .copy_from_slice(blob);
        self.active_id = Some(store::Stored {
            len: blob.len(),
            digest,
            signature: up.signature,
        });
        self.untrusted = false;
        // Verified just above, against the anchor as it is now.
        self.anchor_verified = true;
        self.chain = None;
        Ok(DefBlobProgress {
            received: total_len,
            total_len,
            complete: true,
        })
    }

    fn rebuild_chain(&mut self) -> Result<ChainReport, Fail> {
        self.chain = None;
        // The blob is checked against the anchor before use, unless this boot already checked
        // this blob against this anchor (nothing written to the anchor slot since).
        if !self.anchor_verified {
            self.check_active_blob().map_err(identity_err)?;
        }
        let len = self.active_id.map_or(0, |a| a.len);
        let blob = self.active.get(..len).ok_or_else(internal)?;
        let defs = definitions_of(blob).map_err(identity_err)?;
        let lens = identity::rebuild_chain(
            &mut self.chip,
            &defs,
            &mut self.device_der,
            &mut self.signer_der,
        )
        .map_err(identity_err)?;
        let dev = self.device_der.get(..lens.device).ok_or_else(internal)?;
        let sig = self.signer_der.get(..lens.signer).ok_or_else(internal)?;
        identity::verify_chain(&mut self.chip, &defs, dev, sig).map_err(identity_err)?;
        let report = ChainReport {
            device: CertSummary {
                len: lens.device as u16,
                digest: store::sha256(dev),
            },
            signer: CertSummary {
                len: lens.signer as u16,
                digest: store::sha256(sig),
            },
        };
        self.chain = Some((lens.device, lens.signer));
        Ok(report)
    }
}

fn internal() -> Fail {
    err(ErrorCode::Internal, "internal limit")
}

const _: () = assert!(CONFIG_SIZE == keystamp_wire::CONFIG_SIZE);
