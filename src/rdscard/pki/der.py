"""A tiny DER encoder and decoder for the certificate extension values we build.

The ``cryptography`` package writes certificates but has no type for the two
otherName values smart card logon needs, so they are encoded here:

- the Microsoft User Principal Name (OID 1.3.6.1.4.1.311.20.2.3), a UTF8String;
- the PKINIT ``KRB5PrincipalName`` (RFC 4556 section 3.2.2, id-pkinit-san
  1.3.6.1.5.2.2)::

      KRB5PrincipalName ::= SEQUENCE {
          realm          [0] Realm,            -- GeneralString
          principalName  [1] PrincipalName }
      PrincipalName ::= SEQUENCE {
          name-type      [0] Int32,
          name-string    [1] SEQUENCE OF KerberosString }

Only definite lengths and single-byte tags are accepted, as DER requires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader

MAX_DER_LENGTH: Final = 4096
MAX_NAME_COMPONENTS: Final = 8

KRB5_PRINCIPAL_NAME_PDU: Final = "KRB5PrincipalName"
UPN_PDU: Final = "UPN otherName"
SID_EXTENSION_PDU: Final = "szOID_NTDS_CA_SECURITY_EXT"
#: szOID_NTDS_CA_SECURITY_EXT, the extension, and szOID_NTDS_OBJECTSID, its otherName
OID_NTDS_CA_SECURITY_EXT: Final = "1.3.6.1.4.1.311.25.2"
OID_NTDS_OBJECTSID: Final = "1.3.6.1.4.1.311.25.2.1"
#: DER content octets of 1.3.6.1.4.1.311.25.2.1 (X.690 8.19)
_OBJECTSID_OID_DER: Final = bytes.fromhex("2B0601040182371902 01".replace(" ", ""))
_SID: Final = re.compile(r"S-1-[0-9]{1,15}(-[0-9]{1,10}){1,15}")


class Tag(IntEnum):
    """ASN.1 universal and context tags used by these structures (X.690 8.1.2)."""

    INTEGER = 0x02
    OCTET_STRING = 0x04
    OBJECT_IDENTIFIER = 0x06
    UTF8_STRING = 0x0C
    GENERAL_STRING = 0x1B
    SEQUENCE = 0x30
    CONTEXT_0 = 0xA0
    CONTEXT_1 = 0xA1


class NameType(IntEnum):
    """Kerberos principal name types (RFC 4120 section 6.2)."""

    KRB5_NT_PRINCIPAL = 1
    KRB5_NT_SRV_INST = 2
    KRB5_NT_ENTERPRISE_PRINCIPAL = 10


def encode_length(length: int) -> bytes:
    """DER definite length octets (X.690 8.1.3)."""
    if length < 0:
        raise ValueError("negative DER length")
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element."""
    return bytes([tag]) + encode_length(len(content)) + content


