"""The BER subset used by the MCS Connect-Initial and Connect-Response (T.125 7 part 2, X.690).

Only definite lengths (short form or the 1- and 2-byte long forms), universal
INTEGER, BOOLEAN, OCTET STRING, ENUMERATED and SEQUENCE, and application
tags up to 127. Integers are read as unsigned values: some RDP peers write
65535 as ``02 02 ff ff`` (without the leading zero BER asks for), and every
integer in these PDUs is non-negative.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from rdscard.pdu.buffer import Reader, Writer

#: Longest integer accepted (32-bit values plus a leading zero byte).
MAX_INTEGER_BYTES: Final = 5
#: Longest length accepted: the 2-byte long form.
MAX_LENGTH: Final = 0xFFFF


class Tag(IntEnum):
    """Universal tags (X.690 8.x) and the constructed SEQUENCE tag."""

    BOOLEAN = 0x01
    INTEGER = 0x02
    OCTET_STRING = 0x04
    ENUMERATED = 0x0A
    SEQUENCE = 0x30


_APPLICATION_CONSTRUCTED: Final = 0x60
_HIGH_TAG_NUMBER: Final = 0x1F


def read_length(reader: Reader, field: str) -> int:
    """A definite length; the long form may use one or two bytes."""
    first = reader.u8(f"{field}.length")
    if first < 0x80:
        return first
    if first == 0x81:
        return reader.u8(f"{field}.length")
    if first == 0x82:
        return reader.u16be(f"{field}.length")
    raise reader.error(f"{field}.length", f"unsupported length form 0x{first:02x}")


def write_length(writer: Writer, length: int) -> None:
    """A definite length in the shortest form."""
    if length < 0:
        raise ValueError("negative BER length")
    if length < 0x80:
        writer.u8(length)
    elif length <= 0xFF:
        writer.u8(0x81).u8(length)
    elif length <= MAX_LENGTH:
        writer.u8(0x82).u16be(length)
    else:
        raise ValueError(f"BER length {length} too large")


def _expect_tag(reader: Reader, tag: int, field: str) -> None:
    got = reader.u8(f"{field}.tag")
    if got != tag:
        raise reader.error(f"{field}.tag", f"expected 0x{tag:02x}, got 0x{got:02x}")


def read_application_tag(reader: Reader, number: int, field: str) -> int:
    """A constructed [APPLICATION number] tag; returns the content length."""
    if number < _HIGH_TAG_NUMBER:
        _expect_tag(reader, _APPLICATION_CONSTRUCTED | number, field)
    else:
        _expect_tag(reader, _APPLICATION_CONSTRUCTED | _HIGH_TAG_NUMBER, field)
        got = reader.u8(f"{field}.tag")
        if got != number:
            raise reader.error(f"{field}.tag", f"expected application {number}, got {got}")
    return read_length(reader, field)


def write_application_tag(writer: Writer, number: int, content: bytes) -> None:
    """A constructed [APPLICATION number] with ``content``."""
    if not 0 <= number < 0x80:
        raise ValueError(f"application tag {number} out of range")
    if number < _HIGH_TAG_NUMBER:
        writer.u8(_APPLICATION_CONSTRUCTED | number)
    else:
        writer.u8(_APPLICATION_CONSTRUCTED | _HIGH_TAG_NUMBER).u8(number)
    write_length(writer, len(content))
    writer.raw(content)


def read_sequence(reader: Reader, field: str) -> Reader:
    """A SEQUENCE: returns a reader over its content, consumed from ``reader``."""
    _expect_tag(reader, Tag.SEQUENCE, field)
    length = read_length(reader, field)
    return reader.sub(length, field)


def write_sequence(writer: Writer, content: bytes) -> None:
    """A SEQUENCE holding ``content``."""
    writer.u8(Tag.SEQUENCE)
    write_length(writer, len(content))
    writer.raw(content)


def read_integer(reader: Reader, field: str) -> int:
    """A non-negative INTEGER of 1 to 5 content bytes."""
    _expect_tag(reader, Tag.INTEGER, field)
    length = read_length(reader, field)
    if not 1 <= length <= MAX_INTEGER_BYTES:
        raise reader.error(field, f"integer of {length} bytes")
    return int.from_bytes(reader.raw(length, field), "big")


def write_integer(writer: Writer, value: int) -> None:
    """A non-negative INTEGER in the fewest bytes that keep it positive."""
    if value < 0:
        raise ValueError("negative BER integer")
    content = value.to_bytes(value.bit_length() // 8 + 1, "big")
    writer.u8(Tag.INTEGER)
    write_length(writer, len(content))
    writer.raw(content)


def read_boolean(reader: Reader, field: str) -> bool:
    """A BOOLEAN (any non-zero octet is TRUE)."""
    _expect_tag(reader, Tag.BOOLEAN, field)
    length = read_length(reader, field)
    if length != 1:
        raise reader.error(field, f"boolean of {length} bytes")
    return reader.u8(field) != 0


def write_boolean(writer: Writer, value: bool) -> None:
    """A BOOLEAN, TRUE written as 0xFF."""
    writer.u8(Tag.BOOLEAN).u8(1).u8(0xFF if value else 0x00)


def read_enumerated(reader: Reader, count: int, field: str) -> int:
    """An ENUMERATED of one content byte, below ``count``."""
    _expect_tag(reader, Tag.ENUMERATED, field)
    length = read_length(reader, field)
    if length != 1:
        raise reader.error(field, f"enumerated of {length} bytes")
    value = reader.u8(field)
    if value >= count:
        raise reader.error(field, f"value {value} out of range (< {count})")
    return value


def write_enumerated(writer: Writer, value: int) -> None:
    """An ENUMERATED of one content byte."""
    if not 0 <= value <= 0x7F:
        raise ValueError(f"enumerated value {value} out of range")
    writer.u8(Tag.ENUMERATED).u8(1).u8(value)


def read_octet_string(reader: Reader, field: str, max_length: int = MAX_LENGTH) -> bytes:
    """An OCTET STRING of at most ``max_length`` bytes."""
    _expect_tag(reader, Tag.OCTET_STRING, field)
    length = read_length(reader, field)
    if length > max_length:
        raise reader.error(field, f"{length} bytes, at most {max_length} allowed")
    return reader.raw(length, field)


def write_octet_string(writer: Writer, value: bytes) -> None:
    """An OCTET STRING."""
    writer.u8(Tag.OCTET_STRING)
    write_length(writer, len(value))
    writer.raw(value)
