"""One client address cannot lock everyone else out, and nobody holds a slot forever.

The server listens on 127.0.0.1; attackers connect from other loopback
addresses (127.0.0.2, ...: the whole of 127/8 is local on Linux, so a
socket bound to one of them reaches 127.0.0.1), each test from its own.
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.pdu.x224 import FailureCode
from rdscard.protocol.connector import ConnectorState
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.rdp.raw_client import client_socket, connect, negotiate

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT = 8
LOGON_TIMEOUT = 8
PER_ADDRESS = 20
RATE = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("slots")
    config = root / "rdscard.toml"
    config.write_text(f"[server]\nconnect_timeout = {CONNECT_TIMEOUT}\n"
                      f"logon_timeout = {LOGON_TIMEOUT}\n"
                      f"max_connections_per_address = {PER_ADDRESS}\n"
                      f"connection_rate = {RATE}\n")
    process = ServerProcess(root / "state", ("--config", str(config)))
    yield process
    process.stop()


def refusals(server: ServerProcess, address: str) -> list[str]:
    return [line for line in server.log.splitlines()
            if f"refused a connection from {address}:" in line]


def test_a_thousand_idle_connections_do_not_lock_out_another_address(
    server: ServerProcess,
) -> None:
    idle: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = socket.socket()
            sock.settimeout(10)
            sock.bind(("127.0.0.2", 0))
            sock.connect(("127.0.0.1", server.port))
            idle.append(sock)

        async def victim() -> int:
            client, _reader, writer = await connect(server.port, "127.0.0.1")
            writer.transport.abort()
            return client.fastpath_frames

        assert asyncio.run(victim()) > 0, "the logon screen should reach the other address"
        assert "127.0.0.1" in server.log
    finally:
        for sock in idle:
            sock.close()
    lines = refusals(server, "127.0.0.2")
    print(f"\n1000 connections from 127.0.0.2: {len(lines)} refusal log lines")
    assert 1 <= len(lines) <= 3, lines  # rate-limited: not one line per refused connection
    assert "max_connections_per_address" in lines[0]


def test_the_per_address_limit_refuses_with_a_negotiation_failure(
    server: ServerProcess,
) -> None:
    held = [client_socket(server.port, "127.0.0.3") for _ in range(PER_ADDRESS)]

    async def one_more() -> tuple[ConnectorState, int | None]:
        client, _reader, writer = await negotiate(server.port, "127.0.0.3")
        writer.close()
        return client.state, client.negotiation_failure

    try:
        state, failure = asyncio.run(one_more())
    finally:
        for sock in held:
            sock.close()
    assert state is ConnectorState.CLOSED
    assert failure == FailureCode.SSL_CERT_NOT_ON_SERVER
    assert server.wait_for_log(r"refused a connection from 127\.0\.0\.3: .*"
                               r"max_connections_per_address.*sent RDP_NEG_FAILURE")


def test_the_connection_rate_refuses_with_a_negotiation_failure(server: ServerProcess) -> None:
    async def attempts() -> list[int | None]:
        failures = []
        for _ in range(RATE + 1):
            client, reader, writer = await negotiate(server.port, "127.0.0.4")
            failures.append(client.negotiation_failure)
            writer.close()
            await reader.read()  # the server has let go of it
        return failures

    failures = asyncio.run(attempts())
    assert failures[:RATE] == [None] * RATE  # each got its Connection Confirm
    assert failures[RATE] == FailureCode.SSL_CERT_NOT_ON_SERVER
    assert server.wait_for_log(r"refused a connection from 127\.0\.0\.4: .*connection_rate")


def test_a_stalled_tls_handshake_ends_at_the_connect_timeout(server: ServerProcess) -> None:
    async def stall() -> bytes:
        client, reader, writer = await negotiate(server.port, "127.0.0.5")
        assert client.state is ConnectorState.AWAIT_TLS
        try:  # never start TLS; asyncio's own handshake timeout would be 60 s
            return await asyncio.wait_for(reader.read(), CONNECT_TIMEOUT + 30)
        finally:
            writer.transport.abort()

    assert asyncio.run(stall()) == b""
    assert server.wait_for_log(
        rf"did not finish connecting within {CONNECT_TIMEOUT} s \(stuck in security upgrade"
    ), server.log[-3000:]


def test_a_client_parked_at_the_logon_screen_is_ended_with_logon_timeout(
    server: ServerProcess,
) -> None:
    with VirtualScreen(1088, 832) as screen:
        client = XFreeRdp(screen, "127.0.0.1", server.port, size=(1024, 768))
        try:
            assert wait_for(lambda: client.process.poll() is not None,
                            timeout=LOGON_TIMEOUT + 40), client.output()
            output = client.output()
        finally:
            client.close()
    assert "ERRINFO_LOGON_TIMEOUT" in output, output
    assert server.wait_for_log(r"no sign-in within 8 s \(server\.logon_timeout\)")


def test_a_full_server_ends_the_oldest_anonymous_connection_for_a_newcomer(
    tmp_path: Path,
) -> None:
    """Idle connections spread over many addresses fill max_connections: a newcomer still
    gets in, at the expense of the oldest connection that never signed in."""
    config = tmp_path / "rdscard.toml"
    config.write_text("[server]\nmax_connections = 30\nconnect_timeout = 60\n")
    server = ServerProcess(tmp_path / "state", ("--config", str(config)))
    idle: list[socket.socket] = []
    try:
        for index in range(30):  # two addresses, within their per-address limit
            idle.append(client_socket(server.port, f"127.0.1.{2 + index // 15}"))
        assert wait_for(lambda: server.log.count("connection from 127.0.1.") >= 30, 10)
        asyncio.run(asyncio.sleep(2.5))  # older than a connection still connecting

        async def newcomer() -> int:
            client, _reader, writer = await connect(server.port, "127.0.1.9")
            writer.transport.abort()
            return client.fastpath_frames

        assert asyncio.run(newcomer()) > 0, server.log[-3000:]
        assert "ended the oldest connection that never signed in" in server.log
        readable, _, _ = select.select(idle, [], [], 5)
        assert readable and readable[0].recv(1) == b""  # the evicted one: closed
    finally:
        for sock in idle:
            sock.close()
        server.stop()
