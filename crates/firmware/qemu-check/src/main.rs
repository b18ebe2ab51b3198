//! Device-side known-answer checks on the ESP32-C3's instruction set (riscv32imc, no atomics,
//! 32-bit) under `qemu-system-riscv32 -M virt`: the code the firmware runs, compiled the way the
//! firmware compiles it, checked against facts that do not come from that code.
//!
//! Exit code 0 when every check passed, 1 otherwise (101 on a panic). docs/firmware.md "Checks".
#![no_std]
#![no_main]

#[path = "../../src/cert_info.rs"]
mod cert_info;
mod wire_case;

use semihosting::{println, process};

/// Counts and prints check results.
struct Checks {
    failed: u32,
    run: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool) {
        self.run += 1;
        if !ok {
            self.failed += 1;
        }
        println!("{} {}", if ok { "ok  " } else { "FAIL" }, name);
    }
}

/// Splits length-prefixed records (u16 LE length, bytes) as build.rs writes them.
fn records(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    core::iter::from_fn(move || {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        let (item, rest) = rest.split_at_checked(usize::from(u16::from_le_bytes(*len)))?;
        bytes = rest;
        Some(item)
    })
}

#[riscv_rt::entry]
fn main() -> ! {
    let mut c = Checks { failed: 0, run: 0 };
    atecc_packets(&mut c);
    wire_framing(&mut c);
    agent_store(&mut c);
    #[cfg(vectors)]
    certificate_rebuild(&mut c);
    #[cfg(not(vectors))]
    println!("SKIP certificate rebuild: no shared vectors at build time (KEYSTAMP_SHARED)");
    println!("{} checks, {} failed", c.run, c.failed);
    process::exit(if c.failed == 0 { 0 } else { 1 })
}

/// ATECC608 packet CRC-16: the datasheet's Info command packet and wake response.
fn atecc_packets(c: &mut Checks) {
    let mut buf = [0u8; 16];
    let n = keystamp_atecc::packet::encode_command(0x30, 0x00, 0x0000, &[], &mut buf);
    c.check(
        "atecc: Info(Revision) packet is 07 30 00 00 00 03 5D",
        n.ok().and_then(|n| buf.get(..n)) == Some(&[0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D][..]),
    );
    c.check(
        "atecc: CRC-16 of the wake response 04 11 is 33 43",
        keystamp_atecc::crc::crc16(&[0x04, 0x11]).to_le_bytes() == [0x33, 0x43],
    );
}

/// Wire framing: the CRC-32 check value, and a device session fed the host's request lines.
fn wire_framing(c: &mut Checks) {
    c.check(
        "wire: CRC-32/ISO-HDLC of \"123456789\" is CBF43926",
        keystamp_wire::crc::crc32(b"123456789") == 0xCBF4_3926,
    );
    let requests = include_bytes!(concat!(env!("OUT_DIR"), "/requests.bin"));
    let answers = include_bytes!(concat!(env!("OUT_DIR"), "/answers.bin"));
    let mut session = keystamp_wire::DeviceSession::new();
    let cases = wire_case::wire_cases();
    let mut served = 0;
    for ((line, answer), (request, response)) in records(requests).zip(records(answers)).zip(&cases)
    {
        let (used, event) = session.feed(line);
        let seq = match event {
            Some(keystamp_wire::DeviceEvent::Request { seq, request: got }) if got == *request => {
                seq
            }
            _ => {
                c.check("wire: the device decodes the host's request line", false);
                continue;
            }
        };
        let ok = used == line.len() && session.respond(seq, response) == answer;
        c.check(
            "wire: request decoded, answer byte-identical to the host build's",
            ok,
        );
        served += 1;
    }
    c.check("wire: all request lines served", served == cases.len());
}

