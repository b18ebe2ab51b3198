//! The enumerated building blocks of a definition (cryptoauthlib's C enums): a leaf module, so
//! the definition, the blob, the error type and the codecs can all use them without an import
//! circle.

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

            /// The variant with cryptoauthlib value `v`, if there is one (`from_value`, in
            /// `error.rs`, turns `None` into [`Error::InvalidEnum`](crate::Error::InvalidEnum)).
            #[inline(always)]
            pub(crate) const fn from_raw(v: u8) -> Option<Self> {
                // Every value is below 32: one mask test, then a match the compiler turns into
                // the identity (instead of a lookup table of whole `Result`s).
                const VALID: u32 = 0 $( | (1 << $val) )*;
                if v >= 32 || (VALID >> v) & 1 == 0 {
                    return None;
                }
                match v {
                    $( $val => Some($name::$var), )*
                    _ => None,
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
    /// Device zone of a [`DeviceLoc`](crate::DeviceLoc) (`atcacert_device_zone_t`).
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
    /// Index of a standard element in [`CertDef::std_cert_elements`](crate::CertDef::std_cert_elements) (`atcacert_std_cert_element_t`).
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
