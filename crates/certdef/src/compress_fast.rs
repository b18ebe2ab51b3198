//! The fast path of [`crate::compress`] for certificates in the usual shape: X.509, RFC 5280 text
//! dates, and a short-form DER signatureValue with 32- or 33-byte INTEGERs (all but about one
//! signature in 256). It answers `None` for every other shape and for every input the general
//! path ([`crate::CertView::compressed`]'s checks, in their order) would reject, which then
//! produces the result or its exact error: both paths agree on every input (tests below).
//!
//! It is faster because it works on the text instead of decoded dates: the issue date must end
//! in `0000Z` (minutes and seconds 0) and the expire date must carry the issue date's
//! `MMDDhhmmssZ` bytes, which is exactly "a rebuild reproduces it" (see `comp_fields`), so only
//! the issue date's `YYMMDDhh` and the expire date's year are decoded — eight digits checked at
//! once in a `u64`. The dynamic serial-number shift is computed once per certificate.

use crate::comp::COMP_CERT_LEN;
use crate::date;
use crate::{CertDef, CertLoc, CertType, DateFormat, SnSource, StdElement};

/// Bytes after the year in both RFC 5280 text formats: `MMDDhhmmssZ`.
const TAIL: usize = 11;

/// Digits of the year of an RFC 5280 text format; `None` for the other formats.
#[inline(always)]
fn year_len(fmt: DateFormat) -> Option<usize> {
    match fmt {
        DateFormat::Rfc5280Utc => Some(2),
        DateFormat::Rfc5280Gen => Some(4),
        _ => None,
    }
}

/// The "no expiration" text of an RFC 5280 format (`DateTime::max_for`, encoded).
#[inline(always)]
fn max_text(fmt: DateFormat) -> &'static [u8] {
    if fmt == DateFormat::Rfc5280Gen {
        b"99991231235959Z"
    } else {
        b"491231235959Z"
    }
}

/// Element bytes with the dynamic serial-number shift worked out once per certificate.
struct Elements<'a> {
    der: &'a [u8],
    /// Offsets after this one move by `delta` (`usize::MAX`: no dynamic serial number).
    sn_at: usize,
    delta: isize,
}

impl<'a> Elements<'a> {
    /// As `shift_after` in `cert.rs` decides it, for an X.509 definition.
    #[inline(always)]
    fn new(def: &CertDef<'_>, der: &'a [u8]) -> Self {
        let (sn_at, delta) = if def.sn_source == SnSource::StoredDynamic {
            let sn = def.std_loc(StdElement::CertSn).offset as usize;
            match (der.get(sn), def.template.get(sn)) {
                (Some(&c), Some(&t)) => (sn, c as isize - t as isize),
                _ => (usize::MAX, 0),
            }
        } else {
            (usize::MAX, 0)
        };
        Elements { der, sn_at, delta }
    }

    /// Where the certificate holds what the template has at `offset`.
    #[inline(always)]
    fn start(&self, offset: u16) -> Option<usize> {
        let o = offset as usize;
        if o > self.sn_at {
            o.checked_add_signed(self.delta)
        } else {
            Some(o)
        }
    }

    /// The bytes of `loc` (a present element), when inside the certificate.
    #[inline(always)]
    fn get(&self, loc: CertLoc) -> Option<&'a [u8]> {
        let start = self.start(loc.offset)?;
        self.der.get(start..start + loc.count as usize)
    }
}

/// Days of `month` (1–12) in `year` (2000–2127: every fourth year is a leap year but 2100).
#[inline(always)]
fn month_days(year: u16, month: u8) -> u8 {
    if month == 2 {
        28 + (year.is_multiple_of(4) && year != 2100) as u8
    } else {
        // 31 for odd months up to July and even ones from August.
        30 | ((month ^ (month >> 3)) & 1)
    }
}

/// A compressible issue date as the compressed certificate needs it.
#[derive(Clone, Copy)]
struct Issue<'a> {
    year: u16,
    /// Bytes 64–66 without the expire years: year (low 5 bits), month, day, hour.
    bits: u32,
    /// `MMDDhhmmssZ`, which a reproducible expire date repeats.
    tail: &'a [u8; TAIL],
}

