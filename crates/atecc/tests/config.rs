//! Config-zone model against the reference's real config dumps (§7), with field values checked
//! against their documented meaning (§5), counters (§5.4), write operations (§5.1) and lock
//! CRCs (§6.3).

mod common;

use keystamp_atecc::config::{CounterBytes, DataCrcError, UNLOCKED};
use keystamp_atecc::default_config::{DEFAULT_CONFIG, DEFAULT_CONFIG_BYTES};
use keystamp_atecc::lint::{LintProfile, Rule, Severity, lint_in};
use keystamp_atecc::{
    ConfigWriteOp, ConfigZone, KeyType, WriteMode, config_write_ops, data_lock_crc, lint,
};

use common::INDEPENDENT;

struct Dumps {
    blank_608a: [u8; 128],
    tngtls_608a: [u8; 128],
    tflxtls_608b: [u8; 128],
    tngtls_608b: [u8; 128],
    cal_test: [u8; 128],
}

fn dumps() -> Option<Dumps> {
    let text = common::reference()?;
    let tngtls_608a = common::config_dump(&text, "### 7.2 ");
    // §7.4 documents the 608B-TNGTLS as differences from §7.2.
    let mut b = ConfigZone::from_bytes(&tngtls_608a);
    let heading = text.lines().find(|l| l.starts_with("### 7.4 ")).unwrap();
    assert!(heading.contains("608B-TNGTLS"));
    let para = &text[text.find("### 7.4 ").unwrap()..text.find("### 7.5 ").unwrap()];
    for needle in [
        "SlotConfig 5 = 0x8F0F",
        "7 = 0x8F8F",
        "13–15 = 0x8F8F",
        "KeyConfig 5 = 0x001C",
        "13–15 = 0x001C",
        "SecureBoot 0xF700",
    ] {
        assert!(para.contains(needle), "§7.4 no longer says {needle:?}");
    }
    b.slot_config[5].0 = 0x8F0F;
    b.slot_config[7].0 = 0x8F8F;
    b.key_config[5].0 = 0x001C;
    for s in 13..16 {
        b.slot_config[s].0 = 0x8F8F;
        b.key_config[s].0 = 0x001C;
    }
    b.secure_boot = 0xF700;
    b.revision = [0x00, 0x00, 0x60, 0x03];
    Some(Dumps {
        blank_608a: common::config_dump(&text, "### 7.1 "),
        tngtls_608a,
        tflxtls_608b: common::config_dump(&text, "### 7.3 "),
        tngtls_608b: b.to_bytes(),
        cal_test: common::config_dump(&text, "### 7.5 "),
    })
}

#[test]
fn every_dump_round_trips() {
    let Some(d) = dumps() else { return };
    for bytes in [
        d.blank_608a,
        d.tngtls_608a,
        d.tflxtls_608b,
        d.tngtls_608b,
        d.cal_test,
        DEFAULT_CONFIG_BYTES,
    ] {
        let cfg = ConfigZone::from_bytes(&bytes);
        assert_eq!(cfg.to_bytes(), bytes);
        assert_eq!(ConfigZone::from_slice(&bytes), Ok(cfg));
    }
    assert!(ConfigZone::from_slice(&[0u8; 127]).is_err());
    assert!(ConfigZone::from_slice(&[0u8; 129]).is_err());
}

#[test]
fn round_trip_is_exact_for_arbitrary_bytes() {
    let mut seed = 7u32;
    for _ in 0..200 {
        let mut b = [0u8; 128];
        for x in b.iter_mut() {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *x = (seed >> 24) as u8;
        }
        assert_eq!(ConfigZone::from_bytes(&b).to_bytes(), b);
    }
}

