//! Prints the example provisioning transcript of docs/protocol.md §8 and its size on the wire.
//!
//! `cargo run -p keystamp-wire --example transcript [chunk]` (chunk defaults to 256).

#[path = "../tests/support/fake.rs"]
mod fake;

fn main() {
    let chunk = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let (text, up, down) = fake::render_transcript(chunk, 0x3A00);
    print!("{text}");
    let total = up + down;
    // 10 bits per byte on the UART: start bit, 8 data bits, stop bit.
    let secs = |baud: f64| total as f64 * 10.0 / baud;
    eprintln!(
        "chunk {chunk}: host->device {up} B, device->host {down} B, total {total} B; \
         {:.3} s at 115200 baud, {:.3} s at 921600 baud",
        secs(115_200.0),
        secs(921_600.0)
    );
}
