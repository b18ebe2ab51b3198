//! Element getters ([`CertView`]) and setters ([`Cert`]) on a certificate buffer, key ids,
//! serial-number generation and the TBS digest — the parts of `atcacert_def.c` that read and
//! write certificate bytes.

#[cfg(not(feature = "small"))]
use sha1::{Digest, Sha1};

use crate::comp::{COMP_CERT_LEN, CompressedCert};
use crate::date::{self, DATE_MAX_SIZE, DateTime};
use crate::def::{KEY_ID_LEN, PUBKEY_LEN};
use crate::{CertDef, CertLoc, CertType, Error, Reason, SnSource, StdElement, der};

/// Key identifier of a P-256 public key X‖Y: SHA-1(0x04 ‖ X ‖ Y) (RFC 5280 method 1,
/// `atcacert_get_key_id`).
pub fn key_id(public_key: &[u8; 64]) -> [u8; 20] {
    #[cfg(feature = "small")]
    {
        crate::sha_compact::key_id(public_key)
    }
    #[cfg(not(feature = "small"))]
    {
        let mut h = Sha1::new();
        h.update([0x04]);
        h.update(public_key);
        h.finalize().into()
    }
}

/// Adds the ATECC padding: `00000000 ‖ X ‖ 00000000 ‖ Y` (72 bytes).
pub fn pad_public_key(public_key: &[u8; 64]) -> [u8; 72] {
    let mut out = [0u8; 72];
    out[4..36].copy_from_slice(&public_key[..32]);
    out[40..72].copy_from_slice(&public_key[32..]);
    out
}

/// Removes the ATECC padding from a 72-byte padded key.
#[inline(always)] // measured: smaller device image inlined
pub fn unpad_public_key(padded: &[u8; 72]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&padded[4..36]);
    out[32..].copy_from_slice(&padded[40..72]);
    out
}

