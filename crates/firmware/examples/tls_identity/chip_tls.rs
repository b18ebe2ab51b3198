//! TLS 1.3 (embedded-tls) and MQTT with the chip-held identity, independent of the board: the
//! client certificate is the one the agent rebuilt and verified, the CertificateVerify signature
//! is made by the chip through `keystamp_agent::identity::sign_handshake_digest`, and random
//! numbers come from the chip's RNG. `no_std`, no allocation, no panics.
//!
//! Used by the ESP32 example (`main.rs`) and, unchanged, by the host test
//! `crates/host/tests/firmware_tls.rs`, which runs it over TCP against a rustls server and
//! Mosquitto with the agent on the emulated chip.

use embedded_io::{Read, Write};
use embedded_storage::Storage;
use embedded_tls::SignatureScheme;
use embedded_tls::blocking::{
    Aes128GcmSha256, Certificate, CryptoProvider, NoClock, TlsConfig, TlsConnection, TlsContext,
    TlsError, TlsVerifier,
};
use embedded_tls::pki::CertVerifier;
use keystamp_agent::{Agent, Chip};

/// Largest broker certificate the verifier keeps.
pub const SERVER_CERT_MAX: usize = 2048;

/// An ECDSA signature in DER (SEQUENCE of two INTEGERs), as TLS carries it.
pub struct DerSignature {
    bytes: [u8; 72],
    len: usize,
}

impl AsRef<[u8]> for DerSignature {
    fn as_ref(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl DerSignature {
    /// DER of the chip's `r ‖ s` (each a 32-byte big-endian unsigned integer).
    pub fn from_rs(rs: &[u8; 64]) -> Self {
        let mut out = DerSignature {
            bytes: [0; 72],
            len: 2,
        };
        for half in rs.chunks(32) {
            // Minimal INTEGER: no leading zero bytes, one 0x00 when the top bit is set.
            let start = half.iter().position(|&b| b != 0).unwrap_or(half.len() - 1);
            let digits = half.get(start..).unwrap_or_default();
            let pad = usize::from(digits.first().is_some_and(|&b| b & 0x80 != 0));
            let n = digits.len() + pad;
            out.push(&[0x02, n as u8]);
            if pad == 1 {
                out.push(&[0x00]);
            }
            out.push(digits);
        }
        out.bytes[0] = 0x30;
        out.bytes[1] = (out.len - 2) as u8;
        out
    }

    fn push(&mut self, b: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(self.len..self.len + b.len()) {
            dst.copy_from_slice(b);
            self.len += b.len();
        }
    }
}

/// embedded-tls's crypto provider backed by the secure element through the agent.
pub struct ChipProvider<'a, C, S, const B: usize, R> {
    agent: &'a mut Agent<C, S, B>,
    device_cert: &'a [u8],
    verifier: CertVerifier<'a, Aes128GcmSha256, NoClock, SERVER_CERT_MAX>,
    other_rng: R,
    chip_rng_failed: bool,
    signatures: u32,
}

impl<C: Chip, S: Storage, const B: usize, R: rand_core::RngCore> CryptoProvider
    for ChipProvider<'_, C, S, B, R>
{
    type CipherSuite = Aes128GcmSha256;
    type Signature = DerSignature;

    fn rng(&mut self) -> impl embedded_tls::CryptoRngCore {
        ChipRng {
            agent: &mut *self.agent,
            other: &mut self.other_rng,
            pool: [0; 32],
            used: 32,
            failed: &mut self.chip_rng_failed,
        }
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Self::CipherSuite>, TlsError> {
        Ok(&mut self.verifier)
    }

    fn signer(
        &mut self,
    ) -> Result<(impl signature::SignerMut<Self::Signature>, SignatureScheme), TlsError> {
        Ok((
            ChipSigner {
                agent: &mut *self.agent,
                signatures: &mut self.signatures,
            },
            SignatureScheme::EcdsaSecp256r1Sha256,
        ))
    }

    fn client_cert(&mut self) -> Option<Certificate<impl AsRef<[u8]>>> {
        Some(Certificate::X509(self.device_cert))
    }
}

/// Signs CertificateVerify with the chip: the SHA-256 of what TLS 1.3 signs goes to the agent's
/// identity API, which refuses on a device without trusted definitions.
struct ChipSigner<'a, C, S, const B: usize> {
    agent: &'a mut Agent<C, S, B>,
    signatures: &'a mut u32,
}

impl<C: Chip, S: Storage, const B: usize> signature::SignerMut<DerSignature>
    for ChipSigner<'_, C, S, B>
{
    fn try_sign(&mut self, msg: &[u8]) -> Result<DerSignature, signature::Error> {
        let digest = keystamp_agent::store::sha256(msg);
        let signed = keystamp_agent::identity::sign_handshake_digest(self.agent, &digest);
        self.agent.chip().idle();
        let rs = signed.map_err(|_| signature::Error::new())?;
        *self.signatures = self.signatures.saturating_add(1);
        Ok(DerSignature::from_rs(&rs))
    }
}

/// Random bytes from the chip's RNG, each 32-byte block XORed with a second source (the ESP32's
/// hardware RNG on the device), so the output is never weaker than the stronger of the two; a
/// chip failure falls back to the second source and is reported after the handshake (never an
/// endless loop or a panic inside it).
struct ChipRng<'a, C, S, const B: usize, R> {
    agent: &'a mut Agent<C, S, B>,
    other: &'a mut R,
    pool: [u8; 32],
    used: usize,
    failed: &'a mut bool,
}

