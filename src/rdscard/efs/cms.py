"""A CMS EnvelopedData holding the fscrypt master key, for certificates (RFC 5652 section 6).

Recipients (RFC 5652 6.2):

- RSA certificates: KeyTransRecipientInfo with RSAES-OAEP, SHA-256 and MGF1
  with SHA-256 (RFC 8017, parameters as RFC 4055 section 4.1 writes them);
- EC P-256/P-384 certificates: KeyAgreeRecipientInfo with an ephemeral
  originator key, ``dhSinglePass-stdDH-sha256kdf-scheme`` (RFC 5753 section
  7.1.4 / RFC 8418's X9.63 KDF with the ECC-CMS-SharedInfo of RFC 5753 7.2)
  and ``id-aes256-wrap`` (RFC 3394, RFC 3565);

each identified by issuer and serial number. The content is encrypted with
AES-256-CBC (RFC 3565). ``openssl cms -decrypt -inform DER`` opens it.

Opening is split so that a smart card does the private-key step: the
recipient's :class:`KeyOperator` either decrypts the key transport block or
returns the ECDH shared secret, and the rest (KDF, unwrap, content) is done
here into wipeable buffers; the master key comes out as a :class:`Secret`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from rdscard.efs.asn1 import (
    BIT_STRING,
    NULL,
    OCTET_STRING,
    SEQUENCE,
    SET,
    Element,
    encode_integer,
    encode_oid,
    parse,
    seq,
    tlv,
)
from rdscard.efs.keywrap import UnwrapError, aes_unwrap
from rdscard.errors import ProtocolError, RdscardError
from rdscard.secret import Secret

ID_ENVELOPED_DATA: Final = "1.2.840.113549.1.7.3"
ID_DATA: Final = "1.2.840.113549.1.7.1"
ID_RSAES_OAEP: Final = "1.2.840.113549.1.1.7"
ID_MGF1: Final = "1.2.840.113549.1.1.8"
ID_EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
HASH_OIDS: Final = {"sha1": "1.3.14.3.2.26", "sha256": "2.16.840.1.101.3.4.2.1",
                    "sha384": "2.16.840.1.101.3.4.2.2", "sha512": "2.16.840.1.101.3.4.2.3"}
HASH_NAMES: Final = {oid: name for name, oid in HASH_OIDS.items()}
KDF_SCHEMES: Final = {  # RFC 5753 7.1.4 / SEC 1: dhSinglePass-stdDH-*kdf-scheme
    "1.3.133.16.840.63.0.2": "sha1",
    "1.3.132.1.11.1": "sha256",
    "1.3.132.1.11.2": "sha384",
    "1.3.132.1.11.3": "sha512",
}
STD_DH_SHA256: Final = "1.3.132.1.11.1"
AES_WRAP: Final = {"2.16.840.1.101.3.4.1.5": 16, "2.16.840.1.101.3.4.1.25": 24,
                   "2.16.840.1.101.3.4.1.45": 32}
AES256_WRAP: Final = "2.16.840.1.101.3.4.1.45"
AES_CBC: Final = {"2.16.840.1.101.3.4.1.2": 16, "2.16.840.1.101.3.4.1.22": 24,
                  "2.16.840.1.101.3.4.1.42": 32}
AES256_CBC: Final = "2.16.840.1.101.3.4.1.42"
CURVE_HASH: Final = {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384()}
MAX_CONTENT: Final = 4096


class EnvelopeError(RdscardError):
    """The envelope cannot be built or opened; the message says why."""


@dataclass(frozen=True)
class RecipientId:
    """IssuerAndSerialNumber (RFC 5652 10.2.4): the issuer's DER Name and the serial."""

    issuer: bytes
    serial: int

    @classmethod
    def of(cls, cert: x509.Certificate) -> RecipientId:
        return cls(cert.issuer.public_bytes(), cert.serial_number)

    def encode(self) -> bytes:
        return seq(self.issuer, encode_integer(self.serial))

    def describe(self) -> str:
        return f"certificate serial {self.serial:X}"


