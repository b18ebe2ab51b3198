//! Revocation end to end: `keystamp registry revoke`, automatic revocation of superseded
//! certificates, and `keystamp ca crl` checked by OpenSSL (`openssl verify -crl_check` must
//! reject revoked and superseded device certificates and accept the others; skipped with a
//! message when `openssl` is absent) and by an independent signature check with p256.

mod common;

use common::backends::each_backend;
use common::{field, keystamp};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use der::{Decode, Encode};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use sha1::{Digest, Sha1};

use keystamp::outputs::write_device_outputs;
use keystamp::pki::ca::{DeviceCertRequest, Signer};
use keystamp::registry::{CertKind, ChipSerial, IssueOutcome, IssueRequest, Registry};

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run keystamp");
    assert!(
        o.status.success(),
        "keystamp failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn openssl_present() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIP openssl checks of the CRL: openssl not found on PATH");
    }
    found
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// One device certificate issued by the project's signer for `chip` and a fresh key, with
/// serial `40 ‖ serial_source`, recorded write-ahead; its device.pem and signer.pem written
/// under `certs/<certificate serial>/<chip>/`.
struct Device {
    chip: ChipSerial,
    serial: String,
    dir: PathBuf,
}

fn issue(
    project: &Path,
    registry: &mut Registry,
    signer: &Signer,
    chip: ChipSerial,
    serial_source: ChipSerial,
) -> Device {
    let key = SigningKey::try_generate().expect("key");
    let point = key.verifying_key().to_sec1_point(false);
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&point.as_bytes()[1..]);
    let cn = chip.to_string();
    let der = signer
        .issue_device_certificate(&DeviceCertRequest {
            chip_serial: serial_source.0,
            public_key: xy,
            organization: "keystamp",
            cn: &cn,
            validity_years: 20,
            now: std::time::SystemTime::now(),
        })
        .expect("issue");
    let mut serial = vec![0x40];
    serial.extend_from_slice(&serial_source.0);
    let out = registry
        .begin_issue(&IssueRequest {
            kind: CertKind::Device,
            chip_serial: Some(chip),
            serial: &serial,
            public_key: &xy,
            subject_cn: &cn,
            der: &der,
            not_before: "2026-01-01T00:00:00Z",
            not_after: "2046-01-01T00:00:00Z",
        })
        .expect("begin");
    assert!(matches!(out, IssueOutcome::New(_)));
    // Each certificate in its own directory (a superseded one and its successor share a chip).
    let dir = project.join("certs").join(hex::encode_upper(&serial));
    write_device_outputs(&dir, chip, &der, &signer.certs().signer.der).expect("outputs");
    Device {
        chip,
        serial: out.record().serial.clone(),
        dir: dir.join(chip.to_string()),
    }
}

/// The CRL's pieces, sliced with x509-cert: (TBS DER, signature DER, parsed list).
fn parse_crl(der: &[u8]) -> (Vec<u8>, Vec<u8>, x509_cert::crl::CertificateList) {
    let crl = x509_cert::crl::CertificateList::from_der(der).expect("CRL parses");
    let tbs = crl.tbs_cert_list.to_der().expect("tbs");
    let sig = crl.signature.as_bytes().expect("octets").to_vec();
    (tbs, sig, crl)
}

