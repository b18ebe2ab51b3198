"""Print Microchip's own certificate definitions from cryptoauthlib's C library as JSON.

Usage: python3 microchip_defs.py NAME...   (NAME = a `g_*_cert_def_*` variable of libcryptoauth.so)

Run by tests/microchip_defs.rs, which compares them with keystamp's definitions. The values are
read from the PyPI wheel's `libcryptoauth.so` through ctypes (the wheel's own structure mirrors),
at test time: nothing of Microchip's is stored in the repository. Exit code 3 when the
cryptoauthlib package or its library is missing.
"""

import ctypes
import json
import os
import sys

try:
    import cryptoauthlib
    from cryptoauthlib.atcacert import atcacert_def_t
except ImportError as err:
    print(f"cryptoauthlib not importable: {err}", file=sys.stderr)
    sys.exit(3)


def device_loc(loc):
    return [int(loc.zone), int(loc.slot), int(bool(loc.is_genkey)), int(loc.offset), int(loc.count)]


def cert_loc(loc):
    return [int(loc.offset), int(loc.count)]


def main():
    path = os.path.join(os.path.dirname(cryptoauthlib.__file__), "libcryptoauth.so")
    try:
        lib = ctypes.CDLL(path)
    except OSError as err:
        print(f"{path}: {err}", file=sys.stderr)
        sys.exit(3)
    out = {}
    for name in sys.argv[1:]:
        d = atcacert_def_t.in_dll(lib, name)
        template = ctypes.string_at(ctypes.cast(d.cert_template, ctypes.c_void_p), d.cert_template_size)
        elements = []
        for i in range(d.cert_elements_count):
            e = d.cert_elements[i]
            ident = e.id if isinstance(e.id, str) else bytes(e.id).split(b"\0")[0].decode()
            elements.append({
                "id": ident,
                "device_loc": device_loc(e.device_loc),
                "cert_loc": cert_loc(e.cert_loc),
                "transforms": [int(t) for t in e.transforms],
            })
        out[name] = {
            "type": int(d.type),
            "template_id": int(d.template_id),
            "chain_id": int(d.chain_id),
            "private_key_slot": int(d.private_key_slot),
            "sn_source": int(d.sn_source),
            "cert_sn_dev_loc": device_loc(d.cert_sn_dev_loc),
            "issue_date_format": int(d.issue_date_format),
            "expire_date_format": int(d.expire_date_format),
            "tbs_cert_loc": cert_loc(d.tbs_cert_loc),
            "expire_years": int(d.expire_years),
            "public_key_dev_loc": device_loc(d.public_key_dev_loc),
            "comp_cert_dev_loc": device_loc(d.comp_cert_dev_loc),
            "std_cert_elements": [cert_loc(l) for l in d.std_cert_elements],
            "cert_elements": elements,
            "template": template.hex(),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
