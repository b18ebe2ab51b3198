//! A SoftHSM2 token of the test's own, in a temporary directory (SOFTHSM2_CONF points at a
//! configuration whose token directory is inside it), removed with the directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The token's label, user PIN and security-officer PIN.
pub const LABEL: &str = "keystamp-test";
/// User PIN of the test token.
pub const PIN: &str = "246810";
const SO_PIN: &str = "13579111";

/// A fresh, initialized SoftHSM2 token.
pub struct SoftHsm {
    /// Holds the configuration and the token directory.
    pub dir: tempfile::TempDir,
    /// The configuration file (the value for SOFTHSM2_CONF).
    pub conf: PathBuf,
    /// The PKCS#11 module.
    pub module: PathBuf,
}

/// Where Debian (any architecture) and source builds put the module.
fn module_path() -> Option<PathBuf> {
    let mut candidates = vec![
        PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        PathBuf::from("/usr/local/lib/softhsm/libsofthsm2.so"),
    ];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        for e in entries.flatten() {
            candidates.push(e.path().join("softhsm/libsofthsm2.so"));
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

impl SoftHsm {
    /// A new token, or `None` (with the reason printed) when SoftHSM2 is not installed.
    pub fn new(what: &str) -> Option<Self> {
        let Some(module) = module_path() else {
            eprintln!("SKIP {what}: SoftHSM2 not installed (apt-get install softhsm2)");
            return None;
        };
        let util_runs = Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_ok();
        if !util_runs {
            eprintln!("SKIP {what}: softhsm2-util not on PATH");
            return None;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("conf");
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", LABEL])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .output()
            .expect("softhsm2-util");
        assert!(
            out.status.success(),
            "init token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Self { dir, conf, module })
    }

    /// The module path as text (for `--module`).
    pub fn module_arg(&self) -> &str {
        self.module.to_str().expect("utf-8 module path")
    }

    /// The configuration path.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// `cmd` with this token's configuration and the user PIN `pin` in its environment.
    pub fn env<'a>(&self, cmd: &'a mut Command, pin: &str) -> &'a mut Command {
        cmd.env("SOFTHSM2_CONF", &self.conf)
            .env("KEYSTAMP_PKCS11_PIN", pin)
    }

    /// Imports a plain PKCS#8 key file into the token under `label` with SoftHSM2's own tool
    /// (what a company does with a key it already has).
    pub fn import_pem(&self, key: &Path, label: &str) {
        // CKA_ID must be unique in the token: the label's bytes in hex.
        let id: String = label.bytes().map(|b| format!("{b:02x}")).collect();
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--import"])
            .arg(key)
            .args([
                "--token", LABEL, "--label", label, "--id", &id, "--pin", PIN,
            ])
            .output()
            .expect("softhsm2-util --import");
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs the test `child_test` of the current test binary in a child process whose
    /// environment names this token ([`CHILD_MODULE_ENV`]) and the key label `label`
    /// ([`CHILD_LABEL_ENV`]); SoftHSM2 reads SOFTHSM2_CONF when the module initializes, so a
    /// child gets the token without changing this process's environment. Asserts the child
    /// ran that one test, passed, and printed `expect`.
    pub fn run_child(&self, child_test: &str, label: &str, expect: &str) {
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", child_test, "--nocapture"])
            .env("SOFTHSM2_CONF", &self.conf)
            .env(CHILD_MODULE_ENV, self.module_arg())
            .env(CHILD_LABEL_ENV, label)
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "child ran no test: {text}");
        assert!(text.contains(expect), "{text}");
    }
}

/// Set (to the module path) only in a child process [`SoftHsm::run_child`] starts.
pub const CHILD_MODULE_ENV: &str = "KEYSTAMP_TEST_SOFTHSM_MODULE";
/// The key label a child process [`SoftHsm::run_child`] starts works on.
pub const CHILD_LABEL_ENV: &str = "KEYSTAMP_TEST_SOFTHSM_LABEL";

/// In a child process: the token configuration of the key it works on, or `None` in a
/// normal test run.
pub fn child_config() -> Option<keystamp::project::Pkcs11Section> {
    Some(keystamp::project::Pkcs11Section {
        module: std::env::var(CHILD_MODULE_ENV).ok()?.into(),
        token: LABEL.into(),
        key_label: std::env::var(CHILD_LABEL_ENV).ok()?,
    })
}

/// Asserts that the token keeps `key`'s private key: `CKA_VALUE` is not handed out,
/// `CKA_EXTRACTABLE` is false, `CKA_SENSITIVE` true, and wrapping it under a fresh AES key is
/// refused with `CKR_KEY_UNEXTRACTABLE`. `generated` keys must also be `CKA_NEVER_EXTRACTABLE`
/// (an imported key never is: it existed outside the token).
pub fn assert_key_stays_in_token(key: &keystamp::pki::pkcs11::TokenKey, generated: bool) {
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, AttributeType};
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
            attrs.contains(&Attribute::NeverExtractable(generated)),
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
            "wrapping the key: {wrapped:?}"
        );
    });
}