/// The agent's blob store (SHA-256 on the device ISA): round trip and a flipped byte.
fn agent_store(c: &mut Checks) {
    use keystamp_agent::store::{self, MemStore, StoreError};
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    let abc = [
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22,
        0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00,
        0x15, 0xad,
    ];
    c.check(
        "sha256(\"abc\") (compact backend) matches FIPS 180-2",
        store::sha256(b"abc") == abc,
    );
    let mut flash = MemStore::<2048>::default();
    let blob = [0x42u8; 700];
    let digest = store::sha256(&blob);
    let mut buf = [0u8; 1024];
    let saved = store::save(&mut flash, &blob, &digest, &[0x77; 64]).is_ok();
    let loaded = store::load(&mut flash, &mut buf)
        .is_ok_and(|st| st.len == 700 && st.digest == digest && st.signature == [0x77; 64]);
    c.check(
        "agent store: save then load returns the blob",
        saved && loaded && buf[..700] == blob,
    );
    flash.bytes[store::BLOB_OFFSET as usize + 10] ^= 1;
    c.check(
        "agent store: a flipped bit is Corrupt",
        store::load(&mut flash, &mut buf) == Err(StoreError::Corrupt),
    );
}

/// cryptoauthlib's real device certificate rebuilt from its definition (in a blob) and the device
/// data, as the agent does on the device.
#[cfg(vectors)]
fn certificate_rebuild(c: &mut Checks) {
    use keystamp_certdef::rebuild::BLOCK_SIZE;
    use keystamp_certdef::{CertView, DefBlob, read_plan, rebuild};

    let blob = include_bytes!(concat!(env!("OUT_DIR"), "/blob.bin"));
    let reads = include_bytes!(concat!(env!("OUT_DIR"), "/reads.bin"));
    let signer_pk: &[u8; 64] = include_bytes!(concat!(env!("OUT_DIR"), "/signer_pk.bin"));
    let cert = include_bytes!(concat!(env!("OUT_DIR"), "/cert.der"));
    let tbs_digest = include_bytes!(concat!(env!("OUT_DIR"), "/tbs_digest.bin"));
    let cn = include_bytes!(concat!(env!("OUT_DIR"), "/cn.bin"));

    let Some(def) = DefBlob::parse(blob).ok().and_then(|b| b.device_def()) else {
        c.check(
            "certdef: the blob parses and holds a device definition",
            false,
        );
        return;
    };
    c.check(
        "certdef: the blob parses and holds a device definition",
        true,
    );
    let Ok(plan) = read_plan(&def, BLOCK_SIZE) else {
        c.check("certdef: read plan", false);
        return;
    };
    let mut data: heapless_pairs::Pairs<'_> = heapless_pairs::Pairs::new();
    for (loc, bytes) in plan.iter().zip(records(reads)) {
        data.push(*loc, bytes);
    }
    c.check(
        "certdef: one device read per plan entry",
        data.len() == plan.len(),
    );
    let mut out = [0u8; 1024];
    let rebuilt = rebuild(&def, data.as_slice(), Some(signer_pk), &mut out);
    let der = rebuilt.ok().and_then(|n| out.get(..n));
    c.check(
        "certdef: rebuilt device certificate equals cryptoauthlib's",
        der == Some(&cert[..]),
    );
    let Some(der) = der else { return };
    let digest = CertView::new(&def, der).tbs_digest();
    c.check(
        "certdef: TBS digest equals cryptoauthlib's",
        digest.ok().as_ref() == Some(tbs_digest),
    );
    c.check(
        "firmware: subject CN from the DER walk equals x509-cert's",
        cert_info::subject_common_name(der) == Some(&cn[..]),
    );
}

/// A fixed-capacity list of (location, bytes) pairs, the device-data form `rebuild` takes.
#[cfg(vectors)]
mod heapless_pairs {
    use keystamp_certdef::DeviceLoc;
    use keystamp_certdef::rebuild::MAX_LOCS;

    pub struct Pairs<'a> {
        items: [(DeviceLoc, &'a [u8]); MAX_LOCS],
        len: usize,
    }

    impl<'a> Pairs<'a> {
        pub fn new() -> Self {
            Pairs {
                items: [(DeviceLoc::default(), &[][..]); MAX_LOCS],
                len: 0,
            }
        }
        pub fn push(&mut self, loc: DeviceLoc, bytes: &'a [u8]) {
            if let Some(slot) = self.items.get_mut(self.len) {
                *slot = (loc, bytes);
                self.len += 1;
            }
        }
        pub fn len(&self) -> usize {
            self.len
        }
        pub fn as_slice(&self) -> &[(DeviceLoc, &'a [u8])] {
            self.items.get(..self.len).unwrap_or_default()
        }
    }
}
