//! Property tests over generated definitions and certificates: issue a certificate from a
//! template (element setters + a real P-256 signature), then split → rebuild gives the original
//! DER, compress → decode gives the chosen fields, and the rebuilt certificate verifies with an
//! independent implementation (p256; OpenSSL when installed).

mod common;

use common::*;
use keystamp_certdef::rebuild::BLOCK_SIZE;
use keystamp_certdef::{
    Cert, CertDefBuf, CertType, CertView, CompressedCert, DateFormat, DateTime, DeviceData,
    DeviceImage, DeviceLoc, SnSource, StdElement, compress, read_plan, rebuild, split, transform,
};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn public_key(k: &SigningKey) -> [u8; 64] {
    let p = k.verifying_key().to_sec1_point(false);
    p.as_bytes()[1..].try_into().unwrap()
}

/// The P-256 definitions of the vectors, plus variants exercising the stored serial-number
/// sources (including a dynamic length) and every hash source.
fn base_defs() -> Option<Vec<CertDefBuf>> {
    let mut out: Vec<CertDefBuf> = defs()?
        .into_iter()
        .filter(|d| d.std_sig_size == 0 && d.name != "2_device_csr")
        .collect();
    let dev = out.iter().find(|d| d.name == "0_device")?.clone();
    let mut stored = dev.clone();
    stored.name = "stored".into();
    stored.sn_source = SnSource::Stored;
    stored.cert_sn_dev_loc = DeviceLoc::data(8, 0, 10);
    out.push(stored);
    let mut dynamic = dev.clone();
    dynamic.name = "dynamic".into();
    dynamic.sn_source = SnSource::StoredDynamic;
    let sn = &mut dynamic.std_cert_elements[StdElement::CertSn as usize];
    sn.offset -= 1;
    sn.count += 1;
    dynamic.cert_sn_dev_loc = DeviceLoc::data(8, 32, 17);
    out.push(dynamic);
    for (i, src) in [
        SnSource::PubKeyHash,
        SnSource::DeviceSnHash,
        SnSource::PubKeyHashPos,
        SnSource::DeviceSnHashRaw,
    ]
    .into_iter()
    .enumerate()
    {
        let mut d = dev.clone();
        d.name = format!("hash{i}");
        d.sn_source = src;
        out.push(d);
    }
    Some(out)
}

#[derive(Debug, Clone)]
struct Issue {
    def: usize,
    ca_secret: [u8; 32],
    subject_secret: [u8; 32],
    issue: DateTime,
    expire_years: u8,
    signer_id: [u8; 2],
    device_sn: [u8; 9],
    stored_sn: Vec<u8>,
}

fn issue_strategy(n_defs: usize) -> impl Strategy<Value = Issue> {
    (
        0..n_defs,
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        (2000u16..=2127, 1u8..=12, 1u8..=28, 0u8..=23),
        0u8..=127,
        any::<[u8; 2]>(),
        any::<[u8; 9]>(),
        (1usize..=16, any::<[u8; 16]>()),
    )
        .prop_map(
            |(
                def,
                ca_secret,
                subject_secret,
                (y, m, d, h),
                expire_years,
                signer_id,
                device_sn,
                (sn_len, sn),
            )| {
                let mut stored_sn = sn[..sn_len].to_vec();
                stored_sn[0] = (stored_sn[0] & 0x7F).max(1); // a positive, minimal INTEGER
                Issue {
                    def,
                    ca_secret,
                    subject_secret,
                    issue: DateTime::new(y, m, d, h, 0, 0),
                    expire_years,
                    signer_id,
                    device_sn,
                    stored_sn,
                }
            },
        )
}

/// Fits the generated dates to what the definition's formats can express.
fn fit(def: &CertDefBuf, mut i: Issue) -> Issue {
    let max_year = |f: DateFormat| match f {
        DateFormat::Rfc5280Utc => 2049,
        DateFormat::PosixUint32Be | DateFormat::PosixUint32Le => 2105,
        _ => 9999,
    };
    let issue_max = max_year(def.issue_date_format).min(2127);
    i.issue.year = 2000 + (i.issue.year - 2000) % (issue_max - 2000 + 1);
    let room = max_year(def.expire_date_format) as i32 - i.issue.year as i32;
    if def.std_cert_elements[StdElement::ExpireDate as usize].is_present() {
        i.expire_years = (i.expire_years as i32 % (room.clamp(0, 127) + 1)) as u8;
    } else {
        i.expire_years = def.expire_years; // not in the certificate: the definition's value
    }
    if !def.std_cert_elements[StdElement::IssueDate as usize].is_present() {
        i.issue = DateTime::new(2000, 1, 1, 0, 0, 0);
    }
    if !def.std_cert_elements[StdElement::SignerId as usize].is_present() {
        i.signer_id = [0, 0];
    }
    i
}

struct Issued {
    der: Vec<u8>,
    comp: CompressedCert,
    ca_pk: [u8; 64],
}

