//! Dates: the five element formats and the compressed-certificate date bits.
//!
//! Unlike cryptoauthlib every encoder and decoder range-checks with real month lengths
//! (docs/certdef-format.md §"Deviations"): no Feb 31, no month 13, the last day of each month
//! and 2106-02-07 06:28:15 encode in the POSIX formats.

use crate::{DateFormat, Error};

/// A calendar date and time (UTC). `month` is 1–12 (not `tm_mon`'s 0–11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DateTime {
    /// Full year (0–9999).
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
    /// Day of month 1–31.
    pub day: u8,
    /// Hour 0–23.
    pub hour: u8,
    /// Minute 0–59.
    pub minute: u8,
    /// Second 0–59.
    pub second: u8,
}

/// Largest encoded date size over all formats (`DATEFMT_MAX_SIZE`).
pub const DATE_MAX_SIZE: usize = 20;

/// Encoded size of `fmt`.
pub const fn format_size(fmt: DateFormat) -> usize {
    match fmt {
        DateFormat::Iso8601Sep => 20,
        DateFormat::Rfc5280Utc => 13,
        DateFormat::PosixUint32Be | DateFormat::PosixUint32Le => 4,
        DateFormat::Rfc5280Gen => 15,
    }
}

const fn is_leap(year: u32) -> bool {
    // Gregorian rule with one division: for multiples of 4, "not a multiple of 100" is "not a
    // multiple of 25", and "multiple of 400" is "multiple of 16 and of 25".
    year & 3 == 0 && (!year.is_multiple_of(25) || year & 15 == 0)
}

