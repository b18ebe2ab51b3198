//! The firmware's TLS path on the host: `crates/firmware/examples/tls_identity/chip_tls.rs` (the
//! embedded-tls client the ESP32 example runs), compiled here unchanged, with the real agent on a
//! provisioned emulated chip, over TCP on 127.0.0.1 to a rustls server and to Mosquitto, both
//! requiring client certificates. The chip signs CertificateVerify through the identity API; the client checks
//! the server's certificate against the CA it is given.
//!
//! embedded-tls sends one client certificate (docs/decisions/0009-firmware-tls.md), so the
//! server must trust the project's signer certificate: with only the root as trust anchor it
//! refuses the device (`UnknownIssuer`), which the test checks too.

mod common;

#[path = "../../firmware/examples/tls_identity/chip_tls.rs"]
#[allow(dead_code)]
mod chip_tls;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use chip_tls::{Broker, SessionError};
use keystamp::sim::{FileFlash, firmware_version};
use keystamp_agent::{Agent, MAX_CERT};
use keystamp_atecc::Atecc;
use keystamp_atecc_sim::{FaultConfig, SimChip, SimOptions, StdDelay, Timing};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ServerConfig};
use x509_cert::Certificate;
use x509_cert::der::Decode;

type SimAgent = Agent<Atecc<keystamp_atecc_sim::SharedSimChip, StdDelay>, FileFlash>;

/// A TCP stream as embedded-io's blocking traits (what the firmware's network layer provides).
struct Tcp(TcpStream);

impl embedded_io::ErrorType for Tcp {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf).map_err(|_| embedded_io::ErrorKind::Other)
    }
}

impl embedded_io::Write for Tcp {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf).map_err(|_| embedded_io::ErrorKind::Other)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().map_err(|_| embedded_io::ErrorKind::Other)
    }
}

/// The second random source (the ESP32's hardware RNG on the device): the OS here.
struct OsRandom;

impl rand_core::RngCore for OsRandom {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        getrandom::fill(dest).expect("OS random numbers");
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// A provisioned device: the project, and the agent booted on its chip (as the firmware boots).
struct Device {
    fx: common::Fixture,
    _state: tempfile::TempDir,
    agent: Box<SimAgent>,
    chip: keystamp_atecc_sim::SharedSimChip,
    device_cert: Vec<u8>,
    signer_cert: Vec<u8>,
    cn: String,
}

fn provisioned(seed: u64) -> Device {
    let fx = common::fixture();
    let state = tempfile::tempdir().unwrap();
    let dev = common::device(state.path(), "dev00", seed, FaultConfig::default());
    let report = common::run(&fx, &dev);
    dev.stop();
    let cn = report.cn.clone().unwrap_or_else(|| panic!("{report:?}"));
    let chip = SimChip::load_with(
        state.path().join("dev00.chip.json"),
        SimOptions::default().with_timing(Timing::Instant),
    )
    .unwrap();
    let flash = FileFlash::open(&state.path().join("dev00.flash")).unwrap();
    let chip = chip.shared();
    let mut agent = Box::new(Agent::new(
        Atecc::new(chip.clone(), StdDelay),
        flash,
        firmware_version(),
    ));
    let (mut device, mut signer) = (vec![0u8; MAX_CERT], vec![0u8; MAX_CERT]);
    let lens = agent.rebuild_identity(&mut device, &mut signer).unwrap();
    device.truncate(lens.device);
    signer.truncate(lens.signer);
    Device {
        fx,
        _state: state,
        agent,
        chip,
        device_cert: device,
        signer_cert: signer,
        cn,
    }
}

impl Device {
    /// Sign commands the emulated chip has executed since the agent booted (opcode 0x41).
    fn chip_signs(&self) -> usize {
        let chip = self.chip.lock();
        chip.command_log()
            .iter()
            .filter(|r| r.opcode == 0x41)
            .count()
    }
}

/// A CA and a server certificate for `localhost` it signed (both P-256): the broker's PKI.
struct ServerPki {
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn server_pki() -> ServerPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test broker CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).unwrap();
    ServerPki {
        ca: ca.der().clone(),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// What the server saw: the client chain it accepted and the MQTT bytes after CONNACK's trigger.
#[derive(Debug)]
struct Seen {
    peer_certs: Vec<Vec<u8>>,
    mqtt: Vec<u8>,
}

/// A rustls server on 127.0.0.1 requiring a client certificate chained to `client_anchor`; it
/// answers the first MQTT packet (CONNECT) with CONNACK and collects the rest until the client
/// closes. Returns the port and the server thread (its result: what it saw, or its reason;
/// `None` when the client left without a TLS error).
fn serve_once(
    pki: &ServerPki,
    client_anchor: &[u8],
) -> (
    u16,
    std::thread::JoinHandle<Result<Seen, Option<rustls::Error>>>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(client_anchor.to_vec()))
        .unwrap();
    let provider = keystamp::ops::tls::provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut conn = rustls::ServerConnection::new(config).unwrap();
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                let reason = e
                    .into_inner()
                    .and_then(|i| i.downcast::<rustls::Error>().ok());
                return Err(reason.map(|r| *r));
            }
        }
        let peer_certs = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_vec())
            .collect();
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        let mut mqtt = Vec::new();
        let mut buf = [0u8; 512];
        let mut acked = false;
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => mqtt.extend_from_slice(&buf[..n]),
            }
            // CONNECT: 0x10, one remaining-length byte (the client's packets are short).
            if !acked && mqtt.len() >= 2 && mqtt.len() >= 2 + usize::from(mqtt[1]) {
                stream.write_all(&[0x20, 0x02, 0x00, 0x00]).unwrap();
                stream.flush().unwrap();
                acked = true;
            }
        }
        Ok(Seen { peer_certs, mqtt })
    });
    (port, server)
}