@dataclass(frozen=True)
class KeyTransRecipient:
    """KeyTransRecipientInfo with RSAES-OAEP (RFC 5652 6.2.1, RFC 8017)."""

    rid: RecipientId
    hash_name: str
    encrypted_key: bytes


@dataclass(frozen=True)
class KeyAgreeRecipient:
    """One recipient of a KeyAgreeRecipientInfo (RFC 5652 6.2.2, RFC 5753)."""

    rid: RecipientId
    originator_point: bytes
    ukm: bytes | None
    kdf_hash: str
    wrap_algorithm: bytes  # the AlgorithmIdentifier DER, as the SharedInfo repeats it
    wrap_key_size: int
    encrypted_key: bytes


Recipient = KeyTransRecipient | KeyAgreeRecipient


@dataclass(frozen=True)
class Envelope:
    """A parsed EnvelopedData: its recipients and the encrypted content."""

    recipients: tuple[Recipient, ...]
    content_key_size: int
    iv: bytes
    encrypted_content: bytes

    def recipient_for(self, cert: x509.Certificate) -> Recipient | None:
        """The recipient entry of ``cert`` (by issuer and serial number), if any."""
        rid = RecipientId.of(cert)
        return next((r for r in self.recipients if r.rid == rid), None)


class KeyOperator(Protocol):
    """The private-key step of one recipient (a card's slot 9D, or a key file)."""

    def key_transport(self, encrypted_key: bytes, hash_name: str) -> bytearray:
        """RSAES-OAEP decryption of ``encrypted_key``: the content-encryption key."""
        ...

    def agree(self, peer_point: bytes) -> bytearray:
        """ECDH with the originator's point: the shared secret Z (the x coordinate)."""
        ...


# -- building ----------------------------------------------------------------------------------
def _algorithm(oid: str, params: bytes | None = None) -> bytes:
    return seq(encode_oid(oid), params if params is not None else b"")


def _oaep_params(hash_name: str) -> bytes:
    """RSAES-OAEP-params (RFC 8017 A.2.1) with hash and MGF1 hash ``hash_name``."""
    hash_alg = _algorithm(HASH_OIDS[hash_name], tlv(NULL, b""))
    return seq(tlv(0xA0, hash_alg), tlv(0xA1, _algorithm(ID_MGF1, hash_alg)))


def shared_info(wrap_algorithm: bytes, ukm: bytes | None, kek_size: int) -> bytes:
    """ECC-CMS-SharedInfo (RFC 5753 7.2): keyInfo, entityUInfo, suppPubInfo (key bits)."""
    parts = [wrap_algorithm]
    if ukm is not None:
        parts.append(tlv(0xA0, tlv(OCTET_STRING, ukm)))
    parts.append(tlv(0xA2, tlv(OCTET_STRING, (kek_size * 8).to_bytes(4, "big"))))
    return seq(*parts)


def _kek(z: bytes | bytearray, hash_name: str, info: bytes, size: int) -> bytes:
    hash_alg = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(),
                "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[hash_name]
    return X963KDF(algorithm=hash_alg, length=size, sharedinfo=info).derive(bytes(z))


def _ktri(cert: x509.Certificate, key: rsa.RSAPublicKey, cek: bytearray) -> bytes:
    encrypted = key.encrypt(bytes(cek), padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                     algorithm=hashes.SHA256(), label=None))
    return seq(encode_integer(0), RecipientId.of(cert).encode(),
               _algorithm(ID_RSAES_OAEP, _oaep_params("sha256")), tlv(OCTET_STRING, encrypted))


