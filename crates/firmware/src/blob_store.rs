//! Where the certificate-definition blob lives on the device: the `keystamp` data partition of
//! the SPI flash (partitions.csv), found by label in the partition table at run time, so the
//! partition layout can change without a firmware change.
//!
//! The agent writes its store format (header at 0, blob at 64; keystamp_agent::store) through
//! `embedded_storage::Storage`. Writes go through esp-storage's read-modify-write
//! `FlashStorage::write`: it reads each touched 4 KiB sector, merges, erases and programs it,
//! which is what NOR flash needs for the agent's "invalidate header, write blob, write header"
//! order. Reads and writes are bounds-checked against the partition here.
//!
//! Not esp-bootloader-esp-idf's `FlashRegion`: its constructor panics on partition subtypes it
//! has no name for, and its flash-encryption paths cost flash space for a partition that is
//! never encrypted (an `encrypted` flag on it is refused instead).

use embedded_storage::{ReadStorage, Storage};
use esp_bootloader_esp_idf::partitions::{self, PARTITION_TABLE_MAX_LEN};
use esp_storage::FlashStorage;
use keystamp_agent::store::{self, StoreError};

/// Raw partition type of data partitions.
const DATA: u8 = 0x01;

/// Why the blob partition is not available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionError {
    /// The partition table at 0x8000 could not be read or failed its MD5 check.
    Table,
    /// No data partition carries the label (flashed without partitions.csv?).
    Missing,
    /// The partition is flagged `encrypted`; the blob is public data and is stored in clear.
    Encrypted,
}

/// The blob's storage: the partition, or nothing (every access fails, so the agent reports no
/// blob and refuses uploads instead of the firmware stopping; the boot line says why).
pub struct BlobStore {
    region: Option<Region>,
}

/// The partition: the whole flash and the partition's place in it.
struct Region {
    flash: &'static mut FlashStorage<'static>,
    offset: u32,
    len: u32,
}

impl Region {
    /// The absolute flash address of `offset..offset + len`, if it lies in the partition.
    fn address(&self, offset: u32, len: usize) -> Result<u32, AccessError> {
        let len = u32::try_from(len).map_err(|_| AccessError::OutOfBounds)?;
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(self.offset + offset),
            _ => Err(AccessError::OutOfBounds),
        }
    }
}

/// Why a blob-store access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// There is no partition.
    NoPartition,
    /// The access reaches past the partition.
    OutOfBounds,
    /// The flash driver failed.
    Flash,
}

impl BlobStore {
    /// Looks the partition up in the flash's partition table.
    pub fn open(flash: &'static mut FlashStorage<'static>) -> (Self, Result<(), PartitionError>) {
        match find(flash) {
            Ok((offset, len)) => (
                BlobStore {
                    region: Some(Region { flash, offset, len }),
                },
                Ok(()),
            ),
            Err(e) => (BlobStore { region: None }, Err(e)),
        }
    }

    /// The flash and the absolute address of `offset..offset + len` in the partition.
    fn place(
        &mut self,
        offset: u32,
        len: usize,
    ) -> Result<(&mut FlashStorage<'static>, u32), AccessError> {
        let region = self.region.as_mut().ok_or(AccessError::NoPartition)?;
        let address = region.address(offset, len)?;
        Ok((&mut *region.flash, address))
    }

    /// Size of the partition in bytes (0 without one).
    pub fn size(&self) -> usize {
        self.region.as_ref().map_or(0, |r| r.len as usize)
    }

    /// Stores `blob` with its signer `signature` if the partition has never held one (no header
    /// magic); returns whether it did. A stored blob, even a damaged one, is left for the host to
    /// replace. The agent checks the signature against the chip's trust anchor before use, so a
    /// default blob without a valid signature is reported untrusted, never used.
    pub fn seed(&mut self, blob: &[u8], signature: &[u8; 64]) -> Result<bool, StoreError> {
        if blob.is_empty() {
            return Ok(false);
        }
        let mut magic = [0u8; 4];
        self.read(0, &mut magic).map_err(|_| StoreError::Io)?;
        if magic == store::MAGIC {
            return Ok(false);
        }
        store::save(self, blob, &store::sha256(blob), signature)?;
        Ok(true)
    }
}

/// Offset and length of the data partition labelled [`crate::config::PARTITION_LABEL`].
fn find(flash: &mut FlashStorage<'static>) -> Result<(u32, u32), PartitionError> {
    let mut raw = [0u8; PARTITION_TABLE_MAX_LEN];
    let table =
        partitions::read_partition_table(flash, &mut raw).map_err(|_| PartitionError::Table)?;
    let entry = table
        .iter()
        .find(|e| e.raw_type() == DATA && e.label_as_str() == crate::config::PARTITION_LABEL)
        .ok_or(PartitionError::Missing)?;
    if entry.is_encrypted() {
        return Err(PartitionError::Encrypted);
    }
    Ok((entry.offset(), entry.len()))
}

impl ReadStorage for BlobStore {
    type Error = AccessError;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), AccessError> {
        let (flash, address) = self.place(offset, bytes.len())?;
        flash.read(address, bytes).map_err(|_| AccessError::Flash)
    }

    fn capacity(&self) -> usize {
        self.size()
    }
}

impl Storage for BlobStore {
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), AccessError> {
        let (flash, address) = self.place(offset, bytes.len())?;
        flash.write(address, bytes).map_err(|_| AccessError::Flash)
    }
}
