//! Issuance rate of the signer key (`cargo xtask bench signer`): one ECDSA P-256 signature
//! over a certificate digest with the software key against the same operation in a SoftHSM2
//! token through PKCS#11 (`CKM_ECDSA`). Every device certificate costs one. The token part is
//! skipped with a message when SoftHSM2 is not installed.

use std::time::Duration;

use criterion::Criterion;
use keystamp::pki::pkcs11::TokenKey;
use keystamp::pki::signer_key::SignerKey;
use keystamp::project::Pkcs11Section;
use keystamp_benches::{SOFTHSM_LABEL, SOFTHSM_PIN, softhsm_token};
use p256::ecdsa::SigningKey;
use p256::elliptic_curve::Generate;

fn bench(c: &mut Criterion, token: Option<TokenKey>) {
    let digest = [0x5Au8; 32];
    let software = SignerKey::Software(SigningKey::try_generate().expect("key"));
    let mut g = c.benchmark_group("signer");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("software_p256", |b| {
        b.iter(|| software.sign_prehash(&digest).expect("sign"))
    });
    if let Some(token) = token {
        let token = SignerKey::Token(std::sync::Arc::new(token));
        g.bench_function("softhsm2_pkcs11_p256", |b| {
            b.iter(|| token.sign_prehash(&digest).expect("sign"))
        });
    }
    g.finish();
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = match softhsm_token(dir.path()) {
        Some((conf, module)) => {
            // SoftHSM2 reads SOFTHSM2_CONF when it initializes. This runs first in main,
            // before any other thread exists, so changing the environment races with nothing.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var("SOFTHSM2_CONF", &conf);
            }
            let cfg = Pkcs11Section {
                module,
                token: SOFTHSM_LABEL.into(),
                key_label: "bench-signer".into(),
            };
            let pin = cryptoki::types::AuthPin::from(SOFTHSM_PIN.to_string());
            Some(TokenKey::generate(&cfg, &pin).expect("token key"))
        }
        None => {
            eprintln!("SKIP signer/softhsm2_pkcs11_p256: SoftHSM2 not installed");
            None
        }
    };
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, token);
    c.final_summary();
}
