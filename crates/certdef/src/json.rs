//! Host side (`std` feature): the owned [`CertDefBuf`] and the cryptoauthlib-shaped JSON of
//! `cert_defs.json` — field names as in `atcacert_def_t`, enum names as in cryptoauthlib
//! (integers accepted too), `std_cert_elements` as an object or a list of 8.

use crate::Reason;
use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::def::{ELEMENT_ID_MAX, Name, STD_ELEMENT_COUNT};
use crate::{
    CertDef, CertElement, CertElements, CertLoc, CertType, DateFormat, DeviceLoc, DeviceZone,
    Error, SnSource, StdElement, Transform,
};

/// An owned certificate definition (everything `atcacert_def_t` holds), convertible to and from
/// the borrowed [`CertDef`] and serialisable as cryptoauthlib-shaped JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDefBuf {
    /// Name (the key in a definitions file; not part of a single definition's JSON object).
    pub name: String,
    /// Certificate type.
    pub cert_type: CertType,
    /// 4-bit template id.
    pub template_id: u8,
    /// 4-bit chain id.
    pub chain_id: u8,
    /// Device private key slot.
    pub private_key_slot: u16,
    /// Signature size; 0 or 64 (P-256) — kept for JSON fidelity.
    pub std_sig_size: u16,
    /// Serial-number source.
    pub sn_source: SnSource,
    /// Stored serial-number location.
    pub cert_sn_dev_loc: DeviceLoc,
    /// Issue date format.
    pub issue_date_format: DateFormat,
    /// Expire date format.
    pub expire_date_format: DateFormat,
    /// TBS location.
    pub tbs_cert_loc: CertLoc,
    /// Default validity in years (0 = no expiration).
    pub expire_years: u8,
    /// Public key location.
    pub public_key_dev_loc: DeviceLoc,
    /// Compressed certificate location.
    pub comp_cert_dev_loc: DeviceLoc,
    /// Standard element locations.
    pub std_cert_elements: [CertLoc; STD_ELEMENT_COUNT],
    /// Custom elements.
    pub cert_elements: Vec<CertElement>,
    /// Template certificate bytes.
    pub template: Vec<u8>,
    /// Name of the CA's definition.
    pub ca_cert_def: Option<String>,
}

impl CertDefBuf {
    /// The borrowed view, validated (P-256 only: `std_sig_size` must be 0 or 64).
    pub fn as_def(&self) -> Result<CertDef<'_>, Error> {
        if self.std_sig_size != 0 && self.std_sig_size != 64 {
            return Err(Error::Unsupported(Reason::NonP256Signature));
        }
        let def = self.as_def_unchecked();
        def.validate()?;
        Ok(def)
    }

    /// The borrowed view without validation (the codec still checks every access).
    pub fn as_def_unchecked(&self) -> CertDef<'_> {
        CertDef {
            cert_type: self.cert_type,
            template_id: self.template_id,
            chain_id: self.chain_id,
            private_key_slot: self.private_key_slot,
            sn_source: self.sn_source,
            cert_sn_dev_loc: self.cert_sn_dev_loc,
            issue_date_format: self.issue_date_format,
            expire_date_format: self.expire_date_format,
            tbs_cert_loc: self.tbs_cert_loc,
            expire_years: self.expire_years,
            public_key_dev_loc: self.public_key_dev_loc,
            comp_cert_dev_loc: self.comp_cert_dev_loc,
            std_cert_elements: self.std_cert_elements,
            cert_elements: CertElements::Slice(&self.cert_elements),
            template: &self.template,
            name: Name::new(&self.name),
            ca_cert_def: self.ca_cert_def.as_deref().map(Name::new),
        }
    }

    /// An owned copy of `def`.
    pub fn from_def(def: &CertDef<'_>) -> Self {
        CertDefBuf {
            name: def.name.as_str().to_string(),
            cert_type: def.cert_type,
            template_id: def.template_id,
            chain_id: def.chain_id,
            private_key_slot: def.private_key_slot,
            std_sig_size: 0,
            sn_source: def.sn_source,
            cert_sn_dev_loc: def.cert_sn_dev_loc,
            issue_date_format: def.issue_date_format,
            expire_date_format: def.expire_date_format,
            tbs_cert_loc: def.tbs_cert_loc,
            expire_years: def.expire_years,
            public_key_dev_loc: def.public_key_dev_loc,
            comp_cert_dev_loc: def.comp_cert_dev_loc,
            std_cert_elements: def.std_cert_elements,
            cert_elements: def.cert_elements.iter().collect(),
            template: def.template.to_vec(),
            ca_cert_def: def.ca_cert_def.map(|n| n.as_str().to_string()),
        }
    }

    /// Parses one definition object.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// One definition object, pretty-printed.
    pub fn to_json(&self) -> String {
        // Serialising plain data to a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Reads a definitions file: either `{"defs": {"<name>": {...}, ...}}` (the shape of
/// `cert_defs.json`) or a single definition object (named `""`).
pub fn parse_defs_json(s: &str) -> Result<Vec<CertDefBuf>, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(s)?;
    if let Some(defs) = v.get("defs").and_then(|d| d.as_object()) {
        let mut out = Vec::with_capacity(defs.len());
        for (name, d) in defs {
            let mut def = CertDefBuf::deserialize(d)?;
            def.name = name.clone();
            out.push(def);
        }
        Ok(out)
    } else {
        Ok(vec![CertDefBuf::deserialize(&v)?])
    }
}

