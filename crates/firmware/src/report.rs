//! Short, fixed texts for the boot lines' error reports. Deliberately not `Debug`: derived
//! `Debug` output drags core's escaping and struct-formatting code into the image (several KB,
//! docs/firmware.md "Image size").

use keystamp_agent::store::StoreError;
use keystamp_agent::{ChipError, IdentityError};

use crate::blob_store::PartitionError;
use crate::line::Line;

/// An error that can say what went wrong in a few words.
pub trait Report {
    /// Appends the words to `line`.
    fn report(&self, line: &mut Line);
}

impl Report for PartitionError {
    fn report(&self, line: &mut Line) {
        match self {
            PartitionError::Table => line.text("partition table unreadable"),
            PartitionError::Missing => line.text("no such data partition"),
            PartitionError::Encrypted => {
                line.text("flagged encrypted, the blob is stored in clear")
            }
        };
    }
}

impl Report for StoreError {
    fn report(&self, line: &mut Line) {
        line.text(match self {
            StoreError::Empty => "nothing stored",
            StoreError::TooLarge => "too large",
            StoreError::Corrupt => "corrupt",
            StoreError::Io => "flash access failed",
        });
    }
}

impl Report for ChipError {
    fn report(&self, line: &mut Line) {
        match self {
            ChipError::Absent => line.text("no answer on I2C"),
            ChipError::Status(s) => line.text("status 0x").hex(*s),
            ChipError::Communication => line.text("corrupt answers"),
            ChipError::OutOfRange => line.text("out of range"),
            ChipError::ConfigMismatch => line.text("config read-back differs"),
        };
    }
}

impl Report for IdentityError {
    fn report(&self, line: &mut Line) {
        match self {
            IdentityError::Chip(e) => {
                line.text("secure element: ");
                e.report(line);
            }
            IdentityError::Codec(_) => {
                line.text("definitions do not fit the chip's data");
            }
            IdentityError::TooMuchDeviceData => {
                line.text("definitions read too much data");
            }
            IdentityError::SignerSignature => {
                line.text("signer certificate does not verify");
            }
            IdentityError::DeviceSignature => {
                line.text("device certificate does not verify");
            }
            IdentityError::NoBlob => {
                line.text("no certificate definitions stored");
            }
            IdentityError::BlobUntrusted => {
                line.text("definitions not signed by the trusted signer");
            }
        }
    }
}

impl Line {
    /// Appends `(<what went wrong>)`.
    pub fn why(&mut self, e: &impl Report) -> &mut Self {
        self.text("(");
        e.report(self);
        self.text(")")
    }
}
