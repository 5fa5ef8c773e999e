"""The RDP acceptor driven in memory by the scripted connector (MS-RDPBCGR 1.3.1.1)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu import tpkt, x224
from rdscard.pdu.input import KeyboardEvent
from rdscard.pdu.share import ErrorInfo
from rdscard.protocol.acceptor import AcceptorSettings, RdpAcceptor
from rdscard.protocol.connector import ConnectorSettings, ConnectorState, RdpConnector
from rdscard.protocol.events import (
    ChannelData,
    ClientConnected,
    ClientInfoReceived,
    ClientShutdown,
    InputReceived,
    NegotiationRefused,
    Phase,
    SessionActivated,
    StartTls,
)


def pump(server: RdpAcceptor, client: RdpConnector) -> list[object]:
    """Move bytes both ways until both sides are quiet; returns the server's events."""
    events: list[object] = []
    for _ in range(100):
        to_server = client.data_to_send()
        if to_server:
            server.receive(to_server)
        events.extend(server.events())
        if any(isinstance(e, StartTls) for e in events) and server.phase is Phase.TLS_HANDSHAKE:
            client.receive(server.data_to_send())
            server.tls_established()
            client.tls_established()
            continue
        to_client = server.data_to_send()
        if to_client:
            client.receive(to_client)
        if not to_server and not to_client:
            return events
    raise AssertionError("the two sides never went quiet")


def connect(**kwargs: object) -> tuple[RdpAcceptor, RdpConnector, list[object]]:
    server = RdpAcceptor(AcceptorSettings(session_id=7))
    client = RdpConnector(ConnectorSettings(**kwargs))  # type: ignore[arg-type]
    events = pump(server, client)
    return server, client, events


def test_full_sequence_reaches_active_with_client_settings() -> None:
    server, client, events = connect(
        width=800, height=600, client_name="scripted", channels=("rdpdr", "cliprdr")
    )
    assert server.phase is Phase.ACTIVE
    assert client.state is ConnectorState.ACTIVE
    kinds = [type(e) for e in events]
    assert kinds == [StartTls, ClientConnected, ClientInfoReceived, SessionActivated]
    connected = next(e for e in events if isinstance(e, ClientConnected))
    assert connected.client_name == "scripted"
    assert connected.channels == ("rdpdr", "cliprdr")
    assert (connected.desktop_width, connected.desktop_height) == (800, 600)
    assert connected.color_depth == 32  # the client wants a 32 bpp session
    assert server.channels == ("rdpdr", "cliprdr")
    assert client.channel_ids == {"rdpdr": 1004, "cliprdr": 1005}


def test_smart_card_pin_arrives_as_secret_and_never_in_repr() -> None:
    _, _, events = connect(user_name="alice", pin=b"24681357")
    info = next(e for e in events if isinstance(e, ClientInfoReceived)).info
    assert info.password_is_smart_card_pin
    assert bytes(info.password.reveal()) == b"24681357"
    assert "24681357" not in repr(info)
    assert "24681357" not in repr(events)


def test_refuses_a_client_without_tls() -> None:
    server = RdpAcceptor()
    client = RdpConnector(ConnectorSettings(protocols=x224.Protocol.RDP))
    server.receive(client.data_to_send())
    events = server.events()
    assert isinstance(events[0], NegotiationRefused)
    assert server.phase is Phase.CLOSED
    client.receive(server.data_to_send())
    assert client.negotiation_failure == x224.FailureCode.SSL_REQUIRED_BY_SERVER


def test_refuses_a_request_without_negotiation() -> None:
    server = RdpAcceptor()
    server.receive(tpkt.wrap(x224.ConnectionRequest(cookie="legacy").encode()))
    assert isinstance(server.events()[0], NegotiationRefused)
    confirm = x224.ConnectionConfirm.decode(tpkt.unwrap(server.data_to_send()))
    assert isinstance(confirm.negotiation, x224.NegotiationFailure)


def test_offering_tls_and_nla_selects_tls() -> None:
    server = RdpAcceptor()
    client = RdpConnector(ConnectorSettings(protocols=x224.Protocol.SSL | x224.Protocol.HYBRID))
    server.receive(client.data_to_send())
    assert isinstance(server.events()[0], StartTls)
    confirm = x224.ConnectionConfirm.decode(tpkt.unwrap(server.data_to_send()))
    assert isinstance(confirm.negotiation, x224.NegotiationResponse)
    assert confirm.negotiation.selected_protocol == x224.Protocol.SSL


def test_fast_path_input_and_channel_data_after_activation() -> None:
    server, client, _ = connect(channels=("rdpdr",))
    client.send_input([KeyboardEvent(scancode=0x02, released=False, extended=False)])
    client.send_channel_data("rdpdr", b"x" * 5000)  # four chunks of 1600
    events = pump(server, client)
    assert isinstance(events[0], InputReceived)
    assert events[0].events[0] == KeyboardEvent(scancode=0x02, released=False, extended=False)
    assert events[1] == ChannelData("rdpdr", b"x" * 5000)
    server.send_channel_data("rdpdr", b"y" * 4000)
    pump(server, client)
    assert client.channel_messages == [("rdpdr", b"y" * 4000)]


def test_shutdown_request_and_server_disconnect_with_reason() -> None:
    server, client, _ = connect()
    client.shutdown()
    events = pump(server, client)
    assert isinstance(events[-1], ClientShutdown)
    server.disconnect(ErrorInfo.ERRINFO_LOGOFF_BY_USER)
    client.receive(server.data_to_send())
    assert client.error_info == ErrorInfo.ERRINFO_LOGOFF_BY_USER
    assert client.state is ConnectorState.CLOSED
    assert server.phase is Phase.CLOSED


def test_channel_data_before_tls_upgrade_is_an_error() -> None:
    server = RdpAcceptor()
    server.receive(RdpConnector().data_to_send())
    with pytest.raises(ProtocolError):
        server.receive(b"\x16\x03\x01")  # bytes must wait for tls_established()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_protocol_error(data: bytes) -> None:
    server = RdpAcceptor()
    with contextlib.suppress(ProtocolError):
        server.receive(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_in_the_active_session_only_raise_protocol_error(data: bytes) -> None:
    server, _, _ = connect()
    try:
        server.receive(tpkt.wrap(x224.wrap_data(data)))
        server.receive(data)
    except ProtocolError:
        pass