/// Generates a certificate serial number (`atcacert_generate_sn`) into `out` (its length is the
/// serial-number size). `comp` is the compressed certificate as the device holds it (its encoded
/// dates and extension bits are hashed); `device_sn` / `public_key` as the source needs them.
pub fn generate_sn(
    src: SnSource,
    device_sn: Option<&[u8; 9]>,
    public_key: Option<&[u8; 64]>,
    comp: &[u8; COMP_CERT_LEN],
    out: &mut [u8],
) -> Result<(), Error> {
    let n = out.len();
    match src {
        SnSource::Stored | SnSource::StoredDynamic => {
            return Err(Error::InvalidDefinition(Reason::StoredSnNotGenerated));
        }
        SnSource::DeviceSn => {
            let sn = device_sn.ok_or(Error::MissingDeviceSn)?;
            let out: &mut [u8; 10] = out.try_into().map_err(|_| Error::elem_size(10, n))?;
            out[0] = 0x40;
            out[1..].copy_from_slice(sn);
        }
        SnSource::SignerId => {
            let out: &mut [u8; 3] = out.try_into().map_err(|_| Error::elem_size(3, n))?;
            *out = [0x40, comp[67], comp[68]];
        }
        _ => {
            if n == 0 || n > 32 {
                return Err(Error::elem_size(32, n));
            }
            // One message buffer and the one-shot digest (shared with the blob check): key or
            // device SN ‖ encoded dates [‖ extension bits].
            let mut msg = [0u8; 64 + 3 + 1];
            let mut len = if src.uses_device_sn() {
                msg[..9].copy_from_slice(device_sn.ok_or(Error::MissingDeviceSn)?);
                9
            } else {
                msg[..64]
                    .copy_from_slice(public_key.ok_or(Error::ElemMissing(StdElement::PublicKey))?);
                64
            };
            msg[len..len + 3].copy_from_slice(&comp[64..67]);
            len += 3;
            match comp[70] & 0x0F {
                0 => {}
                1 | 2 => {
                    msg[len] = comp[71] & 0xF0;
                    len += 1;
                }
                v => return Err(Error::UnsupportedFormatVersion(v)),
            }
            let digest = crate::hash::sha256(&msg[..len]);
            out.copy_from_slice(&digest[..n]);
            match src {
                SnSource::PubKeyHash | SnSource::DeviceSnHash => out[0] = (out[0] & 0x7F) | 0x40,
                SnSource::PubKeyHashPos | SnSource::DeviceSnHashPos => out[0] &= 0x7F,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Offset shift of everything after a dynamic serial number whose length differs from the
/// template's (cryptoauthlib's "effective offset"); 0 for every other definition.
fn shift_after(def: &CertDef<'_>, cert: &[u8], offset: usize) -> isize {
    if def.sn_source != SnSource::StoredDynamic || def.cert_type != CertType::X509 {
        return 0;
    }
    let sn = def.std_loc(StdElement::CertSn).offset as usize;
    if offset <= sn {
        return 0;
    }
    match (cert.get(sn), def.template.get(sn)) {
        (Some(&c), Some(&t)) => c as isize - t as isize,
        _ => 0,
    }
}

#[inline(always)] // saves flash in the device path (measured)
fn loc_range(
    def: &CertDef<'_>,
    cert: &[u8],
    loc: CertLoc,
) -> Result<core::ops::Range<usize>, Error> {
    let start = (loc.offset as usize)
        .checked_add_signed(shift_after(def, cert, loc.offset as usize))
        .ok_or(Error::ElemOutOfBounds)?;
    let end = start + loc.count as usize;
    if end > cert.len() {
        return Err(Error::ElemOutOfBounds);
    }
    Ok(start..end)
}

fn hex_nibble(c: u8) -> Result<u8, Error> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(Error::Decoding),
    }
}

fn parse_signer_id(b: &[u8]) -> Result<[u8; 2], Error> {
    let [a, b2, c, d] = <[u8; 4]>::try_from(b).map_err(|_| Error::elem_size(4, b.len()))?;
    Ok([
        (hex_nibble(a)? << 4) | hex_nibble(b2)?,
        (hex_nibble(c)? << 4) | hex_nibble(d)?,
    ])
}

/// The INTEGER value of a stored dynamic serial number: `sn` is its length byte (1–127)
/// followed by at least that many bytes (extra bytes ignored).
#[inline(always)] // one caller on the device; out of line it costs flash
fn dynamic_sn_value(sn: &[u8]) -> Result<&[u8], Error> {
    let new_len = *sn.first().ok_or(Error::elem_size(1, 0))? as usize;
    if new_len == 0 || new_len > 127 {
        return Err(Error::BadCert);
    }
    sn.get(1..1 + new_len)
        .ok_or(Error::elem_size(1 + new_len, sn.len()))
}

/// Read access to the elements of a full certificate that follows a definition.
#[derive(Debug, Clone, Copy)]
pub struct CertView<'a> {
    def: &'a CertDef<'a>,
    der: &'a [u8],
}

impl<'a> CertView<'a> {
    /// Views `der` (the whole certificate) through `def`.
    pub fn new(def: &'a CertDef<'a>, der: &'a [u8]) -> Self {
        CertView { def, der }
    }

    /// The certificate bytes.
    pub fn der(&self) -> &'a [u8] {
        self.der
    }

    /// The bytes at `loc` (`atcacert_get_cert_element`); absent → `ElemMissing(elem)`.
    pub fn element_at(&self, loc: CertLoc, elem: StdElement) -> Result<&'a [u8], Error> {
        if !loc.is_present() {
            return Err(Error::ElemMissing(elem));
        }
        let r = loc_range(self.def, self.der, loc)?;
        self.der.get(r).ok_or(Error::ElemOutOfBounds)
    }

    /// The bytes of standard element `e`.
    pub fn element(&self, e: StdElement) -> Result<&'a [u8], Error> {
        self.element_at(self.def.std_loc(e), e)
    }

    /// Subject public key X‖Y.
    pub fn public_key(&self) -> Result<[u8; 64], Error> {
        let b = self.element(StdElement::PublicKey)?;
        b.try_into()
            .map_err(|_| Error::elem_size(PUBKEY_LEN, b.len()))
    }

    /// Offset of the X.509 signatureValue (after any dynamic-SN shift).
    #[inline(always)] // measured: smaller device image inlined
    fn x509_sig_offset(&self) -> Result<usize, Error> {
        let loc = self.def.std_loc(StdElement::Signature);
        (loc.offset as usize)
            .checked_add_signed(shift_after(self.def, self.der, loc.offset as usize))
            .filter(|&o| o < self.der.len())
            .ok_or(Error::ElemOutOfBounds)
    }

    /// Signature R‖S (X.509: decoded from the DER signatureValue, which must end the certificate).
    pub fn signature(&self) -> Result<[u8; 64], Error> {
        match self.def.cert_type {
            CertType::Custom => {
                let b = self.element(StdElement::Signature)?;
                b.try_into().map_err(|_| Error::elem_size(64, b.len()))
            }
            CertType::X509 => {
                let off = self.x509_sig_offset()?;
                let (sig, used) = der::decode_ecdsa_sig(&self.der[off..])?;
                if off + used != self.der.len() {
                    return Err(Error::BadCert);
                }
                Ok(sig)
            }
        }
    }

    /// Issue date.
    pub fn issue_date(&self) -> Result<DateTime, Error> {
        date::decode(
            self.def.issue_date_format,
            self.element(StdElement::IssueDate)?,
        )
    }

    /// Expire date.
    pub fn expire_date(&self) -> Result<DateTime, Error> {
        date::decode(
            self.def.expire_date_format,
            self.element(StdElement::ExpireDate)?,
        )
    }

    /// Signer id from its four hex characters (either case, as cryptoauthlib reads it).
    pub fn signer_id(&self) -> Result<[u8; 2], Error> {
        parse_signer_id(self.element(StdElement::SignerId)?)
    }

    /// Serial-number content bytes (for `StoredDynamic`: the INTEGER value without its length).
    pub fn cert_sn(&self) -> Result<&'a [u8], Error> {
        if self.def.sn_source == SnSource::StoredDynamic {
            let loc = self.def.std_loc(StdElement::CertSn);
            let off = loc.offset as usize;
            let len = *self.der.get(off).ok_or(Error::ElemOutOfBounds)? as usize;
            return self
                .der
                .get(off + 1..off + 1 + len)
                .ok_or(Error::ElemOutOfBounds);
        }
        self.element(StdElement::CertSn)
    }

    /// Authority key id (20 bytes).
    pub fn auth_key_id(&self) -> Result<&'a [u8], Error> {
        self.element(StdElement::AuthKeyId)
    }

    /// Subject key id (20 bytes).
    pub fn subj_key_id(&self) -> Result<&'a [u8], Error> {
        self.element(StdElement::SubjKeyId)
    }

    /// The to-be-signed region (`atcacert_get_tbs`).
    pub fn tbs(&self) -> Result<&'a [u8], Error> {
        let loc = self.def.tbs_cert_loc;
        let start = loc.offset as usize;
        let end = loc
            .end()
            .checked_add_signed(shift_after(self.def, self.der, loc.end()))
            .ok_or(Error::BadCert)?;
        self.der.get(start..end).ok_or(Error::BadCert)
    }

    /// SHA-256 of the TBS region (`atcacert_get_tbs_digest`).
    pub fn tbs_digest(&self) -> Result<[u8; 32], Error> {
        Ok(crate::hash::sha256(self.tbs()?))
    }

    /// The compressed certificate for this certificate — strict: any field a rebuild would not
    /// reproduce exactly is [`Error::NotReproducible`] instead of cryptoauthlib's silent fallback
    /// (issue minutes/seconds, expiry not whole years after issue, lower-case signer id).
    pub fn compressed(&self) -> Result<CompressedCert, Error> {
        let (issue, expire_years, signer_id) = self.comp_fields()?;
        let def = self.def;
        let mut comp = CompressedCert {
            signature: self.signature()?,
            issue_date: issue,
            expire_years,
            signer_id,
            template_id: def.template_id,
            chain_id: def.chain_id,
            sn_source: def.sn_source,
            format_version: 0,
            reserved: 0,
        };
        comp.format_version = comp.min_format_version();
        Ok(comp)
    }

    /// [`CertView::compressed`] straight to its 72 bytes (what [`crate::compress`] returns):
    /// the same checks in the same order, without the intermediate struct.
    pub(crate) fn compressed_bytes(&self) -> Result<[u8; COMP_CERT_LEN], Error> {
        let (issue, expire_years, signer_id) = self.comp_fields()?;
        let mut b = [0u8; COMP_CERT_LEN];
        b[..64].copy_from_slice(&self.signature()?);
        let def = self.def;
        crate::comp::encode_fields(
            &mut b,
            &issue,
            expire_years,
            signer_id,
            [def.template_id, def.chain_id, 0],
            def.sn_source,
            date::comp_version_for(issue.year, expire_years),
        )?;
        Ok(b)
    }

    /// Issue date, expire years and signer id of the compressed certificate (see
    /// [`CertView::compressed`] for the strictness rules).
    fn comp_fields(&self) -> Result<(DateTime, u8, [u8; 2]), Error> {
        let def = self.def;
        let issue_loc = def.std_loc(StdElement::IssueDate);
        let issue = if issue_loc.is_present() {
            let d = self.issue_date()?;
            if d.minute != 0 || d.second != 0 {
                return Err(Error::NotReproducible(StdElement::IssueDate));
            }
            d
        } else {
            DateTime::new(2000, 1, 1, 0, 0, 0)
        };
        let mut expire_years = def.expire_years;
        if def.std_loc(StdElement::ExpireDate).is_present() {
            let exp = self.expire_date()?;
            if exp == DateTime::max_for(def.expire_date_format) {
                expire_years = 0;
            } else if issue_loc.is_present() && exp.year >= issue.year {
                expire_years = u8::try_from(exp.year - issue.year)
                    .map_err(|_| Error::NotReproducible(StdElement::ExpireDate))?;
            }
            // `exp` decoded as a valid date, so equality with issue + years (or the max date)
            // is exactly "a rebuild reproduces it" (`date::expire_date` would agree).
            let want = if expire_years == 0 {
                DateTime::max_for(def.expire_date_format)
            } else {
                DateTime {
                    year: issue.year + expire_years as u16,
                    ..issue
                }
            };
            if expire_years > 127 || want != exp {
                return Err(Error::NotReproducible(StdElement::ExpireDate));
            }
        }
        let signer_id = if def.std_loc(StdElement::SignerId).is_present() {
            let text = self.element(StdElement::SignerId)?;
            if text.iter().any(|c| c.is_ascii_lowercase()) {
                return Err(Error::NotReproducible(StdElement::SignerId));
            }
            parse_signer_id(text)?
        } else {
            [0, 0]
        };
        Ok((issue, expire_years, signer_id))
    }
}

