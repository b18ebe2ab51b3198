//! Test helpers: read facts from `shared/reference/atecc608.md` at test time (never copied into
//! the repo). Every test that needs them skips with a message when the file is absent.
#![allow(dead_code)]

use std::path::PathBuf;

/// An independent CRC-16 (the `crc` crate) with the parameters the reference gives in §2.2.
pub const INDEPENDENT: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::Algorithm {
    width: 16,
    poly: 0x8005,
    init: 0x0000,
    refin: true,
    refout: false,
    xorout: 0x0000,
    check: 0xBCDD,
    residue: 0x0000,
});

/// Byte used in place of the per-device `xx` serial-number bytes of the dumps.
pub const SN_FILL: u8 = 0xA5;

pub fn shared_dir() -> PathBuf {
    std::env::var("KEYSTAMP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

/// The reference text, or `None` (and a printed reason) when it is not there.
pub fn reference() -> Option<String> {
    let path = shared_dir().join("reference/atecc608.md");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!(
                "SKIP: {} not readable ({e}); set KEYSTAMP_SHARED",
                path.display()
            );
            None
        }
    }
}

/// Parse whitespace-separated hex byte tokens, stopping at the first token that is not one
/// (comments). `xx` becomes [`SN_FILL`].
pub fn hex_tokens(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok.eq_ignore_ascii_case("xx") {
            out.push(SN_FILL);
        } else if tok.len() == 2 && tok.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push(u8::from_str_radix(tok, 16).unwrap());
        } else {
            break;
        }
    }
    out
}

pub fn hex(s: &str) -> Vec<u8> {
    let v = hex_tokens(s);
    assert_eq!(
        v.len() * 3,
        s.split_whitespace().map(|t| t.len() + 1).sum::<usize>(),
        "bad hex {s}"
    );
    v
}

/// Lines of the first fenced code block after the line containing `marker`.
pub fn code_block_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("marker {marker:?} not in reference"));
    let rest = &text[start..];
    let open = rest.find("```").expect("code block");
    let body = &rest[open + 3..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let close = body.find("```").expect("code block end");
    body[..close].lines().collect()
}

/// The 128-byte config dump in the code block after the heading containing `marker`.
pub fn config_dump(text: &str, marker: &str) -> [u8; 128] {
    let mut bytes = Vec::new();
    for line in code_block_after(text, marker) {
        let line = line.trim();
        // "00: 01 23 ..." or "112:3C 00 ..."
        let data = match line.find(':') {
            Some(i) if i <= 4 && line[..i].chars().all(|c| c.is_ascii_digit()) => &line[i + 1..],
            _ => line,
        };
        bytes.extend(hex_tokens(data));
    }
    bytes
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("dump {marker:?} has {} bytes", v.len()))
}

/// Rows of the §2.3 CRC table: (bytes, crc bytes).
pub fn crc_table(text: &str) -> Vec<(Vec<u8>, [u8; 2])> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let Some(end) = rest.find('`') else { continue };
        let data = &rest[..end];
        let Some(after) = rest[end..].split('|').nth(1) else {
            continue;
        };
        let after = after.trim();
        let Some(crc) = after.strip_prefix('`') else {
            continue;
        };
        let crc = hex_tokens(crc.trim_end_matches(|c| c != '`').trim_end_matches('`'));
        if crc.len() == 2 && !data.starts_with('"') {
            out.push((hex(data), [crc[0], crc[1]]));
        }
    }
    out
}

/// The "Full command packets" block: (name, full packet bytes).
pub fn command_packets(text: &str) -> Vec<(String, Vec<u8>)> {
    code_block_after(text, "Full command packets")
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // The name ends where the run of 2-hex-digit tokens to the end of line begins.
            let toks: Vec<&str> = l.split_whitespace().collect();
            let mut first = toks.len();
            while first > 0
                && toks[first - 1].len() == 2
                && toks[first - 1].chars().all(|c| c.is_ascii_hexdigit())
            {
                first -= 1;
            }
            (
                toks[..first].join(" "),
                toks[first..]
                    .iter()
                    .map(|t| u8::from_str_radix(t, 16).unwrap())
                    .collect(),
            )
        })
        .collect()
}
