//! C interop: Microchip's cryptoauthlib rebuilds a keystamp-provisioned chip's certificates.
//!
//! A simulated device is provisioned by keystamp (a station run, or `keystamp demo`); its
//! emulated chip is then served over Microchip's kit protocol on a pty (as the `atecc-sim kit`
//! binary does, here in process), and a small C program, compiled with `cc` from the
//! definitions `keystamp certdef export-c` wrote and linked against the PyPI wheel's
//! `libcryptoauth.so`, calls `atcab_init`, `atcacert_read_cert` (signer, with the root public
//! key), `atcacert_get_subj_public_key` and `atcacert_read_cert` (device, with the signer's key
//! it just read). Both certificates must be byte-identical to the `devices/<serial>/*.pem` the
//! factory wrote. Cases: the devices of `keystamp demo`, and a project per `certdef from-cert`
//! definition form the certdef CLI tests use.
//!
//! Headers: the wheel ships no C headers, and CI may fetch nothing but registry packages, so the
//! program declares the few types and functions it uses itself ([`CAL_ABI_H`]), from the ABI the
//! wheel itself documents: the ctypes mirrors in its `atcacert.py` / `iface.py` / `library.py`
//! (field order, `_pack_ = 1` on the location and element structs, `cal_buffer` as length and
//! pointer) and the `*_size()` functions the library exports, which the program checks its
//! `sizeof`s against before it calls anything (a mismatch fails the test with both sizes). The
//! declarations were also compared with cryptoauthlib's public `atcacert_def.h`,
//! `atcacert_client.h` and `cal_buffer.h` (release v3.7.x) when this test was written.
//!
//! The wheel's UART HAL raises DTR with an ioctl a pty refuses; the program carries the same
//! modem-line shim as `crates/atecc-sim/tests/cryptoauthlib_kit.rs`. Skips with a printed
//! reason when `cc`, python3 or the `cryptoauthlib` package is missing. Unix only (ptys).
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keystamp::certdef_io;
use keystamp::project::Profile;
use keystamp::registry::Registry;
use keystamp_atecc_sim::kit::KitServer;
use keystamp_atecc_sim::{FaultConfig, SimChip, SimOptions, StdDelay};
use serialport::SerialPort;
use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem};

/// The declarations the test program needs, as the wheel's ABI has them (see the module doc).
/// Written to `atcacert/atcacert_def.h`, the header `export-c` includes by default.
const CAL_ABI_H: &str = r#"
/* Declared by keystamp's test from the ABI of the cryptoauthlib PyPI wheel (its ctypes
 * mirrors and exported *_size() functions); not Microchip's header. */
#ifndef KEYSTAMP_CAL_ABI_H
#define KEYSTAMP_CAL_ABI_H
#include <stddef.h>
#include <stdint.h>

typedef enum { CERTTYPE_X509 = 0, CERTTYPE_CUSTOM = 1, CERTTYPE_X509_FULL_STORED = 2 } atcacert_cert_type_t;
typedef enum {
    SNSRC_STORED = 0x0, SNSRC_STORED_DYNAMIC = 0x7, SNSRC_DEVICE_SN = 0x8, SNSRC_SIGNER_ID = 0x9,
    SNSRC_PUB_KEY_HASH = 0xA, SNSRC_DEVICE_SN_HASH = 0xB, SNSRC_PUB_KEY_HASH_POS = 0xC,
    SNSRC_DEVICE_SN_HASH_POS = 0xD, SNSRC_PUB_KEY_HASH_RAW = 0xE, SNSRC_DEVICE_SN_HASH_RAW = 0xF
} atcacert_cert_sn_src_t;
typedef enum {
    DEVZONE_CONFIG = 0, DEVZONE_OTP = 1, DEVZONE_DATA = 2, DEVZONE_GENKEY = 3,
    DEVZONE_DEDICATED_DATA = 4, DEVZONE_NONE = 7
} atcacert_device_zone_t;
typedef enum {
    STDCERT_PUBLIC_KEY, STDCERT_SIGNATURE, STDCERT_ISSUE_DATE, STDCERT_EXPIRE_DATE,
    STDCERT_SIGNER_ID, STDCERT_CERT_SN, STDCERT_AUTH_KEY_ID, STDCERT_SUBJ_KEY_ID,
    STDCERT_NUM_ELEMENTS
} atcacert_std_cert_element_t;
typedef enum {
    TF_NONE, TF_REVERSE, TF_BIN2HEX_UC, TF_BIN2HEX_LC, TF_HEX2BIN_UC, TF_HEX2BIN_LC,
    TF_BIN2HEX_SPACE_UC, TF_BIN2HEX_SPACE_LC, TF_HEX2BIN_SPACE_UC, TF_HEX2BIN_SPACE_LC
} atcacert_transform_t;
typedef uint8_t atcacert_date_format_t;
#define DATEFMT_ISO8601_SEP 0
#define DATEFMT_RFC5280_UTC 1
#define DATEFMT_POSIX_UINT32_BE 2
#define DATEFMT_POSIX_UINT32_LE 3
#define DATEFMT_RFC5280_GEN 4