// ---- enums: cryptoauthlib names, integers accepted ----

trait CEnum: Sized + Copy {
    const WHAT: &'static str;
    fn from_value(v: u8) -> Result<Self, Error>;
    fn c_name(self) -> &'static str;
    fn from_c_name(s: &str) -> Option<Self>;
}

macro_rules! impl_cenum {
    ($($t:ty),*) => {$(
        impl CEnum for $t {
            const WHAT: &'static str = stringify!($t);
            fn from_value(v: u8) -> Result<Self, Error> { <$t>::from_value(v) }
            fn c_name(self) -> &'static str { <$t>::c_name(self) }
            fn from_c_name(s: &str) -> Option<Self> { <$t>::from_c_name(s) }
        }
    )*};
}
impl_cenum!(CertType, SnSource, DateFormat, DeviceZone, Transform);

#[derive(Clone, Copy)]
struct E<T>(T);

impl<T: CEnum> Serialize for E<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.c_name())
    }
}

impl<'de, T: CEnum> Deserialize<'de> for E<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Num(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Name(n) => T::from_c_name(&n)
                .map(E)
                .ok_or_else(|| de::Error::custom(format!("unknown {} `{n}`", T::WHAT))),
            Raw::Num(v) => u8::try_from(v)
                .ok()
                .and_then(|v| T::from_value(v).ok())
                .map(E)
                .ok_or_else(|| de::Error::custom(format!("invalid {} value {v}", T::WHAT))),
        }
    }
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(untagged)]
enum Flag {
    Int(u8),
    Bool(bool),
}

