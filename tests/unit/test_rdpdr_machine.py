"""The rdpdr server channel machine (MS-RDPEFS 3.3), driven in memory like xfreerdp 2.11.7."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.rdpdr import (
    SMARTCARD_CAPABILITY,
    CapabilityType,
    ClientAnnounceReply,
    ClientCoreCapabilityResponse,
    ClientDeviceListAnnounceRequest,
    ClientDeviceListRemove,
    DeviceAnnounce,
    DeviceCapabilitySet,
    DeviceType,
    GeneralCapabilitySet,
    NtStatus,
    PacketId,
    RdpdrHeader,
    ServerAnnounceRequest,
    ServerClientIdConfirm,
    ServerCoreCapabilityRequest,
    ServerDeviceAnnounceResponse,
    ServerUserLoggedOn,
)
from rdscard.pdu.rdpdr_io import DeviceControlRequest, DeviceControlResponse
from rdscard.protocol.rdpdr import (
    MAX_BAD_COMPLETIONS,
    MAX_PENDING_IOCTLS,
    ClientIdentified,
    CompletionDropped,
    DeviceRemoved,
    IoctlCompleted,
    IoctlFailed,
    RdpdrPhase,
    RdpdrServer,
    RdpdrStateError,
    ReadyForIoctls,
    SmartCardDeviceAnnounced,
)
from tests.unit.test_rdpdr_pdu import (
    XFREERDP_ANNOUNCE_REPLY,
    XFREERDP_CLIENT_CAPABILITY,
    XFREERDP_CLIENT_NAME,
    XFREERDP_CONTROL_OUTPUT,
    XFREERDP_CONTROL_RESPONSE,
    XFREERDP_DEVICE_LIST,
)

CLIENT_ID = 1
SCARD = DeviceAnnounce(DeviceType.RDPDR_DTYP_SMARTCARD, 1, "SCARD", b"SCARD\0")

# What xfreerdp 2.11.7 sends, in order (bytes captured from the real client).
ANNOUNCE_REPLY = XFREERDP_ANNOUNCE_REPLY
CLIENT_NAME = XFREERDP_CLIENT_NAME


def client_caps(extended_pdu: int = 7) -> bytes:
    return ClientCoreCapabilityResponse(
        (
            GeneralCapabilitySet(
                protocol_minor_version=13, extended_pdu=extended_pdu, extra_flags1=1
            ),
            DeviceCapabilitySet(CapabilityType.CAP_PRINTER_TYPE, 1),
            DeviceCapabilitySet(CapabilityType.CAP_PORT_TYPE, 1),
            DeviceCapabilitySet(CapabilityType.CAP_DRIVE_TYPE, 2),
            SMARTCARD_CAPABILITY,
        )
    ).encode()


def device_list(*devices: DeviceAnnounce) -> bytes:
    return ClientDeviceListAnnounceRequest(devices).encode()


def packet_ids(messages: list[bytes]) -> list[PacketId]:
    return [RdpdrHeader.decode(m).packet_id for m in messages]


def ready_server(**kwargs: bool | int) -> RdpdrServer:
    """A server that went through the whole handshake and accepted SCARD (id 1)."""
    server = RdpdrServer(CLIENT_ID, **kwargs)  # type: ignore[arg-type]
    server.start()
    for message in (ANNOUNCE_REPLY, CLIENT_NAME, client_caps(), device_list(SCARD)):
        server.receive(message, 0.0)
    server.data_to_send()
    return server


def answer(cid: int, output: bytes = b"", status: int = 0, device_id: int = 1) -> bytes:
    return DeviceControlResponse(device_id, cid, status, output).encode()


# -- the handshake as a table ---------------------------------------------------------------

HANDSHAKE: list[tuple[str, bytes | None, list[bytes], list[object], RdpdrPhase]] = [
    # (step, client message or None for start(), server messages, events, phase after)
    (
        "start",
        None,
        [ServerAnnounceRequest(client_id=CLIENT_ID, version_major=1, version_minor=13).encode()],
        [],
        RdpdrPhase.WAIT_ANNOUNCE_REPLY,
    ),
    ("announce reply", ANNOUNCE_REPLY, [], [], RdpdrPhase.WAIT_CLIENT_NAME),
    (
        "client name",
        CLIENT_NAME,
        [
            # Capabilities first, then the Client ID Confirm (INTEROP 3).
            ServerCoreCapabilityRequest(
                (
                    GeneralCapabilitySet(protocol_minor_version=13, special_type_device_cap=1),
                    SMARTCARD_CAPABILITY,
                )
            ).encode(),
            ServerClientIdConfirm(client_id=CLIENT_ID, version_major=1, version_minor=13).encode(),
        ],
        [ClientIdentified("vm", CLIENT_ID, 13)],
        RdpdrPhase.WAIT_CLIENT_CAPABILITY,
    ),
    ("client capability", client_caps(), [], [], RdpdrPhase.READY),
    (
        "device list",
        device_list(SCARD),
        [ServerDeviceAnnounceResponse(1, NtStatus.STATUS_SUCCESS).encode()],
        [SmartCardDeviceAnnounced(1, "SCARD"), ReadyForIoctls(1)],
        RdpdrPhase.READY,
    ),
]


def test_handshake_table() -> None:
    server = RdpdrServer(CLIENT_ID)
    assert server.phase == RdpdrPhase.IDLE
    for step, message, sent, events, phase in HANDSHAKE:
        if message is None:
            assert server.start() == sent, step
        else:
            assert server.receive(message, 0.0) == events, step
            assert server.data_to_send() == sent, step
        assert server.phase == phase, step
    assert server.client_name == "vm"
    assert server.smart_card_devices == {1: "SCARD"}
    assert server.client_capabilities is not None


# A whole xfreerdp 2.11.7 /smartcard session as captured: client messages and
# the exact server messages each one produced.
XFREERDP_TRANSCRIPT: list[tuple[bytes | None, list[str]]] = [
    (None, ["72446e4901000d0001000000"]),  # Server Announce 1.13, ClientId 1
    (XFREERDP_ANNOUNCE_REPLY, []),
    (
        XFREERDP_CLIENT_NAME,
        [
            # Server Core Capability: general (version 2, 44 bytes) + smart card
            "7244505302000000"
            "01002c0002000000"
            "0000000000000000"
            "01000d00"
            "ffff0000"
            "00000000"
            "05000000"
            "00000000"
            "00000000"
            "01000000"
            "0500080001000000",
            # Server Client ID Confirm
            "7244434301000d0001000000",
        ],
    ),
    (XFREERDP_CLIENT_CAPABILITY, []),
    # Device Reply (STATUS_SUCCESS), then User Logged On
    (XFREERDP_DEVICE_LIST, ["724472640100000000000000", "72444c55"]),
    # the re-announce after User Logged On: answered again, reported once
    (XFREERDP_DEVICE_LIST, ["724472640100000000000000"]),
]


def test_xfreerdp_transcript() -> None:
    server = RdpdrServer(CLIENT_ID, send_user_logged_on=True)
    events: list[object] = []
    for message, expected in XFREERDP_TRANSCRIPT:
        if message is None:
            sent = server.start()
        else:
            events += server.receive(message, 0.0)
            sent = server.data_to_send()
        assert [m.hex() for m in sent] == expected
    assert events == [
        ClientIdentified("vm", 1, 13),
        SmartCardDeviceAnnounced(1, "SCARD"),
        ReadyForIoctls(1),
    ]
    ndr = bytes.fromhex("01100800cccccccc08000000000000000200000000000000")
    cid = server.device_control(1, 0x00090014, ndr, now=0.0)
    assert cid == 1
    assert server.data_to_send() == [
        bytes.fromhex("724452490100000000000000010000000e00000000000000000800001800000014000900")
        + bytes(20)
        + ndr
    ]
    assert server.receive(XFREERDP_CONTROL_RESPONSE, 0.1) == [
        IoctlCompleted(1, 1, 0, XFREERDP_CONTROL_OUTPUT)
    ]


def test_general_capability_is_version_2_and_44_bytes() -> None:
    server = RdpdrServer(CLIENT_ID)
    server.start()
    server.receive(ANNOUNCE_REPLY, 0.0)
    server.receive(CLIENT_NAME, 0.0)
    capability, confirm = server.data_to_send()
    assert packet_ids([capability, confirm]) == [
        PacketId.PAKID_CORE_SERVER_CAPABILITY,
        PacketId.PAKID_CORE_CLIENTID_CONFIRM,
    ]
    general = ServerCoreCapabilityRequest.decode(capability).capabilities[0]
    assert isinstance(general, GeneralCapabilitySet)
    assert general.version == 2
    assert len(general.encode()) == 44
    assert capability[8:12] == bytes.fromhex("01002c00")  # CAP_GENERAL_TYPE, 44


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ([], CLIENT_NAME),  # name before the announce reply
        ([], client_caps()),
        ([], device_list(SCARD)),
        ([ANNOUNCE_REPLY], client_caps()),  # capabilities before the name
        ([ANNOUNCE_REPLY], ANNOUNCE_REPLY),  # announce reply twice
        ([ANNOUNCE_REPLY, CLIENT_NAME], device_list(SCARD)),  # devices before capabilities
        ([ANNOUNCE_REPLY, CLIENT_NAME, client_caps()], CLIENT_NAME),
        ([ANNOUNCE_REPLY, CLIENT_NAME, client_caps()], client_caps()),
        ([ANNOUNCE_REPLY, CLIENT_NAME, client_caps()], ServerUserLoggedOn().encode()),
    ],
)
def test_out_of_order_client_messages(prefix: list[bytes], message: bytes) -> None:
    server = RdpdrServer(CLIENT_ID)
    server.start()
    for earlier in prefix:
        server.receive(earlier, 0.0)
    with pytest.raises(ProtocolError, match="PacketId"):
        server.receive(message, 0.0)


def test_bad_announce_reply_version() -> None:
    server = RdpdrServer(CLIENT_ID)
    server.start()
    with pytest.raises(ProtocolError, match="VersionMajor"):
        server.receive(ClientAnnounceReply(CLIENT_ID, version_major=2).encode(), 0.0)


def test_capability_without_general_set() -> None:
    server = RdpdrServer(CLIENT_ID)
    server.start()
    server.receive(ANNOUNCE_REPLY, 0.0)
    server.receive(CLIENT_NAME, 0.0)
    with pytest.raises(ProtocolError, match="general"):
        server.receive(ClientCoreCapabilityResponse((SMARTCARD_CAPABILITY,)).encode(), 0.0)


# -- devices -------------------------------------------------------------------------------


def test_other_device_types_are_refused_and_hidden() -> None:
    server = RdpdrServer(CLIENT_ID)
    server.start()
    for message in (ANNOUNCE_REPLY, CLIENT_NAME, client_caps()):
        server.receive(message, 0.0)
    server.data_to_send()
    drive = DeviceAnnounce(DeviceType.RDPDR_DTYP_FILESYSTEM, 2, "HOME", b"h\0")
    printer = DeviceAnnounce(DeviceType.RDPDR_DTYP_PRINT, 3, "PRN1", b"")
    events = server.receive(device_list(drive, SCARD, printer), 0.0)
    assert events == [SmartCardDeviceAnnounced(1, "SCARD"), ReadyForIoctls(1)]
    assert server.data_to_send() == [
        ServerDeviceAnnounceResponse(2, NtStatus.STATUS_NOT_SUPPORTED).encode(),
        ServerDeviceAnnounceResponse(1, NtStatus.STATUS_SUCCESS).encode(),
        ServerDeviceAnnounceResponse(3, NtStatus.STATUS_NOT_SUPPORTED).encode(),
    ]
    assert server.smart_card_devices == {1: "SCARD"}
    with pytest.raises(RdpdrStateError):
        server.device_control(2, 0x90014, b"", now=0.0)


def test_reannounce_after_user_logged_on_is_deduplicated() -> None:
    server = RdpdrServer(CLIENT_ID, send_user_logged_on=True)
    server.start()
    for message in (ANNOUNCE_REPLY, CLIENT_NAME, client_caps()):
        server.receive(message, 0.0)
    server.data_to_send()
    assert server.receive(device_list(SCARD), 0.0) == [
        SmartCardDeviceAnnounced(1, "SCARD"),
        ReadyForIoctls(1),
    ]
    assert server.data_to_send() == [
        ServerDeviceAnnounceResponse(1, 0).encode(),
        ServerUserLoggedOn().encode(),
    ]
    # xfreerdp answers User Logged On with the same device list again.
    assert server.receive(device_list(SCARD), 0.0) == []
    assert server.data_to_send() == [ServerDeviceAnnounceResponse(1, 0).encode()]
    assert server.smart_card_devices == {1: "SCARD"}


def test_user_logged_on_needs_the_client_flag() -> None:
    server = RdpdrServer(CLIENT_ID, send_user_logged_on=True)
    server.start()
    for message in (ANNOUNCE_REPLY, CLIENT_NAME, client_caps(extended_pdu=3)):
        server.receive(message, 0.0)
    server.data_to_send()
    server.receive(device_list(SCARD), 0.0)
    assert packet_ids(server.data_to_send()) == [PacketId.PAKID_CORE_DEVICE_REPLY]
    server.user_logged_on()
    assert server.data_to_send() == []


def test_user_logged_on_on_request() -> None:
    server = ready_server()
    server.user_logged_on()
    assert server.data_to_send() == [ServerUserLoggedOn().encode()]
    with pytest.raises(RdpdrStateError):
        RdpdrServer(1).user_logged_on()


def test_device_remove_fails_its_ioctls() -> None:
    server = ready_server()
    cid = server.device_control(1, 0x90014, b"x", now=0.0)
    events = server.receive(ClientDeviceListRemove((1, 99)).encode(), 1.0)
    assert events == [
        IoctlFailed(cid, 1, "smart card device removed by the client"),
        DeviceRemoved(1),
    ]
    assert server.smart_card_devices == {}
    with pytest.raises(RdpdrStateError, match="no smart card device"):
        server.device_control(1, 0x90014, b"", now=1.0)
    # The late answer to the failed request is dropped, not an error.
    assert server.receive(answer(cid), 2.0) == []
    # Announced again: the channel is usable again.
    assert server.receive(device_list(SCARD), 3.0) == [
        SmartCardDeviceAnnounced(1, "SCARD"),
        ReadyForIoctls(1),
    ]


def test_second_smart_card_device_is_not_ready_again() -> None:
    server = ready_server()
    second = DeviceAnnounce(DeviceType.RDPDR_DTYP_SMARTCARD, 5, "SCARD", b"SCARD\0")
    assert server.receive(device_list(second), 0.0) == [SmartCardDeviceAnnounced(5, "SCARD")]


# -- IOCTLs --------------------------------------------------------------------------------


def test_ioctl_round_trip() -> None:
    server = ready_server()
    cid = server.device_control(1, 0x00090014, b"in", 2048, now=10.0)
    (request,) = server.data_to_send()
    assert DeviceControlRequest.decode(request) == DeviceControlRequest(
        device_id=1,
        completion_id=cid,
        io_control_code=0x00090014,
        input_buffer=b"in",
        output_buffer_length=2048,
        file_id=0,
    )
    assert server.pending_count == 1
    assert server.receive(answer(cid, b"out"), 10.5) == [IoctlCompleted(cid, 1, 0, b"out")]
    assert server.pending_count == 0
    # A second answer to the same id is dropped and counted; the channel goes on.
    (dropped,) = server.receive(answer(cid, b"out"), 11.0)
    assert isinstance(dropped, CompletionDropped) and dropped.count == 1
    assert dropped.error.field == "CompletionId"


def test_error_status_is_passed_on() -> None:
    server = ready_server()
    cid = server.device_control(1, 0x90014, b"", now=0.0)
    failed = (
        bytes.fromhex("7244434901000000") + cid.to_bytes(4, "little") + bytes.fromhex("010000c0")
    )
    assert server.receive(failed, 0.0) == [IoctlCompleted(cid, 1, 0xC0000001, b"")]


def test_unknown_completion_id_is_dropped_and_the_channel_goes_on() -> None:
    server = ready_server()
    cid = server.device_control(1, 0x90014, b"", now=0.0)
    (dropped,) = server.receive(answer(12345), 0.0)
    assert isinstance(dropped, CompletionDropped)
    assert (dropped.error.field, dropped.count) == ("CompletionId", 1)
    assert "12345" in dropped.error.reason
    assert server.phase is RdpdrPhase.READY and server.bad_completions == 1
    assert server.receive(answer(cid, b"ok"), 0.0) == [IoctlCompleted(cid, 1, 0, b"ok")]


def test_completion_from_the_wrong_device_is_dropped_and_the_request_stays_pending() -> None:
    server = ready_server()
    cid = server.device_control(1, 0x90014, b"", now=0.0)
    (dropped,) = server.receive(answer(cid, device_id=2), 0.0)
    assert isinstance(dropped, CompletionDropped) and dropped.error.field == "DeviceId"
    assert server.pending_count == 1
    assert server.receive(answer(cid, b"ok"), 0.0) == [IoctlCompleted(cid, 1, 0, b"ok")]


def oversized(cid: int, claimed: int, output: bytes = b"abc") -> bytes:
    """A DR_CONTROL_RSP whose OutputBufferLength is more than the bytes that follow."""
    good = answer(cid, output)
    return good[:16] + claimed.to_bytes(4, "little") + good[20:]


@pytest.mark.parametrize("claimed", [4, 0x100000, 0x100001, 0xFFFFFFFF])
def test_an_oversized_output_length_fails_its_request_at_once_and_keeps_the_channel(
    claimed: int,
) -> None:
    server = ready_server()
    bad = server.device_control(1, 0x90014, b"", now=0.0)
    other = server.device_control(1, 0x90014, b"", now=0.0)
    dropped, failed = server.receive(oversized(bad, claimed), 0.0)
    assert isinstance(dropped, CompletionDropped) and dropped.count == 1
    assert dropped.error.field in ("OutputBufferLength", "OutputBuffer")
    assert isinstance(failed, IoctlFailed) and failed.malformed
    assert (failed.completion_id, failed.device_id) == (bad, 1)
    assert server.pending_count == 1
    assert server.receive(answer(other, b"ok"), 0.0) == [IoctlCompleted(other, 1, 0, b"ok")]
    # Nothing was retired for the malformed one: a second reply to it is bad too.
    (again,) = server.receive(answer(bad), 0.0)
    assert isinstance(again, CompletionDropped) and again.count == 2


def test_a_truncated_completion_is_dropped() -> None:
    server = ready_server()
    cid = server.device_control(1, 0x90014, b"", now=0.0)
    (dropped,) = server.receive(answer(cid)[:10], 0.0)
    assert isinstance(dropped, CompletionDropped)
    assert server.pending_count == 1  # its id could not be read: the request waits on


def test_the_channel_ends_only_past_the_bad_completion_limit() -> None:
    server = ready_server()
    cid = server.device_control(1, 0x90014, b"", now=0.0)
    for count in range(1, MAX_BAD_COMPLETIONS + 1):
        (dropped,) = server.receive(answer(0x10000 + count), 0.0)
        assert isinstance(dropped, CompletionDropped) and dropped.count == count
    assert server.receive(answer(cid, b"ok"), 0.0) == [IoctlCompleted(cid, 1, 0, b"ok")]
    with pytest.raises(ProtocolError, match=f"limit {MAX_BAD_COMPLETIONS}"):
        server.receive(answer(4242), 0.0)


def test_the_bad_completion_limit_is_a_parameter() -> None:
    server = ready_server(max_bad_completions=0)
    with pytest.raises(ProtocolError, match="CompletionId"):
        server.receive(answer(4242), 0.0)
    with pytest.raises(ValueError):
        RdpdrServer(CLIENT_ID, max_bad_completions=-1)


def test_completion_ids_are_distinct_and_answers_may_come_in_any_order() -> None:
    server = ready_server()
    ids = [server.device_control(1, 0x90014, bytes([i]), now=0.0) for i in range(5)]
    assert len(set(ids)) == 5
    events = [server.receive(answer(cid, bytes([cid])), 1.0)[0] for cid in reversed(ids)]
    assert events == [IoctlCompleted(cid, 1, 0, bytes([cid])) for cid in reversed(ids)]


def test_completion_ids_wrap_and_skip_ids_in_use() -> None:
    server = ready_server()
    server._next_completion = 0xFFFFFFFF
    first = server.device_control(1, 1, b"", now=0.0)
    second = server.device_control(1, 1, b"", now=0.0)
    assert (first, second) == (0xFFFFFFFF, 0)
    server._next_completion = 0xFFFFFFFF
    assert server.device_control(1, 1, b"", now=0.0) == 1


def test_timeouts() -> None:
    server = RdpdrServer(CLIENT_ID, default_timeout=5.0)
    server.start()
    for message in (ANNOUNCE_REPLY, CLIENT_NAME, client_caps(), device_list(SCARD)):
        server.receive(message, 0.0)
    short = server.device_control(1, 1, b"", now=100.0)
    longer = server.device_control(1, 1, b"", now=100.0, timeout=20.0)
    forever = server.device_control(1, 1, b"", now=100.0, timeout=math.inf)
    assert server.next_deadline() == 105.0
    assert server.expire(104.9) == []
    assert server.expire(105.0) == [
        IoctlFailed(short, 1, "no answer from the client before the timeout")
    ]
    assert server.next_deadline() == 120.0
    assert [f.completion_id for f in server.expire(1e9)] == [longer]
    assert server.next_deadline() is None
    assert server.pending_count == 1
    # A late answer to an expired request is dropped; the blocking one still completes.
    assert server.receive(answer(short), 200.0) == []
    assert server.receive(answer(forever, b"ok"), 300.0) == [IoctlCompleted(forever, 1, 0, b"ok")]


def test_close_fails_everything() -> None:
    server = ready_server()
    a = server.device_control(1, 1, b"", now=0.0)
    b = server.device_control(1, 1, b"", now=0.0, timeout=math.inf)
    assert server.close() == [
        IoctlFailed(a, 1, "rdpdr channel closed"),
        IoctlFailed(b, 1, "rdpdr channel closed"),
    ]
    assert server.phase == RdpdrPhase.CLOSED
    assert server.data_to_send() == []
    assert server.receive(answer(a), 1.0) == []
    assert server.close() == []
    with pytest.raises(RdpdrStateError, match="closed"):
        server.device_control(1, 1, b"", now=1.0)
    with pytest.raises(RdpdrStateError):
        server.restart()


def test_restart_resets_the_channel() -> None:
    server = ready_server()
    cid = server.device_control(1, 1, b"", now=0.0)
    server.data_to_send()
    events = server.restart()
    assert events == [IoctlFailed(cid, 1, "rdpdr channel restarted"), DeviceRemoved(1)]
    assert server.data_to_send() == [ServerAnnounceRequest(client_id=CLIENT_ID).encode()]
    assert server.phase == RdpdrPhase.WAIT_ANNOUNCE_REPLY
    with pytest.raises(RdpdrStateError):
        server.device_control(1, 1, b"", now=0.0)
    # The client may still answer the old request before it sees the announce.
    assert server.receive(answer(cid), 0.0) == []
    (dropped,) = server.receive(answer(4242), 0.0)
    assert isinstance(dropped, CompletionDropped) and "before the handshake" in str(dropped.error)
    (dropped,) = server.receive(answer(4242)[:8], 0.0)  # not even a whole header
    assert isinstance(dropped, CompletionDropped) and dropped.count == 2
    for step, message, sent, expected, phase in HANDSHAKE[1:]:
        assert message is not None
        assert server.receive(message, 0.0) == expected, step
        assert server.data_to_send() == sent, step
        assert server.phase == phase


def test_start_only_once() -> None:
    server = RdpdrServer(CLIENT_ID)
    server.start()
    with pytest.raises(RdpdrStateError, match="restart"):
        server.start()


def test_ioctls_before_ready() -> None:
    server = RdpdrServer(CLIENT_ID)
    server.start()
    with pytest.raises(RdpdrStateError, match="waiting"):
        server.device_control(1, 1, b"", now=0.0)


def test_pending_limit() -> None:
    server = ready_server()
    for _ in range(MAX_PENDING_IOCTLS):
        server.device_control(1, 1, b"", now=0.0)
    with pytest.raises(RdpdrStateError, match="in flight"):
        server.device_control(1, 1, b"", now=0.0)


def test_printer_component_is_ignored() -> None:
    server = ready_server()
    assert server.receive(bytes.fromhex("52504350") + bytes(8), 0.0) == []


def test_bad_client_id() -> None:
    with pytest.raises(ValueError):
        RdpdrServer(-1)


# -- properties ------------------------------------------------------------------------------

HEADERS = [bytes.fromhex("7244") + pid.to_bytes(2, "little") for pid in PacketId]


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(HEADERS), st.binary(max_size=80)), max_size=5))
def test_arbitrary_messages_raise_only_protocol_error(
    messages: list[tuple[bytes, bytes]],
) -> None:
    server = ready_server()
    server.device_control(1, 1, b"", now=0.0)
    for header, body in messages:
        with contextlib.suppress(ProtocolError):
            server.receive(header + body, 0.0)


@settings(deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_during_handshake(data: bytes) -> None:
    server = RdpdrServer(CLIENT_ID)
    server.start()
    with contextlib.suppress(ProtocolError):
        server.receive(data, 0.0)


def test_a_flood_of_device_announcements_gives_the_channel_up() -> None:
    """Each announced device is answered: past MAX_ANNOUNCED_DEVICES it is a flood."""
    from rdscard.errors import ProtocolError
    from rdscard.protocol.rdpdr import MAX_ANNOUNCED_DEVICES

    server = RdpdrServer(CLIENT_ID)
    server.start()
    for message in (ANNOUNCE_REPLY, CLIENT_NAME, client_caps()):
        server.receive(message, 0.0)
    server.data_to_send()
    printers = [DeviceAnnounce(DeviceType.RDPDR_DTYP_PRINT, i, f"PRN{i}", b"")
                for i in range(100, 100 + MAX_ANNOUNCED_DEVICES)]
    for start in range(0, MAX_ANNOUNCED_DEVICES, 128):  # 128: the most one announce holds
        server.receive(device_list(*printers[start:start + 128]), 0.0)
    assert len(server.data_to_send()) == MAX_ANNOUNCED_DEVICES  # each one answered
    with pytest.raises(ProtocolError, match="devices announced"):
        server.receive(device_list(printers[0]), 0.0)