/// An issue date `text` in `fmt` that compresses: minutes and seconds `00`, a valid date in
/// 2000–2127.
#[inline(always)]
fn issue_date(fmt: DateFormat, text: &[u8]) -> Option<Issue<'_>> {
    let yl = year_len(fmt)?;
    let t = text.get(..yl + TAIL)?;
    let tail: &[u8; TAIL] = t.get(yl..)?.try_into().ok()?;
    // The last two year digits and MMDDhh, digit-checked together.
    let yymmddhh: &[u8; 8] = t.get(yl - 2..yl + 6)?.try_into().ok()?;
    let mut bad = tail[6..] != *b"0000Z";
    let [yy, month, day, hour] = date::digits8(yymmddhh, 0, &mut bad);
    let year = match t {
        [c0, c1, _, _, ..] if yl == 4 => date::d2([*c0, *c1], &mut bad) as u16 * 100 + yy as u16,
        // UTCTime 50–99 is 1950–1999: before the compressed format's first year.
        _ if yy < 50 => 2000 + yy as u16,
        _ => return None,
    };
    let valid = !bad
        && (2000..=2127).contains(&year)
        && (1..=12).contains(&month)
        && day >= 1
        && day <= month_days(year, month)
        && hour <= 23;
    if !valid {
        return None;
    }
    let bits = ((year as u32 - 2000) & 0x1F) << 19
        | (month as u32) << 15
        | (day as u32) << 10
        | (hour as u32) << 5;
    Some(Issue { year, bits, tail })
}

/// The expire years of an expire date `text` in `fmt` that a rebuild reproduces: the format's
/// max date (0 years), or the issue date's tail 1–127 years later (on a day that exists).
#[inline(always)]
fn expire_years(fmt: DateFormat, issue: Option<Issue<'_>>, text: &[u8]) -> Option<u8> {
    let yl = year_len(fmt)?;
    let t = text.get(..yl + TAIL)?;
    match issue {
        Some(issue) if t.get(yl..) == Some(&issue.tail[..]) => {
            let mut bad = false;
            let year = match *t {
                [c0, c1, y0, y1, ..] if yl == 4 => {
                    date::d2([c0, c1], &mut bad) as u16 * 100 + date::d2([y0, y1], &mut bad) as u16
                }
                [y0, y1, ..] => match date::d2([y0, y1], &mut bad) as u16 {
                    yy if yy < 50 => 2000 + yy,
                    yy => 1900 + yy,
                },
                _ => return None,
            };
            let years = year.checked_sub(issue.year)?;
            // Only the year differs from a valid date: only 29 February can stop existing.
            let day_exists = issue.tail[..4] != *b"0229" || date::days_in_month(year, 2) == 29;
            (!bad && (1..=127).contains(&years) && day_exists).then_some(years as u8)
        }
        // An issue date's tail ends in 0000Z: the max date (…5959Z) never matched above.
        _ => (t == max_text(fmt)).then_some(0),
    }
}

/// Signer id from four upper-case hex characters (`0-9`, `A-F`), all four checked at once.
#[inline(always)]
fn signer_id(text: &[u8]) -> Option<[u8; 2]> {
    let x = u32::from_le_bytes(text.try_into().ok()?);
    // Per byte (each below 0x80), bit 7 of `x + k` says "at least 0x80 - k".
    let at_least = |k: u8| x.wrapping_add(u32::from_ne_bytes([k; 4]));
    let digit = at_least(0x80 - b'0') & !at_least(0x80 - b'9' - 1);
    let letter = at_least(0x80 - b'A') & !at_least(0x80 - b'F' - 1);
    if x & 0x8080_8080 != 0 || (digit | letter) & 0x8080_8080 != 0x8080_8080 {
        return None;
    }
    // Low nibble, + 9 for a letter ('A' = 0x41 → 10).
    let n = (x & 0x0F0F_0F0F) + ((letter >> 7) & 0x0101_0101) * 9;
    let [a, b, c, d] = n.to_le_bytes();
    Some([(a << 4) | b, (c << 4) | d])
}

