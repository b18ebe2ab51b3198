//! The certificate authority side: the project's CA (root + signer), issuing device certificates
//! from a definition's template, the signer's CRL, generating definitions from sample
//! certificates, and where the root and signer passphrases come from. Uses only the domain
//! modules below it (`project`).

pub mod byo;
pub mod ca;
pub mod ceremony;
pub mod crl;
pub mod from_cert;
pub mod issue;
pub mod passphrase;
pub mod pkcs11;
pub mod protection;
pub mod signer_key;
pub mod verification;
