//! Where the certificate-definition blob lives on the device: any `embedded_storage::Storage`
//! (a flash partition on the ESP32, a file or RAM in simulation).
//!
//! Layout: a 104-byte header at offset 0 — magic `KSB2`, blob length (u32 LE), SHA-256 of the
//! blob, the signer's 64-byte signature of the blob (docs/certdef-format.md, "Signed blob") —
//! and the blob at offset [`BLOB_OFFSET`]. The blob is written first and the header last, and the
//! digest is checked on every load, so a write torn by a reset leaves "no blob", never a wrong
//! one. The digest only detects corruption: whether the blob is trusted is decided by the agent,
//! which checks the signature with the chip on every load and use.
//!
//! The last [`IO_KEY_RECORD_LEN`] bytes of the storage hold the IO-protection key record (when
//! the profile enables IO protection, docs/atecc.md): magic `KSK1`, the 32-byte key, the first
//! 28 bytes of its SHA-256; the blob never reaches into them.

use embedded_storage::Storage;

/// Header magic (`KSB1`, the unsigned layout of protocol version 1, reads as empty).
pub const MAGIC: [u8; 4] = *b"KSB2";
/// Header length in bytes.
pub const HEADER_LEN: usize = 104;
/// Where the blob starts.
pub const BLOB_OFFSET: u32 = 128;

/// IO-protection key record magic.
pub const IO_KEY_MAGIC: [u8; 4] = *b"KSK1";
/// Length of the IO-protection key record at the end of the storage.
pub const IO_KEY_RECORD_LEN: usize = 64;

/// Room for the blob: the storage minus the header area and the IO-key record.
fn blob_room(capacity: usize) -> usize {
    capacity
        .saturating_sub(BLOB_OFFSET as usize)
        .saturating_sub(IO_KEY_RECORD_LEN)
}

/// Where the IO-key record starts, if the storage has room for header, record and some blob.
fn io_key_offset(capacity: usize) -> Result<u32, StoreError> {
    if blob_room(capacity) == 0 {
        return Err(StoreError::TooLarge);
    }
    u32::try_from(capacity - IO_KEY_RECORD_LEN).map_err(|_| StoreError::TooLarge)
}

/// Stores the IO-protection key: the record is invalidated first and its magic written last, so
/// a torn write leaves "no key", never a wrong one.
pub fn save_io_key<S: Storage>(store: &mut S, key: &[u8; 32]) -> Result<(), StoreError> {
    let at = io_key_offset(store.capacity())?;
    store.write(at, &[0u8; 4]).map_err(|_| StoreError::Io)?;
    let mut record = [0u8; IO_KEY_RECORD_LEN];
    record[4..36].copy_from_slice(key);
    record[36..].copy_from_slice(&sha256(key)[..IO_KEY_RECORD_LEN - 36]);
    store
        .write(at + 4, &record[4..])
        .map_err(|_| StoreError::Io)?;
    store.write(at, &IO_KEY_MAGIC).map_err(|_| StoreError::Io)
}

/// Loads the IO-protection key ([`StoreError::Empty`] if none was stored, `Corrupt` if its
/// check bytes do not match).
pub fn load_io_key<S: Storage>(store: &mut S) -> Result<[u8; 32], StoreError> {
    let at = io_key_offset(store.capacity())?;
    let mut record = [0u8; IO_KEY_RECORD_LEN];
    store.read(at, &mut record).map_err(|_| StoreError::Io)?;
    if record[..4] != IO_KEY_MAGIC {
        return Err(StoreError::Empty);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&record[4..36]);
    if sha256(&key)[..IO_KEY_RECORD_LEN - 36] != record[36..] {
        return Err(StoreError::Corrupt);
    }
    Ok(key)
}

/// Why the stored blob could not be loaded or saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StoreError {
    /// Nothing stored (no header, or a header from an interrupted write).
    Empty,
    /// The stored blob is larger than the caller's buffer or the storage.
    TooLarge,
    /// The stored bytes do not match the header's digest.
    Corrupt,
    /// The storage itself failed.
    Io,
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            StoreError::Empty => "no blob stored",
            StoreError::TooLarge => "the stored blob is larger than the buffer or the storage",
            StoreError::Corrupt => "the stored blob does not match its digest",
            StoreError::Io => "the storage failed",
        })
    }
}

impl core::error::Error for StoreError {}

/// SHA-256 of `data` (the certificate codec's implementation: one copy on the device).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    keystamp_certdef::sha256(data)
}

/// A stored blob's header facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Blob length.
    pub len: usize,
    /// SHA-256 of the blob.
    pub digest: [u8; 32],
    /// The signer's signature (R ‖ S) of the blob's envelope digest.
    pub signature: [u8; 64],
}

/// Loads the stored blob into `buf`; returns its header facts (the digest checked).
pub fn load<S: Storage>(store: &mut S, buf: &mut [u8]) -> Result<Stored, StoreError> {
    let mut header = [0u8; HEADER_LEN];
    store.read(0, &mut header).map_err(|_| StoreError::Io)?;
    if header[..4] != MAGIC {
        return Err(StoreError::Empty);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&header[8..40]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&header[40..104]);
    let room = blob_room(store.capacity());
    if len == 0 || len > room {
        return Err(StoreError::Corrupt);
    }
    let dst = buf.get_mut(..len).ok_or(StoreError::TooLarge)?;
    store.read(BLOB_OFFSET, dst).map_err(|_| StoreError::Io)?;
    if sha256(dst) != digest {
        return Err(StoreError::Corrupt);
    }
    Ok(Stored {
        len,
        digest,
        signature,
    })
}

