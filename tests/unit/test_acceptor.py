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
    client.send_channel_data("rdpdr", b"x" * 5000)  # one chunk: the server allows 16256
    events = pump(server, client)
    assert isinstance(events[0], InputReceived)
    assert events[0].events[0] == KeyboardEvent(scancode=0x02, released=False, extended=False)
    assert events[1] == ChannelData("rdpdr", b"x" * 5000)
    server.send_channel_data("rdpdr", b"y" * 4000)
    pump(server, client)
    assert client.channel_messages == [("rdpdr", b"y" * 4000)]


def frame_count(data: bytes) -> int:
    count = 0
    while data:
        length = tpkt.next_frame_length(data)
        assert length is not None
        data, count = data[length:], count + 1
    return count


def test_the_client_sends_chunks_as_large_as_the_server_allows() -> None:
    server, client, _ = connect(channels=("rdpdr",))
    assert client.chunk_size == 16256  # the server's VCChunkSize (MS-RDPBCGR 2.2.7.1.10)
    for size, frames in ((4098, 1), (16256, 1), (16257, 2), (40000, 3)):
        client.send_channel_data("rdpdr", bytes(size))
        sent = client.data_to_send()
        assert frame_count(sent) == frames
        server.receive(sent)
        assert server.events() == [ChannelData("rdpdr", bytes(size))]
    # The server's own messages are still cut at 1600, which every client takes.
    server.send_channel_data("rdpdr", bytes(4000))
    assert frame_count(server.data_to_send()) == 3


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


# Found while reviewing the acceptor for the fuzz campaign: a client that
# names one channel twice in its Client Network Data and sends the Client
# Info before joining the second (join skipping is allowed for aardwolf)
# made the acceptor drop the name twice: a KeyError that ended the
# connection handler instead of a protocol error. The stream: X.224
# Connection Request, Connect-Initial with channels "rdpdr" (1004) and
# "rdpdr" (1005), Erect Domain, Attach User, joins of 1002 and 1003 only,
# Client Info.
TWICE_NAMED_CHANNEL_CONNECTION_REQUEST = bytes.fromhex("030000130ee000000000000100080001000000")
TWICE_NAMED_CHANNEL_CONNECT_INITIAL = bytes.fromhex(
    "0300014602f0807f6582013a0401010401010101ff301a020122020102020100020101020100020101020300"
    "ffff0201023019020101020101020101020101020100020101020204200201023020020300ffff020300fc17"
    "020300ffff020101020100020101020300ffff0201020481d5000500147c000180cc000800100001c0004475"
    "636180be01c09200040008000004000301ca03aa090400000100000072006400730063006100720064002d00"
    "7400650073007400000000000000000004000000000000000c00000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000001ca01000000000018000b00030002c00c00000000000000000003c0200002000000726470647200"
    "000000000080"  # channelDefArray[0]: "rdpdr", options 0x80000000
    "726470647200000000000080"  # channelDefArray[1]: "rdpdr" again
)
TWICE_NAMED_CHANNEL_REST = bytes.fromhex(
    "0300000c02f0800401000100"  # Erect Domain Request
    "0300000802f08028"  # Attach User Request
    "0300000c02f08038000103ea"  # Channel Join Request 1002
    "0300000c02f08038000103eb"  # Channel Join Request 1003 (1004 and 1005 skipped)
    "0300002e02f08064000103eb7020"  # Send Data Request on 1003: Client Info PDU
    "4000000000000000110001000000000000000000000000000000000000000000"
)


def test_a_channel_named_twice_is_a_protocol_error() -> None:
    server = RdpAcceptor()
    server.receive(TWICE_NAMED_CHANNEL_CONNECTION_REQUEST)
    server.tls_established()
    with pytest.raises(ProtocolError, match="rdpdr announced twice"):
        server.receive(TWICE_NAMED_CHANNEL_CONNECT_INITIAL + TWICE_NAMED_CHANNEL_REST)


def test_each_client_finalisation_pdu_is_answered_as_it_arrives() -> None:
    """MS-RDPBCGR 3.3.5.3.20-22: rdesktop 1.9 waits for the Control Cooperate and the
    Granted Control before it sends its Font List; the Font Map answers the Font List."""
    from rdscard.pdu.share import Control, ControlAction, FontMap
    from rdscard.protocol import capabilities_policy as policy

    cooperate = policy.finalization_reply("cooperate", 1007)
    granted = policy.finalization_reply("request_control", 1007)
    assert isinstance(cooperate, Control)
    assert cooperate.action == ControlAction.CTRLACTION_COOPERATE
    assert isinstance(granted, Control)
    assert granted.action == ControlAction.CTRLACTION_GRANTED_CONTROL
    assert granted.grant_id == 1007
    assert isinstance(policy.finalization_reply("font_list", 1007), FontMap)
    assert policy.finalization_reply("synchronize", 1007) is None  # sent after Confirm Active
