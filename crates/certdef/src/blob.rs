//! The definition blob: a compact, versioned, SHA-256-checked container of one or more
//! [`CertDef`]s plus the root public key, read zero-copy on the device. Layout in
//! `docs/certdef-format.md`; why it is hand-rolled in `docs/decisions/0002-certdef-blob.md`.

use crate::Reason;
use crate::def::{
    CertElement, CertElements, ELEMENT_ID_MAX, ELEMENT_RECORD_LEN, STD_ELEMENT_COUNT,
};
use crate::{
    CertDef, CertLoc, CertType, DateFormat, DeviceLoc, DeviceZone, Error, Name, SnSource, Transform,
};

/// Magic bytes at the start of every blob.
pub const BLOB_MAGIC: [u8; 4] = *b"KSCB";
/// Blob format version written and read by this code.
pub const BLOB_VERSION: u8 = 1;
/// Most definitions in one blob.
pub const MAX_DEFS: usize = 8;
/// Header size.
pub const HEADER_LEN: usize = 16;
/// Fixed part of a definition record.
pub const DEF_FIXED_LEN: usize = 76;
/// Size of the trailing SHA-256 digest.
pub const DIGEST_LEN: usize = 32;
const FLAG_ROOT_KEY: u8 = 0x01;

/// What a definition in a blob is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Role {
    /// The device's own certificate.
    Device = 0,
    /// The signer (intermediate CA) certificate stored on the device.
    Signer = 1,
    /// Anything else (e.g. a further CA level).
    Other = 2,
}