impl<C: Chip, S: Storage, const B: usize, R: rand_core::RngCore> ChipRng<'_, C, S, B, R> {
    fn refill(&mut self) {
        let mut other = [0u8; 32];
        self.other.fill_bytes(&mut other);
        let chip = self.agent.chip().random();
        self.agent.chip().idle();
        match chip {
            Ok(bytes) => {
                for (out, (a, b)) in self.pool.iter_mut().zip(bytes.iter().zip(other.iter())) {
                    *out = a ^ b;
                }
            }
            Err(_) => {
                *self.failed = true;
                self.pool = other;
            }
        }
        self.used = 0;
    }
}

impl<C: Chip, S: Storage, const B: usize, R: rand_core::RngCore> rand_core::RngCore
    for ChipRng<'_, C, S, B, R>
{
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.used >= self.pool.len() {
                self.refill();
            }
            *byte = self.pool.get(self.used).copied().unwrap_or_default();
            self.used += 1;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl<C: Chip, S: Storage, const B: usize, R: rand_core::RngCore> rand_core::CryptoRng
    for ChipRng<'_, C, S, B, R>
{
}

// ---------------------------------------------------------------------------------------------
// MQTT 3.1.1: the three packets this example sends (CONNECT, PUBLISH QoS 0, DISCONNECT).

/// A packet did not fit its buffer (a name longer than the example allows).
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong;

/// Appends to a fixed buffer.
struct Packet<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Packet<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Packet { buf, len: 0 }
    }
    fn put(&mut self, bytes: &[u8]) -> Result<&mut Self, TooLong> {
        let end = self.len.checked_add(bytes.len()).ok_or(TooLong)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(TooLong)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(self)
    }
    /// A UTF-8 string or binary field: 16-bit big-endian length, then the bytes.
    fn field(&mut self, bytes: &[u8]) -> Result<&mut Self, TooLong> {
        let n = u16::try_from(bytes.len()).map_err(|_| TooLong)?;
        self.put(&n.to_be_bytes())?.put(bytes)
    }
    fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// `first`, the remaining length (one or two bytes: below 16 384), then `body`.
fn mqtt_packet<'o>(first: u8, body: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], TooLong> {
    let n = body.len();
    let mut p = Packet::new(out);
    p.put(&[first])?;
    if n < 128 {
        p.put(&[n as u8])?;
    } else if n < 16_384 {
        p.put(&[(n % 128) as u8 | 0x80, (n / 128) as u8])?;
    } else {
        return Err(TooLong);
    }
    p.put(body)?;
    let len = p.len;
    out.get(..len).ok_or(TooLong)
}

