//! Emulator overhead: how much host time one emulated command costs on top of the chip's own
//! (modelled) execution time, and a whole provisioning sequence through the real driver.
//! Instant timing on a virtual clock, so only the emulator's work is measured.

use criterion::{Criterion, criterion_group, criterion_main};
use embedded_hal::i2c::I2c;
use keystamp_atecc::default_config::DEFAULT_CONFIG;
use keystamp_atecc_sim::crc::crc16;
use keystamp_atecc_sim::{SimChip, SimOptions, VirtualClock};

fn packet(opcode: u8, p1: u8, p2: u16, data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x03, (7 + data.len()) as u8, opcode, p1];
    p.extend_from_slice(&p2.to_le_bytes());
    p.extend_from_slice(data);
    let crc = crc16(&p[1..]).to_le_bytes();
    p.extend_from_slice(&crc);
    p
}

fn round_trip(chip: &mut SimChip, pkt: &[u8], resp: &mut [u8]) {
    let _ = chip.write(0x00, &[0x01]);
    chip.write(0x60, pkt).unwrap();
    chip.read(0x60, resp).unwrap();
}

fn provisioned(seed: u64) -> (SimChip, VirtualClock) {
    let clock = VirtualClock::new();
    let chip = SimChip::new(
        SimOptions::default()
            .with_seed(seed)
            .with_clock(clock.clone()),
    );
    let mut d = keystamp_atecc::Atecc::new(chip, clock.delay());
    let back = d.write_config_zone(&DEFAULT_CONFIG).unwrap();
    d.lock_config(Some(back.lock_crc())).unwrap();
    d.genkey(0).unwrap();
    d.lock_data(None).unwrap();
    (d.release().0, clock)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("atecc_sim");
    let (mut chip, _clock) = provisioned(1);
    let info = packet(0x30, 0, 0, &[]);
    let mut r7 = [0u8; 7];
    g.bench_function("info_round_trip", |b| {
        b.iter(|| round_trip(&mut chip, &info, &mut r7))
    });
    let nonce = packet(0x16, 0x03, 0, &[0x42; 32]);
    let sign = packet(0x41, 0x80, 0, &[]);
    let mut r4 = [0u8; 4];
    let mut r67 = [0u8; 67];
    g.bench_function("nonce_sign_p256", |b| {
        b.iter(|| {
            round_trip(&mut chip, &nonce, &mut r4);
            round_trip(&mut chip, &sign, &mut r67);
        })
    });
    g.sample_size(10);
    g.bench_function("driver_provision_config_genkey_lock", |b| {
        b.iter(|| provisioned(2))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