impl Role {
    fn from_value(v: u8) -> Result<Self, Error> {
        match v {
            0 => Ok(Role::Device),
            1 => Ok(Role::Signer),
            2 => Ok(Role::Other),
            _ => Err(Error::BadBlob),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, Error> {
    match b.get(at..at + 2) {
        Some(&[lo, hi]) => Ok(u16::from_le_bytes([lo, hi])),
        _ => Err(Error::BadBlob),
    }
}

fn byte(b: &[u8], at: usize) -> Result<u8, Error> {
    b.get(at).copied().ok_or(Error::BadBlob)
}

fn device_loc_at(b: &[u8], at: usize) -> Result<DeviceLoc, Error> {
    let is_genkey = match byte(b, at + 1)? {
        0 => false,
        1 => true,
        _ => return Err(Error::BadBlob),
    };
    Ok(DeviceLoc {
        zone: DeviceZone::from_value(byte(b, at)?)?,
        is_genkey,
        slot: u16_at(b, at + 2)?,
        offset: u16_at(b, at + 4)?,
        count: u16_at(b, at + 6)?,
    })
}

fn cert_loc_at(b: &[u8], at: usize) -> Result<CertLoc, Error> {
    Ok(CertLoc {
        offset: u16_at(b, at)?,
        count: u16_at(b, at + 2)?,
    })
}

/// Decodes the locations and transforms of one 40-byte custom element record.
#[inline(always)] // two callers; out of line its error paths cost more flash
pub(crate) fn decode_element_locs(
    rec: &[u8],
) -> Result<(DeviceLoc, CertLoc, [Transform; 2]), Error> {
    Ok((
        device_loc_at(rec, 25)?,
        cert_loc_at(rec, 33)?,
        [
            Transform::from_value(byte(rec, 37)?)?,
            Transform::from_value(byte(rec, 38)?)?,
        ],
    ))
}

/// Checks an element id: at most 24 bytes of printable ASCII (validated once at parse time).
fn check_element_id(rec: &[u8]) -> Result<(), Error> {
    let id_len = byte(rec, 0)? as usize;
    let id = rec
        .get(1..1 + id_len)
        .filter(|_| id_len <= ELEMENT_ID_MAX)
        .ok_or(Error::BadBlob)?;
    if id.iter().all(|c| (0x20..0x7F).contains(c)) {
        Ok(())
    } else {
        Err(Error::BadBlob)
    }
}

/// Decodes one 40-byte custom element record.
pub(crate) fn decode_element(rec: &[u8]) -> Result<CertElement, Error> {
    let id_len = byte(rec, 0)? as usize;
    let id_bytes = rec
        .get(1..1 + id_len)
        .filter(|_| id_len <= ELEMENT_ID_MAX)
        .ok_or(Error::BadBlob)?;
    let id_str = core::str::from_utf8(id_bytes).map_err(|_| Error::BadBlob)?;
    let mut id = heapless::String::new();
    id.push_str(id_str).map_err(|_| Error::BadBlob)?;
    Ok(CertElement {
        id,
        device_loc: device_loc_at(rec, 25)?,
        cert_loc: cert_loc_at(rec, 33)?,
        transforms: [
            Transform::from_value(byte(rec, 37)?)?,
            Transform::from_value(byte(rec, 38)?)?,
        ],
    })
}

fn name_at(b: &[u8], at: usize, len: usize) -> Result<Name<'_>, Error> {
    Ok(Name::unchecked(b.get(at..at + len).ok_or(Error::BadBlob)?))
}

fn loc_in(f: &[u8; DEF_FIXED_LEN], at: usize) -> Result<DeviceLoc, Error> {
    device_loc_at(f, at)
}

/// Decodes the definition record at the start of `rec`: `(role, def, record length)`.
fn decode_def(rec: &[u8]) -> Result<(Role, CertDef<'_>, usize), Error> {
    let f: &[u8; DEF_FIXED_LEN] = rec
        .get(..DEF_FIXED_LEN)
        .and_then(|f| f.try_into().ok())
        .ok_or(Error::BadBlob)?;
    let le = |at: usize| u16::from_le_bytes([f[at], f[at + 1]]);
    let mut std_cert_elements = [CertLoc::default(); STD_ELEMENT_COUNT];
    for (i, loc) in std_cert_elements.iter_mut().enumerate() {
        *loc = CertLoc {
            offset: le(38 + 4 * i),
            count: le(40 + 4 * i),
        };
    }
    let template_len = le(70) as usize;
    let (name_len, ca_len, elem_count) = (f[72] as usize, f[73] as usize, f[74] as usize);
    if f[75] != 0 {
        return Err(Error::BadBlob);
    }
    let name = name_at(rec, DEF_FIXED_LEN, name_len)?;
    let ca_at = DEF_FIXED_LEN + name_len;
    let ca_cert_def = if ca_len == 0 {
        None
    } else {
        Some(name_at(rec, ca_at, ca_len)?)
    };
    let el_at = ca_at + ca_len;
    let el_end = el_at + elem_count * ELEMENT_RECORD_LEN;
    let elements = rec.get(el_at..el_end).ok_or(Error::BadBlob)?;
    let template = rec
        .get(el_end..el_end + template_len)
        .ok_or(Error::BadBlob)?;
    let def = CertDef {
        cert_type: CertType::from_value(f[1])?,
        template_id: f[2],
        chain_id: f[3],
        sn_source: SnSource::from_value(f[4])?,
        issue_date_format: DateFormat::from_value(f[5])?,
        expire_date_format: DateFormat::from_value(f[6])?,
        expire_years: f[7],
        private_key_slot: le(8),
        comp_cert_dev_loc: loc_in(f, 10)?,
        cert_sn_dev_loc: loc_in(f, 18)?,
        public_key_dev_loc: loc_in(f, 26)?,
        tbs_cert_loc: CertLoc {
            offset: le(34),
            count: le(36),
        },
        std_cert_elements,
        cert_elements: CertElements::Encoded(elements),
        template,
        name,
        ca_cert_def,
    };
    Ok((Role::from_value(f[0])?, def, el_end + template_len))
}

/// Checks the locations and transforms of every custom element record of `def` (done once, in
/// `DefBlob::parse`; the ids, which the device never reads, are checked by `DefBlob::validate`).
fn check_elements(def: &CertDef<'_>) -> Result<(), Error> {
    if let CertElements::Encoded(elements) = def.cert_elements {
        for r in elements.chunks_exact(ELEMENT_RECORD_LEN) {
            decode_element_locs(r)?;
        }
    }
    Ok(())
}

/// A parsed, integrity-checked definition blob (borrows the bytes; nothing is copied).
#[derive(Debug, Clone, Copy)]
pub struct DefBlob<'a> {
    bytes: &'a [u8],
    root_public_key: Option<&'a [u8; 64]>,
    offsets: [u16; MAX_DEFS],
    count: u8,
}

impl<'a> DefBlob<'a> {
    /// Parses a blob and checks its integrity and structure: magic, version, lengths, SHA-256
    /// digest, every enum value, every record. Trailing bytes after the blob are ignored (flash
    /// pages are larger than blobs).
    ///
    /// The definitions' semantic rules ([`CertDef::validate`]) are not re-checked here: the host
    /// checks them when it writes the blob ([`write_blob`]) and the digest proves the bytes are
    /// the ones written, so the device links no validator. Call [`DefBlob::validate`] (host
    /// tools do) to check a blob of unknown origin; a definition that breaks the rules still
    /// never makes `rebuild` panic, it gives a typed error or a wrong certificate that fails
    /// verification.
    #[inline(always)] // one device caller: measured smaller inlined
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let hdr = bytes.get(..HEADER_LEN).ok_or(Error::BadBlob)?;
        if hdr[..4] != BLOB_MAGIC {
            return Err(Error::BadBlob);
        }
        if hdr[4] != BLOB_VERSION {
            return Err(Error::UnsupportedBlobVersion(hdr[4]));
        }
        let flags = hdr[5];
        let count = hdr[6];
        if flags & !FLAG_ROOT_KEY != 0 || hdr[7] != 0 || hdr[12..16] != [0; 4] {
            return Err(Error::BadBlob);
        }
        if count == 0 || count as usize > MAX_DEFS {
            return Err(Error::BadBlob);
        }
        let total = u32::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]) as usize;
        if total < HEADER_LEN + DIGEST_LEN {
            return Err(Error::BadBlob);
        }
        let bytes = bytes.get(..total).ok_or(Error::BadBlob)?;
        let (body, digest) = bytes.split_at(total - DIGEST_LEN);
        if crate::sha256(body) != *digest {
            return Err(Error::BlobDigestMismatch);
        }
        let mut at = HEADER_LEN;
        let root_public_key = if flags & FLAG_ROOT_KEY != 0 {
            let k = body.get(at..at + 64).ok_or(Error::BadBlob)?;
            at += 64;
            Some(<&[u8; 64]>::try_from(k).map_err(|_| Error::BadBlob)?)
        } else {
            None
        };
        let mut offsets = [0u16; MAX_DEFS];
        for slot in offsets.iter_mut().take(count as usize) {
            *slot = u16::try_from(at).map_err(|_| Error::BadBlob)?;
            let (_, def, len) = decode_def(body.get(at..).ok_or(Error::BadBlob)?)?;
            check_elements(&def)?;
            at += len;
        }
        if at != body.len() {
            return Err(Error::BadBlob);
        }
        Ok(DefBlob {
            bytes,
            root_public_key,
            offsets,
            count,
        })
    }

    /// [`DefBlob::parse`] and then every definition's semantic rules ([`CertDef::validate`]):
    /// what a host tool uses on a blob it did not write.
    pub fn parse_validated(bytes: &'a [u8]) -> Result<Self, Error> {
        let blob = Self::parse(bytes)?;
        blob.validate()?;
        Ok(blob)
    }

    /// Checks every definition's semantic rules ([`CertDef::validate`]) and the text the device
    /// never reads: names and custom element ids must be printable ASCII.
    pub fn validate(&self) -> Result<(), Error> {
        for i in 0..self.len() {
            let at = *self.offsets.get(i).ok_or(Error::BadBlob)? as usize;
            let (_, def, _) = decode_def(self.bytes.get(at..).ok_or(Error::BadBlob)?)?;
            def.validate()?;
            if !def.name.is_ascii_printable()
                || def.ca_cert_def.is_some_and(|n| !n.is_ascii_printable())
            {
                return Err(Error::InvalidDefinition(Reason::NameNotAscii));
            }
            if let CertElements::Encoded(elements) = def.cert_elements {
                for r in elements.chunks_exact(ELEMENT_RECORD_LEN) {
                    check_element_id(r)?;
                }
            }
        }
        Ok(())
    }

    /// Number of definitions.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Never true for a parsed blob.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Definition `i` with its role.
    #[inline(always)] // measured: smaller device image inlined
    pub fn get(&self, i: usize) -> Option<(Role, CertDef<'a>)> {
        if i >= self.count as usize {
            return None;
        }
        let at = *self.offsets.get(i)? as usize;
        decode_def(self.bytes.get(at..)?)
            .ok()
            .map(|(r, d, _)| (r, d))
    }

    /// All definitions with their roles.
    pub fn defs(&self) -> impl Iterator<Item = (Role, CertDef<'a>)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The first definition with role `role`.
    #[inline(always)] // device_def / signer_def: the search folds into each
    pub fn by_role(&self, role: Role) -> Option<CertDef<'a>> {
        self.defs().find(|(r, _)| *r == role).map(|(_, d)| d)
    }

    /// The device certificate's definition.
    pub fn device_def(&self) -> Option<CertDef<'a>> {
        self.by_role(Role::Device)
    }

    /// The signer certificate's definition.
    pub fn signer_def(&self) -> Option<CertDef<'a>> {
        self.by_role(Role::Signer)
    }

    /// The definition called `name`.
    pub fn by_name(&self, name: &str) -> Option<CertDef<'a>> {
        self.by_name_bytes(name.as_bytes())
    }

    fn by_name_bytes(&self, name: &[u8]) -> Option<CertDef<'a>> {
        self.defs()
            .find(|(_, d)| d.name.as_bytes() == name)
            .map(|(_, d)| d)
    }

    /// The CA definition `def` links to (`ca_cert_def`), if it is in this blob.
    pub fn ca_def_of(&self, def: &CertDef<'_>) -> Option<CertDef<'a>> {
        self.by_name_bytes(def.ca_cert_def?.as_bytes())
    }

    /// The root CA public key X‖Y (verifies the signer certificate), when stored.
    pub fn root_public_key(&self) -> Option<&'a [u8; 64]> {
        self.root_public_key
    }

    /// The blob's SHA-256 digest (its last 32 bytes).
    pub fn digest(&self) -> &'a [u8] {
        self.bytes
            .get(self.bytes.len() - DIGEST_LEN..)
            .unwrap_or(&[])
    }

    /// Short id of the blob: the first 8 bytes of its digest ("which definitions are stored").
    pub fn blob_id(&self) -> [u8; 8] {
        let mut id = [0u8; 8];
        if let Some(d) = self.digest().get(..8) {
            id.copy_from_slice(d);
        }
        id
    }

    /// The blob bytes (exactly its length, without trailing padding).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, data: &[u8]) -> Result<(), Error> {
        let end = self.at + data.len();
        self.out
            .get_mut(self.at..end)
            .ok_or(Error::too_small(end))?
            .copy_from_slice(data);
        self.at = end;
        Ok(())
    }

    fn u16(&mut self, v: u16) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    fn device_loc(&mut self, l: &DeviceLoc) -> Result<(), Error> {
        self.put(&[l.zone.value(), l.is_genkey as u8])?;
        self.u16(l.slot)?;
        self.u16(l.offset)?;
        self.u16(l.count)
    }

    fn cert_loc(&mut self, l: &CertLoc) -> Result<(), Error> {
        self.u16(l.offset)?;
        self.u16(l.count)
    }

    fn def(&mut self, role: Role, d: &CertDef<'_>) -> Result<(), Error> {
        d.validate()?;
        let short =
            |n: usize| u8::try_from(n).map_err(|_| Error::InvalidDefinition(Reason::NameTooLong));
        let ca = d.ca_cert_def.unwrap_or_default();
        if Name::from_ascii(d.name.as_bytes()).is_none()
            || Name::from_ascii(ca.as_bytes()).is_none()
        {
            return Err(Error::InvalidDefinition(Reason::NameNotAscii));
        }
        self.put(&[
            role as u8,
            d.cert_type.value(),
            d.template_id,
            d.chain_id,
            d.sn_source.value(),
            d.issue_date_format.value(),
            d.expire_date_format.value(),
            d.expire_years,
        ])?;
        self.u16(d.private_key_slot)?;
        self.device_loc(&d.comp_cert_dev_loc)?;
        self.device_loc(&d.cert_sn_dev_loc)?;
        self.device_loc(&d.public_key_dev_loc)?;
        self.cert_loc(&d.tbs_cert_loc)?;
        for l in &d.std_cert_elements {
            self.cert_loc(l)?;
        }
        self.u16(d.template.len() as u16)?;
        let count = u8::try_from(d.cert_elements.len())
            .map_err(|_| Error::InvalidDefinition(Reason::TooManyElements))?;
        self.put(&[short(d.name.len())?, short(ca.len())?, count, 0])?;
        self.put(d.name.as_bytes())?;
        self.put(ca.as_bytes())?;
        for el in d.cert_elements.iter() {
            let id = el.id.as_bytes();
            if !id.iter().all(|c| (0x20..0x7F).contains(c)) {
                return Err(Error::InvalidDefinition(Reason::ElementIdNotAscii));
            }
            let mut id_field = [0u8; ELEMENT_ID_MAX];
            id_field
                .get_mut(..id.len())
                .ok_or(Error::BadBlob)?
                .copy_from_slice(id);
            self.put(&[id.len() as u8])?;
            self.put(&id_field)?;
            self.device_loc(&el.device_loc)?;
            self.cert_loc(&el.cert_loc)?;
            self.put(&[el.transforms[0].value(), el.transforms[1].value(), 0])?;
        }
        self.put(d.template)
    }
}