/// Days in `month` (1–12) of `year`; 0 for an invalid month.
pub const fn days_in_month(year: u16, month: u8) -> u8 {
    const DAYS: [u8; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if month == 0 || month > 12 {
        return 0;
    }
    DAYS[month as usize - 1] + (month == 2 && is_leap(year as u32)) as u8
}

impl DateTime {
    /// Builds a date without checking it (see [`DateTime::check`]).
    pub const fn new(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Self {
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    /// True when every field is in range with the real month length.
    pub const fn is_valid(&self) -> bool {
        self.year <= 9999
            && self.month >= 1
            && self.month <= 12
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour <= 23
            && self.minute <= 59
            && self.second <= 59
    }

    /// `Ok(self)` when valid, else [`Error::InvalidDate`].
    pub const fn check(self) -> Result<Self, Error> {
        if self.is_valid() {
            Ok(self)
        } else {
            Err(Error::InvalidDate)
        }
    }

    /// The same instant `years` later (day 29 Feb → 29 Feb only in leap years: an expire date on
    /// a non-existent day is an [`Error::InvalidDate`]).
    pub fn add_years(self, years: u16) -> Result<Self, Error> {
        let year = self.year.checked_add(years).ok_or(Error::InvalidDate)?;
        let d = DateTime { year, ..self };
        // Only the year changed: a valid date stays valid unless it is Feb 29 or past 9999.
        if self.is_valid()
            && year <= 9999
            && !(self.month == 2 && self.day == 29 && !is_leap(year as u32))
        {
            Ok(d)
        } else {
            Err(Error::InvalidDate)
        }
    }

    /// Seconds since 1970-01-01 00:00:00 as a `u32` (1970-01-01 … 2106-02-07 06:28:15).
    pub fn to_posix(&self) -> Result<u32, Error> {
        self.check()?;
        self.posix_of_valid()
    }

    /// [`DateTime::to_posix`] of a date already checked valid.
    #[inline] // two callers: to_posix and encode (measured: smaller than always)
    fn posix_of_valid(&self) -> Result<u32, Error> {
        if self.year < 1970 || self.year > 2106 {
            return Err(Error::InvalidDate);
        }
        // Days before each month in a common year.
        const BEFORE: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let y = self.year as u32;
        // Leap days in 1970..y: every fourth year from 1972, except 2100 (2000 is one).
        let leaps_before = (y - 1969) / 4 - (y > 2100) as u32;
        let mut days = (y - 1970) * 365 + leaps_before;
        days += BEFORE[(self.month as usize - 1) % 12] as u32 + self.day as u32 - 1;
        if self.month > 2 && is_leap(y) {
            days += 1;
        }
        let secs = self.hour as u32 * 3600 + self.minute as u32 * 60 + self.second as u32;
        days.checked_mul(86_400)
            .and_then(|d| d.checked_add(secs))
            .ok_or(Error::InvalidDate)
    }

    /// The date `secs` seconds after 1970-01-01 00:00:00.
    pub fn from_posix(secs: u32) -> Self {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + if month <= 2 { 1 } else { 0 }) as u16;
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// The "no expiration" date of `fmt` (`atcacert_date_get_max_date`).
    pub const fn max_for(fmt: DateFormat) -> Self {
        const GEN: DateTime = DateTime::new(9999, 12, 31, 23, 59, 59);
        const UTC: DateTime = DateTime::new(2049, 12, 31, 23, 59, 59);
        const POSIX: DateTime = DateTime::new(2106, 2, 7, 6, 28, 15);
        // Indexed by `DateFormat` value: one table load instead of a table per field.
        const MAX: [DateTime; 5] = [GEN, UTC, POSIX, POSIX, GEN];
        MAX[fmt as usize]
    }
}

/// Two ASCII digits → value; sets `bad` when either is not a digit.
#[inline(always)]
pub(crate) fn d2(p: [u8; 2], bad: &mut bool) -> u8 {
    let (a, b) = (p[0].wrapping_sub(b'0'), p[1].wrapping_sub(b'0'));
    *bad |= (a > 9) | (b > 9);
    a.wrapping_mul(10).wrapping_add(b)
}

/// ISO 8601 layout: a byte below 14 is the index of a digit in `CCYYMMDDhhmmss`, anything
/// else is written as is.
const ISO_LAYOUT: [u8; 20] = [
    0, 1, 2, 3, b'-', 4, 5, b'-', 6, 7, b'T', 8, 9, b':', 10, 11, b':', 12, 13, b'Z',
];
/// UTCTime `YYMMDDhhmmssZ` (no century) in the same notation.
const UTC_LAYOUT: [u8; 13] = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, b'Z'];
/// GeneralizedTime `YYYYMMDDhhmmssZ` in the same notation.
const GEN_LAYOUT: [u8; 15] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, b'Z'];

/// Encodes `date` in `fmt` into `out`, returning the size written.
#[inline(always)] // one device caller (set_date): measured smaller
pub fn encode(fmt: DateFormat, date: &DateTime, out: &mut [u8]) -> Result<usize, Error> {
    let size = format_size(fmt);
    let out = out.get_mut(..size).ok_or(Error::too_small(size))?;
    date.check()?;
    let layout: &[u8] = match fmt {
        DateFormat::Iso8601Sep => &ISO_LAYOUT,
        DateFormat::Rfc5280Gen => &GEN_LAYOUT,
        DateFormat::Rfc5280Utc => {
            if !(1950..=2049).contains(&date.year) {
                return Err(Error::InvalidDate);
            }
            &UTC_LAYOUT
        }
        DateFormat::PosixUint32Be | DateFormat::PosixUint32Le => {
            let t = date.posix_of_valid()?;
            let b = if fmt == DateFormat::PosixUint32Be {
                t.to_be_bytes()
            } else {
                t.to_le_bytes()
            };
            for (o, v) in out.iter_mut().zip(b) {
                *o = v;
            }
            return Ok(size);
        }
    };
    let values = [
        (date.year / 100) as u8,
        (date.year % 100) as u8,
        date.month,
        date.day,
        date.hour,
        date.minute,
        date.second,
    ];
    // `CCYYMMDDhhmmss`, then placed by the format's layout.
    let mut digits = [0u8; 14];
    for (d, &v) in digits.chunks_exact_mut(2).zip(&values) {
        d[0] = b'0' + v / 10;
        d[1] = b'0' + v % 10;
    }
    for (o, &p) in out.iter_mut().zip(layout) {
        *o = digits.get(p as usize).copied().unwrap_or(p);
    }
    Ok(size)
}

/// Eight ASCII digits at `t[at..at + 8]` → four two-digit values, all at once in a `u64`
/// (the RFC 5280 formats are pure digit runs); sets `bad` when any byte is not a digit.
#[inline(always)]
pub(crate) fn digits8<const N: usize>(t: &[u8; N], at: usize, bad: &mut bool) -> [u8; 4] {
    let mut b = [0u8; 8];
    if let Some(s) = t.get(at..at + 8) {
        b.copy_from_slice(s);
    } else {
        *bad = true;
    }
    let d = u64::from_le_bytes(b).wrapping_sub(0x3030_3030_3030_3030);
    // A byte below '0' leaves a high nibble (and its borrow only touches bytes already bad); a
    // byte above '9' gets one once 6 is added.
    *bad |= (d | d.wrapping_add(0x0606_0606_0606_0606)) & 0xF0F0_F0F0_F0F0_F0F0 != 0;
    // First digit (lower byte) × 10 + second digit, in bytes 0, 2, 4, 6.
    let p = (d.wrapping_mul(10).wrapping_add(d >> 8)) & 0x00FF_00FF_00FF_00FF;
    [p as u8, (p >> 16) as u8, (p >> 32) as u8, (p >> 48) as u8]
}

/// Decodes a date in `fmt` from the first bytes of `data` (range-checked).
pub fn decode(fmt: DateFormat, data: &[u8]) -> Result<DateTime, Error> {
    let mut bad = false;
    let (year, [month, day, hour, minute, second]) = match fmt {
        DateFormat::Rfc5280Utc => {
            let t: &[u8; 13] = data
                .get(..13)
                .and_then(|s| s.try_into().ok())
                .ok_or(Error::Decoding)?;
            let [yy, month, day, _] = digits8(t, 0, &mut bad);
            let [_, hour, minute, second] = digits8(t, 4, &mut bad);
            bad |= t[12] != b'Z';
            let yy = yy as u16;
            (
                if yy < 50 { 2000 + yy } else { 1900 + yy },
                [month, day, hour, minute, second],
            )
        }
        DateFormat::Rfc5280Gen => {
            let t: &[u8; 15] = data
                .get(..15)
                .and_then(|s| s.try_into().ok())
                .ok_or(Error::Decoding)?;
            let [cc, yy, month, day] = digits8(t, 0, &mut bad);
            let [_, hour, minute, second] = digits8(t, 6, &mut bad);
            bad |= t[14] != b'Z';
            (
                cc as u16 * 100 + yy as u16,
                [month, day, hour, minute, second],
            )
        }
        DateFormat::Iso8601Sep => {
            let t: &[u8; 20] = data
                .get(..20)
                .and_then(|s| s.try_into().ok())
                .ok_or(Error::Decoding)?;
            bad |= t[4] != b'-' || t[7] != b'-' || t[10] != b'T' || t[13] != b':';
            bad |= t[16] != b':' || t[19] != b'Z';
            let year = d2([t[0], t[1]], &mut bad) as u16 * 100 + d2([t[2], t[3]], &mut bad) as u16;
            let f = [
                d2([t[5], t[6]], &mut bad),
                d2([t[8], t[9]], &mut bad),
                d2([t[11], t[12]], &mut bad),
                d2([t[14], t[15]], &mut bad),
                d2([t[17], t[18]], &mut bad),
            ];
            (year, f)
        }
        DateFormat::PosixUint32Be | DateFormat::PosixUint32Le => {
            let b: [u8; 4] = data
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(Error::Decoding)?;
            let secs = if fmt == DateFormat::PosixUint32Be {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            };
            return Ok(DateTime::from_posix(secs));
        }
    };
    if bad {
        return Err(Error::Decoding);
    }
    DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
    }
    .check()
}

