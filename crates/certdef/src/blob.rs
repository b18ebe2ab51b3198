//! The definition blob: a compact, versioned, SHA-256-checked container of one or more
//! [`CertDef`]s plus the root public key, read zero-copy on the device. Layout in
//! `docs/certdef-format.md`; why it is hand-rolled in `docs/decisions/0002-certdef-blob.md`.

use crate::Reason;
use crate::def::{CertElements, STD_ELEMENT_COUNT};
use crate::field::{self, cert_loc, def as d, header as h};
use crate::loc::{self, cert_loc_at, device_loc_at};
use crate::{CertDef, CertLoc, CertType, DateFormat, Error, Name, SnSource};

/// Magic bytes at the start of every blob.
pub const BLOB_MAGIC: [u8; 4] = *b"KSCB";
/// Blob format version written and read by this code.
pub const BLOB_VERSION: u8 = 1;
/// Most definitions in one blob.
pub const MAX_DEFS: usize = 8;
/// Header size ([`field::header::LEN`]).
pub const HEADER_LEN: usize = h::LEN;
/// Fixed part of a definition record ([`field::def::FIXED_LEN`]).
pub const DEF_FIXED_LEN: usize = d::FIXED_LEN;
/// Size of the trailing SHA-256 digest ([`field::DIGEST_LEN`]).
pub const DIGEST_LEN: usize = field::DIGEST_LEN;
const ELEMENT_RECORD_LEN: usize = field::element::LEN;

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

fn name_at(b: &[u8], at: usize, len: usize) -> Result<Name<'_>, Error> {
    Ok(Name::unchecked(b.get(at..at + len).ok_or(Error::BadBlob)?))
}

/// Decodes the definition record at the start of `rec`: `(role, def, record length)`.
fn decode_def(rec: &[u8]) -> Result<(Role, CertDef<'_>, usize), Error> {
    let f: &[u8; DEF_FIXED_LEN] = rec
        .get(..DEF_FIXED_LEN)
        .and_then(|f| f.try_into().ok())
        .ok_or(Error::BadBlob)?;
    // Constant offsets into a fixed-size array: no bounds checks are emitted.
    let le = |at: usize| u16::from_le_bytes([f[at], f[at + 1]]);
    let loc = |r: field::Field| device_loc_at(f, r.start);
    let mut std_cert_elements = [CertLoc::default(); STD_ELEMENT_COUNT];
    for (i, l) in std_cert_elements.iter_mut().enumerate() {
        let at = d::STD_CERT_ELEMENTS.start + cert_loc::LEN * i;
        *l = CertLoc {
            offset: le(at + cert_loc::OFFSET.start),
            count: le(at + cert_loc::COUNT.start),
        };
    }
    let template_len = le(d::TEMPLATE_LEN.start) as usize;
    let (name_len, ca_len, elem_count) = (
        f[d::NAME_LEN] as usize,
        f[d::CA_NAME_LEN] as usize,
        f[d::ELEMENT_COUNT] as usize,
    );
    if f[d::RESERVED] != 0 {
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
        cert_type: CertType::from_value(f[d::CERT_TYPE])?,
        template_id: f[d::TEMPLATE_ID],
        chain_id: f[d::CHAIN_ID],
        sn_source: SnSource::from_value(f[d::SN_SOURCE])?,
        issue_date_format: DateFormat::from_value(f[d::ISSUE_DATE_FORMAT])?,
        expire_date_format: DateFormat::from_value(f[d::EXPIRE_DATE_FORMAT])?,
        expire_years: f[d::EXPIRE_YEARS],
        private_key_slot: le(d::PRIVATE_KEY_SLOT.start),
        comp_cert_dev_loc: loc(d::COMP_CERT_DEV_LOC)?,
        cert_sn_dev_loc: loc(d::CERT_SN_DEV_LOC)?,
        public_key_dev_loc: loc(d::PUBLIC_KEY_DEV_LOC)?,
        tbs_cert_loc: cert_loc_at(f, d::TBS_CERT_LOC.start)?,
        std_cert_elements,
        cert_elements: CertElements::Encoded(elements),
        template,
        name,
        ca_cert_def,
    };
    Ok((Role::from_value(f[d::ROLE])?, def, el_end + template_len))
}

