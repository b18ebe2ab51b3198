//! Microchip's pre-provisioned certificates: the definitions of the Trust&GO / TrustFLEX /
//! TNG-LoRa signer and device certificates (the layouts cryptoauthlib ships as `tngtls`,
//! `tflxtls` and `tnglora` definitions) in keystamp's certdef form, and a **test** "Microchip"
//! certificate authority that stands in for Microchip's real one in simulation.
//!
//! The definitions are built here from the certificates' documented shape — subject and issuer
//! names, validity, extensions and where each part comes from on the chip (reference
//! `atecc608.md` §8, `atcacert.md` §3) — by writing a sample certificate of that shape and
//! generating the definition from it ([`crate::pki::from_cert`]). Nothing of Microchip's source
//! is copied: `tests/microchip_defs.rs` compares every definition with the one in cryptoauthlib's
//! own library at test time (the element tables, and the templates outside the per-device
//! elements, whose placeholder values are arbitrary).

use std::time::SystemTime;

use keystamp_certdef::{
    CertDefBuf, CertElement, CertLoc, DateTime, DeviceLoc, DeviceZone, SnSource, StdElement,
    Transform,
};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use sha2::{Digest, Sha256};

use crate::pki::from_cert::{CertRole, FromCertError, FromCertOptions, HexCase, from_cert};
use crate::pki::issue::{DeviceCertRequest, IssueError, Issued, SignError, issue_device_cert_with};

/// The organization in every Microchip certificate.
pub const ORGANIZATION: &str = "Microchip Technology Inc";
/// The root CA's common name, as the signer certificates' issuer names it.
pub const ROOT_CN: &str = "Crypto Authentication Root CA 002";
/// The signer CN before its 4 hex digits (the signer id).
pub const SIGNER_CN_PREFIX: &str = "Crypto Authentication Signer ";

/// One of Microchip's certificate definitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MicrochipDef {
    /// Trust&GO signer (`tngtls_cert_def_1_signer`): compressed in slot 12, key in slot 11.
    TngtlsSigner,
    /// Trust&GO device, CN `<serial> ATECC` (`tngtls_cert_def_2_device`, legacy parts).
    TngtlsDevice2,
    /// Trust&GO device, CN `sn<serial>` and an EUI-48 name (`tngtls_cert_def_3_device`).
    TngtlsDevice3,
    /// TrustFLEX device, CN `sn<serial>` (`tflxtls_cert_def_4_device`).
    TflxtlsDevice4,
    /// TNG-LoRa signer (`tnglora_cert_def_1_signer`): key and certificate in slot 8.
    TngloraSigner,
    /// TNG-LoRa device, CN `<serial> ATECC` (`tnglora_cert_def_2_device`), key in slot 1.
    TngloraDevice2,
    /// TNG-LoRa device, CN `sn<serial>` and an EUI-64 name (`tnglora_cert_def_4_device`).
    TngloraDevice4,
}

/// Where a device certificate's CN puts the chip serial number.
#[derive(Clone, Copy)]
enum Cn {
    /// `<18 hex digits> ATECC`.
    SerialAtecc,
    /// `sn<18 hex digits>`.
    SnSerial,
}

/// The subject alternative name `DirName: serialNumber=<prefix><hex>` and where its hex comes from.
#[derive(Clone, Copy)]
struct Eui {
    id: &'static str,
    prefix: &'static str,
    loc: DeviceLoc,
}

impl MicrochipDef {
    /// Every definition.
    pub const ALL: [MicrochipDef; 7] = [
        MicrochipDef::TngtlsSigner,
        MicrochipDef::TngtlsDevice2,
        MicrochipDef::TngtlsDevice3,
        MicrochipDef::TflxtlsDevice4,
        MicrochipDef::TngloraSigner,
        MicrochipDef::TngloraDevice2,
        MicrochipDef::TngloraDevice4,
    ];

