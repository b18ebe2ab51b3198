//! Issue 14, a rogue device claiming a real chip's serial: the emulator with its serial altered
//! to the serial of a (not yet provisioned) chip in the open lot. It is issued a certificate
//! only after it proves its key; the real chip with that serial, arriving later with its own
//! key, is reported as a clone conflict (naming the serial, both keys' fingerprints and what to
//! do), recorded in the audit chain, and gets nothing, until the registered certificate is
//! revoked.

mod common;

use common::{device, fixture, run};
use keystamp::engine::DeviceResult;
use keystamp::registry::chain::{AuditReport, SignerSet};
use keystamp::registry::{CertKind, ChipSerial, Outcome, RevocationReason};
use keystamp_atecc_sim::{FaultConfig, SimChip, SimOptions};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

/// The key held by an emulated chip's slot 0 (stored `00 00 00 00 ‖ scalar`, docs
/// atecc608.md), as SHA-256 of its SubjectPublicKeyInfo DER in colon hex, as OpenSSL's
/// `pkey -pubin -outform DER | sha256sum` would give it: computed from the chip's private key,
/// not from anything keystamp reported.
fn key_fingerprint(dev: &keystamp::sim::SimDevice) -> (String, [u8; 64]) {
    let chip = dev.chip().lock();
    let slot = chip.state().slot(0);
    let key = SigningKey::from_slice(&slot[4..36]).expect("a private key in slot 0");
    let spki = key
        .verifying_key()
        .to_public_key_der()
        .expect("spki")
        .into_vec();
    let digest = Sha256::digest(&spki);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    let point = key.verifying_key().to_sec1_point(false);
    let xy: [u8; 64] = point.as_bytes()[1..65].try_into().expect("64");
    (hex.join(":"), xy)
}

#[test]
fn a_rogue_with_a_real_serial_is_issued_only_after_proof_and_the_real_chip_is_a_clone_conflict() {
    let fx = fixture();
    let state = fx.dir.path().join("sim");
    // The real chip: not provisioned yet; its serial is on the open lot's list.
    let real = device(&state, "real", 71, FaultConfig::default());
    let serial = ChipSerial(real.chip().lock().serial_number());
    fx.registry
        .lock()
        .unwrap()
        .import_lot("reel", &[serial], None)
        .unwrap();

    // The rogue: another emulated chip (its own seed, so its own key) whose config zone claims
    // the real chip's serial (bytes 0-3 and 8-12, atecc608.md).
    let opts = SimOptions::default().with_seed(72);
    let mut nv = keystamp::sim::new_simulated_chip(opts.clone())
        .state()
        .clone();
    nv.config[0..4].copy_from_slice(&serial.0[..4]);
    nv.config[8..13].copy_from_slice(&serial.0[4..]);
    SimChip::from_state(nv, opts)
        .save(state.join("rogue.chip.json"))
        .unwrap();
    let rogue = device(&state, "rogue", 72, FaultConfig::default());
    assert_eq!(rogue.chip().lock().serial_number(), serial.0);

    let report = run(&fx, &rogue);
    assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
    assert!(report.issued);
    let (rogue_fp, rogue_xy) = key_fingerprint(&rogue);
    {
        let reg = fx.registry.lock().unwrap();
        // Issued after the proof, for exactly the proven key.
        assert_eq!(reg.proof_count(serial).unwrap(), 1);
        let certs = reg.certificates_for(serial).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].public_key, rogue_xy);
    }

    // The real chip arrives.
    let report = run(&fx, &real);
    let DeviceResult::Failed(msg) = &report.result else {
        panic!("expected a clone conflict, got {report:?}");
    };
    let (real_fp, real_xy) = key_fingerprint(&real);
    assert_ne!(real_xy, rogue_xy);
    let cert_serial = fx
        .registry
        .lock()
        .unwrap()
        .certificates_for(serial)
        .unwrap()[0]
        .serial
        .clone();
    assert!(
        msg.starts_with(&format!("key: clone conflict: chip serial {serial} ")),
        "{msg}"
    );
    for want in [
        rogue_fp.as_str(),
        real_fp.as_str(),
        &format!("keystamp registry revoke {cert_serial}"),
    ] {
        assert!(msg.contains(want), "{want} missing from: {msg}");
    }
    assert!(!report.issued && report.cert_serial.is_none());
    {
        let reg = fx.registry.lock().unwrap();
        let certs = reg.certificates_for(serial).unwrap();
        assert_eq!(certs.len(), 1, "nothing issued to the second chip");
        // The conflict is an event of its own in the (signed, chained) audit log.
        let log = reg.audit_log(Some(serial)).unwrap();
        let event = log
            .iter()
            .find(|a| a.step == "clone_conflict")
            .expect("a clone_conflict audit entry");
        assert_eq!(event.outcome, Outcome::Failed);
        assert!(event.detail.contains(&real_fp), "{event:?}");
        let signer_xy = fx.signer.certs().signer_public_key().unwrap();
        assert!(matches!(
            reg.verify_chain(&SignerSet::single(&signer_xy).unwrap())
                .unwrap(),
            AuditReport::Clean { .. }
        ));
    }
    // No certificate reached the real chip (its device certificate slot is blank).
    assert!(
        real.chip().lock().state().slot(10).iter().all(|&b| b == 0),
        "no certificate on the real chip"
    );

    // Resolved as the message says: the rogue's certificate revoked, the real chip is then
    // provisioned (same lot place: one serial, one place).
    fx.registry
        .lock()
        .unwrap()
        .revoke(&cert_serial, RevocationReason::KeyCompromise)
        .unwrap();
    let report = run(&fx, &real);
    assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
    let reg = fx.registry.lock().unwrap();
    let live = reg.live_certificate(serial).unwrap().expect("live");
    assert_eq!(live.public_key, real_xy);
    assert_eq!(live.kind, CertKind::Device);
    assert_eq!(reg.lot("reel").unwrap().used, 1);
}
