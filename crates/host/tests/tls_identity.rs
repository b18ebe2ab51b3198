//! The provisioned identity in mutual TLS: a simulated device (agent + emulated chip, in process)
//! authenticates to a real rustls server that requires client certificates chained to the
//! project root, and to Mosquitto (`require_certificate`, `use_identity_as_username`). Every
//! handshake signature is made by the chip; the negative cases check the server's own reason.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keystamp::ops::tls::{self, ChainToSend, SimIdentity};
use keystamp::pki::crl::{self, CrlEntry, CrlRequest};
use keystamp_atecc_sim::FaultConfig;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ServerConfig};
use x509_cert::Certificate;
use x509_cert::der::Decode;

/// A project with one provisioned simulated device; returns the fixture and the device identity.
fn provisioned(seed: u64) -> (common::Fixture, tempfile::TempDir, Arc<SimIdentity>) {
    let fx = common::fixture();
    let state = tempfile::tempdir().unwrap();
    let dev = common::device(state.path(), "dev00", seed, FaultConfig::default());
    let report = common::run(&fx, &dev);
    dev.stop();
    let id = SimIdentity::open(state.path(), "dev00").unwrap();
    // The identity rebuilt on the device names the device the factory issued for.
    assert_eq!(report.cn.as_deref(), Some(id.common_name()), "{report:?}");
    (fx, state, Arc::new(id))
}

/// A self-signed server certificate for 127.0.0.1 / localhost and its PKCS#8 key.
fn server_cert() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

fn server_config(
    root: &[u8],
    crls: Vec<CertificateRevocationListDer<'static>>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> ServerConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.to_vec())).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider())
        .with_crls(crls)
        // keystamp's CRL is the signer's (it covers devices); the root issues no CRL.
        .only_check_end_entity_revocation()
        .build()
        .unwrap();
    ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .unwrap()
}

/// Runs one handshake between the device and a rustls server on 127.0.0.1; returns the server's
/// result: the client certificates it accepted, or its reason for refusing.
fn handshake(
    id: &Arc<SimIdentity>,
    chain: ChainToSend,
    root: &[u8],
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Vec<Vec<u8>>, rustls::Error> {
    let (cert, key) = server_cert();
    let server = Arc::new(server_config(root, crls, cert.clone(), key));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_thread = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut conn = rustls::ServerConnection::new(server).unwrap();
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                let inner = e.into_inner().expect("an I/O error without a TLS reason");
                return Err(*inner.downcast::<rustls::Error>().unwrap());
            }
        }
        // Read the client's one application byte so its Finished has been processed.
        let mut byte = [0u8; 1];
        let _ = rustls::Stream::new(&mut conn, &mut sock).read(&mut byte);
        Ok(conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_vec())
            .collect())
    });
    let config = tls::client_config(id.clone(), chain, &[cert]).unwrap();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The client's own view does not matter here (in TLS 1.3 it finishes before the server has
    // judged its certificate); the server's result is what the tests check.
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    let _ = stream.write_all(b"x").and_then(|_| stream.flush());
    let result = server_thread.join().unwrap();
    drop(tcp);
    result
}

#[test]
fn handshake_with_device_and_signer_succeeds_and_the_chip_signs() {
    let (fx, _state, id) = provisioned(0x7151);
    let root = &fx.signer.certs().root.der;
    let before = id.signatures();
    let peer = handshake(&id, ChainToSend::DeviceAndSigner, root, vec![]).unwrap();
    // The server received exactly the chain rebuilt from the chip.
    assert_eq!(
        peer,
        vec![id.device_cert().to_vec(), id.signer_cert().to_vec()]
    );
    // The only private key that signed CertificateVerify is the chip's.
    assert_eq!(id.signatures(), before + 1);
}

#[test]
fn server_refuses_a_device_that_does_not_send_its_signer() {
    let (fx, _state, id) = provisioned(0x7152);
    let err = handshake(
        &id,
        ChainToSend::DeviceOnly,
        &fx.signer.certs().root.der,
        vec![],
    )
    .unwrap_err();
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[test]
fn server_refuses_a_device_of_another_project() {
    let (_fx, _state, id) = provisioned(0x7153);
    let other = common::fixture();
    let err = handshake(
        &id,
        ChainToSend::DeviceAndSigner,
        &other.signer.certs().root.der,
        vec![],
    )
    .unwrap_err();
    // Both projects' roots carry the default profile's name, so the path builds by name and
    // the other root's key refuses the signature: the server's reason is the signature.
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::BadSignature)
    );
}