    /// The definition's name in keystamp (its cryptoauthlib variable without `g_`/`cert_def_`).
    pub fn name(self) -> &'static str {
        match self {
            MicrochipDef::TngtlsSigner => "tngtls_1_signer",
            MicrochipDef::TngtlsDevice2 => "tngtls_2_device",
            MicrochipDef::TngtlsDevice3 => "tngtls_3_device",
            MicrochipDef::TflxtlsDevice4 => "tflxtls_4_device",
            MicrochipDef::TngloraSigner => "tnglora_1_signer",
            MicrochipDef::TngloraDevice2 => "tnglora_2_device",
            MicrochipDef::TngloraDevice4 => "tnglora_4_device",
        }
    }

    /// The signer definition a device definition's issuer is described by.
    pub fn signer(self) -> MicrochipDef {
        match self {
            MicrochipDef::TngloraSigner
            | MicrochipDef::TngloraDevice2
            | MicrochipDef::TngloraDevice4 => MicrochipDef::TngloraSigner,
            _ => MicrochipDef::TngtlsSigner,
        }
    }

    /// The device definition a Trust&GO / TrustFLEX / TNG-LoRa part uses, from the ASCII code
    /// in its OTP bytes 0–7 (reference §8); `None` for an unknown code.
    pub fn for_otp_code(code: &[u8]) -> Option<MicrochipDef> {
        match code.get(..8)? {
            b"wdNxAjae" | b"Rsuy5YJh" => Some(MicrochipDef::TngtlsDevice2),
            b"KQp2ZkD8" | b"x6tjuZMy" => Some(MicrochipDef::TngtlsDevice3),
            b"MKMwyhP1" => Some(MicrochipDef::TflxtlsDevice4),
            b"BxZvm6q2" => Some(MicrochipDef::TngloraDevice2),
            b"jsMu7iYO" | b"09qJNxI3" => Some(MicrochipDef::TngloraDevice4),
            _ => None,
        }
    }

    fn is_signer(self) -> bool {
        matches!(
            self,
            MicrochipDef::TngtlsSigner | MicrochipDef::TngloraSigner
        )
    }

    fn template_id(self) -> u8 {
        match self {
            MicrochipDef::TngtlsSigner | MicrochipDef::TngloraSigner => 1,
            MicrochipDef::TngtlsDevice2 | MicrochipDef::TngloraDevice2 => 2,
            MicrochipDef::TngtlsDevice3 | MicrochipDef::TflxtlsDevice4 => 3,
            MicrochipDef::TngloraDevice4 => 4,
        }
    }

    fn cn(self) -> Cn {
        match self {
            MicrochipDef::TngtlsDevice2 | MicrochipDef::TngloraDevice2 => Cn::SerialAtecc,
            _ => Cn::SnSerial,
        }
    }

    fn eui(self) -> Option<Eui> {
        match self {
            // TNGTLS (608B) keeps its EUI-48 as 12 ASCII hex digits in slot 5 (§7.4).
            MicrochipDef::TngtlsDevice3 => Some(Eui {
                id: "EUI-48",
                prefix: "eui48_",
                loc: DeviceLoc::data(5, 0, 12),
            }),
            MicrochipDef::TngloraDevice4 => Some(Eui {
                id: "EUI-64",
                prefix: "eui64_",
                loc: DeviceLoc::data(10, 0, 16),
            }),
            _ => None,
        }
    }

    /// Where the subject public key is on the chip.
    fn public_key_loc(self) -> DeviceLoc {
        match self {
            MicrochipDef::TngtlsSigner => DeviceLoc::data(11, 0, 72),
            MicrochipDef::TngloraSigner => DeviceLoc::data(8, 0, 72),
            MicrochipDef::TngloraDevice2 | MicrochipDef::TngloraDevice4 => DeviceLoc::genkey(1),
            _ => DeviceLoc::genkey(0),
        }
    }

    /// Where the compressed certificate is on the chip.
    fn comp_cert_loc(self) -> DeviceLoc {
        match self {
            MicrochipDef::TngtlsSigner => DeviceLoc::data(12, 0, 72),
            MicrochipDef::TngloraSigner => DeviceLoc::data(8, 144, 72),
            MicrochipDef::TngloraDevice2 | MicrochipDef::TngloraDevice4 => {
                DeviceLoc::data(8, 72, 72)
            }
            _ => DeviceLoc::data(10, 0, 72),
        }
    }

    /// Validity in whole years: the signers 31, the devices 28.
    fn expire_years(self) -> u16 {
        if self.is_signer() { 31 } else { 28 }
    }

    /// The definition in keystamp's form.
    pub fn definition(self) -> Result<CertDefBuf, FromCertError> {
        let der = sample_certificate(self);
        let role = if self.is_signer() {
            CertRole::Signer
        } else {
            CertRole::Device
        };
        let mut opts = FromCertOptions::new(self.name(), role);
        opts.sn_source = Some(SnSource::PubKeyHash);
        opts.template_id = self.template_id();
        opts.public_key_loc = Some(self.public_key_loc());
        opts.comp_cert_loc = Some(self.comp_cert_loc());
        opts.cn_serial = (!self.is_signer()).then_some(HexCase::Upper);
        opts.ca_cert_def = (!self.is_signer()).then(|| self.signer().name().to_string());
        let mut def = from_cert(&der, &opts)?;
        // cryptoauthlib's names for the serial-number elements, and its signature count (the
        // signature size, informational for X.509).
        for e in &mut def.cert_elements {
            let id = match e.device_loc.offset {
                0 => "SN03",
                _ => "SN48",
            };
            e.id = heapless::String::try_from(id).unwrap_or_default();
        }
        def.std_cert_elements[StdElement::Signature as usize].count = 64;
        if self.is_signer() {
            // The signer's whole subject name, recorded as an element with no device location:
            // rebuilds keep the template's bytes there.
            if let Some((at, len)) = subject_name(&der) {
                def.cert_elements
                    .push(element("subject", DeviceLoc::NONE, at, len));
            }
        }
        if let Some(eui) = self.eui()
            && let Some(at) = find(&der, eui.prefix.as_bytes())
        {
            let at = at + eui.prefix.len();
            def.cert_elements
                .push(element(eui.id, eui.loc, at, usize::from(eui.loc.count)));
        }
        Ok(def)
    }
}

