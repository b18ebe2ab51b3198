//! Rebuilding a full certificate from a definition and device data (`atcacert_read_cert`), and
//! the device-read plan (`atcacert_get_device_locs`).

use crate::Reason;
use crate::cert::{Cert, unpad_public_key};
use crate::comp::COMP_CERT_LEN;
use crate::def::{PADDED_PUBKEY_LEN, PUBKEY_LEN};
use crate::{CertDef, CertType, DeviceLoc, Error, SnSource, StdElement, transform};

/// Block size cryptoauthlib aligns ATECC reads to.
pub const BLOCK_SIZE: u16 = 32;

/// Most locations a read plan holds (`ATCA_MAX_SLOT_NUM`).
pub const MAX_LOCS: usize = 16;

/// Where the device serial number is read from: config bytes 0–12 (SN is bytes 0–3 and 8–12).
pub const DEVICE_SN_LOC: DeviceLoc = DeviceLoc::config(0, 13);

/// The merged, block-aligned locations to read from a device to rebuild one certificate.
pub type ReadPlan = heapless::Vec<DeviceLoc, MAX_LOCS>;

/// Adds `loc` to `plan` the way `atcacert_merge_device_loc` does: absent locations are skipped;
/// the location is widened to `block`-aligned offset and end, and merged into the first entry of
/// the same area that overlaps or touches it. Unlike cryptoauthlib, a merged entry keeps its
/// aligned offset (the C code takes the unaligned offset of the new location).
pub fn merge_device_loc(plan: &mut ReadPlan, loc: &DeviceLoc, block: u16) -> Result<(), Error> {
    if !loc.is_present() {
        return Ok(());
    }
    let block = block.max(1) as usize;
    let new_off = loc.offset as usize / block * block;
    let new_end = loc.end().div_ceil(block) * block;
    for cur in plan.iter_mut() {
        if !cur.same_area(loc) {
            continue;
        }
        let cur_end = cur.end();
        if new_end < cur.offset as usize || new_off > cur_end {
            continue;
        }
        let off = new_off.min(cur.offset as usize);
        let end = new_end.max(cur_end);
        cur.offset = off as u16;
        cur.count = u16::try_from(end - off).map_err(|_| Error::TooManyLocations)?;
        return Ok(());
    }
    let count = u16::try_from(new_end - new_off).map_err(|_| Error::TooManyLocations)?;
    plan.push(DeviceLoc {
        offset: new_off as u16,
        count,
        ..*loc
    })
    .map_err(|_| Error::TooManyLocations)
}

/// The device-read plan of `def` (`atcacert_get_device_locs`): compressed cert, stored serial
/// number, public key, custom elements, and the device serial number when the serial-number
/// source needs it, merged and aligned to `block` bytes.
pub fn read_plan(def: &CertDef<'_>, block: u16) -> Result<ReadPlan, Error> {
    let mut plan = ReadPlan::new();
    add_to_plan(&mut plan, def, block)?;
    Ok(plan)
}

/// Adds `def`'s locations to an existing plan (to read a whole chain with one plan).
pub fn add_to_plan(plan: &mut ReadPlan, def: &CertDef<'_>, block: u16) -> Result<(), Error> {
    merge_device_loc(plan, &def.comp_cert_dev_loc, block)?;
    merge_device_loc(plan, &def.cert_sn_dev_loc, block)?;
    merge_device_loc(plan, &def.public_key_dev_loc, block)?;
    for (device_loc, _, _) in def.cert_elements.iter_locs() {
        merge_device_loc(plan, &device_loc, block)?;
    }
    if def.sn_source.uses_device_sn() {
        merge_device_loc(plan, &DEVICE_SN_LOC, block)?;
    }
    Ok(())
}

/// Source of device bytes for a rebuild.
pub trait DeviceData {
    /// Exactly the `loc.count` bytes at `loc`, or `None` when not available.
    fn read(&self, loc: &DeviceLoc) -> Option<&[u8]>;
}

/// A slice of `(location, bytes)` pairs — typically the read plan and what was read for each
/// entry. A lookup succeeds when one entry of the same area covers the requested range (the
/// bytes may be shorter than the entry's count when the read was clamped to the slot size).
impl DeviceData for [(DeviceLoc, &[u8])] {
    fn read(&self, loc: &DeviceLoc) -> Option<&[u8]> {
        self.iter().find_map(|(have, bytes)| {
            if !have.same_area(loc) || loc.offset < have.offset {
                return None;
            }
            let start = (loc.offset - have.offset) as usize;
            bytes.get(start..start + loc.count as usize)
        })
    }
}

impl<const N: usize> DeviceData for [(DeviceLoc, &[u8]); N] {
    fn read(&self, loc: &DeviceLoc) -> Option<&[u8]> {
        self.as_slice().read(loc)
    }
}

