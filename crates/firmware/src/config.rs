//! The one place that says how the board is wired and how the firmware talks: pins, the
//! ATECC608's I2C address and clock, the host link's baud rate, and the boot window.
//! docs/firmware.md has the same table for people holding a soldering iron; change both together.

use esp_hal::time::Rate;

/// Baud rate of UART0, the host link (8N1). The ESP32 boot ROM prints its banner on UART0 at
/// 115200 too, so a terminal sees both.
pub const HOST_BAUD: u32 = 115_200;

/// Highest UART0 rate the host may switch to with `SetBaud` (the ESP32-C3/C6 UART and the usual
/// USB bridges — CP2102, CH340, the C3's USB-serial-JTAG — run 921600 reliably).
pub const MAX_BAUD: u32 = 921_600;

/// 7-bit I2C address of the ATECC608 tried first (0x60 is the factory default of the
/// ATECC608A/B). When nothing answers there, the firmware tries the other factory addresses
/// (Trust&Go 0x35, TrustFLEX 0x36; `keystamp_atecc::FACTORY_ADDRESSES`) and uses the one
/// that answers.
pub const ATECC_ADDRESS: u8 = 0x60;

/// I2C clock. 100 kHz: the driver wakes the chip by addressing 0x00, which holds SDA low for
/// 8 bit times; at 100 kHz that is 80 µs, above the chip's 60 µs wake-low minimum (at 400 kHz it
/// would be 20 µs and the chip would not wake).
pub const I2C_FREQUENCY: Rate = Rate::from_khz(100);

/// How long after reset a host may start a provisioning session (its first request must arrive
/// in this window) before a provisioned device takes the product path.
pub const BOOT_WINDOW_MS: u32 = 2_000;

/// Label of the flash data partition that holds the certificate-definition blob
/// (partitions.csv).
pub const PARTITION_LABEL: &str = "keystamp";

/// Largest certificate-definition blob the device accepts. The agent keeps two buffers of this
/// size in RAM (the active blob and an upload in progress).
pub const DEF_BLOB_CAPACITY: usize = 8 * 1024;

/// Takes the board's pins out of `esp_hal::init`'s peripherals:
/// `(uart_tx, uart_rx, i2c_sda, i2c_scl)`.
///
/// ESP32-C3: UART0 on its boot-ROM pins GPIO21 (TX) / GPIO20 (RX); I2C SDA GPIO5, SCL GPIO6
/// (free on the ESP32-C3-DevKitM-1 and -DevKitC-02; away from the strapping pins 2, 8 and 9).
#[cfg(feature = "esp32c3")]
#[macro_export]
macro_rules! board_pins {
    ($p:ident) => {
        ($p.GPIO21, $p.GPIO20, $p.GPIO5, $p.GPIO6)
    };
}

/// Takes the board's pins out of `esp_hal::init`'s peripherals:
/// `(uart_tx, uart_rx, i2c_sda, i2c_scl)`.
///
/// ESP32-C6: UART0 on its boot-ROM pins GPIO16 (TX) / GPIO17 (RX); I2C SDA GPIO6, SCL GPIO7
/// (free on the ESP32-C6-DevKitC-1; away from the strapping pins 8, 9 and 15 and USB 12/13).
#[cfg(feature = "esp32c6")]
#[macro_export]
macro_rules! board_pins {
    ($p:ident) => {
        ($p.GPIO16, $p.GPIO17, $p.GPIO6, $p.GPIO7)
    };
}

/// Takes the board's pins out of `esp_hal::init`'s peripherals:
/// `(uart_tx, uart_rx, i2c_sda, i2c_scl)`.
///
/// ESP32 (Xtensa, not built here): UART0 on GPIO1 (TX) / GPIO3 (RX); I2C SDA GPIO21, SCL GPIO22.
#[cfg(feature = "esp32")]
#[macro_export]
macro_rules! board_pins {
    ($p:ident) => {
        ($p.GPIO1, $p.GPIO3, $p.GPIO21, $p.GPIO22)
    };
}

/// Takes the board's pins out of `esp_hal::init`'s peripherals:
/// `(uart_tx, uart_rx, i2c_sda, i2c_scl)`.
///
/// ESP32-S3 (Xtensa, not built here): UART0 on GPIO43 (TX) / GPIO44 (RX); I2C SDA GPIO8,
/// SCL GPIO9.
#[cfg(feature = "esp32s3")]
#[macro_export]
macro_rules! board_pins {
    ($p:ident) => {
        ($p.GPIO43, $p.GPIO44, $p.GPIO8, $p.GPIO9)
    };
}

/// The chip this image is built for, as the boot line names it.
#[cfg(feature = "esp32c3")]
pub const CHIP_NAME: &str = "esp32c3";
/// The chip this image is built for, as the boot line names it.
#[cfg(feature = "esp32c6")]
pub const CHIP_NAME: &str = "esp32c6";
/// The chip this image is built for, as the boot line names it.
#[cfg(feature = "esp32")]
pub const CHIP_NAME: &str = "esp32";
/// The chip this image is built for, as the boot line names it.
#[cfg(feature = "esp32s3")]
pub const CHIP_NAME: &str = "esp32s3";

// Two chip features fail in esp-hal ("exactly one chip"); none fails here, with the choices.
#[cfg(not(any(
    feature = "esp32c3",
    feature = "esp32c6",
    feature = "esp32",
    feature = "esp32s3"
)))]
compile_error!("choose a chip feature: esp32c3, esp32c6 (or, untested, esp32 / esp32s3)");
