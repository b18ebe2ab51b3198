//! Operator traps of issue 12 (items 1–7), each run through the real binary the way a new
//! user would hit it. Every test here failed on the code before its fix.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn keystamp(project: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keystamp"));
    c.arg("--project")
        .arg(project)
        .env_remove("KEYSTAMP_CA_PASSPHRASE")
        .env_remove("KEYSTAMP_PROJECT")
        .stdin(Stdio::null());
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run keystamp")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "keystamp failed: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A clean failure: non-zero exit, one `keystamp: error:` line on stderr; returns it.
fn failed(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected failure, got: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line, got {err:?}");
    assert!(lines[0].starts_with("keystamp: error: "), "{err}");
    lines[0].to_string()
}

fn init(dir: &Path) {
    ok(run(keystamp(dir).args(["init", "--insecure-no-passphrase"])));
}

fn pem_to_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("read pem");
    der::pem::decode_vec(text.as_bytes()).expect("pem").1
}

fn from_cert(project: &Path, cert: &Path, extra: &[&str]) -> Output {
    run(keystamp(project)
        .args(["certdef", "from-cert", "--role", "signer"])
        .arg(cert)
        .args(extra))
}

// ---- trap 1: a device holding another project's chain is refused ----

/// `provision --simulate 1` in `project` on the simulated chip kept in `state`.
fn provision_sim(project: &Path, state: &Path, extra: &[&str]) -> Output {
    run(keystamp(project)
        .args(["provision", "--simulate", "1", "--json", "--state-dir"])
        .arg(state)
        .args(extra))
}

#[test]
fn trap1_device_of_another_project_is_refused_unless_reprovision() {
    use der::{Decode, Encode};
    use sha2::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_projects(tmp.path());
    let state = tmp.path().join("sim");
    ok(provision_sim(&b, &state, &[]));

    // The same chip under project A: refused, naming B's signer (CN and key fingerprint).
    let o = provision_sim(&a, &state, &[]);
    assert!(!o.status.success(), "A re-stamped B's device");
    let report = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    let signer_der = pem_to_der(&b.join("ca/signer.pem"));
    let cert = x509_cert::Certificate::from_der(&signer_der).unwrap();
    let cn = cert.tbs_certificate().subject().to_string();
    let cn = cn
        .split(',')
        .find_map(|rdn| rdn.strip_prefix("CN="))
        .unwrap()
        .to_string();
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap();
    let fingerprint = hex::encode(sha2::Sha256::digest(&spki));
    assert!(report.contains(&cn), "{report}");
    let flat = report.replace(':', "").to_ascii_lowercase();
    assert!(flat.contains(&fingerprint), "{report}");
    // A locked device (the default profile locks it) gets no --reprovision advice: nothing on
    // it can be rewritten.
    assert!(report.contains("locked down"), "{report}");
    assert!(!report.contains("--reprovision"), "{report}");
    assert!(
        registry_devices(&a)
            .iter()
            .all(|d| d["certificate"].is_null()),
        "A recorded a certificate"
    );
    // Nothing was written: B's device is still B's, provisioned and verified.
    ok(provision_sim(&b, &state, &[]));
    let devices = registry_devices(&b);
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["certificate"]["status"], "verified");

    // B's device is locked down (issue 13): not even --reprovision lets A take it over, and
    // A records nothing for it.
    let o = provision_sim(&a, &state, &["--reprovision"]);
    assert!(!o.status.success(), "A re-stamped B's locked device");
    let report = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(report.contains("locked down"), "{report}");
    assert!(
        registry_devices(&a)
            .iter()
            .all(|d| d["certificate"].is_null()),
        "A recorded a certificate for B's locked device"
    );
    ok(provision_sim(&b, &state, &[]));
    assert_eq!(registry_devices(&b)[0]["certificate"]["status"], "verified");
}

// ---- trap 2: an empty or foreign registry is refused ----

