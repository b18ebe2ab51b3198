//! keystamp-certdef: per-certificate cost of rebuild (device side), compress and split (host
//! side), on cryptoauthlib's two real certificates (golden_microchip_certs.json).
//! Targets (host release build): rebuild ≤ 520 ns, compress ≤ 65 ns (`compress/der_to_comp` is
//! the full DER → 72-byte path, `compress/encode_fields` only the 72-byte encoding).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use keystamp_certdef::rebuild::BLOCK_SIZE;
use keystamp_certdef::{
    CertDefBuf, CertView, DefBlob, DeviceImage, DeviceLoc, Role, compress, parse_defs_json,
    read_plan, rebuild, split, write_blob,
};

struct Case {
    name: &'static str,
    def: CertDefBuf,
    cert: Vec<u8>,
    ca_key: Option<[u8; 64]>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn cases() -> Option<Vec<Case>> {
    let shared = std::env::var("KEYSTAMP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    let dir = shared.join("vectors/atcacert");
    let (Ok(defs), Ok(golden)) = (
        std::fs::read_to_string(dir.join("cert_defs.json")),
        std::fs::read_to_string(dir.join("golden_microchip_certs.json")),
    ) else {
        eprintln!(
            "SKIP certdef benches: vectors not found under {}",
            dir.display()
        );
        return None;
    };
    let defs = parse_defs_json(&defs).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&golden).unwrap();
    let v = golden["vectors"].as_array().unwrap();
    let signer_pk: [u8; 64] = hex(v[0]["expected"]["public_key"].as_str().unwrap())
        .try_into()
        .unwrap();
    let mut out = Vec::new();
    for (name, vector, ca_key) in [("signer", &v[0], None), ("device", &v[1], Some(signer_pk))] {
        let key = vector["cert_def_key"].as_str().unwrap();
        let def = defs.iter().find(|d| d.name == key).unwrap().clone();
        let cert = hex(vector["compress_request"]["cert"].as_str().unwrap());
        out.push(Case {
            name,
            def,
            cert,
            ca_key,
        });
    }
    Some(out)
}

fn bench(c: &mut Criterion) {
    let Some(cases) = cases() else { return };
    let mut g = c.benchmark_group("certdef");
    for case in &cases {
        let def = case.def.as_def().unwrap();
        let ca = case.ca_key.as_ref();
        // Device data as a device reads it: the read plan and the bytes of each entry.
        let mut image = DeviceImage::default();
        let mut scratch = vec![0u8; def.max_cert_size().unwrap()];
        split(&def, &case.cert, None, None, &mut image, &mut scratch).unwrap();
        let plan = read_plan(&def, BLOCK_SIZE).unwrap();
        let reads: Vec<(DeviceLoc, Vec<u8>)> = plan
            .iter()
            .map(|l| (*l, image.read_clamped(l).unwrap().to_vec()))
            .collect();
        let pairs: Vec<(DeviceLoc, &[u8])> = reads.iter().map(|(l, b)| (*l, &b[..])).collect();
        let mut out = vec![0u8; def.max_cert_size().unwrap()];

        g.bench_function(format!("rebuild/{}", case.name), |b| {
            b.iter(|| rebuild(black_box(&def), black_box(pairs.as_slice()), ca, &mut out).unwrap())
        });
        // The full `atcacert_get_comp_cert`: DER certificate → 72 bytes (element lookups, date
        // text decoding, strict reproducibility checks, DER signature decoding).
        g.bench_function(format!("compress/der_to_comp/{}", case.name), |b| {
            b.iter(|| compress(black_box(&def), black_box(&case.cert)).unwrap())
        });
        // Only the 72-byte encoding of already decoded fields.
        let fields = CertView::new(&def, &case.cert).compressed().unwrap();
        g.bench_function(format!("compress/encode_fields/{}", case.name), |b| {
            b.iter(|| black_box(&fields).to_bytes().unwrap())
        });
        g.bench_function(format!("split/{}", case.name), |b| {
            b.iter(|| {
                split(
                    black_box(&def),
                    black_box(&case.cert),
                    ca,
                    None,
                    &mut image,
                    &mut scratch,
                )
                .unwrap()
            })
        });
        g.bench_function(format!("read_plan/{}", case.name), |b| {
            b.iter(|| read_plan(black_box(&def), BLOCK_SIZE).unwrap())
        });
    }
    // The device parses its stored blob (device + signer definitions + root key) at boot.
    let dev = cases[1].def.as_def().unwrap();
    let signer = cases[0].def.as_def().unwrap();
    let mut blob = vec![0u8; 4096];
    let n = write_blob(
        &[(Role::Signer, &signer), (Role::Device, &dev)],
        Some(&[1; 64]),
        &mut blob,
    )
    .unwrap();
    g.bench_function("blob_parse", |b| {
        b.iter(|| DefBlob::parse(black_box(&blob[..n])).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
