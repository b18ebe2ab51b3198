//! Certificate definitions: the zero-copy [`CertDef`] view and its building blocks, with every
//! semantic of cryptoauthlib's `atcacert_def_t` for P-256.

use crate::{EnumField, Error, Reason};

macro_rules! c_enum {
    (
        $(#[$m:meta])* $name:ident, $field:literal {
            $( $(#[$vm:meta])* $var:ident = $val:literal => $cname:literal, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(u8)]
        pub enum $name {
            $( $(#[$vm])* #[doc = concat!("`", $cname, "` (", stringify!($val), ")")] $var = $val, )*
        }

        impl $name {
            /// Every variant, in value order.
            pub const ALL: &'static [$name] = &[$($name::$var),*];

            /// The cryptoauthlib value.
            pub const fn value(self) -> u8 {
                self as u8
            }

            /// The variant with cryptoauthlib value `v`.
            pub const fn from_value(v: u8) -> Result<Self, Error> {
                // Every value is below 32: one mask test, then a match the compiler turns into
                // the identity (instead of a lookup table of whole `Result`s).
                const VALID: u32 = 0 $( | (1 << $val) )*;
                if v >= 32 || (VALID >> v) & 1 == 0 {
                    return Err(Error::InvalidEnum { field: EnumField::$name, value: v });
                }
                match v {
                    $( $val => Ok($name::$var), )*
                    _ => Err(Error::InvalidEnum { field: EnumField::$name, value: v }),
                }
            }

            /// The cryptoauthlib C name (e.g. `SNSRC_DEVICE_SN`).
            pub const fn c_name(self) -> &'static str {
                match self {
                    $( $name::$var => $cname, )*
                }
            }

            /// The variant with cryptoauthlib C name `name`.
            pub fn from_c_name(name: &str) -> Option<Self> {
                match name {
                    $( $cname => Some($name::$var), )*
                    _ => None,
                }
            }
        }
    };
}

c_enum! {
    /// Certificate type (`atcacert_cert_type_t`).
    CertType, "cert type" {
        /// DER X.509; the signature is a variable-length DER element at the end.
        X509 = 0 => "CERTTYPE_X509",
        /// Fixed layout; the signature is a plain 64-byte R‖S element.
        Custom = 1 => "CERTTYPE_CUSTOM",
    }
}

c_enum! {
    /// Serial-number source (`atcacert_cert_sn_src_t`); a 4-bit value in compressed-cert byte 70.
    SnSource, "sn source" {
        /// Stored on the device at `cert_sn_dev_loc`, copied verbatim.
        Stored = 0x0 => "SNSRC_STORED",
        /// Stored on the device; the first byte is the DER INTEGER length (X.509 only).
        StoredDynamic = 0x7 => "SNSRC_STORED_DYNAMIC",
        /// `0x40 ‖ device_sn[9]`.
        DeviceSn = 0x8 => "SNSRC_DEVICE_SN",
        /// `0x40 ‖ signer_id[2]`.
        SignerId = 0x9 => "SNSRC_SIGNER_ID",
        /// SHA-256(public key ‖ encoded dates), top bits `01`.
        PubKeyHash = 0xA => "SNSRC_PUB_KEY_HASH",
        /// SHA-256(device sn ‖ encoded dates), top bits `01`.
        DeviceSnHash = 0xB => "SNSRC_DEVICE_SN_HASH",
        /// Deprecated: as `PubKeyHash` with only the top bit cleared.
        PubKeyHashPos = 0xC => "SNSRC_PUB_KEY_HASH_POS",
        /// Deprecated: as `DeviceSnHash` with only the top bit cleared.
        DeviceSnHashPos = 0xD => "SNSRC_DEVICE_SN_HASH_POS",
        /// Deprecated: as `PubKeyHash` without bit fix-up.
        PubKeyHashRaw = 0xE => "SNSRC_PUB_KEY_HASH_RAW",
        /// Deprecated: as `DeviceSnHash` without bit fix-up.
        DeviceSnHashRaw = 0xF => "SNSRC_DEVICE_SN_HASH_RAW",
    }
}

impl SnSource {
    /// True for sources computed at rebuild time (everything but the two stored sources).
    pub const fn is_generated(self) -> bool {
        !matches!(self, SnSource::Stored | SnSource::StoredDynamic)
    }

    /// True when the serial number depends on the device serial number.
    pub const fn uses_device_sn(self) -> bool {
        matches!(
            self,
            SnSource::DeviceSn
                | SnSource::DeviceSnHash
                | SnSource::DeviceSnHashPos
                | SnSource::DeviceSnHashRaw
        )
    }
}

c_enum! {
    /// Date element format (`atcacert_date_format_t`).
    DateFormat, "date format" {
        /// `YYYY-MM-DDThh:mm:ssZ` (20 bytes).
        Iso8601Sep = 0 => "DATEFMT_ISO8601_SEP",
        /// `YYMMDDhhmmssZ` (UTCTime content, 13 bytes).
        Rfc5280Utc = 1 => "DATEFMT_RFC5280_UTC",
        /// uint32 seconds since 1970, big endian (4 bytes).
        PosixUint32Be = 2 => "DATEFMT_POSIX_UINT32_BE",
        /// uint32 seconds since 1970, little endian (4 bytes).
        PosixUint32Le = 3 => "DATEFMT_POSIX_UINT32_LE",
        /// `YYYYMMDDhhmmssZ` (GeneralizedTime content, 15 bytes).
        Rfc5280Gen = 4 => "DATEFMT_RFC5280_GEN",
    }
}

c_enum! {
    /// Device zone of a [`DeviceLoc`] (`atcacert_device_zone_t`).
    DeviceZone, "device zone" {
        /// Configuration zone.
        Config = 0 => "DEVZONE_CONFIG",
        /// One-time-programmable zone.
        Otp = 1 => "DEVZONE_OTP",
        /// Data zone (a slot; `is_genkey` reads the public key of a private-key slot).
        Data = 2 => "DEVZONE_DATA",
        /// Declared by cryptoauthlib but unused by its code paths (GenKey goes via `Data` + `is_genkey`).
        GenKey = 3 => "DEVZONE_GENKEY",
        /// TA100 / CA2 dedicated data zone.
        DedicatedData = 4 => "DEVZONE_DEDICATED_DATA",
        /// No location.
        None = 7 => "DEVZONE_NONE",
    }
}

c_enum! {
    /// Transform applied to a custom element's device data (`atcacert_transform_t`).
    Transform, "transform" {
        /// No transform (ends the list).
        None = 0 => "TF_NONE",
        /// Byte reversal.
        Reverse = 1 => "TF_REVERSE",
        /// Binary to upper-case hex.
        Bin2HexUc = 2 => "TF_BIN2HEX_UC",
        /// Binary to lower-case hex.
        Bin2HexLc = 3 => "TF_BIN2HEX_LC",
        /// Hex (either case) to binary; non-hex characters skipped.
        Hex2BinUc = 4 => "TF_HEX2BIN_UC",
        /// Same as `Hex2BinUc`.
        Hex2BinLc = 5 => "TF_HEX2BIN_LC",
        /// Binary to upper-case hex with one space between bytes.
        Bin2HexSpaceUc = 6 => "TF_BIN2HEX_SPACE_UC",
        /// Binary to lower-case hex with one space between bytes.
        Bin2HexSpaceLc = 7 => "TF_BIN2HEX_SPACE_LC",
        /// Space-separated hex to binary.
        Hex2BinSpaceUc = 8 => "TF_HEX2BIN_SPACE_UC",
        /// Same as `Hex2BinSpaceUc`.
        Hex2BinSpaceLc = 9 => "TF_HEX2BIN_SPACE_LC",
    }
}

c_enum! {
    /// Index of a standard element in [`CertDef::std_cert_elements`] (`atcacert_std_cert_element_t`).
    StdElement, "std element" {
        /// Subject public key X‖Y (64 bytes).
        PublicKey = 0 => "STDCERT_PUBLIC_KEY",
        /// Signature (X.509: the signatureValue BIT STRING TLV; custom: R‖S).
        Signature = 1 => "STDCERT_SIGNATURE",
        /// Issue (notBefore) date content.
        IssueDate = 2 => "STDCERT_ISSUE_DATE",
        /// Expire (notAfter) date content.
        ExpireDate = 3 => "STDCERT_EXPIRE_DATE",
        /// Four hex characters of the signer id.
        SignerId = 4 => "STDCERT_SIGNER_ID",
        /// Serial-number INTEGER content.
        CertSn = 5 => "STDCERT_CERT_SN",
        /// Authority key identifier (20 bytes).
        AuthKeyId = 6 => "STDCERT_AUTH_KEY_ID",
        /// Subject key identifier (20 bytes).
        SubjKeyId = 7 => "STDCERT_SUBJ_KEY_ID",
    }
}

impl StdElement {
    /// The JSON key of this element in `std_cert_elements` (e.g. `public_key`).
    pub const fn json_name(self) -> &'static str {
        match self {
            StdElement::PublicKey => "public_key",
            StdElement::Signature => "signature",
            StdElement::IssueDate => "issue_date",
            StdElement::ExpireDate => "expire_date",
            StdElement::SignerId => "signer_id",
            StdElement::CertSn => "cert_sn",
            StdElement::AuthKeyId => "auth_key_id",
            StdElement::SubjKeyId => "subj_key_id",
        }
    }
}

impl core::fmt::Display for StdElement {
    /// The element in operator words (e.g. "issue date").
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            StdElement::PublicKey => "public key",
            StdElement::Signature => "signature",
            StdElement::IssueDate => "issue date",
            StdElement::ExpireDate => "expire date",
            StdElement::SignerId => "signer id",
            StdElement::CertSn => "serial number",
            StdElement::AuthKeyId => "authority key id",
            StdElement::SubjKeyId => "subject key id",
        })
    }
}

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

/// Size of one encoded custom element record (see `docs/certdef-format.md`).
pub(crate) const ELEMENT_RECORD_LEN: usize = 40;

/// The custom elements of a definition: either fixed-size records inside a blob (decoded on
/// iteration, no copy of the whole list) or a plain slice.
#[derive(Debug, Clone, Copy)]
pub enum CertElements<'a> {
    /// Validated blob records, [`ELEMENT_RECORD_LEN`] bytes each.
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
                crate::blob::decode_element(rec).ok()
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
                crate::blob::decode_element_locs(rec).ok()
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
/// custom elements borrow from a blob (or a [`CertDefBuf`](crate::CertDefBuf)).
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
/// Smallest usual DER signatureValue for P-256 (R and S of 31 bytes).
pub const TYPICAL_MIN_DER_SIG_LEN: usize = 71;
/// Largest DER signatureValue for P-256 (`03 49 00 30 46 02 21 00 R 02 21 00 S`).
pub const MAX_DER_SIG_LEN: usize = 75;

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
