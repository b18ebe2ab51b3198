//! Certificate definitions: the zero-copy [`CertDef`] view and its building blocks, with every
//! semantic of cryptoauthlib's `atcacert_def_t` for P-256.

use crate::field;
use crate::{Error, Reason};

// The building blocks live in leaf modules (no import circle); `def::X` paths keep working.
pub use crate::enums::{CertType, DateFormat, DeviceZone, SnSource, StdElement, Transform};
pub use crate::loc::{CertElement, CertLoc, DeviceLoc, ELEMENT_ID_MAX};

/// Size of one encoded custom element record ([`field::element::LEN`]).
pub(crate) const ELEMENT_RECORD_LEN: usize = field::element::LEN;

/// The custom elements of a definition: either fixed-size records inside a blob (decoded on
/// iteration, no copy of the whole list) or a plain slice.
#[derive(Debug, Clone, Copy)]
pub enum CertElements<'a> {
    /// Validated blob records, [`field::element::LEN`] bytes each.
    Encoded(&'a [u8]),
    /// Decoded elements.
    Slice(&'a [CertElement]),
}

impl Default for CertElements<'_> {
    fn default() -> Self {
        CertElements::Slice(&[])
    }
}

impl<'a> CertElements<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            CertElements::Encoded(b) => b.len() / ELEMENT_RECORD_LEN,
            CertElements::Slice(s) => s.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`, decoded.
    pub fn get(&self, i: usize) -> Option<CertElement> {
        match self {
            CertElements::Encoded(b) => {
                let start = i.checked_mul(ELEMENT_RECORD_LEN)?;
                let rec = b.get(start..start.checked_add(ELEMENT_RECORD_LEN)?)?;
                crate::loc::decode_element(rec).ok()
            }
            CertElements::Slice(s) => s.get(i).cloned(),
        }
    }

    /// Locations and transforms of element `i`, without decoding its id (the device path never
    /// needs the name).
    pub fn locs(&self, i: usize) -> Option<(DeviceLoc, CertLoc, [Transform; 2])> {
        match self {
            CertElements::Encoded(b) => {
                let start = i.checked_mul(ELEMENT_RECORD_LEN)?;
                let rec = b.get(start..start.checked_add(ELEMENT_RECORD_LEN)?)?;
                crate::loc::decode_element_locs(rec).ok()
            }
            CertElements::Slice(s) => s.get(i).map(|e| (e.device_loc, e.cert_loc, e.transforms)),
        }
    }

    /// Iterates over the elements' locations and transforms (see [`CertElements::locs`]).
    // Out of line: four device-path callers (blob check, validate, read plan, rebuild).
    #[inline(never)]
    pub fn iter_locs(&self) -> impl Iterator<Item = (DeviceLoc, CertLoc, [Transform; 2])> + 'a {
        let this = *self;
        (0..this.len()).filter_map(move |i| this.locs(i))
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> impl Iterator<Item = CertElement> + 'a {
        let this = *self;
        (0..this.len()).filter_map(move |i| this.get(i))
    }
}

/// A definition name: bytes that are valid UTF-8 (printable ASCII in a blob). Kept as bytes so
/// the device path never links a UTF-8 validator; [`Name::as_str`] is for the host.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Name<'a>(&'a [u8]);

impl<'a> Name<'a> {
    /// A name from a string.
    pub const fn new(s: &'a str) -> Self {
        Name(s.as_bytes())
    }

    /// A name from blob bytes, checked later by [`CertDef::validate`] (the device never uses
    /// names, so it never links the check).
    pub(crate) const fn unchecked(b: &'a [u8]) -> Self {
        Name(b)
    }

    /// True when the name is printable ASCII (what a blob may hold).
    pub fn is_ascii_printable(&self) -> bool {
        self.0.iter().all(|c| (0x20..0x7F).contains(c))
    }

    /// A name from bytes that must be printable ASCII (`None` otherwise).
    pub fn from_ascii(b: &'a [u8]) -> Option<Self> {
        b.iter()
            .all(|c| (0x20..0x7F).contains(c))
            .then_some(Name(b))
    }

    /// The bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The text (empty if the bytes were not UTF-8, which the constructors rule out).
    pub fn as_str(&self) -> &'a str {
        core::str::from_utf8(self.0).unwrap_or("")
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty name.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl core::fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl core::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Name<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Name<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Name<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=[u8]:a}", self.0)
    }
}

/// Number of standard elements.
pub const STD_ELEMENT_COUNT: usize = 8;

/// A certificate definition (`atcacert_def_t` for P-256) as a zero-copy view: template bytes and
/// custom elements borrow from a blob (or a `CertDefBuf`).
///
/// Construct it by hand, from [`DefBlob`](crate::DefBlob), or from `CertDefBuf::as_def`; call
/// [`CertDef::validate`] before use on anything not coming from a parsed blob (the blob parser
/// validates already). All codec functions still check every access, so an unvalidated
/// definition produces errors, never panics.
#[derive(Debug, Clone, Copy)]
pub struct CertDef<'a> {
    /// Certificate type.
    pub cert_type: CertType,
    /// 4-bit template id (compressed cert byte 69 high nibble).
    pub template_id: u8,
    /// 4-bit chain id (compressed cert byte 69 low nibble).
    pub chain_id: u8,
    /// Device private key slot (informational; CSR and challenge-response use it).
    pub private_key_slot: u16,
    /// Where the certificate serial number comes from.
    pub sn_source: SnSource,
    /// Location of a stored serial number (`Stored` / `StoredDynamic` only).
    pub cert_sn_dev_loc: DeviceLoc,
    /// Format of the issue date element.
    pub issue_date_format: DateFormat,
    /// Format of the expire date element.
    pub expire_date_format: DateFormat,
    /// The to-be-signed region (including its tag and length).
    pub tbs_cert_loc: CertLoc,
    /// Default validity in years; 0 = no expiration.
    pub expire_years: u8,
    /// Where the subject public key lives (count 64 = X‖Y, 72 = ATECC padded form).
    pub public_key_dev_loc: DeviceLoc,
    /// Where the 72-byte compressed certificate lives.
    pub comp_cert_dev_loc: DeviceLoc,
    /// Locations of the eight standard elements, indexed by [`StdElement`].
    pub std_cert_elements: [CertLoc; STD_ELEMENT_COUNT],
    /// Extra custom elements.
    pub cert_elements: CertElements<'a>,
    /// The template certificate.
    pub template: &'a [u8],
    /// Name of this definition (blob / JSON key); may be empty.
    pub name: Name<'a>,
    /// Name of the CA's definition (`ca_cert_def`), if linked.
    pub ca_cert_def: Option<Name<'a>>,
}

/// P-256 sizes.
pub(crate) const PUBKEY_LEN: usize = 64;
pub(crate) const PADDED_PUBKEY_LEN: usize = 72;
pub(crate) const RAW_SIG_LEN: usize = 64;
pub(crate) const KEY_ID_LEN: usize = 20;
pub use crate::der::{MAX_DER_SIG_LEN, TYPICAL_MIN_DER_SIG_LEN};

impl<'a> CertDef<'a> {
    /// Location of standard element `e`.
    pub fn std_loc(&self, e: StdElement) -> CertLoc {
        self.std_cert_elements
            .get(e as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Largest certificate this definition can produce (`atcacert_max_cert_size`): X.509 =
    /// signature offset + 75, plus room for a longer dynamic serial number; custom = template size.
    pub fn max_cert_size(&self) -> Result<usize, Error> {
        match self.cert_type {
            CertType::Custom => Ok(self.template.len()),
            CertType::X509 => {
                let mut size =
                    self.std_loc(StdElement::Signature).offset as usize + MAX_DER_SIG_LEN;
                if self.sn_source == SnSource::StoredDynamic {
                    let sn = self.std_loc(StdElement::CertSn);
                    let tlen = *self
                        .template
                        .get(sn.offset as usize)
                        .ok_or(Error::ElemOutOfBounds)?;
                    if tlen > 127 {
                        return Err(Error::BadCert);
                    }
                    size += 128 - tlen as usize;
                }
                Ok(size)
            }
        }
    }

    /// Checks the definition is self-consistent and within this codec's scope (P-256).
    pub fn validate(&self) -> Result<(), Error> {
        let tlen = self.template.len();
        if tlen > u16::MAX as usize {
            return Err(Error::InvalidDefinition(Reason::TemplateTooLong));
        }
        if self.template_id > 15 || self.chain_id > 15 {
            return Err(Error::InvalidDefinition(Reason::NotFourBit));
        }
        for (i, loc) in self.std_cert_elements.iter().enumerate() {
            // The X.509 signature count is informational (the signature runs to the end).
            let x509_sig = i == StdElement::Signature as usize && self.cert_type == CertType::X509;
            if loc.is_present() && !x509_sig && loc.end() > tlen {
                return Err(Error::InvalidDefinition(Reason::StdElementOutside));
            }
            let want = match StdElement::from_value(i as u8)? {
                StdElement::PublicKey => Some(PUBKEY_LEN),
                StdElement::SignerId => Some(4),
                StdElement::AuthKeyId | StdElement::SubjKeyId => Some(KEY_ID_LEN),
                StdElement::IssueDate => Some(crate::date::format_size(self.issue_date_format)),
                StdElement::ExpireDate => Some(crate::date::format_size(self.expire_date_format)),
                StdElement::Signature if self.cert_type == CertType::Custom => Some(RAW_SIG_LEN),
                _ => None,
            };
            if let Some(want) = want
                && loc.is_present()
                && loc.count as usize != want
            {
                return Err(Error::InvalidDefinition(Reason::StdElementSize));
            }
        }
        if self.tbs_cert_loc.end() > tlen {
            return Err(Error::InvalidDefinition(Reason::TbsOutside));
        }
        for pk in [self.public_key_dev_loc] {
            if pk.is_present()
                && pk.count as usize != PUBKEY_LEN
                && pk.count as usize != PADDED_PUBKEY_LEN
            {
                return Err(Error::InvalidDefinition(Reason::PublicKeyLocSize));
            }
        }
        if self.comp_cert_dev_loc.is_present() && self.comp_cert_dev_loc.count as usize != 72 {
            return Err(Error::InvalidDefinition(Reason::CompCertLocSize));
        }
        let sn = self.std_loc(StdElement::CertSn);
        match self.sn_source {
            SnSource::DeviceSn if sn.is_present() && sn.count != 10 => {
                return Err(Error::InvalidDefinition(Reason::DeviceSnSize));
            }
            SnSource::SignerId if sn.is_present() && sn.count != 3 => {
                return Err(Error::InvalidDefinition(Reason::SignerIdSnSize));
            }
            s if s.is_generated() && sn.count > 32 => {
                return Err(Error::InvalidDefinition(Reason::HashedSnSize));
            }
            SnSource::StoredDynamic => {
                if self.cert_type != CertType::X509 {
                    return Err(Error::InvalidDefinition(Reason::DynamicSnNotX509));
                }
                let len = *self
                    .template
                    .get(sn.offset as usize)
                    .ok_or(Error::InvalidDefinition(Reason::DynamicSnOutside))?;
                if sn.count == 0 || len as usize + 1 != sn.count as usize || len > 127 {
                    return Err(Error::InvalidDefinition(Reason::DynamicSnLoc));
                }
            }
            _ => {}
        }
        if self.cert_type == CertType::X509 {
            self.validate_x509_signature()?;
        }
        for (_, cert_loc, _) in self.cert_elements.iter_locs() {
            if cert_loc.end() > tlen {
                return Err(Error::InvalidDefinition(Reason::CustomElementOutside));
            }
        }
        Ok(())
    }

    /// X.509: the template must be one DER SEQUENCE, and the usual P-256 signature sizes
    /// (R and S of 31–33 significant bytes: 71–75 DER bytes) must keep the outer length's
    /// length-of-length. Rarer sizes (probability below 2^-15) that would change it are caught at
    /// run time as [`Error::LengthOfLengthChange`].
    fn validate_x509_signature(&self) -> Result<(), Error> {
        let sig = self.std_loc(StdElement::Signature);
        let tlen = self.template.len();
        if sig.offset as usize >= tlen {
            return Err(Error::InvalidDefinition(Reason::SignatureOutside));
        }
        let (outer_len, hdr) = crate::der::decode_length(self.template.get(1..).unwrap_or(&[]))
            .map_err(|_| Error::InvalidDefinition(Reason::TemplateNotSequence))?;
        if self.template.first() != Some(&0x30) || outer_len.checked_add(1 + hdr) != Some(tlen) {
            return Err(Error::InvalidDefinition(Reason::TemplateLength));
        }
        let base = (sig.offset as usize)
            .checked_sub(1 + hdr)
            .ok_or(Error::InvalidDefinition(Reason::SignatureInHeader))?;
        for sig_len in [TYPICAL_MIN_DER_SIG_LEN, MAX_DER_SIG_LEN] {
            if crate::der::length_size(base + sig_len) != hdr {
                return Err(Error::InvalidDefinition(Reason::SignatureLengthOfLength));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EnumField;

    /// `from_value` accepts exactly the declared values (cryptoauthlib's), maps each back to
    /// itself and names the rejected value.
    macro_rules! check_enum {
        ($($name:ident),*) => {$(
            for v in 0..=255u8 {
                let declared = $name::ALL.iter().any(|e| e.value() == v);
                match $name::from_value(v) {
                    Ok(e) => assert!(declared && e.value() == v, "{} {v}", stringify!($name)),
                    Err(Error::InvalidEnum { field, value }) => {
                        assert!(!declared, "{} {v}", stringify!($name));
                        assert_eq!((field, value), (EnumField::$name, v));
                    }
                    Err(e) => panic!("{} {v}: {e:?}", stringify!($name)),
                }
            }
        )*};
    }

    #[test]
    fn enum_values_round_trip_and_nothing_else_decodes() {
        check_enum!(
            CertType, SnSource, DateFormat, DeviceZone, Transform, StdElement
        );
        // Spot checks against cryptoauthlib's headers (atcacert_def.h, atcacert_date.h).
        assert_eq!(SnSource::from_value(0x7), Ok(SnSource::StoredDynamic));
        assert_eq!(SnSource::from_value(0xA), Ok(SnSource::PubKeyHash));
        assert!(SnSource::from_value(0x1).is_err());
        assert_eq!(DeviceZone::from_value(7), Ok(DeviceZone::None));
        assert_eq!(DateFormat::from_value(4), Ok(DateFormat::Rfc5280Gen));
    }
}
