//! A linter for target configurations: the mistakes that, once the config zone is locked,
//! cannot be undone. Rule ids are stable; never renumber, only add.

use crate::config::{ConfigZone, KeyType, OUTPUT_CLEAR_ALLOWED, WriteMode};
use crate::zone::SLOT_COUNT;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Severity {
    /// Worth a look; the config works.
    Warning,
    /// Do not lock a chip with this config.
    Error,
}

/// What the config is linted for. Production escalates the rules that keep a provisioned
/// device's identity fixed (see [`Rule::severity_in`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LintProfile {
    /// Development / evaluation: identity rules are warnings.
    #[default]
    Development,
    /// Production devices: a regenerable identity key, certificate or trust-anchor slots that
    /// cannot be locked, a trust anchor Verify cannot use and spare signing keys are errors.
    Production,
}

/// Certificate storage slots of the project (Microchip's TNG/TFLX layout): device compressed
/// cert, signer public key, signer compressed cert.
pub const CERT_SLOTS: [usize; 3] = [10, 11, 12];
/// The device's private key slot.
pub const DEVICE_KEY_SLOT: usize = 0;
/// The signer public key slot: the device's trust anchor, used with Verify stored mode.
pub const TRUST_ANCHOR_SLOT: usize = 11;

/// A lint rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Rule {
    /// ATL001: a private-key slot is not IsSecret.
    PrivateKeyNotSecret,
    /// ATL002: a private key can be replaced by PrivWrite with a write key readable in clear.
    PrivateKeyClearWrite,
    /// ATL003: a private-key slot with a key type other than P-256.
    PrivateKeyNotP256,
    /// ATL004: a secret key slot can be read out (encrypted).
    KeyExportable,
    /// ATL005: ECDH results leave the chip in clear.
    EcdhClearOutput,
    /// ATL006: slot 0 is not a P-256 private key usable for external Sign.
    Slot0NotDeviceKey,
    /// ATL007: GenKey may replace a private key and the slot cannot be locked.
    GenKeyNotLockable,
    /// ATL008: a certificate slot is not readable in clear.
    CertSlotNotReadable,
    /// ATL009: a certificate slot can never be rewritten after the data lock.
    CertSlotNeverUpdatable,
    /// ATL010: a certificate slot stays writable forever (not lockable).
    CertSlotNotLockable,
    /// ATL011: a slot requires authorization (ReqAuth), which keystamp does not drive.
    UnsupportedReqAuth,
    /// ATL012: usage limits (LimitedUse, CountMatch, UseLock) that keystamp does not drive.
    UnsupportedUsageLimit,
    /// ATL013: SecureBoot or the persistent latch is enabled.
    UnsupportedSecureBoot,
    /// ATL014: IO protection and ECDH/KDF output protection do not match (outputs still allowed
    /// in clear, protection without the key enabled, or a reserved value).
    IoProtection,
    /// ATL015: the I2C address is reserved or not in 8-bit form.
    I2cAddressInvalid,
    /// ATL016: the clock divider is undocumented.
    ClockDividerInvalid,
    /// ATL017: the long (~13 s) watchdog is selected.
    WatchdogLong,
    /// ATL018: X509format is set (chip-side certificate validation is not used).
    UnsupportedX509Format,
    /// ATL019: the device key can be replaced after the data lock (GenKey or PrivWrite allowed).
    IdentityKeyRegenerable,
    /// ATL020: the trust-anchor slot cannot serve as the public key of Verify stored mode.
    TrustAnchorUnusable,
    /// ATL021: a private key other than the device key signs caller-chosen digests.
    SpareKeyExternalSign,
    /// ATL022: IO protection is enabled and its key slot can be read, replaced or is a key or
    /// certificate slot.
    IoKeyExposed,
}

