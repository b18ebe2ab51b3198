//! The 72-byte compressed certificate (cryptoauthlib format versions 0 and 1).

use crate::Reason;
use crate::date::{self, DateTime};
use crate::{Error, SnSource};

/// Size of a compressed certificate.
pub const COMP_CERT_LEN: usize = 72;

/// The fields of a 72-byte compressed certificate.
///
/// Layout (big-endian bit fields): 0–63 signature R‖S · 64–66 issue year/month/day/hour and
/// expire years · 67–68 signer id · 69 template id ‖ chain id · 70 serial-number source ‖
/// format version · 71 extended year bits (v1) ‖ reserved nibble. See `docs/certdef-format.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CompressedCert {
    /// Raw signature R‖S.
    pub signature: [u8; 64],
    /// Issue date; minutes and seconds are always 0 (not stored).
    pub issue_date: DateTime,
    /// Validity in whole years; 0 = no expiration.
    pub expire_years: u8,
    /// Signer id (2 bytes = 4 hex characters in the certificate).
    pub signer_id: [u8; 2],
    /// 4-bit template id.
    pub template_id: u8,
    /// 4-bit chain id.
    pub chain_id: u8,
    /// Serial-number source.
    pub sn_source: SnSource,
    /// Format version: 0 (issue years 2000–2031, expire years ≤ 31) or 1 (to 2127 / 127).
    pub format_version: u8,
    /// Reserved low nibble of byte 71 (kept as read; written back unchanged).
    pub reserved: u8,
}

impl CompressedCert {
    /// Decodes and range-checks 72 bytes: format version 0 or 1, valid sn source, month 1–12,
    /// a day that exists in that month, hour 0–23.
    pub fn from_bytes(b: &[u8; COMP_CERT_LEN]) -> Result<Self, Error> {
        let format_version = b[70] & 0x0F;
        if format_version > 1 {
            return Err(Error::UnsupportedFormatVersion(format_version));
        }
        if format_version == 0 && b[71] & 0xF0 != 0 {
            // Extension bits only exist in format 1; cryptoauthlib's writers zero them for 0.
            return Err(Error::Decoding);
        }
        let sn_source = SnSource::from_value(b[70] >> 4)?;
        let (issue_date, expire_years) = date::decode_comp_dates(format_version, b)?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[..64]);
        Ok(CompressedCert {
            signature,
            issue_date,
            expire_years,
            signer_id: [b[67], b[68]],
            template_id: b[69] >> 4,
            chain_id: b[69] & 0x0F,
            sn_source,
            format_version,
            reserved: b[71] & 0x0F,
        })
    }

    /// Decodes from a slice that must be exactly 72 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, Error> {
        let arr: &[u8; COMP_CERT_LEN] = b
            .try_into()
            .map_err(|_| Error::elem_size(COMP_CERT_LEN, b.len()))?;
        Self::from_bytes(arr)
    }

    /// Encodes to 72 bytes, checking every field fits its format version.
    pub fn to_bytes(&self) -> Result<[u8; COMP_CERT_LEN], Error> {
        let mut b = [0u8; COMP_CERT_LEN];
        b[..64].copy_from_slice(&self.signature);
        encode_fields(
            &mut b,
            &self.issue_date,
            self.expire_years,
            self.signer_id,
            [self.template_id, self.chain_id, self.reserved],
            self.sn_source,
            self.format_version,
        )?;
        Ok(b)
    }

    /// The expire date in `fmt` (issue + expire years, or the format's max date for 0 years).
    pub fn expire_date(&self, fmt: crate::DateFormat) -> Result<DateTime, Error> {
        date::expire_date(&self.issue_date, self.expire_years, fmt)
    }

    /// Smallest format version that holds these dates (cryptoauthlib's writer rule).
    pub fn min_format_version(&self) -> u8 {
        date::comp_version_for(self.issue_date.year, self.expire_years)
    }
}

/// Everything of a compressed certificate but the signature into bytes 64–71, checking every
/// field fits (`ids` = template id, chain id, reserved nibble; each 4-bit).
#[inline(always)]
pub(crate) fn encode_fields(
    b: &mut [u8; COMP_CERT_LEN],
    issue: &DateTime,
    expire_years: u8,
    signer_id: [u8; 2],
    ids: [u8; 3],
    sn_source: SnSource,
    format_version: u8,
) -> Result<(), Error> {
    let [template_id, chain_id, reserved] = ids;
    if template_id > 15 || chain_id > 15 || reserved > 15 {
        return Err(Error::InvalidDefinition(Reason::NotFourBit));
    }
    b[71] = reserved;
    date::encode_comp_dates(format_version, issue, expire_years, b)?;
    b[67] = signer_id[0];
    b[68] = signer_id[1];
    b[69] = (template_id << 4) | chain_id;
    b[70] = (sn_source.value() << 4) | format_version;
    Ok(())
}
