//! Generating a certificate definition from a sample certificate (`keystamp certdef from-cert`):
//! find every standard element in the DER, pick the serial-number source and device locations,
//! and optionally put the chip serial number into the subject CN as a custom element.

use keystamp_certdef::{
    CertDefBuf, CertElement, CertLoc, CertType, DateFormat, DeviceLoc, SnSource, StdElement,
    Transform,
};

/// Which certificate of the chain the sample is: decides where the signer id is and the
/// default device locations (Microchip's standard layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertRole {
    /// A device certificate: signer id at the end of the issuer CN; key via GenKey of slot 0;
    /// compressed certificate in slot 10.
    Device,
    /// A signer certificate: signer id at the end of the subject CN; public key (72-byte padded
    /// form) in slot 11; compressed certificate in slot 12.
    Signer,
}

/// Case of the chip serial number written into the CN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HexCase {
    /// `0123ABCD…`
    Upper,
    /// `0123abcd…`
    Lower,
}

/// Choices for [`from_cert`].
#[derive(Clone, Debug)]
pub struct FromCertOptions {
    /// Name of the definition.
    pub name: String,
    /// Which certificate this is.
    pub role: CertRole,
    /// Serial-number source; `None` picks SIGNER_ID for a signer whose serial is `40 ‖ id`,
    /// DEVICE_SN for a device whose serial is `40 ‖ 01 23 …` (an ATECC serial number), else
    /// PUB_KEY_HASH.
    pub sn_source: Option<SnSource>,
    /// Where a stored serial number lives (required for SNSRC_STORED / SNSRC_STORED_DYNAMIC).
    pub cert_sn_loc: Option<DeviceLoc>,
    /// Template id (4 bits).
    pub template_id: u8,
    /// Chain id (4 bits).
    pub chain_id: u8,
    /// Where the subject public key is on the chip; `None` = the role's default.
    pub public_key_loc: Option<DeviceLoc>,
    /// Where the compressed certificate is; `None` = the role's default.
    pub comp_cert_loc: Option<DeviceLoc>,
    /// Device private key slot.
    pub private_key_slot: u16,
    /// Put the 18-hex-digit chip serial number, found in the subject CN of the sample, into the
    /// definition as two custom elements (config bytes 0–3 and 8–12), so each device's CN is
    /// its own serial number from one template (Azure DPS registration ids).
    pub cn_serial: Option<HexCase>,
    /// Name of the issuer's definition.
    pub ca_cert_def: Option<String>,
}

impl FromCertOptions {
    /// Defaults for a role.
    pub fn new(name: &str, role: CertRole) -> Self {
        FromCertOptions {
            name: name.to_string(),
            role,
            sn_source: None,
            cert_sn_loc: None,
            template_id: match role {
                CertRole::Signer => 1,
                CertRole::Device => 2,
            },
            chain_id: 0,
            public_key_loc: None,
            comp_cert_loc: None,
            private_key_slot: 0,
            cn_serial: None,
            ca_cert_def: None,
        }
    }
}

/// Why a definition could not be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromCertError {
    /// The certificate is not shaped as a compressible certificate must be (what is wrong and,
    /// where it helps, what to do).
    Shape(&'static str),
    /// A stored serial-number source without `--cert-sn-slot` (the source's C name).
    SnLocationMissing(&'static str),
    /// A validity date that does not decode.
    Date(keystamp_certdef::Error),
    /// The generated definition does not validate.
    Generated(keystamp_certdef::Error),
}

impl std::fmt::Display for FromCertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shape(m) => f.write_str(m),
            Self::SnLocationMissing(source) => write!(
                f,
                "{source} needs the device location of the serial number (--cert-sn-slot)"
            ),
            Self::Date(e) => write!(f, "date: {e}"),
            Self::Generated(e) => write!(f, "the generated definition is invalid: {e}"),
        }
    }
}

impl std::error::Error for FromCertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Date(e) | Self::Generated(e) => Some(e),
            Self::Shape(_) | Self::SnLocationMissing(_) => None,
        }
    }
}

fn bad(msg: &'static str) -> FromCertError {
    FromCertError::Shape(msg)
}

/// One DER TLV: tag, where it starts, where its value starts, value length.
#[derive(Clone, Copy, Debug)]
struct Tlv {
    tag: u8,
    start: usize,
    value: usize,
    len: usize,
}

impl Tlv {
    fn end(&self) -> usize {
        self.value + self.len
    }
}

