"""GCC Conference Create Request/Response and settings blocks (MS-RDPBCGR 2.2.1.3, 2.2.1.4)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu import gcc
from rdscard.pdu.gcc import (
    ChannelDef,
    ChannelOption,
    ClientClusterData,
    ClientCoreData,
    ClientGccData,
    ClientMessageChannelData,
    ClientMonitorData,
    ClientMonitorExtendedData,
    ClientMultitransportChannelData,
    ClientNetworkData,
    ClientSecurityData,
    ConferenceCreateRequest,
    ConferenceCreateResponse,
    MonitorAttributes,
    MonitorDef,
    ServerCoreData,
    ServerGccData,
    ServerMessageChannelData,
    ServerMultitransportChannelData,
    ServerNetworkData,
    ServerSecurityData,
    UnknownBlock,
)

# MS-RDPBCGR 4.1.3: the client settings blocks inside the Conference Create Request.
CS_CORE = bytes.fromhex(
    "01 c0 d8 00"  # TS_UD_HEADER: CS_CORE, length 216
    "04 00 08 00"  # version 0x00080004 (RDP 5.0+)
    "00 05"  # desktopWidth 1280
    "00 04"  # desktopHeight 1024
    "01 ca"  # colorDepth RNS_UD_COLOR_8BPP
    "03 aa"  # SASSequence RNS_UD_SAS_DEL
    "09 04 00 00"  # keyboardLayout 0x409 (US)
    "ce 0e 00 00"  # clientBuild 3790
    "45 00 4c 00 54 00 4f 00 4e 00 53 00 2d 00 44 00"  # clientName "ELTONS-D"
    "45 00 56 00 32 00 00 00 00 00 00 00 00 00 00 00"  # "EV2", NUL padded to 32 bytes
    "04 00 00 00"  # keyboardType 4 (IBM enhanced)
    "00 00 00 00"  # keyboardSubType
    "0c 00 00 00"  # keyboardFunctionKey 12
    + "00" * 64  # imeFileName (empty)
    + "01 ca"  # postBeta2ColorDepth RNS_UD_COLOR_8BPP
    "01 00"  # clientProductId 1
    "00 00 00 00"  # serialNumber
    "18 00"  # highColorDepth 24
    "07 00"  # supportedColorDepths 24 | 16 | 15 bpp
    "01 00"  # earlyCapabilityFlags RNS_UD_CS_SUPPORT_ERRINFO_PDU
    "36 00 39 00 37 00 31 00 32 00 2d 00 37 00 38 00"  # clientDigProductId "69712-78"
    "33 00 2d 00 30 00 33 00 35 00 37 00 39 00 37 00"  # "3-035797"
    "34 00 2d 00 34 00 32 00 37 00 31 00 34 00 00 00"  # "4-42714"
    + "00" * 16  # clientDigProductId padding
    + "00"  # connectionType
    "00"  # pad1octet
    "00 00 00 00"  # serverSelectedProtocol PROTOCOL_RDP
)
CS_CLUSTER = bytes.fromhex(
    "04 c0 0c 00"  # TS_UD_HEADER: CS_CLUSTER, length 12
    "0d 00 00 00"  # Flags: REDIRECTION_SUPPORTED | version 3 (0x0c)
    "00 00 00 00"  # RedirectedSessionID
)
CS_SECURITY = bytes.fromhex(
    "02 c0 0c 00"  # TS_UD_HEADER: CS_SECURITY, length 12
    "1b 00 00 00"  # encryptionMethods 40 | 128 | 56 | FIPS
    "00 00 00 00"  # extEncryptionMethods
)
CS_NET = bytes.fromhex(
    "03 c0 2c 00"  # TS_UD_HEADER: CS_NET, length 44
    "03 00 00 00"  # channelCount 3
    "72 64 70 64 72 00 00 00"  # name "rdpdr"
    "00 00 80 80"  # options INITIALIZED | COMPRESS_RDP
    "63 6c 69 70 72 64 72 00"  # name "cliprdr"
    "00 00 a0 c0"  # options INITIALIZED | ENCRYPT_RDP | COMPRESS_RDP | SHOW_PROTOCOL
    "72 64 70 73 6e 64 00 00"  # name "rdpsnd"
    "00 00 00 c0"  # options INITIALIZED | ENCRYPT_RDP
)
CLIENT_BLOCKS = CS_CORE + CS_CLUSTER + CS_SECURITY + CS_NET

# MS-RDPBCGR 4.1.3: the T.124 ConnectData around them (the MCS userData).
GCC_CONFERENCE_CREATE_REQUEST = (
    bytes.fromhex(
        "00"  # ConnectData::t124Identifier choice object
        "05 00 14 7c 00 01"  # object identifier 0.0.20.124.0.1
        "81 2a"  # connectPDU length 298
        "00"  # ConnectGCCPDU choice conferenceCreateRequest
        "08"  # options: userData present
        "00 10"  # conferenceName "1" (length 1 - 1, digit packed)
        "00"  # locked, listed, conductible FALSE; terminationMethod automatic
        "01"  # one userData set
        "c0"  # key h221NonStandard, value present
        "00 44 75 63 61"  # h221NonStandard "Duca"
        "81 1c"  # value length 284
    )
    + CLIENT_BLOCKS
)

# MS-RDPBCGR 4.1.4: the server settings blocks inside the Conference Create Response.
SC_CORE = bytes.fromhex(
    "01 0c 0c 00"  # TS_UD_HEADER: SC_CORE, length 12
    "04 00 08 00"  # version 0x00080004
    "00 00 00 00"  # clientRequestedProtocols PROTOCOL_RDP
)
SC_NET = bytes.fromhex(
    "03 0c 10 00"  # TS_UD_HEADER: SC_NET, length 16
    "eb 03"  # MCSChannelId 1003
    "03 00"  # channelCount 3
    "ec 03 ed 03 ee 03"  # channelIdArray 1004, 1005, 1006
    "00 00"  # Pad (odd channel count)
)
SERVER_RANDOM = bytes.fromhex(
    "10 11 77 20 30 61 0a 12 e4 34 a1 1e f2 c3 9f 31"
    "7d a4 5f 01 89 34 96 e0 ff 11 08 69 7f 1a c3 d2"
)
SERVER_CERTIFICATE = bytes.fromhex(  # a proprietary certificate (Standard RDP Security)
    "01 00 00 00 01 00 00 00 01 00 00 00 06 00 5c 00"
    "52 53 41 31 48 00 00 00 00 02 00 00 3f 00 00 00"
    "01 00 01 00 cb 81 fe ba 6d 61 c3 55 05 d5 5f 2e"
    "87 f8 71 94 d6 f1 a5 cb f1 5f 0c 3d f8 70 02 96"
    "c4 fb 9b c8 3c 2d 55 ae e8 ff 32 75 ea 68 79 e5"
    "a2 01 fd 31 a0 b1 1f 55 a6 1f c1 f6 d1 83 88 63"
    "26 56 12 bc 00 00 00 00 00 00 00 00 08 00 48 00"
    "e9 e1 d6 28 46 8b 4e f5 0a df fd ee 21 99 ac b4"
    "e1 8f 5f 81 57 82 ef 9d 96 52 63 27 18 29 db b3"
    "4a fd 9a da 42 ad b5 69 21 89 0e 1d c0 4c 1a a8"
    "aa 71 3e 0f 54 b9 9a e4 99 68 3f 6c d6 76 84 61"
    "00 00 00 00 00 00 00 00"
)
SC_SECURITY = (
    bytes.fromhex(
        "02 0c ec 00"  # TS_UD_HEADER: SC_SECURITY, length 236
        "02 00 00 00"  # encryptionMethod ENCRYPTION_METHOD_128BIT
        "02 00 00 00"  # encryptionLevel ENCRYPTION_LEVEL_CLIENT_COMPATIBLE
        "20 00 00 00"  # serverRandomLen 32
        "b8 00 00 00"  # serverCertLen 184
    )
    + SERVER_RANDOM
    + SERVER_CERTIFICATE
)
SERVER_BLOCKS = SC_CORE + SC_NET + SC_SECURITY

# MS-RDPBCGR 4.1.4: the T.124 ConnectData around them (the MCS userData).
GCC_CONFERENCE_CREATE_RESPONSE = (
    bytes.fromhex(
        "00"  # ConnectData::t124Identifier choice object
        "05 00 14 7c 00 01"  # object identifier 0.0.20.124.0.1
        "2a"  # connectPDU length: a fixed, wrong value Windows sends
        "14"  # ConnectGCCPDU choice conferenceCreateResponse, userData present
        "76 0a"  # nodeID 0x760a + 1001 = 31219
        "01 01"  # tag 1
        "00"  # result success
        "01"  # one userData set
        "c0"  # key h221NonStandard, value present
        "00 4d 63 44 6e"  # h221NonStandard "McDn"
        "81 08"  # value length 264
    )
    + SERVER_BLOCKS
)


# -- client side ------------------------------------------------------------


def test_client_core_data_spec_example() -> None:
    core = ClientCoreData.decode(CS_CORE)
    assert core.version == gcc.RdpVersion.RDP_VERSION_5_PLUS
    assert (core.desktop_width, core.desktop_height) == (1280, 1024)
    assert core.color_depth == gcc.ColorDepth.RNS_UD_COLOR_8BPP
    assert core.sas_sequence == 0xAA03
    assert core.keyboard_layout == 0x409
    assert core.client_build == 3790
    assert core.client_name == "ELTONS-DEV2"
    assert (core.keyboard_type, core.keyboard_sub_type, core.keyboard_function_key) == (4, 0, 12)
    assert core.ime_file_name == ""
    assert core.post_beta2_color_depth == gcc.ColorDepth.RNS_UD_COLOR_8BPP
    assert core.client_product_id == 1
    assert core.serial_number == 0
    assert core.high_color_depth == 24
    assert core.supported_color_depths == 0x07
    assert core.early_capability_flags == gcc.EarlyCapabilityFlags.RNS_UD_CS_SUPPORT_ERRINFO_PDU
    assert core.client_dig_product_id == "69712-783-0357974-42714"
    assert (core.connection_type, core.pad1octet, core.server_selected_protocol) == (0, 0, 0)
    assert core.desktop_physical_width is None
    assert core.device_scale_factor is None
    assert core.encode() == CS_CORE
    assert len(core.encode()) == 216


def test_client_blocks_spec_example() -> None:
    assert ClientClusterData.decode(CS_CLUSTER) == ClientClusterData(0x0D, 0)
    assert ClientSecurityData.decode(CS_SECURITY) == ClientSecurityData(0x1B, 0)
    net = ClientNetworkData.decode(CS_NET)
    assert [c.name for c in net.channels] == ["rdpdr", "cliprdr", "rdpsnd"]
    assert net.channel_def_array[0].options == (
        ChannelOption.CHANNEL_OPTION_INITIALIZED | ChannelOption.CHANNEL_OPTION_COMPRESS_RDP
    )
    assert net.channel_def_array[2].options == 0xC0000000
    for block, data in ((ClientClusterData, CS_CLUSTER), (ClientSecurityData, CS_SECURITY)):
        assert block.decode(data).encode() == data
    assert net.encode() == CS_NET


def test_conference_create_request_spec_example() -> None:
    request = ConferenceCreateRequest.decode(GCC_CONFERENCE_CREATE_REQUEST)
    assert request.conference_name == "1"
    assert request.user_data == CLIENT_BLOCKS
    assert request.encode() == GCC_CONFERENCE_CREATE_REQUEST
    assert len(GCC_CONFERENCE_CREATE_REQUEST) == 307


def test_decode_client_data_spec_example() -> None:
    client = gcc.decode_client_data(GCC_CONFERENCE_CREATE_REQUEST)
    assert client.core.client_name == "ELTONS-DEV2"
    assert client.cluster == ClientClusterData(0x0D, 0)
    assert client.security == ClientSecurityData(0x1B, 0)
    assert client.net is not None and len(client.net.channels) == 3
    assert client.monitor is None and client.monitor_ex is None
    assert client.unknown == ()
    # Windows block order (core, cluster, security, net) is kept on encode.
    assert client.encode() == CLIENT_BLOCKS


def test_client_core_data_short_tail() -> None:
    # An RDP 4 style block: fixed part plus postBeta2ColorDepth only.
    cut = CS_CORE[: 4 + 128 + 2]
    block = bytes.fromhex("01 c0") + len(cut).to_bytes(2, "little") + cut[4:]
    core = ClientCoreData.decode(block)
    assert core.post_beta2_color_depth == 0xCA01
    assert core.client_product_id is None
    assert core.encode() == block


def test_client_core_data_rejects_field_cut_in_half() -> None:
    cut = CS_CORE[: 4 + 128 + 3]  # one byte into clientProductId
    block = bytes.fromhex("01 c0") + len(cut).to_bytes(2, "little") + cut[4:]
    with pytest.raises(ProtocolError) as info:
        ClientCoreData.decode(block)
    assert info.value.pdu == "TS_UD_CS_CORE"
    assert info.value.field == "client_product_id"


def test_client_core_data_full_tail_round_trip() -> None:
    core = ClientCoreData(
        version=gcc.RdpVersion.RDP_VERSION_10_7,
        desktop_width=1920,
        desktop_height=1080,
        color_depth=gcc.ColorDepth.RNS_UD_COLOR_8BPP,
        sas_sequence=0xAA03,
        keyboard_layout=0x407,
        client_build=2600,
        client_name="freerdp",
        keyboard_type=4,
        keyboard_sub_type=0,
        keyboard_function_key=12,
        ime_file_name="",
        post_beta2_color_depth=0xCA01,
        client_product_id=1,
        serial_number=0,
        high_color_depth=32,
        supported_color_depths=0x0F,
        early_capability_flags=0x07A1,
        client_dig_product_id="",
        connection_type=gcc.ConnectionType.CONNECTION_TYPE_AUTODETECT,
        pad1octet=0,
        server_selected_protocol=1,
        desktop_physical_width=600,
        desktop_physical_height=340,
        desktop_orientation=0,
        desktop_scale_factor=100,
        device_scale_factor=100,
    )
    data = core.encode()
    assert len(data) == 234  # 216 + 4 + 4 + 2 + 4 + 4
    assert ClientCoreData.decode(data) == core


def test_client_core_data_refuses_gaps_and_long_names() -> None:
    base = ClientCoreData.decode(CS_CORE)
    with pytest.raises(ValueError):
        replace(base, client_product_id=None)  # serialNumber and later still present
    with pytest.raises(ValueError):
        replace(base, client_name="x" * 16).encode()
    assert len(replace(base, client_name="x" * 15).encode()) == 216


def test_client_monitor_blocks_round_trip() -> None:
    monitor = ClientMonitorData((MonitorDef(0, 0, 1919, 1079, 1), MonitorDef(-1280, 0, -1, 1023)))
    data = monitor.encode()
    assert data[:12] == bytes.fromhex("05 c0 34 00 00 00 00 00 02 00 00 00")
    assert data[24:28] == bytes.fromhex("37 04 00 00")  # bottom 1079
    assert ClientMonitorData.decode(data) == monitor
    ex = ClientMonitorExtendedData((MonitorAttributes(600, 340, 0, 100, 100),))
    data = ex.encode()
    assert data[:16] == bytes.fromhex("08 c0 24 00 00 00 00 00 14 00 00 00 01 00 00 00")
    assert ClientMonitorExtendedData.decode(data) == ex


def test_client_data_with_every_block_and_an_unknown_one() -> None:
    client = ClientGccData(
        core=ClientCoreData.decode(CS_CORE),
        security=ClientSecurityData(0, 0),
        net=ClientNetworkData((ChannelDef("rdpdr", 0x80800000), ChannelDef("drdynvc", 0xC0800000))),
        cluster=ClientClusterData(0x15, 0),
        monitor=ClientMonitorData((MonitorDef(0, 0, 1023, 767, 1),)),
        message_channel=ClientMessageChannelData(0),
        monitor_ex=ClientMonitorExtendedData((MonitorAttributes(0, 0, 0, 100, 100),)),
        multitransport=ClientMultitransportChannelData(0x301),
        unknown=(UnknownBlock(0xC00C, b"\x00\x00"),),
    )
    encoded = client.encode()
    assert ClientGccData.decode(encoded) == client
    wrapped = ConferenceCreateRequest(encoded).encode()
    assert gcc.decode_client_data(wrapped) == client


@pytest.mark.parametrize(
    ("blocks", "field"),
    [
        (CS_SECURITY, "CS_CORE"),  # no core block
        (CS_CORE + CS_CORE, "header.type"),  # duplicate
        (CS_CORE + b"\x02\xc0\x03\x00", "header.length"),  # block length below 4
        (CS_CORE + b"\x02\xc0\x0c\x00\x00", "block 0xc002"),  # truncated block
    ],
)
def test_client_data_rejects_bad_block_lists(blocks: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        ClientGccData.decode(blocks)
    assert info.value.field == field


def test_client_network_data_limits() -> None:
    too_many = b"\x03\xc0\x08\x00" + (32).to_bytes(4, "little")
    with pytest.raises(ProtocolError) as info:
        ClientNetworkData.decode(too_many)
    assert info.value.field == "channelCount"
    with pytest.raises(ProtocolError):
        ClientNetworkData.decode(CS_NET[:-1])  # header length now disagrees
    with pytest.raises(ValueError):
        ChannelDef("toolongname", 0).encode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (GCC_CONFERENCE_CREATE_REQUEST[:1] + b"\x05\x00\x14\x7c\x00\x02", "t124Identifier"),
        (b"\x01" + GCC_CONFERENCE_CREATE_REQUEST[1:], "t124Identifier"),
        (GCC_CONFERENCE_CREATE_REQUEST[:-1], "connectPDU"),
        (GCC_CONFERENCE_CREATE_REQUEST.replace(b"Duca", b"McDn"), "h221NonStandard"),
        (GCC_CONFERENCE_CREATE_REQUEST.replace(b"\x00\x08\x00\x10", b"\x00\x0c\x00\x10"),
         "ConferenceCreateRequest"),
    ],
)
def test_conference_create_request_rejects_malformed(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        ConferenceCreateRequest.decode(data)
    assert info.value.pdu == "GCC Conference Create Request"
    assert info.value.field == field


# -- server side ------------------------------------------------------------


def test_server_blocks_spec_example() -> None:
    assert ServerCoreData.decode(SC_CORE) == ServerCoreData(0x00080004, 0)
    assert ServerNetworkData.decode(SC_NET) == ServerNetworkData(1003, (1004, 1005, 1006))
    security = ServerSecurityData.decode(SC_SECURITY)
    assert security.encryption_method == gcc.EncryptionMethod.ENCRYPTION_METHOD_128BIT
    assert security.encryption_level == gcc.EncryptionLevel.ENCRYPTION_LEVEL_CLIENT_COMPATIBLE
    assert security.server_random == SERVER_RANDOM
    assert security.server_certificate == SERVER_CERTIFICATE
    assert ServerCoreData(0x00080004, 0).encode() == SC_CORE
    assert ServerNetworkData(1003, (1004, 1005, 1006)).encode() == SC_NET
    assert security.encode() == SC_SECURITY
    assert len(SC_SECURITY) == 236


def test_conference_create_response_spec_example() -> None:
    response = ConferenceCreateResponse.decode(GCC_CONFERENCE_CREATE_RESPONSE)
    assert (response.node_id, response.tag, response.result) == (31219, 1, 0)
    assert response.user_data == SERVER_BLOCKS
    server = ServerGccData.decode(response.user_data)
    assert server.encode() == SERVER_BLOCKS
    # The encoder writes the true connectPDU length (0x8117) where Windows put 0x2a.
    encoded = response.encode()
    assert encoded[7:9] == bytes.fromhex("81 17")
    assert encoded[:7] + encoded[9:] == (
        GCC_CONFERENCE_CREATE_RESPONSE[:7] + GCC_CONFERENCE_CREATE_RESPONSE[8:]
    )
    assert ConferenceCreateResponse.decode(encoded) == response


def test_server_data_response_for_tls() -> None:
    user_data = gcc.server_data_response(requested_protocols=0x0B, channel_ids=[1004, 1005, 1006])
    response = ConferenceCreateResponse.decode(user_data)
    assert response.user_data == bytes.fromhex(
        "01 0c 10 00"  # SC_CORE, length 16
        "04 00 08 00"  # version RDP 5.0+
        "0b 00 00 00"  # clientRequestedProtocols echoed
        "00 00 00 00"  # earlyCapabilityFlags
        "03 0c 10 00"  # SC_NET, length 16
        "eb 03 03 00 ec 03 ed 03 ee 03 00 00"  # 1003; 3 channels; pad
        "02 0c 0c 00"  # SC_SECURITY, length 12
        "00 00 00 00 00 00 00 00"  # no encryption method or level, nothing else
    )
    assert user_data[7:9] == bytes((len(user_data) - 8,)) + b"\x14"  # 1-byte length


def test_server_data_response_even_channels_and_message_channel() -> None:
    user_data = gcc.server_data_response(
        requested_protocols=1, channel_ids=(1004, 1005), message_channel_id=1006
    )
    server = ServerGccData.decode(ConferenceCreateResponse.decode(user_data).user_data)
    assert server.net == ServerNetworkData(1003, (1004, 1005))
    assert server.net.channel_ids == (1004, 1005)
    assert server.net.encode()[-2:] == b"\xed\x03"  # no pad for an even count
    assert server.message_channel == ServerMessageChannelData(1006)
    assert server.security == ServerSecurityData(0, 0)


def test_server_data_with_multitransport_round_trip() -> None:
    server = ServerGccData(
        core=ServerCoreData(0x0008000C, 3, 0x01),
        security=ServerSecurityData(),
        net=ServerNetworkData(1003, ()),
        message_channel=ServerMessageChannelData(1004),
        multitransport=ServerMultitransportChannelData(0x101),
    )
    assert ServerGccData.decode(server.encode()) == server
    with pytest.raises(ValueError):
        ServerCoreData(0x00080004, None, 1)


def test_server_data_rejects_missing_blocks() -> None:
    with pytest.raises(ProtocolError) as info:
        ServerGccData.decode(SC_CORE + SC_NET)
    assert info.value.field == "security"


def test_server_security_rejects_oversized_lengths() -> None:
    bad_random = SC_SECURITY[:12] + b"\x21\x00\x00\x00" + SC_SECURITY[16:]
    with pytest.raises(ProtocolError) as info:
        ServerSecurityData.decode(bad_random)
    assert info.value.field == "serverRandomLen"
    bad_cert = SC_SECURITY[:16] + b"\xb9\x00\x00\x00" + SC_SECURITY[20:]
    with pytest.raises(ProtocolError) as info:
        ServerSecurityData.decode(bad_cert)
    assert info.value.field == "serverCertLen"


# -- properties ---------------------------------------------------------------

_DECODERS: list[Callable[[bytes], object]] = [
    gcc.decode_client_data,
    ClientGccData.decode,
    ServerGccData.decode,
    ConferenceCreateRequest.decode,
    ConferenceCreateResponse.decode,
    ClientCoreData.decode,
    ClientNetworkData.decode,
    ClientMonitorData.decode,
    ClientMonitorExtendedData.decode,
    ServerSecurityData.decode,
    ServerNetworkData.decode,
    ServerCoreData.decode,
]


@given(st.binary(max_size=400))
def test_gcc_decoders_only_raise_protocol_error(data: bytes) -> None:
    for decode in _DECODERS:
        with contextlib.suppress(ProtocolError):
            decode(data)


_BLOCK_TYPES = [0xC001, 0xC002, 0xC003, 0xC004, 0xC005, 0xC006, 0xC008, 0xC00A, 0xC00C]


@given(st.lists(st.tuples(st.sampled_from(_BLOCK_TYPES), st.binary(max_size=240)), max_size=6))
def test_client_blocks_with_valid_headers_only_raise_protocol_error(
    blocks: list[tuple[int, bytes]],
) -> None:
    data = b"".join(
        kind.to_bytes(2, "little") + (len(body) + 4).to_bytes(2, "little") + body
        for kind, body in blocks
    )
    with contextlib.suppress(ProtocolError):
        ClientGccData.decode(data)
    with contextlib.suppress(ProtocolError):
        gcc.decode_client_data(ConferenceCreateRequest(data).encode())


@given(st.binary(min_size=0, max_size=140))
def test_client_core_tail_only_raises_protocol_error(tail: bytes) -> None:
    body = CS_CORE[4:132] + tail
    block = b"\x01\xc0" + (len(body) + 4).to_bytes(2, "little") + body
    with contextlib.suppress(ProtocolError):
        ClientCoreData.decode(block)


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=7)


@given(
    st.lists(st.tuples(_names, st.integers(0, 0xFFFFFFFF)), max_size=31),
    st.integers(0, 0xFFFFFFFF),
)
def test_client_network_data_round_trip(channels: list[tuple[str, int]], methods: int) -> None:
    net = ClientNetworkData(tuple(ChannelDef(name, options) for name, options in channels))
    data = net.encode()
    assert len(data) == 8 + 12 * len(channels)
    client = ClientGccData(ClientCoreData.decode(CS_CORE), ClientSecurityData(methods), net)
    assert gcc.decode_client_data(ConferenceCreateRequest(client.encode()).encode()) == client


@given(
    st.integers(0, 0xFFFF),
    st.lists(st.integers(0, 0xFFFF), max_size=31),
    st.integers(0, 0xFFFFFFFF),
)
def test_server_data_round_trip(io_channel: int, ids: list[int], protocols: int) -> None:
    user_data = gcc.server_data_response(
        requested_protocols=protocols, io_channel_id=io_channel, channel_ids=ids
    )
    server = ServerGccData.decode(ConferenceCreateResponse.decode(user_data).user_data)
    assert server.net == ServerNetworkData(io_channel, tuple(ids))
    assert server.core.client_requested_protocols == protocols
    assert len(server.net.encode()) == 8 + 2 * len(ids) + 2 * (len(ids) % 2)
