//! Where the certificate-definition blob lives on the device: any `embedded_storage::Storage`
//! (a flash partition on the ESP32, a file or RAM in simulation).
//!
//! Layout: a 40-byte header at offset 0 — magic `KSB1`, blob length (u32 LE), SHA-256 of the
//! blob — and the blob at offset [`BLOB_OFFSET`]. The blob is written first and the header last,
//! and the digest is checked on every load, so a write torn by a reset leaves "no blob", never a
//! wrong one.

use embedded_storage::Storage;
use sha2::{Digest, Sha256};

/// Header magic.
pub const MAGIC: [u8; 4] = *b"KSB1";
/// Header length in bytes.
pub const HEADER_LEN: usize = 40;
/// Where the blob starts.
pub const BLOB_OFFSET: u32 = 64;

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

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Loads the stored blob into `buf`; returns its length and digest.
pub fn load<S: Storage>(store: &mut S, buf: &mut [u8]) -> Result<(usize, [u8; 32]), StoreError> {
    let mut header = [0u8; HEADER_LEN];
    store.read(0, &mut header).map_err(|_| StoreError::Io)?;
    if header[..4] != MAGIC {
        return Err(StoreError::Empty);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&header[8..40]);
    let room = store.capacity().saturating_sub(BLOB_OFFSET as usize);
    if len == 0 || len > room {
        return Err(StoreError::Corrupt);
    }
    let dst = buf.get_mut(..len).ok_or(StoreError::TooLarge)?;
    store.read(BLOB_OFFSET, dst).map_err(|_| StoreError::Io)?;
    if sha256(dst) != digest {
        return Err(StoreError::Corrupt);
    }
    Ok((len, digest))
}

/// Stores `blob` (whose SHA-256 is `digest`): first the bytes, then the header.
pub fn save<S: Storage>(store: &mut S, blob: &[u8], digest: &[u8; 32]) -> Result<(), StoreError> {
    if blob.len() > store.capacity().saturating_sub(BLOB_OFFSET as usize) {
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
        save(&mut s, &blob, &d).unwrap();
        let mut buf = [0u8; 512];
        assert_eq!(load(&mut s, &mut buf), Ok((300, d)));
        assert_eq!(&buf[..300], &blob[..]);
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
        save(&mut s, &blob, &sha256(&blob)).unwrap();
        s.bytes[BLOB_OFFSET as usize + 2] ^= 1;
        let mut buf = [0u8; 64];
        assert_eq!(load(&mut s, &mut buf), Err(StoreError::Corrupt));
    }

    #[test]
    fn torn_write_leaves_no_blob() {
        // Reset after the header was invalidated and the bytes written, before the new header.
        let mut s = MemStore::<1024>::default();
        save(&mut s, &[9u8; 10], &sha256(&[9u8; 10])).unwrap();
        s.bytes[..4].copy_from_slice(&[0; 4]);
        let mut buf = [0u8; 64];
        assert_eq!(load(&mut s, &mut buf), Err(StoreError::Empty));
    }

    #[test]
    fn too_small_buffer_is_an_error() {
        let mut s = MemStore::<1024>::default();
        let blob = [5u8; 100];
        save(&mut s, &blob, &sha256(&blob)).unwrap();
        let mut buf = [0u8; 50];
        assert_eq!(load(&mut s, &mut buf), Err(StoreError::TooLarge));
    }
}
