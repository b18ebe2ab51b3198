//! Known answers from the reference and independent implementations.

mod common;

use common::*;
use keystamp_atecc_sim::{SimChip, SimOptions};
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};

#[test]
fn factory_config_dump() {
    let expected: Vec<char> = FACTORY_HEX.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(expected.len(), 256);
    let mut h = Host::new(21);
    let cfg = h.read_config();
    for (i, byte) in cfg.iter().enumerate() {
        let pattern: String = expected[2 * i..2 * i + 2].iter().collect();
        if pattern == "xx" {
            continue;
        }
        assert_eq!(format!("{byte:02X}"), pattern, "config byte {i}");
    }
    // Byte 14 (I2C_Enable) varies per chip: one of the values seen on real parts.
    assert!([0x35, 0x39, 0x55, 0x61].contains(&cfg[14]));
    // The 4-byte read of word 0x15 is the lock word (§2.3: `07 00 00 55 55 F5 52`).
    h.ensure_awake();
    assert_eq!(
        h.raw(&[0x07, 0x02, 0x00, 0x15, 0x00, 0x17, 0x5D]),
        [0x07, 0x00, 0x00, 0x55, 0x55, 0xF5, 0x52]
    );
}

/// Unique, seedable serial numbers with prefix `01 23` and last byte `EE` (§5.1, §7.1).
#[test]
fn serial_numbers() {
    let a = SimChip::new(SimOptions::default().with_seed(1)).serial_number();
    let a2 = SimChip::new(SimOptions::default().with_seed(1)).serial_number();
    let b = SimChip::new(SimOptions::default().with_seed(2)).serial_number();
    let c = SimChip::new(SimOptions::default()).serial_number();
    assert_eq!(a, a2);
    assert_ne!(a, b);
    assert_ne!(a, c);
    for sn in [a, b, c] {
        assert_eq!(&sn[..2], &[0x01, 0x23]);
        assert_eq!(sn[8], 0xEE);
    }
}

/// §2.3: `Random 07 1B 00 00 00 24 CD` before the config lock answers
/// `23 (FF FF 00 00)x8 41 1A`; after the lock it is random.
#[test]
fn random_pattern_before_config_lock() {
    let mut h = Host::new(22);
    h.wake();
    let mut expected = vec![0x23];
    expected.extend([0xFF, 0xFF, 0x00, 0x00].repeat(8));
    expected.extend([0x41, 0x1A]);
    assert_eq!(h.raw(&[0x07, 0x1B, 0x00, 0x00, 0x00, 0x24, 0xCD]), expected);
    let mut h = host_at(Stage::ConfigLocked, 22);
    let r1 = h.cmd(op::RANDOM, 0, 0, &[]);
    let r2 = h.cmd(op::RANDOM, 0, 0, &[]);
    assert_eq!(r1.len(), 32);
    assert_ne!(r1, r2);
    assert_ne!(r1, [0xFF, 0xFF, 0x00, 0x00].repeat(8));
}

fn chip_sha(h: &mut Host, msg: &[u8]) -> Vec<u8> {
    assert_eq!(h.status(op::SHA, 0x00, 0, &[]), 0x00);
    let mut chunks = msg.chunks_exact(64);
    for block in &mut chunks {
        assert_eq!(h.status(op::SHA, 0x01, 64, block), 0x00);
    }
    let tail = chunks.remainder();
    h.cmd(op::SHA, 0x02, tail.len() as u16, tail)
}

/// FIPS 180-2 / NIST test vectors for SHA-256 through the SHA command.
#[test]
fn sha256_known_messages() {
    let mut h = Host::new(23);
    let vectors: &[(Vec<u8>, &str)] = &[
        (
            b"abc".to_vec(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            Vec::new(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".to_vec(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            vec![b'a'; 1_000_000],
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
        ),
    ];
    for (msg, digest) in vectors {
        assert_eq!(
            hex::encode(chip_sha(&mut h, msg)),
            *digest,
            "len {}",
            msg.len()
        );
    }
    // Update takes exactly 64 bytes (§4.2).
    assert_eq!(h.status(op::SHA, 0x00, 0, &[]), 0x00);
    assert_eq!(h.status(op::SHA, 0x01, 32, &[0; 32]), 0x03);
}

fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    if v.is_empty() || v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, v.len() as u8];
    out.extend(v);
    out
}

