//! `keystamp registry export` through the binary, after provisioning simulated devices: each
//! format's structure (the vendors' field names) and the manifest's ES256 signatures, checked
//! with p256 against the signer certificate's key and the device files the run wrote.

use std::path::Path;

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use der::{Decode, DecodePem, Encode};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;
use x509_cert::Certificate;

mod common;
use common::{keystamp, ok, run_cli as run};

fn provisioned_project(dir: &Path) -> Vec<String> {
    ok(run(keystamp(dir).args([
        "init",
        "--insecure-no-passphrase",
        "--mode",
        "development",
    ])));
    let out = ok(run(keystamp(dir).args([
        "provision",
        "--simulate",
        "2",
        "--timing",
        "instant",
        "--json",
    ])));
    let summary: Value = serde_json::from_str(&out).expect("json");
    summary["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["chip_serial"].as_str().expect("serial").to_string())
        .collect()
}

fn export(dir: &Path, format: &str) -> String {
    ok(run(
        keystamp(dir).args(["registry", "export", "--format", format])
    ))
}

fn pem_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("pem");
    Certificate::from_pem(text.as_bytes())
        .expect("certificate")
        .to_der()
        .expect("der")
}

fn cert_der_from_pem_text(text: &str) -> Vec<u8> {
    Certificate::from_pem(text.as_bytes())
        .expect("certificate PEM")
        .to_der()
        .expect("der")
}

fn public_key(der: &[u8]) -> VerifyingKey {
    let cert = Certificate::from_der(der).expect("cert");
    let spki = cert.tbs_certificate().subject_public_key_info();
    VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes()).expect("P-256 key")
}

fn cn(der: &[u8]) -> String {
    let cert = Certificate::from_der(der).expect("cert");
    cert.tbs_certificate()
        .subject()
        .common_name()
        .expect("cn")
        .expect("cn present")
        .into()
}

#[test]
fn exports_have_the_vendors_shapes_and_the_manifest_verifies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let serials = provisioned_project(dir);
    assert_eq!(serials.len(), 2);
    let device_der = |serial: &str| pem_der(&dir.join("devices").join(serial).join("device.pem"));

    // CSV: header + one row per device.
    let csv = export(dir, "csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "chip_serial,cn,certificate_serial,status,not_before,not_after,public_key,sha256"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    for s in &serials {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{s},"))),
            "{csv}"
        );
    }

    // JSON: the certificates are the ones the stations wrote.
    let json: Value = serde_json::from_str(&export(dir, "json")).expect("json");
    for row in json.as_array().expect("array") {
        let serial = row["chip_serial"].as_str().expect("serial");
        let pem = row["certificate_pem"].as_str().expect("pem");
        assert_eq!(cert_der_from_pem_text(pem), device_der(serial));
    }

    // Azure DPS: registrationId = the certificate's CN; the group's signing certificate is
    // the root.
    let dps: Value = serde_json::from_str(&export(dir, "azure-dps")).expect("json");
    assert_eq!(dps["bulkEnrollmentOperation"]["mode"], "create");
    let enrollments = dps["bulkEnrollmentOperation"]["enrollments"]
        .as_array()
        .expect("enrollments");
    assert_eq!(enrollments.len(), 2);
    for e in enrollments {
        assert_eq!(e["attestation"]["type"], "x509");
        let pem = e
            .pointer("/attestation/x509/clientCertificates/primary/certificate")
            .and_then(Value::as_str)
            .expect("primary client certificate");
        let der = cert_der_from_pem_text(pem);
        assert_eq!(e["registrationId"].as_str(), Some(cn(&der).as_str()));
        assert_eq!(e["provisioningStatus"], "enabled");
    }
    let group = &dps["enrollmentGroup"];
    assert!(group["enrollmentGroupId"].is_string());
    let root_pem = group
        .pointer("/attestation/x509/signingCertificates/primary/certificate")
        .and_then(Value::as_str)
        .expect("signing certificate");
    assert_eq!(
        cert_der_from_pem_text(root_pem),
        pem_der(&dir.join("ca/root.pem"))
    );

    // AWS IoT bulk registration: newline-delimited JSON, one device a line.
    let aws = export(dir, "aws-iot");
    let lines: Vec<Value> = aws
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let serial = l["SerialNumber"].as_str().expect("SerialNumber");
        let der = cert_der_from_pem_text(l["CertificatePem"].as_str().expect("pem"));
        assert_eq!(der, device_der(serial));
        assert_eq!(l["ThingName"].as_str(), Some(cn(&der).as_str()));
    }
    let no_ca: Value = serde_json::from_str(&export(dir, "aws-iot-no-ca")).expect("json");
    for body in no_ca.as_array().expect("array") {
        assert_eq!(body["status"], "ACTIVE");
        cert_der_from_pem_text(body["certificatePem"].as_str().expect("certificatePem"));
    }

    // Manifest: each entry a flattened JWS, ES256 by the signer.
    let signer_der = pem_der(&dir.join("ca/signer.pem"));
    let signer_key = public_key(&signer_der);
    let manifest: Value = serde_json::from_str(&export(dir, "manifest")).expect("json");
    let entries = manifest.as_array().expect("array");
    assert_eq!(entries.len(), 2);
    for e in entries {
        let protected = e["protected"].as_str().expect("protected");
        let payload = e["payload"].as_str().expect("payload");
        let sig = Base64UrlUnpadded::decode_vec(e["signature"].as_str().expect("signature"))
            .expect("base64url signature");
        let sig = Signature::from_slice(&sig).expect("64-byte R||S");
        let input = format!("{protected}.{payload}");
        signer_key
            .verify(input.as_bytes(), &sig)
            .expect("signed by the signer");
        // A changed payload does not verify (the check above means something).
        let forged = format!("{protected}.{}", Base64UrlUnpadded::encode_string(b"{}"));
        assert!(signer_key.verify(forged.as_bytes(), &sig).is_err());

        let header: Value = serde_json::from_slice(
            &Base64UrlUnpadded::decode_vec(protected).expect("protected b64url"),
        )
        .expect("header json");
        assert_eq!(header["alg"], "ES256");
        let thumb = Base64UrlUnpadded::decode_vec(header["x5t#S256"].as_str().expect("x5t"))
            .expect("b64url");
        use sha2::Digest;
        assert_eq!(thumb, sha2::Sha256::digest(&signer_der).to_vec());

        let body: Value = serde_json::from_slice(
            &Base64UrlUnpadded::decode_vec(payload).expect("payload b64url"),
        )
        .expect("payload json");
        let serial = body["uniqueId"].as_str().expect("uniqueId").to_uppercase();
        let jwk = &body["publicKeySet"]["keys"][0];
        assert_eq!((&jwk["kty"], &jwk["crv"]), (&"EC".into(), &"P-256".into()));
        let x5c: Vec<Vec<u8>> = jwk["x5c"]
            .as_array()
            .expect("x5c")
            .iter()
            .map(|c| Base64::decode_vec(c.as_str().expect("b64")).expect("standard base64"))
            .collect();
        assert_eq!(x5c, vec![device_der(&serial), signer_der.clone()]);
        // x, y are the device certificate's key.
        let point = public_key(&x5c[0]).to_sec1_point(false);
        let xy = &point.as_bytes()[1..];
        let x = Base64UrlUnpadded::decode_vec(jwk["x"].as_str().expect("x")).expect("x");
        let y = Base64UrlUnpadded::decode_vec(jwk["y"].as_str().expect("y")).expect("y");
        assert_eq!([x, y].concat(), xy);
    }
}
