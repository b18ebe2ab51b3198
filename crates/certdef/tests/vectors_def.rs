//! cryptoauthlib's test_atcacert_def.c vectors (tests_def.json): key ids, serial-number
//! generation, signatures, compressed certs, the device-read plan, and full rebuilds.

mod common;

use common::*;
use keystamp_certdef::cert::{generate_sn, key_id, pad_public_key, unpad_public_key};
use keystamp_certdef::rebuild::{BLOCK_SIZE, ReadPlan, merge_device_loc};
use keystamp_certdef::{
    Cert, CertDefBuf, CertElement, CertLoc, CertType, CertView, CompressedCert, DeviceImage,
    DeviceLoc, DeviceZone, Error, SnSource, StdElement, Transform, compress, read_plan, rebuild,
    split,
};
use serde_json::Value;

fn def_file() -> Option<Value> {
    load("tests_def.json")
}

/// Parses C initialisers like `{ .zone = DEVZONE_DATA, .slot = 0, .is_genkey = FALSE,
/// .offset = 32, .count = 40 - 32 }` (one or a list).
fn c_locs(init: &str) -> Vec<DeviceLoc> {
    let mut out = Vec::new();
    let mut rest = init;
    while let Some(start) = rest.find("{ .zone") {
        let body = &rest[start + 1..];
        let end = body.find('}').unwrap();
        let mut loc = DeviceLoc::NONE;
        for field in body[..end].split(',') {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim().trim_start_matches('.'), v.trim());
            let num = || -> u16 {
                match v.split_once(" - ") {
                    Some((a, b)) => {
                        a.trim().parse::<u16>().unwrap() - b.trim().parse::<u16>().unwrap()
                    }
                    None => v.parse().unwrap(),
                }
            };
            match k {
                "zone" => loc.zone = DeviceZone::from_c_name(v).unwrap(),
                "slot" => loc.slot = num(),
                "is_genkey" => loc.is_genkey = matches!(v, "TRUE" | "true" | "1"),
                "offset" => loc.offset = num(),
                "count" => loc.count = num(),
                _ => panic!("field {k}"),
            }
        }
        out.push(loc);
        rest = &body[end..];
    }
    out
}

fn init<'a>(t: &'a Value, name: &str) -> &'a str {
    t["struct_initializers"][name]["init"].as_str().unwrap()
}

#[test]
fn key_id_vector() {
    let Some(f) = def_file() else { return };
    let t = test(&f, "atcacert_get_key_id", "good");
    let pk: [u8; 64] = arr(t, "public_key").try_into().unwrap();
    assert_eq!(to_hex(&key_id(&pk)), to_hex(&arr(t, "key_id_ref")));
}

#[test]
fn public_key_padding_vectors() {
    let Some(f) = def_file() else { return };
    let pk: [u8; 64] = global(&f, "g_test_public_key").try_into().unwrap();
    let padded: [u8; 72] = global(&f, "g_padded_public_key").try_into().unwrap();
    assert_eq!(pad_public_key(&pk), padded);
    assert_eq!(unpad_public_key(&padded), pk);
}

