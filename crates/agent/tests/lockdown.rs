//! Lockdown: the agent's life cycle, the identity proof, maintenance authentication and signed
//! blobs, against the emulated chip. Each test fails if its protection is removed.

use keystamp_agent::Agent;
use keystamp_agent::auth::{blob_envelope_digest, identity_digest, maintenance_digest};
use keystamp_agent::store::{self, MemStore};
use keystamp_atecc::Atecc;
use keystamp_atecc_sim::{SimChip, SimOptions, VirtualClock, VirtualDelay};
use keystamp_wire::{
    ErrorCode, Event, FirmwareVersion, IoKey, Lifecycle, LineDecoder, Request, Response, Signature,
};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{SigningKey, VerifyingKey};

type Dut = Agent<Atecc<SimChip, VirtualDelay>, MemStore<8192>, 4096>;

const FW: FirmwareVersion = FirmwareVersion {
    major: 0,
    minor: 2,
    patch: 0,
};

/// A signer key of "a project": fixed scalar so the tests are repeatable.
fn signer(n: u8) -> SigningKey {
    let mut k = [0x11u8; 32];
    k[31] = n;
    SigningKey::from_slice(&k).unwrap()
}

fn public_xy(key: &SigningKey) -> [u8; 64] {
    let p = key.verifying_key().to_sec1_point(false);
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&p.as_bytes()[1..]);
    xy
}

fn sign(key: &SigningKey, digest: &[u8; 32]) -> Signature {
    let sig: p256::ecdsa::Signature = key.sign_prehash(digest).unwrap();
    let b = sig.to_bytes();
    let mut s = Signature {
        r: [0; 32],
        s: [0; 32],
    };
    s.r.copy_from_slice(&b[..32]);
    s.s.copy_from_slice(&b[32..]);
    s
}

fn rs(sig: &Signature) -> [u8; 64] {
    let mut v = [0u8; 64];
    v[..32].copy_from_slice(&sig.r);
    v[32..].copy_from_slice(&sig.s);
    v
}

struct Dev {
    dut: Dut,
    seq: u16,
}

impl Dev {
    fn new(seed: u64) -> Self {
        let clock = VirtualClock::new();
        let chip = SimChip::new(
            SimOptions::default()
                .with_seed(seed)
                .with_clock(clock.clone()),
        );
        let driver = Atecc::new(chip, clock.delay());
        Dev {
            dut: Agent::new(driver, MemStore::default(), FW),
            seq: 100,
        }
    }

    /// One request, one answer.
    fn call(&mut self, req: &Request) -> Response {
        self.seq = self.seq.wrapping_add(1);
        let mut line = [0u8; 1100];
        let n = req.encode(self.seq, &mut line).unwrap();
        let mut out = Vec::new();
        self.dut
            .feed(&line[..n], |b| {
                out.extend_from_slice(b);
                Ok::<(), ()>(())
            })
            .unwrap();
        let mut dec = LineDecoder::new();
        match dec.feed(&out).1 {
            Some(Event::Frame(f)) => Response::decode(f.payload).unwrap(),
            other => panic!("no answer: {other:?}"),
        }
    }

    fn code(&mut self, req: &Request) -> Option<ErrorCode> {
        match self.call(req) {
            Response::Error(e) => Some(e.code),
            _ => None,
        }
    }

    fn hello(&mut self) -> keystamp_wire::HelloInfo {
        match self.call(&Request::Hello) {
            Response::Hello(h) => h,
            other => panic!("{other:?}"),
        }
    }

    /// Power cycle: the chip and the flash keep their contents, RAM is lost.
    fn reboot(self) -> Self {
        let (chip, store) = self.dut.release();
        Dev {
            dut: Agent::new(chip, store, FW),
            seq: 7,
        }
    }

    /// Power cycle with the flash erased.
    fn reboot_erased(self) -> Self {
        let (chip, _) = self.dut.release();
        Dev {
            dut: Agent::new(chip, MemStore::default(), FW),
            seq: 7,
        }
    }

