//! Response parsing and the driver's receive path on arbitrary bytes: never panic, and any
//! accepted group has a valid CRC and count.
#![no_main]

use keystamp_atecc::driver::Atecc;
use keystamp_atecc::packet::{Response, classify_wake, parse_response};
use libfuzzer_sys::fuzz_target;

/// A bus whose reads come from the fuzz input; a 0xA5 marker byte means "NACK this read".
struct FuzzBus<'a> {
    data: &'a [u8],
}

#[derive(Debug)]
struct Nack;

impl embedded_hal::i2c::Error for Nack {
    fn kind(&self) -> embedded_hal::i2c::ErrorKind {
        embedded_hal::i2c::ErrorKind::NoAcknowledge(embedded_hal::i2c::NoAcknowledgeSource::Address)
    }
}

impl embedded_hal::i2c::ErrorType for FuzzBus<'_> {
    type Error = Nack;
}

impl embedded_hal::i2c::I2c for FuzzBus<'_> {
    fn transaction(
        &mut self,
        _address: u8,
        operations: &mut [embedded_hal::i2c::Operation<'_>],
    ) -> Result<(), Nack> {
        for op in operations {
            if let embedded_hal::i2c::Operation::Read(buf) = op {
                match self.data.split_first() {
                    Some((0xA5, rest)) => {
                        self.data = rest;
                        return Err(Nack);
                    }
                    None => return Err(Nack),
                    _ => {}
                }
                let n = buf.len().min(self.data.len());
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
            }
        }
        Ok(())
    }
}

struct NoDelay;

impl embedded_hal::delay::DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_response(data) {
        let n = data[0] as usize;
        assert!((4..=data.len()).contains(&n));
        assert_eq!(keystamp_atecc::crc16(&data[..n - 2]).to_le_bytes(), [data[n - 2], data[n - 1]]);
        if let Response::Data(p) = r {
            assert_eq!(p.len(), n - 3);
        }
    }
    if let Some(w) = data.get(..4) {
        let _ = classify_wake(w.try_into().unwrap());
    }
    let mut d = Atecc::new(FuzzBus { data }, NoDelay);
    let _ = d.info();
    let _ = d.sign_digest(0, &[0; 32]);
    let _ = d.verify_extern(&[0; 32], &[0; 64], &[0; 64]);
    let _ = d.read_config_zone();
    let _ = d.self_test(0x3B);
    let _ = d.ecdh(1, &[0; 64]);
});
