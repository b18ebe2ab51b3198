//! Attack suite (issue 13): a device that `keystamp provision` reported verified, attacked over
//! its UART (the simulated device's pty) with every request the protocol defines and hostile
//! arguments, then reset and attacked again. Afterwards the key, the certificate slots, the trust
//! anchor and the blob are unchanged, `keystamp verify` passes with the same certificate, and no
//! answer was a signature over a digest the attacker chose.

mod common;

use common::{device, fixture, link_to, run, station};

use keystamp::engine::DeviceResult;
use keystamp::link::{Link, LinkError};
use keystamp_agent::auth::identity_digest;
use keystamp_atecc_sim::{FaultConfig, Part};
use keystamp_wire::{CertKind, ErrorCode, Request, Response, Signature};
use p256::ecdsa::signature::hazmat::PrehashVerifier;

/// What must not change.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    key_slot: Vec<u8>,
    public_key: Response,
    slots: Vec<Vec<u8>>,
    io_key_slot: Vec<u8>,
    blob_file: Vec<u8>,
    def_blob: Option<keystamp_wire::DefBlobId>,
}

fn snapshot(
    dev: &keystamp::sim::SimDevice,
    flash: &std::path::Path,
    link: &mut Link<impl keystamp::link::Port>,
    io_slot: Option<u8>,
) -> Identity {
    let public_key = link.call(&Request::GetPublicKey { slot: 0 }).unwrap();
    let Response::Hello(h) = link.call(&Request::Hello).unwrap() else {
        panic!()
    };
    let chip = dev.chip().lock();
    let state = chip.state();
    Identity {
        key_slot: state.slot(0).to_vec(),
        public_key,
        slots: [10, 11, 12]
            .iter()
            .map(|&s| state.slot(s).to_vec())
            .collect(),
        // The IO-protection key slot, when the profile enables it (plain data otherwise).
        io_key_slot: io_slot.map_or_else(Vec::new, |s| state.slot(usize::from(s)).to_vec()),
        blob_file: std::fs::read(flash).unwrap(),
        def_blob: h.def_blob,
    }
}

fn sig(r: u8, s: u8) -> Signature {
    Signature {
        r: [r; 32],
        s: [s; 32],
    }
}

/// Every request of the protocol, with hostile arguments: every slot, odd offsets and lengths,
/// crafted blobs and signatures, chosen nonces.
fn hostile_requests(real_blob: &[u8], real_digest: [u8; 32]) -> Vec<Request> {
    let chunk = |b: &[u8]| keystamp_wire::Chunk::from_slice(b).unwrap();
    let mut v = vec![
        Request::Hello,
        Request::ReadConfig,
        Request::LockConfig { crc: 0 },
        Request::LockConfig { crc: 0xFFFF },
        Request::LockData { crc: None },
        Request::LockData { crc: Some(0) },
        Request::RebuildChain,
        Request::Random,
        Request::SetBaud { baud: 921_600 },
        Request::MaintenanceBegin,
        Request::MaintenanceAuth {
            signature: sig(1, 1),
        },
        Request::MaintenanceBegin,
        Request::MaintenanceAuth {
            signature: sig(0, 0),
        },
        Request::ReadOtp { offset: 0, len: 64 },
        Request::WriteOtp {
            offset: 0,
            data: heapless::Vec::from_slice(&[0xA5; 64]).unwrap(),
        },
        Request::ReadCert {
            cert: CertKind::Device,
            offset: 60_000,
            len: 512,
        },
        Request::ReadCert {
            cert: CertKind::Signer,
            offset: 0,
            len: 512,
        },
    ];
    for offset in [0u8, 16, 20, 84, 86, 87, 88, 90, 96, 112] {
        let len = (128 - usize::from(offset)).min(16);
        v.push(Request::WriteConfig {
            offset,
            data: heapless::Vec::from_slice(&vec![0u8; len]).unwrap(),
        });
    }
    for slot in 0..16u8 {
        v.push(Request::GenKey { slot });
        v.push(Request::GetPublicKey { slot });
        v.push(Request::LockSlot { slot });
        for (offset, len) in [(0u16, 32usize), (32, 4), (64, 8)] {
            v.push(Request::WriteSlot {
                slot,
                offset,
                data: chunk(&vec![0x5A; len]),
            });
        }
        v.push(Request::ReadSlot {
            slot,
            offset: 0,
            len: 32,
        });
    }
    // Crafted blobs: unsigned, signed by nobody the chip knows, the real blob altered under the
    // real digest's name, the real blob with a forged signature.
    let mut altered = real_blob.to_vec();
    altered[20] ^= 1;
    let altered_digest = keystamp_agent::store::sha256(&altered);
    for (bytes, digest, signature) in [
        (real_blob.to_vec(), real_digest, sig(0, 0)),
        (real_blob.to_vec(), real_digest, sig(7, 9)),
        (altered.clone(), altered_digest, sig(7, 9)),
        (altered, real_digest, sig(7, 9)),
        (
            vec![0u8; 64],
            keystamp_agent::store::sha256(&[0u8; 64]),
            sig(3, 3),
        ),
    ] {
        let total_len = bytes.len() as u32;
        for (i, part) in bytes.chunks(480).enumerate() {
            v.push(Request::StoreDefBlob {
                total_len,
                digest,
                signature,
                offset: (i * 480) as u32,
                data: chunk(part),
            });
        }
    }
    // A replacement IO-protection key (the flash record must stay what the station wrote).
    v.push(Request::StoreIoKey {
        key: keystamp_wire::IoKey([0x77; 32]),
    });
    // Chosen "nonces" an attacker would like signed as digests.
    for n in [[0u8; 32], [0xFF; 32], real_digest] {
        v.push(Request::IdentityProof { host_nonce: n });
    }
    v.push(Request::Finish { reboot: false });
    v
}