/// Runs the firmware's session against 127.0.0.1:`port`.
fn firmware_session(
    dev: &mut Device,
    port: u16,
    broker_ca: &[u8],
) -> Result<chip_tls::Published, SessionError> {
    let (cert, cn) = (dev.device_cert.clone(), dev.cn.clone());
    session_with(&mut dev.agent, &cert, &cn, port, broker_ca)
}

/// The firmware's session with any agent (any chip behind it).
fn session_with<C: keystamp_agent::Chip>(
    agent: &mut Agent<C, FileFlash>,
    device_cert: &[u8],
    cn: &str,
    port: u16,
    broker_ca: &[u8],
) -> Result<chip_tls::Published, SessionError> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (mut read_buf, mut write_buf) = (vec![0u8; 16_640], vec![0u8; 4_096]);
    chip_tls::publish_hello(
        Tcp(tcp),
        &Broker {
            name: "localhost",
            ca: broker_ca,
        },
        agent,
        device_cert,
        cn.as_bytes(),
        b"hello from the chip",
        OsRandom,
        &mut read_buf,
        &mut write_buf,
    )
}

/// MQTT 3.1.1 string field: 16-bit length, bytes.
fn field(s: &[u8]) -> Vec<u8> {
    [&(s.len() as u16).to_be_bytes()[..], s].concat()
}

#[test]
fn firmware_tls_client_authenticates_with_the_chip_and_publishes() {
    let mut dev = provisioned(0x1801);
    let pki = server_pki();
    // The server trusts the project's signer certificate (the chain embedded-tls can send).
    let (port, server) = serve_once(&pki, &dev.signer_cert);
    let published = firmware_session(&mut dev, port, &pki.ca).unwrap();
    let seen = server.join().unwrap().unwrap();
    // The server accepted exactly the device certificate rebuilt from the chip...
    assert_eq!(seen.peer_certs, vec![dev.device_cert.clone()]);
    // ...whose CertificateVerify only the chip could make (one signature, by the chip).
    assert_eq!(published.chip_signatures, 1);
    assert_eq!(dev.chip_signs(), 1);
    // The device certificate is the one the factory issued (its CN is the chip serial).
    let cert = Certificate::from_der(&dev.device_cert).unwrap();
    assert!(
        cert.tbs_certificate()
            .subject()
            .to_string()
            .contains(&dev.cn),
        "{}",
        cert.tbs_certificate().subject()
    );
    // MQTT, as the broker would read it (MQTT 3.1.1 §3.1, §3.3, §3.14).
    let connect_body = [
        field(b"MQTT"),
        vec![4, 0x02, 0, 60],
        field(dev.cn.as_bytes()),
    ]
    .concat();
    let topic = format!("devices/{}/hello", dev.cn);
    let publish_body = [field(topic.as_bytes()), b"hello from the chip".to_vec()].concat();
    let want = [
        vec![0x10, connect_body.len() as u8],
        connect_body,
        vec![0x30, publish_body.len() as u8],
        publish_body,
        vec![0xE0, 0x00],
    ]
    .concat();
    assert_eq!(hex::encode(&seen.mqtt), hex::encode(&want));
}

