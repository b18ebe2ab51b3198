//! The one error type of the crate: every malformed input maps to a variant, never a panic.

use crate::enums::{CertType, DateFormat, DeviceZone, SnSource, StdElement, Transform};

/// Why a definition is invalid or unsupported ([`Error::InvalidDefinition`],
/// [`Error::Unsupported`]): a one-byte code so `Error` stays small (it is returned in registers
/// on 32-bit targets, which keeps the device code small); [`Reason::as_str`] gives the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Reason {
    /// name longer than 255 bytes.
    NameTooLong,
    /// names must be printable ASCII.
    NameNotAscii,
    /// more than 255 custom elements.
    TooManyElements,
    /// element ids must be printable ASCII.
    ElementIdNotAscii,
    /// a blob holds 1 to 8 definitions.
    BlobDefCount,
    /// blob too large.
    BlobTooLarge,
    /// stored serial numbers are not generated.
    StoredSnNotGenerated,
    /// template_id, chain_id and reserved are 4-bit values.
    NotFourBit,
    /// template longer than 65535 bytes.
    TemplateTooLong,
    /// standard element outside the template.
    StdElementOutside,
    /// standard element has the wrong size.
    StdElementSize,
    /// TBS outside the template.
    TbsOutside,
    /// public key location must hold 64 or 72 bytes.
    PublicKeyLocSize,
    /// compressed certificate location must hold 72 bytes.
    CompCertLocSize,
    /// SNSRC_DEVICE_SN needs a 10-byte serial number.
    DeviceSnSize,
    /// SNSRC_SIGNER_ID needs a 3-byte serial number.
    SignerIdSnSize,
    /// hashed serial numbers are at most 32 bytes.
    HashedSnSize,
    /// SNSRC_STORED_DYNAMIC needs an X.509 template.
    DynamicSnNotX509,
    /// dynamic serial number outside the template.
    DynamicSnOutside,
    /// dynamic serial number location must be the INTEGER length byte + value.
    DynamicSnLoc,
    /// custom element outside the template.
    CustomElementOutside,
    /// signature offset outside the template.
    SignatureOutside,
    /// template is not a DER SEQUENCE.
    TemplateNotSequence,
    /// template outer length does not match its size.
    TemplateLength,
    /// signature inside the certificate header.
    SignatureInHeader,
    /// signature size changes would change the certificate's length-of-length.
    SignatureLengthOfLength,
    /// signature sizes other than P-256 (std_sig_size 0/64).
    NonP256Signature,
    /// device location outside the device's zones.
    DeviceLocOutside,
}

impl Reason {
    /// The explanation.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NameTooLong => "name longer than 255 bytes",
            Reason::NameNotAscii => "names must be printable ASCII",
            Reason::TooManyElements => "more than 255 custom elements",
            Reason::ElementIdNotAscii => "element ids must be printable ASCII",
            Reason::BlobDefCount => "a blob holds 1 to 8 definitions",
            Reason::BlobTooLarge => "blob too large",
            Reason::StoredSnNotGenerated => "stored serial numbers are not generated",
            Reason::NotFourBit => "template_id, chain_id and reserved are 4-bit values",
            Reason::TemplateTooLong => "template longer than 65535 bytes",
            Reason::StdElementOutside => "standard element outside the template",
            Reason::StdElementSize => "standard element has the wrong size",
            Reason::TbsOutside => "TBS outside the template",
            Reason::PublicKeyLocSize => "public key location must hold 64 or 72 bytes",
            Reason::CompCertLocSize => "compressed certificate location must hold 72 bytes",
            Reason::DeviceSnSize => "SNSRC_DEVICE_SN needs a 10-byte serial number",
            Reason::SignerIdSnSize => "SNSRC_SIGNER_ID needs a 3-byte serial number",
            Reason::HashedSnSize => "hashed serial numbers are at most 32 bytes",
            Reason::DynamicSnNotX509 => "SNSRC_STORED_DYNAMIC needs an X.509 template",
            Reason::DynamicSnOutside => "dynamic serial number outside the template",
            Reason::DynamicSnLoc => {
                "dynamic serial number location must be the INTEGER length byte + value"
            }
            Reason::CustomElementOutside => "custom element outside the template",
            Reason::SignatureOutside => "signature offset outside the template",
            Reason::TemplateNotSequence => "template is not a DER SEQUENCE",
            Reason::TemplateLength => "template outer length does not match its size",
            Reason::SignatureInHeader => "signature inside the certificate header",
            Reason::SignatureLengthOfLength => {
                "signature size changes would change the certificate's length-of-length"
            }
            Reason::NonP256Signature => "signature sizes other than P-256 (std_sig_size 0/64)",
            Reason::DeviceLocOutside => "device location outside the device's zones",
        }
    }
}