#pragma pack(push, 1)
typedef struct {
    atcacert_device_zone_t zone; uint16_t slot; uint8_t is_genkey; uint16_t offset; uint16_t count;
} atcacert_device_loc_t;
typedef struct { uint16_t offset; uint16_t count; } atcacert_cert_loc_t;
typedef struct {
    char id[25]; atcacert_device_loc_t device_loc; atcacert_cert_loc_t cert_loc;
    atcacert_transform_t transforms[2];
} atcacert_cert_element_t;
#pragma pack(pop)

typedef struct atcacert_def_s {
    atcacert_cert_type_t type;
    atcacert_device_loc_t comp_cert_dev_loc;
    uint16_t private_key_slot;
    uint8_t template_id;
    uint8_t chain_id;
    uint16_t std_sig_size;
    atcacert_cert_sn_src_t sn_source;
    atcacert_device_loc_t cert_sn_dev_loc;
    atcacert_date_format_t issue_date_format;
    atcacert_date_format_t expire_date_format;
    atcacert_cert_loc_t tbs_cert_loc;
    uint8_t expire_years;
    atcacert_device_loc_t public_key_dev_loc;
    atcacert_cert_loc_t std_cert_elements[STDCERT_NUM_ELEMENTS];
    const atcacert_cert_element_t* cert_elements;
    uint8_t cert_elements_count;
    const uint8_t* cert_template;
    uint16_t cert_template_size;
    const struct atcacert_def_s* ca_cert_def;
} atcacert_def_t;

/* Length and pointer; `next` exists only in builds with MULTIPART_BUF_EN (the wheel's ctypes
 * mirror has two fields): kept NULL so either layout reads the same. */
typedef struct { size_t len; uint8_t* buf; void* next; } cal_buffer;

/* The interface configuration: iface type, device type, a 64-byte HAL union (its largest
 * member is eight pointers), wake delay, retries, cfg_data. */
typedef struct {
    int iface_type;
    int devtype;
    union {
        struct {
            int dev_interface; uint8_t dev_identity; uint8_t port; uint32_t baud;
            uint8_t wordsize; uint8_t parity; uint8_t stopbits;
        } atcauart;
        void* atcacustom[8];
    } cfg;
    uint16_t wake_delay;
    int rx_retries;
    void* cfg_data;
} ATCAIfaceCfg;

extern ATCAIfaceCfg cfg_ateccx08_kituart_default;
int atcab_init(ATCAIfaceCfg* cfg);
int atcab_release(void);
int atcacert_read_cert(const atcacert_def_t* cert_def, const cal_buffer* ca_public_key,
                       uint8_t* cert, size_t* cert_size);
int atcacert_get_subj_public_key(const atcacert_def_t* cert_def, const uint8_t* cert,
                                 size_t cert_size, cal_buffer* subj_public_key);
size_t atcacert_def_t_size(void);
size_t atcacert_device_loc_t_size(void);
size_t atcacert_cert_loc_t_size(void);
size_t atcacert_cert_element_t_size(void);
size_t atcacert_date_format_t_size(void);
size_t ATCAIfaceCfg_size(void);
#endif
"#;

/// The test program: `read_certs PTY ROOT_PUBLIC_KEY_HEX SIGNER_OUT DEVICE_OUT`. Exit codes: 0
/// done, 2 ABI mismatch, 3 a library call failed (its status on stderr), 4 bad arguments/IO.
const READ_CERTS_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include "atcacert/atcacert_def.h"

extern const atcacert_def_t g_cert_def_signer;
extern const atcacert_def_t g_cert_def_device;

