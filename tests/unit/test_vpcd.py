"""The vpcd connector: framing, controls, stop and reconnection, against a fake vpcd driver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.card.vpcd import (
    Control,
    TrivialCard,
    handle_message,
    serve_card_in_thread,
    serve_card_to_vpcd,
)

SELECT = bytes.fromhex("00A4040009A0000003080000100000")


class RecordingCard(TrivialCard):
    def __init__(self) -> None:
        super().__init__(b"\x3b\x00")
        self.events: list[str] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.events.append("apdu " + apdu.hex())
        return b"\x90\x00"

    def power_on(self) -> bytes:
        self.events.append("on")
        return self.atr

    def power_off(self) -> None:
        self.events.append("off")

    def reset(self) -> bytes:
        self.events.append("reset")
        return self.atr


def test_handle_message_controls_and_apdus() -> None:
    card = RecordingCard()
    assert handle_message(card, bytes([Control.POWER_ON])) is None
    assert handle_message(card, bytes([Control.GET_ATR])) == b"\x3b\x00"
    assert handle_message(card, bytes([Control.RESET])) is None
    assert handle_message(card, bytes([Control.POWER_OFF])) is None
    assert handle_message(card, b"\x09") is None  # unknown control: ignored
    assert handle_message(card, b"") is None
    assert handle_message(card, b"\x00\xa4\x04\x00") == b"\x90\x00"
    assert card.events == ["on", "reset", "off", "apdu 00a40400"]


def test_trivial_card() -> None:
    card = TrivialCard()
    assert card.transmit(b"\x00\x01\x02\x03") == b"\x90\x00"
    assert card.power_on() == card.atr == card.reset()


class FakeVpcd:
    """The reader side: a TCP server that writes length and body separately, as vpcd does."""

    def __init__(self) -> None:
        self.connected: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue())
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        async def accept(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await self.connected.put((r, w))

        self.server = await asyncio.start_server(accept, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def exchange(r: asyncio.StreamReader, w: asyncio.StreamWriter,
                   message: bytes, answer: bool = True) -> bytes | None:
    w.write(len(message).to_bytes(2, "big"))
    await w.drain()
    await asyncio.sleep(0.001)
    w.write(message)
    await w.drain()
    if not answer:
        return None
    size = int.from_bytes(await asyncio.wait_for(r.readexactly(2), 5), "big")
    return await asyncio.wait_for(r.readexactly(size), 5)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 20))


def test_serve_select_and_stop_removes_card(monkeypatch: pytest.MonkeyPatch) -> None:
    sockets: list[Any] = []
    real_open = asyncio.open_connection

    async def spy(*args: Any, **kw: Any) -> Any:
        reader, writer = await real_open(*args, **kw)
        sockets.append(writer.get_extra_info("socket"))
        return reader, writer

    monkeypatch.setattr(asyncio, "open_connection", spy)

    async def main() -> None:
        fake = FakeVpcd()
        await fake.start()
        card = VirtualPivCard(CardState.new(serial=1))
        stop = asyncio.Event()
        task = asyncio.create_task(serve_card_to_vpcd(card, "127.0.0.1", fake.port, stop=stop))
        r, w = await asyncio.wait_for(fake.connected.get(), 5)
        assert await exchange(r, w, bytes([Control.GET_ATR])) == card.atr
        await exchange(r, w, bytes([Control.POWER_ON]), answer=False)
        response = await exchange(r, w, SELECT)
        assert response is not None and response[0] == 0x61 and response[-2:] == b"\x90\x00"
        sock = sockets[0]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        stop.set()
        assert await asyncio.wait_for(r.read(), 5) == b""  # closed: card removed
        await asyncio.wait_for(task, 5)
        w.close()
        await fake.close()

    run(main)


def test_retry_until_the_reader_appears_and_after_it_goes() -> None:
    async def main() -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        card = RecordingCard()
        stop = asyncio.Event()
        task = asyncio.create_task(serve_card_to_vpcd(card, "127.0.0.1", port, stop=stop))
        await asyncio.sleep(0.3)  # refused attempts meanwhile
        fake = FakeVpcd()
        await fake.start(port)
        r, w = await asyncio.wait_for(fake.connected.get(), 5)
        assert await exchange(r, w, b"\x00\x20\x00\x80") == b"\x90\x00"
        w.close()  # the reader goes away: the card powers off and reconnects
        r2, w2 = await asyncio.wait_for(fake.connected.get(), 5)
        assert "off" in card.events
        assert await exchange(r2, w2, bytes([Control.GET_ATR])) == card.atr
        stop.set()
        await asyncio.wait_for(task, 5)
        w2.close()
        await fake.close()

    run(main)


def test_no_retry() -> None:
    async def main() -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with pytest.raises(OSError):
            await serve_card_to_vpcd(TrivialCard(), "127.0.0.1", port, retry=False)
        fake = FakeVpcd()
        await fake.start()
        task = asyncio.create_task(
            serve_card_to_vpcd(TrivialCard(), "127.0.0.1", fake.port, retry=False))
        _r, w = await asyncio.wait_for(fake.connected.get(), 5)
        w.close()
        await asyncio.wait_for(task, 5)  # returns when the reader closes
        await fake.close()

    run(main)


def test_serve_in_thread() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]
    thread, removed = serve_card_in_thread(TrivialCard(), "127.0.0.1", port)
    conn, _ = listener.accept()
    conn.settimeout(5)
    conn.sendall(b"\x00\x04\x00\xa4\x04\x00")
    assert conn.recv(16) == b"\x00\x02\x90\x00"
    removed.set()
    assert conn.recv(16) == b""
    thread.join(5)
    assert not thread.is_alive()
    conn.close()
    listener.close()
