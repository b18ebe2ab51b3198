//! The signer in a real SoftHSM2 token (no mocks) and verification certificates, through the
//! `keystamp` binary, checked with OpenSSL. Skipped with a printed reason when SoftHSM2 or
//! OpenSSL is absent.

mod common;
mod softhsm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{field, keystamp};
use softhsm::{LABEL, PIN, SoftHsm};

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "keystamp failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn openssl_present(what: &str) -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        eprintln!("SKIP {what}: openssl not found on PATH");
    }
    found
}

fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `keystamp` with the test token's configuration and PIN.
fn ks(dir: &Path, hsm: &SoftHsm, pin: &str) -> Command {
    let mut c = keystamp(dir);
    hsm.env(&mut c, pin);
    c
}

/// A project whose signer was moved into the test token.
fn token_project(hsm: &SoftHsm) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    ok(keystamp(tmp.path())
        .args(["init", "--insecure-no-passphrase"])
        .output()
        .expect("init"));
    let out = ok(ks(tmp.path(), hsm, PIN)
        .args(["ca", "signer-to-token", "--module", hsm.module_arg()])
        .args(["--token", LABEL, "--key-label", "signer"])
        .output()
        .expect("signer-to-token"));
    assert!(out.contains("signer.key.retired"), "{out}");
    tmp
}

fn sim_device(dir: &Path, name: &str, seed: u64) -> keystamp::sim::SimDevice {
    keystamp::sim::SimDevice::start(keystamp::sim::SimDeviceOptions {
        name: name.into(),
        state_dir: dir.join("sim"),
        timing: keystamp_atecc_sim::Timing::Instant,
        baud: None,
        seed: Some(seed),
        faults: keystamp_atecc_sim::FaultConfig::default(),
        trace: None,
        platform: keystamp_wire::PlatformSecurity::UNKNOWN,
        max_baud: keystamp::sim::SIM_MAX_BAUD,
        link_faults: Default::default(),
    })
    .expect("sim device")
}

/// Provisions two simulated devices on ports (chip seeds `seed`, `seed + 1`) with the token
/// signer and returns their certificate files.
fn provision_two(dir: &Path, hsm: &SoftHsm, name: &str, seed: u64) -> Vec<PathBuf> {
    for i in 0..2 {
        let dev = sim_device(dir, &format!("{name}{i}"), seed + i);
        ok(ks(dir, hsm, PIN)
            .args(["provision", "--port", dev.port_path()])
            .output()
            .expect("provision"));
    }
    let devices = device_pems(dir);
    assert_eq!(devices.len(), 2, "{devices:?}");
    devices
}

/// `openssl verify` of each device certificate through the project's signer to its root.
fn openssl_verify_chains(dir: &Path, devices: &[PathBuf]) {
    let root = dir.join("ca/root.pem");
    let signer = dir.join("ca/signer.pem");
    for device in devices {
        let out = openssl(&[
            "verify",
            "-CAfile",
            root.to_str().expect("utf-8"),
            "-untrusted",
            signer.to_str().expect("utf-8"),
            device.to_str().expect("utf-8"),
        ]);
        assert!(out.trim_end().ends_with(": OK"), "{out}");
    }
}

fn device_pems(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join("devices")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join("device.pem"))
        .filter(|p| p.is_file())
        .collect()
}