#[test]
fn trap2_empty_registry_is_refused_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    let reg = dir.join("registry.sqlite");
    std::fs::write(&reg, b"").unwrap();
    let line = failed(&run(keystamp(dir).args(["registry", "list"])));
    assert!(line.contains("registry.sqlite"), "{line}");
    assert!(line.contains("empty"), "{line}");
    // Nothing was created in its place.
    assert_eq!(std::fs::metadata(&reg).unwrap().len(), 0);
}

/// Two projects, `a` and `b`, under `dir`.
fn two_projects(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    for p in [&a, &b] {
        std::fs::create_dir_all(p).unwrap();
        init(p);
    }
    (a, b)
}

/// `init` where a registry file is left over refuses before creating anything.
#[test]
fn trap2_init_refuses_a_leftover_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("registry.sqlite"), b"").unwrap();
    let line = failed(&run(
        keystamp(dir).args(["init", "--insecure-no-passphrase"])
    ));
    assert!(line.contains("registry.sqlite"), "{line}");
    assert!(!dir.join("ca").exists());
    assert!(!dir.join("keystamp.toml").exists());
}

#[test]
fn trap2_foreign_registry_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_projects(tmp.path());
    ok(run(keystamp(&a).args(["registry", "list"])));
    std::fs::copy(b.join("registry.sqlite"), a.join("registry.sqlite")).unwrap();
    let line = failed(&run(keystamp(&a).args(["registry", "list"])));
    assert!(line.contains("registry.sqlite"), "{line}");
    assert!(line.contains("another project"), "{line}");
}

