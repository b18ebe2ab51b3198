//! Lots and modes: importing a reel's serial list, creating counted lots, and what a
//! production project refuses before any device is touched.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::OpsError;
use crate::pki::ca;
use crate::project::{DEVELOPMENT_MARKER, Mode, Project, is_simulated_serial};
use crate::registry::ChipSerial;
use crate::registry::lots::{IssuancePolicy, LotRecord};

/// The largest serial list `lot import` reads.
pub const MAX_LOT_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Header names (case-insensitive) of the serial column in a CSV serial list.
pub const SERIAL_COLUMNS: [&str; 7] = [
    "serial",
    "serial_number",
    "serial number",
    "sn",
    "chip_serial",
    "uniqueid",
    "unique_id",
];

/// Why a serial list was not imported. Display is one line saying what to do.
#[derive(Debug)]
pub enum LotFileError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_LOT_FILE_BYTES`].
    TooLarge(PathBuf),
    /// The file is not UTF-8 text.
    NotText(PathBuf),
    /// A CSV header without a serial column.
    NoSerialColumn(PathBuf),
    /// A line whose serial is not 18 hex digits.
    BadSerial {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A CSV row with fewer cells than the serial column needs.
    MissingCell {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A simulated chip's serial in a production project's list.
    Simulated {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// No serials in the file.
    Empty(PathBuf),
}

impl fmt::Display for LotFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::TooLarge(path) => write!(
                f,
                "{}: larger than {} MiB: split the serial list into several lots",
                path.display(),
                MAX_LOT_FILE_BYTES / (1024 * 1024)
            ),
            Self::NotText(path) => write!(
                f,
                "{}: not UTF-8 text: give one serial per line or a CSV file",
                path.display()
            ),
            Self::NoSerialColumn(path) => write!(
                f,
                "{}: the CSV header names no serial column (one of: {})",
                path.display(),
                SERIAL_COLUMNS.join(", ")
            ),
            Self::BadSerial { path, line } => write!(
                f,
                "{} line {line}: not a chip serial (18 hex digits, e.g. 0123A1B2C3D4E5F6EE); \
                 nothing imported",
                path.display()
            ),
            Self::MissingCell { path, line } => write!(
                f,
                "{} line {line}: no serial cell in this row; nothing imported",
                path.display()
            ),
            Self::Simulated { path, line } => write!(
                f,
                "{} line {line}: a simulated chip's serial (first byte EE) in a production \
                 project; nothing imported",
                path.display()
            ),
            Self::Empty(path) => write!(f, "{}: no serials", path.display()),
        }
    }
}

impl std::error::Error for LotFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What a production project refuses, before any device is touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeError {
    /// `--simulate` in production.
    Simulate,
    /// The CA keys are stored unencrypted.
    UnencryptedKeys(PathBuf),
    /// The CA is a development CA (its organization ends with the development marker).
    DevelopmentCa(PathBuf),
    /// No open lot.
    NoOpenLot,
}

impl fmt::Display for ModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Simulate => f.write_str(
                "production project: --simulate is refused (simulated chips keep their keys in \
                 plain files); use a development project",
            ),
            Self::UnencryptedKeys(dir) => write!(
                f,
                "production project: the CA keys in {} are not encrypted; a production CA needs \
                 a passphrase",
                dir.display()
            ),
            Self::DevelopmentCa(dir) => write!(
                f,
                "production project: the CA in {} is a development CA (its organization ends \
                 with \"{}\"); create a production project",
                dir.display(),
                DEVELOPMENT_MARKER.trim()
            ),
            Self::NoOpenLot => f.write_str(
                "production project: no open lot, and every device must be in one: \
                 `keystamp lot import FILE` or `keystamp lot create --count N` first",
            ),
        }
    }
}

impl std::error::Error for ModeError {}

/// What the registry enforces at issuance for this project.
pub fn issuance_policy(project: &Project) -> IssuancePolicy {
    let production = project.profile.mode == Mode::Production;
    IssuancePolicy {
        lot_required: production,
        max_reissues: Some(project.profile.issuance.max_reissues),
        refuse_simulated: production,
    }
}

/// The production checks that need no device: no `--simulate`, an encrypted production CA and
/// an open lot. A development project passes.
pub fn check_mode(project: &Project, simulate: bool) -> Result<(), OpsError> {
    if project.profile.mode != Mode::Production {
        return Ok(());
    }
    if simulate {
        return Err(ModeError::Simulate.into());
    }
    let ca_dir = project.ca_dir();
    // A signer key in a PKCS#11 token counts as protected (the token guards it with its PIN).
    if project.profile.ca.pkcs11.is_none() && !ca::keys_encrypted(&ca_dir)? {
        return Err(ModeError::UnencryptedKeys(ca_dir).into());
    }
    let certs = ca::CaCerts::load(&ca_dir)?;
    let organization = certs
        .root
        .cert
        .tbs_certificate()
        .subject()
        .organization()
        .ok()
        .flatten()
        .map(String::from)
        .unwrap_or_default();
    if organization.ends_with(DEVELOPMENT_MARKER) {
        return Err(ModeError::DevelopmentCa(ca_dir).into());
    }
    let registry = super::open_registry(project)?;
    if !registry.lots()?.iter().any(|l| l.open) {
        return Err(ModeError::NoOpenLot.into());
    }
    Ok(())
}

/// Reads a serial list (one serial per line, or CSV with a serial column; `#` starts a
/// comment line) from `path`, at most [`MAX_LOT_FILE_BYTES`].
pub fn read_serial_list(path: &Path) -> Result<Vec<(usize, ChipSerial)>, LotFileError> {
    let io = |source| LotFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_LOT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_LOT_FILE_BYTES {
        return Err(LotFileError::TooLarge(path.to_path_buf()));
    }
    let text = String::from_utf8(bytes).map_err(|_| LotFileError::NotText(path.to_path_buf()))?;
    parse_serial_list(&text).map_err(|e| e.at(path))
}

