//! The device's identity at run time: rebuild the device and signer certificates from what the
//! chip holds, verify them (with the chip's Verify command), and sign digests with the device key.
//!
//! This is what a product's TLS stack calls to authenticate to Azure DPS / IoT Hub or AWS IoT;
//! the provisioning agent uses the same code, so what the factory verified is what ships.

use keystamp_certdef::{CertDef, CertView, DeviceLoc, DeviceZone, read_plan, rebuild};

use crate::chip::{CONFIG_SIZE, Chip, ChipError, slot_size};

/// Block size the read plan is aligned to (the chip's 32-byte reads).
const BLOCK: u16 = keystamp_atecc::zone::BLOCK_SIZE as u16;
/// Bytes of device data one certificate's rebuild may read (all plan entries together).
const SCRATCH: usize = 640;

/// The chain a device carries: its certificate's definition, its signer's, and the root key.
#[derive(Clone, Debug)]
pub struct Definitions<'a> {
    /// The device certificate's definition.
    pub device: CertDef<'a>,
    /// The signer (intermediate CA) certificate's definition.
    pub signer: CertDef<'a>,
    /// The root CA's public key (X ‖ Y), which signs the signer certificate.
    pub root_public_key: [u8; 64],
}

/// Why the identity could not be rebuilt or verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IdentityError {
    /// The chip failed.
    Chip(ChipError),
    /// The certificate codec refused the definition or the device data.
    Codec(keystamp_certdef::Error),
    /// A read plan needs more device data than the agent's scratch buffer holds.
    TooMuchDeviceData,
    /// The signer certificate's signature does not verify against the root public key.
    SignerSignature,
    /// The device certificate's signature does not verify against the signer's public key.
    DeviceSignature,
    /// No definition blob is stored.
    NoBlob,
    /// The stored blob's signature does not verify against the trust anchor: it is not used.
    BlobUntrusted,
}

impl core::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IdentityError::Chip(e) => write!(f, "secure element: {e}"),
            IdentityError::Codec(e) => write!(f, "certificate definition: {e}"),
            IdentityError::TooMuchDeviceData => {
                f.write_str("the definition reads more device data than the agent holds")
            }
            IdentityError::SignerSignature => {
                f.write_str("the signer certificate does not verify against the root key")
            }
            IdentityError::DeviceSignature => {
                f.write_str("the device certificate does not verify against the signer key")
            }
            IdentityError::NoBlob => f.write_str("no certificate definitions stored"),
            IdentityError::BlobUntrusted => {
                f.write_str("the stored definitions are not signed by the trusted signer")
            }
        }
    }
}

impl core::error::Error for IdentityError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            IdentityError::Chip(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ChipError> for IdentityError {
    fn from(e: ChipError) -> Self {
        IdentityError::Chip(e)
    }
}

impl From<keystamp_certdef::Error> for IdentityError {
    fn from(e: keystamp_certdef::Error) -> Self {
        IdentityError::Codec(e)
    }
}

/// Lengths of the two rebuilt certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChainLens {
    /// DER length of the device certificate.
    pub device: usize,
    /// DER length of the signer certificate.
    pub signer: usize,
}

/// Rebuilds one certificate of `def` from the chip into `out`; returns its length.
pub fn rebuild_cert<C: Chip>(
    chip: &mut C,
    def: &CertDef<'_>,
    ca_public_key: Option<&[u8; 64]>,
    out: &mut [u8],
) -> Result<usize, IdentityError> {
    let plan = read_plan(def, BLOCK)?;
    let mut scratch = [0u8; SCRATCH];
    let mut config: Option<[u8; CONFIG_SIZE]> = None;
    // Carve the scratch buffer into one piece per plan entry, read each from the chip.
    let mut pieces: heapless::Vec<
        (DeviceLoc, usize, usize),
        { keystamp_certdef::rebuild::MAX_LOCS },
    > = heapless::Vec::new();
    let mut used = 0usize;
    for loc in plan.iter() {
        let len = readable_len(loc);
        let dst = scratch
            .get_mut(used..used + len)
            .ok_or(IdentityError::TooMuchDeviceData)?;
        read_loc(chip, loc, dst, &mut config)?;
        pieces
            .push((*loc, used, len))
            .map_err(|_| IdentityError::TooMuchDeviceData)?;
        used += len;
    }
    let mut data: heapless::Vec<(DeviceLoc, &[u8]), { keystamp_certdef::rebuild::MAX_LOCS }> =
        heapless::Vec::new();
    for (loc, start, len) in pieces.iter() {
        let bytes = scratch
            .get(*start..*start + *len)
            .ok_or(IdentityError::TooMuchDeviceData)?;
        data.push((*loc, bytes))
            .map_err(|_| IdentityError::TooMuchDeviceData)?;
    }
    Ok(rebuild(def, data.as_slice(), ca_public_key, out)?)
}

