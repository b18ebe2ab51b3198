//! Where the CA passphrase comes from: `KEYSTAMP_CA_PASSPHRASE`, or a prompt when standard input
//! is a terminal. Never from a command-line flag (it would show in `ps` and shell history).

use std::io::IsTerminal;

use zeroize::Zeroizing;

use crate::pki::ca::PASSPHRASE_ENV;

/// Shortest passphrase `init` accepts for a new CA.
pub const MIN_NEW_PASSPHRASE_LEN: usize = 8;

/// Reads the CA passphrase. With `new` (creating a CA) a prompted passphrase is asked twice and
/// must be at least [`MIN_NEW_PASSPHRASE_LEN`] characters. Errors are one line saying what to do.
pub fn read_passphrase(new: bool) -> Result<Zeroizing<String>, String> {
    if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
        let value =
            Zeroizing::new(value.into_string().map_err(|_| {
                format!("{PASSPHRASE_ENV} is not valid UTF-8: use a UTF-8 passphrase")
            })?);
        return check(value, new);
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "the CA passphrase is needed: set {PASSPHRASE_ENV} (no terminal to prompt on){}",
            if new {
                ", or pass --insecure-no-passphrase for a throwaway CA"
            } else {
                ""
            }
        ));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("CA passphrase: ").map_err(|e| format!("prompt: {e}"))?,
    );
    if new {
        let again = Zeroizing::new(
            rpassword::prompt_password("CA passphrase (again): ")
                .map_err(|e| format!("prompt: {e}"))?,
        );
        if *again != *first {
            return Err("the two passphrases differ: run the command again".into());
        }
    }
    check(first, new)
}

fn check(value: Zeroizing<String>, new: bool) -> Result<Zeroizing<String>, String> {
    if value.is_empty() {
        return Err(format!(
            "the CA passphrase is empty: set {PASSPHRASE_ENV} to a passphrase \
             (or use --insecure-no-passphrase with init)"
        ));
    }
    if new && value.chars().count() < MIN_NEW_PASSPHRASE_LEN {
        return Err(format!(
            "the CA passphrase is too short: use at least {MIN_NEW_PASSPHRASE_LEN} characters"
        ));
    }
    Ok(value)
}
