//! Turning a project into what the stations need: the certificate definitions (generated from
//! the CA's certificates and a sample device certificate, or read from the profile's files), the
//! definition blob, the signer certificate split for the chip, and the config zone.

use keystamp_atecc::zone::CONFIG_SIZE;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use keystamp_certdef::{CertDefBuf, Role, parse_defs_json, write_blob};

use crate::certdef_io::defs_to_json;
use crate::engine::Material;
use crate::pki::ca::{CaError, DeviceCertRequest, Signer};
use crate::pki::from_cert::{CertRole, FromCertError, FromCertOptions, HexCase, from_cert};
use crate::pki::issue::{IssueError, split_for_device};
use crate::project::{ConfigZoneSource, PartProfile, Profile, Project};

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
    /// A project definition file holds no definition or several.
    NotOneDefinition {
        /// The file.
        path: PathBuf,
        /// How many it holds.
        count: usize,
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
    /// The device definition does not give the certificates `keystamp.toml` asks for (it was
    /// generated from an older profile or another CA).
    ProfileMismatch {
        /// The profile key that differs (`certificates.cn`, `certificates.validity_years`).
        key: &'static str,
        /// What a station would issue, against what the profile asks.
        detail: String,
    },
    /// A certificate for a sample chip cannot be issued from the device definition.
    SampleIssue(IssueError),
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
            Self::NotOneDefinition { path, count } => write!(
                f,
                "{}: holds {count} definitions; a project definition file holds exactly one",
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
            Self::ProfileMismatch { key, detail } => write!(
                f,
                "the device definition does not match `{key}` in keystamp.toml ({detail}); no \
                 device was touched: run `keystamp certdef regenerate` to rebuild the \
                 definitions from the profile and CA, or undo the change"
            ),
            Self::SampleIssue(e) => write!(
                f,
                "the device definition cannot issue a certificate with the profile's dates \
                 and validity ({e}); no device was touched: run `keystamp certdef regenerate` \
                 to rebuild the definitions from the profile and CA"
            ),
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
            Self::SignerDoesNotFit(e) | Self::SampleIssue(e) => Some(e),
            Self::ProfileMismatch { .. } => None,
            Self::HalfNamedDefinitions
            | Self::BlobTooLarge { .. }
            | Self::NotOneDefinition { .. } => None,
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

/// Issues a certificate for a sample chip the way a station will (same definition, profile
/// validity, this hour) and checks it is what the profile asks for, so a profile changed after
/// the definitions were generated stops the run before any device is touched.
fn check_device_definition(
    profile: &Profile,
    def: &keystamp_certdef::CertDef<'_>,
    config: &[u8; CONFIG_SIZE],
    signer_public_key: &[u8; 64],
    signer_id: [u8; 2],
) -> Result<(), SetupError> {
    let want_years = profile.certificates.validity_years;
    if def.expire_years != want_years {
        return Err(SetupError::ProfileMismatch {
            key: "certificates.validity_years",
            detail: format!(
                "the definition's validity is {} years, the profile's {want_years}",
                def.expire_years
            ),
        });
    }
    let mut config = *config;
    config[..4].copy_from_slice(&SAMPLE_CHIP_SERIAL[..4]);
    config[8..13].copy_from_slice(&SAMPLE_CHIP_SERIAL[4..]);
    let now = der::DateTime::from_system_time(SystemTime::now()).unwrap_or(der::DateTime::INFINITY);
    let req = crate::pki::issue::DeviceCertRequest {
        def,
        config: &config,
        // Any valid point: the sample only shows what the definition makes of a chip.
        public_key: signer_public_key,
        signer_public_key,
        signer_id,
        issue_date: keystamp_certdef::DateTime::new(
            now.year(),
            now.month(),
            now.day(),
            now.hour(),
            0,
            0,
        ),
        expire_years: want_years,
    };
    // The signature is not checked here; a fixed value keeps the signer key out of it.
    let issued = crate::pki::issue::issue_device_cert(&req, |_| Ok([0x11; 64]))
        .map_err(SetupError::SampleIssue)?;
    let want = profile.device_cn(&SAMPLE_CHIP_SERIAL);
    let got = crate::engine::common_name(&issued.der).unwrap_or_default();
    if got != want {
        return Err(SetupError::ProfileMismatch {
            key: "certificates.cn",
            detail: format!("a chip would get CN \"{got}\", the profile asks for \"{want}\""),
        });
    }
    Ok(())
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

/// Writes both definitions into `dir` as `{"defs": {"<name>": {...}}}` files (the shape of
/// cryptoauthlib's `cert_defs.json`), so each keeps its name and `certdef pack` can pair the
/// device's `ca_cert_def` with the signer's; returns their paths.
pub fn write_definitions(
    dir: &Path,
    device: &CertDefBuf,
    signer: &CertDefBuf,
) -> Result<(PathBuf, PathBuf), SetupError> {
    let d = dir.join(DEVICE_DEF_FILE);
    let s = dir.join(SIGNER_DEF_FILE);
    write_definitions_to(&d, device, &s, signer)?;
    Ok((d, s))
}

/// Writes the two definitions (named, as [`write_definitions`]) to the given files.
pub fn write_definitions_to(
    device_path: &Path,
    device: &CertDefBuf,
    signer_path: &Path,
    signer: &CertDefBuf,
) -> Result<(), SetupError> {
    for (path, def) in [(device_path, device), (signer_path, signer)] {
        std::fs::write(path, defs_to_json(&[def])).map_err(io_err(path))?;
    }
    Ok(())
}

/// Reads a definition file holding one definition: named (`{"defs": {...}}`), or a bare object
/// as projects made before definitions were named have.
fn read_def(path: &Path) -> Result<CertDefBuf, SetupError> {
    let text = crate::certdef_io::read_limited_text(path).map_err(io_err(path))?;
    let not_a_def = |source| SetupError::NotADefinition {
        path: path.to_path_buf(),
        source,
    };
    let mut defs = parse_defs_json(&text).map_err(not_a_def)?;
    if defs.len() != 1 {
        return Err(SetupError::NotOneDefinition {
            path: path.to_path_buf(),
            count: defs.len(),
        });
    }
    let def = defs.swap_remove(0);
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
    let config = match (&project.config_zone, profile.profile) {
        // A TrustFLEX part's config is Microchip's, locked: it is compared, never written.
        (_, PartProfile::TrustFlex) => trust_flex_config(),
        (ConfigZoneSource::Default, _) => default_config_bytes(profile)?,
        (ConfigZoneSource::File(_, b) | ConfigZoneSource::Inline(b), _) => **b,
    };
    let mut material = material_from_parts(
        profile,
        signer,
        device_def,
        signer_def,
        config,
        project.output_dir(),
    )?;
    if profile.profile == PartProfile::TrustAndGo {
        material.microchip_root = Some(microchip_root(project)?);
    }
    add_earlier_signers(
        &mut material,
        crate::pki::ca::signer_history(&project.ca_dir())?,
    )?;
    Ok(material)
}

/// Adds to `material`'s earlier signers those of `candidates` (ca/signers/, kept there by
/// signer changes, or the registry's signer records) that the project's root signed, other than
/// the current signer and those already known. One the root did not sign is left out: it could
/// only make a foreign chain pass for this project's.
pub fn add_earlier_signers(
    material: &mut Material,
    candidates: impl IntoIterator<Item = crate::pki::ca::CaCert>,
) -> Result<(), SetupError> {
    for cert in candidates {
        if material.project_signer_key(&cert.der).is_some()
            || crate::pki::ca::verify_signed_by(&cert.cert, &material.root_public_key).is_err()
        {
            continue;
        }
        material.earlier_signers.push(crate::engine::EarlierSigner {
            public_key: cert.public_key()?,
            der: cert.der,
        });
    }
    Ok(())
}

/// The ATECC608B-TFLXTLS configuration zone (bytes 0–15 are per chip and never compared).
pub fn trust_flex_config() -> [u8; CONFIG_SIZE] {
    let mut config = [0u8; CONFIG_SIZE];
    config[16..].copy_from_slice(&keystamp_atecc_sim::parts::TFLXTLS_16_127);
    config
}

/// The project's `[microchip] root` certificate (required by `profile = "trustandgo"`).
pub fn microchip_root(project: &Project) -> Result<crate::engine::MicrochipRoot, SetupError> {
    let Some(path) = &project.profile.microchip.root else {
        return Err(SetupError::ProfileMismatch {
            key: "microchip.root",
            detail: "profile trustandgo verifies every part's chain to the Microchip root: \
                     name its PEM file (in simulation, the test root `keystamp sim --part \
                     trustandgo` writes)"
                .into(),
        });
    };
    let path = project.profile.resolve(&project.dir, path);
    let cert = crate::pki::ca::CaCert::read(&path)?;
    Ok(crate::engine::MicrochipRoot {
        public_key: cert.public_key()?,
        der: cert.der.clone(),
    })
}

/// The built-in default config, or its IO-protection variant when the profile asks for it.
pub fn default_config_bytes(profile: &Profile) -> Result<[u8; CONFIG_SIZE], SetupError> {
    let io = profile.io_protection;
    if !io.enabled {
        return Ok(keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES);
    }
    keystamp_atecc::default_config::io_protected_config_bytes(io.slot).ok_or(
        SetupError::ProfileMismatch {
            key: "io_protection.slot",
            detail: format!("slot {} cannot hold the IO-protection key", io.slot),
        },
    )
}

/// [`material`] from explicit definitions and config.
pub fn material_from_parts(
    profile: &Profile,
    signer: &Signer,
    device_def: CertDefBuf,
    signer_def: CertDefBuf,
    config: [u8; CONFIG_SIZE],
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
    check_device_definition(profile, &dev, &config, &signer_pk, signer_id)?;
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
        io_key_slot: profile
            .io_protection
            .enabled
            .then_some(profile.io_protection.slot),
        expected_cn,
        reprovision: false,
        baud_max: None,
        output_dir,
        part_profile: profile.profile,
        microchip_root: None,
        earlier_signers: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ca::{self, KeyProtection};

    /// Definitions written by `init` are named; files of projects made before (one bare
    /// definition object, named "") still read.
    #[test]
    fn definition_files_named_and_bare_both_read() {
        let tmp = tempfile::tempdir().unwrap();
        let profile = Profile::default();
        let ca_dir = tmp.path().join("ca");
        ca::create(
            &ca_dir,
            &profile.ca,
            &KeyProtection::Unencrypted,
            SystemTime::now(),
        )
        .unwrap();
        let signer = Signer::unlock(&ca_dir, None).unwrap();
        let (device, signer_def) = generate_definitions(&profile, &signer).unwrap();
        let (d, s) = write_definitions(tmp.path(), &device, &signer_def).unwrap();
        let (d, s) = (read_def(&d).unwrap(), read_def(&s).unwrap());
        assert_eq!((d.name.as_str(), s.name.as_str()), ("device", "signer"));
        assert_eq!(d.ca_cert_def.as_deref(), Some("signer"));

        let bare = tmp.path().join("old-device-def.json");
        std::fs::write(&bare, device.to_json()).unwrap();
        let old = read_def(&bare).unwrap();
        assert_eq!(old.name, "");
        assert_eq!(old.template, device.template);
    }
}