/// What went wrong after the TCP connection was up.
#[derive(Debug)]
pub enum SessionError {
    /// The TLS layer failed (handshake or records).
    Tls(TlsError),
    /// An MQTT packet did not fit.
    Mqtt(TooLong),
    /// The broker's CONNACK refused the connection (its return code; 0xFF: none or malformed).
    Refused(u8),
    /// The chip's RNG failed during the session (the second source alone was used).
    ChipRng,
}

impl From<TlsError> for SessionError {
    fn from(e: TlsError) -> Self {
        SessionError::Tls(e)
    }
}

impl From<TooLong> for SessionError {
    fn from(e: TooLong) -> Self {
        SessionError::Mqtt(e)
    }
}

/// The broker to talk to: its DNS name (checked against its certificate) and the DER
/// certificate of the CA that signs the broker's certificate.
pub struct Broker<'a> {
    /// DNS name.
    pub name: &'a str,
    /// The CA certificate (DER).
    pub ca: &'a [u8],
}

/// What a session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// CertificateVerify signatures the chip made.
    pub chip_signatures: u32,
}

/// Mutual TLS to the broker with the chip-held identity, then CONNECT (client id = the device
/// certificate's CN `cn`, which a broker with `use_identity_as_username` also takes as user
/// name), one PUBLISH of `payload` to `devices/<cn>/hello` and DISCONNECT.
#[allow(clippy::too_many_arguments)]
pub fn publish_hello<Socket: Read + Write, C: Chip, S: Storage, const B: usize, R>(
    socket: Socket,
    broker: &Broker<'_>,
    agent: &mut Agent<C, S, B>,
    device_cert: &[u8],
    cn: &[u8],
    payload: &[u8],
    other_rng: R,
    read_buf: &mut [u8],
    write_buf: &mut [u8],
) -> Result<Published, SessionError>
where
    R: rand_core::RngCore,
{
    let config = TlsConfig::new().with_server_name(broker.name);
    let mut provider = ChipProvider {
        agent,
        device_cert,
        verifier: CertVerifier::new(Certificate::X509(broker.ca)),
        other_rng,
        chip_rng_failed: false,
        signatures: 0,
    };
    let mut tls: TlsConnection<'_, Socket, Aes128GcmSha256> =
        TlsConnection::new(socket, read_buf, write_buf);
    tls.open(TlsContext::new(&config, &mut provider))?;
    if provider.chip_rng_failed {
        return Err(SessionError::ChipRng);
    }

    let mut body = [0u8; 256];
    let mut out = [0u8; 272];
    // CONNECT: protocol "MQTT" level 4, clean session, keep-alive 60 s, client id.
    let mut p = Packet::new(&mut body);
    p.field(b"MQTT")?.put(&[4, 0x02, 0, 60])?.field(cn)?;
    tls.write_all(mqtt_packet(0x10, p.bytes(), &mut out)?)?;
    tls.flush()?;
    let mut connack = [0u8; 4];
    tls.read_exact(&mut connack).map_err(|e| match e {
        embedded_io::ReadExactError::Other(e) => SessionError::Tls(e),
        embedded_io::ReadExactError::UnexpectedEof => SessionError::Refused(0xFF),
    })?;
    if connack[..2] != [0x20, 0x02] {
        return Err(SessionError::Refused(0xFF));
    }
    if connack[3] != 0 {
        return Err(SessionError::Refused(connack[3]));
    }
    // PUBLISH QoS 0 to devices/<cn>/hello.
    let mut topic = [0u8; 96];
    let mut t = Packet::new(&mut topic);
    t.put(b"devices/")?.put(cn)?.put(b"/hello")?;
    let mut p = Packet::new(&mut body);
    p.field(t.bytes())?.put(payload)?;
    tls.write_all(mqtt_packet(0x30, p.bytes(), &mut out)?)?;
    tls.write_all(&[0xE0, 0x00])?;
    tls.flush()?;
    let signatures = provider.signatures;
    tls.close().map_err(|(_, e)| SessionError::Tls(e))?;
    Ok(Published {
        chip_signatures: signatures,
    })
}