/// Writes a blob holding `defs` (with their roles) and optionally the root public key into
/// `out`, returning its length. Every definition is validated first.
pub fn write_blob(
    defs: &[(Role, &CertDef<'_>)],
    root_public_key: Option<&[u8; 64]>,
    out: &mut [u8],
) -> Result<usize, Error> {
    if defs.is_empty() || defs.len() > MAX_DEFS {
        return Err(Error::InvalidDefinition(Reason::BlobDefCount));
    }
    let mut w = Writer { out, at: 0 };
    w.put(&BLOB_MAGIC)?;
    w.put(&[
        BLOB_VERSION,
        root_public_key.map_or(0, |_| FLAG_ROOT_KEY),
        defs.len() as u8,
        0,
    ])?;
    w.put(&[0; 8])?; // total length, patched below; reserved
    if let Some(k) = root_public_key {
        w.put(k)?;
    }
    for (role, d) in defs {
        w.def(*role, d)?;
    }
    let body_len = w.at;
    let total = body_len + DIGEST_LEN;
    if total > u16::MAX as usize {
        return Err(Error::InvalidDefinition(Reason::BlobTooLarge));
    }
    w.put(&[0; DIGEST_LEN])?;
    let out = w.out;
    out[8..12].copy_from_slice(&(total as u32).to_le_bytes());
    let digest = crate::sha256(&out[..body_len]);
    out[body_len..total].copy_from_slice(&digest);
    Ok(total)
}
