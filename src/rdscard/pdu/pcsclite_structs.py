"""pcsc-lite wire protocol message structs (pcsc-lite winscard_msg.h, eventhandler.h).

Each struct is a frozen dataclass with ``encode()`` and ``decode(data)``
for exactly its x86_64 size (natural alignment, little-endian). The same
classes serve requests and replies, so a scripted client can play the
other side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol, Self

from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.pcsclite_constants import (
    MAX_ATR_SIZE,
    MAX_BUFFER_SIZE,
    MAX_READERNAME,
    MAX_READERS_STATE_ARRAY,
    PCSCLITE_MAX_READERS_CONTEXTS,
    PROTOCOL_VERSION_MAJOR,
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


@dataclass(frozen=True)
class EstablishContext:
    """establish_struct {dwScope, hContext, rv}: 12 bytes."""

    SIZE: ClassVar[int] = 12

    dw_scope: int
    h_context: int = 0
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().u32le(self.dw_scope).u32le(self.h_context).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("establish_struct", data, cls.SIZE)
        return cls(r.u32le("dwScope"), r.u32le("hContext"), r.u32le("rv"))


@dataclass(frozen=True)
class ReleaseContext:
    """release_struct {hContext, rv}: 8 bytes."""

    SIZE: ClassVar[int] = 8

    h_context: int
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().u32le(self.h_context).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("release_struct", data, cls.SIZE)
        return cls(r.u32le("hContext"), r.u32le("rv"))


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
class Reconnect:
    """reconnect_struct {hCard, dwShareMode, dwPreferredProtocols, dwInitialization,
    dwActiveProtocol, rv}: 24 bytes."""

    SIZE: ClassVar[int] = 24

    h_card: int
    dw_share_mode: int
    dw_preferred_protocols: int
    dw_initialization: int
    dw_active_protocol: int = 0
    rv: int = 0

    def encode(self) -> bytes:
        w = Writer().u32le(self.h_card).u32le(self.dw_share_mode)
        w.u32le(self.dw_preferred_protocols).u32le(self.dw_initialization)
        return w.u32le(self.dw_active_protocol).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("reconnect_struct", data, cls.SIZE)
        return cls(*(r.u32le(f) for f in _RECONNECT_FIELDS))


_RECONNECT_FIELDS: Final = (
    "hCard",
    "dwShareMode",
    "dwPreferredProtocols",
    "dwInitialization",
    "dwActiveProtocol",
    "rv",
)


@dataclass(frozen=True)
class Disconnect:
    """disconnect_struct {hCard, dwDisposition, rv}: 12 bytes."""

    SIZE: ClassVar[int] = 12

    h_card: int
    dw_disposition: int
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().u32le(self.h_card).u32le(self.dw_disposition).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("disconnect_struct", data, cls.SIZE)
        return cls(r.u32le("hCard"), r.u32le("dwDisposition"), r.u32le("rv"))


@dataclass(frozen=True)
class BeginTransaction:
    """begin_struct {hCard, rv}: 8 bytes."""

    SIZE: ClassVar[int] = 8

    h_card: int
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().u32le(self.h_card).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("begin_struct", data, cls.SIZE)
        return cls(r.u32le("hCard"), r.u32le("rv"))


@dataclass(frozen=True)
class EndTransaction:
    """end_struct {hCard, dwDisposition, rv}: 12 bytes."""

    SIZE: ClassVar[int] = 12

    h_card: int
    dw_disposition: int
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().u32le(self.h_card).u32le(self.dw_disposition).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("end_struct", data, cls.SIZE)
        return cls(r.u32le("hCard"), r.u32le("dwDisposition"), r.u32le("rv"))


@dataclass(frozen=True)
class Transmit:
    """transmit_struct: 32 bytes, followed by cbSendLength APDU bytes (request) or
    pcbRecvLength response bytes (reply, only when rv == 0)."""

    SIZE: ClassVar[int] = 32

    h_card: int
    io_send_pci_protocol: int
    io_send_pci_length: int
    cb_send_length: int
    io_recv_pci_protocol: int
    io_recv_pci_length: int
    pcb_recv_length: int
    rv: int = 0

    def encode(self) -> bytes:
        w = Writer()
        for value in (
            self.h_card,
            self.io_send_pci_protocol,
            self.io_send_pci_length,
            self.cb_send_length,
            self.io_recv_pci_protocol,
            self.io_recv_pci_length,
            self.pcb_recv_length,
            self.rv,
        ):
            w.u32le(value)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("transmit_struct", data, cls.SIZE)
        return cls(*(r.u32le(f) for f in _TRANSMIT_FIELDS))


_TRANSMIT_FIELDS: Final = (
    "hCard",
    "ioSendPciProtocol",
    "ioSendPciLength",
    "cbSendLength",
    "ioRecvPciProtocol",
    "ioRecvPciLength",
    "pcbRecvLength",
    "rv",
)


@dataclass(frozen=True)
class Control:
    """control_struct {hCard, dwControlCode, cbSendLength, cbRecvLength,
    dwBytesReturned, rv}: 24 bytes, followed by cbSendLength bytes (request)
    or dwBytesReturned bytes (reply, only when rv == 0)."""

    SIZE: ClassVar[int] = 24

    h_card: int
    dw_control_code: int
    cb_send_length: int
    cb_recv_length: int
    dw_bytes_returned: int = 0
    rv: int = 0

    def encode(self) -> bytes:
        w = Writer().u32le(self.h_card).u32le(self.dw_control_code)
        w.u32le(self.cb_send_length).u32le(self.cb_recv_length)
        return w.u32le(self.dw_bytes_returned).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("control_struct", data, cls.SIZE)
        return cls(*(r.u32le(f) for f in _CONTROL_FIELDS))


_CONTROL_FIELDS: Final = (
    "hCard",
    "dwControlCode",
    "cbSendLength",
    "cbRecvLength",
    "dwBytesReturned",
    "rv",
)


@dataclass(frozen=True)
class Status:
    """status_struct {hCard, rv}: 8 bytes; the client computes the rest from the table."""

    SIZE: ClassVar[int] = 8

    h_card: int
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().u32le(self.h_card).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("status_struct", data, cls.SIZE)
        return cls(r.u32le("hCard"), r.u32le("rv"))


@dataclass(frozen=True)
class Cancel:
    """cancel_struct {hContext, rv}: 8 bytes (sent on a new connection)."""

    SIZE: ClassVar[int] = 8

    h_context: int
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().u32le(self.h_context).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("cancel_struct", data, cls.SIZE)
        return cls(r.u32le("hContext"), r.u32le("rv"))


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
class Version:
    """version_struct {int32 major, int32 minor, rv}: 12 bytes."""

    SIZE: ClassVar[int] = 12

    major: int = PROTOCOL_VERSION_MAJOR
    minor: int = 4
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().i32le(self.major).i32le(self.minor).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("version_struct", data, cls.SIZE)
        return cls(r.i32le("major"), r.i32le("minor"), r.u32le("rv"))


@dataclass(frozen=True)
class WaitReaderStateChange:
    """wait_reader_state_change {timeOut, rv}: 8 bytes.

    The one message a waiting client reads: {0, 0} on a reader event,
    {0, SCARD_E_CANCELLED} on cancel, and the reply to
    CMD_STOP_WAITING_READER_STATE_CHANGE.
    """

    SIZE: ClassVar[int] = 8

    time_out: int = 0
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().u32le(self.time_out).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("wait_reader_state_change", data, cls.SIZE)
        return cls(r.u32le("timeOut"), r.u32le("rv"))


@dataclass(frozen=True)
class GetReaderEvents:
    """get_reader_events {readerEvents, rv}: 8 bytes, reply to CMD_GET_READER_EVENTS (4.5)."""

    SIZE: ClassVar[int] = 8

    reader_events: int
    rv: int = 0

    def encode(self) -> bytes:
        return Writer().u32le(self.reader_events).u32le(self.rv).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = _open("get_reader_events", data, cls.SIZE)
        return cls(r.u32le("readerEvents"), r.u32le("rv"))


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
        if atr_len > MAX_ATR_SIZE:
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
