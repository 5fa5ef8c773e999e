"""DirectStreamProtocol's guarded lane on real loopback transports (asyncio and uvloop, TLS)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import uvloop

from rdscard.server.stream_protocol import DirectStreamProtocol, start_direct_server, start_tls
from rdscard.server.tls import ensure_server_certificate, server_ssl_context

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
SECRET = "58213907".encode("utf-16-le")


async def read_guarded(protocol: DirectStreamProtocol, size: int) -> bytes:
    """At least ``size`` guarded bytes, as the connection reads them (a view, then zeroed)."""
    got = b""
    while len(got) < size:
        assert await protocol.guarded_data()
        assert protocol.guarded is not None
        view = protocol.guarded.view()
        storage = view.obj
        got += bytes(view)  # the test's copy: the server hands the view to the acceptor
        view.release()
        protocol.consumed()
        assert isinstance(storage, bytearray) and not any(storage)
    return got


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize("tls", [False, True])
def test_guarded_bytes_come_through_a_wipeable_buffer_then_the_stream(
    tmp_path: Path, loop_name: str, tls: bool
) -> None:
    seen: dict[str, object] = {}

    async def main() -> None:
        done = asyncio.Event()
        context = server_ssl_context(ensure_server_certificate(tmp_path, None, None, "lane.test"))

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           protocol: DirectStreamProtocol) -> None:
            try:
                seen["first"] = await read_guarded(protocol, 1)
                writer.write(b"T")
                if tls:
                    await start_tls(writer, protocol, context, handshake_timeout=10)
                    assert protocol.tls
                seen["secret"] = await read_guarded(protocol, len(SECRET))
                protocol.end_guard()
                assert protocol.guarded is None
                seen["tail"] = await reader.readexactly(4)
                seen["eof"] = await reader.read()
                writer.write(b"K")
                await writer.drain()
            finally:
                done.set()

        server = await start_direct_server(accepted, "127.0.0.1", 0, limit=1 << 16)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"S")
        assert await reader.readexactly(1) == b"T"
        if tls:
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
            await writer.start_tls(client)
        writer.write(SECRET)
        await writer.drain()
        await asyncio.sleep(0.05)  # the secret is read first, alone
        writer.write(b"tail")
        if tls:
            await asyncio.sleep(0.05)
            writer.close()  # close_notify: the end of the TLS stream
        else:
            writer.write_eof()
        async with asyncio.timeout(10):
            await done.wait()
        writer.close()
        server.close()
        await asyncio.sleep(0.05)

    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen["first"] == b"S"
    assert seen["secret"] == SECRET
    assert seen["tail"] == b"tail"
    assert seen["eof"] == b""


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_the_end_of_the_stream_while_guarded_reads_as_zero(loop_name: str) -> None:
    results: list[int] = []

    async def main() -> None:
        done = asyncio.Event()

        async def accepted(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter,
                           protocol: DirectStreamProtocol) -> None:
            results.append(len(await read_guarded(protocol, 2)))
            results.append(await protocol.guarded_data())
            done.set()

        server = await start_direct_server(accepted, "127.0.0.1", 0, limit=1 << 16)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hi")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        async with asyncio.timeout(10):
            await done.wait()
        server.close()

    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert results == [2, 0]