/// A CRL (DER) from the project's signer revoking the device certificates of `revoked`.
fn crl_revoking(fx: &common::Fixture, revoked: &[&SimIdentity]) -> Vec<u8> {
    let now = SystemTime::now();
    let entries: Vec<CrlEntry> = revoked
        .iter()
        .map(|id| CrlEntry {
            serial: Certificate::from_der(id.device_cert())
                .unwrap()
                .tbs_certificate()
                .serial_number()
                .clone(),
            revoked_at: now - Duration::from_secs(30),
            reason: None,
        })
        .collect();
    crl::build(
        &fx.signer,
        &CrlRequest {
            number: 1,
            this_update: now - Duration::from_secs(60),
            next_update: now + Duration::from_secs(86_400),
            entries: &entries,
        },
    )
    .unwrap()
    .der
}

#[test]
fn server_with_the_crl_refuses_a_revoked_device() {
    let (fx, _state, id) = provisioned(0x7154);
    let root = fx.signer.certs().root.der.clone();
    let crl_for = |revoked: &[&SimIdentity]| {
        vec![CertificateRevocationListDer::from(crl_revoking(
            &fx, revoked,
        ))]
    };
    // An empty CRL from the same signer: the device is accepted (the CRL itself is valid).
    handshake(&id, ChainToSend::DeviceAndSigner, &root, crl_for(&[])).unwrap();
    let err = handshake(&id, ChainToSend::DeviceAndSigner, &root, crl_for(&[&id])).unwrap_err();
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::Revoked)
    );
}

use common::mosquitto::{self, Mosquitto};

fn mosquitto_binary() -> Option<std::path::PathBuf> {
    mosquitto::binary()
}

/// Mosquitto with a self-signed server certificate (`server.pem` in `dir`, the clients' trust
/// anchor) and `root_pem` as the CA file.
fn start_mosquitto(bin: &Path, dir: &Path, root_pem: &str) -> Mosquitto {
    start_mosquitto_with(bin, dir, root_pem, None)
}

/// Mosquitto as [`start_mosquitto`], with `crlfile` set to `crl_der` when given.
fn start_mosquitto_with(
    bin: &Path,
    dir: &Path,
    root_pem: &str,
    crl_der: Option<&[u8]>,
) -> Mosquitto {
    let (cert, key) = server_cert();
    let files = mosquitto::BrokerFiles {
        ca_pem: root_pem,
        cert: cert.as_ref(),
        key: key.secret_der(),
        crl: crl_der,
    };
    mosquitto::start(bin, dir, &files)
}

#[test]
fn mosquitto_sees_the_chip_serial_as_the_user_name() {
    let Some(bin) = mosquitto_binary() else {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto; .ci/run does)");
        return;
    };
    let (fx, _state, id) = provisioned(0x7155);
    let dir = tempfile::tempdir().unwrap();
    let root_pem = fx.signer.certs().root.to_pem();
    let broker = start_mosquitto(&bin, dir.path(), &root_pem);
    // The broker's own certificate is the client's trust anchor here.
    let server_roots = tls::read_pem_certs(&dir.path().join("server.pem")).unwrap();
    let published = tls::connect_and_publish(
        id.clone(),
        &format!("127.0.0.1:{}", broker.port),
        &server_roots,
        b"hello from the chip",
    )
    .unwrap();
    assert_eq!(published.client_id, id.common_name());
    assert!(published.chip_signatures >= 1);
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(&broker.log).unwrap();
    let want = format!("u'{}'", id.common_name());
    assert!(log.contains(&want), "no {want} in Mosquitto's log:\n{log}");

    // A device of another project is refused by the broker's TLS layer.
    let (_fx2, _state2, other) = provisioned(0x7156);
    let refused = tls::connect_and_publish(
        other.clone(),
        &format!("127.0.0.1:{}", broker.port),
        &server_roots,
        b"x",
    );
    // The broker's reason, as the alert it sent: no path to its CA file.
    assert!(
        matches!(
            refused,
            Err(tls::TlsError::Tls(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA
            )))
        ),
        "a foreign device was let in or refused for another reason: {refused:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(&broker.log).unwrap();
    assert!(!log.contains(&format!("u'{}'", other.common_name())));
    // The broker's own reason: OpenSSL could not chain the certificate to its CA file.
    assert!(log.contains("certificate verify failed"), "{log}");
}

