//! The provisioning engine: one device on one link, in an order that never locks bytes that were
//! not verified (docs/factory-guide.md, "What happens to a device").
//!
//! 1. probe — Hello: chip serial, revision, lock states, stored definition blob; registry lookup.
//! 2. config — unlocked: write the profile's config, read it back, compare every setting, lock
//!    with the CRC of the read-back (the chip refuses if its bytes differ). Locked: read and
//!    compare; a chip locked with another config is refused.
//! 3. key — data zone unlocked: GenKey in the device key slot, then lock the data zone. The
//!    data-zone lock runs before any certificate is written, and the certificate slots stay
//!    writable, so it freezes no certificate bytes (the chip refuses data reads before this lock,
//!    so nothing could be verified earlier anyway). Data zone locked: read the public key.
//!    Then proof before signature: the key is point-checked (P-256, on the curve) and the device
//!    proves it holds it (IdentityProof over a host nonce and a device nonce); the host verifies
//!    the proof and records it ([`crate::registry::proof`]). Nothing is built, signed or recorded
//!    for a key that was not proven, and the certificate's key is exactly the proven key.
//! 4. issue — reuse the registry's certificate for this chip and key, or issue one; the
//!    write-ahead record is committed before the device sees it.
//! 5. certificates — write the device's compressed certificate, the signer public key (the
//!    device's trust anchor, slot 11) and the signer's compressed certificate (skipping bytes the
//!    chip already holds).
//! 6. definitions — upload the definition blob, signed by the signer, when the device's differs
//!    (resumable); the device checks the signature against slot 11 with the chip's Verify.
//! 7. verify — the device rebuilds both certificates from the chip and verifies their signatures
//!    with the chip; the host compares their SHA-256 with what it issued; the device proves its
//!    key again (IdentityProof over a fresh host nonce) and the host verifies the proof against
//!    the key the certificate names: the chip holds the key of the certificate it rebuilt.
//! 8. lock slots — the certificate slots when the profile asks (the default), then always the
//!    anchor slot, last; then record, write `devices/<serial>/*.pem`.
//!
//! What the proof binds and what it cannot: it proves that whatever answers on the link holds
//! the private key of the public key it reported, fresh for this run's host nonce. It does not
//! bind the chip serial or the config (the CN comes from the config the device reports): the
//! signed message contains neither. So a software key behind a fake agent can still claim an
//! unused serial and pass; lots (only serials in an open lot are issued to, counted) and a
//! genuine-chip check cover that. What the proof does stop is a device that reports one key and
//! holds another, or replays an old answer: it gets nothing issued and nothing recorded.
//!
//! Everything the device sends is hostile input: counts and offsets (blob progress, certificate
//! lengths and chunks) are bounded before use ([`FailureKind::DeviceCount`]), public keys are
//! point-checked before anything is signed, and device text is shown only through
//! [`crate::sanitize::device_text`].

use keystamp_atecc::zone::CONFIG_SIZE;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keystamp_atecc::ConfigZone;
use keystamp_certdef::{CertDef, DateTime};
use keystamp_wire::{Chunk, HelloInfo, MAX_CHUNK, Request, Response};
use p256::ecdsa::signature::hazmat::PrehashVerifier;

use crate::link::{Link, LinkError, LinkStats, Port};
use crate::pki::ca::CaError;
use crate::pki::issue::{
    DeviceCertRequest, IssueError, Issued, SignError, SlotWrites, issue_device_cert,
};
use crate::registry::{
    CertKind, CertStatus, ChipSerial, IssueOutcome, IssueRequest, Outcome, Registry, RegistryError,
};

pub mod minimal;
mod profile;
pub mod scripted;
mod trustandgo;
mod trustflex;

pub use profile::ProfileFailure;
pub use trustandgo::MicrochipRoot;

/// The subject CN a chip serial number should get (the profile's CN scheme).
pub type CnScheme = Box<dyn Fn(&[u8; 9]) -> String + Send + Sync>;

/// Everything every station needs, prepared once per run.
pub struct Material {
    /// The config zone to program (128 bytes; factory and lock bytes are ignored).
    pub config: [u8; CONFIG_SIZE],
    /// The definition blob the device stores (device + signer definitions + root key).
    pub blob: Vec<u8>,
    /// SHA-256 of `blob`.
    pub blob_digest: [u8; 32],
    /// The device certificate's definition (a view into `blob`'s owner).
    pub device_def: keystamp_certdef::CertDefBuf,
    /// The signer certificate, split into what the chip stores.
    pub signer: Issued,
    /// The root CA's public key X‖Y.
    pub root_public_key: [u8; 64],
    /// The signer's public key X‖Y.
    pub signer_public_key: [u8; 64],
    /// The signer id (from its CN).
    pub signer_id: [u8; 2],
    /// Device certificate validity in whole years (0 = no expiration).
    pub validity_years: u8,
    /// Lock policy.
    pub lock_config: bool,
    /// Lock the data zone.
    pub lock_data: bool,
    /// Lock the certificate slots after verification.
    pub lock_cert_slots: bool,
    /// Board security features the device must report before its chip is touched.
    pub platform: crate::project::PlatformSection,
    /// The IO-protection key slot, when the profile enables IO protection: each device gets a
    /// fresh key there before the data lock (see [`Station::store_io_key`]).
    pub io_key_slot: Option<u8>,
    /// Expected subject CN for a chip serial (for the consistency check), if the profile has one.
    pub expected_cn: Option<CnScheme>,
    /// Re-stamp devices holding a valid chain from another signer (`provision --reprovision`);
    /// otherwise they are refused before anything is written.
    pub reprovision: bool,
    /// Highest baud rate to negotiate with `SetBaud` after `Hello` (`--baud-max`); `None` keeps
    /// the rate the port was opened at.
    pub baud_max: Option<u32>,
    /// Where per-device PEM files go.
    pub output_dir: PathBuf,
    /// Which parts, and so which flow (`engine/trustflex.rs`, `engine/trustandgo.rs`).
    pub part_profile: crate::project::PartProfile,
    /// The Microchip root Trust&GO chains must verify to (`trustandgo` only).
    pub microchip_root: Option<MicrochipRoot>,
    /// Certificates of the project's earlier signers (ca/signers/, each checked against the
    /// root): devices provisioned before a signer change still verify, and a rerun leaves them
    /// alone.
    pub earlier_signers: Vec<EarlierSigner>,
}

/// A signer the project used before its current one.
#[derive(Clone, Debug)]
pub struct EarlierSigner {
    /// The signer certificate (DER), as a device rebuilds it.
    pub der: Vec<u8>,
    /// Its public key X‖Y.
    pub public_key: [u8; 64],
}

impl Material {
    /// The public key of `signer_der` when it is this project's current or an earlier signer
    /// certificate.
    pub fn project_signer_key(&self, signer_der: &[u8]) -> Option<[u8; 64]> {
        if signer_der == self.signer.der.as_slice() {
            return Some(self.signer_public_key);
        }
        self.earlier_signers
            .iter()
            .find(|s| s.der == signer_der)
            .map(|s| s.public_key)
    }
}

/// Signs device certificates (the unlocked signer key).
pub trait Issuer: Sync {
    /// ECDSA P-256 over a SHA-256 digest, R‖S.
    fn sign(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError>;
}

impl Issuer for crate::pki::ca::Signer {
    fn sign(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        self.sign_digest(digest).map_err(|e| SignError(Box::new(e)))
    }
}

/// A step of the flow, for progress display and the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Hello and registry lookup.
    Probe,
    /// Config write, read-back and lock.
    Config,
    /// Key generation and data lock.
    Key,
    /// Certificate issuance.
    Issue,
    /// Definition blob upload.
    Definitions,
    /// Certificate writes.
    Certificates,
    /// Rebuild, compare, challenge.
    Verify,
    /// Slot locks.
    LockSlots,
    /// Recorded.
    Done,
}

impl Step {
    /// The step's name in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Step::Probe => "probe",
            Step::Config => "config",
            Step::Key => "key",
            Step::Issue => "issue",
            Step::Definitions => "definitions",
            Step::Certificates => "certificates",
            Step::Verify => "verify",
            Step::LockSlots => "lock_slots",
            Step::Done => "done",
        }
    }

    /// Position in the flow, 0-based, and the count of steps.
    pub fn index(self) -> (u64, u64) {
        (self as u64, Step::Done as u64 + 1)
    }
}

/// How a device left the station.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceResult {
    /// Provisioned in this run (a certificate was issued or resumed and verified).
    Provisioned,
    /// Already provisioned: verified, nothing issued.
    AlreadyProvisioned,
    /// Failed: one line saying what to do.
    Failed(String),
    /// Stopped by an interrupt before `step` began; every step before it completed. Rerunning
    /// resumes the device.
    Interrupted {
        /// The step that did not start.
        step: Step,
    },
}

