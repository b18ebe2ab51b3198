"""Drive an `atecc-sim kit` pty with Microchip's cryptoauthlib (PyPI wheel, its own C library).

Usage: python3 cryptoauthlib_kit.py SLAVE_PATH {full|info}

Run by tests/cryptoauthlib_kit.rs with an LD_PRELOAD shim that lets the HAL's DTR ioctl succeed
on a pty. Prints one JSON object on stdout: every atcab_* status and the bytes it returned (hex),
so the Rust test asserts them against facts that do not come from this script. Exit code 0 even
when a call fails (the statuses say what failed); 3 when the cryptoauthlib package is missing.
"""

import ctypes
import hashlib
import json
import sys

try:
    import cryptoauthlib as cal
    from cryptoauthlib.iface import ATCAIfaceCfg, _iface_load_default_config
    from cryptoauthlib.library import AtcaReference
    from cryptoauthlib.status import Status
except ImportError as err:
    print(f"cryptoauthlib not importable: {err}", file=sys.stderr)
    sys.exit(3)

LOCK_ZONE_CONFIG = 0
LOCK_ZONE_DATA = 1
# A writable config byte pair changed before the lock: SlotConfig of slot 14 (bytes 48..49) from
# the factory 00 00 to 00 80 (WriteConfig = Never), so the read-back proves the write landed.
SLOT14_SLOTCONFIG = 48


def hexs(data):
    return bytes(data).hex().upper()


def openssl_verify(public_xy, digest, sig):
    """Checks the chip's signature with `cryptography` (OpenSSL); None when it is missing."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils
    except ImportError:
        return None
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + bytes(public_xy))
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    der = utils.encode_dss_signature(r, s)
    try:
        key.verify(der, bytes(digest), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        return True
    except InvalidSignature:
        return False


def main():
    path, mode = sys.argv[1], sys.argv[2]
    out = {"steps": []}

    def step(name, status, **values):
        out["steps"].append(name)
        code = int(status)
        try:
            label = Status(code).name
        except ValueError:
            label = f"unknown status {code}"
        out[name] = {"status": label, **values}
        return code == 0

    cal.load_cryptoauthlib()
    lib = cal.get_cryptoauthlib()
    # The wheel exports cfg_ateccx08_kituart_default but has no Python helper for it.
    cfg = ATCAIfaceCfg.from_buffer_copy(_iface_load_default_config("cfg_ateccx08_kituart_default"))
    # hal_uart_init uses cfg_data as the device file name (at most 18 characters) when set.
    dev = ctypes.create_string_buffer(path.encode())
    cfg.cfg_data = ctypes.cast(dev, ctypes.c_void_p).value
    cfg.cfg.atcauart.parity = 2  # none (0 would be even)
    out["iface_type"] = int(cfg.iface_type)
    out["devtype"] = int(cfg.devtype)

    if not step("init", cal.atcab_init(cfg)):
        return out
    try:
        rev = bytearray(4)
        step("info", cal.atcab_info(rev), revision=hexs(rev))
        sn = bytearray(9)
        step("serial", cal.atcab_read_serial_number(sn), serial=hexs(sn))
        rnd = bytearray(32)
        step("random_unlocked", cal.atcab_random(rnd), random=hexs(rnd))
        config = bytearray(128)
        step("read_config", cal.atcab_read_config_zone(config), config=hexs(config))
        if mode != "full":
            return out

        new = bytearray(config)
        new[SLOT14_SLOTCONFIG:SLOT14_SLOTCONFIG + 2] = b"\x00\x80"
        if not step("write_config", cal.atcab_write_config_zone(bytes(new))):
            return out
        back = bytearray(128)
        step("read_config_after_write", cal.atcab_read_config_zone(back), config=hexs(back))
        # Lock with the CRC computed by the library's own atCRC over the config it read back.
        crc_le = (ctypes.c_uint8 * 2)()
        lib.atCRC(ctypes.c_size_t(128), bytes(back), crc_le)
        crc = crc_le[0] | (crc_le[1] << 8)
        # A wrong CRC must be refused and leave the zone unlocked.
        step("lock_config_bad_crc", cal.atcab_lock_config_zone_crc(crc ^ 0xFFFF))
        locked = AtcaReference(False)
        step("config_locked_after_bad_crc", cal.atcab_is_locked(LOCK_ZONE_CONFIG, locked),
             locked=bool(locked.value))
        if not step("lock_config", cal.atcab_lock_config_zone_crc(crc), crc=f"{crc:04X}"):
            return out
        locked = AtcaReference(False)
        step("config_locked", cal.atcab_is_locked(LOCK_ZONE_CONFIG, locked),
             locked=bool(locked.value))
        rnd = bytearray(32)
        step("random_locked", cal.atcab_random(rnd), random=hexs(rnd))

        pub = bytearray(64)
        if not step("genkey", cal.atcab_genkey(0, pub), public_key=hexs(pub)):
            return out
        pub2 = bytearray(64)
        step("get_pubkey", cal.atcab_get_pubkey(0, pub2), public_key=hexs(pub2))
        if not step("lock_data", cal.atcab_lock_data_zone()):
            return out
        locked = AtcaReference(False)
        step("data_locked", cal.atcab_is_locked(LOCK_ZONE_DATA, locked), locked=bool(locked.value))

        message = b"keystamp: cryptoauthlib drives atecc-sim over the kit protocol"
        digest = hashlib.sha256(message).digest()
        chip_digest = bytearray(32)
        step("sha", cal.atcab_sha(len(message), message, chip_digest), digest=hexs(chip_digest),
             expected=hexs(digest))
        sig = bytearray(64)
        if not step("sign", cal.atcab_sign(0, digest, sig), digest=hexs(digest),
                    signature=hexs(sig)):
            return out
        out["openssl_verified"] = openssl_verify(pub, digest, sig)
        ok = AtcaReference(False)
        step("verify_extern", cal.atcab_verify_extern(digest, sig, pub, ok),
             verified=bool(ok.value))
        bad = bytearray(sig)
        bad[63] ^= 0x01
        ok = AtcaReference(True)
        step("verify_extern_tampered", cal.atcab_verify_extern(digest, bad, pub, ok),
             verified=bool(ok.value))
        # Stored-key Verify against slot 14: the factory config has no public-key slot, so the
        # chip refuses it (execution error); what matters is the command sequence the library
        # sends, which the Rust test compares with keystamp's driver.
        ok = AtcaReference(False)
        step("verify_stored", cal.atcab_verify_stored(digest, sig, 14, ok),
             verified=bool(ok.value))
        return out
    finally:
        cal.atcab_release()
        del dev


if __name__ == "__main__":
    print(json.dumps(main()))