/* A pty has no modem lines: let the HAL's DTR/RTS ioctls succeed (as the kit test's shim). */
int ioctl(int fd, unsigned long req, ...) {
    static int (*real)(int, unsigned long, ...);
    va_list ap;
    va_start(ap, req);
    void* arg = va_arg(ap, void*);
    va_end(ap);
    if (!real) real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    int rc = real(fd, req, arg);
    if (rc != 0 && (req == TIOCMBIS || req == TIOCMBIC || req == TIOCMSET || req == TIOCMGET)) {
        if (req == TIOCMGET && arg) *(int*)arg = TIOCM_DTR | TIOCM_RTS | TIOCM_CTS | TIOCM_DSR;
        return 0;
    }
    return rc;
}

static int same_size(const char* what, size_t ours, size_t lib) {
    if (ours == lib) return 1;
    fprintf(stderr, "ABI mismatch: sizeof(%s) is %zu here, %zu in libcryptoauth\n", what, ours, lib);
    return 0;
}

static int unhex(const char* s, uint8_t* out, size_t n) {
    if (strlen(s) != 2 * n) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return 0;
        out[i] = (uint8_t)v;
    }
    return 1;
}

static int save(const char* path, const uint8_t* data, size_t len) {
    FILE* f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

int main(int argc, char** argv) {
    if (argc != 5) return 4;
    int abi = same_size("atcacert_def_t", sizeof(atcacert_def_t), atcacert_def_t_size())
        & same_size("atcacert_device_loc_t", sizeof(atcacert_device_loc_t), atcacert_device_loc_t_size())
        & same_size("atcacert_cert_loc_t", sizeof(atcacert_cert_loc_t), atcacert_cert_loc_t_size())
        & same_size("atcacert_cert_element_t", sizeof(atcacert_cert_element_t), atcacert_cert_element_t_size())
        & same_size("atcacert_date_format_t", sizeof(atcacert_date_format_t), atcacert_date_format_t_size())
        & same_size("ATCAIfaceCfg", sizeof(ATCAIfaceCfg), ATCAIfaceCfg_size());
    if (!abi) return 2;

    uint8_t root_key[64];
    if (!unhex(argv[2], root_key, sizeof root_key)) return 4;

    ATCAIfaceCfg cfg = cfg_ateccx08_kituart_default;
    cfg.cfg_data = argv[1];          /* the device file (at most 18 characters) */
    cfg.cfg.atcauart.parity = 2;     /* none */
    int rc = atcab_init(&cfg);
    if (rc != 0) { fprintf(stderr, "atcab_init: %d\n", rc); return 3; }

    cal_buffer root = { sizeof root_key, root_key, NULL };
    uint8_t signer[1024];
    size_t signer_len = sizeof signer;
    rc = atcacert_read_cert(&g_cert_def_signer, &root, signer, &signer_len);
    if (rc != 0) { fprintf(stderr, "atcacert_read_cert(signer): %d\n", rc); atcab_release(); return 3; }

    uint8_t signer_key[64];
    cal_buffer signer_pk = { sizeof signer_key, signer_key, NULL };
    rc = atcacert_get_subj_public_key(&g_cert_def_signer, signer, signer_len, &signer_pk);
    if (rc != 0) { fprintf(stderr, "atcacert_get_subj_public_key: %d\n", rc); atcab_release(); return 3; }

    uint8_t device[1024];
    size_t device_len = sizeof device;
    rc = atcacert_read_cert(&g_cert_def_device, &signer_pk, device, &device_len);
    atcab_release();
    if (rc != 0) { fprintf(stderr, "atcacert_read_cert(device): %d\n", rc); return 3; }

    if (!save(argv[3], signer, signer_len) || !save(argv[4], device, device_len)) return 4;
    return 0;
}
"#;

/// Where the wheel's `libcryptoauth.so` is, or why this test cannot run here.
fn cryptoauthlib_dir() -> Result<PathBuf, String> {
    if !cfg!(target_os = "linux") {
        return Err("the wheel's UART HAL and the ioctl shim are Linux-only".into());
    }
    let cc = Command::new("cc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !cc.is_ok_and(|s| s.success()) {
        return Err("no C compiler (cc)".into());
    }
    // Found without importing the package (its import loads the library).
    let probe = Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('cryptoauthlib'); \
             print(list(s.submodule_search_locations)[0] if s else '')",
        ])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("python3 not runnable: {e}"))?;
    let dir = PathBuf::from(String::from_utf8_lossy(&probe.stdout).trim());
    if dir.as_os_str().is_empty() || !dir.join("libcryptoauth.so").exists() {
        return Err(
            "python3 has no cryptoauthlib package with libcryptoauth.so (pip install cryptoauthlib)"
                .into(),
        );
    }
    Ok(dir)
}

