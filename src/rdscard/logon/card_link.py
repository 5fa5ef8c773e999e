"""The logon service's own line to the session's redirected card.

The logon service (the project's LSA) talks to the card directly through
the session's :class:`SmartCardBackend`, never through the session's
socket: no program of the session can see or spoof its APDUs (with
privilege separation each APDU crosses the monitor IPC to the network
process that holds the backend).
PIV host code (:class:`rdscard.pki.piv_client.PivClient`) is synchronous,
so it runs in a worker thread and :class:`BackendTransport` carries each
APDU to the event loop that owns the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from rdscard.pki.transport import TransportError
from rdscard.redirect.backend import ReaderInfo, ScardError, SmartCardBackend
from rdscard.redirect.translate import PCSC_PRESENT, PCSC_T0, PCSC_T1

SCARD_SCOPE_SYSTEM = 2
SCARD_SHARE_SHARED = 2
SCARD_RESET_CARD = 1
MAX_RESPONSE = 65538


class CardLinkError(TransportError):
    """The card could not be reached (no reader, no card, removed, client gone)."""


@dataclass
class CardLink:
    """An open connection to one card: context and handle on the backend."""

    backend: SmartCardBackend
    reader: str
    context: bytes
    handle: bytes
    protocol: int


def readers_with_card(readers: Sequence[ReaderInfo]) -> list[ReaderInfo]:
    """The readers that hold a card, in table order."""
    return [r for r in readers if r.state & PCSC_PRESENT]


async def wait_for_card(backend: SmartCardBackend, timeout: float) -> list[ReaderInfo]:
    """Wait up to ``timeout`` seconds for at least one reader with a card."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = readers_with_card(backend.readers())
        if found:
            return found
        remaining = deadline - loop.time()
        if remaining <= 0:
            return []
        try:
            async with asyncio.timeout(remaining):
                await backend.wait_for_reader_change()
        except TimeoutError:
            return []


async def open_card(backend: SmartCardBackend, reader: str) -> CardLink:
    """Connect to the card in ``reader`` (shared, T=0 or T=1)."""
    try:
        context = await backend.establish_context(SCARD_SCOPE_SYSTEM)
        handle, protocol = await backend.connect(
            context, reader, SCARD_SHARE_SHARED, PCSC_T0 | PCSC_T1
        )
    except ScardError as exc:
        raise CardLinkError(f"cannot connect to the card in {reader!r}: {exc}") from None
    return CardLink(backend, reader, context, handle, protocol)


async def close_card(link: CardLink) -> None:
    """Disconnect with a card reset, then release; errors are ignored (the card may be gone).

    The reset ends the PIN verification of the sign-in: no program of the
    session inherits it.
    """
    with contextlib.suppress(ScardError):
        await link.backend.disconnect(link.handle, SCARD_RESET_CARD)
    with contextlib.suppress(ScardError):
        await link.backend.release_context(link.context)


class BackendTransport:
    """A synchronous ``transmit(apdu) -> response`` for a worker thread, over a CardLink."""

    def __init__(self, link: CardLink, loop: asyncio.AbstractEventLoop,
                 timeout: float = 30.0) -> None:
        self.link = link
        self.loop = loop
        self.timeout = timeout

    def transmit(self, apdu: bytes) -> bytes:
        """Send one APDU from the worker thread; raises CardLinkError when the card is gone."""
        future = asyncio.run_coroutine_threadsafe(
            self.link.backend.transmit(self.link.handle, self.link.protocol, apdu, MAX_RESPONSE),
            self.loop,
        )
        try:
            _, response = future.result(self.timeout)
        except ScardError as exc:
            reason = f"the card in {self.link.reader!r} stopped answering: {exc}"
            raise CardLinkError(reason) from None
        except TimeoutError:
            future.cancel()
            reason = f"the card in {self.link.reader!r} did not answer in time"
            raise CardLinkError(reason) from None
        return response
