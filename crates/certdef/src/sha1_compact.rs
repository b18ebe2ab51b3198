//! A compact SHA-1 (one loop over the 80 rounds) for flash-constrained builds: the `sha1`
//! crate's software backend is fully unrolled (~3 KB on riscv32imc), this is a few hundred
//! bytes. Used for key identifiers when the `small` feature is on; checked against the `sha1`
//! crate in the unit tests.

/// SHA-1 of the concatenation of `parts`.
pub fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut block = [0u8; 64];
    let mut fill = 0usize;
    let mut total: u64 = 0;
    for part in parts {
        for &b in *part {
            block[fill] = b;
            fill += 1;
            if fill == 64 {
                compress(&mut h, &block);
                fill = 0;
            }
        }
        total += part.len() as u64;
    }
    // Padding: 0x80, zeros, 64-bit big-endian bit length.
    block[fill] = 0x80;
    block[fill + 1..].fill(0);
    if fill >= 56 {
        compress(&mut h, &block);
        block = [0u8; 64];
    }
    block[56..].copy_from_slice(&(total * 8).to_be_bytes());
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
        let data: std::vec::Vec<u8> = (0..300u32).map(|i| (i * 131 + 7) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 299] {
            for split in [0, len / 2, len] {
                let (a, b) = data[..len].split_at(split);
                let want: [u8; 20] = Sha1::digest(&data[..len]).into();
                assert_eq!(super::sha1(&[a, b]), want, "len {len} split {split}");
            }
        }
    }
}
