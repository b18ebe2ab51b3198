//! Test host: encodes commands from the reference (§2) by hand, independent of the emulator's
//! parser and of our driver crate, and drives the chip over `I2c` on a virtual clock.
#![allow(dead_code)]

pub mod cal;

use embedded_hal::i2c::I2c;
use keystamp_atecc_sim::crc::crc16;
use keystamp_atecc_sim::{SimChip, SimOptions, Timing, VirtualClock};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

pub const ADDR: u8 = 0x60;

/// §7.1 [HW]: the factory config of a blank 608A, identical in five real dumps; `xx` = SN bytes.
pub const FACTORY_HEX: &str = "\
0123xxxx00006002xxxxxxxxEEC1xx00\
C0000000832087208F20C48F8F8F8F8F\
9F8FAF8F000000000000000000000000\
0000AF8FFFFFFFFF00000000FFFFFFFF\
00000000000000000000000000000000\
0000000000005555FFFF000000000000\
3300330033001C001C001C001C001C00\
3C003C003C003C003C003C003C001C00";

/// Opcodes (§4.1).
pub mod op {
    pub const COUNTER: u8 = 0x24;
    pub const ECDH: u8 = 0x43;
    pub const GENKEY: u8 = 0x40;
    pub const INFO: u8 = 0x30;
    pub const LOCK: u8 = 0x17;
    pub const NONCE: u8 = 0x16;
    pub const PRIVWRITE: u8 = 0x46;
    pub const RANDOM: u8 = 0x1B;
    pub const READ: u8 = 0x02;
    pub const SELFTEST: u8 = 0x77;
    pub const SHA: u8 = 0x47;
    pub const SIGN: u8 = 0x41;
    pub const UPDATE_EXTRA: u8 = 0x20;
    pub const VERIFY: u8 = 0x45;
    pub const WRITE: u8 = 0x12;
}

/// Builds `count | opcode | p1 | p2 LE | data | crc LE`.
pub fn packet(opcode: u8, p1: u8, p2: u16, data: &[u8]) -> Vec<u8> {
    let mut p = vec![(7 + data.len()) as u8, opcode, p1];
    p.extend_from_slice(&p2.to_le_bytes());
    p.extend_from_slice(data);
    let crc = crc16(&p).to_le_bytes();
    p.extend_from_slice(&crc);
    p
}

pub struct Host {
    pub chip: SimChip,
    pub clock: VirtualClock,
}

impl Host {
    pub fn new(seed: u64) -> Self {
        Self::with(SimOptions::default().with_seed(seed))
    }

    pub fn realistic(seed: u64) -> Self {
        Self::with(
            SimOptions::default()
                .with_seed(seed)
                .with_timing(Timing::Realistic),
        )
    }

    pub fn with(options: SimOptions) -> Self {
        let clock = VirtualClock::new();
        let chip = SimChip::new(options.with_clock(clock.clone()));
        Self { chip, clock }
    }

    pub fn from_chip(chip: SimChip, clock: VirtualClock) -> Self {
        Self { chip, clock }
    }

