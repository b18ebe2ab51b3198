//! Splitting a full certificate into what a device stores (`atcacert_write_cert`,
//! `atcacert_get_device_data`), checked by rebuilding it.

use crate::Reason;
use crate::cert::{CertView, pad_public_key};
use crate::comp::CompressedCert;
use crate::rebuild::{self, BLOCK_SIZE, DeviceData, ReadPlan};
use crate::transform;
use crate::{CertDef, CertLoc, CertType, DeviceLoc, DeviceZone, Error, SnSource, StdElement};

/// Config zone size of an ATECC608.
pub const CONFIG_LEN: usize = 128;
/// OTP zone size of an ATECC608.
pub const OTP_LEN: usize = 64;
/// Number of data slots.
pub const SLOT_COUNT: usize = 16;
/// Largest slot (slot 8).
pub const MAX_SLOT_LEN: usize = 416;

/// Size of data slot `slot` on an ATECC608 (0–7: 36, 8: 416, 9–15: 72); 0 for no such slot.
pub const fn slot_size(slot: u16) -> usize {
    match slot {
        0..=7 => 36,
        8 => 416,
        9..=15 => 72,
        _ => 0,
    }
}

/// Everything a device holds that a certificate rebuild can use: config and OTP zones, the
/// data slots and the public keys of private-key slots (what GenKey returns). Missing bytes are
/// zero. Every slot is modelled with `MAX_SLOT_LEN` bytes (definitions for other chips place
/// data beyond an ATECC608 slot's real size, see [`slot_size`]). About 7 KB — meant for the
/// host and tests, not a device stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceImage {
    /// Config zone (device serial number in bytes 0–3 and 8–12).
    pub config: [u8; CONFIG_LEN],
    /// OTP zone.
    pub otp: [u8; OTP_LEN],
    /// Data slots, `MAX_SLOT_LEN` bytes each.
    pub slots: [[u8; MAX_SLOT_LEN]; SLOT_COUNT],
    /// Public key X‖Y of each private-key slot, when known.
    pub public_keys: [Option<[u8; 64]>; SLOT_COUNT],
}

impl Default for DeviceImage {
    fn default() -> Self {
        DeviceImage {
            config: [0; CONFIG_LEN],
            otp: [0; OTP_LEN],
            slots: [[0; MAX_SLOT_LEN]; SLOT_COUNT],
            public_keys: [None; SLOT_COUNT],
        }
    }
}

impl DeviceImage {
    /// The whole storage behind `loc`'s area (`None` for zones the image does not model).
    fn area(&self, loc: &DeviceLoc) -> Option<&[u8]> {
        match loc.zone {
            DeviceZone::Config => Some(&self.config),
            DeviceZone::Otp => Some(&self.otp),
            DeviceZone::Data if loc.is_genkey => self
                .public_keys
                .get(loc.slot as usize)?
                .as_ref()
                .map(|k| &k[..]),
            DeviceZone::Data => self.slots.get(loc.slot as usize).map(|s| &s[..]),
            _ => None,
        }
    }

    fn area_mut(&mut self, loc: &DeviceLoc) -> Option<&mut [u8]> {
        match loc.zone {
            DeviceZone::Config => Some(&mut self.config),
            DeviceZone::Otp => Some(&mut self.otp),
            DeviceZone::Data if loc.is_genkey => {
                let k = self.public_keys.get_mut(loc.slot as usize)?;
                Some(&mut k.get_or_insert([0; 64])[..])
            }
            DeviceZone::Data => self.slots.get_mut(loc.slot as usize).map(|s| &mut s[..]),
            _ => None,
        }
    }

    /// Bytes of `loc` clamped to the modelled zone size (config 128, OTP 64, slot 416): how a
    /// block-aligned plan entry reaching past the end of a zone is read.
    pub fn read_clamped(&self, loc: &DeviceLoc) -> Option<&[u8]> {
        let area = self.area(loc)?;
        let end = loc.end().min(area.len());
        area.get(loc.offset as usize..end)
    }

    /// Writes `data` at `loc` (the data length must equal `loc.count`).
    pub fn write(&mut self, loc: &DeviceLoc, data: &[u8]) -> Result<(), Error> {
        if data.len() != loc.count as usize {
            return Err(Error::elem_size(loc.count as usize, data.len()));
        }
        let dst = self
            .area_mut(loc)
            .and_then(|a| a.get_mut(loc.offset as usize..loc.end()))
            .ok_or(Error::InvalidDefinition(Reason::DeviceLocOutside))?;
        dst.copy_from_slice(data);
        Ok(())
    }

