//! The `trustandgo` profile: ATECC608A/B-TNGTLS parts carry Microchip's own certificate chain
//! (device certificate compressed in slot 10, signer public key in slot 11, signer certificate
//! compressed in slot 12; reference `atecc608.md` §8). The station writes nothing to the chip:
//!
//! 1. probe — Hello, the registry's admission rules (lots, mode) as for every device.
//! 2. config — the part must be config- and data-locked; OTP bytes 0–7 name the certificate
//!    layout ([`MicrochipDef::for_otp_code`]).
//! 3. key — the device key (GetPublicKey, slot 0 or the layout's key slot), point-checked and
//!    proven (IdentityProof), the proof recorded; then the clone check (`profile.rs`).
//! 4. verify — the signer and device certificates are rebuilt from the chip's slots and config
//!    with keystamp's Microchip definitions ([`crate::microchip`]); the signer's signature must
//!    verify with the configured Microchip root key and the device's with the signer key, and the
//!    device certificate must carry the proven key. A part whose chain does not verify is not
//!    genuine and is refused.
//! 5. issue (register) — the Microchip device certificate is recorded as the device's
//!    certificate (write-ahead as any issuance, then written and verified), the Microchip signer
//!    certificate once per signer; `devices/<serial>/*.pem` are written. A rerun finds the same
//!    certificate and registers nothing new.

use keystamp_certdef::split::DeviceImage;
use keystamp_certdef::{CertDef, CertView, DeviceLoc, DeviceZone, rebuild};
use keystamp_wire::{Request, Response};

use super::profile::ProfileFailure;
use super::{
    CertKind, ChipSerial, DeviceReport, DeviceResult, Failure, FailureKind, IssueOutcome,
    IssueRequest, Outcome, Port, Station, Step, common_name, rfc3339, verify_prehash,
};
use crate::microchip::MicrochipDef;
use crate::project::PartProfile;

/// The Microchip root a project trusts for Trust&GO parts.
#[derive(Debug, Clone)]
pub struct MicrochipRoot {
    /// Its public key X‖Y.
    pub public_key: [u8; 64],
    /// Its certificate (DER).
    pub der: Vec<u8>,
}

/// Microchip's chain as rebuilt from a part and verified.
struct TrustAndGoChain {
    device_der: Vec<u8>,
    signer_der: Vec<u8>,
    signer_key: [u8; 64],
    public_key: [u8; 64],
    device_buf: keystamp_certdef::CertDefBuf,
    signer_buf: keystamp_certdef::CertDefBuf,
}

fn profile(step: Step, f: ProfileFailure) -> Failure {
    Failure::new(step, FailureKind::Profile(f))
}

/// Verifies `der`'s signature (as `def` locates it) with `issuer`.
fn signed_by(def: &CertDef<'_>, der: &[u8], issuer: &[u8; 64]) -> bool {
    let view = CertView::new(def, der);
    let (Ok(digest), Ok(sig)) = (view.tbs_digest(), view.signature()) else {
        return false;
    };
    let (mut r, mut s) = ([0u8; 32], [0u8; 32]);
    r.copy_from_slice(&sig[..32]);
    s.copy_from_slice(&sig[32..]);
    verify_prehash(issuer, &digest, &r, &s).is_ok()
}

impl<'a, P: Port> Station<'a, P> {
    /// Reads `loc.count` bytes of a data slot; the device's answer must be exactly that long.
    fn read_data(&mut self, step: Step, loc: &DeviceLoc) -> Result<Vec<u8>, Failure> {
        let slot = u8::try_from(loc.slot)
            .map_err(|_| Failure::new(step, FailureKind::KeySlotOutOfRange(loc.slot)))?;
        let request = Request::ReadSlot {
            slot,
            offset: loc.offset,
            len: loc.count,
        };
        match self.call(step, &request)? {
            Response::Data(d) if d.len() == usize::from(loc.count) => Ok(d.to_vec()),
            Response::Data(d) => Err(Failure::new(
                step,
                FailureKind::DeviceCount {
                    what: "slot bytes read",
                    got: d.len() as u64,
                    max: u64::from(loc.count),
                },
            )),
            other => Err(super::Failure::unexpected(step, "Data", &other)),
        }
    }

