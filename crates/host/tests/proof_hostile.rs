//! Issue 14, proof before signature and hostile device data: a simulated device (the real agent
//! on an emulated chip) whose answers are rewritten on the way to the host
//! ([`keystamp::engine::scripted::Tamper`]), or a scripted device with no chip at all. Each
//! attack must end in a typed failure with nothing issued, signed or recorded.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{device, fixture, link_over};
use der::{Decode, Encode};
use keystamp::engine::scripted::{Reply, ScriptedDevice, Tamper};
use keystamp::engine::{DeviceReport, DeviceResult, Issuer, Station};
use keystamp::link::Port;
use keystamp::pki::issue::SignError;
use keystamp::registry::{CertKind, ChipSerial};
use keystamp_atecc_sim::FaultConfig;
use keystamp_wire::{DefBlobProgress, PublicKey, Request, Response, Signature};
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sha2::{Digest, Sha256};

/// The signer, counting what it signs.
struct Counting<'a> {
    signer: &'a keystamp::pki::ca::Signer,
    signed: AtomicUsize,
}

impl Issuer for Counting<'_> {
    fn sign(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        self.signed.fetch_add(1, Ordering::SeqCst);
        Issuer::sign(self.signer, digest)
    }
}

/// SHA-256("keystamp-identity-v1" ‖ host nonce ‖ device nonce), as docs/protocol.md defines it
/// (computed here, not with the agent's function).
fn identity_digest(host_nonce: &[u8; 32], device_nonce: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"keystamp-identity-v1");
    h.update(host_nonce);
    h.update(device_nonce);
    h.finalize().into()
}

fn station_over<'a, P: Port>(
    fx: &'a common::Fixture,
    issuer: &'a dyn Issuer,
    port: P,
) -> Station<'a, P> {
    Station::new(
        "st".into(),
        "tampered".into(),
        link_over(port),
        &fx.material,
        issuer,
        &fx.registry,
        &|_, _| {},
    )
}

fn run_over<P: Port>(fx: &common::Fixture, issuer: &dyn Issuer, port: P) -> DeviceReport {
    station_over(fx, issuer, port).run()
}

/// A project and a simulated device provisioned honestly (no tampering).
fn provisioned(name: &str, seed: u64) -> (common::Fixture, keystamp::sim::SimDevice, DeviceReport) {
    let fx = fixture();
    let dev = device(
        &fx.dir.path().join("sim"),
        name,
        seed,
        FaultConfig::default(),
    );
    let port = common::open_port(&dev);
    let report = run_over(&fx, &fx.signer, port);
    assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
    (fx, dev, report)
}