/// What one station did with its device.
#[derive(Clone, Debug)]
pub struct DeviceReport {
    /// Station name.
    pub station: String,
    /// Port path.
    pub port: String,
    /// Chip serial, once known.
    pub chip_serial: Option<[u8; 9]>,
    /// Device certificate subject CN.
    pub cn: Option<String>,
    /// Device certificate serial (hex).
    pub cert_serial: Option<String>,
    /// A new certificate was issued for the device in this run (not one reused from the
    /// registry on resume).
    pub issued: bool,
    /// Wall time at the station.
    pub elapsed: Duration,
    /// Result.
    pub result: DeviceResult,
    /// Link counters.
    pub link: LinkStats,
}

impl DeviceReport {
    /// A report that says the device failed with `message` (filled in as the station goes on).
    pub fn failed(station: &str, port: &str, message: String) -> Self {
        DeviceReport {
            station: station.to_string(),
            port: port.to_string(),
            chip_serial: None,
            cn: None,
            cert_serial: None,
            issued: false,
            elapsed: Duration::ZERO,
            result: DeviceResult::Failed(message),
            link: LinkStats::default(),
        }
    }
}

/// Why provisioning stopped: the step it stopped in and what went wrong.
#[derive(Debug)]
pub struct Failure {
    /// The step that failed.
    pub step: Step,
    /// What went wrong.
    pub kind: FailureKind,
}

impl Failure {
    fn new(step: Step, kind: FailureKind) -> Self {
        Failure { step, kind }
    }

    fn unexpected(step: Step, expected: &'static str, got: &Response) -> Self {
        Failure::new(
            step,
            FailureKind::UnexpectedAnswer {
                expected,
                got: Answer::of(got),
            },
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step.name(), self.kind)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

/// A short, typed description of a device's answer: which answer it was, without its payload
/// (device data is never printed raw).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `Hello`.
    Hello,
    /// `Ok`.
    Ok,
    /// `Config` with this many bytes.
    Config(usize),
    /// `PublicKey`.
    PublicKey,
    /// `Data` with this many bytes.
    Data(usize),
    /// `DefBlob` progress.
    DefBlob,
    /// `Chain` report.
    Chain,
    /// `CertChunk` at this offset with this many bytes.
    CertChunk {
        /// Offset of the chunk.
        offset: u16,
        /// Bytes in the chunk.
        len: usize,
    },
    /// `IdentityProof`.
    IdentityProof,
    /// `Random`.
    Random,
    /// `MaintenanceNonce`.
    MaintenanceNonce,
    /// `Error`.
    Error,
}

impl Answer {
    /// Which answer `r` is.
    pub fn of(r: &Response) -> Self {
        match r {
            Response::Hello(_) => Answer::Hello,
            Response::Ok => Answer::Ok,
            Response::Config(c) => Answer::Config(c.len()),
            Response::PublicKey(_) => Answer::PublicKey,
            Response::Data(d) => Answer::Data(d.len()),
            Response::DefBlob(_) => Answer::DefBlob,
            Response::Chain(_) => Answer::Chain,
            Response::CertChunk(c) => Answer::CertChunk {
                offset: c.offset,
                len: c.data.len(),
            },
            Response::IdentityProof(_) => Answer::IdentityProof,
            Response::Random(_) => Answer::Random,
            Response::MaintenanceNonce(_) => Answer::MaintenanceNonce,
            Response::Error(_) => Answer::Error,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Hello => f.write_str("Hello"),
            Answer::Ok => f.write_str("Ok"),
            Answer::Config(n) => write!(f, "Config ({n} bytes)"),
            Answer::PublicKey => f.write_str("PublicKey"),
            Answer::Data(n) => write!(f, "Data ({n} bytes)"),
            Answer::DefBlob => f.write_str("DefBlob"),
            Answer::Chain => f.write_str("Chain"),
            Answer::CertChunk { offset, len } => {
                write!(f, "CertChunk ({len} bytes at offset {offset})")
            }
            Answer::IdentityProof => f.write_str("IdentityProof"),
            Answer::Random => f.write_str("Random"),
            Answer::MaintenanceNonce => f.write_str("MaintenanceNonce"),
            Answer::Error => f.write_str("Error"),
        }
    }
}

/// What went wrong in a step.
#[derive(Debug)]
pub enum FailureKind {
    /// The link failed (no answer, the device refused, a broken answer, I/O).
    Link {
        /// The link's error (boxed: it carries the device's error text).
        error: Box<LinkError>,
        /// The last non-protocol line the device printed, when it did not answer.
        last_line: Option<String>,
    },
    /// The device answered, but not with what the request asks for.
    UnexpectedAnswer {
        /// The answer the request asks for.
        expected: &'static str,
        /// What came instead.
        got: Answer,
    },
    /// The registry refused or failed.
    Registry(RegistryError),
    /// Another station panicked while holding the registry.
    RegistryPoisoned,
    /// The certificate could not be issued or split for the device.
    Issue(IssueError),
    /// The device's definition (from the blob) is not usable.
    Definition(keystamp_certdef::Error),
    /// A certificate the device returned does not parse.
    CertificateDer(der::Error),
    /// A chain signature does not verify.
    ChainSignature {
        /// `signer` or `device`.
        which: &'static str,
        /// Why.
        error: CaError,
    },
    /// The device's identity proof does not verify against the certificate's key.
    ChallengeSignature(p256::ecdsa::Error),
    /// The signer could not sign (`what`: the blob envelope or a maintenance nonce).
    Signing {
        /// What was to be signed.
        what: &'static str,
        /// Why it could not.
        error: SignError,
    },
    /// The device holds definitions whose signature does not verify against its trust anchor.
    BlobUntrusted,
    /// No random challenge could be drawn.
    Random(getrandom::Error),
    /// The profile enables IO protection and the device's firmware cannot store the key.
    IoKeyUnsupported,
    /// The per-device PEM files could not be written.
    Outputs(std::io::Error),
    /// The chip's config zone is locked with another configuration.
    ConfigLockedDifferent {
        /// First differing byte.
        byte: usize,
        /// The chip's value.
        chip: u8,
        /// The profile's value.
        wanted: u8,
    },
    /// The config read back after the write differs (nothing was locked).
    ConfigReadBack {
        /// First differing byte.
        byte: usize,
    },
    /// The config answer is not 128 bytes.
    ConfigLength,
    /// The profile says not to lock the config, which keys and certificates need.
    ConfigLockDisabled,
    /// The profile says not to lock the data zone, without which nothing can be verified.
    DataLockDisabled,
    /// The device definition's key slot does not fit a chip slot number.
    KeySlotOutOfRange(u16),
    /// The issued certificate's CN is not what the profile's CN scheme gives.
    CnMismatch {
        /// The certificate's CN.
        got: String,
        /// The scheme's CN.
        want: String,
    },
    /// The operator interrupted the run; the station stopped at a step boundary.
    Interrupted,
    /// `verify` on a device that was never provisioned.
    NotProvisioned,
    /// The certificate bytes read differ from the digests the device reported.
    DigestMismatch,
    /// The device's signer certificate is not this project's signer.
    ForeignSigner,
    /// The device holds a certificate other than the registry's.
    RegistryMismatch {
        /// The registry's certificate serial.
        registry_serial: String,
    },
    /// A valid chain the registry has no record of.
    NotInRegistry,
    /// The device holds a valid chain from another signer (another project); nothing written.
    ForeignChain {
        /// Subject CN of the device's signer certificate (device text, escaped when shown).
        signer_cn: String,
        /// SHA-256 of the device's signer public key (SubjectPublicKeyInfo DER).
        signer_key_sha256: [u8; 32],
        /// The device is Locked: its key is permanent and its certificate slots are locked, so
        /// no project (and no `--reprovision`) can give it another identity.
        locked: bool,
    },
    /// The certificate the device rebuilt differs from the one issued.
    RebuiltDiffers {
        /// `device` or `signer`.
        which: &'static str,
    },
    /// The device did not complete the definition upload.
    UploadIncomplete,
    /// The board does not report a security feature the profile requires.
    PlatformRequirement {
        /// The feature.
        feature: &'static str,
        /// What the board reported.
        reported: keystamp_wire::Tristate,
    },
    /// Data too long for one request (`what` names it).
    TooLong(&'static str),
    /// The chip serial number was not read before it was needed.
    NoChipSerial,
    /// The public key the device reported is not a P-256 point (nothing was signed).
    InvalidPublicKey,
    /// The certificate built does not carry the proven key (nothing was recorded).
    KeyNotProven,
    /// Two chips claim one serial: the registry holds a verified, unrevoked certificate for
    /// this serial with another key than the one this chip just proved. One of them is a clone;
    /// nothing is issued to this one.
    CloneConflict {
        /// The serial both claim.
        chip: ChipSerial,
        /// The registered (verified) certificate's serial.
        cert_serial: String,
        /// SHA-256 of the registered key's SubjectPublicKeyInfo DER.
        registered_key_sha256: [u8; 32],
        /// SHA-256 of this chip's proven key's SubjectPublicKeyInfo DER.
        presented_key_sha256: [u8; 32],
    },
    /// The part does not fit the project's TrustFLEX / Trust&GO profile, or its chain or key
    /// does not hold up (`engine/profile.rs`).
    Profile(ProfileFailure),
    /// A count or offset the device reported is out of bounds (nothing was indexed with it).
    DeviceCount {
        /// What the number is.
        what: &'static str,
        /// The device's value.
        got: u64,
        /// The largest value that fits.
        max: u64,
    },
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Link { error, last_line } => {
                write!(f, "{error}")?;
                if let Some(line) = last_line {
                    // Sanitized when it was taken from the link.
                    write!(f, " (last line seen: \"{line}\")")?;
                }
                Ok(())
            }
            Self::UnexpectedAnswer { expected, got } => {
                write!(f, "unexpected answer {got} (expected {expected})")
            }
            Self::Registry(e) => write!(f, "{e}"),
            Self::Profile(e) => write!(f, "{e}"),
            Self::RegistryPoisoned => f.write_str("registry lock poisoned"),
            Self::Issue(e) => write!(f, "{e}"),
            Self::Definition(e) => write!(f, "device definition: {e}"),
            Self::CertificateDer(e) => write!(f, "{e}"),
            Self::ChainSignature { which, error } => write!(f, "{which} certificate: {error}"),
            Self::ChallengeSignature(e) => write!(f, "identity proof does not verify: {e}"),
            Self::Signing { what, error } => write!(f, "signing {what}: {error}"),
            Self::BlobUntrusted => f.write_str(
                "the device's stored definitions are not signed by the signer whose key its chip \
                 holds (unsigned, mis-signed or altered); the device does not use them",
            ),
            Self::Random(e) => write!(f, "{e}"),
            Self::IoKeyUnsupported => f.write_str(
                "the profile enables IO protection and this device's firmware cannot store the \
                 IO-protection key: flash a keystamp firmware that does (docs/firmware.md)",
            ),
            Self::Outputs(e) => write!(f, "{e}"),
            Self::ConfigLockedDifferent { byte, chip, wanted } => write!(
                f,
                "this chip's config zone is locked with a different configuration (byte {byte}: \
                 0x{chip:02X}, the profile wants 0x{wanted:02X}); a locked config can never \
                 change, so set this device aside or use a profile with its configuration"
            ),
            Self::ConfigReadBack { byte } => write!(
                f,
                "config read-back differs at byte {byte}; nothing was locked. Retry; if it \
                 persists the chip is faulty"
            ),
            Self::ConfigLength => f.write_str("config answer is not 128 bytes"),
            Self::ConfigLockDisabled => f.write_str(
                "config written and verified but not locked (profile: lock_config = false); \
                 keys and certificates need a locked config",
            ),
            Self::DataLockDisabled => f.write_str(
                "the profile has lock_data = false; the chip refuses to read certificates back \
                 or sign before the data lock, so the device cannot be verified. Set [locks] \
                 lock_data = true to provision",
            ),
            Self::KeySlotOutOfRange(slot) => write!(f, "device key slot {slot} out of range"),
            Self::CnMismatch { got, want } => write!(
                f,
                "the device definition gives CN \"{}\" but the profile's CN scheme gives \
                 {want:?}; run `keystamp certdef regenerate` to rebuild the definitions from \
                 the profile and CA",
                crate::sanitize::device_text(got)
            ),
            Self::Interrupted => {
                f.write_str("interrupted; rerun to resume (finished steps are kept)")
            }
            Self::NotProvisioned => f.write_str(
                "the device is not provisioned (zones unlocked or no definitions); run \
                 `keystamp provision`",
            ),
            Self::DigestMismatch => {
                f.write_str("certificate bytes read differ from the digests the device reported")
            }
            Self::ForeignSigner => {
                f.write_str("the device's signer certificate is not this project's signer")
            }
            Self::RegistryMismatch { registry_serial } => write!(
                f,
                "the device holds a certificate other than the registry's {registry_serial}"
            ),
            Self::ForeignChain {
                signer_cn,
                signer_key_sha256,
                locked,
            } => {
                write!(
                    f,
                    "the device holds a valid chain from another signer (\"{}\", key SHA-256 \
                     {}), i.e. another project; nothing was written. ",
                    crate::sanitize::device_text(signer_cn),
                    crate::pki::ca::colon_hex(signer_key_sha256)
                )?;
                if *locked {
                    f.write_str(
                        "It is locked down (permanent key, locked certificate slots): no project \
                         can give it another identity; use it with its own project",
                    )
                } else {
                    f.write_str(
                        "Provision it with that project, or rerun with --reprovision to replace \
                         its identity",
                    )
                }
            }
            Self::NotInRegistry => {
                f.write_str("valid chain, but this project's registry has no record of the device")
            }
            Self::RebuiltDiffers { which } => write!(
                f,
                "the {which} certificate the device rebuilt differs from the one issued; \
                 nothing was locked"
            ),
            Self::PlatformRequirement { feature, reported } => write!(
                f,
                "the profile requires {feature} but the board reports it {}; nothing was written \
                 to its chip",
                match reported {
                    keystamp_wire::Tristate::On => "on",
                    keystamp_wire::Tristate::Off => "off",
                    keystamp_wire::Tristate::Unknown => "unknown",
                }
            ),
            Self::UploadIncomplete => {
                f.write_str("the device did not complete the definition upload")
            }
            Self::TooLong(what) => write!(f, "{what} too long"),
            Self::NoChipSerial => f.write_str("no chip serial"),
            Self::InvalidPublicKey => f.write_str(
                "the device's public key is not a P-256 point; nothing was signed. The chip or \
                 the agent is faulty or not genuine",
            ),
            Self::KeyNotProven => {
                f.write_str("the certificate built does not carry the proven key; nothing recorded")
            }
            Self::DeviceCount { what, got, max } => write!(
                f,
                "the device reported {what} {got}, out of bounds (at most {max}); the device is \
                 faulty or hostile"
            ),
            Self::CloneConflict {
                chip,
                cert_serial,
                registered_key_sha256,
                presented_key_sha256,
            } => write!(
                f,
                "clone conflict: chip serial {chip} is already provisioned (certificate \
                 {cert_serial}, verified) with key SHA-256 {}, and this chip proves key SHA-256 \
                 {}: two chips claim one serial, so one of them is a clone; nothing was issued \
                 to this one. Set both devices aside and find out which is genuine (its reel \
                 list, its supplier); if the registered one is the clone, run `keystamp registry \
                 revoke {cert_serial} --reason keyCompromise` and provision this chip again",
                crate::pki::ca::colon_hex(registered_key_sha256),
                crate::pki::ca::colon_hex(presented_key_sha256)
            ),
        }
    }
}