/// Highest issue year and expire-years value of each compressed format version.
pub(crate) const fn comp_limits(version: u8) -> (u16, u8) {
    if version == 0 {
        (2031, 31)
    } else {
        (2127, 127)
    }
}

/// The compressed-certificate format version needed for these dates (cryptoauthlib's rule:
/// 1 when the issue year is after 2031 or expire years exceed 31, else 0).
pub const fn comp_version_for(issue_year: u16, expire_years: u8) -> u8 {
    if issue_year > 2031 || expire_years > 31 {
        1
    } else {
        0
    }
}

/// Encodes issue date + expire years into compressed-cert bytes 64–66 and the extension bits of
/// byte 71 (its low nibble is preserved), for format `version` (0 or 1).
pub fn encode_comp_dates(
    version: u8,
    issue: &DateTime,
    expire_years: u8,
    comp: &mut [u8; 72],
) -> Result<(), Error> {
    if version > 1 {
        return Err(Error::UnsupportedFormatVersion(version));
    }
    let (max_year, max_expire) = comp_limits(version);
    if issue.year < 2000 || issue.year > max_year || expire_years > max_expire {
        return Err(Error::InvalidDate);
    }
    if issue.month < 1
        || issue.month > 12
        || issue.day < 1
        || issue.day > days_in_month(issue.year, issue.month)
        || issue.hour > 23
    {
        return Err(Error::InvalidDate);
    }
    let y = (issue.year - 2000) as u8;
    let m = issue.month;
    comp[64] = ((y & 0x1F) << 3) | (m >> 1);
    comp[65] = ((m & 1) << 7) | ((issue.day & 0x1F) << 2) | ((issue.hour & 0x1F) >> 3);
    comp[66] = ((issue.hour & 7) << 5) | (expire_years & 0x1F);
    comp[71] = (comp[71] & 0x0F) | ((y & 0x60) << 1) | ((expire_years & 0x60) >> 1);
    Ok(())
}

