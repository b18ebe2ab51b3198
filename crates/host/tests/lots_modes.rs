//! Lots and modes through the `keystamp` binary: lot commands, production refusals before any
//! device is touched, the development marker in certificates, simulated chips flagged.

use std::path::Path;
use std::process::Command;

mod common;
use common::backends::each_backend;
use common::{error_line, keystamp, ok, run_cli as run};

const PASS: &str = "correct horse battery";

/// `init --mode MODE` with an encrypted CA.
fn init_encrypted(dir: &Path, mode: &str) {
    ok(run(keystamp(dir)
        .args(["init", "--mode", mode])
        .env("KEYSTAMP_CA_PASSPHRASE", PASS)));
}

/// The error of `provision` on a port that does not exist (no passphrase given).
fn provision_port_error(dir: &Path) -> String {
    error_line(&run(keystamp(dir).args([
        "provision",
        "--port",
        "/nonexistent/tty",
    ])))
}

fn set_mode(dir: &Path, mode: &str) {
    let path = dir.join("keystamp.toml");
    let text = std::fs::read_to_string(&path).expect("profile");
    let text = text.replace("mode = \"development\"", &format!("mode = \"{mode}\""));
    assert!(text.contains(&format!("mode = \"{mode}\"")));
    std::fs::write(path, text).expect("write profile");
}

/// `openssl x509 -noout -subject` of a PEM file, or `None` when openssl is absent.
fn openssl_subject(pem: &Path) -> Option<String> {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(pem)
        .output()
        .ok()?;
    assert!(out.status.success(), "openssl x509 failed");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The subject O of a certificate, read with x509-cert (independent of openssl).
fn organization(pem: &Path) -> String {
    use der::DecodePem;
    let text = std::fs::read_to_string(pem).expect("pem");
    let cert = x509_cert::Certificate::from_pem(text.as_bytes()).expect("cert");
    let subject = cert.tbs_certificate().subject().to_string();
    subject
        .split(',')
        .find_map(|rdn| rdn.trim().strip_prefix("O="))
        .expect("an O attribute")
        .to_string()
}

#[test]
fn a_development_project_marks_its_certificates_and_flags_simulated_chips() {
    each_backend(
        "a_development_project_marks_its_certificates_and_flags_simulated_chips",
        |b| {
            let tmp = tempfile::tempdir().expect("tmp");
            let dir = tmp.path();
            let init = ok(run(keystamp(dir).args([
                "init",
                "--insecure-no-passphrase",
                "--organization",
                "Acme",
            ])));
            b.adopt(dir);
            assert!(init.contains("mode: development"), "{init}");
            let out = ok(run(keystamp(dir).args([
                "provision",
                "--simulate",
                "1",
                "--timing",
                "instant",
                "--json",
            ])));
            let summary: serde_json::Value = serde_json::from_str(&out).expect("json");
            let serial = summary
                .pointer("/devices/0/chip_serial")
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("chip serial in {out}"))
                .to_string();
            // Simulated chips: first byte 0xEE; every real ATECC608 starts 0x01 0x23.
            assert!(serial.starts_with("EE"), "{serial}");
            let device = dir.join("devices").join(&serial).join("device.pem");
            for pem in [dir.join("ca/root.pem"), dir.join("ca/signer.pem"), device] {
                assert_eq!(organization(&pem), "Acme development", "{}", pem.display());
                if let Some(subject) = openssl_subject(&pem) {
                    assert!(subject.contains("O = Acme development"), "{subject}");
                } else {
                    eprintln!("SKIP openssl subject check: openssl not found");
                }
            }
            let list = ok(run(keystamp(dir).args(["registry", "list", "--json"])));
            let rows: serde_json::Value = serde_json::from_str(&list).expect("json");
            assert_eq!(rows[0]["chip_serial"], serial.as_str());
            assert_eq!(rows[0]["simulated"], true);
            let show = ok(run(keystamp(dir).args(["registry", "show", &serial])));
            assert!(show.contains("simulated: true"), "{show}");
        },
    );
}

