//! GenKey, PrivWrite, Write and Lock(slot) for every SlotConfig.WriteConfig value the reference
//! lists, before the data lock, after it, and after a slot lock — expectations written from the
//! reference's tables (shared/reference/atecc608.md §5.2, §5.3, §6.3, §6.4), not from keystamp's
//! default config:
//!
//! * §5.2 WriteConfig for Write: `x1xx` Encrypt, `1xxx` / `xx1x` Never, `0001` PubInvalid,
//!   `0000` Always; for private-key slots bit 1 (0x2000) lets GenKey create a new key and bit 2
//!   (0x4000) allows (encrypted) PrivWrite.
//! * §6.3: between the config and data locks GenKey runs on any P-256 private slot (the GenKey bit
//!   is not required), data writes are 32-byte clear writes whatever WriteConfig says, private
//!   slots refuse Write; after the data lock GenKey needs WriteConfig & 0x2 and a slot that is
//!   not slot-locked; Lock(slot) needs Lockable and an unlocked slot.
//! * §6.4: after the data lock a slot-locked slot refuses Write; a private slot refuses Write;
//!   clear writes follow WriteConfig.
//!
//! Every refusal is also checked for having changed nothing (public key, slot contents).

mod common;

use common::*;

const OK: u8 = 0x00;
const EXEC: u8 = 0x0F;

/// WriteConfig values (bits 15:12) the reference names: Always, PubInvalid, the GenKey bit /
/// Never `xx1x`, the PrivWrite bit / Encrypt `x1xx`, GenKey + PrivWrite, Never `1xxx`, and
/// Never with the GenKey bit.
const WRITE_CONFIGS: [u16; 7] = [0x0, 0x1, 0x2, 0x4, 0x6, 0x8, 0xA];

/// Private-key slots 0–6 carry `WRITE_CONFIGS[n]`; slot 7 has the GenKey bit and is slot-locked
/// later. KeyConfig 0x0033: Private, PubInfo, KeyType 4 (P-256), Lockable (§5.3). SlotConfig
/// low byte 0x83: external + internal Sign, IsSecret (§5.2).
const KEY_SLOTS: std::ops::Range<u16> = 0..8;
/// Data slots 8–14 carry `WRITE_CONFIGS[n - 8]`; slot 15 is Always and slot-locked later.
/// KeyConfig 0x003C: KeyType 7 (data), Lockable. SlotConfig low byte 0x00: clear read.
const DATA_SLOTS: std::ops::Range<u16> = 8..16;
/// KeyConfig of the private-key slots and of the data slots.
const KEY_CONFIG_PRIVATE: u16 = 0x0033;
const KEY_CONFIG_DATA: u16 = 0x003C;

fn write_config_of(slot: u16) -> u16 {
    match slot {
        0..=6 => WRITE_CONFIGS[usize::from(slot)],
        7 => 0x2,
        8..=14 => WRITE_CONFIGS[usize::from(slot - 8)],
        _ => 0x0,
    }
}

fn slot_config_of(slot: u16) -> u16 {
    let low = if KEY_SLOTS.contains(&slot) {
        0x0083
    } else {
        0x0000
    };
    (write_config_of(slot) << 12) | low
}

/// The factory config (§7.1) with the slot layout above; config zone locked with its CRC.
fn config_locked_chip(seed: u64) -> Host {
    let mut h = Host::new(seed);
    let mut cfg = h.read_config();
    for slot in 0..16u16 {
        let s = usize::from(slot);
        let kc = if KEY_SLOTS.contains(&slot) {
            KEY_CONFIG_PRIVATE
        } else {
            KEY_CONFIG_DATA
        };
        cfg[20 + 2 * s..22 + 2 * s].copy_from_slice(&slot_config_of(slot).to_le_bytes());
        cfg[96 + 2 * s..98 + 2 * s].copy_from_slice(&kc.to_le_bytes());
    }
    h.write_config_bytes(&cfg);
    assert_eq!(h.lock_config_crc(), OK);
    h
}

/// PrivWrite data: 4 pad bytes, the 32-byte scalar, 32-byte MAC (zero for clear writes) (§4.2).
fn priv_write_data(scalar: u8) -> Vec<u8> {
    let mut d = vec![0u8; 68];
    d[4..36].fill(scalar);
    d
}

fn public_key(h: &mut Host, slot: u16) -> Vec<u8> {
    let p = h.cmd(op::GENKEY, 0x00, slot, &[]);
    assert_eq!(p.len(), 64, "GenKey public slot {slot}");
    p
}

fn write_block0(h: &mut Host, slot: u16, fill: u8) -> u8 {
    h.status(op::WRITE, 0x82, Host::data_addr(slot, 0, 0), &[fill; 32])
}