#[test]
fn sim_connect_publishes_with_the_demo_projects_device() {
    let Some(bin) = mosquitto_binary() else {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto; .ci/run does)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("demo");
    let demo = common::keystamp(work.path())
        .args(["demo", "--devices", "1", "--dir"])
        .arg(&project)
        .output()
        .unwrap();
    assert!(demo.status.success(), "{demo:?}");
    // The device's chain rebuilt through the identity API is the one the factory wrote out.
    let id = SimIdentity::open(&project.join("sim"), "dev00").unwrap();
    let out_dir = project.join("devices").join(id.common_name());
    let issued = tls::read_pem_certs(&out_dir.join("device.pem")).unwrap();
    assert_eq!(issued[0].as_ref(), id.device_cert());
    let issued = tls::read_pem_certs(&out_dir.join("signer.pem")).unwrap();
    assert_eq!(issued[0].as_ref(), id.signer_cert());
    drop(id);

    let dir = tempfile::tempdir().unwrap();
    let root_pem = std::fs::read_to_string(project.join("ca").join("root.pem")).unwrap();
    let broker = start_mosquitto(&bin, dir.path(), &root_pem);
    let out = common::keystamp(&project)
        .args(["sim", "connect", "--broker"])
        .arg(format!("127.0.0.1:{}", broker.port))
        .arg("--ca")
        .arg(dir.path().join("server.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    let cn = common::field(&text, "device").to_string();
    assert_eq!(common::field(&text, "topic"), format!("devices/{cn}/hello"));
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(&broker.log).unwrap();
    assert!(log.contains(&format!("u'{cn}'")), "no u'{cn}' in:\n{log}");
}

#[test]
fn mosquitto_with_the_crl_refuses_the_revoked_device_only() {
    let Some(bin) = mosquitto_binary() else {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto; .ci/run does)");
        return;
    };
    // Two devices of one project; the signer's CRL revokes the first.
    let fx = common::fixture();
    let state = tempfile::tempdir().unwrap();
    let ids: Vec<Arc<SimIdentity>> = ["dev00", "dev01"]
        .iter()
        .zip([0x7157, 0x7158])
        .map(|(name, seed)| {
            let dev = common::device(state.path(), name, seed, FaultConfig::default());
            let report = common::run(&fx, &dev);
            dev.stop();
            assert!(report.cn.is_some(), "{report:?}");
            Arc::new(SimIdentity::open(state.path(), name).unwrap())
        })
        .collect();
    let (revoked, good) = (&ids[0], &ids[1]);
    let dir = tempfile::tempdir().unwrap();
    let crl = crl_revoking(&fx, &[revoked]);
    let root_pem = fx.signer.certs().root.to_pem();
    let broker = start_mosquitto_with(&bin, dir.path(), &root_pem, Some(&crl));
    let server_roots = tls::read_pem_certs(&dir.path().join("server.pem")).unwrap();
    let address = format!("127.0.0.1:{}", broker.port);
    // The device the CRL does not name connects: the broker loaded a valid CRL.
    tls::connect_and_publish(good.clone(), &address, &server_roots, b"still trusted").unwrap();
    let refused = tls::connect_and_publish(revoked.clone(), &address, &server_roots, b"x");
    // The broker's reason, as the alert it sent: the certificate is revoked (OpenSSL's log
    // line says only "certificate verify failed").
    assert!(
        matches!(
            refused,
            Err(tls::TlsError::Tls(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRevoked
            )))
        ),
        "{refused:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(&broker.log).unwrap();
    assert!(log.contains(&format!("u'{}'", good.common_name())), "{log}");
    assert!(
        !log.contains(&format!("u'{}'", revoked.common_name())),
        "{log}"
    );
    assert!(log.contains("certificate verify failed"), "{log}");
}
