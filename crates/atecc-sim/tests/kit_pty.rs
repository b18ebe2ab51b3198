//! The `atecc-sim kit` binary over a real pseudo-terminal, spoken to as cryptoauthlib's kit HAL
//! does (kit-protocol.md §4–§5): one line per request, one reply line each.

mod common;

use common::{KitProcess, spawn_kit};
use keystamp_atecc_sim::crc::crc16;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Server {
    kit: KitProcess,
    port: Box<dyn serialport::SerialPort>,
}

fn start(state: &Path, create: bool) -> Server {
    let mut args: Vec<OsString> =
        vec!["--state".into(), state.into(), "--seed".into(), "77".into()];
    if create {
        args.push("--create".into());
    }
    let kit = spawn_kit(&args);
    let port = serialport::new(&kit.slave, 115_200)
        .timeout(Duration::from_secs(5))
        .open()
        .unwrap();
    Server { kit, port }
}

impl Server {
    /// Sends a line byte by byte (as the kit HAL does) and reads the reply line.
    fn line(&mut self, text: &str) -> String {
        for b in text.bytes().chain([b'\n']) {
            self.port.write_all(&[b]).unwrap();
        }
        let mut reply = Vec::new();
        let mut byte = [0u8];
        loop {
            self.port.read_exact(&mut byte).unwrap();
            match byte[0] {
                b'\n' => break,
                0 if reply.is_empty() => {}
                b => reply.push(b),
            }
        }
        String::from_utf8(reply).unwrap()
    }

    /// `E:w()` / `E:t(..)` / `E:i()` as `calib_execute_command` frames it; returns the group.
    fn execute(&mut self, opcode: u8, p1: u8, p2: u16, data: &[u8]) -> Vec<u8> {
        let mut pkt = vec![(7 + data.len()) as u8, opcode, p1];
        pkt.extend_from_slice(&p2.to_le_bytes());
        pkt.extend_from_slice(data);
        let crc = crc16(&pkt).to_le_bytes();
        pkt.extend_from_slice(&crc);
        assert_eq!(self.line("E:w()"), "00(04113343)");
        let reply = self.line(&format!("E:t({})", hex::encode_upper(&pkt)));
        assert_eq!(self.line("E:i()"), "00()");
        let hex_part = reply
            .strip_prefix("00(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap();
        let group = hex::decode(hex_part).unwrap();
        let n = group.len();
        assert_eq!(crc16(&group[..n - 2]).to_le_bytes(), group[n - 2..]);
        group
    }

    fn stop_with_eof(mut self) {
        drop(self.kit.stdin.take());
        let status = self.kit.child.wait().unwrap();
        assert!(status.success());
    }
}

fn temp_state(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atecc-sim-kit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("chip.json")
}

#[test]
fn kit_session_over_pty_persists_state() {
    let state = temp_state("session");
    let mut s = start(&state, true);
    assert_eq!(s.line("board:device(00)"), "ECC608A TWI 00(C0)");
    assert_eq!(s.line("E:physical:select(C0)"), "00()");
    // Info revision (kit-protocol.md §4 example).
    assert_eq!(s.line("E:w()"), "00(04113343)");
    assert_eq!(s.line("E:t(0730000000035D)"), "00(07000060028038)");
    assert_eq!(s.line("E:i()"), "00()");
    // Random before the config lock: the test pattern.
    let random = s.execute(0x1B, 0, 0, &[]);
    assert_eq!(
        &random[1..33],
        [0xFF, 0xFF, 0x00, 0x00].repeat(8).as_slice()
    );
    // Read the config, lock it with its CRC, generate a key.
    let mut cfg = Vec::new();
    for block in 0..4u16 {
        cfg.extend_from_slice(&s.execute(0x02, 0x80, block << 3, &[])[1..33]);
    }
    assert_eq!(
        s.execute(0x17, 0x00, crc16(&cfg), &[]),
        [0x04, 0x00, 0x03, 0x40]
    );
    let public = s.execute(0x40, 0x04, 0, &[]);
    assert_eq!(public.len(), 67);
    s.stop_with_eof();

    // Restart from the saved state: still locked, same key.
    let mut s = start(&state, false);
    let word = s.execute(0x02, 0x00, 0x15, &[]);
    assert_eq!(word[4], 0x00, "LockConfig persisted");
    assert_eq!(s.execute(0x40, 0x00, 0, &[]), public);
    // SIGTERM also stops the server cleanly.
    let pid = s.kit.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(s.kit.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(state.parent().unwrap());
}

#[test]
fn missing_state_without_create_fails() {
    let state = temp_state("missing");
    let out = Command::new(env!("CARGO_BIN_EXE_atecc-sim"))
        .args(["kit", "--state"])
        .arg(&state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no READY line on failure");
    let _ = std::fs::remove_dir_all(state.parent().unwrap());
}