impl std::error::Error for FailureKind {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Link { error, .. } => Some(&**error),
            Self::Registry(e) => Some(e),
            Self::Issue(e) => Some(e),
            Self::Definition(e) => Some(e),
            Self::CertificateDer(e) => Some(e),
            Self::ChainSignature { error, .. } => Some(error),
            Self::ChallengeSignature(e) => Some(e),
            Self::Signing { error, .. } => Some(error),
            Self::Random(e) => Some(e),
            Self::Outputs(e) => Some(e),
            Self::Profile(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RegistryError> for FailureKind {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

impl From<IssueError> for FailureKind {
    fn from(e: IssueError) -> Self {
        Self::Issue(e)
    }
}

impl From<keystamp_certdef::Error> for FailureKind {
    fn from(e: keystamp_certdef::Error) -> Self {
        Self::Definition(e)
    }
}

impl From<der::Error> for FailureKind {
    fn from(e: der::Error) -> Self {
        Self::CertificateDer(e)
    }
}

impl From<std::io::Error> for FailureKind {
    fn from(e: std::io::Error) -> Self {
        Self::Outputs(e)
    }
}

trait At<T> {
    fn at(self, step: Step) -> Result<T, Failure>;
}

impl<T, E: Into<FailureKind>> At<T> for Result<T, E> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(step, e.into()))
    }
}

/// One station: a link to one device, the shared material, the registry.
pub struct Station<'a, P: Port> {
    /// Station name (for the registry and the summary).
    pub name: String,
    /// Port path.
    pub port: String,
    link: Link<P>,
    material: &'a Material,
    issuer: &'a dyn Issuer,
    registry: &'a Mutex<Registry>,
    progress: &'a (dyn Fn(&str, Step) + Sync),
    chip: Option<ChipSerial>,
    stop: Option<&'a AtomicBool>,
    /// The step that began after a stop was requested: nothing more is sent to the device.
    stopped_at: Cell<Option<Step>>,
}

impl<'a, P: Port> Station<'a, P> {
    /// A station over `link`.
    pub fn new(
        name: String,
        port: String,
        link: Link<P>,
        material: &'a Material,
        issuer: &'a dyn Issuer,
        registry: &'a Mutex<Registry>,
        progress: &'a (dyn Fn(&str, Step) + Sync),
    ) -> Self {
        Station {
            name,
            port,
            link,
            material,
            issuer,
            registry,
            progress,
            chip: None,
            stop: None,
            stopped_at: Cell::new(None),
        }
    }

