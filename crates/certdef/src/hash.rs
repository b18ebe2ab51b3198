//! The one SHA-256 of the crate (blob digest, certificate hashes): a leaf below every user.

/// SHA-256 of `data`: the compact loop under the `small` feature, else the `sha2` crate.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    #[cfg(feature = "small")]
    {
        crate::sha_compact::sha256(data)
    }
    #[cfg(not(feature = "small"))]
    {
        use sha2::Digest;
        sha2::Sha256::digest(data).into()
    }
}
