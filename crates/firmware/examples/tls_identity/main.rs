//! Firmware TLS with the chip-held identity (ESP32-C3/C6): a TLS 1.3 client (embedded-tls)
//! authenticates to an MQTT broker with the device certificate rebuilt by the agent's identity
//! API, and the chip makes the CertificateVerify signature through that API; no private key
//! exists anywhere else. Then it publishes one MQTT message to `devices/<CN>/hello`.
//!
//! The TLS, identity and MQTT code is `chip_tls.rs` (board-independent; the host test
//! `crates/host/tests/firmware_tls.rs` runs the same file against a rustls server and
//! Mosquitto with the agent on the emulated chip). This file is the ESP32 around it.
//!
//! The boundary the application fills in is [`Application`]: bring up the network (Wi-Fi or
//! Ethernet, DNS, TCP: esp-radio with smoltcp or embassy-net on a product) and say which broker
//! and which CA signs the broker's certificate. This example's [`Unwired`] brings up nothing, so
//! on a board it reports the identity and stops before the handshake; everything after
//! `Application::connect` (TLS, identity, MQTT) is the real code and is compiled and linked
//! into the image whose size docs/firmware.md reports.
//!
//! The client sends one certificate: embedded-tls's `CryptoProvider::client_cert` has room for
//! the end-entity certificate only (docs/decisions/0009-firmware-tls.md). The broker must
//! therefore trust the project's **signer** certificate (`ca/signer.pem`) directly, not only
//! the root. The signer certificate rebuilt from the chip is printed so it can be checked
//! against the one the broker trusts.
//!
//! Build: `cargo xtask firmware-example` (or, in crates/firmware, `cargo build --release
//! --example tls_identity --no-default-features --features esp32c3`).
#![no_std]
#![no_main]

#[path = "../../src/blob_store.rs"]
#[allow(dead_code)]
mod blob_store;
#[path = "../../src/cert_info.rs"]
mod cert_info;
#[path = "../../src/config.rs"]
#[allow(dead_code)]
mod config;
#[path = "../../src/line.rs"]
#[allow(dead_code)]
mod line;
#[path = "../../src/report.rs"]
#[allow(dead_code)]
mod report;

mod chip_tls;

use embedded_io::{Read, Write};
use embedded_tls::blocking::TlsError;
use esp_hal::delay::Delay;
use esp_hal::i2c::master::{Config as I2cConfig, I2c};
use esp_hal::uart::{Config as UartConfig, Uart};
use esp_hal::{Blocking, main};
use esp_storage::FlashStorage;
use keystamp_agent::{Agent, MAX_CERT};
use keystamp_atecc::Atecc;
use keystamp_wire::FirmwareVersion;
use static_cell::StaticCell;

use crate::blob_store::BlobStore;
use crate::chip_tls::{Broker, SessionError};
use crate::config::{ATECC_ADDRESS, DEF_BLOB_CAPACITY, HOST_BAUD, I2C_FREQUENCY};
use crate::line::Line;

esp_bootloader_esp_idf::esp_app_desc!();

type Chip = Atecc<I2c<'static, Blocking>, Delay>;
type DeviceAgent = Agent<Chip, BlobStore, DEF_BLOB_CAPACITY>;
type Uart0 = Uart<'static, Blocking>;

/// TLS record buffers: a full record (16 KiB + header and tag) in, a smaller one out.
const RECORD_READ: usize = 16_640;
const RECORD_WRITE: usize = 4_096;

static AGENT: StaticCell<DeviceAgent> = StaticCell::new();
static FLASH: StaticCell<FlashStorage<'static>> = StaticCell::new();
static DEVICE_CERT: StaticCell<[u8; MAX_CERT]> = StaticCell::new();
static SIGNER_CERT: StaticCell<[u8; MAX_CERT]> = StaticCell::new();
static READ_BUF: StaticCell<[u8; RECORD_READ]> = StaticCell::new();
static WRITE_BUF: StaticCell<[u8; RECORD_WRITE]> = StaticCell::new();

// ---------------------------------------------------------------------------------------------
// The application's boundary.

/// Why the application could not give a connection.
#[derive(Clone, Copy, Debug)]
pub enum NetworkError {
    /// No network interface is up (this example's stub).
    NotBroughtUp,
    /// The broker did not accept a TCP connection.
    Refused,
}

/// What a product brings: the network and the broker it talks to.
pub trait Application {
    /// A connected TCP stream to the broker.
    type Socket: Read + Write;
    /// Brings up the network if needed and opens a TCP connection to the broker.
    fn connect(&mut self) -> Result<Self::Socket, NetworkError>;
    /// The broker's DNS name (checked against its certificate).
    fn broker_name(&self) -> &str;
    /// The DER certificate of the CA that signs the broker's certificate.
    fn broker_ca(&self) -> &[u8];
}

/// The stub: no network. Its `connect` result is opaque to the optimizer, so the TLS and MQTT
/// code after it stays in the image.
struct Unwired;