    pub fn advance_ms(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    /// Wake pulse, tWHI, read the 4-byte wake group.
    pub fn wake(&mut self) -> [u8; 4] {
        assert!(
            self.chip.write(0x00, &[0x01]).is_err(),
            "address 0 must not be ACKed"
        );
        self.clock.advance(Duration::from_micros(1500));
        let mut r = [0u8; 4];
        self.chip.read(ADDR, &mut r).expect("wake read");
        r
    }

    pub fn idle(&mut self) {
        self.chip.write(ADDR, &[0x02]).expect("idle");
    }

    pub fn sleep(&mut self) {
        self.chip.write(ADDR, &[0x01]).expect("sleep");
    }

    /// Sends a raw group and polls (1 ms steps) for the response; returns the whole group.
    pub fn raw(&mut self, group: &[u8]) -> Vec<u8> {
        let mut msg = vec![0x03];
        msg.extend_from_slice(group);
        self.chip.write(ADDR, &msg).expect("command write");
        self.receive()
    }

    pub fn receive(&mut self) -> Vec<u8> {
        for _ in 0..2500 {
            if self.chip.write(ADDR, &[0x00]).is_ok() {
                let mut count = [0u8];
                self.chip.read(ADDR, &mut count).expect("count read");
                let mut rest = vec![0u8; usize::from(count[0]) - 1];
                self.chip.read(ADDR, &mut rest).expect("body read");
                let mut group = count.to_vec();
                group.extend_from_slice(&rest);
                let n = group.len();
                assert_eq!(
                    crc16(&group[..n - 2]).to_le_bytes(),
                    group[n - 2..],
                    "response CRC"
                );
                return group;
            }
            self.advance_ms(1);
        }
        panic!("no response within 2.5 s");
    }

    /// Wakes if needed, runs one command, returns the payload (status byte or data).
    pub fn cmd(&mut self, opcode: u8, p1: u8, p2: u16, data: &[u8]) -> Vec<u8> {
        self.ensure_awake();
        let group = self.raw(&packet(opcode, p1, p2, data));
        group[1..group.len() - 2].to_vec()
    }

    /// Runs a command expected to return a 4-byte status group.
    pub fn status(&mut self, opcode: u8, p1: u8, p2: u16, data: &[u8]) -> u8 {
        let payload = self.cmd(opcode, p1, p2, data);
        assert_eq!(
            payload.len(),
            1,
            "expected a status group, got {payload:02X?}"
        );
        payload[0]
    }

    /// Like cryptoauthlib: wake unless awake, and idle after every command keeps volatile state.
    pub fn ensure_awake(&mut self) {
        use keystamp_atecc_sim::PowerState;
        if self.chip.power_state() != PowerState::Awake {
            assert_eq!(self.wake(), [0x04, 0x11, 0x33, 0x43]);
        }
    }

    // ---- convenience wrappers

    pub fn read_config(&mut self) -> Vec<u8> {
        let mut cfg = Vec::new();
        for block in 0..4u16 {
            cfg.extend(self.cmd(op::READ, 0x80, block << 3, &[]));
        }
        cfg
    }

    pub fn write_config_bytes(&mut self, cfg: &[u8]) {
        // cryptoauthlib's order: block 0 words 4–7 (4 bytes), block 1 (32), block 2 words
        // skipping word 5, block 3 (32) (§5.1).
        for word in 4..8u16 {
            let o = usize::from(word) * 4;
            assert_eq!(
                self.status(op::WRITE, 0x00, word, &cfg[o..o + 4]),
                0x00,
                "word {word}"
            );
        }
        assert_eq!(self.status(op::WRITE, 0x80, 1 << 3, &cfg[32..64]), 0x00);
        for word in (0..8u16).filter(|&w| w != 5) {
            let o = 64 + usize::from(word) * 4;
            assert_eq!(
                self.status(op::WRITE, 0x00, (2 << 3) | word, &cfg[o..o + 4]),
                0x00
            );
        }
        assert_eq!(self.status(op::WRITE, 0x80, 3 << 3, &cfg[96..128]), 0x00);
    }

    pub fn lock_config_crc(&mut self) -> u8 {
        let cfg = self.read_config();
        let crc = crc16(&cfg);
        self.status(op::LOCK, 0x00, crc, &[])
    }

    pub fn genkey(&mut self, slot: u16) -> Vec<u8> {
        self.cmd(op::GENKEY, 0x04, slot, &[])
    }

    pub fn nonce_fixed(&mut self, msg: &[u8; 32]) -> u8 {
        self.status(op::NONCE, 0x03, 0, msg)
    }

    pub fn sign_ext(&mut self, slot: u16, digest: &[u8; 32]) -> Vec<u8> {
        assert_eq!(self.nonce_fixed(digest), 0x00);
        self.cmd(op::SIGN, 0x80, slot, &[])
    }

    pub fn data_addr(slot: u16, block: u16, word: u16) -> u16 {
        (block << 8) | (slot << 3) | word
    }
}

/// The test configuration (bytes 16..128 written, 0..16 left factory), based on the factory
/// image of §7.1 with extra slot roles for policy tests:
/// * 0–2 factory P-256 private keys (GenKey allowed; 1 has ECDH, 2 ECDH → slot 3),
/// * 6: P-256 private, WriteConfig 0 (no GenKey after data lock),
/// * 7: P-256 private, not lockable,
/// * 8: clear data, Always, lockable (factory),
/// * 9: clear data, Always, not lockable,
/// * 11: PubInvalid (WriteConfig 0001), 12: Encrypt (0100), 14: Never (1000), clear read,
/// * 13: P-256 public key, Always, lockable (for Verify stored).
pub fn test_config(factory: &[u8]) -> Vec<u8> {
    let mut cfg = factory.to_vec();
    let mut set = |slot: usize, slot_config: u16, key_config: u16| {
        cfg[20 + 2 * slot..22 + 2 * slot].copy_from_slice(&slot_config.to_le_bytes());
        cfg[96 + 2 * slot..98 + 2 * slot].copy_from_slice(&key_config.to_le_bytes());
    };
    set(6, 0x0083, 0x0033);
    set(7, 0x2083, 0x0013);
    set(9, 0x0000, 0x001C);
    set(11, 0x1000, 0x003C);
    set(12, 0x4000, 0x003C);
    set(13, 0x0000, 0x0030);
    set(14, 0x8000, 0x003C);
    cfg
}

/// Which locks to reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Unlocked,
    ConfigLocked,
    BothLocked,
}

