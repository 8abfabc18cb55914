#!/usr/bin/env python3
"""Bring-your-own-key as an outside tenant does it, with the `cryptography` package only.

The tenant asks Parapet for a wrapping key (`parapet kms wrapping-key`): a PEM public key and an
algorithm. It wraps 32 bytes of key material made on its own side:
  * rsa-oaep-sha256: RSA-OAEP with SHA-256 and MGF1-SHA-256, no label;
  * x25519-hkdf-sha256-aes256-gcm: an ephemeral X25519 key; the shared secret goes through
    HKDF-SHA-256 (salt = ephemeral public key || wrapping public key, info =
    b"parapet-kms/byok/v1", 32 bytes); the material is sealed with AES-256-GCM under that key
    with a random 96-bit nonce and the info as associated data; the result is
    ephemeral public key || nonce || ciphertext || tag.

Usage:
  kms_byok.py --check-deps
  kms_byok.py wrap PUBLIC_KEY.pem ALGORITHM MATERIAL_B64   -> prints the wrapped material (base64)
"""

import base64
import os
import sys

INFO = b"parapet-kms/byok/v1"


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def wrap(pem, algorithm, material):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, x25519
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    public = serialization.load_pem_public_key(pem)
    if algorithm == "rsa-oaep-sha256":
        if not isinstance(public, rsa.RSAPublicKey):
            die("the wrapping key is not an RSA key")
        return public.encrypt(
            material,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
    if algorithm == "x25519-hkdf-sha256-aes256-gcm":
        if not isinstance(public, x25519.X25519PublicKey):
            die("the wrapping key is not an X25519 key")
        raw = serialization.Encoding.Raw
        fmt = serialization.PublicFormat.Raw
        eph = x25519.X25519PrivateKey.generate()
        eph_pub = eph.public_key().public_bytes(raw, fmt)
        shared = eph.exchange(public)
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=eph_pub + public.public_bytes(raw, fmt),
            info=INFO,
        ).derive(shared)
        nonce = os.urandom(12)
        return eph_pub + nonce + AESGCM(key).encrypt(nonce, material, INFO)
    die(f"unknown algorithm {algorithm}")


def main(argv):
    if argv[1:2] == ["--check-deps"]:
        import cryptography

        print(f"cryptography {cryptography.__version__}")
        return
    if len(argv) == 5 and argv[1] == "wrap":
        with open(argv[2], "rb") as f:
            pem = f.read()
        wrapped = wrap(pem, argv[3], base64.b64decode(argv[4]))
        print(base64.b64encode(wrapped).decode())
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv)
