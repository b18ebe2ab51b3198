//! Turning a project into what the stations need: the certificate definitions (generated from
//! the CA's certificates and a sample device certificate, or read from the profile's files), the
//! definition blob, the signer certificate split for the chip, and the config zone.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use keystamp_certdef::{CertDefBuf, Role, write_blob};

use crate::engine::Material;
use crate::pki::ca::{CaError, DeviceCertRequest, Signer};
use crate::pki::from_cert::{CertRole, FromCertError, FromCertOptions, HexCase, from_cert};
use crate::pki::issue::{IssueError, split_for_device};
use crate::project::{ConfigZoneSource, Profile, Project};

/// File name of the generated device definition in a project.
pub const DEVICE_DEF_FILE: &str = "device-def.json";
/// File name of the generated signer definition in a project.
pub const SIGNER_DEF_FILE: &str = "signer-def.json";

/// The serial number used in the sample device certificate a definition is generated from.
const SAMPLE_CHIP_SERIAL: [u8; 9] = [0x01, 0x23, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xEE];

/// Why the run could not be prepared.
#[derive(Debug)]
pub enum SetupError {
    /// The CA's certificates or keys.
    Ca(CaError),
    /// A definition could not be generated from a certificate.
    FromCert(FromCertError),
    /// A definition file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A definition file is not a certificate definition.
    NotADefinition {
        /// The file.
        path: PathBuf,
        /// The parser's reason.
        source: serde_json::Error,
    },
    /// A definition that is not valid (`what`: its file, or which definition).
    InvalidDefinition {
        /// The file or the definition's role.
        what: String,
        /// The validator's reason.
        source: keystamp_certdef::Error,
    },
    /// The profile names only one of the two definitions.
    HalfNamedDefinitions,
    /// The definition blob could not be written.
    Blob(keystamp_certdef::Error),
    /// The definition blob is larger than the protocol carries.
    BlobTooLarge {
        /// Its length.
        len: usize,
        /// The protocol's limit.
        max: usize,
    },
    /// The signer certificate does not fit its definition.
    SignerDoesNotFit(IssueError),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ca(e) => e.fmt(f),
            Self::FromCert(e) => e.fmt(f),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::NotADefinition { path, source } => write!(
                f,
                "{}: not a certificate definition: {source}",
                path.display()
            ),
            Self::InvalidDefinition { what, source } => {
                write!(f, "{what}: invalid definition: {source}")
            }
            Self::HalfNamedDefinitions => f.write_str(
                "keystamp.toml names only one of certificates.device_def / signer_def; name \
                 both or neither",
            ),
            Self::Blob(e) => write!(f, "definition blob: {e}"),
            Self::BlobTooLarge { len, max } => write!(
                f,
                "the definition blob is {len} bytes; the protocol carries at most {max}"
            ),
            Self::SignerDoesNotFit(e) => {
                write!(f, "the signer certificate does not fit its definition: {e}")
            }
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ca(e) => Some(e),
            Self::FromCert(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            Self::NotADefinition { source, .. } => Some(source),
            Self::InvalidDefinition { source, .. } | Self::Blob(source) => Some(source),
            Self::SignerDoesNotFit(e) => Some(e),
            Self::HalfNamedDefinitions | Self::BlobTooLarge { .. } => None,
        }
    }
}

impl From<CaError> for SetupError {
    fn from(e: CaError) -> Self {
        Self::Ca(e)
    }
}

