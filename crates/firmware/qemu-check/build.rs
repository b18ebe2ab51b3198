//! Prepares the qemu check's inputs and independent expectations from the shared known-answer
//! vectors (`KEYSTAMP_SHARED`, else the `shared/` directory next to the repository) into OUT_DIR.
//! Without the vectors the certificate checks are compiled out and the run says so.

use std::path::{Path, PathBuf};
use std::{env, fs};

use keystamp_certdef::rebuild::BLOCK_SIZE;
use keystamp_certdef::{DeviceImage, Role, parse_defs_json, read_plan, split, write_blob};
use keystamp_wire::{DeviceEvent, DeviceSession, HostSession, RetryPolicy};
use serde_json::Value;

#[path = "src/wire_case.rs"]
#[allow(dead_code)]
mod wire_case;

fn main() {
    // Linker script for qemu's `virt` machine: all sections in its RAM at 0x8000_0000.
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::write(
        out.join("memory.x"),
        "MEMORY { RAM : ORIGIN = 0x80000000, LENGTH = 16M }\n\
         REGION_ALIAS(\"REGION_TEXT\", RAM);\nREGION_ALIAS(\"REGION_RODATA\", RAM);\n\
         REGION_ALIAS(\"REGION_DATA\", RAM);\nREGION_ALIAS(\"REGION_BSS\", RAM);\n\
         REGION_ALIAS(\"REGION_HEAP\", RAM);\nREGION_ALIAS(\"REGION_STACK\", RAM);\n",
    )
    .expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=src/wire_case.rs");
    println!("cargo::rustc-check-cfg=cfg(vectors)");

    wire_frames(&out);

    println!("cargo:rerun-if-env-changed=KEYSTAMP_SHARED");
    let shared = env::var_os("KEYSTAMP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../shared"));
    let vectors = shared.join("vectors/atcacert");
    if vectors.join("golden_microchip_certs.json").exists() {
        println!("cargo:rerun-if-changed={}", vectors.display());
        golden_device_cert(&vectors, &out);
        println!("cargo:rustc-cfg=vectors");
    } else {
        println!(
            "cargo:warning=no shared vectors at {}: certificate checks skipped",
            vectors.display()
        );
    }
}

/// Length-prefixed records (u16 LE length, bytes).
fn records(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        out.extend_from_slice(&(item.len() as u16).to_le_bytes());
        out.extend_from_slice(item);
    }
    out
}

/// Request lines as the host encodes them; answer lines as the host build of the device session
/// encodes them.
fn wire_frames(out: &Path) {
    let mut requests = Vec::new();
    let mut answers = Vec::new();
    let mut device = DeviceSession::new();
    for (i, (request, response)) in wire_case::wire_cases().iter().enumerate() {
        let mut host = HostSession::new(RetryPolicy::default(), 1 + i as u16);
        let line = host
            .send(request, 0)
            .expect("host encodes the request")
            .to_vec();
        let (used, event) = device.feed(&line);
        assert_eq!(used, line.len(), "one request per line");
        let seq = match event {
            Some(DeviceEvent::Request { seq, request: got }) => {
                assert_eq!(&got, request);
                seq
            }
            other => panic!("host device session: {other:?}"),
        };
        answers.push(device.respond(seq, response).to_vec());
        requests.push(line);
    }
    fs::write(out.join("requests.bin"), records(&requests)).expect("write requests.bin");
    fs::write(out.join("answers.bin"), records(&answers)).expect("write answers.bin");
}

fn json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// cryptoauthlib's real device certificate (host_hw tests) with its definition `0_device`:
/// the blob holding the definition, the device data a device reads for it, the signer's public
/// key, and the expectations — the certificate itself, cryptoauthlib's C-computed TBS digest,
/// and the subject CN as x509-cert (an independent parser) reads it.
fn golden_device_cert(vectors: &Path, out: &Path) {
    let golden = json(&vectors.join("golden_microchip_certs.json"));
    let list = golden["vectors"].as_array().expect("vectors");
    let find = |name: &str| {
        list.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    let device = find("g_device_cert");
    let signer = find("g_signer_cert");
    let cert = hex(device["compress_request"]["cert"].as_str().expect("cert"));
    let signer_pk = hex(signer["expected"]["public_key"]
        .as_str()
        .expect("public_key"));
    let tbs_digest = hex(device["expected"]["tbs_digest"]
        .as_str()
        .expect("tbs_digest"));

    let defs_text = fs::read_to_string(vectors.join("cert_defs.json")).expect("cert_defs.json");
    let defs = parse_defs_json(&defs_text).expect("cert_defs.json parses");
    let key = device["cert_def_key"].as_str().expect("cert_def_key");
    let buf = defs
        .iter()
        .find(|d| d.name == key)
        .unwrap_or_else(|| panic!("no def {key}"));
    let def = buf.as_def().expect("definition");
    let mut blob = vec![0u8; 8192];
    let n = write_blob(&[(Role::Device, &def)], None, &mut blob).expect("blob");
    blob.truncate(n);

    // What the chip holds for this certificate, read in the device's plan order.
    let mut image = DeviceImage::default();
    let mut scratch = vec![0u8; 2048];
    split(&def, &cert, None, None, &mut image, &mut scratch).expect("split");
    let plan = read_plan(&def, BLOCK_SIZE).expect("plan");
    let reads: Vec<Vec<u8>> = plan
        .iter()
        .map(|l| {
            image
                .read_clamped(l)
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        })
        .collect();

    fs::write(out.join("blob.bin"), &blob).expect("write");
    fs::write(out.join("reads.bin"), records(&reads)).expect("write");
    fs::write(out.join("signer_pk.bin"), &signer_pk).expect("write");
    fs::write(out.join("cert.der"), &cert).expect("write");
    fs::write(out.join("tbs_digest.bin"), &tbs_digest).expect("write");
    fs::write(out.join("cn.bin"), subject_cn(&cert)).expect("write");
}

/// The subject's commonName value bytes, read with x509-cert.
fn subject_cn(der: &[u8]) -> Vec<u8> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der).expect("x509-cert parses the certificate");
    let cn = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");
    // x509-cert 0.3's Name::iter walks every attribute of every RDN, in order.
    for atv in cert.tbs_certificate().subject().iter() {
        if atv.oid == cn {
            return atv.value.value().to_vec();
        }
    }
    panic!("the certificate has no subject CN")
}
