//! Pre-configured parts (TrustFLEX, Trust&GO) against the reference dumps (§7.2, §7.3, read from
//! `shared/reference/atecc608.md` at test time) and the slot rules those dumps imply, driven by the
//! keystamp driver at the parts' own I2C addresses.

use keystamp_atecc::{Atecc, Error, Zone};
use keystamp_atecc_sim::{Part, SimChip, SimOptions, VirtualClock, VirtualDelay};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use std::path::PathBuf;

fn reference() -> Option<String> {
    let dir = std::env::var("KEYSTAMP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    let path = dir.join("reference/atecc608.md");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("SKIP: {} not readable ({e})", path.display());
            None
        }
    }
}

/// The 128 bytes of the dump under `heading` (`None` for the per-device `xx` bytes).
fn dump(reference: &str, heading: &str) -> Vec<Option<u8>> {
    let at = reference.find(heading).expect("heading in the reference");
    let block = reference[at..].split("```").nth(1).expect("code block");
    let mut out = Vec::new();
    for line in block.lines().filter(|l| l.contains(':')) {
        let bytes = line.split_once(':').unwrap().1;
        for tok in bytes.split_whitespace() {
            if tok == "xx" {
                out.push(None);
            } else if let Ok(b) = u8::from_str_radix(tok, 16) {
                out.push(Some(b));
            } else {
                break;
            }
        }
    }
    assert_eq!(out.len(), 128, "{heading}");
    out
}

fn driver(part: Part, seed: u64) -> Atecc<SimChip, VirtualDelay> {
    let clock = VirtualClock::new();
    let chip = SimChip::new_part(
        part,
        SimOptions::default()
            .with_seed(seed)
            .with_clock(clock.clone()),
    );
    let mut d = Atecc::new(chip, clock.delay());
    d.set_address(part.config_16_127().unwrap()[0] >> 1);
    d
}

#[test]
fn parts_ship_the_reference_configuration() {
    let Some(reference) = reference() else { return };
    for (part, heading) in [
        (Part::TrustFlex, "### 7.3 "),
        (Part::TrustAndGo, "### 7.2 "),
    ] {
        let mut d = driver(part, 11);
        let config = d.read_config_zone().unwrap();
        for (i, expected) in dump(&reference, heading).into_iter().enumerate() {
            if let Some(b) = expected {
                assert_eq!(config[i], b, "{part}: config byte {i}");
            }
        }
        assert_eq!(d.lock_status().unwrap(), (true, true), "{part}");
        let mut otp = [0u8; 8];
        d.read_bytes(Zone::Otp, 0, 0, &mut otp).unwrap();
        assert_eq!(&otp, part.otp_code().unwrap());
    }
}

#[test]
fn device_key_is_ready_and_signs() {
    for part in [Part::TrustFlex, Part::TrustAndGo, Part::TrustAndGo608B] {
        let mut d = driver(part, 12);
        let public = d.get_public_key(0).unwrap();
        let digest = [0x42u8; 32];
        let sig = d.sign_digest(0, &digest).unwrap();
        let mut sec1 = [4u8; 65];
        sec1[1..].copy_from_slice(&public);
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        key.verify_prehash(&digest, &sig).unwrap();
        // Slot 0 is permanent on both parts: GenKey must not replace it (SlotConfig 0x0085 has
        // no GenKey bit).
        assert!(d.genkey(0).is_err(), "{part}");
    }
}

#[test]
fn certificate_slots_follow_the_part() {
    let cert = [0x5Au8; 72];
    // TrustFLEX: slots 10–12 are Always-writable and lockable.
    let mut d = driver(Part::TrustFlex, 13);
    for slot in [10u8, 11, 12] {
        d.write_slot(slot, &cert).unwrap();
        let mut back = [0u8; 72];
        d.read_bytes(Zone::Data, slot, 0, &mut back).unwrap();
        assert_eq!(back, cert);
    }
    d.lock_slot(10).unwrap();
    assert!(d.write_slot(10, &cert).is_err());
    // Trust&GO: never writable.
    for part in [Part::TrustAndGo, Part::TrustAndGo608B] {
        let mut d = driver(part, 13);
        for slot in [10u8, 11, 12] {
            let r = d.write_slot(slot, &cert);
            assert!(
                matches!(r, Err(Error::Status(_))),
                "{part} slot {slot}: {r:?}"
            );
        }
    }
}

/// ATECC608B-TNGTLS (§7.4): the 608A layout with the listed differences, and slot 5 a clear-read
/// data slot holding the EUI-48 as 12 hex digits (Microchip's OUI 00-04-A3 first).
#[test]
fn the_608b_trust_and_go_part_has_the_listed_differences_and_its_eui48() {
    let mut d = driver(Part::TrustAndGo608B, 14);
    let c = d.read_config_zone().unwrap();
    let word = |at: usize| u16::from_le_bytes([c[at], c[at + 1]]);
    assert_eq!(word(20 + 2 * 5), 0x8F0F);
    assert_eq!(word(20 + 2 * 7), 0x8F8F);
    for slot in 13..16 {
        assert_eq!(word(20 + 2 * slot), 0x8F8F);
        assert_eq!(word(96 + 2 * slot), 0x001C);
    }
    assert_eq!(word(96 + 2 * 5), 0x001C);
    assert_eq!(word(70), 0xF700);
    assert_eq!(&c[4..8], &[0x00, 0x00, 0x60, 0x03]);
    let mut eui = [0u8; 12];
    d.read_bytes(Zone::Data, 5, 0, &mut eui).unwrap();
    assert!(eui.starts_with(b"0004A3"), "{eui:?}");
    assert!(eui.iter().all(u8::is_ascii_hexdigit));
}
