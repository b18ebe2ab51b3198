//! keystamp host library: the factory side of provisioning ATECC608 secure elements.
//!
//! One module per concern; add a module with one line here.

pub mod ca;
pub mod cli;
pub mod cli_certdef;
pub mod cli_provision;
pub mod engine;
pub mod from_cert;
pub mod issue;
pub mod link;
pub mod outputs;
pub mod passphrase;
pub mod project;
pub mod registry;
pub mod setup;
pub mod sim;
