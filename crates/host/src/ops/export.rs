//! `keystamp registry export`: the registry's live device certificates in the shapes clouds and
//! customers take in. Field names are the vendors' (docs/factory-guide.md, "Exports", says
//! where each comes from).
//!
//! - `csv`, `json`: one row per device;
//! - `azure-dps`: a DPS bulk enrollment operation (`mode` + individual `enrollments`) and the
//!   enrollment group whose signing certificate is the root;
//! - `aws-iot`: bulk-registration input (`StartThingRegistrationTask`), one JSON object a line;
//! - `aws-iot-no-ca`: `RegisterCertificateWithoutCA` request bodies (multi-account
//!   registration, certificates without a CA);
//! - `manifest`: a manifest in Microchip's style, one JWS (flattened JSON serialization, ES256,
//!   signed by the signer) per device with its serial, public key and certificate chain.

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use serde::Serialize;
use serde_json::{Value, json};

use super::OpsError;
use crate::pki::ca::{self, CaCert, CaCerts, Signer};
use crate::registry::{CertKind, CertRecord, Registry};

/// An export format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// A JSON array of devices.
    Json,
    /// Azure DPS bulk individual enrollments and the enrollment group.
    AzureDps,
    /// AWS IoT bulk-registration input (newline-delimited JSON).
    AwsIot,
    /// AWS IoT `RegisterCertificateWithoutCA` request bodies (a JSON array).
    AwsIotNoCa,
    /// Microchip-style signed manifest.
    Manifest,
}

impl ExportFormat {
    /// Whether the format is signed (the signer key must be unlocked).
    pub fn needs_signer(self) -> bool {
        self == Self::Manifest
    }
}

/// One exported device: its chip serial and live certificate.
#[derive(Debug, Clone)]
pub struct ExportedDevice {
    /// Chip serial, upper-case hex.
    pub chip_serial: String,
    /// The live certificate.
    pub certificate: CertRecord,
    /// The certificate that issued it when that is not the project's signer: the Microchip
    /// signer certificate registered with a Trust&Go device ([`Issuers::Microchip`]).
    pub issuer_der: Option<Vec<u8>>,
}

/// Which chain the devices' certificates hang from, by the project's part profile.
#[derive(Debug, Clone, Copy)]
pub enum Issuers<'a> {
    /// The project's own CA (profiles `custom` and `trustflex`): its signer and root.
    Project,
    /// Microchip's (profile `trustandgo`): each device's Microchip signer certificate as
    /// registered with it, and the project's `[microchip] root`.
    Microchip {
        /// The Microchip root the project verifies parts against.
        root: &'a CaCert,
    },
}

/// Every device of the registry with a live certificate, in registry order. With
/// [`Issuers::Microchip`], each device gets the registered signer certificate whose key signed
/// its certificate; a device without one is an error (its chain could not be exported).
pub fn devices(registry: &Registry, issuers: Issuers<'_>) -> Result<Vec<ExportedDevice>, OpsError> {
    let signers = match issuers {
        Issuers::Project => Vec::new(),
        Issuers::Microchip { .. } => registered_signers(registry)?,
    };
    let mut out = Vec::new();
    for device in registry.devices()? {
        if let Some(certificate) = registry.live_certificate(device.chip_serial)? {
            let issuer_der = match issuers {
                Issuers::Project => None,
                Issuers::Microchip { .. } => Some(issuer_of(&certificate, &signers)?),
            };
            out.push(ExportedDevice {
                chip_serial: device.chip_serial.to_string(),
                certificate,
                issuer_der,
            });
        }
    }
    Ok(out)
}

/// Every signer certificate in the registry, parsed, with its public key.
fn registered_signers(registry: &Registry) -> Result<Vec<(CaCert, [u8; 64])>, OpsError> {
    let mut out = Vec::new();
    for rec in registry.certificates()? {
        if rec.kind != CertKind::Signer {
            continue;
        }
        let cert = CaCert::from_der(rec.der).map_err(|e| OpsError::BadRecord {
            serial: rec.serial.clone(),
            why: format!("its DER does not parse: {e}"),
        })?;
        out.push((cert, rec.public_key));
    }
    Ok(out)
}

