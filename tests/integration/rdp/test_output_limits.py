"""A client that provokes replies and never reads them cannot fill the server's memory.

Two floods from a client at the logon screen that reads nothing. Refresh
Rect PDUs, each answered with the whole screen: the server must stop
reading the client once ``server.output_pause`` bytes wait, keep serving
others, and end it at the logon timeout. rdpdr device announcements, each
device answered: past 256 devices the channel is given up, and past 8 MiB
received before any sign-in the client is dropped.

"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.pdu.share_data import Rectangle16, RefreshRect
from rdscard.xclient import VirtualScreen, XFreeRdp, logon_screen_visible, wait_for
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.rdp.raw_client import announce_many, connect, rdpdr_ready

pytestmark = pytest.mark.integration

PAUSE = 256 * 1024
LIMIT = 1024 * 1024
LOGON_TIMEOUT = 15
#: What the flood tries to send (the report that started this: 800 MB queued after 150 MB).
FLOOD_BYTES = 150 * 1024 * 1024
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("limits")
    config = root / "rdscard.toml"
    config.write_text(f"[server]\noutput_pause = {PAUSE}\noutput_limit = {LIMIT}\n"
                      f"logon_timeout = {LOGON_TIMEOUT}\n")
    server = ServerProcess(root / "state", ("--config", str(config)))
    yield server
    server.stop()


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) * 1024


def network_pid(server: ServerProcess) -> int:
    found = re.search(r"network process (\d+): running as", server.log)
    return int(found.group(1)) if found else server.process.pid


async def flood(port: int, *, refresh: bool = True) -> tuple[int, asyncio.StreamWriter]:
    """Flood without reading until the server stops taking bytes; returns the bytes sent."""
    client, reader, writer = await connect(port, channels=("rdpdr",), rcvbuf=16384)
    if refresh:
        client.send_share_data(RefreshRect((Rectangle16(0, 0, 1023, 767),)))
    else:
        await rdpdr_ready(client, reader, writer)
        client.send_channel_data("rdpdr", announce_many())
    frame = client.data_to_send()
    sent = 0
    while sent < FLOOD_BYTES:
        writer.write(frame * 16)
        sent += len(frame) * 16
        try:
            await asyncio.wait_for(writer.drain(), 10)
        except TimeoutError:
            break  # the server no longer reads this client
        except ConnectionError:
            break  # the server dropped it
    return sent, writer


def test_client_that_does_not_read_is_paused_and_others_still_connect(
    limited_server: ServerProcess,
) -> None:
    pid = network_pid(limited_server)
    before = rss_bytes(pid)

    async def scenario() -> None:
        sent, writer = await flood(limited_server.port)
        grown = rss_bytes(pid) - before
        print(f"\nflood: sent {sent / MIB:.1f} MiB before the server stopped reading; "
              f"server RSS grew {grown / MIB:.1f} MiB")
        assert sent < 64 * MIB, "the server kept reading a client that reads nothing"
        assert grown < 64 * MIB
        paused = limited_server.wait_for_log(r"reading paused: (\d+) bytes", timeout=30)
        assert paused, limited_server.log[-3000:]
        queued = int(re.search(r"reading paused: (\d+) bytes", paused[0]).group(1))  # type: ignore[union-attr]
        print(f"output queued when reading paused: {queued / 1024:.0f} KiB")

        # Another user connects meanwhile and gets the logon screen.
        with VirtualScreen(1088, 832) as screen:
            other = XFreeRdp(screen, "127.0.0.1", limited_server.port, size=(1024, 768))
            try:
                shown = await asyncio.to_thread(
                    wait_for, lambda: logon_screen_visible(
                        screen.screenshot(), other.window_origin(), 1024, 768), 25)
                assert shown, f"{other.output()}\n{limited_server.log[-3000:]}"
            finally:
                other.close()

        # The flooder never signs in: the logon timeout ends it although it reads nothing.
        ended = await asyncio.to_thread(
            limited_server.wait_for_log, r"disconnecting the client: no sign-in within", 1,
            LOGON_TIMEOUT + 30)
        assert ended, limited_server.log[-3000:]
        sock: socket.socket = writer.get_extra_info("socket")
        deadline = time.monotonic() + 30
        gone = False
        while time.monotonic() < deadline and not gone:
            try:
                writer.write(b"\0" * 65536)
                await asyncio.wait_for(writer.drain(), 1)
            except (ConnectionError, OSError):
                gone = True
            except TimeoutError:
                pass
        assert gone, f"the flooder's connection ({sock}) was not cut"
        writer.transport.abort()
        print(f"server RSS after: {(rss_bytes(pid) - before) / MIB:.1f} MiB above the start")

    asyncio.run(scenario())


def test_an_announcement_flood_loses_its_channel_then_its_connection(
    limited_server: ServerProcess,
) -> None:
    pid = network_pid(limited_server)
    before = rss_bytes(pid)

    async def scenario() -> int:
        sent, writer = await flood(limited_server.port, refresh=False)
        writer.transport.abort()
        return sent

    sent = asyncio.run(scenario())
    grown = rss_bytes(pid) - before
    print(f"\nannouncement flood: {sent / MIB:.1f} MiB sent; server RSS grew {grown / MIB:.1f} MiB")
    assert limited_server.wait_for_log(r"channel rdpdr closed: .*devices announced", timeout=5)
    assert limited_server.wait_for_log(r"bytes received before any sign-in", timeout=5), \
        limited_server.log[-3000:]
    assert sent < 64 * MIB and grown < 64 * MIB
