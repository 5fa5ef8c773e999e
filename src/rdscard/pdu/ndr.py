"""NDR type serialization version 1, 32-bit little-endian (MS-RPCE 2.2.6).

Every MS-RDPESC call and return travels as one top-level structure behind
two headers: the common type header (MS-RPCE 2.2.6.1), always
``01 10 08 00 CC CC CC CC``, and the private header (2.2.6.2): the length
of the serialized object, a multiple of 8, and a zero filler.

Unique pointers (C706 14.3.10) carry a referent id, written here as
``0x00020000 + 4n`` for the n-th non-null pointer in order of appearance (as
MIDL does); MS-RPCE 2.2.5.3.4.3 only asks a unique pointer's referent id to
be non-zero, so any non-zero id is read as present. The pointed-to data
is deferred to after the outermost construct holding the pointer. Deferral
is automatic here: :meth:`NdrWriter.pointer` queues the referent's writer
and :meth:`NdrWriter.construct` flushes the queue when the construct ends;
each referent is itself a construct, so its own pointers follow it
immediately (depth first, as MIDL and FreeRDP both marshal them).
:class:`NdrReader` mirrors this with :class:`Ref` holders filled in when the
construct ends. Alignment is relative to the first byte after the headers.

rdesktop 1.9 (scard.c) writes every return with two more quirks, accepted
only in that shape (:func:`open_body_tolerant`): its ObjectBufferLength
counts the body less 8 bytes, then it appends (body length mod 16) zero
bytes, so the bytes that follow exceed ObjectBufferLength by 8 or 16; and
its referent ids are whatever it had at hand (the context handle itself in
EstablishContext_Return, 0x01760650 in ListReaders_Return, 0x00084DD8 in
GetStatusChange_Return, 0x016CFF34 in Connect_Return, 1 in
Transmit_Return, 0x200 in GetAttrib_Return). A failed
EstablishContext_Return keeps the success layout with handle 0: a null
pointer with cbContext 4 (read as its failure in :mod:`rdscard.pdu.esc.context`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Generic, Self, TypeVar

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader, Writer

T = TypeVar("T")

_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_I32: Final = struct.Struct("<i")

COMMON_TYPE_HEADER: Final = bytes.fromhex("01100800cccccccc")
PRIVATE_HEADER_LENGTH: Final = 8
HEADERS_LENGTH: Final = len(COMMON_TYPE_HEADER) + PRIVATE_HEADER_LENGTH
REFERENT_ID_BASE: Final = 0x00020000
REFERENT_ID_STEP: Final = 4
# Upper bound on one serialized object: far above the largest legitimate
# MS-RDPESC message (a 66560-byte transmit buffer plus its framing).
MAX_OBJECT_LENGTH: Final = 1 << 20
MAX_STRING_CHARS: Final = 4096
#: How far the bytes after the headers may exceed ObjectBufferLength: rdesktop 1.9
#: understates it by 8 and pads by up to 8 more (see the module docstring).
MAX_UNDERSTATEMENT: Final = 16
#: Zero bytes past the 8-byte boundary a tolerated body may end with: rdesktop's
#: extra 8 bytes, and in GetAttrib_Return a zero 32-bit word after the attribute.
MAX_EXTRA_PADDING: Final = 16
MAX_REDIR_HANDLE: Final = 16


def _pad(offset: int, alignment: int) -> int:
    return -offset % alignment


class NdrWriter:
    """Builder of one NDR-serialized top-level structure."""

    __slots__ = ("_buf", "_deferred", "_next_referent")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._next_referent = 0
        self._deferred: list[Callable[[NdrWriter], None]] | None = None

    # -- primitives ----------------------------------------------------------
    def align(self, alignment: int) -> None:
        """Zero padding up to a multiple of ``alignment`` (2, 4 or 8)."""
        pad = -len(self._buf) % alignment
        if pad:
            self._buf += bytes(pad)

    def u8(self, value: int) -> None:
        """An unsigned small."""
        self._buf.append(value & 0xFF)

    def u16(self, value: int) -> None:
        """An aligned unsigned short."""
        buf = self._buf
        if len(buf) & 1:
            buf.append(0)
        buf += _U16.pack(value & 0xFFFF)

    def u32(self, value: int) -> None:
        """An aligned unsigned long."""
        buf = self._buf
        pad = -len(buf) & 3
        if pad:
            buf += bytes(pad)
        buf += _U32.pack(value & 0xFFFFFFFF)

    def i32(self, value: int) -> None:
        """An aligned signed long (HRESULT-style return codes included)."""
        self.u32(value & 0xFFFFFFFF)

    def raw(self, data: bytes) -> None:
        """Bytes with no alignment (a fixed-size byte array)."""
        self._buf += data

    def fixed_bytes(self, data: bytes, size: int) -> None:
        """A fixed array ``byte[size]``: ``data`` zero-padded to ``size``."""
        if len(data) > size:
            raise ValueError(f"{len(data)} bytes do not fit byte[{size}]")
        self._buf += data
        self._buf += bytes(size - len(data))

    # -- constructed types ---------------------------------------------------
    def write_construct(self, write: Callable[[NdrWriter], None]) -> None:
        """Write a construct with ``write``, then the referents of its pointers."""
        outer = self._deferred
        queue: list[Callable[[NdrWriter], None]] = []
        self._deferred = queue
        try:
            write(self)
        finally:
            self._deferred = outer
        for referent in queue:
            self.write_construct(referent)

    @contextmanager
    def construct(self) -> Iterator[Self]:
        """The context-manager form of :meth:`write_construct`."""
        outer = self._deferred
        self._deferred = []
        try:
            yield self
            queue = self._deferred
        finally:
            self._deferred = outer
        for referent in queue:
            self.write_construct(referent)

    def pointer(self, write: Callable[[NdrWriter], None] | None) -> None:
        """A unique pointer: null for ``None``, else a referent written later."""
        if write is None:
            self.u32(0)
            return
        if self._deferred is None:
            raise RuntimeError("NDR pointer outside a construct")
        self.u32(REFERENT_ID_BASE + REFERENT_ID_STEP * self._next_referent)
        self._next_referent += 1
        self._deferred.append(write)

    def conformant_bytes(self, data: bytes) -> None:
        """A conformant byte array: max count, then the bytes."""
        self.u32(len(data))
        self._buf += data

    def varying_string(self, text: str, wide: bool) -> None:
        """A ``[string]`` char/wchar_t array with its NUL: max, offset 0, actual."""
        encoded = encode_string(text, wide) + (b"\0\0" if wide else b"\0")
        count = len(encoded) // (2 if wide else 1)
        self.u32(count)
        self.u32(0)
        self.u32(count)
        self._buf += encoded

    def getvalue(self) -> bytes:
        """The serialized body, without headers."""
        return bytes(self._buf)


class Ref(Generic[T]):
    """The referent of a decoded pointer, known once its construct ends."""

    __slots__ = ("_value", "present")

    def __init__(self, present: bool) -> None:
        self._value: T | None = None
        self.present = present

    def set(self, value: T) -> None:
        """Record the decoded referent."""
        self._value = value

    def get(self) -> T | None:
        """The referent, or ``None`` for a null pointer."""
        return self._value


class NdrReader:
    """Reader over one NDR-serialized body (after the headers)."""

    __slots__ = ("_data", "_deferred", "_end", "_pos", "_tolerant", "pdu")

    def __init__(self, body: bytes, pdu: str, *, tolerant: bool = False) -> None:
        self._data = body
        self._pos = 0
        self._end = len(body)
        self.pdu = pdu
        # A body whose ObjectBufferLength understated it (rdesktop): more zero padding.
        self._tolerant = tolerant
        self._deferred: list[Callable[[NdrReader], None]] | None = None

    def error(self, field: str, reason: str) -> ProtocolError:
        """A protocol error for ``field`` of this structure."""
        return ProtocolError(self.pdu, field, reason)

    def _take(self, n: int, field: str) -> int:
        start = self._pos
        if n < 0 or self._end - start < n:
            raise self.error(field, f"truncated: need {n} bytes, {self._end - start} left")
        self._pos = start + n
        return start

    # -- primitives ----------------------------------------------------------
    def align(self, alignment: int, field: str) -> None:
        """Skip padding up to a multiple of ``alignment``."""
        self._take(-self._pos % alignment, field)

    def u8(self, field: str) -> int:
        """An unsigned small."""
        return self._data[self._take(1, field)]

    def u16(self, field: str) -> int:
        """An aligned unsigned short."""
        self._pos += self._pos & 1
        return int(_U16.unpack_from(self._data, self._take(2, field))[0])

    def u32(self, field: str) -> int:
        """An aligned unsigned long."""
        self._pos += -self._pos & 3
        return int(_U32.unpack_from(self._data, self._take(4, field))[0])

    def i32(self, field: str) -> int:
        """An aligned signed long."""
        self._pos += -self._pos & 3
        return int(_I32.unpack_from(self._data, self._take(4, field))[0])

    def bounded_u32(self, field: str, limit: int) -> int:
        """An unsigned long that must not exceed ``limit`` (IDL ``[range]``)."""
        value = self.u32(field)
        if value > limit:
            raise self.error(field, f"{value} exceeds the limit {limit}")
        return value

    def raw(self, n: int, field: str) -> bytes:
        """``n`` bytes with no alignment."""
        start = self._take(n, field)
        return self._data[start : start + n]

    # -- constructed types ---------------------------------------------------
    def read_construct(self, read: Callable[[NdrReader], T]) -> T:
        """Read a construct with ``read``, then the referents of its pointers."""
        outer = self._deferred
        queue: list[Callable[[NdrReader], None]] = []
        self._deferred = queue
        try:
            result = read(self)
        finally:
            self._deferred = outer
        for referent in queue:
            self.read_construct(referent)
        return result

    @contextmanager
    def construct(self) -> Iterator[Self]:
        """The context-manager form of :meth:`read_construct`."""
        outer = self._deferred
        self._deferred = []
        try:
            yield self
            queue = self._deferred
        finally:
            self._deferred = outer
        for referent in queue:
            self.read_construct(referent)

    def pointer(
        self, field: str, read: Callable[[NdrReader], T], *, required: bool = False
    ) -> Ref[T]:
        """A unique pointer; its referent is read by ``read`` when the construct ends.

        Any non-zero referent id means present (MS-RPCE 2.2.5.3.4.3): rdesktop 1.9
        writes arbitrary ones. The referents are still read in order of appearance.
        """
        referent = self.u32(field)
        ref: Ref[T] = Ref(referent != 0)
        if referent == 0:
            if required:
                raise self.error(field, "null pointer where a referent is required")
            return ref
        if self._deferred is None:
            raise RuntimeError("NDR pointer outside a construct")

        def deferred(reader: NdrReader) -> None:
            ref.set(read(reader))

        self._deferred.append(deferred)
        return ref

    def conformant_count(self, field: str, limit: int, expected: int | None = None) -> int:
        """The max count of a conformant array, checked against ``limit`` and ``expected``."""
        count = self.bounded_u32(field, limit)
        if expected is not None and count != expected:
            raise self.error(field, f"array count {count} does not match {expected}")
        return count

    def conformant_bytes(self, field: str, limit: int, expected: int | None = None) -> bytes:
        """A conformant byte array: max count, then the bytes."""
        count = self.conformant_count(field, limit, expected)
        return self.raw(count, field)

    def varying_string(self, field: str, wide: bool, limit: int = MAX_STRING_CHARS) -> str:
        """A ``[string]`` char/wchar_t array: max, offset, actual, text with its NUL."""
        max_count = self.bounded_u32(field, limit)
        offset = self.u32(field)
        actual = self.u32(field)
        if offset != 0:
            raise self.error(field, f"string offset {offset}, expected 0")
        if actual != max_count:
            raise self.error(field, f"string actual count {actual} != max count {max_count}")
        if actual == 0:
            raise self.error(field, "string without its terminating NUL")
        width = 2 if wide else 1
        raw = self.raw(actual * width, field)
        if raw[-width:] != bytes(width):
            raise self.error(field, "string does not end with NUL")
        text = decode_string(raw[:-width], wide, self, field)
        if "\0" in text:
            raise self.error(field, "NUL inside the string")
        return text

    def end(self) -> None:
        """Only padding to the 8-byte object boundary may remain.

        FreeRDP 2.x pads an already aligned body with 8 more bytes (its
        GetStatusChange_Return, for one): a whole extra 8-byte block of
        padding is accepted too. In a body whose ObjectBufferLength
        understated it (rdesktop 1.9, see :func:`open_body_tolerant`) up to
        :data:`MAX_EXTRA_PADDING` more bytes may follow that boundary, all of
        them zero.
        """
        left = self._end - self._pos
        pad = -self._pos % 8
        if left in (pad, pad + 8):
            self._pos = self._end
            return
        if (
            not self._tolerant
            or not pad <= left <= pad + MAX_EXTRA_PADDING
            or any(self._data[self._pos : self._end])
        ):
            raise self.error("(end)", f"{left} trailing bytes")
        self._pos = self._end


# -- headers (MS-RPCE 2.2.6.1, 2.2.6.2) ------------------------------------------
def serialize(body: bytes) -> bytes:
    """Prefix ``body`` with both headers and pad it to a multiple of 8."""
    padded = body + bytes(_pad(len(body), 8))
    header = Writer().raw(COMMON_TYPE_HEADER).u32le(len(padded)).u32le(0)
    return header.getvalue() + padded


def open_body(data: bytes, pdu: str) -> bytes:
    """Check both headers of a type-serialized object; return the body."""
    return open_body_tolerant(data, pdu, tolerate=False)[0]


def open_body_tolerant(data: bytes, pdu: str, *, tolerate: bool = True) -> tuple[bytes, bool]:
    """:func:`open_body`, also accepting rdesktop 1.9's understated ObjectBufferLength.

    Returns the body and whether it was tolerated: with ``tolerate``, bytes
    that exceed ObjectBufferLength (MS-RPCE 2.2.6.2) by at most
    :data:`MAX_UNDERSTATEMENT` are all decoded (rdesktop counts its body less
    8 bytes and pads it by up to 8 more; a body it did not align to 8, a
    failure's, is a multiple of 4); fewer bytes than it states are
    always an error, and both lengths stay within :data:`MAX_OBJECT_LENGTH`.
    """
    r = Reader(data, pdu)
    common = r.raw(len(COMMON_TYPE_HEADER), "CommonTypeHeader")
    if common != COMMON_TYPE_HEADER:
        raise r.error(
            "CommonTypeHeader", f"expected {COMMON_TYPE_HEADER.hex()}, got {common.hex()}"
        )
    length = r.u32le("ObjectBufferLength")
    filler = r.u32le("Filler")
    if filler != 0:
        raise r.error("Filler", f"private header filler 0x{filler:08X}, expected 0")
    if length > MAX_OBJECT_LENGTH:
        raise r.error("ObjectBufferLength", f"{length} exceeds {MAX_OBJECT_LENGTH}")
    if length == r.remaining:
        if length % 8:
            raise r.error("ObjectBufferLength", f"{length} is not a multiple of 8")
        return r.rest(), False
    if not tolerate or not 0 < r.remaining - length <= MAX_UNDERSTATEMENT:
        raise r.error("ObjectBufferLength", f"{length} but {r.remaining} bytes follow")
    # rdesktop's failure answers skip its alignment: a multiple of 4 there.
    if length % 4 or r.remaining % 4:
        raise r.error("ObjectBufferLength", f"{length} is not a multiple of 4")
    if r.remaining > MAX_OBJECT_LENGTH:
        raise r.error("ObjectBufferLength", f"{r.remaining} bytes exceed {MAX_OBJECT_LENGTH}")
    return r.rest(), True


def encode_top(write: Callable[[NdrWriter], None]) -> bytes:
    """Serialize one top-level structure written by ``write``, headers included."""
    w = NdrWriter()
    w.write_construct(write)
    return serialize(w.getvalue())


def decode_top(data: bytes, pdu: str, read: Callable[[NdrReader], Callable[[], T]]) -> T:
    """Decode one top-level structure.

    ``read`` reads the flat part and returns a builder that is called once
    every deferred referent has been read. A body rdesktop 1.9 understated is
    decoded too (:func:`open_body_tolerant`).
    """
    body, tolerated = open_body_tolerant(data, pdu)
    r = NdrReader(body, pdu, tolerant=tolerated)
    build = r.read_construct(read)
    r.end()
    return build()


# -- strings -----------------------------------------------------------------
def encode_string(text: str, wide: bool) -> bytes:
    """A reader, group or card name: UTF-16LE for W, UTF-8 bytes for A."""
    return text.encode("utf-16-le" if wide else "utf-8")


def decode_string(raw: bytes, wide: bool, r: NdrReader | Reader, field: str) -> str:
    """Inverse of :func:`encode_string`, raising the protocol error on bad text."""
    if wide and len(raw) % 2:
        raise r.error(field, f"odd UTF-16 length {len(raw)}")
    try:
        return raw.decode("utf-16-le" if wide else "utf-8")
    except UnicodeDecodeError as exc:
        kind = "UTF-16" if wide else "UTF-8"
        raise r.error(field, f"invalid {kind}: {exc.reason}") from None


def encode_multistring(names: tuple[str, ...] | list[str], wide: bool) -> bytes:
    """A multi-string (``mszReaderNames``): each name and its NUL, then a final NUL."""
    nul = b"\0\0" if wide else b"\0"
    for name in names:
        if not name or "\0" in name:
            raise ValueError(f"invalid multi-string entry {name!r}")
    if not names:
        return nul + nul
    return b"".join(encode_string(name, wide) + nul for name in names) + nul


def decode_multistring(data: bytes, wide: bool, pdu: str, field: str) -> tuple[str, ...]:
    """The names of a multi-string; an empty or ``NUL NUL`` string has none."""
    r = Reader(data, pdu)
    width = 2 if wide else 1
    nul = bytes(width)
    if not data:
        return ()
    if len(data) % width:
        raise r.error(field, f"multi-string length {len(data)} is not a multiple of {width}")
    units = [data[i : i + width] for i in range(0, len(data), width)]
    if units[-1] != nul:
        raise r.error(field, "multi-string does not end with NUL")
    names: list[str] = []
    start = 0
    for i, unit in enumerate(units):
        if unit != nul:
            continue
        if i == start:
            # An empty entry ends the list: only the terminator may follow it.
            if i != len(units) - 1 and not (i == 0 and len(units) == 2 and units[1] == nul):
                raise r.error(field, "data after the multi-string terminator")
            break
        names.append(decode_string(b"".join(units[start:i]), wide, r, field))
        start = i + 1
    else:
        # Only reached when the final NUL closed a name: the list lacks its terminator.
        raise r.error(field, "multi-string without its double NUL")
    return tuple(names)


# -- REDIR_SCARDCONTEXT / REDIR_SCARDHANDLE (MS-RDPESC 2.2.1.1, 2.2.1.2) ----------
@dataclass(frozen=True, slots=True)
class RedirScardContext:
    """MS-RDPESC 2.2.1.1 REDIR_SCARDCONTEXT: an opaque context of 0-16 bytes."""

    pb_context: bytes = b""

    def __post_init__(self) -> None:
        if len(self.pb_context) > MAX_REDIR_HANDLE:
            raise ValueError(f"context of {len(self.pb_context)} bytes exceeds 16")

    def write(self, w: NdrWriter) -> None:
        """cbContext and the pointer; the bytes follow the enclosing structure."""
        data = self.pb_context
        w.u32(len(data))
        w.pointer((lambda ww: ww.conformant_bytes(data)) if data else None)

    @classmethod
    def read(cls, r: NdrReader, field: str = "Context") -> Callable[[], RedirScardContext]:
        """Read the flat part; the returned builder gives the context."""
        cb = r.bounded_u32(f"{field}.cbContext", MAX_REDIR_HANDLE)
        ref = r.pointer(
            f"{field}.pbContext",
            lambda rr: rr.conformant_bytes(f"{field}.pbContext", MAX_REDIR_HANDLE, cb),
        )
        _check_pointer_count(r, ref, cb, f"{field}.pbContext")
        return lambda: cls(ref.get() or b"")


@dataclass(frozen=True, slots=True)
class RedirScardHandle:
    """MS-RDPESC 2.2.1.2 REDIR_SCARDHANDLE: its context and an opaque 0-16 byte handle."""

    context: RedirScardContext
    pb_handle: bytes = b""

    def __post_init__(self) -> None:
        if len(self.pb_handle) > MAX_REDIR_HANDLE:
            raise ValueError(f"handle of {len(self.pb_handle)} bytes exceeds 16")

    def write(self, w: NdrWriter) -> None:
        """Context, cbHandle and the pointer; the bytes follow the enclosing structure."""
        self.context.write(w)
        data = self.pb_handle
        w.u32(len(data))
        w.pointer((lambda ww: ww.conformant_bytes(data)) if data else None)

    @classmethod
    def read(cls, r: NdrReader, field: str = "hCard") -> Callable[[], RedirScardHandle]:
        """Read the flat part; the returned builder gives the handle."""
        context = RedirScardContext.read(r, f"{field}.Context")
        cb = r.bounded_u32(f"{field}.cbHandle", MAX_REDIR_HANDLE)
        ref = r.pointer(
            f"{field}.pbHandle",
            lambda rr: rr.conformant_bytes(f"{field}.pbHandle", MAX_REDIR_HANDLE, cb),
        )
        _check_pointer_count(r, ref, cb, f"{field}.pbHandle")
        return lambda: cls(context(), ref.get() or b"")


def _check_pointer_count(r: NdrReader, ref: Ref[bytes], count: int, field: str) -> None:
    # FreeRDP rejects a context or handle whose length and pointer disagree.
    if ref.present != (count != 0):
        raise r.error(field, f"pointer {'set' if ref.present else 'null'} with length {count}")


# -- sized byte arrays: a count and a unique pointer to that many bytes ----------
def write_sized_bytes(w: NdrWriter, count: int, data: bytes | None) -> None:
    """A count followed by a unique pointer to a conformant byte array.

    ``data`` ``None`` writes a null pointer (the count then only reports a
    length, as in a return answering a length query).
    """
    if data is not None and len(data) != count:
        raise ValueError(f"count {count} does not match {len(data)} bytes")
    w.u32(count)
    w.pointer((lambda ww: ww.conformant_bytes(data)) if data is not None else None)


def read_sized_bytes(
    r: NdrReader, count_field: str, pointer_field: str, limit: int
) -> tuple[int, Ref[bytes]]:
    """Inverse of :func:`write_sized_bytes`; the array's max count must equal the count."""
    count = r.bounded_u32(count_field, limit)
    ref = r.pointer(
        pointer_field, lambda rr: rr.conformant_bytes(pointer_field, limit, count)
    )
    return count, ref


def check_sized(count: int, data: bytes | None, limit: int, name: str) -> None:
    """Validate a (count, bytes-or-None) pair held by a message."""
    if count < 0 or count > limit:
        raise ValueError(f"{name}: count {count} outside 0..{limit}")
    if data is not None and len(data) != count:
        raise ValueError(f"{name}: count {count} does not match {len(data)} bytes")