/// The DER of the registered signer certificate whose subject is `device`'s issuer and whose
/// key verifies its signature (a name alone could be claimed by anyone).
fn issuer_of(device: &CertRecord, signers: &[(CaCert, [u8; 64])]) -> Result<Vec<u8>, OpsError> {
    let bad = |why: &str| OpsError::BadRecord {
        serial: device.serial.clone(),
        why: why.into(),
    };
    let cert = CaCert::from_der(device.der.clone())
        .map_err(|e| bad(&format!("its DER does not parse: {e}")))?;
    let issuer = &cert.cert.tbs_certificate().issuer();
    signers
        .iter()
        .find(|(signer, key)| {
            signer.cert.tbs_certificate().subject() == *issuer
                && ca::verify_signed_by(&cert.cert, key).is_ok()
        })
        .map(|(signer, _)| signer.der.clone())
        .ok_or_else(|| bad("no registered signer certificate issued it"))
}

/// The export text in `format`; `signer` is needed for the manifest only. The chain of each
/// device (`azure-dps`' group root, `manifest`'s `x5c`) follows `issuers`.
pub fn export(
    devices: &[ExportedDevice],
    certs: &CaCerts,
    issuers: Issuers<'_>,
    signer: Option<&Signer>,
    format: ExportFormat,
) -> Result<String, OpsError> {
    Ok(match format {
        ExportFormat::Csv => csv(devices),
        ExportFormat::Json => to_json(&rows(devices))?,
        ExportFormat::AzureDps => to_json(&azure_dps(devices, certs, issuers))?,
        ExportFormat::AwsIot => {
            let mut text = String::new();
            for d in devices {
                let line = json!({
                    "ThingName": d.certificate.subject_cn,
                    "SerialNumber": d.chip_serial,
                    "CertificatePem": ca::der_to_pem(&d.certificate.der),
                });
                text.push_str(&line.to_string());
                text.push('\n');
            }
            text
        }
        ExportFormat::AwsIotNoCa => {
            let bodies: Vec<Value> = devices
                .iter()
                .map(|d| {
                    json!({
                        "certificatePem": ca::der_to_pem(&d.certificate.der),
                        "status": "ACTIVE",
                    })
                })
                .collect();
            to_json(&bodies)?
        }
        ExportFormat::Manifest => {
            let signer = signer.ok_or(OpsError::ExportNeedsSigner)?;
            to_json(&manifest(devices, signer)?)?
        }
    })
}

fn to_json<T: Serialize>(value: &T) -> Result<String, OpsError> {
    serde_json::to_string_pretty(value)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(OpsError::ExportJson)
}

#[derive(Serialize)]
struct Row<'a> {
    chip_serial: &'a str,
    cn: &'a str,
    certificate_serial: &'a str,
    status: String,
    not_before: &'a str,
    not_after: &'a str,
    public_key: String,
    sha256: String,
    certificate_pem: String,
}

