#!/usr/bin/env python3
"""Independent implementation of Parapet's ciphertext format with the `cryptography` package.

A Parapet ciphertext is `parapet:v1:<key id>:<version>:<base64url(nonce || ct || tag)>` (96-bit
nonce, unpadded base64url). The AEAD's associated data is the header `parapet:v1:<key id>:<version>`,
a newline, then for each context pair sorted by key: len(key) as 4-byte big-endian, key (UTF-8),
len(value), value.

Usage (key material from `parapet kms key export NAME`, as JSON on a file):
  kms_interop.py --check-deps
  kms_interop.py decrypt KEY.json CIPHERTEXT CONTEXT.json   -> prints the plaintext (base64)
  kms_interop.py encrypt KEY.json VERSION PLAINTEXT_B64 CONTEXT.json -> prints a ciphertext
  kms_interop.py verify PUBLIC_KEY_B64 MESSAGE_B64 SIGNATURE  -> exit 0 if the Ed25519 signature holds
Exit status 1 with a message on standard error when anything does not check out.
"""

import base64
import json
import os
import struct
import sys


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def aad(key_id, version, context):
    out = bytearray(f"parapet:v1:{key_id}:{version}\n".encode())
    for k in sorted(context, key=lambda s: s.encode()):
        for part in (k.encode(), context[k].encode()):
            out += struct.pack(">I", len(part)) + part
    return bytes(out)


def cipher(key_type, material):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    if key_type == "aes256-gcm":
        return AESGCM(material)
    if key_type == "chacha20-poly1305":
        return ChaCha20Poly1305(material)
    die(f"not an encryption key type: {key_type}")


def load(path):
    with open(path) as f:
        key = json.load(f)
    versions = {v["version"]: base64.b64decode(v["material"]) for v in key["versions"]}
    return key, versions


def main(argv):
    if argv[1:2] == ["--check-deps"]:
        import cryptography

        print(f"cryptography {cryptography.__version__}")
        return
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "decrypt" and len(argv) == 5:
        key, versions = load(argv[2])
        with open(argv[4]) as f:
            context = json.load(f)
        parts = argv[3].strip().split(":")
        if len(parts) != 5 or parts[:2] != ["parapet", "v1"]:
            die("not a Parapet ciphertext")
        key_id, version, payload = parts[2], int(parts[3]), b64url_decode(parts[4])
        if key_id != key["id"]:
            die("the ciphertext belongs to another key")
        if version not in versions:
            die(f"no material for version {version}")
        nonce, body = payload[:12], payload[12:]
        from cryptography.exceptions import InvalidTag

        try:
            plain = cipher(key["type"], versions[version]).decrypt(
                nonce, body, aad(key_id, version, context)
            )
        except InvalidTag:
            die("authentication failed")
        print(base64.b64encode(plain).decode())
    elif cmd == "encrypt" and len(argv) == 6:
        key, versions = load(argv[2])
        version = int(argv[3])
        plain = base64.b64decode(argv[4])
        with open(argv[5]) as f:
            context = json.load(f)
        nonce = os.urandom(12)
        ct = cipher(key["type"], versions[version]).encrypt(
            nonce, plain, aad(key["id"], version, context)
        )
        print(f"parapet:v1:{key['id']}:{version}:{b64url_encode(nonce + ct)}")
    elif cmd == "verify" and len(argv) == 5:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        pk = Ed25519PublicKey.from_public_bytes(base64.b64decode(argv[2]))
        parts = argv[4].strip().split(":")
        if len(parts) != 5:
            die("not a Parapet signature")
        try:
            pk.verify(b64url_decode(parts[4]), base64.b64decode(argv[3]))
        except InvalidSignature:
            die("invalid signature")
        print("valid")
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv)
