"""Content of the PIV data objects a card creates for itself.

The Application Property Template returned by SELECT (SP 800-73-4 Part 2
3.1.1, tables 3-5), the FASC-N (TIG SCEPACS 6.2, referenced from SP
800-73-4 Part 1 3.1.2), the Card Holder Unique Identifier (Part 1 3.1.2,
table 9), the Card Capability Container (Part 1 3.1.1, table 8) and the
Discovery Object (Part 1 3.3.2). Values are the content of the container
(what follows tag 53), except the discovery object, which is its own
template 7E.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from rdscard.card.constants import NIST_RID, PIV_AID, PIV_AID_PIX, Algorithm
from rdscard.pdu.tlv import tlv

FASC_N_SIZE: Final = 25
GUID_SIZE: Final = 16
CARD_ID_SIZE: Final = 21
GSC_RID: Final = bytes.fromhex("A000000116")
PIN_USAGE_POLICY_PIV_PIN_ONLY: Final = bytes.fromhex("4000")
APPLICATION_LABEL: Final = b"rdscard virtual PIV"
SUPPORTED_ALGORITHMS: Final = (
    Algorithm.TDES, Algorithm.AES_128, Algorithm.AES_192, Algorithm.AES_256,
    Algorithm.RSA_2048, Algorithm.ECC_P256,
)

_SS: Final = 0xB  # start sentinel
_FS: Final = 0xD  # field separator
_ES: Final = 0xF  # end sentinel
_FASC_N_WIDTHS: Final = (4, 4, 6, 1, 1, 10, 1, 4, 1)


def application_property_template(
    algorithms: Sequence[int] = SUPPORTED_ALGORITHMS, label: bytes = APPLICATION_LABEL
) -> bytes:
    """Tag 61 returned by SELECT (SP 800-73-4 Part 2 tables 3, 4 and 5)."""
    algs = b"".join(tlv(0x80, bytes((a,))) for a in algorithms) + tlv(0x06)
    body = (tlv(0x4F, PIV_AID_PIX) + tlv(0x79, tlv(0x4F, NIST_RID)) + tlv(0x50, label)
            + tlv(0xAC, algs))
    return tlv(0x61, body)


def discovery_object(pin_usage_policy: bytes = PIN_USAGE_POLICY_PIV_PIN_ONLY) -> bytes:
    """Discovery Object template 7E (SP 800-73-4 Part 1 3.3.2): AID and PIN usage policy."""
    return tlv(0x7E, tlv(0x4F, PIV_AID) + tlv(0x5F2F, pin_usage_policy))


@dataclass(frozen=True, slots=True)
class FascN:
    """Federal Agency Smart Credential Number fields (TIG SCEPACS 6.2)."""

    agency_code: str
    system_code: str
    credential_number: str
    credential_series: str = "1"
    individual_credential_issue: str = "1"
    person_identifier: str = "0000000000"
    organizational_category: str = "1"
    organizational_identifier: str = "0000"
    person_association: str = "1"

    def encode(self) -> bytes:
        """The 25-byte packed form: 40 characters of 4 bits (LSB first) and odd parity."""
        fields = (self.agency_code, self.system_code, self.credential_number,
                  self.credential_series, self.individual_credential_issue,
                  self.person_identifier, self.organizational_category,
                  self.organizational_identifier, self.person_association)
        for value, width in zip(fields, _FASC_N_WIDTHS, strict=True):
            if len(value) != width or not value.isascii() or not value.isdigit():
                raise ValueError(f"FASC-N field {value!r} must be {width} digits")
        chars = [_SS]
        for value in fields[:5]:
            chars += [int(c) for c in value]
            chars.append(_FS)
        chars += [int(c) for c in "".join(fields[5:])]
        chars.append(_ES)
        lrc = 0
        for c in chars:
            lrc ^= c
        chars.append(lrc)
        bits = "".join(_five_bits(c) for c in chars)
        return int(bits, 2).to_bytes(FASC_N_SIZE, "big")


def _five_bits(value: int) -> str:
    data = "".join(str((value >> i) & 1) for i in range(4))
    parity = "0" if data.count("1") % 2 else "1"
    return data + parity


def chuid(fasc_n: bytes, guid: bytes, expiration: datetime.date,
          signature: bytes = b"") -> bytes:
    """CHUID container content (SP 800-73-4 Part 1 table 9).

    A test card may leave the issuer asymmetric signature (tag 3E) empty.
    """
    if len(fasc_n) != FASC_N_SIZE or len(guid) != GUID_SIZE:
        raise ValueError("FASC-N must be 25 bytes and GUID 16 bytes")
    return (tlv(0x30, fasc_n) + tlv(0x34, guid)
            + tlv(0x35, expiration.strftime("%Y%m%d").encode("ascii"))
            + tlv(0x3E, signature) + tlv(0xFE))


def ccc(card_id: bytes) -> bytes:
    """Card Capability Container content (SP 800-73-4 Part 1 table 8).

    ``card_id`` is the 14-byte card identifier that follows the GSC-IS RID,
    the manufacturer ID (FF: none) and the card type (02: Java Card).
    """
    if len(card_id) != CARD_ID_SIZE - 7:
        raise ValueError("card identifier must be 14 bytes")
    return (tlv(0xF0, GSC_RID + b"\xff\x02" + card_id) + tlv(0xF1, b"\x21")
            + tlv(0xF2, b"\x21") + tlv(0xF3) + tlv(0xF4, b"\x00") + tlv(0xF5, b"\x10")
            + tlv(0xF6) + tlv(0xF7) + tlv(0xFA) + tlv(0xFB) + tlv(0xFC) + tlv(0xFD)
            + tlv(0xFE))


def test_fasc_n(serial: int) -> FascN:
    """A FASC-N for a test card: agency and system 9999, credential number from the serial."""
    return FascN("9999", "9999", f"{serial % 1_000_000:06d}")


def default_objects(serial: int, rng: Callable[[int], bytes],
                    expiration: datetime.date) -> dict[int, bytes]:
    """CHUID, CCC and Discovery Object of a new card (container content by tag)."""
    guid = bytearray(rng(GUID_SIZE))
    guid[6] = (guid[6] & 0x0F) | 0x40  # RFC 4122 version 4
    guid[8] = (guid[8] & 0x3F) | 0x80
    discovery_content = discovery_object()[2:]
    return {
        0x5FC102: chuid(test_fasc_n(serial).encode(), bytes(guid), expiration),
        0x5FC107: ccc(rng(CARD_ID_SIZE - 7)),
        0x7E: discovery_content,
    }
