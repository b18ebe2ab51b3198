//! End to end over pseudo-terminals for the pre-configured profiles (issue 17): TrustFLEX parts
//! get the project's chain in slots 10–12 and the lockdown locks; Trust&GO parts are registered
//! with Microchip's chain, nothing written; a part whose config differs from TrustFLEX, whose
//! Microchip chain does not verify, or whose serial is registered with another key is refused.

mod common;

use std::path::Path;

use common::{Fixture, device_part, fixture_for, open_port, openssl_verify, run, run_with};
use keystamp::engine::DeviceResult;
use keystamp::project::PartProfile;
use keystamp::registry::ChipSerial;
use keystamp::sim::{SimPart, trust_and_go_certify};
use keystamp_atecc_sim::{NvState, Part, SimChip, SimOptions};

/// The registry's certificates of a chip.
fn certs_of(fx: &Fixture, serial: [u8; 9]) -> Vec<keystamp::registry::CertRecord> {
    fx.registry
        .lock()
        .unwrap()
        .certificates_for(ChipSerial(serial))
        .unwrap()
}

/// `openssl verify` of the device's output chain to the root at `root` (project-relative);
/// returns the device's output directory.
fn verify_outputs(fx: &Fixture, serial: [u8; 9], root: &str) -> std::path::PathBuf {
    let out = fx
        .dir
        .path()
        .join("devices")
        .join(hex::encode_upper(serial));
    openssl_verify(
        &fx.dir.path().join(root),
        &out.join("signer.pem"),
        &out.join("device.pem"),
    );
    out
}

fn state_of(dev: &keystamp::sim::SimDevice) -> NvState {
    dev.chip().lock().state().clone()
}

#[test]
fn trustflex_part_gets_the_project_chain_locked_and_a_rerun_issues_nothing() {
    let fx = fixture_for(PartProfile::TrustFlex);
    let state = fx.dir.path().join("sim");
    let dev = device_part(&state, "tflx0", 71, &SimPart::new(Part::TrustFlex));
    let before = state_of(&dev);
    let report = run(&fx, &dev);
    assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
    let serial = report.chip_serial.unwrap();

    let after = state_of(&dev);
    // Config untouched (it was Microchip's, locked); the key is the one Microchip generated.
    assert_eq!(after.config[..88], before.config[..88]);
    assert_eq!(after.slot(0), before.slot(0));
    // Slots 10, 11, 12 written and slot-locked (SlotLocked bit clear = locked, reference §5.1).
    let slot_locked = u16::from_le_bytes([after.config[88], after.config[89]]);
    for slot in [10, 11, 12] {
        assert_ne!(after.slot(slot), before.slot(slot), "slot {slot} written");
        assert_eq!(slot_locked & (1 << slot), 0, "slot {slot} locked");
    }
    // The certificate names the key the part shipped with.
    let certs = certs_of(&fx, serial);
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].status.as_str(), "verified");
    let shipped_key = {
        let key = p256::SecretKey::from_slice(&before.slot(0)[4..36]).unwrap();
        keystamp::microchip::public_xy(&key.into())
    };
    assert_eq!(certs[0].public_key, shipped_key);

    verify_outputs(&fx, serial, "ca/root.pem");

    let again = run(&fx, &dev);
    assert_eq!(again.result, DeviceResult::AlreadyProvisioned, "{again:?}");
    let n = certs_of(&fx, serial).len();
    assert_eq!(n, 1, "a rerun must not issue a second certificate");
}