impl<T: DeviceData + ?Sized> DeviceData for &T {
    fn read(&self, loc: &DeviceLoc) -> Option<&[u8]> {
        (**self).read(loc)
    }
}

/// The 9-byte device serial number from config bytes 0–12 (ATECC: bytes 0–3 ‖ 8–12).
pub fn device_sn_from_config(config: &[u8]) -> Option<[u8; 9]> {
    let c = config.get(..13)?;
    let mut sn = [0u8; 9];
    sn[..4].copy_from_slice(&c[..4]);
    sn[4..].copy_from_slice(&c[8..13]);
    Some(sn)
}

/// Reads the subject public key X‖Y: a reference into `data`, or into `unpadded` when the
/// location holds the 72-byte ATECC padded form (no copy of an unpadded key).
pub fn read_public_key<'d>(
    def: &CertDef<'_>,
    data: &'d (impl DeviceData + ?Sized),
    unpadded: &'d mut [u8; 64],
) -> Result<Option<&'d [u8; 64]>, Error> {
    let loc = &def.public_key_dev_loc;
    if !loc.is_present() {
        return Ok(None);
    }
    let b = data.read(loc).ok_or(Error::MissingDeviceData)?;
    match loc.count as usize {
        PUBKEY_LEN => Ok(Some(b.try_into().map_err(|_| Error::MissingDeviceData)?)),
        PADDED_PUBKEY_LEN => {
            let p: &[u8; 72] = b.try_into().map_err(|_| Error::MissingDeviceData)?;
            *unpadded = unpad_public_key(p);
            Ok(Some(unpadded))
        }
        _ => Err(Error::InvalidDefinition(Reason::PublicKeyLocSize)),
    }
}

/// Rebuilds the full certificate of `def` from device data into `out`, returning its length.
///
/// Order: template; AKI from `ca_public_key` (else the template's); stored serial number;
/// subject public key (+ SKI); compressed certificate (ids checked, signature re-encoded with the
/// outer length fixed, dates, signer id); custom elements through their transforms; generated
/// serial number from the stored compressed-certificate bytes.
pub fn rebuild(
    def: &CertDef<'_>,
    data: &(impl DeviceData + ?Sized),
    ca_public_key: Option<&[u8; 64]>,
    out: &mut [u8],
) -> Result<usize, Error> {
    let sn_loc = &def.cert_sn_dev_loc;
    let stored_sn = if matches!(def.sn_source, SnSource::Stored | SnSource::StoredDynamic)
        && sn_loc.is_present()
    {
        Some(data.read(sn_loc).ok_or(Error::MissingDeviceData)?)
    } else {
        None
    };
    // A dynamic serial number is placed while copying the template (same result as
    // `set_cert_sn` afterwards, without an in-place shift).
    let dynamic = def.sn_source == SnSource::StoredDynamic && def.cert_type == CertType::X509;
    let mut cert = match stored_sn {
        Some(sn) if dynamic => Cert::from_template_with_dynamic_sn(def, out, sn)?,
        _ => Cert::from_template(def, out)?,
    };
    if let (Some(sn), false) = (stored_sn, dynamic) {
        cert.set_element(def.std_loc(StdElement::CertSn), sn)?;
    }
    if let Some(ca) = ca_public_key {
        cert.set_auth_key_id(ca)?;
    }
    let mut unpadded = [0u8; 64];
    if let Some(pk) = read_public_key(def, data, &mut unpadded)? {
        cert.set_subj_public_key(pk)?;
    }
    let mut comp_bytes = None;
    if def.comp_cert_dev_loc.is_present() {
        let b = data
            .read(&def.comp_cert_dev_loc)
            .ok_or(Error::MissingDeviceData)?;
        let b: &[u8; COMP_CERT_LEN] = b.try_into().map_err(|_| Error::MissingDeviceData)?;
        cert.set_comp_cert_bytes(b)?;
        comp_bytes = Some(b);
    }
    for (device_loc, cert_loc, transforms) in def.cert_elements.iter_locs() {
        if !device_loc.is_present() {
            continue;
        }
        let src = data.read(&device_loc).ok_or(Error::MissingDeviceData)?;
        if let Some(dst) = cert.element_mut(cert_loc)? {
            transform::apply_chain(&transforms, src, dst)?;
        }
    }
    if def.sn_source.is_generated() {
        let comp = comp_bytes.ok_or(Error::MissingDeviceData)?;
        let device_sn = if def.sn_source.uses_device_sn() {
            let cfg = data.read(&DEVICE_SN_LOC).ok_or(Error::MissingDeviceSn)?;
            Some(device_sn_from_config(cfg).ok_or(Error::MissingDeviceSn)?)
        } else {
            None
        };
        cert.set_generated_sn(comp, device_sn.as_ref())?;
    }
    Ok(cert.finish())
}
