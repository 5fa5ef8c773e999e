"""OutputGuard on real loopback transports (plain and TLS, asyncio's loop and uvloop)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from rdscard.server.backpressure import OutputGuard
from rdscard.server.stream_protocol import DirectStreamProtocol, start_direct_server, start_tls
from rdscard.server.tls import ensure_server_certificate, server_ssl_context

PAUSE = 256 * 1024
DROP = 1024 * 1024
CHUNK = 64 * 1024

Scenario = Callable[[OutputGuard, asyncio.StreamWriter, asyncio.StreamReader], Awaitable[None]]
LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def run(tmp_path: Path, loop_name: str, tls: bool, scenario: Scenario) -> list[int]:
    """Serve one connection guarded by an OutputGuard; the client side is ``scenario``'s."""
    drops: list[int] = []

    async def main() -> None:
        done = asyncio.Event()
        server_context = None
        if tls:
            cert = ensure_server_certificate(tmp_path, None, None, "guard.test")
            server_context = server_ssl_context(cert)
        guards: asyncio.Queue[OutputGuard] = asyncio.Queue()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           protocol: DirectStreamProtocol) -> None:
            protocol.end_guard()  # the stream lane, as after a Client Info
            await reader.readexactly(1)
            if server_context is not None:
                writer.write(b"T")
                await start_tls(writer, protocol, server_context, handshake_timeout=10)
            guard = OutputGuard(writer, protocol.raw_transport, pause_at=PAUSE, drop_at=DROP,
                                on_drop=drops.append)
            guards.put_nowait(guard)
            await done.wait()
            guard.stop()
            writer.transport.abort()

        server = await start_direct_server(accepted, "127.0.0.1", 0, limit=1 << 20)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"S")
        if tls:
            await reader.readexactly(1)
            client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client_context.check_hostname = False
            client_context.verify_mode = ssl.CERT_NONE
            await writer.start_tls(client_context)
        guard = await guards.get()
        try:
            await scenario(guard, guard.writer, reader)
        finally:
            done.set()
            writer.transport.abort()
            server.close()
            await asyncio.sleep(0.05)

    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return drops


CASES = [(name, tls) for name in LOOPS for tls in (False, True)]


@pytest.mark.parametrize(("loop_name", "tls"), CASES)
def test_a_reader_that_stops_pauses_input_then_is_dropped(
    tmp_path: Path, loop_name: str, tls: bool
) -> None:
    async def scenario(guard: OutputGuard, out: asyncio.StreamWriter,
                       _peer: asyncio.StreamReader) -> None:
        written = 0
        while not guard.paused and written < 256 * 1024 * 1024:
            out.write(b"x" * CHUNK)
            written += CHUNK
            assert guard.check()
            await asyncio.sleep(0)
        assert guard.paused and not guard.dropped
        assert guard.buffered() > PAUSE
        # Output that needs no input (the desktop, the session's smart card programs) goes on.
        while guard.check():
            out.write(b"x" * CHUNK)
        assert guard.dropped and not guard.paused
        assert out.transport.is_closing()
        assert guard.peak <= DROP + CHUNK + 64 * 1024  # one write (and a TLS record) past

    drops = run(tmp_path, loop_name, tls, scenario)
    assert len(drops) == 1 and drops[0] > DROP


@pytest.mark.parametrize(("loop_name", "tls"), CASES)
def test_reading_resumes_once_the_client_has_read(
    tmp_path: Path, loop_name: str, tls: bool
) -> None:
    async def scenario(guard: OutputGuard, out: asyncio.StreamWriter,
                       peer: asyncio.StreamReader) -> None:
        written = 0
        while not guard.paused:
            out.write(b"x" * CHUNK)
            written += CHUNK
            guard.check()
            await asyncio.sleep(0)
        await peer.readexactly(written)  # the client catches up
        for _ in range(400):
            if not guard.paused:
                break
            await asyncio.sleep(0.05)
        assert not guard.paused and not guard.dropped
        assert guard.buffered() <= guard.resume_at

    assert run(tmp_path, loop_name, tls, scenario) == []