    /// Stops at the next step boundary once `stop` is set (e.g. by Ctrl-C): the step in
    /// progress finishes, the next one sends nothing, and the report says
    /// [`DeviceResult::Interrupted`].
    pub fn with_stop(mut self, stop: &'a AtomicBool) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Provisions (or verifies) the device on this station's link.
    pub fn run(mut self) -> DeviceReport {
        let started = Instant::now();
        if let Ok(reg) = self.registry.lock() {
            let _ = reg.register_station(&self.name, Some(&self.port));
        }
        let mut report = DeviceReport::failed(&self.name, &self.port, String::new());
        let result = self.provision(&mut report);
        report.result =
            match result.and_then(|r| self.audit(Step::Done, Outcome::Ok, "").map(|()| r)) {
                Ok(r) => r,
                Err(f) => self.failed(f),
            };
        report.elapsed = started.elapsed();
        report.link = self.link.stats();
        report
    }

    /// A failure as the operator reads it: a bare database error names the registry file.
    fn named(&self, mut f: Failure) -> Failure {
        if let FailureKind::Registry(e) = f.kind {
            let path = self.registry.lock().ok().and_then(|r| r.path());
            f.kind = FailureKind::Registry(match path {
                Some(path) => e.in_file(&path),
                None => e,
            });
        }
        f
    }

    /// Audits a failure and says how the device left the station. A failure that cannot be
    /// recorded either is reported with both reasons.
    fn failed(&self, f: Failure) -> DeviceResult {
        let f = self.named(f);
        if let FailureKind::Interrupted = f.kind {
            let detail = format!("interrupted before {}", f.step.name());
            return match self.audit(f.step, Outcome::Failed, &detail) {
                Ok(()) => DeviceResult::Interrupted { step: f.step },
                Err(a) => DeviceResult::Failed(format!("{f} (and not recorded: {a})")),
            };
        }
        let detail = f.kind.to_string();
        self.failed_as(f, &detail)
    }

    /// Records a failure with `detail` in the audit log and reports it.
    fn failed_as(&self, f: Failure, detail: &str) -> DeviceResult {
        match self.audit(f.step, Outcome::Failed, detail) {
            Ok(()) => DeviceResult::Failed(f.to_string()),
            Err(a) => DeviceResult::Failed(format!("{f} (and not recorded: {a})")),
        }
    }

    /// Refuses to go on once a stop was requested at a step boundary.
    fn check_stop(&self) -> Result<(), Failure> {
        match self.stopped_at.get() {
            Some(at) => Err(Failure::new(at, FailureKind::Interrupted)),
            None => Ok(()),
        }
    }

    fn registry(&self, step: Step) -> Result<std::sync::MutexGuard<'a, Registry>, Failure> {
        self.registry
            .lock()
            .map_err(|_| Failure::new(step, FailureKind::RegistryPoisoned))
    }

    /// Records a step in the audit log (a record of the registry's chain). Not best effort: a
    /// step whose record cannot be written fails, so nothing happens unrecorded. The detail is
    /// sanitized first (it may carry device text); the chain hashes the sanitized text.
    fn audit(&self, step: Step, outcome: Outcome, detail: &str) -> Result<(), Failure> {
        let detail = crate::sanitize::device_text(detail);
        self.registry(step)?
            .audit(Some(&self.name), self.chip, step.name(), outcome, &detail)
            .at(step)
    }

    /// An audit entry of this station for `step` (outcome ok) that a registry state change
    /// writes in its own transaction.
    fn entry<'s>(&'s self, step: Step, detail: &'s str) -> crate::registry::StepRecord<'s> {
        crate::registry::StepRecord {
            station: Some(&self.name),
            step: step.name(),
            outcome: Outcome::Ok,
            detail,
        }
    }

    /// Refuses a chip whose serial the registry already gave a verified, unrevoked certificate
    /// for another key than the one this chip proved: a clone conflict, recorded in the audit
    /// log as its own `clone_conflict` entry before the step fails (and is audited as failed).
    fn refuse_clone(&self, proven: &[u8; 64]) -> Result<(), Failure> {
        let chip = self
            .chip
            .ok_or(Failure::new(Step::Key, FailureKind::NoChipSerial))?;
        let live = self
            .registry(Step::Key)?
            .live_certificate(chip)
            .at(Step::Key)?;
        let Some(rec) = live.filter(|r| r.status == CertStatus::Verified) else {
            return Ok(());
        };
        if rec.public_key == *proven {
            return Ok(());
        }
        let kind = FailureKind::CloneConflict {
            chip,
            cert_serial: rec.serial,
            registered_key_sha256: key_sha256(&rec.public_key),
            presented_key_sha256: key_sha256(proven),
        };
        self.registry(Step::Key)?
            .audit(
                Some(&self.name),
                Some(chip),
                "clone_conflict",
                Outcome::Failed,
                &kind.to_string(),
            )
            .at(Step::Key)?;
        Err(Failure::new(Step::Key, kind))
    }

