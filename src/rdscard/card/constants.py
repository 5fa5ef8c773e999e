"""PIV identifiers: AIDs, instructions, key references, algorithms and data object tags.

NIST SP 800-73-4 Part 1 (2.2 AID, 3 data model, table 3 container tags,
table 4 key references) and Part 2 (table 18 instructions); SP 800-78-4
table 6-2 (algorithm identifiers); YubiKey PIV extensions for the
instructions OpenSC and yubico-piv-tool probe.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

PIV_AID: Final = bytes.fromhex("A000000308000010000100")
"""The PIV Card Application AID with version 01 00 (SP 800-73-4 Part 1 2.2)."""
PIV_AID_PIX: Final = PIV_AID[5:]
NIST_RID: Final = PIV_AID[:5]
MIN_SELECT_AID: Final = len(NIST_RID)

YUBIKEY_ATR: Final = bytes.fromhex("3BF81300008131FE15597562696B657934D4")
"""A YubiKey-4-like ATR, so that OpenSC picks its PIV driver straight away."""


class Ins(IntEnum):
    """Instruction bytes (SP 800-73-4 Part 2 table 18, plus YubiKey extensions)."""

    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x47
    GENERAL_AUTHENTICATE = 0x87
    SELECT = 0xA4
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCB
    PUT_DATA = 0xDB
    GET_METADATA = 0xF7  # YubiKey
    SET_PIN_RETRIES = 0xFA  # YubiKey
    RESET = 0xFB  # YubiKey
    GET_SERIAL = 0xF8  # YubiKey
    GET_VERSION = 0xFD  # YubiKey
    SET_MANAGEMENT_KEY = 0xFF  # YubiKey


class KeyRef(IntEnum):
    """Key references (SP 800-73-4 Part 1 table 4)."""

    PIV_PIN = 0x80
    PUK = 0x81
    RETIRED_1 = 0x82
    RETIRED_20 = 0x95
    PIV_AUTHENTICATION = 0x9A
    CARD_MANAGEMENT = 0x9B
    DIGITAL_SIGNATURE = 0x9C
    KEY_MANAGEMENT = 0x9D
    CARD_AUTHENTICATION = 0x9E


class Algorithm(IntEnum):
    """Cryptographic algorithm identifiers (SP 800-78-4 table 6-2)."""

    TDES = 0x03
    RSA_1024 = 0x06
    RSA_2048 = 0x07
    AES_128 = 0x08
    AES_192 = 0x0A
    AES_256 = 0x0C
    ECC_P256 = 0x11
    ECC_P384 = 0x14


SYMMETRIC_KEY_SIZES: Final[dict[int, int]] = {
    Algorithm.TDES: 24,
    Algorithm.AES_128: 16,
    Algorithm.AES_192: 24,
    Algorithm.AES_256: 32,
}
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {Algorithm.RSA_1024, Algorithm.RSA_2048, Algorithm.ECC_P256, Algorithm.ECC_P384}
)
GENERATABLE_ALGORITHMS: Final = frozenset({Algorithm.RSA_2048, Algorithm.ECC_P256})
DEFAULT_MANAGEMENT_KEY: Final = bytes.fromhex("010203040506070801020304050607080102030405060708")


class Tag(IntEnum):
    """Data object tags (SP 800-73-4 Part 1 table 3)."""

    CARD_AUTHENTICATION_CERT = 0x5FC101
    CHUID = 0x5FC102
    FINGERPRINTS = 0x5FC103
    PIV_AUTHENTICATION_CERT = 0x5FC105
    SECURITY_OBJECT = 0x5FC106
    CCC = 0x5FC107
    FACIAL_IMAGE = 0x5FC108
    PRINTED_INFORMATION = 0x5FC109
    DIGITAL_SIGNATURE_CERT = 0x5FC10A
    KEY_MANAGEMENT_CERT = 0x5FC10B
    KEY_HISTORY = 0x5FC10C
    RETIRED_CERT_1 = 0x5FC10D
    RETIRED_CERT_20 = 0x5FC120
    IRIS_IMAGES = 0x5FC121
    SM_CERT_SIGNER = 0x5FC122
    PAIRING_CODE = 0x5FC123
    DISCOVERY = 0x7E
    BIOMETRIC_GROUP_TEMPLATE = 0x7F61


# Containers only readable after PIN verification (SP 800-73-4 Part 1 table 2).
PIN_PROTECTED_TAGS: Final = frozenset(
    {Tag.FINGERPRINTS, Tag.FACIAL_IMAGE, Tag.PRINTED_INFORMATION, Tag.IRIS_IMAGES,
     Tag.PAIRING_CODE}
)
# Objects that GET DATA returns under their own tag instead of inside tag 53.
SELF_TAGGED: Final = frozenset({Tag.DISCOVERY, Tag.BIOMETRIC_GROUP_TEMPLATE})
# YubiKey-range objects (admin data, protected data, attestation) that tools store.
VENDOR_TAGS: Final = range(0x5FFF00, 0x5FFF16)
CONTAINER_TAG: Final = 0x53
TAG_LIST: Final = 0x5C


def is_known_object(tag: int) -> bool:
    """Whether PUT DATA / GET DATA accept ``tag`` on this card."""
    in_piv_range = Tag.CARD_AUTHENTICATION_CERT <= tag <= Tag.PAIRING_CODE and tag != 0x5FC104
    return in_piv_range or tag in SELF_TAGGED or tag in VENDOR_TAGS


def is_asymmetric_slot(key_ref: int) -> bool:
    """Key references that hold an asymmetric private key (SP 800-73-4 Part 1 table 4)."""
    return (key_ref in (KeyRef.PIV_AUTHENTICATION, KeyRef.DIGITAL_SIGNATURE,
                        KeyRef.KEY_MANAGEMENT, KeyRef.CARD_AUTHENTICATION)
            or KeyRef.RETIRED_1 <= key_ref <= KeyRef.RETIRED_20)


def certificate_tag(key_ref: int) -> int | None:
    """The certificate container of an asymmetric slot (SP 800-73-4 Part 1 table 3)."""
    fixed: dict[int, int] = {
        KeyRef.PIV_AUTHENTICATION: Tag.PIV_AUTHENTICATION_CERT,
        KeyRef.DIGITAL_SIGNATURE: Tag.DIGITAL_SIGNATURE_CERT,
        KeyRef.KEY_MANAGEMENT: Tag.KEY_MANAGEMENT_CERT,
        KeyRef.CARD_AUTHENTICATION: Tag.CARD_AUTHENTICATION_CERT,
    }
    if key_ref in fixed:
        return fixed[key_ref]
    if KeyRef.RETIRED_1 <= key_ref <= KeyRef.RETIRED_20:
        return Tag.RETIRED_CERT_1 + key_ref - KeyRef.RETIRED_1
    return None