#[test]
fn a_server_trusting_only_the_root_refuses_the_one_certificate_chain() {
    let mut dev = provisioned(0x1802);
    let pki = server_pki();
    let root = dev.fx.signer.certs().root.der.clone();
    let (port, server) = serve_once(&pki, &root);
    let session = firmware_session(&mut dev, port, &pki.ca);
    assert!(session.is_err(), "{session:?}");
    // The server's reason: no path from the device certificate to the root without the signer.
    assert_eq!(
        server.join().unwrap().unwrap_err(),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        ))
    );
}

#[test]
fn the_firmware_client_refuses_a_broker_its_ca_did_not_sign() {
    let mut dev = provisioned(0x1803);
    let pki = server_pki();
    let (port, server) = serve_once(&pki, &dev.signer_cert);
    // The device is configured with another CA for its broker.
    let other = server_pki();
    let session = firmware_session(&mut dev, port, &other.ca);
    assert!(
        matches!(
            session,
            Err(SessionError::Tls(
                embedded_tls::blocking::TlsError::InvalidCertificate
            ))
        ),
        "{session:?}"
    );
    // The client stopped before its certificate: the server saw no client chain.
    let seen = server.join().unwrap();
    assert!(seen.is_err(), "{seen:?}");
    // The chip signed nothing for that broker; a session with the right CA then works.
    assert_eq!(dev.chip_signs(), 0);
    let (port, server) = serve_once(&pki, &dev.signer_cert);
    let published = firmware_session(&mut dev, port, &pki.ca).unwrap();
    assert_eq!((published.chip_signatures, dev.chip_signs()), (1, 1));
    server.join().unwrap().unwrap();
}

#[test]
fn mosquitto_with_the_signer_in_its_ca_file_takes_the_firmware_client() {
    let Some(bin) = common::mosquitto::binary() else {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto; .ci/run does)");
        return;
    };
    let mut dev = provisioned(0x1804);
    let pki = server_pki();
    let key = pki.key.secret_der().to_vec();
    let pem = |der: &[u8]| keystamp::pki::ca::der_to_pem(der);
    let root = dev.fx.signer.certs().root.der.clone();
    // Root only: OpenSSL cannot chain the device certificate alone (decision 0009).
    let dir = tempfile::tempdir().unwrap();
    let root_only = common::mosquitto::start(
        &bin,
        dir.path(),
        &common::mosquitto::BrokerFiles {
            ca_pem: &pem(&root),
            cert: &pki.cert,
            key: &key,
            crl: None,
        },
    );
    let refused = firmware_session(&mut dev, root_only.port, &pki.ca);
    assert!(refused.is_err(), "{refused:?}");
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(&root_only.log).unwrap();
    assert!(log.contains("certificate verify failed"), "{log}");
    assert!(!log.contains(&format!("u'{}'", dev.cn)), "{log}");
    drop(root_only);

    // Root and signer: the broker takes the device, with its CN as user name, and the message.
    let dir = tempfile::tempdir().unwrap();
    let broker = common::mosquitto::start(
        &bin,
        dir.path(),
        &common::mosquitto::BrokerFiles {
            ca_pem: &(pem(&root) + &pem(&dev.signer_cert)),
            cert: &pki.cert,
            key: &key,
            crl: None,
        },
    );
    let published = firmware_session(&mut dev, broker.port, &pki.ca).unwrap();
    assert_eq!(published.chip_signatures, 1);
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(&broker.log).unwrap();
    assert!(log.contains(&format!("u'{}'", dev.cn)), "{log}");
    let publish = format!(
        "Received PUBLISH from {} (d0, q0, r0, m0, 'devices/{}/hello'",
        dev.cn, dev.cn
    );
    assert!(log.contains(&publish), "no {publish} in:\n{log}");
}

/// The firmware's DER encoding of the chip's `r ‖ s` is p256's, at the edges of minimal INTEGER
/// encoding: top bit set (a 0x00 pad), leading zero bytes (stripped), a one-byte value.
#[test]
fn the_firmware_der_signature_is_p256s_encoding() {
    let mut high = [0x01u8; 32];
    high[0] = 0x80;
    let mut leading_zeros = [0x01u8; 32];
    leading_zeros[..2].copy_from_slice(&[0x00, 0x00]);
    leading_zeros[2] = 0x7F;
    let mut one = [0u8; 32];
    one[31] = 1;
    let mut zero_then_high = [0x22u8; 32];
    zero_then_high[..3].copy_from_slice(&[0x00, 0x00, 0xFF]);
    for (r, s) in [
        (high, leading_zeros),
        (leading_zeros, high),
        (one, one),
        (zero_then_high, high),
        ([0x7Fu8; 32], [0x11u8; 32]),
    ] {
        let rs: [u8; 64] = [r, s].concat().try_into().unwrap();
        let ours = chip_tls::DerSignature::from_rs(&rs);
        let theirs = p256::ecdsa::Signature::from_slice(&rs).unwrap().to_der();
        assert_eq!(
            hex::encode(ours.as_ref()),
            hex::encode(theirs.as_bytes()),
            "{}",
            hex::encode(rs)
        );
    }
}