def _kari(cert: x509.Certificate, key: ec.EllipticCurvePublicKey, cek: bytearray) -> bytes:
    if key.curve.name not in CURVE_HASH:
        raise EnvelopeError(f"{cert.subject.rfc4514_string()}: curve {key.curve.name} is not "
                            "supported (P-256 or P-384)")
    ephemeral = ec.generate_private_key(key.curve)
    z = ephemeral.exchange(ec.ECDH(), key)
    wrap_alg = _algorithm(AES256_WRAP)
    kek = _kek(z, "sha256", shared_info(wrap_alg, None, 32), 32)
    wrapped = aes_key_wrap(kek, bytes(cek))
    point = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint)
    # [0] EXPLICIT OriginatorIdentifierOrKey, a CHOICE: originatorKey [1] IMPLICIT SEQUENCE
    originator = tlv(0xA0, tlv(0xA1, _algorithm(ID_EC_PUBLIC_KEY)
                               + tlv(BIT_STRING, b"\x00" + point)))
    encrypted_keys = seq(seq(RecipientId.of(cert).encode(), tlv(OCTET_STRING, wrapped)))
    body = encode_integer(3) + originator + _algorithm(STD_DH_SHA256, wrap_alg) + encrypted_keys
    return tlv(0xA1, body)  # [1] IMPLICIT KeyAgreeRecipientInfo


def check_recipient_certificate(cert: x509.Certificate) -> None:
    """A certificate fit to receive the key: RSA >= 2048 with keyEncipherment, or EC with
    keyAgreement (RFC 5280 4.2.1.3; SP 800-73-4's 9D certificate carries one of them)."""
    key = cert.public_key()
    subject = cert.subject.rfc4514_string()
    try:
        usage: x509.KeyUsage | None = cert.extensions.get_extension_for_class(
            x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise EnvelopeError(f"{subject}: an RSA key of {key.key_size} bits is too small")
        if usage is not None and not usage.key_encipherment:
            raise EnvelopeError(f"{subject}: the certificate does not allow keyEncipherment "
                                "(is it the key-management certificate, slot 9D?)")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if usage is not None and not usage.key_agreement:
            raise EnvelopeError(f"{subject}: the certificate does not allow keyAgreement "
                                "(is it the key-management certificate, slot 9D?)")
        if key.curve.name not in CURVE_HASH:
            raise EnvelopeError(f"{subject}: curve {key.curve.name} is not supported")
    else:
        raise EnvelopeError(f"{subject}: neither an RSA nor an EC key")


def seal(content: Secret, recipients: Sequence[x509.Certificate], *,
         rng: Callable[[int], bytes] = os.urandom) -> bytes:
    """A DER ContentInfo holding an EnvelopedData of ``content`` for every recipient."""
    if not recipients:
        raise EnvelopeError("an envelope needs at least one recipient")
    cek = bytearray(rng(32))
    iv = rng(16)
    try:
        infos = []
        for cert in recipients:
            check_recipient_certificate(cert)
            key = cert.public_key()
            if isinstance(key, rsa.RSAPublicKey):
                infos.append(_ktri(cert, key, cek))
            else:
                assert isinstance(key, ec.EllipticCurvePublicKey)
                infos.append(_kari(cert, key, cek))
        data = content.reveal()
        pad = 16 - len(data) % 16
        buf = bytearray(len(data) + pad)
        buf[:len(data)] = data
        buf[len(data):] = bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(bytes(cek)), modes.CBC(iv)).encryptor()
        encrypted = encryptor.update(bytes(buf)) + encryptor.finalize()
        buf[:] = bytes(len(buf))
    finally:
        cek[:] = bytes(len(cek))
    version = 2 if any(info[0] == 0xA1 for info in infos) else 0
    content_info = seq(encode_oid(ID_DATA),
                       _algorithm(AES256_CBC, tlv(OCTET_STRING, iv)),
                       tlv(0x80, encrypted))
    enveloped = seq(encode_integer(version), tlv(SET, b"".join(sorted(infos))), content_info)
    return seq(encode_oid(ID_ENVELOPED_DATA), tlv(0xA0, enveloped))


# -- parsing -----------------------------------------------------------------------------------
def _rid(element: Element, field: str) -> RecipientId:
    if element.tag != SEQUENCE:
        raise EnvelopeError("only recipients identified by issuer and serial number are "
                            "supported")
    issuer, serial = element.children(field)
    issuer.expect(SEQUENCE, field)
    return RecipientId(issuer.encoded, serial.integer(field))


