//! Certificate and definition files, and the hex inputs around them: certificates (PEM or DER,
//! detected by content), definitions (`FILE` or `FILE#NAME`, cryptoauthlib JSON), device images
//! as JSON, public keys and byte strings in hex. Every error names the file or field.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use keystamp_certdef::split::{CONFIG_LEN, MAX_SLOT_LEN, OTP_LEN, SLOT_COUNT, slot_size};
use keystamp_certdef::{CertDef, CertDefBuf, DeviceImage, DeviceLoc, DeviceZone, parse_defs_json};
use serde::{Deserialize, Serialize};

/// Why a certificate, definition or hex input could not be read.
#[derive(Debug)]
pub enum InputError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file starting like PEM is not UTF-8 text.
    PemNotText(PathBuf),
    /// A PEM file without a `CERTIFICATE` block.
    NoCertificate(PathBuf),
    /// The PEM block does not decode.
    Pem {
        /// The file.
        path: PathBuf,
        /// The decoder's reason.
        source: der::pem::Error,
    },
    /// The PEM block holds something other than a certificate.
    PemLabel {
        /// The file.
        path: PathBuf,
        /// The block's label.
        label: String,
    },
    /// Neither PEM nor DER.
    NotACertificate(PathBuf),
    /// A definitions file does not parse.
    Definitions {
        /// The file.
        path: String,
        /// The parser's reason.
        source: serde_json::Error,
    },
    /// `FILE#NAME` names a definition the file does not have.
    NoSuchDefinition {
        /// The file.
        path: String,
        /// The name asked for.
        name: String,
        /// The names it has, comma-separated.
        have: String,
    },
    /// A file with several definitions, and no `#NAME` to pick one.
    WhichDefinition {
        /// The file.
        path: String,
        /// How many it holds.
        count: usize,
        /// Their names, comma-separated.
        have: String,
    },
    /// A definition that parses but is not valid.
    InvalidDefinition {
        /// The spec (`FILE` or `FILE#NAME`).
        spec: String,
        /// The definition's name, when the file holds several.
        name: Option<String>,
        /// The validator's reason.
        source: keystamp_certdef::Error,
    },
    /// Not hex.
    Hex {
        /// The field or flag.
        what: String,
        /// The decoder's reason.
        source: hex::FromHexError,
    },
    /// A public key that is not 64 bytes X‖Y.
    PublicKeyLength {
        /// The field or flag.
        what: String,
        /// Bytes given.
        len: usize,
    },
    /// More bytes than the field holds.
    TooLong {
        /// The field.
        what: String,
        /// Bytes given.
        len: usize,
        /// Bytes that fit.
        room: usize,
    },
    /// A slot number outside the chip's slots.
    NoSuchSlot(String),
    /// A device image JSON that does not parse.
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's reason.
        source: serde_json::Error,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "{}: {source}", path.display()),
            Self::PemNotText(p) => write!(f, "{}: PEM is not text", p.display()),
            Self::NoCertificate(p) => write!(f, "{}: no CERTIFICATE in the PEM", p.display()),
            Self::Pem { path, source } => write!(f, "{}: bad PEM: {source}", path.display()),
            Self::PemLabel { path, label } => {
                write!(f, "{}: PEM holds a {label}", path.display())
            }
            Self::NotACertificate(p) => write!(
                f,
                "{}: neither a PEM certificate nor DER (no SEQUENCE)",
                p.display()
            ),
            Self::Definitions { path, source } => write!(f, "{path}: {source}"),
            Self::NoSuchDefinition { path, name, have } => {
                write!(f, "{path}: no definition `{name}` (it has: {have})")
            }
            Self::WhichDefinition { path, count, have } => write!(
                f,
                "{path} holds {count} definitions ({have}): pick one with {path}#NAME"
            ),
            Self::InvalidDefinition {
                spec,
                name: None,
                source,
            } => write!(f, "{spec}: invalid definition: {source}"),
            Self::InvalidDefinition {
                spec,
                name: Some(name),
                source,
            } => write!(f, "{spec}: definition `{name}`: {source}"),
            Self::Hex { what, source } => write!(f, "{what}: not hex ({source})"),
            Self::PublicKeyLength { what, len } => write!(
                f,
                "{what}: a P-256 public key is 64 bytes X‖Y (128 hex digits), got {len} bytes"
            ),
            Self::TooLong { what, len, room } => {
                write!(f, "{what}: {len} bytes, at most {room} fit")
            }
            Self::NoSuchSlot(what) => write!(f, "{what}: slots are 0–{}", SLOT_COUNT - 1),
            Self::Json { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Pem { source, .. } => Some(source),
            Self::Definitions { source, .. } => Some(source),
            Self::InvalidDefinition { source, .. } => Some(source),
            Self::Hex { source, .. } => Some(source),
            Self::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The most keystamp reads from one input file (certificates, definitions, device images,
/// profiles, config zones: all a few KB). A larger file is refused before it is read, so a
/// wrong path (a log, a disk image) fails at once instead of filling memory.
pub const MAX_INPUT_BYTES: u64 = 1 << 20;

/// A whole input file of at most [`MAX_INPUT_BYTES`]; a larger one is an error of kind
/// [`std::io::ErrorKind::FileTooLarge`] that says so, raised before reading (and, for files
/// whose size the system does not know, such as pipes, after reading one byte too many).
pub fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let too_large = |size: Option<u64>| {
        let size = size.map_or_else(|| "more than 1 MiB".to_string(), |n| format!("{n} bytes"));
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "the file is {size}; keystamp reads at most {MAX_INPUT_BYTES} bytes (1 MiB) \
                 from an input file, and certificates, definitions and profiles are a few KB: \
                 is this the right file?"
            ),
        )
    };
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_INPUT_BYTES {
        return Err(too_large(Some(len)));
    }
    let mut data = Vec::new();
    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large(None));
    }
    Ok(data)
}

