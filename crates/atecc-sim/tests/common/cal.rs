//! Running Microchip's cryptoauthlib (the PyPI wheel's `libcryptoauth.so`) against a kit-protocol
//! pty: the prerequisites and the `LD_PRELOAD` shim its UART HAL needs on a pty. Shared with the
//! host crate's tests (`#[path]`), which drive simulated Trust&GO parts the same way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Makes the modem-control ioctls succeed on a pty (which has no modem lines); every other
/// ioctl, and these ones on real serial ports, go to libc unchanged.
pub const SHIM_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <termios.h>
int ioctl(int fd, unsigned long req, ...) {
    static int (*real)(int, unsigned long, ...);
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (!real) real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    int rc = real(fd, req, arg);
    if (rc != 0 && (req == TIOCMBIS || req == TIOCMBIC || req == TIOCMSET || req == TIOCMGET)) {
        if (req == TIOCMGET && arg) *(int *)arg = TIOCM_DTR | TIOCM_RTS | TIOCM_CTS | TIOCM_DSR;
        return 0;
    }
    return rc;
}
"#;

/// The shim's path, or why the test cannot run here.
pub fn prerequisites(dir: &Path) -> Result<PathBuf, String> {
    if !cfg!(target_os = "linux") {
        return Err("the wheel's UART HAL and the shim are Linux-only".into());
    }
    let probe = Command::new("python3")
        .args(["-c", "import cryptoauthlib"])
        .stderr(Stdio::null())
        .status();
    match probe {
        Err(e) => return Err(format!("python3 not runnable: {e}")),
        Ok(s) if !s.success() => {
            return Err("python3 has no cryptoauthlib package (pip install cryptoauthlib)".into());
        }
        Ok(_) => {}
    }
    let src = dir.join("dtr_shim.c");
    let lib = dir.join("dtr_shim.so");
    std::fs::write(&src, SHIM_C).unwrap();
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output();
    match built {
        Err(e) => Err(format!("cc not runnable: {e}")),
        Ok(out) if !out.status.success() => Err(format!(
            "cc could not build the ioctl shim: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Ok(_) => Ok(lib),
    }
}