#[test]
fn production_refuses_simulate_unencrypted_keys_and_a_missing_lot_before_any_device() {
    each_backend(
        "production_refuses_simulate_unencrypted_keys_and_a_missing_lot_before_any_device",
        |b| {
            let tmp = tempfile::tempdir().expect("tmp");
            let dir = tmp.path();
            // init refuses a production CA without a passphrase, writing nothing.
            let e = error_line(&run(keystamp(dir).args([
                "init",
                "--mode",
                "production",
                "--insecure-no-passphrase",
            ])));
            assert!(e.contains("production") && e.contains("encrypted"), "{e}");
            assert!(!dir.join("keystamp.toml").exists());

            // A production profile over an unencrypted (development) CA.
            ok(run(keystamp(dir).args(["init", "--insecure-no-passphrase"])));
            b.adopt(dir);
            set_mode(dir, "production");
            let e = error_line(&run(keystamp(dir).args(["provision", "--simulate", "1"])));
            assert!(e.contains("--simulate is refused"), "{e}");
            assert!(!dir.join("sim").exists(), "no simulated device was started");
            let e = provision_port_error(dir);
            assert!(e.contains("are not encrypted"), "{e}");

            // An encrypted production CA still needs an open lot.
            let tmp2 = tempfile::tempdir().expect("tmp");
            let dir = tmp2.path();
            init_encrypted(dir, "production");
            b.adopt(dir);
            let e = provision_port_error(dir);
            assert!(e.contains("no open lot"), "{e}");
            ok(run(keystamp(dir).args(["lot", "create", "--count", "5"])));
            // Past the mode checks, the run gets as far as the (missing) port.
            let e = error_line(&run(keystamp(dir)
                .args(["provision", "--port", "/nonexistent/tty"])
                .env("KEYSTAMP_CA_PASSPHRASE", PASS)));
            assert!(!e.contains("production project"), "{e}");
            // The production CA carries no development marker.
            assert!(!organization(&dir.join("ca/root.pem")).contains("development"));
            // A production project's serial list may not hold a simulated chip's serial.
            let list = dir.join("list.txt");
            std::fs::write(&list, "0123A1B2C3D4E5F6EE\nEE23A1B2C3D4E5F6EE\n").expect("write");
            let e = error_line(&run(keystamp(dir).args(["lot", "import"]).arg(&list)));
            assert!(e.contains("line 2: a simulated chip's serial"), "{e}");

            // An encrypted development CA switched to production is refused: its certificates are
            // marked development.
            let tmp3 = tempfile::tempdir().expect("tmp");
            let dir = tmp3.path();
            init_encrypted(dir, "development");
            b.adopt(dir);
            set_mode(dir, "production");
            ok(run(keystamp(dir).args(["lot", "create", "--count", "5"])));
            let e = provision_port_error(dir);
            assert!(e.contains("is a development CA"), "{e}");
        },
    );
}

#[test]
fn lot_commands_and_the_lots_n_plus_first_simulated_device() {
    each_backend(
        "lot_commands_and_the_lots_n_plus_first_simulated_device",
        |b| {
            let tmp = tempfile::tempdir().expect("tmp");
            let dir = tmp.path();
            ok(run(keystamp(dir).args(["init", "--insecure-no-passphrase"])));
            b.adopt(dir);
            let list = dir.join("reel.csv");
            std::fs::write(
                &list,
                "index,serial_number\n1,0123A1B2C3D4E5F6EE\n2,0123000000000001EE\n",
            )
            .expect("write");
            let out = ok(run(keystamp(dir)
                .args(["lot", "import", "--name", "reel-1"])
                .arg(&list)));
            assert!(
                out.contains("used: 0/2") && out.contains("kind: listed"),
                "{out}"
            );
            ok(run(
                keystamp(dir).args(["lot", "create", "--count", "1", "--name", "one"])
            ));
            let out = ok(run(keystamp(dir).args(["lot", "list"])));
            assert!(out.contains("reel-1") && out.contains("one"), "{out}");

            // Two simulated chips, one place in the counted lot (neither is on the reel's list).
            let o = run(keystamp(dir).args([
                "provision",
                "--simulate",
                "2",
                "--timing",
                "instant",
                "--json",
            ]));
            assert!(!o.status.success(), "one device must fail");
            let text = String::from_utf8_lossy(&o.stdout);
            assert_eq!(text.matches("lot one is full: 1/1").count(), 1, "{text}");
            let out = ok(run(keystamp(dir).args(["lot", "show", "one"])));
            assert!(
                out.contains("used: 1/1") && out.contains("device: EE"),
                "{out}"
            );

            let out = ok(run(keystamp(dir).args(["lot", "close", "one"])));
            assert!(out.contains("status: closed"), "{out}");
            let e = error_line(&run(keystamp(dir).args(["lot", "show", "nope"])));
            assert!(e.contains("no lot named"), "{e}");

            // An oversized list is refused with a clear error.
            let big = dir.join("big.txt");
            std::fs::File::create(&big)
                .expect("create")
                .set_len(16 * 1024 * 1024 + 1)
                .expect("size");
            let e = error_line(&run(keystamp(dir).args(["lot", "import"]).arg(&big)));
            assert!(e.contains("larger than 16 MiB"), "{e}");
        },
    );
}