impl core::fmt::Display for Reason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which enumerated field held a value with no meaning ([`Error::InvalidEnum`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EnumField {
    /// `cert_type`.
    CertType,
    /// `sn_source`.
    SnSource,
    /// A date format.
    DateFormat,
    /// A device zone.
    DeviceZone,
    /// A transform.
    Transform,
    /// A standard element index.
    StdElement,
}

impl core::fmt::Display for EnumField {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EnumField::CertType => "cert type",
            EnumField::SnSource => "sn source",
            EnumField::DateFormat => "date format",
            EnumField::DeviceZone => "device zone",
            EnumField::Transform => "transform",
            EnumField::StdElement => "std element",
        })
    }
}

macro_rules! from_value {
    ($($name:ident),*) => {$(
        impl $name {
            /// The variant with cryptoauthlib value `v`, or [`Error::InvalidEnum`].
            pub const fn from_value(v: u8) -> Result<Self, Error> {
                match Self::from_raw(v) {
                    Some(x) => Ok(x),
                    None => Err(Error::InvalidEnum { field: EnumField::$name, value: v }),
                }
            }
        }
    )*};
}

// Here rather than next to the enums: an unknown raw value is an `Error`, and the enums stay a
// leaf module that this one (which names `StdElement`) can use.
from_value!(
    CertType, SnSource, DateFormat, DeviceZone, Transform, StdElement
);

/// Everything that can go wrong in the codec.
///
/// Variants mirror cryptoauthlib's `ATCACERT_E_*` statuses where one exists (noted per variant),
/// split finer where the C library lumped different causes together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The output buffer is too small; `needed` bytes are required (`ATCACERT_E_BUFFER_TOO_SMALL`).
    BufferTooSmall {
        /// Bytes the operation needs (saturates at 65535).
        needed: u16,
    },
    /// Malformed encoded data: DER, text date, hex (`ATCACERT_E_DECODING_ERROR`).
    Decoding,
    /// A date field is out of range for its format (`ATCACERT_E_INVALID_DATE`).
    InvalidDate,
    /// An element's data has the wrong size (`ATCACERT_E_UNEXPECTED_ELEM_SIZE`).
    UnexpectedElemSize {
        /// Size the definition says (saturates at 255).
        expected: u8,
        /// Size that was given (saturates at 255).
        got: u8,
    },
    /// A standard element the operation needs is absent from the definition (`ATCACERT_E_ELEM_MISSING`).
    ElemMissing(StdElement),
    /// An element location lies outside the certificate (`ATCACERT_E_ELEM_OUT_OF_BOUNDS`).
    ElemOutOfBounds,
    /// The certificate is malformed or inconsistent with its definition (`ATCACERT_E_BAD_CERT`).
    BadCert,
    /// The certificate or compressed certificate does not belong to this definition
    /// (template bytes, template id, chain id or serial-number source differ;
    /// `ATCACERT_E_WRONG_CERT_DEF`).
    WrongDefinition,
    /// Unknown transform or a transform failed on its input (`ATCACERT_E_INVALID_TRANSFORM`).
    InvalidTransform,
    /// A compressed certificate has a format version this codec does not accept (2 is TA100-only;
    /// 3–15 are undefined).
    UnsupportedFormatVersion(u8),
    /// An enum field holds a value with no meaning (e.g. serial-number source 1–6).
    InvalidEnum {
        /// Which field.
        field: EnumField,
        /// The raw value.
        value: u8,
    },
    /// The definition itself is inconsistent (element outside the template, wrong sizes, …).
    InvalidDefinition(Reason),
    /// The definition uses something outside this codec's scope (non-P-256 signature sizes,
    /// fully stored certificates).
    Unsupported(Reason),
    /// A length change would change a DER length-of-length (headers are never resized).
    LengthOfLengthChange,
    /// Device data for a location the rebuild needs was not supplied.
    MissingDeviceData,
    /// The device serial number is needed (serial-number source uses it) but was not available.
    MissingDeviceSn,
    /// The certificate cannot be represented exactly by a compressed certificate (dates not
    /// whole hours / whole years, signer id not upper-case hex, …): a rebuild would differ.
    NotReproducible(StdElement),
    /// The definition blob is malformed (bad magic, lengths, enum values).
    BadBlob,
    /// The definition blob's integrity digest does not match its contents.
    BlobDigestMismatch,
    /// The definition blob has a format version this code does not read.
    UnsupportedBlobVersion(u8),
    /// Too many device locations for the fixed-size read plan.
    TooManyLocations,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            Error::Decoding => f.write_str("malformed encoded data (DER, date text or hex)"),
            Error::InvalidDate => f.write_str("a date is out of range for its format"),
            Error::UnexpectedElemSize { expected, got } => write!(
                f,
                "an element has {got} bytes where the definition says {expected}"
            ),
            Error::ElemMissing(e) => write!(f, "the definition has no {e} element"),
            Error::ElemOutOfBounds => f.write_str("an element lies outside the certificate"),
            Error::BadCert => {
                f.write_str("the certificate is malformed or does not fit its definition")
            }
            Error::WrongDefinition => f.write_str(
                "the certificate does not match the definition (template, ids or serial-number \
                 source differ)",
            ),
            Error::InvalidTransform => {
                f.write_str("an element transform is unknown or failed on its input")
            }
            Error::UnsupportedFormatVersion(v) => {
                write!(f, "unsupported compressed-certificate format version {v}")
            }
            Error::InvalidEnum { field, value } => {
                write!(f, "{value} is not a valid {field} value")
            }
            Error::InvalidDefinition(why) => write!(f, "invalid definition: {why}"),
            Error::Unsupported(what) => write!(f, "unsupported definition: {what}"),
            Error::LengthOfLengthChange => {
                f.write_str("a size change would change a DER length-of-length")
            }
            Error::MissingDeviceData => {
                f.write_str("data the rebuild needs from the device was not supplied")
            }
            Error::MissingDeviceSn => f.write_str("the device serial number is not available"),
            Error::NotReproducible(e) => write!(
                f,
                "the certificate's {e} cannot be kept exactly in a compressed certificate \
                 (dates keep whole hours, signer ids upper-case hex), so a rebuild would differ"
            ),
            Error::BadBlob => f.write_str("malformed definition blob"),
            Error::BlobDigestMismatch => {
                f.write_str("definition blob digest mismatch: the blob is damaged")
            }
            Error::UnsupportedBlobVersion(v) => {
                write!(f, "unsupported definition blob version {v}")
            }
            Error::TooManyLocations => f.write_str("too many device locations for one read plan"),
        }
    }
}