fn element(id: &str, device_loc: DeviceLoc, at: usize, len: usize) -> CertElement {
    CertElement {
        id: heapless::String::try_from(id).unwrap_or_default(),
        device_loc,
        cert_loc: CertLoc::new(at as u16, len as u16),
        transforms: [Transform::None, Transform::None],
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ------------------------------------------------------------------------------------------ DER

/// Tag ‖ definite length ‖ content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

const OID_ECDSA_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_PRIME256V1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_O: &[u8] = &[0x55, 0x04, 0x0A];
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SERIAL_NUMBER: &[u8] = &[0x55, 0x04, 0x05];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x0F];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1D, 0x13];
const OID_SKI: &[u8] = &[0x55, 0x1D, 0x0E];
const OID_AKI: &[u8] = &[0x55, 0x1D, 0x23];
const OID_SAN: &[u8] = &[0x55, 0x1D, 0x11];
/// Netscape comment: how the test root says what it is in every certificate viewer.
const OID_NS_COMMENT: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xF8, 0x42, 0x01, 0x0D];

fn alg_ecdsa_sha256() -> Vec<u8> {
    seq(&[&tlv(0x06, OID_ECDSA_SHA256)])
}

/// `O=Microchip Technology Inc, CN=<cn>` (UTF8String values).
fn name(cn: &str) -> Vec<u8> {
    let rdn =
        |oid: &[u8], value: &str| tlv(0x31, &seq(&[&tlv(0x06, oid), &tlv(0x0C, value.as_bytes())]));
    seq(&[&rdn(OID_O, ORGANIZATION), &rdn(OID_CN, cn)])
}

fn spki(public_key: &[u8; 64]) -> Vec<u8> {
    let mut bits = vec![0x00, 0x04];
    bits.extend_from_slice(public_key);
    seq(&[
        &seq(&[&tlv(0x06, OID_EC_PUBLIC_KEY), &tlv(0x06, OID_PRIME256V1)]),
        &tlv(0x03, &bits),
    ])
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let crit = if critical {
        tlv(0x01, &[0xFF])
    } else {
        Vec::new()
    };
    seq(&[&tlv(0x06, oid), &crit, &tlv(0x04, value)])
}

