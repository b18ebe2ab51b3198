//! Separate root and signer passphrases, the raised scrypt cost, keys written with the old cost,
//! and what `keystamp ca check` / `ca show` report about each key's protection.
//!
//! Keys are decrypted independently of keystamp with the pkcs8 crate; old-cost keys are written
//! by OpenSSL (`openssl pkcs8 -topk8 -scrypt -scrypt_N 16384`, skipped with a message when
//! `openssl` is absent) and by pkcs8's default encryption, which is what keystamp wrote before
//! (N = 2^14).

mod common;

use common::{field, keystamp};
use std::path::Path;
use std::process::{Command, Output};

use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

const ROOT_PASS: &str = "root passphrase 1";
const SIGNER_PASS: &str = "signer passphrase 2";

fn with_passes(cmd: &mut Command, root: &str, signer: &str) -> Output {
    cmd.env("KEYSTAMP_ROOT_PASSPHRASE", root)
        .env("KEYSTAMP_SIGNER_PASSPHRASE", signer)
        .output()
        .expect("run keystamp")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn init(dir: &Path) {
    let o = with_passes(keystamp(dir).arg("init"), ROOT_PASS, SIGNER_PASS);
    assert!(o.status.success(), "init: {}", stderr(&o));
}

fn decrypt(path: &Path, pass: &str) -> Result<SigningKey, pkcs8::Error> {
    SigningKey::from_pkcs8_encrypted_pem(&std::fs::read_to_string(path).expect("key"), pass)
}

const NEW_COST: &str = "encrypted (PBES2, scrypt N=131072 r=8 p=1, aes-256-cbc)";
const OLD_COST: &str = "encrypted (PBES2, scrypt N=16384 r=8 p=1, aes-256-cbc)";

#[test]
fn each_key_has_its_own_passphrase_and_ca_check_names_its_protection() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    init(dir);
    let ca = dir.join("ca");

    // Independently: each key opens with its own passphrase and not with the other's.
    decrypt(&ca.join("root.key"), ROOT_PASS).expect("root opens with the root passphrase");
    decrypt(&ca.join("signer.key"), SIGNER_PASS).expect("signer opens with its passphrase");
    assert!(decrypt(&ca.join("root.key"), SIGNER_PASS).is_err());
    assert!(decrypt(&ca.join("signer.key"), ROOT_PASS).is_err());

    let o = with_passes(keystamp(dir).args(["ca", "check"]), ROOT_PASS, SIGNER_PASS);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(field(&text, "root.key"), NEW_COST);
    assert_eq!(field(&text, "signer.key"), NEW_COST);
    // `ca show` says the same without any passphrase.
    let o = keystamp(dir).args(["ca", "show"]).output().expect("run");
    assert_eq!(field(&stdout(&o), "signer.key"), NEW_COST);

    // Swapped: the root passphrase does not open the signer, nor the other way round, and the
    // error names the key.
    let o = with_passes(keystamp(dir).args(["ca", "check"]), ROOT_PASS, ROOT_PASS);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("wrong signer key passphrase"),
        "{}",
        stderr(&o)
    );
    let o = with_passes(
        keystamp(dir).args(["ca", "check"]),
        SIGNER_PASS,
        SIGNER_PASS,
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("wrong root key passphrase"),
        "{}",
        stderr(&o)
    );
    // Signing (the CRL) needs only the signer's passphrase.
    let o = keystamp(dir)
        .args(["ca", "crl"])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", SIGNER_PASS)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = keystamp(dir)
        .args(["ca", "crl"])
        .env("KEYSTAMP_SIGNER_PASSPHRASE", ROOT_PASS)
        .output()
        .expect("run");
    assert!(
        stderr(&o).contains("wrong signer key passphrase"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_single_variable_still_works_with_a_note() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let o = keystamp(dir)
        .arg("init")
        .env("KEYSTAMP_CA_PASSPHRASE", ROOT_PASS)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("KEYSTAMP_SIGNER_PASSPHRASE"),
        "{}",
        stderr(&o)
    );
    decrypt(&dir.join("ca/signer.key"), ROOT_PASS).expect("both keys under the one passphrase");
    let o = keystamp(dir)
        .args(["ca", "check"])
        .env("KEYSTAMP_CA_PASSPHRASE", ROOT_PASS)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let notes = stderr(&o);
    assert_eq!(notes.lines().count(), 1, "one note per run: {notes}");
    assert!(notes.starts_with("keystamp: note: "), "{notes}");
}