#[test]
fn blank_608a_fields() {
    let Some(d) = dumps() else { return };
    let c = ConfigZone::from_bytes(&d.blank_608a);
    // §7.1 decoded.
    assert_eq!(c.sn_0_3[..2], [0x01, 0x23]);
    assert_eq!(c.revision, [0x00, 0x00, 0x60, 0x02]);
    assert!(!c.is_608b());
    assert_eq!(c.sn_4_8[4], 0xEE);
    assert_eq!(c.serial_number()[8], 0xEE);
    assert_eq!(c.serial_number()[..2], [0x01, 0x23]);
    assert_eq!(c.i2c_address, 0xC0);
    assert_eq!(c.i2c_address_7bit(), 0x60);
    assert_eq!(c.chip_mode.0, 0x00);
    assert!(!c.chip_mode.watchdog_long());
    assert!(!c.config_locked() && !c.data_locked());
    assert_eq!((c.lock_value, c.lock_config), (UNLOCKED, UNLOCKED));
    assert_eq!(c.slot_locked, 0xFFFF);
    assert!((0..16).all(|s| !c.slot_is_locked(s)));
    assert_eq!(c.counter(0), Some(0));
    assert_eq!(c.counter(1), Some(0));
    assert_eq!(c.counter(2), None);
    // Slots 0-2: P-256 private, KeyConfig 0x0033 (Private, PubInfo, P256, Lockable).
    for s in 0..3 {
        let k = c.key_config[s];
        assert_eq!(k.0, 0x0033);
        assert!(k.private() && k.pub_info() && k.lockable());
        assert_eq!(k.key_type(), KeyType::P256);
        assert!(!k.req_random() && !k.req_auth());
        let sc = c.slot_config[s];
        assert!(sc.is_secret() && sc.gen_key_allowed() && sc.ext_sign() && sc.int_sign());
    }
    assert_eq!(c.slot_config[0].0, 0x2083);
    assert!(!c.slot_config[0].ecdh());
    assert!(c.slot_config[1].ecdh() && !c.slot_config[1].ecdh_to_slot());
    assert!(c.slot_config[2].ecdh() && c.slot_config[2].ecdh_to_slot());
    // Slots 3-7 and 15: secret SHA keys, WriteConfig Never.
    for s in [3, 4, 5, 6, 7, 15] {
        assert!(c.slot_config[s].is_secret(), "slot {s}");
        assert_eq!(c.slot_config[s].write_mode(), WriteMode::Never, "slot {s}");
        assert_eq!(c.key_config[s].key_type(), KeyType::ShaOrData);
        assert!(!c.key_config[s].private());
    }
    // Slots 8-14: clear read, Always write, data, lockable.
    for s in 8..15 {
        assert_eq!(c.slot_config[s].0, 0x0000);
        assert!(!c.slot_config[s].is_secret());
        assert_eq!(c.slot_config[s].write_mode(), WriteMode::Always);
        assert_eq!(c.key_config[s].0, 0x003C);
        assert_eq!(c.key_config[s].key_type(), KeyType::ShaOrData);
        assert!(c.key_config[s].lockable());
    }
}

#[test]
fn tngtls_608a_fields() {
    let Some(d) = dumps() else { return };
    let c = ConfigZone::from_bytes(&d.tngtls_608a);
    // §7.2.
    assert_eq!(c.i2c_address, 0x6A);
    assert_eq!(c.i2c_address_7bit(), 0x35);
    assert!(c.chip_mode.user_extra_add());
    assert_eq!(c.sn_4_8[4], 0x01);
    assert!(c.config_locked() && c.data_locked());
    // Slot 0: primary key 0x0085 / 0x0053: ext sign + ECDH, secret, ReqRandom, no GenKey,
    // not lockable.
    let (s0, k0) = (c.slot_config[0], c.key_config[0]);
    assert_eq!((s0.0, k0.0), (0x0085, 0x0053));
    assert!(s0.ext_sign() && s0.ecdh() && !s0.int_sign() && s0.is_secret());
    assert!(!s0.gen_key_allowed());
    assert!(k0.private() && k0.req_random() && !k0.lockable());
    assert_eq!(k0.key_type(), KeyType::P256);
    // Slot 1 internal sign.
    assert!(c.slot_config[1].int_sign() && !c.slot_config[1].ext_sign());
    // Slots 2-4: GenKey allowed, lockable.
    for s in 2..5 {
        assert!(c.slot_config[s].gen_key_allowed());
        assert!(c.key_config[s].lockable() && c.key_config[s].private());
    }
    // Slot 5: encrypted write.
    assert_eq!(c.slot_config[5].write_mode(), WriteMode::Encrypt);
    // Slot 8: general data, Always.
    assert_eq!(c.slot_config[8].write_mode(), WriteMode::Always);
    assert!(!c.slot_config[8].is_secret());
    // Slots 10-12: certificates, clear read, write Never.
    for s in 10..13 {
        assert_eq!(c.slot_config[s].0, 0x8F0F);
        assert!(!c.slot_config[s].is_secret());
        assert_eq!(c.slot_config[s].write_mode(), WriteMode::Never);
    }
    assert_eq!(c.key_config[11].0, 0x0010);
    assert_eq!(c.key_config[11].key_type(), KeyType::P256);
    assert!(!c.key_config[11].private());
    // Slot 14: validated public key (PubInfo on a public slot).
    assert!(c.key_config[14].pub_info() && !c.key_config[14].private());
    assert_eq!(c.slot_config[14].write_mode(), WriteMode::PubInvalid);
    assert_eq!(c.secure_boot, 0xF703);
    assert_eq!(c.kdflv_str, [0x69, 0x76]);
    // ChipOptions 0x600E: IO protection, KDF-AES, IO key slot 6.
    let o = c.chip_options;
    assert_eq!(o.0, 0x600E);
    assert!(o.io_protection() && o.kdf_aes() && !o.power_on_self_test());
    assert_eq!(o.io_key(), 6);
}