/// `YYMMDDhh0000Z` / `YYYYMMDDhh0000Z`.
fn utc_time(year: u16, month: u8, day: u8, hour: u8) -> Vec<u8> {
    let text = format!("{:02}{month:02}{day:02}{hour:02}0000Z", year % 100);
    tlv(0x17, text.as_bytes())
}

fn generalized_time(year: u16, month: u8, day: u8, hour: u8) -> Vec<u8> {
    let text = format!("{year:04}{month:02}{day:02}{hour:02}0000Z");
    tlv(0x18, text.as_bytes())
}

/// DER INTEGER of an unsigned big-endian number.
fn uint(bytes: &[u8]) -> Vec<u8> {
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    let mut v = bytes[first..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    tlv(0x02, &v)
}

/// The signatureValue BIT STRING of an ECDSA signature R ‖ S.
fn signature_value(sig: &[u8; 64]) -> Vec<u8> {
    let body = seq(&[&uint(&sig[..32]), &uint(&sig[32..])]);
    let mut bits = vec![0x00];
    bits.extend(body);
    tlv(0x03, &bits)
}

/// Everything a Microchip-shaped certificate varies in.
struct Shape<'a> {
    serial: &'a [u8],
    issuer: Vec<u8>,
    subject: Vec<u8>,
    issue: (u16, u8, u8, u8),
    expire_years: u16,
    public_key: &'a [u8; 64],
    extensions: Vec<Vec<u8>>,
}

fn tbs(shape: &Shape<'_>) -> Vec<u8> {
    let (y, m, d, h) = shape.issue;
    let validity = seq(&[
        &utc_time(y, m, d, h),
        &generalized_time(y + shape.expire_years, m, d, h),
    ]);
    let exts: Vec<&[u8]> = shape.extensions.iter().map(Vec::as_slice).collect();
    seq(&[
        &tlv(0xA0, &tlv(0x02, &[0x02])),
        &tlv(0x02, shape.serial),
        &alg_ecdsa_sha256(),
        &shape.issuer,
        &validity,
        &shape.subject,
        &spki(shape.public_key),
        &tlv(0xA3, &seq(&exts)),
    ])
}

fn certificate(tbs: &[u8], sig: &[u8; 64]) -> Vec<u8> {
    seq(&[tbs, &alg_ecdsa_sha256(), &signature_value(sig)])
}

fn key_usage(bits: u8, unused: u8) -> Vec<u8> {
    extension(OID_KEY_USAGE, true, &tlv(0x03, &[unused, bits]))
}

fn ca_extensions(ski: &[u8; 20], aki: &[u8; 20]) -> Vec<Vec<u8>> {
    vec![
        // digitalSignature, keyCertSign, cRLSign.
        key_usage(0x86, 1),
        // CA, path length 0.
        extension(
            OID_BASIC_CONSTRAINTS,
            true,
            &seq(&[&tlv(0x01, &[0xFF]), &tlv(0x02, &[0x00])]),
        ),
        extension(OID_SKI, false, &tlv(0x04, ski)),
        extension(OID_AKI, false, &seq(&[&tlv(0x80, aki)])),
    ]
}