    fn step(&self, step: Step) {
        test_hook::kill_at(step.name());
        // A stop is only noticed here, between steps, so a step never stops half done.
        if self.stopped_at.get().is_none() && self.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            self.stopped_at.set(Some(step));
        }
        (self.progress)(&self.name, step);
    }

    fn call(&mut self, step: Step, request: &Request) -> Result<Response, Failure> {
        self.check_stop()?;
        self.link
            .call(request)
            .map_err(|error| self.link_failure(step, error))
    }

    fn link_failure(&self, step: Step, error: LinkError) -> Failure {
        let last_line = match &error {
            LinkError::NoAnswer { .. } => self.link.last_noise().map(crate::sanitize::device_text),
            _ => None,
        };
        Failure::new(
            step,
            FailureKind::Link {
                error: Box::new(error),
                last_line,
            },
        )
    }

    fn ok(&mut self, step: Step, request: &Request) -> Result<(), Failure> {
        match self.call(step, request)? {
            Response::Ok => Ok(()),
            other => Err(Failure::unexpected(step, "Ok", &other)),
        }
    }

    fn provision(&mut self, report: &mut DeviceReport) -> Result<DeviceResult, Failure> {
        let m = self.material;
        if m.part_profile == crate::project::PartProfile::TrustAndGo {
            return self.provision_trust_and_go(report);
        }
        self.step(Step::Probe);
        let hello = self.hello()?;
        let serial = hello.chip.serial;
        self.chip = Some(ChipSerial(serial));
        report.chip_serial = Some(serial);
        // The board's security state first: a board the profile refuses is not touched.
        if let Some((feature, reported)) = m.platform.first_unmet(&hello.platform) {
            return Err(Failure::new(
                Step::Probe,
                FailureKind::PlatformRequirement { feature, reported },
            ));
        }
        {
            let reg = self
                .registry
                .lock()
                .map_err(|_| Failure::new(Step::Probe, FailureKind::RegistryPoisoned))?;
            reg.upsert_device(ChipSerial(serial)).at(Step::Probe)?;
            // Lots, mode and reissue cap: refuse before anything is written to the chip.
            reg.admit(ChipSerial(serial), !hello.chip.data_locked)
                .at(Step::Probe)?;
        }
        self.audit(
            Step::Probe,
            Outcome::Ok,
            &format!("revision {}", hex::encode(hello.chip.revision)),
        )?;
        if self.refuse_foreign_chain(&hello)? && hello.lifecycle == keystamp_wire::Lifecycle::Locked
        {
            // Provisioned under an earlier signer of this project: its slots are locked with
            // that chain, which stays valid. Verified as `keystamp verify` would; nothing issued.
            self.check_chain(serial, report)?;
            return Ok(DeviceResult::AlreadyProvisioned);
        }
        if let Some(max) = m.baud_max {
            // A faster line for the rest of the run; any doubt ends at a rate that works.
            self.link
                .negotiate_baud(max, hello.features)
                .map_err(|e| self.link_failure(Step::Probe, e))?;
        }

        // 2. config
        self.step(Step::Config);
        let config = self.config(&hello)?;

        // 3. key
        self.step(Step::Key);
        let key_slot = self.key_slot()?;
        let (public_key, fresh_key) = if hello.chip.data_locked {
            (
                self.public_key(Step::Key, Request::GetPublicKey { slot: key_slot })?,
                false,
            )
        } else {
            let pk = self.public_key(Step::Key, Request::GenKey { slot: key_slot })?;
            if !m.lock_data {
                return Err(Failure::new(Step::Key, FailureKind::DataLockDisabled));
            }
            self.store_io_key(&hello)?;
            self.ok(Step::Key, &Request::LockData { crc: None })?;
            self.audit(Step::Key, Outcome::Ok, "key generated, data zone locked")?;
            (pk, true)
        };
        // Proof before signature: only a key the device proves it holds gets a certificate.
        let proof = self.prove_identity(Step::Key, &public_key)?;
        self.registry(Step::Key)?
            .record_proof(&proof)
            .at(Step::Key)?;
        self.audit(
            Step::Key,
            Outcome::Ok,
            "identity proof verified and recorded",
        )?;
        let public_key = proof.public_key;
        self.refuse_clone(&public_key)?;
        self.refuse_profile_clone(Step::Key, &public_key)?;

        // 4. issue (write-ahead)
        self.step(Step::Issue);
        let (issued, prior) = self.issue(&config, &public_key)?;
        let reused = prior.is_some();
        report.issued = !reused;
        report.cert_serial = Some(hex::encode_upper(&issued.serial));
        report.cn = common_name(&issued.der);
        if let (Some(f), Some(cn)) = (&m.expected_cn, &report.cn) {
            let want = f(&serial);
            if &want != cn {
                return Err(Failure::new(
                    Step::Issue,
                    FailureKind::CnMismatch {
                        got: cn.clone(),
                        want,
                    },
                ));
            }
        }

        // 5. certificates (the trust anchor before the blob it checks)
        self.step(Step::Certificates);
        let check_first = !fresh_key;
        let mut wrote = 0;
        let writes: Vec<(u8, u16, Vec<u8>)> = issued
            .writes
            .iter()
            .chain(m.signer.writes.iter())
            .cloned()
            .collect();
        wrote += self.write_slots(&writes, check_first)?;
        let detail = format!("{wrote} slot writes");
        if matches!(prior, None | Some(CertStatus::Pending)) {
            // The status change and its audit entry in one transaction.
            let entry = self.entry(Step::Certificates, &detail);
            self.registry(Step::Certificates)?
                .mark_written_recorded(&hex::encode_upper(&issued.serial), &entry)
                .at(Step::Certificates)?;
        } else {
            self.audit(Step::Certificates, Outcome::Ok, &detail)?;
        }

        // 6. definitions (signed)
        self.step(Step::Definitions);
        let blob_current = hello
            .def_blob
            .is_some_and(|b| b.len as usize == m.blob.len() && b.digest == m.blob_digest);
        if blob_current {
            self.audit(
                Step::Definitions,
                Outcome::Skipped,
                "device holds the definitions",
            )?;
        } else {
            self.upload_blob()?;
            self.audit(
                Step::Definitions,
                Outcome::Ok,
                &format!("{} bytes", m.blob.len()),
            )?;
        }

        // 7. verify (the key was proven at step 3 on this connection, and only a GenKey, which
        // this run no longer sends, could change it: no second proof; decision 0010)
        self.step(Step::Verify);
        self.verify_chain(&issued)?;
        self.audit(
            Step::Verify,
            Outcome::Ok,
            "chain rebuilt and compared; identity proven at the key step",
        )?;

        // 8. lock slots, record, outputs
        // The certificate slots when the profile asks (the default), the anchor slot always and
        // last: its lock makes the device Locked, which refuses further locks. Only after
        // verification.
        self.step(Step::LockSlots);
        let locked = hello.chip.slot_locked;
        let anchor = keystamp_agent::auth::ANCHOR_SLOT;
        let mut slots: Vec<u8> = if m.lock_cert_slots {
            writes
                .iter()
                .map(|w| w.0)
                .filter(|&s| s != anchor)
                .collect()
        } else {
            Vec::new()
        };
        slots.sort_unstable();
        slots.dedup();
        slots.push(anchor);
        for slot in slots {
            if locked & (1 << slot) == 0 {
                self.ok(Step::LockSlots, &Request::LockSlot { slot })?;
            }
        }
        self.audit(
            Step::LockSlots,
            Outcome::Ok,
            if m.lock_cert_slots {
                "certificate slots and trust anchor locked"
            } else {
                "trust anchor locked"
            },
        )?;
        // The verified status and its audit entry in one transaction.
        let serial_hex = hex::encode_upper(&issued.serial);
        let detail = format!("certificate {serial_hex} verified");
        let entry = self.entry(Step::Done, &detail);
        self.registry(Step::Done)?
            .mark_verified_recorded(&serial_hex, &entry)
            .at(Step::Done)?;
        test_hook::kill_at("done");
        crate::outputs::write_device_outputs(
            &m.output_dir,
            ChipSerial(serial),
            &issued.der,
            &m.signer.der,
        )
        .at(Step::Done)?;
        let _ = self.call(Step::Done, &Request::Finish { reboot: false });
        Ok(if reused && wrote == 0 && !fresh_key {
            DeviceResult::AlreadyProvisioned
        } else {
            DeviceResult::Provisioned
        })
    }

    /// `keystamp maintain`: authenticates with the signer key (the device checks the signature
    /// against its locked trust anchor), then runs `op`. Returns the report and the device's
    /// `Hello` as read before authenticating.
    pub fn maintain(mut self, op: MaintenanceOp) -> (DeviceReport, Option<HelloInfo>) {
        let started = Instant::now();
        let mut report = DeviceReport::failed(&self.name, &self.port, String::new());
        let mut state = None;
        let done = self
            .maintenance(op, &mut report, &mut state)
            .and_then(|()| self.audit(Step::Done, Outcome::Ok, op.audit_text()));
        report.result = match done {
            Ok(()) => DeviceResult::AlreadyProvisioned,
            Err(f) => {
                let f = self.named(f);
                let detail = format!("maintain: {}", f.kind);
                self.failed_as(f, &detail)
            }
        };
        report.elapsed = started.elapsed();
        report.link = self.link.stats();
        (report, state)
    }

    fn maintenance(
        &mut self,
        op: MaintenanceOp,
        report: &mut DeviceReport,
        state: &mut Option<HelloInfo>,
    ) -> Result<(), Failure> {
        self.step(Step::Probe);
        let hello = self.hello()?;
        let serial = hello.chip.serial;
        self.chip = Some(ChipSerial(serial));
        report.chip_serial = Some(serial);
        *state = Some(hello);
        self.authenticate(&serial)?;
        match op {
            MaintenanceOp::Status => self.ok(Step::Done, &Request::Finish { reboot: false }),
            MaintenanceOp::StoreBlob => {
                self.step(Step::Definitions);
                self.upload_blob()?;
                self.ok(Step::Definitions, &Request::Finish { reboot: false })?;
                // Then exactly what `keystamp verify` checks (a new Hello ends maintenance).
                self.check(report)
            }
        }
    }

    /// Maintenance authentication: the device's nonce, signed with the signer key together
    /// with the chip serial under the maintenance label.
    fn authenticate(&mut self, serial: &[u8; 9]) -> Result<(), Failure> {
        let nonce = match self.call(Step::Probe, &Request::MaintenanceBegin)? {
            Response::MaintenanceNonce(n) => n,
            other => return Err(Failure::unexpected(Step::Probe, "MaintenanceNonce", &other)),
        };
        let digest = keystamp_agent::auth::maintenance_digest(serial, &nonce);
        let rs = self.issuer.sign(&digest).map_err(|error| {
            Failure::new(
                Step::Probe,
                FailureKind::Signing {
                    what: "the maintenance nonce",
                    error,
                },
            )
        })?;
        self.ok(
            Step::Probe,
            &Request::MaintenanceAuth {
                signature: signature_of(&rs),
            },
        )
    }

    /// Re-reads the device's chain without changing anything: the device rebuilds both
    /// certificates from its chip, the host reads them, checks them against the CA (signer
    /// against the root key, device against the signer key) and against the registry, and
    /// challenges the device key.
    pub fn verify_only(mut self) -> DeviceReport {
        let started = Instant::now();
        let mut report = DeviceReport::failed(&self.name, &self.port, String::new());
        let checked = self
            .check(&mut report)
            .and_then(|()| self.audit(Step::Verify, Outcome::Ok, "verify: chain and key checked"));
        report.result = match checked {
            Ok(()) => DeviceResult::AlreadyProvisioned,
            Err(f) if matches!(f.kind, FailureKind::Interrupted) => self.failed(f),
            Err(f) => {
                let f = self.named(f);
                let detail = format!("verify: {}", f.kind);
                self.failed_as(f, &detail)
            }
        };
        report.elapsed = started.elapsed();
        report.link = self.link.stats();
        report
    }

    /// Part of the probe: a device whose data zone is locked and whose stored definitions
    /// rebuild a chain that verifies (device certificate signed by its signer certificate) with a
    /// signer other than this project's belongs to another project: refused before anything is
    /// written, unless the run re-provisions. A device without such a chain goes on as before.
    ///
    /// Returns true when the device holds a chain of one of this project's earlier signers.
    fn refuse_foreign_chain(&mut self, hello: &HelloInfo) -> Result<bool, Failure> {
        use der::{Decode, Encode};
        let m = self.material;
        let locked = hello.lifecycle == keystamp_wire::Lifecycle::Locked;
        // --reprovision cannot help a Locked device: nothing on it can be rewritten.
        if (m.reprovision && !locked) || !hello.chip.data_locked || hello.def_blob.is_none() {
            return Ok(false);
        }
        let chain = match self.link.call(&Request::RebuildChain) {
            Ok(Response::Chain(r)) => r,
            // No chain to rebuild (slots not written yet, definitions incomplete or not
            // fitting): nothing to protect; the steps below write this project's.
            Ok(_) | Err(LinkError::Device { .. }) => return Ok(false),
            Err(error) => return Err(self.link_failure(Step::Probe, error)),
        };
        let device = self.read_cert(keystamp_wire::CertKind::Device, chain.device.len)?;
        let signer = self.read_cert(keystamp_wire::CertKind::Signer, chain.signer.len)?;
        if signer == m.signer.der {
            return Ok(false);
        }
        if m.project_signer_key(&signer).is_some() {
            return Ok(true);
        }
        let (Ok(device_cert), Ok(signer_cert)) = (
            x509_cert::Certificate::from_der(&device),
            x509_cert::Certificate::from_der(&signer),
        ) else {
            return Ok(false);
        };
        let spki = signer_cert.tbs_certificate().subject_public_key_info();
        let Ok(signer_key) = crate::pki::ca::public_key_xy(spki) else {
            return Ok(false);
        };
        if crate::pki::ca::verify_signed_by(&device_cert, &signer_key).is_err() {
            return Ok(false);
        }
        let signer_cn = crate::pki::ca::common_name(signer_cert.tbs_certificate().subject())
            .unwrap_or_default();
        let spki_der = spki.to_der().unwrap_or_default();
        Err(Failure::new(
            Step::Probe,
            FailureKind::ForeignChain {
                signer_cn,
                signer_key_sha256: crate::pki::ca::sha256(&spki_der),
                locked,
            },
        ))
    }

    fn read_cert(&mut self, kind: keystamp_wire::CertKind, len: u16) -> Result<Vec<u8>, Failure> {
        // The length is the device's: bounded before anything is reserved or requested.
        if usize::from(len) > MAX_DEVICE_CERT {
            return Err(Failure::new(
                Step::Verify,
                FailureKind::DeviceCount {
                    what: "certificate length",
                    got: u64::from(len),
                    max: MAX_DEVICE_CERT as u64,
                },
            ));
        }
        let mut der = Vec::with_capacity(usize::from(len));
        while der.len() < len as usize {
            let offset = der.len() as u16;
            let chunk = (len - offset).min(MAX_CHUNK as u16);
            match self.call(
                Step::Verify,
                &Request::ReadCert {
                    cert: kind,
                    offset,
                    len: chunk,
                },
            )? {
                // Never more than asked for: the certificate cannot grow past its length.
                Response::CertChunk(c)
                    if c.offset == offset
                        && !c.data.is_empty()
                        && c.data.len() <= usize::from(chunk) =>
                {
                    der.extend_from_slice(&c.data)
                }
                other => return Err(Failure::unexpected(Step::Verify, "CertChunk", &other)),
            }
        }
        Ok(der)
    }

    fn check(&mut self, report: &mut DeviceReport) -> Result<(), Failure> {
        let m = self.material;
        if m.part_profile == crate::project::PartProfile::TrustAndGo {
            return self.check_trust_and_go(report);
        }
        self.step(Step::Probe);
        let hello = self.hello()?;
        let serial = hello.chip.serial;
        self.chip = Some(ChipSerial(serial));
        report.chip_serial = Some(serial);
        if hello.blob_untrusted {
            return Err(Failure::new(Step::Probe, FailureKind::BlobUntrusted));
        }
        if !hello.chip.config_locked || !hello.chip.data_locked || hello.def_blob.is_none() {
            return Err(Failure::new(Step::Probe, FailureKind::NotProvisioned));
        }
        self.check_chain(serial, report)
    }

    /// The verification of a provisioned device after its Hello: the chain it rebuilds (signed
    /// by the project's root through its current or an earlier signer) is the registry's live
    /// certificate, and the device proves the key.
    fn check_chain(&mut self, serial: [u8; 9], report: &mut DeviceReport) -> Result<(), Failure> {
        use der::Decode;
        let m = self.material;
        self.step(Step::Verify);
        let chain = match self.call(Step::Verify, &Request::RebuildChain)? {
            Response::Chain(r) => r,
            other => return Err(Failure::unexpected(Step::Verify, "Chain", &other)),
        };
        let device = self.read_cert(keystamp_wire::CertKind::Device, chain.device.len)?;
        let signer = self.read_cert(keystamp_wire::CertKind::Signer, chain.signer.len)?;
        if crate::pki::ca::sha256(&device) != chain.device.digest
            || crate::pki::ca::sha256(&signer) != chain.signer.digest
        {
            return Err(Failure::new(Step::Verify, FailureKind::DigestMismatch));
        }
        let device_cert = x509_cert::Certificate::from_der(&device).at(Step::Verify)?;
        let signer_cert = x509_cert::Certificate::from_der(&signer).at(Step::Verify)?;
        let signer_public_key = m
            .project_signer_key(&signer)
            .ok_or(Failure::new(Step::Verify, FailureKind::ForeignSigner))?;
        let chain_signature = |which| {
            move |error| Failure::new(Step::Verify, FailureKind::ChainSignature { which, error })
        };
        crate::pki::ca::verify_signed_by(&signer_cert, &m.root_public_key)
            .map_err(chain_signature("signer"))?;
        crate::pki::ca::verify_signed_by(&device_cert, &signer_public_key)
            .map_err(chain_signature("device"))?;
        report.cn = common_name(&device).map(|cn| crate::sanitize::device_text(&cn));
        let def = self.device_def(Step::Verify)?;
        let view = keystamp_certdef::CertView::new(&def, &device);
        let public_key = view.public_key().at(Step::Verify)?;
        report.cert_serial = view.cert_sn().ok().map(hex::encode_upper);
        let recorded = self
            .registry(Step::Verify)?
            .live_certificate(ChipSerial(serial))
            .at(Step::Verify)?;
        match recorded {
            Some(rec) if rec.der == device => {}
            Some(rec) => {
                return Err(Failure::new(
                    Step::Verify,
                    FailureKind::RegistryMismatch {
                        registry_serial: rec.serial,
                    },
                ));
            }
            None => {
                return Err(Failure::new(Step::Verify, FailureKind::NotInRegistry));
            }
        }
        self.prove_identity(Step::Verify, &public_key)?;
        let _ = self.call(Step::Done, &Request::Finish { reboot: false });
        Ok(())
    }

    fn hello(&mut self) -> Result<HelloInfo, Failure> {
        // A device that was just reset prints its boot banner first; Hello is retried by the link.
        let first = self.call(Step::Probe, &Request::Hello);
        let answer = match (first, self.material.baud_max) {
            // Silent at this rate: maybe still at a rate negotiated by an earlier session.
            (Err(f), Some(max)) if matches!(&f.kind, FailureKind::Link { error, .. } if matches!(**error, LinkError::NoAnswer { .. })) => {
                match self.link.find_rate(max) {
                    Ok(Some(_)) => self.call(Step::Probe, &Request::Hello)?,
                    Ok(None) => return Err(f),
                    Err(e) => return Err(self.link_failure(Step::Probe, e)),
                }
            }
            (first, _) => first?,
        };
        match answer {
            Response::Hello(h) => Ok(h),
            other => Err(Failure::unexpected(Step::Probe, "Hello", &other)),
        }
    }

    fn read_config(&mut self, step: Step) -> Result<[u8; CONFIG_SIZE], Failure> {
        match self.call(step, &Request::ReadConfig)? {
            Response::Config(c) => c
                .as_slice()
                .try_into()
                .map_err(|_| Failure::new(step, FailureKind::ConfigLength)),
            other => Err(Failure::unexpected(step, "Config", &other)),
        }
    }

    fn config(&mut self, hello: &HelloInfo) -> Result<[u8; CONFIG_SIZE], Failure> {
        let m = self.material;
        if m.part_profile == crate::project::PartProfile::TrustFlex {
            return self.trust_flex_config(hello);
        }
        let target = ConfigZone::from_bytes(&m.config);
        if hello.chip.config_locked {
            let current = self.read_config(Step::Config)?;
            if let Some(at) = ConfigZone::from_bytes(&current).first_setting_difference(&target) {
                return Err(Failure::new(
                    Step::Config,
                    FailureKind::ConfigLockedDifferent {
                        byte: at,
                        chip: current.get(at).copied().unwrap_or_default(),
                        wanted: m.config.get(at).copied().unwrap_or_default(),
                    },
                ));
            }
            self.audit(
                Step::Config,
                Outcome::Skipped,
                "config already locked and matching",
            )?;
            return Ok(current);
        }
        let mut data = heapless::Vec::new();
        data.extend_from_slice(&m.config)
            .map_err(|_| Failure::new(Step::Config, FailureKind::TooLong("config")))?;
        self.ok(Step::Config, &Request::WriteConfig { offset: 0, data })?;
        let back = self.read_config(Step::Config)?;
        let back_zone = ConfigZone::from_bytes(&back);
        if let Some(at) = back_zone.first_setting_difference(&target) {
            return Err(Failure::new(
                Step::Config,
                FailureKind::ConfigReadBack { byte: at },
            ));
        }
        if !m.lock_config {
            return Err(Failure::new(Step::Config, FailureKind::ConfigLockDisabled));
        }
        self.ok(
            Step::Config,
            &Request::LockConfig {
                crc: back_zone.lock_crc(),
            },
        )?;
        self.audit(
            Step::Config,
            Outcome::Ok,
            &format!("config locked, CRC {:04X}", back_zone.lock_crc()),
        )?;
        let mut locked = back;
        locked[keystamp_atecc::config::LOCK_CONFIG_BYTE] = keystamp_atecc::config::LOCKED;
        Ok(locked)
    }

    /// IO protection (docs/atecc.md "IO protection"), just before the data lock: a fresh random
    /// key into the IO-key slot (the chip takes a clear write only while the data zone is
    /// unlocked) and the same key to the agent's flash. The key lives only in this function: it
    /// is never logged, audited or stored by the station. An interrupted run is redone whole by
    /// the next one (data still unlocked: new key in both places).
    fn store_io_key(&mut self, hello: &HelloInfo) -> Result<(), Failure> {
        let Some(slot) = self.material.io_key_slot else {
            return Ok(());
        };
        if hello.features & keystamp_wire::FEATURE_IO_KEY == 0 {
            return Err(Failure::new(Step::Key, FailureKind::IoKeyUnsupported));
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| Failure::new(Step::Key, FailureKind::Random(e)))?;
        let mut data = heapless::Vec::new();
        data.extend_from_slice(&key)
            .map_err(|_| Failure::new(Step::Key, FailureKind::TooLong("IO key")))?;
        self.ok(
            Step::Key,
            &Request::WriteSlot {
                slot,
                offset: 0,
                data,
            },
        )?;
        let stored = self.ok(
            Step::Key,
            &Request::StoreIoKey {
                key: keystamp_wire::IoKey(key),
            },
        );
        key.fill(0);
        stored?;
        self.audit(
            Step::Key,
            Outcome::Ok,
            &format!("IO-protection key written to slot {slot}"),
        )?;
        Ok(())
    }

    fn key_slot(&self) -> Result<u8, Failure> {
        let def = self.device_def(Step::Key)?;
        let loc = def.public_key_dev_loc;
        u8::try_from(loc.slot)
            .map_err(|_| Failure::new(Step::Key, FailureKind::KeySlotOutOfRange(loc.slot)))
    }

    fn device_def(&self, step: Step) -> Result<CertDef<'a>, Failure> {
        self.material
            .device_def
            .as_def()
            .map_err(|e| Failure::new(step, FailureKind::Definition(e)))
    }

    fn public_key(&mut self, step: Step, request: Request) -> Result<[u8; 64], Failure> {
        match self.call(step, &request)? {
            Response::PublicKey(pk) => {
                let mut out = [0u8; 64];
                out[..32].copy_from_slice(&pk.x);
                out[32..].copy_from_slice(&pk.y);
                Ok(out)
            }
            other => Err(Failure::unexpected(step, "PublicKey", &other)),
        }
    }

    fn issue(
        &mut self,
        config: &[u8; CONFIG_SIZE],
        public_key: &[u8; 64],
    ) -> Result<(Issued, Option<CertStatus>), Failure> {
        self.check_stop()?;
        let m = self.material;
        let chip = self
            .chip
            .ok_or(Failure::new(Step::Issue, FailureKind::NoChipSerial))?;
        let def = self.device_def(Step::Issue)?;
        // Resume: the registry's live certificate for this chip and key is the one to send.
        // (The registry guard must be gone before `audit`, which locks it again.)
        let live = self
            .registry(Step::Issue)?
            .live_certificate(chip)
            .at(Step::Issue)?;
        {
            if let Some(rec) = live
                && rec.public_key == *public_key
            {
                let device_sn = keystamp_certdef::device_sn_from_config(config);
                let issued = crate::pki::issue::split_for_device(
                    &def,
                    rec.der.clone(),
                    Some(&m.signer_public_key),
                    device_sn.as_ref(),
                    Some(config),
                )
                .at(Step::Issue)?;
                self.audit(
                    Step::Issue,
                    Outcome::Skipped,
                    &format!("reusing certificate {}", rec.serial),
                )?;
                return Ok((issued, Some(rec.status)));
            }
        }
        let req = DeviceCertRequest {
            def: &def,
            config,
            public_key,
            signer_public_key: &m.signer_public_key,
            signer_id: m.signer_id,
            issue_date: now_hour(),
            expire_years: m.validity_years,
        };
        let issuer = self.issuer;
        let issued = issue_device_cert(&req, |d| issuer.sign(d)).at(Step::Issue)?;
        // The certificate's key is exactly the proven key, or nothing is recorded.
        if certified_key(&issued.der) != Some(*public_key) {
            return Err(Failure::new(Step::Issue, FailureKind::KeyNotProven));
        }
        let cn = common_name(&issued.der).unwrap_or_default();
        let not_before = rfc3339(&issued.not_before);
        let not_after = rfc3339(&issued.not_after);
        // The write-ahead record and its audit entry in one transaction.
        let detail = format!("issued {} (write-ahead)", hex::encode_upper(&issued.serial));
        let outcome = {
            let entry = self.entry(Step::Issue, &detail);
            let mut reg = self.registry(Step::Issue)?;
            reg.begin_issue_recorded(
                &IssueRequest {
                    kind: CertKind::Device,
                    chip_serial: Some(chip),
                    serial: &issued.serial,
                    public_key,
                    subject_cn: &cn,
                    der: &issued.der,
                    not_before: &not_before,
                    not_after: &not_after,
                },
                &entry,
            )
            .at(Step::Issue)?
        };
        match outcome {
            IssueOutcome::New(_) => Ok((issued, None)),
            IssueOutcome::Reused(rec) => {
                let status = rec.status;
                let device_sn = keystamp_certdef::device_sn_from_config(config);
                let issued = crate::pki::issue::split_for_device(
                    &def,
                    rec.der,
                    Some(&m.signer_public_key),
                    device_sn.as_ref(),
                    Some(config),
                )
                .at(Step::Issue)?;
                Ok((issued, Some(status)))
            }
        }
    }

    fn upload_blob(&mut self) -> Result<(), Failure> {
        let m = self.material;
        let total_len = u32::try_from(m.blob.len()).map_err(|_| {
            Failure::new(Step::Definitions, FailureKind::TooLong("definition blob"))
        })?;
        let mut offset = 0u32;
        // The signer signs the blob's envelope digest; the device checks it against slot 11.
        let envelope = keystamp_agent::auth::blob_envelope_digest(&m.blob_digest);
        let rs = self.issuer.sign(&envelope).map_err(|error| {
            Failure::new(
                Step::Definitions,
                FailureKind::Signing {
                    what: "the definition blob",
                    error,
                },
            )
        })?;
        let signature = signature_of(&rs);
        // Chunks of whole frames; the device reports where to continue, so a resumed upload or a
        // duplicated chunk never corrupts the blob.
        let chunk_len = MAX_CHUNK.min(480);
        for _ in 0..(m.blob.len() / chunk_len + 8) {
            let start = offset as usize;
            let end = (start + chunk_len).min(m.blob.len());
            let data = Chunk::from_slice(&m.blob[start..end])
                .map_err(|_| Failure::new(Step::Definitions, FailureKind::TooLong("chunk")))?;
            let resp = self.call(
                Step::Definitions,
                &Request::StoreDefBlob {
                    total_len,
                    digest: m.blob_digest,
                    signature,
                    offset,
                    data,
                },
            )?;
            match resp {
                Response::DefBlob(p) if p.complete => return Ok(()),
                // The device's count picks the next chunk: bounded before it indexes the blob.
                Response::DefBlob(p) if p.received <= total_len => offset = p.received,
                Response::DefBlob(p) => {
                    return Err(Failure::new(
                        Step::Definitions,
                        FailureKind::DeviceCount {
                            what: "blob bytes received",
                            got: u64::from(p.received),
                            max: u64::from(total_len),
                        },
                    ));
                }
                other => return Err(Failure::unexpected(Step::Definitions, "DefBlob", &other)),
            }
        }
        Err(Failure::new(
            Step::Definitions,
            FailureKind::UploadIncomplete,
        ))
    }

    fn write_slots(&mut self, writes: &SlotWrites, check_first: bool) -> Result<usize, Failure> {
        let mut count = 0;
        for (slot, offset, bytes) in writes {
            // Whole 4-byte words: the chip writes 4 or 32 bytes at a time. A write that ends at
            // the slot's end goes as whole 32-byte blocks (the chip ignores the bytes past the
            // end): one Write for a 72-byte slot's last 8 bytes instead of two.
            let mut data = bytes.clone();
            let to_slot_end =
                usize::from(*offset) + data.len() == keystamp_atecc::slot_size(usize::from(*slot));
            let unit = if to_slot_end { 32 } else { 4 };
            data.resize(data.len().next_multiple_of(unit), 0);
            if check_first {
                let len = bytes.len() as u16;
                let resp = self.call(
                    Step::Certificates,
                    &Request::ReadSlot {
                        slot: *slot,
                        offset: *offset,
                        len,
                    },
                )?;
                if matches!(&resp, Response::Data(d) if d.as_slice() == bytes.as_slice()) {
                    continue;
                }
            }
            let data = Chunk::from_slice(&data)
                .map_err(|_| Failure::new(Step::Certificates, FailureKind::TooLong("slot data")))?;
            self.ok(
                Step::Certificates,
                &Request::WriteSlot {
                    slot: *slot,
                    offset: *offset,
                    data,
                },
            )?;
            count += 1;
        }
        Ok(count)
    }

    /// The device rebuilds its chain (checked with the chip there); both certificates must be
    /// byte for byte the issued ones.
    fn verify_chain(&mut self, issued: &Issued) -> Result<(), Failure> {
        let m = self.material;
        let report = match self.call(Step::Verify, &Request::RebuildChain)? {
            Response::Chain(r) => r,
            other => return Err(Failure::unexpected(Step::Verify, "Chain", &other)),
        };
        let device_ok = report.device.digest == crate::pki::ca::sha256(&issued.der);
        let signer_ok = report.signer.digest == crate::pki::ca::sha256(&m.signer.der);
        if !device_ok || !signer_ok {
            let which = if device_ok { "signer" } else { "device" };
            return Err(Failure::new(
                Step::Verify,
                FailureKind::RebuiltDiffers { which },
            ));
        }
        Ok(())
    }

    /// Proof of possession: `public_key` is point-checked, then the device signs
    /// SHA-256(label ‖ host nonce ‖ device nonce) with its key and the signature must verify
    /// against `public_key`. The device never signs a digest the host chose. Returns the
    /// verified proof.
    fn prove_identity(
        &mut self,
        step: Step,
        public_key: &[u8; 64],
    ) -> Result<crate::registry::proof::IdentityProof, Failure> {
        check_point(public_key).map_err(|kind| Failure::new(step, kind))?;
        let chip = self
            .chip
            .ok_or(Failure::new(step, FailureKind::NoChipSerial))?;
        let mut host_nonce = [0u8; 32];
        getrandom::fill(&mut host_nonce).map_err(|e| Failure::new(step, FailureKind::Random(e)))?;
        let proof = match self.call(step, &Request::IdentityProof { host_nonce })? {
            Response::IdentityProof(p) => p,
            other => return Err(Failure::unexpected(step, "IdentityProof", &other)),
        };
        let digest = keystamp_agent::auth::identity_digest(&host_nonce, &proof.device_nonce);
        verify_prehash(public_key, &digest, &proof.signature.r, &proof.signature.s)
            .map_err(|e| Failure::new(step, FailureKind::ChallengeSignature(e)))?;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&proof.signature.r);
        signature[32..].copy_from_slice(&proof.signature.s);
        Ok(crate::registry::proof::IdentityProof {
            chip_serial: chip,
            public_key: *public_key,
            host_nonce,
            device_nonce: proof.device_nonce,
            signature,
        })
    }
}

