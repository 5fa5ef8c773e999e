"""Pull/push helpers shared by every codec.

:class:`Reader` reads fixed-width integers and byte runs from a bytes-like
object and raises :class:`~rdscard.errors.ProtocolError` naming the PDU and
field when the input is too short or inconsistent. :class:`Writer` builds
the encoded form. Both are deliberately tiny: codecs stay readable and every
bounds check lives here.
"""

from __future__ import annotations

import struct
from typing import Final

from rdscard.errors import ProtocolError

_U16LE: Final = struct.Struct("<H")
_U16BE: Final = struct.Struct(">H")
_U32LE: Final = struct.Struct("<I")
_U32BE: Final = struct.Struct(">I")
_I32LE: Final = struct.Struct("<i")
_U64LE: Final = struct.Struct("<Q")


class Reader:
    """Sequential reader over ``data`` for the PDU named ``pdu``."""

    __slots__ = ("_data", "_end", "_pos", "pdu")

    def __init__(self, data: bytes | bytearray | memoryview, pdu: str) -> None:
        self._data = bytes(data) if not isinstance(data, bytes) else data
        self._pos = 0
        self._end = len(self._data)
        self.pdu = pdu

    # -- state -------------------------------------------------------------
    @property
    def offset(self) -> int:
        """Bytes consumed so far."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Bytes left to read."""
        return self._end - self._pos

    def error(self, field: str, reason: str) -> ProtocolError:
        """Build the protocol error for ``field`` of this PDU."""
        return ProtocolError(self.pdu, field, reason)

    def _short(self, n: int, field: str) -> ProtocolError:
        return self.error(field, f"truncated: need {n} bytes, {self._end - self._pos} left")

    def _take(self, n: int, field: str) -> int:
        if n < 0:
            raise self.error(field, f"negative length {n}")
        if self._end - self._pos < n:
            raise self.error(
                field, f"truncated: need {n} bytes, {self._end - self._pos} left"
            )
        start = self._pos
        self._pos += n
        return start

    # -- integers ----------------------------------------------------------
    def u8(self, field: str) -> int:
        """One unsigned byte."""
        pos = self._pos
        if self._end - pos < 1:
            raise self._short(1, field)
        self._pos = pos + 1
        value: int = self._data[pos]
        return value

    def u16le(self, field: str) -> int:
        """Unsigned 16-bit little-endian."""
        pos = self._pos
        if self._end - pos < 2:
            raise self._short(2, field)
        self._pos = pos + 2
        value: int = _U16LE.unpack_from(self._data, pos)[0]
        return value

    def u16be(self, field: str) -> int:
        """Unsigned 16-bit big-endian."""
        pos = self._pos
        if self._end - pos < 2:
            raise self._short(2, field)
        self._pos = pos + 2
        value: int = _U16BE.unpack_from(self._data, pos)[0]
        return value

    def u32le(self, field: str) -> int:
        """Unsigned 32-bit little-endian."""
        pos = self._pos
        if self._end - pos < 4:
            raise self._short(4, field)
        self._pos = pos + 4
        value: int = _U32LE.unpack_from(self._data, pos)[0]
        return value

    def u32be(self, field: str) -> int:
        """Unsigned 32-bit big-endian."""
        pos = self._pos
        if self._end - pos < 4:
            raise self._short(4, field)
        self._pos = pos + 4
        value: int = _U32BE.unpack_from(self._data, pos)[0]
        return value

    def i32le(self, field: str) -> int:
        """Signed 32-bit little-endian."""
        pos = self._pos
        if self._end - pos < 4:
            raise self._short(4, field)
        self._pos = pos + 4
        value: int = _I32LE.unpack_from(self._data, pos)[0]
        return value

    def u64le(self, field: str) -> int:
        """Unsigned 64-bit little-endian."""
        pos = self._pos
        if self._end - pos < 8:
            raise self._short(8, field)
        self._pos = pos + 8
        value: int = _U64LE.unpack_from(self._data, pos)[0]
        return value

    # -- byte runs ---------------------------------------------------------
    def raw(self, n: int, field: str) -> bytes:
        """Exactly ``n`` bytes."""
        start = self._take(n, field)
        return self._data[start : start + n]

    def rest(self) -> bytes:
        """Every byte left."""
        start = self._pos
        self._pos = self._end
        return self._data[start : self._end]

    def skip(self, n: int, field: str) -> None:
        """Skip ``n`` bytes (padding, reserved fields)."""
        self._take(n, field)

    def sub(self, n: int, field: str, pdu: str | None = None) -> Reader:
        """A reader over the next ``n`` bytes, consumed from this one."""
        return Reader(self.raw(n, field), pdu or self.pdu)

    def peek_u8(self, field: str) -> int:
        """The next byte, not consumed."""
        if self._pos >= self._end:
            raise self.error(field, "truncated: need 1 byte, 0 left")
        return self._data[self._pos]

    def utf16z(self, n: int, field: str) -> str:
        """``n`` bytes of UTF-16LE text, cut at the first NUL."""
        raw = self.raw(n, field)
        if n % 2:
            raise self.error(field, f"odd UTF-16 length {n}")
        text = decode_utf16le(raw, self, field)
        return text.split("\0", 1)[0]

    def expect_end(self) -> None:
        """Fail when bytes are left over: every PDU is consumed exactly."""
        if self._pos != self._end:
            raise self.error("(end)", f"{self._end - self._pos} trailing bytes")


def decode_utf16le(raw: bytes, reader: Reader, field: str) -> str:
    """Decode UTF-16LE text or raise the reader's protocol error."""
    try:
        return raw.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise reader.error(field, f"invalid UTF-16: {exc.reason}") from None


class Writer:
    """Append-only builder of an encoded PDU."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def u8(self, value: int) -> Writer:
        """One unsigned byte."""
        self._buf.append(value & 0xFF)
        return self

    def u16le(self, value: int) -> Writer:
        """Unsigned 16-bit little-endian."""
        self._buf += _U16LE.pack(value & 0xFFFF)
        return self

    def u16be(self, value: int) -> Writer:
        """Unsigned 16-bit big-endian."""
        self._buf += _U16BE.pack(value & 0xFFFF)
        return self

    def u32le(self, value: int) -> Writer:
        """Unsigned 32-bit little-endian."""
        self._buf += _U32LE.pack(value & 0xFFFFFFFF)
        return self

    def u32be(self, value: int) -> Writer:
        """Unsigned 32-bit big-endian."""
        self._buf += _U32BE.pack(value & 0xFFFFFFFF)
        return self

    def i32le(self, value: int) -> Writer:
        """Signed 32-bit little-endian."""
        self._buf += _I32LE.pack(value)
        return self

    def u64le(self, value: int) -> Writer:
        """Unsigned 64-bit little-endian."""
        self._buf += _U64LE.pack(value & 0xFFFFFFFFFFFFFFFF)
        return self

    def raw(self, data: bytes | bytearray | memoryview) -> Writer:
        """A run of bytes."""
        self._buf += data
        return self

    def zeros(self, n: int) -> Writer:
        """``n`` zero bytes (padding)."""
        self._buf += bytes(n)
        return self

    def getvalue(self) -> bytes:
        """The encoded bytes."""
        return bytes(self._buf)
