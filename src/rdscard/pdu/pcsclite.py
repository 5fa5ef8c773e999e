"""The pcsc-lite client wire protocol, versions 4.4 to 4.6 (pcsc-lite winscard_msg.h).

This is what ``libpcsclite.so.1`` speaks to pcscd over a UNIX socket. A
request is a header ``{uint32 size; uint32 command}`` followed by a fixed
struct of exactly ``size`` bytes (TRANSMIT and CONTROL add ``cbSendLength``
bytes of payload after it). Replies carry no header: the same struct with
its outputs filled in, then any payload. Integers are in host order, which
is little-endian on every platform this project supports; the struct sizes
are those of x86_64 (natural alignment, no pointers).

Each struct is a frozen dataclass with ``encode()`` and ``decode(data)``;
the same classes serve requests and replies, so a scripted client can play
the other side. :class:`PcscRequestReader` cuts a byte stream into complete
requests and rejects an unknown command or a wrong struct size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, Final, Protocol, Self

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader, Writer

PROTOCOL_VERSION_MAJOR: Final = 4
#: Minor versions served: 4 (pcsc-lite 1.9.9), 5 (2.3, reader events), 6 (2.5, sized table).
PROTOCOL_VERSION_MINORS: Final = (4, 5, 6)
MAX_READERNAME: Final = 128
MAX_ATR_SIZE: Final = 33
#: Size of pbAttr in the GET/SET_ATTRIB struct.
MAX_BUFFER_SIZE: Final = 264
#: Largest APDU or control buffer: 4 + 3 + 65536 + 3 + 2 bytes.
MAX_BUFFER_SIZE_EXTENDED: Final = 65548
#: Entries in the reader state table of protocol 4.4 and 4.5.
PCSCLITE_MAX_READERS_CONTEXTS: Final = 16
#: Entries accepted in a protocol 4.6 table.
MAX_READERS_STATE_ARRAY: Final = 1024
HEADER_SIZE: Final = 8
READER_STATE_SIZE: Final = 184


class Command(IntEnum):
    """pcsc_msg_commands (winscard_msg.h)."""

    SCARD_ESTABLISH_CONTEXT = 0x01
    SCARD_RELEASE_CONTEXT = 0x02
    SCARD_LIST_READERS = 0x03
    SCARD_CONNECT = 0x04
    SCARD_RECONNECT = 0x05
    SCARD_DISCONNECT = 0x06
    SCARD_BEGIN_TRANSACTION = 0x07
    SCARD_END_TRANSACTION = 0x08
    SCARD_TRANSMIT = 0x09
    SCARD_CONTROL = 0x0A
    SCARD_STATUS = 0x0B
    SCARD_GET_STATUS_CHANGE = 0x0C
    SCARD_CANCEL = 0x0D
    SCARD_CANCEL_TRANSACTION = 0x0E
    SCARD_GET_ATTRIB = 0x0F
    SCARD_SET_ATTRIB = 0x10
    CMD_VERSION = 0x11
    CMD_GET_READERS_STATE = 0x12
    CMD_WAIT_READER_STATE_CHANGE = 0x13
    CMD_STOP_WAITING_READER_STATE_CHANGE = 0x14
    CMD_GET_READER_EVENTS = 0x15
    CMD_GET_READERS_STATE_SIZE = 0x16
    CMD_GET_READERS_STATE_ARRAY = 0x17


class ReaderStateFlag(IntFlag):
    """READER_STATE.readerState bits (pcsclite.h)."""

    SCARD_UNKNOWN = 0x0001
    SCARD_ABSENT = 0x0002
    SCARD_PRESENT = 0x0004
    SCARD_SWALLOWED = 0x0008
    SCARD_POWERED = 0x0010
    SCARD_NEGOTIABLE = 0x0020
    SCARD_SPECIFIC = 0x0040


class ScardProtocol(IntFlag):
    """SCARD_PROTOCOL_* (pcsclite.h); pcsc-lite's values, not Windows'."""

    SCARD_PROTOCOL_UNDEFINED = 0x0000
    SCARD_PROTOCOL_T0 = 0x0001
    SCARD_PROTOCOL_T1 = 0x0002
    SCARD_PROTOCOL_RAW = 0x0004
    SCARD_PROTOCOL_T15 = 0x0008


class ShareMode(IntEnum):
    """SCARD_SHARE_* (pcsclite.h)."""

    SCARD_SHARE_EXCLUSIVE = 0x0001
    SCARD_SHARE_SHARED = 0x0002
    SCARD_SHARE_DIRECT = 0x0003


class Disposition(IntEnum):
    """SCARD_*_CARD dispositions (pcsclite.h)."""

    SCARD_LEAVE_CARD = 0x0000
    SCARD_RESET_CARD = 0x0001
    SCARD_UNPOWER_CARD = 0x0002
    SCARD_EJECT_CARD = 0x0003


class ReaderSharing(IntEnum):
    """READER_STATE.readerSharing values (readerfactory.h)."""

    PCSCLITE_SHARING_EXCLUSIVE_CONTEXT = -1
    PCSCLITE_SHARING_NO_CONTEXT = 0
    PCSCLITE_SHARING_LAST_CONTEXT = 1


class ScardError(IntEnum):
    """SCARD_* return codes as the uint32 ``rv`` on the wire (pcsclite.h)."""

    SCARD_S_SUCCESS = 0x00000000
    SCARD_F_INTERNAL_ERROR = 0x80100001
    SCARD_E_CANCELLED = 0x80100002
    SCARD_E_INVALID_HANDLE = 0x80100003
    SCARD_E_INVALID_PARAMETER = 0x80100004
    SCARD_E_INVALID_TARGET = 0x80100005
    SCARD_E_NO_MEMORY = 0x80100006
    SCARD_F_WAITED_TOO_LONG = 0x80100007
    SCARD_E_INSUFFICIENT_BUFFER = 0x80100008
    SCARD_E_UNKNOWN_READER = 0x80100009
    SCARD_E_TIMEOUT = 0x8010000A
    SCARD_E_SHARING_VIOLATION = 0x8010000B
    SCARD_E_NO_SMARTCARD = 0x8010000C
    SCARD_E_UNKNOWN_CARD = 0x8010000D
    SCARD_E_CANT_DISPOSE = 0x8010000E
    SCARD_E_PROTO_MISMATCH = 0x8010000F
    SCARD_E_NOT_READY = 0x80100010
    SCARD_E_INVALID_VALUE = 0x80100011
    SCARD_E_SYSTEM_CANCELLED = 0x80100012
    SCARD_F_COMM_ERROR = 0x80100013
    SCARD_F_UNKNOWN_ERROR = 0x80100014
    SCARD_E_INVALID_ATR = 0x80100015
    SCARD_E_NOT_TRANSACTED = 0x80100016
    SCARD_E_READER_UNAVAILABLE = 0x80100017
    SCARD_P_SHUTDOWN = 0x80100018
    SCARD_E_PCI_TOO_SMALL = 0x80100019
    SCARD_E_READER_UNSUPPORTED = 0x8010001A
    SCARD_E_DUPLICATE_READER = 0x8010001B
    SCARD_E_CARD_UNSUPPORTED = 0x8010001C
    SCARD_E_NO_SERVICE = 0x8010001D
    SCARD_E_SERVICE_STOPPED = 0x8010001E
    SCARD_E_UNEXPECTED = 0x8010001F
    SCARD_E_ICC_INSTALLATION = 0x80100020
    SCARD_E_ICC_CREATEORDER = 0x80100021
    SCARD_E_UNSUPPORTED_FEATURE = 0x80100022
    SCARD_E_DIR_NOT_FOUND = 0x80100023
    SCARD_E_FILE_NOT_FOUND = 0x80100024
    SCARD_E_NO_DIR = 0x80100025
    SCARD_E_NO_FILE = 0x80100026
    SCARD_E_NO_ACCESS = 0x80100027
    SCARD_E_WRITE_TOO_MANY = 0x80100028
    SCARD_E_BAD_SEEK = 0x80100029
    SCARD_E_INVALID_CHV = 0x8010002A
    SCARD_E_UNKNOWN_RES_MNG = 0x8010002B
    SCARD_E_NO_SUCH_CERTIFICATE = 0x8010002C
    SCARD_E_CERTIFICATE_UNAVAILABLE = 0x8010002D
    SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
    SCARD_E_COMM_DATA_LOST = 0x8010002F
    SCARD_E_NO_KEY_CONTAINER = 0x80100030
    SCARD_E_SERVER_TOO_BUSY = 0x80100031
    SCARD_W_UNSUPPORTED_CARD = 0x80100065
    SCARD_W_UNRESPONSIVE_CARD = 0x80100066
    SCARD_W_UNPOWERED_CARD = 0x80100067
    SCARD_W_RESET_CARD = 0x80100068
    SCARD_W_REMOVED_CARD = 0x80100069
    SCARD_W_SECURITY_VIOLATION = 0x8010006A
    SCARD_W_WRONG_CHV = 0x8010006B
    SCARD_W_CHV_BLOCKED = 0x8010006C
    SCARD_W_EOF = 0x8010006D
    SCARD_W_CANCELLED_BY_USER = 0x8010006E
    SCARD_W_CARD_NOT_AUTHENTICATED = 0x8010006F


def scard_ctl_code(code: int) -> int:
    """SCARD_CTL_CODE(code) of pcsc-lite: 0x42000000 + code."""
    return 0x42000000 + code


#: CM_IOCTL_GET_FEATURE_REQUEST, SCARD_CTL_CODE(3400) (PC/SC part 10).
CM_IOCTL_GET_FEATURE_REQUEST: Final = scard_ctl_code(3400)


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


# -- framing -----------------------------------------------------------------------

RequestStruct = (
    EstablishContext
    | ReleaseContext
    | Connect
    | Reconnect
    | Disconnect
    | BeginTransaction
    | EndTransaction
    | Transmit
    | Control
    | Status
    | Cancel
    | GetSetAttrib
    | Version
)

#: The struct that follows the header of each request; None: the request is the header alone.
REQUEST_STRUCTS: Final[dict[Command, type[RequestStruct] | None]] = {
    Command.SCARD_ESTABLISH_CONTEXT: EstablishContext,
    Command.SCARD_RELEASE_CONTEXT: ReleaseContext,
    Command.SCARD_CONNECT: Connect,
    Command.SCARD_RECONNECT: Reconnect,
    Command.SCARD_DISCONNECT: Disconnect,
    Command.SCARD_BEGIN_TRANSACTION: BeginTransaction,
    Command.SCARD_END_TRANSACTION: EndTransaction,
    Command.SCARD_TRANSMIT: Transmit,
    Command.SCARD_CONTROL: Control,
    Command.SCARD_STATUS: Status,
    Command.SCARD_CANCEL: Cancel,
    Command.SCARD_GET_ATTRIB: GetSetAttrib,
    Command.SCARD_SET_ATTRIB: GetSetAttrib,
    Command.CMD_VERSION: Version,
    Command.CMD_GET_READERS_STATE: None,
    Command.CMD_WAIT_READER_STATE_CHANGE: None,
    Command.CMD_STOP_WAITING_READER_STATE_CHANGE: None,
    Command.CMD_GET_READER_EVENTS: None,
    Command.CMD_GET_READERS_STATE_SIZE: None,
    Command.CMD_GET_READERS_STATE_ARRAY: None,
}


@dataclass(frozen=True)
class PcscRequest:
    """One complete request: the command, its struct (None if it has none), its payload."""

    command: Command
    message: RequestStruct | None = None
    payload: bytes = b""

    def encode(self) -> bytes:
        """Header, struct and payload, as libpcsclite sends them."""
        body = self.message.encode() if self.message is not None else b""
        header = Writer().u32le(len(body)).u32le(self.command).getvalue()
        return header + body + self.payload


def payload_length(message: RequestStruct | None) -> int:
    """Bytes that follow the struct of a request: cbSendLength for TRANSMIT and CONTROL."""
    if isinstance(message, Transmit | Control):
        return message.cb_send_length
    return 0


class PcscRequestReader:
    """Cut a client's byte stream into :class:`PcscRequest` objects.

    ``feed`` buffers partial input and returns every request completed so
    far. An unknown or never-sent command, a size that is not the struct
    size of the command, or a payload over MAX_BUFFER_SIZE_EXTENDED raises a
    :class:`ProtocolError`; pcscd closes the connection in these cases too.
    """

    PDU: ClassVar[str] = "pcsc-lite request"

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: tuple[Command, RequestStruct | None, int] | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete request."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[PcscRequest]:
        self._buf += data
        out: list[PcscRequest] = []
        while True:
            request = self._next()
            if request is None:
                return out
            out.append(request)

    def _next(self) -> PcscRequest | None:
        if self._pending is None:
            if len(self._buf) < HEADER_SIZE:
                return None
            r = Reader(bytes(self._buf[:HEADER_SIZE]), self.PDU)
            size = r.u32le("size")
            value = r.u32le("command")
            command = self._command(value)
            struct = REQUEST_STRUCTS[command]
            expected = struct.SIZE if struct is not None else 0
            if size != expected:
                raise ProtocolError(
                    self.PDU, "size", f"{command.name} with {size} bytes, expected {expected}"
                )
            if len(self._buf) < HEADER_SIZE + size:
                return None
            body = bytes(self._buf[HEADER_SIZE : HEADER_SIZE + size])
            del self._buf[: HEADER_SIZE + size]
            message = struct.decode(body) if struct is not None else None
            extra = payload_length(message)
            if extra > MAX_BUFFER_SIZE_EXTENDED:
                raise ProtocolError(
                    self.PDU, "cbSendLength", f"{extra} bytes, limit {MAX_BUFFER_SIZE_EXTENDED}"
                )
            self._pending = (command, message, extra)
        command, message, extra = self._pending
        if len(self._buf) < extra:
            return None
        payload = bytes(self._buf[:extra])
        del self._buf[:extra]
        self._pending = None
        return PcscRequest(command, message, payload)

    def _command(self, value: int) -> Command:
        try:
            command = Command(value)
        except ValueError:
            raise ProtocolError(self.PDU, "command", f"unknown command 0x{value:X}") from None
        if command not in REQUEST_STRUCTS:
            raise ProtocolError(self.PDU, "command", f"{command.name} is never sent by clients")
        return command


def encode_reply(message: PcscStruct, payload: bytes = b"") -> bytes:
    """A reply: the struct, then its payload (TRANSMIT/CONTROL data when rv == 0)."""
    return message.encode() + payload


ReplyStruct = RequestStruct | WaitReaderStateChange | GetReaderEvents | ReadersStateSize

_REPLY_STRUCTS: Final[dict[Command, type[ReplyStruct]]] = {
    **{c: s for c, s in REQUEST_STRUCTS.items() if s is not None},
    Command.CMD_STOP_WAITING_READER_STATE_CHANGE: WaitReaderStateChange,
    Command.CMD_GET_READER_EVENTS: GetReaderEvents,
    Command.CMD_GET_READERS_STATE_SIZE: ReadersStateSize,
}


_TABLE_REPLIES: Final = frozenset(
    {
        Command.CMD_GET_READERS_STATE,
        Command.CMD_WAIT_READER_STATE_CHANGE,
        Command.CMD_GET_READERS_STATE_ARRAY,
    }
)


def decode_reply(
    command: Command, data: bytes, *, table_size: int = PCSCLITE_MAX_READERS_CONTEXTS
) -> tuple[ReplyStruct | tuple[ReaderState, ...], bytes]:
    """A complete reply to ``command`` (what libpcsclite reads), and its payload.

    Table replies (CMD_GET_READERS_STATE, the first answer to
    CMD_WAIT_READER_STATE_CHANGE in 4.4/4.5, CMD_GET_READERS_STATE_ARRAY)
    come back as a tuple of ``table_size`` entries. TRANSMIT and CONTROL
    replies carry pcbRecvLength / dwBytesReturned bytes only when rv == 0.
    """
    pdu = f"pcsc-lite reply to {command.name}"
    if command in _TABLE_REPLIES:
        return decode_readers_state(data, table_size), b""
    struct = _REPLY_STRUCTS.get(command)
    if struct is None:
        raise ProtocolError(pdu, "command", f"{command.name} has no reply")
    if len(data) < struct.SIZE:
        raise ProtocolError(pdu, "size", f"{len(data)} bytes, struct is {struct.SIZE}")
    message = struct.decode(data[: struct.SIZE])
    rest = data[struct.SIZE :]
    expected = 0
    if isinstance(message, Transmit) and message.rv == 0:
        expected = message.pcb_recv_length
    elif isinstance(message, Control) and message.rv == 0:
        expected = message.dw_bytes_returned
    if len(rest) != expected:
        raise ProtocolError(pdu, "payload", f"{len(rest)} bytes, expected {expected}")
    return message, rest
