//! keystamp device firmware for the ESP32-C3 and ESP32-C6: one image for every device.
//!
//! The firmware is glue: UART0 to the host, I2C to the ATECC608, the certificate-definition blob
//! in a flash partition, and `keystamp-agent` doing the work. What a device's certificates look
//! like is data (the blob), never code, so every device runs this same image.
//!
//! Boot: a short window for the host, then — if the chip is locked and a trusted blob is
//! stored — the product path: rebuild and verify the device's certificate chain from the chip
//! and print who the device is. A locked chip never drops into provisioning: the agent keeps
//! answering the read-only requests (and refuses the rest) until a host authenticates for
//! maintenance. docs/firmware.md describes wiring, flashing, the states and hardening.
#![no_std]
#![no_main]

mod blob_store;
mod cert_info;
mod config;
mod line;
mod platform;
mod report;

use embedded_io::Write as _;
#[cfg(feature = "println")]
use esp_backtrace as _;
use esp_hal::delay::Delay;
use esp_hal::i2c::master::{Config as I2cConfig, I2c};
use esp_hal::time::{Duration, Instant};
use esp_hal::uart::{Config as UartConfig, Uart};
use esp_hal::{Blocking, main};
use esp_storage::FlashStorage;
use keystamp_agent::{Action, Agent, MAX_CERT};
use keystamp_atecc::Atecc;
use keystamp_wire::{FirmwareVersion, Lifecycle};
use static_cell::StaticCell;

use crate::blob_store::BlobStore;
use crate::config::{
    ATECC_ADDRESS, BOOT_WINDOW_MS, CHIP_NAME, DEF_BLOB_CAPACITY, HOST_BAUD, I2C_FREQUENCY,
    MAX_BAUD, PARTITION_LABEL,
};
use crate::line::Line;

esp_bootloader_esp_idf::esp_app_desc!();

/// The secure element behind the agent.
type Chip = Atecc<I2c<'static, Blocking>, Delay>;
/// The host link.
type HostUart = Uart<'static, Blocking>;
/// The agent with this firmware's chip, storage and blob capacity.
type DeviceAgent = Agent<Chip, BlobStore, DEF_BLOB_CAPACITY>;

/// The agent (blob buffers, certificates, wire session: about 21 KiB) lives in static RAM, so
/// its size shows up in the image's static RAM figure instead of hiding on the stack.
static AGENT: StaticCell<DeviceAgent> = StaticCell::new();
static FLASH: StaticCell<FlashStorage<'static>> = StaticCell::new();

/// A certificate-definition blob compiled in at build time (`KEYSTAMP_DEFAULT_BLOB`, see
/// build.rs); empty when none was given.
const DEFAULT_BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default_blob.bin"));
/// The signer's signature of [`DEFAULT_BLOB`] (`KEYSTAMP_DEFAULT_BLOB_SIGNATURE`; zeros if none).
const DEFAULT_BLOB_SIGNATURE: &[u8; 64] =
    include_bytes!(concat!(env!("OUT_DIR"), "/default_blob.sig"));
const _: () = assert!(
    DEFAULT_BLOB.len() <= DEF_BLOB_CAPACITY,
    "the default blob is larger than DEF_BLOB_CAPACITY"
);

/// The version the firmware reports in Hello: this crate's version.
const FIRMWARE: FirmwareVersion = FirmwareVersion {
    major: parse_u8(env!("CARGO_PKG_VERSION_MAJOR")),
    minor: parse_u8(env!("CARGO_PKG_VERSION_MINOR")),
    patch: parse_u8(env!("CARGO_PKG_VERSION_PATCH")),
};

/// Decimal string to u8 at compile time (a non-number or overflow fails the build).
const fn parse_u8(s: &str) -> u8 {
    let bytes = s.as_bytes();
    let mut value: u8 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digit = bytes[i];
        assert!(digit.is_ascii_digit(), "version part is not a number");
        value = match value.checked_mul(10) {
            Some(v) => match v.checked_add(digit - b'0') {
                Some(v) => v,
                None => panic!("version part exceeds 255"),
            },
            None => panic!("version part exceeds 255"),
        };
        i += 1;
    }
    value
}