    /// Sets the device serial number in config bytes 0–3 and 8–12.
    pub fn set_device_sn(&mut self, sn: &[u8; 9]) {
        self.config[..4].copy_from_slice(&sn[..4]);
        self.config[8..13].copy_from_slice(&sn[4..]);
    }
}

impl DeviceData for DeviceImage {
    fn read(&self, loc: &DeviceLoc) -> Option<&[u8]> {
        self.area(loc)?.get(loc.offset as usize..loc.end())
    }
}

/// Locations a provisioning host writes (`atcacert_write_cert`): the read plan without the
/// config zone, dedicated data and GenKey locations, which are read-only.
pub fn write_plan(def: &CertDef<'_>) -> Result<ReadPlan, Error> {
    let mut plan = rebuild::read_plan(def, BLOCK_SIZE)?;
    plan.retain(|l| {
        !(matches!(
            l.zone,
            DeviceZone::Config | DeviceZone::DedicatedData | DeviceZone::GenKey
        ) || l.is_genkey)
    });
    Ok(plan)
}

/// Checks every template byte outside the element locations against `der`
/// ([`Error::WrongDefinition`] at the first difference).
pub fn check_template(def: &CertDef<'_>, der: &[u8]) -> Result<(), Error> {
    let t = def.template;
    // Bytes that legitimately differ from the template, as template offsets.
    let mut skip: heapless::Vec<(usize, usize), 48> = heapless::Vec::new();
    let mut push = |loc: CertLoc| {
        if loc.is_present() {
            skip.push((loc.offset as usize, loc.end()))
                .map_err(|_| Error::TooManyLocations)
        } else {
            Ok(())
        }
    };
    let sig = def.std_loc(StdElement::Signature);
    for (i, loc) in def.std_cert_elements.iter().enumerate() {
        if def.cert_type == CertType::X509 && i == StdElement::Signature as usize {
            continue;
        }
        push(*loc)?;
    }
    for el in def.cert_elements.iter() {
        push(el.cert_loc)?;
    }
    let (limit, shift) = match def.cert_type {
        CertType::Custom => {
            if der.len() != t.len() {
                return Err(Error::WrongDefinition);
            }
            (t.len(), 0isize)
        }
        CertType::X509 => {
            // The outer length changes with the signature size; a dynamic SN also changes the TBS
            // length and shifts what follows it.
            let (_, hdr) = crate::der::decode_length(t.get(1..).unwrap_or(&[]))?;
            push(CertLoc::new(1, hdr as u16))?;
            let mut shift = 0;
            if def.sn_source == SnSource::StoredDynamic {
                let tbs = def.tbs_cert_loc.offset as usize;
                let (_, tbs_hdr) = crate::der::decode_length(t.get(tbs + 1..).unwrap_or(&[]))?;
                push(CertLoc::new((tbs as u16).saturating_add(1), tbs_hdr as u16))?;
                let sn = def.std_loc(StdElement::CertSn).offset as usize;
                shift = match (der.get(sn), t.get(sn)) {
                    (Some(&c), Some(&tl)) => c as isize - tl as isize,
                    _ => return Err(Error::WrongDefinition),
                };
            }
            (sig.offset as usize, shift)
        }
    };
    let sn_off = def.std_loc(StdElement::CertSn).offset as usize;
    for (i, &tb) in t.iter().enumerate().take(limit) {
        if skip.iter().any(|&(s, e)| i >= s && i < e) {
            continue;
        }
        let at = if shift != 0 && i > sn_off {
            i.checked_add_signed(shift)
        } else {
            Some(i)
        };
        if at.and_then(|a| der.get(a)) != Some(&tb) {
            return Err(Error::WrongDefinition);
        }
    }
    Ok(())
}