/// The sample certificate a definition is generated from: its shape with placeholder values
/// (serial 0x40…, keys and key ids of a fixed pattern, signature R with its high bit set so its
/// INTEGER carries a leading zero, as most do).
fn sample_certificate(def: MicrochipDef) -> Vec<u8> {
    let serial = [0x40u8; 16];
    let public_key = [0x11u8; 64];
    let (ski, aki) = ([0x22u8; 20], [0x33u8; 20]);
    let signer_cn = format!("{SIGNER_CN_PREFIX}0000");
    let mut sig = [0x44u8; 64];
    sig[0] = 0x84;
    let shape = if def.is_signer() {
        Shape {
            serial: &serial,
            issuer: name(ROOT_CN),
            subject: name(&signer_cn),
            issue: (2020, 1, 1, 0),
            expire_years: def.expire_years(),
            public_key: &public_key,
            extensions: ca_extensions(&ski, &aki),
        }
    } else {
        let serial_hex = "0123000000000000EE";
        let cn = match def.cn() {
            Cn::SerialAtecc => format!("{serial_hex} ATECC"),
            Cn::SnSerial => format!("sn{serial_hex}"),
        };
        let mut extensions = Vec::new();
        if let Some(eui) = def.eui() {
            let value = format!("{}{}", eui.prefix, "0".repeat(usize::from(eui.loc.count)));
            let dir_name = seq(&[&tlv(
                0x31,
                &seq(&[&tlv(0x06, OID_SERIAL_NUMBER), &tlv(0x13, value.as_bytes())]),
            )]);
            extensions.push(extension(OID_SAN, false, &seq(&[&tlv(0xA4, &dir_name)])));
        }
        // CA false (the default, so an empty SEQUENCE); digitalSignature, keyAgreement.
        extensions.push(extension(OID_BASIC_CONSTRAINTS, true, &seq(&[])));
        extensions.push(key_usage(0x88, 3));
        extensions.push(extension(OID_SKI, false, &tlv(0x04, &ski)));
        extensions.push(extension(OID_AKI, false, &seq(&[&tlv(0x80, &aki)])));
        Shape {
            serial: &serial,
            issuer: name(&signer_cn),
            subject: name(&cn),
            issue: (2020, 1, 1, 0),
            expire_years: def.expire_years(),
            public_key: &public_key,
            extensions,
        }
    };
    certificate(&tbs(&shape), &sig)
}

/// Offset and length of the subject Name in a certificate this module built.
fn subject_name(der: &[u8]) -> Option<(usize, usize)> {
    // cert SEQ header (4) + TBS SEQ header (4) + version (5) + serial, alg, issuer, validity.
    let mut at = 8 + 5;
    for _ in 0..4 {
        at += der_len(der, at)?;
    }
    Some((at, der_len(der, at)?))
}

/// Total length (header + content) of the TLV at `at`.
fn der_len(der: &[u8], at: usize) -> Option<usize> {
    let first = *der.get(at + 1)?;
    match first {
        0..=0x7F => Some(2 + usize::from(first)),
        0x81 => Some(3 + usize::from(*der.get(at + 2)?)),
        0x82 => Some(4 + (usize::from(*der.get(at + 2)?) << 8 | usize::from(*der.get(at + 3)?))),
        _ => None,
    }
}

// ----------------------------------------------------------------------------------- test CA

/// Why a Microchip-shaped certificate could not be made.
#[derive(Debug)]
pub enum MicrochipError {
    /// A definition could not be generated from its sample certificate.
    Definition(FromCertError),
    /// Issuing a certificate failed.
    Issue(IssueError),
}

impl std::fmt::Display for MicrochipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MicrochipError::Definition(e) => write!(f, "Microchip certificate definition: {e}"),
            MicrochipError::Issue(e) => write!(f, "Microchip-shaped certificate: {e}"),
        }
    }
}

impl std::error::Error for MicrochipError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MicrochipError::Definition(e) => Some(e),
            MicrochipError::Issue(e) => Some(e),
        }
    }
}

/// A **test** stand-in for Microchip's certificate authority: a root named like Microchip's
/// ("Crypto Authentication Root CA 002", so the signer certificates' issuer name matches) but
/// with a key derived from a public label — anyone can compute it, so it proves nothing outside
/// simulation. Its certificate says so in a comment extension, and keystamp never trusts it
/// unless a project names it as its Microchip root.
#[derive(Clone)]
pub struct TestMicrochipCa {
    root_key: SigningKey,
    signer_key: SigningKey,
    signer_id: [u8; 2],
    root_der: Vec<u8>,
}

/// The label of the test CA simulated Trust&GO parts carry by default.
pub const DEFAULT_TEST_CA_LABEL: &str = "keystamp simulated Microchip CA";