fn failure(report: &DeviceReport) -> &str {
    match &report.result {
        DeviceResult::Failed(m) => m,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn device_certificates(fx: &common::Fixture) -> usize {
    let reg = fx.registry.lock().unwrap();
    reg.certificates()
        .unwrap()
        .iter()
        .filter(|c| c.kind == CertKind::Device)
        .count()
}

/// The emulated chip's certificate slots (10 device, 11 anchor, 12 signer) are factory-blank.
fn cert_slots_blank(dev: &keystamp::sim::SimDevice) -> bool {
    let chip = dev.chip().lock();
    [10usize, 11, 12]
        .iter()
        .all(|&s| chip.state().slot(s).iter().all(|&b| b == 0))
}

#[test]
fn a_device_proving_another_key_than_it_reported_gets_nothing_issued_or_recorded() {
    let fx = fixture();
    let dev = device(
        &fx.dir.path().join("sim"),
        "rogue",
        41,
        FaultConfig::default(),
    );
    let other = SigningKey::from_slice(&[0x42; 32]).unwrap();
    // The device reports its chip's key but proves possession of another one: a valid
    // signature over exactly the digest the protocol asks for, by the wrong key.
    let port = Tamper::new(
        common::open_port(&dev),
        move |req: &Request, resp: Response| match (req, resp) {
            (Request::IdentityProof { host_nonce }, Response::IdentityProof(mut p)) => {
                let digest = identity_digest(host_nonce, &p.device_nonce);
                let sig: p256::ecdsa::Signature = other.sign_prehash(&digest).unwrap();
                let rs = sig.to_bytes();
                p.signature = Signature {
                    r: rs[..32].try_into().unwrap(),
                    s: rs[32..].try_into().unwrap(),
                };
                Response::IdentityProof(p)
            }
            (_, r) => r,
        },
    );
    let issuer = Counting {
        signer: &fx.signer,
        signed: AtomicUsize::new(0),
    };
    let report = run_over(&fx, &issuer, port);
    assert!(
        failure(&report).starts_with("key: identity proof does not verify"),
        "{report:?}"
    );
    assert!(!report.issued && report.cert_serial.is_none());
    assert_eq!(issuer.signed.load(Ordering::SeqCst), 0, "nothing signed");
    assert_eq!(device_certificates(&fx), 0, "nothing recorded");
    let chip = ChipSerial(report.chip_serial.unwrap());
    assert_eq!(fx.registry.lock().unwrap().proof_count(chip).unwrap(), 0);
    assert!(cert_slots_blank(&dev), "no certificate reached the chip");
}

#[test]
fn the_proof_is_recorded_before_the_certificate_and_the_certificate_carries_the_proven_key() {
    let (fx, _dev, report) = provisioned("honest", 43);
    let chip = ChipSerial(report.chip_serial.unwrap());
    let reg = fx.registry.lock().unwrap();
    let cert = reg.live_certificate(chip).unwrap().expect("a certificate");
    // The certificate's key, read from its DER (not from the registry's column).
    let x509 = x509_cert::Certificate::from_der(&cert.der).unwrap();
    let spki = x509.tbs_certificate().subject_public_key_info();
    let point = spki.subject_public_key.raw_bytes();
    assert_eq!(point.len(), 65);
    let key: [u8; 64] = point[1..].try_into().unwrap();
    // One proof before issuance (after the key step) and one after the slot writes (verify):
    // the registry keeps the first, the one the issuance rests on.
    let proofs = reg.proofs_for(chip, &key).unwrap();
    assert_eq!(proofs.len(), 1, "{proofs:?}");
    let p = &proofs[0];
    assert!(p.proven_at <= cert.created_at);
    // The recorded proof verifies on its own, with the certificate's key.
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&p.proof.signature).unwrap();
    vk.verify_prehash(
        &identity_digest(&p.proof.host_nonce, &p.proof.device_nonce),
        &sig,
    )
    .expect("the recorded proof verifies against the certificate's key");
    // The certificate's SubjectPublicKeyInfo is a P-256 key (id-ecPublicKey, prime256v1).
    let spki_der = spki.to_der().unwrap();
    assert!(
        spki_der
            .windows(10)
            .any(|w| w == [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07])
    );
}

#[test]
fn an_off_curve_public_key_is_refused_before_anything_is_signed() {
    let fx = fixture();
    let dev = device(
        &fx.dir.path().join("sim"),
        "offcurve",
        47,
        FaultConfig::default(),
    );
    // (1, 2) is not on P-256: y² ≠ x³ − 3x + b (mod p).
    let mut x = [0u8; 32];
    x[31] = 1;
    let mut y = [0u8; 32];
    y[31] = 2;
    let port = Tamper::new(
        common::open_port(&dev),
        move |req: &Request, resp: Response| match req {
            Request::GenKey { .. } | Request::GetPublicKey { .. } => {
                Response::PublicKey(PublicKey { x, y })
            }
            _ => resp,
        },
    );
    let issuer = Counting {
        signer: &fx.signer,
        signed: AtomicUsize::new(0),
    };
    let report = run_over(&fx, &issuer, port);
    assert!(
        failure(&report).starts_with("key: the device's public key is not a P-256 point"),
        "{report:?}"
    );
    assert_eq!(issuer.signed.load(Ordering::SeqCst), 0, "nothing signed");
    assert_eq!(device_certificates(&fx), 0);
    assert!(cert_slots_blank(&dev));
}

#[test]
fn a_hostile_blob_received_count_is_a_typed_failure_not_a_panic() {
    let fx = fixture();
    let dev = device(
        &fx.dir.path().join("sim"),
        "count",
        53,
        FaultConfig::default(),
    );
    let port = Tamper::new(
        common::open_port(&dev),
        |req: &Request, resp: Response| match (req, resp) {
            (Request::StoreDefBlob { total_len, .. }, Response::DefBlob(_)) => {
                Response::DefBlob(DefBlobProgress {
                    received: u32::MAX,
                    total_len: *total_len,
                    complete: false,
                })
            }
            (_, r) => r,
        },
    );
    let report = run_over(&fx, &fx.signer, port);
    let msg = failure(&report);
    assert!(
        msg.starts_with(&format!(
            "definitions: the device reported blob bytes received {}, out of bounds (at most {})",
            u32::MAX,
            fx.material.blob.len()
        )),
        "{msg}"
    );
}

#[test]
fn an_oversized_certificate_length_is_a_typed_failure() {
    // Provisioned honestly, then verified with a device that reports a huge certificate.
    let (fx, dev, _) = provisioned("len", 59);
    let port = Tamper::new(
        common::open_port(&dev),
        |_: &Request, resp: Response| match resp {
            Response::Chain(mut c) => {
                c.device.len = u16::MAX;
                Response::Chain(c)
            }
            r => r,
        },
    );
    let report = station_over(&fx, &fx.signer, port).verify_only();
    let msg = failure(&report);
    assert!(
        msg.starts_with("verify: the device reported certificate length 65535, out of bounds"),
        "{msg}"
    );
}

#[test]
fn escape_sequences_from_a_device_are_escaped_in_the_table_the_json_and_the_audit_log() {
    let fx = fixture();
    // A "device" that prints a line with terminal escapes (clear screen, set window title, a
    // bidi override) and never answers: its last line ends up in the failure message.
    let hostile = b"\x1b[2J\x1b]0;owned\x07 boot \xe2\x80\xae done\r\n".to_vec();
    let port = ScriptedDevice::new(move |_: &Request| Reply::Raw(hostile.clone()));
    let report = run_over(&fx, &fx.signer, port);
    let msg = failure(&report).to_string();
    assert!(
        msg.contains("\\u{1b}[2J\\u{1b}]0;owned\\u{7} boot \\u{202e} done"),
        "{msg}"
    );

    let unsafe_char = |c: char| c.is_control() || c == '\u{202e}';
    for json in [false, true] {
        let mut out = Vec::new();
        let _ = keystamp::cli::output::summarize(std::slice::from_ref(&report), json, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("owned"), "{text}");
        assert!(
            !text.chars().any(|c| unsafe_char(c) && c != '\n'),
            "raw control character in {text:?}"
        );
    }
    let log = fx.registry.lock().unwrap().audit_log(None).unwrap();
    let row = log
        .iter()
        .find(|r| r.detail.contains("owned"))
        .expect("the failure is audited");
    assert!(!row.detail.chars().any(unsafe_char), "{:?}", row.detail);
}
