//! keystamp's Microchip certificate definitions (`keystamp::microchip`) against cryptoauthlib's
//! own: the PyPI wheel's `libcryptoauth.so`, read through ctypes by `microchip_defs.py` at test
//! time. Every field and element must match; the templates must match byte for byte outside the
//! per-device elements (whose placeholder values in a template are arbitrary: a rebuild replaces
//! them). Skips with a printed reason when python3 or the cryptoauthlib package is missing.

use keystamp::microchip::MicrochipDef;
use keystamp_certdef::{CertDefBuf, CertLoc, DeviceLoc};
use serde_json::{Value, json};
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/microchip_defs.py");

fn oracle_name(def: MicrochipDef) -> &'static str {
    match def {
        MicrochipDef::TngtlsSigner => "g_tngtls_cert_def_1_signer",
        MicrochipDef::TngtlsDevice2 => "g_tngtls_cert_def_2_device",
        MicrochipDef::TngtlsDevice3 => "g_tngtls_cert_def_3_device",
        MicrochipDef::TflxtlsDevice4 => "g_tflxtls_cert_def_4_device",
        MicrochipDef::TngloraSigner => "g_tnglora_cert_def_1_signer",
        MicrochipDef::TngloraDevice2 => "g_tnglora_cert_def_2_device",
        MicrochipDef::TngloraDevice4 => "g_tnglora_cert_def_4_device",
    }
}

/// The oracle's definitions, or why they cannot be had here.
fn oracle() -> Result<Value, String> {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .args(MicrochipDef::ALL.map(oracle_name))
        .output()
        .map_err(|e| format!("python3 not runnable: {e}"))?;
    match out.status.code() {
        Some(0) => serde_json::from_slice(&out.stdout).map_err(|e| format!("oracle output: {e}")),
        Some(3) => Err(format!(
            "no cryptoauthlib package or library (pip install cryptoauthlib): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        _ => panic!(
            "the oracle script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn device_loc(l: &DeviceLoc) -> Value {
    json!([
        l.zone as u8,
        l.slot,
        u8::from(l.is_genkey),
        l.offset,
        l.count
    ])
}

fn cert_loc(l: &CertLoc) -> Value {
    json!([l.offset, l.count])
}

/// Ours in the oracle script's form (the template separately).
fn ours(def: &CertDefBuf) -> Value {
    json!({
        "type": def.cert_type as u8,
        "template_id": def.template_id,
        "chain_id": def.chain_id,
        "private_key_slot": def.private_key_slot,
        "sn_source": def.sn_source as u8,
        "cert_sn_dev_loc": device_loc(&def.cert_sn_dev_loc),
        "issue_date_format": def.issue_date_format as u8,
        "expire_date_format": def.expire_date_format as u8,
        "tbs_cert_loc": cert_loc(&def.tbs_cert_loc),
        "expire_years": def.expire_years,
        "public_key_dev_loc": device_loc(&def.public_key_dev_loc),
        "comp_cert_dev_loc": device_loc(&def.comp_cert_dev_loc),
        "std_cert_elements": def.std_cert_elements.iter().map(cert_loc).collect::<Vec<_>>(),
        "cert_elements": def.cert_elements.iter().map(|e| json!({
            "id": e.id.as_str(),
            "device_loc": device_loc(&e.device_loc),
            "cert_loc": cert_loc(&e.cert_loc),
            "transforms": e.transforms.iter().map(|t| *t as u8).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Template bytes that are not per-device: everything outside the standard and custom element
/// locations.
fn fixed_bytes(template: &[u8], def: &CertDefBuf) -> Vec<Option<u8>> {
    let mut out: Vec<Option<u8>> = template.iter().copied().map(Some).collect();
    let mut blank = |offset: usize, count: usize| {
        for b in out.iter_mut().skip(offset).take(count) {
            *b = None;
        }
    };
    for (i, l) in def.std_cert_elements.iter().enumerate() {
        let count = if i == keystamp_certdef::StdElement::Signature as usize {
            template.len()
        } else {
            usize::from(l.count)
        };
        blank(usize::from(l.offset), count);
    }
    for e in &def.cert_elements {
        blank(
            usize::from(e.cert_loc.offset),
            usize::from(e.cert_loc.count),
        );
    }
    out
}

#[test]
fn definitions_match_cryptoauthlib() {
    let oracle = match oracle() {
        Ok(v) => v,
        Err(reason) => {
            eprintln!("SKIP Microchip definitions vs cryptoauthlib: {reason}");
            return;
        }
    };
    for def in MicrochipDef::ALL {
        let name = oracle_name(def);
        let ours_def = def.definition().unwrap();
        let mut theirs = oracle[name].clone();
        let template = hex::decode(theirs["template"].as_str().unwrap()).unwrap();
        theirs.as_object_mut().unwrap().remove("template");
        assert_eq!(ours(&ours_def), theirs, "{name}: definition fields");
        // The signature (its placeholder's length included) is replaced by every rebuild, and with
        // it the outer SEQUENCE's length: compare everything before it, outer length aside.
        let sig_at = usize::from(ours_def.std_cert_elements[1].offset);
        assert!(template.len() > sig_at && ours_def.template.len() > sig_at);
        assert_eq!(
            &template[..2],
            &ours_def.template[..2],
            "{name}: outer header"
        );
        let (a, b) = (
            fixed_bytes(&ours_def.template, &ours_def),
            fixed_bytes(&template, &ours_def),
        );
        for (i, (x, y)) in a.iter().zip(&b).enumerate().take(sig_at).skip(4) {
            assert_eq!(x, y, "{name}: template byte {i}");
        }
    }
}