/// What the firmware does next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Serve the host until it sends Finish.
    Provision,
    /// Rebuild the identity and hand over to the product.
    Product,
}

/// Without `println`: a panic (a broken invariant, never bad input) reboots the chip.
#[cfg(not(feature = "println"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    esp_hal::system::software_reset()
}

#[main]
fn main() -> ! {
    let p = esp_hal::init(esp_hal::Config::default());
    let (uart_tx, uart_rx, i2c_sda, i2c_scl) = board_pins!(p);

    // Both fail only for a baud rate or clock the hardware cannot make: a mistake in config.rs.
    let Ok(uart) = Uart::new(p.UART0, UartConfig::default().with_baudrate(HOST_BAUD)) else {
        panic!("config.rs: HOST_BAUD")
    };
    let mut uart = uart.with_tx(uart_tx).with_rx(uart_rx);
    let Ok(i2c) = I2c::new(p.I2C0, I2cConfig::default().with_frequency(I2C_FREQUENCY)) else {
        panic!("config.rs: I2C_FREQUENCY")
    };
    let mut chip = Atecc::new(i2c.with_sda(i2c_sda).with_scl(i2c_scl), Delay::new());
    // Pre-configured parts answer elsewhere (Trust&Go 0x35, TrustFLEX 0x36): use whichever
    // known address answers. When none does, the driver stays at ATECC_ADDRESS and `decide`
    // reports the chip as not answering.
    let located = chip.locate(ATECC_ADDRESS);
    let chip_address = chip.address();

    let (mut store, partition) = BlobStore::open(FLASH.init(FlashStorage::new(p.FLASH)));
    if let Err(e) = partition {
        say(
            &mut uart,
            Line::new()
                .text("no usable `")
                .text(PARTITION_LABEL)
                .text("` partition ")
                .why(&e)
                .text(": blobs cannot be stored; flash with partitions.csv"),
        );
    }
    if !DEFAULT_BLOB.is_empty() {
        match store.seed(DEFAULT_BLOB, DEFAULT_BLOB_SIGNATURE) {
            Ok(true) => say(
                &mut uart,
                Line::new().text("stored the compiled-in default blob"),
            ),
            Ok(false) => {}
            Err(e) => say(
                &mut uart,
                Line::new()
                    .text("could not store the default blob ")
                    .why(&e),
            ),
        }
    }

    let partition_kib = store.size() / 1024;
    let agent = AGENT.init_with(|| Agent::new(chip, store, FIRMWARE));
    agent.set_platform(platform::read());
    agent.set_max_baud(MAX_BAUD);
    say(
        &mut uart,
        Line::new()
            .text("keystamp-firmware ")
            .text(env!("CARGO_PKG_VERSION"))
            .text(" ")
            .text(CHIP_NAME)
            .text(": agent ready, secure element ")
            .text(if located.is_ok() {
                "at 0x"
            } else {
                "not found, 0x"
            })
            .hex(chip_address)
            .text(", blob partition ")
            .dec(u32::try_from(partition_kib).unwrap_or(u32::MAX))
            .text(" KiB, host window ")
            .dec(BOOT_WINDOW_MS)
            .text(" ms"),
    );

    let mut mode = if host_within_window(agent, &mut uart) && may_provision(agent) {
        Mode::Provision
    } else {
        decide(agent, &mut uart)
    };
    loop {
        mode = match mode {
            Mode::Provision => {
                serve_until_finish(agent, &mut uart);
                // The session is over: its maintenance authentication with it.
                agent.end_connection();
                decide(agent, &mut uart)
            }
            Mode::Product => product(agent, &mut uart),
        };
    }
}

/// Writes one whole boot line on UART0. The host's frame reader skips lines that are not
/// frames, so whole lines between sessions are harmless; nothing is printed during a session.
fn say(uart: &mut HostUart, line: &mut Line) {
    // A failed write of a diagnostic line has nowhere to be reported.
    let _ = uart.write_all(line.finish());
    let _ = uart.flush();
}

/// What one look at UART0 gave.
enum Polled {
    /// Nothing received, or nothing that needed an answer.
    Quiet,
    /// The agent answered the host.
    Answered,
    /// The host finished its session.
    Finished {
        /// It asked for a reboot.
        reboot: bool,
    },
    /// The agent accepted `SetBaud` (its `Ok` is written at the current rate).
    SetBaud {
        /// The new rate.
        baud: u32,
    },
}