    /// Config written and locked (Provisioning).
    fn configure(&mut self) {
        self.configure_with(keystamp_atecc::default_config::DEFAULT_CONFIG_BYTES);
    }

    /// `target` written and locked (Provisioning).
    fn configure_with(&mut self, target: [u8; 128]) {
        let data = heapless::Vec::from_slice(&target).unwrap();
        assert_eq!(
            self.call(&Request::WriteConfig { offset: 0, data }),
            Response::Ok
        );
        let Response::Config(back) = self.call(&Request::ReadConfig) else {
            panic!()
        };
        let crc = keystamp_atecc::ConfigZone::from_slice(&back)
            .unwrap()
            .lock_crc();
        assert_eq!(self.call(&Request::LockConfig { crc }), Response::Ok);
    }

    /// Key generated, data zone locked, the signer public key written into slot 11 (still
    /// Provisioning: the anchor slot is not locked).
    fn prepare(&mut self, anchor: &SigningKey) -> [u8; 64] {
        self.configure();
        let Response::PublicKey(pk) = self.call(&Request::GenKey { slot: 0 }) else {
            panic!()
        };
        assert_eq!(self.call(&Request::LockData { crc: None }), Response::Ok);
        let slot = keystamp_atecc::driver::public_key_to_slot(&public_xy(anchor));
        let data = heapless::Vec::from_slice(&slot).unwrap();
        let req = Request::WriteSlot {
            slot: 11,
            offset: 0,
            data,
        };
        assert_eq!(self.call(&req), Response::Ok);
        let mut xy = [0u8; 64];
        xy[..32].copy_from_slice(&pk.x);
        xy[32..].copy_from_slice(&pk.y);
        xy
    }

    /// Fully provisioned: anchor slot locked (Locked). Returns the device public key.
    fn provisioned(seed: u64, anchor: &SigningKey) -> (Self, [u8; 64]) {
        let mut d = Dev::new(seed);
        let pk = d.prepare(anchor);
        assert_eq!(d.call(&Request::LockSlot { slot: 11 }), Response::Ok);
        assert_eq!(d.hello().lifecycle, Lifecycle::Locked);
        (d, pk)
    }

    /// MaintenanceBegin; the nonce.
    fn begin(&mut self) -> [u8; 32] {
        match self.call(&Request::MaintenanceBegin) {
            Response::MaintenanceNonce(n) => n,
            other => panic!("{other:?}"),
        }
    }

    /// Uploads `blob` with `signature` in one chunk.
    fn store(&mut self, blob: &[u8], signature: Signature) -> Response {
        self.call(&Request::StoreDefBlob {
            total_len: blob.len() as u32,
            digest: store::sha256(blob),
            signature,
            offset: 0,
            data: heapless::Vec::from_slice(blob).unwrap(),
        })
    }
}

/// Every request that writes, generates, locks or reads secrets, with hostile arguments.
fn hostile_requests() -> Vec<Request> {
    let mut v = vec![
        Request::WriteConfig {
            offset: 16,
            data: heapless::Vec::from_slice(&[0u8; 16]).unwrap(),
        },
        Request::LockConfig { crc: 0 },
        Request::LockData { crc: None },
        Request::LockData { crc: Some(0x1234) },
        Request::ReadOtp { offset: 0, len: 64 },
        Request::WriteOtp {
            offset: 0,
            data: heapless::Vec::from_slice(&[0xA5; 32]).unwrap(),
        },
        Request::StoreDefBlob {
            total_len: 64,
            digest: [0; 32],
            signature: Signature {
                r: [1; 32],
                s: [1; 32],
            },
            offset: 0,
            data: heapless::Vec::from_slice(&[0u8; 64]).unwrap(),
        },
        Request::StoreIoKey {
            key: IoKey([0x66; 32]),
        },
    ];
    for slot in 0..16 {
        v.push(Request::GenKey { slot });
        v.push(Request::LockSlot { slot });
        v.push(Request::WriteSlot {
            slot,
            offset: 0,
            data: heapless::Vec::from_slice(&[0x5A; 32]).unwrap(),
        });
    }
    for slot in (0..10).chain(13..16) {
        v.push(Request::ReadSlot {
            slot,
            offset: 0,
            len: 32,
        });
    }
    v
}

