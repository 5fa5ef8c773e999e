"""Redirection holds up against a greedy program and a misbehaving client.

- 3,000 context establishments from one session leave the client's own
  pcscd usable: the session's contexts stop at ``[redirection]
  max_contexts`` (SCARD_E_NO_MEMORY from rdscard, never forwarded), and the
  contexts of programs that exit are released on the client.
- A bad reply injected into the live rdpdr channel of a real session is
  dropped; the session's programs keep using the card.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rdscard.config import Config, RedirectionConfig, ServerConfig, SessionsConfig
from rdscard.pdu.pcsclite import (
    Command,
    Connect,
    EstablishContext,
    ScardError,
    Transmit,
    Version,
)
from rdscard.pdu.rdpdr_io import DeviceControlResponse
from rdscard.server.channels import ChannelContext
from rdscard.server.listener import RdpServer
from rdscard.server.smartcard_channel import SmartCardChannel, smart_card_channel_factory
from rdscard.testbed.cards import CardInThread
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.pcsclite_client import PeerClosedError, WireClient
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import READER_0, CardFile, insert
from tests.integration.sessioncard.conftest import RedirectedSession

pytestmark = pytest.mark.integration
C = Command
SELECT_PIV = bytes.fromhex("00a4040009a0000003080000100000")
PROGRAMS = 200
CONTEXTS_PER_PROGRAM = 15  # 200 x 15 = 3,000 establishments


def select(path: Path | str) -> tuple[int, bytes]:
    """A program's whole use of the card: context, connect, SELECT PIV; (rv, SW)."""
    with WireClient(path) as client:
        client.call(C.CMD_VERSION, Version(4, 4))
        context, _ = client.call(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
        if context.rv:
            return context.rv, b""
        card, _ = client.call(C.SCARD_CONNECT, Connect(context.h_context, READER_0, 2, 3))
        if card.rv:
            return card.rv, b""
        reply, data = client.call(C.SCARD_TRANSMIT, Transmit(card.h_card, 2, 8, len(SELECT_PIV),
                                                             2, 8, 258), SELECT_PIV)
        return reply.rv, data[-2:]


def test_thousands_of_contexts_from_a_session_leave_the_clients_pcscd_usable(
    redirected: RedirectedSession,
) -> None:
    programs: list[WireClient] = []
    results: dict[str, int] = {"granted": 0, "no_memory": 0, "other": 0, "hung_up": 0}
    try:
        for _ in range(PROGRAMS):
            try:
                program = WireClient(redirected.socket)
                programs.append(program)
                program.call(C.CMD_VERSION, Version(4, 4))
            except PeerClosedError:  # over max_program_connections: closed at once
                results["hung_up"] += CONTEXTS_PER_PROGRAM
                continue
            for _ in range(CONTEXTS_PER_PROGRAM):
                reply, _ = program.call(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
                key = {0: "granted", ScardError.SCARD_E_NO_MEMORY: "no_memory"}.get(reply.rv,
                                                                                    "other")
                results[key] += 1
        assert sum(results.values()) == PROGRAMS * CONTEXTS_PER_PROGRAM
        assert results["granted"] == 32 and results["other"] == 0, results  # the default limit
        # The user's own computer still has its card: pcscd there serves a new program.
        assert select(redirected.pcscd.env["PCSCLITE_CSOCK_NAME"]) == (0, b"\x90\x00")
        # One more program of the session: over max_program_connections (64), hung up on,
        # not left waiting.
        assert results["hung_up"] == (PROGRAMS - 64) * CONTEXTS_PER_PROGRAM
        with pytest.raises(PeerClosedError):
            select(redirected.socket)
    finally:
        for program in programs:
            program.close()
    # The programs are gone: their contexts are released on the client and new programs work.
    def works() -> bool:
        try:
            return select(redirected.socket) == (0, b"\x90\x00")
        except PeerClosedError:  # the old connections are still being released
            return False

    assert wait_for(works, timeout=30), redirected.server.log[-3000:]
    # and, once every release has reached the client, the whole limit is free again
    def whole_limit() -> bool:
        with WireClient(redirected.socket) as a, WireClient(redirected.socket) as b:
            granted = 0
            for program in (a, b):
                program.call(C.CMD_VERSION, Version(4, 4))
                for _ in range(16):
                    reply, _ = program.call(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
                    granted += reply.rv == 0
            return granted == 32

    assert wait_for(whole_limit, timeout=30)
    assert select(redirected.pcscd.env["PCSCLITE_CSOCK_NAME"]) == (0, b"\x90\x00")
    assert "refused (SCARD_E_NO_MEMORY)" in redirected.server.log


# -- a bad reply injected into a live session's rdpdr channel -----------------------------


class InProcessServer:
    """``RdpServer`` in a thread of the test, its smart card channels kept for the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = Config(
            server=ServerConfig(state_dir=tmp_path / "state"),
            redirection=RedirectionConfig(socket_dir=tmp_path / "run"),
            sessions=SessionsConfig(enabled=False),
        ).with_overrides(listen="127.0.0.1:0")
        self.channels: list[SmartCardChannel] = []
        self.loop = asyncio.new_event_loop()
        self.server = RdpServer(self.config)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        await self.server.start()
        assert self.server.context is not None
        factory = smart_card_channel_factory(self.config.redirection)

        def keep(context: ChannelContext) -> Any:
            channel = factory(context)
            assert isinstance(channel, SmartCardChannel)
            self.channels.append(channel)
            return channel

        self.server.context.channel_factories["rdpdr"] = keep

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def close(self) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[InProcessServer]:
    server = InProcessServer(tmp_path)
    try:
        yield server
    finally:
        server.close()


def test_a_bad_reply_in_a_live_session_is_dropped_and_the_card_keeps_working(
    in_process: InProcessServer, pcscd: IsolatedPcscd, rsa_card: CardFile,
) -> None:
    card: CardInThread = insert(rsa_card.card(), pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", in_process.server.port, extra_args=["/smartcard"],
                      env=pcscd.env)
    try:
        assert wait_for(lambda: any(c.socket is not None and c.socket.socket_path.exists()
                                    for c in in_process.channels), timeout=30), client.output()
        channel = in_process.channels[0]
        assert channel.socket is not None and channel.device_id is not None
        socket_path = channel.socket.socket_path
        assert select(socket_path) == (0, b"\x90\x00")

        async def inject() -> None:
            assert channel.device_id is not None
            stray = DeviceControlResponse(channel.device_id, 0x7FFF0000, 0, b"\0" * 8).encode()
            channel.on_data(stray)  # a CompletionId nothing waits for
            oversized = stray[:16] + (0x40000000).to_bytes(4, "little") + stray[20:]
            channel.on_data(oversized)  # an OutputBufferLength far past the message

        in_process.run(inject())
        assert channel.machine.bad_completions == 2
        assert select(socket_path) == (0, b"\x90\x00")  # redirection goes on
    finally:
        client.close()
        screen.close()
        card.remove()