/// Feeds whatever UART0 has received to the agent without blocking.
fn poll(agent: &mut DeviceAgent, uart: &mut HostUart) -> Polled {
    if !uart.read_ready() {
        return Polled::Quiet;
    }
    let mut buf = [0u8; 128];
    let Ok(n) = uart.read_buffered(&mut buf) else {
        // A framing or overrun error: that frame's CRC fails and the host retransmits.
        return Polled::Quiet;
    };
    let mut answered = false;
    let action = agent.feed(buf.get(..n).unwrap_or_default(), |bytes| {
        answered = true;
        uart.write_all(bytes)
    });
    let _ = uart.flush();
    match action {
        Ok(Action::Finished { reboot }) => Polled::Finished { reboot },
        Ok(Action::SetBaud { baud }) => Polled::SetBaud { baud },
        _ if answered => Polled::Answered,
        _ => Polled::Quiet,
    }
}

/// Listens for [`BOOT_WINDOW_MS`] after reset; `true` when a host started a session.
fn host_within_window(agent: &mut DeviceAgent, uart: &mut HostUart) -> bool {
    let start = Instant::now();
    let window = Duration::from_millis(u64::from(BOOT_WINDOW_MS));
    while start.elapsed() < window {
        match poll(agent, uart) {
            Polled::Quiet => {}
            Polled::Answered => return true,
            Polled::Finished { reboot } => finished(uart, reboot),
            // Not offered before a session started; stay at the boot rate.
            Polled::SetBaud { .. } => return true,
        }
    }
    false
}

/// After Finish: reboot when asked (the answer is already on the wire).
fn finished(uart: &mut HostUart, reboot: bool) {
    if reboot {
        let _ = uart.flush();
        esp_hal::system::software_reset();
    }
}

/// Serves the host until it sends Finish (reboots if it asks to). `SetBaud`: the `Ok` has
/// been written at the current rate; once it has left the UART the rate changes, and unless a
/// request is answered at the new rate within `BAUD_CONFIRM_MS` the old rate returns
/// (docs/protocol.md §4.2). The session ends at the boot rate, and a host silent for twice that
/// long at another rate (gone without `Finish`) finds the device back at the boot rate.
fn serve_until_finish(agent: &mut DeviceAgent, uart: &mut HostUart) {
    let mut rate = HOST_BAUD;
    // Switched, not yet confirmed: (the rate to go back to, since when).
    let mut unconfirmed: Option<(u32, Instant)> = None;
    let confirm = Duration::from_millis(u64::from(keystamp_agent::BAUD_CONFIRM_MS));
    let mut last_answer = Instant::now();
    loop {
        match poll(agent, uart) {
            Polled::Quiet => {
                if rate != HOST_BAUD && last_answer.elapsed() >= confirm + confirm {
                    set_rate(uart, HOST_BAUD);
                    rate = HOST_BAUD;
                    unconfirmed = None;
                }
            }
            Polled::Answered => {
                unconfirmed = None;
                last_answer = Instant::now();
            }
            Polled::SetBaud { baud } => {
                last_answer = Instant::now();
                if set_rate(uart, baud) {
                    unconfirmed = Some((rate, last_answer));
                    rate = baud;
                }
            }
            Polled::Finished { reboot } => {
                set_rate(uart, HOST_BAUD);
                return finished(uart, reboot);
            }
        }
        if let Some((old, since)) = unconfirmed
            && since.elapsed() >= confirm
        {
            set_rate(uart, old);
            rate = old;
            unconfirmed = None;
        }
    }
}

/// Switches UART0 to `baud` once everything written has left it; `false` if the hardware
/// cannot make the rate (the line stays at the old one, which the host's fallback finds). Out of
/// line: the UART configuration is large and the serve loop switches in four places.
#[inline(never)]
fn set_rate(uart: &mut HostUart, baud: u32) -> bool {
    let _ = uart.flush();
    uart.apply_config(&UartConfig::default().with_baudrate(baud))
        .is_ok()
}

