"""Serve a card object to a vpcd virtual reader (vsmartcard's pcscd driver).

The card is a TCP client of the driver. Each message, both ways, is a
2-byte big-endian length and a payload. A 1-byte payload from the reader
is a control: 0 power off, 1 power on, 2 reset, 4 get ATR (answered with
the ATR); a longer one is a command APDU, answered with the response APDU.
Closing the connection removes the card. The driver writes the length and
the body separately, so the socket runs with TCP_NODELAY and TCP_QUICKACK
re-armed before each read; without them every exchange waits for Nagle and
delayed acknowledgements (tens of milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from enum import IntEnum
from typing import Final, Protocol

from rdscard.card.constants import YUBIKEY_ATR

log = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 35963
RETRY_DELAY: Final = 0.2
_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)


class Control(IntEnum):
    """One-byte control messages from the vpcd driver."""

    POWER_OFF = 0
    POWER_ON = 1
    RESET = 2
    GET_ATR = 4


class VpcdCard(Protocol):
    """What a card must offer to sit in a vpcd reader."""

    @property
    def atr(self) -> bytes: ...

    def transmit(self, apdu: bytes) -> bytes: ...

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    def reset(self) -> bytes: ...


class TrivialCard:
    """A card that answers 90 00 to everything: the baseline for latency measurements."""

    def __init__(self, atr: bytes = YUBIKEY_ATR) -> None:
        self._atr = atr

    @property
    def atr(self) -> bytes:
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        return b"\x90\x00"

    def power_on(self) -> bytes:
        return self._atr

    def power_off(self) -> None:
        pass

    def reset(self) -> bytes:
        return self._atr


def handle_message(card: VpcdCard, message: bytes) -> bytes | None:
    """The reply to one message from the reader, or None when none is due."""
    if len(message) == 1:
        control = message[0]
        if control == Control.POWER_OFF:
            card.power_off()
        elif control == Control.POWER_ON:
            card.power_on()
        elif control == Control.RESET:
            card.reset()
        elif control == Control.GET_ATR:
            return card.atr
        else:
            log.warning("unknown vpcd control %d ignored", control)
        return None
    if not message:
        return None
    return card.transmit(message)


def _quickack(sock: socket.socket | None) -> None:
    if sock is not None and _QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


async def _serve_connection(card: VpcdCard, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        _quickack(sock)
        header = await reader.readexactly(2)
        size = int.from_bytes(header, "big")
        _quickack(sock)
        message = await reader.readexactly(size) if size else b""
        answer = handle_message(card, message)
        if answer is not None:
            writer.write(len(answer).to_bytes(2, "big") + answer)
            await writer.drain()


async def serve_card_to_vpcd(card: VpcdCard, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                             *, stop: asyncio.Event | None = None, retry: bool = True) -> None:
    """Insert ``card`` into the vpcd reader at ``host:port`` until ``stop`` is set.

    With ``retry`` the card keeps trying to connect (and reconnects when the
    reader goes away) until ``stop`` is set; without it a refused or lost
    connection ends the call (a refused one raises ``OSError``). Setting
    ``stop`` closes the connection, which the reader sees as card removal.
    """
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            if not retry:
                raise
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_DELAY)
            continue
        log.info("card inserted into the vpcd reader at %s:%d", host, port)
        watcher = asyncio.create_task(_close_on(stop, writer))
        try:
            await _serve_connection(card, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            watcher.cancel()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            card.power_off()
        log.info("card removed from the vpcd reader at %s:%d", host, port)
        if not retry:
            return
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_DELAY)


async def _close_on(stop: asyncio.Event, writer: asyncio.StreamWriter) -> None:
    await stop.wait()
    writer.close()


def serve_card_in_thread(card: VpcdCard, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                         *, retry: bool = True) -> tuple[threading.Thread, threading.Event]:
    """Run :func:`serve_card_to_vpcd` in a daemon thread; set the returned event to remove."""
    removed = threading.Event()

    def run() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()

            def wait_removed() -> None:
                removed.wait()
                with contextlib.suppress(RuntimeError):  # the loop already ended
                    loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=wait_removed, daemon=True).start()
            await serve_card_to_vpcd(card, host, port, stop=stop, retry=retry)

        asyncio.run(main())

    thread = threading.Thread(target=run, name=f"vpcd-card-{port}", daemon=True)
    thread.start()
    return thread, removed