/// What `keystamp maintain` does after authenticating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaintenanceOp {
    /// Report the device's state (and that authentication with the signer key works).
    Status,
    /// Store the project's signed definition blob again (flash erased or replaced, an untrusted
    /// blob reported), then verify the device as `keystamp verify` does.
    StoreBlob,
}

impl MaintenanceOp {
    fn audit_text(self) -> &'static str {
        match self {
            MaintenanceOp::Status => "maintain status: authenticated",
            MaintenanceOp::StoreBlob => "maintain store-blob: blob stored, chain verified",
        }
    }
}

/// SHA-256 of a P-256 public key's SubjectPublicKeyInfo DER (X‖Y given): the fingerprint
/// `openssl pkey -pubin -outform DER | sha256sum` shows.
pub fn key_sha256(xy: &[u8; 64]) -> [u8; 32] {
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 04 ‖ X ‖ Y }.
    const SPKI_PREFIX: [u8; 27] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08,
        0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    let mut der = Vec::with_capacity(SPKI_PREFIX.len() + 64);
    der.extend_from_slice(&SPKI_PREFIX);
    der.extend_from_slice(xy);
    crate::pki::ca::sha256(&der)
}

/// Test hooks of the engine (docs/architecture.md, "Test hooks"): not options, not in `--help`.
pub mod test_hook {
    /// The environment variable naming the step at whose start the process kills itself with
    /// SIGKILL (crash tests: no destructor, no flush, no transaction end runs).
    pub const KILL_AT: &str = "KEYSTAMP_TEST_KILL_AT";