def _hash_of(element: Element, field: str) -> str:
    oid = element.expect(SEQUENCE, field).first(field).oid(field)
    name = HASH_NAMES.get(oid)
    if name is None:
        raise EnvelopeError(f"{field}: unsupported hash {oid}")
    return name


def _parse_oaep(params: list[Element]) -> str:
    """The OAEP hash; the MGF1 hash must be the same and the label empty."""
    hash_name, mgf_hash = "sha1", "sha1"  # RFC 8017 A.2.1 defaults
    if params:
        for item in params[0].expect(SEQUENCE, "RSAES-OAEP-params").children("OAEP"):
            inner = item.first("OAEP")
            if item.tag == 0xA0:
                hash_name = _hash_of(inner, "OAEP hash")
            elif item.tag == 0xA1:
                mgf_oid, mgf_param = inner.children("OAEP mask")
                if mgf_oid.oid("OAEP mask") != ID_MGF1:
                    raise EnvelopeError("OAEP mask generation other than MGF1")
                mgf_hash = _hash_of(mgf_param, "MGF1 hash")
            else:
                raise EnvelopeError("OAEP with a label is not supported")
    if hash_name != mgf_hash:
        raise EnvelopeError("OAEP with different hash and MGF1 hash is not supported")
    return hash_name


def _parse_ktri(element: Element) -> KeyTransRecipient:
    version, rid, algorithm, encrypted = element.children("KeyTransRecipientInfo")
    if version.integer("ktri version") != 0:
        raise EnvelopeError("only recipients identified by issuer and serial number are "
                            "supported")
    alg = algorithm.expect(SEQUENCE, "keyEncryptionAlgorithm").elements("ktri algorithm", 1)
    oid = alg[0].oid("keyEncryptionAlgorithm")
    if oid != ID_RSAES_OAEP:
        raise EnvelopeError(f"key transport {oid} is not RSAES-OAEP (PKCS#1 v1.5 is refused)")
    return KeyTransRecipient(_rid(rid, "ktri rid"), _parse_oaep(alg[1:]),
                             encrypted.octets("encryptedKey"))


def _parse_kari(element: Element) -> list[KeyAgreeRecipient]:
    items = element.children("KeyAgreeRecipientInfo")
    if len(items) not in (4, 5) or items[0].integer("kari version") != 3:
        raise EnvelopeError("malformed KeyAgreeRecipientInfo")
    originator = items[1].expect(0xA0, "originator").first("originator")
    if originator.tag != 0xA1:
        raise EnvelopeError("the originator must be given as a public key (originatorKey)")
    _alg, public = originator.children("originatorKey")
    bits = public.octets("originator publicKey", BIT_STRING)
    if not bits or bits[0] != 0:
        raise EnvelopeError("malformed originator public key")
    ukm = None
    if len(items) == 5:
        ukm = items[2].expect(0xA1, "ukm").first("ukm").octets("ukm")
    kea = items[-2].expect(SEQUENCE, "keyEncryptionAlgorithm").elements("kari algorithm", 1)
    scheme = kea[0].oid("keyEncryptionAlgorithm")
    kdf_hash = KDF_SCHEMES.get(scheme)
    if kdf_hash is None or len(kea) != 2:
        raise EnvelopeError(f"key agreement {scheme} is not dhSinglePass-stdDH with a KDF")
    wrap = kea[1].expect(SEQUENCE, "KeyWrapAlgorithm")
    wrap_size = AES_WRAP.get(wrap.first("KeyWrapAlgorithm").oid("KeyWrapAlgorithm"))
    if wrap_size is None:
        raise EnvelopeError("key wrap other than AES key wrap (RFC 3394)")
    out = []
    for rek in items[-1].expect(SEQUENCE, "recipientEncryptedKeys").children("rek"):
        rid, encrypted = rek.children("RecipientEncryptedKey")
        out.append(KeyAgreeRecipient(_rid(rid, "kari rid"), bits[1:], ukm, kdf_hash,
                                     wrap.encoded, wrap_size, encrypted.octets("encryptedKey")))
    return out