/// How many bytes of `loc` the chip can give: aligned plan entries may run past a slot's end.
fn readable_len(loc: &DeviceLoc) -> usize {
    let count = loc.count as usize;
    match loc.zone {
        DeviceZone::Data if loc.is_genkey => count.min(64usize.saturating_sub(loc.offset as usize)),
        DeviceZone::Data => {
            let size = u8::try_from(loc.slot).map(slot_size).unwrap_or(0);
            count.min(size.saturating_sub(loc.offset as usize))
        }
        DeviceZone::Otp => count.min(64usize.saturating_sub(loc.offset as usize)),
        DeviceZone::Config => count.min(128usize.saturating_sub(loc.offset as usize)),
        DeviceZone::GenKey | DeviceZone::DedicatedData | DeviceZone::None => 0,
    }
}

fn read_loc<C: Chip>(
    chip: &mut C,
    loc: &DeviceLoc,
    dst: &mut [u8],
    config: &mut Option<[u8; CONFIG_SIZE]>,
) -> Result<(), IdentityError> {
    let off = loc.offset as usize;
    match loc.zone {
        // Not ATECC608 zones (cryptoauthlib never reads them for this chip); nothing to read.
        DeviceZone::GenKey | DeviceZone::DedicatedData | DeviceZone::None => Ok(()),
        DeviceZone::Config => {
            let cfg = match config {
                Some(c) => *c,
                None => {
                    let c = chip.read_config()?;
                    *config = Some(c);
                    c
                }
            };
            let src = cfg.get(off..off + dst.len()).ok_or(ChipError::OutOfRange)?;
            dst.copy_from_slice(src);
            Ok(())
        }
        DeviceZone::Otp => {
            let off = u8::try_from(off).map_err(|_| ChipError::OutOfRange)?;
            Ok(chip.read_otp(off, dst)?)
        }
        DeviceZone::Data => {
            let slot = u8::try_from(loc.slot).map_err(|_| ChipError::OutOfRange)?;
            if loc.is_genkey {
                let pk = chip.public_key(slot)?;
                let src = pk.get(off..off + dst.len()).ok_or(ChipError::OutOfRange)?;
                dst.copy_from_slice(src);
                Ok(())
            } else {
                Ok(chip.read_slot(slot, loc.offset, dst)?)
            }
        }
    }
}

/// Rebuilds the signer and device certificates from the chip (AKIs from the root and signer
/// public keys) into the two buffers.
pub fn rebuild_chain<C: Chip>(
    chip: &mut C,
    defs: &Definitions<'_>,
    device_out: &mut [u8],
    signer_out: &mut [u8],
) -> Result<ChainLens, IdentityError> {
    let signer = rebuild_cert(chip, &defs.signer, Some(&defs.root_public_key), signer_out)?;
    let signer_der = signer_out
        .get(..signer)
        .ok_or(IdentityError::TooMuchDeviceData)?;
    let signer_pk = CertView::new(&defs.signer, signer_der).public_key()?;
    let device = rebuild_cert(chip, &defs.device, Some(&signer_pk), device_out)?;
    Ok(ChainLens { device, signer })
}

/// Verifies the rebuilt chain with the chip's Verify command: the signer certificate against the
/// root public key, the device certificate against the signer certificate's public key.
pub fn verify_chain<C: Chip>(
    chip: &mut C,
    defs: &Definitions<'_>,
    device_der: &[u8],
    signer_der: &[u8],
) -> Result<(), IdentityError> {
    let signer = CertView::new(&defs.signer, signer_der);
    let signer_pk = signer.public_key()?;
    if !chip.verify_extern(
        &signer.tbs_digest()?,
        &signer.signature()?,
        &defs.root_public_key,
    )? {
        return Err(IdentityError::SignerSignature);
    }
    let device = CertView::new(&defs.device, device_der);
    if !chip.verify_extern(&device.tbs_digest()?, &device.signature()?, &signer_pk)? {
        return Err(IdentityError::DeviceSignature);
    }
    Ok(())
}

/// Signs a SHA-256 digest with the device's private key (the key slot of the device
/// certificate's public-key location, slot 0 in the standard layout). This is the operation a
/// TLS client performs for CertificateVerify.
pub fn sign_digest<C: Chip>(
    chip: &mut C,
    defs: &Definitions<'_>,
    digest: &[u8; 32],
) -> Result<[u8; 64], IdentityError> {
    let slot =
        u8::try_from(defs.device.public_key_dev_loc.slot).map_err(|_| ChipError::OutOfRange)?;
    Ok(chip.sign_digest(slot, digest)?)
}

/// Signs a TLS handshake digest (the SHA-256 of what CertificateVerify covers) with the device
/// key in slot 0, for the product's TLS stack inside the firmware.
///
/// This is a device-side call, not a wire request: the wire protocol never signs a digest the
/// host chooses (that would make the chip a signing oracle for whoever holds the UART). It signs
/// only for a device whose stored definitions are trusted (their signature verified against the
/// locked trust anchor), so an unprovisioned or tampered device has no identity to use.
pub fn sign_handshake_digest<C: Chip, S: embedded_storage::Storage, const B: usize>(
    agent: &mut crate::Agent<C, S, B>,
    digest: &[u8; 32],
) -> Result<[u8; 64], IdentityError> {
    if agent.definitions().is_none() {
        return Err(if agent.blob_untrusted() {
            IdentityError::BlobUntrusted
        } else {
            IdentityError::NoBlob
        });
    }
    Ok(agent
        .chip()
        .sign_digest(crate::auth::DEVICE_KEY_SLOT, digest)?)
}