#[test]
fn revoked_and_superseded_certificates_are_in_the_crl_and_rejected_by_openssl() {
    each_backend(
        "revoked_and_superseded_certificates_are_in_the_crl_and_rejected_by_openssl",
        |b| {
            let tmp = tempfile::tempdir().expect("tmp");
            let dir = tmp.path();
            ok(keystamp(dir).args(["init", "--insecure-no-passphrase"]));
            b.adopt(dir);
            let signer = Signer::unlock(&dir.join("ca"), None).expect("unlock");
            let mut registry = b.open(dir);
            registry.set_record_signer(Box::new(signer.clone()));

            let chip = |last: u8| ChipSerial([0x01, 0x23, 0, 0, 0, 0, 0, last, 0xEE]);
            let good = issue(dir, &mut registry, &signer, chip(1), chip(1));
            let revoked = issue(dir, &mut registry, &signer, chip(2), chip(2));
            // Chip 3's key changes after its first certificate was written but before it was
            // verified: the first is superseded (the successor needs another serial: serials are
            // unique).
            let superseded = issue(dir, &mut registry, &signer, chip(3), chip(3));
            registry.mark_written(&superseded.serial).expect("written");
            let successor = issue(dir, &mut registry, &signer, chip(3), chip(4));
            drop(registry);

            // The CLI revokes by certificate serial, any case.
            let text = ok(keystamp(dir).args([
                "registry",
                "revoke",
                &revoked.serial.to_ascii_lowercase(),
                "--reason",
                "keyCompromise",
            ]));
            assert_eq!(field(&text, "revoked"), "keyCompromise");
            let list = ok(keystamp(dir).args(["registry", "list"]));
            let row = list
                .lines()
                .find(|l| l.starts_with(&revoked.chip.to_string()))
                .expect("row");
            assert!(row.contains("revoked"), "{list}");
            let show = ok(keystamp(dir).args(["registry", "show", &superseded.serial]));
            assert_eq!(field(&show, "status"), "superseded");
            assert_eq!(field(&show, "revoked"), "superseded");

            let crl_path = dir.join("crl.pem");
            let text = ok(keystamp(dir).args(["ca", "crl", "--out", s(&crl_path), "--days", "7"]));
            assert_eq!(field(&text, "number"), "1");
            assert_eq!(field(&text, "entries"), "2");

            // Independent checks: the CRL's signature verifies with the signer key from signer.pem,
            // its AKI is SHA-1 of the signer's public key (RFC 5280 §4.2.1.2 method 1, the signer's
            // SKI), it lists exactly the revoked and the superseded serials with their reasons.
            let pem = std::fs::read_to_string(&crl_path).expect("crl");
            assert!(pem.starts_with("-----BEGIN X509 CRL-----"), "{pem}");
            let (label, der) = der::pem::decode_vec(pem.as_bytes()).expect("pem");
            assert_eq!(label, "X509 CRL");
            let (tbs, sig, crl) = parse_crl(&der);
            let signer_point = signer
                .certs()
                .signer
                .cert
                .tbs_certificate()
                .subject_public_key_info()
                .subject_public_key
                .raw_bytes()
                .to_vec();
            let vk = VerifyingKey::from_sec1_bytes(&signer_point).expect("signer key");
            vk.verify(&tbs, &DerSignature::from_bytes(&sig).expect("der sig"))
                .expect("CRL signed by the signer");
            let exts = crl
                .tbs_cert_list
                .crl_extensions
                .as_ref()
                .expect("extensions");
            let aki = exts
                .iter()
                .find(|e| e.extn_id.to_string() == "2.5.29.35")
                .expect("AKI");
            let key_id = Sha1::digest(&signer_point);
            // AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier }: 30 16 80 14 <20 bytes>.
            let mut want = vec![0x30, 0x16, 0x80, 0x14];
            want.extend_from_slice(&key_id);
            assert_eq!(aki.extn_value.as_bytes(), &want[..]);
            let listed: Vec<String> = crl
                .tbs_cert_list
                .revoked_certificates
                .iter()
                .flatten()
                .map(|r| hex::encode_upper(r.serial_number.as_bytes()))
                .collect();
            assert_eq!(listed.len(), 2, "{listed:?}");
            assert!(listed.contains(&revoked.serial), "{listed:?}");
            assert!(listed.contains(&superseded.serial), "{listed:?}");
            assert!(!listed.contains(&good.serial), "{listed:?}");
            assert!(!listed.contains(&successor.serial), "{listed:?}");

            if openssl_present() {
                let text = openssl(&["crl", "-in", s(&crl_path), "-noout", "-text"]);
                let text = String::from_utf8_lossy(&text.stdout).into_owned();
                assert!(text.contains("Key Compromise"), "{text}");
                assert!(text.contains("Superseded"), "{text}");
                assert!(text.contains("X509v3 CRL Number"), "{text}");
                let verify = |d: &Device| {
                    openssl(&[
                        "verify",
                        "-crl_check",
                        "-CRLfile",
                        s(&crl_path),
                        "-CAfile",
                        s(&dir.join("ca/root.pem")),
                        "-untrusted",
                        s(&d.dir.join("signer.pem")),
                        s(&d.dir.join("device.pem")),
                    ])
                };
                for d in [&good, &successor] {
                    let o = verify(d);
                    assert!(
                        o.status.success(),
                        "{} must verify: {}{}",
                        d.serial,
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
                for d in [&revoked, &superseded] {
                    let o = verify(d);
                    let out = format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                    assert!(!o.status.success(), "{} must be rejected: {out}", d.serial);
                    assert!(out.contains("certificate revoked"), "{out}");
                }
            }

            // A second CRL gets the next number; --der writes DER that OpenSSL reads as such.
            let der_path = dir.join("crl.der");
            let text = ok(keystamp(dir).args(["ca", "crl", "--out", s(&der_path), "--der"]));
            assert_eq!(field(&text, "number"), "2");
            let der = std::fs::read(&der_path).expect("der");
            let (_, _, crl) = parse_crl(&der);
            let number = crl
                .tbs_cert_list
                .crl_extensions
                .as_ref()
                .and_then(|e| e.iter().find(|e| e.extn_id.to_string() == "2.5.29.20"))
                .expect("CRL number");
            assert_eq!(number.extn_value.as_bytes(), &[0x02, 0x01, 0x02]);
            if openssl_present() {
                let o = openssl(&["crl", "-inform", "DER", "-in", s(&der_path), "-noout"]);
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
            // Without --out the PEM goes to standard output.
            let text = ok(keystamp(dir).args(["ca", "crl"]));
            assert!(text.starts_with("-----BEGIN X509 CRL-----"), "{text}");
        },
    );
}