    /// Puts what `def` reads from the data zone into `image`.
    fn load_image(&mut self, def: &CertDef<'_>, image: &mut DeviceImage) -> Result<(), Failure> {
        let mut locs = vec![def.comp_cert_dev_loc, def.public_key_dev_loc];
        locs.extend(def.cert_elements.iter().map(|e| e.device_loc));
        for loc in locs {
            if loc.zone == DeviceZone::Data && !loc.is_genkey && loc.is_present() {
                let bytes = self.read_data(Step::Verify, &loc)?;
                image
                    .write(&loc, &bytes)
                    .map_err(|e| Failure::new(Step::Verify, FailureKind::Definition(e)))?;
            }
        }
        Ok(())
    }

    /// The project's Microchip root and the device's Hello (its serial noted in the report).
    fn trust_and_go_hello(
        &mut self,
        report: &mut DeviceReport,
    ) -> Result<(&'a MicrochipRoot, keystamp_wire::HelloInfo), Failure> {
        let root = self
            .material
            .microchip_root
            .as_ref()
            .ok_or_else(|| profile(Step::Probe, ProfileFailure::NoMicrochipRoot))?;
        self.step(Step::Probe);
        let hello = self.hello()?;
        self.chip = Some(ChipSerial(hello.chip.serial));
        report.chip_serial = Some(hello.chip.serial);
        Ok((root, hello))
    }

    /// The whole `trustandgo` flow (module docs). Writes nothing to the chip.
    pub(super) fn provision_trust_and_go(
        &mut self,
        report: &mut DeviceReport,
    ) -> Result<DeviceResult, Failure> {
        let m = self.material;
        // 1. probe
        let (root, hello) = self.trust_and_go_hello(report)?;
        let serial = hello.chip.serial;
        if let Some((feature, reported)) = m.platform.first_unmet(&hello.platform) {
            return Err(Failure::new(
                Step::Probe,
                FailureKind::PlatformRequirement { feature, reported },
            ));
        }
        {
            let reg = self.registry(Step::Probe)?;
            reg.upsert_device(ChipSerial(serial))
                .map_err(|e| Failure::new(Step::Probe, e.into()))?;
            reg.admit(ChipSerial(serial), false)
                .map_err(|e| Failure::new(Step::Probe, e.into()))?;
        }
        self.audit(
            Step::Probe,
            Outcome::Ok,
            &format!("revision {}", hex::encode(hello.chip.revision)),
        )?;

        let TrustAndGoChain {
            device_der,
            signer_der,
            signer_key,
            public_key,
            device_buf,
            signer_buf,
        } = self.trust_and_go_chain(&hello, root, true)?;
        let device_def = device_buf
            .as_def()
            .map_err(|e| Failure::new(Step::Issue, FailureKind::Definition(e)))?;
        let signer_def = signer_buf
            .as_def()
            .map_err(|e| Failure::new(Step::Issue, FailureKind::Definition(e)))?;

        // 5. register (write-ahead, then written and verified: the chip already holds it).
        self.step(Step::Issue);
        let view = CertView::new(&device_def, &device_der);
        let (Ok(cert_serial), Ok(not_before), Ok(not_after)) =
            (view.cert_sn(), view.issue_date(), view.expire_date())
        else {
            return Err(profile(
                Step::Verify,
                ProfileFailure::NotGenuine { which: "device" },
            ));
        };
        let cert_serial = cert_serial.to_vec();
        let cn = common_name(&device_der).unwrap_or_default();
        report.cn = Some(cn.clone());
        report.cert_serial = Some(hex::encode_upper(&cert_serial));
        let outcome = self
            .registry(Step::Issue)?
            .begin_issue(&IssueRequest {
                kind: CertKind::Device,
                chip_serial: Some(ChipSerial(serial)),
                serial: &cert_serial,
                public_key: &public_key,
                subject_cn: &cn,
                der: &device_der,
                not_before: &rfc3339(&not_before),
                not_after: &rfc3339(&not_after),
            })
            .map_err(|e| Failure::new(Step::Issue, e.into()))?;
        let already = match &outcome {
            IssueOutcome::Reused(rec) => rec.status == crate::registry::CertStatus::Verified,
            IssueOutcome::New(_) => false,
        };
        report.issued = false;
        if !already {
            self.register_signer(&signer_def, &signer_der, &signer_key)?;
            let mut reg = self.registry(Step::Issue)?;
            let hex_serial = hex::encode_upper(&cert_serial);
            let rec = reg
                .certificate(&hex_serial)
                .map_err(|e| Failure::new(Step::Issue, e.into()))?;
            if rec.is_some_and(|r| r.status == crate::registry::CertStatus::Pending) {
                reg.mark_written(&hex_serial)
                    .map_err(|e| Failure::new(Step::Issue, e.into()))?;
            }
            reg.mark_verified(&hex_serial)
                .map_err(|e| Failure::new(Step::Issue, e.into()))?;
            drop(reg);
            self.audit(
                Step::Issue,
                Outcome::Ok,
                &format!("registered Microchip certificate {hex_serial}"),
            )?;
        } else {
            self.audit(
                Step::Issue,
                Outcome::Skipped,
                "Microchip certificate already registered",
            )?;
        }
        crate::outputs::write_device_outputs(
            &m.output_dir,
            ChipSerial(serial),
            &device_der,
            &signer_der,
        )
        .map_err(|e| Failure::new(Step::Done, e.into()))?;
        let _ = self.call(Step::Done, &Request::Finish { reboot: false });
        Ok(if already {
            DeviceResult::AlreadyProvisioned
        } else {
            DeviceResult::Provisioned
        })
    }

