"""BER-TLV data objects (ISO/IEC 7816-4 5.2, as used by NIST SP 800-73-4 Part 1 and 2).

A tag is handled as an integer whose big-endian bytes are its encoding
(``0x5FC102`` is the three bytes ``5F C1 02``, ``0x7C`` one byte). Lengths
use the short form (``00``-``7F``) or the long forms ``81``-``84``; the
indefinite form ``80`` is rejected, as are tags longer than
:data:`MAX_TAG_BYTES` bytes, values longer than the caller's limit and more
than ``max_items`` objects in one run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Self

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader

MAX_TAG_BYTES: Final = 4
DEFAULT_MAX_LENGTH: Final = 0xFFFF
DEFAULT_MAX_ITEMS: Final = 256
PDU: Final = "BER-TLV"


def encode_tag(tag: int) -> bytes:
    """The encoding of ``tag`` (ISO/IEC 7816-4 5.2.2.1); ``ValueError`` if it is not well formed."""
    if tag < 0:
        raise ValueError(f"negative tag {tag}")
    size = max(1, (tag.bit_length() + 7) // 8)
    if size > MAX_TAG_BYTES:
        raise ValueError(f"tag {tag:X} longer than {MAX_TAG_BYTES} bytes")
    raw = tag.to_bytes(size, "big")
    multi = raw[0] & 0x1F == 0x1F
    if multi != (size > 1):
        raise ValueError(f"tag {tag:X} is not a well-formed BER-TLV tag")
    for i, b in enumerate(raw[1:], start=1):
        last = i == size - 1
        if bool(b & 0x80) == last:
            raise ValueError(f"tag {tag:X} is not a well-formed BER-TLV tag")
    return raw


def encode_length(length: int) -> bytes:
    """The shortest BER length field for ``length`` (ISO/IEC 7816-4 5.2.2.2)."""
    if length < 0:
        raise ValueError(f"negative length {length}")
    if length < 0x80:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    if size > 4:
        raise ValueError(f"length {length} does not fit in four bytes")
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def tlv(tag: int, value: bytes = b"") -> bytes:
    """Tag, length and value in one call."""
    return encode_tag(tag) + encode_length(len(value)) + value


def is_constructed(tag: int) -> bool:
    """Whether bit 6 of the first tag byte marks a constructed object."""
    first = encode_tag(tag)[0]
    return bool(first & 0x20)


def read_tag(reader: Reader, field: str = "tag") -> int:
    """Read one tag from ``reader``."""
    first = reader.u8(field)
    tag = first
    if first & 0x1F != 0x1F:
        return tag
    for count in range(2, MAX_TAG_BYTES + 1):
        b = reader.u8(field)
        tag = (tag << 8) | b
        if not b & 0x80:
            return tag
        if count == MAX_TAG_BYTES:
            break
    raise reader.error(field, f"tag longer than {MAX_TAG_BYTES} bytes")


def read_length(reader: Reader, max_length: int = DEFAULT_MAX_LENGTH,
                field: str = "length") -> int:
    """Read one length field and check it against ``max_length`` and the bytes left."""
    first = reader.u8(field)
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise reader.error(field, "indefinite length is not allowed")
    elif first <= 0x84:
        length = int.from_bytes(reader.raw(first & 0x7F, field), "big")
    else:
        raise reader.error(field, f"length of length {first & 0x7F} over 4 bytes")
    if length > max_length:
        raise reader.error(field, f"length {length} over the limit {max_length}")
    if length > reader.remaining:
        raise reader.error(field, f"truncated: length {length}, {reader.remaining} bytes left")
    return length


@dataclass(frozen=True, slots=True)
class Tlv:
    """One BER-TLV data object (ISO/IEC 7816-4 5.2)."""

    tag: int
    value: bytes = b""

    def encode(self) -> bytes:
        return tlv(self.tag, self.value)

    @classmethod
    def read(cls, reader: Reader, max_length: int = DEFAULT_MAX_LENGTH) -> Self:
        """Read the next object from ``reader``."""
        tag = read_tag(reader)
        length = read_length(reader, max_length)
        return cls(tag, reader.raw(length, f"value of tag {tag:X}"))

    @classmethod
    def decode(cls, data: bytes, pdu: str = PDU, max_length: int = DEFAULT_MAX_LENGTH) -> Self:
        """Exactly one object filling ``data``."""
        reader = Reader(data, pdu)
        item = cls.read(reader, max_length)
        reader.expect_end()
        return item

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    def children(self, pdu: str = PDU, max_length: int = DEFAULT_MAX_LENGTH,
                 max_items: int = DEFAULT_MAX_ITEMS) -> list[Tlv]:
        """The objects nested in this one's value."""
        return decode_all(self.value, pdu, max_length=max_length, max_items=max_items)


def decode_all(data: bytes, pdu: str = PDU, *, max_length: int = DEFAULT_MAX_LENGTH,
               max_items: int = DEFAULT_MAX_ITEMS) -> list[Tlv]:
    """Every object of a run of concatenated BER-TLV objects, in order."""
    reader = Reader(data, pdu)
    items: list[Tlv] = []
    while reader.remaining:
        if len(items) >= max_items:
            raise reader.error("tag", f"more than {max_items} data objects")
        items.append(Tlv.read(reader, max_length))
    return items


def encode_all(items: Iterable[Tlv]) -> bytes:
    """Concatenate the encodings of ``items``."""
    return b"".join(item.encode() for item in items)


def find(items: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with ``tag``, or None."""
    for item in items:
        if item.tag == tag:
            return item
    return None


def require(items: Iterable[Tlv], tag: int, pdu: str = PDU) -> Tlv:
    """The first object with ``tag``; :class:`ProtocolError` when it is missing."""
    item = find(items, tag)
    if item is None:
        raise ProtocolError(pdu, f"tag {tag:X}", "missing")
    return item
