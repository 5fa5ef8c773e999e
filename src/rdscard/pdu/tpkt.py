"""TPKT framing (RFC 1006, T.123 section 8) and fast-path frame lengths.

Every slow-path RDP PDU travels inside a TPKT packet: version 3, a reserved
byte and a 16-bit big-endian length that covers the 4-byte header. Fast-path
PDUs (MS-RDPBCGR 2.2.8.1.2 client input, 2.2.9.1.2 server output) share the
stream: their first byte has the action bits 0 and a 1- or 2-byte length
follows. :func:`next_frame_length` tells the two apart from the first bytes
so an adapter can cut the stream into whole PDUs.
"""

from __future__ import annotations

from typing import Final

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader, Writer

TPKT_VERSION: Final = 3
TPKT_HEADER_SIZE: Final = 4
#: Smallest TPKT packet that can carry an X.224 TPDU (header + 3-byte Data TPDU).
TPKT_MIN_LENGTH: Final = 7
#: The length field is 16 bits; nothing larger can be framed.
TPKT_MAX_LENGTH: Final = 0xFFFF

#: MS-RDPBCGR 2.2.8.1.2: the length is at most 15 bits.
FASTPATH_MAX_LENGTH: Final = 0x7FFF
#: fpInputHeader / fpOutputHeader action (2 bits): FASTPATH_INPUT_ACTION_FASTPATH.
FASTPATH_ACTION_FASTPATH: Final = 0x0
#: FASTPATH_INPUT_ACTION_X224: the first byte of a TPKT header.
FASTPATH_ACTION_X224: Final = 0x3

_TPKT_PDU: Final = "TPKT"
_FASTPATH_PDU: Final = "Fast-Path PDU"


def is_fastpath(frame: bytes) -> bool:
    """True when ``frame`` starts with a fast-path header (action bits 0)."""
    if not frame:
        raise ProtocolError(_TPKT_PDU, "version", "empty frame")
    return (frame[0] & 0x03) == FASTPATH_ACTION_FASTPATH


def next_frame_length(buf: bytes | bytearray | memoryview) -> int | None:
    """Length of the next complete PDU at the start of ``buf``.

    Returns ``None`` when more bytes are needed to know it (at most 4 bytes
    are ever looked at). Raises :class:`ProtocolError` when the first byte is
    neither a TPKT version nor a fast-path header, or when the length field is
    impossible (shorter than its own header).
    """
    if len(buf) < 1:
        return None
    first = buf[0]
    if first == TPKT_VERSION:
        if len(buf) < TPKT_HEADER_SIZE:
            return None
        length = (buf[2] << 8) | buf[3]
        if length < TPKT_MIN_LENGTH:
            raise ProtocolError(_TPKT_PDU, "length", f"length {length} below {TPKT_MIN_LENGTH}")
        return length
    if (first & 0x03) != FASTPATH_ACTION_FASTPATH:
        raise ProtocolError(_TPKT_PDU, "version", f"neither TPKT nor fast-path: 0x{first:02x}")
    if len(buf) < 2:
        return None
    length1 = buf[1]
    if length1 & 0x80:
        if len(buf) < 3:
            return None
        length = ((length1 & 0x7F) << 8) | buf[2]
        header = 3
    else:
        length = length1
        header = 2
    if length < header:
        raise ProtocolError(_FASTPATH_PDU, "length", f"length {length} below its header size")
    return length


def wrap(payload: bytes) -> bytes:
    """Put ``payload`` (an X.224 TPDU) in a TPKT packet."""
    length = TPKT_HEADER_SIZE + len(payload)
    if length > TPKT_MAX_LENGTH:
        raise ValueError(f"TPKT payload too large: {len(payload)} bytes")
    return Writer().u8(TPKT_VERSION).u8(0).u16be(length).raw(payload).getvalue()


def unwrap(frame: bytes) -> bytes:
    """The payload of one complete TPKT packet; the length must match ``frame``."""
    reader = Reader(frame, _TPKT_PDU)
    version = reader.u8("version")
    if version != TPKT_VERSION:
        raise reader.error("version", f"expected 3, got {version}")
    reader.u8("reserved")
    length = reader.u16be("length")
    if length != len(frame):
        raise reader.error("length", f"header says {length}, frame has {len(frame)} bytes")
    if length < TPKT_MIN_LENGTH:
        raise reader.error("length", f"length {length} below {TPKT_MIN_LENGTH}")
    return reader.rest()


def fastpath_wrap(header: int, body: bytes) -> bytes:
    """Frame a fast-path PDU: the header byte, the 1- or 2-byte length, ``body``.

    MS-RDPBCGR 2.2.9.1.2: the length covers the whole PDU; lengths of 0x80 and
    more use the 2-byte form with the top bit set.
    """
    if header & 0x03 != FASTPATH_ACTION_FASTPATH:
        raise ValueError(f"fast-path header 0x{header:02x} has non-zero action bits")
    short = 2 + len(body)
    if short < 0x80:
        return bytes((header, short)) + body
    length = 3 + len(body)
    if length > FASTPATH_MAX_LENGTH:
        raise ValueError(f"fast-path PDU too large: {length} bytes")
    return bytes((header, 0x80 | (length >> 8), length & 0xFF)) + body


def fastpath_unwrap(frame: bytes) -> tuple[int, bytes]:
    """Split one complete fast-path PDU into its header byte and body."""
    reader = Reader(frame, _FASTPATH_PDU)
    header = reader.u8("fpHeader")
    if header & 0x03 != FASTPATH_ACTION_FASTPATH:
        raise reader.error("fpHeader", f"action bits {header & 0x03} are not fast-path")
    length1 = reader.u8("length1")
    length = ((length1 & 0x7F) << 8) | reader.u8("length2") if length1 & 0x80 else length1
    if length != len(frame):
        raise reader.error("length", f"header says {length}, frame has {len(frame)} bytes")
    return header, reader.rest()


tpkt_wrap = wrap
tpkt_unwrap = unwrap
