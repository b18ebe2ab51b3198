//! Issuing a device certificate from its definition's template, so that what the device rebuilds
//! from the chip is byte for byte what the host signed.
//!
//! The certificate is produced by the same rebuild the device runs (template + the device data the
//! chip will hold, with a zero signature), then signed over its TBS digest, then split again into
//! the bytes to write — and that split rebuilds and compares, so a definition that cannot carry
//! the certificate is caught here, before anything reaches a device.

use keystamp_atecc::zone::CONFIG_SIZE;
use keystamp_certdef::split::DeviceImage;
use keystamp_certdef::{
    Cert, CertDef, CertView, CompressedCert, DateTime, DeviceData, DeviceLoc, DeviceZone,
    Error as CodecError, pad_public_key, rebuild, split,
};

/// What the chip must hold for one certificate: `(slot, offset, bytes)` data-zone writes.
pub type SlotWrites = Vec<(u8, u16, Vec<u8>)>;

/// A certificate ready to be written to a device.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Full DER.
    pub der: Vec<u8>,
    /// Certificate serial number bytes.
    pub serial: Vec<u8>,
    /// Subject public key X‖Y.
    pub public_key: [u8; 64],
    /// Issue date (minutes and seconds are zero: the compressed form keeps hours).
    pub not_before: DateTime,
    /// Expire date.
    pub not_after: DateTime,
    /// The 72-byte compressed certificate.
    pub compressed: [u8; 72],
    /// The data-zone writes that make the chip hold this certificate.
    pub writes: SlotWrites,
}

/// Why a certificate could not be issued.
#[derive(Debug)]
pub enum IssueError {
    /// The codec refused the definition or certificate.
    Codec(CodecError),
    /// Signing failed.
    Sign(SignError),
    /// The definition stores something outside the data zone (config/OTP are not writable here).
    UnsupportedLocation(DeviceLoc),
}

impl std::fmt::Display for IssueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IssueError::Codec(e) => write!(f, "certificate definition: {e}"),
            IssueError::Sign(e) => e.fmt(f),
            IssueError::UnsupportedLocation(l) => {
                write!(
                    f,
                    "the definition writes to {l:?}, which keystamp does not program"
                )
            }
        }
    }
}

impl std::error::Error for IssueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IssueError::Codec(e) => Some(e),
            IssueError::Sign(e) => Some(e),
            IssueError::UnsupportedLocation(_) => None,
        }
    }
}

/// Signing a TBS digest failed; the signer's own error is the source (a key file, an HSM, ...).
#[derive(Debug)]
pub struct SignError(pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "signing failed: {}", self.0)
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl From<CodecError> for IssueError {
    fn from(e: CodecError) -> Self {
        IssueError::Codec(e)
    }
}

/// Inputs for one device certificate.
pub struct DeviceCertRequest<'a> {
    /// The device certificate's definition.
    pub def: &'a CertDef<'a>,
    /// The chip's config zone (its serial number feeds serial numbers and custom elements).
    pub config: &'a [u8; CONFIG_SIZE],
    /// The chip-generated public key X‖Y.
    pub public_key: &'a [u8; 64],
    /// The signer (issuing CA) public key, for the authority key id.
    pub signer_public_key: &'a [u8; 64],
    /// The signer id (the 4 hex digits in the signer's CN).
    pub signer_id: [u8; 2],
    /// Issue date; truncated to the hour.
    pub issue_date: DateTime,
    /// Validity in whole years, 0 = no expiration.
    pub expire_years: u8,
}

/// Issues a device certificate, signing its TBS digest with `sign`.
pub fn issue_device_cert(
    req: &DeviceCertRequest<'_>,
    sign: impl FnOnce(&[u8; 32]) -> Result<[u8; 64], SignError>,
) -> Result<Issued, IssueError> {
    issue_device_cert_with(req, &[], sign)
}