/// Replaces `key` with the same private key encrypted at the old cost, by pkcs8's default
/// (what keystamp wrote before) or by OpenSSL.
fn reencrypt_old_cost(path: &Path, pass: &str, with_openssl: bool) {
    let key = decrypt(path, pass).expect("decrypt");
    let pem = if with_openssl {
        let plain = path.with_extension("plain.pem");
        std::fs::write(
            &plain,
            key.to_pkcs8_pem(LineEnding::LF).expect("pem").as_bytes(),
        )
        .expect("write");
        let o = Command::new("openssl")
            .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-scrypt"])
            .args(["-scrypt_N", "16384", "-scrypt_r", "8", "-scrypt_p", "1"])
            .args(["-passout", &format!("pass:{pass}"), "-in"])
            .arg(&plain)
            .output()
            .expect("openssl");
        std::fs::remove_file(&plain).expect("rm");
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    } else {
        key.to_pkcs8_encrypted_pem(pass.as_bytes(), LineEnding::LF)
            .expect("encrypt")
            .to_string()
    };
    std::fs::remove_file(path).expect("rm");
    std::fs::write(path, pem).expect("write");
}

#[test]
fn keys_written_with_the_old_cost_still_unlock() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    init(dir);
    let ca = dir.join("ca");
    reencrypt_old_cost(&ca.join("signer.key"), SIGNER_PASS, false);
    let openssl = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if openssl {
        reencrypt_old_cost(&ca.join("root.key"), ROOT_PASS, true);
    } else {
        eprintln!("SKIP old-cost key written by OpenSSL: openssl not found on PATH");
        reencrypt_old_cost(&ca.join("root.key"), ROOT_PASS, false);
    }
    let o = with_passes(keystamp(dir).args(["ca", "check"]), ROOT_PASS, SIGNER_PASS);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(field(&text, "root.key"), OLD_COST);
    assert_eq!(field(&text, "signer.key"), OLD_COST);
    // A wrong passphrase is still refused at the old cost.
    let o = with_passes(
        keystamp(dir).args(["ca", "check"]),
        ROOT_PASS,
        "not it at all",
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("wrong signer key passphrase"),
        "{}",
        stderr(&o)
    );
}

/// A key file whose scrypt parameters ask for 4 GiB (N = 2^22, r = 8) is refused before any
/// key derivation, with a typed message instead of an allocation failure.
#[test]
fn absurd_scrypt_parameters_are_refused_before_deriving() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    init(dir);
    let path = dir.join("ca/signer.key");
    let text = std::fs::read_to_string(&path).expect("key");
    let (label, mut der) = der::pem::decode_vec(text.as_bytes()).expect("pem");
    // INTEGER 131072 (02 03 02 00 00) -> INTEGER 4194304 (02 03 40 00 00): N = 2^22.
    let at = der
        .windows(5)
        .position(|w| w == [0x02, 0x03, 0x02, 0x00, 0x00])
        .expect("N in the key");
    der[at + 2] = 0x40;
    let pem = der::pem::encode_string(label, der::pem::LineEnding::LF, &der).expect("pem");
    std::fs::remove_file(&path).expect("rm");
    std::fs::write(&path, pem).expect("write");
    let o = with_passes(keystamp(dir).args(["ca", "check"]), ROOT_PASS, SIGNER_PASS);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("N=4194304") && err.contains("signer.key"),
        "{err}"
    );
}
