//! The signer key in a PKCS#11 token (an HSM, a smart card, SoftHSM2 in development).
//!
//! `keystamp.toml` names the module (the vendor's `.so`), the token label and the key label
//! (`[ca.pkcs11]`); the PIN comes from [`PIN_ENV`] or a prompt, never from a flag (flags end
//! up in shell histories and process lists). The key is generated in the token, or imported
//! once from software, with `CKA_SENSITIVE` true and `CKA_EXTRACTABLE` false, so the token
//! never hands it out: keystamp only ever asks the token to sign (`CKM_ECDSA` over a SHA-256
//! digest). The offline root can live in a token the same way; its configuration is the file
//! [`ROOT_TOKEN_FILE`] in the CA directory (the offline machine has no project).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
pub use cryptoki::types::AuthPin;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::project::Pkcs11Section;

/// Environment variable that supplies the token's user PIN (otherwise keystamp prompts).
pub const PIN_ENV: &str = "KEYSTAMP_PKCS11_PIN";

/// File in the CA directory that says the root key is in a token (module, token and key label
/// as in `[ca.pkcs11]`): written by `keystamp ca init-root --module ...` in place of `root.key`.
pub const ROOT_TOKEN_FILE: &str = "root.pkcs11.toml";

/// DER of the named curve OID prime256v1 (1.2.840.10045.3.1.7): the token's `CKA_EC_PARAMS`.
const P256_EC_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// A PKCS#11 failure. Display is one line saying what to do.
#[derive(Debug)]
pub enum Pkcs11Error {
    /// The module could not be loaded or initialized.
    Module(PathBuf, CkError),
    /// No token with this label is present.
    NoToken(String),
    /// The token refused the PIN.
    WrongPin(String),
    /// The PIN is locked after too many wrong tries.
    PinLocked(String),
    /// No PIN in [`PIN_ENV`] and no terminal to ask.
    PinRequired,
    /// No private key with this label in the token.
    NoKey(String),
    /// A key with this label already exists (generating would shadow it).
    KeyExists(String),
    /// The token's key is not a P-256 key, or its public key is unreadable.
    NotP256(String),
    /// A token configuration file is unreadable or malformed (the path, why).
    Config(PathBuf, String),
    /// Another token call failed (`what` says which).
    Token {
        /// What was being done.
        what: &'static str,
        /// The token's answer.
        source: CkError,
    },
}

impl fmt::Display for Pkcs11Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Module(p, e) => write!(
                f,
                "cannot load PKCS#11 module {}: {e}; check [ca.pkcs11] module in keystamp.toml",
                p.display()
            ),
            Self::NoToken(l) => write!(
                f,
                "no PKCS#11 token labelled {l:?}: plug it in or check [ca.pkcs11] token"
            ),
            Self::WrongPin(l) => write!(
                f,
                "token {l:?} refused the PIN: check {PIN_ENV} or retype it (the token locks \
                 after a few wrong tries)"
            ),
            Self::PinLocked(l) => write!(
                f,
                "token {l:?} has locked its user PIN: its security officer must reset it"
            ),
            Self::PinRequired => write!(
                f,
                "the key is in a PKCS#11 token: set {PIN_ENV} or run in a terminal to be \
                 prompted"
            ),
            Self::NoKey(l) => write!(
                f,
                "no private key labelled {l:?} in the token: check the key label ([ca.pkcs11] \
                 key_label for the signer, {ROOT_TOKEN_FILE} for the root)"
            ),
            Self::Config(p, why) => write!(f, "{}: {why}", p.display()),
            Self::KeyExists(l) => write!(
                f,
                "the token already holds a key labelled {l:?}: choose another --key-label"
            ),
            Self::NotP256(why) => write!(f, "the token's key is not usable: {why}"),
            Self::Token { what, source } => write!(f, "PKCS#11 {what} failed: {source}"),
        }
    }
}

impl std::error::Error for Pkcs11Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Module(_, e) | Self::Token { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

fn token_err(what: &'static str) -> impl FnOnce(CkError) -> Pkcs11Error {
    move |source| Pkcs11Error::Token { what, source }
}

/// The PIN from [`PIN_ENV`], else asked on the terminal.
pub fn read_pin() -> Result<AuthPin, Pkcs11Error> {
    if let Ok(pin) = std::env::var(PIN_ENV) {
        return Ok(AuthPin::from(pin));
    }
    rpassword::prompt_password("PKCS#11 token user PIN: ")
        .map(AuthPin::from)
        .map_err(|_| Pkcs11Error::PinRequired)
}

/// A logged-in session on the configured token (the session keeps the module loaded).
fn open_session(cfg: &Pkcs11Section, pin: &AuthPin) -> Result<Session, Pkcs11Error> {
    let ctx = Pkcs11::new(&cfg.module).map_err(|e| Pkcs11Error::Module(cfg.module.clone(), e))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(Pkcs11Error::Module(cfg.module.clone(), e)),
    }
    let slot = find_slot(&ctx, &cfg.token)?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(token_err("opening a session"))?;
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid, _)) => {
            return Err(Pkcs11Error::WrongPin(cfg.token.clone()));
        }
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
            return Err(Pkcs11Error::PinLocked(cfg.token.clone()));
        }
        Err(e) => return Err(token_err("login")(e)),
    }
    Ok(session)
}

fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, Pkcs11Error> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(token_err("listing slots"))?;
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(token_err("reading token info"))?;
        // Token labels are blank-padded to 32 bytes; cryptoki trims them.
        if info.label() == label {
            return Ok(slot);
        }
    }
    Err(Pkcs11Error::NoToken(label.to_string()))
}

fn find_key(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Option<ObjectHandle>, Pkcs11Error> {
    let found = session
        .find_objects(&[Attribute::Class(class), Attribute::Label(label.into())])
        .map_err(token_err("finding the key"))?;
    Ok(found.into_iter().next())
}

/// The public key of a token key pair, read from the public object's `CKA_EC_POINT` (a DER
/// OCTET STRING holding the SEC1 point; some tokens give the bare point).
fn public_key(session: &Session, public: ObjectHandle) -> Result<VerifyingKey, Pkcs11Error> {
    let attrs = session
        .get_attributes(public, &[AttributeType::EcPoint])
        .map_err(token_err("reading the public key"))?;
    let point = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| Pkcs11Error::NotP256("public key has no CKA_EC_POINT".into()))?;
    let sec1 = match point.as_slice() {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        other => other,
    };
    VerifyingKey::from_sec1_bytes(sec1)
        .map_err(|_| Pkcs11Error::NotP256("CKA_EC_POINT is not a P-256 point".into()))
}

/// The signer's private key in a token, logged in and ready to sign.
pub struct TokenKey {
    session: Mutex<Session>,
    private: ObjectHandle,
    public: VerifyingKey,
    label: String,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Logs in to the configured token and finds the signer key pair. A wrong PIN fails here,
    /// before anything else happens.
    pub fn open(cfg: &Pkcs11Section, pin: &AuthPin) -> Result<Self, Pkcs11Error> {
        let ts = open_session(cfg, pin)?;
        let private = find_key(&ts, ObjectClass::PRIVATE_KEY, &cfg.key_label)?
            .ok_or_else(|| Pkcs11Error::NoKey(cfg.key_label.clone()))?;
        let public_obj = find_key(&ts, ObjectClass::PUBLIC_KEY, &cfg.key_label)?
            .ok_or_else(|| Pkcs11Error::NotP256("the key has no public key object".into()))?;
        let public = public_key(&ts, public_obj)?;
        Ok(Self {
            session: Mutex::new(ts),
            private,
            public,
            label: cfg.key_label.clone(),
        })
    }

