"""pcsc-lite wire protocol message structs (pcsc-lite winscard_msg.h, eventhandler.h).

Each struct is a frozen dataclass with ``encode()`` and ``decode(data)``
for exactly its x86_64 size (natural alignment, little-endian). The same
classes serve requests and replies, so a scripted client can play the
other side.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import ClassVar, Protocol, Self

from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.pcsclite_constants import (
    MAX_ATR_SIZE,
    MAX_BUFFER_SIZE,
    MAX_READERNAME,
    MAX_READERS_STATE_ARRAY,
    PCSCLITE_MAX_READERS_CONTEXTS,
    PROTOCOL_VERSION_MAJOR,
    READER_NOT_INITIALIZED,
    READER_STATE_SIZE,
)


def _read_name(r: Reader, field: str) -> str:
    raw = r.raw(MAX_READERNAME, field)
    end = raw.find(b"\0")
    if end < 0:
        raise r.error(field, "reader name is not NUL-terminated")
    try:
        return raw[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise r.error(field, "reader name is not UTF-8") from None


def _write_name(w: Writer, name: str) -> None:
    raw = name.encode("utf-8")
    if len(raw) >= MAX_READERNAME or b"\0" in raw:
        raise ValueError(f"reader name must be under {MAX_READERNAME} bytes without NUL")
    w.raw(raw).zeros(MAX_READERNAME - len(raw))


class PcscStruct(Protocol):
    """What every message struct offers."""

    SIZE: ClassVar[int]

    def encode(self) -> bytes: ...


def _open(cls_name: str, data: bytes, size: int) -> Reader:
    r = Reader(data, f"pcsc-lite {cls_name}")
    if len(data) != size:
        raise r.error("size", f"struct is {len(data)} bytes, expected {size}")
    return r


class _IntegerStruct:
    """A struct of 32-bit integers only: packed and unpacked in one step.

    ``LAYOUT`` is its ``struct`` format (``I`` unsigned, ``i`` signed); the
    dataclass fields follow it in order. Unsigned values are written modulo
    2**32, as the C side stores them.
    """

    WIRE_NAME: ClassVar[str]
    LAYOUT: ClassVar[struct.Struct]
    SIZE: ClassVar[int]
    _fields_and_masks: ClassVar[tuple[tuple[str, int], ...]]

    def encode(self) -> bytes:
        cls = type(self)
        layout = cls.__dict__.get("_fields_and_masks")
        if layout is None:  # computed once per class: the field names, each with its mask
            names = [f.name for f in fields(self)]  # type: ignore[arg-type]
            masks = [0xFFFFFFFF if code == "I" else -1 for code in self.LAYOUT.format[1:]]
            layout = tuple(zip(names, masks, strict=True))
            cls._fields_and_masks = layout
        return self.LAYOUT.pack(*[getattr(self, name) & mask for name, mask in layout])

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if len(data) != cls.SIZE:
            _open(cls.WIRE_NAME, data, cls.SIZE)  # raises the protocol error
        return cls(*cls.LAYOUT.unpack(data))


@dataclass(frozen=True)
class EstablishContext(_IntegerStruct):
    """establish_struct {dwScope, hContext, rv}: 12 bytes."""

    WIRE_NAME: ClassVar[str] = "establish_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<III")
    SIZE: ClassVar[int] = LAYOUT.size

    dw_scope: int
    h_context: int = 0
    rv: int = 0


@dataclass(frozen=True)
class ReleaseContext(_IntegerStruct):
    """release_struct {hContext, rv}: 8 bytes."""

    WIRE_NAME: ClassVar[str] = "release_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = LAYOUT.size

    h_context: int
    rv: int = 0


@dataclass(frozen=True)
class Connect:
    """connect_struct: hContext, szReader[128], dwShareMode@132,
    dwPreferredProtocols@136, hCard@140, dwActiveProtocol@144, rv@148: 152 bytes."""

    SIZE: ClassVar[int] = 152

    h_context: int
    sz_reader: str
    dw_share_mode: int
    dw_preferred_protocols: int
    h_card: int = 0
    dw_active_protocol: int = 0
    rv: int = 0

    def encode(self) -> bytes:
        w = Writer().u32le(self.h_context)
        _write_name(w, self.sz_reader)
        w.u32le(self.dw_share_mode).u32le(self.dw_preferred_protocols).u32le(self.h_card)
        return w.u32le(self.dw_active_protocol).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("connect_struct", data, cls.SIZE)
        h_context = r.u32le("hContext")
        name = _read_name(r, "szReader")
        return cls(
            h_context,
            name,
            r.u32le("dwShareMode"),
            r.u32le("dwPreferredProtocols"),
            r.u32le("hCard"),
            r.u32le("dwActiveProtocol"),
            r.u32le("rv"),
        )


@dataclass(frozen=True)
class Reconnect(_IntegerStruct):
    """reconnect_struct {hCard, dwShareMode, dwPreferredProtocols, dwInitialization,
    dwActiveProtocol, rv}: 24 bytes."""

    WIRE_NAME: ClassVar[str] = "reconnect_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IIIIII")
    SIZE: ClassVar[int] = LAYOUT.size

    h_card: int
    dw_share_mode: int
    dw_preferred_protocols: int
    dw_initialization: int
    dw_active_protocol: int = 0
    rv: int = 0


@dataclass(frozen=True)
class Disconnect(_IntegerStruct):
    """disconnect_struct {hCard, dwDisposition, rv}: 12 bytes."""

    WIRE_NAME: ClassVar[str] = "disconnect_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<III")
    SIZE: ClassVar[int] = LAYOUT.size

    h_card: int
    dw_disposition: int
    rv: int = 0


@dataclass(frozen=True)
class BeginTransaction(_IntegerStruct):
    """begin_struct {hCard, rv}: 8 bytes."""

    WIRE_NAME: ClassVar[str] = "begin_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = LAYOUT.size

    h_card: int
    rv: int = 0


@dataclass(frozen=True)
class EndTransaction(_IntegerStruct):
    """end_struct {hCard, dwDisposition, rv}: 12 bytes."""

    WIRE_NAME: ClassVar[str] = "end_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<III")
    SIZE: ClassVar[int] = LAYOUT.size

    h_card: int
    dw_disposition: int
    rv: int = 0


@dataclass(frozen=True)
class Transmit(_IntegerStruct):
    """transmit_struct: 32 bytes, followed by cbSendLength APDU bytes (request) or
    pcbRecvLength response bytes (reply, only when rv == 0)."""

    WIRE_NAME: ClassVar[str] = "transmit_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IIIIIIII")
    SIZE: ClassVar[int] = LAYOUT.size

    h_card: int
    io_send_pci_protocol: int
    io_send_pci_length: int
    cb_send_length: int
    io_recv_pci_protocol: int
    io_recv_pci_length: int
    pcb_recv_length: int
    rv: int = 0


@dataclass(frozen=True)
class Control(_IntegerStruct):
    """control_struct {hCard, dwControlCode, cbSendLength, cbRecvLength,
    dwBytesReturned, rv}: 24 bytes, followed by cbSendLength bytes (request)
    or dwBytesReturned bytes (reply, only when rv == 0)."""

    WIRE_NAME: ClassVar[str] = "control_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IIIIII")
    SIZE: ClassVar[int] = LAYOUT.size

    h_card: int
    dw_control_code: int
    cb_send_length: int
    cb_recv_length: int
    dw_bytes_returned: int = 0
    rv: int = 0


@dataclass(frozen=True)
class Status(_IntegerStruct):
    """status_struct {hCard, rv}: 8 bytes; the client computes the rest from the table."""

    WIRE_NAME: ClassVar[str] = "status_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = LAYOUT.size

    h_card: int
    rv: int = 0


@dataclass(frozen=True)
class Cancel(_IntegerStruct):
    """cancel_struct {hContext, rv}: 8 bytes (sent on a new connection)."""

    WIRE_NAME: ClassVar[str] = "cancel_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = LAYOUT.size

    h_context: int
    rv: int = 0


@dataclass(frozen=True)
class GetSetAttrib:
    """getset_struct {hCard, dwAttrId, pbAttr[264]@8, cbAttrLen@272, rv@276}: 280 bytes.

    ``pb_attr`` holds the first min(cbAttrLen, 264) bytes; the rest of the
    264-byte array is zero on the wire. For GET requests cbAttrLen is the
    caller's buffer size and pbAttr is zero.
    """

    SIZE: ClassVar[int] = 280

    h_card: int
    dw_attr_id: int
    pb_attr: bytes = b""
    cb_attr_len: int = 0
    rv: int = 0

    def encode(self) -> bytes:
        if len(self.pb_attr) > MAX_BUFFER_SIZE:
            raise ValueError(f"pbAttr is at most {MAX_BUFFER_SIZE} bytes")
        w = Writer().u32le(self.h_card).u32le(self.dw_attr_id)
        w.raw(self.pb_attr).zeros(MAX_BUFFER_SIZE - len(self.pb_attr))
        return w.u32le(self.cb_attr_len).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("getset_struct", data, cls.SIZE)
        h_card = r.u32le("hCard")
        attr_id = r.u32le("dwAttrId")
        raw = r.raw(MAX_BUFFER_SIZE, "pbAttr")
        length = r.u32le("cbAttrLen")
        return cls(h_card, attr_id, raw[: min(length, MAX_BUFFER_SIZE)], length, r.u32le("rv"))


@dataclass(frozen=True)
class Version(_IntegerStruct):
    """version_struct {int32 major, int32 minor, rv}: 12 bytes."""

    WIRE_NAME: ClassVar[str] = "version_struct"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<iiI")
    SIZE: ClassVar[int] = LAYOUT.size

    major: int = PROTOCOL_VERSION_MAJOR
    minor: int = 4
    rv: int = 0


@dataclass(frozen=True)
class WaitReaderStateChange(_IntegerStruct):
    """wait_reader_state_change {timeOut, rv}: 8 bytes.

    The one message a waiting client reads: {0, 0} on a reader event,
    {0, SCARD_E_CANCELLED} on cancel, and the reply to
    CMD_STOP_WAITING_READER_STATE_CHANGE.
    """

    WIRE_NAME: ClassVar[str] = "wait_reader_state_change"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = LAYOUT.size

    time_out: int = 0
    rv: int = 0


@dataclass(frozen=True)
class GetReaderEvents(_IntegerStruct):
    """get_reader_events {readerEvents, rv}: 8 bytes, reply to CMD_GET_READER_EVENTS (4.5)."""

    WIRE_NAME: ClassVar[str] = "get_reader_events"
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = LAYOUT.size

    reader_events: int
    rv: int = 0


@dataclass(frozen=True)
class ReadersStateSize:
    """int32 array_size: reply to CMD_GET_READERS_STATE_SIZE (4.6), 4 bytes."""

    SIZE: ClassVar[int] = 4

    array_size: int

    def encode(self) -> bytes:
        return Writer().i32le(self.array_size).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("readers state size", data, cls.SIZE)
        size = r.i32le("array_size")
        if not 0 <= size <= MAX_READERS_STATE_ARRAY:
            raise r.error("array_size", f"{size} entries, limit {MAX_READERS_STATE_ARRAY}")
        return cls(size)


@dataclass(frozen=True)
class ReaderState:
    """READER_STATE (pcsc-lite eventhandler.h): 184 bytes.

    readerName[128], eventCounter@128, readerState@132, readerSharing@136
    (int32), cardAtr[33]@140 + 3 pad, cardAtrLength@176, cardProtocol@180.
    An entry with an empty name is an unused slot.
    """

    SIZE: ClassVar[int] = READER_STATE_SIZE

    reader_name: str = ""
    event_counter: int = 0
    reader_state: int = 0
    reader_sharing: int = 0
    card_atr: bytes = b""
    card_protocol: int = 0

    def encode(self) -> bytes:
        if len(self.card_atr) > MAX_ATR_SIZE:
            raise ValueError(f"ATR is at most {MAX_ATR_SIZE} bytes")
        w = Writer()
        _write_name(w, self.reader_name)
        w.u32le(self.event_counter).u32le(self.reader_state).i32le(self.reader_sharing)
        w.raw(self.card_atr).zeros(MAX_ATR_SIZE - len(self.card_atr) + 3)
        return w.u32le(len(self.card_atr)).u32le(self.card_protocol).getvalue()

    @classmethod
    def read(cls, r: Reader) -> Self:
        name = _read_name(r, "readerName")
        counter = r.u32le("eventCounter")
        state = r.u32le("readerState")
        sharing = r.i32le("readerSharing")
        atr = r.raw(MAX_ATR_SIZE, "cardAtr")
        r.skip(3, "padding")
        atr_len = r.u32le("cardAtrLength")
        if atr_len == READER_NOT_INITIALIZED:
            atr_len = 0  # pcscd's mark of an unused slot or a reader not yet polled
        elif atr_len > MAX_ATR_SIZE:
            raise r.error("cardAtrLength", f"{atr_len} bytes, limit {MAX_ATR_SIZE}")
        return cls(name, counter, state, sharing, atr[:atr_len], r.u32le("cardProtocol"))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("READER_STATE", data, cls.SIZE)
        return cls.read(r)


def encode_readers_state(
    states: Sequence[ReaderState], count: int = PCSCLITE_MAX_READERS_CONTEXTS
) -> bytes:
    """The reader state table of ``count`` entries, unused slots zeroed.

    16 entries (2944 bytes) answer CMD_GET_READERS_STATE and, in 4.4/4.5,
    CMD_WAIT_READER_STATE_CHANGE; 4.6 sends the size announced by
    CMD_GET_READERS_STATE_SIZE for CMD_GET_READERS_STATE_ARRAY.
    """
    if len(states) > count:
        raise ValueError(f"{len(states)} readers do not fit a table of {count}")
    parts = [s.encode() for s in states]
    parts.append(bytes(READER_STATE_SIZE * (count - len(states))))
    return b"".join(parts)


def decode_readers_state(
    data: bytes, count: int = PCSCLITE_MAX_READERS_CONTEXTS
) -> tuple[ReaderState, ...]:
    """Every entry of a table of ``count`` entries, unused slots included."""
    r = Reader(data, "pcsc-lite READER_STATE table")
    if count > MAX_READERS_STATE_ARRAY:
        raise r.error("count", f"{count} entries, limit {MAX_READERS_STATE_ARRAY}")
    if len(data) != count * READER_STATE_SIZE:
        raise r.error("size", f"table is {len(data)} bytes, expected {count * READER_STATE_SIZE}")
    return tuple(ReaderState.read(r) for _ in range(count))