fn tlv(der: &[u8], at: usize) -> Result<Tlv, FromCertError> {
    let truncated = || bad("certificate DER is truncated");
    let tag = *der.get(at).ok_or_else(truncated)?;
    let first = *der.get(at + 1).ok_or_else(truncated)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 3 {
            return Err(bad("unsupported DER length"));
        }
        let bytes = der.get(at + 2..at + 2 + n).ok_or_else(truncated)?;
        (
            bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            2 + n,
        )
    };
    let t = Tlv {
        tag,
        start: at,
        value: at + hdr,
        len,
    };
    if t.end() > der.len() {
        return Err(truncated());
    }
    Ok(t)
}

/// The children of a constructed TLV.
fn children(der: &[u8], parent: &Tlv) -> Result<Vec<Tlv>, FromCertError> {
    let mut out = Vec::new();
    let mut at = parent.value;
    while at < parent.end() {
        let t = tlv(der, at)?;
        at = t.end();
        out.push(t);
    }
    Ok(out)
}

fn loc(offset: usize, count: usize) -> Result<CertLoc, FromCertError> {
    Ok(CertLoc::new(
        u16::try_from(offset).map_err(|_| bad("certificate too large"))?,
        u16::try_from(count).map_err(|_| bad("element too large"))?,
    ))
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SKI: &[u8] = &[0x55, 0x1D, 0x0E];
const OID_AKI: &[u8] = &[0x55, 0x1D, 0x23];

/// The CN value (offset, bytes) of a Name.
fn common_name<'a>(der: &'a [u8], name: &Tlv) -> Result<Option<(usize, &'a [u8])>, FromCertError> {
    for rdn in children(der, name)? {
        for atv in children(der, &rdn)? {
            let parts = children(der, &atv)?;
            if let [oid, value] = parts.as_slice()
                && der.get(oid.value..oid.end()) == Some(OID_CN)
            {
                return Ok(Some((value.value, &der[value.value..value.end()])));
            }
        }
    }
    Ok(None)
}

fn date(
    der: &[u8],
    t: &Tlv,
) -> Result<(CertLoc, DateFormat, keystamp_certdef::DateTime), FromCertError> {
    let fmt = match t.tag {
        0x17 => DateFormat::Rfc5280Utc,
        0x18 => DateFormat::Rfc5280Gen,
        _ => return Err(bad("validity dates must be UTCTime or GeneralizedTime")),
    };
    let value = &der[t.value..t.end()];
    let parsed = keystamp_certdef::date::decode(fmt, value).map_err(FromCertError::Date)?;
    Ok((loc(t.value, t.len)?, fmt, parsed))
}

