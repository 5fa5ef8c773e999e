"""The aligned PER subset used by T.124 GCC and the T.125 MCS domain PDUs (X.691).

RDP only ever needs byte-aligned pieces: CHOICE indexes and option bitmaps
held in one byte, lengths (1 byte, or 2 bytes with the top bit set),
constrained 16-bit integers, small unconstrained integers, object
identifiers, octet strings and numeric strings. RDP peers never fragment
(X.691 10.9.3.8): they write any length up to 32767 in the 2-byte form with
only the top bit set, so that is how lengths are read and written here.
"""

from __future__ import annotations

from typing import Final

from rdscard.pdu.buffer import Reader, Writer

#: Largest length the 2-byte form carries (15 bits, as RDP peers use it).
MAX_LENGTH: Final = 0x7FFF


def read_length(reader: Reader, field: str) -> int:
    """A length determinant: 0..127 in one byte, up to 32767 in two."""
    first = reader.u8(f"{field}.length")
    if first & 0x80 == 0:
        return first
    return ((first & 0x7F) << 8) | reader.u8(f"{field}.length")


def write_length(writer: Writer, length: int) -> None:
    """A length determinant in the shortest form."""
    if length < 0 or length > MAX_LENGTH:
        raise ValueError(f"PER length {length} out of range")
    if length < 0x80:
        writer.u8(length)
    else:
        writer.u16be(0x8000 | length)


def read_integer16(reader: Reader, minimum: int, field: str) -> int:
    """An INTEGER (minimum..minimum+65535) in two bytes."""
    return reader.u16be(field) + minimum


def write_integer16(writer: Writer, value: int, minimum: int) -> None:
    """An INTEGER (minimum..minimum+65535) in two bytes."""
    if not minimum <= value <= minimum + 0xFFFF:
        raise ValueError(f"integer {value} outside {minimum}..{minimum + 0xFFFF}")
    writer.u16be(value - minimum)


def read_integer(reader: Reader, field: str) -> int:
    """A semi-constrained INTEGER (0..MAX): a length then 1 to 4 bytes."""
    length = read_length(reader, field)
    if not 1 <= length <= 4:
        raise reader.error(field, f"integer of {length} bytes")
    return int.from_bytes(reader.raw(length, field), "big")


def write_integer(writer: Writer, value: int) -> None:
    """A semi-constrained INTEGER (0..MAX) in the fewest bytes."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"integer {value} out of range")
    size = max(1, (value.bit_length() + 7) // 8)
    writer.u8(size).raw(value.to_bytes(size, "big"))


def read_object_identifier(reader: Reader, field: str) -> tuple[int, ...]:
    """An OBJECT IDENTIFIER whose arcs after the first two are each below 128."""
    length = read_length(reader, field)
    if not 1 <= length <= 16:
        raise reader.error(field, f"object identifier of {length} bytes")
    content = reader.raw(length, field)
    if any(byte & 0x80 for byte in content):
        raise reader.error(field, "multi-byte arcs not supported")
    first = content[0]
    return (first // 40, first % 40, *content[1:])


def write_object_identifier(writer: Writer, oid: tuple[int, ...]) -> None:
    """An OBJECT IDENTIFIER whose arcs after the first two are each below 128."""
    if len(oid) < 2 or oid[0] > 2 or oid[1] >= 40 or any(arc >= 0x80 for arc in oid[2:]):
        raise ValueError(f"object identifier {oid} not supported")
    content = bytes((oid[0] * 40 + oid[1], *oid[2:]))
    write_length(writer, len(content))
    writer.raw(content)


def read_octet_string(reader: Reader, minimum: int, field: str, maximum: int = MAX_LENGTH) -> bytes:
    """An OCTET STRING (SIZE (minimum..MAX)): the length is sent minus ``minimum``."""
    length = read_length(reader, field) + minimum
    if length > maximum:
        raise reader.error(field, f"{length} bytes, at most {maximum} allowed")
    return reader.raw(length, field)


def write_octet_string(writer: Writer, value: bytes, minimum: int) -> None:
    """An OCTET STRING (SIZE (minimum..MAX))."""
    if len(value) < minimum:
        raise ValueError(f"octet string shorter than {minimum}")
    write_length(writer, len(value) - minimum)
    writer.raw(value)


def read_numeric_string(reader: Reader, minimum: int, field: str) -> str:
    """A SimpleNumericString (T.124: digits only), packed four bits each."""
    length = read_length(reader, field) + minimum
    packed = reader.raw((length + 1) // 2, field)
    digits: list[str] = []
    for index in range(length):
        byte = packed[index // 2]
        nibble = byte >> 4 if index % 2 == 0 else byte & 0x0F
        if nibble > 9:
            raise reader.error(field, f"invalid numeric character {nibble}")
        digits.append(str(nibble))
    return "".join(digits)


def write_numeric_string(writer: Writer, value: str, minimum: int) -> None:
    """A SimpleNumericString (digits only), packed four bits each."""
    if len(value) < minimum or not all(c in "0123456789" for c in value):
        raise ValueError(f"numeric string {value!r} invalid")
    write_length(writer, len(value) - minimum)
    nibbles = [int(c) for c in value]
    if len(nibbles) % 2:
        nibbles.append(0)
    writer.raw(bytes((nibbles[i] << 4) | nibbles[i + 1] for i in range(0, len(nibbles), 2)))