/// A TrustFLEX-like part with one config byte changed, or a Trust&GO part on a TrustFLEX
/// project: refused at the config step, the chip byte for byte as before, the byte named.
#[test]
fn a_part_differing_from_the_trustflex_layout_is_refused_before_any_write() {
    let fx = fixture_for(PartProfile::TrustFlex);
    let state = fx.dir.path().join("sim");
    std::fs::create_dir_all(&state).unwrap();
    // Slot 10's SlotConfig high byte (config byte 41): WriteConfig Always (0x0F) → Never (0x8F).
    let mut chip = SimChip::new_part(Part::TrustFlex, SimOptions::default().with_seed(72));
    chip.factory_program(|nv| nv.config[41] = 0x8F);
    chip.save(state.join("odd.chip.json")).unwrap();
    let dev = device_part(&state, "odd", 72, &SimPart::new(Part::TrustFlex));
    let before = state_of(&dev);
    let report = run(&fx, &dev);
    let DeviceResult::Failed(message) = &report.result else {
        panic!("{report:?}")
    };
    assert!(
        message.starts_with("config: not a TrustFLEX part"),
        "{message}"
    );
    assert!(
        message.contains("byte 41 is 8F, TrustFLEX has 0F"),
        "{message}"
    );
    assert_eq!(state_of(&dev), before, "nothing written");
    let serial = report.chip_serial.unwrap();
    assert!(certs_of(&fx, serial).is_empty());

    // A Trust&GO part differs in slots 10–12 (Never-writable, other key types).
    let tng = device_part(&state, "tng", 73, &SimPart::new(Part::TrustAndGo));
    let before = state_of(&tng);
    let report = run(&fx, &tng);
    let DeviceResult::Failed(message) = &report.result else {
        panic!("{report:?}")
    };
    assert!(
        message.contains("byte 41 is 8F, TrustFLEX has 0F"),
        "{message}"
    );
    assert_eq!(state_of(&tng), before, "nothing written");

    // A blank chip is not a pre-configured part: refused, nothing written.
    let blank = device_part(&state, "blank", 74, &SimPart::new(Part::Blank));
    let before = state_of(&blank);
    let report = run(&fx, &blank);
    let DeviceResult::Failed(message) = &report.result else {
        panic!("{report:?}")
    };
    assert!(message.contains("not both locked"), "{message}");
    assert_eq!(state_of(&blank), before, "nothing written");
}

#[test]
fn trustandgo_part_is_registered_with_its_microchip_chain_and_nothing_written() {
    trustandgo_part_registered(Part::TrustAndGo, 81);
}

/// The ATECC608B-TNGTLS layout (template 3): CN `sn<serial>` and the part's EUI-48 from slot 5
/// in the subject alternative name.
#[test]
fn trustandgo_608b_part_is_registered_with_its_eui48_certificate() {
    trustandgo_part_registered(Part::TrustAndGo608B, 83);
}

fn trustandgo_part_registered(part: Part, seed: u64) {
    let fx = fixture_for(PartProfile::TrustAndGo);
    let state = fx.dir.path().join("sim");
    let dev = device_part(&state, "tng0", seed, &SimPart::new(part));
    let before = state_of(&dev);
    let report = run(&fx, &dev);
    assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
    assert_eq!(state_of(&dev), before, "a Trust&GO part is never written");
    let serial = report.chip_serial.unwrap();
    let serial_hex = hex::encode_upper(serial);
    // Microchip's device CN: template 2 `<serial> ATECC`, template 3 `sn<serial>`.
    let cn = match part {
        Part::TrustAndGo => format!("{serial_hex} ATECC"),
        _ => format!("sn{serial_hex}"),
    };
    assert_eq!(report.cn.as_deref(), Some(cn.as_str()));
    let certs = certs_of(&fx, serial);
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].status.as_str(), "verified");

    // The chain verifies to the (test) Microchip root with OpenSSL.
    let out = verify_outputs(&fx, serial, "microchip-root.pem");
    let device_pem = std::fs::read_to_string(out.join("device.pem")).unwrap();
    let der = pem_der(&device_pem);
    assert_eq!(certs[0].der, der);
    if part == Part::TrustAndGo608B {
        // The EUI-48 the part holds in slot 5 is named in the certificate.
        let eui = before.slot(5)[..12].to_vec();
        let mut name = b"eui48_".to_vec();
        name.extend_from_slice(&eui);
        assert!(
            der.windows(name.len()).any(|w| w == name),
            "EUI-48 in the certificate"
        );
    }

    let again = run(&fx, &dev);
    assert_eq!(again.result, DeviceResult::AlreadyProvisioned, "{again:?}");
    assert_eq!(certs_of(&fx, serial).len(), 1);
    // `keystamp verify`: the same chain, the key proven again, the registry's certificate.
    let verified = common::station(&fx, &fx.signer, &dev).verify_only();
    assert_eq!(
        verified.result,
        DeviceResult::AlreadyProvisioned,
        "{verified:?}"
    );
    assert_eq!(
        verified.cert_serial.as_deref(),
        Some(certs[0].serial.as_str())
    );
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64ct::{Base64, Encoding};
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    Base64::decode_vec(&body).unwrap()
}