/// Available without `std` (`core::error::Error`), so device code and host code share it. The
/// variants carry plain values, not other errors, so there is no `source()`.
impl core::error::Error for Error {}

impl Error {
    /// [`Error::BufferTooSmall`] for `needed` bytes (one out-of-line constructor: error paths
    /// stay small in flash).
    #[cold]
    #[inline(never)]
    pub(crate) fn too_small(needed: usize) -> Self {
        Error::BufferTooSmall {
            needed: sat16(needed),
        }
    }

    /// [`Error::UnexpectedElemSize`].
    #[cold]
    #[inline(never)]
    pub(crate) fn elem_size(expected: usize, got: usize) -> Self {
        Error::UnexpectedElemSize {
            expected: u8::try_from(expected).unwrap_or(u8::MAX),
            got: u8::try_from(got).unwrap_or(u8::MAX),
        }
    }
}

fn sat16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_core_error(e: &Error) -> &dyn core::error::Error {
        e
    }

    #[test]
    fn errors_are_core_errors_in_operator_words() {
        let e = Error::NotReproducible(StdElement::IssueDate);
        let text = as_core_error(&e).to_string();
        assert!(
            text.contains("issue date") && text.contains("whole hours"),
            "{text}"
        );
        assert!(as_core_error(&e).source().is_none());
        let text = Error::ElemMissing(StdElement::AuthKeyId).to_string();
        assert_eq!(text, "the definition has no authority key id element");
        // No Rust type names (`IssueDate`, `AuthKeyId`) reach the operator.
        for e in [
            Error::ElemMissing(StdElement::SubjKeyId),
            Error::NotReproducible(StdElement::SignerId),
            Error::InvalidEnum {
                field: EnumField::SnSource,
                value: 3,
            },
        ] {
            let t = e.to_string();
            assert!(!t.chars().any(|c| c.is_ascii_uppercase()), "{t}");
        }
    }
}