/// What the test root's comment extension says.
pub const TEST_CA_COMMENT: &str = "keystamp TEST CA standing in for Microchip in simulation - NOT Microchip, trust nothing it signs";

fn derived_key(label: &str, role: &str) -> SigningKey {
    let mut counter = 0u8;
    loop {
        let seed = Sha256::new()
            .chain_update(label.as_bytes())
            .chain_update([0])
            .chain_update(role.as_bytes())
            .chain_update([counter])
            .finalize();
        if let Ok(key) = SigningKey::from_slice(&seed) {
            return key;
        }
        counter = counter.wrapping_add(1);
    }
}

/// X ‖ Y of a key.
pub fn public_xy(key: &SigningKey) -> [u8; 64] {
    let point = key.verifying_key().to_sec1_point(false);
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&point.as_bytes()[1..65]);
    xy
}

fn sign(key: &SigningKey, message: &[u8]) -> [u8; 64] {
    let sig: Signature = key.sign(message);
    let mut out = [0u8; 64];
    out.copy_from_slice(&sig.to_bytes());
    out
}

impl TestMicrochipCa {
    /// The test CA derived from `label` (the same label gives the same CA everywhere).
    pub fn new(label: &str) -> TestMicrochipCa {
        let root_key = derived_key(label, "root");
        let signer_key = derived_key(label, "signer");
        let id = Sha256::digest(label.as_bytes());
        let root_xy = public_xy(&root_key);
        let ski = keystamp_certdef::key_id(&root_xy);
        let mut serial = [0u8; 16];
        serial.copy_from_slice(&id[..16]);
        serial[0] = (serial[0] & 0x3F) | 0x40;
        let comment = tlv(0x16, TEST_CA_COMMENT.as_bytes());
        let tbs = tbs(&Shape {
            serial: &serial,
            issuer: name(ROOT_CN),
            subject: name(ROOT_CN),
            issue: (2020, 1, 1, 0),
            expire_years: 100,
            public_key: &root_xy,
            extensions: vec![
                key_usage(0x86, 1),
                extension(OID_BASIC_CONSTRAINTS, true, &seq(&[&tlv(0x01, &[0xFF])])),
                extension(OID_SKI, false, &tlv(0x04, &ski)),
                extension(OID_NS_COMMENT, false, &comment),
            ],
        });
        let root_der = certificate(&tbs, &sign(&root_key, &tbs));
        TestMicrochipCa {
            root_key,
            signer_key,
            signer_id: [id[30], id[31]],
            root_der,
        }
    }

    /// The root certificate (DER).
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The root certificate as PEM.
    pub fn root_pem(&self) -> String {
        crate::pki::ca::der_to_pem(&self.root_der)
    }

    /// The root public key X ‖ Y.
    pub fn root_public_key(&self) -> [u8; 64] {
        public_xy(&self.root_key)
    }

    /// The signer public key X ‖ Y.
    pub fn signer_public_key(&self) -> [u8; 64] {
        public_xy(&self.signer_key)
    }

    /// The signer id (the 4 hex digits ending the signer's CN).
    pub fn signer_id(&self) -> [u8; 2] {
        self.signer_id
    }

    /// The signer certificate for a part whose configuration zone is `config`, issued by the
    /// root with `def`'s layout (`TngtlsSigner` / `TngloraSigner`), and the slot writes that
    /// hold it.
    pub fn issue_signer(
        &self,
        def: MicrochipDef,
        config: &[u8; 128],
        issue_date: DateTime,
    ) -> Result<Issued, MicrochipError> {
        let buf = def.definition().map_err(MicrochipError::Definition)?;
        let cert_def = buf
            .as_def()
            .map_err(|e| MicrochipError::Issue(IssueError::from(e)))?;
        issue_device_cert_with(
            &DeviceCertRequest {
                def: &cert_def,
                config,
                public_key: &self.signer_public_key(),
                signer_public_key: &self.root_public_key(),
                signer_id: self.signer_id,
                issue_date,
                expire_years: buf.expire_years,
            },
            &[],
            |digest| sign_digest(&self.root_key, digest),
        )
        .map_err(MicrochipError::Issue)
    }