#[test]
fn locked_device_refuses_every_write_generate_lock_and_secret_read() {
    let anchor = signer(1);
    let (mut d, pk) = Dev::provisioned(21, &anchor);
    let before = d.call(&Request::GetPublicKey { slot: 0 });
    for req in hostile_requests() {
        assert_eq!(
            d.code(&req),
            Some(ErrorCode::LockedDown),
            "{} served on a locked device: {req:?}",
            req.name()
        );
    }
    // The identity is what it was.
    assert_eq!(d.call(&Request::GetPublicKey { slot: 0 }), before);
    let Response::PublicKey(now) = before else {
        panic!()
    };
    assert_eq!(
        (now.x, now.y),
        (pk[..32].try_into().unwrap(), pk[32..].try_into().unwrap())
    );
}

#[test]
fn locked_device_serves_reads_rebuild_and_identity_proof() {
    let (mut d, _) = Dev::provisioned(22, &signer(1));
    assert!(matches!(d.call(&Request::ReadConfig), Response::Config(_)));
    assert!(matches!(
        d.call(&Request::GetPublicKey { slot: 0 }),
        Response::PublicKey(_)
    ));
    for slot in [10, 11, 12] {
        let r = d.call(&Request::ReadSlot {
            slot,
            offset: 0,
            len: 32,
        });
        assert!(matches!(r, Response::Data(_)), "slot {slot}: {r:?}");
    }
    assert!(matches!(d.call(&Request::Random), Response::Random(_)));
    assert!(matches!(
        d.call(&Request::IdentityProof {
            host_nonce: [3; 32]
        }),
        Response::IdentityProof(_)
    ));
    // No blob stored: refused for that reason, not by the lock.
    assert_eq!(d.code(&Request::RebuildChain), Some(ErrorCode::NoBlob));
}

#[test]
fn factory_and_provisioning_serve_writes() {
    let mut d = Dev::new(23);
    assert_eq!(d.hello().lifecycle, Lifecycle::Factory);
    d.configure();
    assert_eq!(d.hello().lifecycle, Lifecycle::Provisioning);
    assert!(matches!(
        d.call(&Request::GenKey { slot: 0 }),
        Response::PublicKey(_)
    ));
    assert_eq!(d.call(&Request::LockData { crc: None }), Response::Ok);
    // Data locked but the anchor slot is not: still Provisioning, writes served.
    assert_eq!(d.hello().lifecycle, Lifecycle::Provisioning);
    let data = heapless::Vec::from_slice(&[0x42; 72]).unwrap();
    assert_eq!(
        d.call(&Request::WriteSlot {
            slot: 10,
            offset: 0,
            data
        }),
        Response::Ok
    );
}

#[test]
fn the_life_cycle_survives_reboot_and_flash_erasure() {
    let (d, _) = Dev::provisioned(24, &signer(1));
    let mut d = d.reboot();
    assert_eq!(d.hello().lifecycle, Lifecycle::Locked);
    assert_eq!(
        d.code(&Request::GenKey { slot: 0 }),
        Some(ErrorCode::LockedDown)
    );
    let mut d = d.reboot_erased();
    assert_eq!(d.hello().lifecycle, Lifecycle::Locked);
    assert_eq!(
        d.code(&Request::GenKey { slot: 0 }),
        Some(ErrorCode::LockedDown)
    );
    assert_eq!(
        d.code(&Request::LockSlot { slot: 10 }),
        Some(ErrorCode::LockedDown)
    );
}

