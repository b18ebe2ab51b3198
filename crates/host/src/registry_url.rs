//! Where the registry lives: an SQLite file (one host) or a PostgreSQL URL (several hosts).
//!
//! A PostgreSQL URL never carries the password: it would end up in `keystamp.toml`, shell
//! history and process listings. The password comes from `PGPASSWORD` or a pgpass file
//! (`PGPASSFILE`, else `~/.pgpass`), as for every PostgreSQL client.

use std::fmt;
use std::path::{Path, PathBuf};

/// A registry location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, `postgres://user@host:port/db` (no password).
    Postgres(String),
}

/// Why a registry location was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationError {
    /// The URL names a password.
    Password,
    /// The URL does not parse.
    Invalid(String),
}

impl fmt::Display for LocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password => f.write_str(
                "the registry URL contains a password: remove it from the URL and give it in \
                 the PGPASSWORD environment variable or a pgpass file (~/.pgpass, or the file \
                 PGPASSFILE names)",
            ),
            Self::Invalid(e) => write!(f, "the registry URL is not a PostgreSQL URL: {e}"),
        }
    }
}

impl std::error::Error for LocationError {}

impl Location {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; anything else is an SQLite path
    /// (relative paths are taken relative to `base`, the project directory).
    pub fn parse(text: &str, base: &Path) -> Result<Self, LocationError> {
        if is_postgres_url(text) {
            let config: postgres::Config = text
                .parse()
                .map_err(|e: postgres::Error| LocationError::Invalid(e.to_string()))?;
            if config.get_password().is_some() {
                return Err(LocationError::Password);
            }
            Ok(Self::Postgres(text.to_string()))
        } else {
            Ok(Self::Sqlite(base.join(text)))
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => p.display().fmt(f),
            Self::Postgres(u) => f.write_str(u),
        }
    }
}

/// Whether `text` is a PostgreSQL URL rather than a file path.
pub fn is_postgres_url(text: &str) -> bool {
    let lower = text.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The password for `config`: `PGPASSWORD`, else the first matching pgpass line.
pub(crate) fn password_for(config: &postgres::Config) -> Option<String> {
    if let Some(pw) = std::env::var_os("PGPASSWORD") {
        return Some(pw.to_string_lossy().into_owned());
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    pgpass_lookup(&text, [&host, &port, db, user])
}

/// The password of the first pgpass line matching host, port, database and user (`*`
/// matches anything; `\:` and `\\` escape), as libpq reads the file.
fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            let [h, p, d, u, pw] = <[String; 5]>::try_from(fields).ok()?;
            let matches = [h, p, d, u]
                .iter()
                .zip(want)
                .all(|(f, w)| f == "*" || f == w);
            matches.then_some(pw)
        })
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(last)) = (chars.next(), fields.last_mut()) {
                    last.push(n);
                }
            }
            ':' => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_password_is_refused_with_where_to_put_it() {
        let base = Path::new("/p");
        let e =
            Location::parse("postgres://ks:secret@db.local/keystamp", base).expect_err("password");
        assert_eq!(e, LocationError::Password);
        assert!(e.to_string().contains("PGPASSWORD"), "{e}");
        assert_eq!(
            Location::parse("postgres://ks@db.local:5433/keystamp", base).expect("url"),
            Location::Postgres("postgres://ks@db.local:5433/keystamp".into())
        );
        assert_eq!(
            Location::parse("registry.sqlite", base).expect("path"),
            Location::Sqlite(base.join("registry.sqlite"))
        );
    }

    #[test]
    fn pgpass_lines_match_like_libpq() {
        let text =
            "# comment\nother:5432:*:ks:nope\ndb.local:5433:keystamp:ks:pa\\:ss\n*:*:*:*:any\n";
        assert_eq!(
            pgpass_lookup(text, ["db.local", "5433", "keystamp", "ks"]).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_lookup(text, ["x", "1", "y", "z"]).as_deref(),
            Some("any")
        );
        assert_eq!(pgpass_lookup("a:b:c\n", ["a", "b", "c", "d"]), None);
    }
}