/// A project made before registry ids (no `registry.id`, a database without one) is asked to
/// run `registry adopt` once; adopting checks the database holds the project's signer.
#[test]
fn trap2_project_without_registry_id_is_adopted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_projects(tmp.path());
    // Make `a` look old: no id line in keystamp.toml.
    let profile_path = a.join("keystamp.toml");
    let profile = std::fs::read_to_string(&profile_path).unwrap();
    let old: String = profile
        .lines()
        .filter(|l| !l.starts_with("id = ") && !l.starts_with("# Id of the registry"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(old, profile, "init records the id");
    std::fs::write(&profile_path, &old).unwrap();
    let line = failed(&run(keystamp(&a).args(["registry", "list"])));
    assert!(line.contains("keystamp registry adopt"), "{line}");

    // Another project's database is not adopted.
    let ours = a.join("registry.sqlite");
    let saved = tmp.path().join("saved.sqlite");
    std::fs::rename(&ours, &saved).unwrap();
    std::fs::copy(b.join("registry.sqlite"), &ours).unwrap();
    let line = failed(&run(keystamp(&a).args(["registry", "adopt"])));
    assert!(line.contains("signer certificate"), "{line}");
    std::fs::rename(&saved, &ours).unwrap();
    for f in ["registry.sqlite-wal", "registry.sqlite-shm"] {
        let _ = std::fs::remove_file(a.join(f));
    }

    ok(run(keystamp(&a).args(["registry", "adopt"])));
    ok(run(keystamp(&a).args(["registry", "list"])));
    // The id is now in the profile; a second adopt has nothing to do.
    let profile = std::fs::read_to_string(&profile_path).unwrap();
    assert!(profile.contains("\nid = "), "{profile}");
    failed(&run(keystamp(&a).args(["registry", "adopt"])));
}

// ---- trap 3: a profile/definition mismatch stops provisioning before any device ----

fn registry_devices(dir: &Path) -> Vec<serde_json::Value> {
    let list = ok(run(keystamp(dir).args(["registry", "list", "--json"])));
    serde_json::from_str::<serde_json::Value>(&list)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Replaces `from` by `to` in the project's keystamp.toml, runs `provision --simulate 1` and
/// returns its stderr after checking it failed with the advice to regenerate.
fn refused_after_edit(dir: &Path, from: &str, to: &str) -> String {
    let path = dir.join("keystamp.toml");
    let profile = std::fs::read_to_string(&path).unwrap();
    assert!(profile.contains(from), "{profile}");
    std::fs::write(&path, profile.replace(from, to)).unwrap();
    let o = run(keystamp(dir).args(["provision", "--simulate", "1", "--json"]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "provisioned: {out}");
    let err = stderr(&o);
    assert!(err.contains("keystamp certdef regenerate"), "{err}");
    err
}

#[test]
fn trap3_cn_scheme_changed_after_init_is_refused_before_any_device() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    let err = refused_after_edit(dir, "cn = \"{sn}\"\n", "cn = \"dev-{sn}\"\n");
    assert!(err.contains("certificates.cn"), "{err}");
    // Nothing was recorded and no simulated chip was even started.
    assert!(registry_devices(dir).is_empty());
    assert!(!dir.join("sim").exists());

    // The advice works: regenerate, then the same run provisions with the new scheme.
    ok(run(keystamp(dir).args(["certdef", "regenerate"])));
    ok(run(keystamp(dir).args([
        "provision",
        "--simulate",
        "1",
        "--json",
    ])));
    let devices = registry_devices(dir);
    assert_eq!(devices.len(), 1);
    let chip = devices[0]["chip_serial"].as_str().unwrap();
    assert_eq!(devices[0]["cn"], format!("dev-{chip}"));
    assert_eq!(devices[0]["state"], "provisioned");

    // A changed validity is refused the same way, naming its key.
    let err = refused_after_edit(dir, "validity_years = 20\n", "validity_years = 10\n");
    assert!(err.contains("certificates.validity_years"), "{err}");
    assert_eq!(registry_devices(dir).len(), 1);
}

// ---- trap 4: init honours an existing keystamp.toml ----

fn subject_cn(der: &[u8]) -> String {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der).expect("certificate");
    cert.tbs_certificate().subject().to_string()
}

#[test]
fn trap4_init_takes_the_ca_keys_of_an_existing_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("keystamp.toml"),
        "[ca]\norganization = \"Acme Widgets\"\nroot_cn = \"Acme Root\"\n\
         signer_cn_prefix = \"Acme Signer\"\n",
    )
    .unwrap();
    init(dir);
    let root = subject_cn(&pem_to_der(&dir.join("ca/root.pem")));
    assert!(root.contains("CN=Acme Root"), "{root}");
    assert!(root.contains("O=Acme Widgets"), "{root}");
    let signer = subject_cn(&pem_to_der(&dir.join("ca/signer.pem")));
    assert!(signer.contains("CN=Acme Signer "), "{signer}");
    // The operator's keys stay; init adds the definitions it generated.
    let profile = std::fs::read_to_string(dir.join("keystamp.toml")).unwrap();
    assert!(profile.contains("Acme Root"), "{profile}");
    assert!(profile.contains("device_def"), "{profile}");
    // A second init refuses: the project has a CA now.
    failed(&run(
        keystamp(dir).args(["init", "--insecure-no-passphrase"])
    ));
}

// ---- trap 5: certificate input with text around PEM, and chains ----

#[test]
fn trap5_certificate_input_accepts_text_around_pem_and_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    let signer_pem = std::fs::read_to_string(dir.join("ca/signer.pem")).unwrap();
    let root_pem = std::fs::read_to_string(dir.join("ca/root.pem")).unwrap();
    // DER files are the independent reference: no PEM parsing involved.
    let signer_der = dir.join("signer.der");
    let root_der = dir.join("root.der");
    std::fs::write(&signer_der, pem_to_der(&dir.join("ca/signer.pem"))).unwrap();
    std::fs::write(&root_der, pem_to_der(&dir.join("ca/root.pem"))).unwrap();
    let want_signer = ok(from_cert(dir, &signer_der, &[]));
    let want_root = ok(from_cert(dir, &root_der, &[]));

    // `openssl ca` output: a text dump before the block.
    let annotated = dir.join("annotated.pem");
    std::fs::write(
        &annotated,
        format!("Certificate:\n    Data:\n        Version: 3 (0x2)\n{signer_pem}trailing note\n"),
    )
    .unwrap();
    assert_eq!(ok(from_cert(dir, &annotated, &[])), want_signer);

    // A chain file (signer then root): the first by default, with a note; --index picks.
    let chain = dir.join("chain.pem");
    std::fs::write(&chain, format!("{signer_pem}{root_pem}")).unwrap();
    let o = from_cert(dir, &chain, &[]);
    let note = stderr(&o);
    assert_eq!(ok(o), want_signer);
    assert!(note.contains("2 certificates"), "{note}");
    assert!(note.contains("--index"), "{note}");
    let o = from_cert(dir, &chain, &["--index", "2"]);
    assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    assert_eq!(ok(o), want_root);
    let line = failed(&from_cert(dir, &chain, &["--index", "3"]));
    assert!(line.contains("2 certificates"), "{line}");
}