/// A chip at `stage` with the test configuration; before the data lock slots 0–2 and 6–7 got
/// keys and slot 13 a public key (of slot 0's key) in the padded layout.
pub fn host_at(stage: Stage, seed: u64) -> Host {
    let mut h = Host::new(seed);
    if stage == Stage::Unlocked {
        return h;
    }
    let factory = h.read_config();
    let cfg = test_config(&factory);
    h.write_config_bytes(&cfg);
    assert_eq!(h.lock_config_crc(), 0x00);
    for slot in [0, 1, 2, 6, 7] {
        assert_eq!(h.genkey(slot).len(), 64);
    }
    if stage == Stage::BothLocked {
        let public = h.cmd(op::GENKEY, 0x00, 0, &[]);
        let mut padded = [0u8; 96];
        padded[4..36].copy_from_slice(&public[..32]);
        padded[40..72].copy_from_slice(&public[32..]);
        for block in 0..3u16 {
            let b = usize::from(block) * 32;
            let addr = Host::data_addr(13, block, 0);
            assert_eq!(h.status(op::WRITE, 0x82, addr, &padded[b..b + 32]), 0x00);
        }
        assert_eq!(h.status(op::LOCK, 0x81, 0, &[]), 0x00);
    }
    h
}

/// A running `atecc-sim kit` process: closing `stdin` stops it (after saving its state).
pub struct KitProcess {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    /// The pty slave path from its `READY <path>` line.
    pub slave: String,
}

/// Spawns `atecc-sim kit <args>` with piped stdin/stdout and waits for its `READY` line.
pub fn spawn_kit<S: AsRef<OsStr>>(args: &[S]) -> KitProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atecc-sim"))
        .arg("kit")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let slave = first
        .strip_prefix("READY ")
        .expect("READY line")
        .trim()
        .to_string();
    KitProcess {
        child,
        stdin,
        slave,
    }
}

/// A host-side P-256 signing key (p256, independent of the emulator): the scalar `fill` × 32.
pub fn host_signing_key(fill: u8) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[fill; 32]).expect("valid scalar")
}

/// X‖Y of `key`'s public key.
pub fn public_xy(key: &p256::ecdsa::SigningKey) -> [u8; 64] {
    use p256::elliptic_curve::sec1::ToSec1Point;
    let point = key.verifying_key().as_affine().to_sec1_point(false);
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&point.as_bytes()[1..]);
    xy
}