/// R‖S into `out` from a signatureValue `sv` that ends the certificate, in the usual shape
/// `03 L 00 30 L 02 (20|21 00) R 02 (20|21 00) S` — what `der::decode_ecdsa_sig` accepts in it.
#[inline(always)]
fn signature(sv: &[u8], out: &mut [u8; 64]) -> Option<()> {
    let n = sv.len();
    let &[0x03, bs_len, 0x00, 0x30, seq_len, 0x02, r_len, r0, ..] = sv else {
        return None;
    };
    let r_pad = r_len.wrapping_sub(32) as usize;
    let s_at = 7 + r_len as usize; // the S INTEGER's tag
    let &[0x02, s_len, s0, ..] = sv.get(s_at..)? else {
        return None;
    };
    let s_pad = s_len.wrapping_sub(32) as usize;
    // Lengths agree with each other and with the end of the certificate; a 33-byte INTEGER
    // is only a 0x00 pad before 32 bytes.
    let ok = r_pad <= 1
        && s_pad <= 1
        && s_at + 2 + s_len as usize == n
        && bs_len as usize + 2 == n
        && seq_len as usize + 5 == n
        && (r_pad == 0 || r0 == 0)
        && (s_pad == 0 || s0 == 0);
    if !ok {
        return None;
    }
    out[..32].copy_from_slice(sv.get(7 + r_pad..39 + r_pad)?);
    out[32..].copy_from_slice(sv.get(n - 32..)?);
    Some(())
}

