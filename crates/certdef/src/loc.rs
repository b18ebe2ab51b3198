//! Locations (where an element lives on the device and in the certificate) and their fixed-size
//! blob records, decoded and encoded at the offsets of [`field`]. Below the definition and the
//! blob in the module order, so both use it without an import circle.

use crate::Error;
use crate::enums::{DeviceZone, Transform};
use crate::field::{self, Field};

/// Location of an element in the certificate (`atcacert_cert_loc_t`). `count == 0` = absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CertLoc {
    /// Byte offset in the certificate.
    pub offset: u16,
    /// Byte count; 0 means the element is not in the certificate.
    pub count: u16,
}

impl CertLoc {
    /// Builds a location.
    pub const fn new(offset: u16, count: u16) -> Self {
        CertLoc { offset, count }
    }

    /// True when the element is present.
    pub const fn is_present(&self) -> bool {
        self.count != 0
    }

    /// One past the last byte.
    pub const fn end(&self) -> usize {
        self.offset as usize + self.count as usize
    }
}

/// Location of data on the device (`atcacert_device_loc_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceLoc {
    /// Zone.
    pub zone: DeviceZone,
    /// Slot (data zone only).
    pub slot: u16,
    /// Data zone: read the public key of private-key slot `slot` via GenKey instead of a read.
    pub is_genkey: bool,
    /// Byte offset in the zone / slot (for GenKey: in the 64-byte public key).
    pub offset: u16,
    /// Byte count; 0 (or zone `None`) means no location.
    pub count: u16,
}

impl Default for DeviceLoc {
    fn default() -> Self {
        DeviceLoc::NONE
    }
}

impl DeviceLoc {
    /// The absent location.
    pub const NONE: DeviceLoc = DeviceLoc {
        zone: DeviceZone::None,
        slot: 0,
        is_genkey: false,
        offset: 0,
        count: 0,
    };

    /// A data-zone slot location.
    pub const fn data(slot: u16, offset: u16, count: u16) -> Self {
        DeviceLoc {
            zone: DeviceZone::Data,
            slot,
            is_genkey: false,
            offset,
            count,
        }
    }

    /// The public key of private-key slot `slot`, obtained with GenKey.
    pub const fn genkey(slot: u16) -> Self {
        DeviceLoc {
            zone: DeviceZone::Data,
            slot,
            is_genkey: true,
            offset: 0,
            count: 64,
        }
    }

    /// A config-zone location.
    pub const fn config(offset: u16, count: u16) -> Self {
        DeviceLoc {
            zone: DeviceZone::Config,
            slot: 0,
            is_genkey: false,
            offset,
            count,
        }
    }

    /// An OTP-zone location.
    pub const fn otp(offset: u16, count: u16) -> Self {
        DeviceLoc {
            zone: DeviceZone::Otp,
            slot: 0,
            is_genkey: false,
            offset,
            count,
        }
    }

    /// True when the location names data (zone not `None` and count non-zero).
    pub const fn is_present(&self) -> bool {
        !matches!(self.zone, DeviceZone::None) && self.count != 0
    }

    /// One past the last byte.
    pub const fn end(&self) -> usize {
        self.offset as usize + self.count as usize
    }

    /// True when `self` and `other` address the same storage (zone, and for the data zone the
    /// same slot and read method) — offsets are not compared.
    pub fn same_area(&self, other: &DeviceLoc) -> bool {
        self.zone == other.zone
            && (self.zone != DeviceZone::Data
                || (self.slot == other.slot && self.is_genkey == other.is_genkey))
    }

    /// True when `inner` lies completely inside `self`.
    pub fn contains(&self, inner: &DeviceLoc) -> bool {
        self.same_area(inner) && inner.offset >= self.offset && inner.end() <= self.end()
    }
}

/// Maximum length of a custom element's id (C: `char id[25]` with its terminating NUL).
pub const ELEMENT_ID_MAX: usize = 24;

/// A custom element (`atcacert_cert_element_t`): device data → up to two transforms → certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertElement {
    /// Name of the element.
    pub id: heapless::String<ELEMENT_ID_MAX>,
    /// Where the data lives on the device.
    pub device_loc: DeviceLoc,
    /// Where it goes in the certificate.
    pub cert_loc: CertLoc,
    /// Transforms applied in order (the first `Transform::None` ends the list).
    pub transforms: [Transform; 2],
}

#[cfg(feature = "defmt")]
impl defmt::Format for CertElement {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "CertElement {{ id: {=str}, device_loc: {}, cert_loc: {}, transforms: {} }}",
            self.id.as_str(),
            self.device_loc,
            self.cert_loc,
            self.transforms
        )
    }
}

// An element id fills the record's id field exactly.
const _: () = assert!(field::element::ID.end - field::element::ID.start == ELEMENT_ID_MAX);

fn u16_at(b: &[u8], at: usize) -> Result<u16, Error> {
    match b.get(at..at + 2) {
        Some(&[lo, hi]) => Ok(u16::from_le_bytes([lo, hi])),
        _ => Err(Error::BadBlob),
    }
}

/// The byte at `at`, or [`Error::BadBlob`].
fn byte(b: &[u8], at: usize) -> Result<u8, Error> {
    b.get(at).copied().ok_or(Error::BadBlob)
}