#[test]
fn the_identity_proof_signs_a_digest_the_host_did_not_choose() {
    let (mut d, pk) = Dev::provisioned(25, &signer(1));
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&pk);
    let key = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let host_nonce = [0xC4; 32];
    let mut seen = Vec::new();
    for _ in 0..2 {
        let Response::IdentityProof(p) = d.call(&Request::IdentityProof { host_nonce }) else {
            panic!()
        };
        // The signature verifies over the labelled digest (recomputed here with sha2)...
        let digest = identity_digest(&host_nonce, &p.device_nonce);
        let sig = p256::ecdsa::Signature::from_slice(&rs(&p.signature)).unwrap();
        key.verify_prehash(&digest, &sig).unwrap();
        // ...and not over the host's nonce taken as a digest.
        assert!(key.verify_prehash(&host_nonce, &sig).is_err());
        seen.push(p.device_nonce);
    }
    assert_ne!(seen[0], seen[1], "a fresh device nonce each time");
}

fn serial(d: &mut Dev) -> [u8; 9] {
    d.hello().chip.serial
}

#[test]
fn maintenance_with_the_anchor_key_unlocks_writes_for_this_connection_only() {
    let anchor = signer(1);
    let (mut d, _) = Dev::provisioned(26, &anchor);
    assert_eq!(
        d.code(&Request::ReadOtp { offset: 0, len: 8 }),
        Some(ErrorCode::LockedDown)
    );
    let sn = serial(&mut d);
    let nonce = d.begin();
    let sig = sign(&anchor, &maintenance_digest(&sn, &nonce));
    assert_eq!(
        d.call(&Request::MaintenanceAuth { signature: sig }),
        Response::Ok
    );
    assert!(d.hello_keeps_nothing_after_auth());
}

impl Dev {
    /// After a successful auth: a maintenance request is served, then Hello ends the session.
    fn hello_keeps_nothing_after_auth(&mut self) -> bool {
        let served = matches!(
            self.call(&Request::ReadOtp { offset: 0, len: 8 }),
            Response::Data(_)
        );
        let hello = self.hello();
        served
            && !hello.maintenance
            && self.code(&Request::ReadOtp { offset: 0, len: 8 }) == Some(ErrorCode::LockedDown)
    }
}