/// Splits a full certificate into the device data that rebuilds it.
///
/// Checks the template bytes ([`Error::WrongDefinition`]), derives the compressed certificate
/// (strict, see [`CertView::compressed`]), writes compressed cert, stored serial number, public
/// key (padded when the location is 72 bytes; GenKey locations into `public_keys`) and custom
/// elements (transforms inverted) into `image`, then rebuilds into `scratch` and compares with
/// `der` byte for byte. `device_sn` is required for `DeviceSnHash*` sources and checked for
/// `DeviceSn` (otherwise taken from the certificate's serial number). With `ca_public_key` the
/// authority key id must be that key's id; without it the certificate's AKI is accepted as is
/// (a device rebuild then needs the CA key or keeps the template's AKI).
pub fn split(
    def: &CertDef<'_>,
    der: &[u8],
    ca_public_key: Option<&[u8; 64]>,
    device_sn: Option<&[u8; 9]>,
    image: &mut DeviceImage,
    scratch: &mut [u8],
) -> Result<CompressedCert, Error> {
    check_template(def, der)?;
    let view = CertView::new(def, der);
    let comp = view.compressed()?;
    let comp_bytes = comp.to_bytes()?;
    if def.comp_cert_dev_loc.is_present() {
        image.write(&def.comp_cert_dev_loc, &comp_bytes)?;
    }
    let sn_loc = def.cert_sn_dev_loc;
    match def.sn_source {
        SnSource::Stored if sn_loc.is_present() => image.write(&sn_loc, view.cert_sn()?)?,
        SnSource::StoredDynamic if sn_loc.is_present() => {
            let sn = view.cert_sn()?;
            let mut buf = [0u8; 128];
            let n = sn_loc.count as usize;
            let dst = buf.get_mut(..n).ok_or(Error::elem_size(128, n))?;
            let value = dst
                .get_mut(1..1 + sn.len())
                .ok_or(Error::elem_size(n, 1 + sn.len()))?;
            value.copy_from_slice(sn);
            dst[0] = sn.len() as u8;
            image.write(&sn_loc, dst)?;
        }
        _ => {}
    }
    let pk_loc = def.public_key_dev_loc;
    if pk_loc.is_present() {
        let pk = view.public_key()?;
        if pk_loc.count == 72 {
            image.write(&pk_loc, &pad_public_key(&pk))?;
        } else {
            image.write(&pk_loc, &pk)?;
        }
    }
    for el in def.cert_elements.iter() {
        if !el.device_loc.is_present() || !el.cert_loc.is_present() {
            continue;
        }
        let src = view.element_at(el.cert_loc, StdElement::CertSn)?;
        let mut tmp = [0u8; transform::SCRATCH_LEN];
        let n = el.device_loc.count as usize;
        let dst = tmp.get_mut(..n).ok_or(Error::too_small(n))?;
        transform::invert_chain(&el.transforms, src, dst)?;
        image.write(&el.device_loc, dst)?;
    }
    if def.sn_source.uses_device_sn() {
        let sn = match (device_sn, def.sn_source) {
            (Some(sn), _) => *sn,
            (None, SnSource::DeviceSn) => {
                let c = view.cert_sn()?;
                c.get(1..10)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(Error::BadCert)?
            }
            _ => return Err(Error::MissingDeviceSn),
        };
        image.set_device_sn(&sn);
    }
    let n = rebuild::rebuild(def, &*image, ca_public_key, scratch)?;
    if ca_public_key.is_none() {
        // Without the CA key the authority key id is taken as it is (it is not device data).
        let aki = def.std_loc(StdElement::AuthKeyId);
        if aki.is_present() {
            let mut cert = crate::Cert::from_existing(def, scratch, n)?;
            if let Some(dst) = cert.element_mut(aki)? {
                let src = view.auth_key_id()?;
                if src.len() == dst.len() {
                    dst.copy_from_slice(src);
                }
            }
        }
    }
    let rebuilt = scratch.get(..n).ok_or(Error::BadCert)?;
    if rebuilt != der {
        return Err(first_difference(def, rebuilt, der));
    }
    Ok(comp)
}

/// Names the element where a rebuild differs from the original.
fn first_difference(def: &CertDef<'_>, rebuilt: &[u8], der: &[u8]) -> Error {
    let at = rebuilt
        .iter()
        .zip(der)
        .position(|(a, b)| a != b)
        .unwrap_or(rebuilt.len().min(der.len()));
    for e in StdElement::ALL {
        let loc = def.std_loc(*e);
        let end = if *e == StdElement::Signature && def.cert_type == CertType::X509 {
            usize::MAX
        } else {
            loc.end()
        };
        if loc.is_present() && at >= loc.offset as usize && at < end {
            return Error::NotReproducible(*e);
        }
    }
    Error::WrongDefinition
}