/// Generates a definition from a sample certificate (DER).
pub fn from_cert(der: &[u8], opts: &FromCertOptions) -> Result<CertDefBuf, FromCertError> {
    let cert = tlv(der, 0)?;
    if cert.tag != 0x30 || cert.end() != der.len() {
        return Err(bad("not a DER certificate (outer SEQUENCE)"));
    }
    let top = children(der, &cert)?;
    let [tbs, _sig_alg, sig] = top.as_slice() else {
        return Err(bad(
            "a certificate has three parts: TBS, algorithm, signature",
        ));
    };
    if sig.tag != 0x03 || sig.len < 8 {
        return Err(bad("signatureValue is not a BIT STRING"));
    }
    let mut fields = children(der, tbs)?.into_iter();
    let mut next = || {
        fields
            .next()
            .ok_or_else(|| bad("TBS certificate is truncated"))
    };
    let mut serial = next()?;
    if serial.tag == 0xA0 {
        serial = next()?;
    }
    if serial.tag != 0x02 {
        return Err(bad("serial number is not an INTEGER"));
    }
    let _alg = next()?;
    let issuer = next()?;
    let validity = next()?;
    let subject = next()?;
    let spki = next()?;
    let extensions = fields.find(|t| t.tag == 0xA3);

    let times = children(der, &validity)?;
    let [not_before, not_after] = times.as_slice() else {
        return Err(bad("validity must hold two dates"));
    };
    let (issue_loc, issue_fmt, issue) = date(der, not_before)?;
    let (expire_loc, expire_fmt, expire) = date(der, not_after)?;
    let expire_years = if (expire.year == 9999
        || (expire.year == 2049 && issue_fmt == DateFormat::Rfc5280Utc))
        && (
            expire.month,
            expire.day,
            expire.hour,
            expire.minute,
            expire.second,
        ) == (12, 31, 23, 59, 59)
    {
        0
    } else if (
        expire.month,
        expire.day,
        expire.hour,
        expire.minute,
        expire.second,
    ) == (
        issue.month,
        issue.day,
        issue.hour,
        issue.minute,
        issue.second,
    ) {
        u8::try_from(expire.year.saturating_sub(issue.year))
            .map_err(|_| bad("validity over 255 years"))?
    } else {
        return Err(bad(
            "the expire date is not a whole number of years after the issue date (nor \"no expiration\"); a compressed certificate cannot carry it",
        ));
    };

    let spki_parts = children(der, &spki)?;
    let key = spki_parts
        .get(1)
        .filter(|k| {
            k.tag == 0x03 && k.len == 66 && der.get(k.value..k.value + 2) == Some(&[0x00, 0x04])
        })
        .ok_or_else(|| bad("subject public key is not an uncompressed P-256 point"))?;
    let mut std = [CertLoc::default(); 8];
    std[StdElement::PublicKey as usize] = loc(key.value + 2, 64)?;
    std[StdElement::Signature as usize] = loc(sig.start, sig.end() - sig.start)?;
    std[StdElement::IssueDate as usize] = issue_loc;
    std[StdElement::ExpireDate as usize] = expire_loc;
    std[StdElement::CertSn as usize] = loc(serial.value, serial.len)?;

    if let Some(ext) = extensions {
        let list = children(der, &ext)?;
        let seq = list.first().ok_or_else(|| bad("empty extensions"))?;
        for e in children(der, seq)? {
            let parts = children(der, &e)?;
            let (Some(oid), Some(value)) = (parts.first(), parts.last()) else {
                continue;
            };
            let oid = &der[oid.value..oid.end()];
            if oid == OID_SKI {
                let inner = tlv(der, value.value)?;
                if inner.tag == 0x04 && inner.len == 20 {
                    std[StdElement::SubjKeyId as usize] = loc(inner.value, 20)?;
                }
            } else if oid == OID_AKI {
                let inner = tlv(der, value.value)?;
                if let Some(id) = children(der, &inner)?
                    .into_iter()
                    .find(|t| t.tag == 0x80 && t.len == 20)
                {
                    std[StdElement::AuthKeyId as usize] = loc(id.value, 20)?;
                }
            }
        }
    }

    let id_name = match opts.role {
        CertRole::Device => &issuer,
        CertRole::Signer => &subject,
    };
    let mut signer_id = None;
    if let Some((off, cn)) = common_name(der, id_name)?
        && cn.len() >= 4
        && cn[cn.len() - 4..].iter().all(u8::is_ascii_hexdigit)
    {
        std[StdElement::SignerId as usize] = loc(off + cn.len() - 4, 4)?;
        signer_id = Some(&cn[cn.len() - 4..]);
    }

    let serial_bytes = &der[serial.value..serial.end()];
    let sn_source = match opts.sn_source {
        Some(s) => s,
        None if opts.role == CertRole::Signer
            && serial_bytes.len() == 3
            && serial_bytes[0] == 0x40
            && signer_id
                .is_some_and(|id| hex::decode(id).ok().as_deref() == Some(&serial_bytes[1..])) =>
        {
            SnSource::SignerId
        }
        // ATECC serial numbers start with 01 23 (datasheet); `40 ‖ sn` is SNSRC_DEVICE_SN.
        None if opts.role == CertRole::Device
            && serial_bytes.len() == 10
            && serial_bytes[..3] == [0x40, 0x01, 0x23] =>
        {
            SnSource::DeviceSn
        }
        None => SnSource::PubKeyHash,
    };
    let cert_sn_dev_loc = match sn_source {
        SnSource::Stored | SnSource::StoredDynamic => opts
            .cert_sn_loc
            .ok_or_else(|| FromCertError::SnLocationMissing(sn_source.c_name()))?,
        _ => DeviceLoc::NONE,
    };
    if sn_source == SnSource::StoredDynamic {
        // STORED_DYNAMIC: the element starts at the INTEGER length byte (reference §3.1).
        std[StdElement::CertSn as usize] = loc(serial.value - 1, serial.len + 1)?;
    }

    let mut elements = Vec::new();
    if let Some(case) = opts.cn_serial {
        let (off, cn) = common_name(der, &subject)?
            .ok_or_else(|| bad("the subject has no CN to hold the chip serial number"))?;
        let start = find_hex_run(cn, 18).ok_or_else(|| {
            bad("the subject CN holds no 18-hex-digit chip serial number to replace; issue the sample with a CN like \"0123456789ABCDEF01\"")
        })?;
        let tf = match case {
            HexCase::Upper => Transform::Bin2HexUc,
            HexCase::Lower => Transform::Bin2HexLc,
        };
        for (id, cfg_off, cfg_len, cn_off) in [("sn03", 0u16, 4u16, 0usize), ("sn812", 8, 5, 8)] {
            elements.push(CertElement {
                id: heapless::String::try_from(id).map_err(|_| bad("element id"))?,
                device_loc: DeviceLoc::config(cfg_off, cfg_len),
                cert_loc: loc(off + start + cn_off, cfg_len as usize * 2)?,
                transforms: [tf, Transform::None],
            });
        }
    }

    let (pk_default, comp_default) = match opts.role {
        CertRole::Device => (
            DeviceLoc::genkey(opts.private_key_slot),
            DeviceLoc::data(10, 0, 72),
        ),
        CertRole::Signer => (DeviceLoc::data(11, 0, 72), DeviceLoc::data(12, 0, 72)),
    };
    let def = CertDefBuf {
        name: opts.name.clone(),
        cert_type: CertType::X509,
        template_id: opts.template_id & 0x0F,
        chain_id: opts.chain_id & 0x0F,
        private_key_slot: opts.private_key_slot,
        std_sig_size: 64,
        sn_source,
        cert_sn_dev_loc,
        issue_date_format: issue_fmt,
        expire_date_format: expire_fmt,
        tbs_cert_loc: loc(tbs.start, tbs.end() - tbs.start)?,
        expire_years,
        public_key_dev_loc: opts.public_key_loc.unwrap_or(pk_default),
        comp_cert_dev_loc: opts.comp_cert_loc.unwrap_or(comp_default),
        std_cert_elements: std,
        cert_elements: elements,
        template: der.to_vec(),
        ca_cert_def: opts.ca_cert_def.clone(),
    };
    def.as_def().map_err(FromCertError::Generated)?;
    Ok(def)
}

