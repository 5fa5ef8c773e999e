"""The private-key step of opening an envelope: on the card (slot 9D) or with a key file.

:class:`CardKeyOperator` sends one GENERAL AUTHENTICATE to the key-management
key (NIST SP 800-73-4 Part 2 3.2.4, key reference 9D: tag 81 carries an RSA
block for the raw private operation, tag 85 an EC point for ECDH) and
finishes in software (OAEP decoding, RFC 8017 7.1.2). The PIN must have been
verified in the same card session (9D's PIN policy is "once per session").
:class:`SoftwareKeyOperator` does the same with a private key in a file (the
recovery agent's).
"""

from __future__ import annotations

import time
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from rdscard.efs.keywrap import UnwrapError, oaep_decode
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import Algorithm, KeyRef

KEY_MANAGEMENT: Final = KeyRef.KEY_MANAGEMENT
HASH_ALGORITHMS: Final[dict[str, hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512()}


class CardKeyOperator:
    """Slot 9D of the card behind ``client`` (PIN already verified in this card session)."""

    def __init__(self, client: PivClient, public_key: rsa.RSAPublicKey |
                 ec.EllipticCurvePublicKey) -> None:
        self.client = client
        self.public_key = public_key
        self.operations = 0
        #: seconds spent in the card's private-key operations (the GENERAL AUTHENTICATE)
        self.seconds = 0.0

    def key_transport(self, encrypted_key: bytes, hash_name: str) -> bytearray:
        if not isinstance(self.public_key, rsa.RSAPublicKey):
            raise UnwrapError("the card's 9D key is not an RSA key")
        if self.public_key.key_size != 2048:
            raise UnwrapError("only RSA-2048 9D keys are supported")
        size = self.public_key.key_size // 8
        if len(encrypted_key) != size:
            raise UnwrapError("decryption error")
        self.operations += 1
        started = time.perf_counter()
        block = bytearray(self.client.rsa_private(KEY_MANAGEMENT, encrypted_key))
        self.seconds += time.perf_counter() - started
        try:
            return oaep_decode(block.rjust(size, b"\0"), hash_name)
        finally:
            block[:] = bytes(len(block))

    def agree(self, peer_point: bytes) -> bytearray:
        if not isinstance(self.public_key, ec.EllipticCurvePublicKey):
            raise UnwrapError("the card's 9D key is not an EC key")
        algorithm = {"secp256r1": Algorithm.ECC_P256,
                     "secp384r1": Algorithm.ECC_P384}.get(self.public_key.curve.name)
        if algorithm is None:
            raise UnwrapError(f"curve {self.public_key.curve.name} is not supported")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(self.public_key.curve, peer_point)
        except ValueError:
            raise UnwrapError("the originator's key is not a point of the card key's curve")\
                from None
        self.operations += 1
        started = time.perf_counter()
        try:
            return bytearray(self.client.ecdh(KEY_MANAGEMENT, peer_point, algorithm))
        finally:
            self.seconds += time.perf_counter() - started


class SoftwareKeyOperator:
    """A private key held in memory (the recovery agent's key file)."""

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        self.key = key

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None) -> SoftwareKeyOperator:
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as exc:
            raise UnwrapError(f"the recovery key cannot be read: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise UnwrapError("the recovery key is neither RSA nor EC")
        return cls(key)

    def key_transport(self, encrypted_key: bytes, hash_name: str) -> bytearray:
        if not isinstance(self.key, rsa.RSAPrivateKey):
            raise UnwrapError("this recipient needs an RSA key")
        algorithm = HASH_ALGORITHMS[hash_name]
        try:
            return bytearray(self.key.decrypt(encrypted_key, padding.OAEP(
                mgf=padding.MGF1(algorithm), algorithm=algorithm, label=None)))
        except ValueError:
            raise UnwrapError("decryption error") from None

    def agree(self, peer_point: bytes) -> bytearray:
        if not isinstance(self.key, ec.EllipticCurvePrivateKey):
            raise UnwrapError("this recipient needs an EC key")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(self.key.curve, peer_point)
        except ValueError:
            raise UnwrapError("the originator's key is not on the recovery key's curve")\
                from None
        return bytearray(self.key.exchange(ec.ECDH(), peer))