    /// Generates a P-256 key pair in the token under `cfg.key_label`: the private key is a
    /// token object, private, sensitive and not extractable, so it never leaves the token.
    /// Refuses a label that is already taken.
    pub fn generate(cfg: &Pkcs11Section, pin: &AuthPin) -> Result<Self, Pkcs11Error> {
        let ts = open_session(cfg, pin)?;
        if find_key(&ts, ObjectClass::PRIVATE_KEY, &cfg.key_label)?.is_some() {
            return Err(Pkcs11Error::KeyExists(cfg.key_label.clone()));
        }
        let label = Attribute::Label(cfg.key_label.as_bytes().to_vec());
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(P256_EC_PARAMS.to_vec()),
            Attribute::Verify(true),
            label.clone(),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            label,
        ];
        let (public_obj, private) = ts
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(token_err("generating the key pair"))?;
        let public = public_key(&ts, public_obj)?;
        Ok(Self {
            session: Mutex::new(ts),
            private,
            public,
            label: cfg.key_label.clone(),
        })
    }

    /// Imports a software P-256 key into the token under `cfg.key_label`, once
    /// (`C_CreateObject`): the private key object is a private token object with
    /// `CKA_SENSITIVE` true and `CKA_EXTRACTABLE` false, so from then on the token signs with
    /// it and never gives it back; a public key object with the same label goes beside it.
    /// Refuses a label that is already taken. The software copy is the caller's to retire.
    pub fn import(
        cfg: &Pkcs11Section,
        pin: &AuthPin,
        key: &SigningKey,
    ) -> Result<Self, Pkcs11Error> {
        let ts = open_session(cfg, pin)?;
        if find_key(&ts, ObjectClass::PRIVATE_KEY, &cfg.key_label)?.is_some() {
            return Err(Pkcs11Error::KeyExists(cfg.key_label.clone()));
        }
        let label = Attribute::Label(cfg.key_label.as_bytes().to_vec());
        let public = *key.verifying_key();
        let point = public.to_sec1_point(false);
        // CKA_EC_POINT is the DER OCTET STRING around the uncompressed SEC1 point (PKCS#11
        // 2.40 §2.3.3); 65 bytes fit the short length form.
        let mut ec_point = vec![0x04, 0x41];
        ec_point.extend_from_slice(point.as_bytes());
        let public_template = [
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::EcParams(P256_EC_PARAMS.to_vec()),
            Attribute::EcPoint(ec_point),
            Attribute::Verify(true),
            label.clone(),
        ];
        // The scalar passes through cryptoki's attribute vector, which it frees unzeroized;
        // our own copy is wiped.
        let scalar = Zeroizing::new(key.to_bytes().to_vec());
        let private_template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::EcParams(P256_EC_PARAMS.to_vec()),
            Attribute::Value(scalar.to_vec()),
            label,
        ];
        let private = ts
            .create_object(&private_template)
            .map_err(token_err("importing the private key"))?;
        let public_obj = match ts.create_object(&public_template) {
            Ok(h) => h,
            Err(e) => {
                // No half-imported key left behind under the label.
                let _ = ts.destroy_object(private);
                return Err(token_err("importing the public key")(e));
            }
        };
        let read_back = public_key(&ts, public_obj)?;
        if read_back != public {
            return Err(Pkcs11Error::NotP256(
                "the token stored another public key than the one imported".into(),
            ));
        }
        Ok(Self {
            session: Mutex::new(ts),
            private,
            public,
            label: cfg.key_label.clone(),
        })
    }

    /// Whether the token would let the private key out (`CKA_EXTRACTABLE`, or not
    /// `CKA_SENSITIVE`); `None` when the token does not say.
    pub fn extractable(&self) -> Option<bool> {
        let attrs = self
            .with_session(|s| {
                s.get_attributes(
                    self.private,
                    &[AttributeType::Extractable, AttributeType::Sensitive],
                )
            })
            .ok()?;
        let mut extractable = None;
        let mut sensitive = None;
        for a in attrs {
            match a {
                Attribute::Extractable(v) => extractable = Some(v),
                Attribute::Sensitive(v) => sensitive = Some(v),
                _ => {}
            }
        }
        match (extractable, sensitive) {
            (Some(true), _) | (_, Some(false)) => Some(true),
            (Some(false), Some(true)) => Some(false),
            _ => None,
        }
    }

    /// The key's public half.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// The token's handle of the private key (for tests that try to export it).
    pub fn private_handle(&self) -> ObjectHandle {
        self.private
    }

    /// Runs `f` with the logged-in session (one call at a time: a PKCS#11 session is not
    /// shared between threads).
    pub fn with_session<T>(&self, f: impl FnOnce(&Session) -> T) -> T {
        let guard = match self.session.lock() {
            Ok(g) => g,
            // A panic elsewhere while signing leaves the session usable: signing has no
            // half-done state on our side.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&guard)
    }

    /// Signs a SHA-256 digest in the token (`CKM_ECDSA`, which takes the digest as is) and
    /// returns R‖S in low-S form.
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> Result<[u8; 64], Pkcs11Error> {
        let raw = self
            .with_session(|s| s.sign(&Mechanism::Ecdsa, self.private, digest))
            .map_err(token_err("signing"))?;
        let sig = Signature::from_slice(&raw)
            .map_err(|_| Pkcs11Error::NotP256("the token's signature is not 64 bytes".into()))?;
        let sig = sig.normalize_s();
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        Ok(out)
    }
}

/// The root key's token configuration in `ca_dir` ([`ROOT_TOKEN_FILE`]), if the root is in a
/// token.
pub fn read_root_token(ca_dir: &Path) -> Result<Option<Pkcs11Section>, Pkcs11Error> {
    read_token_file(&ca_dir.join(ROOT_TOKEN_FILE))
}

/// Reads a token configuration file (module, token, key label), `None` when there is none.
pub fn read_token_file(path: &Path) -> Result<Option<Pkcs11Section>, Pkcs11Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Pkcs11Error::Config(path.into(), e.to_string())),
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| Pkcs11Error::Config(path.into(), e.message().to_string()))
}

/// Writes a token configuration file, refusing to replace one.
pub fn write_token_file(path: &Path, cfg: &Pkcs11Section) -> Result<(), Pkcs11Error> {
    use std::io::Write;
    let text = toml::to_string(cfg).map_err(|e| Pkcs11Error::Config(path.into(), e.to_string()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Pkcs11Error::Config(path.into(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_round_trip_refuse_replacement_and_name_a_bad_file() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(read_root_token(dir.path()).expect("none").is_none());
        let cfg = Pkcs11Section {
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            token: "offline-root".into(),
            key_label: "keystamp-root".into(),
        };
        let path = dir.path().join(ROOT_TOKEN_FILE);
        write_token_file(&path, &cfg).expect("write");
        assert_eq!(
            read_root_token(dir.path()).expect("read"),
            Some(cfg.clone())
        );
        // A second root configuration never replaces the first.
        assert!(matches!(
            write_token_file(&path, &cfg),
            Err(Pkcs11Error::Config(..))
        ));
        std::fs::write(&path, "module = 3\n").expect("write");
        let e = read_root_token(dir.path()).expect_err("malformed");
        assert!(e.to_string().contains(ROOT_TOKEN_FILE), "{e}");
    }
}
