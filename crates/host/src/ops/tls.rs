//! Mutual TLS with a provisioned simulated device's chip-held key: what a product's firmware does
//! with its identity, run on the host against the emulated chip.
//!
//! The device side is the real agent over the real ATECC driver and the emulated chip (in
//! process, no UART). The certificates come from the agent's identity API
//! ([`keystamp_agent::Agent::rebuild_identity`]) and every handshake signature from
//! [`keystamp_agent::identity::sign_handshake_digest`]; no private key exists outside the chip.
//! rustls (ring provider) runs the handshake through a custom [`SigningKey`]; a minimal MQTT 3.1.1
//! client on top publishes one message (`keystamp sim connect`).

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keystamp_agent::{Agent, IdentityError, MAX_CERT, identity};
use keystamp_atecc::Atecc;
use keystamp_atecc_sim::{SharedSimChip, SimChip, SimOptions, StdDelay, Timing};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use x509_cert::Certificate;
use x509_cert::der::Decode;

use crate::pki::ca::{common_name, sha256};
use crate::sim::{FileFlash, firmware_version};

type SimAgent = Agent<Atecc<SharedSimChip, StdDelay>, FileFlash, { keystamp_wire::MAX_DEF_BLOB }>;

/// Why a TLS identity could not be loaded or used.
#[derive(Debug)]
pub enum TlsError {
    /// A device state file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The device's identity could not be rebuilt or used (not provisioned, untrusted blob, chip).
    Identity(IdentityError),
    /// The rebuilt device certificate does not parse or has no common name.
    BadDeviceCertificate,
    /// No simulated device in the state directory is provisioned with the requested serial.
    NoSuchDevice(String),
    /// The broker's CA file holds no usable certificate.
    BadCaFile(PathBuf),
    /// The broker address is not `HOST:PORT`.
    BadBroker(String),
    /// The network connection failed.
    Net(std::io::Error),
    /// The TLS handshake or record layer failed.
    Tls(rustls::Error),
    /// The broker refused the MQTT connection (CONNACK return code).
    MqttRefused(u8),
    /// The broker answered something that is not the expected MQTT packet.
    MqttProtocol(&'static str),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            TlsError::Identity(e) => write!(f, "device identity: {e}"),
            TlsError::BadDeviceCertificate => {
                f.write_str("the rebuilt device certificate has no common name")
            }
            TlsError::NoSuchDevice(s) => write!(f, "no provisioned simulated device {s}"),
            TlsError::BadCaFile(p) => write!(f, "{}: no PEM certificate", p.display()),
            TlsError::BadBroker(b) => write!(f, "broker {b:?} is not HOST:PORT"),
            TlsError::Net(e) => write!(f, "network: {e}"),
            TlsError::Tls(e) => write!(f, "TLS: {e}"),
            TlsError::MqttRefused(rc) => write!(f, "the broker refused the connection (code {rc})"),
            TlsError::MqttProtocol(what) => write!(f, "MQTT: {what}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Io { source, .. } => Some(source),
            TlsError::Identity(e) => Some(e),
            TlsError::Net(e) => Some(e),
            TlsError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<IdentityError> for TlsError {
    fn from(e: IdentityError) -> Self {
        TlsError::Identity(e)
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Tls(e)
    }
}

/// A provisioned simulated device's identity: its agent (holding the emulated chip) and the
/// chain rebuilt from the chip at open.
pub struct SimIdentity {
    agent: Mutex<Box<SimAgent>>,
    device_der: Vec<u8>,
    signer_der: Vec<u8>,
    common_name: String,
    signatures: AtomicU64,
}

impl fmt::Debug for SimIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimIdentity")
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

impl SimIdentity {
    /// Boots the agent of simulated device `name` in `state_dir` (its `.chip.json` and `.flash`)
    /// and rebuilds and verifies its chain through the identity API.
    pub fn open(state_dir: &Path, name: &str) -> Result<Self, TlsError> {
        let chip_path = state_dir.join(format!("{name}.chip.json"));
        let flash_path = state_dir.join(format!("{name}.flash"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Io { path, source }
        };
        let chip = SimChip::load_with(
            &chip_path,
            SimOptions::default().with_timing(Timing::Instant),
        )
        .map_err(io(&chip_path))?;
        let flash = FileFlash::open(&flash_path).map_err(io(&flash_path))?;
        let mut agent: Box<SimAgent> = Box::new(Agent::new(
            Atecc::new(chip.shared(), StdDelay),
            flash,
            firmware_version(),
        ));
        let mut device = vec![0u8; MAX_CERT];
        let mut signer = vec![0u8; MAX_CERT];
        let lens = agent.rebuild_identity(&mut device, &mut signer)?;
        device.truncate(lens.device);
        signer.truncate(lens.signer);
        let cert = Certificate::from_der(&device).map_err(|_| TlsError::BadDeviceCertificate)?;
        let common_name =
            common_name(cert.tbs_certificate().subject()).ok_or(TlsError::BadDeviceCertificate)?;
        Ok(Self {
            agent: Mutex::new(agent),
            device_der: device,
            signer_der: signer,
            common_name,
            signatures: AtomicU64::new(0),
        })
    }

    /// The device certificate (DER) rebuilt from the chip.
    pub fn device_cert(&self) -> &[u8] {
        &self.device_der
    }

    /// The signer certificate (DER) rebuilt from the chip.
    pub fn signer_cert(&self) -> &[u8] {
        &self.signer_der
    }

    /// The device certificate's common name (the chip serial in the standard profile).
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// How many handshake signatures the chip has made for this identity.
    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::SeqCst)
    }

    /// Signs a handshake digest on the device side (the chip's slot 0).
    fn sign(&self, digest: &[u8; 32]) -> Result<[u8; 64], IdentityError> {
        // A poisoned lock only means another signature panicked; the agent holds no torn state.
        let mut agent = self.agent.lock().unwrap_or_else(|p| p.into_inner());
        let sig = identity::sign_handshake_digest(&mut **agent, digest)?;
        self.signatures.fetch_add(1, Ordering::SeqCst);
        Ok(sig)
    }
}

/// Which certificates the client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainToSend {
    /// Device and signer certificates: what Azure DPS / IoT Hub and AWS IoT need.
    DeviceAndSigner,
    /// The device certificate alone (the "401002 CA certificate not found" mistake; for tests).
    DeviceOnly,
}

/// The chip as a rustls signing key (ECDSA P-256 with SHA-256 only: what the ATECC608 signs).
#[derive(Debug)]
struct ChipKey(Arc<SimIdentity>);

impl SigningKey for ChipKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(ChipSigner(self.0.clone())) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct ChipSigner(Arc<SimIdentity>);

impl Signer for ChipSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let raw = self
            .0
            .sign(&sha256(message))
            .map_err(|e| rustls::Error::General(format!("secure element: {e}")))?;
        // TLS carries ECDSA signatures DER-encoded; the chip gives r ‖ s.
        let sig = p256::ecdsa::Signature::from_slice(&raw)
            .map_err(|_| rustls::Error::General("chip signature out of range".into()))?;
        Ok(sig.to_der().as_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[derive(Debug)]
struct ChipCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ChipCert {
    fn resolve(
        &self,
        _issuers: &[&[u8]],
        schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        schemes
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The rustls provider every side uses here (ring: no C toolchain beyond `cc`).
// rustls deprecates ring's provider for lacking post-quantum key exchange; aws-lc-rs would need
// cmake on every machine. Classical ECDHE is what IoT brokers and the ATECC608 speak today.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client configuration that authenticates with `identity` (signatures by the chip) and
/// trusts servers chained to `server_roots`.
pub fn client_config(
    identity: Arc<SimIdentity>,
    chain: ChainToSend,
    server_roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for r in server_roots {
        roots.add(r.clone())?;
    }
    let mut certs = vec![CertificateDer::from(identity.device_der.clone())];
    if chain == ChainToSend::DeviceAndSigner {
        certs.push(CertificateDer::from(identity.signer_der.clone()));
    }
    let key = CertifiedKey::new(certs, Arc::new(ChipKey(identity)));
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(ChipCert(Arc::new(key)))))
}

/// Reads every certificate of a PEM file.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|_| TlsError::BadCaFile(path.into()))?
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::BadCaFile(path.into()))?;
    if certs.is_empty() {
        return Err(TlsError::BadCaFile(path.into()));
    }
    Ok(certs)
}