/// Verifies with the `openssl` command (an independent P-256 implementation); `None` when
/// openssl is not installed.
fn openssl_verify(public_xy: &[u8], digest: &[u8; 32], sig: &[u8]) -> Option<bool> {
    let dir = std::env::temp_dir().join(format!(
        "atecc-sim-ossl-{}-{}",
        std::process::id(),
        hex::encode(&digest[..4])
    ));
    std::fs::create_dir_all(&dir).ok()?;
    // SubjectPublicKeyInfo for an uncompressed P-256 point.
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d03010703420004").ok()?;
    spki.extend_from_slice(public_xy);
    let mut body = der_integer(&sig[..32]);
    body.extend(der_integer(&sig[32..]));
    let mut der_sig = vec![0x30, body.len() as u8];
    der_sig.extend(body);
    std::fs::write(dir.join("pub.der"), spki).ok()?;
    std::fs::write(dir.join("sig.der"), der_sig).ok()?;
    std::fs::write(dir.join("digest.bin"), digest).ok()?;
    let out = std::process::Command::new("openssl")
        .current_dir(&dir)
        .args([
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.der", "-keyform", "DER",
        ])
        .args(["-in", "digest.bin", "-sigfile", "sig.der"])
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    Some(out.status.success())
}

/// Signatures from Sign(external) verify with OpenSSL; a different digest does not.
#[test]
fn signatures_verify_with_openssl() {
    let mut h = host_at(Stage::BothLocked, 24);
    let public = h.cmd(op::GENKEY, 0x00, 0, &[]);
    assert_eq!(public.len(), 64);
    let digest: [u8; 32] = Sha256::digest(b"keystamp challenge").into();
    let sig = h.sign_ext(0, &digest);
    assert_eq!(sig.len(), 64);
    let Some(ok) = openssl_verify(&public, &digest, &sig) else {
        eprintln!("SKIP openssl check: openssl not available");
        return;
    };
    assert!(ok, "openssl rejects the chip's signature");
    let mut other = digest;
    other[0] ^= 1;
    assert_eq!(openssl_verify(&public, &other, &sig), Some(false));
    // Sign from the message-digest buffer (0xA0, §6.4).
    assert_eq!(h.status(op::NONCE, 0x43, 0, &other), 0x00);
    let sig2 = h.cmd(op::SIGN, 0xA0, 0, &[]);
    assert_eq!(openssl_verify(&public, &other, &sig2), Some(true));
}

/// The chip's public key matches its signatures under p256's verifier too, and Verify(external)
/// answers 0x00 / 0x01 (§4.2 Verify).
#[test]
fn verify_external_and_stored() {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let mut h = host_at(Stage::BothLocked, 25);
    let host_key = p256::ecdsa::SigningKey::from_slice(&[0x17; 32]).unwrap();
    let digest: [u8; 32] = Sha256::digest(b"message").into();
    let sig: p256::ecdsa::Signature = host_key.sign_prehash(&digest).unwrap();
    let point = host_key.verifying_key().as_affine().to_sec1_point(false);
    let mut data = sig.to_bytes().to_vec();
    data.extend_from_slice(&point.as_bytes()[1..]);
    assert_eq!(h.nonce_fixed(&digest), 0x00);
    assert_eq!(h.status(op::VERIFY, 0x02, 0x0004, &data), 0x00);
    data[10] ^= 0x01;
    assert_eq!(h.status(op::VERIFY, 0x02, 0x0004, &data), 0x01);
    // Stored: slot 13 holds slot 0's public key (padded layout).
    let chip_sig = h.sign_ext(0, &digest);
    assert_eq!(h.status(op::VERIFY, 0x00, 13, &chip_sig), 0x00);
    let mut bad = chip_sig.clone();
    bad[40] ^= 0x80;
    assert_eq!(h.status(op::VERIFY, 0x00, 13, &bad), 0x01);
}

/// ECDH shared secret equals the host-side p256 computation (§4.2 ECDH mode 0x00), and
/// ReadKey bit 3 stores it in slot N|1 instead (§6.4).
#[test]
fn ecdh_matches_host_p256() {
    let mut h = host_at(Stage::BothLocked, 26);
    let chip_pub = h.cmd(op::GENKEY, 0x00, 1, &[]);
    let host = SecretKey::from_slice(&[0x29; 32]).unwrap();
    let host_point = host.public_key().to_sec1_point(false);
    let shared = h.cmd(op::ECDH, 0x00, 1, &host_point.as_bytes()[1..]);
    let mut sec1 = vec![0x04];
    sec1.extend(&chip_pub);
    let chip_public = p256::PublicKey::from_sec1_bytes(&sec1).unwrap();
    let expected = host.diffie_hellman(&chip_public);
    assert_eq!(shared.as_slice(), expected.raw_secret_bytes().as_slice());

    let chip2_pub = h.cmd(op::GENKEY, 0x00, 2, &[]);
    assert_eq!(
        h.status(op::ECDH, 0x00, 2, &host_point.as_bytes()[1..]),
        0x00
    );
    let mut sec1 = vec![0x04];
    sec1.extend(&chip2_pub);
    let expected = host.diffie_hellman(&p256::PublicKey::from_sec1_bytes(&sec1).unwrap());
    assert_eq!(
        &h.chip.state().slot(3)[..32],
        expected.raw_secret_bytes().as_slice()
    );
    // Slot 0 has no ECDH permission (ReadKey bit 2 clear).
    assert_eq!(
        h.status(op::ECDH, 0x00, 0, &host_point.as_bytes()[1..]),
        0x0F
    );
    // A point off the curve is refused.
    assert_eq!(h.status(op::ECDH, 0x00, 1, &[0x01; 64]), 0x0F);
}

