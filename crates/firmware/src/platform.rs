//! The board's security state, read from its eFuses for the Hello answer (docs/firmware.md,
//! "Hardening"). Field names and positions are esp-hal's generated eFuse tables
//! (`esp_hal::efuse::*`, the same for the ESP32-C3 and ESP32-C6 in BLOCK0).

use esp_hal::efuse::{
    DIS_DOWNLOAD_MODE, DIS_PAD_JTAG, DIS_USB_JTAG, SECURE_BOOT_EN, SPI_BOOT_CRYPT_CNT, read_bit,
    read_field_le,
};
use keystamp_wire::{PlatformSecurity, Tristate};

fn known(on: bool) -> Tristate {
    if on { Tristate::On } else { Tristate::Off }
}

/// Reads the four facts the host's profile can require.
pub fn read() -> PlatformSecurity {
    // SPI_BOOT_CRYPT_CNT: flash encryption is on when an odd number of its 3 bits is set.
    let crypt_cnt: u8 = read_field_le(SPI_BOOT_CRYPT_CNT);
    PlatformSecurity {
        secure_boot: known(read_bit(SECURE_BOOT_EN)),
        flash_encryption: known((crypt_cnt & 0b111).count_ones() % 2 == 1),
        // Permanently off only when both the pad JTAG and the USB-Serial-JTAG bridge are
        // disabled (SOFT_DIS_JTAG can be undone through the HMAC peripheral: not counted).
        jtag_disabled: known(read_bit(DIS_PAD_JTAG) && read_bit(DIS_USB_JTAG)),
        // Secure download mode (ENABLE_SECURITY_DOWNLOAD) still serves a download protocol, so
        // only DIS_DOWNLOAD_MODE counts as disabled.
        download_mode_disabled: known(read_bit(DIS_DOWNLOAD_MODE)),
    }
}