/// The stub's socket type: never connected (it must be an inhabited type, or the compiler
/// would know `connect` cannot succeed and drop the TLS code).
struct NoSocket;

impl embedded_io::ErrorType for NoSocket {
    type Error = embedded_io::ErrorKind;
}

impl Read for NoSocket {
    fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
        Err(embedded_io::ErrorKind::NotConnected)
    }
}

impl Write for NoSocket {
    fn write(&mut self, _: &[u8]) -> Result<usize, Self::Error> {
        Err(embedded_io::ErrorKind::NotConnected)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Err(embedded_io::ErrorKind::NotConnected)
    }
}

impl Application for Unwired {
    type Socket = NoSocket;
    fn connect(&mut self) -> Result<NoSocket, NetworkError> {
        core::hint::black_box(Err(NetworkError::NotBroughtUp))
    }
    fn broker_name(&self) -> &str {
        core::hint::black_box("broker.example")
    }
    fn broker_ca(&self) -> &[u8] {
        core::hint::black_box(&[])
    }
}

// ---------------------------------------------------------------------------------------------

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    esp_hal::system::software_reset()
}

fn say(uart: &mut Uart0, line: &mut Line) {
    let _ = uart.write_all(line.finish());
    let _ = uart.flush();
}

#[main]
fn main() -> ! {
    let p = esp_hal::init(esp_hal::Config::default());
    let (uart_tx, uart_rx, i2c_sda, i2c_scl) = board_pins!(p);
    let Ok(uart) = Uart::new(p.UART0, UartConfig::default().with_baudrate(HOST_BAUD)) else {
        panic!("config.rs: HOST_BAUD")
    };
    let mut uart = uart.with_tx(uart_tx).with_rx(uart_rx);
    let Ok(i2c) = I2c::new(p.I2C0, I2cConfig::default().with_frequency(I2C_FREQUENCY)) else {
        panic!("config.rs: I2C_FREQUENCY")
    };
    let mut chip = Atecc::new(i2c.with_sda(i2c_sda).with_scl(i2c_scl), Delay::new());
    chip.set_address(ATECC_ADDRESS);
    let (store, _) = BlobStore::open(FLASH.init(FlashStorage::new(p.FLASH)));
    let version = FirmwareVersion {
        major: 0,
        minor: 1,
        patch: 0,
    };
    let agent = AGENT.init_with(|| Agent::new(chip, store, version));

    // The identity: both certificates rebuilt from the chip and verified by it.
    let device = DEVICE_CERT.init([0; MAX_CERT]);
    let signer = SIGNER_CERT.init([0; MAX_CERT]);
    let rebuilt = agent.rebuild_identity(device, signer);
    keystamp_agent::Chip::idle(agent.chip());
    let lens = match rebuilt {
        Ok(lens) => lens,
        Err(e) => {
            say(&mut uart, Line::new().text("identity unavailable ").why(&e));
            idle()
        }
    };
    let device_cert = device.get(..lens.device).unwrap_or_default();
    let signer_cert = signer.get(..lens.signer).unwrap_or_default();
    let unnamed: &[u8] = b"(no common name)";
    say(
        &mut uart,
        Line::new()
            .text("device CN=")
            .printable(cert_info::subject_common_name(device_cert).unwrap_or(unnamed))
            .text(", signer CN=")
            .printable(cert_info::subject_common_name(signer_cert).unwrap_or(unnamed))
            .text(" (the broker must trust this signer)"),
    );

    let mut app = Unwired;
    let socket = match app.connect() {
        Ok(socket) => socket,
        Err(_) => {
            say(
                &mut uart,
                Line::new().text("network not brought up: no TLS session (see Application)"),
            );
            idle()
        }
    };
    let read_buf = READ_BUF.init([0; RECORD_READ]);
    let write_buf = WRITE_BUF.init([0; RECORD_WRITE]);
    let broker = Broker {
        name: app.broker_name(),
        ca: app.broker_ca(),
    };
    let cn = cert_info::subject_common_name(device_cert).unwrap_or_default();
    let session = chip_tls::publish_hello(
        socket,
        &broker,
        agent,
        device_cert,
        cn,
        b"hello from the chip",
        esp_hal::rng::Rng::new(),
        read_buf,
        write_buf,
    );
    match session {
        Ok(_) => say(&mut uart, Line::new().text("published devices/<CN>/hello")),
        Err(SessionError::Tls(TlsError::InvalidCertificate)) => say(
            &mut uart,
            Line::new().text("the broker's certificate is not trusted"),
        ),
        Err(SessionError::Tls(_)) => say(&mut uart, Line::new().text("TLS session failed")),
        Err(SessionError::Mqtt(_)) => say(&mut uart, Line::new().text("MQTT packet too long")),
        Err(SessionError::Refused(code)) => say(
            &mut uart,
            Line::new().text("broker refused: ").dec(u32::from(code)),
        ),
        Err(SessionError::ChipRng) => say(&mut uart, Line::new().text("chip RNG failed")),
    }
    idle()
}

fn idle() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
