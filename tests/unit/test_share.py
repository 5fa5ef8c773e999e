"""Share Control and Share Data PDUs (MS-RDPBCGR 2.2.8.1.1.1): capabilities and finalisation."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu import share
from rdscard.pdu.capabilities import (
    BitmapCacheRev2CapabilitySet,
    BitmapCapabilitySet,
    GeneralCapabilitySet,
    InputCapabilitySet,
    RawCapabilitySet,
    ShareCapabilitySet,
    VirtualChannelCapabilitySet,
    find_capability,
)
from rdscard.pdu.share import (
    ConfirmActive,
    Control,
    ControlAction,
    DeactivateAll,
    DemandActive,
    ErrorInfo,
    FlowPdu,
    FontList,
    FontMap,
    InfoType,
    InputPdu,
    PersistentKeyList,
    RawShareControl,
    RawShareData,
    Rectangle16,
    RefreshRect,
    SaveSessionInfo,
    SetErrorInfo,
    ShareData,
    ShutdownDenied,
    ShutdownRequest,
    StreamId,
    SuppressOutput,
    Synchronize,
    decode_share_pdu,
    decode_share_pdus,
    wrap_share_data,
)

SHARE_ID = 0x000103EA
SERVER = 0x03EA  # server channel id
USER = 0x03EF  # user channel id in these examples

# -- Demand Active (MS-RDPBCGR 2.2.1.13.1) ------------------------------------------
# A Windows server's decrypted Demand Active, with the capability sets of the
# MS-RDPBCGR 4.1.12 example (RAIL and Window List included). Pad bytes carry
# uninitialised memory on purpose: they must survive a round trip.
DEMAND_ACTIVE = bytes.fromhex(
    "6f01"  # totalLength = 367
    "1100"  # pduType = TS_PROTOCOL_VERSION | PDUTYPE_DEMANDACTIVEPDU
    "ea03"  # pduSource = 1002
    "ea030100"  # shareID = 0x000103ea
    "0400"  # lengthSourceDescriptor = 4
    "5901"  # lengthCombinedCapabilities = 345
    "52445000"  # sourceDescriptor = "RDP\0"
    "0d00"  # numberCapabilities = 13
    "0000"  # pad2Octets
    "09000800ea03dce2"  # Share: nodeId = 1002, pad2octets = 0xe2dc
    "01001800010003000002000000001d040000000000000101"  # General: Windows NT, extra 0x041d
    "14000c000200000040060000"  # Virtual Channel: VCCAPS_COMPR_CS_8K, VCChunkSize = 1600
    "160028000000000070f613f30100000001000000180000009cf613f361a6828000000000005091bf"
    #   ^ Draw GDI+ (kept raw)
    "0e00080000010000"  # Font: fontSupportFlags = 0x0100
    "02001c00180001000100010000050004000001000100000001000000"  # Bitmap: 24 bpp, 1280x1024
    # Order: 16-byte terminalDescriptor, granularity 1x20, orderFlags 0x22, orderSupport,
    # desktopSaveSize 1000000
    "03005800000000000000000000000000000000000000000001001400000001000000220001010101"
    "01000001010101010000000101010101010101000101010100000000000000000000000040420f00"
    "0000000000000000"
    "0a00080006000000"  # Color Table Cache: 6
    "1200080001000000"  # Bitmap Cache Host Support: TS_BITMAPCACHE_REV2
    "08000a00010019001900"  # Pointer: color, cache 25, pointer cache 25
    # Input: inputFlags 0x35, the rest uninitialised
    "0d00580035000000a1060000000000000cf613f3935a37f3009030e1341c38f340f613f304000000"
    "4c54dce20850dce2010000000850dce20000000038f613f32e0538f30850dce22cf613f300000000"
    "08000a0001000000"
    "1700080000000000"  # RAIL (kept raw)
    "18000b0000000000000000"  # Window List (kept raw)
    "00000000"  # sessionId = 0
)


def test_demand_active_decode() -> None:
    pdu = decode_share_pdu(DEMAND_ACTIVE)
    assert isinstance(pdu, DemandActive)
    assert pdu.share_id == SHARE_ID
    assert pdu.pdu_source == SERVER
    assert pdu.source_descriptor == b"RDP\0"
    assert pdu.session_id == 0
    assert len(pdu.capability_sets) == 13
    general = find_capability(pdu.capability_sets, GeneralCapabilitySet)
    assert general is not None and general.extra_flags == 0x041D
    assert general.refresh_rect_support == 1 and general.suppress_output_support == 1
    bitmap = find_capability(pdu.capability_sets, BitmapCapabilitySet)
    assert bitmap is not None
    assert (bitmap.preferred_bits_per_pixel, bitmap.desktop_width, bitmap.desktop_height) == (
        24,
        1280,
        1024,
    )
    channel = find_capability(pdu.capability_sets, VirtualChannelCapabilitySet)
    assert channel is not None and channel.chunk_size == 1600
    node = find_capability(pdu.capability_sets, ShareCapabilitySet)
    assert node is not None and node.node_id == SERVER
    raw = [c.capability_set_type for c in pdu.capability_sets if isinstance(c, RawCapabilitySet)]
    assert raw == [0x16, 0x17, 0x18]


def test_demand_active_round_trip_and_size() -> None:
    pdu = DemandActive.decode(DEMAND_ACTIVE)
    encoded = pdu.encode()
    assert encoded == DEMAND_ACTIVE
    assert len(encoded) == 367


def test_minimal_server_demand_active_is_exact() -> None:
    sets = (
        GeneralCapabilitySet(),
        BitmapCapabilitySet(preferred_bits_per_pixel=32, desktop_width=1024, desktop_height=768),
        VirtualChannelCapabilitySet(),
    )
    pdu = DemandActive(SHARE_ID, sets, session_id=7)
    encoded = pdu.encode()
    expected = 6 + 4 + 2 + 2 + 4 + 4 + 24 + 28 + 12 + 4
    assert len(encoded) == expected
    assert encoded[:2] == expected.to_bytes(2, "little")
    assert encoded[12:14] == (4 + 24 + 28 + 12).to_bytes(2, "little")
    assert encoded[-4:] == b"\x07\x00\x00\x00"
    assert decode_share_pdu(encoded) == pdu


# -- Confirm Active (MS-RDPBCGR 2.2.1.13.2) ------------------------------------------
# A Windows client's decrypted Confirm Active ("MSTSC", 18 capability sets), as in
# the MS-RDPBCGR 4.1.13 example.
CONFIRM_ACTIVE = bytes.fromhex(
    "f001"  # totalLength = 496
    "1300"  # pduType = TS_PROTOCOL_VERSION | PDUTYPE_CONFIRMACTIVEPDU
    "ef03"  # pduSource = 1007
    "ea030100"  # shareID
    "ea03"  # originatorID = 1002
    "0600"  # lengthSourceDescriptor = 6
    "da01"  # lengthCombinedCapabilities = 474
    "4d5354534300"  # sourceDescriptor = "MSTSC\0"
    "1200"  # numberCapabilities = 18
    "0000"  # pad2Octets
    "01001800010003000002000000001d040000000000000000"  # General
    "02001c00180001000100010000050004000001000100000001000000"  # Bitmap
    "030058000000000000000000000000000000000000000000010014000000010000002a0001010101"
    "01000001010100010000000101010101010101000101010000000000000000000000000000840300"
    "0000000000000000"  # Order
    "13002800030000037800000078000000fb0900800000000000000000000000000000000000000000"
    #   ^ Bitmap Cache Rev2: 3 caches of 120, 120, 2555 (persistent) entries
    "0a00080006000000"  # Color Table Cache
    "07000c000000000000000000"  # Window Activation
    "05000c000000000002000200"  # Control
    "08000a00010014001500"  # Pointer
    "0900080000000000"  # Share
    "0d005800150000000904000004000000000000000c00000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000"  # Input: scancodes|mousex|unicode, layout 0x409, type 4, 12 F-keys
    "0c00080001000000"  # Sound: beeps
    "0e00080001000000"  # Font: FONTSUPPORT_FONTLIST
    "10003400fe000400fe000400fe000800fe000800fe001000fe002000fe004000fe008000fe000001"
    "400000080001000103000000"  # Glyph Cache: GLYPH_SUPPORT_ENCODE
    "0f00080001000000"  # Brush: BRUSH_COLOR_8x8
    "11000c0001000000001e6400"  # Offscreen Bitmap Cache: 7680 KB, 100 entries
    "14000c000100000040060000"  # Virtual Channel: VCCAPS_COMPR_SC, 1600
    "15000c0002000000000a0001"  # Draw Nine Grid Cache (kept raw)
    "16002800000000000000000000000000000000000000000000000000000000000000000000000000"
    #   ^ Draw GDI+ (kept raw)
)


def test_confirm_active_decode() -> None:
    pdu = ConfirmActive.decode(CONFIRM_ACTIVE)
    assert (pdu.share_id, pdu.originator_id, pdu.pdu_source) == (SHARE_ID, SERVER, USER)
    assert pdu.source_descriptor == b"MSTSC\0"
    assert len(pdu.capability_sets) == 18
    cache = find_capability(pdu.capability_sets, BitmapCacheRev2CapabilitySet)
    assert cache is not None
    assert [cache.cell_info(i) for i in range(3)] == [(120, False), (120, False), (2555, True)]
    keyboard = find_capability(pdu.capability_sets, InputCapabilitySet)
    assert keyboard is not None
    assert (keyboard.keyboard_layout, keyboard.keyboard_type) == (0x409, 4)
    assert keyboard.keyboard_function_key == 12
    channel = find_capability(pdu.capability_sets, VirtualChannelCapabilitySet)
    assert channel is not None and channel.flags == 1 and channel.vc_chunk_size == 1600


def test_confirm_active_round_trip_and_size() -> None:
    pdu = ConfirmActive.decode(CONFIRM_ACTIVE)
    assert pdu.encode() == CONFIRM_ACTIVE
    assert len(pdu.encode()) == 496


def test_confirm_active_with_short_virtual_channel_set() -> None:
    # Older clients send the Virtual Channel set without VCChunkSize (2.2.7.1.10).
    pdu = ConfirmActive(SHARE_ID, (VirtualChannelCapabilitySet(0, None),), pdu_source=USER)
    encoded = pdu.encode()
    decoded = decode_share_pdu(encoded)
    assert isinstance(decoded, ConfirmActive)
    channel = decoded.capability_sets[0]
    assert isinstance(channel, VirtualChannelCapabilitySet)
    assert channel.vc_chunk_size is None and channel.chunk_size == 1600


def test_demand_active_decode_rejects_confirm_active() -> None:
    with pytest.raises(ProtocolError):
        DemandActive.decode(CONFIRM_ACTIVE)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b[:-1], "totalLength"),
        (lambda b: b + b"\x00", "(end)"),
        (lambda b: b"\x05\x00" + b[2:], "totalLength"),
        (lambda b: b[:12] + b"\x5a\x01" + b[14:], "lengthCombinedCapabilities"),
        (lambda b: b[:18] + b"\x0e\x00" + b[20:], "capabilitySetType"),  # one set too many
        (lambda b: b[:24] + b"\x03\x00" + b[26:], "lengthCapability"),  # shorter than header
        (lambda b: b[:22] + b"\x03\x00" + b[24:], "terminalDescriptor"),  # Share read as Order
        (lambda b: b[:10] + b"\x01\x02" + b[12:], "lengthSourceDescriptor"),
        (lambda b: b[:18] + b"\x41\x00" + b[20:], "numberCapabilities"),
    ],
    ids=["truncated", "trailing", "short", "combined", "count", "len", "type", "desc", "many"],
)
def test_demand_active_malformed(mutate: object, field: str) -> None:
    data = mutate(DEMAND_ACTIVE)  # type: ignore[operator]
    with pytest.raises(ProtocolError) as info:
        decode_share_pdu(data)
    assert info.value.field == field


# -- finalisation (MS-RDPBCGR 2.2.1.14 - 2.2.1.22) -----------------------------------
# MS-RDPBCGR 4.1.19 Server Synchronize PDU (decrypted; the example's header was
# 03 00 00 30 | 02 f0 80 | 68 00 01 03 eb 70 22 | 08 08 02 03 + 8-byte signature).
SPEC_SERVER_SYNCHRONIZE = bytes.fromhex(
    "1600"  # totalLength = 22
    "1700"  # pduType = TS_PROTOCOL_VERSION | PDUTYPE_DATAPDU
    "ea03"  # pduSource = 1002
    "ea030100"  # shareID
    "14"  # pad1 (uninitialised)
    "00"  # streamId = STREAM_UNDEFINED
    "1600"  # uncompressedLength = 22
    "1f"  # pduType2 = PDUTYPE2_SYNCHRONIZE
    "00"  # compressedType
    "0000"  # compressedLength
    "0100"  # messageType = SYNCMSGTYPE_SYNC
    "6344"  # targetUser (uninitialised in the example)
)

# MS-RDPBCGR 4.2.2 Server Shutdown Request Denied PDU (decrypted).
SPEC_SHUTDOWN_DENIED = bytes.fromhex(
    "1200" "1700" "ea03"  # totalLength 18, PDUTYPE_DATAPDU, pduSource 1002
    "ea030200"  # shareID = 0x000203ea
    "a6"  # pad1 (uninitialised)
    "02"  # streamID = STREAM_MED
    "1200"  # uncompressedLength = 18
    "25"  # pduType2 = PDUTYPE2_SHUTDOWN_DENIED
    "00" "0000"
)


def test_spec_server_synchronize() -> None:
    pdu = decode_share_pdu(SPEC_SERVER_SYNCHRONIZE)
    assert isinstance(pdu, ShareData)
    assert pdu.body == Synchronize(target_user=0x4463)
    assert (pdu.share_id, pdu.pdu_source, pdu.stream_id) == (SHARE_ID, SERVER, 0)
    assert pdu.pdu_type2 == share.PduType2.PDUTYPE2_SYNCHRONIZE
    assert pdu.encode() == SPEC_SERVER_SYNCHRONIZE


def test_spec_shutdown_denied() -> None:
    pdu = decode_share_pdu(SPEC_SHUTDOWN_DENIED)
    assert isinstance(pdu, ShareData)
    assert pdu.body == ShutdownDenied()
    assert pdu.stream_id == StreamId.STREAM_MED
    assert pdu.encode() == SPEC_SHUTDOWN_DENIED


def share_data(pdu_source: int, stream: int, body_len: int, pdu_type2: int, body: str) -> bytes:
    """A Share Data PDU with a zero pad1 and uncompressedLength = body length."""
    total = 18 + body_len
    return bytes.fromhex(
        f"{total:02x}00" "1700" f"{pdu_source & 0xFF:02x}{pdu_source >> 8:02x}" "ea030100"
        f"00{stream:02x}{body_len:02x}00{pdu_type2:02x}000000" + body
    )


# Built from the field values of the spec sections (client PDUs from user 1007,
# server PDUs from 1002, STREAM_LOW / STREAM_MED as in the 4.1.15 - 4.1.22 examples).
FINALISATION = [
    # 2.2.1.14 Client Synchronize: SYNCMSGTYPE_SYNC, targetUser = 1002
    (share_data(USER, 1, 4, 0x1F, "0100" "ea03"), Synchronize(SERVER)),
    # 2.2.1.15 Client Control - Cooperate
    (share_data(USER, 1, 8, 0x14, "0400" "0000" "00000000"), Control.cooperate()),
    # 2.2.1.16 Client Control - Request Control
    (share_data(USER, 1, 8, 0x14, "0100" "0000" "00000000"), Control.request_control()),
    # 2.2.1.18 Client Font List: 0 fonts, FONTLIST_FIRST | FONTLIST_LAST, entrySize 50
    (share_data(USER, 1, 8, 0x27, "0000" "0000" "0300" "3200"), FontList()),
    # 2.2.1.19 Server Synchronize: targetUser = 1007
    (share_data(SERVER, 2, 4, 0x1F, "0100" "ef03"), Synchronize(USER)),
    # 2.2.1.20 Server Control - Cooperate
    (share_data(SERVER, 2, 8, 0x14, "0400" "0000" "00000000"), Control.cooperate()),
    # 2.2.1.21 Server Control - Granted Control: grantId = 1007, controlId = 1002
    (
        share_data(SERVER, 2, 8, 0x14, "0200" "ef03" "ea030000"),
        Control.granted_control(USER, SERVER),
    ),
    # 2.2.1.22 Server Font Map: 0 entries, FONTMAP_FIRST | FONTMAP_LAST, entrySize 4
    (share_data(SERVER, 2, 8, 0x28, "0000" "0000" "0300" "0400"), FontMap()),
]


@pytest.mark.parametrize(("data", "body"), FINALISATION, ids=lambda v: type(v).__name__)
def test_finalisation_pdus(data: bytes, body: share.ShareDataBody) -> None:
    pdu = decode_share_pdu(data)
    assert isinstance(pdu, ShareData)
    assert pdu.body == body
    assert pdu.encode() == data
    source = pdu.pdu_source
    wrapped = wrap_share_data(body, share_id=SHARE_ID, pdu_source=source, stream_id=pdu.stream_id)
    assert wrapped == data
    assert len(wrapped) == 18 + len(body.encode())


def test_granted_control_fields() -> None:
    control = Control.granted_control(USER, SERVER)
    assert control.action == ControlAction.CTRLACTION_GRANTED_CONTROL
    assert (control.grant_id, control.control_id) == (USER, SERVER)


def test_unknown_control_action_rejected() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_share_pdu(share_data(USER, 1, 8, 0x14, "0900" "0000" "00000000"))
    assert (info.value.pdu, info.value.field) == ("Control PDU", "action")


def test_synchronize_wrong_message_type() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_share_pdu(share_data(USER, 1, 4, 0x1F, "0200" "ea03"))
    assert info.value.field == "messageType"


def test_persistent_key_list_accepted() -> None:
    keys = bytes(range(16))
    body = PersistentKeyList((2, 0, 0, 0, 0), (2, 0, 0, 0, 0), 0x03, keys)
    encoded = wrap_share_data(body, share_id=SHARE_ID, pdu_source=USER)
    assert len(encoded) == 18 + 24 + 16
    pdu = decode_share_pdu(encoded)
    assert isinstance(pdu, ShareData) and pdu.body == body


def test_persistent_key_list_length_mismatch() -> None:
    body = PersistentKeyList((2, 0, 0, 0, 0), (2, 0, 0, 0, 0), 0x03, bytes(16)).encode()
    with pytest.raises(ProtocolError) as info:
        decode_share_pdu(share_data(USER, 1, len(body) - 8, 0x2B, body[:-8].hex()))
    assert info.value.field == "entries"


# -- other data PDUs ---------------------------------------------------------------


def test_set_error_info() -> None:
    encoded = wrap_share_data(
        SetErrorInfo(ErrorInfo.ERRINFO_LOGOFF_BY_USER), share_id=SHARE_ID, pdu_source=SERVER
    )
    # 2.2.5.1.1: pduSource MUST be zero
    assert encoded == share_data(0, 1, 4, 0x2F, "0c000000")
    pdu = decode_share_pdu(encoded)
    assert isinstance(pdu, ShareData)
    assert pdu.body == SetErrorInfo(ErrorInfo.ERRINFO_LOGOFF_BY_USER)
    assert isinstance(pdu.body.error_info, ErrorInfo)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ERRINFO_RPC_INITIATED_DISCONNECT", 1),
        ("ERRINFO_RPC_INITIATED_LOGOFF", 2),
        ("ERRINFO_IDLE_TIMEOUT", 3),
        ("ERRINFO_LOGON_TIMEOUT", 4),
        ("ERRINFO_DISCONNECTED_BY_OTHERCONNECTION", 5),
        ("ERRINFO_OUT_OF_MEMORY", 6),
        ("ERRINFO_SERVER_DENIED_CONNECTION", 7),
        ("ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES", 9),
        ("ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED", 0xA),
        ("ERRINFO_RPC_INITIATED_DISCONNECT_BYUSER", 0xB),
        ("ERRINFO_LOGOFF_BY_USER", 0xC),
    ],
)
def test_error_info_codes(name: str, value: int) -> None:
    assert ErrorInfo[name] == value


def test_set_error_info_unknown_code_kept() -> None:
    pdu = decode_share_pdu(share_data(0, 1, 4, 0x2F, "78563412"))
    assert isinstance(pdu, ShareData) and pdu.body == SetErrorInfo(0x12345678)


def test_shutdown_request_and_denied() -> None:
    request = decode_share_pdu(share_data(USER, 1, 0, 0x24, ""))
    assert isinstance(request, ShareData) and request.body == ShutdownRequest()
    denied = wrap_share_data(ShutdownDenied(), share_id=SHARE_ID)
    assert denied == share_data(SERVER, 1, 0, 0x25, "")


def test_save_session_info_logon_long() -> None:
    body = SaveSessionInfo.logon_long(3, "EXAMPLE", "alice")
    data = body.encode()
    # infoType, Version 1, Size 18, SessionId 3, cbDomain 16, cbUserName 12
    assert data[:22] == bytes.fromhex("01000000" "0100" "12000000" "03000000" "10000000" "0c000000")
    assert len(data) == 4 + 18 + 558 + 16 + 12
    pdu = decode_share_pdu(wrap_share_data(body, share_id=SHARE_ID))
    assert isinstance(pdu, ShareData) and pdu.body == body


def test_save_session_info_plain_notify() -> None:
    body = SaveSessionInfo.plain_notify()
    assert body.encode() == bytes.fromhex("02000000") + bytes(576)
    assert SaveSessionInfo.decode(body.encode()) == body
    assert body.info_type == InfoType.INFOTYPE_LOGON_PLAINNOTIFY


def test_save_session_info_limits() -> None:
    with pytest.raises(ProtocolError):
        SaveSessionInfo.decode(bytes.fromhex("02000000") + bytes(100))
    with pytest.raises(ProtocolError):
        SaveSessionInfo.decode(bytes.fromhex("02000000") + bytes(5000))
    with pytest.raises(ProtocolError):
        SaveSessionInfo.decode(bytes.fromhex("09000000") + bytes(576))


def test_refresh_rect() -> None:
    data = share_data(USER, 1, 12, 0x21, "01000000" "00000000" "ff031f03")
    pdu = decode_share_pdu(data)
    assert isinstance(pdu, ShareData)
    assert pdu.body == RefreshRect((Rectangle16(0, 0, 1023, 799),))
    assert pdu.encode() == data


def test_refresh_rect_count_mismatch() -> None:
    with pytest.raises(ProtocolError):
        decode_share_pdu(share_data(USER, 1, 12, 0x21, "02000000" "00000000" "ff031f03"))
    with pytest.raises(ProtocolError):
        decode_share_pdu(share_data(USER, 1, 4, 0x21, "00000000"))


def test_suppress_output() -> None:
    off = share_data(USER, 1, 4, 0x23, "00000000")
    on = share_data(USER, 1, 12, 0x23, "01000000" "00000000" "ff031f03")
    pdu_off, pdu_on = decode_share_pdu(off), decode_share_pdu(on)
    assert isinstance(pdu_off, ShareData) and isinstance(pdu_on, ShareData)
    assert pdu_off.body == SuppressOutput(0)
    assert pdu_on.body == SuppressOutput(1, Rectangle16(0, 0, 1023, 799))
    assert isinstance(pdu_on.body, SuppressOutput) and pdu_on.body.allowed
    assert (pdu_off.encode(), pdu_on.encode()) == (off, on)
    with pytest.raises(ProtocolError):
        decode_share_pdu(share_data(USER, 1, 4, 0x23, "01000000"))
    with pytest.raises(ProtocolError):
        decode_share_pdu(share_data(USER, 1, 4, 0x23, "02000000"))


def test_input_body_is_handed_over_raw() -> None:
    # one slow-path scancode event (2.2.8.1.1.3.1.1.1)
    events = "0100" "0000" "00000000" "0400" "0000" "1e00" "0000"
    pdu = decode_share_pdu(share_data(USER, 1, 16, 0x1C, events))
    assert isinstance(pdu, ShareData)
    assert pdu.body == InputPdu(bytes.fromhex(events))


def test_unknown_pdu_type2_kept_raw() -> None:
    data = share_data(USER, 1, 2, 0x37, "abcd")
    pdu = decode_share_pdu(data)
    assert isinstance(pdu, ShareData)
    assert pdu.body == RawShareData(0x37, b"\xab\xcd")
    assert pdu.encode() == data


def test_compressed_data_refused() -> None:
    data = bytearray(share_data(USER, 1, 4, 0x1F, "0100ea03"))
    data[15] = 0x21  # compressedType = PACKET_COMPRESSED | 64K
    with pytest.raises(ProtocolError) as info:
        decode_share_pdu(bytes(data))
    assert info.value.field == "compressedType"


# -- control PDUs and the dispatcher -------------------------------------------------


def test_deactivate_all() -> None:
    data = bytes.fromhex("0d00" "1600" "ea03" "ea030100" "0100" "00")
    pdu = decode_share_pdu(data)
    assert pdu == DeactivateAll(SHARE_ID)
    assert DeactivateAll(SHARE_ID).encode() == data


def test_flow_pdu_and_unknown_type() -> None:
    flow = bytes.fromhex("0080" "00" "42" "01" "02" "ef03")
    assert decode_share_pdu(flow) == FlowPdu(0x42, 1, 2, USER)
    assert FlowPdu(0x42, 1, 2, USER).encode() == flow
    redirect = bytes.fromhex("0a00" "1a00" "ea03" "0000" "0000")
    pdu = decode_share_pdu(redirect)
    assert pdu == RawShareControl(0xA, SERVER, b"\x00\x00\x00\x00")
    assert isinstance(pdu, RawShareControl) and pdu.encode() == redirect


def test_several_pdus_in_one_payload() -> None:
    data = FINALISATION[0][0] + FINALISATION[1][0] + FINALISATION[2][0]
    pdus = decode_share_pdus(data)
    assert [p.body for p in pdus if isinstance(p, ShareData)] == [
        Synchronize(SERVER),
        Control.cooperate(),
        Control.request_control(),
    ]
    with pytest.raises(ProtocolError):
        decode_share_pdu(data)


def test_total_length_too_small() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_share_pdu(bytes.fromhex("0400" "1700" "ea03"))
    assert info.value.field == "totalLength"


# -- properties -------------------------------------------------------------------


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_share_pdu(data)


@given(st.binary(max_size=200), st.integers(0, 0xFF), st.integers(1, 0xF))
def test_framed_noise_raises_only_protocol_error(body: bytes, type2: int, pdu_type: int) -> None:
    total = 18 + len(body)
    header = total.to_bytes(2, "little") + (0x10 | pdu_type).to_bytes(2, "little") + b"\xef\x03"
    data = header + b"\xea\x03\x01\x00\x00\x01" + len(body).to_bytes(2, "little")
    data += bytes([type2, 0, 0, 0]) + body
    with contextlib.suppress(ProtocolError):
        decode_share_pdu(data)


@given(st.binary(min_size=1, max_size=64))
def test_mutated_demand_active_raises_only_protocol_error(noise: bytes) -> None:
    data = bytearray(DEMAND_ACTIVE)
    for index, value in enumerate(noise):
        data[(index * 41 + value * 7) % len(data)] = value
    with contextlib.suppress(ProtocolError):
        decode_share_pdu(bytes(data))


@given(
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(1, 0xFFFF),
    st.integers(1, 0xFFFF),
)
def test_demand_active_round_trip(
    share_id: int, source: int, session: int, width: int, height: int
) -> None:
    pdu = DemandActive(
        share_id,
        (
            GeneralCapabilitySet(),
            BitmapCapabilitySet(desktop_width=width, desktop_height=height),
            VirtualChannelCapabilitySet(),
        ),
        session_id=session,
        pdu_source=source,
    )
    assert decode_share_pdu(pdu.encode()) == pdu


def test_total_length_past_the_mcs_pdu_is_clamped_for_back_to_back_decoding() -> None:
    """aardwolf's client Synchronize says totalLength 28 for a 22-byte PDU."""
    data = bytes.fromhex("1c001700eb03ea03010000021c001f0000000100eb03")
    (pdu,) = share.decode_share_pdus(data)
    assert isinstance(pdu, share.ShareData)
    assert isinstance(pdu.body, share.Synchronize)
    assert pdu.body.target_user == 0x03EB