/// Decodes issue date (minutes and seconds 0) and expire years from a compressed cert of format
/// `version` (0 or 1), range-checking every field.
pub fn decode_comp_dates(version: u8, comp: &[u8; 72]) -> Result<(DateTime, u8), Error> {
    let (y, expire_years) = match version {
        0 => (comp[64] >> 3, comp[66] & 0x1F),
        1 => (
            ((comp[71] & 0xC0) >> 1) | (comp[64] >> 3),
            (comp[66] & 0x1F) | ((comp[71] & 0x30) << 1),
        ),
        v => return Err(Error::UnsupportedFormatVersion(v)),
    };
    let issue = DateTime {
        year: 2000 + y as u16,
        month: ((comp[64] & 7) << 1) | (comp[65] >> 7),
        day: (comp[65] >> 2) & 0x1F,
        hour: ((comp[65] & 3) << 3) | (comp[66] >> 5),
        minute: 0,
        second: 0,
    };
    Ok((issue.check()?, expire_years))
}

/// The expire date for `issue` + `expire_years` in `fmt` (0 years = the format's max date).
pub fn expire_date(issue: &DateTime, expire_years: u8, fmt: DateFormat) -> Result<DateTime, Error> {
    if expire_years == 0 {
        Ok(DateTime::max_for(fmt))
    } else {
        issue.add_years(expire_years as u16)
    }
}

