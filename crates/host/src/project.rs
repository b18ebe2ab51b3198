//! The project: a directory holding `keystamp.toml` (the [`Profile`]), the CA, the registry and
//! the per-device outputs.
//!
//! Every path in the profile is relative to the project directory unless it is absolute. The
//! profile is validated as a whole when it is loaded, so a mistake is reported once, naming the
//! key and what to do, before anything touches a device.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the profile inside a project directory.
pub const PROFILE_FILE: &str = "keystamp.toml";

/// Size of the ATECC608 configuration zone in bytes.
pub const CONFIG_ZONE_LEN: usize = keystamp_atecc::zone::CONFIG_SIZE;

/// Length of an ATECC608 chip serial number in bytes (config bytes 0–3 and 8–12).
pub const CHIP_SERIAL_LEN: usize = 9;

/// The first two serial-number bytes of every real ATECC608 (datasheet: `SN[0:1]` = 0x01 0x23).
pub const REAL_SERIAL_PREFIX: [u8; 2] = [0x01, 0x23];

/// The first serial-number byte of simulated chips: no real ATECC608 starts with it, so a
/// simulated chip can never claim a real chip's serial (or be taken for one).
pub const SIMULATED_SERIAL_FIRST_BYTE: u8 = 0xEE;

/// Whether a chip serial is in the simulated range.
pub fn is_simulated_serial(serial: &[u8; CHIP_SERIAL_LEN]) -> bool {
    serial[0] == SIMULATED_SERIAL_FIRST_BYTE
}

/// Largest validity a compressed certificate can express (format version 1: 7 bits of years).
pub const MAX_VALIDITY_YEARS: u8 = 127;

/// Upper bound of an X.520 common name (RFC 5280 `ub-common-name`).
pub const MAX_CN_LEN: usize = 64;

/// The project profile, as stored in `keystamp.toml`.
///
/// Every section and key has a default, so a minimal file is valid; [`Profile::validate`] checks
/// the values that types alone cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Production or development: what the project may issue to (see [`Mode`]).
    pub mode: Mode,
    /// Which parts the project provisions and how: `custom` (unconfigured chips), `trustflex`
    /// or `trustandgo` (pre-configured by Microchip; see [`PartProfile`]).
    pub profile: PartProfile,
    /// `[microchip]`: the Microchip root Trust&GO chains must verify to.
    pub microchip: MicrochipSection,
    /// Chip configuration: which config-zone template to program.
    pub chip: ChipSection,
    /// Certificate definitions, device subject CN and validity.
    pub certificates: CertificatesSection,
    /// What gets locked, and when.
    pub locks: LockPolicy,
    /// The CA's files and names.
    pub ca: CaSection,
    /// Where the registry database lives.
    pub registry: RegistrySection,
    /// Where per-device outputs (PEM files) go.
    pub output: OutputSection,
    /// Board security the device must report (eFuses) before its chip is touched.
    pub platform: PlatformSection,
    /// Limits on issuance.
    pub issuance: IssuanceSection,
    /// `[io_protection]`: a per-device IO-protection key (docs/atecc.md "IO protection").
    pub io_protection: IoProtectionSection,
}

/// `[io_protection]`: when enabled, the config written to each chip turns on ChipOptions IO
/// protection (ECDH/KDF output only encrypted) with its key in `slot`, and each device gets a
/// fresh random key, written to the slot before the data lock and handed to the device's agent.
/// The station never records the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IoProtectionSection {
    /// Give each device an IO-protection key (default: off).
    pub enabled: bool,
    /// The key slot (1–9 or 13–15; default 6, Microchip's TNGTLS IO-key slot).
    pub slot: u8,
}

impl Default for IoProtectionSection {
    fn default() -> Self {
        Self {
            enabled: false,
            slot: keystamp_atecc::default_config::DEFAULT_IO_KEY_SLOT,
        }
    }
}

/// `[platform]`: security features the board must report in `Hello` (read from its eFuses,
/// docs/firmware.md "Hardening"). A board that does not report a required feature as on is
/// refused before anything is written to its chip. All off by default (development boards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformSection {
    /// Secure Boot v2 enabled.
    pub require_secure_boot: bool,
    /// Flash encryption enabled.
    pub require_flash_encryption: bool,
    /// JTAG permanently disabled.
    pub require_jtag_disabled: bool,
    /// ROM download mode disabled.
    pub require_download_mode_disabled: bool,
}

impl PlatformSection {
    /// The first requirement `reported` does not meet (known on), as `(feature, reported)`.
    pub fn first_unmet(
        &self,
        reported: &keystamp_wire::PlatformSecurity,
    ) -> Option<(&'static str, keystamp_wire::Tristate)> {
        [
            (
                self.require_secure_boot,
                "Secure Boot",
                reported.secure_boot,
            ),
            (
                self.require_flash_encryption,
                "flash encryption",
                reported.flash_encryption,
            ),
            (
                self.require_jtag_disabled,
                "JTAG disabled",
                reported.jtag_disabled,
            ),
            (
                self.require_download_mode_disabled,
                "ROM download mode disabled",
                reported.download_mode_disabled,
            ),
        ]
        .into_iter()
        .find(|(required, _, state)| *required && *state != keystamp_wire::Tristate::On)
        .map(|(_, name, state)| (name, state))
    }
}

