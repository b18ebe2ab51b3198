//! `--faults SPEC`: the faults simulated devices inject, from the command line
//! (`keystamp sim --faults`, `provision --simulate N --faults`), for demonstrations and the
//! soak (`cargo xtask soak`).
//!
//! SPEC is a comma-separated list of `name=value`:
//!
//! | name | value | fault |
//! |---|---|---|
//! | `seed` | integer | seed of every fault stream (device *i* uses seed + *i*) |
//! | `crc` | probability | a chip response's CRC bit flipped on the bus (the driver re-reads) |
//! | `nack` | probability | a burst of I2C NACKs starts (up to `nack-max` transactions, default 4) |
//! | `brownout` | command number | power fails while the chip executes that command |
//! | `reset` | request number | the device resets on receiving that request (counted from 1) |
//! | `flip` | probability | a bit flipped in a byte on the UART, either way |
//! | `log` | probability | the device prints a log line before an answer |
//!
//! Example: `seed=7,crc=0.02,nack=0.01,reset=12,flip=0.0005,log=0.1`.

use keystamp_atecc_sim::FaultConfig;

use super::LinkFaults;

/// Faults for simulated devices: the chip's (I2C, power) and the UART's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultSpec {
    /// The emulated chip's faults.
    pub chip: FaultConfig,
    /// The device's UART-side faults.
    pub link: LinkFaults,
}

/// Why a SPEC was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultSpecError {
    /// An item is not `name=value`.
    NotAPair(String),
    /// The name is none of the table's.
    UnknownName(String),
    /// The value does not fit the name (a probability outside 0..=1, not a number).
    BadValue {
        /// The name.
        name: String,
        /// The value given.
        value: String,
    },
}

impl std::fmt::Display for FaultSpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultSpecError::NotAPair(item) => write!(f, "`{item}` is not name=value"),
            FaultSpecError::UnknownName(name) => write!(
                f,
                "unknown fault `{name}` (seed, crc, nack, nack-max, brownout, reset, flip, log)"
            ),
            FaultSpecError::BadValue { name, value } => {
                write!(f, "`{value}` is not a valid value for `{name}`")
            }
        }
    }
}

impl std::error::Error for FaultSpecError {}

impl FaultSpec {
    /// Parses SPEC (see the module documentation). An empty SPEC injects nothing.
    pub fn parse(spec: &str) -> Result<FaultSpec, FaultSpecError> {
        let mut out = FaultSpec::default();
        out.chip.nack_burst_max = 4;
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| FaultSpecError::NotAPair(item.to_string()))?;
            let (name, value) = (name.trim(), value.trim());
            let bad = || FaultSpecError::BadValue {
                name: name.to_string(),
                value: value.to_string(),
            };
            let probability = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(bad)
            };
            let count = || value.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(bad);
            match name {
                "seed" => {
                    let seed = value.parse::<u64>().map_err(|_| bad())?;
                    out.chip.seed = seed;
                    out.link.seed = seed;
                }
                "crc" => out.chip.crc_corruption = probability()?,
                "nack" => out.chip.nack_burst = probability()?,
                "nack-max" => {
                    out.chip.nack_burst_max = u32::try_from(count()?).map_err(|_| bad())?;
                }
                "brownout" => out.chip.brownout_at_command = Some(count()?),
                "reset" => out.link.reset_at_request = Some(count()?),
                "flip" => out.link.bit_flip = probability()?,
                "log" => out.link.log_line = probability()?,
                other => return Err(FaultSpecError::UnknownName(other.to_string())),
            }
        }
        Ok(out)
    }

    /// The faults of device number `index`: the same kinds, streams seeded `seed + index` (so
    /// devices do not fail in lockstep).
    pub fn for_device(&self, index: usize) -> FaultSpec {
        let mut spec = self.clone();
        let offset = index as u64;
        spec.chip.seed = spec.chip.seed.wrapping_add(offset);
        // A different stream from the chip's: the link's decisions are independent of it.
        spec.link.seed = spec.link.seed.wrapping_add(offset) ^ 0x5EED_11AC;
        spec
    }
}

/// A small deterministic stream (SplitMix64) for the link faults and fault plans: reproducible
/// from the seed, no dependency.
pub struct FaultStream(u64);

impl FaultStream {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        FaultStream(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Flips one bit in some bytes of `bytes`, each with probability `p`.
    pub fn flip_bits(&mut self, bytes: &mut [u8], p: f64) {
        if p <= 0.0 {
            return;
        }
        for b in bytes {
            if self.chance(p) {
                *b ^= 1 << (self.next_u64() % 8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_of_the_table_sets_its_fault() {
        let s = FaultSpec::parse(
            "seed=7, crc=0.02,nack=0.5,nack-max=3,brownout=9,reset=12,flip=0.001,log=1",
        )
        .unwrap();
        assert_eq!(s.chip.seed, 7);
        assert_eq!(s.chip.crc_corruption, 0.02);
        assert_eq!(s.chip.nack_burst, 0.5);
        assert_eq!(s.chip.nack_burst_max, 3);
        assert_eq!(s.chip.brownout_at_command, Some(9));
        assert_eq!(s.link.reset_at_request, Some(12));
        assert_eq!(s.link.bit_flip, 0.001);
        assert_eq!(s.link.log_line, 1.0);
        assert_eq!(FaultSpec::parse("").unwrap().link, LinkFaults::default());
    }

    #[test]
    fn a_bad_spec_names_what_is_wrong() {
        assert_eq!(
            FaultSpec::parse("crc"),
            Err(FaultSpecError::NotAPair("crc".into()))
        );
        assert_eq!(
            FaultSpec::parse("lightning=1"),
            Err(FaultSpecError::UnknownName("lightning".into()))
        );
        assert!(matches!(
            FaultSpec::parse("crc=1.5"),
            Err(FaultSpecError::BadValue { .. })
        ));
        assert!(matches!(
            FaultSpec::parse("reset=0"),
            Err(FaultSpecError::BadValue { .. })
        ));
    }

    #[test]
    fn devices_get_different_streams_of_the_same_faults() {
        let s = FaultSpec::parse("seed=1,crc=0.1").unwrap();
        let (a, b) = (s.for_device(0), s.for_device(1));
        assert_eq!(a.chip.crc_corruption, b.chip.crc_corruption);
        assert_ne!(a.chip.seed, b.chip.seed);
        assert_ne!(a.link.seed, b.link.seed);
    }
}