impl Rule {
    /// Every rule, in id order.
    pub const ALL: [Rule; 22] = [
        Rule::PrivateKeyNotSecret,
        Rule::PrivateKeyClearWrite,
        Rule::PrivateKeyNotP256,
        Rule::KeyExportable,
        Rule::EcdhClearOutput,
        Rule::Slot0NotDeviceKey,
        Rule::GenKeyNotLockable,
        Rule::CertSlotNotReadable,
        Rule::CertSlotNeverUpdatable,
        Rule::CertSlotNotLockable,
        Rule::UnsupportedReqAuth,
        Rule::UnsupportedUsageLimit,
        Rule::UnsupportedSecureBoot,
        Rule::IoProtection,
        Rule::I2cAddressInvalid,
        Rule::ClockDividerInvalid,
        Rule::WatchdogLong,
        Rule::UnsupportedX509Format,
        Rule::IdentityKeyRegenerable,
        Rule::TrustAnchorUnusable,
        Rule::SpareKeyExternalSign,
        Rule::IoKeyExposed,
    ];

    /// Stable id, e.g. `ATL001`.
    pub const fn id(self) -> &'static str {
        match self {
            Rule::PrivateKeyNotSecret => "ATL001",
            Rule::PrivateKeyClearWrite => "ATL002",
            Rule::PrivateKeyNotP256 => "ATL003",
            Rule::KeyExportable => "ATL004",
            Rule::EcdhClearOutput => "ATL005",
            Rule::Slot0NotDeviceKey => "ATL006",
            Rule::GenKeyNotLockable => "ATL007",
            Rule::CertSlotNotReadable => "ATL008",
            Rule::CertSlotNeverUpdatable => "ATL009",
            Rule::CertSlotNotLockable => "ATL010",
            Rule::UnsupportedReqAuth => "ATL011",
            Rule::UnsupportedUsageLimit => "ATL012",
            Rule::UnsupportedSecureBoot => "ATL013",
            Rule::IoProtection => "ATL014",
            Rule::I2cAddressInvalid => "ATL015",
            Rule::ClockDividerInvalid => "ATL016",
            Rule::WatchdogLong => "ATL017",
            Rule::UnsupportedX509Format => "ATL018",
            Rule::IdentityKeyRegenerable => "ATL019",
            Rule::TrustAnchorUnusable => "ATL020",
            Rule::SpareKeyExternalSign => "ATL021",
            Rule::IoKeyExposed => "ATL022",
        }
    }

    /// Short kebab-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Rule::PrivateKeyNotSecret => "private-key-not-secret",
            Rule::PrivateKeyClearWrite => "private-key-clear-write",
            Rule::PrivateKeyNotP256 => "private-key-not-p256",
            Rule::KeyExportable => "key-exportable",
            Rule::EcdhClearOutput => "ecdh-clear-output",
            Rule::Slot0NotDeviceKey => "slot0-not-device-key",
            Rule::GenKeyNotLockable => "genkey-not-lockable",
            Rule::CertSlotNotReadable => "cert-slot-not-readable",
            Rule::CertSlotNeverUpdatable => "cert-slot-never-updatable",
            Rule::CertSlotNotLockable => "cert-slot-not-lockable",
            Rule::UnsupportedReqAuth => "unsupported-req-auth",
            Rule::UnsupportedUsageLimit => "unsupported-usage-limit",
            Rule::UnsupportedSecureBoot => "unsupported-secure-boot",
            Rule::IoProtection => "io-protection",
            Rule::I2cAddressInvalid => "i2c-address-invalid",
            Rule::ClockDividerInvalid => "clock-divider-invalid",
            Rule::WatchdogLong => "watchdog-long",
            Rule::UnsupportedX509Format => "unsupported-x509format",
            Rule::IdentityKeyRegenerable => "identity-key-regenerable",
            Rule::TrustAnchorUnusable => "trust-anchor-unusable",
            Rule::SpareKeyExternalSign => "spare-key-external-sign",
            Rule::IoKeyExposed => "io-key-exposed",
        }
    }

    /// Severity in the development profile.
    pub const fn severity(self) -> Severity {
        self.severity_in(LintProfile::Development)
    }

    /// Severity in `profile`: production makes the identity rules (ATL010, ATL019, ATL020,
    /// ATL021) errors.
    pub const fn severity_in(self, profile: LintProfile) -> Severity {
        if let LintProfile::Production = profile
            && self.is_identity_rule()
        {
            return Severity::Error;
        }
        match self {
            Rule::KeyExportable
            | Rule::IdentityKeyRegenerable
            | Rule::TrustAnchorUnusable
            | Rule::SpareKeyExternalSign
            | Rule::EcdhClearOutput
            | Rule::CertSlotNeverUpdatable
            | Rule::CertSlotNotLockable
            | Rule::IoProtection
            | Rule::UnsupportedUsageLimit
            | Rule::UnsupportedSecureBoot
            | Rule::WatchdogLong
            | Rule::UnsupportedX509Format => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The rules that keep a provisioned device's identity what was verified (issue 13).
    const fn is_identity_rule(self) -> bool {
        matches!(
            self,
            Rule::CertSlotNotLockable
                | Rule::IdentityKeyRegenerable
                | Rule::TrustAnchorUnusable
                | Rule::SpareKeyExternalSign
        )
    }

    /// Why it matters.
    pub const fn explanation(self) -> &'static str {
        match self {
            Rule::PrivateKeyNotSecret => {
                "KeyConfig.Private is set but SlotConfig.IsSecret is clear; the datasheet requires \
                 private-key slots to be secret, otherwise the slot's contents are not protected"
            }
            Rule::PrivateKeyClearWrite => {
                "PrivWrite is allowed (WriteConfig bit 2) and the write key slot is readable in \
                 clear, so anyone on the bus can replace the private key"
            }
            Rule::PrivateKeyNotP256 => {
                "KeyConfig.Private is set but KeyType is not P-256 (4); the ATECC608 only \
                 supports P-256 private keys"
            }
            Rule::KeyExportable => {
                "a secret slot has EncryptRead set: its key can be read out of the chip \
                 (encrypted with the read key)"
            }
            Rule::EcdhClearOutput => {
                "ECDH is enabled and the result is returned in clear (SlotConfig bit 3 clear); \
                 shared secrets cross the bus"
            }
            Rule::Slot0NotDeviceKey => {
                "slot 0 must hold the device's P-256 private key: KeyConfig Private=1, \
                 KeyType=P-256, PubInfo=1, SlotConfig IsSecret=1 and external Sign enabled"
            }
            Rule::GenKeyNotLockable => {
                "GenKey may create a new key in this slot at any time and KeyConfig.Lockable is \
                 clear, so the key (and the identity bound to it) can never be frozen"
            }
            Rule::CertSlotNotReadable => {
                "a certificate slot (10, 11, 12) must be readable in clear (IsSecret=0) so the \
                 device can rebuild its certificate chain"
            }
            Rule::CertSlotNeverUpdatable => {
                "a certificate slot is never writable after the data lock: certificates must be \
                 written before the data lock and can never be replaced (e.g. after a CA rotation)"
            }
            Rule::CertSlotNotLockable => {
                "a certificate or trust-anchor slot is not Lockable (KeyConfig bit 5): if it stays \
                 writable after the data lock its contents can be overwritten forever, and the \
                 host's slot lock after verification fails (the production profile requires every \
                 certificate slot to be lockable)"
            }
            Rule::UnsupportedReqAuth => {
                "KeyConfig.ReqAuth needs a CheckMac/authorization flow keystamp does not drive; \
                 commands on the slot would fail"
            }
            Rule::UnsupportedUsageLimit => {
                "LimitedUse, CountMatch or UseLock limit key use in ways keystamp does not \
                 drive; keys could become unusable"
            }
            Rule::UnsupportedSecureBoot => {
                "SecureBoot mode or the persistent latch (KeyConfig.PersistentDisable) is \
                 enabled; keystamp does not drive secure boot"
            }
            Rule::IoProtection => {
                "ChipOptions IO protection and ECDH/KDF output protection do not match: with the \
                 IO protection key enabled, ECDH or KDF output is still allowed in clear (anyone \
                 on the bus asks for clear output); or output protection is set without the key \
                 enabled; or a protection field holds the reserved value 3"
            }
            Rule::I2cAddressInvalid => {
                "I2C_Address must be an 8-bit form address (bit 0 clear) outside the reserved \
                 7-bit ranges 0x00-0x07 and 0x78-0x7F; after the lock the chip answers only there"
            }
            Rule::ClockDividerInvalid => {
                "ChipMode bits 7:3 must be 0x00, 0x05 or 0x0D (documented clock dividers)"
            }
            Rule::WatchdogLong => {
                "ChipMode selects the ~13 s watchdog; the ~1.3 s default limits how long the \
                 chip stays awake if the host misbehaves"
            }
            Rule::UnsupportedX509Format => {
                "X509format is set for chip-side certificate validation, which keystamp does not \
                 use"
            }
            Rule::IdentityKeyRegenerable => {
                "the device key slot allows GenKey (WriteConfig bit 1, 0x2000) or PrivWrite \
                 (WriteConfig bit 2, 0x4000) after the data lock: anyone on the bus can replace \
                 the key and destroy the verified identity"
            }
            Rule::TrustAnchorUnusable => {
                "the trust-anchor slot (11) must hold a P-256 public key Verify stored mode can use \
                 without validation: KeyConfig Private=0, KeyType=P-256, PubInfo=0, no ReqAuth"
            }
            Rule::SpareKeyExternalSign => {
                "a private key other than the device key allows external Sign (ReadKey bit 0): it \
                 signs any digest a caller sends"
            }
            Rule::IoKeyExposed => {
                "ChipOptions enables IO protection and its key slot (bits 15:12) is not a secret \
                 that stays in the chip: it is not IsSecret, has EncryptRead, is a private-key, \
                 device-key or certificate slot, or stays writable after the data lock without \
                 being Lockable (anyone on the bus reads or replaces the key)"
            }
        }
    }
}