fn write_word0(h: &mut Host, slot: u16, fill: u8) -> u8 {
    h.status(op::WRITE, 0x02, Host::data_addr(slot, 0, 0), &[fill; 4])
}

fn read_block0(h: &mut Host, slot: u16) -> Vec<u8> {
    h.cmd(op::READ, 0x82, Host::data_addr(slot, 0, 0), &[])
}

/// One outcome per row, collected so a failure lists every deviation at once.
struct Table(Vec<String>);

impl Table {
    fn expect(&mut self, what: String, got: u8, want: u8) {
        if got != want {
            self.0
                .push(format!("{what}: expected {want:#04x}, got {got:#04x}"));
        }
    }
    fn expect_data(&mut self, what: String, got: &[u8], len: usize) {
        if got.len() != len {
            self.0
                .push(format!("{what}: expected {len} bytes, got {got:02X?}"));
        }
    }
    fn check(self) {
        assert!(
            self.0.is_empty(),
            "{} deviations from the reference:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

#[test]
fn before_the_data_lock_write_config_is_not_enforced() {
    let mut h = config_locked_chip(301);
    let mut t = Table(Vec::new());
    for slot in KEY_SLOTS {
        let wc = write_config_of(slot);
        // §6.3: GenKey on any P-256 private slot, WriteConfig GenKey bit not required.
        let got = h.cmd(op::GENKEY, 0x04, slot, &[]);
        t.expect_data(
            format!("GenKey slot {slot} (WriteConfig {wc:#x})"),
            &got,
            64,
        );
        // §4.2 [INF]: clear PrivWrite before the data lock.
        let got = h.status(op::PRIVWRITE, 0x00, slot, &priv_write_data(0x21));
        t.expect(
            format!("PrivWrite clear slot {slot} (WriteConfig {wc:#x})"),
            got,
            OK,
        );
        // §6.3: private-key slots refuse Write in every state.
        let got = write_block0(&mut h, slot, 0x11);
        t.expect(format!("Write private slot {slot}"), got, EXEC);
    }
    for slot in DATA_SLOTS {
        let wc = write_config_of(slot);
        // §6.3: 32-byte clear writes only, WriteConfig not enforced.
        let got = write_block0(&mut h, slot, 0x11);
        t.expect(
            format!("Write 32 slot {slot} (WriteConfig {wc:#x})"),
            got,
            OK,
        );
        let got = write_word0(&mut h, slot, 0x11);
        t.expect(
            format!("Write 4 slot {slot} (WriteConfig {wc:#x})"),
            got,
            EXEC,
        );
    }
    // §6.3: Lock(slot) needs the data lock.
    t.expect(
        "Lock slot 15 before data lock".into(),
        h.status(op::LOCK, 0x02 | (15 << 2), 0, &[]),
        EXEC,
    );
    t.check();
}

#[test]
fn after_the_data_lock_and_after_slot_locks() {
    let mut h = config_locked_chip(302);
    for slot in KEY_SLOTS {
        assert_eq!(h.genkey(slot).len(), 64);
    }
    for slot in DATA_SLOTS {
        assert_eq!(write_block0(&mut h, slot, 0x11), OK);
    }
    assert_eq!(h.status(op::LOCK, 0x81, 0, &[]), OK);
    let mut t = Table(Vec::new());

    // Private-key slots after the data lock.
    for slot in KEY_SLOTS {
        let wc = write_config_of(slot);
        let before = public_key(&mut h, slot);
        // §6.4: clear PrivWrite is gone after the data lock; encrypted PrivWrite needs
        // WriteConfig bit 2 — without it the slot refuses even a well-formed encrypted write.
        let got = h.status(op::PRIVWRITE, 0x00, slot, &priv_write_data(0x22));
        t.expect(
            format!("PrivWrite clear slot {slot} (WriteConfig {wc:#x})"),
            got,
            EXEC,
        );
        if wc & 0x4 == 0 {
            let got = h.status(op::PRIVWRITE, 0x40, slot, &priv_write_data(0x22));
            t.expect(
                format!("PrivWrite encrypted slot {slot} (WriteConfig {wc:#x})"),
                got,
                EXEC,
            );
        }
        let got = write_block0(&mut h, slot, 0x33);
        t.expect(format!("Write private slot {slot}"), got, EXEC);
        if slot == 7 {
            continue; // GenKey-able; slot-locked below first
        }
        // §6.4: GenKey needs WriteConfig & 0x2 once the data is locked.
        let got = h.cmd(op::GENKEY, 0x04, slot, &[]);
        if wc & 0x2 != 0 {
            t.expect_data(
                format!("GenKey slot {slot} (WriteConfig {wc:#x})"),
                &got,
                64,
            );
        } else {
            t.expect(
                format!("GenKey slot {slot} (WriteConfig {wc:#x})"),
                got[0],
                EXEC,
            );
            if public_key(&mut h, slot) != before {
                t.0.push(format!("refused GenKey changed the key in slot {slot}"));
            }
        }
    }

    // Data slots after the data lock: clear writes follow WriteConfig (§5.2, §6.4).
    for slot in DATA_SLOTS {
        let wc = write_config_of(slot);
        let always = wc == 0x0;
        let want = if always { OK } else { EXEC };
        let got = write_block0(&mut h, slot, 0x44);
        t.expect(
            format!("Write 32 slot {slot} (WriteConfig {wc:#x})"),
            got,
            want,
        );
        let got = write_word0(&mut h, slot, 0x55);
        t.expect(
            format!("Write 4 slot {slot} (WriteConfig {wc:#x})"),
            got,
            want,
        );
        let mut expected = vec![if always { 0x44 } else { 0x11 }; 32];
        if always {
            expected[..4].fill(0x55);
        }
        if read_block0(&mut h, slot) != expected {
            t.0.push(format!("slot {slot} contents after the writes"));
        }
    }

    // Slot locks (§6.3): Lockable and still unlocked → OK; again → 0x0F.
    for slot in [7u16, 15] {
        let mode = 0x02 | ((slot as u8) << 2);
        t.expect(
            format!("Lock slot {slot}"),
            h.status(op::LOCK, mode, 0, &[]),
            OK,
        );
        t.expect(
            format!("Lock slot {slot} again"),
            h.status(op::LOCK, mode, 0, &[]),
            EXEC,
        );
    }
    // After the slot lock: GenKey refused despite the GenKey bit (§6.3 DS "If the slot has been
    // locked, this command returns an error"), PrivWrite and Write refused (§6.4 SlotLocked).
    let before = public_key(&mut h, 7);
    let got = h.cmd(op::GENKEY, 0x04, 7, &[]);
    t.expect(
        "GenKey slot 7 after slot lock (GenKey bit)".into(),
        got[0],
        EXEC,
    );
    let got = h.status(op::PRIVWRITE, 0x00, 7, &priv_write_data(0x23));
    t.expect("PrivWrite slot 7 after slot lock".into(), got, EXEC);
    if public_key(&mut h, 7) != before {
        t.0.push("slot-locked key changed".into());
    }
    let contents = read_block0(&mut h, 15);
    t.expect(
        "Write 32 slot 15 after slot lock (Always)".into(),
        write_block0(&mut h, 15, 0x66),
        EXEC,
    );
    t.expect(
        "Write 4 slot 15 after slot lock (Always)".into(),
        write_word0(&mut h, 15, 0x66),
        EXEC,
    );
    if read_block0(&mut h, 15) != contents {
        t.0.push("slot-locked data changed".into());
    }
    // The slot-locked key's public key is still there (the lock freezes, it does not erase).
    t.expect_data(
        "GenKey public slot 7 after slot lock".into(),
        &public_key(&mut h, 7),
        64,
    );
    t.check();
}

#[test]
fn lock_slot_needs_lockable() {
    // §6.3: Lock(slot) on a slot whose KeyConfig.Lockable = 0 → 0x0F, for a private key
    // (0x0013) and a data slot (0x001C) alike; config lock state unchanged.
    let mut h = Host::new(303);
    let mut cfg = h.read_config();
    cfg[96..98].copy_from_slice(&0x0013u16.to_le_bytes());
    cfg[20..22].copy_from_slice(&0x2083u16.to_le_bytes());
    cfg[96 + 2 * 9..98 + 2 * 9].copy_from_slice(&0x001Cu16.to_le_bytes());
    cfg[20 + 2 * 9..22 + 2 * 9].copy_from_slice(&0x0000u16.to_le_bytes());
    h.write_config_bytes(&cfg);
    assert_eq!(h.lock_config_crc(), OK);
    assert_eq!(h.genkey(0).len(), 64);
    assert_eq!(h.status(op::LOCK, 0x81, 0, &[]), OK);
    let slot_locked = |h: &mut Host| h.cmd(op::READ, 0x00, (2 << 3) | 6, &[])[..2].to_vec();
    let before = slot_locked(&mut h);
    assert_eq!(h.status(op::LOCK, 0x02, 0, &[]), EXEC, "slot 0");
    assert_eq!(h.status(op::LOCK, 0x02 | (9 << 2), 0, &[]), EXEC, "slot 9");
    assert_eq!(slot_locked(&mut h), before);
    assert_eq!(before, [0xFF, 0xFF]);
}