#[test]
fn maintenance_refuses_wrong_key_other_project_replay_and_other_device_nonce() {
    let anchor = signer(1);
    let (mut a, _) = Dev::provisioned(27, &anchor);
    let sn_a = serial(&mut a);
    let otp = Request::ReadOtp { offset: 0, len: 8 };

    // A wrong key (random-looking scalar).
    let nonce = a.begin();
    let wrong = sign(&signer(99), &maintenance_digest(&sn_a, &nonce));
    assert_eq!(
        a.code(&Request::MaintenanceAuth { signature: wrong }),
        Some(ErrorCode::AuthFailed)
    );
    assert_eq!(a.code(&otp), Some(ErrorCode::LockedDown));

    // The signer key of another project (a device provisioned with it accepts it).
    let other_project = signer(2);
    let (mut b, _) = Dev::provisioned(28, &other_project);
    let sn_b = serial(&mut b);
    let nb = b.begin();
    let ok_b = sign(&other_project, &maintenance_digest(&sn_b, &nb));
    assert_eq!(
        b.call(&Request::MaintenanceAuth { signature: ok_b }),
        Response::Ok
    );
    let nonce = a.begin();
    let foreign = sign(&other_project, &maintenance_digest(&sn_a, &nonce));
    assert_eq!(
        a.code(&Request::MaintenanceAuth { signature: foreign }),
        Some(ErrorCode::AuthFailed)
    );
    assert_eq!(a.code(&otp), Some(ErrorCode::LockedDown));

    // A replayed signature: valid once, then the nonce is used up.
    let nonce = a.begin();
    let good = sign(&anchor, &maintenance_digest(&sn_a, &nonce));
    assert_eq!(
        a.call(&Request::MaintenanceAuth { signature: good }),
        Response::Ok
    );
    assert_eq!(a.call(&Request::Finish { reboot: false }), Response::Ok);
    assert_eq!(
        a.code(&otp),
        Some(ErrorCode::LockedDown),
        "Finish ends maintenance"
    );
    assert_eq!(
        a.code(&Request::MaintenanceAuth { signature: good }),
        Some(ErrorCode::AuthFailed),
        "replay without a new nonce"
    );
    a.begin();
    assert_eq!(
        a.code(&Request::MaintenanceAuth { signature: good }),
        Some(ErrorCode::AuthFailed),
        "replay against a new nonce"
    );
    assert_eq!(a.code(&otp), Some(ErrorCode::LockedDown));

    // A signature for another device's nonce (same project key, same nonce bytes even).
    let (mut c, _) = Dev::provisioned(29, &anchor);
    let sn_c = serial(&mut c);
    assert_ne!(sn_a, sn_c);
    let nc = c.begin();
    let _na = a.begin();
    let for_c = sign(&anchor, &maintenance_digest(&sn_c, &nc));
    assert_eq!(
        a.code(&Request::MaintenanceAuth { signature: for_c }),
        Some(ErrorCode::AuthFailed)
    );
    assert_eq!(a.code(&otp), Some(ErrorCode::LockedDown));

    // A failed attempt also ends an authenticated session, and a reboot forgets it.
    let nonce = a.begin();
    let good = sign(&anchor, &maintenance_digest(&sn_a, &nonce));
    assert_eq!(
        a.call(&Request::MaintenanceAuth { signature: good }),
        Response::Ok
    );
    assert!(matches!(a.call(&otp), Response::Data(_)));
    assert_eq!(
        a.code(&Request::MaintenanceAuth { signature: good }),
        Some(ErrorCode::AuthFailed)
    );
    assert_eq!(a.code(&otp), Some(ErrorCode::LockedDown));
    let nonce = a.begin();
    let good = sign(&anchor, &maintenance_digest(&sn_a, &nonce));
    assert_eq!(
        a.call(&Request::MaintenanceAuth { signature: good }),
        Response::Ok
    );
    let mut a = a.reboot();
    assert_eq!(a.code(&otp), Some(ErrorCode::LockedDown));
}

/// Bytes that are not a definition blob: enough to show the signature gate comes first.
fn blob_bytes() -> Vec<u8> {
    (0..480u32).map(|i| (i * 7 + 3) as u8).collect()
}

fn blob_signature(key: &SigningKey, blob: &[u8]) -> Signature {
    sign(key, &blob_envelope_digest(&store::sha256(blob)))
}

#[test]
fn unsigned_mis_signed_or_altered_blobs_are_refused_at_store() {
    let anchor = signer(1);
    let mut d = Dev::new(30);
    d.prepare(&anchor);
    let blob = blob_bytes();
    let unsigned = Signature {
        r: [0; 32],
        s: [0; 32],
    };
    assert_eq!(
        d.store(&blob, unsigned),
        Response::Error(keystamp_wire::WireError::new(
            ErrorCode::BlobUntrusted,
            "signature vs slot 11"
        ))
    );
    assert!(matches!(d.store(&blob, blob_signature(&signer(2), &blob)),
        Response::Error(e) if e.code == ErrorCode::BlobUntrusted));
    let mut altered = blob.clone();
    altered[100] ^= 1;
    assert!(matches!(d.store(&altered, blob_signature(&anchor, &blob)),
        Response::Error(e) if e.code == ErrorCode::BlobUntrusted));
    // The right signature passes the gate; these bytes then fail to parse.
    assert!(matches!(d.store(&blob, blob_signature(&anchor, &blob)),
        Response::Error(e) if e.code == ErrorCode::BlobInvalid));
    assert_eq!(d.hello().def_blob, None);
}

