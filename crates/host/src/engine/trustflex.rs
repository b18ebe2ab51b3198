//! The `trustflex` profile: ATECC608B-TFLXTLS parts as Microchip ships them (config and data
//! zones locked, device key generated in slot 0, slots 10–12 left writable and lockable for the
//! customer's chain — reference `atecc608.md` §7.3, §8).
//!
//! The flow is the custom one (engine.rs) with its config step replaced: instead of writing and
//! locking a config, the chip's config is read and compared with the TrustFLEX layout, and a part
//! that differs in any byte the flow relies on is refused before anything is written, naming
//! every differing byte. The key step then finds the data zone locked and reads the existing key
//! (GetPublicKey, slot 0); proof of possession, issuance into slots 10–12, the signed definition
//! blob, verification and the lockdown locks (slots 10 and 12, then the trust anchor slot 11)
//! are the custom flow's. The clone check (`profile.rs`) runs after the proof.

use keystamp_atecc::zone::CONFIG_SIZE;
use keystamp_atecc_sim::parts::TFLXTLS_16_127;
use keystamp_wire::HelloInfo;

use super::profile::{ConfigDifference, ProfileFailure};
use super::{Failure, FailureKind, Outcome, Port, Station, Step};
use crate::project::PartProfile;

/// Whether config byte `byte` is part of the layout the flow relies on. Left out: the serial
/// number, revision and factory bytes (0–15, per chip), the I2C address (16: TrustFLEX parts are
/// ordered with other addresses; the firmware is built for its board), the monotonic counters
/// (52–67, they move with use), UserExtra/UserExtraAdd (84–85, changeable once by UpdateExtra)
/// and SlotLocked (88–89: the flow's own slot locks clear its bits).
pub fn layout_byte_matters(byte: usize) -> bool {
    matches!(byte, 17..=51 | 68..=83 | 86..=87 | 90..=127)
}

/// Every byte where `config` differs from the TrustFLEX layout in what matters.
pub fn trust_flex_differences(config: &[u8; CONFIG_SIZE]) -> Vec<ConfigDifference> {
    (16..CONFIG_SIZE)
        .filter(|&byte| layout_byte_matters(byte))
        .filter_map(|byte| {
            let wanted = TFLXTLS_16_127[byte - 16];
            let chip = config[byte];
            (chip != wanted).then_some(ConfigDifference { byte, chip, wanted })
        })
        .collect()
}

impl<'a, P: Port> Station<'a, P> {
    /// The config step of the `trustflex` profile: read, compare, refuse or go on. Writes nothing.
    pub(super) fn trust_flex_config(
        &mut self,
        hello: &HelloInfo,
    ) -> Result<[u8; CONFIG_SIZE], Failure> {
        if !(hello.chip.config_locked && hello.chip.data_locked) {
            return Err(Failure::new(
                Step::Config,
                FailureKind::Profile(ProfileFailure::NotPreconfigured {
                    profile: PartProfile::TrustFlex,
                }),
            ));
        }
        let current = self.read_config(Step::Config)?;
        let diffs = trust_flex_differences(&current);
        if !diffs.is_empty() {
            return Err(Failure::new(
                Step::Config,
                FailureKind::Profile(ProfileFailure::NotTrustFlex(diffs)),
            ));
        }
        self.audit(
            Step::Config,
            Outcome::Skipped,
            "TrustFLEX part: shipped config matches the layout",
        )?;
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_layout_has_no_difference_and_one_changed_byte_is_named() {
        let mut config = [0u8; CONFIG_SIZE];
        config[16..].copy_from_slice(&TFLXTLS_16_127);
        assert!(trust_flex_differences(&config).is_empty());
        // Per-chip bytes do not matter.
        config[0..16].fill(0x5A);
        config[52] = 0x12;
        assert!(trust_flex_differences(&config).is_empty());
        // Slot 10's SlotConfig made Never-writable, as on a Trust&GO part.
        config[40] = 0x0F;
        config[41] = 0x8F;
        assert_eq!(
            trust_flex_differences(&config),
            vec![ConfigDifference {
                byte: 41,
                chip: 0x8F,
                wanted: 0x0F
            }]
        );
    }
}