#[test]
fn token_signer_provisions_devices_whose_chains_openssl_verifies() {
    let Some(hsm) = SoftHsm::new("token signer provisioning") else {
        return;
    };
    let tmp = token_project(&hsm);
    let dir = tmp.path();
    // The software signer key is gone from where keystamp reads it; the profile names the token.
    assert!(!dir.join("ca/signer.key").exists());
    let toml = std::fs::read_to_string(dir.join("keystamp.toml")).expect("toml");
    assert!(
        toml.contains("[ca.pkcs11]") && toml.contains("key_label = \"signer\""),
        "{toml}"
    );
    let show = ok(ks(dir, &hsm, PIN)
        .args(["ca", "show"])
        .output()
        .expect("show"));
    assert!(field(&show, "signer.key").contains("PKCS#11"), "{show}");
    let check = ok(ks(dir, &hsm, PIN)
        .args(["ca", "check"])
        .output()
        .expect("check"));
    assert_eq!(field(&check, "signer"), "ok", "{check}");
    let o = ks(dir, &hsm, "000000")
        .args(["ca", "check"])
        .output()
        .expect("check");
    assert!(err_line(&o).contains("refused the PIN"));

    let devices = provision_two(dir, &hsm, "tok", 301);
    // The CRL is signed in the token too.
    let crl = dir.join("crl.pem");
    ok(ks(dir, &hsm, PIN)
        .args(["ca", "crl", "--out", crl.to_str().expect("utf-8")])
        .output()
        .expect("crl"));
    if !openssl_present("OpenSSL checks of token-signed certificates") {
        return;
    }
    openssl_verify_chains(dir, &devices);
    let signer = dir.join("ca/signer.pem");
    let signer = signer.to_str().expect("p");
    let crl = crl.to_str().expect("p");
    let o = Command::new("openssl")
        .args(["crl", "-in", crl, "-CAfile", signer, "-noout"])
        .output()
        .expect("openssl crl");
    let text =
        String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("verify OK"), "{text}");
}

#[test]
fn a_wrong_pin_fails_before_any_device_is_touched() {
    let Some(hsm) = SoftHsm::new("wrong PIN") else {
        return;
    };
    let tmp = token_project(&hsm);
    let dir = tmp.path();
    let dev = sim_device(dir, "pin", 303);
    let o = ks(dir, &hsm, "000000")
        .args(["provision", "--port", dev.port_path()])
        .output()
        .expect("provision");
    let err = err_line(&o);
    assert!(err.contains("refused the PIN"), "{err}");
    assert!(device_pems(dir).is_empty());
    // The device was not written: with the right PIN it provisions as a fresh one.
    ok(ks(dir, &hsm, PIN)
        .args(["provision", "--port", dev.port_path()])
        .output()
        .expect("provision"));
    assert_eq!(device_pems(dir).len(), 1);
}

/// The subject line OpenSSL prints, e.g. `subject=O=..., CN=code`.
fn subject_cn(cert: &str) -> String {
    let out = openssl(&[
        "x509",
        "-in",
        cert,
        "-noout",
        "-subject",
        "-nameopt",
        "sep_multiline",
    ]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("CN="))
        .unwrap_or_else(|| panic!("no CN in {out}"))
        .to_string()
}

#[test]
fn verification_certificates_chain_to_their_ca_and_carry_the_code() {
    let Some(hsm) = SoftHsm::new("verification certificates") else {
        return;
    };
    let tmp = token_project(&hsm);
    let dir = tmp.path();
    // Azure's codes are 48 hex digits, AWS's registration codes 64.
    let azure = "1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F7081";
    let aws = "8a7f3d0e9c1b2a3948576a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d";
    let signer_vc = dir.join("vc-signer.pem");
    let root_vc = dir.join("vc-root.pem");
    ok(ks(dir, &hsm, PIN)
        .args(["ca", "verification-cert", "--code", azure, "--ca", "signer"])
        .args(["--out", signer_vc.to_str().expect("p")])
        .output()
        .expect("vc"));
    ok(ks(dir, &hsm, PIN)
        .args(["ca", "verification-cert", "--code", aws, "--ca", "root"])
        .args(["--out", root_vc.to_str().expect("p")])
        .output()
        .expect("vc"));
    // A code that is not one is refused before any key is used.
    let o = ks(dir, &hsm, "000000")
        .args(["ca", "verification-cert", "--code", "CN=evil,O=x"])
        .output()
        .expect("vc");
    assert!(err_line(&o).contains("verification code"));
    if !openssl_present("OpenSSL checks of verification certificates") {
        return;
    }
    let root = dir.join("ca/root.pem");
    let signer = dir.join("ca/signer.pem");
    let (root, signer) = (root.to_str().expect("p"), signer.to_str().expect("p"));
    let (svc, rvc) = (signer_vc.to_str().expect("p"), root_vc.to_str().expect("p"));
    // What the cloud does: check the signature with the registered CA certificate alone.
    let out = openssl(&["verify", "-partial_chain", "-CAfile", signer, svc]);
    assert!(out.trim_end().ends_with(": OK"), "{out}");
    let out = openssl(&["verify", "-CAfile", root, rvc]);
    assert!(out.trim_end().ends_with(": OK"), "{out}");
    // The signer's certificate is not signed by the root key directly.
    let o = Command::new("openssl")
        .args(["verify", "-CAfile", root, svc])
        .output()
        .expect("openssl");
    assert!(
        !o.status.success(),
        "signer-issued cert verified against the root alone"
    );
    assert_eq!(subject_cn(svc), azure);
    assert_eq!(subject_cn(rvc), aws);
}