/// [`expire_date`] for an issue date decoded from a compressed certificate (valid, year ≤ 2127,
/// so + 127 years stays a valid year): only 29 February can fail.
#[inline(always)] // one caller (Cert::set_comp_cert_bytes)
pub(crate) fn comp_expire_date(
    issue: &DateTime,
    expire_years: u8,
    fmt: DateFormat,
) -> Result<DateTime, Error> {
    if expire_years == 0 {
        return Ok(DateTime::max_for(fmt));
    }
    let year = issue.year + expire_years as u16;
    if issue.month == 2 && issue.day == 29 && !is_leap(year as u32) {
        return Err(Error::InvalidDate);
    }
    Ok(DateTime { year, ..*issue })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_days_match_the_calendar() {
        // Anchors from Python's calendar.timegm, around both centuries in range.
        for (date, secs) in [
            (DateTime::new(2000, 1, 1, 0, 0, 0), 946_684_800),
            (DateTime::new(2100, 2, 28, 0, 0, 0), 4_107_456_000),
            (DateTime::new(2100, 3, 1, 0, 0, 0), 4_107_542_400),
            (DateTime::new(2106, 2, 7, 0, 0, 0), 4_294_944_000),
        ] {
            assert_eq!(date.to_posix(), Ok(secs), "{date:?}");
        }
        // Every day of the range: to_posix inverts the independent civil-from-days conversion.
        for day in 0..=(u32::MAX / 86_400) {
            let secs = day * 86_400;
            assert_eq!(DateTime::from_posix(secs).to_posix(), Ok(secs), "day {day}");
        }
    }

    #[test]
    fn is_leap_is_the_gregorian_rule() {
        for y in 0..=10_000u32 {
            let textbook = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            assert_eq!(is_leap(y), textbook, "{y}");
        }
    }

    #[test]
    fn comp_expire_date_agrees_with_add_years() {
        // Every issue date a compressed cert can hold (hours and days sampled), every expire
        // years value, every format: the device-path shortcut must equal the general rule.
        for year in 2000..=2127u16 {
            for month in 1..=12u8 {
                for day in [1, 28, 29, days_in_month(year, month)] {
                    let issue = DateTime::new(year, month, day, 23, 0, 0);
                    if !issue.is_valid() {
                        continue;
                    }
                    for years in 0..=127u8 {
                        for &fmt in DateFormat::ALL {
                            assert_eq!(
                                comp_expire_date(&issue, years, fmt),
                                expire_date(&issue, years, fmt),
                                "{issue:?} + {years}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Byte-by-byte reference for the two RFC 5280 formats: every non-`Z` byte a digit.
    fn reference(fmt: DateFormat, t: &[u8]) -> Result<DateTime, Error> {
        let (n, century) = match fmt {
            DateFormat::Rfc5280Utc => (13, false),
            _ => (15, true),
        };
        let t = t.get(..n).ok_or(Error::Decoding)?;
        if t[n - 1] != b'Z' || !t[..n - 1].iter().all(u8::is_ascii_digit) {
            return Err(Error::Decoding);
        }
        let v: Vec<u8> = t[..n - 1]
            .chunks(2)
            .map(|p| (p[0] - b'0') * 10 + p[1] - b'0')
            .collect();
        let (year, rest) = if century {
            (v[0] as u16 * 100 + v[1] as u16, &v[2..])
        } else {
            let yy = v[0] as u16;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &v[1..])
        };
        DateTime::new(year, rest[0], rest[1], rest[2], rest[3], rest[4]).check()
    }

    #[test]
    fn rfc5280_decoding_matches_a_bytewise_reference_under_corruption() {
        for (fmt, text) in [
            (DateFormat::Rfc5280Utc, &b"491231235959Z"[..]),
            (DateFormat::Rfc5280Utc, &b"000229000000Z"[..]),
            (DateFormat::Rfc5280Gen, &b"99991231235959Z"[..]),
            (DateFormat::Rfc5280Gen, &b"20240229120000Z"[..]),
        ] {
            assert_eq!(decode(fmt, text), reference(fmt, text));
            assert!(decode(fmt, text).is_ok());
            for at in 0..text.len() {
                for v in 0..=255u8 {
                    let mut t = text.to_vec();
                    t[at] = v;
                    assert_eq!(
                        decode(fmt, &t),
                        reference(fmt, &t),
                        "{fmt:?} byte {at} = {v}"
                    );
                }
            }
        }
    }
}
