"""The DER subset the CMS envelope needs (ITU-T X.690): elements, OIDs, integers.

Encoding reuses :mod:`rdscard.pki.der`; decoding is bounds-checked and
raises :class:`~rdscard.errors.ProtocolError` naming the field, definite
lengths only (DER), single-byte tags (all CMS needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rdscard.errors import ProtocolError
from rdscard.pki.der import encode_integer, tlv

__all__ = ["Element", "encode_integer", "encode_oid", "parse", "seq", "tlv"]

MAX_ENVELOPE: Final = 1 << 20
#: Longest OBJECT IDENTIFIER accepted (CMS's are 11 bytes at most; decoding an unbounded one
#: is quadratic in its length).
MAX_OID: Final = 64
SEQUENCE: Final = 0x30
SET: Final = 0x31
INTEGER: Final = 0x02
BIT_STRING: Final = 0x03
OCTET_STRING: Final = 0x04
NULL: Final = 0x05
OID: Final = 0x06
PDU: Final = "CMS EnvelopedData"


def seq(*parts: bytes) -> bytes:
    """A DER SEQUENCE of already encoded parts."""
    return tlv(SEQUENCE, b"".join(parts))


def encode_oid(dotted: str) -> bytes:
    """A DER OBJECT IDENTIFIER from its dotted form (X.690 8.19)."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2:
        raise ValueError(f"bad object identifier {dotted}")
    body = bytearray()
    for value in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        body.extend(reversed(chunk))
    return tlv(OID, bytes(body))


@dataclass(frozen=True)
class Element:
    """One decoded element: its tag, content and the whole encoding."""

    tag: int
    content: bytes
    encoded: bytes

    def children(self, field: str) -> list[Element]:
        """The elements inside a constructed element."""
        if not self.tag & 0x20:
            raise ProtocolError(PDU, field, "expected a constructed element")
        out: list[Element] = []
        offset = 0
        while offset < len(self.content):
            element, offset = _read(self.content, offset, field)
            out.append(element)
        return out

    def first(self, field: str) -> Element:
        """The first element inside a constructed element (an empty one is refused)."""
        return self.elements(field, 1)[0]

    def elements(self, field: str, minimum: int) -> list[Element]:
        """The elements inside a constructed element, at least ``minimum`` of them."""
        out = self.children(field)
        if len(out) < minimum:
            raise ProtocolError(PDU, field, f"{len(out)} elements where at least {minimum} "
                                "are required")
        return out

    def expect(self, tag: int, field: str) -> Element:
        if self.tag != tag:
            raise ProtocolError(PDU, field, f"expected tag 0x{tag:02X}, got 0x{self.tag:02X}")
        return self

    def oid(self, field: str) -> str:
        """The dotted form of an OBJECT IDENTIFIER."""
        raw = self.expect(OID, field).content
        if len(raw) > MAX_OID:
            raise ProtocolError(PDU, field, f"object identifier of {len(raw)} bytes "
                                f"(at most {MAX_OID})")
        if not raw or raw[-1] & 0x80:
            raise ProtocolError(PDU, field, "malformed object identifier")
        arcs: list[int] = []
        value = 0
        for byte in raw:
            if value == 0 and byte == 0x80:
                raise ProtocolError(PDU, field, "non-minimal object identifier arc")
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        first = min(arcs[0] // 40, 2)
        return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])

    def integer(self, field: str) -> int:
        raw = self.expect(INTEGER, field).content
        if not raw or len(raw) > 64:
            raise ProtocolError(PDU, field, "bad integer length")
        return int.from_bytes(raw, "big", signed=True)

    def octets(self, field: str, tag: int = OCTET_STRING) -> bytes:
        return self.expect(tag, field).content


def _read(data: bytes, offset: int, field: str) -> tuple[Element, int]:
    if offset + 2 > len(data):
        raise ProtocolError(PDU, field, "truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise ProtocolError(PDU, field, "multi-byte tags are not used by CMS")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0:
            raise ProtocolError(PDU, field, "indefinite length (BER) where DER is required")
        if count > 3 or pos + count > len(data):
            raise ProtocolError(PDU, field, "bad length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
        if length < 0x80 or length < 1 << (8 * (count - 1)):
            raise ProtocolError(PDU, field, "non-minimal length encoding")
    if pos + length > len(data):
        raise ProtocolError(PDU, field, f"element of {length} bytes overruns its container")
    return Element(tag, data[pos:pos + length], data[offset:pos + length]), pos + length


def parse(data: bytes, field: str) -> Element:
    """Exactly one element filling ``data``."""
    if len(data) > MAX_ENVELOPE:
        raise ProtocolError(PDU, field, f"{len(data)} bytes is too large")
    element, end = _read(bytes(data), 0, field)
    if end != len(data):
        raise ProtocolError(PDU, field, f"{len(data) - end} bytes after the element")
    return element
