"""Rebuild a Trust&GO part's device certificate with Microchip's cryptoauthlib over a kit pty.

Usage: python3 microchip_kit.py SLAVE_PATH

Run by tests/microchip_kit.rs (with the LD_PRELOAD shim the kit test uses). cryptoauthlib picks
the certificate definition from the part's OTP code (tng_get_device_cert_def), reads the
compressed certificate, the signer public key (slot 11) and the device public key from the chip
and rebuilds the DER itself. Prints one JSON object: statuses and the certificate (hex). Exit
code 3 when the cryptoauthlib package is missing.
"""

import ctypes
import json
import sys

try:
    import cryptoauthlib as cal
    from cryptoauthlib.iface import ATCAIfaceCfg, _iface_load_default_config
    from cryptoauthlib.library import AtcaReference
    from cryptoauthlib import tng
except ImportError as err:
    print(f"cryptoauthlib not importable: {err}", file=sys.stderr)
    sys.exit(3)


def main():
    path = sys.argv[1]
    out = {}
    cal.load_cryptoauthlib()
    cfg = ATCAIfaceCfg.from_buffer_copy(_iface_load_default_config("cfg_ateccx08_kituart_default"))
    dev = ctypes.create_string_buffer(path.encode())
    cfg.cfg_data = ctypes.cast(dev, ctypes.c_void_p).value
    cfg.cfg.atcauart.parity = 2  # none
    out["init"] = int(cal.atcab_init(cfg))
    if out["init"] != 0:
        print(json.dumps(out))
        return
    try:
        size = AtcaReference(1024)
        cert = bytearray(1024)
        out["read_device_cert"] = int(tng.tng_atcacert_read_device_cert(cert, size))
        out["device_cert"] = bytes(cert[: size.value]).hex().upper()
        pub = bytearray(64)
        out["device_public_key_status"] = int(tng.tng_atcacert_device_public_key(pub, None))
        out["device_public_key"] = bytes(pub).hex().upper()
    finally:
        cal.atcab_release()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
