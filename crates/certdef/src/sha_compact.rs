//! Compact one-shot SHA-1 and SHA-256 (one loop over the rounds each) for flash-constrained
//! builds: the `sha1` / `sha2` crates' software backends are unrolled and carry streaming
//! buffers (several KB on riscv32imc); these are a few hundred bytes each. Used when the `small`
//! feature is on; checked against the `sha1` / `sha2` crates in the unit tests.

/// Feeds `data` followed by the MD-style padding (0x80, zeros, 64-bit big-endian bit length) to
/// `compress` one 64-byte block at a time, then writes the first `out.len()` bytes of the
/// big-endian state — shared by both hashes (one copy in flash, hence the fn pointer).
fn md_hash(data: &[u8], h: &mut [u32; 8], compress: fn(&mut [u32; 8], &[u8; 64]), out: &mut [u8]) {
    let mut chunks = data.chunks_exact(64);
    for c in &mut chunks {
        if let Ok(b) = <&[u8; 64]>::try_from(c) {
            compress(h, b);
        }
    }
    let rem = chunks.remainder();
    let mut block = [0u8; 64];
    let n = rem.len() & 63;
    block[..n].copy_from_slice(&rem[..n]);
    block[n] = 0x80;
    if n >= 56 {
        compress(h, &block);
        block = [0u8; 64];
    }
    block[56..].copy_from_slice(&((data.len() as u64) << 3).to_be_bytes());
    compress(h, &block);
    for (o, w) in out.chunks_exact_mut(4).zip(h.iter()) {
        o.copy_from_slice(&w.to_be_bytes());
    }
}

fn load_be(block: &[u8; 64]) -> [u32; 16] {
    let mut w = [0u32; 16];
    for (wi, c) in w.iter_mut().zip(block.chunks_exact(4)) {
        *wi = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

/// SHA-1(0x04 ‖ X ‖ Y): the key identifier of a P-256 public key.
pub fn key_id(public_key: &[u8; 64]) -> [u8; 20] {
    let mut msg = [0u8; 65];
    msg[0] = 0x04;
    msg[1..].copy_from_slice(public_key);
    let mut h: [u32; 8] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
        0,
        0,
        0,
    ];
    let mut out = [0u8; 20];
    md_hash(&msg, &mut h, sha1_compress, &mut out);
    out
}

fn sha1_compress(h: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = load_be(block);
    let [mut a, mut b, mut c, mut d, mut e, ..] = *h;
    for i in 0..80 {
        if i >= 16 {
            let x = w[(i + 13) & 15] ^ w[(i + 8) & 15] ^ w[(i + 2) & 15] ^ w[i & 15];
            w[i & 15] = x.rotate_left(1);
        }
        let (f, k) = match i / 20 {
            0 => ((b & c) | (!b & d), 0x5A82_7999),
            1 => (b ^ c ^ d, 0x6ED9_EBA1),
            2 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let t = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(w[i & 15]);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
        *hv = hv.wrapping_add(v);
    }
}

const K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut out = [0u8; 32];
    md_hash(data, &mut h, sha256_compress, &mut out);
    out
}

fn sha256_compress(h: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = load_be(block);
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = *h;
    for (i, k) in K256.iter().enumerate() {
        if i >= 16 {
            let w15 = w[(i + 1) & 15];
            let w2 = w[(i + 14) & 15];
            let s0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
            let s1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
            w[i & 15] = w[i & 15]
                .wrapping_add(s0)
                .wrapping_add(w[(i + 9) & 15])
                .wrapping_add(s1);
        }
        let t1 = hh
            .wrapping_add(e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25))
            .wrapping_add((e & f) ^ (!e & g))
            .wrapping_add(*k)
            .wrapping_add(w[i & 15]);
        let t2 = (a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22))
            .wrapping_add((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (hv, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
        *hv = hv.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use sha1::Sha1;
    use sha2::{Digest, Sha256};

    #[test]
    fn key_id_matches_the_sha1_crate() {
        for seed in 0..64u32 {
            let pk: [u8; 64] = core::array::from_fn(|i| (i as u32 * 131 + seed * 7919) as u8);
            let mut h = Sha1::new();
            h.update([0x04]);
            h.update(pk);
            let want: [u8; 20] = h.finalize().into();
            assert_eq!(super::key_id(&pk), want, "seed {seed}");
        }
    }

    #[test]
    fn sha256_matches_the_sha2_crate_at_every_padding_boundary() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        for n in 0..data.len() {
            let want: [u8; 32] = Sha256::digest(&data[..n]).into();
            assert_eq!(super::sha256(&data[..n]), want, "length {n}");
        }
    }

    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 appendix B.1.
        assert_eq!(
            super::sha256(b"abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad
            ]
        );
    }
}