fn find_hex_run(s: &[u8], n: usize) -> Option<usize> {
    (0..=s.len().checked_sub(n)?).find(|&i| {
        s[i..i + n].iter().all(u8::is_ascii_hexdigit)
            && (i == 0 || !s[i - 1].is_ascii_hexdigit())
            && s.get(i + n).is_none_or(|c| !c.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// cryptoauthlib's real device certificate (`g_device_cert`), when the vectors are present.
    fn device_cert() -> Option<Vec<u8>> {
        let shared = std::env::var("KEYSTAMP_SHARED").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared").to_string()
        });
        let path = format!("{shared}/vectors/atcacert/tests_host_hw.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("SKIP: {path} not found (set KEYSTAMP_SHARED)");
            return None;
        };
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        hex::decode(v["globals"]["arrays"]["g_device_cert"].as_str()?).ok()
    }

    /// Checks a generated definition against its sample: valid, and the sample compresses.
    fn check(der: &[u8], opts: &FromCertOptions) {
        if let Ok(def) = from_cert(der, opts) {
            let d = def.as_def().expect("from_cert returns valid definitions");
            assert_eq!(d.template, der);
        }
    }

    #[test]
    fn stored_serial_numbers_need_a_location_and_get_the_dynamic_layout() {
        let Some(der) = device_cert() else { return };
        let mut opts = FromCertOptions::new("d", CertRole::Device);
        opts.sn_source = Some(SnSource::Stored);
        assert!(from_cert(&der, &opts).is_err());
        opts.cert_sn_loc = Some(DeviceLoc::data(9, 0, 10));
        let def = from_cert(&der, &opts).expect("stored");
        // The serial INTEGER content: `02 0a` at 13, content at 15 (reference §3.1).
        assert_eq!(
            def.std_cert_elements[StdElement::CertSn as usize],
            CertLoc::new(15, 10)
        );
        opts.sn_source = Some(SnSource::StoredDynamic);
        opts.cert_sn_loc = Some(DeviceLoc::data(9, 0, 11));
        let def = from_cert(&der, &opts).expect("dynamic");
        // STORED_DYNAMIC starts at the length byte and counts it.
        assert_eq!(
            def.std_cert_elements[StdElement::CertSn as usize],
            CertLoc::new(14, 11)
        );
        assert_eq!(der[14], 10);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            check(&bytes, &FromCertOptions::new("x", CertRole::Device));
        }

        #[test]
        fn mutated_certificates_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            signer in any::<bool>(),
            cn in any::<bool>(),
        ) {
            let Some(mut der) = device_cert() else { return Ok(()) };
            for (i, b) in edits {
                let at = i.index(der.len());
                der[at] = b;
            }
            let role = if signer { CertRole::Signer } else { CertRole::Device };
            let mut opts = FromCertOptions::new("x", role);
            if cn {
                opts.cn_serial = Some(HexCase::Lower);
            }
            check(&der, &opts);
            der.truncate(cut.index(der.len()));
            check(&der, &opts);
        }
    }
}