/// A certificate being built in a caller buffer: the element setters cryptoauthlib's host code
/// uses to issue a certificate from a template (`atcacert_set_*`).
#[derive(Debug)]
pub struct Cert<'a> {
    def: &'a CertDef<'a>,
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Cert<'a> {
    /// Copies the definition's template into `buf` (which should hold
    /// [`CertDef::max_cert_size`] bytes so the signature and serial number can grow).
    pub fn from_template(def: &'a CertDef<'a>, buf: &'a mut [u8]) -> Result<Self, Error> {
        let n = def.template.len();
        buf.get_mut(..n)
            .ok_or(Error::too_small(n))?
            .copy_from_slice(def.template);
        Ok(Cert { def, buf, len: n })
    }

    /// [`Cert::from_template`] followed by [`Cert::set_cert_sn`] for a dynamic serial number
    /// (`StoredDynamic`, X.509), built by copying the template around the new serial number
    /// instead of shifting it in place — the rebuild path then links no `memmove`.
    pub(crate) fn from_template_with_dynamic_sn(
        def: &'a CertDef<'a>,
        buf: &'a mut [u8],
        sn: &[u8],
    ) -> Result<Self, Error> {
        let t = def.template;
        if buf.len() < t.len() {
            return Err(Error::too_small(t.len()));
        }
        let at = def.std_loc(StdElement::CertSn).offset as usize;
        let value = dynamic_sn_value(sn)?;
        let new_len = value.len();
        let cur_len = *t.get(at).ok_or(Error::ElemOutOfBounds)? as usize;
        let tail = t.get(at + 1 + cur_len..).ok_or(Error::ElemOutOfBounds)?;
        let value_end = at + 1 + new_len;
        let len = value_end + tail.len();
        let out = buf.get_mut(..len).ok_or(Error::too_small(len))?;
        let (head, rest) = out.split_at_mut(at);
        head.copy_from_slice(&t[..at]);
        let (num, rest) = rest.split_at_mut(1 + new_len);
        num[0] = new_len as u8;
        num[1..].copy_from_slice(value);
        rest.copy_from_slice(tail);
        let delta = new_len as isize - cur_len as isize;
        if delta != 0 {
            // A fresh buffer: on error nothing is returned, so no all-or-nothing pass needed.
            let tbs = def.tbs_cert_loc.offset as usize;
            for at in [1, tbs + 1] {
                der::adjust_length(buf.get_mut(at..len).ok_or(Error::BadCert)?, delta)?;
            }
        }
        Ok(Cert { def, buf, len })
    }

    /// Wraps a certificate already in `buf[..len]`.
    pub fn from_existing(
        def: &'a CertDef<'a>,
        buf: &'a mut [u8],
        len: usize,
    ) -> Result<Self, Error> {
        if len > buf.len() {
            return Err(Error::too_small(len));
        }
        Ok(Cert { def, buf, len })
    }

    /// Current certificate length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty (never for a real certificate).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The certificate bytes so far.
    pub fn der(&self) -> &[u8] {
        self.filled()
    }

    /// The certificate bytes so far (`len` never exceeds the buffer; no panic path either way).
    #[inline(never)] // measured: smaller device image out of line (five callers)
    fn filled(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Read access (getters, TBS digest).
    pub fn view(&self) -> CertView<'_> {
        CertView {
            def: self.def,
            der: self.filled(),
        }
    }

    /// Writes `data` at `loc` (`atcacert_set_cert_element`): absent location → no-op; the size
    /// must equal the location's count.
    pub fn set_element(&mut self, loc: CertLoc, data: &[u8]) -> Result<(), Error> {
        self.element_mut(loc)?.map_or(Ok(()), |dst| {
            if dst.len() != data.len() {
                return Err(Error::elem_size(dst.len(), data.len()));
            }
            dst.copy_from_slice(data);
            Ok(())
        })
    }

    /// The writable bytes at `loc`, or `None` when the element is absent.
    pub fn element_mut(&mut self, loc: CertLoc) -> Result<Option<&mut [u8]>, Error> {
        if !loc.is_present() {
            return Ok(None);
        }
        let r = loc_range(self.def, self.filled(), loc)?;
        Ok(self.buf.get_mut(r))
    }

    /// Writes the subject public key and, when the definition has one, the subject key id
    /// (`atcacert_set_subj_public_key`).
    #[inline(always)] // one device-path caller (rebuild)
    pub fn set_subj_public_key(&mut self, public_key: &[u8; 64]) -> Result<(), Error> {
        self.set_element(self.def.std_loc(StdElement::PublicKey), public_key)?;
        let ski = self.def.std_loc(StdElement::SubjKeyId);
        if ski.is_present() {
            self.set_element(ski, &key_id(public_key))?;
        }
        Ok(())
    }

    /// Writes the authority key id computed from the CA's public key (`atcacert_set_auth_key_id`).
    #[inline(always)] // measured: smaller device image inlined
    pub fn set_auth_key_id(&mut self, ca_public_key: &[u8; 64]) -> Result<(), Error> {
        let loc = self.def.std_loc(StdElement::AuthKeyId);
        if loc.is_present() {
            self.set_element(loc, &key_id(ca_public_key))?;
        }
        Ok(())
    }

    /// Writes raw authority key id bytes (`atcacert_set_auth_key_id_raw`).
    pub fn set_auth_key_id_raw(&mut self, aki: &[u8; KEY_ID_LEN]) -> Result<(), Error> {
        self.set_element(self.def.std_loc(StdElement::AuthKeyId), aki)
    }

    /// Writes a date element in the definition's format.
    fn set_date(
        &mut self,
        e: StdElement,
        fmt: crate::DateFormat,
        d: &DateTime,
    ) -> Result<(), Error> {
        let loc = self.def.std_loc(e);
        if !loc.is_present() {
            return Ok(());
        }
        let mut tmp = [0u8; DATE_MAX_SIZE];
        let n = date::encode(fmt, d, &mut tmp)?;
        self.set_element(loc, tmp.get(..n).ok_or(Error::InvalidDate)?)
    }

    /// Writes the issue date (`atcacert_set_issue_date`).
    pub fn set_issue_date(&mut self, d: &DateTime) -> Result<(), Error> {
        self.set_date(StdElement::IssueDate, self.def.issue_date_format, d)
    }

    /// Writes the expire date (`atcacert_set_expire_date`).
    pub fn set_expire_date(&mut self, d: &DateTime) -> Result<(), Error> {
        self.set_date(StdElement::ExpireDate, self.def.expire_date_format, d)
    }

    /// Writes the signer id as four upper-case hex characters (`atcacert_set_signer_id`).
    #[inline(always)] // one device-path caller (set_comp_cert_bytes)
    pub fn set_signer_id(&mut self, id: &[u8; 2]) -> Result<(), Error> {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let s = [
            HEX[(id[0] >> 4) as usize],
            HEX[(id[0] & 0xF) as usize],
            HEX[(id[1] >> 4) as usize],
            HEX[(id[1] & 0xF) as usize],
        ];
        self.set_element(self.def.std_loc(StdElement::SignerId), &s)
    }

    /// Moves the bytes after `at + old` so the region `at..at+old` becomes `new` bytes long.
    fn resize(&mut self, at: usize, old: usize, new: usize) -> Result<(), Error> {
        let tail = at
            .checked_add(old)
            .filter(|&t| t <= self.len)
            .ok_or(Error::BadCert)?;
        let new_len = self.len - old + new;
        if new_len > self.buf.len() {
            return Err(Error::too_small(new_len));
        }
        self.buf.copy_within(tail..self.len, at + new);
        self.len = new_len;
        Ok(())
    }

    /// Adjusts the DER lengths at `offsets` by `delta`, all or none.
    fn adjust_lengths(&mut self, offsets: &[usize], delta: isize) -> Result<(), Error> {
        for &o in offsets {
            let (old, size) = der::decode_length(self.buf.get(o..self.len).ok_or(Error::BadCert)?)?;
            let new = old.checked_add_signed(delta).ok_or(Error::BadCert)?;
            if der::length_size(new) != size {
                return Err(Error::LengthOfLengthChange);
            }
        }
        for &o in offsets {
            der::adjust_length(self.buf.get_mut(o..self.len).ok_or(Error::BadCert)?, delta)?;
        }
        Ok(())
    }

    /// Writes the certificate serial number (`atcacert_set_cert_sn`). For `StoredDynamic`,
    /// `sn` is the INTEGER length byte followed by at least that many value bytes (extra bytes
    /// are ignored); the certificate is resized and the TBS and outer lengths adjusted — unlike
    /// cryptoauthlib, which only handles the template's own length.
    pub fn set_cert_sn(&mut self, sn: &[u8]) -> Result<(), Error> {
        let loc = self.def.std_loc(StdElement::CertSn);
        if self.def.sn_source != SnSource::StoredDynamic || self.def.cert_type != CertType::X509 {
            return self.set_element(loc, sn);
        }
        let at = loc.offset as usize;
        let value = dynamic_sn_value(sn)?;
        let new_len = value.len();
        let cur_len = *self
            .buf
            .get(at)
            .filter(|_| at < self.len)
            .ok_or(Error::ElemOutOfBounds)? as usize;
        if at + 1 + cur_len > self.len {
            return Err(Error::ElemOutOfBounds);
        }
        let needed = self.len - cur_len + new_len;
        if needed > self.buf.len() {
            return Err(Error::too_small(needed));
        }
        let delta = new_len as isize - cur_len as isize;
        if delta != 0 {
            let tbs = self.def.tbs_cert_loc.offset as usize;
            self.adjust_lengths(&[1, tbs + 1], delta)?;
            self.resize(at + 1, cur_len, new_len)?;
        }
        let dst = self
            .buf
            .get_mut(at..at + 1 + new_len)
            .ok_or(Error::ElemOutOfBounds)?;
        dst[0] = new_len as u8;
        dst[1..].copy_from_slice(value);
        Ok(())
    }

    /// Writes the signature (`atcacert_set_signature`): X.509 re-encodes it as DER, replaces
    /// everything from the signature offset to the end and fixes the outer length.
    pub fn set_signature(&mut self, sig: &[u8; 64]) -> Result<(), Error> {
        if self.def.cert_type == CertType::Custom {
            return self.set_element(self.def.std_loc(StdElement::Signature), sig);
        }
        let off = self.view().x509_sig_offset()?;
        let (enc, new) = der::ecdsa_sig_der(sig);
        let end = off + new;
        // The outer SEQUENCE must cover exactly the certificate (then it does after the change).
        let (outer, hdr) = der::decode_length(self.filled().get(1..).ok_or(Error::BadCert)?)?;
        if outer.checked_add(1 + hdr) != Some(self.len) {
            return Err(Error::BadCert);
        }
        if end > self.buf.len() {
            return Err(Error::too_small(end));
        }
        let delta = end as isize - self.len as isize;
        if delta != 0 {
            let len_bytes = self.buf.get_mut(1..self.len).ok_or(Error::BadCert)?;
            der::adjust_length(len_bytes, delta)?;
        }
        // Nothing was written before the last check.
        let dst = self.buf.get_mut(off..end).ok_or(Error::too_small(end))?;
        dst.copy_from_slice(enc.get(..new).ok_or(Error::BadCert)?);
        self.len = end;
        Ok(())
    }

    /// Applies decoded compressed-certificate fields (see [`Cert::set_comp_cert_bytes`]).
    pub fn set_comp_cert(&mut self, comp: &CompressedCert) -> Result<(), Error> {
        self.set_comp_cert_bytes(&comp.to_bytes()?)
    }

    /// Applies the 72 bytes of a compressed certificate (`atcacert_set_comp_cert`): checks the
    /// format version, then its template id, chain id and serial-number source against the
    /// definition, then writes signature, issue and expire dates and signer id. Straight from
    /// the bytes: the device path never builds a [`CompressedCert`].
    #[inline(never)] // measured: smaller device image out of line
    pub fn set_comp_cert_bytes(&mut self, b: &[u8; COMP_CERT_LEN]) -> Result<(), Error> {
        let def = self.def;
        let [sig @ .., _, _, _, _, _, _, _, _] = b;
        let [signer_0, signer_1, ids, source_version, ext] = [b[67], b[68], b[69], b[70], b[71]];
        let version = source_version & 0x0F;
        if version > 1 {
            return Err(Error::UnsupportedFormatVersion(version));
        }
        // Extension bits only exist in format 1; cryptoauthlib's writers zero them for 0.
        if version == 0 && ext & 0xF0 != 0 {
            return Err(Error::Decoding);
        }
        if [ids >> 4, ids & 0x0F, source_version >> 4]
            != [def.template_id, def.chain_id, def.sn_source.value()]
        {
            return Err(Error::WrongDefinition);
        }
        let (issue, expire_years) = date::decode_comp_dates(version, b)?;
        self.set_signature(sig)?;
        self.set_issue_date(&issue)?;
        if def.std_loc(StdElement::ExpireDate).is_present() {
            let fmt = def.expire_date_format;
            self.set_expire_date(&date::comp_expire_date(&issue, expire_years, fmt)?)?;
        }
        self.set_signer_id(&[signer_0, signer_1])
    }

    /// Generates the serial number for a generated source and writes it.
    pub fn set_generated_sn(
        &mut self,
        comp: &[u8; COMP_CERT_LEN],
        device_sn: Option<&[u8; 9]>,
    ) -> Result<(), Error> {
        let loc = self.def.std_loc(StdElement::CertSn);
        if !loc.is_present() {
            return Ok(());
        }
        let public_key = if matches!(
            self.def.sn_source,
            SnSource::PubKeyHash | SnSource::PubKeyHashPos | SnSource::PubKeyHashRaw
        ) {
            Some(self.view().public_key()?)
        } else {
            None
        };
        let src = self.def.sn_source;
        let dst = self.element_mut(loc)?.ok_or(Error::ElemOutOfBounds)?;
        generate_sn(src, device_sn, public_key.as_ref(), comp, dst)
    }

    /// SHA-256 of the TBS region.
    pub fn tbs_digest(&self) -> Result<[u8; 32], Error> {
        self.view().tbs_digest()
    }

    /// Finishes: the certificate's length.
    pub fn finish(self) -> usize {
        self.len
    }
}
