"""What a session's pcsc-lite service needs from wherever the cards really are.

The per-session pcsc-lite socket (:mod:`rdscard.redirect.pcsclite_service`)
serves unmodified PC/SC programs; each call it cannot answer from its own
state goes to a :class:`SmartCardBackend`. In production the backend is the
session's RDP client (MS-RDPESC over rdpdr, through the broker); in tests it
can be a local pcscd. Everything here speaks pcsc-lite's vocabulary: reader
state bits, protocol values (T0 1, T1 2, RAW 4), control codes
(0x42000000 + n) and SCARD_* return codes as pcsc-lite defines them; the
broker translates from and to the Windows values of MS-RDPESC.

Contexts and card handles are opaque byte strings owned by the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from rdscard.errors import RdscardError


class ScardError(RdscardError):
    """A PC/SC call failed with ``code`` (a pcsc-lite SCARD_* value, e.g. 0x80100069)."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code & 0xFFFFFFFF
        super().__init__(message or f"SCARD error 0x{self.code:08X}")


@dataclass(frozen=True)
class ReaderInfo:
    """One reader as pcsc-lite's READER_STATE table describes it."""

    name: str
    event_counter: int = 0
    state: int = 0  # pcsc-lite readerState bits: ABSENT 2, PRESENT 4, POWERED 0x10, ...
    sharing: int = 0  # readerSharing: 0 free, -1 exclusive, n shared by n handles
    atr: bytes = b""
    protocol: int = 0  # cardProtocol: T0 1, T1 2, RAW 4


@dataclass(frozen=True)
class CardStatus:
    """SCardStatus of a card handle."""

    reader: str
    state: int
    protocol: int
    atr: bytes = field(default=b"")


class SmartCardBackend(Protocol):
    """The cards of one session, seen with pcsc-lite semantics.

    Every coroutine raises :class:`ScardError` with a pcsc-lite code on
    failure; a backend whose client went away raises SCARD_E_NO_SERVICE
    (0x8010001D) or SCARD_W_REMOVED_CARD (0x80100069) at once, never hangs.
    """

    def readers(self) -> Sequence[ReaderInfo]:
        """The current reader table (at most 16 readers), kept current by the backend."""
        ...

    async def wait_for_reader_change(self) -> None:
        """Return when the reader table changes (a reader or card comes or goes)."""
        ...

    async def establish_context(self, scope: int) -> bytes:
        """SCardEstablishContext; returns the backend's opaque context."""
        ...

    async def release_context(self, context: bytes) -> None:
        """SCardReleaseContext."""
        ...

    async def cancel(self, context: bytes) -> None:
        """SCardCancel: end a blocking call on ``context`` (the backend side only)."""
        ...

    async def connect(
        self, context: bytes, reader: str, share_mode: int, preferred_protocols: int
    ) -> tuple[bytes, int]:
        """SCardConnect; returns (opaque card handle, active protocol)."""
        ...

    async def reconnect(
        self, handle: bytes, share_mode: int, preferred_protocols: int, initialization: int
    ) -> int:
        """SCardReconnect; returns the active protocol."""
        ...

    async def disconnect(self, handle: bytes, disposition: int) -> None:
        """SCardDisconnect."""
        ...

    async def begin_transaction(self, handle: bytes) -> None:
        """SCardBeginTransaction."""
        ...

    async def end_transaction(self, handle: bytes, disposition: int) -> None:
        """SCardEndTransaction."""
        ...

    async def transmit(
        self, handle: bytes, protocol: int, apdu: bytes, max_response: int
    ) -> tuple[int, bytes]:
        """SCardTransmit; returns (receive PCI protocol, response bytes)."""
        ...

    async def control(
        self, handle: bytes, control_code: int, data: bytes, max_response: int
    ) -> bytes:
        """SCardControl with a pcsc-lite control code."""
        ...

    async def status(self, handle: bytes) -> CardStatus:
        """SCardStatus."""
        ...

    async def get_attrib(self, handle: bytes, attribute: int, max_length: int) -> bytes:
        """SCardGetAttrib."""
        ...

    async def set_attrib(self, handle: bytes, attribute: int, value: bytes) -> None:
        """SCardSetAttrib."""
        ...


TransmitOutcome = tuple[int, bytes] | ScardError
"""What a started transmit ends with: (receive PCI protocol, response) or the error."""


@runtime_checkable
class StartsTransmit(Protocol):
    """A backend that can also start a transmit without a task (the hot path).

    The socket adapter answers a program's SCardTransmit from the callback,
    in the same event loop step that brought the client's reply, instead of
    waking a task for it.
    """

    def start_transmit(
        self,
        handle: bytes,
        protocol: int,
        apdu: bytes,
        max_response: int,
        done: Callable[[TransmitOutcome], None],
    ) -> None:
        """Send the transmit; ``done`` is called exactly once, later, with its outcome.

        Raises :class:`ScardError` at once when the call cannot be sent.
        """
        ...
