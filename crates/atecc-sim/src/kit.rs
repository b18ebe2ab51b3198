//! Microchip's ASCII kit protocol in front of an emulated chip
//! (`shared/reference/kit-protocol.md`).
//!
//! [`KitServer`] plays the part of a CryptoAuth kit's firmware: it answers
//! `board:device(NN)`, `E:physical:…`, `E:w()`, `E:i()`, `E:s()`, `E:t(<hex>)`, `E:se(<hex>)`
//! and `E:r()` lines, one reply line each, and drives the chip over I2C exactly as a kit's
//! firmware would (wake pulse, tWHI, command write, NACK polling, response read). So
//! cryptoauthlib configured for a kit sees the same bytes a real chip would produce, including
//! its CRC and status groups.

use crate::chip::{SimChip, WAKE_REPLY};
use crate::config::Revision;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Kit status codes (firmware `kit_protocol_status.h`).
pub mod kit_status {
    /// Success.
    pub const SUCCESS: u8 = 0x00;
    /// Command not valid.
    pub const INVALID_COMMAND: u8 = 0x03;
    /// No device.
    pub const NO_DEVICE: u8 = 0xC5;
    /// Receive: no response.
    pub const RX_NO_RESPONSE: u8 = 0xE7;
    /// Communication failure.
    pub const COMM_FAIL: u8 = 0xF0;
}

/// How long the kit polls for a response (cryptoauthlib's 2500 ms, reference §1.4).
const POLL_LIMIT_US: u32 = 2_500_000;
/// Poll interval.
const POLL_STEP_US: u32 = 1_000;
/// tWHI after the wake pulse (reference §1.2).
const WAKE_DELAY_US: u32 = 1_500;

/// A kit front end driving a chip at `address` over `i2c`, waiting with `delay`.
pub struct KitServer<I, D> {
    i2c: I,
    delay: D,
    address: u8,
    devtype: &'static str,
}

impl<I: I2c, D: DelayNs> KitServer<I, D> {
    /// A kit for a chip of `revision` at 7-bit `address`.
    pub fn new(i2c: I, delay: D, address: u8, revision: Revision) -> Self {
        let devtype = match revision {
            Revision::Atecc608A => "ECC608A",
            Revision::Atecc608B => "ECC608B",
        };
        Self {
            i2c,
            delay,
            address,
            devtype,
        }
    }

    /// The I2C bus (the chip) behind the kit.
    pub fn i2c(&mut self) -> &mut I {
        &mut self.i2c
    }

    /// Gives back the bus.
    pub fn into_inner(self) -> I {
        self.i2c
    }

    /// Answers one request line (without its `'\n'`) with one reply line (without `'\n'`);
    /// `None` for a blank line, which gets no reply.
    pub fn handle_line(&mut self, line: &str) -> Option<String> {
        // Leading NULs are padding; the firmware is case-insensitive (kit-protocol §3, §4).
        let line = line.trim_start_matches('\0').trim().to_ascii_lowercase();
        if line.is_empty() {
            return None;
        }
        let Some((target, rest)) = line.split_once(':') else {
            return Some(reply(kit_status::INVALID_COMMAND, &[]));
        };
        let (name, arg) = split_call(rest);
        if target == "board" {
            return Some(if name.starts_with("device") {
                self.board_device(&arg)
            } else {
                reply(kit_status::INVALID_COMMAND, &[])
            });
        }
        if !matches!(target, "e" | "s" | "a" | "d") {
            return Some(reply(kit_status::INVALID_COMMAND, &[]));
        }
        Some(if name.starts_with('p') {
            // physical:select / physical:interface: accepted, content ignored by the host.
            reply(kit_status::SUCCESS, &[])
        } else if name.starts_with('w') {
            self.wake()
        } else if name.starts_with('i') {
            self.word_address(0x02)
        } else if name.starts_with("se") {
            self.send(&arg)
        } else if name.starts_with('s') {
            self.word_address(0x01)
        } else if name.starts_with('r') {
            self.receive()
        } else if name.starts_with('t') {
            match self.send(&arg).starts_with("00(") {
                true => self.receive(),
                false => reply(kit_status::COMM_FAIL, &[]),
            }
        } else {
            reply(kit_status::INVALID_COMMAND, &[])
        })
    }

    fn board_device(&mut self, arg: &[u8]) -> String {
        // Only device 0 exists; firmware answers other indices with `no_device `.
        if arg.first().copied().unwrap_or(0) == 0 {
            format!("{} TWI 00({:02X})", self.devtype, self.address << 1)
        } else {
            "no_device ".to_string()
        }
    }

    fn wake(&mut self) -> String {
        // Address 0x00 is never ACKed; the low pulse is what wakes the chip.
        let _ = self.i2c.write(0x00, &[0x01]);
        self.delay.delay_us(WAKE_DELAY_US);
        let mut buf = [0u8; 4];
        match self.i2c.read(self.address, &mut buf) {
            Ok(()) => reply(kit_status::SUCCESS, &buf),
            Err(_) => reply(kit_status::RX_NO_RESPONSE, &[]),
        }
    }

    fn word_address(&mut self, wa: u8) -> String {
        match self.i2c.write(self.address, &[wa]) {
            Ok(()) => reply(kit_status::SUCCESS, &[]),
            Err(_) => reply(kit_status::COMM_FAIL, &[]),
        }
    }