/// Issues a certificate the way a host CA does with the element setters.
fn issue(def: &CertDefBuf, i: &Issue) -> Option<Issued> {
    let d = def.as_def().unwrap();
    let ca = SigningKey::from_slice(&i.ca_secret).ok()?;
    let subject = SigningKey::from_slice(&i.subject_secret).ok()?;
    let ca_pk = public_key(&ca);
    let mut buf = vec![0u8; d.max_cert_size().unwrap()];
    let mut cert = Cert::from_template(&d, &mut buf).unwrap();
    if !d.cert_elements.is_empty() {
        // Custom elements come from device data: derive some from the template (inverting the
        // transforms), put the device serial number into the config zone as a chip has it, and
        // write each element through its transforms.
        let mut image = DeviceImage::default();
        for el in d.cert_elements.iter() {
            let src = &d.template[el.cert_loc.offset as usize..el.cert_loc.end()];
            let mut dev = vec![0u8; el.device_loc.count as usize];
            transform::invert_chain(&el.transforms, src, &mut dev).unwrap();
            image.write(&el.device_loc, &dev).unwrap();
        }
        image.set_device_sn(&i.device_sn);
        for el in d.cert_elements.iter() {
            let data = image.read(&el.device_loc).unwrap();
            let dst = cert.element_mut(el.cert_loc).unwrap().unwrap();
            transform::apply_chain(&el.transforms, data, dst).unwrap();
        }
    }
    match d.sn_source {
        SnSource::Stored => cert
            .set_cert_sn(
                &i.stored_sn
                    .iter()
                    .copied()
                    .chain([0; 16])
                    .take(10)
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
        SnSource::StoredDynamic => {
            let mut sn = vec![i.stored_sn.len() as u8];
            sn.extend_from_slice(&i.stored_sn);
            cert.set_cert_sn(&sn).unwrap();
        }
        _ => {}
    }
    cert.set_subj_public_key(&public_key(&subject)).unwrap();
    cert.set_auth_key_id(&ca_pk).unwrap();
    let mut comp = CompressedCert {
        signature: [0; 64],
        issue_date: i.issue,
        expire_years: i.expire_years,
        signer_id: i.signer_id,
        template_id: d.template_id,
        chain_id: d.chain_id,
        sn_source: d.sn_source,
        format_version: 0,
        reserved: 0,
    };
    comp.format_version = comp.min_format_version();
    cert.set_issue_date(&comp.issue_date).unwrap();
    if d.std_loc(StdElement::ExpireDate).is_present() {
        cert.set_expire_date(&comp.expire_date(d.expire_date_format).unwrap())
            .unwrap();
    }
    cert.set_signer_id(&i.signer_id).unwrap();
    if d.sn_source.is_generated() {
        // The serial number hashes the compressed dates: computed from the bytes the device
        // will hold (the signature does not enter the hash).
        cert.set_generated_sn(&comp.to_bytes().unwrap(), Some(&i.device_sn))
            .unwrap();
    }
    let digest = cert.tbs_digest().unwrap();
    let sig: Signature = ca.sign_prehash(&digest).unwrap();
    comp.signature = sig.to_bytes().as_slice().try_into().unwrap();
    cert.set_signature(&comp.signature).unwrap();
    let n = cert.finish();
    buf.truncate(n);
    Some(Issued {
        der: buf,
        comp,
        ca_pk,
    })
}

fn check_round_trip(def: &CertDefBuf, i: &Issue) -> Result<(), TestCaseError> {
    let d = def.as_def().unwrap();
    let Some(issued) = issue(def, i) else {
        return Ok(());
    };
    // compress → decode gives the chosen fields
    let comp_bytes = compress(&d, &issued.der).unwrap();
    prop_assert_eq!(
        CompressedCert::from_bytes(&comp_bytes).unwrap(),
        issued.comp
    );
    // split → rebuild (from the read plan, as a device does) gives the original DER
    let mut image = DeviceImage::default();
    let mut scratch = vec![0u8; d.max_cert_size().unwrap()];
    let device_sn = d.sn_source.uses_device_sn().then_some(&i.device_sn);
    let got = split(
        &d,
        &issued.der,
        Some(&issued.ca_pk),
        device_sn,
        &mut image,
        &mut scratch,
    )
    .unwrap_or_else(|e| panic!("{}: {e:?} {i:?}", def.name));
    prop_assert_eq!(got, issued.comp);
    let plan = read_plan(&d, BLOCK_SIZE).unwrap();
    let reads: Vec<(DeviceLoc, Vec<u8>)> = plan
        .iter()
        .map(|l| (*l, image.read_clamped(l).unwrap().to_vec()))
        .collect();
    let pairs: Vec<(DeviceLoc, &[u8])> = reads.iter().map(|(l, b)| (*l, &b[..])).collect();
    let mut out = vec![0u8; d.max_cert_size().unwrap()];
    let n = rebuild(&d, pairs.as_slice(), Some(&issued.ca_pk), &mut out).unwrap();
    prop_assert_eq!(&out[..n], &issued.der[..]);
    // the rebuilt certificate verifies (p256, independent of our DER/TBS code paths' output)
    let view = CertView::new(&d, &out[..n]);
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&issued.ca_pk);
    let key = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let sig = Signature::from_slice(&view.signature().unwrap()).unwrap();
    prop_assert!(
        key.verify_prehash(&view.tbs_digest().unwrap(), &sig)
            .is_ok()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn issue_split_rebuild_verify(i in issue_strategy(64)) {
        let Some(defs) = base_defs() else { return Ok(()) };
        let def = &defs[i.def % defs.len()];
        let i = fit(def, i);
        check_round_trip(def, &i)?;
    }

    #[test]
    fn compressed_cert_bytes_round_trip(
        sig in any::<[u8; 64]>(),
        (y, m, d, h) in (2000u16..=2127, 1u8..=12, 1u8..=28, 0u8..=23),
        expire_years in 0u8..=127,
        signer_id in any::<[u8; 2]>(),
        ids in (0u8..16, 0u8..16, 0u8..16),
        src in prop::sample::select(SnSource::ALL),
    ) {
        let mut c = CompressedCert {
            signature: sig, issue_date: DateTime::new(y, m, d, h, 0, 0), expire_years, signer_id,
            template_id: ids.0, chain_id: ids.1, sn_source: src, format_version: 0, reserved: ids.2,
        };
        c.format_version = c.min_format_version();
        let b = c.to_bytes().unwrap();
        prop_assert_eq!(CompressedCert::from_bytes(&b).unwrap(), c);
        // v1 can always hold what v0 holds
        c.format_version = 1;
        prop_assert_eq!(CompressedCert::from_bytes(&c.to_bytes().unwrap()).unwrap(), c);
    }

    #[test]
    fn compressed_cert_decode_never_panics(b in prop::collection::vec(any::<u8>(), 72)) {
        let arr: [u8; 72] = b.try_into().unwrap();
        if let Ok(c) = CompressedCert::from_bytes(&arr) {
            prop_assert!(c.issue_date.is_valid());
            // Re-encoding reproduces the input bytes exactly.
            prop_assert_eq!(c.to_bytes().unwrap(), arr);
        }
    }

    #[test]
    fn dates_round_trip_every_format(
        (y, m, d, h, mi, s) in (1970u16..=2106, 1u8..=12, 1u8..=31, 0u8..=23, 0u8..=59, 0u8..=59),
        fmt in prop::sample::select(DateFormat::ALL),
    ) {
        let dt = DateTime::new(y, m, d, h, mi, s);
        let mut out = [0u8; 20];
        match keystamp_certdef::date::encode(fmt, &dt, &mut out) {
            Ok(n) => prop_assert_eq!(keystamp_certdef::date::decode(fmt, &out[..n]), Ok(dt)),
            Err(_) => prop_assert!(!dt.is_valid() || (fmt == DateFormat::Rfc5280Utc && y > 2049)
                || (dt > DateTime::max_for(fmt) && matches!(fmt, DateFormat::PosixUint32Be | DateFormat::PosixUint32Le))),
        }
    }
}

/// Certificates rebuilt by the codec are accepted by OpenSSL: it parses them as X.509 and
/// verifies the signature over the TBS region with the CA key.
#[test]
fn openssl_accepts_rebuilt_certs() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: openssl not installed");
        return;
    }
    let Some(defs) = base_defs() else { return };
    let dir = std::env::temp_dir().join(format!("keystamp-certdef-openssl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = issue_strategy(64);
    let mut checked = 0;
    for k in 0..defs.len() * 2 {
        let mut i = strategy.new_tree(&mut runner).unwrap().current();
        i.def = k % defs.len();
        let def = &defs[i.def];
        if def.cert_type != CertType::X509 {
            continue;
        }
        let i = fit(def, i);
        let Some(issued) = issue(def, &i) else {
            continue;
        };
        let d = def.as_def().unwrap();
        let view = CertView::new(&d, &issued.der);
        let cert = dir.join("cert.der");
        std::fs::write(&cert, &issued.der).unwrap();
        let parse = std::process::Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            parse.status.success(),
            "{}: {}",
            def.name,
            String::from_utf8_lossy(&parse.stderr)
        );
        // SubjectPublicKeyInfo of the CA key, the TBS, and the DER ECDSA-Sig-Value.
        let mut spki = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki.push(4);
        spki.extend_from_slice(&issued.ca_pk);
        std::fs::write(dir.join("ca.der"), &spki).unwrap();
        std::fs::write(dir.join("tbs.bin"), view.tbs().unwrap()).unwrap();
        // The X.509 signatureValue runs to the end of the certificate.
        let sig_len = keystamp_certdef::der::ecdsa_sig_size(&issued.comp.signature);
        let bit_string = &issued.der[issued.der.len() - sig_len..];
        std::fs::write(dir.join("sig.der"), &bit_string[3..]).unwrap();
        let verify = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-keyform", "DER", "-verify"])
            .arg(dir.join("ca.der"))
            .arg("-signature")
            .arg(dir.join("sig.der"))
            .arg(dir.join("tbs.bin"))
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}: {}",
            def.name,
            String::from_utf8_lossy(&verify.stdout)
        );
        checked += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(checked >= 10, "only {checked}");
}
