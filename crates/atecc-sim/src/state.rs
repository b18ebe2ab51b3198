//! Non-volatile state (what the chip's EEPROM holds) and its on-disk format.
//!
//! # File format (version 1)
//!
//! A UTF-8 JSON object, chosen so a state file can be read and diffed by hand:
//!
//! ```json
//! {
//!   "format": "keystamp-atecc-sim",
//!   "version": 1,
//!   "revision": "Atecc608A",
//!   "config": "<256 hex digits: the 128-byte configuration zone>",
//!   "otp": "<128 hex digits: the 64-byte OTP zone>",
//!   "slots": ["<hex of slot 0, 36 bytes>", "...", "<hex of slot 15, 72 bytes>"],
//!   "rng": { "seed": "<64 hex digits>", "word_pos": "<decimal u128>" }
//! }
//! ```
//!
//! Locks, `SlotLocked`, counters and `UserExtra` live inside `config` exactly as the chip keeps
//! them; private keys live inside their slots (`00 00 00 00 ‖ scalar[32]`, the PrivWrite layout).
//! `rng` is the emulator's random generator position, so a reloaded device continues the same
//! reproducible sequence. Readers refuse other `format` strings and versions they do not know.
//!
//! Files are written atomically: a temporary file in the same directory is written, fsynced and
//! renamed over the target, then the directory is fsynced (on Unix; Windows has no directory
//! fsync and NTFS journals the rename); a crash at any point leaves either the old or the new
//! file.

use crate::config::{CONFIG_SIZE, OTP_SIZE, Revision, SLOT_COUNT, slot_size};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The `format` string of a state file.
pub const FORMAT_NAME: &str = "keystamp-atecc-sim";
/// The current state-file version.
pub const FORMAT_VERSION: u32 = 1;

/// Everything the chip keeps across power loss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvState {
    /// Which revision the chip reports.
    pub revision: Revision,
    /// The configuration zone, including locks, counters and `SlotLocked`.
    pub config: [u8; CONFIG_SIZE],
    /// The OTP zone.
    pub otp: [u8; OTP_SIZE],
    /// The 16 data slots at their real sizes (36, 416 or 72 bytes).
    pub slots: Vec<Vec<u8>>,
}

impl NvState {
    /// A state with the given configuration zone and an erased (all-zero) data and OTP zone.
    pub fn new(revision: Revision, config: [u8; CONFIG_SIZE]) -> Self {
        Self {
            revision,
            config,
            otp: [0; OTP_SIZE],
            slots: (0..SLOT_COUNT).map(|s| vec![0u8; slot_size(s)]).collect(),
        }
    }

    /// Contents of slot `slot`.
    pub fn slot(&self, slot: usize) -> &[u8] {
        &self.slots[slot & 0x0F]
    }
}

/// Position of the emulator's random generator, saved with the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngState {
    /// ChaCha20 seed.
    pub seed: [u8; 32],
    /// Word position within the stream.
    pub word_pos: u128,
}

#[derive(Serialize, Deserialize)]
struct FileRng {
    seed: String,
    word_pos: String,
}