/// Sends every hostile request; checks each answer. Returns how many were refused as
/// `LockedDown`.
fn attack(
    link: &mut Link<impl keystamp::link::Port>,
    requests: &[Request],
    device_key: &[u8; 64],
) -> usize {
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(device_key);
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let mut locked_down = 0;
    for req in requests {
        match (req, link.call(req)) {
            (_, Err(LinkError::Device { error, .. })) => {
                if error.code == ErrorCode::LockedDown {
                    locked_down += 1;
                }
                // Every write, generation, lock and blob store is refused, whatever the reason.
            }
            (Request::IdentityProof { host_nonce }, Ok(Response::IdentityProof(p))) => {
                let s = p256::ecdsa::Signature::from_scalars(p.signature.r, p.signature.s).unwrap();
                // The only thing signed is the labelled digest with the device's own nonce...
                key.verify_prehash(&identity_digest(host_nonce, &p.device_nonce), &s)
                    .expect("identity proof over the labelled digest");
                // ...never the attacker's bytes taken as a digest.
                assert!(key.verify_prehash(host_nonce, &s).is_err());
                assert_ne!(&p.device_nonce, host_nonce);
            }
            (
                Request::GenKey { .. }
                | Request::WriteSlot { .. }
                | Request::WriteConfig { .. }
                | Request::WriteOtp { .. }
                | Request::LockConfig { .. }
                | Request::LockData { .. }
                | Request::LockSlot { .. }
                | Request::StoreIoKey { .. }
                | Request::MaintenanceAuth { .. },
                Ok(answer),
            ) => panic!("{} was served on a locked device: {answer:?}", req.name()),
            (Request::StoreDefBlob { .. }, Ok(Response::DefBlob(p))) => {
                assert!(!p.complete, "a crafted blob was stored: {req:?}");
            }
            (_, Ok(Response::Error(e))) => panic!("error answer not mapped: {e:?}"),
            (_, Ok(_)) => {}
            (_, Err(e)) => panic!("{}: link failed: {e}", req.name()),
        }
    }
    locked_down
}

/// GenKey, Write, PrivWrite and Lock on every slot, config writes and zone locks, straight to
/// the emulated chip through the driver (every refusal is expected; none may change the key,
/// slots 10–12 or the blob).
fn direct_i2c_attack(dev: &keystamp::sim::SimDevice) {
    use keystamp_atecc::Zone;
    let mut chip = keystamp_atecc::Atecc::new(dev.chip().clone(), keystamp_atecc_sim::StdDelay);
    // Pre-configured parts answer at their own address.
    chip.set_address(dev.chip().lock().address());
    for slot in 0..16u8 {
        let _ = chip.genkey(slot);
        let _ = chip.write_bytes(Zone::Data, slot, 0, &[0x5A; 32]);
        let _ = chip.priv_write(slot, &[0x11; 32]);
        let _ = chip.lock_slot(slot);
    }
    let _ = chip.write_config_zone(&keystamp_atecc::DEFAULT_CONFIG);
    let _ = chip.lock_config(None);
    let _ = chip.lock_data(None);
    let _ = chip.idle();
}

#[test]
fn a_provisioned_device_survives_every_request_before_and_after_a_reset() {
    let fx = fixture();
    let (dev, flash) = provisioned_and_attacked(&fx, 41, Part::Blank);
    // IO protection off (the default): ChipOptions untouched, no key record in the flash.
    let chip = dev.chip().lock();
    assert_eq!(&chip.state().config[90..92], &[0, 0]);
    drop(chip);
    let mut f = keystamp::sim::FileFlash::open(&flash).unwrap();
    assert_eq!(
        keystamp_agent::store::load_io_key(&mut f),
        Err(keystamp_agent::store::StoreError::Empty)
    );
}