/// The chip with its Random command failing (everything else passes through).
struct RandomFails<C>(C);

impl<C: keystamp_agent::Chip> keystamp_agent::Chip for RandomFails<C> {
    fn revision(&mut self) -> Result<[u8; 4], keystamp_agent::ChipError> {
        self.0.revision()
    }
    fn read_config(&mut self) -> Result<[u8; 128], keystamp_agent::ChipError> {
        self.0.read_config()
    }
    fn write_config(
        &mut self,
        current: &[u8; 128],
        target: &[u8; 128],
    ) -> Result<[u8; 128], keystamp_agent::ChipError> {
        self.0.write_config(current, target)
    }
    fn lock_config(&mut self, crc: u16) -> Result<(), keystamp_agent::ChipError> {
        self.0.lock_config(crc)
    }
    fn lock_data(&mut self, crc: Option<u16>) -> Result<(), keystamp_agent::ChipError> {
        self.0.lock_data(crc)
    }
    fn lock_slot(&mut self, slot: u8) -> Result<(), keystamp_agent::ChipError> {
        self.0.lock_slot(slot)
    }
    fn genkey(&mut self, slot: u8) -> Result<[u8; 64], keystamp_agent::ChipError> {
        self.0.genkey(slot)
    }
    fn public_key(&mut self, slot: u8) -> Result<[u8; 64], keystamp_agent::ChipError> {
        self.0.public_key(slot)
    }
    fn read_slot(
        &mut self,
        slot: u8,
        offset: u16,
        out: &mut [u8],
    ) -> Result<(), keystamp_agent::ChipError> {
        self.0.read_slot(slot, offset, out)
    }
    fn write_slot(
        &mut self,
        slot: u8,
        offset: u16,
        data: &[u8],
    ) -> Result<(), keystamp_agent::ChipError> {
        self.0.write_slot(slot, offset, data)
    }
    fn read_otp(&mut self, offset: u8, out: &mut [u8]) -> Result<(), keystamp_agent::ChipError> {
        self.0.read_otp(offset, out)
    }
    fn write_otp(&mut self, offset: u8, data: &[u8]) -> Result<(), keystamp_agent::ChipError> {
        self.0.write_otp(offset, data)
    }
    fn sign_digest(
        &mut self,
        slot: u8,
        digest: &[u8; 32],
    ) -> Result<[u8; 64], keystamp_agent::ChipError> {
        self.0.sign_digest(slot, digest)
    }
    fn verify_extern(
        &mut self,
        digest: &[u8; 32],
        signature: &[u8; 64],
        public_key: &[u8; 64],
    ) -> Result<bool, keystamp_agent::ChipError> {
        self.0.verify_extern(digest, signature, public_key)
    }
    fn verify_stored(
        &mut self,
        key_slot: u8,
        digest: &[u8; 32],
        signature: &[u8; 64],
    ) -> Result<bool, keystamp_agent::ChipError> {
        self.0.verify_stored(key_slot, digest, signature)
    }
    fn random(&mut self) -> Result<[u8; 32], keystamp_agent::ChipError> {
        Err(keystamp_agent::ChipError::Communication)
    }
    fn idle(&mut self) {
        self.0.idle()
    }
}

/// A chip whose RNG fails does not silently give a session: the handshake runs on the second
/// source alone (no hang, no panic), and the session ends with `ChipRng` before any MQTT.
#[test]
fn a_failing_chip_rng_ends_the_session() {
    let dev = provisioned(0x1805);
    let flash = FileFlash::open(&dev._state.path().join("dev00.flash")).unwrap();
    let mut agent = Agent::new(
        RandomFails(Atecc::new(dev.chip.clone(), StdDelay)),
        flash,
        firmware_version(),
    );
    let (mut device, mut signer) = (vec![0u8; MAX_CERT], vec![0u8; MAX_CERT]);
    agent.rebuild_identity(&mut device, &mut signer).unwrap();
    let pki = server_pki();
    let (port, server) = serve_once(&pki, &dev.signer_cert);
    let session = session_with(&mut agent, &dev.device_cert, &dev.cn, port, &pki.ca);
    assert!(matches!(session, Err(SessionError::ChipRng)), "{session:?}");
    // The server got no MQTT bytes.
    if let Ok(seen) = server.join().unwrap() {
        assert!(seen.mqtt.is_empty(), "{seen:?}");
    }
}
