//! Pre-configured parts as Microchip ships them: ATECC608B-TFLXTLS (TrustFLEX) and
//! ATECC608A-TNGTLS (Trust&GO), both config- and data-locked, with the private keys the factory
//! generated in slots 0–4 (reference §7.2, §7.3, §8).
//!
//! The emulator models the chip only: the certificates Microchip writes into a Trust&GO part
//! (slots 10–12) come from a certificate authority, which is not the chip's business; the host's
//! simulator adds them with a test CA (`keystamp::microchip`).

use crate::config::{CONFIG_SIZE, Revision};
use crate::state::NvState;
use p256::SecretKey;
use rand::RngCore;
use std::fmt;
use std::str::FromStr;

/// Which part a new emulated chip is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Part {
    /// An unconfigured ATECC608A/B (reference §7.1): what keystamp's custom flow configures.
    #[default]
    Blank,
    /// ATECC608B-TFLXTLS (reference §7.3): slot layout fixed and locked, device key in slot 0,
    /// certificate slots 10–12 writable and lockable for the customer's own chain.
    TrustFlex,
    /// ATECC608A-TNGTLS (reference §7.2): like TrustFLEX, but slots 10–12 hold Microchip's
    /// compressed device and signer certificates and the signer key, and can never be written.
    TrustAndGo,
    /// ATECC608B-TNGTLS (reference §7.4): the 608A part's layout with slot 5 a readable data
    /// slot holding the part's EUI-48 (12 ASCII hex digits, named in its device certificate,
    /// cryptoauthlib's `tngtls_cert_def_3_device`), slots 7 and 13–15 changed.
    TrustAndGo608B,
}

impl Part {
    /// Whether the part carries Microchip's certificates (Trust&GO).
    pub fn is_trust_and_go(self) -> bool {
        matches!(self, Part::TrustAndGo | Part::TrustAndGo608B)
    }

    /// Every part, for help texts.
    pub const ALL: [Part; 4] = [
        Part::Blank,
        Part::TrustFlex,
        Part::TrustAndGo,
        Part::TrustAndGo608B,
    ];

    /// The name used on command lines (`blank`, `trustflex`, `trustandgo`).
    pub fn name(self) -> &'static str {
        match self {
            Part::Blank => "blank",
            Part::TrustFlex => "trustflex",
            Part::TrustAndGo => "trustandgo",
            Part::TrustAndGo608B => "trustandgo-608b",
        }
    }

    /// The revision the reference dump of this part comes from (blank parts take the option's).
    pub fn revision(self) -> Option<Revision> {
        match self {
            Part::Blank => None,
            Part::TrustFlex => Some(Revision::Atecc608B),
            Part::TrustAndGo => Some(Revision::Atecc608A),
            Part::TrustAndGo608B => Some(Revision::Atecc608B),
        }
    }

    /// The shipped configuration zone's bytes 16–127, or `None` for a blank part.
    pub fn config_16_127(self) -> Option<&'static [u8; 112]> {
        match self {
            Part::Blank => None,
            Part::TrustFlex => Some(&TFLXTLS_16_127),
            Part::TrustAndGo => Some(&TNGTLS_16_127),
            Part::TrustAndGo608B => Some(&TNGTLS_608B_16_127),
        }
    }

    /// The ASCII code Microchip writes into OTP bytes 0–7, from which cryptoauthlib picks the
    /// part's certificate definitions (reference §8).
    pub fn otp_code(self) -> Option<&'static [u8; 8]> {
        match self {
            Part::Blank => None,
            Part::TrustFlex => Some(TFLXTLS_OTP_CODE),
            Part::TrustAndGo => Some(TNGTLS_OTP_CODE),
            Part::TrustAndGo608B => Some(TNGTLS_608B_OTP_CODE),
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown part name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPart(pub String);

impl fmt::Display for UnknownPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown part {:?}: expected blank, trustflex, trustandgo or trustandgo-608b",
            self.0.escape_debug().to_string()
        )
    }
}

impl std::error::Error for UnknownPart {}

impl FromStr for Part {
    type Err = UnknownPart;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Part::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPart(s.to_string()))
    }
}

