//! Table-driven tests of the lock-state matrix (reference §6.3) and the slot policies once data
//! is locked (§6.4). Every row names its source tag from the reference.

mod common;

use Stage::*;
use common::*;
use keystamp_atecc_sim::crc::crc16;

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A 4-byte status group with this code.
    Status(u8),
    /// A data response of this many bytes.
    Data(usize),
}

struct Row {
    tag: &'static str,
    stage: Stage,
    what: &'static str,
    run: fn(&mut Host) -> Vec<u8>,
    expect: Expect,
}

const OK: Expect = Expect::Status(0x00);
const EXEC: Expect = Expect::Status(0x0F);
const PARSE: Expect = Expect::Status(0x03);

fn addr(slot: u16, block: u16, word: u16) -> u16 {
    Host::data_addr(slot, block, word)
}

fn check(rows: &[Row]) {
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let mut h = host_at(row.stage, 100 + i as u64);
        let got = (row.run)(&mut h);
        let pass = match row.expect {
            Expect::Status(code) => got == [code],
            Expect::Data(len) => got.len() == len && len > 1,
        };
        if !pass {
            failures.push(format!(
                "[{}] {:?}: {} → expected {:?}, got {:02X?}",
                row.tag, row.stage, row.what, row.expect, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn lock_state_matrix() {
    let rows = [
        // Read config
        Row {
            tag: "§6.3",
            stage: Unlocked,
            what: "read config 32",
            run: |h| h.cmd(op::READ, 0x80, 0, &[]),
            expect: Expect::Data(32),
        },
        Row {
            tag: "§6.3",
            stage: ConfigLocked,
            what: "read config 4",
            run: |h| h.cmd(op::READ, 0x00, 0x15, &[]),
            expect: Expect::Data(4),
        },
        Row {
            tag: "§6.3",
            stage: BothLocked,
            what: "read config 32",
            run: |h| h.cmd(op::READ, 0x80, 3 << 3, &[]),
            expect: Expect::Data(32),
        },
        // Write config
        Row {
            tag: "§6.3",
            stage: Unlocked,
            what: "write config word 4 (bytes 16–19)",
            run: |h| h.cmd(op::WRITE, 0x00, 4, &[0xC0, 0, 0, 0]),
            expect: OK,
        },
        Row {
            tag: "§6.3",
            stage: ConfigLocked,
            what: "write config word 4",
            run: |h| h.cmd(op::WRITE, 0x00, 4, &[0xC0, 0, 0, 0]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: BothLocked,
            what: "write config block 3",
            run: |h| h.cmd(op::WRITE, 0x80, 3 << 3, &[0; 32]),
            expect: EXEC,
        },
        Row {
            tag: "§5.1 [INF]",
            stage: Unlocked,
            what: "write config word 0 (SN)",
            run: |h| h.cmd(op::WRITE, 0x00, 0, &[1, 2, 3, 4]),
            expect: EXEC,
        },
        Row {
            tag: "§5.1 [INF]",
            stage: Unlocked,
            what: "write config block 0 (32 B incl. SN/RevNum)",
            run: |h| h.cmd(op::WRITE, 0x80, 0, &[0; 32]),
            expect: EXEC,
        },
        Row {
            tag: "§5.1 [INF]",
            stage: Unlocked,
            what: "write config word 0x15 (bytes 84–87)",
            run: |h| h.cmd(op::WRITE, 0x00, 0x15, &[0, 0, 0x55, 0x55]),
            expect: EXEC,
        },
        Row {
            tag: "§5.1 [CAL]",
            stage: Unlocked,
            what: "write SlotLocked word (0x16)",
            run: |h| h.cmd(op::WRITE, 0x00, 0x16, &[0xFF, 0xFF, 0, 0]),
            expect: OK,
        },
        Row {
            tag: "§3 [CAL]",
            stage: Unlocked,
            what: "write with bad param1 bits",
            run: |h| h.cmd(op::WRITE, 0x04, 4, &[0; 4]),
            expect: PARSE,
        },
        // Read data / OTP
        Row {
            tag: "§6.3 [CAL test]",
            stage: Unlocked,
            what: "read data slot 8",
            run: |h| h.cmd(op::READ, 0x82, addr(8, 0, 0), &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [CAL test read_zone]",
            stage: ConfigLocked,
            what: "read data slot 8",
            run: |h| h.cmd(op::READ, 0x82, addr(8, 0, 0), &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3/§6.4",
            stage: BothLocked,
            what: "read data slot 8",
            run: |h| h.cmd(op::READ, 0x82, addr(8, 0, 0), &[]),
            expect: Expect::Data(32),
        },
        Row {
            tag: "§6.3 [INF]",
            stage: Unlocked,
            what: "read OTP",
            run: |h| h.cmd(op::READ, 0x81, 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: ConfigLocked,
            what: "read OTP",
            run: |h| h.cmd(op::READ, 0x81, 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: BothLocked,
            what: "read OTP 32",
            run: |h| h.cmd(op::READ, 0x81, 1 << 3, &[]),
            expect: Expect::Data(32),
        },
        // Write data
        Row {
            tag: "§6.3 [forum]",
            stage: Unlocked,
            what: "write data slot 8 (32 B)",
            run: |h| h.cmd(op::WRITE, 0x82, addr(8, 0, 0), &[1; 32]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [CAL tests]",
            stage: ConfigLocked,
            what: "write data slot 8 (32 B)",
            run: |h| h.cmd(op::WRITE, 0x82, addr(8, 0, 0), &[1; 32]),
            expect: OK,
        },
        Row {
            tag: "§6.3 [CAL tests]",
            stage: ConfigLocked,
            what: "write data slot 8 (4 B)",
            run: |h| h.cmd(op::WRITE, 0x02, addr(8, 0, 1), &[1; 4]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [CAL tests]",
            stage: ConfigLocked,
            what: "write private-key slot 0",
            run: |h| h.cmd(op::WRITE, 0x82, addr(0, 0, 0), &[1; 32]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: ConfigLocked,
            what: "write to never-write slot 14 before data lock (WriteConfig not enforced)",
            run: |h| h.cmd(op::WRITE, 0x82, addr(14, 0, 0), &[1; 32]),
            expect: OK,
        },
        Row {
            tag: "§3 [CAL test write_invalid_block_len]",
            stage: ConfigLocked,
            what: "32 B write into block 2 of slot 10 (8 B exist)",
            run: |h| h.cmd(op::WRITE, 0x82, addr(10, 2, 0), &[1; 32]),
            expect: OK,
        },
        Row {
            tag: "§3 [CAL test write_invalid_block]",
            stage: ConfigLocked,
            what: "write block 1 of 36-byte slot... slot 3 block 2",
            run: |h| h.cmd(op::WRITE, 0x82, addr(3, 2, 0), &[1; 32]),
            expect: EXEC,
        },
        // OTP writes
        Row {
            tag: "§6.3 [INF]",
            stage: Unlocked,
            what: "write OTP",
            run: |h| h.cmd(op::WRITE, 0x81, 0, &[1; 32]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: ConfigLocked,
            what: "write OTP 32 B",
            run: |h| h.cmd(op::WRITE, 0x81, 0, &[1; 32]),
            expect: OK,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: ConfigLocked,
            what: "write OTP 4 B",
            run: |h| h.cmd(op::WRITE, 0x01, 0, &[1; 4]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: BothLocked,
            what: "write OTP",
            run: |h| h.cmd(op::WRITE, 0x81, 0, &[1; 32]),
            expect: EXEC,
        },
        // Random, Info, Nonce, SHA, SelfTest
        Row {
            tag: "§6.3 [DS/CAL]",
            stage: Unlocked,
            what: "Random",
            run: |h| h.cmd(op::RANDOM, 0, 0, &[]),
            expect: Expect::Data(32),
        },
        Row {
            tag: "§6.3 [INF]",
            stage: Unlocked,
            what: "Info revision",
            run: |h| h.cmd(op::INFO, 0, 0, &[]),
            expect: Expect::Data(4),
        },
        Row {
            tag: "§6.3 [INF]",
            stage: Unlocked,
            what: "Nonce fixed",
            run: |h| h.cmd(op::NONCE, 0x03, 0, &[0; 32]),
            expect: OK,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: Unlocked,
            what: "Nonce random",
            run: |h| h.cmd(op::NONCE, 0x00, 0, &[0; 20]),
            expect: Expect::Data(32),
        },
        Row {
            tag: "§6.3 [INF]",
            stage: Unlocked,
            what: "SHA start",
            run: |h| h.cmd(op::SHA, 0x00, 0, &[]),
            expect: OK,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: BothLocked,
            what: "SelfTest",
            run: |h| h.cmd(op::SELFTEST, 0x3B, 0, &[]),
            expect: OK,
        },
        // Counter
        Row {
            tag: "§6.3 [CAL test]",
            stage: Unlocked,
            what: "Counter read",
            run: |h| h.cmd(op::COUNTER, 0, 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: ConfigLocked,
            what: "Counter increment",
            run: |h| h.cmd(op::COUNTER, 1, 0, &[]),
            expect: Expect::Data(4),
        },
        Row {
            tag: "§6.3",
            stage: BothLocked,
            what: "Counter read",
            run: |h| h.cmd(op::COUNTER, 0, 1, &[]),
            expect: Expect::Data(4),
        },
        Row {
            tag: "§6.4 [CAL test]",
            stage: BothLocked,
            what: "Counter id 2",
            run: |h| h.cmd(op::COUNTER, 0, 2, &[]),
            expect: PARSE,
        },
        // UpdateExtra
        Row {
            tag: "§6.3 [CAL calib_write_config_zone]",
            stage: Unlocked,
            what: "UpdateExtra(0, 0) while byte 84 is 0",
            run: |h| h.cmd(op::UPDATE_EXTRA, 0, 0, &[]),
            expect: OK,
        },
        Row {
            tag: "§6.3 [CAL]",
            stage: Unlocked,
            what: "UpdateExtra(1, 0xC2) while byte 85 is 0",
            run: |h| h.cmd(op::UPDATE_EXTRA, 1, 0xC2, &[]),
            expect: OK,
        },
        Row {
            tag: "§6.4 [DS updated once]",
            stage: ConfigLocked,
            what: "UpdateExtra twice",
            run: |h| {
                h.cmd(op::UPDATE_EXTRA, 0, 0x5A, &[]);
                h.cmd(op::UPDATE_EXTRA, 0, 0x5B, &[])
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: BothLocked,
            what: "UpdateExtra while byte is 0",
            run: |h| h.cmd(op::UPDATE_EXTRA, 0, 0x5A, &[]),
            expect: OK,
        },
        // GenKey
        Row {
            tag: "§6.3",
            stage: Unlocked,
            what: "GenKey private slot 0",
            run: |h| h.cmd(op::GENKEY, 0x04, 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [CAL test comment]",
            stage: ConfigLocked,
            what: "GenKey private slot 6 (no GenKey bit)",
            run: |h| h.cmd(op::GENKEY, 0x04, 6, &[]),
            expect: Expect::Data(64),
        },
        Row {
            tag: "§6.3 [DS]",
            stage: BothLocked,
            what: "GenKey private slot 0 (GenKey bit)",
            run: |h| h.cmd(op::GENKEY, 0x04, 0, &[]),
            expect: Expect::Data(64),
        },
        Row {
            tag: "§6.3 [DS TNGTLS]",
            stage: BothLocked,
            what: "GenKey private slot 6 (no GenKey bit)",
            run: |h| h.cmd(op::GENKEY, 0x04, 6, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [DS]",
            stage: BothLocked,
            what: "GenKey private slot 0 after slot lock",
            run: |h| {
                h.cmd(op::LOCK, 0x02, 0, &[]);
                h.cmd(op::GENKEY, 0x04, 0, &[])
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: ConfigLocked,
            what: "GenKey private on data slot 8",
            run: |h| h.cmd(op::GENKEY, 0x04, 8, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: Unlocked,
            what: "GenKey public slot 0",
            run: |h| h.cmd(op::GENKEY, 0x00, 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: ConfigLocked,
            what: "GenKey public slot 0",
            run: |h| h.cmd(op::GENKEY, 0x00, 0, &[]),
            expect: Expect::Data(64),
        },
        Row {
            tag: "§6.3 [DS TNGTLS]",
            stage: BothLocked,
            what: "GenKey public slot 0",
            run: |h| h.cmd(op::GENKEY, 0x00, 0, &[]),
            expect: Expect::Data(64),
        },
        // Sign / ECDH / Verify
        Row {
            tag: "§6.3",
            stage: Unlocked,
            what: "Sign ext slot 0",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::SIGN, 0x80, 0, &[])
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: ConfigLocked,
            what: "Sign ext slot 0",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::SIGN, 0x80, 0, &[])
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.3/§6.4",
            stage: BothLocked,
            what: "Sign ext slot 0",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::SIGN, 0x80, 0, &[])
            },
            expect: Expect::Data(64),
        },
        Row {
            tag: "§6.3 [INF]",
            stage: ConfigLocked,
            what: "ECDH slot 1",
            run: |h| h.cmd(op::ECDH, 0x00, 1, &host_point()),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: Unlocked,
            what: "Verify external",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::VERIFY, 0x02, 4, &verify_data())
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: ConfigLocked,
            what: "Verify external",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::VERIFY, 0x02, 4, &verify_data())
            },
            expect: OK,
        },
        Row {
            tag: "§6.3",
            stage: BothLocked,
            what: "Verify external",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::VERIFY, 0x02, 4, &verify_data())
            },
            expect: OK,
        },
        // Lock
        Row {
            tag: "§6.3",
            stage: Unlocked,
            what: "Lock config, no CRC (0x80)",
            run: |h| h.cmd(op::LOCK, 0x80, 0, &[]),
            expect: OK,
        },
        Row {
            tag: "§6.3 [INF mismatch → 0x0F]",
            stage: Unlocked,
            what: "Lock config, wrong CRC",
            run: |h| h.cmd(op::LOCK, 0x00, 0x1234, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: ConfigLocked,
            what: "Lock config again",
            run: |h| h.cmd(op::LOCK, 0x80, 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: BothLocked,
            what: "Lock config again",
            run: |h| h.cmd(op::LOCK, 0x80, 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: Unlocked,
            what: "Lock data (0x81)",
            run: |h| h.cmd(op::LOCK, 0x81, 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3",
            stage: ConfigLocked,
            what: "Lock data, no CRC",
            run: |h| h.cmd(op::LOCK, 0x81, 0, &[]),
            expect: OK,
        },
        Row {
            tag: "§6.3 [INF mismatch → 0x0F]",
            stage: ConfigLocked,
            what: "Lock data, wrong CRC",
            run: |h| h.cmd(op::LOCK, 0x01, 0xBEEF, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [CAL atcab_lock_data_zone_crc]",
            stage: ConfigLocked,
            what: "Lock data with CRC skipping private slots",
            run: lock_data_with_crc,
            expect: OK,
        },
        Row {
            tag: "§6.3",
            stage: BothLocked,
            what: "Lock data again",
            run: |h| h.cmd(op::LOCK, 0x81, 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [CAL]",
            stage: Unlocked,
            what: "Lock with bit 6 set",
            run: |h| h.cmd(op::LOCK, 0xC0, 0, &[]),
            expect: PARSE,
        },
        Row {
            tag: "§6.3",
            stage: Unlocked,
            what: "Lock slot 8",
            run: |h| h.cmd(op::LOCK, 0x02 | (8 << 2), 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [INF]",
            stage: ConfigLocked,
            what: "Lock slot 8",
            run: |h| h.cmd(op::LOCK, 0x02 | (8 << 2), 0, &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [CAL calib_lock_data_slot]",
            stage: BothLocked,
            what: "Lock slot 8 (param2 0, CRC not checked)",
            run: |h| h.cmd(op::LOCK, 0x02 | (8 << 2), 0, &[]),
            expect: OK,
        },
        Row {
            tag: "§6.3",
            stage: BothLocked,
            what: "Lock slot 8 twice",
            run: |h| {
                h.cmd(op::LOCK, 0x22, 0, &[]);
                h.cmd(op::LOCK, 0x22, 0, &[])
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.3 [issue #370]",
            stage: BothLocked,
            what: "Lock slot 7 (not lockable)",
            run: |h| h.cmd(op::LOCK, 0x02 | (7 << 2), 0, &[]),
            expect: EXEC,
        },
    ];
    check(&rows);
}

#[test]
fn slot_policies_after_data_lock() {
    let rows = [
        // Read
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "read clear slot 8, 4 B",
            run: |h| h.cmd(op::READ, 0x02, addr(8, 3, 5), &[]),
            expect: Expect::Data(4),
        },
        Row {
            tag: "§6.4 [DS]",
            stage: BothLocked,
            what: "read secret slot 4 (IsSecret, no EncryptRead)",
            run: |h| h.cmd(op::READ, 0x82, addr(4, 0, 0), &[]),
            expect: EXEC,
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "read private-key slot 0",
            run: |h| h.cmd(op::READ, 0x82, addr(0, 0, 0), &[]),
            expect: EXEC,
        },
        Row {
            tag: "§3 [CAL calib_read_pubkey]",
            stage: BothLocked,
            what: "32 B read of block 2 of 72-byte slot 13",
            run: |h| h.cmd(op::READ, 0x82, addr(13, 2, 0), &[]),
            expect: Expect::Data(32),
        },
        Row {
            tag: "§3 [CAL test write_invalid_block: 0x03 or 0x0F]",
            stage: BothLocked,
            what: "read slot 8 block 13",
            run: |h| h.cmd(op::READ, 0x82, addr(8, 13, 0), &[]),
            expect: PARSE,
        },
        Row {
            tag: "§3 [INF]",
            stage: BothLocked,
            what: "4 B read past end of slot 9 (block 2 word 2)",
            run: |h| h.cmd(op::READ, 0x02, addr(9, 2, 2), &[]),
            expect: EXEC,
        },
        // Write
        Row {
            tag: "§5.2 Always",
            stage: BothLocked,
            what: "write slot 8, 4 B",
            run: |h| h.cmd(op::WRITE, 0x02, addr(8, 1, 3), &[9; 4]),
            expect: OK,
        },
        Row {
            tag: "§5.2 Always",
            stage: BothLocked,
            what: "write slot 9, 32 B",
            run: |h| h.cmd(op::WRITE, 0x82, addr(9, 1, 0), &[9; 32]),
            expect: OK,
        },
        Row {
            tag: "§5.2 Never",
            stage: BothLocked,
            what: "write slot 14 (WriteConfig 1000)",
            run: |h| h.cmd(op::WRITE, 0x82, addr(14, 0, 0), &[9; 32]),
            expect: EXEC,
        },
        Row {
            tag: "§5.2 Never",
            stage: BothLocked,
            what: "write factory secret slot 5 (WriteConfig 1000)",
            run: |h| h.cmd(op::WRITE, 0x02, addr(5, 0, 0), &[9; 4]),
            expect: EXEC,
        },
        Row {
            tag: "§5.2 Encrypt",
            stage: BothLocked,
            what: "clear write slot 12 (WriteConfig 0100)",
            run: |h| h.cmd(op::WRITE, 0x82, addr(12, 0, 0), &[9; 32]),
            expect: EXEC,
        },
        Row {
            tag: "§5.2 Encrypt",
            stage: BothLocked,
            what: "encrypted 4 B write",
            run: |h| h.cmd(op::WRITE, 0x42, addr(12, 0, 0), &[9; 36]),
            expect: PARSE,
        },
        Row {
            tag: "§5.2 PubInvalid [RS/DS]",
            stage: BothLocked,
            what: "write slot 11 (key not invalidated)",
            run: |h| h.cmd(op::WRITE, 0x82, addr(11, 0, 0), &[9; 32]),
            expect: EXEC,
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "write private-key slot 1",
            run: |h| h.cmd(op::WRITE, 0x82, addr(1, 0, 0), &[9; 32]),
            expect: EXEC,
        },
        Row {
            tag: "§6.4 SlotLocked",
            stage: BothLocked,
            what: "write slot 8 after slot lock",
            run: |h| {
                h.cmd(op::LOCK, 0x22, 0, &[]);
                h.cmd(op::WRITE, 0x82, addr(8, 0, 0), &[9; 32])
            },
            expect: EXEC,
        },
        // GenKey
        Row {
            tag: "§6.4 [DS/HW]",
            stage: BothLocked,
            what: "GenKey slot 2",
            run: |h| h.cmd(op::GENKEY, 0x04, 2, &[]),
            expect: Expect::Data(64),
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "GenKey slot 16",
            run: |h| h.cmd(op::GENKEY, 0x04, 16, &[]),
            expect: PARSE,
        },
        Row {
            tag: "§4.2 (608)",
            stage: BothLocked,
            what: "GenKey into TempKey (0xFFFF)",
            run: |h| h.cmd(op::GENKEY, 0x04, 0xFFFF, &[]),
            expect: Expect::Data(64),
        },
        // Sign
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "Sign ext without valid TempKey",
            run: |h| {
                h.sleep();
                h.cmd(op::SIGN, 0x80, 0, &[])
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "Sign ext from MsgDigBuf not loaded",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::SIGN, 0xA0, 0, &[])
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "Sign ext from MsgDigBuf (Nonce target 01)",
            run: |h| {
                h.cmd(op::NONCE, 0x43, 0, &[1; 32]);
                h.cmd(op::SIGN, 0xA0, 0, &[])
            },
            expect: Expect::Data(64),
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "Sign ext from SHA end into MsgDigBuf",
            run: |h| {
                h.cmd(op::SHA, 0x00, 0, &[]);
                h.cmd(op::SHA, 0x42, 3, b"abc");
                h.cmd(op::SIGN, 0xA0, 0, &[])
            },
            expect: Expect::Data(64),
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "Sign on data slot 8",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::SIGN, 0x80, 8, &[])
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.4 [DS]",
            stage: BothLocked,
            what: "Sign internal with a Nonce TempKey",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::SIGN, 0x00, 0, &[])
            },
            expect: EXEC,
        },
        Row {
            tag: "§6.4 [DS TFLXTLS: 0x80 or 0xC0]",
            stage: BothLocked,
            what: "Sign external mode 0xC0 (TempKey)",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::SIGN, 0xC0, 0, &[])
            },
            expect: Expect::Data(64),
        },
        Row {
            tag: "§4.2 mask 0xE1",
            stage: BothLocked,
            what: "Sign with reserved mode bit",
            run: |h| h.cmd(op::SIGN, 0x82, 0, &[]),
            expect: PARSE,
        },
        // ECDH
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "ECDH slot 1 (ReadKey bit 2)",
            run: |h| h.cmd(op::ECDH, 0x00, 1, &host_point()),
            expect: Expect::Data(32),
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "ECDH slot 0 (no ECDH permission)",
            run: |h| h.cmd(op::ECDH, 0x00, 0, &host_point()),
            expect: EXEC,
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "ECDH slot 2 → slot 3 (ReadKey bit 3)",
            run: |h| h.cmd(op::ECDH, 0x00, 2, &host_point()),
            expect: OK,
        },
        Row {
            tag: "§4.2 [ADA 0x0C]",
            stage: BothLocked,
            what: "ECDH output-buffer copy mode on slot 1",
            run: |h| h.cmd(op::ECDH, 0x0C, 1, &host_point()),
            expect: Expect::Data(32),
        },
        Row {
            tag: "§4.2 (608)",
            stage: BothLocked,
            what: "ECDH from a TempKey private key",
            run: |h| {
                h.cmd(op::GENKEY, 0x04, 0xFFFF, &[]);
                h.cmd(op::ECDH, 0x0D, 0, &host_point())
            },
            expect: Expect::Data(32),
        },
        // Verify
        Row {
            tag: "§4.2",
            stage: BothLocked,
            what: "Verify external, key type not P-256",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::VERIFY, 0x02, 3, &verify_data())
            },
            expect: PARSE,
        },
        Row {
            tag: "§6.4",
            stage: BothLocked,
            what: "Verify stored on a private slot",
            run: |h| {
                h.nonce_fixed(&[1; 32]);
                h.cmd(op::VERIFY, 0x00, 0, &[0; 64])
            },
            expect: EXEC,
        },
        // PrivWrite
        Row {
            tag: "§4.2 [INF]",
            stage: ConfigLocked,
            what: "PrivWrite clear before data lock",
            run: |h| {
                let mut d = vec![0u8; 68];
                d[4..36].copy_from_slice(&[0x21; 32]);
                h.cmd(op::PRIVWRITE, 0x00, 1, &d)
            },
            expect: OK,
        },
        Row {
            tag: "§4.2 [INF]",
            stage: BothLocked,
            what: "PrivWrite clear after data lock",
            run: |h| {
                let mut d = vec![0u8; 68];
                d[4..36].copy_from_slice(&[0x21; 32]);
                h.cmd(op::PRIVWRITE, 0x00, 1, &d)
            },
            expect: EXEC,
        },
    ];
    check(&rows);
}

/// Data lock with the CRC computed here from what was written: all non-private slots at full
/// size (slots 0–2, 6, 7 are private in the test config) then OTP.
fn lock_data_with_crc(h: &mut Host) -> Vec<u8> {
    let sizes = |s: usize| match s {
        0..=7 => 36,
        8 => 416,
        _ => 72,
    };
    let mut contents: Vec<Vec<u8>> = (0..16).map(|s| vec![0u8; sizes(s)]).collect();
    for block in 0..13u16 {
        let fill = [block as u8 + 1; 32];
        assert_eq!(h.status(op::WRITE, 0x82, addr(8, block, 0), &fill), 0x00);
        let o = usize::from(block) * 32;
        let n = (416 - o).min(32);
        contents[8][o..o + n].copy_from_slice(&fill[..n]);
    }
    assert_eq!(h.status(op::WRITE, 0x81, 1 << 3, &[0xAB; 32]), 0x00);
    let mut otp = vec![0u8; 64];
    otp[32..].fill(0xAB);
    let mut all = Vec::new();
    for (slot, data) in contents.iter().enumerate() {
        if ![0, 1, 2, 6, 7].contains(&slot) {
            all.extend(data);
        }
    }
    all.extend(&otp);
    h.cmd(op::LOCK, 0x01, crc16(&all), &[])
}

fn host_point() -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToSec1Point;
    let key = p256::SecretKey::from_slice(&[0x29; 32]).unwrap();
    key.public_key().to_sec1_point(false).as_bytes()[1..].to_vec()
}

/// A valid P-256 signature and key over the digest `[1; 32]`.
fn verify_data() -> Vec<u8> {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::elliptic_curve::sec1::ToSec1Point;
    let key = p256::ecdsa::SigningKey::from_slice(&[0x17; 32]).unwrap();
    let sig: p256::ecdsa::Signature = key.sign_prehash(&[1; 32]).unwrap();
    let mut data = sig.to_bytes().to_vec();
    data.extend_from_slice(
        &key.verifying_key()
            .as_affine()
            .to_sec1_point(false)
            .as_bytes()[1..],
    );
    data
}
