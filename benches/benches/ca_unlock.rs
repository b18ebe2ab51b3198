//! How long unlocking a CA key takes (`cargo xtask bench ca_unlock`): the signer key at the
//! scrypt cost new keys get (N = 2^17, r = 8, p = 1) against the same key at the cost keystamp
//! used before (N = 2^14). Every `provision`, `verify` and `ca crl` run pays this once.

use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use keystamp::pki::ca::{self, KeyProtection, Signer};
use keystamp::project::Profile;
use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use zeroize::Zeroizing;

const PASS: &str = "bench passphrase";

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let protection = KeyProtection::Passphrase(Zeroizing::new(PASS.into()));
    ca::create(
        dir.path(),
        &Profile::default().ca,
        &protection,
        SystemTime::now(),
    )
    .expect("CA");
    // The same key at the old cost: pkcs8's default encryption, what keystamp wrote before.
    let signer_pem = std::fs::read_to_string(dir.path().join("signer.key")).expect("key");
    let key = SigningKey::from_pkcs8_encrypted_pem(&signer_pem, PASS).expect("decrypt");
    let old_pem = key
        .to_pkcs8_encrypted_pem(PASS.as_bytes(), LineEnding::LF)
        .expect("encrypt");

    let mut g = c.benchmark_group("ca_unlock");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("signer_n2^17", |b| {
        b.iter(|| Signer::unlock(dir.path(), Some(PASS)).expect("unlock"))
    });
    g.bench_function("signer_key_n2^14_old_cost", |b| {
        b.iter(|| SigningKey::from_pkcs8_encrypted_pem(&old_pem, PASS).expect("decrypt"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