/// The emulated chip of a provisioned device, served over the kit protocol on a pty in this
/// process until dropped.
struct KitPort {
    path: String,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    // Held open so the master never sees a hang-up between client sessions.
    _slave: serialport::TTYPort,
}

impl KitPort {
    fn serve(chip_file: &Path) -> KitPort {
        let chip = SimChip::load_with(chip_file, SimOptions::default()).unwrap();
        let (mut master, slave) = serialport::TTYPort::pair().unwrap();
        let path = slave.name().unwrap();
        // hal_uart_init copies cfg_data into a 19-byte buffer (kit-protocol.md §2).
        assert!(path.len() <= 18, "pty path {path} too long for the HAL");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let server = std::thread::spawn(move || {
            let mut kit = KitServer::for_chip(chip, StdDelay);
            kit.serve(&mut master, &flag)
        });
        KitPort {
            path,
            stop,
            server: Some(server),
            _slave: slave,
        }
    }
}

impl Drop for KitPort {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// The signer and device definitions as `keystamp certdef export-c` writes them.
struct ExportedDefs {
    signer_c: String,
    device_c: String,
}

fn export_c(signer_def: &Path, device_def: &Path) -> ExportedDefs {
    let export = |def: &Path, args: &[&str]| {
        let mut cmd = common::keystamp(Path::new("."));
        cmd.args(["certdef", "export-c", "--def"])
            .arg(def)
            .args(args);
        common::ok(common::run_cli(&mut cmd))
    };
    ExportedDefs {
        signer_c: export(signer_def, &["--name", "g_cert_def_signer"]),
        device_c: export(
            device_def,
            &[
                "--name",
                "g_cert_def_device",
                "--ca-name",
                "g_cert_def_signer",
            ],
        ),
    }
}

/// Compiles the test program with `defs` in `dir`; returns the executable.
fn compile(dir: &Path, lib_dir: &Path, defs: &ExportedDefs) -> PathBuf {
    compile_with(dir, lib_dir, defs, CAL_ABI_H)
}

/// Compiles the test program against the declarations `abi_h`.
fn compile_with(dir: &Path, lib_dir: &Path, defs: &ExportedDefs, abi_h: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("atcacert")).unwrap();
    std::fs::write(dir.join("atcacert/atcacert_def.h"), abi_h).unwrap();
    std::fs::write(dir.join("read_certs.c"), READ_CERTS_C).unwrap();
    std::fs::write(dir.join("cert_def_signer.c"), &defs.signer_c).unwrap();
    std::fs::write(dir.join("cert_def_device.c"), &defs.device_c).unwrap();
    let exe = dir.join("read_certs");
    let mut cc = Command::new("cc");
    cc.current_dir(dir)
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I."])
        .args([
            "read_certs.c",
            "cert_def_signer.c",
            "cert_def_device.c",
            "-o",
        ])
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        // The wheel's bundled dependencies (libusb, libudev), found at run time through the
        // library's own rpath; the link step needs to see them too.
        .arg(format!(
            "-Wl,-rpath-link,{}",
            lib_dir.join("../cryptoauthlib.libs").display()
        ))
        .args(["-l:libcryptoauth.so", "-ldl", "-rdynamic"]);
    let out = common::output_of(&mut cc).unwrap();
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// The X‖Y public key of a PEM certificate, read with x509-cert (not keystamp's code).
fn public_key_of(pem: &str) -> [u8; 64] {
    let cert = Certificate::from_pem(pem).unwrap();
    let bits = cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec();
    assert_eq!(
        (bits.len(), bits[0]),
        (65, 0x04),
        "an uncompressed P-256 point"
    );
    bits[1..].try_into().unwrap()
}

fn der_of(pem_file: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem_file).unwrap();
    let (label, der) = x509_cert::der::pem::decode_vec(text.as_bytes()).unwrap();
    assert_eq!(label, "CERTIFICATE");
    // A well-formed certificate, so the comparison is between certificates.
    Certificate::from_der(&der).unwrap();
    der
}

