//! The device certificate's subject common name, found by a minimal DER walk: the product path
//! prints it, and the device carries no X.509 library.
//!
//! Plain `core`, no esp-hal: the same file is compiled into the qemu check (docs/firmware.md).

/// DER encoding of the attribute type id-at-commonName (2.5.4.3).
const OID_COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0] EXPLICIT Version` of a v3 certificate.
const VERSION_TAG: u8 = 0xA0;

/// Splits one DER TLV off `input`: `(tag, contents, rest)`. Definite lengths up to 4 bytes.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = input.split_at_checked(n)?;
        input = rest;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let (contents, rest) = input.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// Takes one TLV with tag `want` off `input`: `(contents, rest)`.
fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, contents, rest) = tlv(input)?;
    (tag == want).then_some((contents, rest))
}

/// The value bytes of the first commonName in the certificate's subject, `None` if the
/// certificate does not parse that far or has no commonName.
pub fn subject_common_name(cert_der: &[u8]) -> Option<&[u8]> {
    let (cert, _) = expect(cert_der, SEQUENCE)?;
    let (mut tbs, _) = expect(cert, SEQUENCE)?;
    if tbs.first() == Some(&VERSION_TAG) {
        tbs = tlv(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity; then subject.
    for _ in 0..4 {
        tbs = tlv(tbs)?.2;
    }
    let (mut rdns, _) = expect(tbs, SEQUENCE)?;
    while !rdns.is_empty() {
        let (mut set, rest) = expect(rdns, SET)?;
        rdns = rest;
        while !set.is_empty() {
            let (attr, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(attr, OID)?;
            if oid == OID_COMMON_NAME {
                return tlv(value).map(|(_, v, _)| v);
            }
        }
    }
    None
}