/// Stores `blob` (whose SHA-256 is `digest`) with its `signature`: first the bytes, then the
/// header.
pub fn save<S: Storage>(
    store: &mut S,
    blob: &[u8],
    digest: &[u8; 32],
    signature: &[u8; 64],
) -> Result<(), StoreError> {
    if blob.len() > blob_room(store.capacity()) {
        return Err(StoreError::TooLarge);
    }
    let len = u32::try_from(blob.len()).map_err(|_| StoreError::TooLarge)?;
    // Invalidate the old header first so a reset between the two writes cannot pair the old
    // header with new bytes (the digest check would catch it, but "empty" is the honest state).
    store.write(0, &[0u8; 4]).map_err(|_| StoreError::Io)?;
    store.write(BLOB_OFFSET, blob).map_err(|_| StoreError::Io)?;
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..40].copy_from_slice(digest);
    header[40..104].copy_from_slice(signature);
    store.write(0, &header).map_err(|_| StoreError::Io)
}

/// Storage in RAM: for tests, the simulator and boards without a flash partition.
#[derive(Clone, Debug)]
pub struct MemStore<const N: usize> {
    /// The bytes (erased flash reads as 0xFF).
    pub bytes: [u8; N],
}

impl<const N: usize> Default for MemStore<N> {
    fn default() -> Self {
        Self { bytes: [0xFF; N] }
    }
}

/// [`MemStore`] never fails except for out-of-range accesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds;

impl<const N: usize> embedded_storage::ReadStorage for MemStore<N> {
    type Error = OutOfBounds;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), OutOfBounds> {
        let start = offset as usize;
        let src = self
            .bytes
            .get(start..start + bytes.len())
            .ok_or(OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> Storage for MemStore<N> {
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), OutOfBounds> {
        let start = offset as usize;
        let dst = self
            .bytes
            .get_mut(start..start + bytes.len())
            .ok_or(OutOfBounds)?;
        dst.copy_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let mut s = MemStore::<1024>::default();
        let blob = [7u8; 300];
        let d = sha256(&blob);
        save(&mut s, &blob, &d, &[3; 64]).unwrap();
        let mut buf = [0u8; 512];
        let want = Stored {
            len: 300,
            digest: d,
            signature: [3; 64],
        };
        assert_eq!(load(&mut s, &mut buf), Ok(want));
        assert_eq!(&buf[..300], &blob[..]);
    }

    #[test]
    fn io_key_round_trips_next_to_a_full_blob_and_a_flip_is_corrupt() {
        let mut s = MemStore::<1024>::default();
        assert_eq!(load_io_key(&mut s), Err(StoreError::Empty));
        let key = [0x5Cu8; 32];
        save_io_key(&mut s, &key).unwrap();
        // The largest blob the storage takes leaves the key record alone.
        let room = 1024 - BLOB_OFFSET as usize - IO_KEY_RECORD_LEN;
        let blob = [0xB1u8; 1024];
        assert_eq!(
            save(
                &mut s,
                &blob[..room + 1],
                &sha256(&blob[..room + 1]),
                &[0; 64]
            ),
            Err(StoreError::TooLarge)
        );
        save(&mut s, &blob[..room], &sha256(&blob[..room]), &[0; 64]).unwrap();
        assert_eq!(load_io_key(&mut s), Ok(key));
        let mut buf = [0u8; 1024];
        assert_eq!(load(&mut s, &mut buf).map(|st| st.len), Ok(room));
        s.bytes[1024 - IO_KEY_RECORD_LEN + 10] ^= 1;
        assert_eq!(load_io_key(&mut s), Err(StoreError::Corrupt));
    }

    #[test]
    fn blank_storage_is_empty() {
        let mut s = MemStore::<256>::default();
        let mut buf = [0u8; 64];
        assert_eq!(load(&mut s, &mut buf), Err(StoreError::Empty));
    }

    #[test]
    fn a_flipped_byte_is_corrupt_not_loaded() {
        let mut s = MemStore::<1024>::default();
        let blob = [1u8, 2, 3, 4];
        save(&mut s, &blob, &sha256(&blob), &[0; 64]).unwrap();
        s.bytes[BLOB_OFFSET as usize + 2] ^= 1;
        let mut buf = [0u8; 64];
        assert_eq!(load(&mut s, &mut buf), Err(StoreError::Corrupt));
    }

    #[test]
    fn torn_write_leaves_no_blob() {
        // Reset after the header was invalidated and the bytes written, before the new header.
        let mut s = MemStore::<1024>::default();
        save(&mut s, &[9u8; 10], &sha256(&[9u8; 10]), &[0; 64]).unwrap();
        s.bytes[..4].copy_from_slice(&[0; 4]);
        let mut buf = [0u8; 64];
        assert_eq!(load(&mut s, &mut buf), Err(StoreError::Empty));
    }

    #[test]
    fn too_small_buffer_is_an_error() {
        let mut s = MemStore::<1024>::default();
        let blob = [5u8; 100];
        save(&mut s, &blob, &sha256(&blob), &[0; 64]).unwrap();
        let mut buf = [0u8; 50];
        assert_eq!(load(&mut s, &mut buf), Err(StoreError::TooLarge));
    }
}