/// [`issue_device_cert`] for a chip that already holds `data` at those data-zone locations
/// (e.g. the EUI-48 a Trust&GO part's certificate names), which the certificate carries.
pub fn issue_device_cert_with(
    req: &DeviceCertRequest<'_>,
    data: &[(DeviceLoc, &[u8])],
    sign: impl FnOnce(&[u8; 32]) -> Result<[u8; 64], SignError>,
) -> Result<Issued, IssueError> {
    let def = req.def;
    let issue_date = DateTime {
        minute: 0,
        second: 0,
        ..req.issue_date
    };
    let mut comp = CompressedCert {
        signature: [0; 64],
        issue_date,
        expire_years: req.expire_years,
        signer_id: req.signer_id,
        template_id: def.template_id,
        chain_id: def.chain_id,
        sn_source: def.sn_source,
        format_version: 0,
        reserved: 0,
    };
    comp.format_version = comp.min_format_version();
    let mut image = DeviceImage {
        config: *req.config,
        ..DeviceImage::default()
    };
    for (loc, bytes) in data {
        image.write(loc, bytes)?;
    }
    put_public_key(&mut image, &def.public_key_dev_loc, req.public_key)?;
    if def.comp_cert_dev_loc.is_present() {
        image.write(&def.comp_cert_dev_loc, &comp.to_bytes()?)?;
    }
    let mut buf = vec![0u8; def.max_cert_size()?.max(1024)];
    let len = rebuild(def, &image, Some(req.signer_public_key), &mut buf)?;
    let digest = CertView::new(def, &buf[..len]).tbs_digest()?;
    let signature = sign(&digest).map_err(IssueError::Sign)?;
    let mut cert = Cert::from_existing(def, &mut buf, len)?;
    cert.set_signature(&signature)?;
    let len = cert.finish();
    buf.truncate(len);
    let device_sn = keystamp_certdef::device_sn_from_config(req.config);
    split_for_device(
        def,
        buf,
        Some(req.signer_public_key),
        device_sn.as_ref(),
        Some(req.config),
    )
}

/// Splits an existing certificate (e.g. the signer's) into what a device stores.
pub fn split_for_device(
    def: &CertDef<'_>,
    der: Vec<u8>,
    ca_public_key: Option<&[u8; 64]>,
    device_sn: Option<&[u8; 9]>,
    config: Option<&[u8; CONFIG_SIZE]>,
) -> Result<Issued, IssueError> {
    let mut image = DeviceImage::default();
    if let Some(c) = config {
        image.config = *c;
    }
    let mut scratch = vec![0u8; der.len() + 256];
    let comp = split(
        def,
        &der,
        ca_public_key,
        device_sn,
        &mut image,
        &mut scratch,
    )?;
    let view = CertView::new(def, &der);
    let mut writes = SlotWrites::new();
    for loc in keystamp_certdef::split::write_plan(def)?.iter() {
        match loc.zone {
            DeviceZone::Data if !loc.is_genkey => {
                // Plan entries are 32-byte aligned; a slot ends earlier (72-byte slots).
                let size = keystamp_certdef::split::slot_size(loc.slot);
                let end = loc.end().min(size);
                let bytes = image
                    .read(&DeviceLoc {
                        count: end.saturating_sub(loc.offset as usize) as u16,
                        ..*loc
                    })
                    .ok_or(IssueError::UnsupportedLocation(*loc))?
                    .to_vec();
                let slot =
                    u8::try_from(loc.slot).map_err(|_| IssueError::UnsupportedLocation(*loc))?;
                writes.push((slot, loc.offset, bytes));
            }
            DeviceZone::None => {}
            _ => return Err(IssueError::UnsupportedLocation(*loc)),
        }
    }
    Ok(Issued {
        serial: view.cert_sn()?.to_vec(),
        public_key: view.public_key()?,
        not_before: view.issue_date()?,
        not_after: view.expire_date()?,
        compressed: comp.to_bytes()?,
        der,
        writes,
    })
}

fn put_public_key(
    image: &mut DeviceImage,
    loc: &DeviceLoc,
    pk: &[u8; 64],
) -> Result<(), IssueError> {
    if !loc.is_present() {
        return Ok(());
    }
    if loc.is_genkey {
        let slot = image
            .public_keys
            .get_mut(loc.slot as usize)
            .ok_or(IssueError::UnsupportedLocation(*loc))?;
        *slot = Some(*pk);
        return Ok(());
    }
    match loc.count {
        72 => image.write(loc, &pad_public_key(pk))?,
        _ => image.write(loc, pk)?,
    }
    Ok(())
}