impl Flag {
    fn get<E: de::Error>(self) -> Result<bool, E> {
        match self {
            Flag::Int(0) | Flag::Bool(false) => Ok(false),
            Flag::Int(1) | Flag::Bool(true) => Ok(true),
            Flag::Int(v) => Err(E::custom(format!("is_genkey must be 0 or 1, not {v}"))),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a device location: a JSON object with zone, slot, is_genkey, offset, count")]
struct JDeviceLoc {
    zone: E<DeviceZone>,
    #[serde(default)]
    slot: u16,
    #[serde(default = "no_flag")]
    is_genkey: Flag,
    #[serde(default)]
    offset: u16,
    #[serde(default)]
    count: u16,
}

fn no_flag() -> Flag {
    Flag::Int(0)
}

impl JDeviceLoc {
    fn to<Er: de::Error>(&self) -> Result<DeviceLoc, Er> {
        Ok(DeviceLoc {
            zone: self.zone.0,
            slot: self.slot,
            is_genkey: self.is_genkey.get()?,
            offset: self.offset,
            count: self.count,
        })
    }
    fn from(l: &DeviceLoc) -> Self {
        JDeviceLoc {
            zone: E(l.zone),
            slot: l.slot,
            is_genkey: Flag::Int(l.is_genkey as u8),
            offset: l.offset,
            count: l.count,
        }
    }
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a certificate location: a JSON object with offset and count")]
struct JCertLoc {
    offset: u16,
    count: u16,
}

impl From<JCertLoc> for CertLoc {
    fn from(l: JCertLoc) -> Self {
        CertLoc {
            offset: l.offset,
            count: l.count,
        }
    }
}

impl From<CertLoc> for JCertLoc {
    fn from(l: CertLoc) -> Self {
        JCertLoc {
            offset: l.offset,
            count: l.count,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JStdElements {
    List(Vec<JCertLoc>),
    Map(BTreeMap<String, JCertLoc>),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a certificate element: a JSON object with id, device_loc, cert_loc")]
struct JElement {
    id: String,
    device_loc: JDeviceLoc,
    cert_loc: JCertLoc,
    #[serde(default)]
    transforms: Vec<E<Transform>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(
    expecting = "a certificate definition: a JSON object (as `keystamp certdef from-cert` writes)"
)]
struct JDef {
    #[serde(rename = "type")]
    cert_type: E<CertType>,
    template_id: u8,
    chain_id: u8,
    #[serde(default)]
    private_key_slot: u16,
    #[serde(default)]
    std_sig_size: u16,
    sn_source: E<SnSource>,
    cert_sn_dev_loc: JDeviceLoc,
    issue_date_format: E<DateFormat>,
    expire_date_format: E<DateFormat>,
    tbs_cert_loc: JCertLoc,
    expire_years: u8,
    public_key_dev_loc: JDeviceLoc,
    comp_cert_dev_loc: JDeviceLoc,
    #[serde(serialize_with = "ser_std", deserialize_with = "de_std")]
    std_cert_elements: [CertLoc; STD_ELEMENT_COUNT],
    #[serde(default)]
    cert_elements: Vec<JElement>,
    #[serde(default)]
    ca_cert_def: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert_template_size: Option<u16>,
    cert_template: String,
}

fn ser_std<S: Serializer>(v: &[CertLoc; STD_ELEMENT_COUNT], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(STD_ELEMENT_COUNT))?;
    for e in StdElement::ALL {
        m.serialize_entry(e.json_name(), &JCertLoc::from(v[*e as usize]))?;
    }
    m.end()
}

fn de_std<'de, D: Deserializer<'de>>(d: D) -> Result<[CertLoc; STD_ELEMENT_COUNT], D::Error> {
    let mut out = [CertLoc::default(); STD_ELEMENT_COUNT];
    match JStdElements::deserialize(d)? {
        JStdElements::List(l) => {
            if l.len() != STD_ELEMENT_COUNT {
                return Err(de::Error::custom(format!(
                    "std_cert_elements: expected a list of 8, got {}",
                    l.len()
                )));
            }
            for (o, l) in out.iter_mut().zip(l) {
                *o = l.into();
            }
        }
        JStdElements::Map(m) => {
            for (k, l) in m {
                let e = StdElement::ALL
                    .iter()
                    .find(|e| e.json_name() == k || e.c_name() == k)
                    .ok_or_else(|| {
                        de::Error::custom(format!("unknown std_cert_elements key `{k}`"))
                    })?;
                out[*e as usize] = l.into();
            }
        }
    }
    Ok(out)
}

fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return Err("cert_template: odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("cert_template: bad hex at {i}"))
        })
        .collect()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl TryFrom<JDef> for CertDefBuf {
    type Error = String;
    fn try_from(j: JDef) -> Result<Self, String> {
        type Er = serde_json::Error;
        let template = hex_decode(&j.cert_template)?;
        if let Some(n) = j.cert_template_size
            && n as usize != template.len()
        {
            return Err(format!(
                "cert_template_size {n} does not match the template's {} bytes",
                template.len()
            ));
        }
        let mut cert_elements = Vec::with_capacity(j.cert_elements.len());
        for e in &j.cert_elements {
            let mut id = heapless::String::<ELEMENT_ID_MAX>::new();
            id.push_str(&e.id)
                .map_err(|_| format!("element id `{}` longer than {ELEMENT_ID_MAX} bytes", e.id))?;
            if e.transforms.len() > 2 {
                return Err(format!("element `{}`: at most 2 transforms", e.id));
            }
            let mut transforms = [Transform::None; 2];
            for (t, v) in transforms.iter_mut().zip(&e.transforms) {
                *t = v.0;
            }
            cert_elements.push(CertElement {
                id,
                device_loc: e.device_loc.to::<Er>().map_err(|e| e.to_string())?,
                cert_loc: e.cert_loc.into(),
                transforms,
            });
        }
        Ok(CertDefBuf {
            name: String::new(),
            cert_type: j.cert_type.0,
            template_id: j.template_id,
            chain_id: j.chain_id,
            private_key_slot: j.private_key_slot,
            std_sig_size: j.std_sig_size,
            sn_source: j.sn_source.0,
            cert_sn_dev_loc: j.cert_sn_dev_loc.to::<Er>().map_err(|e| e.to_string())?,
            issue_date_format: j.issue_date_format.0,
            expire_date_format: j.expire_date_format.0,
            tbs_cert_loc: j.tbs_cert_loc.into(),
            expire_years: j.expire_years,
            public_key_dev_loc: j.public_key_dev_loc.to::<Er>().map_err(|e| e.to_string())?,
            comp_cert_dev_loc: j.comp_cert_dev_loc.to::<Er>().map_err(|e| e.to_string())?,
            std_cert_elements: j.std_cert_elements,
            cert_elements,
            template,
            ca_cert_def: j.ca_cert_def,
        })
    }
}

impl From<&CertDefBuf> for JDef {
    fn from(d: &CertDefBuf) -> Self {
        JDef {
            cert_type: E(d.cert_type),
            template_id: d.template_id,
            chain_id: d.chain_id,
            private_key_slot: d.private_key_slot,
            std_sig_size: d.std_sig_size,
            sn_source: E(d.sn_source),
            cert_sn_dev_loc: JDeviceLoc::from(&d.cert_sn_dev_loc),
            issue_date_format: E(d.issue_date_format),
            expire_date_format: E(d.expire_date_format),
            tbs_cert_loc: d.tbs_cert_loc.into(),
            expire_years: d.expire_years,
            public_key_dev_loc: JDeviceLoc::from(&d.public_key_dev_loc),
            comp_cert_dev_loc: JDeviceLoc::from(&d.comp_cert_dev_loc),
            std_cert_elements: d.std_cert_elements,
            cert_elements: d
                .cert_elements
                .iter()
                .map(|e| JElement {
                    id: e.id.as_str().to_string(),
                    device_loc: JDeviceLoc::from(&e.device_loc),
                    cert_loc: e.cert_loc.into(),
                    transforms: e.transforms.iter().map(|t| E(*t)).collect(),
                })
                .collect(),
            ca_cert_def: d.ca_cert_def.clone(),
            cert_template_size: Some(d.template.len() as u16),
            cert_template: hex_encode(&d.template),
        }
    }
}

impl Serialize for CertDefBuf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        JDef::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for CertDefBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CertDefBuf::try_from(JDef::deserialize(d)?).map_err(de::Error::custom)
    }
}