    /// Steps 2–4 of the flow (module docs): the part's locks and layout, its key proven, and
    /// Microchip's chain rebuilt from the chip and verified to `root`. With `record`, the proof
    /// is recorded, the clone check runs and each step is audited (provisioning); without, it
    /// only checks (`keystamp verify`).
    fn trust_and_go_chain(
        &mut self,
        hello: &keystamp_wire::HelloInfo,
        root: &MicrochipRoot,
        record: bool,
    ) -> Result<TrustAndGoChain, Failure> {
        // 2. config: locked as shipped; the OTP code names the layout.
        self.step(Step::Config);
        if !(hello.chip.config_locked && hello.chip.data_locked) {
            return Err(profile(
                Step::Config,
                ProfileFailure::NotPreconfigured {
                    profile: PartProfile::TrustAndGo,
                },
            ));
        }
        let config = self.read_config(Step::Config)?;
        let code = match self.call(Step::Config, &Request::ReadOtp { offset: 0, len: 8 })? {
            Response::Data(d) => d.to_vec(),
            other => return Err(Failure::unexpected(Step::Config, "Data", &other)),
        };
        let device_layout = MicrochipDef::for_otp_code(&code).ok_or_else(|| {
            profile(
                Step::Config,
                ProfileFailure::UnknownPartCode(crate::sanitize::device_text(
                    &String::from_utf8_lossy(&code),
                )),
            )
        })?;
        let definition = |d: MicrochipDef| {
            d.definition()
                .map_err(|e| profile(Step::Config, ProfileFailure::Layout(e)))
        };
        let device_buf = definition(device_layout)?;
        let signer_buf = definition(device_layout.signer())?;
        let device_def = device_buf
            .as_def()
            .map_err(|e| Failure::new(Step::Config, FailureKind::Definition(e)))?;
        let signer_def = signer_buf
            .as_def()
            .map_err(|e| Failure::new(Step::Config, FailureKind::Definition(e)))?;
        if record {
            self.audit(
                Step::Config,
                Outcome::Skipped,
                &format!("Trust&GO part, layout {}", device_layout.name()),
            )?;
        }

        // 3. key: proven before anything is rebuilt or recorded for it.
        self.step(Step::Key);
        let key_slot = u8::try_from(device_def.public_key_dev_loc.slot).map_err(|_| {
            Failure::new(
                Step::Key,
                FailureKind::KeySlotOutOfRange(device_def.public_key_dev_loc.slot),
            )
        })?;
        let public_key = self.public_key(Step::Key, Request::GetPublicKey { slot: key_slot })?;
        let proof = self.prove_identity(Step::Key, &public_key)?;
        self.registry(Step::Key)?
            .record_proof(&proof)
            .map_err(|e| Failure::new(Step::Key, e.into()))?;
        self.audit(
            Step::Key,
            Outcome::Ok,
            "identity proof verified and recorded",
        )?;
        self.refuse_profile_clone(Step::Key, &public_key)?;

        // 4. verify: rebuild Microchip's chain from the chip and check it to the root.
        self.step(Step::Verify);
        let mut image = DeviceImage {
            config,
            ..DeviceImage::default()
        };
        if let Some(k) = image.public_keys.get_mut(usize::from(key_slot)) {
            *k = Some(public_key);
        }
        self.load_image(&signer_def, &mut image)?;
        self.load_image(&device_def, &mut image)?;
        let rebuilt = |def: &CertDef<'_>, ca: &[u8; 64], which: &'static str| {
            let mut buf = vec![0u8; super::MAX_DEVICE_CERT];
            let n = rebuild(def, &image, Some(ca), &mut buf)
                .map_err(|error| profile(Step::Verify, ProfileFailure::Rebuild { which, error }))?;
            buf.truncate(n);
            Ok::<_, Failure>(buf)
        };
        let signer_der = rebuilt(&signer_def, &root.public_key, "signer")?;
        let signer_key = CertView::new(&signer_def, &signer_der)
            .public_key()
            .map_err(|error| {
                profile(
                    Step::Verify,
                    ProfileFailure::Rebuild {
                        which: "signer",
                        error,
                    },
                )
            })?;
        if !signed_by(&signer_def, &signer_der, &root.public_key) {
            return Err(profile(
                Step::Verify,
                ProfileFailure::NotGenuine { which: "signer" },
            ));
        }
        let device_der = rebuilt(&device_def, &signer_key, "device")?;
        if !signed_by(&device_def, &device_der, &signer_key) {
            return Err(profile(
                Step::Verify,
                ProfileFailure::NotGenuine { which: "device" },
            ));
        }
        if super::certified_key(&device_der) != Some(public_key) {
            return Err(Failure::new(Step::Verify, FailureKind::KeyNotProven));
        }
        if record {
            self.audit(
                Step::Verify,
                Outcome::Ok,
                "Microchip chain rebuilt and verified to the configured root; identity proof \
                 verified",
            )?;
        }
        Ok(TrustAndGoChain {
            device_der,
            signer_der,
            signer_key,
            public_key,
            device_buf,
            signer_buf,
        })
    }