/// `mode`: what a project may issue to.
///
/// A profile without the key is a development project (older profiles keep working).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Real devices only: encrypted CA keys, no simulated chips, every device in an open lot.
    Production,
    /// Anything goes (lots still bind when one is open); the CA's subjects end with
    /// [`DEVELOPMENT_MARKER`] so its certificates cannot pass for production ones.
    #[default]
    Development,
}

impl Mode {
    /// The value in `keystamp.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Development => "development",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `profile`: which parts a project provisions, and so which flow its stations run
/// (docs/factory-guide.md "Which part to buy").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartProfile {
    /// Unconfigured ATECC608A/B: keystamp writes and locks the config, generates the key,
    /// issues the project's chain.
    #[default]
    Custom,
    /// ATECC608B-TFLXTLS: the shipped config and device key are used as they are; the
    /// project's chain goes into the certificate slots TrustFLEX reserves for it.
    TrustFlex,
    /// ATECC608A/B-TNGTLS: nothing is written; Microchip's own chain is rebuilt from the chip,
    /// verified to the configured Microchip root and registered.
    TrustAndGo,
}

impl PartProfile {
    /// The value in `keystamp.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Custom => "custom",
            Self::TrustFlex => "trustflex",
            Self::TrustAndGo => "trustandgo",
        }
    }
}

impl fmt::Display for PartProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[microchip]`: Microchip's trust anchor for the `trustandgo` profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MicrochipSection {
    /// PEM file of the root CA Trust&GO signer certificates must chain to: Microchip's
    /// "Crypto Authentication Root CA 002" for real parts; in simulation the test CA's root
    /// (`keystamp sim --part trustandgo` writes it next to the simulated chips).
    pub root: Option<PathBuf>,
}

/// What ends the organization (O) of a development project's root, signer and device
/// certificates.
pub const DEVELOPMENT_MARKER: &str = " development";

/// `[issuance]`: limits on issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuanceSection {
    /// How many certificates a chip may get after its first one (a new key each time: a device
    /// re-run after a failure before verification). Reruns with the same key reuse the
    /// certificate and do not count.
    pub max_reissues: u32,
}

impl Default for IssuanceSection {
    fn default() -> Self {
        Self { max_reissues: 2 }
    }
}

/// `[chip]`: the config-zone template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChipSection {
    /// `"default"` for the built-in secure default (modelled on Microchip's TLS layout), a path to
    /// a 128-byte binary file, or 256 hex digits (the 128 config bytes).
    pub config_zone: String,
}

/// `[certificates]`: definitions and the device certificate's variable parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificatesSection {
    /// Path of the device certificate definition (cryptoauthlib-shaped JSON); optional.
    pub device_def: Option<PathBuf>,
    /// Path of the signer certificate definition (cryptoauthlib-shaped JSON); optional.
    pub signer_def: Option<PathBuf>,
    /// Device subject CN scheme. `{sn}` expands to the chip serial number as 18 upper-case hex
    /// digits, `{sn_lower}` to the same in lower case. Azure DPS uses the CN as registration id.
    pub cn: String,
    /// Device certificate validity in whole years; 0 means "no expiration" (RFC 5280 99991231235959Z).
    pub validity_years: u8,
}

/// `[locks]`: the lock policy. Locks are irreversible; each is applied only after the bytes it
/// freezes were verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockPolicy {
    /// Lock the configuration zone (with the CRC of the verified config bytes).
    pub lock_config: bool,
    /// Lock the data and OTP zones.
    pub lock_data: bool,
    /// Lock the certificate slots individually after the chain was verified on the device.
    pub lock_cert_slots: bool,
}

/// `[ca]`: the project's certificate authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaSection {
    /// Directory holding `root.key`, `root.pem`, `signer.key`, `signer.pem`.
    pub dir: PathBuf,
    /// Organization (O) in the root and signer subjects.
    pub organization: String,
    /// Common name of the root certificate.
    pub root_cn: String,
    /// Common name of the signer certificate, before the 4-hex-digit signer id that `init` appends.
    pub signer_cn_prefix: String,
    /// Root certificate validity in whole years.
    pub root_validity_years: u8,
    /// Signer certificate validity in whole years.
    pub signer_validity_years: u8,
    /// `[ca.pkcs11]`: the signer key lives in a PKCS#11 token instead of `signer.key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Section>,
}

/// `[ca.pkcs11]`: where the signer key lives when it is in a PKCS#11 token. The PIN is never
/// stored here (it comes from `KEYSTAMP_PKCS11_PIN` or a prompt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Section {
    /// Path of the token vendor's PKCS#11 module (`.so`).
    pub module: PathBuf,
    /// Label of the token.
    pub token: String,
    /// Label (`CKA_LABEL`) of the signer key pair in the token.
    pub key_label: String,
}

/// `[registry]`: the SQLite registry file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySection {
    /// Path of the SQLite database.
    pub path: PathBuf,
    /// The registry's id (32 hex digits), created with it by `init` and stored in it too, so
    /// an empty or another project's database is refused. `None` in projects made before ids
    /// (`keystamp registry adopt` sets it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A PostgreSQL registry several hosts share, `postgres://user@host:port/database`
    /// (docs/factory-guide.md "One line or many"); `path` is then not used. Never with a
    /// password: that comes from `PGPASSWORD` or a pgpass file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `[output]`: per-device outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Directory under which `<chip serial>/{device,signer,chain}.pem` are written.
    pub dir: PathBuf,
}