/// [`read_limited`] as UTF-8 text.
pub fn read_limited_text(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_limited(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A whole file (at most [`MAX_INPUT_BYTES`]).
pub fn read(path: &Path) -> Result<Vec<u8>, InputError> {
    read_limited(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_text(path: &str) -> Result<String, InputError> {
    read_limited_text(Path::new(path)).map_err(|source| InputError::Read {
        path: PathBuf::from(path),
        source,
    })
}

/// A certificate file: PEM (`CERTIFICATE`) or DER, detected by content.
pub fn load_cert(path: &Path) -> Result<Vec<u8>, InputError> {
    let bytes = read(path)?;
    let text_start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    if bytes.get(text_start.unwrap_or(0)) == Some(&b'-') {
        let text =
            std::str::from_utf8(&bytes).map_err(|_| InputError::PemNotText(path.to_path_buf()))?;
        let begin = text
            .find("-----BEGIN CERTIFICATE-----")
            .ok_or_else(|| InputError::NoCertificate(path.to_path_buf()))?;
        let (label, der) =
            der::pem::decode_vec(&text.as_bytes()[begin..]).map_err(|source| InputError::Pem {
                path: path.to_path_buf(),
                source,
            })?;
        if label != "CERTIFICATE" {
            return Err(InputError::PemLabel {
                path: path.to_path_buf(),
                label: label.to_string(),
            });
        }
        return Ok(der);
    }
    if bytes.first() != Some(&0x30) {
        return Err(InputError::NotACertificate(path.to_path_buf()));
    }
    Ok(bytes)
}

/// Loads one definition: `FILE` or `FILE#NAME` (a `{"defs": {...}}` file or one definition
/// object), validated.
pub fn load_def(spec: &str) -> Result<CertDefBuf, InputError> {
    let (path, name) = match spec.rsplit_once('#') {
        Some((p, n)) if !Path::new(spec).exists() => (p, Some(n)),
        _ => (spec, None),
    };
    let text = read_text(path)?;
    let mut defs = parse_defs_json(&text).map_err(|source| InputError::Definitions {
        path: path.to_string(),
        source,
    })?;
    let def = match name {
        Some(n) => {
            let i = defs.iter().position(|d| d.name == n).ok_or_else(|| {
                InputError::NoSuchDefinition {
                    path: path.to_string(),
                    name: n.to_string(),
                    have: names(&defs),
                }
            })?;
            defs.swap_remove(i)
        }
        None if defs.len() == 1 => defs.remove(0),
        None => {
            return Err(InputError::WhichDefinition {
                path: path.to_string(),
                count: defs.len(),
                have: names(&defs),
            });
        }
    };
    def.as_def()
        .map_err(|source| InputError::InvalidDefinition {
            spec: spec.to_string(),
            name: None,
            source,
        })?;
    Ok(def)
}

/// Loads every definition of `spec` (`FILE` — all of them — or `FILE#NAME`).
pub fn load_defs(spec: &str) -> Result<Vec<CertDefBuf>, InputError> {
    if spec.contains('#') && !Path::new(spec).exists() {
        return Ok(vec![load_def(spec)?]);
    }
    let text = read_text(spec)?;
    let defs = parse_defs_json(&text).map_err(|source| InputError::Definitions {
        path: spec.to_string(),
        source,
    })?;
    for d in &defs {
        d.as_def().map_err(|source| InputError::InvalidDefinition {
            spec: spec.to_string(),
            name: Some(d.name.clone()),
            source,
        })?;
    }
    Ok(defs)
}

fn names(defs: &[CertDefBuf]) -> String {
    defs.iter()
        .map(|d| d.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Definitions as a `{"defs": {name: def}}` document (the shape of cryptoauthlib's
/// `cert_defs.json`, which keeps the names).
pub fn defs_to_json(defs: &[&CertDefBuf]) -> String {
    // Built by hand so each definition keeps its field order (`type` first, template last).
    let mut s = String::from("{\n  \"defs\": {");
    for (i, d) in defs.iter().enumerate() {
        let name = serde_json::to_string(&d.name).unwrap_or_default();
        let body = d.to_json().replace('\n', "\n    ");
        let sep = if i + 1 < defs.len() { "," } else { "" };
        let _ = write!(s, "\n    {name}: {body}{sep}");
    }
    s.push_str("\n  }\n}\n");
    s
}

/// Hex with optional `0x`, spaces and colons.
pub fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>, InputError> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    let clean: String = s
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && *c != ':')
        .collect();
    hex::decode(&clean).map_err(|source| InputError::Hex {
        what: what.to_string(),
        source,
    })
}

/// A public key X‖Y: 64 bytes, or 65 with the uncompressed-point prefix 04.
pub fn parse_public_key(s: &str, what: &str) -> Result<[u8; 64], InputError> {
    let b = parse_hex(s, what)?;
    let xy = match b.as_slice() {
        [0x04, rest @ ..] if rest.len() == 64 => rest,
        b => b,
    };
    xy.try_into().map_err(|_| InputError::PublicKeyLength {
        what: what.to_string(),
        len: b.len(),
    })
}

/// The JSON form of a device image: every key optional, missing bytes zero.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceImageJson {
    /// Config zone (128 bytes; device serial number in bytes 0–3 and 8–12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// OTP zone (64 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    /// Data slots by number.
    #[serde(default)]
    pub slots: BTreeMap<u16, String>,
    /// Public keys (X‖Y, what GenKey returns) of private-key slots by number.
    #[serde(default)]
    pub public_keys: BTreeMap<u16, String>,
}

fn fill(dst: &mut [u8], hex_text: &str, what: &str) -> Result<(), InputError> {
    let b = parse_hex(hex_text, what)?;
    let room = dst.len();
    let d = dst.get_mut(..b.len()).ok_or_else(|| InputError::TooLong {
        what: what.to_string(),
        len: b.len(),
        room,
    })?;
    d.copy_from_slice(&b);
    Ok(())
}

impl DeviceImageJson {
    /// Reads a device image JSON file.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        let text = read_text(&path.to_string_lossy())?;
        serde_json::from_str(&text).map_err(|source| InputError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The image these bytes describe.
    pub fn to_image(&self) -> Result<DeviceImage, InputError> {
        let mut img = DeviceImage::default();
        if let Some(c) = &self.config {
            fill(&mut img.config, c, "config")?;
        }
        if let Some(o) = &self.otp {
            fill(&mut img.otp, o, "otp")?;
        }
        for (slot, h) in &self.slots {
            let what = format!("slots.{slot}");
            let s = img
                .slots
                .get_mut(*slot as usize)
                .ok_or_else(|| InputError::NoSuchSlot(what.clone()))?;
            fill(s, h, &what)?;
        }
        for (slot, h) in &self.public_keys {
            let what = format!("public_keys.{slot}");
            let k = img
                .public_keys
                .get_mut(*slot as usize)
                .ok_or_else(|| InputError::NoSuchSlot(what.clone()))?;
            *k = Some(parse_public_key(h, &what)?);
        }
        Ok(img)
    }

    /// An image's JSON: config and OTP, the slots `def` uses (each at least its ATECC608
    /// size), and the known public keys.
    pub fn from_image(img: &DeviceImage, def: &CertDef<'_>) -> Self {
        let mut used: BTreeMap<u16, usize> = BTreeMap::new();
        let mut note = |l: &DeviceLoc| {
            if l.is_present() && l.zone == DeviceZone::Data && !l.is_genkey {
                let e = used.entry(l.slot).or_insert(slot_size(l.slot));
                *e = (*e).max(l.end()).min(MAX_SLOT_LEN);
            }
        };
        note(&def.comp_cert_dev_loc);
        note(&def.cert_sn_dev_loc);
        note(&def.public_key_dev_loc);
        for (l, _, _) in def.cert_elements.iter_locs() {
            note(&l);
        }
        let slots = used
            .into_iter()
            .filter_map(|(slot, len)| {
                let bytes = img.slots.get(slot as usize)?.get(..len)?;
                Some((slot, hex::encode(bytes)))
            })
            .collect();
        let public_keys = img
            .public_keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Some((i as u16, hex::encode(k.as_ref()?))))
            .collect();
        DeviceImageJson {
            config: Some(hex::encode(&img.config[..CONFIG_LEN])),
            otp: Some(hex::encode(&img.otp[..OTP_LEN])),
            slots,
            public_keys,
        }
    }
}