#[test]
fn tngtls_608b_fields() {
    let Some(d) = dumps() else { return };
    let c = ConfigZone::from_bytes(&d.tngtls_608b);
    assert!(c.is_608b());
    assert_eq!(c.i2c_address_7bit(), 0x35);
    assert_eq!(c.slot_config[5].write_mode(), WriteMode::Never);
    assert!(!c.slot_config[5].is_secret());
    assert!(c.slot_config[7].is_secret());
    for s in 13..16 {
        assert!(c.slot_config[s].is_secret());
    }
    assert_eq!(c.secure_boot & 0x3, 0);
    let findings = lint(&c);
    assert!(findings.has_slot(Rule::CertSlotNeverUpdatable, 10));
}

#[test]
fn tflxtls_608b_fields() {
    let Some(d) = dumps() else { return };
    let c = ConfigZone::from_bytes(&d.tflxtls_608b);
    // §7.3.
    assert!(c.is_608b());
    assert_eq!(c.revision, [0x00, 0x00, 0x60, 0x03]);
    assert_eq!(c.aes_enable, 0x61);
    assert_eq!(c.i2c_address_7bit(), 0x36);
    // Slots 10-12 writable (Always) and lockable.
    for s in 10..13 {
        assert_eq!(c.slot_config[s].0, 0x0F0F);
        assert_eq!(c.slot_config[s].write_mode(), WriteMode::Always);
        assert!(c.key_config[s].lockable());
    }
    assert_eq!(c.key_config[11].key_type(), KeyType::P256);
    assert!(!lint(&c).has(Rule::CertSlotNeverUpdatable));
    assert!(!lint(&c).has(Rule::CertSlotNotLockable));
}

#[test]
fn cryptoauthlib_test_config_fields() {
    let Some(d) = dumps() else { return };
    let c = ConfigZone::from_bytes(&d.cal_test);
    assert_eq!(
        c.serial_number(),
        [0x01, 0x23, 0x00, 0x00, 0x04, 0x05, 0x06, 0x07, 0xEE]
    );
    assert_eq!(c.i2c_address, 0xC0);
    assert_eq!(c.count_match, 0xA1);
    assert_eq!(c.counter(0), Some(0));
    assert_eq!(c.counter(1), Some(0));
    assert_eq!(c.volatile_key_permission, 0x84);
    assert_eq!(c.secure_boot, 0xBC03);
    assert_eq!(c.kdflv_loc, 0x09);
    assert_eq!(c.chip_options.0, 0x400E);
    assert_eq!(c.key_config[0].0, 0x0033);
    assert_eq!(c.slot_config[0].0, 0x2FAF);
    // CountMatch enabled and secure boot mode 3: unsupported by keystamp.
    let r = lint(&c);
    assert!(r.has(Rule::UnsupportedUsageLimit));
    assert!(r.has(Rule::UnsupportedSecureBoot));
}