impl Default for ChipSection {
    fn default() -> Self {
        Self {
            config_zone: "default".into(),
        }
    }
}

impl Default for CertificatesSection {
    fn default() -> Self {
        Self {
            device_def: None,
            signer_def: None,
            cn: "{sn}".into(),
            validity_years: 20,
        }
    }
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            lock_config: true,
            lock_data: true,
            lock_cert_slots: true,
        }
    }
}

impl Default for CaSection {
    fn default() -> Self {
        Self {
            dir: "ca".into(),
            organization: "keystamp".into(),
            root_cn: "keystamp Root CA".into(),
            signer_cn_prefix: "keystamp Signer".into(),
            root_validity_years: 40,
            signer_validity_years: 30,
            pkcs11: None,
        }
    }
}

thread_local! {
    /// `--registry`: replaces the profile's registry for the command running on this thread.
    static REGISTRY_OVERRIDE: std::cell::RefCell<Option<String>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with every [`Project::open`] on this thread using `registry` (a PostgreSQL URL or
/// an SQLite path) instead of the profile's `[registry]` (`--registry`).
pub fn with_registry<R>(registry: Option<&str>, f: impl FnOnce() -> R) -> R {
    let old = REGISTRY_OVERRIDE.replace(registry.map(str::to_string));
    let r = f();
    REGISTRY_OVERRIDE.set(old);
    r
}

impl Default for RegistrySection {
    fn default() -> Self {
        Self {
            path: "registry.sqlite".into(),
            id: None,
            url: None,
        }
    }
}

impl Default for OutputSection {
    fn default() -> Self {
        Self {
            dir: "devices".into(),
        }
    }
}

/// Where the config-zone bytes come from, as resolved from `chip.config_zone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigZoneSource {
    /// The built-in secure default.
    Default,
    /// Bytes read from a file (path as resolved against the project directory).
    File(PathBuf, Box<[u8; CONFIG_ZONE_LEN]>),
    /// Bytes given inline as hex.
    Inline(Box<[u8; CONFIG_ZONE_LEN]>),
}

impl ConfigZoneSource {
    /// The template bytes, or `None` for the built-in default (owned by the chip driver crate).
    pub fn bytes(&self) -> Option<&[u8; CONFIG_ZONE_LEN]> {
        match self {
            Self::Default => None,
            Self::File(_, b) | Self::Inline(b) => Some(b),
        }
    }
}

/// A problem with the project or its profile. Display is one line saying what to do.
#[derive(Debug)]
pub enum ProjectError {
    /// No `keystamp.toml` in the directory.
    NotAProject(PathBuf),
    /// `keystamp.toml` exists where `init` would write one.
    AlreadyAProject(PathBuf),
    /// Reading or writing a project file failed.
    Io(PathBuf, std::io::Error),
    /// `keystamp.toml` is not valid TOML or has an unknown key / wrong type.
    Parse(PathBuf, String),
    /// A key has a value the profile does not accept.
    Invalid {
        /// Dotted key, e.g. `certificates.cn`.
        key: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAProject(dir) => write!(
                f,
                "{} has no {PROFILE_FILE}: run `keystamp init {}` first or pass --project DIR",
                dir.display(),
                dir.display()
            ),
            Self::AlreadyAProject(path) => write!(
                f,
                "{} already exists: this directory is already a keystamp project (nothing changed)",
                path.display()
            ),
            Self::Io(path, e) => write!(f, "{}: {e}", path.display()),
            Self::Parse(path, msg) => {
                write!(
                    f,
                    "{}: {msg} (fix the file; see docs/factory-guide.md)",
                    path.display()
                )
            }
            Self::Invalid { key, message } => write!(f, "{PROFILE_FILE}: `{key}`: {message}"),
        }
    }
}

impl std::error::Error for ProjectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ProjectError {
    ProjectError::Invalid {
        key,
        message: message.into(),
    }
}

