//! The host engine against a device whose every answer the fuzzer chooses: a full `Station::run`
//! (probe, config, key, proof, issue, certificates, definitions, verify, locks) over an
//! in-memory scripted device (`keystamp::engine::scripted`), with a real project (CA, signer,
//! definitions) and an in-memory registry.
//!
//! For each request the input picks an answer: honest (echo the config written, the fake
//! device's real key, a valid identity proof with that key), structured with fuzz-chosen fields
//! (counts, offsets, lengths, keys, signatures, serials), postcard bytes of the expected kind,
//! arbitrary postcard bytes, noise or a corrupted frame before an answer, or an error.
//!
//! Invariants: no panic; every certificate recorded carries the fake device's key (the only key
//! that can prove possession) and has a recorded proof; no certificate at all unless the device
//! gave a valid identity proof.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use keystamp::engine::scripted::{Reply, ScriptedDevice};
use keystamp::engine::{Material, Station};
use keystamp::link::Link;
use keystamp::pki::ca::{self, KeyProtection, Signer};
use keystamp::project::Profile;
use keystamp::registry::{CertKind, Registry};
use keystamp_wire::{
    CertChunk, CertSummary, ChainReport, ChipInfo, Chunk, DefBlobId, DefBlobProgress, ErrorCode,
    FirmwareVersion, HelloInfo, IdentityProof, Lifecycle, MAX_CHUNK, MAX_LINE, PlatformSecurity,
    PublicKey, Request, Response, RetryPolicy, Signature, Tristate, WireError,
};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use sha2::{Digest, Sha256};

struct Project {
    signer: Signer,
    material: Material,
}

fn project() -> &'static Project {
    static PROJECT: OnceLock<Project> = OnceLock::new();
    PROJECT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keystamp-fuzz-engine-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let profile = Profile::default();
        let ca_dir = dir.join("ca");
        ca::create(
            &ca_dir,
            &profile.ca,
            &KeyProtection::Unencrypted,
            std::time::SystemTime::now(),
        )
        .expect("CA");
        let signer = Signer::unlock(&ca_dir, None).expect("signer");
        let (device_def, signer_def) =
            keystamp::setup::generate_definitions(&profile, &signer).expect("definitions");
        let material = keystamp::setup::material_from_parts(
            &profile,
            &signer,
            device_def,
            signer_def,
            keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES,
            dir.join("devices"),
        )
        .expect("material");
        Project { signer, material }
    })
}

/// The fake device's own key: the only key whose possession it can prove.
fn device_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_slice(&[0x5a; 32]).expect("key"))
}

fn device_public() -> PublicKey {
    let point = device_key().verifying_key().to_sec1_point(false);
    let bytes = point.as_bytes();
    let mut pk = PublicKey {
        x: [0; 32],
        y: [0; 32],
    };
    pk.x.copy_from_slice(&bytes[1..33]);
    pk.y.copy_from_slice(&bytes[33..65]);
    pk
}

/// Fuzz input as a stream of choices.
struct Input {
    data: Vec<u8>,
    at: usize,
}

impl Input {
    fn byte(&mut self) -> Option<u8> {
        let b = self.data.get(self.at).copied();
        self.at += 1;
        b
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte().unwrap_or(0);
        }
        out
    }
    fn slice(&mut self, max: usize) -> Vec<u8> {
        let n = usize::from(self.byte().unwrap_or(0)) * 4 % (max + 1);
        (0..n).map(|_| self.byte().unwrap_or(0)).collect()
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    fn flag(&mut self) -> bool {
        self.byte().unwrap_or(0) & 1 == 1
    }
    fn tristate(&mut self) -> Tristate {
        match self.byte().unwrap_or(0) % 3 {
            0 => Tristate::On,
            1 => Tristate::Off,
            _ => Tristate::Unknown,
        }
    }
}

/// What the scripted device saw and said.
#[derive(Default)]
struct Device {
    config: Vec<u8>,
    valid_proofs: usize,
}