/// With `[io_protection] enabled = true`: ChipOptions as the reference lays it out (§5.1: bit 1
/// IO protection, bits 9:8 / 11:10 ECDH / KDF output protection = 0b01 "encrypted only",
/// bits 15:12 the key slot), the key slot unreadable by the chip itself, the agent's flash
/// holding exactly the key in the slot, verify passing and the attack suite still passing.
#[test]
fn an_io_protected_device_holds_its_key_unreadable_and_survives_the_attack_suite() {
    use keystamp::project::{IoProtectionSection, Profile};
    let slot = 6u8;
    let profile = Profile {
        io_protection: IoProtectionSection {
            enabled: true,
            slot,
        },
        ..Profile::default()
    };
    let fx = common::fixture_with(profile);
    let (dev, flash) = provisioned_and_attacked(&fx, 43, Part::Blank);
    let (opts, key_in_slot) = {
        let chip = dev.chip().lock();
        let state = chip.state();
        let c = &state.config;
        (
            u16::from_le_bytes([c[90], c[91]]),
            state.slot(usize::from(slot))[..32].to_vec(),
        )
    };
    assert_eq!(
        opts,
        (1 << 1) | (0b01 << 8) | (0b01 << 10) | (u16::from(slot) << 12)
    );
    // The chip refuses to read the secret slot (IsSecret, no EncryptRead, data locked: §6.4).
    let mut chip = keystamp_atecc::Atecc::new(dev.chip().clone(), keystamp_atecc_sim::StdDelay);
    let mut buf = [0u8; 32];
    assert!(
        chip.read_bytes(keystamp_atecc::Zone::Data, slot, 0, &mut buf)
            .is_err()
    );
    let _ = chip.idle();
    // The agent holds the very key the chip holds; it is a fresh random one, not a pattern.
    let mut f = keystamp::sim::FileFlash::open(&flash).unwrap();
    let stored = keystamp_agent::store::load_io_key(&mut f).unwrap();
    assert_eq!(&stored[..], &key_in_slot[..]);
    assert!(stored.iter().any(|&b| b != stored[0]));
    // The station kept no copy: not in the registry file, not in the device outputs.
    let needle = hex::encode(stored);
    for entry in walk(fx.dir.path()) {
        if entry.ends_with("sim") || entry.to_string_lossy().contains("/sim/") {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(32).any(|w| w == stored)
                && !String::from_utf8_lossy(&bytes)
                    .to_lowercase()
                    .contains(&needle),
            "the IO key is in {}",
            entry.display()
        );
    }
}

/// A TrustFLEX part (profile `trustflex`) once provisioned is as locked down as a custom one:
/// the same attacks over its UART, after a reset and on its I2C bus change nothing.
#[test]
fn a_provisioned_trustflex_part_survives_every_request_before_and_after_a_reset() {
    let fx = common::fixture_for(keystamp::project::PartProfile::TrustFlex);
    let (dev, _flash) = provisioned_and_attacked(&fx, 45, Part::TrustFlex);
    let chip = dev.chip().lock();
    let slot_locked = u16::from_le_bytes([chip.state().config[88], chip.state().config[89]]);
    assert_eq!(slot_locked & 0x1C00, 0, "slots 10, 11, 12 locked");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Provisions a device, attacks it over its UART, resets it, attacks again, attacks the chip
/// directly; asserts nothing changed and `keystamp verify` passes with the same certificate.
/// Returns the device and its flash file.
fn provisioned_and_attacked(
    fx: &common::Fixture,
    seed: u64,
    part: Part,
) -> (keystamp::sim::SimDevice, std::path::PathBuf) {
    let state = fx.dir.path().join("sim");
    let dev = match part {
        Part::Blank => device(&state, "victim", seed, FaultConfig::default()),
        part => common::device_part(&state, "victim", seed, &keystamp::sim::SimPart::new(part)),
    };
    let report = run(fx, &dev);
    assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
    let cert_serial = report.cert_serial.clone();

    let flash = state.join("victim.flash");
    let mut link = link_to(&dev);
    let before = snapshot(&dev, &flash, &mut link, fx.material.io_key_slot);
    let Response::PublicKey(pk) = &before.public_key else {
        panic!()
    };
    let mut device_key = [0u8; 64];
    device_key[..32].copy_from_slice(&pk.x);
    device_key[32..].copy_from_slice(&pk.y);
    let requests = hostile_requests(&fx.material.blob, fx.material.blob_digest);

    let refused = attack(&mut link, &requests, &device_key);
    assert!(
        refused > 60,
        "only {refused} requests refused as LockedDown"
    );
    assert_eq!(
        snapshot(&dev, &flash, &mut link, fx.material.io_key_slot),
        before,
        "after the attack"
    );

    // Power cycle (RAM lost, chip and flash kept), then the same again.
    drop(link);
    dev.reset();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut link = link_to(&dev);
    attack(&mut link, &requests, &device_key);
    assert_eq!(
        snapshot(&dev, &flash, &mut link, fx.material.io_key_slot),
        before,
        "after the reset and the second attack"
    );

    // Direct I2C to the chip (a replaced firmware, a probe on the bus): the chip's own locks and
    // slot policies keep the identity.
    direct_i2c_attack(&dev);
    assert_eq!(
        snapshot(&dev, &flash, &mut link, fx.material.io_key_slot),
        before,
        "after direct I2C commands"
    );
    drop(link);

    // `keystamp verify`: same chain, same certificate, identity proof checked.
    let verified = station(fx, &fx.signer, &dev).verify_only();
    assert_eq!(
        verified.result,
        DeviceResult::AlreadyProvisioned,
        "{verified:?}"
    );
    assert_eq!(verified.cert_serial, cert_serial);
    (dev, flash)
}
