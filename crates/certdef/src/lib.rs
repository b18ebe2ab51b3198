//! keystamp-certdef: Microchip cryptoauthlib's compressed-certificate codec (`atcacert`) for
//! P-256, bit-exact where cryptoauthlib is right and fixed where it is not
//! (see `docs/certdef-format.md`).
//!
//! * [`CertDef`] — a certificate definition (template + element locations), zero-copy.
//! * [`DefBlob`] / [`write_blob`] — the versioned, integrity-checked binary form a device stores.
//! * [`CompressedCert`] — the 72-byte compressed certificate.
//! * [`read_plan`] / [`rebuild()`] — what to read from the chip, and the full DER certificate
//!   rebuilt from it into a caller buffer.
//! * [`Cert`] / [`CertView`] — element setters and getters to issue or inspect a certificate.
//! * [`split()`] — a full certificate → what the chip must hold.
//!
//! `no_std`, no allocation, no panics on any input. The `std` feature adds `CertDefBuf` and
//! the cryptoauthlib-shaped JSON.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod blob;
pub mod cert;
pub mod comp;
mod compress_fast;
pub mod date;
pub mod def;
pub mod der;
mod enums;
mod error;
pub mod field;
mod hash;
#[cfg(feature = "std")]
pub mod json;
mod loc;
pub mod rebuild;
#[cfg(any(test, feature = "small"))]
mod sha_compact;
pub mod split;
pub mod transform;

pub use blob::{DefBlob, Role, write_blob};
pub use cert::{Cert, CertView, generate_sn, key_id, pad_public_key, unpad_public_key};
pub use comp::{COMP_CERT_LEN, CompressedCert};
pub use date::DateTime;
pub use def::{CertDef, CertElements, Name};
pub use der::MAX_DER_SIG_LEN;
pub use enums::{CertType, DateFormat, DeviceZone, SnSource, StdElement, Transform};
pub use error::{EnumField, Error, Reason};
#[cfg(feature = "std")]
pub use json::{CertDefBuf, parse_defs_json};
pub use loc::{CertElement, CertLoc, DeviceLoc};
pub use rebuild::{DeviceData, ReadPlan, device_sn_from_config, read_plan, rebuild};
pub use split::{DeviceImage, split, write_plan};

/// SHA-256 of `data`, the crate's one implementation (compact under the `small` feature).
/// Public so the device agent hashes with this same code: one SHA-256 in the firmware image.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    hash::sha256(data)
}

/// Compresses a full certificate (`atcacert_get_comp_cert`, strict): its 72 bytes.
pub fn compress(def: &CertDef<'_>, der: &[u8]) -> Result<[u8; COMP_CERT_LEN], Error> {
    // The fast path covers the usual shapes; the general one every other input and every error.
    match compress_fast::compress(def, der) {
        Some(b) => Ok(b),
        None => CertView::new(def, der).compressed_bytes(),
    }
}
