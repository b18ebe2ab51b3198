//! Compression, differential: `compress` (its fast path for the usual shapes, the general path
//! for the rest) gives exactly what the general path `CertView::compressed` + `to_bytes` gives —
//! the same 72 bytes or the same error — for certificates built from mostly-valid dates, signer
//! ids and signatures with fuzz-chosen formats, dynamic serial-number shifts and corruptions.
#![no_main]

use keystamp_certdef::der::encode_ecdsa_sig;
use keystamp_certdef::{
    CertDef, CertElements, CertLoc, CertType, CertView, DateFormat, DeviceLoc, SnSource,
    StdElement, compress, date,
};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

/// Fuzz bytes as small numbers (zeros once they run out).
struct Reader<'a>(Unstructured<'a>);

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        self.0.arbitrary().unwrap_or(0)
    }
    fn pick<T: Copy>(&mut self, all: &[T]) -> T {
        all[self.u8() as usize % all.len()]
    }
    /// Usually a value in `lo..=hi`, sometimes any two-digit-ish value.
    fn field(&mut self, lo: u32, hi: u32) -> u32 {
        let v = self.u8() as u32;
        if self.u8() % 8 == 0 {
            v % 100
        } else {
            lo + v % (hi - lo + 1)
        }
    }
}

/// `[y, mo, d, h, mi, s]` as text in `fmt` (no range checks; POSIX formats get 4 raw bytes).
fn date_text(fmt: DateFormat, [y, mo, d, h, mi, s]: [u32; 6]) -> Vec<u8> {
    let [mo, d, h, mi, s] = [mo, d, h, mi, s].map(|v| v % 100);
    let rest = format!("{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
    match fmt {
        DateFormat::Rfc5280Utc => format!("{:02}{rest}", y % 100).into_bytes(),
        DateFormat::Rfc5280Gen => format!("{:04}{rest}", y % 10000).into_bytes(),
        DateFormat::Iso8601Sep => {
            format!("{:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z", y % 10000).into_bytes()
        }
        _ => y.wrapping_mul(31_557_600).to_be_bytes().to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(Unstructured::new(data));
    use DateFormat::{Rfc5280Gen as Gen, Rfc5280Utc as Utc};
    let issue_fmt = r.pick(&[
        Utc,
        Gen,
        Utc,
        Gen,
        DateFormat::Iso8601Sep,
        DateFormat::PosixUint32Le,
    ]);
    let expire_fmt = r.pick(&[
        Utc,
        Gen,
        Utc,
        Gen,
        DateFormat::Iso8601Sep,
        DateFormat::PosixUint32Be,
    ]);
    let any_source = r.pick(SnSource::ALL);
    let sn_source = r.pick(&[SnSource::StoredDynamic, SnSource::DeviceSn, any_source]);
    let cert_type = if r.u8() % 16 == 0 {
        CertType::Custom
    } else {
        CertType::X509
    };
    // A dynamic serial number's length byte at 4 shifts everything after it by `delta`.
    let delta: isize = if sn_source == SnSource::StoredDynamic {
        (r.u8() % 9) as isize - 4
    } else {
        0
    };
    let present = r.u8();
    let loc = |at: u16, n: usize, bit: u8| {
        CertLoc::new(at, if present & bit == 0 { n as u16 } else { 0 })
    };
    let (issue_at, expire_at, sid_at, sig_at) = (16u16, 40u16, 64u16, 80u16);
    let mut elements = [CertLoc::default(); 8];
    elements[StdElement::CertSn as usize] = CertLoc::new(4, 9);
    elements[StdElement::IssueDate as usize] = loc(issue_at, date::format_size(issue_fmt), 1);
    elements[StdElement::ExpireDate as usize] = loc(expire_at, date::format_size(expire_fmt), 2);
    elements[StdElement::SignerId as usize] = loc(sid_at, 4, 4);
    elements[StdElement::Signature as usize] = CertLoc::new(sig_at, 64);

    let mut template = vec![0u8; sig_at as usize];
    template.iter_mut().for_each(|b| *b = r.u8());
    template[4] = 8;
    // The serial number's value (template: 8 bytes at 5) gets 8 + delta bytes.
    let mut cert = template[..5].to_vec();
    cert[4] = (8 + delta) as u8;
    let mut value = template[5..13].to_vec();
    value.resize((8 + delta) as usize, 0x55);
    cert.extend_from_slice(&value);
    cert.extend_from_slice(&template[13..]);
    let at = |o: u16| (o as isize + delta) as usize;

    let issue = [
        r.field(1999, 2130),
        r.field(1, 12),
        r.field(1, 31),
        r.field(0, 23),
        if r.u8() % 8 == 0 {
            r.u8() as u32 % 61
        } else {
            0
        },
        if r.u8() % 8 == 0 {
            r.u8() as u32 % 61
        } else {
            0
        },
    ];
    let mut expire = issue;
    match r.u8() % 8 {
        0 => {
            expire = [
                if expire_fmt == Utc { 2049 } else { 9999 },
                12,
                31,
                23,
                59,
                59,
            ]
        }
        1 => expire[r.u8() as usize % 6] += 1,
        _ => expire[0] += r.u8() as u32 % 140,
    }
    for (o, fmt, d) in [
        (issue_at, issue_fmt, issue),
        (expire_at, expire_fmt, expire),
    ] {
        let t = date_text(fmt, d);
        cert[at(o)..at(o) + t.len()].copy_from_slice(&t);
    }
    let hex = b"0123456789ABCDEF";
    for i in 0..4 {
        let c = r.u8();
        cert[at(sid_at) + i] = if c & 0xF0 == 0xF0 {
            c
        } else {
            hex[c as usize % 16]
        };
    }
    let mut sig = [0u8; 64];
    sig.iter_mut().for_each(|b| *b = r.u8());
    let mut sv = [0u8; 80];
    let n = encode_ecdsa_sig(&sig, &mut sv).expect("room");
    cert.extend_from_slice(&sv[..n]);
    // Corruptions anywhere (including past the end), then an optional length change.
    for _ in 0..r.u8() % 4 {
        let pos = r.u8() as usize % (cert.len() + 8);
        let v = r.u8();
        if let Some(b) = cert.get_mut(pos) {
            *b = v;
        }
    }
    if r.u8() % 8 == 0 {
        let len = cert.len() + 2 - (r.u8() % 5) as usize;
        cert.resize(len, 0);
    }

    let def = CertDef {
        cert_type,
        template_id: r.u8() % 17,
        chain_id: r.u8() % 17,
        private_key_slot: 0,
        sn_source,
        cert_sn_dev_loc: DeviceLoc::NONE,
        issue_date_format: issue_fmt,
        expire_date_format: expire_fmt,
        tbs_cert_loc: CertLoc::new(4, sig_at - 4),
        expire_years: r.pick(&[0, 1, 20, 31, 32, 127, 128, 255]),
        public_key_dev_loc: DeviceLoc::NONE,
        comp_cert_dev_loc: DeviceLoc::NONE,
        std_cert_elements: elements,
        cert_elements: CertElements::Slice(&[]),
        template: &template,
        name: keystamp_certdef::Name::default(),
        ca_cert_def: None,
    };
    let general = CertView::new(&def, &cert)
        .compressed()
        .and_then(|c| c.to_bytes());
    assert_eq!(compress(&def, &cert), general);
});