#[test]
fn the_token_signer_key_cannot_be_read_or_wrapped_out() {
    let Some(hsm) = SoftHsm::new("non-extractable signer key") else {
        return;
    };
    hsm.run_child("token_key_refuses_export_in_child", "nx", "export refused");
}

#[test]
fn token_key_refuses_export_in_child() {
    use keystamp::pki::pkcs11::TokenKey;

    let Some(cfg) = softhsm::child_config() else {
        return; // Only meaningful inside the parent test's child process.
    };
    let pin = cryptoki::types::AuthPin::from(PIN.to_string());
    let key = TokenKey::generate(&cfg, &pin).expect("generate in token");
    softhsm::assert_key_stays_in_token(&key, true);
    // Once the session is closed (PKCS#11 logins are per application while a session is
    // open), a wrong PIN is refused with the typed error.
    drop(key);
    let wrong = cryptoki::types::AuthPin::from("000000".to_string());
    let e = TokenKey::open(&cfg, &wrong).expect_err("wrong PIN");
    assert!(
        matches!(e, keystamp::pki::pkcs11::Pkcs11Error::WrongPin(_)),
        "{e}"
    );
    println!("export refused");
}

#[test]
fn a_software_signer_imported_into_the_token_stays_there_and_provisions() {
    let Some(hsm) = SoftHsm::new("signer imported into the token") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    ok(keystamp(dir)
        .args(["init", "--insecure-no-passphrase"])
        .output()
        .expect("init"));
    let signer_before = std::fs::read(dir.join("ca/signer.pem")).expect("signer.pem");
    let key_before = std::fs::read(dir.join("ca/signer.key")).expect("signer.key");
    let import = |pin: &str| {
        ks(dir, &hsm, pin)
            .args(["ca", "signer-to-token", "--import"])
            .args(["--module", hsm.module_arg(), "--token", LABEL])
            .args(["--key-label", "imported"])
            .output()
            .expect("signer-to-token --import")
    };
    // A wrong PIN changes nothing.
    assert!(err_line(&import("000000")).contains("refused the PIN"));
    assert!(dir.join("ca/signer.key").exists());
    let out = ok(import(PIN));
    assert!(out.contains("signer.key.retired"), "{out}");
    // Same signer certificate; the software key is out of keystamp's way.
    assert_eq!(
        std::fs::read(dir.join("ca/signer.pem")).expect("signer.pem"),
        signer_before
    );
    assert!(!dir.join("ca/signer.key").exists());
    assert_eq!(
        std::fs::read(dir.join("ca/signer.key.retired")).expect("retired"),
        key_before
    );
    // Importing again is refused: the software key is retired, the key is in the token once.
    assert!(err_line(&import(PIN)).contains("no software signer key to import"));

    let devices = provision_two(dir, &hsm, "imp", 311);
    hsm.run_child(
        "imported_key_refuses_export_in_child",
        "imported",
        "imported key stays",
    );
    if !openssl_present("OpenSSL checks of the imported signer's certificates") {
        return;
    }
    openssl_verify_chains(dir, &devices);
}

#[test]
fn imported_key_refuses_export_in_child() {
    let Some(cfg) = softhsm::child_config() else {
        return; // Only meaningful inside the parent test's child process.
    };
    let pin = cryptoki::types::AuthPin::from(PIN.to_string());
    let key = keystamp::pki::pkcs11::TokenKey::open(&cfg, &pin).expect("imported key");
    assert_eq!(key.extractable(), Some(false));
    softhsm::assert_key_stays_in_token(&key, false);
    println!("imported key stays");
}