/// Whether a host may provision now: only a chip that is not Locked (read from its lock bytes),
/// or a connection that authenticated for maintenance.
fn may_provision(agent: &mut DeviceAgent) -> bool {
    if agent.maintenance_authenticated() {
        return true;
    }
    let lifecycle = agent.lifecycle();
    keystamp_agent::Chip::idle(agent.chip());
    // A chip that cannot be read is not known to be unlocked: no provisioning.
    matches!(lifecycle, Ok(Lifecycle::Factory | Lifecycle::Provisioning))
}

/// Provisioning mode on a chip that is not locked yet; on a locked chip always the product
/// path (which reports an untrusted or missing blob instead of using it).
fn decide(agent: &mut DeviceAgent, uart: &mut HostUart) -> Mode {
    let lifecycle = agent.lifecycle();
    // Idle as the agent does after every request: TempKey kept, watchdog stopped.
    keystamp_agent::Chip::idle(agent.chip());
    match lifecycle {
        Ok(Lifecycle::Locked) => Mode::Product,
        Ok(Lifecycle::Factory | Lifecycle::Provisioning) => {
            provision(uart, Line::new().text("secure element not locked"))
        }
        Err(e) => {
            let mut line = Line::new();
            let address = agent.chip().address();
            line.text("secure element at 0x").hex(address);
            say(uart, line.text(" not answering ").why(&e));
            // Not known to be unlocked: serve read-only as a locked device would.
            Mode::Product
        }
    }
}

/// Says why the device is in provisioning mode (`...: provisioning mode`).
fn provision(uart: &mut HostUart, why: &mut Line) -> Mode {
    say(uart, why.text(": provisioning mode"));
    Mode::Provision
}

/// The product path: rebuild and verify the chain from the chip, say who this device is, then
/// idle. A product's TLS/MQTT client takes over here, using `agent.chip()` and
/// `keystamp_agent::identity::sign_digest` for its private-key operations.
fn product(agent: &mut DeviceAgent, uart: &mut HostUart) -> Mode {
    let mut device = [0u8; MAX_CERT];
    let mut signer = [0u8; MAX_CERT];
    let rebuilt = agent.rebuild_identity(&mut device, &mut signer);
    keystamp_agent::Chip::idle(agent.chip());
    match rebuilt {
        Ok(lens) => announce(
            uart,
            device.get(..lens.device).unwrap_or_default(),
            signer.get(..lens.signer).unwrap_or_default(),
        ),
        // An untrusted blob is reported, never used; the device keeps serving read-only
        // requests and maintenance (a locked chip does not fall back to provisioning).
        Err(e) => say(
            uart,
            Line::new()
                .text("identity unavailable ")
                .why(&e)
                .text(": serving read-only; authenticate for maintenance to repair"),
        ),
    }
    // Idle. The host can still reach the agent (to read, prove the identity or authenticate for
    // maintenance) without a reset; the agent refuses what the chip's state forbids.
    loop {
        match poll(agent, uart) {
            Polled::Quiet => {}
            Polled::Answered if may_provision(agent) => return Mode::Provision,
            Polled::Answered => {}
            // The product path keeps its rate: the host's confirmation at the new rate goes
            // unanswered and it falls back to this one (docs/protocol.md §4.2).
            Polled::SetBaud { .. } => {}
            Polled::Finished { reboot } => {
                finished(uart, reboot);
                agent.end_connection();
                return decide(agent, uart);
            }
        }
    }
}

/// Says who this device is (its chain was verified by the secure element).
fn announce(uart: &mut HostUart, device: &[u8], signer: &[u8]) {
    let unnamed: &[u8] = b"(no common name)";
    say(
        uart,
        Line::new()
            .text("device certificate CN=")
            .printable(cert_info::subject_common_name(device).unwrap_or(unnamed))
            .text(" (chain verified by the secure element)"),
    );
    say(
        uart,
        Line::new()
            .text("device certificate SHA256 Fingerprint=")
            .fingerprint(&keystamp_agent::store::sha256(device)),
    );
    say(
        uart,
        Line::new()
            .text("signer certificate CN=")
            .printable(cert_info::subject_common_name(signer).unwrap_or(unnamed)),
    );
}
