//! Arbitrary I2C traffic into the emulated chip: it must never panic, and every response group
//! it produces must carry a valid CRC.
#![no_main]

use embedded_hal::i2c::I2c;
use keystamp_atecc_sim::crc::crc16;
use keystamp_atecc_sim::{SimChip, SimOptions, VirtualClock};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let clock = VirtualClock::new();
    let mut chip = SimChip::new(SimOptions::default().with_seed(0).with_clock(clock.clone()));
    let mut it = data.iter().copied();
    while let Some(op) = it.next() {
        match op % 7 {
            0 => {
                let _ = chip.write(0x00, &[0x01]);
            }
            1 => {
                let n = usize::from(it.next().unwrap_or(0) % 48);
                let bytes: Vec<u8> = it.by_ref().take(n).collect();
                let _ = chip.write(0x60, &bytes);
            }
            2 => {
                let n = usize::from(it.next().unwrap_or(0) % 80);
                let mut buf = vec![0u8; n];
                let _ = chip.read(0x60, &mut buf);
            }
            3 => {
                let _ = chip.write(0x60, &[0x02]);
            }
            4 => clock.advance(Duration::from_millis(u64::from(it.next().unwrap_or(0)) * 8)),
            _ => {
                // A well-formed command group, so the fuzzer gets past the CRC check.
                let opcode = it.next().unwrap_or(0);
                let p1 = it.next().unwrap_or(0);
                let p2 = [it.next().unwrap_or(0), it.next().unwrap_or(0)];
                let n = usize::from(it.next().unwrap_or(0) % 140);
                let body: Vec<u8> = it.by_ref().take(n).collect();
                let mut group = vec![(7 + body.len()) as u8, opcode, p1, p2[0], p2[1]];
                group.extend(&body);
                let crc = crc16(&group).to_le_bytes();
                group.extend(crc);
                let _ = chip.write(0x00, &[0x01]);
                let mut msg = vec![0x03];
                msg.extend(&group);
                if chip.write(0x60, &msg).is_ok() && chip.write(0x60, &[0x00]).is_ok() {
                    let mut count = [0u8];
                    if chip.read(0x60, &mut count).is_ok() && count[0] >= 4 {
                        let mut rest = vec![0u8; usize::from(count[0]) - 1];
                        if chip.read(0x60, &mut rest).is_ok() {
                            let mut resp = count.to_vec();
                            resp.extend(rest);
                            let n = resp.len();
                            assert_eq!(crc16(&resp[..n - 2]).to_le_bytes(), resp[n - 2..]);
                        }
                    }
                }
            }
        }
    }
});
