"""Host-side PIV codecs: constants, BER-TLV, command APDUs and response parsing.

NIST SP 800-73-4 Part 1 (data model: object tags, key references,
algorithm identifiers) and Part 2 (card commands: 3.1 SELECT, 3.2.1 VERIFY,
3.2.2 CHANGE REFERENCE DATA, 3.2.3 RESET RETRY COUNTER, 3.2.4 GENERAL
AUTHENTICATE, 3.3.2 PUT DATA, 3.3.3 GENERATE ASYMMETRIC KEY PAIR, 3.1.2 GET
DATA), on top of the BER-TLV codec of :mod:`rdscard.pdu.tlv`. Pure functions: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rdscard.card.constants import Algorithm as Algorithm  # SP 800-78-4 table 6-2, one definition
from rdscard.errors import ProtocolError
from rdscard.pdu.tlv import Tlv, decode_all, encode_tag, tlv

PIV_AID: Final = bytes.fromhex("A000000308000010000100")
PIV_AID_SHORT: Final = bytes.fromhex("A00000030800001000")
MAX_TLV_LENGTH: Final = 0xFFFF
MAX_TLV_ITEMS: Final = 64
PIN_LENGTH: Final = 8
PIN_PAD: Final = 0xFF


class Ins(IntEnum):
    """Instruction bytes (SP 800-73-4 Part 2 table 18; SET MANAGEMENT KEY is YubiKey's)."""

    SELECT = 0xA4
    GET_DATA = 0xCB
    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    GENERAL_AUTHENTICATE = 0x87
    PUT_DATA = 0xDB
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x47
    GET_RESPONSE = 0xC0
    SET_MANAGEMENT_KEY = 0xFF


class KeyRef(IntEnum):
    """Key references (SP 800-73-4 Part 1 table 4)."""

    PIV_PIN = 0x80
    PUK = 0x81
    AUTHENTICATION = 0x9A
    CARD_MANAGEMENT = 0x9B
    DIGITAL_SIGNATURE = 0x9C
    KEY_MANAGEMENT = 0x9D
    CARD_AUTHENTICATION = 0x9E


SYMMETRIC_KEY_LENGTHS: Final = {
    Algorithm.TDES: 24, Algorithm.AES_128: 16, Algorithm.AES_192: 24, Algorithm.AES_256: 32,
}


class DataObject(IntEnum):
    """BER-TLV tags of the PIV data objects (SP 800-73-4 Part 1 table 3)."""

    CARD_CAPABILITY_CONTAINER = 0x5FC107
    CHUID = 0x5FC102
    X509_CERT_PIV_AUTHENTICATION = 0x5FC105
    X509_CERT_DIGITAL_SIGNATURE = 0x5FC10A
    X509_CERT_KEY_MANAGEMENT = 0x5FC10B
    X509_CERT_CARD_AUTHENTICATION = 0x5FC101
    PRINTED_INFORMATION = 0x5FC109
    KEY_HISTORY = 0x5FC10C
    DISCOVERY = 0x7E


CERT_OBJECT_FOR_SLOT: Final = {
    KeyRef.AUTHENTICATION: DataObject.X509_CERT_PIV_AUTHENTICATION,
    KeyRef.DIGITAL_SIGNATURE: DataObject.X509_CERT_DIGITAL_SIGNATURE,
    KeyRef.KEY_MANAGEMENT: DataObject.X509_CERT_KEY_MANAGEMENT,
    KeyRef.CARD_AUTHENTICATION: DataObject.X509_CERT_CARD_AUTHENTICATION,
}


class Sw(IntEnum):
    """Status words the host side tells apart (SP 800-73-4 Part 2 appendix A)."""

    SUCCESS = 0x9000
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    CONDITIONS_NOT_SATISFIED = 0x6985
    INCORRECT_DATA = 0x6A80
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1_P2 = 0x6A86
    REFERENCE_NOT_FOUND = 0x6A88
    INS_NOT_SUPPORTED = 0x6D00


# -- BER-TLV (ISO/IEC 7816-4 5.2, codec in rdscard.pdu.tlv) ---------------------


def parse_tlvs(data: bytes, pdu: str, field: str = "TLV") -> dict[int, bytes]:
    """A flat run of BER-TLV elements as {tag: value}; duplicate tags are an error."""
    items: dict[int, bytes] = {}
    for item in decode_all(data, pdu, max_length=MAX_TLV_LENGTH, max_items=MAX_TLV_ITEMS):
        if item.tag in items:
            raise ProtocolError(pdu, field, f"duplicate tag 0x{item.tag:X}")
        items[item.tag] = item.value
    return items


def unwrap(data: bytes, tag: int, pdu: str) -> bytes:
    """The value of the single element ``tag`` that makes up all of ``data``."""
    item = Tlv.decode(data, pdu, MAX_TLV_LENGTH)
    if item.tag != tag:
        raise ProtocolError(pdu, "outer tag", f"expected 0x{tag:X}, got 0x{item.tag:X}")
    return item.value


# -- command builders --------------------------------------------------------


def pad_pin(pin: bytes | bytearray, what: str = "PIN") -> bytearray:
    """A PIN or PUK padded with 0xFF to 8 bytes (SP 800-73-4 Part 2 2.4.3)."""
    if not 1 <= len(pin) <= PIN_LENGTH:
        raise ValueError(f"the {what} must be 1 to {PIN_LENGTH} characters long")
    if PIN_PAD in pin:
        raise ValueError(f"the {what} must not contain the byte 0xFF")
    out = bytearray(pin)
    out.extend([PIN_PAD] * (PIN_LENGTH - len(pin)))
    return out


def data_object_selector(tag: int) -> bytes:
    """The GET DATA / PUT DATA tag list ``5C len tag`` (Part 2 3.1.2)."""
    return tlv(0x5C, encode_tag(tag))


def encode_certificate_object(cert_der: bytes) -> bytes:
    """Certificate container: 70 cert, 71 CertInfo (uncompressed), FE LRC (Part 1 table 10)."""
    return tlv(0x70, cert_der) + tlv(0x71, b"\x00") + tlv(0xFE, b"")


def decode_certificate_object(value: bytes) -> bytes:
    """The certificate DER from a container; compressed certificates are refused."""
    pdu = "PIV certificate object"
    items = parse_tlvs(value, pdu)
    if 0x70 not in items:
        raise ProtocolError(pdu, "Certificate (70)", "missing")
    cert_info = items.get(0x71, b"\x00")
    if cert_info and cert_info[0] & 0x01:
        raise ProtocolError(pdu, "CertInfo (71)", "compressed certificates are not supported")
    return items[0x70]


@dataclass(frozen=True)
class Chuid:
    """Card Holder Unique Identifier (SP 800-73-4 Part 1 3.1.2), the fields tools read."""

    fascn: bytes
    guid: bytes
    expiration: str  # YYYYMMDD

    def encode(self) -> bytes:
        if len(self.fascn) != 25 or len(self.guid) != 16 or len(self.expiration) != 8:
            raise ValueError("CHUID needs a 25-byte FASC-N, a 16-byte GUID and YYYYMMDD")
        return (
            tlv(0x30, self.fascn) + tlv(0x34, self.guid)
            + tlv(0x35, self.expiration.encode("ascii")) + tlv(0x3E, b"") + tlv(0xFE, b"")
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        pdu = "PIV CHUID"
        items = parse_tlvs(data, pdu)
        for tag, name, size in ((0x30, "FASC-N (30)", 25), (0x34, "GUID (34)", 16),
                                (0x35, "Expiration Date (35)", 8)):
            if len(items.get(tag, b"")) != size:
                raise ProtocolError(pdu, name, f"missing or not {size} bytes")
        try:
            expiration = items[0x35].decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(pdu, "Expiration Date (35)", "not ASCII") from None
        return cls(fascn=items[0x30], guid=items[0x34], expiration=expiration)


# -- responses ----------------------------------------------------------------

GENERATE_PDU: Final = "PIV GENERATE ASYMMETRIC KEY PAIR response"


def decode_public_key(data: bytes, algorithm: int) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The 7F49 public key template of a key generation response (Part 2 3.3.2)."""
    items = parse_tlvs(unwrap(data, 0x7F49, GENERATE_PDU), GENERATE_PDU, "public key")
    if algorithm in (Algorithm.RSA_1024, Algorithm.RSA_2048):
        modulus, exponent = items.get(0x81), items.get(0x82)
        if not modulus or not exponent or len(exponent) > 8:
            raise ProtocolError(GENERATE_PDU, "modulus (81) / exponent (82)", "missing or bad")
        n, e = int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big")
        expected = 2048 if algorithm == Algorithm.RSA_2048 else 1024
        if n.bit_length() != expected or e < 3 or e % 2 == 0:
            raise ProtocolError(GENERATE_PDU, "modulus (81)", f"not an RSA-{expected} key")
        return rsa.RSAPublicNumbers(e, n).public_key()
    curve: ec.EllipticCurve
    if algorithm == Algorithm.ECC_P256:
        curve = ec.SECP256R1()
    elif algorithm == Algorithm.ECC_P384:
        curve = ec.SECP384R1()
    else:
        raise ProtocolError(GENERATE_PDU, "algorithm", f"unsupported 0x{algorithm:02X}")
    point = items.get(0x86)
    if point is None:
        raise ProtocolError(GENERATE_PDU, "point (86)", "missing")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError:
        raise ProtocolError(GENERATE_PDU, "point (86)", "not a point on the curve") from None


def general_authenticate_data(**items: bytes) -> bytes:
    """Dynamic authentication template 7C with items named a80, a81, a82, a85 (Part 2 3.2.4)."""
    return tlv(0x7C, b"".join(tlv(int(name[1:], 16), value) for name, value in items.items()))


def decode_general_authenticate(data: bytes) -> dict[int, bytes]:
    """The items of a 7C dynamic authentication template response."""
    pdu = "PIV GENERAL AUTHENTICATE response"
    return parse_tlvs(unwrap(data, 0x7C, pdu), pdu, "template")
