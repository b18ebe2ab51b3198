//! The one error type of the crate: every malformed input maps to a variant, never a panic.

use crate::def::StdElement;

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
        /// Bytes the operation needs.
        needed: usize,
    },
    /// Malformed encoded data: DER, text date, hex (`ATCACERT_E_DECODING_ERROR`).
    Decoding,
    /// A date field is out of range for its format (`ATCACERT_E_INVALID_DATE`).
    InvalidDate,
    /// An element's data has the wrong size (`ATCACERT_E_UNEXPECTED_ELEM_SIZE`).
    UnexpectedElemSize {
        /// Size the definition says.
        expected: usize,
        /// Size that was given.
        got: usize,
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
        field: &'static str,
        /// The raw value.
        value: u8,
    },
    /// The definition itself is inconsistent (element outside the template, wrong sizes, …).
    InvalidDefinition(&'static str),
    /// The definition uses something outside this codec's scope (non-P-256 signature sizes,
    /// fully stored certificates).
    Unsupported(&'static str),
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
                write!(f, "buffer too small ({needed} bytes needed)")
            }
            Error::Decoding => f.write_str("decoding error"),
            Error::InvalidDate => f.write_str("invalid date"),
            Error::UnexpectedElemSize { expected, got } => {
                write!(
                    f,
                    "unexpected element size (expected {expected}, got {got})"
                )
            }
            Error::ElemMissing(e) => write!(f, "element {e:?} missing from the definition"),
            Error::ElemOutOfBounds => f.write_str("element out of the certificate's bounds"),
            Error::BadCert => f.write_str("bad certificate"),
            Error::WrongDefinition => f.write_str("certificate does not match the definition"),
            Error::InvalidTransform => f.write_str("invalid transform"),
            Error::UnsupportedFormatVersion(v) => {
                write!(f, "unsupported compressed-certificate format version {v}")
            }
            Error::InvalidEnum { field, value } => write!(f, "invalid {field} value {value}"),
            Error::InvalidDefinition(why) => write!(f, "invalid definition: {why}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::LengthOfLengthChange => f.write_str("DER length-of-length would change"),
            Error::MissingDeviceData => f.write_str("device data missing for a location"),
            Error::MissingDeviceSn => f.write_str("device serial number not available"),
            Error::NotReproducible(e) => {
                write!(
                    f,
                    "element {e:?} cannot be reproduced from a compressed certificate"
                )
            }
            Error::BadBlob => f.write_str("malformed definition blob"),
            Error::BlobDigestMismatch => f.write_str("definition blob digest mismatch"),
            Error::UnsupportedBlobVersion(v) => {
                write!(f, "unsupported definition blob version {v}")
            }
            Error::TooManyLocations => f.write_str("too many device locations"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
