//! The definition blob's byte layout (`docs/certdef-format.md` §3), written down once: the
//! reader ([`DefBlob::parse`](crate::DefBlob::parse) and the record decoders) and the writer
//! ([`write_blob`](crate::write_blob)) both index with these constants, and a test reads the
//! document's table and checks it against them, so the document and the code cannot drift.
//!
//! Offsets are relative to the start of their record; multi-byte integers are little endian.
//! A leaf module (no imports), in the manner of smoltcp's `wire::ipv4::field`.

/// A field's byte range inside its record.
pub type Field = core::ops::Range<usize>;

/// Size of the root public key X‖Y that follows the header when [`header::FLAG_ROOT_KEY`] is set.
pub const ROOT_KEY_LEN: usize = 64;
/// Size of the trailing SHA-256 digest (of every byte before it).
pub const DIGEST_LEN: usize = 32;

/// The blob header.
pub mod header {
    use super::Field;

    /// Magic bytes `KSCB`.
    pub const MAGIC: Field = 0..4;
    /// Format version.
    pub const VERSION: usize = 4;
    /// Flags ([`FLAG_ROOT_KEY`]; every other bit 0).
    pub const FLAGS: usize = 5;
    /// Number of definition records (1..=8).
    pub const COUNT: usize = 6;
    /// Reserved, 0.
    pub const RESERVED_0: usize = 7;
    /// Total blob length including the digest (u32).
    pub const TOTAL_LEN: Field = 8..12;
    /// Reserved, 0.
    pub const RESERVED_1: Field = 12..16;
    /// Header size.
    pub const LEN: usize = 16;
    /// Flag bit: the root public key follows the header.
    pub const FLAG_ROOT_KEY: u8 = 0x01;
}

/// The fixed part of a definition record; then name, CA name, element records and template.
pub mod def {
    use super::Field;

    /// Role (0 device, 1 signer, 2 other).
    pub const ROLE: usize = 0;
    /// `cert_type`.
    pub const CERT_TYPE: usize = 1;
    /// `template_id` (4 bits).
    pub const TEMPLATE_ID: usize = 2;
    /// `chain_id` (4 bits).
    pub const CHAIN_ID: usize = 3;
    /// `sn_source`.
    pub const SN_SOURCE: usize = 4;
    /// `issue_date_format`.
    pub const ISSUE_DATE_FORMAT: usize = 5;
    /// `expire_date_format`.
    pub const EXPIRE_DATE_FORMAT: usize = 6;
    /// `expire_years`.
    pub const EXPIRE_YEARS: usize = 7;
    /// `private_key_slot` (u16).
    pub const PRIVATE_KEY_SLOT: Field = 8..10;
    /// `comp_cert_dev_loc` (a device location record).
    pub const COMP_CERT_DEV_LOC: Field = 10..18;
    /// `cert_sn_dev_loc`.
    pub const CERT_SN_DEV_LOC: Field = 18..26;
    /// `public_key_dev_loc`.
    pub const PUBLIC_KEY_DEV_LOC: Field = 26..34;
    /// `tbs_cert_loc` (a certificate location record).
    pub const TBS_CERT_LOC: Field = 34..38;
    /// `std_cert_elements`: 8 certificate location records in `StdElement` order.
    pub const STD_CERT_ELEMENTS: Field = 38..70;
    /// Template length T (u16).
    pub const TEMPLATE_LEN: Field = 70..72;
    /// Name length N.
    pub const NAME_LEN: usize = 72;
    /// CA-definition name length C (0 = no link).
    pub const CA_NAME_LEN: usize = 73;
    /// Custom element count E.
    pub const ELEMENT_COUNT: usize = 74;
    /// Reserved, 0.
    pub const RESERVED: usize = 75;
    /// Size of the fixed part; the name starts here.
    pub const FIXED_LEN: usize = 76;
}

/// A device location record (`DeviceLoc`).
pub mod device_loc {
    use super::Field;

    /// Zone (`DeviceZone` value).
    pub const ZONE: usize = 0;
    /// `is_genkey` (0 or 1).
    pub const IS_GENKEY: usize = 1;
    /// Slot (u16).
    pub const SLOT: Field = 2..4;
    /// Offset (u16).
    pub const OFFSET: Field = 4..6;
    /// Count (u16).
    pub const COUNT: Field = 6..8;
    /// Record size.
    pub const LEN: usize = 8;
}

/// A certificate location record (`CertLoc`).
pub mod cert_loc {
    use super::Field;

    /// Offset (u16).
    pub const OFFSET: Field = 0..2;
    /// Count (u16).
    pub const COUNT: Field = 2..4;
    /// Record size.
    pub const LEN: usize = 4;
}

/// A custom element record (`CertElement`).
pub mod element {
    use super::Field;

    /// Id length (at most 24).
    pub const ID_LEN: usize = 0;
    /// Id, zero padded.
    pub const ID: Field = 1..25;
    /// Device location record.
    pub const DEVICE_LOC: Field = 25..33;
    /// Certificate location record.
    pub const CERT_LOC: Field = 33..37;
    /// First transform.
    pub const TRANSFORM_0: usize = 37;
    /// Second transform.
    pub const TRANSFORM_1: usize = 38;
    /// Reserved, 0.
    pub const RESERVED: usize = 39;
    /// Record size.
    pub const LEN: usize = 40;
}

// The records fit together: each range follows the previous one and ends at the record size.
const fn len(f: Field) -> usize {
    f.end - f.start
}
const _: () = {
    assert!(header::RESERVED_1.end == header::LEN);
    assert!(len(def::PRIVATE_KEY_SLOT) == 2 && len(def::TEMPLATE_LEN) == 2);
    assert!(len(def::COMP_CERT_DEV_LOC) == device_loc::LEN);
    assert!(len(def::CERT_SN_DEV_LOC) == device_loc::LEN);
    assert!(len(def::PUBLIC_KEY_DEV_LOC) == device_loc::LEN);
    assert!(len(def::TBS_CERT_LOC) == cert_loc::LEN);
    assert!(len(def::STD_CERT_ELEMENTS) == 8 * cert_loc::LEN);
    assert!(def::RESERVED + 1 == def::FIXED_LEN);
    assert!(device_loc::COUNT.end == device_loc::LEN && cert_loc::COUNT.end == cert_loc::LEN);
    assert!(len(element::DEVICE_LOC) == device_loc::LEN);
    assert!(len(element::CERT_LOC) == cert_loc::LEN);
    assert!(element::RESERVED + 1 == element::LEN);
};