/// One finding: a rule and, for per-slot rules, the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The slot, for per-slot rules.
    pub slot: Option<u8>,
    /// The rule's severity in the profile the config was linted for.
    pub severity: Severity,
}

impl Finding {
    /// The severity in the profile the config was linted for.
    pub const fn severity(&self) -> Severity {
        self.severity
    }
}

impl core::fmt::Display for Finding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let sev = match self.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}] {}", self.rule.id(), self.rule.name())?;
        if let Some(s) = self.slot {
            write!(f, " (slot {s})")?;
        }
        write!(f, ": {}", self.rule.explanation())
    }
}

/// Run every rule for the development profile, reporting each finding to `report`, in rule
/// order then slot order.
pub fn lint_each(config: &ConfigZone, report: impl FnMut(Finding)) {
    lint_each_in(config, LintProfile::Development, report)
}

/// Run every rule for `profile`, reporting each finding to `report`, in rule order then slot
/// order.
pub fn lint_each_in(config: &ConfigZone, profile: LintProfile, mut report: impl FnMut(Finding)) {
    let sc = &config.slot_config;
    let kc = &config.key_config;
    let is_secret = |slot: u8| sc.get(slot as usize).is_some_and(|s| s.is_secret());

    let mut per_slot = [[false; SLOT_COUNT]; Rule::ALL.len()];
    let mut flag = |rule: Rule, slot: usize| {
        if let Some(cell) = per_slot
            .get_mut(rule as usize)
            .and_then(|row| row.get_mut(slot))
        {
            *cell = true;
        }
    };
    for (i, (s, k)) in sc.iter().zip(kc.iter()).enumerate() {
        if k.private() {
            if !s.is_secret() {
                flag(Rule::PrivateKeyNotSecret, i);
            }
            if s.priv_write_allowed() && !is_secret(s.write_key()) {
                flag(Rule::PrivateKeyClearWrite, i);
            }
            if k.key_type() != KeyType::P256 {
                flag(Rule::PrivateKeyNotP256, i);
            }
            if s.ecdh() && !s.ecdh_to_slot() {
                flag(Rule::EcdhClearOutput, i);
            }
            if s.gen_key_allowed() && !k.lockable() {
                flag(Rule::GenKeyNotLockable, i);
            }
            // Any private key but the device key: external Sign makes it a signing oracle.
            if i != DEVICE_KEY_SLOT && s.ext_sign() {
                flag(Rule::SpareKeyExternalSign, i);
            }
        } else if s.is_secret() && s.encrypt_read() {
            flag(Rule::KeyExportable, i);
        }
        if k.req_auth() {
            flag(Rule::UnsupportedReqAuth, i);
        }
        if s.limited_use() {
            flag(Rule::UnsupportedUsageLimit, i);
        }
        if k.persistent_disable() {
            flag(Rule::UnsupportedSecureBoot, i);
        }
    }
    let s0 = sc[DEVICE_KEY_SLOT];
    let k0 = kc[DEVICE_KEY_SLOT];
    if !(k0.private()
        && k0.key_type() == KeyType::P256
        && k0.pub_info()
        && s0.is_secret()
        && s0.ext_sign())
    {
        flag(Rule::Slot0NotDeviceKey, DEVICE_KEY_SLOT);
    }
    // Once the data zone is locked, GenKey needs WriteConfig bit 1 and PrivWrite bit 2
    // (reference §5.2, §6.4); either lets anyone on the bus replace the identity.
    if k0.private() && (s0.gen_key_allowed() || s0.priv_write_allowed()) {
        flag(Rule::IdentityKeyRegenerable, DEVICE_KEY_SLOT);
    }
    // Verify stored mode needs a public P-256 key; PubInfo=1 on a public-key slot means the key
    // must be validated first (§5.3), which keystamp does not do; ReqAuth is not driven.
    let ka = kc[TRUST_ANCHOR_SLOT];
    if ka.private() || ka.key_type() != KeyType::P256 || ka.pub_info() || ka.req_auth() {
        flag(Rule::TrustAnchorUnusable, TRUST_ANCHOR_SLOT);
    }
    let opts = config.chip_options;
    if opts.io_protection() {
        let slot = opts.io_key() as usize;
        let (s, k) = (sc[slot % SLOT_COUNT], kc[slot % SLOT_COUNT]);
        let replaceable = match s.write_mode() {
            WriteMode::Never => false,
            WriteMode::Encrypt => !is_secret(s.write_key()),
            WriteMode::Always | WriteMode::PubInvalid => !k.lockable(),
        };
        if !s.is_secret()
            || s.encrypt_read()
            || k.private()
            || slot == DEVICE_KEY_SLOT
            || CERT_SLOTS.contains(&slot)
            || replaceable
        {
            flag(Rule::IoKeyExposed, slot);
        }
    }
    let production = matches!(profile, LintProfile::Production);
    for slot in CERT_SLOTS {
        let (s, k) = (sc[slot], kc[slot]);
        if s.is_secret() || k.private() {
            flag(Rule::CertSlotNotReadable, slot);
        }
        match s.write_mode() {
            WriteMode::Never | WriteMode::PubInvalid => flag(Rule::CertSlotNeverUpdatable, slot),
            WriteMode::Encrypt if !is_secret(s.write_key()) => {}
            WriteMode::Encrypt => flag(Rule::CertSlotNeverUpdatable, slot),
            WriteMode::Always if !k.lockable() => flag(Rule::CertSlotNotLockable, slot),
            WriteMode::Always => {}
        }
        // Production: the host locks every certificate slot after verification, so each must
        // be Lockable whatever its write mode.
        if production && !k.lockable() {
            flag(Rule::CertSlotNotLockable, slot);
        }
    }
    for rule in Rule::ALL {
        if let Some(row) = per_slot.get(rule as usize) {
            for (slot, hit) in row.iter().enumerate() {
                if *hit {
                    report(Finding {
                        rule,
                        slot: Some(slot as u8),
                        severity: rule.severity_in(profile),
                    });
                }
            }
        }
        let global = match rule {
            Rule::UnsupportedUsageLimit => {
                config.count_match & 0x01 != 0 || config.use_lock & 0x0F == 0x0A
            }
            Rule::UnsupportedSecureBoot => config.secure_boot & 0x0003 != 0,
            Rule::IoProtection => {
                let o = config.chip_options;
                let (ecdh, kdf) = (o.ecdh_protection(), o.kdf_protection());
                let reserved = ecdh == 0b11 || kdf == 0b11;
                if o.io_protection() {
                    reserved || ecdh == OUTPUT_CLEAR_ALLOWED || kdf == OUTPUT_CLEAR_ALLOWED
                } else {
                    reserved || ecdh != OUTPUT_CLEAR_ALLOWED || kdf != OUTPUT_CLEAR_ALLOWED
                }
            }
            Rule::I2cAddressInvalid => {
                let a = config.i2c_address;
                a & 1 != 0 || !(0x08..=0x77).contains(&(a >> 1))
            }
            Rule::ClockDividerInvalid => config.chip_mode.clock_divider().is_none(),
            Rule::WatchdogLong => config.chip_mode.watchdog_long(),
            Rule::UnsupportedX509Format => config.x509_format.iter().any(|x| x.0 != 0),
            _ => false,
        };
        if global {
            report(Finding {
                rule,
                slot: None,
                severity: rule.severity_in(profile),
            });
        }
    }
}