def parse_envelope(data: bytes) -> Envelope:
    """Parse a DER ContentInfo with an EnvelopedData; :class:`EnvelopeError` when unusable."""
    try:
        outer = parse(data, "ContentInfo").expect(SEQUENCE, "ContentInfo")
        content_type, explicit = outer.children("ContentInfo")
        if content_type.oid("contentType") != ID_ENVELOPED_DATA:
            raise EnvelopeError("the file is not a CMS EnvelopedData")
        body = explicit.expect(0xA0, "content").first("content")
        fields = body.expect(SEQUENCE, "EnvelopedData").children("EnvelopedData")
        fields = [f for f in fields if f.tag not in (0xA0, 0xA1)]  # originatorInfo, unprot.
        _version, infos, encrypted_info = fields
        recipients: list[Recipient] = []
        for info in infos.expect(SET, "recipientInfos").children("recipientInfos"):
            if info.tag == SEQUENCE:
                recipients.append(_parse_ktri(info))
            elif info.tag == 0xA1:
                recipients.extend(_parse_kari(info))
            # other kinds (kekri, pwri, ori) are no use here and are skipped
        parts = encrypted_info.expect(SEQUENCE, "EncryptedContentInfo").children("eci")
        if len(parts) != 3 or parts[0].oid("contentType") != ID_DATA:
            raise EnvelopeError("the envelope carries no encrypted data")
        alg = parts[1].elements("contentEncryptionAlgorithm", 1)
        size = AES_CBC.get(alg[0].oid("contentEncryptionAlgorithm"))
        if size is None or len(alg) != 2:
            raise EnvelopeError("content encryption other than AES-CBC")
        iv = alg[1].octets("iv")
        encrypted = parts[2].octets("encryptedContent", 0x80)
    except ProtocolError as exc:
        raise EnvelopeError(f"malformed envelope: {exc}") from None
    except ValueError:
        raise EnvelopeError("malformed envelope: unexpected structure") from None
    if len(iv) != 16 or not encrypted or len(encrypted) % 16 or len(encrypted) > MAX_CONTENT:
        raise EnvelopeError("malformed envelope: bad IV or content length")
    return Envelope(tuple(recipients), size, iv, encrypted)


# -- opening -----------------------------------------------------------------------------------
def content_key(recipient: Recipient, operator: KeyOperator) -> bytearray:
    """The content-encryption key through the recipient's private-key step."""
    if isinstance(recipient, KeyTransRecipient):
        return operator.key_transport(recipient.encrypted_key, recipient.hash_name)
    z = operator.agree(recipient.originator_point)
    try:
        info = shared_info(recipient.wrap_algorithm, recipient.ukm, recipient.wrap_key_size)
        kek = _kek(z, recipient.kdf_hash, info, recipient.wrap_key_size)
    finally:
        z[:] = bytes(len(z))
    return aes_unwrap(kek, recipient.encrypted_key)


def decrypt_content(envelope: Envelope, cek: bytearray) -> Secret:
    """AES-CBC decryption into a buffer that becomes the returned Secret; ``cek`` is wiped."""
    buf = bytearray(len(envelope.encrypted_content) + 15)
    try:
        if len(cek) != envelope.content_key_size:
            raise UnwrapError("the content-encryption key has the wrong size")
        decryptor = Cipher(algorithms.AES(bytes(cek)), modes.CBC(envelope.iv)).decryptor()
        n = decryptor.update_into(envelope.encrypted_content, buf)
        decryptor.finalize()
        pad = buf[n - 1]
        if not 1 <= pad <= 16 or buf[n - pad:n] != bytes([pad]) * pad:
            raise UnwrapError("the envelope's content does not decrypt: altered envelope?")
        return Secret.take(buf[:n - pad])
    finally:
        cek[:] = bytes(len(cek))
        buf[:] = bytes(len(buf))


def open_envelope(envelope: Envelope, recipient: Recipient, operator: KeyOperator) -> Secret:
    """The content (the master key) as a Secret; :class:`UnwrapError` when it does not open."""
    return decrypt_content(envelope, content_key(recipient, operator))