impl From<FromCertError> for SetupError {
    fn from(e: FromCertError) -> Self {
        Self::FromCert(e)
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> SetupError + '_ {
    move |source| SetupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(what: impl Into<String>) -> impl FnOnce(keystamp_certdef::Error) -> SetupError {
    let what = what.into();
    move |source| SetupError::InvalidDefinition { what, source }
}

/// Generates the signer and device definitions for a project's CA: the signer's from its own
/// certificate, the device's from a sample device certificate issued by the signer with the
/// profile's CN scheme (the chip serial number in the CN becomes two custom elements).
pub fn generate_definitions(
    profile: &Profile,
    signer: &Signer,
) -> Result<(CertDefBuf, CertDefBuf), SetupError> {
    let certs = signer.certs();
    let mut signer_opts = FromCertOptions::new("signer", CertRole::Signer);
    signer_opts.ca_cert_def = None;
    let signer_def = from_cert(&certs.signer.der, &signer_opts)?;

    let cn = profile.device_cn(&SAMPLE_CHIP_SERIAL);
    // Any valid key will do: the sample only shows where the key goes.
    let sample_key = certs.signer.public_key()?;
    let sample = signer.issue_device_certificate(&DeviceCertRequest {
        chip_serial: SAMPLE_CHIP_SERIAL,
        public_key: sample_key,
        organization: &profile.ca.organization,
        cn: &cn,
        validity_years: profile.certificates.validity_years,
        now: SystemTime::now(),
    })?;
    let mut device_opts = FromCertOptions::new("device", CertRole::Device);
    device_opts.ca_cert_def = Some("signer".into());
    device_opts.cn_serial = cn_case(&profile.certificates.cn);
    // A hash of key and dates: unique per certificate, so a re-issue for the same chip (new
    // validity) never collides with the old serial, and nothing extra is stored on the chip.
    device_opts.sn_source = Some(keystamp_certdef::SnSource::PubKeyHash);
    let device_def = from_cert(&sample, &device_opts)?;
    Ok((device_def, signer_def))
}

/// The hex case the CN scheme writes the chip serial in, if it has one.
pub fn cn_case(scheme: &str) -> Option<HexCase> {
    if scheme.contains("{sn_lower}") {
        Some(HexCase::Lower)
    } else if scheme.contains("{sn}") {
        Some(HexCase::Upper)
    } else {
        None
    }
}

/// Writes both definitions as cryptoauthlib-shaped JSON into `dir`; returns their paths.
pub fn write_definitions(
    dir: &Path,
    device: &CertDefBuf,
    signer: &CertDefBuf,
) -> Result<(PathBuf, PathBuf), SetupError> {
    let d = dir.join(DEVICE_DEF_FILE);
    let s = dir.join(SIGNER_DEF_FILE);
    std::fs::write(&d, device.to_json()).map_err(io_err(&d))?;
    std::fs::write(&s, signer.to_json()).map_err(io_err(&s))?;
    Ok((d, s))
}

fn read_def(path: &Path) -> Result<CertDefBuf, SetupError> {
    let text = crate::certdef_io::read_limited_text(path).map_err(io_err(path))?;
    let def = CertDefBuf::from_json(&text).map_err(|source| SetupError::NotADefinition {
        path: path.to_path_buf(),
        source,
    })?;
    def.as_def().map_err(invalid(path.display().to_string()))?;
    Ok(def)
}

/// Everything the stations need for `project`, with the signer unlocked.
pub fn material(project: &Project, signer: &Signer) -> Result<Material, SetupError> {
    let profile = &project.profile;
    let (device_def, signer_def) = match (
        &profile.certificates.device_def,
        &profile.certificates.signer_def,
    ) {
        (Some(d), Some(s)) => (
            read_def(&project.profile.resolve(&project.dir, d))?,
            read_def(&project.profile.resolve(&project.dir, s))?,
        ),
        (None, None) => generate_definitions(profile, signer)?,
        _ => {
            return Err(SetupError::HalfNamedDefinitions);
        }
    };
    let config = match &project.config_zone {
        ConfigZoneSource::Default => keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES,
        ConfigZoneSource::File(_, b) | ConfigZoneSource::Inline(b) => **b,
    };
    material_from_parts(
        profile,
        signer,
        device_def,
        signer_def,
        config,
        project.output_dir(),
    )
}

/// [`material`] from explicit definitions and config.
pub fn material_from_parts(
    profile: &Profile,
    signer: &Signer,
    device_def: CertDefBuf,
    signer_def: CertDefBuf,
    config: [u8; 128],
    output_dir: PathBuf,
) -> Result<Material, SetupError> {
    let certs = signer.certs();
    let root_pk = certs.root_public_key()?;
    let signer_pk = certs.signer_public_key()?;
    let signer_id = certs.signer_id()?;
    let dev = device_def.as_def().map_err(invalid("device definition"))?;
    let sig = signer_def.as_def().map_err(invalid("signer definition"))?;
    let mut blob = vec![0u8; 64 * 1024];
    let n = write_blob(
        &[(Role::Device, &dev), (Role::Signer, &sig)],
        Some(&root_pk),
        &mut blob,
    )
    .map_err(SetupError::Blob)?;
    blob.truncate(n);
    if blob.len() > keystamp_wire::MAX_DEF_BLOB {
        return Err(SetupError::BlobTooLarge {
            len: blob.len(),
            max: keystamp_wire::MAX_DEF_BLOB,
        });
    }
    let signer_split = split_for_device(&sig, certs.signer.der.clone(), Some(&root_pk), None, None)
        .map_err(SetupError::SignerDoesNotFit)?;
    let scheme = profile.certificates.cn.clone();
    let expected_cn: Option<crate::engine::CnScheme> = cn_case(&scheme).map(|_| {
        let p = profile.clone();
        Box::new(move |sn: &[u8; 9]| p.device_cn(sn)) as crate::engine::CnScheme
    });
    Ok(Material {
        config,
        blob_digest: crate::pki::ca::sha256(&blob),
        blob,
        device_def,
        signer: signer_split,
        root_public_key: root_pk,
        signer_public_key: signer_pk,
        signer_id,
        validity_years: profile.certificates.validity_years,
        lock_config: profile.locks.lock_config,
        lock_data: profile.locks.lock_data,
        lock_cert_slots: profile.locks.lock_cert_slots,
        platform: profile.platform,
        expected_cn,
        output_dir,
    })
}