/// The compressed certificate, or `None`: take the general path (see the module docs).
#[inline(always)]
pub(crate) fn compress(def: &CertDef<'_>, der: &[u8]) -> Option<[u8; COMP_CERT_LEN]> {
    if def.cert_type != CertType::X509 {
        return None;
    }
    let el = Elements::new(def, der);
    let issue_loc = def.std_loc(StdElement::IssueDate);
    let issue = if issue_loc.is_present() {
        Some(issue_date(def.issue_date_format, el.get(issue_loc)?)?)
    } else {
        None
    };
    let expire_loc = def.std_loc(StdElement::ExpireDate);
    let expire_years = if expire_loc.is_present() {
        expire_years(def.expire_date_format, issue, el.get(expire_loc)?)?
    } else {
        def.expire_years
    };
    let signer_loc = def.std_loc(StdElement::SignerId);
    let signer_id = if signer_loc.is_present() {
        signer_id(el.get(signer_loc)?)?
    } else {
        [0, 0]
    };
    if def.template_id > 15 || def.chain_id > 15 || expire_years > 127 {
        return None;
    }
    let mut b = [0u8; COMP_CERT_LEN];
    let sig_at = el.start(def.std_loc(StdElement::Signature).offset)?;
    let (sig, fields) = b.split_first_chunk_mut::<64>()?;
    signature(der.get(sig_at..)?, sig)?;
    let fields: &mut [u8; 8] = fields.try_into().ok()?;
    // 2000-01-01 00:00 without an issue date.
    let (year, bits) = issue.map_or((2000, 1 << 15 | 1 << 10), |i| (i.year, i.bits));
    // Bytes 64–71 as `date::encode_comp_dates` and `comp::encode_fields` write them; every
    // field is already in range (year 2000–2127, expire years ≤ 127, 4-bit ids).
    let [_, b64, b65, b66] = (bits | (expire_years & 0x1F) as u32).to_be_bytes();
    let y = (year - 2000) as u8;
    *fields = [
        b64,
        b65,
        b66,
        signer_id[0],
        signer_id[1],
        (def.template_id << 4) | def.chain_id,
        (def.sn_source.value() << 4) | date::comp_version_for(year, expire_years),
        ((y & 0x60) << 1) | ((expire_years & 0x60) >> 1),
    ];
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertDefBuf, CertView, DateTime, Error, der, parse_defs_json};

    /// Xorshift: reproducible inputs without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn one_in(&mut self, n: u64) -> bool {
            self.next().is_multiple_of(n)
        }
        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[self.next() as usize % from.len()]
        }
    }

    /// The general path's answer; asserts the fast path and [`crate::compress`] agree with it.
    /// True when the fast path answered.
    fn agrees(def: &CertDef<'_>, der: &[u8]) -> bool {
        let view = CertView::new(def, der);
        let general = view.compressed_bytes();
        let fast = compress(def, der);
        if let Some(b) = fast {
            assert_eq!(Ok(b), general, "fast path differs");
        }
        assert_eq!(crate::compress(def, der), general);
        // The struct path runs the same checks.
        assert_eq!(view.compressed().and_then(|c| c.to_bytes()), general);
        fast.is_some()
    }

    fn vectors() -> Option<(Vec<CertDefBuf>, serde_json::Value)> {
        let shared = std::env::var("KEYSTAMP_SHARED").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared").to_string()
        });
        let dir = std::path::Path::new(&shared).join("vectors/atcacert");
        let (Ok(defs), Ok(golden)) = (
            std::fs::read_to_string(dir.join("cert_defs.json")),
            std::fs::read_to_string(dir.join("golden_microchip_certs.json")),
        ) else {
            eprintln!("SKIP: vectors not found under {}", dir.display());
            return None;
        };
        Some((
            parse_defs_json(&defs).unwrap(),
            serde_json::from_str(&golden).unwrap(),
        ))
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// `[y, mo, d, h, mi, s]` as RFC 5280 text, written independently of `date::encode`
    /// (no range checks: invalid dates on purpose).
    fn date_text(fmt: DateFormat, [y, mo, d, h, mi, s]: [u32; 6]) -> Vec<u8> {
        let rest = format!("{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        match fmt {
            DateFormat::Rfc5280Utc => format!("{:02}{rest}", y % 100),
            _ => format!("{y:04}{rest}"),
        }
        .into_bytes()
    }

    #[test]
    fn month_days_matches_the_calendar() {
        for year in 2000..=2127 {
            for month in 1..=12 {
                assert_eq!(
                    month_days(year, month),
                    date::days_in_month(year, month),
                    "{year}-{month}"
                );
            }
        }
    }

    #[test]
    fn max_texts_are_the_max_dates() {
        for fmt in [DateFormat::Rfc5280Utc, DateFormat::Rfc5280Gen] {
            assert_eq!(date::decode(fmt, max_text(fmt)), Ok(DateTime::max_for(fmt)));
        }
    }

    #[test]
    fn signer_id_accepts_exactly_upper_case_hex() {
        let nibble = |c: u8| (c as char).to_digit(16).filter(|_| !c.is_ascii_lowercase());
        let reference = |t: [u8; 4]| {
            let n: Option<Vec<u32>> = t.iter().map(|&c| nibble(c)).collect();
            n.map(|n| [(n[0] * 16 + n[1]) as u8, (n[2] * 16 + n[3]) as u8])
        };
        let mut rng = Rng(7);
        for at in 0..4 {
            for v in 0..=255u8 {
                let mut t = *b"09AF";
                t[at] = v;
                assert_eq!(signer_id(&t), reference(t), "{t:?}");
            }
        }
        for _ in 0..100_000 {
            let t = (rng.next() as u32).to_le_bytes();
            assert_eq!(signer_id(&t), reference(t), "{t:?}");
            let t = [0, 1, 2, 3].map(|_| rng.pick(b"0123456789ABCDEFafgG@/:`\x80\xc1"));
            assert_eq!(signer_id(&t), reference(t), "{t:?}");
        }
        assert_eq!(signer_id(b"ABC"), None);
        assert_eq!(signer_id(b"ABCDE"), None);
    }

    /// Every signature shape through `der::encode_ecdsa_sig`, and corruptions: the fast decoder
    /// answers only what the general one answers for a signatureValue ending the certificate.
    #[test]
    fn signature_agrees_with_the_der_decoder() {
        let mut rng = Rng(99);
        let mut taken = 0;
        for case in 0..2000 {
            let mut sig = [0u8; 64];
            sig.iter_mut().for_each(|b| *b = rng.next() as u8);
            for half in [0, 32] {
                match rng.next() % 5 {
                    0 => sig[half] |= 0x80,
                    1 => sig[half] &= 0x7F,
                    2 => sig[half] = 0,
                    3 => sig[half..half + 2].fill(0),
                    _ => {}
                }
            }
            let mut enc = [0u8; 80];
            let n = der::encode_ecdsa_sig(&sig, &mut enc).unwrap();
            let general = |sv: &[u8]| match der::decode_ecdsa_sig(sv) {
                Ok((s, used)) if used == sv.len() => Some(s),
                _ => None,
            };
            let fast = |sv: &[u8]| {
                let mut out = [0u8; 64];
                signature(sv, &mut out).map(|()| out)
            };
            assert_eq!(general(&enc[..n]), Some(sig));
            if let Some(s) = fast(&enc[..n]) {
                assert_eq!(s, sig);
                taken += 1;
            } else {
                // Only an INTEGER shorter than 32 bytes leaves the fast path.
                assert!(sig[0] == 0 && sig[1] < 0x80 || sig[32] == 0 && sig[33] < 0x80);
            }
            let at = case % n;
            for v in 0..=255u8 {
                let mut bad = enc;
                bad[at] = v;
                for len in [n - 1, n, n + 1] {
                    if let Some(s) = fast(&bad[..len]) {
                        assert_eq!(Some(s), general(&bad[..len]), "case {case} {at} = {v}");
                    }
                }
            }
        }
        assert!(taken > 500, "{taken}");
    }

    /// cryptoauthlib's two real certificates: the fast path compresses them, and every
    /// single-byte change (all values on the elements compress reads, some elsewhere),
    /// truncation and extension gets the general path's answer.
    #[test]
    fn golden_certificates_under_corruption() {
        let Some((defs, golden)) = vectors() else {
            return;
        };
        for v in golden["vectors"].as_array().unwrap() {
            let key = v["cert_def_key"].as_str().unwrap();
            let buf = defs.iter().find(|d| d.name == key).unwrap();
            let def = buf.as_def().unwrap();
            let cert = hex(v["compress_request"]["cert"].as_str().unwrap());
            let want = hex(v["expected"]["comp_cert"].as_str().unwrap());
            assert_eq!(compress(&def, &cert).map(Vec::from), Some(want), "{key}");
            let read: Vec<_> = [
                StdElement::IssueDate,
                StdElement::ExpireDate,
                StdElement::SignerId,
                StdElement::Signature,
            ]
            .iter()
            .map(|&e| def.std_loc(e))
            .map(|l| l.offset as usize..cert.len().min(l.end()))
            .collect();
            for at in 0..cert.len() {
                let all = read.iter().any(|r| r.contains(&at));
                for v in 0..=255u8 {
                    if !all && v % 17 != 0 {
                        continue;
                    }
                    let mut c = cert.clone();
                    c[at] = v;
                    agrees(&def, &c);
                }
            }
            for len in 0..cert.len() + 3 {
                let mut c = cert.clone();
                c.resize(len, 0);
                assert_eq!(agrees(&def, &c), len == cert.len(), "{key} len {len}");
            }
        }
    }

    /// Issue and expire dates on every valid/invalid field boundary in both RFC 5280 formats,
    /// in every X.509 P-256 definition of the vectors (and a `StoredDynamic` one with serial
    /// numbers of other lengths, which shifts everything after them), with random signer ids
    /// and signatures.
    #[test]
    fn synthetic_certificates_agree() {
        let Some((defs, _)) = vectors() else {
            return;
        };
        let mut rng = Rng(2024);
        let mut variants = Vec::new();
        for buf in &defs {
            let Ok(def) = buf.as_def() else { continue };
            if def.cert_type != CertType::X509 {
                continue;
            }
            for (issue, expire) in [
                (def.issue_date_format, def.expire_date_format),
                (DateFormat::Rfc5280Gen, DateFormat::Rfc5280Utc),
                (DateFormat::PosixUint32Be, def.expire_date_format),
            ] {
                let mut d = def;
                let grow = |l: CertLoc, f: DateFormat| {
                    let n = date::format_size(f) as u16;
                    CertLoc::new(l.offset, if l.is_present() { n } else { 0 })
                };
                d.std_cert_elements[StdElement::IssueDate as usize] =
                    grow(d.std_loc(StdElement::IssueDate), issue);
                d.std_cert_elements[StdElement::ExpireDate as usize] =
                    grow(d.std_loc(StdElement::ExpireDate), expire);
                d.issue_date_format = issue;
                d.expire_date_format = expire;
                variants.push((buf.name.clone(), d));
            }
        }
        // A dynamic serial number: 1_signer's INTEGER length byte sits right before its value.
        let signer = defs.iter().find(|d| d.name == "1_signer").unwrap();
        let mut dynamic = signer.as_def().unwrap();
        let sn = dynamic.std_loc(StdElement::CertSn);
        assert_eq!(dynamic.template[sn.offset as usize - 1], sn.count as u8);
        dynamic.sn_source = SnSource::StoredDynamic;
        dynamic.std_cert_elements[StdElement::CertSn as usize] =
            CertLoc::new(sn.offset - 1, sn.count + 1);
        variants.push(("1_signer dynamic".into(), dynamic));

        let years = [
            1999, 2000, 2023, 2024, 2031, 2032, 2049, 2050, 2100, 2104, 2127, 2128, 9999,
        ];
        let months = [0, 1, 2, 4, 12, 13];
        let days = [0, 1, 28, 29, 30, 31, 32];
        let sid_chars = b"0123456789ABCDEFaf/:@G";
        let (mut total, mut fast) = (0, 0);
        for (name, d) in &variants {
            for _ in 0..4000 {
                let mut buf = vec![0u8; d.max_cert_size().unwrap()];
                let mut cert = crate::Cert::from_template(d, &mut buf).unwrap();
                if d.sn_source == SnSource::StoredDynamic {
                    let n = 1 + rng.next() as usize % 20;
                    let mut sn = vec![n as u8];
                    sn.extend((0..n).map(|_| rng.next() as u8));
                    cert.set_cert_sn(&sn).unwrap();
                }
                let mut sig = [0u8; 64];
                sig.iter_mut().for_each(|b| *b = rng.next() as u8);
                if rng.one_in(8) {
                    sig[0] = 0;
                }
                cert.set_signature(&sig).unwrap();
                let mut issue = [
                    rng.pick(&years),
                    rng.pick(&months),
                    rng.pick(&days),
                    rng.pick(&[0, 1, 23, 24]),
                    if rng.one_in(8) {
                        rng.pick(&[1, 59, 60])
                    } else {
                        0
                    },
                    if rng.one_in(8) {
                        rng.pick(&[1, 59, 60])
                    } else {
                        0
                    },
                ];
                if rng.one_in(2) {
                    // A compressible issue date (in UTCTime's range for that format).
                    let top = if d.issue_date_format == DateFormat::Rfc5280Utc {
                        50
                    } else {
                        128
                    };
                    let (y, m) = (2000 + rng.next() as u16 % top, 1 + rng.next() as u8 % 12);
                    let day = 1 + rng.next() as u8 % date::days_in_month(y, m);
                    issue = [
                        y.into(),
                        m.into(),
                        day.into(),
                        (rng.next() % 24) as u32,
                        0,
                        0,
                    ];
                }
                let mut expire = issue;
                match rng.next() % 8 {
                    0 => expire = [9999, 12, 31, 23, 59, 59],
                    1 => expire = [2049, 12, 31, 23, 59, 59],
                    2 => expire[rng.next() as usize % 6] += 1,
                    _ => expire[0] += rng.pick(&[0, 1, 4, 31, 32, 100, 127, 128, 256]),
                }
                let sid: Vec<u8> = (0..4)
                    .map(|_| {
                        if rng.one_in(16) {
                            rng.pick(sid_chars)
                        } else {
                            rng.pick(&sid_chars[..16])
                        }
                    })
                    .collect();
                for (e, fmt, text) in [
                    (StdElement::IssueDate, d.issue_date_format, issue),
                    (StdElement::ExpireDate, d.expire_date_format, expire),
                ] {
                    if let Some(dst) = cert.element_mut(d.std_loc(e)).unwrap() {
                        let t = date_text(fmt, text);
                        let n = dst.len().min(t.len());
                        dst[..n].copy_from_slice(&t[..n]);
                    }
                }
                cert.set_element(d.std_loc(StdElement::SignerId), &sid)
                    .unwrap();
                let len = cert.finish();
                let der = &buf[..len];
                if d.sn_source == SnSource::StoredDynamic && rng.one_in(64) {
                    // Element offsets around the serial number, as the general path shifts them.
                    let at = d.std_loc(StdElement::CertSn).offset;
                    for offset in at.saturating_sub(2)..at + 3 {
                        for count in [1, 4, 13] {
                            let loc = CertLoc::new(offset, count);
                            let view = CertView::new(d, der).element_at(loc, StdElement::SignerId);
                            assert_eq!(Elements::new(d, der).get(loc), view.ok());
                        }
                    }
                }
                total += 1;
                if agrees(d, der) {
                    fast += 1;
                }
            }
            eprintln!("{name}: fast path {fast} of {total} so far");
        }
        assert!(fast > total / 8, "{fast} of {total}");
    }

    /// Independent facts (RFC 5280 text, the reference's rebuild rules): which dates and signer
    /// ids compress and to what, and which error each corruption gives.
    #[test]
    fn date_and_signer_id_facts() {
        let Some((defs, golden)) = vectors() else {
            return;
        };
        let v = &golden["vectors"][1];
        let buf = defs.iter().find(|d| d.name == "0_device").unwrap();
        let def = buf.as_def().unwrap();
        let cert = hex(v["compress_request"]["cert"].as_str().unwrap());
        let at = |e: StdElement| def.std_loc(e).offset as usize;
        let with = |issue: &[u8], expire: &[u8], sid: &[u8]| {
            let mut c = cert.clone();
            c[at(StdElement::IssueDate)..][..13].copy_from_slice(issue);
            c[at(StdElement::ExpireDate)..][..13].copy_from_slice(expire);
            c[at(StdElement::SignerId)..][..4].copy_from_slice(sid);
            assert!(agrees(&def, &c) == crate::compress(&def, &c).is_ok());
            crate::compress(&def, &c)
        };
        let ok = |issue: &[u8], expire: &[u8]| {
            let b = with(issue, expire, b"C4D3").unwrap();
            let c = crate::CompressedCert::from_bytes(&b).unwrap();
            let d = c.issue_date;
            assert_eq!(c.signer_id, [0xC4, 0xD3]);
            (
                [d.year, d.month.into(), d.day.into(), d.hour.into()],
                c.expire_years,
            )
        };
        assert_eq!(
            ok(b"240229130000Z", b"280229130000Z"),
            ([2024, 2, 29, 13], 4)
        );
        assert_eq!(ok(b"000101000000Z", b"491231235959Z"), ([2000, 1, 1, 0], 0));
        assert_eq!(
            ok(b"311231230000Z", b"491231230000Z"),
            ([2031, 12, 31, 23], 18)
        );
        assert_eq!(ok(b"320101000000Z", b"330101000000Z"), ([2032, 1, 1, 0], 1));
        let issue_err = |t: &[u8]| with(t, b"491231235959Z", b"C4D3").unwrap_err();
        assert_eq!(issue_err(b"241301000000Z"), Error::InvalidDate);
        assert_eq!(issue_err(b"240230000000Z"), Error::InvalidDate);
        assert_eq!(issue_err(b"230229000000Z"), Error::InvalidDate);
        assert_eq!(issue_err(b"240100000000Z"), Error::InvalidDate);
        assert_eq!(issue_err(b"240101240000Z"), Error::InvalidDate);
        assert_eq!(issue_err(b"240101006000Z"), Error::InvalidDate);
        assert_eq!(issue_err(b"240101000060Z"), Error::InvalidDate);
        assert_eq!(issue_err(b"2401010000:0Z"), Error::Decoding);
        assert_eq!(issue_err(b"240101000000z"), Error::Decoding);
        assert_eq!(issue_err(b"990101000000Z"), Error::InvalidDate); // 1999
        let not = |e| Error::NotReproducible(e);
        assert_eq!(issue_err(b"240101000100Z"), not(StdElement::IssueDate));
        assert_eq!(issue_err(b"240101000001Z"), not(StdElement::IssueDate));
        let expire_err = |t: &[u8]| with(b"240229130000Z", t, b"C4D3").unwrap_err();
        assert_eq!(expire_err(b"250229130000Z"), Error::InvalidDate);
        assert_eq!(expire_err(b"250301130000Z"), not(StdElement::ExpireDate));
        assert_eq!(expire_err(b"240229130000Z"), not(StdElement::ExpireDate));
        assert_eq!(expire_err(b"230229130000Z"), Error::InvalidDate);
        assert_eq!(expire_err(b"2A0229130000Z"), Error::Decoding);
        assert_eq!(expire_err(b"491231235958Z"), not(StdElement::ExpireDate));
        let sid_err = |t: &[u8]| with(b"240229130000Z", b"280229130000Z", t).unwrap_err();
        assert_eq!(sid_err(b"c4D3"), not(StdElement::SignerId));
        assert_eq!(sid_err(b"C4DG"), Error::Decoding);
        assert_eq!(sid_err(b"C4D "), Error::Decoding);
    }
}