/// Decodes the device location record at `at`.
pub(crate) fn device_loc_at(b: &[u8], at: usize) -> Result<DeviceLoc, Error> {
    use field::device_loc as f;
    let is_genkey = match byte(b, at + f::IS_GENKEY)? {
        0 => false,
        1 => true,
        _ => return Err(Error::BadBlob),
    };
    Ok(DeviceLoc {
        zone: DeviceZone::from_value(byte(b, at + f::ZONE)?)?,
        is_genkey,
        slot: u16_at(b, at + f::SLOT.start)?,
        offset: u16_at(b, at + f::OFFSET.start)?,
        count: u16_at(b, at + f::COUNT.start)?,
    })
}

/// Decodes the certificate location record at `at`.
#[inline(always)] // measured: out of line it costs the firmware ~100 B
pub(crate) fn cert_loc_at(b: &[u8], at: usize) -> Result<CertLoc, Error> {
    use field::cert_loc as f;
    Ok(CertLoc {
        offset: u16_at(b, at + f::OFFSET.start)?,
        count: u16_at(b, at + f::COUNT.start)?,
    })
}

/// Decodes the locations and transforms of one custom element record.
#[inline(always)] // two callers; out of line its error paths cost more flash
pub(crate) fn decode_element_locs(
    rec: &[u8],
) -> Result<(DeviceLoc, CertLoc, [Transform; 2]), Error> {
    use field::element as f;
    Ok((
        device_loc_at(rec, f::DEVICE_LOC.start)?,
        cert_loc_at(rec, f::CERT_LOC.start)?,
        [
            Transform::from_value(byte(rec, f::TRANSFORM_0)?)?,
            Transform::from_value(byte(rec, f::TRANSFORM_1)?)?,
        ],
    ))
}

/// The id bytes of a custom element record (at most [`ELEMENT_ID_MAX`]).
fn element_id(rec: &[u8]) -> Result<&[u8], Error> {
    use field::element as f;
    let id_len = byte(rec, f::ID_LEN)? as usize;
    rec.get(f::ID.start..f::ID.start + id_len)
        .filter(|_| id_len <= ELEMENT_ID_MAX)
        .ok_or(Error::BadBlob)
}

/// Checks an element id: at most 24 bytes of printable ASCII (validated once at parse time).
pub(crate) fn check_element_id(rec: &[u8]) -> Result<(), Error> {
    if element_id(rec)?.iter().all(|c| (0x20..0x7F).contains(c)) {
        Ok(())
    } else {
        Err(Error::BadBlob)
    }
}

/// Decodes one custom element record.
pub(crate) fn decode_element(rec: &[u8]) -> Result<CertElement, Error> {
    let id_str = core::str::from_utf8(element_id(rec)?).map_err(|_| Error::BadBlob)?;
    let mut id = heapless::String::new();
    id.push_str(id_str).map_err(|_| Error::BadBlob)?;
    let (device_loc, cert_loc, transforms) = decode_element_locs(rec)?;
    Ok(CertElement {
        id,
        device_loc,
        cert_loc,
        transforms,
    })
}

/// Writes `bytes` into field `f` of `rec` (never panics: extra bytes on either side are left).
pub(crate) fn put(rec: &mut [u8], f: Field, bytes: &[u8]) {
    for (d, s) in rec.get_mut(f).unwrap_or_default().iter_mut().zip(bytes) {
        *d = *s;
    }
}

/// Writes `v` little endian into the two-byte field `f` of `rec`.
pub(crate) fn put_u16(rec: &mut [u8], f: Field, v: u16) {
    put(rec, f, &v.to_le_bytes());
}

impl DeviceLoc {
    /// The blob record of this location.
    pub(crate) fn record(&self) -> [u8; field::device_loc::LEN] {
        use field::device_loc as f;
        let mut r = [0u8; f::LEN];
        r[f::ZONE] = self.zone.value();
        r[f::IS_GENKEY] = self.is_genkey as u8;
        put_u16(&mut r, f::SLOT, self.slot);
        put_u16(&mut r, f::OFFSET, self.offset);
        put_u16(&mut r, f::COUNT, self.count);
        r
    }
}

impl CertLoc {
    /// The blob record of this location.
    pub(crate) fn record(&self) -> [u8; field::cert_loc::LEN] {
        use field::cert_loc as f;
        let mut r = [0u8; f::LEN];
        put_u16(&mut r, f::OFFSET, self.offset);
        put_u16(&mut r, f::COUNT, self.count);
        r
    }
}

impl CertElement {
    /// The blob record of this element; its id must be printable ASCII.
    pub(crate) fn record(&self) -> Result<[u8; field::element::LEN], Error> {
        use field::element as f;
        let id = self.id.as_bytes();
        if !id.iter().all(|c| (0x20..0x7F).contains(c)) {
            return Err(Error::InvalidDefinition(crate::Reason::ElementIdNotAscii));
        }
        let mut r = [0u8; f::LEN];
        // `id` is a `String<ELEMENT_ID_MAX>`, so its length fits the byte and the field.
        r[f::ID_LEN] = id.len() as u8;
        put(&mut r, f::ID, id);
        put(&mut r, f::DEVICE_LOC, &self.device_loc.record());
        put(&mut r, f::CERT_LOC, &self.cert_loc.record());
        r[f::TRANSFORM_0] = self.transforms[0].value();
        r[f::TRANSFORM_1] = self.transforms[1].value();
        Ok(r)
    }
}