    /// `keystamp verify` on a Trust&GO part: the chain and key checked as when it was
    /// registered, and the certificate must be the one the registry holds for the chip.
    pub(super) fn check_trust_and_go(&mut self, report: &mut DeviceReport) -> Result<(), Failure> {
        let (root, hello) = self.trust_and_go_hello(report)?;
        let serial = hello.chip.serial;
        let chain = self.trust_and_go_chain(&hello, root, false)?;
        report.cn = common_name(&chain.device_der).map(|cn| crate::sanitize::device_text(&cn));
        let recorded = self
            .registry(Step::Verify)?
            .live_certificate(ChipSerial(serial))
            .map_err(|e| Failure::new(Step::Verify, e.into()))?;
        match recorded {
            Some(rec) if rec.der == chain.device_der => {
                report.cert_serial = Some(rec.serial);
            }
            Some(rec) => {
                return Err(Failure::new(
                    Step::Verify,
                    FailureKind::RegistryMismatch {
                        registry_serial: rec.serial,
                    },
                ));
            }
            None => return Err(Failure::new(Step::Verify, FailureKind::NotInRegistry)),
        }
        let _ = self.call(Step::Done, &Request::Finish { reboot: false });
        Ok(())
    }

    /// Records a Microchip signer certificate once (many parts share one signer).
    fn register_signer(
        &self,
        def: &CertDef<'_>,
        der: &[u8],
        public_key: &[u8; 64],
    ) -> Result<(), Failure> {
        let view = CertView::new(def, der);
        let (Ok(serial), Ok(not_before), Ok(not_after)) =
            (view.cert_sn(), view.issue_date(), view.expire_date())
        else {
            return Err(profile(
                Step::Issue,
                ProfileFailure::NotGenuine { which: "signer" },
            ));
        };
        let mut reg = self.registry(Step::Issue)?;
        let hex_serial = hex::encode_upper(serial);
        if reg
            .certificate(&hex_serial)
            .map_err(|e| Failure::new(Step::Issue, e.into()))?
            .is_some()
        {
            return Ok(());
        }
        let cn = crate::engine::common_name(der).unwrap_or_default();
        reg.begin_issue(&IssueRequest {
            kind: CertKind::Signer,
            chip_serial: None,
            serial,
            public_key,
            subject_cn: &cn,
            der,
            not_before: &rfc3339(&not_before),
            not_after: &rfc3339(&not_after),
        })
        .map_err(|e| Failure::new(Step::Issue, e.into()))?;
        Ok(())
    }
}
