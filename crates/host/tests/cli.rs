//! End-to-end tests of the `keystamp` binary: project creation, the CA, the registry commands.
//!
//! Certificates are checked against OpenSSL (skipped with a message when `openssl` is absent)
//! and against an independent Rust check that slices the DER by hand and verifies with p256,
//! using keys read straight from the PKCS#8 files.

mod common;

use common::{field, keystamp};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha256};

const PASS: &str = "correct horse battery";

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run keystamp")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "keystamp failed: {}", stderr(&o));
    stdout(&o)
}

/// Asserts a clean failure: non-zero exit, exactly one `keystamp: error:` line on stderr.
fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure, got: {}", stdout(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line, got {err:?}");
    assert!(lines[0].starts_with("keystamp: error: "), "{err}");
    lines[0].to_string()
}

fn init_encrypted(dir: &Path) -> String {
    ok(run(keystamp(dir)
        .arg("init")
        .env("KEYSTAMP_ROOT_PASSPHRASE", PASS)
        .env("KEYSTAMP_SIGNER_PASSPHRASE", PASS)))
}

fn init_insecure(dir: &Path) -> String {
    ok(run(keystamp(dir).args(["init", "--insecure-no-passphrase"])))
}

/// Whether an `openssl` binary runs; otherwise prints why the check is skipped.
fn openssl(what: &str) -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        eprintln!("SKIP {what}: openssl not found on PATH");
    }
    found
}

fn openssl_run(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl")
}

fn pem_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("read pem");
    let (label, der) = der::pem::decode_vec(text.as_bytes()).expect("pem");
    assert_eq!(label, "CERTIFICATE");
    der
}

/// Reads one DER TLV at `pos`: (tag, start of value, end of value).
fn tlv(d: &[u8], pos: usize) -> (u8, usize, usize) {
    let tag = d[pos];
    let first = d[pos + 1] as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7F;
        let len = d[pos + 2..pos + 2 + n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, 2 + n)
    };
    (tag, pos + hdr, pos + hdr + len)
}

/// Independent signature check: TBS bytes exactly as stored, signature from the BIT STRING.
fn verify_cert_with(cert: &[u8], issuer: &VerifyingKey) {
    let (tag, body, end) = tlv(cert, 0);
    assert_eq!((tag, end), (0x30, cert.len()));
    let (tbs_tag, _, tbs_end) = tlv(cert, body);
    assert_eq!(tbs_tag, 0x30);
    let tbs = &cert[body..tbs_end];
    let (alg_tag, alg_body, alg_end) = tlv(cert, tbs_end);
    assert_eq!(alg_tag, 0x30);
    // ecdsa-with-SHA256 OID 1.2.840.10045.4.3.2
    assert_eq!(&cert[alg_body..alg_end], &hex_bytes("06082a8648ce3d040302"));
    let (bs_tag, bs_body, bs_end) = tlv(cert, alg_end);
    assert_eq!((bs_tag, cert[bs_body]), (0x03, 0), "signature BIT STRING");
    let sig = DerSignature::from_bytes(&cert[bs_body + 1..bs_end]).expect("der signature");
    issuer
        .verify(tbs, &sig)
        .expect("certificate signature verifies");
}

