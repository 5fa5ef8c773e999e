"""The session's pcsc-lite socket: private directory, peer check, requests, shutdown.

Real UNIX sockets with the in-memory backend of the unit tests behind them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rdscard.pdu.pcsclite import Command, Connect, EstablishContext, Transmit, Version
from rdscard.pdu.pcsclite_framing import PcscRequest
from rdscard.redirect.pcsclite_service import PcscliteService
from rdscard.server.pcsc_socket import PcscSocketServer
from tests.unit.test_pcsclite_service import READER, FakeBackend

pytestmark = pytest.mark.integration
C = Command



def _owner() -> tuple[int, int]:
    return (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())


async def _exchange(path: Path, request: bytes, size: int) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readexactly(size), 5)
    finally:
        writer.close()


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What arrives before the server closes the connection (a reset counts as closed)."""
    try:
        return await asyncio.wait_for(reader.read(100), 5)
    except ConnectionResetError:
        return b""


def test_socket_directory_mode_owner_environment_and_a_request(tmp_path: Path) -> None:
    async def main() -> None:
        uid, gid = _owner()
        server = PcscSocketServer(PcscliteService(FakeBackend()), tmp_path / "s1", uid, gid)
        async with server:
            info = os.stat(server.directory)
            assert stat.S_IMODE(info.st_mode) == 0o700 and (info.st_uid, info.st_gid) == (uid, gid)
            assert stat.S_ISSOCK(os.stat(server.socket_path).st_mode)
            assert server.env == {"PCSCLITE_CSOCK_NAME": str(tmp_path / "s1" / "pcscd.comm")}
            request = PcscRequest(C.CMD_VERSION, Version(4, 4)).encode()
            reply = await _exchange(server.socket_path, request, 12)
            assert Version.decode(reply) == Version(4, 4, 0)
        assert not server.directory.exists()

    asyncio.run(main())


def test_socket_refuses_other_users_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        uid, gid = _owner()
        service = PcscliteService(FakeBackend())
        async with PcscSocketServer(service, tmp_path / "s2", uid, gid,
                                    credentials=lambda sock: (4242, 12345, 12345)) as server:
            reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
            writer.write(PcscRequest(C.CMD_VERSION, Version(4, 4)).encode())
            assert await _read_until_closed(reader) == b""  # closed, no reply
            writer.close()
            assert server.refused == 1 and service.connections == ()

    with caplog.at_level(logging.WARNING, logger="rdscard.server.pcsc"):
        asyncio.run(main())
    assert "uid 12345 pid 4242" in caplog.text


def test_closing_the_socket_ends_pending_calls_and_releases_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        uid, gid = _owner()
        backend = FakeBackend()
        service = PcscliteService(backend)
        server = PcscSocketServer(service, tmp_path / "s3", uid, gid)
        await server.start()
        reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
        writer.write(PcscRequest(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2)).encode())
        ctx = EstablishContext.decode(await reader.readexactly(12)).h_context
        writer.write(PcscRequest(C.SCARD_CONNECT, Connect(ctx, READER, 2, 3)).encode())
        h = Connect.decode(await reader.readexactly(152)).h_card
        backend.gate["transmit"] = asyncio.Event()  # never set: the call stays pending
        writer.write(PcscRequest(C.SCARD_TRANSMIT, Transmit(h, 2, 16, 1, 2, 16, 2), b"\0").encode())
        while "transmit" not in backend.names():
            await asyncio.sleep(0.01)
        await server.close()
        assert await _read_until_closed(reader) == b""  # the program sees the end
        writer.close()
        assert ("disconnect", (b"card-2", 0)) in backend.calls
        assert ("release_context", (b"ctx-1",)) in backend.calls
        assert service.connections == () and not server.directory.exists()
        await service.close()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.name == "asyncio"]  # no cancelled-task noise


def test_the_local_service_says_why_when_there_is_no_pcscd(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rdscard.redirect.local_backend", "--socket-dir",
         str(tmp_path / "session")],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "missing" / "pcscd.comm")},
    )
    assert result.returncode == 1
    assert "cannot use the local pcscd" in result.stderr and "0x8010001D" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "session").exists()


def test_connections_over_the_session_limit_are_closed_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        uid, gid = _owner()
        service = PcscliteService(FakeBackend(), max_connections=2)
        async with PcscSocketServer(service, tmp_path / "s4", uid, gid) as server:
            request = PcscRequest(C.CMD_VERSION, Version(4, 4)).encode()
            held = [await asyncio.open_unix_connection(str(server.socket_path))
                    for _ in range(2)]
            for reader, writer in held:
                writer.write(request)
                assert Version.decode(await reader.readexactly(12)).rv == 0
            reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
            writer.write(request)
            assert await _read_until_closed(reader) == b""  # over the limit: closed
            writer.close()
            assert server.over_limit == 1 and len(service.connections) == 2
            held[0][1].close()  # one program leaves: a new one is served again
            while len(service.connections) == 2:
                await asyncio.sleep(0.01)
            assert Version.decode(await _exchange(server.socket_path, request, 12)).rv == 0
            for _, w in held[1:]:
                w.close()

    with caplog.at_level(logging.WARNING, logger="rdscard.server.pcsc"):
        asyncio.run(main())
    assert "max_program_connections" in caplog.text