/// A serial-list problem before the file name is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListError {
    /// CSV header without a serial column.
    NoSerialColumn,
    /// Line `n` holds no valid serial.
    BadSerial(usize),
    /// Line `n` has too few cells.
    MissingCell(usize),
    /// No serials.
    Empty,
}

impl ListError {
    fn at(self, path: &Path) -> LotFileError {
        let path = path.to_path_buf();
        match self {
            Self::NoSerialColumn => LotFileError::NoSerialColumn(path),
            Self::BadSerial(line) => LotFileError::BadSerial { path, line },
            Self::MissingCell(line) => LotFileError::MissingCell { path, line },
            Self::Empty => LotFileError::Empty(path),
        }
    }
}

/// Parses a serial list: one serial per line, or CSV (`,`, `;` or tab) whose header names a
/// [`SERIAL_COLUMNS`] column. Blank lines and lines starting with `#` are skipped; a serial may
/// be quoted or prefixed `0x`. Each serial comes with its 1-based line number.
pub fn parse_serial_list(text: &str) -> Result<Vec<(usize, ChipSerial)>, ListError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((first_no, first)) = lines.next() else {
        return Err(ListError::Empty);
    };
    let delimiter = [',', ';', '\t'].into_iter().find(|d| first.contains(*d));
    let mut out = Vec::new();
    match delimiter {
        None => {
            for (no, line) in std::iter::once((first_no, first)).chain(lines) {
                out.push((no, parse_serial(line).ok_or(ListError::BadSerial(no))?));
            }
        }
        Some(d) => {
            let column = split_csv(first, d)
                .iter()
                .position(|h| {
                    let h = h.trim().to_ascii_lowercase();
                    SERIAL_COLUMNS.contains(&h.as_str())
                })
                .ok_or(ListError::NoSerialColumn)?;
            for (no, line) in lines {
                let cells = split_csv(line, d);
                let cell = cells.get(column).ok_or(ListError::MissingCell(no))?;
                out.push((no, parse_serial(cell).ok_or(ListError::BadSerial(no))?));
            }
        }
    }
    if out.is_empty() {
        return Err(ListError::Empty);
    }
    Ok(out)
}

/// Cells of one CSV line; a cell may be double-quoted (holding the delimiter, `""` for `"`).
fn split_csv(line: &str, delimiter: char) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == delimiter && !quoted => cells.push(std::mem::take(&mut cell)),
            c => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

fn parse_serial(cell: &str) -> Option<ChipSerial> {
    let s = cell.trim().trim_matches('"').trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.len() != 18 {
        return None;
    }
    s.parse().ok()
}

