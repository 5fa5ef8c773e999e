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

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader

MAX_DER_LENGTH: Final = 4096
MAX_NAME_COMPONENTS: Final = 8

KRB5_PRINCIPAL_NAME_PDU: Final = "KRB5PrincipalName"
UPN_PDU: Final = "UPN otherName"


class Tag(IntEnum):
    """ASN.1 universal and context tags used by the two structures (X.690 8.1.2)."""

    INTEGER = 0x02
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