/// Nonce random mode: TempKey = SHA-256(RandOut ‖ NumIn ‖ 0x16 ‖ mode ‖ 0x00) (§4.2 [DS, CAL]);
/// signing it gives a signature over that digest.
#[test]
fn nonce_random_tempkey() {
    let mut h = host_at(Stage::BothLocked, 27);
    let num_in = [0x33u8; 20];
    let rand_out = h.cmd(op::NONCE, 0x00, 0, &num_in);
    assert_eq!(rand_out.len(), 32);
    let mut m = rand_out.clone();
    m.extend_from_slice(&num_in);
    m.extend_from_slice(&[0x16, 0x00, 0x00]);
    let expected: [u8; 32] = Sha256::digest(&m).into();
    assert_eq!(&h.chip.tempkey().value[..32], &expected);
    assert!(!h.chip.tempkey().source_input);
    let public = h.cmd(op::GENKEY, 0x00, 0, &[]);
    let sig = h.cmd(op::SIGN, 0x80, 0, &[]);
    let mut sec1 = vec![0x04];
    sec1.extend(&public);
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    vk.verify_prehash(
        &expected,
        &p256::ecdsa::Signature::from_slice(&sig).unwrap(),
    )
    .unwrap();
}

/// Sign(internal) signs SHA-256 of the 55-byte message of §4.2 about a GenKey TempKey.
#[test]
fn sign_internal_message() {
    let mut h = host_at(Stage::BothLocked, 28);
    assert_eq!(h.nonce_fixed(&[0x11; 32]), 0x00);
    // GenKey public with digest (0x08) on slot 1 → TempKey from GenKey, KeyID 1.
    let pub1 = h.cmd(op::GENKEY, 0x08, 1, &[]);
    assert_eq!(pub1.len(), 64);
    let tk = h.chip.tempkey().clone();
    assert!(tk.valid && tk.gen_key && tk.key_id == 1);
    let cfg = h.read_config();
    let sig = h.cmd(op::SIGN, 0x00, 0, &[]);
    let sn: Vec<u8> = cfg[0..4].iter().chain(&cfg[8..13]).copied().collect();
    let mut m = tk.value[..32].to_vec();
    m.extend([0x41, 0x00, 0x00, 0x00]);
    m.extend(&cfg[22..24]); // SlotConfig[1]
    m.extend(&cfg[98..100]); // KeyConfig[1]
    m.push(tk.flags());
    m.extend([
        0, 0, sn[8], 0, 0, 0, 0, sn[0], sn[1], 0, 0, 0x01, 0x00, 0x00,
    ]);
    assert_eq!(m.len(), 55);
    let digest: [u8; 32] = Sha256::digest(&m).into();
    let pub0 = h.cmd(op::GENKEY, 0x00, 0, &[]);
    let mut sec1 = vec![0x04];
    sec1.extend(&pub0);
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    vk.verify_prehash(&digest, &p256::ecdsa::Signature::from_slice(&sig).unwrap())
        .unwrap();
    // The digest itself follows §4.2 GenKey: TempKey ‖ 0x40 ‖ mode ‖ KeyID ‖ SN[8] ‖ SN[0..2] ‖
    // zeros ‖ pubkey.
    let mut g = vec![0x11; 32];
    g.extend([0x40, 0x08, 0x01, 0x00, sn[8], sn[0], sn[1]]);
    g.extend([0u8; 25]);
    g.extend(&pub1);
    assert_eq!(&tk.value[..32], Sha256::digest(&g).as_slice());
}

/// Counter: read/increment, 4-byte LE, config bytes in the §5.4 encoding, id > 1 → 0x03.
#[test]
fn counters() {
    let mut h = host_at(Stage::ConfigLocked, 29);
    assert_eq!(h.cmd(op::COUNTER, 0x00, 0, &[]), [0, 0, 0, 0]);
    for i in 1..=45u32 {
        assert_eq!(h.cmd(op::COUNTER, 0x01, 0, &[]), i.to_le_bytes());
    }
    assert_eq!(h.cmd(op::COUNTER, 0x00, 1, &[]), [0, 0, 0, 0]);
    let cfg = h.read_config();
    assert_eq!(
        &cfg[52..60],
        &[0x00, 0x07, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
    );
    assert_eq!(h.status(op::COUNTER, 0x00, 2, &[]), 0x03);
}

/// SelfTest all (0x3B) passes: `04 00 03 40`.
#[test]
fn self_test_passes() {
    let mut h = Host::new(30);
    h.wake();
    assert_eq!(
        h.raw(&[0x07, 0x77, 0x3B, 0x00, 0x00, 0x9D, 0xFB]),
        [0x04, 0x00, 0x03, 0x40]
    );
}
