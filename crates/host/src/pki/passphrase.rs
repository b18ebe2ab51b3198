//! Where the CA passphrases come from. Each key has its own: `KEYSTAMP_ROOT_PASSPHRASE` and
//! `KEYSTAMP_SIGNER_PASSPHRASE`, or a prompt naming the key when standard input is a terminal.
//! `KEYSTAMP_CA_PASSPHRASE`, the single variable of earlier versions, still works for a key
//! whose own variable is unset (with a note on standard error). Never from a command-line flag
//! (it would show in `ps` and shell history).

use std::io::IsTerminal;
use std::sync::Once;

use zeroize::Zeroizing;

use crate::pki::ca::{CaKey, PASSPHRASE_ENV};

/// Environment variable with the root key's passphrase.
pub const ROOT_PASSPHRASE_ENV: &str = "KEYSTAMP_ROOT_PASSPHRASE";
/// Environment variable with the signer key's passphrase.
pub const SIGNER_PASSPHRASE_ENV: &str = "KEYSTAMP_SIGNER_PASSPHRASE";

/// Shortest passphrase `init` accepts for a new CA key.
pub const MIN_NEW_PASSPHRASE_LEN: usize = 8;

/// The environment variable with `key`'s own passphrase.
pub fn env_var(key: CaKey) -> &'static str {
    match key {
        CaKey::Root => ROOT_PASSPHRASE_ENV,
        CaKey::Signer => SIGNER_PASSPHRASE_ENV,
    }
}

/// Why no passphrase could be had.
#[derive(Debug)]
pub enum PassphraseError {
    /// The environment variable is not UTF-8.
    NotUtf8(&'static str),
    /// No variable and no terminal to prompt on (`new`: creating a CA).
    NoTerminal {
        /// The key.
        key: CaKey,
        /// Creating a CA (`--insecure-no-passphrase` is an option).
        new: bool,
    },
    /// The prompt failed.
    Prompt(std::io::Error),
    /// The two prompted passphrases differ.
    Differ(CaKey),
    /// Empty.
    Empty(CaKey),
    /// Shorter than [`MIN_NEW_PASSPHRASE_LEN`] for a new CA.
    TooShort(CaKey),
}

impl std::fmt::Display for PassphraseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotUtf8(var) => write!(f, "{var} is not valid UTF-8: use a UTF-8 passphrase"),
            Self::NoTerminal { key, new } => write!(
                f,
                "the {key} key passphrase is needed: set {} (or {PASSPHRASE_ENV} for both keys; \
                 no terminal to prompt on){}",
                env_var(*key),
                if *new {
                    ", or pass --insecure-no-passphrase for a throwaway CA"
                } else {
                    ""
                }
            ),
            Self::Prompt(e) => write!(f, "prompt: {e}"),
            Self::Differ(key) => write!(
                f,
                "the two {key} key passphrases differ: run the command again"
            ),
            Self::Empty(key) => write!(
                f,
                "the {key} key passphrase is empty: set {} to a passphrase \
                 (or use --insecure-no-passphrase with init)",
                env_var(*key)
            ),
            Self::TooShort(key) => write!(
                f,
                "the {key} key passphrase is too short: use at least {MIN_NEW_PASSPHRASE_LEN} \
                 characters"
            ),
        }
    }
}

impl std::error::Error for PassphraseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Prompt(e) => Some(e),
            _ => None,
        }
    }
}

/// Where a passphrase was found (no prompt involved).
fn from_env(key: CaKey) -> Result<Option<Zeroizing<String>>, PassphraseError> {
    static FALLBACK_NOTE: Once = Once::new();
    for var in [env_var(key), PASSPHRASE_ENV] {
        if let Some(value) = std::env::var_os(var) {
            let value = Zeroizing::new(
                value
                    .into_string()
                    .map_err(|_| PassphraseError::NotUtf8(var))?,
            );
            if var == PASSPHRASE_ENV {
                // Once per run: `init` and `ca check` read both keys.
                FALLBACK_NOTE.call_once(|| {
                    eprintln!(
                        "keystamp: note: using {PASSPHRASE_ENV} for the {key} key; set \
                         {ROOT_PASSPHRASE_ENV} and {SIGNER_PASSPHRASE_ENV} to give each key its \
                         own passphrase"
                    );
                });
            }
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// Reads `key`'s passphrase. With `new` (creating a CA) a prompted passphrase is asked twice
/// and must be at least [`MIN_NEW_PASSPHRASE_LEN`] characters.
pub fn read_passphrase(key: CaKey, new: bool) -> Result<Zeroizing<String>, PassphraseError> {
    if let Some(value) = from_env(key)? {
        return check(key, value, new);
    }
    if !std::io::stdin().is_terminal() {
        return Err(PassphraseError::NoTerminal { key, new });
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("{key} key passphrase: "))
            .map_err(PassphraseError::Prompt)?,
    );
    if new {
        let again = Zeroizing::new(
            rpassword::prompt_password(format!("{key} key passphrase (again): "))
                .map_err(PassphraseError::Prompt)?,
        );
        if *again != *first {
            return Err(PassphraseError::Differ(key));
        }
    }
    check(key, first, new)
}

fn check(
    key: CaKey,
    value: Zeroizing<String>,
    new: bool,
) -> Result<Zeroizing<String>, PassphraseError> {
    if value.is_empty() {
        return Err(PassphraseError::Empty(key));
    }
    if new && value.chars().count() < MIN_NEW_PASSPHRASE_LEN {
        return Err(PassphraseError::TooShort(key));
    }
    Ok(value)
}
