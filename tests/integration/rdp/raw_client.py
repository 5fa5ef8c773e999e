"""A scripted RDP client over real sockets for the limits tests (asyncio, TLS, the connector)."""

from __future__ import annotations

import asyncio
import socket
import ssl

from rdscard.pdu.rdpdr import (
    SMARTCARD_CAPABILITY,
    ClientAnnounceReply,
    ClientCoreCapabilityResponse,
    ClientDeviceListAnnounceRequest,
    ClientNameRequest,
    DeviceAnnounce,
    DeviceType,
    GeneralCapabilitySet,
    PacketId,
    RdpdrHeader,
    ServerAnnounceRequest,
)
from rdscard.protocol.connector import ConnectorSettings, ConnectorState, RdpConnector

Streams = tuple[RdpConnector, asyncio.StreamReader, asyncio.StreamWriter]


def client_socket(port: int, source: str = "127.0.0.1", rcvbuf: int | None = None,
                  ) -> socket.socket:
    """A TCP socket from ``source`` connected to the server on 127.0.0.1 (blocking connect)."""
    sock = socket.socket()
    if rcvbuf is not None:  # before connect, so that the window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def negotiate(port: int, source: str = "127.0.0.1", channels: tuple[str, ...] = (),
                    rcvbuf: int | None = None) -> Streams:
    """Send the Connection Request and read the Connection Confirm (the client's state tells)."""
    sock = client_socket(port, source, rcvbuf)
    reader, writer = await asyncio.open_connection(sock=sock)
    client = RdpConnector(ConnectorSettings(width=640, height=480, channels=channels))
    writer.write(client.data_to_send())
    while client.state is ConnectorState.NEGOTIATING:
        data = await asyncio.wait_for(reader.read(65536), 10)
        if not data:
            break
        client.receive(data)
    return client, reader, writer


async def connect(port: int, source: str = "127.0.0.1", channels: tuple[str, ...] = (),
                  rcvbuf: int | None = None) -> Streams:
    """Connect up to the active session (the logon screen's first updates)."""
    client, reader, writer = await negotiate(port, source, channels, rcvbuf)
    assert client.state is ConnectorState.AWAIT_TLS, client.negotiation_failure
    await writer.start_tls(tls_context())
    client.tls_established()
    writer.write(client.data_to_send())
    while client.state is not ConnectorState.ACTIVE or not client.fastpath_frames:
        data = await asyncio.wait_for(reader.read(65536), 20)
        assert data, "the server closed the connection"
        client.receive(data)
        writer.write(client.data_to_send())
    return client, reader, writer


async def rdpdr_ready(client: RdpConnector, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    """Answer the server's rdpdr handshake (MS-RDPEFS 3.2.5.1) up to its Client ID Confirm."""
    seen = 0
    while True:
        for name, message in client.channel_messages[seen:]:
            seen += 1
            if name != "rdpdr":
                continue
            packet = RdpdrHeader.decode(message).packet_id
            if packet is PacketId.PAKID_CORE_SERVER_ANNOUNCE:
                announce = ServerAnnounceRequest.decode(message)
                client.send_channel_data("rdpdr", ClientAnnounceReply(announce.client_id).encode())
                client.send_channel_data("rdpdr", ClientNameRequest("flood").encode())
            elif packet is PacketId.PAKID_CORE_SERVER_CAPABILITY:
                general = GeneralCapabilitySet(special_type_device_cap=1)
                client.send_channel_data("rdpdr", ClientCoreCapabilityResponse(
                    (general, SMARTCARD_CAPABILITY)).encode())
            elif packet is PacketId.PAKID_CORE_CLIENTID_CONFIRM:
                writer.write(client.data_to_send())
                return
        writer.write(client.data_to_send())
        data = await asyncio.wait_for(reader.read(65536), 10)
        if not data:
            raise ConnectionError("the server closed the connection")
        client.receive(data)


def announce_many() -> bytes:
    """A Client Device List Announce of 128 printers: the server answers each one."""
    devices = tuple(DeviceAnnounce(DeviceType.RDPDR_DTYP_PRINT, 1000 + i, f"P{i}")
                    for i in range(128))
    return ClientDeviceListAnnounceRequest(devices).encode()