/// Runs the compiled program against `chip_file` and checks the two certificates it rebuilt
/// against the factory's `device.pem` and `signer.pem` in `out_dir`.
fn rebuild_matches(exe: &Path, chip_file: &Path, root_pem: &str, out_dir: &Path, what: &str) {
    let kit = KitPort::serve(chip_file);
    let work = tempfile::tempdir().unwrap();
    let (signer_out, device_out) = (
        work.path().join("signer.der"),
        work.path().join("device.der"),
    );
    let mut run = Command::new(exe);
    run.arg(&kit.path)
        .arg(hex::encode(public_key_of(root_pem)))
        .arg(&signer_out)
        .arg(&device_out)
        .stdin(Stdio::null());
    let out = common::output_of(&mut run).unwrap();
    drop(kit);
    assert!(
        out.status.success(),
        "{what}: read_certs exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let signer = std::fs::read(&signer_out).unwrap();
    let device = std::fs::read(&device_out).unwrap();
    assert_eq!(
        hex::encode(&signer),
        hex::encode(der_of(&out_dir.join("signer.pem"))),
        "{what}: signer certificate rebuilt by cryptoauthlib"
    );
    assert_eq!(
        hex::encode(&device),
        hex::encode(der_of(&out_dir.join("device.pem"))),
        "{what}: device certificate rebuilt by cryptoauthlib"
    );
}

/// The library's directory, or `None` after printing why the test is skipped.
fn cryptoauthlib_or_skip() -> Option<PathBuf> {
    cryptoauthlib_dir()
        .map_err(|reason| eprintln!("SKIPPED: cryptoauthlib C rebuild: {reason}"))
        .ok()
}

/// `keystamp demo --devices N` in `work/demo`, and its definitions exported as C.
fn demo_project(work: &Path, devices: u32) -> (PathBuf, ExportedDefs) {
    let project = work.join("demo");
    let mut demo = common::keystamp(work);
    demo.args(["demo", "--devices", &devices.to_string(), "--dir"])
        .arg(&project);
    common::ok(common::run_cli(&mut demo));
    let defs = export_c(
        &project.join("signer-def.json"),
        &project.join("device-def.json"),
    );
    (project, defs)
}

#[test]
fn cryptoauthlib_rebuilds_the_demo_projects_devices() {
    let Some(lib_dir) = cryptoauthlib_or_skip() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (project, defs) = demo_project(work.path(), 2);
    let exe = compile(&work.path().join("c"), &lib_dir, &defs);
    let root_pem = std::fs::read_to_string(project.join("ca/root.pem")).unwrap();
    let mut devices = 0;
    for name in ["dev00", "dev01"] {
        let id = keystamp::ops::tls::SimIdentity::open(&project.join("sim"), name).unwrap();
        let out_dir = project.join("devices").join(id.common_name());
        drop(id);
        let chip_file = project.join("sim").join(format!("{name}.chip.json"));
        rebuild_matches(&exe, &chip_file, &root_pem, &out_dir, name);
        devices += 1;
    }
    assert_eq!(devices, 2);
}

/// A project whose device definition is `keystamp certdef from-cert SAMPLE <form>` of a sample
/// certificate its own signer issued, and whose signer definition is `from-cert --role
/// signer` of its signer certificate; one simulated device provisioned by a station run.
/// Without `--cn-serial` the template's CN is every device's CN, so the profile names one fixed
/// CN (the station refuses a definition whose CN differs from the profile's).
/// Returns the project fixture, the device's state directory and its output directory.
fn provisioned_with_form(
    form: &[&str],
    seed: u64,
) -> (common::Fixture, tempfile::TempDir, PathBuf) {
    let mut profile = Profile::default();
    if !form.contains(&"--cn-serial") {
        profile.certificates.cn = "keystamp C interop device".into();
    }
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    keystamp::pki::ca::create(
        &ca_dir,
        &profile.ca,
        &keystamp::pki::ca::KeyProtection::Unencrypted,
        std::time::SystemTime::now(),
    )
    .unwrap();
    let signer = keystamp::pki::ca::Signer::unlock(&ca_dir, None).unwrap();
    // The sample: a device certificate as the project issues one, for a sample chip.
    let chip = [0x01, 0x23, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07];
    let cn = profile.device_cn(&chip);
    let sample = signer
        .issue_device_certificate(&keystamp::pki::ca::DeviceCertRequest {
            chip_serial: chip,
            public_key: signer.certs().signer_public_key().unwrap(),
            organization: &profile.ca.organization,
            cn: &cn,
            validity_years: profile.certificates.validity_years,
            now: std::time::SystemTime::now(),
        })
        .unwrap();
    let defs = dir.path().join("certdefs");
    std::fs::create_dir_all(&defs).unwrap();
    let sample_pem = defs.join("sample.pem");
    std::fs::write(&sample_pem, keystamp::pki::ca::der_to_pem(&sample)).unwrap();
    let signer_pem = ca_dir.join("signer.pem");
    let from_cert = |cert: &Path, args: &[&str], file: &str| {
        let mut cmd = common::keystamp(dir.path());
        cmd.args(["certdef", "from-cert"]).arg(cert).args(args);
        let json = common::ok(common::run_cli(&mut cmd));
        let path = defs.join(file);
        std::fs::write(&path, json).unwrap();
        path
    };
    let signer_def = from_cert(&signer_pem, &["--role", "signer"], "signer.json");
    let device_def = from_cert(&sample_pem, form, "device.json");
    let material = keystamp::setup::material_from_parts(
        &profile,
        &signer,
        certdef_io::load_def(device_def.to_str().unwrap()).unwrap(),
        certdef_io::load_def(signer_def.to_str().unwrap()).unwrap(),
        keystamp::setup::default_config_bytes(&profile).unwrap(),
        dir.path().join("devices"),
    )
    .unwrap_or_else(|e| panic!("{form:?}: {e}"));
    let mut registry = Registry::open(&dir.path().join("registry.sqlite")).unwrap();
    registry.set_record_signer(Box::new(signer.clone()));
    let fx = common::Fixture {
        dir,
        signer,
        material,
        registry: std::sync::Mutex::new(registry),
    };
    let state = tempfile::tempdir().unwrap();
    let dev = common::device(state.path(), "dev00", seed, FaultConfig::default());
    let report = common::run(&fx, &dev);
    dev.stop();
    let chip = report
        .chip_serial
        .unwrap_or_else(|| panic!("{form:?}: {report:?}"));
    assert!(report.cn.is_some(), "{form:?}: not provisioned: {report:?}");
    let out_dir = keystamp::outputs::DeviceOutputs::paths(
        &fx.dir.path().join("devices"),
        keystamp::registry::ChipSerial(chip),
    )
    .dir;
    (fx, state, out_dir)
}

/// A chip holding a certificate of a stored-serial form (`SNSRC_STORED`, `SNSRC_STORED_DYNAMIC`).
///
/// A station cannot issue these (it has no serial number to store: `material_from_parts`
/// refuses the definition), so the chip is one a station provisioned with the default form (its
/// key, config and signer slots), and the device certificate of the stored form is issued by the
/// project's signer for that chip's key and written to the chip as `keystamp certdef split`
/// lays it out (the stored serial in slot 9, the compressed certificate in slot 10). Returns the
/// project, the state directory and the directory with the `device.pem` / `signer.pem` to
/// match.
fn stored_form_chip(
    form: &[&str],
    seed: u64,
) -> (common::Fixture, tempfile::TempDir, tempfile::TempDir) {
    let (fx, state, issued_dir) = provisioned_with_form(&[], seed);
    let defs = fx.dir.path().join("certdefs");
    let profile_cn = "keystamp C interop device";
    let chip_file = state.path().join("dev00.chip.json");
    let mut nv = SimChip::load_with(&chip_file, SimOptions::default())
        .unwrap()
        .state()
        .clone();
    let mut chip_serial = [0u8; 9];
    chip_serial[..4].copy_from_slice(&nv.config[..4]);
    chip_serial[4..].copy_from_slice(&nv.config[8..13]);
    let device_pem = std::fs::read_to_string(issued_dir.join("device.pem")).unwrap();
    let cert = fx
        .signer
        .issue_device_certificate(&keystamp::pki::ca::DeviceCertRequest {
            chip_serial,
            public_key: public_key_of(&device_pem),
            organization: &Profile::default().ca.organization,
            cn: profile_cn,
            validity_years: Profile::default().certificates.validity_years,
            now: std::time::SystemTime::now(),
        })
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let cert_pem = out.path().join("device.pem");
    std::fs::write(&cert_pem, keystamp::pki::ca::der_to_pem(&cert)).unwrap();
    std::fs::copy(issued_dir.join("signer.pem"), out.path().join("signer.pem")).unwrap();
    let ks = |args: &[&str]| {
        let mut cmd = common::keystamp(fx.dir.path());
        cmd.args(args);
        common::ok(common::run_cli(&mut cmd))
    };
    let def = defs.join("device.json");
    let sample = defs.join("sample.pem");
    std::fs::write(
        &def,
        ks(&[&["certdef", "from-cert", sample.to_str().unwrap()], form].concat()),
    )
    .unwrap();
    let signer_key = hex::encode(fx.signer.certs().signer_public_key().unwrap());
    let image: serde_json::Value = serde_json::from_str(&ks(&[
        "certdef",
        "split",
        "--def",
        def.to_str().unwrap(),
        "--cert",
        cert_pem.to_str().unwrap(),
        "--ca-public-key",
        &signer_key,
    ]))
    .unwrap();
    let slots = image["slots"].as_object().unwrap();
    assert!(
        slots.contains_key("9"),
        "{form:?}: no stored serial in {image}"
    );
    for (slot, bytes) in slots {
        let slot: usize = slot.parse().unwrap();
        let bytes = hex::decode(bytes.as_str().unwrap()).unwrap();
        nv.slots[slot][..bytes.len()].copy_from_slice(&bytes);
    }
    SimChip::from_state(nv, SimOptions::default())
        .save(&chip_file)
        .unwrap();
    (fx, state, out)
}

/// Exports the project's `certdefs/` as C, compiles the program and checks the rebuild of the
/// chip in `state` against `out_dir`; returns what was checked.
fn check_form(
    lib_dir: &Path,
    fx: &common::Fixture,
    state: &Path,
    out_dir: &Path,
    form: &[&str],
) -> String {
    let defs_dir = fx.dir.path().join("certdefs");
    let defs = export_c(&defs_dir.join("signer.json"), &defs_dir.join("device.json"));
    let exe = compile(&fx.dir.path().join("c"), lib_dir, &defs);
    let root_pem = fx.signer.certs().root.to_pem();
    let what = format!("from-cert {form:?}");
    rebuild_matches(
        &exe,
        &state.join("dev00.chip.json"),
        &root_pem,
        out_dir,
        &what,
    );
    what
}

#[test]
fn cryptoauthlib_rebuilds_every_from_cert_form() {
    let Some(lib_dir) = cryptoauthlib_or_skip() else {
        return;
    };
    // The device-definition forms of crates/host/tests/certdef_cli.rs: the defaults (the
    // serial number 40 ‖ chip serial gives SNSRC_DEVICE_SN), a role and template id, and the
    // chip serial in the CN as custom elements with the CA link; each provisioned by a station.
    let forms: [&[&str]; 3] = [
        &[],
        &["--role", "device", "--template-id", "0"],
        &["--cn-serial", "upper", "--ca-def", "signer"],
    ];
    let mut checked = Vec::new();
    for (i, form) in forms.iter().enumerate() {
        let (fx, state, out_dir) = provisioned_with_form(form, 0x18C0 + i as u64);
        checked.push(check_form(&lib_dir, &fx, state.path(), &out_dir, form));
    }
    // The two stored serial numbers (`stored_serial_numbers_round_trip`).
    let stored: [&[&str]; 2] = [
        &["--sn-source", "SNSRC_STORED", "--cert-sn-slot", "9"],
        &["--sn-source", "stored_dynamic", "--cert-sn-slot", "9"],
    ];
    for (i, form) in stored.iter().enumerate() {
        let (fx, state, out) = stored_form_chip(form, 0x18D0 + i as u64);
        checked.push(check_form(&lib_dir, &fx, state.path(), out.path(), form));
    }
    assert_eq!(checked.len(), 5, "{checked:?}");
}

/// The program's ABI check works: declarations laid out differently from the library's (the
/// location structs without `#pragma pack`, as in a careless copy) stop it before any call.
#[test]
fn a_layout_that_differs_from_the_library_is_refused() {
    let Some(lib_dir) = cryptoauthlib_or_skip() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (_project, defs) = demo_project(work.path(), 1);
    let unpacked = CAL_ABI_H
        .replace("#pragma pack(push, 1)", "")
        .replace("#pragma pack(pop)", "");
    let exe = compile_with(&work.path().join("c"), &lib_dir, &defs, &unpacked);
    let out = common::output_of(Command::new(&exe).args(["/dev/null", "00", "a", "b"])).unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ABI mismatch: sizeof(atcacert_device_loc_t) is 12 here, 11 in libcryptoauth"),
        "{err}"
    );
}