/// Capacity of a [`LintReport`].
pub const MAX_FINDINGS: usize = 64;

/// Findings collected without allocation (up to [`MAX_FINDINGS`]; `overflow` counts the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintReport {
    findings: [Option<Finding>; MAX_FINDINGS],
    len: usize,
    /// Findings that did not fit.
    pub overflow: usize,
}

impl LintReport {
    /// The findings.
    pub fn findings(&self) -> impl Iterator<Item = Finding> + '_ {
        self.findings.iter().take(self.len).flatten().copied()
    }
    /// Number of findings (including overflow).
    pub fn len(&self) -> usize {
        self.len + self.overflow
    }
    /// No findings at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of error findings stored.
    pub fn errors(&self) -> usize {
        self.findings()
            .filter(|f| f.severity() == Severity::Error)
            .count()
    }
    /// Number of warning findings stored.
    pub fn warnings(&self) -> usize {
        self.findings()
            .filter(|f| f.severity() == Severity::Warning)
            .count()
    }
    /// True if some finding has this rule.
    pub fn has(&self, rule: Rule) -> bool {
        self.findings().any(|f| f.rule == rule)
    }
    /// True if `rule` was reported for `slot`.
    pub fn has_slot(&self, rule: Rule, slot: u8) -> bool {
        self.findings()
            .any(|f| f.rule == rule && f.slot == Some(slot))
    }
}

/// Run every rule for the development profile and collect the findings.
pub fn lint(config: &ConfigZone) -> LintReport {
    lint_in(config, LintProfile::Development)
}

/// Run every rule for `profile` and collect the findings.
pub fn lint_in(config: &ConfigZone, profile: LintProfile) -> LintReport {
    let mut report = LintReport {
        findings: [None; MAX_FINDINGS],
        len: 0,
        overflow: 0,
    };
    lint_each_in(config, profile, |f| {
        match report.findings.get_mut(report.len) {
            Some(cell) => {
                *cell = Some(f);
                report.len += 1;
            }
            None => report.overflow += 1,
        }
    });
    report
}
