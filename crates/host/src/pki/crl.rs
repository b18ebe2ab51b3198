//! The signer's certificate revocation list (RFC 5280 §5), built from x509-cert's CRL types and
//! signed by the signer (the issuer of every device certificate it lists).
//!
//! The list is a v2 CRL with thisUpdate, nextUpdate, a CRL number and the authority key
//! identifier of the signer; each entry carries a reasonCode unless the reason is
//! `unspecified` (RFC 5280 §5.3.1 says to omit it then). x509-cert's `CrlBuilder` is not used:
//! in 0.3.0 it copies the *issuer certificate's own* authority key identifier (the root's key
//! id) into the CRL, where RFC 5280 §5.2.1 wants the key id of the key that signs the CRL.

use std::fmt;
use std::time::SystemTime;

use der::Encode;
use der::asn1::{BitString, ObjectIdentifier};
use der::pem::LineEnding;
use der::referenced::OwnedToRef;
use x509_cert::certificate::Version;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::ToExtension;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, SubjectKeyIdentifier};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::time::Time;

pub use x509_cert::ext::pkix::CrlReason;

use crate::pki::ca::{CaError, Signer};

/// ecdsa-with-SHA256 (RFC 5758 §3.2): no parameters.
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Why a CRL could not be built.
#[derive(Debug)]
pub enum CrlError {
    /// Encoding a CRL field failed (`what` says which).
    Encode {
        /// The field.
        what: &'static str,
        /// What der said.
        source: der::Error,
    },
    /// The signer could not sign.
    Sign(CaError),
}

impl fmt::Display for CrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encode { what, source } => write!(f, "building the CRL: {what}: {source}"),
            Self::Sign(e) => write!(f, "signing the CRL: {e}"),
        }
    }
}

impl std::error::Error for CrlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode { source, .. } => Some(source),
            Self::Sign(e) => Some(e),
        }
    }
}

fn encode_err(what: &'static str) -> impl FnOnce(der::Error) -> CrlError {
    move |source| CrlError::Encode { what, source }
}

/// One revoked certificate.
#[derive(Debug, Clone)]
pub struct CrlEntry {
    /// The certificate's serial number, as encoded in the certificate.
    pub serial: SerialNumber,
    /// When it was revoked.
    pub revoked_at: SystemTime,
    /// Why; `None` or `Unspecified` leaves the reasonCode out.
    pub reason: Option<CrlReason>,
}

/// What goes into a CRL.
#[derive(Debug, Clone)]
pub struct CrlRequest<'a> {
    /// The CRL number (monotonic per issuer; the registry hands it out).
    pub number: u64,
    /// thisUpdate.
    pub this_update: SystemTime,
    /// nextUpdate: when relying parties should fetch a newer CRL.
    pub next_update: SystemTime,
    /// The revoked certificates.
    pub entries: &'a [CrlEntry],
}

/// A signed CRL.
#[derive(Debug, Clone)]
pub struct Crl {
    /// DER encoding.
    pub der: Vec<u8>,
}

impl Crl {
    /// PEM text (`-----BEGIN X509 CRL-----`, what OpenSSL's `-CRLfile` reads).
    pub fn to_pem(&self) -> Result<String, CrlError> {
        der::pem::encode_string("X509 CRL", LineEnding::LF, &self.der)
            .map_err(|e| encode_err("PEM")(e.into()))
    }
}

fn time(t: SystemTime, what: &'static str) -> Result<Time, CrlError> {
    // UTCTime before 2050, GeneralizedTime after (RFC 5280 §5.1.2.4).
    Time::try_from(t).map_err(encode_err(what))
}

/// Builds the CRL and signs it with the signer key.
pub fn build(signer: &Signer, req: &CrlRequest<'_>) -> Result<Crl, CrlError> {
    let issuer_cert = &signer.certs().signer.cert;
    let tbs_cert = issuer_cert.tbs_certificate();
    let issuer = tbs_cert.subject().clone();

    // The key id of the signing key: the signer's own subject key identifier.
    let key_id = match tbs_cert
        .get_extension::<SubjectKeyIdentifier>()
        .map_err(encode_err("signer SKI"))?
    {
        Some((_, ski)) => ski.0,
        None => {
            SubjectKeyIdentifier::try_from(tbs_cert.subject_public_key_info().owned_to_ref())
                .map_err(encode_err("signer key id"))?
                .0
        }
    };
    let mut extensions = Vec::new();
    let number = CrlNumber::try_from(req.number).map_err(encode_err("CRL number"))?;
    let ext = number
        .to_extension(&issuer, &extensions)
        .map_err(encode_err("CRL number"))?;
    extensions.push(ext);
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(key_id),
        ..Default::default()
    };
    let ext = aki
        .to_extension(&issuer, &extensions)
        .map_err(encode_err("authority key identifier"))?;
    extensions.push(ext);

    let mut revoked = Vec::with_capacity(req.entries.len());
    for entry in req.entries {
        let crl_entry_extensions = match entry.reason {
            None | Some(CrlReason::Unspecified) => None,
            Some(reason) => Some(vec![
                reason
                    .to_extension(&issuer, &[])
                    .map_err(encode_err("reason code"))?,
            ]),
        };
        revoked.push(RevokedCert {
            serial_number: entry.serial.clone(),
            revocation_date: time(entry.revoked_at, "revocation date")?,
            crl_entry_extensions,
        });
    }

    let algorithm = AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    };
    let tbs = TbsCertList {
        version: Version::V2,
        signature: algorithm.clone(),
        issuer,
        this_update: time(req.this_update, "thisUpdate")?,
        next_update: Some(time(req.next_update, "nextUpdate")?),
        // An empty list is left out rather than encoded as an empty SEQUENCE (RFC 5280 §5.1).
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der().map_err(encode_err("TBSCertList"))?;
    let signature = signer.sign_der(&tbs_der).map_err(CrlError::Sign)?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature).map_err(encode_err("signature"))?,
    };
    let der = crl.to_der().map_err(encode_err("CertificateList"))?;
    Ok(Crl { der })
}