#[derive(Serialize, Deserialize)]
struct FileV1 {
    format: String,
    version: u32,
    revision: Revision,
    config: String,
    otp: String,
    slots: Vec<String>,
    rng: FileRng,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn decode_fixed<const N: usize>(field: &str, text: &str) -> io::Result<[u8; N]> {
    let bytes = hex::decode(text).map_err(|e| invalid(format!("{field}: {e}")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| invalid(format!("{field}: {} bytes, expected {N}", b.len())))
}

/// Serialises a state to the version-1 JSON text.
pub fn encode(state: &NvState, rng: &RngState) -> Vec<u8> {
    let file = FileV1 {
        format: FORMAT_NAME.to_string(),
        version: FORMAT_VERSION,
        revision: state.revision,
        config: hex::encode_upper(state.config),
        otp: hex::encode_upper(state.otp),
        slots: state.slots.iter().map(hex::encode_upper).collect(),
        rng: FileRng {
            seed: hex::encode_upper(rng.seed),
            word_pos: rng.word_pos.to_string(),
        },
    };
    // Serialising plain strings and integers cannot fail.
    let mut text = serde_json::to_vec_pretty(&file).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Parses a state file's text, checking format, version and every size.
pub fn decode(text: &[u8]) -> io::Result<(NvState, RngState)> {
    #[derive(Deserialize)]
    struct Header {
        format: String,
        version: u32,
    }
    let header: Header = serde_json::from_slice(text).map_err(|e| invalid(e.to_string()))?;
    if header.format != FORMAT_NAME {
        return Err(invalid(format!(
            "not a {FORMAT_NAME} state file: {:?}",
            header.format
        )));
    }
    if header.version != FORMAT_VERSION {
        return Err(invalid(format!(
            "unsupported state version {}",
            header.version
        )));
    }
    let file: FileV1 = serde_json::from_slice(text).map_err(|e| invalid(e.to_string()))?;
    if file.slots.len() != SLOT_COUNT {
        return Err(invalid(format!(
            "{} slots, expected {SLOT_COUNT}",
            file.slots.len()
        )));
    }
    let mut slots = Vec::with_capacity(SLOT_COUNT);
    for (i, text) in file.slots.iter().enumerate() {
        let bytes = hex::decode(text).map_err(|e| invalid(format!("slot {i}: {e}")))?;
        if bytes.len() != slot_size(i) {
            return Err(invalid(format!(
                "slot {i}: {} bytes, expected {}",
                bytes.len(),
                slot_size(i)
            )));
        }
        slots.push(bytes);
    }
    let state = NvState {
        revision: file.revision,
        config: decode_fixed("config", &file.config)?,
        otp: decode_fixed("otp", &file.otp)?,
        slots,
    };
    let rng = RngState {
        seed: decode_fixed("rng.seed", &file.rng.seed)?,
        word_pos: file
            .rng
            .word_pos
            .parse()
            .map_err(|_| invalid("rng.word_pos"))?,
    };
    Ok((state, rng))
}

/// Where a simulated crash interrupts [`write_atomic_with_crash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveCrash {
    /// Power fails halfway through writing the temporary file.
    DuringTempWrite,
    /// Power fails after the temporary file is complete and synced, before the rename.
    BeforeRename,
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_inner(path, bytes, None)
}

/// Like [`write_atomic`] but stops at `crash` as a power failure would, leaving whatever a real
/// crash leaves on disk; returns an `Interrupted` error.
pub fn write_atomic_with_crash(path: &Path, bytes: &[u8], crash: SaveCrash) -> io::Result<()> {
    write_atomic_inner(path, bytes, Some(crash))
}

fn write_atomic_inner(path: &Path, bytes: &[u8], crash: Option<SaveCrash>) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    if crash == Some(SaveCrash::DuringTempWrite) {
        file.write_all(&bytes[..bytes.len() / 2])?;
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "simulated crash during write",
        ));
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    if crash == Some(SaveCrash::BeforeRename) {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "simulated crash before rename",
        ));
    }
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// The rename is durable only once the directory entry is on disk (Unix: fsync the directory).
#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}

/// Windows cannot open a directory as a file (`File::open` is refused: access denied); NTFS
/// journals the rename itself, so there is nothing to sync.
#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::factory_config;

    #[test]
    fn encode_decode_round_trip_and_rejects_bad_files() {
        let mut state = NvState::new(
            Revision::Atecc608B,
            factory_config(Revision::Atecc608B, [1; 6], 0x55),
        );
        state.slots[8][415] = 0xA5;
        state.otp[3] = 7;
        let rng = RngState {
            seed: [9; 32],
            word_pos: 12345,
        };
        let text = encode(&state, &rng);
        assert_eq!(decode(&text).unwrap(), (state.clone(), rng));

        let bad_version = String::from_utf8(text.clone())
            .unwrap()
            .replace("\"version\": 1", "\"version\": 2");
        assert!(decode(bad_version.as_bytes()).is_err());
        let bad_format = String::from_utf8(text.clone())
            .unwrap()
            .replace(FORMAT_NAME, "other");
        assert!(decode(bad_format.as_bytes()).is_err());
        assert!(decode(&text[..text.len() / 2]).is_err());
    }
}