impl Profile {
    /// Parses a profile from TOML text (does not validate; see [`Profile::validate`]).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        // toml's messages span several lines (with a source excerpt); keep the message plus the
        // line and, when the line is `key = value`, the dotted key, so the error is one line.
        toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().replace('\n', " ");
            let Some(span) = e.span() else { return msg };
            let start = span.start.min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            match dotted_key_at(text, start) {
                Some(key) => format!("line {line}: `{key}`: {msg}"),
                None => format!("line {line}: {msg}"),
            }
        })
    }

    /// Checks every value that the types do not constrain. `dir` resolves relative paths (a
    /// config-zone file must exist and hold exactly 128 bytes).
    pub fn validate(&self, dir: &Path) -> Result<ConfigZoneSource, ProjectError> {
        let config = self.config_zone_source(dir)?;
        check_cn_scheme(&self.certificates.cn)?;
        if self.certificates.validity_years > MAX_VALIDITY_YEARS {
            return Err(invalid(
                "certificates.validity_years",
                format!(
                    "{} is more than a compressed certificate can hold; use 0 (no expiration) \
                     or 1..={MAX_VALIDITY_YEARS}",
                    self.certificates.validity_years
                ),
            ));
        }
        for (key, path) in [
            ("certificates.device_def", &self.certificates.device_def),
            ("certificates.signer_def", &self.certificates.signer_def),
        ] {
            if let Some(p) = path
                && !self.resolve(dir, p).is_file()
            {
                return Err(invalid(
                    key,
                    format!(
                        "{} does not exist; fix the path or remove the key",
                        p.display()
                    ),
                ));
            }
        }
        let locks = self.locks;
        if locks.lock_data && !locks.lock_config {
            return Err(invalid(
                "locks.lock_data",
                "the data zone can only be locked after the config zone: set \
                 locks.lock_config = true or locks.lock_data = false",
            ));
        }
        let io = self.io_protection;
        if io.enabled {
            if !keystamp_atecc::default_config::io_key_slot_allowed(io.slot) {
                return Err(invalid(
                    "io_protection.slot",
                    format!(
                        "{}: use 1..=9 or 13..=15 (slot 0 is the device key, 10-12 hold the \
                         certificates and the trust anchor)",
                        io.slot
                    ),
                ));
            }
            if !matches!(config, ConfigZoneSource::Default) {
                return Err(invalid(
                    "io_protection.enabled",
                    "IO protection builds its config from the built-in default: set \
                     chip.config_zone = \"default\" or io_protection.enabled = false",
                ));
            }
        }
        if locks.lock_cert_slots && !locks.lock_data {
            return Err(invalid(
                "locks.lock_cert_slots",
                "a slot can only be locked after the data zone: set locks.lock_data = true \
                 or locks.lock_cert_slots = false",
            ));
        }
        for (key, years) in [
            ("ca.root_validity_years", self.ca.root_validity_years),
            ("ca.signer_validity_years", self.ca.signer_validity_years),
        ] {
            if years == 0 || years > MAX_VALIDITY_YEARS {
                return Err(invalid(
                    key,
                    format!("{years}: use 1..={MAX_VALIDITY_YEARS}"),
                ));
            }
        }
        if self.ca.signer_validity_years > self.ca.root_validity_years {
            return Err(invalid(
                "ca.signer_validity_years",
                "must not exceed ca.root_validity_years (a signer cannot outlive its root)",
            ));
        }
        for (key, value) in [
            ("ca.organization", &self.ca.organization),
            ("ca.root_cn", &self.ca.root_cn),
            ("ca.signer_cn_prefix", &self.ca.signer_cn_prefix),
        ] {
            check_name_value(key, value)?;
        }
        // The signer id (" XXXX") is appended to the prefix.
        if self.ca.signer_cn_prefix.len() + 5 > MAX_CN_LEN {
            return Err(invalid(
                "ca.signer_cn_prefix",
                format!("too long: at most {} characters", MAX_CN_LEN - 5),
            ));
        }
        if let Some(url) = &self.registry.url {
            crate::registry_url::Location::parse(url, dir)
                .map_err(|e| invalid("registry.url", e.to_string()))?;
        }
        for (key, path) in [
            ("ca.dir", &self.ca.dir),
            ("registry.path", &self.registry.path),
            ("output.dir", &self.output.dir),
        ] {
            if path.as_os_str().is_empty() {
                return Err(invalid(
                    key,
                    "is empty; give a path (relative to the project)",
                ));
            }
        }
        Ok(config)
    }

    /// Resolves `chip.config_zone`.
    pub fn config_zone_source(&self, dir: &Path) -> Result<ConfigZoneSource, ProjectError> {
        let value = self.chip.config_zone.trim();
        if value == "default" {
            return Ok(ConfigZoneSource::Default);
        }
        let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        let looks_hex =
            compact.len() == 2 * CONFIG_ZONE_LEN && compact.bytes().all(|b| b.is_ascii_hexdigit());
        if looks_hex {
            let mut bytes = Box::new([0u8; CONFIG_ZONE_LEN]);
            hex::decode_to_slice(&compact, &mut bytes[..])
                .map_err(|e| invalid("chip.config_zone", e.to_string()))?;
            return Ok(ConfigZoneSource::Inline(bytes));
        }
        let path = self.resolve(dir, Path::new(value));
        let data = crate::certdef_io::read_limited(&path).map_err(|e| {
            invalid(
                "chip.config_zone",
                format!(
                    "cannot read {} ({e}); use \"default\", a path to a 128-byte file, \
                     or 256 hex digits",
                    path.display()
                ),
            )
        })?;
        let bytes: [u8; CONFIG_ZONE_LEN] = data.as_slice().try_into().map_err(|_| {
            invalid(
                "chip.config_zone",
                format!(
                    "{} holds {} bytes; a config-zone template is exactly 128 bytes",
                    path.display(),
                    data.len()
                ),
            )
        })?;
        Ok(ConfigZoneSource::File(path, Box::new(bytes)))
    }

    /// `path` made absolute against the project directory.
    pub fn resolve(&self, dir: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.join(path)
        }
    }

    /// The device subject CN for a chip serial number, per `certificates.cn`.
    pub fn device_cn(&self, chip_serial: &[u8; CHIP_SERIAL_LEN]) -> String {
        expand_cn(&self.certificates.cn, chip_serial)
    }

    /// The profile as a commented TOML document (what `init` writes).
    pub fn to_commented_toml(&self) -> String {
        let q = |s: &str| toml_string(s);
        let p = |p: &Path| toml_string(&p.to_string_lossy());
        let opt = |key: &str, v: &Option<PathBuf>, example: &str| match v {
            Some(path) => format!("{key} = {}\n", p(path)),
            None => format!("# {key} = \"{example}\"\n"),
        };
        let c = &self.certificates;
        format!(
            "# keystamp project profile. Paths are relative to this directory.\n\
             # Reference: docs/factory-guide.md\n\
             \n\
             # \"production\": encrypted CA keys, real chips only, every device in an open lot\n\
             # (`keystamp lot`). \"development\": also simulated chips and unencrypted keys; the\n\
             # CA's organization ends with \" development\".\n\
             mode = {mode}\n\
             # Parts and flow: \"custom\" (unconfigured ATECC608A/B), \"trustflex\" (ATECC608B-TFLXTLS:\n\
             # shipped key and config, the project's chain into slots 10-12), \"trustandgo\"\n\
             # (ATECC608A/B-TNGTLS: no writes; Microchip's chain verified and registered).\n\
             profile = {part_profile}\n\
             \n\
             [microchip]\n\
             # Root CA Trust&GO chains must verify to (profile = \"trustandgo\").\n\
             {microchip_root}\
             \n\
             [chip]\n\
             # Config-zone template programmed before the config lock: \"default\" (the built-in\n\
             # secure default, modelled on Microchip's TLS layout), a path to a 128-byte file,\n\
             # or 256 hex digits.\n\
             config_zone = {config_zone}\n\
             \n\
             [certificates]\n\
             # Certificate definitions (cryptoauthlib-shaped JSON).\n\
             {device_def}{signer_def}\
             # Device subject CN: {{sn}} = chip serial as 18 upper-case hex digits,\n\
             # {{sn_lower}} = the same in lower case (Azure DPS uses the CN as registration id).\n\
             cn = {cn}\n\
             # Device certificate validity in whole years (0 = no expiration, max 127).\n\
             validity_years = {validity}\n\
             \n\
             [locks]\n\
             # Locks are permanent. Each one is applied only after the bytes it freezes were\n\
             # read back and verified. lock_data needs lock_config; lock_cert_slots needs lock_data.\n\
             lock_config = {lock_config}\n\
             lock_data = {lock_data}\n\
             lock_cert_slots = {lock_cert_slots}\n\
             \n\
             [ca]\n\
             # root.key/root.pem/signer.key/signer.pem live here. Each key is encrypted with its\n\
             # own passphrase (KEYSTAMP_ROOT_PASSPHRASE, KEYSTAMP_SIGNER_PASSPHRASE or a prompt)\n\
             # unless created with --insecure-no-passphrase.\n\
             dir = {ca_dir}\n\
             organization = {org}\n\
             root_cn = {root_cn}\n\
             # The 4-hex-digit signer id is appended: \"<prefix> 0A1B\".\n\
             signer_cn_prefix = {signer_prefix}\n\
             root_validity_years = {root_years}\n\
             signer_validity_years = {signer_years}\n\
             {pkcs11}\
             \n\
             [registry]\n\
             # SQLite database: devices, certificates, stations, audit log.\n\
             path = {registry}\n\
             {registry_id}\
             {registry_url}\
             \n\
             [output]\n\
             # Per device: <dir>/<chip serial>/{{device,signer,chain}}.pem\n\
             dir = {output}\n\
             \n\
             [issuance]\n\
             # Certificates a chip may get after its first (each for a new key, e.g. a device\n\
             # re-run after a failure before verification). Same-key reruns do not count.\n\
             max_reissues = {max_reissues}\n\
             \n\
             [io_protection]\n\
             # A per-device IO-protection key (docs/atecc.md \"IO protection\"): ChipOptions\n\
             # encrypts ECDH/KDF output with it; written to `slot` before the data lock and kept\n\
             # in the device's flash, never recorded by the station. Needs config_zone = \"default\".\n\
             enabled = {io_enabled}\n\
             slot = {io_slot}\n",
            io_enabled = self.io_protection.enabled,
            io_slot = self.io_protection.slot,
            mode = q(self.mode.as_str()),
            part_profile = q(self.profile.as_str()),
            microchip_root = opt("root", &self.microchip.root, "microchip-root.pem"),
            max_reissues = self.issuance.max_reissues,
            config_zone = q(&self.chip.config_zone),
            device_def = opt("device_def", &c.device_def, "certdefs/device.json"),
            signer_def = opt("signer_def", &c.signer_def, "certdefs/signer.json"),
            cn = q(&c.cn),
            validity = c.validity_years,
            lock_config = self.locks.lock_config,
            lock_data = self.locks.lock_data,
            lock_cert_slots = self.locks.lock_cert_slots,
            ca_dir = p(&self.ca.dir),
            org = q(&self.ca.organization),
            root_cn = q(&self.ca.root_cn),
            signer_prefix = q(&self.ca.signer_cn_prefix),
            root_years = self.ca.root_validity_years,
            signer_years = self.ca.signer_validity_years,
            pkcs11 = match &self.ca.pkcs11 {
                Some(t) => format!(
                    "\n[ca.pkcs11]\n# The signer key is in this PKCS#11 token (no signer.key); the PIN \
                     comes from\n# KEYSTAMP_PKCS11_PIN or a prompt.\nmodule = {}\ntoken = {}\n\
                     key_label = {}\n",
                    p(&t.module),
                    q(&t.token),
                    q(&t.key_label)
                ),
                None => String::new(),
            },
            registry = p(&self.registry.path),
            registry_id = match &self.registry.id {
                Some(id) => format!(
                    "# Id of the registry created with this project; a database with another id \
                     is refused.\nid = {}\n",
                    q(id)
                ),
                None => String::new(),
            },
            registry_url = match &self.registry.url {
                Some(url) => format!(
                    "# Shared PostgreSQL registry (several hosts); the password comes from \
                     PGPASSWORD or ~/.pgpass.\nurl = {}\n",
                    q(url)
                ),
                None => "# Several hosts share one PostgreSQL registry with\n\
                         # url = \"postgres://keystamp@db.example/keystamp\"\n"
                    .to_string(),
            },
            output = p(&self.output.dir),
        )
    }
}

