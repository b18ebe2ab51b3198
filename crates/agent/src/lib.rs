//! keystamp-agent: the device side of keystamp.
//!
//! * [`Agent`] serves the wire protocol (`keystamp-wire`) by driving the secure element through
//!   the [`Chip`] trait and the certificate codec (`keystamp-certdef`), and keeps the
//!   certificate-definition blob in any `embedded_storage::Storage`.
//! * [`auth`] is what the device trusts: the life cycle read from the chip's lock bytes, the
//!   requests a locked device serves, and the signed digests (blob, identity proof,
//!   maintenance) the host computes with the same functions.
//! * [`identity`] is the run-time API a product's firmware uses: rebuild the device and signer
//!   certificates from the chip, verify them with the chip, sign digests with the device key.
//!
//! `no_std`, no allocation; generic over the byte stream (`embedded-io`), the chip and storage.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

mod agent;
pub mod auth;
pub mod cache;
pub mod chip;
pub mod identity;
pub mod store;

pub use agent::{Action, Agent, BAUD_CONFIRM_MS, MAX_CERT, definitions_of};
pub use chip::{Chip, ChipError};
pub use identity::{ChainLens, Definitions, IdentityError};