fn hex_bytes(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

fn key_from(path: &Path, pass: Option<&str>) -> SigningKey {
    let text = std::fs::read_to_string(path).expect("key");
    match pass {
        Some(p) => SigningKey::from_pkcs8_encrypted_pem(&text, p).expect("decrypt"),
        None => SigningKey::from_pkcs8_pem(&text).expect("key"),
    }
}

#[test]
fn init_encrypted_ca_is_readable_by_openssl_and_verifies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("proj");
    let out = init_encrypted(&dir);
    assert_eq!(field(&out, "keys"), "encrypted");
    let ca = dir.join("ca");
    for f in ["root.key", "signer.key"] {
        let text = std::fs::read_to_string(ca.join(f)).expect("key");
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{f}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(ca.join(f))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{f} must not be readable by others");
        }
    }
    assert!(dir.join("keystamp.toml").is_file());
    assert!(dir.join("registry.sqlite").is_file());
    assert!(dir.join("devices").is_dir());

    // Independent Rust check with keys decrypted straight from PKCS#8.
    let root_key = key_from(&ca.join("root.key"), Some(PASS));
    let signer_key = key_from(&ca.join("signer.key"), Some(PASS));
    let root_der = pem_der(&ca.join("root.pem"));
    let signer_der = pem_der(&ca.join("signer.pem"));
    verify_cert_with(&root_der, root_key.verifying_key());
    verify_cert_with(&signer_der, root_key.verifying_key());
    // The signer cert carries the signer's public key (0x04 ‖ X ‖ Y in its SPKI).
    let signer_point = signer_key.verifying_key().to_sec1_point(false);
    assert!(signer_der.windows(65).any(|w| w == signer_point.as_bytes()));

    if openssl("openssl checks of the CA") {
        // OpenSSL parses the encrypted key: PBES2 with scrypt, N = 2^17 = 0x020000, r = 8,
        // p = 1, AES-256-CBC. (OpenSSL 3's own scrypt refuses more than 32 MiB, so it cannot
        // decrypt N = 2^17 keys; tests/passphrases.rs checks the decryption independently.)
        let key = ca.join("root.key");
        let o = openssl_run(&["asn1parse", "-in", key.to_str().expect("utf8")]);
        let text = stdout(&o);
        assert!(o.status.success(), "openssl asn1parse: {}", stderr(&o));
        for want in [
            "PBES2",
            ":scrypt",
            "INTEGER           :020000",
            "INTEGER           :08",
            "INTEGER           :01",
            "aes-256-cbc",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        let o = openssl_run(&[
            "verify",
            "-CAfile",
            ca.join("root.pem").to_str().expect("utf8"),
            ca.join("signer.pem").to_str().expect("utf8"),
        ]);
        assert!(
            o.status.success(),
            "openssl verify: {} {}",
            stdout(&o),
            stderr(&o)
        );
        // cryptoauthlib conventions: serial 0x40 ‖ signer id, id at the end of the CN.
        let o = openssl_run(&[
            "x509",
            "-in",
            ca.join("signer.pem").to_str().expect("utf8"),
            "-noout",
            "-serial",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-ext",
            "basicConstraints,keyUsage",
        ]);
        let text = stdout(&o);
        let serial = text
            .lines()
            .find_map(|l| l.strip_prefix("serial="))
            .expect("serial");
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("subject="))
            .expect("subject");
        assert_eq!(serial.len(), 6, "{text}");
        assert!(serial.starts_with("40"), "{text}");
        let cn = subject
            .split(',')
            .find_map(|p| p.strip_prefix("CN="))
            .expect("CN");
        assert!(cn.starts_with("keystamp Signer "), "{cn}");
        assert_eq!(
            cn[cn.len() - 4..],
            serial[2..],
            "signer id in CN and serial"
        );
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    }

    // `ca check` needs the passphrases: right ones work, a wrong one is one clear line.
    let o = run(keystamp(&dir)
        .args(["ca", "check"])
        .env("KEYSTAMP_ROOT_PASSPHRASE", PASS)
        .env("KEYSTAMP_SIGNER_PASSPHRASE", PASS));
    let text = ok(o);
    assert_eq!(field(&text, "signer"), "ok");
    let o = run(keystamp(&dir)
        .args(["ca", "check"])
        .env("KEYSTAMP_ROOT_PASSPHRASE", PASS)
        .env("KEYSTAMP_SIGNER_PASSPHRASE", "nope"));
    let line = failed(&o);
    assert!(line.contains("wrong signer key passphrase"), "{line}");
    let o = run(keystamp(&dir).args(["ca", "check"]));
    let line = failed(&o);
    assert!(
        line.contains("KEYSTAMP_ROOT_PASSPHRASE") && line.contains("KEYSTAMP_CA_PASSPHRASE"),
        "{line}"
    );

    // A second init refuses and changes nothing.
    let before = std::fs::read(ca.join("root.key")).expect("key");
    let o = run(keystamp(&dir)
        .arg("init")
        .env("KEYSTAMP_CA_PASSPHRASE", PASS));
    let line = failed(&o);
    assert!(line.contains("already"), "{line}");
    assert_eq!(std::fs::read(ca.join("root.key")).expect("key"), before);
}