    /// Kills this process with SIGKILL when [`KILL_AT`] names `point` (Unix; elsewhere a no-op).
    pub fn kill_at(point: &str) {
        if std::env::var_os(KILL_AT).is_some_and(|v| v == point) {
            #[cfg(unix)]
            {
                let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
            }
        }
    }
}

/// R ‖ S as a wire signature.
pub fn signature_of(rs: &[u8; 64]) -> keystamp_wire::Signature {
    let mut sig = keystamp_wire::Signature {
        r: [0; 32],
        s: [0; 32],
    };
    sig.r.copy_from_slice(&rs[..32]);
    sig.s.copy_from_slice(&rs[32..]);
    sig
}

/// Verifies an ECDSA P-256 signature R‖S over a 32-byte prehash with public key X‖Y.
pub fn verify_prehash(
    public_key: &[u8; 64],
    digest: &[u8; 32],
    r: &[u8; 32],
    s: &[u8; 32],
) -> Result<(), p256::ecdsa::Error> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 4;
    sec1[1..].copy_from_slice(public_key);
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)?;
    let sig = p256::ecdsa::Signature::from_scalars(*r, *s)?;
    key.verify_prehash(digest, &sig)
}

/// Longest certificate the host reads from a device (bytes). Compressed certificates rebuild to
/// well under 1 KiB; the bound keeps a hostile length from reserving or requesting more.
pub const MAX_DEVICE_CERT: usize = 2048;

