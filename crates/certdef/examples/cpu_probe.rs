//! Instruction-count probe for callgrind (load independent, unlike wall-clock benches): runs
//! `rebuild`, `compress` (DER → 72 bytes) and `CompressedCert::to_bytes` (fields → 72 bytes) on
//! cryptoauthlib's golden device and signer certificates, each in its own non-inlined function.
//!
//! ```text
//! cargo build --release -p keystamp-certdef --example cpu_probe
//! valgrind --tool=callgrind --toggle-collect='cpu_probe::run_*' target/release/examples/cpu_probe
//! callgrind_annotate --inclusive=yes callgrind.out.<pid> | grep run_
//! ```
//! Each `run_*` function performs `ITERS` calls; divide its inclusive count by `ITERS`.

use std::hint::black_box;
use std::path::PathBuf;

use keystamp_certdef::rebuild::BLOCK_SIZE;
use keystamp_certdef::{
    CertDef, CompressedCert, DeviceImage, DeviceLoc, compress, parse_defs_json, read_plan, rebuild,
    split,
};

const ITERS: usize = 1000;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[inline(never)]
fn run_compress_der_to_comp(def: &CertDef<'_>, der: &[u8]) {
    for _ in 0..ITERS {
        black_box(compress(black_box(def), black_box(der)).ok());
    }
}

#[inline(never)]
fn run_compress_encode_fields(comp: &CompressedCert) {
    for _ in 0..ITERS {
        black_box(black_box(comp).to_bytes().ok());
    }
}

#[inline(never)]
fn run_rebuild(
    def: &CertDef<'_>,
    data: &[(DeviceLoc, &[u8])],
    ca: Option<&[u8; 64]>,
    out: &mut [u8],
) {
    for _ in 0..ITERS {
        black_box(rebuild(black_box(def), black_box(data), ca, out).ok());
    }
}

fn main() {
    let shared = std::env::var("KEYSTAMP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    let dir = shared.join("vectors/atcacert");
    let (Ok(defs), Ok(golden)) = (
        std::fs::read_to_string(dir.join("cert_defs.json")),
        std::fs::read_to_string(dir.join("golden_microchip_certs.json")),
    ) else {
        eprintln!("SKIP: vectors not found under {}", dir.display());
        return;
    };
    let defs = parse_defs_json(&defs).expect("cert_defs.json");
    let golden: serde_json::Value = serde_json::from_str(&golden).expect("golden json");
    let v = golden["vectors"].as_array().expect("vectors");
    let signer_pk: [u8; 64] = hex(v[0]["expected"]["public_key"].as_str().expect("pk"))
        .try_into()
        .expect("64 bytes");
    let which = std::env::args().nth(1).unwrap_or_else(|| "device".into());
    let (vector, ca) = if which == "signer" {
        (&v[0], None)
    } else {
        (&v[1], Some(signer_pk))
    };
    let key = vector["cert_def_key"].as_str().expect("key");
    let buf = defs.iter().find(|d| d.name == key).expect("definition");
    let def = buf.as_def().expect("valid definition");
    let der = hex(vector["compress_request"]["cert"].as_str().expect("cert"));
    let comp = keystamp_certdef::CertView::new(&def, &der)
        .compressed()
        .expect("compressible");

    let mut image = DeviceImage::default();
    let mut scratch = vec![0u8; def.max_cert_size().expect("size")];
    split(&def, &der, None, None, &mut image, &mut scratch).expect("split");
    let plan = read_plan(&def, BLOCK_SIZE).expect("plan");
    let reads: Vec<(DeviceLoc, Vec<u8>)> = plan
        .iter()
        .map(|l| (*l, image.read_clamped(l).expect("read").to_vec()))
        .collect();
    let pairs: Vec<(DeviceLoc, &[u8])> = reads.iter().map(|(l, b)| (*l, &b[..])).collect();
    let mut out = vec![0u8; def.max_cert_size().expect("size")];

    run_compress_der_to_comp(&def, &der);
    run_compress_encode_fields(&comp);
    run_rebuild(&def, &pairs, ca.as_ref(), &mut out);
    let n = rebuild(&def, pairs.as_slice(), ca.as_ref(), &mut out).expect("rebuild");
    // The signer's AKI comes from the root key, which the vectors do not hold: only the device
    // certificate is compared byte for byte.
    if ca.is_some() {
        assert_eq!(&out[..n], &der[..]);
    }
    println!("{which}: ok ({ITERS} iterations per run_* function)");
}