#[test]
fn init_insecure_stores_plain_keys_and_says_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let o = run(keystamp(dir).args(["init", "--insecure-no-passphrase"]));
    assert!(stderr(&o).contains("UNENCRYPTED"), "{}", stderr(&o));
    let out = ok(o);
    assert_eq!(field(&out, "keys"), "unencrypted");
    let text = std::fs::read_to_string(dir.join("ca/signer.key")).expect("key");
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    let root_key = key_from(&dir.join("ca/root.key"), None);
    verify_cert_with(
        &pem_der(&dir.join("ca/signer.pem")),
        root_key.verifying_key(),
    );
    if openssl("openssl pkey on an unencrypted key") {
        let o = openssl_run(&[
            "pkey",
            "-in",
            dir.join("ca/root.key").to_str().expect("utf8"),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // No passphrase needed afterwards.
    let text = ok(run(keystamp(dir).args(["ca", "check"])));
    assert_eq!(field(&text, "keys"), "unencrypted");
    assert_eq!(field(&text, "root.key"), "unencrypted");
    assert_eq!(field(&text, "signer.key"), "unencrypted");
}

#[test]
fn init_without_a_passphrase_source_fails_before_writing_anything() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("p");
    let o = run(keystamp(&dir).arg("init"));
    let line = failed(&o);
    assert!(line.contains("KEYSTAMP_CA_PASSPHRASE"), "{line}");
    assert!(line.contains("--insecure-no-passphrase"), "{line}");
    assert!(!dir.join("keystamp.toml").exists());
    assert!(!dir.join("ca").exists());
    let o = run(keystamp(&dir)
        .arg("init")
        .env("KEYSTAMP_ROOT_PASSPHRASE", ""));
    assert!(failed(&o).contains("empty"));
}

#[test]
fn bad_project_files_give_one_clear_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    // No project at all.
    let line = failed(&run(keystamp(dir).args(["ca", "show"])));
    assert!(line.contains("keystamp init"), "{line}");

    init_insecure(dir);
    let profile = dir.join("keystamp.toml");
    let good = std::fs::read_to_string(&profile).expect("profile");

    std::fs::write(&profile, format!("{good}\n[locks\n")).expect("write");
    let line = failed(&run(keystamp(dir).args(["ca", "show"])));
    assert!(
        line.contains("keystamp.toml") && line.contains("line "),
        "{line}"
    );

    std::fs::write(
        &profile,
        good.replace("lock_data = true", "lock_dta = true"),
    )
    .expect("write");
    let line = failed(&run(keystamp(dir).args(["registry", "list"])));
    assert!(line.contains("lock_dta"), "{line}");

    std::fs::write(
        &profile,
        good.replace("lock_config = true", "lock_config = false"),
    )
    .expect("write");
    let line = failed(&run(keystamp(dir).args(["ca", "show"])));
    assert!(
        line.contains("`locks.lock_data`") && line.contains("lock_config"),
        "{line}"
    );

    std::fs::write(
        &profile,
        good.replace("validity_years = 20", "validity_years = \"20\""),
    )
    .expect("write");
    let line = failed(&run(keystamp(dir).args(["ca", "show"])));
    assert!(
        line.contains("validity_years") || line.contains("integer"),
        "{line}"
    );

    std::fs::write(&profile, good.replace("cn = \"{sn}\"", "cn = \"sensor\"")).expect("write");
    let line = failed(&run(keystamp(dir).args(["ca", "show"])));
    assert!(line.contains("`certificates.cn`"), "{line}");
}

