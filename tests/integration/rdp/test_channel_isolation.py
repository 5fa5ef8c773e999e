"""A bad rdpdr message from a client ends that client's redirection only."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from rdscard.pdu.rdpdr import ClientAnnounceReply
from rdscard.pdu.share import ErrorInfo
from rdscard.protocol.connector import ConnectorSettings, ConnectorState, RdpConnector
from tests.integration.rdp.conftest import ServerProcess

pytestmark = pytest.mark.integration


async def connect(port: int, channels: tuple[str, ...]) -> tuple[
    RdpConnector, asyncio.StreamReader, asyncio.StreamWriter
]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = RdpConnector(ConnectorSettings(width=640, height=480, channels=channels))
    writer.write(client.data_to_send())
    while client.state is not ConnectorState.AWAIT_TLS:
        client.receive(await reader.read(65536))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    await writer.start_tls(context)
    client.tls_established()
    writer.write(client.data_to_send())
    while client.state is not ConnectorState.ACTIVE or not client.channel_messages:
        client.receive(await asyncio.wait_for(reader.read(65536), 10))
        writer.write(client.data_to_send())
    return client, reader, writer


async def scenario(port: int) -> int | None:
    client, reader, writer = await connect(port, ("rdpdr",))
    name, announce = client.channel_messages[0]
    assert name == "rdpdr" and announce[:4] == bytes.fromhex("7244 6e49")  # Server Announce
    client.send_channel_data("rdpdr", b"\x72\x44\xff\xff garbage")  # unknown packet id
    writer.write(client.data_to_send())
    await asyncio.sleep(0.5)
    # the session itself lives on: later channel data is ignored, the session still
    # answers a Shutdown Request and ends with a reason
    client.send_channel_data("rdpdr", ClientAnnounceReply(1).encode())
    client.shutdown()
    writer.write(client.data_to_send())
    while client.state is not ConnectorState.CLOSED:
        data = await asyncio.wait_for(reader.read(65536), 10)
        if not data:
            break
        client.receive(data)
    writer.close()
    return client.error_info


def test_bad_rdpdr_message_closes_the_channel_not_the_session(rdp_server: ServerProcess) -> None:
    error_info = asyncio.run(scenario(rdp_server.port))
    assert error_info == ErrorInfo.ERRINFO_LOGOFF_BY_USER  # a clean end, not a crash
    assert rdp_server.wait_for_log(r"channel rdpdr closed: protocol error from the client")
    assert rdp_server.process.poll() is None