/// Finds the provisioned simulated device in `state_dir` whose certificate's common name is
/// `serial` (any provisioned one when `None`), in name order.
pub fn find_sim_identity(state_dir: &Path, serial: Option<&str>) -> Result<SimIdentity, TlsError> {
    let wanted = serial.unwrap_or("any").to_string();
    let entries = std::fs::read_dir(state_dir).map_err(|source| TlsError::Io {
        path: state_dir.into(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".chip.json").map(str::to_string)
        })
        .collect();
    names.sort();
    for name in names {
        // Unprovisioned devices have no identity; skip them.
        let Ok(id) = SimIdentity::open(state_dir, &name) else {
            continue;
        };
        if serial.is_none_or(|s| s.eq_ignore_ascii_case(id.common_name())) {
            return Ok(id);
        }
    }
    Err(TlsError::NoSuchDevice(wanted))
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The client id and (with `use_identity_as_username`) the user name: the device's CN.
    pub client_id: String,
    /// The topic published to.
    pub topic: String,
    /// Handshake signatures the chip made.
    pub chip_signatures: u64,
}

/// Connects `identity` to the MQTT broker at `broker` (`HOST:PORT`) over mutual TLS, trusting
/// `server_roots` for the broker, and publishes `payload` to `devices/<CN>/hello` at QoS 1
/// (waiting for the broker's PUBACK).
pub fn connect_and_publish(
    identity: Arc<SimIdentity>,
    broker: &str,
    server_roots: &[CertificateDer<'static>],
    payload: &[u8],
) -> Result<Published, TlsError> {
    let (host, _) = broker
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        .ok_or_else(|| TlsError::BadBroker(broker.into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name =
        ServerName::try_from(host.to_string()).map_err(|_| TlsError::BadBroker(broker.into()))?;
    let cn = identity.common_name().to_string();
    let config = client_config(identity.clone(), ChainToSend::DeviceAndSigner, server_roots)?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let tcp = TcpStream::connect(broker).map_err(TlsError::Net)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(TlsError::Net)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let topic = format!("devices/{cn}/hello");
    mqtt::publish_once(&mut tls, &cn, &topic, payload)?;
    Ok(Published {
        client_id: cn,
        topic,
        chip_signatures: identity.signatures(),
    })
}

/// The few MQTT 3.1.1 packets one publish needs (CONNECT, CONNACK, PUBLISH QoS 1, PUBACK,
/// DISCONNECT). Everything the broker sends is bounded before use.
pub mod mqtt {
    use super::*;

    /// Largest acknowledgement we accept (CONNACK and PUBACK are 2 bytes of payload).
    const MAX_ACK: usize = 16;

    fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                break;
            }
        }
    }

    fn string(s: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        let len = u16::try_from(s.len()).map_err(|_| TlsError::MqttProtocol("string too long"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(s);
        Ok(())
    }

    fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![kind];
        remaining_length(body.len(), &mut p);
        p.extend_from_slice(body);
        p
    }

    fn map_io(e: std::io::Error) -> TlsError {
        // rustls reports handshake failures (e.g. the broker refusing our certificate) as I/O
        // errors wrapping its own error; keep the typed reason.
        match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(t) => TlsError::Tls(t.clone()),
            None => TlsError::Net(e),
        }
    }

    /// Reads one packet whose payload is at most [`MAX_ACK`] bytes; returns (type byte, body).
    fn read_ack<S: Read>(s: &mut S) -> Result<(u8, Vec<u8>), TlsError> {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).map_err(map_io)?;
        let len = usize::from(head[1]);
        if head[1] & 0x80 != 0 || len > MAX_ACK {
            return Err(TlsError::MqttProtocol("oversized acknowledgement"));
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).map_err(map_io)?;
        Ok((head[0], body))
    }

    /// CONNECT as `client_id` (clean session), PUBLISH `payload` to `topic` at QoS 1, wait for
    /// the PUBACK, DISCONNECT.
    pub fn publish_once<S: Read + Write>(
        s: &mut S,
        client_id: &str,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), TlsError> {
        let mut connect = Vec::new();
        string(b"MQTT", &mut connect)?;
        connect.extend_from_slice(&[4, 0x02, 0, 30]); // level 4, clean session, keep-alive 30 s
        string(client_id.as_bytes(), &mut connect)?;
        s.write_all(&packet(0x10, &connect)).map_err(map_io)?;
        s.flush().map_err(map_io)?;
        match read_ack(s)? {
            (0x20, body) if body.len() == 2 => match body[1] {
                0 => {}
                rc => return Err(TlsError::MqttRefused(rc)),
            },
            _ => return Err(TlsError::MqttProtocol("expected CONNACK")),
        }
        let mut publish = Vec::new();
        string(topic.as_bytes(), &mut publish)?;
        publish.extend_from_slice(&1u16.to_be_bytes()); // packet identifier
        publish.extend_from_slice(payload);
        s.write_all(&packet(0x32, &publish)).map_err(map_io)?;
        s.flush().map_err(map_io)?;
        match read_ack(s)? {
            (0x40, body) if body == [0, 1] => {}
            _ => return Err(TlsError::MqttProtocol("expected PUBACK for packet 1")),
        }
        s.write_all(&[0xE0, 0]).map_err(map_io)?;
        s.flush().map_err(map_io)?;
        Ok(())
    }
}

/// `keystamp sim connect`: connects the provisioned simulated device `serial` (its certificate's
/// CN; any provisioned device when `None`) in `state_dir` to the broker and publishes one
/// message, trusting the broker certificates in `ca_file`.
pub fn sim_connect(
    state_dir: &Path,
    serial: Option<&str>,
    broker: &str,
    ca_file: &Path,
) -> Result<Published, super::OpsError> {
    let roots = read_pem_certs(ca_file).map_err(super::OpsError::Tls)?;
    let id = Arc::new(find_sim_identity(state_dir, serial).map_err(super::OpsError::Tls)?);
    connect_and_publish(id, broker, &roots, b"hello from keystamp").map_err(super::OpsError::Tls)
}