#[test]
fn ca_show_prints_the_chain_with_fingerprints() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    init_insecure(dir);
    let text = ok(run(keystamp(dir).args(["ca", "show"])));
    let root_der = pem_der(&dir.join("ca/root.pem"));
    let signer_der = pem_der(&dir.join("ca/signer.pem"));
    let colon = |d: &[u8]| {
        Sha256::digest(d)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    assert_eq!(field(&text, "root.sha256"), colon(&root_der));
    assert_eq!(field(&text, "signer.sha256"), colon(&signer_der));
    assert_eq!(field(&text, "root.subject"), field(&text, "root.issuer"));
    assert_eq!(field(&text, "signer.issuer"), field(&text, "root.subject"));
    assert!(field(&text, "signer.subject").contains("keystamp Signer"));
    let nb = field(&text, "signer.not_before");
    let na = field(&text, "signer.not_after");
    // Whole hour, and exactly 30 years (the default) later.
    assert!(nb.ends_with(":00:00Z"), "{nb}");
    let years: u32 = na[..4].parse::<u32>().expect("y") - nb[..4].parse::<u32>().expect("y");
    assert_eq!((years, &na[4..]), (30, &nb[4..]));

    if openssl("ca show vs openssl fingerprints") {
        let o = openssl_run(&[
            "x509",
            "-in",
            dir.join("ca/signer.pem").to_str().expect("utf8"),
            "-noout",
            "-fingerprint",
            "-sha256",
        ]);
        let fp = stdout(&o);
        let fp = fp.trim().rsplit('=').next().expect("fp");
        assert_eq!(field(&text, "signer.sha256"), fp);
    }

    let json: serde_json::Value =
        serde_json::from_str(&ok(run(keystamp(dir).args(["ca", "show", "--json"])))).expect("json");
    assert_eq!(json["root"]["sha256"], colon(&root_der));
    assert_eq!(json["keys"], "unencrypted");
    assert_eq!(json["signer_id"].as_str().map(str::len), Some(4));
}

#[test]
fn registry_list_on_an_empty_registry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    init_insecure(dir);
    let text = ok(run(keystamp(dir).args(["registry", "list"])));
    assert_eq!(text.lines().count(), 1, "header only: {text}");
    assert!(text.starts_with("CHIP SERIAL"));
    let json = ok(run(keystamp(dir).args(["registry", "list", "--json"])));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).expect("json"),
        serde_json::json!([])
    );
    std::fs::remove_file(dir.join("registry.sqlite")).expect("rm");
    let line = failed(&run(keystamp(dir).args(["registry", "list"])));
    assert!(line.contains("registry.path"), "{line}");
}

fn chain_files(dir: &Path, chip: &str) -> (PathBuf, PathBuf) {
    let d = dir.join("devices").join(chip);
    (d.join("device.pem"), d.join("chain.pem"))
}