fn rows(devices: &[ExportedDevice]) -> Vec<Row<'_>> {
    devices
        .iter()
        .map(|d| {
            let c = &d.certificate;
            Row {
                chip_serial: &d.chip_serial,
                cn: &c.subject_cn,
                certificate_serial: &c.serial,
                status: c.status.to_string(),
                not_before: &c.not_before,
                not_after: &c.not_after,
                public_key: hex::encode_upper(c.public_key),
                sha256: hex::encode_upper(ca::sha256(&c.der)),
                certificate_pem: ca::der_to_pem(&c.der),
            }
        })
        .collect()
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(devices: &[ExportedDevice]) -> String {
    let mut out = String::from(
        "chip_serial,cn,certificate_serial,status,not_before,not_after,public_key,sha256\n",
    );
    for r in rows(devices) {
        let fields = [
            r.chip_serial,
            r.cn,
            r.certificate_serial,
            &r.status,
            r.not_before,
            r.not_after,
            &r.public_key,
            &r.sha256,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// DPS: a bulk enrollment operation (`BulkEnrollmentOperation`: `mode`, `enrollments`) of
/// individual enrollments with X.509 client certificates — the registration id is the device
/// certificate's CN, as DPS requires — and an enrollment group whose primary signing
/// certificate is the root (the group alternative: every device chaining to it): Microchip's
/// root for Trust&Go devices, whose certificates Microchip issued.
fn azure_dps(devices: &[ExportedDevice], certs: &CaCerts, issuers: Issuers<'_>) -> Value {
    let enrollments: Vec<Value> = devices
        .iter()
        .map(|d| {
            json!({
                "registrationId": d.certificate.subject_cn,
                "deviceId": d.certificate.subject_cn,
                "attestation": {
                    "type": "x509",
                    "x509": {
                        "clientCertificates": {
                            "primary": { "certificate": ca::der_to_pem(&d.certificate.der) }
                        }
                    }
                },
                "provisioningStatus": "enabled",
            })
        })
        .collect();
    let (group_id, root_pem) = match issuers {
        Issuers::Project => (
            format!(
                "keystamp-{}",
                hex::encode(certs.signer_id().unwrap_or_default())
            ),
            certs.root.to_pem(),
        ),
        // Named by the root's fingerprint: no project signer id applies to Microchip's chain.
        Issuers::Microchip { root } => (
            format!(
                "keystamp-microchip-{}",
                hex::encode(&root.fingerprint()[..4])
            ),
            root.to_pem(),
        ),
    };
    json!({
        "bulkEnrollmentOperation": { "mode": "create", "enrollments": enrollments },
        "enrollmentGroup": {
            "enrollmentGroupId": group_id,
            "attestation": {
                "type": "x509",
                "x509": {
                    "signingCertificates": {
                        "primary": { "certificate": root_pem }
                    }
                }
            },
            "provisioningStatus": "enabled",
        },
    })
}

/// One JWS per device (RFC 7515 flattened JSON serialization), ES256 by the signer. The
/// protected header names the signer by the SHA-256 thumbprint of its certificate
/// (`x5t#S256`); the payload carries the chip serial (`uniqueId`) and a JWK (RFC 7517) of the
/// device key with its chain in `x5c` (standard base64 DER, device first, then its issuer: the
/// project's signer, or the Microchip signer registered with a Trust&Go device).
fn manifest(devices: &[ExportedDevice], signer: &Signer) -> Result<Vec<Value>, OpsError> {
    let certs = signer.certs();
    let thumbprint = Base64UrlUnpadded::encode_string(&certs.signer.fingerprint());
    let protected =
        json!({ "alg": "ES256", "typ": "JWT", "kid": thumbprint, "x5t#S256": thumbprint });
    let protected = Base64UrlUnpadded::encode_string(protected.to_string().as_bytes());
    let mut out = Vec::with_capacity(devices.len());
    for d in devices {
        let c = &d.certificate;
        let issuer_der = d.issuer_der.as_deref().unwrap_or(&certs.signer.der);
        let payload = json!({
            "version": 1,
            "model": "ATECC608",
            "uniqueId": d.chip_serial.to_ascii_lowercase(),
            "publicKeySet": {
                "keys": [{
                    "kid": "0",
                    "kty": "EC",
                    "crv": "P-256",
                    "x": Base64UrlUnpadded::encode_string(&c.public_key[..32]),
                    "y": Base64UrlUnpadded::encode_string(&c.public_key[32..]),
                    "x5c": [Base64::encode_string(&c.der), Base64::encode_string(issuer_der)],
                }]
            },
        });
        let payload = Base64UrlUnpadded::encode_string(payload.to_string().as_bytes());
        let signing_input = format!("{protected}.{payload}");
        // ES256 (RFC 7518 §3.4): the raw R ‖ S over SHA-256 of the signing input.
        let signature = signer.sign_digest(&ca::sha256(signing_input.as_bytes()))?;
        out.push(json!({
            "payload": payload,
            "protected": protected,
            "header": { "uniqueId": d.chip_serial.to_ascii_lowercase() },
            "signature": Base64UrlUnpadded::encode_string(&signature),
        }));
    }
    Ok(out)
}