#[test]
fn unsigned_mis_signed_or_altered_blobs_in_flash_are_untrusted_at_boot() {
    let anchor = signer(1);
    let blob = blob_bytes();
    let good = blob_signature(&anchor, &blob);
    let mut altered = blob.clone();
    altered[5] ^= 0x80;
    // Someone with flash access writes a blob and a header with a matching digest; the
    // signature they cannot make.
    let cases: [(&[u8], [u8; 64]); 3] = [
        (&blob, [0; 64]),
        (&blob, rs(&blob_signature(&signer(2), &blob))),
        (&altered, rs(&good)),
    ];
    for (seed, (bytes, signature)) in (31..).zip(cases) {
        let mut d = Dev::new(seed);
        d.prepare(&anchor);
        let (chip, mut flash) = d.dut.release();
        store::save(&mut flash, bytes, &store::sha256(bytes), &signature).unwrap();
        let mut d = Dev {
            dut: Agent::new(chip, flash, FW),
            seq: 1,
        };
        let h = d.hello();
        assert!(h.blob_untrusted, "seed {seed}");
        assert_eq!(h.def_blob, None);
        assert!(d.dut.definitions().is_none());
        assert_eq!(d.code(&Request::RebuildChain), Some(ErrorCode::NoBlob));
        let (mut dev, mut sig) = ([0u8; 1024], [0u8; 1024]);
        assert!(d.dut.rebuild_identity(&mut dev, &mut sig).is_err());
        // No trusted identity, no TLS signature with the device key.
        assert_eq!(
            keystamp_agent::identity::sign_handshake_digest(&mut d.dut, &[7; 32]),
            Err(keystamp_agent::IdentityError::BlobUntrusted)
        );
    }
    // The control: the same bytes with the anchor's signature are trusted at boot.
    let mut d = Dev::new(34);
    d.prepare(&anchor);
    let (chip, mut flash) = d.dut.release();
    store::save(&mut flash, &blob, &store::sha256(&blob), &rs(&good)).unwrap();
    let mut d = Dev {
        dut: Agent::new(chip, flash, FW),
        seq: 1,
    };
    assert!(!d.hello().blob_untrusted);
}

/// IO protection: the key goes into its slot and the agent's flash only before the data lock;
/// afterwards the chip refuses to read the slot, the agent refuses a new key (even to a
/// maintenance session, since the slot can no longer change), and no answer carries the key.
#[test]
fn io_key_is_stored_before_the_data_lock_only_and_never_returned() {
    let slot = keystamp_atecc::default_config::DEFAULT_IO_KEY_SLOT;
    let config = keystamp_atecc::default_config::io_protected_config_bytes(slot).unwrap();
    let key = [0xC3u8; 32];
    let mut d = Dev::new(31);
    assert_ne!(d.hello().features & keystamp_wire::FEATURE_IO_KEY, 0);
    d.configure_with(config);
    assert!(matches!(
        d.call(&Request::GenKey { slot: 0 }),
        Response::PublicKey(_)
    ));
    let write = Request::WriteSlot {
        slot,
        offset: 0,
        data: heapless::Vec::from_slice(&key).unwrap(),
    };
    assert_eq!(d.call(&write), Response::Ok);
    assert_eq!(
        d.call(&Request::StoreIoKey { key: IoKey(key) }),
        Response::Ok
    );
    assert_eq!(d.call(&Request::LockData { crc: None }), Response::Ok);
    assert_eq!(d.dut.io_protection_key(), Some(key));
    // The chip: the secret slot is unreadable and, WriteConfig Never, unwritable (§6.4).
    let read = Request::ReadSlot {
        slot,
        offset: 0,
        len: 32,
    };
    assert!(matches!(d.call(&read), Response::Error(_)));
    assert!(matches!(d.call(&write), Response::Error(_)));
    // The agent: no new key once the data zone is locked.
    let other = Request::StoreIoKey {
        key: IoKey([0x11; 32]),
    };
    assert_eq!(d.code(&other), Some(ErrorCode::LockedDown));
    assert_eq!(d.dut.io_protection_key(), Some(key));
    // Kept across a power cycle.
    let mut d = d.reboot();
    assert_eq!(d.dut.io_protection_key(), Some(key));
    assert_eq!(d.code(&other), Some(ErrorCode::LockedDown));
}