    fn send(&mut self, group: &[u8]) -> String {
        let mut message = Vec::with_capacity(group.len() + 1);
        message.push(0x03);
        message.extend_from_slice(group);
        match self.i2c.write(self.address, &message) {
            Ok(()) => reply(kit_status::SUCCESS, &[]),
            Err(_) => reply(kit_status::COMM_FAIL, &[]),
        }
    }

    /// Polls until the chip ACKs, then reads the count byte and the rest of the group.
    fn receive(&mut self) -> String {
        let mut waited = 0;
        loop {
            if self.i2c.write(self.address, &[0x00]).is_ok() {
                break;
            }
            if waited >= POLL_LIMIT_US {
                return reply(kit_status::RX_NO_RESPONSE, &[]);
            }
            self.delay.delay_us(POLL_STEP_US);
            waited += POLL_STEP_US;
        }
        let mut count = [0u8; 1];
        if self.i2c.read(self.address, &mut count).is_err() {
            return reply(kit_status::RX_NO_RESPONSE, &[]);
        }
        let n = usize::from(count[0]);
        if !(4..=155).contains(&n) {
            return reply(kit_status::RX_NO_RESPONSE, &[]);
        }
        let mut group = vec![0u8; n];
        group[0] = count[0];
        if self.i2c.read(self.address, &mut group[1..]).is_err() {
            return reply(kit_status::RX_NO_RESPONSE, &[]);
        }
        reply(kit_status::SUCCESS, &group)
    }

    /// Serves `port` line by line until `stop` is set. Reads that time out just re-check `stop`.
    pub fn serve<P: Read + Write>(&mut self, port: &mut P, stop: &AtomicBool) -> io::Result<()> {
        let mut line = Vec::new();
        let mut buf = [0u8; 256];
        while !stop.load(Ordering::SeqCst) {
            let n = match port.read(&mut buf) {
                Ok(0) => {
                    // No writer on the other side right now.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            for &b in &buf[..n] {
                if b != b'\n' {
                    // A runaway line without '\n' is dropped rather than grown without bound.
                    if line.len() < 4096 {
                        line.push(b);
                    }
                    continue;
                }
                let text = String::from_utf8_lossy(&line).into_owned();
                line.clear();
                if let Some(mut out) = self.handle_line(&text) {
                    out.push('\n');
                    port.write_all(out.as_bytes())?;
                    port.flush()?;
                }
            }
        }
        Ok(())
    }
}

impl<D: DelayNs> KitServer<SimChip, D> {
    /// A kit in front of `chip`, at the chip's current address and revision.
    pub fn for_chip(chip: SimChip, delay: D) -> Self {
        let address = chip.address();
        let revision = chip.state().revision;
        Self::new(chip, delay, address, revision)
    }
}

/// `SS(HEX)`.
fn reply(status: u8, data: &[u8]) -> String {
    format!("{status:02X}({})", hex::encode_upper(data))
}

/// Splits `name(args)` into the name and the hex bytes of the args (non-hex characters skipped,
/// as the firmware does).
fn split_call(rest: &str) -> (String, Vec<u8>) {
    let (name, args) = match rest.split_once('(') {
        Some((name, tail)) => (name, tail.split(')').next().unwrap_or("")),
        None => (rest, ""),
    };
    let digits: Vec<u8> = args.bytes().filter(u8::is_ascii_hexdigit).collect();
    let bytes = digits
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect();
    (name.to_string(), bytes)
}

/// The wake reply line a kit produces for a healthy chip: `00(04113343)`.
pub fn wake_reply_line() -> String {
    reply(kit_status::SUCCESS, &WAKE_REPLY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimOptions, VirtualClock};

    fn kit() -> KitServer<SimChip, crate::VirtualDelay> {
        let clock = VirtualClock::new();
        let chip = SimChip::new(
            SimOptions::default()
                .with_seed(7)
                .with_timing(crate::Timing::Realistic)
                .with_clock(clock.clone()),
        );
        KitServer::for_chip(chip, clock.delay())
    }

    /// Lines and replies from kit-protocol.md §4–§5.
    #[test]
    fn documented_exchange() {
        let mut kit = kit();
        assert_eq!(
            kit.handle_line("board:device(00)").unwrap(),
            "ECC608A TWI 00(C0)"
        );
        assert_eq!(kit.handle_line("E:physical:select(C0)").unwrap(), "00()");
        assert_eq!(kit.handle_line("E:w()").unwrap(), "00(04113343)");
        assert_eq!(
            kit.handle_line("E:t(0730000000035D)").unwrap(),
            "00(07000060028038)"
        );
        assert_eq!(kit.handle_line("E:i()").unwrap(), "00()");
        // Case-insensitive, and a bad CRC gets the chip's 0xFF group.
        assert_eq!(kit.handle_line("e:W()").unwrap(), "00(04113343)");
        assert_eq!(
            kit.handle_line("e:t(0730000000035E)").unwrap(),
            "00(04FF0142)"
        );
        assert_eq!(kit.handle_line("E:s()").unwrap(), "00()");
        // Asleep: a talk finds no chip.
        assert!(
            kit.handle_line("E:t(0730000000035D)")
                .unwrap()
                .starts_with("F0(")
        );
        assert_eq!(kit.handle_line(""), None);
        assert_eq!(kit.handle_line("nonsense").unwrap(), "03()");
    }
}
