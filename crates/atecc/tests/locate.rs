//! `Atecc::locate` against the emulator: each part answers at the address its configuration
//! zone names (reference §7: byte 16 = 0xC0 blank, 0x6A Trust&Go, 0x6C TrustFLEX, 8-bit form),
//! and the driver finds it from the board's configured address.

use embedded_hal::i2c::{ErrorType, I2c, Operation};
use keystamp_atecc::{Atecc, DEFAULT_ADDRESS, Error, WakeError};
use keystamp_atecc_sim::{Part, SimChip, SimI2cError, SimOptions, VirtualClock, VirtualDelay};

fn chip(part: Part, options: SimOptions) -> (SimChip, VirtualDelay) {
    let clock = VirtualClock::new();
    let options = options.with_seed(7).with_clock(clock.clone());
    (SimChip::new_part(part, options), clock.delay())
}

/// The 7-bit address in byte 16 of a reference dump (§7), independent of the emulator's parser.
fn address_in_dump(part: Part) -> u8 {
    part.config_16_127().map_or(0xC0, |tail| tail[0]) >> 1
}

#[test]
fn reference_dumps_put_the_parts_at_the_documented_addresses() {
    // §7.2/§7.3 and Microchip's data sheets: TNGTLS 0x35, TFLXTLS 0x36 (7-bit).
    assert_eq!(address_in_dump(Part::TrustAndGo), 0x35);
    assert_eq!(address_in_dump(Part::TrustAndGo608B), 0x35);
    assert_eq!(address_in_dump(Part::TrustFlex), 0x36);
    assert_eq!(address_in_dump(Part::Blank), 0x60);
}

#[test]
fn finds_each_part_from_the_default_address() {
    for part in Part::ALL {
        let (sim, delay) = chip(part, SimOptions::default());
        let mut driver = Atecc::new(sim, delay);
        let (address, revision) = driver.locate(DEFAULT_ADDRESS).unwrap();
        assert_eq!(address, address_in_dump(part), "{part:?}");
        assert_eq!(
            driver.address(),
            address,
            "{part:?}: the found address stays in use"
        );
        assert_eq!(
            revision[2], 0x60,
            "{part:?}: an ATECC608 answered Info(Revision)"
        );
        // The driver keeps working at the found address.
        assert_eq!(driver.serial_number().unwrap()[0..2], [0x01, 0x23]);
    }
}

#[test]
fn the_configured_address_is_tried_first_and_may_be_any() {
    let (sim, delay) = chip(Part::Blank, SimOptions::default().with_address(0x58));
    let mut driver = Atecc::new(sim, delay);
    assert_eq!(driver.locate(0x58).unwrap().0, 0x58);
    // A TrustFLEX part on a board configured for it is found at the first try.
    let (sim, delay) = chip(Part::TrustFlex, SimOptions::default());
    let mut driver = Atecc::new(sim, delay);
    assert_eq!(driver.locate(0x36).unwrap().0, 0x36);
}

#[test]
fn no_chip_at_any_known_address_is_an_error_and_keeps_the_configured_one() {
    let (sim, delay) = chip(Part::Blank, SimOptions::default().with_address(0x58));
    let mut driver = Atecc::new(sim, delay);
    assert_eq!(
        driver.locate(DEFAULT_ADDRESS),
        Err(Error::Wake(WakeError::NoResponse))
    );
    assert_eq!(driver.address(), DEFAULT_ADDRESS);
}

/// The emulated chip plus another device at 0x60 that ACKs everything and answers every read
/// with the wake token `04 11 33 43`, as a careless or hostile neighbour on the bus could.
struct Impostor(SimChip);

impl ErrorType for Impostor {
    type Error = SimI2cError;
}

impl I2c for Impostor {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        if address != DEFAULT_ADDRESS {
            return self.0.transaction(address, operations);
        }
        for op in operations {
            if let Operation::Read(buf) = op {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = [0x04, 0x11, 0x33, 0x43][i % 4];
                }
            }
        }
        Ok(())
    }
}

#[test]
fn a_device_that_only_fakes_the_wake_reply_is_not_taken_for_the_chip() {
    let (sim, delay) = chip(Part::TrustFlex, SimOptions::default());
    let mut driver = Atecc::new(Impostor(sim), delay);
    // The wake check alone would stop at 0x60; the CRC-checked Info answer does not.
    assert_eq!(driver.locate(DEFAULT_ADDRESS).unwrap().0, 0x36);
}