/// Genuine-chip check: a part whose Microchip chain comes from another "Microchip" CA (a root
/// with the same name, another key) is refused and nothing is registered.
#[test]
fn a_trustandgo_part_from_another_root_is_refused_as_not_genuine() {
    let fx = fixture_for(PartProfile::TrustAndGo);
    let state = fx.dir.path().join("sim");
    let forged = SimPart {
        part: Part::TrustAndGo,
        microchip_ca: "a counterfeiter's Microchip look-alike".into(),
    };
    let dev = device_part(&state, "fake", 82, &forged);
    let report = run(&fx, &dev);
    let DeviceResult::Failed(message) = &report.result else {
        panic!("{report:?}")
    };
    assert!(message.contains("not a genuine part"), "{message}");
    let serial = report.chip_serial.unwrap();
    assert!(certs_of(&fx, serial).is_empty());
}

/// Clone check: a second part with the serial of a registered one and another key (and a
/// chain that verifies: Microchip's CA certified it) is a clone conflict, for both profiles.
#[test]
fn a_serial_registered_with_another_key_is_a_clone_conflict() {
    for (profile, part) in [
        (PartProfile::TrustAndGo, Part::TrustAndGo),
        (PartProfile::TrustFlex, Part::TrustFlex),
    ] {
        let fx = fixture_for(profile);
        let state = fx.dir.path().join("sim");
        let original = device_part(&state, "original", 91, &SimPart::new(part));
        let report = run(&fx, &original);
        assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
        let config = state_of(&original).config;

        // Same serial, another key.
        let mut clone = SimChip::new_part(part, SimOptions::default().with_seed(92));
        clone.factory_program(|nv| {
            nv.config[0..4].copy_from_slice(&config[0..4]);
            nv.config[8..13].copy_from_slice(&config[8..13]);
        });
        if part == Part::TrustAndGo {
            trust_and_go_certify(&mut clone, keystamp::microchip::DEFAULT_TEST_CA_LABEL).unwrap();
        }
        clone.save(state.join("clone.chip.json")).unwrap();
        let dev = device_part(&state, "clone", 92, &SimPart::new(part));
        let before = state_of(&dev);
        let port = open_port(&dev);
        let report = run_with(&fx, &dev, port, &|_, _| {});
        let DeviceResult::Failed(message) = &report.result else {
            panic!("{profile}: {report:?}")
        };
        assert!(message.contains("clone conflict"), "{profile}: {message}");
        assert_eq!(state_of(&dev), before, "{profile}: nothing written");
        assert_eq!(
            certs_of(&fx, report.chip_serial.unwrap()).len(),
            1,
            "{profile}: only the original's certificate"
        );
    }
}