/// Checks the locations and transforms of every custom element record of `def` (done once, in
/// `DefBlob::parse`; the ids, which the device never reads, are checked by `DefBlob::validate`).
fn check_elements(def: &CertDef<'_>) -> Result<(), Error> {
    if let CertElements::Encoded(elements) = def.cert_elements {
        for r in elements.chunks_exact(ELEMENT_RECORD_LEN) {
            loc::decode_element_locs(r)?;
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
        if hdr[h::MAGIC] != BLOB_MAGIC {
            return Err(Error::BadBlob);
        }
        if hdr[h::VERSION] != BLOB_VERSION {
            return Err(Error::UnsupportedBlobVersion(hdr[h::VERSION]));
        }
        let flags = hdr[h::FLAGS];
        let count = hdr[h::COUNT];
        if flags & !h::FLAG_ROOT_KEY != 0 || hdr[h::RESERVED_0] != 0 || hdr[h::RESERVED_1] != [0; 4]
        {
            return Err(Error::BadBlob);
        }
        if count == 0 || count as usize > MAX_DEFS {
            return Err(Error::BadBlob);
        }
        let t = h::TOTAL_LEN.start;
        let total = u32::from_le_bytes([hdr[t], hdr[t + 1], hdr[t + 2], hdr[t + 3]]) as usize;
        if total < HEADER_LEN + DIGEST_LEN {
            return Err(Error::BadBlob);
        }
        let bytes = bytes.get(..total).ok_or(Error::BadBlob)?;
        let (body, digest) = bytes.split_at(total - DIGEST_LEN);
        if crate::hash::sha256(body) != *digest {
            return Err(Error::BlobDigestMismatch);
        }
        let mut at = HEADER_LEN;
        let root_public_key = if flags & h::FLAG_ROOT_KEY != 0 {
            let k = body
                .get(at..at + field::ROOT_KEY_LEN)
                .ok_or(Error::BadBlob)?;
            at += field::ROOT_KEY_LEN;
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
                    loc::check_element_id(r)?;
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

    fn def(&mut self, role: Role, def: &CertDef<'_>) -> Result<(), Error> {
        def.validate()?;
        let short =
            |n: usize| u8::try_from(n).map_err(|_| Error::InvalidDefinition(Reason::NameTooLong));
        let ca = def.ca_cert_def.unwrap_or_default();
        if Name::from_ascii(def.name.as_bytes()).is_none()
            || Name::from_ascii(ca.as_bytes()).is_none()
        {
            return Err(Error::InvalidDefinition(Reason::NameNotAscii));
        }
        let count = u8::try_from(def.cert_elements.len())
            .map_err(|_| Error::InvalidDefinition(Reason::TooManyElements))?;
        let mut f = [0u8; DEF_FIXED_LEN];
        f[d::ROLE] = role as u8;
        f[d::CERT_TYPE] = def.cert_type.value();
        f[d::TEMPLATE_ID] = def.template_id;
        f[d::CHAIN_ID] = def.chain_id;
        f[d::SN_SOURCE] = def.sn_source.value();
        f[d::ISSUE_DATE_FORMAT] = def.issue_date_format.value();
        f[d::EXPIRE_DATE_FORMAT] = def.expire_date_format.value();
        f[d::EXPIRE_YEARS] = def.expire_years;
        loc::put_u16(&mut f, d::PRIVATE_KEY_SLOT, def.private_key_slot);
        loc::put(
            &mut f,
            d::COMP_CERT_DEV_LOC,
            &def.comp_cert_dev_loc.record(),
        );
        loc::put(&mut f, d::CERT_SN_DEV_LOC, &def.cert_sn_dev_loc.record());
        loc::put(
            &mut f,
            d::PUBLIC_KEY_DEV_LOC,
            &def.public_key_dev_loc.record(),
        );
        loc::put(&mut f, d::TBS_CERT_LOC, &def.tbs_cert_loc.record());
        for (i, l) in def.std_cert_elements.iter().enumerate() {
            let at = d::STD_CERT_ELEMENTS.start + cert_loc::LEN * i;
            loc::put(&mut f, at..at + cert_loc::LEN, &l.record());
        }
        loc::put_u16(&mut f, d::TEMPLATE_LEN, def.template.len() as u16);
        f[d::NAME_LEN] = short(def.name.len())?;
        f[d::CA_NAME_LEN] = short(ca.len())?;
        f[d::ELEMENT_COUNT] = count;
        self.put(&f)?;
        self.put(def.name.as_bytes())?;
        self.put(ca.as_bytes())?;
        for el in def.cert_elements.iter() {
            self.put(&el.record()?)?;
        }
        self.put(def.template)
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
    let mut hdr = [0u8; HEADER_LEN];
    loc::put(&mut hdr, h::MAGIC, &BLOB_MAGIC);
    hdr[h::VERSION] = BLOB_VERSION;
    hdr[h::FLAGS] = root_public_key.map_or(0, |_| h::FLAG_ROOT_KEY);
    hdr[h::COUNT] = defs.len() as u8;
    // TOTAL_LEN is patched below, once the records are written.
    let mut w = Writer { out, at: 0 };
    w.put(&hdr)?;
    if let Some(k) = root_public_key {
        w.put(k)?;
    }
    for (role, def) in defs {
        w.def(*role, def)?;
    }
    let body_len = w.at;
    let total = body_len + DIGEST_LEN;
    if total > u16::MAX as usize {
        return Err(Error::InvalidDefinition(Reason::BlobTooLarge));
    }
    w.put(&[0; DIGEST_LEN])?;
    let out = w.out;
    loc::put(out, h::TOTAL_LEN, &(total as u32).to_le_bytes());
    let digest = crate::hash::sha256(out.get(..body_len).unwrap_or_default());
    loc::put(out, body_len..total, &digest);
    Ok(total)
}
