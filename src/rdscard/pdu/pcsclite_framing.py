"""Framing of the pcsc-lite client wire protocol: requests from a byte stream, replies.

A request is ``{uint32 size; uint32 command}``, then exactly ``size`` bytes
of the command's struct (none for the table and wait commands), then for
TRANSMIT and CONTROL ``cbSendLength`` bytes of payload. pcscd closes the
connection on a wrong size; :class:`PcscRequestReader` raises a
:class:`ProtocolError` instead so the adapter can do the same.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Writer
from rdscard.pdu.pcsclite_constants import (
    HEADER_SIZE,
    MAX_BUFFER_SIZE_EXTENDED,
    PCSCLITE_MAX_READERS_CONTEXTS,
    Command,
)
from rdscard.pdu.pcsclite_structs import (
    BeginTransaction,
    Cancel,
    Connect,
    Control,
    Disconnect,
    EndTransaction,
    EstablishContext,
    GetReaderEvents,
    GetSetAttrib,
    PcscStruct,
    ReadersStateSize,
    ReaderState,
    Reconnect,
    ReleaseContext,
    Status,
    Transmit,
    Version,
    WaitReaderStateChange,
    decode_readers_state,
)

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


_HEADER: Final = struct.Struct("<II")
_TRANSMIT: Final = int(Command.SCARD_TRANSMIT)
_TRANSMIT_LAYOUT: Final = Transmit.LAYOUT
_TRANSMIT_SIZE: Final = Transmit.SIZE
#: The header and transmit_struct: the APDU follows.
_TRANSMIT_HEAD: Final = HEADER_SIZE + Transmit.SIZE
#: The commands clients send, by wire value.
_CLIENT_COMMANDS: Final[dict[int, Command]] = {int(c): c for c in REQUEST_STRUCTS}


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
        buf = self._buf
        if self._pending is None and len(buf) >= _TRANSMIT_HEAD:
            transmit = self._next_transmit()
            if transmit is not None:
                return transmit
        if self._pending is None:
            if len(buf) < HEADER_SIZE:
                return None
            size, value = _HEADER.unpack_from(buf)
            command = self._command(value)
            struct_type = REQUEST_STRUCTS[command]
            expected = struct_type.SIZE if struct_type is not None else 0
            if size != expected:
                raise ProtocolError(
                    self.PDU, "size", f"{command.name} with {size} bytes, expected {expected}"
                )
            end = HEADER_SIZE + size
            if len(buf) < end:
                return None
            body = bytes(buf[HEADER_SIZE:end])
            message = struct_type.decode(body) if struct_type is not None else None
            del buf[:end]
            extra = payload_length(message)
            if extra > MAX_BUFFER_SIZE_EXTENDED:
                raise ProtocolError(
                    self.PDU, "cbSendLength", f"{extra} bytes, limit {MAX_BUFFER_SIZE_EXTENDED}"
                )
            self._pending = (command, message, extra)
        command, message, extra = self._pending
        if len(buf) < extra:
            return None
        payload = bytes(buf[:extra])
        del buf[:extra]
        self._pending = None
        return PcscRequest(command, message, payload)

    def _next_transmit(self) -> PcscRequest | None:
        """A complete TRANSMIT request with its APDU in one step (the hot path), or None:
        anything else, or incomplete, takes the general way (which also reports errors)."""
        buf = self._buf
        size, value = _HEADER.unpack_from(buf)
        if value != _TRANSMIT or size != _TRANSMIT_SIZE:
            return None
        fields = _TRANSMIT_LAYOUT.unpack_from(buf, HEADER_SIZE)
        end = _TRANSMIT_HEAD + fields[3]  # cbSendLength
        if fields[3] > MAX_BUFFER_SIZE_EXTENDED or len(buf) < end:
            return None
        payload = bytes(buf[_TRANSMIT_HEAD:end])
        del buf[:end]
        return PcscRequest(Command.SCARD_TRANSMIT, Transmit(*fields), payload)

    def _command(self, value: int) -> Command:
        command = _CLIENT_COMMANDS.get(value)
        if command is not None:
            return command
        try:
            known = Command(value)
        except ValueError:
            raise ProtocolError(self.PDU, "command", f"unknown command 0x{value:X}") from None
        raise ProtocolError(self.PDU, "command", f"{known.name} is never sent by clients")


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