/// Refuses a public key X‖Y that is not a point on P-256 (checked before anything is signed
/// for it: a certificate must never carry a key nobody can hold).
pub fn check_point(public_key: &[u8; 64]) -> Result<(), FailureKind> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 4;
    sec1[1..].copy_from_slice(public_key);
    p256::PublicKey::from_sec1_bytes(&sec1)
        .map(|_| ())
        .map_err(|_| FailureKind::InvalidPublicKey)
}

/// The public key X‖Y a DER certificate carries, if it is a P-256 key.
fn certified_key(der: &[u8]) -> Option<[u8; 64]> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    crate::pki::ca::public_key_xy(cert.tbs_certificate().subject_public_key_info()).ok()
}

/// The subject CN of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    crate::pki::ca::common_name(cert.tbs_certificate().subject())
}

fn now_hour() -> DateTime {
    let now = der::DateTime::from_system_time(std::time::SystemTime::now())
        .unwrap_or(der::DateTime::INFINITY);
    DateTime::new(now.year(), now.month(), now.day(), now.hour(), 0, 0)
}

fn rfc3339(d: &DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year, d.month, d.day, d.hour, d.minute, d.second
    )
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_unexpected_answer_names_its_kind_and_size_but_never_prints_device_bytes() {
        // A hostile device answers with terminal escape sequences instead of a public key.
        let payload = b"\x1b[2J\x1b]0;owned\x07";
        let data = Chunk::from_slice(payload).expect("fits a chunk");
        let f = Failure::unexpected(Step::Key, "PublicKey", &Response::Data(data));
        assert!(matches!(
            f.kind,
            FailureKind::UnexpectedAnswer {
                expected: "PublicKey",
                got: Answer::Data(n),
            } if n == payload.len()
        ));
        let text = f.to_string();
        assert_eq!(
            text,
            format!(
                "key: unexpected answer Data ({} bytes) (expected PublicKey)",
                payload.len()
            )
        );
        assert!(!text.contains('\x1b') && !text.contains("owned"));
    }

    #[test]
    fn a_failure_reaches_the_underlying_error_through_source() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "cable pulled");
        let f = Failure::new(
            Step::Certificates,
            FailureKind::Link {
                error: Box::new(LinkError::Io(io)),
                last_line: None,
            },
        );
        // The kind is part of the failure's own message; its source is the link's error.
        let link = f.source().expect("the link error");
        assert!(link.downcast_ref::<LinkError>().is_some());
        let root = link.source().expect("the I/O error");
        assert_eq!(root.to_string(), "cable pulled");
        assert!(f.to_string().starts_with("certificates: serial I/O failed"));
    }

    #[test]
    fn no_answer_shows_the_last_line_the_device_printed() {
        let f = Failure::new(
            Step::Probe,
            FailureKind::Link {
                error: Box::new(LinkError::NoAnswer {
                    request: "Hello",
                    attempts: 3,
                }),
                last_line: Some("rst:0x1 (POWERON_RESET)".into()),
            },
        );
        let text = f.to_string();
        assert!(text.starts_with("probe: the device did not answer Hello (3 attempts)"));
        assert!(text.ends_with("(last line seen: \"rst:0x1 (POWERON_RESET)\")"));
    }
}