/// OTP code of ATECC608B-TFLXTLS parts (cryptoauthlib maps it to `g_tflxtls_cert_def_4_device`).
pub const TFLXTLS_OTP_CODE: &[u8; 8] = b"MKMwyhP1";
/// OTP code of ATECC608A-TNGTLS parts (legacy code; cryptoauthlib maps it to
/// `g_tngtls_cert_def_2_device`).
pub const TNGTLS_OTP_CODE: &[u8; 8] = b"wdNxAjae";

/// OTP code of ATECC608B-TNGTLS parts (cryptoauthlib maps it to `g_tngtls_cert_def_3_device`).
pub const TNGTLS_608B_OTP_CODE: &[u8; 8] = b"KQp2ZkD8";

/// ATECC608B-TNGTLS configuration bytes 16–127: the 608A dump (§7.2) with the differences §7.4
/// lists (slot 5 SlotConfig 0x8F0F / KeyConfig 0x001C, slot 7 SlotConfig 0x8F8F, slots 13–15
/// SlotConfig 0x8F8F / KeyConfig 0x001C, SecureBoot 0xF700).
pub const TNGTLS_608B_16_127: [u8; 112] = tngtls_608b();

/// Sets the little-endian u16 at config byte `byte` in bytes 16–127.
const fn set(c: &mut [u8; 112], byte: usize, v: u16) {
    c[byte - 16] = v as u8;
    c[byte - 15] = (v >> 8) as u8;
}

const fn tngtls_608b() -> [u8; 112] {
    let mut c = TNGTLS_16_127;
    set(&mut c, 20 + 2 * 5, 0x8F0F);
    set(&mut c, 20 + 2 * 7, 0x8F8F);
    set(&mut c, 20 + 2 * 13, 0x8F8F);
    set(&mut c, 20 + 2 * 14, 0x8F8F);
    set(&mut c, 20 + 2 * 15, 0x8F8F);
    set(&mut c, 96 + 2 * 5, 0x001C);
    set(&mut c, 96 + 2 * 13, 0x001C);
    set(&mut c, 96 + 2 * 14, 0x001C);
    set(&mut c, 96 + 2 * 15, 0x001C);
    set(&mut c, 70, 0xF700);
    c
}

/// ATECC608B-TFLXTLS configuration bytes 16–127 as shipped (reference §7.3, a real device):
/// address 0x6C, both zones locked, slots 10–12 writable (Always) and lockable.
pub const TFLXTLS_16_127: [u8; 112] = [
    0x6C, 0x00, 0x00, 0x01, 0x85, 0x00, 0x82, 0x00, 0x85, 0x20, 0x85, 0x20, 0x85, 0x20, 0x8F, 0x46,
    0x8F, 0x0F, 0x9F, 0x8F, 0x0F, 0x0F, 0x8F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F,
    0x0D, 0x1F, 0x0F, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xF7, 0x00, 0x69, 0x76, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x0E, 0x60, 0x00, 0x00, 0x00, 0x00,
    0x53, 0x00, 0x53, 0x00, 0x73, 0x00, 0x73, 0x00, 0x73, 0x00, 0x38, 0x00, 0x7C, 0x00, 0x1C, 0x00,
    0x3C, 0x00, 0x1A, 0x00, 0x3C, 0x00, 0x30, 0x00, 0x3C, 0x00, 0x30, 0x00, 0x12, 0x00, 0x30, 0x00,
];

/// ATECC608A-TNGTLS configuration bytes 16–127 as shipped (reference §7.2, a real device):
/// address 0x6A, both zones locked, slots 10–12 readable and never writable.
pub const TNGTLS_16_127: [u8; 112] = [
    0x6A, 0x00, 0x00, 0x01, 0x85, 0x00, 0x82, 0x00, 0x85, 0x20, 0x85, 0x20, 0x85, 0x20, 0x8F, 0x46,
    0x8F, 0x0F, 0x9F, 0x8F, 0x0F, 0x0F, 0x8F, 0x0F, 0x0F, 0x8F, 0x0F, 0x8F, 0x0F, 0x8F, 0x0F, 0x0F,
    0x0D, 0x1F, 0x0F, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xF7, 0x00, 0x69, 0x76, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x0E, 0x60, 0x00, 0x00, 0x00, 0x00,
    0x53, 0x00, 0x53, 0x00, 0x73, 0x00, 0x73, 0x00, 0x73, 0x00, 0x38, 0x00, 0x7C, 0x00, 0x1C, 0x00,
    0x3C, 0x00, 0x1A, 0x00, 0x1C, 0x00, 0x10, 0x00, 0x1C, 0x00, 0x30, 0x00, 0x12, 0x00, 0x30, 0x00,
];

