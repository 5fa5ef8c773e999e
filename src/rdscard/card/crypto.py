"""Card-side cryptography: management key block operations and private key operations.

SP 800-73-4 Part 2 3.2.4 (GENERAL AUTHENTICATE) and 3.3.2 (GENERATE
ASYMMETRIC KEY PAIR), Part 1 table 4 / SP 800-78-4 for the algorithms. RSA
is the raw private operation (the host pads); ECDSA signs the hash the host
sends; ECDH returns the x coordinate of the shared point.
"""

from __future__ import annotations

import functools
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from rdscard.card.constants import Algorithm
from rdscard.card.state import SlotKey
from rdscard.pdu.tlv import tlv

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

RSA_SIZES: Final[dict[int, int]] = {Algorithm.RSA_1024: 1024, Algorithm.RSA_2048: 2048}
EC_CURVES: Final[dict[int, ec.EllipticCurve]] = {
    Algorithm.ECC_P256: ec.SECP256R1(),
    Algorithm.ECC_P384: ec.SECP384R1(),
}
EC_HASHES: Final[dict[int, hashes.HashAlgorithm]] = {
    Algorithm.ECC_P256: hashes.SHA256(),
    Algorithm.ECC_P384: hashes.SHA384(),
}
PUBLIC_KEY_TEMPLATE: Final = 0x7F49


class CardCryptoError(ValueError):
    """The input cannot be used with this key (maps to status 6A80)."""


def block_size(algorithm: int) -> int:
    """Challenge and witness size for a management key algorithm: the cipher block."""
    return 8 if algorithm == Algorithm.TDES else 16


def _cipher(algorithm: int, key: bytes) -> Cipher[modes.ECB]:
    if algorithm == Algorithm.TDES:
        return Cipher(TripleDES(key), modes.ECB())
    return Cipher(algorithms.AES(key), modes.ECB())


def block_encrypt(algorithm: int, key: bytes, block: bytes) -> bytes:
    """Encrypt one block with the card management key (ECB: exactly one block)."""
    enc = _cipher(algorithm, key).encryptor()
    return enc.update(block) + enc.finalize()


def block_decrypt(algorithm: int, key: bytes, block: bytes) -> bytes:
    """Decrypt one block with the card management key."""
    dec = _cipher(algorithm, key).decryptor()
    return dec.update(block) + dec.finalize()


@functools.lru_cache(maxsize=64)
def _parse_private_key(der: bytes) -> PrivateKey:
    # Parsing validates the key (for RSA a costly check): do it once per key.
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("stored key is neither RSA nor ECC")
    return key


def load_private_key(slot: SlotKey) -> PrivateKey:
    """The key object of a stored PKCS#8 key; ``ValueError`` when it does not match."""
    key = _parse_private_key(slot.private_key)
    if slot.algorithm in RSA_SIZES:
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != RSA_SIZES[slot.algorithm]:
            raise ValueError("stored key is not RSA of the recorded size")
        return key
    curve = EC_CURVES.get(slot.algorithm)
    if curve is None or not isinstance(key, ec.EllipticCurvePrivateKey) or (
            key.curve.name != curve.name):
        raise ValueError("stored key is not on the recorded curve")
    return key


# DER DigestInfo prefixes (RFC 8017 9.2 note 1) of the hashes PKCS#1 v1.5 signatures use.
_DIGEST_INFO: Final[dict[bytes, hashes.HashAlgorithm]] = {
    bytes.fromhex("3021300906052b0e03021a05000414"): hashes.SHA1(),
    bytes.fromhex("302d300d06096086480165030402040500041c"): hashes.SHA224(),
    bytes.fromhex("3031300d060960864801650304020105000420"): hashes.SHA256(),
    bytes.fromhex("3041300d060960864801650304020205000430"): hashes.SHA384(),
    bytes.fromhex("3051300d060960864801650304020305000440"): hashes.SHA512(),
}


def _pkcs1_signature_digest(block: bytes) -> tuple[hashes.HashAlgorithm, bytes] | None:
    """The hash of an EMSA-PKCS1-v1_5 block ``00 01 FF.. 00 DigestInfo``, if it is one."""
    if block[:2] != b"\x00\x01":
        return None
    end = block.find(b"\x00", 2)
    if end < 10 or block[2:end].strip(b"\xff"):
        return None
    info = block[end + 1 :]
    for prefix, algorithm in _DIGEST_INFO.items():
        if info.startswith(prefix) and len(info) == len(prefix) + algorithm.digest_size:
            return algorithm, info[len(prefix) :]
    return None


def rsa_private(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """Raw RSA private operation (CRT) on a modulus-sized input.

    A PKCS#1 v1.5 signature block (the usual input) is signed by OpenSSL,
    which yields the very same bytes (the scheme is deterministic) about
    ten times faster than Python's modular exponentiation; anything else
    (decryption, raw mechanisms) takes the exponentiation path.
    """
    size = (key.key_size + 7) // 8
    if len(data) != size:
        raise CardCryptoError(f"RSA input must be {size} bytes")
    signature = _pkcs1_signature_digest(data)
    if signature is not None:
        algorithm, digest = signature
        return key.sign(digest, padding.PKCS1v15(), Prehashed(algorithm))
    numbers = key.private_numbers()
    c = int.from_bytes(data, "big")
    if c >= numbers.public_numbers.n:
        raise CardCryptoError("RSA input not below the modulus")
    m1 = pow(c, numbers.dmp1, numbers.p)
    m2 = pow(c, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (m1 - m2)) % numbers.p
    return (m2 + h * numbers.q).to_bytes(size, "big")


def ecdsa_sign(key: ec.EllipticCurvePrivateKey, algorithm: int, digest: bytes) -> bytes:
    """DER ECDSA signature over a hash of at most the field size (left-padded with zeros)."""
    hash_algorithm = EC_HASHES[algorithm]
    if not 0 < len(digest) <= hash_algorithm.digest_size:
        raise CardCryptoError(f"hash must be 1 to {hash_algorithm.digest_size} bytes")
    padded = digest.rjust(hash_algorithm.digest_size, b"\0")
    return key.sign(padded, ec.ECDSA(Prehashed(hash_algorithm)))


def ecdh(key: ec.EllipticCurvePrivateKey, point: bytes) -> bytes:
    """ECDH (SP 800-56A cofactor Diffie-Hellman primitive): the shared x coordinate."""
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, point)
    except ValueError:
        raise CardCryptoError("not a point on the key's curve") from None
    return key.exchange(ec.ECDH(), peer)


def generate(algorithm: int) -> tuple[SlotKey, PrivateKey]:
    """A new key pair for ``algorithm`` (RSA with exponent 65537)."""
    key: PrivateKey
    if algorithm in RSA_SIZES:
        key = rsa.generate_private_key(65537, RSA_SIZES[algorithm])
    else:
        key = ec.generate_private_key(EC_CURVES[algorithm])
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return SlotKey(algorithm, der, generated=True), key


def public_key_template(key: PrivateKey) -> bytes:
    """Tag 7F49: 81 modulus, 82 exponent, or 86 uncompressed point (SP 800-73-4 Part 2 3.3.2)."""
    if isinstance(key, rsa.RSAPrivateKey):
        pub = key.public_key().public_numbers()
        n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
        e = pub.e.to_bytes((pub.e.bit_length() + 7) // 8, "big")
        return tlv(PUBLIC_KEY_TEMPLATE, tlv(0x81, n) + tlv(0x82, e))
    point = key.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
    return tlv(PUBLIC_KEY_TEMPLATE, tlv(0x86, point))