/// The dotted key (`section.key`) of the `key = value` line containing byte `pos`, if any.
fn dotted_key_at(text: &str, pos: usize) -> Option<String> {
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let section = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .map(str::trim)
    });
    Some(match section {
        Some(sec) => format!("{sec}.{key}"),
        None => key.to_string(),
    })
}

/// A TOML basic string literal.
fn toml_string(s: &str) -> String {
    // serde_json's string escaping is a subset of TOML basic-string escaping.
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

fn expand_cn(scheme: &str, chip_serial: &[u8; CHIP_SERIAL_LEN]) -> String {
    let upper = hex::encode_upper(chip_serial);
    scheme
        .replace("{sn_lower}", &upper.to_ascii_lowercase())
        .replace("{sn}", &upper)
}

fn check_cn_scheme(scheme: &str) -> Result<(), ProjectError> {
    const KEY: &str = "certificates.cn";
    let stripped = scheme.replace("{sn_lower}", "").replace("{sn}", "");
    if stripped.contains('{') || stripped.contains('}') {
        return Err(invalid(
            KEY,
            "unknown placeholder; the scheme may use {sn} and {sn_lower}",
        ));
    }
    if !scheme.contains("{sn}") && !scheme.contains("{sn_lower}") {
        return Err(invalid(
            KEY,
            "must contain {sn} or {sn_lower} so that every device gets a unique CN",
        ));
    }
    check_name_value(KEY, scheme)?;
    let expanded = expand_cn(scheme, &[0; CHIP_SERIAL_LEN]);
    if expanded.len() > MAX_CN_LEN {
        return Err(invalid(
            KEY,
            format!(
                "expands to {} characters; a CN holds at most {MAX_CN_LEN}",
                expanded.len()
            ),
        ));
    }
    Ok(())
}

/// Subject attribute values are written as UTF8String; keep them printable and non-empty so the
/// certificate definitions and Azure/AWS registration ids behave.
fn check_name_value(key: &'static str, value: &str) -> Result<(), ProjectError> {
    if value.trim().is_empty() {
        return Err(invalid(key, "is empty; give a name"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(invalid(
            key,
            "contains control characters; use printable text",
        ));
    }
    if value.len() > MAX_CN_LEN {
        return Err(invalid(
            key,
            format!("too long: at most {MAX_CN_LEN} characters"),
        ));
    }
    Ok(())
}

/// An opened project: its directory and validated profile.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project directory.
    pub dir: PathBuf,
    /// The validated profile.
    pub profile: Profile,
    /// The resolved config-zone template.
    pub config_zone: ConfigZoneSource,
}

impl Project {
    /// Reads `dir/keystamp.toml` without validating it (see [`Profile::validate`]).
    pub fn read_profile(dir: &Path) -> Result<Profile, ProjectError> {
        let path = dir.join(PROFILE_FILE);
        let text = match crate::certdef_io::read_limited_text(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProjectError::NotAProject(dir.to_path_buf()));
            }
            Err(e) => return Err(ProjectError::Io(path, e)),
        };
        Profile::from_toml(&text).map_err(|m| ProjectError::Parse(path, m))
    }

    /// Opens the project in `dir`: reads and validates `keystamp.toml`.
    pub fn open(dir: &Path) -> Result<Self, ProjectError> {
        let mut profile = Self::read_profile(dir)?;
        if let Some(registry) = REGISTRY_OVERRIDE.with_borrow(Clone::clone) {
            if crate::registry_url::is_postgres_url(&registry) {
                profile.registry.url = Some(registry);
            } else {
                profile.registry.url = None;
                profile.registry.path = registry.into();
            }
        }
        let config_zone = profile.validate(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            profile,
            config_zone,
        })
    }

    /// Writes `profile` as `dir/keystamp.toml`, refusing to overwrite an existing one.
    pub fn write_profile(dir: &Path, profile: &Profile) -> Result<PathBuf, ProjectError> {
        let path = dir.join(PROFILE_FILE);
        if path.exists() {
            return Err(ProjectError::AlreadyAProject(path));
        }
        std::fs::create_dir_all(dir).map_err(|e| ProjectError::Io(dir.to_path_buf(), e))?;
        std::fs::write(&path, profile.to_commented_toml())
            .map_err(|e| ProjectError::Io(path.clone(), e))?;
        Ok(path)
    }

    /// Replaces `dir/keystamp.toml` with `profile` (every key written out; comments in the old
    /// file are not kept). Written to a temporary file and renamed, so a crash leaves the old
    /// profile or the new one, never half of one.
    pub fn replace_profile(dir: &Path, profile: &Profile) -> Result<PathBuf, ProjectError> {
        let path = dir.join(PROFILE_FILE);
        let tmp = dir.join(format!(".{PROFILE_FILE}.tmp"));
        std::fs::write(&tmp, profile.to_commented_toml())
            .map_err(|e| ProjectError::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| ProjectError::Io(path.clone(), e))?;
        Ok(path)
    }

    /// The CA directory.
    pub fn ca_dir(&self) -> PathBuf {
        self.profile.resolve(&self.dir, &self.profile.ca.dir)
    }

    /// Where the registry is: the PostgreSQL URL of `registry.url` (or `--registry`), else
    /// the SQLite file of `registry.path`.
    pub fn registry_location(&self) -> crate::registry_url::Location {
        match &self.profile.registry.url {
            Some(url) => crate::registry_url::Location::Postgres(url.clone()),
            None => crate::registry_url::Location::Sqlite(self.registry_path()),
        }
    }

    /// The registry database path.
    pub fn registry_path(&self) -> PathBuf {
        self.profile.resolve(&self.dir, &self.profile.registry.path)
    }

    /// The per-device output directory.
    pub fn output_dir(&self) -> PathBuf {
        self.profile.resolve(&self.dir, &self.profile.output.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    /// IO protection: the key never goes into the device-key, certificate or anchor slots, and
    /// the variant is built from the default config only.
    #[test]
    fn io_protection_refuses_reserved_slots_and_custom_configs() {
        let dir = tmp();
        let mut p = Profile::default();
        p.io_protection.enabled = true;
        assert!(p.validate(dir.path()).is_ok());
        for slot in [0u8, 10, 11, 12, 16] {
            p.io_protection.slot = slot;
            let e = p.validate(dir.path()).unwrap_err().to_string();
            assert!(e.contains("io_protection.slot"), "{slot}: {e}");
        }
        p.io_protection.slot = 6;
        p.chip.config_zone = "00".repeat(CONFIG_ZONE_LEN);
        let e = p.validate(dir.path()).unwrap_err().to_string();
        assert!(e.contains("io_protection.enabled"), "{e}");
        // Off, a custom config and any slot value are fine.
        p.io_protection = IoProtectionSection {
            enabled: false,
            slot: 0,
        };
        assert!(p.validate(dir.path()).is_ok());
    }

    #[test]
    fn commented_toml_round_trips_to_the_same_profile() {
        let p = Profile::default();
        let back = Profile::from_toml(&p.to_commented_toml()).expect("parse");
        assert_eq!(back, p);
        let mut q = Profile::default();
        q.certificates.device_def = Some("defs/d \"x\".json".into());
        q.ca.organization = "Acme \"Widgets\" \\ Co".into();
        q.io_protection = IoProtectionSection {
            enabled: true,
            slot: 9,
        };
        assert_eq!(
            Profile::from_toml(&q.to_commented_toml()).expect("parse"),
            q
        );
    }

    #[test]
    fn empty_file_is_the_default_profile() {
        assert_eq!(Profile::from_toml("").expect("parse"), Profile::default());
        Profile::default()
            .validate(tmp().path())
            .expect("default validates");
    }

    #[test]
    fn unknown_key_is_a_one_line_error_with_the_line() {
        let err = Profile::from_toml("[locks]\nlock_config = true\nlock_everything = true\n")
            .expect_err("unknown key");
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(err.contains("lock_everything"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err =
            Profile::from_toml("[certificates]\nvalidity_years = \"20\"\n").expect_err("type");
        assert!(
            err.starts_with("line 2: `certificates.validity_years`:"),
            "{err}"
        );
    }

    #[test]
    fn mode_defaults_to_development_and_takes_only_the_two_words() {
        assert_eq!(
            Profile::from_toml("").expect("parse").mode,
            Mode::Development
        );
        let p = Profile::from_toml("mode = \"production\"\n[issuance]\nmax_reissues = 0\n")
            .expect("parse");
        assert_eq!((p.mode, p.issuance.max_reissues), (Mode::Production, 0));
        let back = Profile::from_toml(&p.to_commented_toml()).expect("round trip");
        assert_eq!(back, p);
        let err = Profile::from_toml("mode = \"staging\"\n").expect_err("unknown mode");
        assert!(err.starts_with("line 1: `mode`:"), "{err}");
    }

    #[test]
    fn simulated_serials_are_outside_the_real_range() {
        let real = [0x01, 0x23, 1, 2, 3, 4, 5, 6, 0xEE];
        let sim = [SIMULATED_SERIAL_FIRST_BYTE, 0x23, 1, 2, 3, 4, 5, 6, 0xEE];
        assert!(!is_simulated_serial(&real));
        assert!(is_simulated_serial(&sim));
        assert_ne!(sim[..2], REAL_SERIAL_PREFIX);
    }

    #[test]
    fn lock_policy_order_is_enforced() {
        let dir = tmp();
        let mut p = Profile {
            locks: LockPolicy {
                lock_config: false,
                lock_data: true,
                lock_cert_slots: false,
            },
            ..Profile::default()
        };
        let e = p.validate(dir.path()).expect_err("data without config");
        assert!(
            matches!(
                e,
                ProjectError::Invalid {
                    key: "locks.lock_data",
                    ..
                }
            ),
            "{e}"
        );
        p.locks = LockPolicy {
            lock_config: true,
            lock_data: false,
            lock_cert_slots: true,
        };
        let e = p.validate(dir.path()).expect_err("slots without data");
        assert!(
            matches!(
                e,
                ProjectError::Invalid {
                    key: "locks.lock_cert_slots",
                    ..
                }
            ),
            "{e}"
        );
        p.locks = LockPolicy {
            lock_config: false,
            lock_data: false,
            lock_cert_slots: false,
        };
        p.validate(dir.path()).expect("nothing locked is allowed");
    }

    #[test]
    fn cn_scheme_expands_and_is_checked() {
        let mut p = Profile::default();
        let sn = [0x01, 0x23, 0x83, 0x32, 0xd9, 0x2c, 0xa5, 0x71, 0xee];
        assert_eq!(p.device_cn(&sn), "01238332D92CA571EE");
        p.certificates.cn = "dev-{sn_lower}".into();
        assert_eq!(p.device_cn(&sn), "dev-01238332d92ca571ee");
        let dir = tmp();
        for bad in [
            "fixed-name",
            "{serial}",
            "{sn}}",
            &format!("{}{{sn}}", "x".repeat(50)),
        ] {
            p.certificates.cn = bad.to_string();
            let e = p.validate(dir.path()).expect_err(bad);
            assert!(
                matches!(
                    e,
                    ProjectError::Invalid {
                        key: "certificates.cn",
                        ..
                    }
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn config_zone_sources() {
        let dir = tmp();
        let mut p = Profile::default();
        assert_eq!(
            p.config_zone_source(dir.path()).expect("default"),
            ConfigZoneSource::Default
        );
        let bytes: Vec<u8> = (0..128u8).collect();
        p.chip.config_zone = hex::encode(&bytes);
        let src = p.config_zone_source(dir.path()).expect("hex");
        assert_eq!(src.bytes().map(|b| b.to_vec()), Some(bytes.clone()));
        std::fs::write(dir.path().join("cfg.bin"), &bytes).expect("write");
        p.chip.config_zone = "cfg.bin".into();
        let src = p.config_zone_source(dir.path()).expect("file");
        assert_eq!(src.bytes().map(|b| b.to_vec()), Some(bytes));
        std::fs::write(dir.path().join("short.bin"), [0u8; 100]).expect("write");
        p.chip.config_zone = "short.bin".into();
        let e = p.config_zone_source(dir.path()).expect_err("short");
        assert!(e.to_string().contains("100 bytes"), "{e}");
        p.chip.config_zone = "abcd".into();
        let e = p.config_zone_source(dir.path()).expect_err("neither");
        assert!(e.to_string().contains("chip.config_zone"), "{e}");
    }

    #[test]
    fn validity_limits() {
        let dir = tmp();
        let mut p = Profile::default();
        p.certificates.validity_years = 128;
        assert!(p.validate(dir.path()).is_err());
        p.certificates.validity_years = 0;
        p.validate(dir.path()).expect("0 = no expiration");
        p.ca.signer_validity_years = 50;
        p.ca.root_validity_years = 40;
        let e = p.validate(dir.path()).expect_err("signer outlives root");
        assert!(matches!(
            e,
            ProjectError::Invalid {
                key: "ca.signer_validity_years",
                ..
            }
        ));
    }

    #[test]
    fn open_reports_missing_and_existing_projects() {
        let dir = tmp();
        let e = Project::open(dir.path()).expect_err("no project");
        assert!(matches!(e, ProjectError::NotAProject(_)));
        Project::write_profile(dir.path(), &Profile::default()).expect("write");
        let project = Project::open(dir.path()).expect("open");
        assert_eq!(project.registry_path(), dir.path().join("registry.sqlite"));
        let e = Project::write_profile(dir.path(), &Profile::default()).expect_err("exists");
        assert!(matches!(e, ProjectError::AlreadyAProject(_)));
    }

    proptest::proptest! {
        /// Whatever an operator types into keystamp.toml, loading it never panics and a
        /// rejection is a single line.
        #[test]
        fn any_text_parses_or_fails_with_one_line(text in "\\PC{0,200}") {
            match Profile::from_toml(&text) {
                Ok(p) => { let _ = p.validate(Path::new("/nonexistent")); }
                Err(e) => proptest::prop_assert!(!e.contains('\n'), "{}", e),
            }
        }

        /// Edits of a valid profile (one byte replaced) never panic either.
        #[test]
        fn edited_profiles_never_panic(pos in 0usize..2000, byte in proptest::char::any()) {
            let mut text = Profile::default().to_commented_toml();
            let at = text.char_indices().map(|(i, _)| i).nth(pos % text.chars().count()).unwrap_or(0);
            let len = text[at..].chars().next().map_or(0, char::len_utf8);
            text.replace_range(at..at + len, &byte.to_string());
            match Profile::from_toml(&text) {
                Ok(p) => { let _ = p.validate(Path::new("/nonexistent")); }
                Err(e) => proptest::prop_assert!(!e.contains('\n'), "{}", e),
            }
        }
    }
}
