//! A compact SHA-1 (one loop over the 80 rounds) for flash-constrained builds: the `sha1`
//! crate's software backend is fully unrolled (~3 KB on riscv32imc), this is a few hundred
//! bytes. Used for key identifiers when the `small` feature is on; checked against the `sha1`
//! crate in the unit tests.

/// SHA-1(0x04 ‖ X ‖ Y): the key identifier of a P-256 public key. The 65-byte message and
/// its padding fill exactly two blocks, built directly.
pub fn key_id(public_key: &[u8; 64]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut block = [0u8; 64];
    block[0] = 0x04;
    block[1..].copy_from_slice(&public_key[..63]);
    compress(&mut h, &block);
    block = [0u8; 64];
    block[0] = public_key[63];
    block[1] = 0x80;
    block[62] = ((65 * 8) >> 8) as u8;
    block[63] = (65 * 8) as u8;
    compress(&mut h, &block);
    let mut out = [0u8; 20];
    for (o, w) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

fn compress(h: &mut [u32; 5], block: &[u8; 64]) {
    let mut w = [0u32; 16];
    for (wi, c) in w.iter_mut().zip(block.chunks_exact(4)) {
        *wi = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *h;
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

#[cfg(test)]
mod tests {
    use sha1::{Digest, Sha1};

    #[test]
    fn matches_the_sha1_crate() {
        for seed in 0..64u32 {
            let pk: [u8; 64] = core::array::from_fn(|i| (i as u32 * 131 + seed * 7919) as u8);
            let mut h = Sha1::new();
            h.update([0x04]);
            h.update(pk);
            let want: [u8; 20] = h.finalize().into();
            assert_eq!(super::key_id(&pk), want, "seed {seed}");
        }
    }
}
