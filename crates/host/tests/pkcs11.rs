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
    c.env("SOFTHSM2_CONF", hsm.conf())
        .env("KEYSTAMP_PKCS11_PIN", pin);
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
    })
    .expect("sim device")
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

    for (i, seed) in [(0, 301u64), (1, 302)] {
        let dev = sim_device(dir, &format!("tok{i}"), seed);
        ok(ks(dir, &hsm, PIN)
            .args(["provision", "--port", dev.port_path()])
            .output()
            .expect("provision"));
    }
    let devices = device_pems(dir);
    assert_eq!(devices.len(), 2, "{devices:?}");
    // The CRL is signed in the token too.
    let crl = dir.join("crl.pem");
    ok(ks(dir, &hsm, PIN)
        .args(["ca", "crl", "--out", crl.to_str().expect("utf-8")])
        .output()
        .expect("crl"));
    if !openssl_present("OpenSSL checks of token-signed certificates") {
        return;
    }
    let root = dir.join("ca/root.pem");
    let signer = dir.join("ca/signer.pem");
    let (root, signer) = (root.to_str().expect("p"), signer.to_str().expect("p"));
    for device in &devices {
        let out = openssl(&[
            "verify",
            "-CAfile",
            root,
            "-untrusted",
            signer,
            device.to_str().expect("utf-8"),
        ]);
        assert!(out.trim_end().ends_with(": OK"), "{out}");
    }
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

/// Set (to the module path) only in the child process that runs
/// [`token_key_refuses_export_in_child`] with the token's SOFTHSM2_CONF.
const CHILD_ENV: &str = "KEYSTAMP_TEST_SOFTHSM_MODULE";

#[test]
fn the_token_signer_key_cannot_be_read_or_wrapped_out() {
    let Some(hsm) = SoftHsm::new("non-extractable signer key") else {
        return;
    };
    // SoftHSM2 reads SOFTHSM2_CONF when the module initializes; a child process gets the
    // token's configuration without changing this process's environment.
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "token_key_refuses_export_in_child",
            "--nocapture",
        ])
        .env("SOFTHSM2_CONF", hsm.conf())
        .env(CHILD_ENV, hsm.module_arg())
        .output()
        .expect("child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "child ran no test: {text}");
    assert!(text.contains("export refused"), "{text}");
}

#[test]
fn token_key_refuses_export_in_child() {
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, AttributeType};
    use keystamp::pki::pkcs11::TokenKey;

    let Ok(module) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful inside the parent test's child process.
    };
    let cfg = keystamp::project::Pkcs11Section {
        module: module.into(),
        token: LABEL.into(),
        key_label: "nx".into(),
    };
    let pin = cryptoki::types::AuthPin::from(PIN.to_string());
    let key = TokenKey::generate(&cfg, &pin).expect("generate in token");
    key.with_session(|s| {
        let attrs = s
            .get_attributes(
                key.private_handle(),
                &[
                    AttributeType::Value,
                    AttributeType::Extractable,
                    AttributeType::Sensitive,
                    AttributeType::NeverExtractable,
                ],
            )
            .expect("C_GetAttributeValue");
        // CKA_VALUE of a sensitive key comes back as "attribute sensitive", i.e. absent.
        assert!(
            !attrs.iter().any(|a| matches!(a, Attribute::Value(_))),
            "the token handed out CKA_VALUE"
        );
        assert!(attrs.contains(&Attribute::Extractable(false)), "{attrs:?}");
        assert!(attrs.contains(&Attribute::Sensitive(true)), "{attrs:?}");
        assert!(
            attrs.contains(&Attribute::NeverExtractable(true)),
            "{attrs:?}"
        );
        let wrapping = s
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::ValueLen(32.into()),
                    Attribute::Wrap(true),
                    Attribute::Token(false),
                ],
            )
            .expect("AES wrapping key");
        let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key.private_handle());
        assert!(
            matches!(wrapped, Err(CkError::Pkcs11(RvError::KeyUnextractable, _))),
            "wrapping the signer key: {wrapped:?}"
        );
    });
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