def encode_integer(value: int) -> bytes:
    """A DER INTEGER (two's complement, minimal length)."""
    length = max(1, (value.bit_length() + 8) // 8)
    return tlv(Tag.INTEGER, value.to_bytes(length, "big", signed=True))


def read_element(reader: Reader, expected_tag: int, field: str) -> Reader:
    """Read one element with ``expected_tag`` and return a reader over its content."""
    tag = reader.u8(f"{field} tag")
    if tag != expected_tag:
        raise reader.error(f"{field} tag", f"expected 0x{expected_tag:02X}, got 0x{tag:02X}")
    first = reader.u8(f"{field} length")
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 2:
            raise reader.error(f"{field} length", f"unsupported length form 0x{first:02X}")
        length = int.from_bytes(reader.raw(count, f"{field} length"), "big")
        if length < 0x80 or (count == 2 and length < 0x100):
            raise reader.error(f"{field} length", "non-minimal length encoding")
    if length > MAX_DER_LENGTH:
        raise reader.error(f"{field} length", f"{length} exceeds {MAX_DER_LENGTH}")
    return reader.sub(length, field)


def _text(reader: Reader, tag: int, field: str, encoding: str) -> str:
    raw = read_element(reader, tag, field).rest()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise reader.error(field, f"not valid {encoding}") from None


def encode_upn(upn: str) -> bytes:
    """The value of the UPN otherName: a DER UTF8String."""
    return tlv(Tag.UTF8_STRING, upn.encode("utf-8"))


def decode_upn(data: bytes) -> str:
    """Parse the UPN otherName value; raises :class:`ProtocolError` when malformed."""
    reader = Reader(data, UPN_PDU)
    value = _text(reader, Tag.UTF8_STRING, "userPrincipalName", "utf-8")
    reader.expect_end()
    return value


def is_sid(text: str) -> bool:
    """``text`` is a SID in its string form ``S-1-5-21-...`` ([MS-DTYP] 2.4.2.1)."""
    return _SID.fullmatch(text) is not None


def encode_sid_extension(sid: str) -> bytes:
    """The value of the SID extension a Windows CA adds since KB5014754.

    szOID_NTDS_CA_SECURITY_EXT (1.3.6.1.4.1.311.25.2) holds GeneralNames with
    one otherName: type-id szOID_NTDS_OBJECTSID (1.3.6.1.4.1.311.25.2.1), value
    ``[0] EXPLICIT OCTET STRING`` of the account's SID as ASCII text::

        30 L  A0 L  06 0A 2B0601040182371902 01  A0 L  04 L  "S-1-5-21-..."
    """
    if not is_sid(sid):
        raise ValueError(f"{sid!r} is not a SID (S-1-5-21-...)")
    value = tlv(Tag.CONTEXT_0, tlv(Tag.OCTET_STRING, sid.encode("ascii")))
    other_name = tlv(Tag.CONTEXT_0, tlv(Tag.OBJECT_IDENTIFIER, _OBJECTSID_OID_DER) + value)
    return tlv(Tag.SEQUENCE, other_name)


def decode_sid_extension(data: bytes) -> str:
    """The SID in a SID extension's value; :class:`ProtocolError` when malformed.

    Only the one otherName Windows writes is accepted: another name, a second
    one or trailing bytes are errors, not ignored.
    """
    reader = Reader(data, SID_EXTENSION_PDU)
    names = read_element(reader, Tag.SEQUENCE, "GeneralNames")
    reader.expect_end()
    other = read_element(names, Tag.CONTEXT_0, "otherName")
    names.expect_end()
    oid = read_element(other, Tag.OBJECT_IDENTIFIER, "type-id").rest()
    if oid != _OBJECTSID_OID_DER:
        raise other.error("type-id", f"not szOID_NTDS_OBJECTSID ({OID_NTDS_OBJECTSID})")
    value = read_element(other, Tag.CONTEXT_0, "value")
    other.expect_end()
    raw = read_element(value, Tag.OCTET_STRING, "SID").rest()
    value.expect_end()
    text = raw.decode("ascii", "replace")
    if not is_sid(text):
        raise value.error("SID", "not a SID string S-1-...")
    return text


@dataclass(frozen=True)
class Krb5PrincipalName:
    """RFC 4556 3.2.2 KRB5PrincipalName: a realm and a principal name."""

    realm: str
    name_type: int
    name_string: tuple[str, ...]

    @classmethod
    def parse(cls, principal: str, name_type: int | None = None) -> Self:
        """From ``name/instance@REALM``; krbtgt names get KRB5_NT_SRV_INST."""
        name, sep, realm = principal.rpartition("@")
        if not sep or not name or not realm:
            raise ValueError(f"principal {principal!r} has no realm: write it as name@REALM")
        parts = tuple(name.split("/"))
        if name_type is None:
            name_type = (
                NameType.KRB5_NT_SRV_INST if len(parts) > 1 else NameType.KRB5_NT_PRINCIPAL
            )
        return cls(realm=realm, name_type=int(name_type), name_string=parts)

    def __str__(self) -> str:
        return "/".join(self.name_string) + "@" + self.realm

    def encode(self) -> bytes:
        """DER encoding, as carried in the id-pkinit-san otherName value."""
        names = b"".join(tlv(Tag.GENERAL_STRING, s.encode("ascii")) for s in self.name_string)
        principal = tlv(
            Tag.SEQUENCE,
            tlv(Tag.CONTEXT_0, encode_integer(self.name_type))
            + tlv(Tag.CONTEXT_1, tlv(Tag.SEQUENCE, names)),
        )
        realm = tlv(Tag.GENERAL_STRING, self.realm.encode("ascii"))
        return tlv(Tag.SEQUENCE, tlv(Tag.CONTEXT_0, realm) + tlv(Tag.CONTEXT_1, principal))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse the DER value; raises :class:`ProtocolError` when malformed."""
        outer = Reader(data, KRB5_PRINCIPAL_NAME_PDU)
        seq = read_element(outer, Tag.SEQUENCE, "KRB5PrincipalName")
        outer.expect_end()
        realm_box = read_element(seq, Tag.CONTEXT_0, "realm")
        realm = _text(realm_box, Tag.GENERAL_STRING, "realm", "ascii")
        realm_box.expect_end()
        name_box = read_element(seq, Tag.CONTEXT_1, "principalName")
        seq.expect_end()
        principal = read_element(name_box, Tag.SEQUENCE, "principalName")
        name_box.expect_end()
        type_box = read_element(principal, Tag.CONTEXT_0, "name-type")
        int_reader = read_element(type_box, Tag.INTEGER, "name-type")
        type_box.expect_end()
        raw_type = int_reader.rest()
        if not 1 <= len(raw_type) <= 4:
            raise principal.error("name-type", f"{len(raw_type)}-byte integer")
        name_type = int.from_bytes(raw_type, "big", signed=True)
        strings_box = read_element(principal, Tag.CONTEXT_1, "name-string")
        principal.expect_end()
        strings = read_element(strings_box, Tag.SEQUENCE, "name-string")
        strings_box.expect_end()
        parts: list[str] = []
        while strings.remaining:
            if len(parts) == MAX_NAME_COMPONENTS:
                raise strings.error("name-string", f"more than {MAX_NAME_COMPONENTS} components")
            parts.append(_text(strings, Tag.GENERAL_STRING, "name-string", "ascii"))
        if not parts:
            raise ProtocolError(KRB5_PRINCIPAL_NAME_PDU, "name-string", "empty principal name")
        return cls(realm=realm, name_type=name_type, name_string=tuple(parts))
