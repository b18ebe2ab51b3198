//! Where the CA passphrase comes from: `KEYSTAMP_CA_PASSPHRASE`, or a prompt when standard input
//! is a terminal. Never from a command-line flag (it would show in `ps` and shell history).

use std::io::IsTerminal;

use zeroize::Zeroizing;

use crate::pki::ca::PASSPHRASE_ENV;

/// Shortest passphrase `init` accepts for a new CA.
pub const MIN_NEW_PASSPHRASE_LEN: usize = 8;

/// Why no passphrase could be had.
#[derive(Debug)]
pub enum PassphraseError {
    /// The environment variable is not UTF-8.
    NotUtf8,
    /// No variable and no terminal to prompt on (`new`: creating a CA).
    NoTerminal {
        /// Creating a CA (`--insecure-no-passphrase` is an option).
        new: bool,
    },
    /// The prompt failed.
    Prompt(std::io::Error),
    /// The two prompted passphrases differ.
    Differ,
    /// Empty.
    Empty,
    /// Shorter than [`MIN_NEW_PASSPHRASE_LEN`] for a new CA.
    TooShort,
}

impl std::fmt::Display for PassphraseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotUtf8 => write!(
                f,
                "{PASSPHRASE_ENV} is not valid UTF-8: use a UTF-8 passphrase"
            ),
            Self::NoTerminal { new } => write!(
                f,
                "the CA passphrase is needed: set {PASSPHRASE_ENV} (no terminal to prompt on){}",
                if *new {
                    ", or pass --insecure-no-passphrase for a throwaway CA"
                } else {
                    ""
                }
            ),
            Self::Prompt(e) => write!(f, "prompt: {e}"),
            Self::Differ => f.write_str("the two passphrases differ: run the command again"),
            Self::Empty => write!(
                f,
                "the CA passphrase is empty: set {PASSPHRASE_ENV} to a passphrase \
                 (or use --insecure-no-passphrase with init)"
            ),
            Self::TooShort => write!(
                f,
                "the CA passphrase is too short: use at least {MIN_NEW_PASSPHRASE_LEN} characters"
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

/// Reads the CA passphrase. With `new` (creating a CA) a prompted passphrase is asked twice and
/// must be at least [`MIN_NEW_PASSPHRASE_LEN`] characters.
pub fn read_passphrase(new: bool) -> Result<Zeroizing<String>, PassphraseError> {
    if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
        let value = Zeroizing::new(value.into_string().map_err(|_| PassphraseError::NotUtf8)?);
        return check(value, new);
    }
    if !std::io::stdin().is_terminal() {
        return Err(PassphraseError::NoTerminal { new });
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("CA passphrase: ").map_err(PassphraseError::Prompt)?,
    );
    if new {
        let again = Zeroizing::new(
            rpassword::prompt_password("CA passphrase (again): ")
                .map_err(PassphraseError::Prompt)?,
        );
        if *again != *first {
            return Err(PassphraseError::Differ);
        }
    }
    check(first, new)
}

fn check(value: Zeroizing<String>, new: bool) -> Result<Zeroizing<String>, PassphraseError> {
    if value.is_empty() {
        return Err(PassphraseError::Empty);
    }
    if new && value.chars().count() < MIN_NEW_PASSPHRASE_LEN {
        return Err(PassphraseError::TooShort);
    }
    Ok(value)
}