/// `lot import`: a listed lot of the serials in `file` (named `name`, or `lot-N`).
pub fn import_lot(
    project: &Project,
    file: &Path,
    name: Option<&str>,
) -> Result<LotRecord, OpsError> {
    let numbered = read_serial_list(file)?;
    if project.profile.mode == Mode::Production
        && let Some((line, _)) = numbered.iter().find(|(_, s)| is_simulated_serial(&s.0))
    {
        return Err(LotFileError::Simulated {
            path: file.to_path_buf(),
            line: *line,
        }
        .into());
    }
    let serials: Vec<ChipSerial> = numbered.into_iter().map(|(_, s)| s).collect();
    let mut registry = super::open_registry_for_update(project)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => registry.next_lot_name()?,
    };
    let source = file.display().to_string();
    Ok(registry.import_lot(&name, &serials, Some(&source))?)
}

/// `lot create --count N`: a counted lot of `count` chips (named `name`, or `lot-N`).
pub fn create_lot(
    project: &Project,
    count: u64,
    name: Option<&str>,
) -> Result<LotRecord, OpsError> {
    let mut registry = super::open_registry_for_update(project)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => registry.next_lot_name()?,
    };
    Ok(registry.create_lot(&name, count)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S1: &str = "0123A1B2C3D4E5F6EE";
    const S2: &str = "0123000000000001EE";

    fn serials(list: &[(usize, &str)]) -> Vec<(usize, ChipSerial)> {
        list.iter()
            .map(|(n, s)| (*n, s.parse().expect("serial")))
            .collect()
    }

    #[test]
    fn one_serial_per_line_with_comments_and_prefixes() {
        let text = format!("# reel 42\n\n{S1}\n  0x{}  \n", S2.to_lowercase());
        assert_eq!(parse_serial_list(&text), Ok(serials(&[(3, S1), (4, S2)])));
    }

    #[test]
    fn csv_with_a_serial_column() {
        let text = format!("index;Serial Number;note\n1;{S1};ok\n2;\"{S2}\";\"a;b\"\n");
        assert_eq!(parse_serial_list(&text), Ok(serials(&[(2, S1), (3, S2)])));
        let text = format!("n,uniqueId\n1,{}\n", S1.to_lowercase());
        assert_eq!(parse_serial_list(&text), Ok(serials(&[(2, S1)])));
    }

    #[test]
    fn bad_lists_name_the_line() {
        assert_eq!(parse_serial_list("# only\n\n"), Err(ListError::Empty));
        assert_eq!(
            parse_serial_list(&format!("{S1}\n0123\n")),
            Err(ListError::BadSerial(2))
        );
        assert_eq!(
            parse_serial_list(&format!("{S1}\n{S1}00\n")),
            Err(ListError::BadSerial(2))
        );
        assert_eq!(
            parse_serial_list(&format!("a,b\n1,{S1}\n")),
            Err(ListError::NoSerialColumn)
        );
        assert_eq!(
            parse_serial_list(&format!("x,serial\n1,{S1}\n2\n")),
            Err(ListError::MissingCell(3))
        );
        // Terminal escapes in a line are never echoed: the error names the line only.
        let e = ListError::BadSerial(1).at(Path::new("l.txt")).to_string();
        assert!(!e.contains('\x1b'));
    }

    #[test]
    fn the_issuance_policy_follows_the_mode_and_profile() {
        let mut project = Project {
            dir: PathBuf::from("."),
            profile: crate::project::Profile::default(),
            config_zone: crate::project::ConfigZoneSource::Default,
        };
        project.profile.issuance.max_reissues = 5;
        assert_eq!(
            issuance_policy(&project),
            IssuancePolicy {
                lot_required: false,
                max_reissues: Some(5),
                refuse_simulated: false
            }
        );
        project.profile.mode = Mode::Production;
        let p = issuance_policy(&project);
        assert!(p.lot_required && p.refuse_simulated, "{p:?}");
    }

    #[test]
    fn an_oversized_file_is_refused_before_parsing() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("big.txt");
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(MAX_LOT_FILE_BYTES + 1).expect("size");
        let e = read_serial_list(&path).expect_err("too large");
        assert!(matches!(e, LotFileError::TooLarge(_)), "{e}");
        assert!(e.to_string().contains("16 MiB"), "{e}");
    }
}
