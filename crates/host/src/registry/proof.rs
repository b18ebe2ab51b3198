//! Identity proofs: the evidence that a device held its key when the host issued (or re-sent)
//! a certificate for it.
//!
//! The engine challenges the device with the key just generated (or read back on a rerun)
//! before any certificate is built, signed or recorded: the device signs
//! SHA-256("keystamp-identity-v1" ‖ host nonce ‖ device nonce) and the host verifies it. The
//! verified proof is recorded here first, in its own transaction, and only then the certificate
//! (write-ahead) for exactly that key; a certificate's proofs are the rows with its chip serial
//! and public key ([`Registry::proofs_for`]). A crash between the two leaves a proof without a
//! certificate, which is harmless: it states a fact, and the next run proves again.
//!
//! What a proof binds: possession of the private key of `public_key` by whatever answered on
//! the link, fresh for this host nonce. What it cannot bind: the chip serial (the device reports
//! it; the signed message does not contain it). A software key behind a fake agent can still
//! claim an unused serial and prove its own key; lots (only serials in an open lot are issued
//! to) and a genuine-chip check cover that, the proof does not.

use super::backend::{DbError, Transaction, params};
use serde::Serialize;

use super::{ChipSerial, Registry, RegistryError, now_rfc3339};

/// The schema step that adds identity proofs (a separate named step so it can be renumbered
/// when other steps land first).
pub(super) const SCHEMA_IDENTITY_PROOFS: &str = "
CREATE TABLE identity_proofs (
    id           INTEGER PRIMARY KEY,
    chip_serial  TEXT NOT NULL,
    public_key   TEXT NOT NULL,            -- X‖Y hex, the proven key
    host_nonce   TEXT NOT NULL,
    device_nonce TEXT NOT NULL,
    signature    TEXT NOT NULL,            -- R‖S hex
    proven_at    TEXT NOT NULL
);
CREATE INDEX identity_proofs_chip_key ON identity_proofs (chip_serial, public_key);
";

/// Applies the identity-proof schema step inside a migration transaction.
pub(super) fn migrate(tx: &Transaction<'_>) -> Result<(), RegistryError> {
    tx.execute_schema(SCHEMA_IDENTITY_PROOFS)?;
    Ok(())
}

/// A verified identity proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdentityProof {
    /// The chip serial the device reported.
    pub chip_serial: ChipSerial,
    /// The proven public key X‖Y.
    #[serde(with = "hex_bytes")]
    pub public_key: [u8; 64],
    /// The host's random nonce.
    #[serde(with = "hex_bytes")]
    pub host_nonce: [u8; 32],
    /// The device's nonce.
    #[serde(with = "hex_bytes")]
    pub device_nonce: [u8; 32],
    /// The device's signature R‖S.
    #[serde(with = "hex_bytes")]
    pub signature: [u8; 64],
}

/// A recorded proof and when it was verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProofRecord {
    /// The proof.
    #[serde(flatten)]
    pub proof: IdentityProof,
    /// When the host verified it (RFC 3339, UTC).
    pub proven_at: String,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer, const N: usize>(
        b: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(b))
    }
}

fn fixed<const N: usize>(hex_text: &str, column: usize) -> Result<[u8; N], DbError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(hex_text, &mut out).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(out)
}

impl Registry {
    /// Records a verified identity proof (before the certificate for its key is issued).
    pub fn record_proof(&self, proof: &IdentityProof) -> Result<(), RegistryError> {
        self.conn.execute(
            "INSERT INTO identity_proofs (chip_serial, public_key, host_nonce, device_nonce,
             signature, proven_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                proof.chip_serial.to_string(),
                hex::encode_upper(proof.public_key),
                hex::encode_upper(proof.host_nonce),
                hex::encode_upper(proof.device_nonce),
                hex::encode_upper(proof.signature),
                now_rfc3339(),
            ],
        )?;
        Ok(())
    }

    /// The recorded proofs for `chip`'s key `public_key`, oldest first.
    pub fn proofs_for(
        &self,
        chip: ChipSerial,
        public_key: &[u8; 64],
    ) -> Result<Vec<ProofRecord>, RegistryError> {
        let mut st = self.conn.prepare(
            "SELECT public_key, host_nonce, device_nonce, signature, proven_at
             FROM identity_proofs WHERE chip_serial = ?1 AND public_key = ?2 ORDER BY id",
        )?;
        let rows = st.query_map(
            params![chip.to_string(), hex::encode_upper(public_key)],
            |row| {
                Ok(ProofRecord {
                    proof: IdentityProof {
                        chip_serial: chip,
                        public_key: fixed(&row.get::<_, String>(0)?, 0)?,
                        host_nonce: fixed(&row.get::<_, String>(1)?, 1)?,
                        device_nonce: fixed(&row.get::<_, String>(2)?, 2)?,
                        signature: fixed(&row.get::<_, String>(3)?, 3)?,
                    },
                    proven_at: row.get(4)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many proofs are recorded for `chip` (any key).
    pub fn proof_count(&self, chip: ChipSerial) -> Result<u64, RegistryError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM identity_proofs WHERE chip_serial = ?1",
            [chip.to_string()],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_recorded_and_found_by_chip_and_key_only() {
        for (reg, _server) in crate::registry::testing::registries(
            "a_proof_is_recorded_and_found_by_chip_and_key_only",
        ) {
            let chip = ChipSerial([0x01, 0x23, 1, 2, 3, 4, 5, 6, 0xEE]);
            let proof = IdentityProof {
                chip_serial: chip,
                public_key: [7; 64],
                host_nonce: [1; 32],
                device_nonce: [2; 32],
                signature: [3; 64],
            };
            reg.record_proof(&proof).expect("recorded");
            let found = reg.proofs_for(chip, &[7; 64]).expect("query");
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].proof, proof);
            assert!(reg.proofs_for(chip, &[8; 64]).expect("query").is_empty());
            assert_eq!(reg.proof_count(chip).expect("count"), 1);
        }
    }
}
