"""Unwrapping a content-encryption key into wipeable buffers.

- EME-OAEP decoding (RFC 8017 7.1.2 step 3) of the card's raw RSA result;
  every failure is the same "decryption error", as the RFC requires;
- AES key unwrap (RFC 3394 2.2.2, the index-based form), as RFC 5753 uses
  for ECDH recipients in CMS.

Inputs and outputs are ``bytearray`` so the caller can zero them.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from rdscard.errors import RdscardError

DEFAULT_IV: Final = bytes.fromhex("A6A6A6A6A6A6A6A6")
HASHES: Final = {"sha1": hashlib.sha1, "sha256": hashlib.sha256,
                 "sha384": hashlib.sha384, "sha512": hashlib.sha512}


class UnwrapError(RdscardError):
    """The wrapped key does not open with this key (wrong key or altered envelope)."""


def _mgf1(seed: bytes | bytearray, length: int, hash_name: str) -> bytearray:
    """MGF1 (RFC 8017 B.2.1)."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += HASHES[hash_name](bytes(seed) + counter.to_bytes(4, "big")).digest()
        counter += 1
    del out[length:]
    return out


def oaep_decode(em: bytes | bytearray, hash_name: str, label: bytes = b"") -> bytearray:
    """The message inside an encoded OAEP block ``em`` (the raw RSA result, k bytes)."""
    h = HASHES[hash_name]
    h_len = h().digest_size
    k = len(em)
    if k < 2 * h_len + 2:
        raise UnwrapError("decryption error")
    masked_seed, masked_db = em[1:1 + h_len], em[1 + h_len:]
    seed = bytearray(a ^ b for a, b in zip(masked_seed, _mgf1(masked_db, h_len, hash_name),
                                           strict=True))
    db = bytearray(a ^ b for a, b in zip(masked_db, _mgf1(seed, k - h_len - 1, hash_name),
                                         strict=True))
    seed[:] = bytes(len(seed))
    try:
        good = em[0] == 0
        good &= hmac.compare_digest(bytes(db[:h_len]), h(label).digest())
        # find the 01 separator after the zero padding without an early exit on content
        index = 0
        looking = True
        bad_padding = False
        for i in range(h_len, len(db)):
            byte = db[i]
            is_one = looking and byte == 1
            index = i if is_one else index
            bad_padding |= looking and byte not in (0, 1)
            looking = looking and not is_one
        if not good or looking or bad_padding:
            raise UnwrapError("decryption error")
        return db[index + 1:]
    finally:
        db[:] = bytes(len(db))


def aes_unwrap(kek: bytes | bytearray, wrapped: bytes) -> bytearray:
    """RFC 3394 2.2.2 key unwrap; raises :class:`UnwrapError` when the check value differs."""
    if len(wrapped) % 8 or len(wrapped) < 24:
        raise UnwrapError("a wrapped key is a multiple of 8 bytes, at least 24")
    n = len(wrapped) // 8 - 1
    a = bytearray(wrapped[:8])
    r = bytearray(wrapped[8:])
    block = bytearray(16)
    out = bytearray(16 + 15)
    decryptor = Cipher(algorithms.AES(bytes(kek)), modes.ECB()).decryptor()
    try:
        for j in range(5, -1, -1):
            for i in range(n, 0, -1):
                t = n * j + i
                block[:8] = (int.from_bytes(a, "big") ^ t).to_bytes(8, "big")
                block[8:] = r[8 * (i - 1):8 * i]
                decryptor.update_into(block, out)
                a[:] = out[:8]
                r[8 * (i - 1):8 * i] = out[8:16]
        if not hmac.compare_digest(bytes(a), DEFAULT_IV):
            r[:] = bytes(len(r))
            raise UnwrapError("the key wrap integrity check failed: wrong key or altered data")
        return r
    finally:
        block[:] = bytes(16)
        out[:] = bytes(len(out))