// ---- trap 6: init names its definitions; pack checks ca_cert_def ----

#[test]
fn trap6_init_definitions_pack_and_dangling_ca_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    let s = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    let dev = s(dir.join("device-def.json"));
    let sig = s(dir.join("signer-def.json"));
    let blob = s(dir.join("defs.bin"));
    ok(run(keystamp(dir).args([
        "certdef",
        "pack",
        &dev,
        &sig,
        "--ca-dir",
        &s(dir.join("ca")),
        "-o",
        &blob,
    ])));
    let shown = ok(run(keystamp(dir).args(["certdef", "show", &blob])));
    assert!(shown.contains("device"), "{shown}");
    assert!(shown.contains("signer"), "{shown}");

    // The device definition alone names a CA definition that is not in the pack.
    let line = failed(&run(
        keystamp(dir).args(["certdef", "pack", &dev, "-o", &blob])
    ));
    assert!(line.contains("`signer`"), "{line}");
}

// ---- trap 7: a non-whole-hour issue date is named as the cause, as an error ----

/// Sets the minutes and seconds of the validity dates picked by `which` ([notBefore,
/// notAfter]) in a DER certificate to `mmss`, keeping their lengths (the signature no longer
/// matches; from-cert does not check it).
fn set_minutes_seconds(der: &mut [u8], mmss: &[u8; 4], which: [bool; 2]) {
    let mut found = 0;
    let mut i = 0;
    while i + 2 < der.len() && found < 2 {
        let (tag, len) = (der[i], der[i + 1] as usize);
        if (tag == 0x17 && len == 13) || (tag == 0x18 && len == 15) {
            let end = i + 2 + len;
            if der.get(end - 1) == Some(&b'Z') {
                if which[found] {
                    der[end - 5..end - 1].copy_from_slice(mmss);
                }
                found += 1;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    assert_eq!(found, 2, "two dates");
}

#[test]
fn trap7_from_cert_names_a_non_whole_hour_issue_date() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    let mut der = pem_to_der(&dir.join("ca/signer.pem"));
    let original = der.clone();
    // Both dates at 05:09:01-style times: validity still whole years, issue not a whole hour.
    set_minutes_seconds(&mut der, b"0901", [true, true]);
    let cert = dir.join("odd-time.der");
    std::fs::write(&cert, &der).unwrap();
    let line = failed(&from_cert(dir, &cert, &[]));
    assert!(line.contains("issue date"), "{line}");
    assert!(line.contains("whole hour"), "{line}");
    assert!(line.contains(":09:01"), "{line}");
    assert!(!line.contains("SNSRC"), "{line}");

    // Same severity for the expiry: an error naming both dates.
    let mut der = original;
    set_minutes_seconds(&mut der, b"0901", [false, true]);
    std::fs::write(&cert, &der).unwrap();
    let line = failed(&from_cert(dir, &cert, &[]));
    assert!(line.contains("whole number of years"), "{line}");
    assert!(line.contains(":09:01 UTC"), "{line}");
    assert!(line.contains(":00:00 UTC"), "{line}");
}
