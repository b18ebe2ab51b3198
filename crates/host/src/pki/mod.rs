//! The certificate authority side: the project's CA (root + signer), issuing device certificates
//! from a definition's template, generating definitions from sample certificates, and where the
//! CA passphrase comes from. Uses only the domain modules below it (`project`).

pub mod ca;
pub mod from_cert;
pub mod issue;
pub mod passphrase;
