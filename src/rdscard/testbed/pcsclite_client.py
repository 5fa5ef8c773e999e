"""A raw pcsc-lite client for tests: one UNIX socket connection, the wire protocol as is.

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process, so a program
linked to it talks to one daemon only. :class:`WireClient` speaks the
client side of pcsc-lite's protocol 4.4 (pcsc-lite winscard_msg.h, the
codecs of :mod:`rdscard.pdu.pcsclite`) over a socket of the caller's
choice, so one process can put the same calls to pcscd and to a session's
socket and compare the replies field by field. Like libpcsclite it sends one
request and reads its reply (a fixed struct, then the payload of TRANSMIT
and CONTROL only when rv is 0) before the next.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar, cast

from rdscard.errors import RdscardError
from rdscard.pdu.pcsclite import (
    PCSCLITE_MAX_READERS_CONTEXTS,
    READER_STATE_SIZE,
    Command,
    Control,
    PcscRequest,
    ReaderState,
    RequestStruct,
    Transmit,
    WaitReaderStateChange,
    decode_readers_state,
)

#: Seconds a reply may take before the client gives up (a guard against a hung peer).
DEFAULT_TIMEOUT: Final = 30.0
TABLE_SIZE: Final = PCSCLITE_MAX_READERS_CONTEXTS * READER_STATE_SIZE
S = TypeVar("S", bound=RequestStruct)


class PeerClosedError(RdscardError):
    """The daemon closed the connection (pcscd's answer to a request it refuses)."""


class WireClient:
    """One connection to a pcsc-lite daemon socket (pcscd's or a session's)."""

    def __init__(self, path: Path | str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(self.path)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- bytes -----------------------------------------------------------------------
    def send(self, command: Command, message: RequestStruct | None = None,
             payload: bytes = b"") -> None:
        """Send one request without reading anything."""
        try:
            self._sock.sendall(PcscRequest(command, message, payload).encode())
        except (BrokenPipeError, ConnectionResetError):
            raise PeerClosedError(f"{self.path}: closed before {command.name}") from None

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes; PeerClosedError when the daemon hangs up first."""
        data = bytearray()
        while len(data) < size:
            try:
                chunk = self._sock.recv(size - len(data))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise PeerClosedError(f"{self.path}: closed after {len(data)} of {size} bytes")
            data += chunk
        return bytes(data)

    # -- requests --------------------------------------------------------------------
    def call(self, command: Command, message: S, payload: bytes = b"") -> tuple[S, bytes]:
        """One request and its reply: the struct, and the TRANSMIT or CONTROL data."""
        self.send(command, message, payload)
        reply = cast(S, type(message).decode(self.read(type(message).SIZE)))
        data = b""
        if isinstance(reply, Transmit) and reply.rv == 0:
            data = self.read(reply.pcb_recv_length)
        elif isinstance(reply, Control) and reply.rv == 0:
            data = self.read(reply.dw_bytes_returned)
        return reply, data

    def readers_state(self) -> tuple[ReaderState, ...]:
        """CMD_GET_READERS_STATE: the daemon's reader table."""
        self.send(Command.CMD_GET_READERS_STATE)
        return self.read_table()

    def read_table(self) -> tuple[ReaderState, ...]:
        return decode_readers_state(self.read(TABLE_SIZE), PCSCLITE_MAX_READERS_CONTEXTS)

    def start_waiting(self) -> tuple[ReaderState, ...]:
        """CMD_WAIT_READER_STATE_CHANGE (4.4): registered; the table comes back at once."""
        self.send(Command.CMD_WAIT_READER_STATE_CHANGE)
        return self.read_table()

    def read_wait_result(self) -> WaitReaderStateChange:
        """The one 8-byte {timeOut, rv} a registered waiter reads (wake-up or cancel)."""
        return WaitReaderStateChange.decode(self.read(WaitReaderStateChange.SIZE))

    def stop_waiting(self) -> WaitReaderStateChange:
        """CMD_STOP_WAITING_READER_STATE_CHANGE and its 8-byte answer."""
        self.send(Command.CMD_STOP_WAITING_READER_STATE_CHANGE)
        return self.read_wait_result()


__all__ = ["PeerClosedError", "WireClient"]
