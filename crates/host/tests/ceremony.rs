//! The offline root ceremony and bring-your-own CA through the `keystamp` binary: two project
//! directories with the root key only in the offline one; a third-party CA made with OpenSSL.
//! Device chains are checked with `openssl verify` (skipped with a message when `openssl` is
//! absent; the OpenSSL-made CA test needs it to make the CA and is skipped as a whole).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
mod softhsm;
use common::{error_line, field, keystamp, ok, run_cli as run};
use softhsm::{LABEL, PIN, SoftHsm};

const ROOT_PASS: &str = "offline root passphrase";
const SIGNER_PASS: &str = "station signer passphrase";

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl(dir: &Path, args: &[&str]) -> Output {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Provisions `n` simulated devices in `station` and returns their output directories.
fn provision(station: &Path, n: usize) -> Vec<PathBuf> {
    provision_with(station, n, None)
}

/// [`provision`], with the signer in `token` when given.
fn provision_with(station: &Path, n: usize, token: Option<&SoftHsm>) -> Vec<PathBuf> {
    let mut cmd = keystamp(station);
    if let Some(hsm) = token {
        hsm.env(&mut cmd, PIN);
    }
    let out = ok(run(cmd
        .args([
            "provision",
            "--simulate",
            &n.to_string(),
            "--timing",
            "instant",
            "--json",
        ])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    let summary: serde_json::Value = serde_json::from_str(&out).expect("json");
    let devices = summary["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), n, "{out}");
    devices
        .iter()
        .map(|d| {
            let serial = d["chip_serial"].as_str().expect("chip serial");
            station.join("devices").join(serial)
        })
        .collect()
}

/// The per-device output directories of a project.
fn device_dirs(project: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(project.join("devices"))
        .expect("devices")
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// `openssl req -verify`: the request's self-signature verifies.
fn openssl_verifies_request(dir: &Path, request: &str) {
    let o = openssl(dir, &["req", "-in", request, "-verify", "-noout"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(all.contains("verify OK"), "{all}");
}

/// `openssl verify` of each device's certificate against `root` through its signer.
fn openssl_verify_devices(root: &Path, devices: &[PathBuf]) {
    if !have_openssl() {
        eprintln!("SKIP openssl verify of the device chains: openssl not found");
        return;
    }
    for d in devices {
        let o = openssl(
            d,
            &[
                "verify",
                "-CAfile",
                s(root),
                "-untrusted",
                "signer.pem",
                "device.pem",
            ],
        );
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("device.pem: OK"), "{text}");
    }
}

/// A temporary directory with the two project directories of the ceremony: the offline
/// machine's and the station's.
fn offline_and_station() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let offline = tmp.path().join("offline");
    let station = tmp.path().join("station");
    std::fs::create_dir_all(&offline).expect("offline dir");
    std::fs::create_dir_all(&station).expect("station dir");
    (tmp, offline, station)
}

#[test]
fn offline_ceremony_end_to_end_root_key_only_offline() {
    let (tmp, offline, station) = offline_and_station();

    // 1. Offline machine: root only.
    ok(run(keystamp(&offline)
        .args(["ca", "init-root", "--organization", "Acme"])
        .env("KEYSTAMP_ROOT_PASSPHRASE", ROOT_PASS)));
    assert!(offline.join("ca/root.key").exists());
    assert!(!offline.join("ca/signer.key").exists());

    // 2. Station: a fresh signer key and its request.
    let request = tmp.path().join("signer.csr");
    ok(run(keystamp(&station)
        .args(["ca", "signer-request", "--organization", "Acme", "--out"])
        .arg(&request)
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    if have_openssl() {
        // OpenSSL checks the request's self-signature on its own.
        openssl_verifies_request(tmp.path(), "signer.csr");
    }

    // An altered request is refused before the root key is opened (no passphrase given).
    let pem = std::fs::read_to_string(&request).expect("request");
    let der = pem_body(&pem);
    let mut tampered = der.clone();
    // Flip a bit inside the CN (the subject precedes the key and the signature).
    let cn = tampered
        .windows(4)
        .position(|w| w == b"Acme")
        .expect("O in the request");
    tampered[cn] ^= 0x01;
    let bad = tmp.path().join("tampered.csr");
    std::fs::write(&bad, to_pem("CERTIFICATE REQUEST", &tampered)).expect("write");
    let e = error_line(&run(keystamp(&offline)
        .args(["ca", "sign-signer", s(&bad), "--out"])
        .arg(tmp.path().join("never.pem"))));
    assert!(e.contains("signature does not verify"), "{e}");

    // 3. Offline: the root signs it.
    let signer = tmp.path().join("signer.pem");
    let signed = ok(run(keystamp(&offline)
        .args(["ca", "sign-signer", s(&request), "--out", s(&signer)])
        .env("KEYSTAMP_ROOT_PASSPHRASE", ROOT_PASS)));
    assert!(
        field(&signed, "signer.subject").contains("Acme"),
        "{signed}"
    );
    if have_openssl() {
        let o = openssl(
            tmp.path(),
            &["x509", "-in", "signer.pem", "-noout", "-text"],
        );
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(
            text.contains("Certificate Sign, CRL Sign"),
            "key usage: {text}"
        );
        let root = offline.join("ca/root.pem");
        let o = openssl(tmp.path(), &["verify", "-CAfile", s(&root), "signer.pem"]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("OK"));
    }

    // 4. Station: import; the project is created without the root key.
    let root_copy = tmp.path().join("root.pem");
    std::fs::copy(offline.join("ca/root.pem"), &root_copy).expect("carry root.pem");
    let imported = ok(run(keystamp(&station)
        .args(["ca", "import-signer", s(&signer), "--root", s(&root_copy)])
        .args(["--mode", "development"])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    assert_eq!(field(&imported, "root.key"), "offline");
    assert!(!station.join("ca/root.key").exists());
    assert!(station.join("ca/root.pem").exists());

    // Every station command works without root.key.
    let check = ok(run(keystamp(&station)
        .args(["ca", "check"])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    assert_eq!(field(&check, "root.key"), "offline", "{check}");
    let show = ok(run(keystamp(&station).args(["ca", "show"])));
    assert_eq!(field(&show, "root.key"), "offline", "{show}");

    let devices = provision(&station, 2);
    openssl_verify_devices(&station.join("ca/root.pem"), &devices);
    // A device on a port: provision, then verify and authenticated maintenance.
    let dev = common::device(
        &station.join("sim-port"),
        "ceremony",
        91,
        keystamp_atecc_sim::FaultConfig::default(),
    );
    let port = dev.port_path().to_string();
    let with_signer = |args: &[&str]| {
        ok(run(keystamp(&station)
            .args(args)
            .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)))
    };
    with_signer(&["provision", "--port", &port]);
    with_signer(&["verify", "--port", &port]);
    let status = with_signer(&["maintain", "--port", &port, "status"]);
    assert!(
        field(&status, "authenticated").starts_with("yes"),
        "{status}"
    );
    ok(run(keystamp(&station)
        .args(["ca", "crl", "--out", s(&tmp.path().join("crl.pem"))])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));

    // The certificate of another station's key is refused.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).expect("other");
    ok(run(keystamp(&other)
        .args(["ca", "signer-request", "--out"])
        .arg(tmp.path().join("other.csr"))
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    let e = error_line(&run(keystamp(&other)
        .args(["ca", "import-signer", s(&signer), "--root", s(&root_copy)])
        .args(["--mode", "development"])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    assert!(e.contains("not for the signer key"), "{e}");
    assert!(!other.join("keystamp.toml").exists());
}

/// The DER inside a PEM text.
fn pem_body(pem: &str) -> Vec<u8> {
    use base64ct::{Base64, Encoding};
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Base64::decode_vec(&b64).expect("base64")
}

fn to_pem(label: &str, der: &[u8]) -> String {
    use base64ct::{Base64, Encoding};
    let b64 = Base64::encode_string(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A company CA made with OpenSSL: root (self-signed) and a signer issued with `openssl ca`
/// from `start` to `end` (YYYYMMDDHHMMSSZ) with `serial`; the signer key encrypted with
/// PKCS#8 (OpenSSL's default PBES2).
fn openssl_ca(dir: &Path, start: &str, end: &str, serial: &str) {
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "root.key",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-subj",
            "/O=Acme/CN=Acme Root",
            "-days",
            "3650",
            "-sha256",
            "-out",
            "root.pem",
        ],
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "signer.plain.key",
        ],
    );
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "signer.plain.key",
            "-passout",
            &format!("pass:{SIGNER_PASS}"),
            "-out",
            "signer.key",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "signer.plain.key",
            "-subj",
            "/O=Acme/CN=Acme Signer 0A1B",
            "-out",
            "signer.csr",
        ],
    );
    std::fs::write(dir.join("index.txt"), "").expect("index");
    std::fs::write(dir.join("serial"), format!("{serial}\n")).expect("serial");
    std::fs::create_dir_all(dir.join("new")).expect("new certs");
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = acme\n\
         [acme]\ndatabase = index.txt\nnew_certs_dir = new\nserial = serial\n\
         certificate = root.pem\nprivate_key = root.key\ndefault_md = sha256\n\
         policy = any\nunique_subject = no\npreserve = yes\n\
         [any]\norganizationName = optional\ncommonName = supplied\n\
         [signer]\nbasicConstraints = critical,CA:TRUE,pathlen:0\n\
         keyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    )
    .expect("cnf");
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-in",
            "signer.csr",
            "-out",
            "signer.pem",
            "-notext",
            "-extensions",
            "signer",
            "-startdate",
            start,
            "-enddate",
            end,
        ],
    );
}

fn import(station: &Path, company: &Path) -> Output {
    run(keystamp(station)
        .args(["ca", "import", "--mode", "development"])
        .args(["--root", s(&company.join("root.pem"))])
        .args(["--signer", s(&company.join("signer.pem"))])
        .args(["--signer-key", s(&company.join("signer.key"))])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS))
}

#[test]
fn a_third_party_ca_made_with_openssl_provisions_devices() {
    if !have_openssl() {
        eprintln!("SKIP third-party CA: openssl not found (it makes the CA)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let company = tmp.path().join("company");
    let station = tmp.path().join("station");
    std::fs::create_dir_all(&company).expect("company");
    openssl_ca(&company, "20260101000000Z", "20310101000000Z", "400A1B");
    // A plain key is refused unless asked for, and never in production.
    let plain = |station: &Path, extra: &[&str]| {
        run(keystamp(station)
            .args(["ca", "import", "--root", s(&company.join("root.pem"))])
            .args(["--signer", s(&company.join("signer.pem"))])
            .args(["--signer-key", s(&company.join("signer.plain.key"))])
            .args(extra))
    };
    let e = error_line(&plain(&station, &["--mode", "development"]));
    assert!(e.contains("is not encrypted"), "{e}");
    let e = error_line(&plain(
        &station,
        &["--mode", "production", "--insecure-no-passphrase"],
    ));
    assert!(e.contains("not encrypted"), "{e}");
    assert!(!station.join("ca").exists(), "nothing written");
    let out = ok(import(&station, &company));
    assert_eq!(field(&out, "root.key"), "offline");
    assert!(!station.join("ca/root.key").exists());
    // The imported key is stored encrypted under the same passphrase.
    let key = std::fs::read_to_string(station.join("ca/signer.key")).expect("key");
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let devices = provision(&station, 2);
    openssl_verify_devices(&company.join("root.pem"), &devices);
}

#[test]
fn an_incompatible_third_party_signer_gets_the_precise_message() {
    if !have_openssl() {
        eprintln!("SKIP incompatible third-party CA: openssl not found (it makes the CA)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    // notBefore at 00:30: a compressed certificate keeps the issue date to the hour.
    let company = tmp.path().join("half-hour");
    std::fs::create_dir_all(&company).expect("company");
    openssl_ca(&company, "20260101003000Z", "20310101003000Z", "400A1B");
    let station = tmp.path().join("station1");
    let e = error_line(&import(&station, &company));
    assert!(
        e.contains("the issue date 2026-01-01 00:30:00 UTC is not on a whole hour"),
        "{e}"
    );
    assert!(!station.join("ca").exists(), "nothing written");
    assert!(!station.join("keystamp.toml").exists(), "nothing written");

    // A serial that is not 0x40 ‖ signer id: says which serial to use.
    let company = tmp.path().join("serial");
    std::fs::create_dir_all(&company).expect("company");
    openssl_ca(&company, "20260101000000Z", "20310101000000Z", "1234");
    let station = tmp.path().join("station2");
    let e = error_line(&import(&station, &company));
    assert!(
        e.contains("serial number 1234") && e.contains("serial 400A1B"),
        "{e}"
    );

    // A signer of another root.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).expect("other");
    openssl_ca(&other, "20260101000000Z", "20310101000000Z", "400A1B");
    let station = tmp.path().join("station3");
    let o = run(keystamp(&station)
        .args(["ca", "import", "--mode", "development"])
        .args(["--root", s(&other.join("root.pem"))])
        .args(["--signer", s(&company.join("signer.pem"))])
        .args(["--signer-key", s(&company.join("signer.key"))])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS));
    let e = error_line(&o);
    assert!(e.contains("does not chain to the root"), "{e}");
}

/// `keystamp` in `dir` with `hsm`'s token and PIN.
fn ks(dir: &Path, hsm: &SoftHsm) -> Command {
    let mut c = keystamp(dir);
    hsm.env(&mut c, PIN);
    c
}

/// The subject CN of a PEM certificate, as OpenSSL reads it.
fn openssl_cn(cert: &Path) -> String {
    let o = openssl(
        cert.parent().expect("dir"),
        &[
            "x509",
            "-in",
            s(cert),
            "-noout",
            "-subject",
            "-nameopt",
            "sep_multiline",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.lines()
        .find_map(|l| l.trim().strip_prefix("CN="))
        .unwrap_or_else(|| panic!("no CN in {out}"))
        .to_string()
}

/// `openssl verify` of `cert` against `root` alone: must print `OK`.
fn openssl_verify_by_root(root: &Path, cert: &Path) {
    let o = openssl(
        cert.parent().expect("dir"),
        &["verify", "-CAfile", s(root), s(cert)],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.trim_end().ends_with(": OK"), "{text}");
}

/// `ca verification-cert --ca root` on a station of an offline root: one error line saying to
/// run it on the offline machine, with the command.
fn station_refuses_root_verification_cert(station: &Path) {
    let e = error_line(&run(keystamp(station)
        .args(["ca", "verification-cert", "--ca", "root"])
        .args(["--code", AZURE_CODE])));
    let command = format!("keystamp ca verification-cert --ca root --code {AZURE_CODE}");
    assert!(
        e.contains("on the offline machine") && e.contains(&command),
        "{e}"
    );
}

const AZURE_CODE: &str = "1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F7081";

#[test]
fn roots_and_signers_in_tokens_on_both_machines_provision_and_prove_possession() {
    let Some(offline_hsm) = SoftHsm::new("root in a token") else {
        return;
    };
    let (tmp, offline, station) = offline_and_station();

    let init_root = |cmd: &mut Command| {
        run(cmd
            .args(["ca", "init-root", "--organization", "Acme"])
            .args(["--module", offline_hsm.module_arg(), "--token", LABEL])
            .args(["--key-label", "root"]))
    };
    let mut wrong = keystamp(&offline);
    offline_hsm.env(&mut wrong, "000000");
    let e = error_line(&init_root(&mut wrong));
    assert!(e.contains("refused the PIN"), "{e}");
    assert!(!offline.join("ca/root.pem").exists() && !offline.join("ca/root.pkcs11.toml").exists());
    let out = ok(init_root(&mut ks(&offline, &offline_hsm)));
    assert!(field(&out, "root.key").contains("PKCS#11"), "{out}");
    assert!(!offline.join("ca/root.key").exists(), "no key file");
    assert!(offline.join("ca/root.pkcs11.toml").exists());
    let root = offline.join("ca/root.pem");
    // A second root in the same directory is refused before the token is asked.
    let e = error_line(&run(ks(&offline, &offline_hsm)
        .args(["ca", "init-root", "--module", offline_hsm.module_arg()])
        .args(["--token", LABEL, "--key-label", "root2"])));
    assert!(e.contains("already exists"), "{e}");

    // Station: its own token (another machine's HSM) makes the signer key and request; no
    // key file anywhere.
    let Some(station_hsm) = SoftHsm::new("station signer in a token") else {
        return;
    };
    let request = tmp.path().join("signer.csr");
    ok(run(ks(&station, &station_hsm)
        .args(["ca", "signer-request", "--organization", "Acme"])
        .args(["--module", station_hsm.module_arg(), "--token", LABEL])
        .arg("--out")
        .arg(&request)));
    assert!(station.join("ca/signer-request.pkcs11.toml").exists());
    assert!(!station.join("ca/signer.key").exists());
    let signer = tmp.path().join("signer.pem");
    // Offline, a wrong PIN: nothing issued.
    let sign =
        |cmd: &mut Command| run(cmd.args(["ca", "sign-signer", s(&request), "--out", s(&signer)]));
    let mut wrong = keystamp(&offline);
    offline_hsm.env(&mut wrong, "000000");
    let e = error_line(&sign(&mut wrong));
    assert!(e.contains("refused the PIN"), "{e}");
    assert!(!signer.exists());
    ok(sign(&mut ks(&offline, &offline_hsm)));
    // A station without the token's PIN creates nothing.
    let import = |cmd: &mut Command| {
        run(cmd
            .args(["ca", "import-signer", s(&signer), "--root", s(&root)])
            .args(["--mode", "development"]))
    };
    let mut wrong = keystamp(&station);
    station_hsm.env(&mut wrong, "000000");
    let e = error_line(&import(&mut wrong));
    assert!(e.contains("refused the PIN"), "{e}");
    assert!(!station.join("keystamp.toml").exists());
    ok(import(&mut ks(&station, &station_hsm)));
    assert!(!station.join("ca/signer-request.pkcs11.toml").exists());
    let toml = std::fs::read_to_string(station.join("keystamp.toml")).expect("toml");
    assert!(toml.contains("[ca.pkcs11]"), "{toml}");
    let devices = provision_with(&station, 2, Some(&station_hsm));

    // Offline: a root verification certificate from the token (no project there).
    let vc = tmp.path().join("verify-root.pem");
    ok(run(ks(&offline, &offline_hsm)
        .args([
            "ca",
            "verification-cert",
            "--ca",
            "root",
            "--code",
            AZURE_CODE,
        ])
        .args(["--out", s(&vc)])));
    // The station cannot: one line saying where to run it.
    station_refuses_root_verification_cert(&station);
    if !have_openssl() {
        eprintln!("SKIP openssl checks of the token root's certificates: openssl not found");
        return;
    }
    openssl_verify_by_root(&root, &root);
    openssl_verify_by_root(&root, &signer);
    openssl_verify_devices(&root, &devices);
    openssl_verify_by_root(&root, &vc);
    assert_eq!(openssl_cn(&vc), AZURE_CODE);
}

#[test]
fn a_station_under_an_offline_root_moves_its_signer_into_a_token_by_request() {
    let Some(hsm) = SoftHsm::new("signer rotation into a token by request") else {
        return;
    };
    let (tmp, offline, station) = offline_and_station();
    let with_root = |cmd: &mut Command| ok(run(cmd.env("KEYSTAMP_ROOT_PASSPHRASE", ROOT_PASS)));
    with_root(keystamp(&offline).args(["ca", "init-root"]));
    let root = offline.join("ca/root.pem");
    let first_csr = tmp.path().join("first.csr");
    let first = tmp.path().join("first.pem");
    ok(run(keystamp(&station)
        .args(["ca", "signer-request", "--out", s(&first_csr)])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    with_root(keystamp(&offline).args(["ca", "sign-signer", s(&first_csr), "--out", s(&first)]));
    ok(run(keystamp(&station)
        .args(["ca", "import-signer", s(&first), "--root", s(&root)])
        .args(["--mode", "development"])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    // A device of the first signer (on a port, its chip state apart from `--simulate`'s).
    let dev = common::device(
        &station.join("sim-old"),
        "old",
        92,
        keystamp_atecc_sim::FaultConfig::default(),
    );
    ok(run(keystamp(&station)
        .args(["provision", "--port", dev.port_path()])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    let old_devices = device_dirs(&station);
    assert_eq!(old_devices.len(), 1, "{old_devices:?}");

    // Root verification certificates: refused on the station with the command, made offline.
    station_refuses_root_verification_cert(&station);
    let vc = tmp.path().join("verify-root.pem");
    with_root(
        keystamp(&offline)
            .args([
                "ca",
                "verification-cert",
                "--ca",
                "root",
                "--code",
                AZURE_CODE,
            ])
            .args(["--out", s(&vc)]),
    );

    // signer-to-token cannot certify a token key here: it names the request steps.
    let e = error_line(&run(ks(&station, &hsm)
        .args(["ca", "signer-to-token", "--module", hsm.module_arg()])
        .args(["--token", LABEL, "--key-label", "signer2"])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)));
    assert!(
        e.contains("root key is offline") && e.contains("keystamp ca signer-request --module"),
        "{e}"
    );
    let toml = std::fs::read_to_string(station.join("keystamp.toml")).expect("toml");
    assert!(!toml.contains("[ca.pkcs11]"), "{toml}");

    // The request from a token key, signed offline, imported on the station.
    let csr = tmp.path().join("token.csr");
    let out = ok(run(ks(&station, &hsm)
        .args(["ca", "signer-request", "--module", hsm.module_arg()])
        .args([
            "--token",
            LABEL,
            "--key-label",
            "signer2",
            "--out",
            s(&csr),
        ])));
    assert!(field(&out, "signer.key").contains("PKCS#11"), "{out}");
    let new_signer = tmp.path().join("token-signer.pem");
    with_root(keystamp(&offline).args(["ca", "sign-signer", s(&csr), "--out", s(&new_signer)]));
    // Without the PIN the import stops before changing anything.
    let mut wrong = keystamp(&station);
    hsm.env(&mut wrong, "000000");
    let e = error_line(&run(wrong.args([
        "ca",
        "import-signer",
        s(&new_signer),
        "--root",
        s(&root),
    ])));
    assert!(e.contains("refused the PIN"), "{e}");
    assert!(station.join("ca/signer.key").exists());
    let out = ok(run(ks(&station, &hsm).args([
        "ca",
        "import-signer",
        s(&new_signer),
        "--root",
        s(&root),
    ])));
    assert!(field(&out, "signer.key").contains("PKCS#11"), "{out}");
    assert_eq!(
        std::fs::read(station.join("ca/signer.pem")).expect("signer.pem"),
        std::fs::read(&new_signer).expect("new signer")
    );
    assert!(!station.join("ca/signer.key").exists());
    assert!(station.join("ca/signer.key.retired").exists());
    assert!(!station.join("ca/signer-request.pkcs11.toml").exists());
    let toml = std::fs::read_to_string(station.join("keystamp.toml")).expect("toml");
    assert!(
        toml.contains("[ca.pkcs11]") && toml.contains("key_label = \"signer2\""),
        "{toml}"
    );
    let check = ok(run(ks(&station, &hsm).args(["ca", "check"])));
    assert_eq!(field(&check, "signer"), "ok", "{check}");
    let new_devices = provision_with(&station, 2, Some(&hsm));

    if !have_openssl() {
        eprintln!("SKIP openssl checks of the rotated signer: openssl not found");
        return;
    }
    openssl_verifies_request(tmp.path(), "token.csr");
    // Devices of either signer chain to the one root.
    openssl_verify_devices(&root, &old_devices);
    openssl_verify_devices(&root, &new_devices);
    openssl_verify_by_root(&root, &vc);
    assert_eq!(openssl_cn(&vc), AZURE_CODE);
}

#[test]
fn a_third_party_ca_with_its_signer_key_in_a_token_provisions_devices() {
    if !have_openssl() {
        eprintln!("SKIP third-party CA in a token: openssl not found (it makes the CA)");
        return;
    }
    let Some(hsm) = SoftHsm::new("third-party CA with the signer key in a token") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let company = tmp.path().join("company");
    let station = tmp.path().join("station");
    std::fs::create_dir_all(&company).expect("company");
    openssl_ca(&company, "20260101000000Z", "20310101000000Z", "400A1B");
    hsm.import_pem(&company.join("signer.plain.key"), "company-signer");
    let import_from = |cmd: &mut Command, company: &Path, label: &str, mode: &str| {
        run(cmd
            .args(["ca", "import", "--mode", mode])
            .args(["--root", s(&company.join("root.pem"))])
            .args(["--signer", s(&company.join("signer.pem"))])
            .args(["--module", hsm.module_arg(), "--token", LABEL])
            .args(["--key-label", label]))
    };
    let import = |cmd: &mut Command, label: &str| import_from(cmd, &company, label, "development");
    // A signer whose serial a chip cannot rebuild: the precise message, nothing written.
    let bad = tmp.path().join("bad-serial");
    std::fs::create_dir_all(&bad).expect("company");
    openssl_ca(&bad, "20260101000000Z", "20310101000000Z", "1234");
    hsm.import_pem(&bad.join("signer.plain.key"), "bad-serial");
    let e = error_line(&import_from(
        &mut ks(&station, &hsm),
        &bad,
        "bad-serial",
        "development",
    ));
    assert!(
        e.contains("serial number 1234") && e.contains("serial 400A1B"),
        "{e}"
    );
    // A key label with no key, then a wrong PIN: nothing written.
    let e = error_line(&import(&mut ks(&station, &hsm), "nope"));
    assert!(e.contains("no private key labelled \"nope\""), "{e}");
    let mut wrong = keystamp(&station);
    hsm.env(&mut wrong, "000000");
    let e = error_line(&import(&mut wrong, "company-signer"));
    assert!(e.contains("refused the PIN"), "{e}");
    assert!(!station.join("ca").exists(), "nothing written");
    let out = ok(import(&mut ks(&station, &hsm), "company-signer"));
    assert_eq!(field(&out, "root.key"), "offline");
    // softhsm2-util imports keys sensitive and not extractable: no warning.
    assert!(!out.contains("warning"), "{out}");
    // A token key counts as protected: a production project accepts it (a plain key file
    // would be refused).
    let production = tmp.path().join("production");
    let out = ok(import_from(
        &mut ks(&production, &hsm),
        &company,
        "company-signer",
        "production",
    ));
    assert_eq!(field(&out, "mode"), "production", "{out}");
    assert!(!station.join("ca/signer.key").exists(), "no key file");
    let devices = provision_with(&station, 2, Some(&hsm));
    openssl_verify_devices(&company.join("root.pem"), &devices);
}