fn structured(req: &Request, input: &mut Input, dev: &mut Device) -> Response {
    match req {
        Request::Hello => Response::Hello(HelloInfo {
            max_line: MAX_LINE as u16,
            max_chunk: MAX_CHUNK as u16,
            features: input.u32(),
            firmware: FirmwareVersion {
                major: 0,
                minor: input.byte().unwrap_or(0),
                patch: 0,
            },
            chip: ChipInfo {
                revision: input.bytes(),
                serial: input.bytes(),
                config_locked: input.flag(),
                data_locked: input.flag(),
                slot_locked: input.u16(),
            },
            def_blob: input.flag().then(|| DefBlobId {
                len: input.u32(),
                digest: input.bytes(),
            }),
            protocol: keystamp_wire::PROTOCOL_VERSION,
            lifecycle: match input.byte().unwrap_or(0) % 3 {
                0 => Lifecycle::Factory,
                1 => Lifecycle::Provisioning,
                _ => Lifecycle::Locked,
            },
            blob_untrusted: input.flag(),
            maintenance: input.flag(),
            platform: PlatformSecurity {
                secure_boot: input.tristate(),
                flash_encryption: input.tristate(),
                jtag_disabled: input.tristate(),
                download_mode_disabled: input.tristate(),
            },
        }),
        Request::ReadConfig => {
            let mut c = heapless::Vec::new();
            if input.flag() {
                let _ = c.extend_from_slice(&dev.config);
            } else {
                let _ = c.extend_from_slice(&input.slice(128));
            }
            Response::Config(c)
        }
        Request::GenKey { .. } | Request::GetPublicKey { .. } => {
            if input.flag() {
                Response::PublicKey(device_public())
            } else {
                Response::PublicKey(PublicKey {
                    x: input.bytes(),
                    y: input.bytes(),
                })
            }
        }
        Request::IdentityProof { host_nonce } => {
            let device_nonce: [u8; 32] = input.bytes();
            let signature = if input.flag() {
                let mut h = Sha256::new();
                h.update(keystamp_wire::IDENTITY_LABEL);
                h.update(host_nonce);
                h.update(device_nonce);
                let digest: [u8; 32] = h.finalize().into();
                let sig: p256::ecdsa::Signature =
                    device_key().sign_prehash(&digest).expect("signs");
                let rs = sig.to_bytes();
                dev.valid_proofs += 1;
                let mut s = Signature {
                    r: [0; 32],
                    s: [0; 32],
                };
                s.r.copy_from_slice(&rs[..32]);
                s.s.copy_from_slice(&rs[32..]);
                s
            } else {
                Signature {
                    r: input.bytes(),
                    s: input.bytes(),
                }
            };
            Response::IdentityProof(IdentityProof {
                device_nonce,
                signature,
            })
        }
        Request::StoreDefBlob {
            total_len,
            offset,
            data,
            ..
        } => {
            let received = if input.flag() {
                offset + data.len() as u32
            } else {
                input.u32()
            };
            Response::DefBlob(DefBlobProgress {
                received,
                total_len: if input.flag() {
                    *total_len
                } else {
                    input.u32()
                },
                complete: input.flag(),
            })
        }
        Request::RebuildChain => Response::Chain(ChainReport {
            device: CertSummary {
                len: input.u16(),
                digest: input.bytes(),
            },
            signer: CertSummary {
                len: input.u16(),
                digest: input.bytes(),
            },
        }),
        Request::ReadCert { offset, len, .. } => Response::CertChunk(CertChunk {
            total_len: input.u16(),
            offset: if input.flag() { *offset } else { input.u16() },
            data: Chunk::from_slice(&input.slice(usize::from(*len).min(MAX_CHUNK) + 8))
                .unwrap_or_default(),
        }),
        Request::ReadSlot { .. } => {
            Response::Data(Chunk::from_slice(&input.slice(MAX_CHUNK)).unwrap_or_default())
        }
        Request::Random => Response::Random(input.bytes()),
        Request::MaintenanceBegin => Response::MaintenanceNonce(input.bytes()),
        Request::WriteConfig { data, .. } => {
            dev.config = data.to_vec();
            Response::Ok
        }
        _ => Response::Ok,
    }
}

fn answer(req: &Request, input: &mut Input, dev: &mut Device) -> Reply {
    let Some(mode) = input.byte() else {
        // Out of input: the device refuses, so the run ends without waiting for timeouts.
        return Reply::Answer(Response::Error(WireError::new(ErrorCode::Busy, "end")));
    };
    match mode % 8 {
        0..=3 => Reply::Answer(structured(req, input, dev)),
        4 => {
            // Postcard bytes, whatever they decode to (or a frame the host cannot decode).
            let payload = input.slice(200);
            match Response::decode(&payload) {
                Ok(r) => Reply::Answer(r),
                Err(_) => Reply::Answer(structured(req, input, dev)),
            }
        }
        5 => {
            // Noise (escape sequences included) and a corrupted frame before the answer.
            let mut raw = input.slice(120);
            raw.extend_from_slice(b"\n~K2 R0000 AAAA 00000000\n");
            Reply::After(raw, structured(req, input, dev))
        }
        6 => Reply::Answer(Response::Error(WireError::new(
            ErrorCode::Busy,
            "\x1b[2Jbusy",
        ))),
        _ => Reply::Answer(structured(req, input, dev)),
    }
}

fuzz_target!(|data: &[u8]| {
    let p = project();
    let registry = Mutex::new(Registry::open_in_memory().expect("registry"));
    let input = Arc::new(Mutex::new((
        Input {
            data: data.to_vec(),
            at: 0,
        },
        Device::default(),
    )));
    let shared = input.clone();
    let port = ScriptedDevice::new(move |req: &Request| {
        let mut guard = shared.lock().expect("input");
        let (input, dev) = &mut *guard;
        answer(req, input, dev)
    });
    let link = Link::new(
        port,
        RetryPolicy {
            base_timeout_ms: 1,
            baud: u32::MAX,
            max_attempts: 2,
        },
        None,
    );
    let report = Station::new(
        "fuzz".into(),
        "scripted".into(),
        link,
        &p.material,
        &p.signer,
        &registry,
        &|_, _| {},
    )
    .run();
    let valid_proofs = input.lock().expect("input").1.valid_proofs;
    let reg = registry.lock().expect("registry");
    let certs: Vec<_> = reg
        .certificates()
        .expect("certificates")
        .into_iter()
        .filter(|c| c.kind == CertKind::Device)
        .collect();
    let public = device_public();
    for c in &certs {
        assert_eq!(
            c.public_key[..32],
            public.x,
            "a certificate for a key nobody proved"
        );
        assert_eq!(
            c.public_key[32..],
            public.y,
            "a certificate for a key nobody proved"
        );
        let chip = c.chip_serial.expect("a device certificate names its chip");
        assert!(
            !reg.proofs_for(chip, &c.public_key)
                .expect("proofs")
                .is_empty()
        );
    }
    if valid_proofs == 0 {
        assert!(
            certs.is_empty() && !report.issued,
            "issued without a valid identity proof"
        );
    }
});