#[test]
fn generate_sn_vectors() {
    let Some(f) = def_file() else { return };
    let hash_key: [u8; 64] = global(&f, "g_hash_public_key").try_into().unwrap();
    let mut checked = 0;
    for t in group(&f, "atcacert_generate_sn") {
        let name = t["name"].as_str().unwrap();
        if name.ends_with("bad_params") {
            continue;
        }
        let src = match name {
            "device_sn" => SnSource::DeviceSn,
            "signer_id" => SnSource::SignerId,
            n if n.starts_with("pub_key_hash_pos") => SnSource::PubKeyHashPos,
            n if n.starts_with("pub_key_hash_raw") => SnSource::PubKeyHashRaw,
            n if n.starts_with("pub_key_hash") => SnSource::PubKeyHash,
            n if n.starts_with("device_sn_hash_pos") => SnSource::DeviceSnHashPos,
            n if n.starts_with("device_sn_hash_raw") => SnSource::DeviceSnHashRaw,
            n if n.starts_with("device_sn_hash") => SnSource::DeviceSnHash,
            n => panic!("unknown {n}"),
        };
        let want = arr(t, "sn_ref");
        let mut comp = [0u8; 72];
        if let Some(c) = t["arrays"].get("comp_cert") {
            let c = array(c);
            comp[..c.len()].copy_from_slice(&c);
        }
        let device_sn: Option<[u8; 9]> = t["arrays"]
            .get("device_sn")
            .map(|d| array(d).try_into().unwrap());
        let mut sn = vec![0u8; want.len()];
        generate_sn(src, device_sn.as_ref(), Some(&hash_key), &comp, &mut sn).unwrap();
        assert_eq!(to_hex(&sn), to_hex(&want), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 12);
    // Wrong sizes and unknown versions are typed errors.
    let mut sn = [0u8; 9];
    assert!(matches!(
        generate_sn(SnSource::DeviceSn, Some(&[0; 9]), None, &[0; 72], &mut sn),
        Err(Error::UnexpectedElemSize { .. })
    ));
    let mut comp = [0u8; 72];
    comp[70] = 3;
    assert_eq!(
        generate_sn(
            SnSource::PubKeyHash,
            None,
            Some(&hash_key),
            &comp,
            &mut [0u8; 16]
        ),
        Err(Error::UnsupportedFormatVersion(3))
    );
}

fn signer_def() -> Option<CertDefBuf> {
    def("1_signer")
}

#[test]
fn set_signature_vectors() {
    let (Some(f), Some(buf)) = (def_file(), signer_def()) else {
        return;
    };
    let d = buf.as_def().unwrap();
    for name in [
        "x509_same_size",
        "x509_bigger",
        "x509_smaller",
        "x509_smallest",
    ] {
        let t = test(&f, "atcacert_set_signature", name);
        let sig: [u8; 64] = arr(t, "signature").try_into().unwrap();
        let mut out = vec![0u8; d.max_cert_size().unwrap()];
        let mut cert = Cert::from_template(&d, &mut out).unwrap();
        cert.set_signature(&sig).unwrap();
        assert_eq!(
            to_hex(cert.der()),
            to_hex(&arr(t, "cert_template_ref")),
            "{name}"
        );
        assert_eq!(cert.view().signature().unwrap(), sig, "{name}");
    }
    // non_x509: the custom type writes R‖S as a plain element.
    let t = test(&f, "atcacert_set_signature", "non_x509");
    let mut custom = buf.clone();
    custom.cert_type = CertType::Custom;
    custom.std_cert_elements[StdElement::Signature as usize].count = 64;
    let cd = custom.as_def_unchecked();
    let sig: [u8; 64] = arr(t, "signature").try_into().unwrap();
    let mut out = vec![0u8; cd.template.len()];
    let mut cert = Cert::from_template(&cd, &mut out).unwrap();
    cert.set_signature(&sig).unwrap();
    assert_eq!(to_hex(cert.der()), to_hex(&arr(t, "cert_template_ref")));
    // x509_out_of_bounds
    let mut oob = buf.clone();
    oob.std_cert_elements[StdElement::Signature as usize].offset = oob.template.len() as u16;
    let od = oob.as_def_unchecked();
    let mut out = vec![0u8; 600];
    let mut cert = Cert::from_template(&od, &mut out).unwrap();
    assert_eq!(cert.set_signature(&sig), Err(Error::ElemOutOfBounds));
    // x509_small_buf: the buffer only holds the template, the signature grows.
    let t = test(&f, "atcacert_set_signature", "x509_bigger");
    let big: [u8; 64] = arr(t, "signature").try_into().unwrap();
    let mut out = vec![0u8; d.template.len()];
    let mut cert = Cert::from_template(&d, &mut out).unwrap();
    assert_eq!(
        cert.set_signature(&big),
        Err(Error::BufferTooSmall {
            needed: (d.template.len() + 1) as u16
        })
    );
    // An outer length at the top of the length range (8 length bytes of 0xFF, found by the
    // certdef_blob fuzz target): a typed error, not an arithmetic overflow.
    let mut huge = buf.clone();
    let hdr_len = 2 + (huge.template[1] & 0x7F) as usize; // 30 82 LL LL
    let mut t = vec![0x30, 0x88, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    t.extend_from_slice(&huge.template[hdr_len..]);
    let grow = (t.len() - huge.template.len()) as u16;
    huge.template = t;
    huge.std_cert_elements[StdElement::Signature as usize].offset += grow;
    let hd = huge.as_def_unchecked();
    assert!(hd.validate().is_err());
    let mut out = vec![0u8; 600];
    let mut cert = Cert::from_template(&hd, &mut out).unwrap();
    assert_eq!(cert.set_signature(&sig), Err(Error::BadCert));
    // x509_bad_cert_length / x509_cert_length_change
    for (byte, want) in [(0x89u8, Error::Decoding), (0x01, Error::BadCert)] {
        let mut bad = buf.clone();
        bad.template[1] = byte;
        let bd = bad.as_def_unchecked();
        let mut out = vec![0u8; 600];
        let mut cert = Cert::from_template(&bd, &mut out).unwrap();
        assert_eq!(
            cert.set_signature(&big),
            Err(want),
            "template[1] = {byte:#x}"
        );
    }
}

#[test]
fn get_signature_vectors() {
    let (Some(f), Some(buf)) = (def_file(), signer_def()) else {
        return;
    };
    let d = buf.as_def().unwrap();
    for name in ["x509_no_padding", "x509_rs_padding"] {
        let t = test(&f, "atcacert_get_signature", name);
        let cert = arr(t, "cert_template");
        assert_eq!(
            to_hex(&CertView::new(&d, &cert).signature().unwrap()),
            to_hex(&arr(t, "signature_ref")),
            "{name}"
        );
    }
    // x509_r_padding reads the unmodified template.
    let t = test(&f, "atcacert_get_signature", "x509_r_padding");
    assert_eq!(
        to_hex(&CertView::new(&d, &buf.template).signature().unwrap()),
        to_hex(&arr(t, "signature_ref"))
    );
    // x509_bad_sig: the C test corrupts the BIT STRING; do the same to its tag.
    let t = test(&f, "atcacert_get_signature", "x509_bad_sig");
    let mut cert = arr(t, "cert_template");
    let off = d.std_loc(StdElement::Signature).offset as usize;
    cert[off] = 0x04;
    assert_eq!(CertView::new(&d, &cert).signature(), Err(Error::Decoding));
}

#[test]
fn set_comp_cert_vectors() {
    let (Some(f), Some(buf)) = (def_file(), signer_def()) else {
        return;
    };
    let d = buf.as_def().unwrap();
    let g_comp: [u8; 72] = global(&f, "g_comp_cert").try_into().unwrap();
    for name in ["same_size", "bigger"] {
        let t = test(&f, "atcacert_set_comp_cert", name);
        let comp: [u8; 72] = t["arrays"]
            .get("comp_cert")
            .map(|c| array(c).try_into().unwrap())
            .unwrap_or(g_comp);
        let mut out = vec![0u8; d.max_cert_size().unwrap()];
        let mut cert = Cert::from_template(&d, &mut out).unwrap();
        cert.set_comp_cert(&CompressedCert::from_bytes(&comp).unwrap())
            .unwrap();
        assert_eq!(
            to_hex(cert.der()),
            to_hex(&arr(t, "cert_template_ref")),
            "{name}"
        );
        // And back: compressing the result gives the same 72 bytes.
        assert_eq!(
            to_hex(&compress(&d, cert.der()).unwrap()),
            to_hex(&comp),
            "{name}"
        );
    }
    for (name, want) in [
        ("bad_format", Error::UnsupportedFormatVersion(0)),
        ("bad_template_id", Error::WrongDefinition),
        ("bad_chain_id", Error::WrongDefinition),
        ("bad_sn_source", Error::WrongDefinition),
        ("bad_enc_dates", Error::InvalidDate),
    ] {
        let t = test(&f, "atcacert_set_comp_cert", name);
        let comp: [u8; 72] = arr(t, "comp_cert").try_into().unwrap();
        let got = CompressedCert::from_bytes(&comp).and_then(|c| {
            let mut out = vec![0u8; 600];
            let mut cert = Cert::from_template(&d, &mut out)?;
            cert.set_comp_cert(&c)
        });
        // The device path applies the 72 bytes directly (no `CompressedCert`): same errors.
        let mut out = vec![0u8; 600];
        let mut cert = Cert::from_template(&d, &mut out).unwrap();
        let direct = cert.set_comp_cert_bytes(&comp);
        for got in [got, direct] {
            match (got, want) {
                (Err(Error::UnsupportedFormatVersion(v)), Error::UnsupportedFormatVersion(_)) => {
                    assert!(v > 1)
                }
                (got, want) => assert_eq!(got, Err(want), "{name}"),
            }
        }
    }
    // An unvalidated definition whose ids do not fit 4 bits never matches a compressed cert
    // (template id 16 must not alias template id 0).
    let mut wide = buf.clone();
    wide.template_id = 16;
    wide.chain_id = 0;
    let wd = wide.as_def_unchecked();
    let mut comp = g_comp;
    comp[69] = 0x00;
    let mut out = vec![0u8; 600];
    let mut cert = Cert::from_template(&wd, &mut out).unwrap();
    assert_eq!(cert.set_comp_cert_bytes(&comp), Err(Error::WrongDefinition));
}

#[test]
fn device_locs_vectors() {
    let (Some(f), Some(dev)) = (def_file(), def("0_device")) else {
        return;
    };
    let signer = signer_def().unwrap();
    for (name, block) in [
        ("device", 1u16),
        ("signer_device", 1),
        ("32block_signer_device", 32),
    ] {
        let t = test(&f, "atcacert_get_device_locs", name);
        let sn_loc = c_locs(init(t, "cert_sn_dev_loc"))[0];
        let want = c_locs(init(t, "ref_device_locs"));
        // The test's custom elements (not extracted) are the OTP and slot 15 locations.
        let elements: Vec<CertElement> = [DeviceLoc::otp(10, 100), DeviceLoc::data(15, 0, 45)]
            .into_iter()
            .map(|device_loc| CertElement {
                id: heapless::String::try_from("e").unwrap(),
                device_loc,
                cert_loc: CertLoc::new(0, 0),
                transforms: [Transform::None; 2],
            })
            .collect();
        let mut d = dev.clone();
        d.cert_sn_dev_loc = sn_loc;
        d.cert_elements = elements;
        let mut plan = ReadPlan::new();
        if name.contains("signer") {
            let mut s = signer.clone();
            s.cert_sn_dev_loc = sn_loc;
            keystamp_certdef::rebuild::add_to_plan(&mut plan, &s.as_def_unchecked(), block)
                .unwrap();
            assert_eq!(plan.len(), 3, "{name}: signer alone");
        }
        keystamp_certdef::rebuild::add_to_plan(&mut plan, &d.as_def_unchecked(), block).unwrap();
        assert_eq!(plan.as_slice(), &want[..], "{name}");
    }
}

#[test]
fn merge_device_loc_vectors() {
    let Some(f) = def_file() else { return };
    let mut checked = 0;
    for t in group(&f, "atcacert_merge_device_loc") {
        let name = t["name"].as_str().unwrap();
        let block = if name.starts_with("32block") { 32 } else { 1 };
        let si = &t["struct_initializers"];
        let mut plan = ReadPlan::new();
        let (news, want): (Vec<DeviceLoc>, Option<Vec<DeviceLoc>>) =
            if si.get("device_loc_cur").is_some() {
                (
                    vec![
                        c_locs(init(t, "device_loc_cur"))[0],
                        c_locs(init(t, "device_loc_new"))[0],
                    ],
                    Some(c_locs(init(t, "device_locs_ref"))),
                )
            } else if si.get("new_device_loc").is_some() {
                if let Some(init_locs) = si.get("device_locs") {
                    for l in c_locs(init_locs["init"].as_str().unwrap()) {
                        plan.push(l).unwrap();
                    }
                }
                let new = c_locs(init(t, "new_device_loc"))[0];
                let want = if let Some(r) = si.get("ref_device_locs") {
                    Some(c_locs(r["init"].as_str().unwrap()))
                } else if let Some(r) = si.get("ref_device_loc") {
                    let mut v: Vec<DeviceLoc> = plan.to_vec();
                    let r = c_locs(r["init"].as_str().unwrap())[0];
                    if v.is_empty() {
                        v.push(r)
                    } else {
                        v[0] = r
                    }
                    Some(v)
                } else if name == "empty_list" {
                    Some(vec![new])
                } else if name == "count0" || name == "devzone_none" {
                    Some(Vec::new())
                } else {
                    None // small_buf / bad_params: capacity and NULL checks of the C API
                };
                (vec![new], want)
            } else {
                continue;
            };
        let Some(want) = want else { continue };
        for n in &news {
            merge_device_loc(&mut plan, n, block).unwrap();
        }
        assert_eq!(plan.as_slice(), &want[..], "{name}");
        checked += 1;
    }
    assert!(checked >= 25, "only {checked}");
    // A full plan is a typed error.
    let mut plan = ReadPlan::new();
    for s in 0..16 {
        merge_device_loc(&mut plan, &DeviceLoc::data(s, 0, 32), 32).unwrap();
    }
    assert_eq!(
        merge_device_loc(&mut plan, &DeviceLoc::config(0, 16), 32),
        Err(Error::TooManyLocations)
    );
}

#[test]
fn cert_build_finish_signer() {
    let (Some(f), Some(buf)) = (def_file(), signer_def()) else {
        return;
    };
    let d = buf.as_def().unwrap();
    let t = test(&f, "atcacert_cert_build", "finish_signer");
    let padded = global(&f, "g_padded_public_key");
    let comp = global(&f, "g_comp_cert");
    let ca: [u8; 64] = global(&f, "g_ca_public_key").try_into().unwrap();
    let data: [(DeviceLoc, &[u8]); 2] = [
        (DeviceLoc::data(11, 0, 72), &padded),
        (DeviceLoc::data(12, 0, 72), &comp),
    ];
    let mut out = vec![0u8; d.max_cert_size().unwrap()];
    let n = rebuild(&d, &data, Some(&ca), &mut out).unwrap();
    assert_eq!(to_hex(&out[..n]), to_hex(&arr(t, "cert_ref")));
    // start_signer_no_ca_key: without a CA key the template's AKI stays.
    let t0 = test(&f, "atcacert_cert_build", "start_signer_no_ca_key");
    let n = rebuild(&d, &data, None, &mut out).unwrap();
    let view = CertView::new(&d, &out[..n]);
    let aki_loc = d.std_loc(StdElement::AuthKeyId);
    let want = arr(t0, "cert_ref");
    assert_eq!(
        view.auth_key_id().unwrap(),
        &want[aki_loc.offset as usize..aki_loc.end()]
    );
}

#[test]
fn cert_build_finish_device() {
    let (Some(f), Some(buf)) = (def_file(), def("0_device")) else {
        return;
    };
    let d = buf.as_def().unwrap();
    let t = test(&f, "atcacert_cert_build", "finish_device");
    let pk = arr(t, "public_key");
    let comp = arr(t, "comp_cert");
    let config = arr(t, "config");
    let data: [(DeviceLoc, &[u8]); 3] = [
        (DeviceLoc::genkey(0), &pk[..64]),
        (DeviceLoc::data(10, 0, 72), &comp),
        (DeviceLoc::config(0, 32), &config),
    ];
    let ca: [u8; 64] = global(&f, "g_ca_public_key").try_into().unwrap();
    let mut out = vec![0u8; d.max_cert_size().unwrap()];
    let n = rebuild(&d, &data, Some(&ca), &mut out).unwrap();
    assert_eq!(to_hex(&out[..n]), to_hex(&arr(t, "cert_ref")));
    // finish_missing_device_sn: no config read → typed error.
    let data2: [(DeviceLoc, &[u8]); 2] = [
        (DeviceLoc::genkey(0), &pk[..64]),
        (DeviceLoc::data(10, 0, 72), &comp),
    ];
    assert_eq!(
        rebuild(&d, &data2, None, &mut out),
        Err(Error::MissingDeviceSn)
    );
}

#[test]
fn cert_build_transforms() {
    let (Some(f), Some(buf)) = (def_file(), def("3_device")) else {
        return;
    };
    let d = buf.as_def().unwrap();
    let t = test(&f, "atcacert_cert_build", "transform");
    let (pk, comp, slot8, config, otp) = (
        arr(t, "public_key"),
        arr(t, "comp_cert"),
        arr(t, "slot8"),
        arr(t, "config"),
        arr(t, "otp"),
    );
    let data: [(DeviceLoc, &[u8]); 5] = [
        (DeviceLoc::genkey(0), &pk),
        (DeviceLoc::data(10, 0, 72), &comp),
        (DeviceLoc::data(8, 0, slot8.len() as u16), &slot8),
        (DeviceLoc::config(0, 128), &config),
        (DeviceLoc::otp(0, 64), &otp),
    ];
    let mut out = vec![0u8; d.max_cert_size().unwrap()];
    let n = rebuild(&d, &data, None, &mut out).unwrap();
    let want = arr(t, "cert_ref");
    assert_eq!(to_hex(&out[..n]), to_hex(&want));
    // Split inverts every transform: the device data it derives rebuilds the same cert.
    let mut image = DeviceImage::default();
    let mut scratch = vec![0u8; n];
    split(&d, &want, None, None, &mut image, &mut scratch).unwrap();
    let n2 = rebuild(&d, &image, None, &mut out).unwrap();
    assert_eq!(to_hex(&out[..n2]), to_hex(&want));
}

#[test]
fn cert_build_no_expire_loc() {
    let (Some(f), Some(mut buf)) = (def_file(), def("6_device")) else {
        return;
    };
    let t = test(&f, "atcacert_cert_build", "no_expire_loc");
    buf.sn_source = SnSource::PubKeyHash;
    buf.std_cert_elements[StdElement::ExpireDate as usize] = CertLoc::new(0, 0);
    let d = buf.as_def().unwrap();
    let want = arr(t, "cert_ref");
    assert_eq!(
        to_hex(&compress(&d, &want).unwrap()),
        to_hex(&arr(t, "comp_cert"))
    );
    let mut image = DeviceImage::default();
    let mut scratch = vec![0u8; d.max_cert_size().unwrap()];
    split(&d, &want, None, None, &mut image, &mut scratch).unwrap();
    let plan = read_plan(&d, BLOCK_SIZE).unwrap();
    let reads: Vec<(DeviceLoc, Vec<u8>)> = plan
        .iter()
        .map(|l| (*l, image.read_clamped(l).unwrap().to_vec()))
        .collect();
    let pairs: Vec<(DeviceLoc, &[u8])> = reads.iter().map(|(l, b)| (*l, &b[..])).collect();
    let n = rebuild(&d, pairs.as_slice(), None, &mut scratch).unwrap();
    assert_eq!(to_hex(&scratch[..n]), to_hex(&want));
}

#[test]
fn max_cert_size_vectors() {
    let Some(dev) = def("0_device") else { return };
    let d = dev.as_def().unwrap();
    assert_eq!(
        d.max_cert_size(),
        Ok(d.std_loc(StdElement::Signature).offset as usize + 75)
    );
    let custom = def("3_device").unwrap();
    assert_eq!(
        custom.as_def().unwrap().max_cert_size(),
        Ok(custom.template.len())
    );
    // max_cert_size_x509_dynamic_sn: room for a 128-byte... the template SN length is 10.
    let mut dynamic = dev.clone();
    dynamic.sn_source = SnSource::StoredDynamic;
    dynamic.std_cert_elements[StdElement::CertSn as usize].offset -= 1;
    let dd = dynamic.as_def_unchecked();
    assert_eq!(
        dd.max_cert_size(),
        Ok(d.std_loc(StdElement::Signature).offset as usize + 75 + 128 - 10)
    );
    let mut bad = dynamic.clone();
    let at = bad.std_cert_elements[StdElement::CertSn as usize].offset as usize;
    bad.template[at] = 128;
    assert_eq!(bad.as_def_unchecked().max_cert_size(), Err(Error::BadCert));
}