#[test]
fn counter_encoding_matches_reference_table() {
    let Some(text) = common::reference() else {
        return;
    };
    let block = common::code_block_after(&text, "### 5.4 ");
    let mut checked = 0;
    for line in block {
        // "v=0        FF FF FF FF 00 00 00 00      v=4   0F FF ..."
        for part in line.split("v=").skip(1) {
            let (num, rest) = part.split_once(char::is_whitespace).unwrap();
            let v: u32 = num.parse().unwrap();
            let bytes: [u8; 8] = common::hex_tokens(rest)[..8].try_into().unwrap();
            assert_eq!(CounterBytes::encode(v), Some(CounterBytes(bytes)), "v={v}");
            assert_eq!(CounterBytes(bytes).value(), Some(v), "v={v}");
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
    assert_eq!(CounterBytes::encode(2_097_152), None);
    for v in (0..5000).chain(2_090_000..2_097_152) {
        assert_eq!(CounterBytes::encode(v).unwrap().value(), Some(v));
    }
    // Not a valid encoding.
    assert_eq!(CounterBytes([0; 8]).value(), None);
    assert_eq!(CounterBytes([0x12; 8]).value(), None);
}

#[test]
fn write_ops_program_exactly_the_writable_bytes() {
    let Some(d) = dumps() else { return };
    for target in [DEFAULT_CONFIG_BYTES, d.tflxtls_608b, d.cal_test] {
        let target_cfg = ConfigZone::from_bytes(&target);
        // Apply the ops to a blank image.
        let mut image = d.blank_608a;
        let mut touched = [false; 128];
        let mut extras = Vec::new();
        let mut order = Vec::new();
        for op in config_write_ops(&target_cfg) {
            match op {
                ConfigWriteOp::Word { addr, offset, data } => {
                    let o = offset as usize;
                    assert_eq!(o % 4, 0);
                    assert_eq!(addr.param2() as usize, o / 4, "config addr = block<<3|word");
                    image[o..o + 4].copy_from_slice(&data);
                    touched[o..o + 4].iter_mut().for_each(|t| *t = true);
                    order.push((o, 4));
                }
                ConfigWriteOp::Block { addr, offset, data } => {
                    let o = offset as usize;
                    assert_eq!(o % 32, 0);
                    assert_eq!(addr.param2() as usize, o / 4);
                    image[o..o + 32].copy_from_slice(&data);
                    touched[o..o + 32].iter_mut().for_each(|t| *t = true);
                    order.push((o, 32));
                }
                ConfigWriteOp::UpdateExtra(u) => extras.push(u),
            }
        }
        // §5.1: block 0 words 4-7 (4-byte), block 1 (32), block 2 words except 5, block 3 (32).
        assert_eq!(
            order,
            [
                (16, 4),
                (20, 4),
                (24, 4),
                (28, 4),
                (32, 32),
                (64, 4),
                (68, 4),
                (72, 4),
                (76, 4),
                (80, 4),
                (88, 4),
                (92, 4),
                (96, 32)
            ]
        );
        for i in 0..128 {
            let writable = (16..84).contains(&i) || (88..128).contains(&i);
            assert_eq!(touched[i], writable, "byte {i}");
            if writable {
                assert_eq!(image[i], target[i], "byte {i}");
            }
        }
        let want_extras: Vec<_> = [(84, target[84]), (85, target[85])]
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(i, v)| {
                if i == 84 {
                    keystamp_atecc::command::UpdateExtra::UserExtra(v)
                } else {
                    keystamp_atecc::command::UpdateExtra::UserExtraAdd(v)
                }
            })
            .collect();
        assert_eq!(extras, want_extras);
        let programmed = ConfigZone::from_bytes(&image);
        if target[84] == 0 && target[85] == 0 {
            assert_eq!(programmed.first_setting_difference(&target_cfg), None);
        }
    }
}

#[test]
fn setting_difference_finds_first_mismatch() {
    let a = DEFAULT_CONFIG;
    let mut b = a;
    assert_eq!(a.first_setting_difference(&b), None);
    b.key_config[3].0 ^= 0x0100;
    assert_eq!(a.first_setting_difference(&b), Some(96 + 6 + 1));
    // Counters and SlotLocked are not settings cryptoauthlib compares.
    let mut c = a;
    c.counters[0] = CounterBytes::encode(5).unwrap();
    c.slot_locked = 0xFFFE;
    assert_eq!(a.first_setting_difference(&c), None);
    assert_eq!(a.first_writable_difference(&c), Some(52));
    // UserExtra only when the target sets it.
    let mut t = a;
    t.user_extra_add = 0x6A;
    assert_eq!(a.first_setting_difference(&t), Some(85));
    let mut back = a;
    back.user_extra_add = 0x6A;
    assert_eq!(back.first_setting_difference(&t), None);
}

#[test]
fn config_lock_crc_is_crc_over_all_128_bytes() {
    let Some(d) = dumps() else { return };
    for bytes in [d.blank_608a, d.tngtls_608a, DEFAULT_CONFIG_BYTES] {
        let c = ConfigZone::from_bytes(&bytes);
        assert_eq!(c.lock_crc(), INDEPENDENT.checksum(&bytes));
    }
}

#[test]
fn data_lock_crc_skips_private_slots_then_adds_otp() {
    let cfg = DEFAULT_CONFIG;
    let contents: Vec<Vec<u8>> = (0..16)
        .map(|s| vec![s as u8 ^ 0x5A; keystamp_atecc::slot_size(s)])
        .collect();
    let slots: [&[u8]; 16] = std::array::from_fn(|i| contents[i].as_slice());
    let otp = [0x77u8; 64];
    let mut expected = Vec::new();
    for (content, key) in contents.iter().zip(cfg.key_config.iter()) {
        if !key.private() {
            expected.extend_from_slice(content);
        }
    }
    expected.extend_from_slice(&otp);
    // Only slot 0 is private in the default config; 1-7 are 7*36 bytes, 8-15 416 + 7*72.
    assert_eq!(expected.len(), 7 * 36 + 416 + 7 * 72 + 64);
    assert_eq!(
        data_lock_crc(&cfg, &slots, &otp),
        Ok(INDEPENDENT.checksum(&expected))
    );
    // Private slots may be passed empty.
    let mut slots2 = slots;
    slots2[0] = &[];
    assert_eq!(
        data_lock_crc(&cfg, &slots2, &otp),
        Ok(INDEPENDENT.checksum(&expected))
    );
    // A short non-private slot is an error.
    let mut slots3 = slots;
    slots3[10] = &contents[10][..71];
    assert_eq!(
        data_lock_crc(&cfg, &slots3, &otp),
        Err(DataCrcError::SlotLength { slot: 10, len: 71 })
    );
}

#[test]
fn default_config_lints_clean_and_matches_its_slot_map() {
    let r = lint(&DEFAULT_CONFIG);
    let all: Vec<String> = r.findings().map(|f| f.to_string()).collect();
    assert!(r.is_empty(), "{all:#?}");
    let c = DEFAULT_CONFIG;
    // Slot 0: P-256 private key, external Sign, never readable/writable in clear, and permanent
    // after the data lock: WriteConfig bit 1 (GenKey, 0x2000) and bit 2 (PrivWrite, 0x4000)
    // clear (reference §5.2); SlotConfig 0x0081 like TNGTLS's permanent slot 0 (0x0085, §7.2).
    let (s0, k0) = (c.slot_config[0], c.key_config[0]);
    assert_eq!(s0.0 & 0x6000, 0);
    assert!(k0.private() && k0.pub_info());
    assert_eq!(k0.key_type(), KeyType::P256);
    assert!(s0.is_secret() && s0.ext_sign() && !s0.gen_key_allowed());
    assert!(!s0.priv_write_allowed() && !s0.encrypt_read() && !s0.ecdh());
    // No other private key: nothing else signs caller-chosen digests.
    for s in 1..16 {
        assert!(!c.key_config[s].private(), "slot {s}");
    }
    // Cert slots: clear read, writable, lockable (KeyConfig bit 5); 11 holds a P-256 public key
    // that Verify stored mode can use without validation (Private 0, PubInfo 0, KeyType 4).
    for s in 10..13 {
        assert!(!c.slot_config[s].is_secret());
        assert_eq!(c.slot_config[s].write_mode(), WriteMode::Always);
        assert!(c.key_config[s].lockable() && !c.key_config[s].private());
        assert_ne!(c.key_config[s].0 & 0x0020, 0);
    }
    assert!(!c.key_config[11].pub_info());
    assert_eq!(c.key_config[11].key_type(), KeyType::P256);
    assert_eq!(c.i2c_address_7bit(), 0x60);
    assert!(!c.config_locked() && !c.data_locked());
    assert_eq!(c.counter(0), Some(0));
    assert_eq!(c.counter(1), Some(0));
}

#[test]
fn lint_findings_on_real_configs() {
    let Some(d) = dumps() else { return };
    // Blank: slot 1 ECDH to output in clear, slots 3-7 secret with EncryptRead.
    let blank = lint(&ConfigZone::from_bytes(&d.blank_608a));
    assert!(blank.has_slot(Rule::EcdhClearOutput, 1));
    assert!(!blank.has_slot(Rule::EcdhClearOutput, 2));
    assert!(blank.has_slot(Rule::KeyExportable, 3));
    // Slots 7 and 15 are SHA keys with LimitedUse (SlotConfig 0x8FAF).
    assert!(blank.has_slot(Rule::UnsupportedUsageLimit, 7));
    assert!(blank.has_slot(Rule::UnsupportedUsageLimit, 15));
    assert_eq!(
        blank.errors(),
        0,
        "{:?}",
        blank.findings().collect::<Vec<_>>()
    );
    // TNGTLS: certificates never updatable, IO protection, ECDH clear on slot 0.
    let tng = lint(&ConfigZone::from_bytes(&d.tngtls_608a));
    for s in 10..13 {
        assert!(tng.has_slot(Rule::CertSlotNeverUpdatable, s));
    }
    assert!(tng.has(Rule::IoProtection));
    assert!(tng.has_slot(Rule::EcdhClearOutput, 0));
    assert!(!tng.has(Rule::Slot0NotDeviceKey));
}

#[test]
fn lint_errors_for_dangerous_configs() {
    let base = DEFAULT_CONFIG;
    let mut c = base;
    c.slot_config[0].0 &= !0x0080; // not secret
    let r = lint(&c);
    assert!(r.has_slot(Rule::PrivateKeyNotSecret, 0));
    assert!(r.has_slot(Rule::Slot0NotDeviceKey, 0));
    assert_eq!(Rule::PrivateKeyNotSecret.severity(), Severity::Error);

    let mut c = base;
    c.key_config[0].0 = 0x003C; // slot 0 a data slot
    assert!(lint(&c).has_slot(Rule::Slot0NotDeviceKey, 0));

    // A private P-256 slot 1 (§5.3: Private bit 0, PubInfo bit 1, KeyType 4 in bits 4:2,
    // Lockable bit 5 → 0x0033), secret (SlotConfig bit 7), external Sign (bit 0).
    let with_key1 = |slot_config: u16, key_config: u16| {
        let mut c = base;
        c.slot_config[1].0 = slot_config;
        c.key_config[1].0 = key_config;
        c
    };
    // PrivWrite (WriteConfig bit 2, 0x4000) with write key slot 9 (clear).
    let c = with_key1(0x4000 | 0x0900 | 0x0081, 0x0033);
    assert!(lint(&c).has_slot(Rule::PrivateKeyClearWrite, 1));

    // GenKey-able (WriteConfig bit 1, 0x2000), not lockable.
    let c = with_key1(0x2081, 0x0013);
    assert!(lint(&c).has_slot(Rule::GenKeyNotLockable, 1));

    // Private with KeyType 6 (AES).
    let c = with_key1(0x0081, 0x0001 | (6 << 2));
    assert!(lint(&c).has_slot(Rule::PrivateKeyNotP256, 1));

    let mut c = base;
    c.slot_config[10].0 |= 0x0080;
    assert!(lint(&c).has_slot(Rule::CertSlotNotReadable, 10));

    let mut c = base;
    c.key_config[12].0 &= !0x0020;
    assert!(lint(&c).has_slot(Rule::CertSlotNotLockable, 12));

    let mut c = base;
    c.key_config[0].0 |= 0x0080;
    assert!(lint(&c).has_slot(Rule::UnsupportedReqAuth, 0));

    let mut c = base;
    c.i2c_address = 0xC1;
    assert!(lint(&c).has(Rule::I2cAddressInvalid));
    c.i2c_address = 0x00;
    assert!(lint(&c).has(Rule::I2cAddressInvalid));

    let mut c = base;
    c.chip_mode.0 = 0x08 << 3;
    assert!(lint(&c).has(Rule::ClockDividerInvalid));
    c.chip_mode.0 = (0x0D << 3) | 0x04;
    let r = lint(&c);
    assert!(!r.has(Rule::ClockDividerInvalid) && r.has(Rule::WatchdogLong));

    let mut c = base;
    c.x509_format[0].0 = 0x71;
    assert!(lint(&c).has(Rule::UnsupportedX509Format));
}

#[test]
fn rule_ids_are_stable_and_unique() {
    let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
    let expected: Vec<String> = (1..=Rule::ALL.len())
        .map(|n| format!("ATL{n:03}"))
        .collect();
    assert_eq!(ids, expected);
    for r in Rule::ALL {
        assert!(!r.explanation().is_empty() && !r.name().is_empty());
    }
}

/// Reference §5.2 / §5.3 bit values the production rules are written against.
mod bits {
    /// SlotConfig ReadKey bit 0 on a private-key slot: external Sign.
    pub const EXT_SIGN: u16 = 0x0001;
    /// SlotConfig ReadKey bit 1 on a private-key slot: internal Sign.
    pub const INT_SIGN: u16 = 0x0002;
    /// SlotConfig bit 7: IsSecret.
    pub const IS_SECRET: u16 = 0x0080;
    /// SlotConfig WriteConfig bit 1 on a private-key slot: GenKey after the data lock.
    pub const GENKEY: u16 = 0x2000;
    /// SlotConfig WriteConfig bit 2 on a private-key slot: PrivWrite.
    pub const PRIVWRITE: u16 = 0x4000;
    /// SlotConfig WriteConfig 0b1000: Never (for Write).
    pub const WRITE_NEVER: u16 = 0x8000;
    /// KeyConfig bit 0: Private.
    pub const PRIVATE: u16 = 0x0001;
    /// KeyConfig bit 1: PubInfo.
    pub const PUB_INFO: u16 = 0x0002;
    /// KeyConfig KeyType 4 (P-256) in bits 4:2.
    pub const P256: u16 = 4 << 2;
    /// KeyConfig KeyType 7 (data) in bits 4:2.
    pub const DATA: u16 = 7 << 2;
    /// KeyConfig bit 5: Lockable.
    pub const LOCKABLE: u16 = 0x0020;
    /// KeyConfig bit 7: ReqAuth.
    pub const REQ_AUTH: u16 = 0x0080;
}

/// The findings of `rule` in both profiles: (development severity, production severity), or
/// `None` where it does not fire.
fn severities(c: &ConfigZone, rule: Rule, slot: u8) -> (Option<Severity>, Option<Severity>) {
    let find = |p| {
        lint_in(c, p)
            .findings()
            .find(|f| f.rule == rule && f.slot == Some(slot))
            .map(|f| f.severity())
    };
    (
        find(LintProfile::Development),
        find(LintProfile::Production),
    )
}

#[test]
fn production_identity_rules_fire_on_reference_bits_and_not_on_the_default() {
    use Severity::{Error, Warning};
    use bits::*;
    let prod = lint_in(&DEFAULT_CONFIG, LintProfile::Production);
    let all: Vec<String> = prod.findings().map(|f| f.to_string()).collect();
    assert!(prod.is_empty(), "{all:#?}");
    let base = DEFAULT_CONFIG;
    let with = |slot: usize, slot_config: u16, key_config: u16| {
        let mut c = base;
        c.slot_config[slot].0 = slot_config;
        c.key_config[slot].0 = key_config;
        c
    };
    let device_key = PRIVATE | PUB_INFO | P256;

    // ATL019: the device key regenerable after the data lock (GenKey bit) or by PrivWrite.
    for extra in [GENKEY, PRIVWRITE, GENKEY | PRIVWRITE] {
        let c = with(0, IS_SECRET | EXT_SIGN | extra, device_key | LOCKABLE);
        assert_eq!(
            severities(&c, Rule::IdentityKeyRegenerable, 0),
            (Some(Warning), Some(Error)),
            "SlotConfig {extra:#06x}"
        );
    }
    // The previous default (0x2081 / 0x0033) is exactly such a key.
    let c = with(0, 0x2081, 0x0033);
    assert_eq!(lint_in(&c, LintProfile::Production).errors(), 1);

    // ATL010: certificate and trust-anchor slots not Lockable — writable (Always) or not.
    for slot in [10u8, 11, 12] {
        let key_type = if slot == 11 { P256 } else { DATA };
        for write in [0x0F0F, WRITE_NEVER | 0x0F0F] {
            let c = with(usize::from(slot), write, key_type);
            let (dev, prod) = severities(&c, Rule::CertSlotNotLockable, slot);
            assert_eq!(prod, Some(Error), "slot {slot} SlotConfig {write:#06x}");
            // Development: only a slot that stays writable is reported, as a warning.
            let want_dev = (write == 0x0F0F).then_some(Warning);
            assert_eq!(dev, want_dev, "slot {slot} SlotConfig {write:#06x}");
        }
    }

    // ATL020: the trust anchor private, not P-256, needing validation (PubInfo) or ReqAuth.
    for key_config in [
        PRIVATE | PUB_INFO | P256 | LOCKABLE,
        DATA | LOCKABLE,
        P256 | PUB_INFO | LOCKABLE,
        P256 | REQ_AUTH | LOCKABLE,
    ] {
        let c = with(11, 0x0F0F, key_config);
        assert_eq!(
            severities(&c, Rule::TrustAnchorUnusable, 11),
            (Some(Warning), Some(Error)),
            "KeyConfig {key_config:#06x}"
        );
    }
    // TNGTLS's signer public key slot (KeyConfig 0x0010, §7.2) is usable.
    let c = with(11, 0x0F0F, P256 | LOCKABLE);
    assert_eq!(severities(&c, Rule::TrustAnchorUnusable, 11), (None, None));

    // ATL021: a spare private key with external Sign (also when combined with internal Sign or
    // GenKey); an internal-sign-only key is fine.
    for slot in [1usize, 5, 9] {
        for slot_config in [
            IS_SECRET | EXT_SIGN,
            IS_SECRET | EXT_SIGN | INT_SIGN,
            IS_SECRET | EXT_SIGN | GENKEY,
        ] {
            let c = with(slot, slot_config, device_key | LOCKABLE);
            assert_eq!(
                severities(&c, Rule::SpareKeyExternalSign, slot as u8),
                (Some(Warning), Some(Error)),
                "slot {slot} SlotConfig {slot_config:#06x}"
            );
        }
        let c = with(slot, IS_SECRET | INT_SIGN, device_key | LOCKABLE);
        assert_eq!(
            severities(&c, Rule::SpareKeyExternalSign, slot as u8),
            (None, None)
        );
    }
    // The device key itself signs external digests: that is its job.
    assert!(!prod.has(Rule::SpareKeyExternalSign));
}

#[test]
fn production_profile_on_real_configs() {
    let Some(d) = dumps() else { return };
    // TNGTLS (§7.2): permanent slot 0, but slots 2-4 are GenKey-able external-Sign keys (0x2085)
    // and the certificate slots are not Lockable (KeyConfig 0x001C / 0x0010).
    let tng = lint_in(
        &ConfigZone::from_bytes(&d.tngtls_608a),
        LintProfile::Production,
    );
    assert!(!tng.has(Rule::IdentityKeyRegenerable));
    assert!(!tng.has(Rule::TrustAnchorUnusable));
    for s in 2..5 {
        assert!(tng.has_slot(Rule::SpareKeyExternalSign, s));
    }
    for s in 10..13 {
        assert!(tng.has_slot(Rule::CertSlotNotLockable, s));
    }
    // The factory blank (§7.1): slot 0 0x2083 is regenerable.
    let blank = lint_in(
        &ConfigZone::from_bytes(&d.blank_608a),
        LintProfile::Production,
    );
    assert!(blank.has_slot(Rule::IdentityKeyRegenerable, 0));
}

/// IO protection (docs/atecc.md "IO protection"): the variant sets exactly the ChipOptions bits
/// the reference names (§5.1: bit 1 IO protection enable, bits 9:8 ECDH and 11:10 KDF output
/// protection, bits 15:12 the key slot; value 0b01 = "encrypted only" per cryptoauthlib's
/// ChipOptions field) and the key slot's SlotConfig / KeyConfig (§5.2, §5.3); nothing else moves.
#[test]
fn io_protected_variant_sets_reference_bits_and_lints_clean() {
    use keystamp_atecc::default_config::io_protected_config_bytes;
    let b = io_protected_config_bytes(6).expect("slot 6 allowed");
    let want_opts: u16 = (1 << 1) | (0b01 << 8) | (0b01 << 10) | (6 << 12);
    assert_eq!(u16::from_le_bytes([b[90], b[91]]), want_opts);
    // SlotConfig[6] at 20 + 2*6: IsSecret (bit 7), EncryptRead (bit 6) clear, WriteConfig
    // (15:12) = 0b1000 Never.
    let sc = u16::from_le_bytes([b[32], b[33]]);
    assert_ne!(sc & (1 << 7), 0);
    assert_eq!(sc & (1 << 6), 0);
    assert_eq!(sc >> 12, 0b1000);
    // KeyConfig[6] at 96 + 2*6: Private (bit 0) clear, KeyType (4:2) = 7.
    let kc = u16::from_le_bytes([b[108], b[109]]);
    assert_eq!(kc & 1, 0);
    assert_eq!((kc >> 2) & 0x7, 7);
    for (i, (x, y)) in b.iter().zip(DEFAULT_CONFIG_BYTES.iter()).enumerate() {
        if ![32, 33, 90, 91, 108, 109].contains(&i) {
            assert_eq!(x, y, "byte {i} changed");
        }
    }
    let zone = ConfigZone::from_bytes(&b);
    assert!(zone.chip_options.io_protection());
    assert_eq!(zone.chip_options.io_key(), 6);
    for profile in [LintProfile::Development, LintProfile::Production] {
        let r = lint_in(&zone, profile);
        assert!(r.is_empty(), "{:#?}", r.findings().collect::<Vec<_>>());
    }
    // The device key and the certificate / anchor slots never hold the IO key.
    for slot in [0u8, 10, 11, 12, 16] {
        assert!(io_protected_config_bytes(slot).is_none(), "slot {slot}");
    }
}

/// ATL022 fires for every way the IO key could leave or be replaced, and only with IO
/// protection enabled; ATL014 for output protection that does not match the key.
#[test]
fn io_key_exposed_and_mismatched_output_protection_are_flagged() {
    use keystamp_atecc::default_config::io_protected_config_bytes;
    let base = ConfigZone::from_bytes(&io_protected_config_bytes(6).unwrap());
    let exposed = |c: &ConfigZone| lint(c).has_slot(Rule::IoKeyExposed, 6);
    let mut c = base;
    c.slot_config[6].0 &= !(1 << 7); // readable in clear
    assert!(exposed(&c));
    let mut c = base;
    c.slot_config[6].0 |= 1 << 6; // EncryptRead: exportable
    assert!(exposed(&c));
    let mut c = base;
    c.slot_config[6].0 &= 0x0FFF; // WriteConfig Always, KeyConfig not Lockable
    assert!(exposed(&c));
    c.key_config[6].0 |= 1 << 5; // ... Lockable: the host can freeze it
    assert!(!exposed(&c));
    let mut c = base;
    c.chip_options.0 = (c.chip_options.0 & 0x0FFF) | (11 << 12); // the trust anchor as IO key
    assert!(lint(&c).has_slot(Rule::IoKeyExposed, 11));
    assert_eq!(Rule::IoKeyExposed.severity(), Severity::Error);
    // Without IO protection the slot is just a secret: no finding.
    let mut c = base;
    c.chip_options.0 = 0;
    c.slot_config[6].0 &= !(1 << 7);
    assert!(!lint(&c).has(Rule::IoKeyExposed));
    // ATL014: key enabled but ECDH output still allowed in clear; protection without the key;
    // the reserved value.
    let mut c = base;
    c.chip_options.0 &= !(0b11 << 8);
    assert!(lint(&c).has(Rule::IoProtection));
    let mut c = DEFAULT_CONFIG;
    c.chip_options.0 = 0b01 << 10;
    assert!(lint(&c).has(Rule::IoProtection));
    let mut c = base;
    c.chip_options.0 |= 0b11 << 8;
    assert!(lint(&c).has(Rule::IoProtection));
}
