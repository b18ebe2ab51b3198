//! Mosquitto (Debian's package) as the tests' real MQTT broker: on a free 127.0.0.1 port, client
//! certificates required, the certificate's CN as user name, everything logged to a file.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running broker; killed on drop.
pub struct Mosquitto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its log file (`log_type all`, connection messages).
    pub log: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The installed broker, if any.
pub fn binary() -> Option<PathBuf> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// What the broker is given (DER unless named PEM).
pub struct BrokerFiles<'a> {
    /// `cafile`: the certificates client certificates must chain to (PEM, one or more).
    pub ca_pem: &'a str,
    /// The broker's own certificate.
    pub cert: &'a [u8],
    /// Its PKCS#8 private key.
    pub key: &'a [u8],
    /// `crlfile`, when given.
    pub crl: Option<&'a [u8]>,
}

/// Writes the files (`server.pem`, `server.key`, `ca.pem`, `crl.pem`) and a configuration into
/// `dir`, starts `bin` on it and waits (bounded) for its listener.
pub fn start(bin: &Path, dir: &Path, files: &BrokerFiles<'_>) -> Mosquitto {
    let write = |name: &str, label: &str, der: &[u8]| {
        let p = dir.join(name);
        let pem = keystamp::pki::ca::der_to_pem(der).replace("CERTIFICATE", label);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let cert_file = write("server.pem", "CERTIFICATE", files.cert);
    let key_file = write("server.key", "PRIVATE KEY", files.key);
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, files.ca_pem).unwrap();
    let crl_line = match files.crl {
        Some(der) => format!("crlfile {}\n", write("crl.pem", "X509 CRL", der).display()),
        None => String::new(),
    };
    // A free port: bind, read it, release (Mosquitto binds it right after).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.join("mosquitto.log");
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nper_listener_settings false\nlistener {port} 127.0.0.1\ncafile {}\ncertfile {}\n\
             keyfile {}\nrequire_certificate true\nuse_identity_as_username true\n\
             allow_anonymous false\nlog_dest file {}\nlog_type all\nconnection_messages true\n{crl_line}",
            ca_file.display(),
            cert_file.display(),
            key_file.display(),
            log.display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Mosquitto { child, port, log }
}