#[test]
fn registry_list_and_show_on_a_populated_registry() {
    use keystamp::outputs::write_device_outputs;
    use keystamp::pki::ca::{DeviceCertRequest, Signer};
    use keystamp::registry::{CertKind, ChipSerial, IssueOutcome, IssueRequest, Outcome, Registry};

    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    init_encrypted(dir);
    let signer = Signer::unlock(&dir.join("ca"), Some(PASS)).expect("unlock");
    let mut registry = Registry::open(&dir.join("registry.sqlite")).expect("registry");
    registry.set_record_signer(Box::new(signer.clone()));
    registry
        .register_station("st1", Some("/dev/ttyUSB0"))
        .expect("station");

    // Two chips: one provisioned to the end, one interrupted after the write-ahead record.
    let chips = [
        ChipSerial([0x01, 0x23, 0x83, 0x32, 0xD9, 0x2C, 0xA5, 0x71, 0xEE]),
        ChipSerial([0x01, 0x23, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0xEE]),
    ];
    let mut device_keys = Vec::new();
    for (i, chip) in chips.iter().enumerate() {
        let key = SigningKey::try_generate().expect("key");
        let point = key.verifying_key().to_sec1_point(false);
        let mut xy = [0u8; 64];
        xy.copy_from_slice(&point.as_bytes()[1..]);
        let cn = chip.to_string();
        let der = signer
            .issue_device_certificate(&DeviceCertRequest {
                chip_serial: chip.0,
                public_key: xy,
                organization: "keystamp",
                cn: &cn,
                validity_years: 20,
                now: std::time::SystemTime::now(),
            })
            .expect("issue");
        let mut serial = vec![0x40];
        serial.extend_from_slice(&chip.0);
        let out = registry
            .begin_issue(&IssueRequest {
                kind: CertKind::Device,
                chip_serial: Some(*chip),
                serial: &serial,
                public_key: &xy,
                subject_cn: &cn,
                der: &der,
                not_before: "2026-01-01T00:00:00Z",
                not_after: "2046-01-01T00:00:00Z",
            })
            .expect("begin");
        assert!(matches!(out, IssueOutcome::New(_)));
        registry
            .audit(
                Some("st1"),
                Some(*chip),
                "issue",
                Outcome::Ok,
                "write-ahead",
            )
            .expect("a");
        if i == 0 {
            let serial = out.record().serial.clone();
            registry.mark_written(&serial).expect("written");
            registry.mark_verified(&serial).expect("verified");
            registry
                .audit(Some("st1"), Some(*chip), "verify", Outcome::Ok, "chain")
                .expect("a");
            write_device_outputs(
                &dir.join("devices"),
                *chip,
                &der,
                &signer.certs().signer.der,
            )
            .expect("outputs");
        }
        device_keys.push(key);
    }
    drop(registry);

    // The issued device certificate verifies against the signer key (independent check) and,
    // through chain.pem, against the root with OpenSSL.
    let signer_key = key_from(&dir.join("ca/signer.key"), Some(PASS));
    let (device_pem, chain_pem) = chain_files(dir, &chips[0].to_string());
    verify_cert_with(&pem_der(&device_pem), signer_key.verifying_key());
    if openssl("openssl verify of a device chain") {
        let o = openssl_run(&[
            "verify",
            "-CAfile",
            dir.join("ca/root.pem").to_str().expect("utf8"),
            "-untrusted",
            chain_pem.to_str().expect("utf8"),
            device_pem.to_str().expect("utf8"),
        ]);
        assert!(
            o.status.success(),
            "openssl verify: {} {}",
            stdout(&o),
            stderr(&o)
        );
    }

    let text = ok(run(keystamp(dir).args(["registry", "list"])));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let row0 = lines
        .iter()
        .find(|l| l.starts_with(&chips[0].to_string()))
        .expect("row 0");
    assert!(
        row0.contains("provisioned") && row0.contains("verified"),
        "{row0}"
    );
    let row1 = lines
        .iter()
        .find(|l| l.starts_with(&chips[1].to_string()))
        .expect("row 1");
    assert!(
        row1.contains("issuing") && row1.contains("pending"),
        "{row1}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(run(keystamp(dir).args(["registry", "list", "--json"]))))
            .expect("json");
    let rows = json.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    let first = rows
        .iter()
        .find(|r| r["chip_serial"] == chips[0].to_string())
        .expect("chip");
    assert_eq!(first["state"], "provisioned");
    assert_eq!(first["certificate"]["status"], "verified");
    assert_eq!(first["certificate"]["serial"], format!("40{}", chips[0]));

    // show by chip serial (lower case accepted) and by certificate serial.
    let chip_lower = chips[0].to_string().to_ascii_lowercase();
    let text = ok(run(keystamp(dir).args(["registry", "show", &chip_lower])));
    assert_eq!(field(&text, "state"), "provisioned");
    assert_eq!(field(&text, "certificate[0].status"), "verified");
    assert!(
        text.contains("audit: ") && text.contains(" verify ok chain"),
        "{text}"
    );
    let cert_serial = format!("40{}", chips[0]);
    let text = ok(run(keystamp(dir).args(["registry", "show", &cert_serial])));
    assert_eq!(field(&text, "kind"), "device");
    let device_der = pem_der(&device_pem);
    let fp: Vec<String> = Sha256::digest(&device_der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(field(&text, "sha256"), fp.join(":"));
    assert!(text.contains("-----BEGIN CERTIFICATE-----"));
    let json: serde_json::Value = serde_json::from_str(&ok(run(keystamp(dir).args([
        "registry",
        "show",
        &chips[1].to_string(),
        "--json",
    ]))))
    .expect("json");
    assert_eq!(json["device"]["state"], "issuing");
    assert_eq!(json["certificates"][0]["status"], "pending");
    // The signer certificate recorded at init is found by its serial.
    let show = ok(run(keystamp(dir).args(["ca", "show"])));
    let text = ok(run(keystamp(dir).args([
        "registry",
        "show",
        field(&show, "signer.serial"),
    ])));
    assert_eq!(field(&text, "kind"), "signer");

    let line = failed(&run(keystamp(dir).args(["registry", "show", "ABCDEF"])));
    assert!(line.contains("registry list"), "{line}");
    drop(device_keys);
}

/// Unix only: the device runs in this test process and the `keystamp` binary opens it, which
/// needs a pseudo-terminal (an in-process port exists only inside its own process).
#[cfg(unix)]
#[test]
fn maintain_status_authenticates_and_reports_a_provisioned_device() {
    use keystamp::sim::{SimDevice, SimDeviceOptions};
    let dir = tempfile::tempdir().unwrap();
    init_insecure(dir.path());
    let dev = SimDevice::start(SimDeviceOptions {
        name: "cli-maint".into(),
        state_dir: dir.path().join("sim"),
        timing: keystamp_atecc_sim::Timing::Instant,
        baud: None,
        seed: Some(81),
        faults: keystamp_atecc_sim::FaultConfig::default(),
        trace: None,
        platform: keystamp_wire::PlatformSecurity::UNKNOWN,
        max_baud: keystamp::sim::SIM_MAX_BAUD,
        link_faults: Default::default(),
    })
    .unwrap();
    let port = dev.port_path().to_string();
    ok(run(keystamp(dir.path()).args([
        "provision",
        "--port",
        &port,
    ])));
    let status = ok(run(
        keystamp(dir.path()).args(["maintain", "--port", &port, "status"])
    ));
    assert_eq!(field(&status, "life cycle"), "locked", "{status}");
    assert!(
        field(&status, "authenticated").starts_with("yes"),
        "{status}"
    );
    assert_eq!(field(&status, "secure boot"), "unknown", "{status}");
    // A locked device refuses provisioning writes but `verify` still proves the identity.
    ok(run(keystamp(dir.path()).args(["verify", "--port", &port])));
}

/// `provision --simulate` over the in-process link, the one Windows uses (pseudo-terminals do
/// not exist there), run here too so it is exercised on every platform.
#[test]
fn provision_simulate_runs_over_the_in_process_link() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("proj");
    init_insecure(&dir);
    let out = ok(run(keystamp(&dir).args([
        "provision",
        "--simulate",
        "2",
        "--link",
        "in-process",
        "--timing",
        "instant",
        "--json",
    ])));
    // Both stations worked on in-process ports, and both devices got a certificate.
    assert_eq!(out.matches("\"port\": \"inproc:dev0").count(), 2, "{out}");
    assert_eq!(
        out.matches("\"result\": \"provisioned\"").count(),
        2,
        "{out}"
    );
    let chips = std::fs::read_dir(dir.join("devices"))
        .expect("devices")
        .count();
    assert_eq!(chips, 2);
}

#[test]
fn sim_refuses_the_in_process_link_in_one_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let line = failed(&run(keystamp(tmp.path()).args([
        "sim",
        "--link",
        "in-process",
    ])));
    assert!(line.contains("provision --simulate"), "{line}");
}