/// Bytes 12–15 of the shipped parts' dumps: SN[8] = 0x01 (TNG/TFLX parts), `AES_Enable`,
/// `I2C_Enable`, reserved.
fn bytes_12_15(part: Part) -> [u8; 4] {
    match part {
        Part::TrustFlex | Part::TrustAndGo608B => [0x01, 0x61, 0x69, 0x00],
        _ => [0x01, 0x01, 0x29, 0x00],
    }
}

/// The shipped configuration zone of a pre-configured `part` with the per-device serial bytes
/// `sn_random` (SN[2..4] and SN[4..8]); `None` for a blank part.
pub fn part_config(part: Part, sn_random: [u8; 6]) -> Option<[u8; CONFIG_SIZE]> {
    let tail = part.config_16_127()?;
    let revision = part.revision()?;
    let mut cfg = [0u8; CONFIG_SIZE];
    cfg[0] = 0x01;
    cfg[1] = 0x23;
    cfg[2..4].copy_from_slice(&sn_random[0..2]);
    cfg[4..8].copy_from_slice(&revision.rev_num());
    cfg[8..12].copy_from_slice(&sn_random[2..6]);
    cfg[12..16].copy_from_slice(&bytes_12_15(part));
    cfg[16..].copy_from_slice(tail);
    Some(cfg)
}

/// Slots holding a factory-generated P-256 private key in both parts (KeyConfig `Private`).
pub const FACTORY_KEY_SLOTS: [usize; 5] = [0, 1, 2, 3, 4];

/// The non-volatile state of a pre-configured `part` as shipped, serial and keys drawn from
/// `rng`: configuration of the dump, the OTP code, private keys in slots 0–4 (the PrivWrite
/// layout `00 00 00 00 ‖ scalar`), every other slot erased. `None` for a blank part.
pub fn part_state(part: Part, rng: &mut impl RngCore) -> Option<NvState> {
    let mut sn = [0u8; 6];
    rng.fill_bytes(&mut sn);
    let config = part_config(part, sn)?;
    let mut nv = NvState::new(part.revision()?, config);
    nv.otp[..8].copy_from_slice(part.otp_code()?);
    for slot in FACTORY_KEY_SLOTS {
        let key = loop {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            if let Ok(key) = SecretKey::from_slice(&bytes) {
                break key;
            }
        };
        nv.slots[slot][..4].fill(0);
        nv.slots[slot][4..36].copy_from_slice(&key.to_bytes());
    }
    if part == Part::TrustAndGo608B {
        // The EUI-48 Microchip assigns (its OUI 00-04-A3 and 3 per-part bytes), as 12 ASCII
        // upper-case hex digits.
        let mut eui = [0x00, 0x04, 0xA3, 0, 0, 0];
        rng.fill_bytes(&mut eui[3..]);
        let text = hex::encode_upper(eui);
        nv.slots[5][..12].copy_from_slice(text.as_bytes());
    }
    Some(nv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ConfigZone};
    use rand::SeedableRng;

    #[test]
    fn parts_are_locked_and_keep_the_dump() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        for part in [Part::TrustFlex, Part::TrustAndGo, Part::TrustAndGo608B] {
            let nv = part_state(part, &mut rng).unwrap();
            assert!(nv.config.config_locked() && nv.config.data_locked());
            assert_eq!(&nv.config[16..], part.config_16_127().unwrap());
            assert_eq!(config::serial_number(&nv.config)[8], 0x01);
            assert_eq!(&nv.otp[..8], part.otp_code().unwrap());
            assert!(SecretKey::from_slice(&nv.slots[0][4..36]).is_ok());
        }
        assert!(part_state(Part::Blank, &mut rng).is_none());
        assert_eq!("trustandgo".parse::<Part>(), Ok(Part::TrustAndGo));
        assert!("tng".parse::<Part>().is_err());
    }
}
