//! Shared helpers for the vector tests: locate `../shared/vectors/atcacert`, load JSON, hex.
#![allow(dead_code)]

use std::path::PathBuf;

use keystamp_certdef::{CertDefBuf, DateTime, parse_defs_json};
use serde_json::Value;

/// The atcacert vector folder, or `None` (with a printed reason) when absent.
pub fn vectors_dir() -> Option<PathBuf> {
    let shared = std::env::var("KEYSTAMP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    let dir = shared.join("vectors/atcacert");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: vector folder {} not found (set KEYSTAMP_SHARED)",
            dir.display()
        );
        None
    }
}

/// Loads `name` from the vector folder.
pub fn load(name: &str) -> Option<Value> {
    let dir = vectors_dir()?;
    let text = std::fs::read_to_string(dir.join(name)).expect("read vector file");
    Some(serde_json::from_str(&text).expect("vector file is JSON"))
}

/// All definitions of cert_defs.json by name.
pub fn defs() -> Option<Vec<CertDefBuf>> {
    let dir = vectors_dir()?;
    let text = std::fs::read_to_string(dir.join("cert_defs.json")).expect("read cert_defs.json");
    Some(parse_defs_json(&text).expect("cert_defs.json parses"))
}

/// The definition called `name` (C names `g_test_cert_def_<name>` accepted).
pub fn def(name: &str) -> Option<CertDefBuf> {
    let name = name.trim_start_matches("g_test_cert_def_");
    defs()?.into_iter().find(|d| d.name == name)
}

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An array value from a test: plain hex string, or `{"hex": ..., "declared_size": N}` (zero
/// padded to the declared size when it is a number).
pub fn array(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => hex(s),
        Value::Object(o) => {
            let mut b = hex(o["hex"].as_str().expect("hex field"));
            if let Some(n) = o.get("declared_size").and_then(Value::as_u64) {
                b.resize(n as usize, 0);
            }
            b
        }
        _ => panic!("unexpected array shape {v}"),
    }
}

/// `tests[*]` of a vector file with group `group` and name `name`.
pub fn test<'a>(file: &'a Value, group: &str, name: &str) -> &'a Value {
    file["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .find(|t| t["group"] == group && t["name"] == name)
        .unwrap_or_else(|| panic!("no test {group}/{name}"))
}

/// All tests of `group`.
pub fn group<'a>(file: &'a Value, group: &str) -> Vec<&'a Value> {
    file["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .filter(|t| t["group"] == group)
        .collect()
}

pub fn arr(t: &Value, name: &str) -> Vec<u8> {
    array(&t["arrays"][name])
}

/// `[Y, M, D, h, m, s]` → DateTime (None when a field does not fit, e.g. year -1).
pub fn date(v: &Value) -> Option<DateTime> {
    let f: Vec<i64> = v
        .as_array()?
        .iter()
        .map(|x| x.as_i64().expect("int"))
        .collect();
    Some(DateTime::new(
        u16::try_from(f[0]).ok()?,
        u8::try_from(f[1]).ok()?,
        u8::try_from(f[2]).ok()?,
        u8::try_from(f[3]).ok()?,
        u8::try_from(f[4]).ok()?,
        u8::try_from(f[5]).ok()?,
    ))
}

pub fn statuses(t: &Value) -> Vec<String> {
    t["expected_status_in_order"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn global(file: &Value, name: &str) -> Vec<u8> {
    array(&file["globals"]["arrays"][name])
}