/// Signs registry records with a key of the test's own (a rogue signer).
struct RogueSigner(p256::ecdsa::SigningKey);

impl keystamp::registry::chain::RecordSigner for RogueSigner {
    fn sign_record(
        &self,
        digest: &[u8; 32],
    ) -> Result<[u8; 64], keystamp::registry::chain::ChainError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sig: p256::ecdsa::Signature = self
            .0
            .sign_prehash(digest)
            .map_err(|e| keystamp::registry::chain::ChainError::Sign(e.to_string()))?;
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.normalize_s().to_bytes());
        Ok(out)
    }

    fn record_key(&self) -> Result<[u8; 64], keystamp::registry::chain::ChainError> {
        Ok(keystamp::pki::ca::public_key_of(self.0.verifying_key()))
    }
}

/// Signer rotation: devices provisioned with the software signer, the signer moved into the
/// token, more devices provisioned: `registry audit` verifies the old key's records with the
/// old signer certificate and the token's with the new one. A record signed by a key whose
/// certificate does not chain to the project root is then named.
#[test]
fn a_rotated_signer_keeps_the_registry_auditable() {
    let Some(hsm) = SoftHsm::new("signer rotation audit") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    ok(keystamp(dir)
        .args(["init", "--insecure-no-passphrase"])
        .output()
        .expect("init"));
    let old_signer = std::fs::read_to_string(dir.join("ca/signer.pem")).expect("signer");
    let dev = sim_device(dir, "before", 311);
    ok(keystamp(dir)
        .args(["provision", "--port", dev.port_path()])
        .output()
        .expect("provision"));
    ok(ks(dir, &hsm, PIN)
        .args(["ca", "signer-to-token", "--module", hsm.module_arg()])
        .args(["--token", LABEL, "--key-label", "signer"])
        .output()
        .expect("signer-to-token"));
    assert_ne!(
        std::fs::read_to_string(dir.join("ca/signer.pem")).expect("signer"),
        old_signer
    );
    let dev = sim_device(dir, "after", 312);
    ok(ks(dir, &hsm, PIN)
        .args(["provision", "--port", dev.port_path()])
        .output()
        .expect("provision"));
    assert_eq!(device_pems(dir).len(), 2);

    let db = dir.join("registry.sqlite");
    let keys: i64 = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT COUNT(DISTINCT signer_key) FROM (SELECT signer_key FROM audit \
             UNION ALL SELECT signer_key FROM certificates)",
            [],
            |r| r.get(0),
        )
        .expect("keys");
    assert_eq!(keys, 2, "records of both signers");
    let out = ok(ks(dir, &hsm, PIN)
        .args(["registry", "audit"])
        .output()
        .expect("audit"));
    assert!(out.contains("chain intact"), "{out}");
    // The old signer's certificate is kept for it (the registry also recorded it).
    assert_eq!(
        std::fs::read_dir(dir.join("ca/signers"))
            .expect("history")
            .count(),
        1
    );

    // A rogue signer: a self-signed CA certificate (not the project root's), recorded as a
    // signer and signing the next records.
    let (rogue_key, rogue_cert) = keystamp::pki::ca::make_root(
        &keystamp::project::CaSection::default(),
        std::time::SystemTime::now(),
    )
    .expect("rogue CA");
    {
        let mut reg = keystamp::registry::Registry::open(&db).expect("open");
        reg.set_record_signer(Box::new(RogueSigner(rogue_key)));
        let xy = rogue_cert.public_key().expect("key");
        reg.begin_issue(&keystamp::registry::IssueRequest {
            kind: keystamp::registry::CertKind::Signer,
            chip_serial: None,
            serial: &rogue_cert.serial(),
            public_key: &xy,
            subject_cn: "rogue signer",
            der: &rogue_cert.der,
            not_before: "2026-01-01T00:00:00Z",
            not_after: "2036-01-01T00:00:00Z",
        })
        .expect("rogue record");
    }
    let o = ks(dir, &hsm, PIN)
        .args(["registry", "audit"])
        .output()
        .expect("audit");
    let err = err_line(&o);
    assert!(
        err.contains("first bad row: certificates row id")
            && err.contains("does not chain to the project root"),
        "{err}"
    );
}