    /// A device certificate for `public_key` on a part whose configuration zone is `config` and
    /// whose data slots are `slots` (for elements such as the EUI-48), issued by the signer with
    /// `def`'s layout.
    pub fn issue_device(
        &self,
        def: MicrochipDef,
        config: &[u8; 128],
        slots: &[Vec<u8>],
        public_key: &[u8; 64],
        issue_date: DateTime,
    ) -> Result<Issued, MicrochipError> {
        let buf = def.definition().map_err(MicrochipError::Definition)?;
        let cert_def = buf
            .as_def()
            .map_err(|e| MicrochipError::Issue(IssueError::from(e)))?;
        // What the chip already holds for the certificate's custom elements.
        let data: Vec<(DeviceLoc, &[u8])> = cert_def
            .cert_elements
            .iter()
            .filter(|e| e.device_loc.zone == DeviceZone::Data && e.device_loc.is_present())
            .filter_map(|e| {
                let l = e.device_loc;
                let start = usize::from(l.offset);
                let bytes = slots
                    .get(usize::from(l.slot))?
                    .get(start..start + usize::from(l.count))?;
                Some((l, bytes))
            })
            .collect();
        issue_device_cert_with(
            &DeviceCertRequest {
                def: &cert_def,
                config,
                public_key,
                signer_public_key: &self.signer_public_key(),
                signer_id: self.signer_id,
                issue_date,
                expire_years: buf.expire_years,
            },
            &data,
            |digest| sign_digest(&self.signer_key, digest),
        )
        .map_err(MicrochipError::Issue)
    }
}

fn sign_digest(key: &SigningKey, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let sig: Signature = key
        .sign_prehash(digest)
        .map_err(|e| SignError(Box::new(e)))?;
    let mut out = [0u8; 64];
    out.copy_from_slice(&sig.to_bytes());
    Ok(out)
}

/// The hour now, as a certificate issue date.
pub fn issue_date_now() -> DateTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = u32::try_from(secs).unwrap_or(u32::MAX);
    DateTime {
        minute: 0,
        second: 0,
        ..DateTime::from_posix(secs)
    }
}

/// Writes what Microchip's factory writes into a Trust&GO part: the compressed device
/// certificate (slot 10), the signer public key (slot 11) and the compressed signer certificate
/// (slot 12), all issued by `ca` for the device key in slot 0 (`public_key`). Returns the data
/// writes `(slot, offset, bytes)` and both certificates.
pub fn trust_and_go_factory(
    ca: &TestMicrochipCa,
    device_def: MicrochipDef,
    config: &[u8; 128],
    slots: &[Vec<u8>],
    public_key: &[u8; 64],
    issue_date: DateTime,
) -> Result<FactoryCerts, MicrochipError> {
    let signer = ca.issue_signer(device_def.signer(), config, issue_date)?;
    let device = ca.issue_device(device_def, config, slots, public_key, issue_date)?;
    Ok(FactoryCerts { signer, device })
}

/// The certificates a Trust&GO part leaves Microchip's factory with.
#[derive(Debug, Clone)]
pub struct FactoryCerts {
    /// The signer certificate and its slot writes (public key, compressed certificate).
    pub signer: Issued,
    /// The device certificate and its slot writes (compressed certificate).
    pub device: Issued,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_validates() {
        for def in MicrochipDef::ALL {
            let buf = def.definition().unwrap();
            buf.as_def().unwrap().validate().unwrap();
        }
    }

    #[test]
    fn test_ca_is_deterministic_and_labelled() {
        let a = TestMicrochipCa::new("x");
        assert_eq!(a.root_der(), TestMicrochipCa::new("x").root_der());
        assert_ne!(
            a.root_public_key(),
            TestMicrochipCa::new("y").root_public_key()
        );
        assert!(find(a.root_der(), TEST_CA_COMMENT.as_bytes()).is_some());
    }
}
