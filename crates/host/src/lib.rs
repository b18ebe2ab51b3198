//! keystamp host library: the factory side of provisioning ATECC608 secure elements.
//!
//! # Host map
//!
//! The crate separates commands from operations the way cargo does:
//!
//! | module | holds |
//! |---|---|
//! | [`cli`] | the `keystamp` command line: one file per top-level command (`init`, `ca`, `registry`, `lot`, `certdef`, `provision`, `verify`, `sim`, `demo`), argument types, output (tables, JSON), and the edge error [`cli::CliError`]. Parsing and printing only. |
//! | [`ops`] | what a command does: create a project and record its signer, unlock the signer, start simulated devices, run stations, count results, certificate-definition operations (C export), lots and the production checks ([`ops::lot`]). |
//! | [`pki`] | the CA ([`pki::ca`]), the offline root ceremony ([`pki::ceremony`]), imported CAs ([`pki::byo`]), issuing device certificates ([`pki::issue`]), definitions from sample certificates ([`pki::from_cert`]), passphrases ([`pki::passphrase`]), the signer key in software or a PKCS#11 token ([`pki::signer_key`], [`pki::pkcs11`]), verification certificates ([`pki::verification`]). |
//! | [`engine`] | one station's provisioning and verification of one device. |
//! | [`link`] | the framed serial link to a device; serial ports by OS name, in-process ports ([`link::inproc`]). |
//! | [`sim`] | simulated devices: the real agent on emulated chips behind pseudo-terminals or in-process ports. |
//! | [`registry`] | the registry of devices, certificates and the audit log, on SQLite (one host) or PostgreSQL (several hosts; [`registry::backend`]); [`registry::lots`]: lots and the issuance policy; [`registry::proof`]: identity proofs recorded before issuance. |
//! | [`registry_url`] | where the registry is: an SQLite file or a `postgres://` URL (never with a password: `PGPASSWORD` or a pgpass file). |
//! | [`sanitize`] | device text made safe for terminals, logs and audit rows. |
//! | [`project`] | the project directory and its `keystamp.toml` profile. |
//! | [`outputs`] | the per-device PEM files written after provisioning. |
//! | [`setup`] | preparing a run: definitions generated from the CA, the material stations share. |
//! | [`certdef_io`] | certificate and definition files: certificates (PEM/DER), definition JSON, device images, hex inputs. |
//!
//! # Rule
//!
//! `cli` may use everything below it; nothing below imports `cli`. `ops` may use every module
//! except `cli`. No import circles among the top-level modules. `tests/layering.rs` checks both.

pub mod certdef_io;
pub mod cli;
pub mod engine;
pub mod link;
pub mod microchip;
pub mod ops;
pub mod outputs;
pub mod pki;
pub mod project;
pub mod registry;
pub mod registry_url;
pub mod sanitize;
pub mod setup;
pub mod sim;
