#!/usr/bin/env python3
"""Seeds tests/fuzz/corpus/fuzz_cluster_open/ with valid sealed and plaintext
packets under the two keys the fuzz target's keyring holds, and prints the
known-answer vector that tests/c/test_cluster_seal.c checks.

It is also a second, independent implementation of the layout of
capi/src/cluster/seal.h (Python 'cryptography'): version 1 | key id (first 4
bytes of SHA-256(key)) | epoch (16) | counter (8, big-endian) | ciphertext |
tag (16), key = SHA-256(raw key), subkey = HKDF-SHA256(ikm = key,
salt = epoch, info = "rpcnet cluster v1"), nonce = 4 zero bytes | counter,
associated data = the 29 header bytes | context byte (1 gossip, 2 sync).
Run from anywhere: python3 tests/fuzz/gen_cluster_open.py"""
import base64, hashlib, os, shutil

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# The keys of tests/fuzz/fuzz_cluster_open.c: base64 of 0x00..0x1f, hex of 16 bytes.
K1 = base64.b64decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
K2 = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


def seal(raw, epoch, counter, ctx, plain):
    key = hashlib.sha256(raw).digest()
    ctr = counter.to_bytes(8, "big")
    hdr = b"\x01" + hashlib.sha256(key).digest()[:4] + epoch + ctr
    sub = HKDF(hashes.SHA256(), 32, salt=epoch, info=b"rpcnet cluster v1").derive(key)
    return hdr + AESGCM(sub).encrypt(b"\0" * 4 + ctr, plain, hdr + bytes([ctx]))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    d = os.path.join(here, "corpus", "fuzz_cluster_open")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    seeds = {
        "k1_gossip_empty": seal(K1, bytes(16), 0, 1, b""),
        "k1_gossip_hello": seal(K1, bytes(range(16)), 1, 1, b"hello"),
        "k1_sync_body": seal(K1, b"\xee" * 16, 7, 2, bytes(range(200))),
        "k2_gossip_1150": seal(K2, b"\x42" * 16, 2**64 - 2, 1, bytes(i & 255 for i in range(1150))),
        "k2_sync_small": seal(K2, b"\x01" * 16, 3, 2, b"\x82\x01\x02"),
        "plain_empty": b"\x00",
        "plain_cbor": b"\x00\xa1\x61a\x01",
        "bad_version": b"\x02" + bytes(44),
    }
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("known answer (K1, epoch 00..0f, counter 1, gossip, 'hello'):")
    print(seeds["k1_gossip_hello"].hex())


if __name__ == "__main__":
    main()
