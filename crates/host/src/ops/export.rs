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
use crate::pki::ca::{self, CaCerts, Signer};
use crate::registry::{CertRecord, Registry};

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
}

/// Every device of the registry with a live certificate, in registry order.
pub fn devices(registry: &Registry) -> Result<Vec<ExportedDevice>, OpsError> {
    let mut out = Vec::new();
    for device in registry.devices()? {
        if let Some(certificate) = registry.live_certificate(device.chip_serial)? {
            out.push(ExportedDevice {
                chip_serial: device.chip_serial.to_string(),
                certificate,
            });
        }
    }
    Ok(out)
}

/// The export text in `format`; `signer` is needed for the manifest only.
pub fn export(
    devices: &[ExportedDevice],
    certs: &CaCerts,
    signer: Option<&Signer>,
    format: ExportFormat,
) -> Result<String, OpsError> {
    Ok(match format {
        ExportFormat::Csv => csv(devices),
        ExportFormat::Json => to_json(&rows(devices))?,
        ExportFormat::AzureDps => to_json(&azure_dps(devices, certs))?,
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
/// certificate is the root (the group alternative: every device chaining to it).
fn azure_dps(devices: &[ExportedDevice], certs: &CaCerts) -> Value {
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
    let group_id = format!(
        "keystamp-{}",
        hex::encode(certs.signer_id().unwrap_or_default())
    );
    json!({
        "bulkEnrollmentOperation": { "mode": "create", "enrollments": enrollments },
        "enrollmentGroup": {
            "enrollmentGroupId": group_id,
            "attestation": {
                "type": "x509",
                "x509": {
                    "signingCertificates": {
                        "primary": { "certificate": certs.root.to_pem() }
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
/// device key with its chain in `x5c` (standard base64 DER, device first).
fn manifest(devices: &[ExportedDevice], signer: &Signer) -> Result<Vec<Value>, OpsError> {
    let certs = signer.certs();
    let thumbprint = Base64UrlUnpadded::encode_string(&certs.signer.fingerprint());
    let protected =
        json!({ "alg": "ES256", "typ": "JWT", "kid": thumbprint, "x5t#S256": thumbprint });
    let protected = Base64UrlUnpadded::encode_string(protected.to_string().as_bytes());
    let mut out = Vec::with_capacity(devices.len());
    for d in devices {
        let c = &d.certificate;
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
                    "x5c": [Base64::encode_string(&c.der), Base64::encode_string(&certs.signer.der)],
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