/// The whole thing through the binary: a project switched to `trustandgo` (root: the test root
/// `provision --simulate --part trustandgo` writes) or `trustflex`, two simulated parts
/// provisioned, a rerun verifying them, and `registry export` listing them like any device.
#[test]
fn the_cli_provisions_and_exports_preconfigured_parts() {
    use common::{keystamp, ok, run_cli};
    for (profile, part, extra) in [
        (
            "trustandgo",
            "trustandgo",
            "[microchip]\nroot = \"sim/microchip-test-root.pem\"\n",
        ),
        ("trustflex", "trustflex", ""),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("proj");
        ok(run_cli(
            keystamp(&dir).args(["init", "--insecure-no-passphrase"]),
        ));
        let toml = dir.join("keystamp.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        let text = text.replace("profile = \"custom\"", &format!("profile = \"{profile}\""));
        let text = text.replace("[microchip]\n", "");
        std::fs::write(&toml, format!("{text}\n{extra}")).unwrap();
        let provision = |dir: &Path| {
            ok(run_cli(keystamp(dir).args([
                "provision",
                "--simulate",
                "2",
                "--part",
                part,
                "--link",
                "in-process",
                "--timing",
                "instant",
                "--json",
            ])))
        };
        let out = provision(&dir);
        assert_eq!(
            out.matches("\"result\": \"provisioned\"").count(),
            2,
            "{profile}: {out}"
        );
        let again = provision(&dir);
        assert_eq!(
            again.matches("\"result\": \"verified\"").count(),
            2,
            "{profile}: {again}"
        );
        let csv = ok(run_cli(
            keystamp(&dir).args(["registry", "export", "--format", "csv"]),
        ));
        assert_eq!(
            csv.lines().count(),
            3,
            "{profile}: header and two devices: {csv}"
        );
        if profile == "trustandgo" {
            assert_eq!(csv.matches(" ATECC").count(), 2, "Microchip's CNs: {csv}");
        }
        let root = match profile {
            "trustandgo" => dir.join("sim/microchip-test-root.pem"),
            _ => dir.join("ca/root.pem"),
        };
        exported_chains_verify(&dir, &root, profile);
        // The registry's signed record chain holds the registered Microchip certificates too.
        ok(run_cli(keystamp(&dir).args(["registry", "audit"])));
    }
}

/// `azure-dps` and `manifest` exports of the project at `dir` carry each device's real chain:
/// the DPS group's root is `root` (for Trust&Go the test Microchip root, not the project's CA)
/// and every manifest `x5c` (device, issuer) verifies to it with `openssl verify`.
fn exported_chains_verify(dir: &Path, root: &Path, profile: &str) {
    use base64ct::{Base64, Base64UrlUnpadded, Encoding};
    use common::{keystamp, ok, run_cli};
    use serde_json::Value;
    let export = |format: &str| -> Value {
        let text = ok(run_cli(
            keystamp(dir).args(["registry", "export", "--format", format]),
        ));
        serde_json::from_str(&text).unwrap()
    };
    let dps = export("azure-dps");
    let group_root = &dps["enrollmentGroup"]["attestation"]["x509"]["signingCertificates"]["primary"]
        ["certificate"];
    let root_pem = std::fs::read_to_string(root).unwrap();
    assert!(
        pem_der(group_root.as_str().unwrap()) == pem_der(&root_pem),
        "{profile}: the DPS group's root is not {}",
        root.display()
    );
    let manifest = export("manifest");
    let entries = manifest.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{profile}");
    for (i, entry) in entries.iter().enumerate() {
        let payload = Base64UrlUnpadded::decode_vec(entry["payload"].as_str().unwrap()).unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        let x5c = payload["publicKeySet"]["keys"][0]["x5c"]
            .as_array()
            .unwrap();
        assert_eq!(x5c.len(), 2, "{profile}: device and issuer");
        let pem = |n: usize, name: &str| {
            let der = Base64::decode_vec(x5c[n].as_str().unwrap()).unwrap();
            let path = dir.join(format!("x5c-{i}-{name}.pem"));
            std::fs::write(&path, keystamp::pki::ca::der_to_pem(&der)).unwrap();
            path
        };
        let device = pem(0, "device");
        let issuer = pem(1, "issuer");
        openssl_verify(root, &issuer, &device);
    }
}
