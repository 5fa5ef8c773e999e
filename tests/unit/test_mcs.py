"""MCS connect and domain PDUs, with the BER and PER helpers (MS-RDPBCGR 2.2.1.3-2.2.1.9)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu import ber, gcc, mcs, per, tpkt, x224
from rdscard.pdu.buffer import Reader, Writer
from tests.unit.test_gcc import GCC_CONFERENCE_CREATE_REQUEST, GCC_CONFERENCE_CREATE_RESPONSE

# MS-RDPBCGR 4.1.3 Client MCS Connect Initial PDU with GCC Conference Create Request
CONNECT_INITIAL = (
    bytes.fromhex(
        "03 00 01 a0"  # TPKT, length 416
        "02 f0 80"  # X.224 Data TPDU
        "7f 65 82 01 94"  # BER [APPLICATION 101] Connect-Initial, length 404
        "04 01 01"  # callingDomainSelector 0x01
        "04 01 01"  # calledDomainSelector 0x01
        "01 01 ff"  # upwardFlag TRUE
        "30 19"  # targetParameters
        "02 01 22 02 01 02 02 01 00 02 01 01"  # maxChannelIds 34, maxUserIds 2, maxTokenIds 0, ...
        "02 01 00 02 01 01 02 02 ff ff 02 01 02"  # ... maxMCSPDUsize 65535, protocolVersion 2
        "30 19"  # minimumParameters
        "02 01 01 02 01 01 02 01 01 02 01 01"  # 1, 1, 1, numPriorities 1
        "02 01 00 02 01 01 02 02 04 20 02 01 02"  # 0, 1, maxMCSPDUsize 1056, 2
        "30 1c"  # maximumParameters
        "02 02 ff ff 02 02 fc 17 02 02 ff ff 02 01 01"  # 65535, 64535, 65535, 1
        "02 01 00 02 01 01 02 02 ff ff 02 01 02"  # 0, 1, 65535, 2
        "04 82 01 33"  # userData OCTET STRING, length 307
    )
    + GCC_CONFERENCE_CREATE_REQUEST
)

# MS-RDPBCGR 4.1.4 Server MCS Connect Response PDU with GCC Conference Create Response
CONNECT_RESPONSE = (
    bytes.fromhex(
        "03 00 01 51"  # TPKT, length 337
        "02 f0 80"  # X.224 Data TPDU
        "7f 66 82 01 45"  # BER [APPLICATION 102] Connect-Response, length 325
        "0a 01 00"  # result rt-successful
        "02 01 00"  # calledConnectId 0
        "30 1a"  # domainParameters
        "02 01 22 02 01 03 02 01 00 02 01 01"  # maxChannelIds 34, maxUserIds 3, 0, 1
        "02 01 00 02 01 01 02 03 00 ff f8 02 01 02"  # 0, 1, maxMCSPDUsize 65528, 2
        "04 82 01 1f"  # userData OCTET STRING, length 287
    )
    + GCC_CONFERENCE_CREATE_RESPONSE
)

# MS-RDPBCGR 4.1.5-4.1.8 and 4.2.3: TPKT + X.224 Data + PER DomainMCSPDU.
ERECT_DOMAIN_REQUEST = bytes.fromhex(
    "03 00 00 0c 02 f0 80"
    "04"  # erectDomainRequest (1) << 2
    "01 00"  # subHeight: length 1, 0
    "01 00"  # subInterval: length 1, 0
)
ATTACH_USER_REQUEST = bytes.fromhex("03 00 00 08 02 f0 80" "28")  # attachUserRequest (10) << 2
ATTACH_USER_CONFIRM = bytes.fromhex(
    "03 00 00 0b 02 f0 80"
    "2e"  # attachUserConfirm (11) << 2 | initiator present, result high bit 0
    "00"  # result rt-successful (low 3 bits), padding
    "00 06"  # initiator 1001 + 6 = 1007
)
CHANNEL_JOIN_REQUEST_1007 = bytes.fromhex(
    "03 00 00 0c 02 f0 80"
    "38"  # channelJoinRequest (14) << 2
    "00 06"  # initiator 1007
    "03 ef"  # channelId 1007 (the user channel)
)
CHANNEL_JOIN_REQUEST_1003 = bytes.fromhex("03 00 00 0c 02 f0 80 38 00 06 03 eb")  # I/O channel
CHANNEL_JOIN_CONFIRM_1007 = bytes.fromhex(
    "03 00 00 0f 02 f0 80"
    "3e"  # channelJoinConfirm (15) << 2 | channelId present
    "00"  # result rt-successful
    "00 06"  # initiator 1007
    "03 ef"  # requested 1007
    "03 ef"  # channelId 1007
)
CHANNEL_JOIN_CONFIRM_1006 = bytes.fromhex("03 00 00 0f 02 f0 80 3e 00 00 06 03 ee 03 ee")
DISCONNECT_PROVIDER_ULTIMATUM = bytes.fromhex(
    "03 00 00 09 02 f0 80"
    "21 80"  # disconnectProviderUltimatum (8) << 2, reason rn-user-requested (3) over 3 bits
)
# MS-RDPBCGR 4.1.10 Client Info PDU: the Send Data Request header before 412 bytes.
SEND_DATA_REQUEST_HEADER = bytes.fromhex(
    "64"  # sendDataRequest (25) << 2
    "00 06"  # initiator 1007
    "03 eb"  # channelId 1003
    "70"  # dataPriority high, segmentation begin | end
    "81 9c"  # userData length 412
)
# MS-RDPBCGR 4.1.19 Server Synchronize PDU: a Send Data Indication before 34 bytes.
SEND_DATA_INDICATION_HEADER = bytes.fromhex(
    "68"  # sendDataIndication (26) << 2
    "00 01"  # initiator 1002
    "03 eb"  # channelId 1003
    "70"  # dataPriority high, segmentation begin | end
    "22"  # userData length 34
)

# Captured from xfreerdp 2.11.7 (/sec:tls /smartcard /size:800x600) on loopback:
# its Connect-Initial after the TLS handshake. FreeRDP writes 65535 as proper
# BER (02 03 00 ff ff), so this one re-encodes byte for byte.
XFREERDP_CONNECT_INITIAL = bytes.fromhex(
    "03 00 01 d3 02 f0 80"  # TPKT length 467, X.224 Data
    "7f 65 82 01 c7 04 01 01 04 01 01 01 01 ff"  # Connect-Initial, selectors, upwardFlag
    "30 1a 02 01 22 02 01 02 02 01 00 02 01 01 02 01 00 02 01 01 02 03 00 ff ff 02 01 02"
    "30 19 02 01 01 02 01 01 02 01 01 02 01 01 02 01 00 02 01 01 02 02 04 20 02 01 02"
    "30 20 02 03 00 ff ff 02 03 00 fc 17 02 03 00 ff ff 02 01 01 02 01 00 02 01 01"
    "02 03 00 ff ff 02 01 02"
    "04 82 01 61"  # userData, 353 bytes
    "00 05 00 14 7c 00 01 81 58 00 08 00 10 00 01 c0 00 44 75 63 61 81 4a"  # T.124 "Duca"
    "01 c0 ea 00"  # CS_CORE, 234 bytes
    "0c 00 08 00 20 03 58 02 01 ca 03 aa 09 04 00 00 bb 47 00 00"  # RDP 10.7, 800x600
    "76 00 6d 00" + "00" * 28  # clientName "vm"
    + "04 00 00 00 00 00 00 00 0c 00 00 00" + "00" * 64  # keyboard, imeFileName
    + "01 ca 01 00 00 00 00 00 18 00 0f 00 e3 05"  # colour depths, earlyCapabilityFlags
    + "00" * 64  # clientDigProductId
    + "07 00 01 00 00 00"  # connectionType autodetect, pad, serverSelectedProtocol SSL
    + "00" * 18  # physical size, orientation, scale factors
    + "04 c0 0c 00 4d 00 00 00 00 00 00 00"  # CS_CLUSTER
    "02 c0 0c 00 00 00 00 00 00 00 00 00"  # CS_SECURITY: no RDP encryption
    "03 c0 38 00 04 00 00 00"  # CS_NET, 4 channels
    "72 64 70 64 72 00 00 00 00 00 80 c0"  # rdpdr
    "72 64 70 73 6e 64 00 00 00 00 00 c0"  # rdpsnd
    "63 6c 69 70 72 64 72 00 00 00 a0 c0"  # cliprdr
    "64 72 64 79 6e 76 63 00 00 00 80 c0"  # drdynvc
    "06 c0 08 00 00 00 00 00"  # CS_MCS_MSGCHANNEL
    "0a c0 08 00 00 00 00 00"  # CS_MULTITRANSPORT
)


def _mcs(frame: bytes) -> bytes:
    return x224.unwrap_data(tpkt.unwrap(frame))


def _frame(payload: bytes) -> bytes:
    return tpkt.wrap(x224.wrap_data(payload))


# -- Connect-Initial / Connect-Response -------------------------------------


def test_connect_initial_spec_example() -> None:
    assert len(CONNECT_INITIAL) == 416
    initial = mcs.ConnectInitial.decode(_mcs(CONNECT_INITIAL))
    assert initial.calling_domain_selector == b"\x01"
    assert initial.called_domain_selector == b"\x01"
    assert initial.upward_flag is True
    assert initial.target_parameters == mcs.DomainParameters(34, 2, 0, 1, 0, 1, 65535, 2)
    assert initial.minimum_parameters == mcs.DomainParameters(1, 1, 1, 1, 0, 1, 1056, 2)
    assert initial.maximum_parameters == mcs.DomainParameters(
        65535, 64535, 65535, 1, 0, 1, 65535, 2
    )
    assert initial.user_data == GCC_CONFERENCE_CREATE_REQUEST
    # The example writes 65535 as 02 02 ff ff (no leading zero, five times); the
    # encoder writes proper BER (02 03 00 ff ff), so the re-encoding is 5 bytes
    # longer and decodes to the same values.
    encoded = initial.encode()
    assert len(encoded) == len(_mcs(CONNECT_INITIAL)) + 5
    assert encoded[:2] == b"\x7f\x65"
    assert mcs.ConnectInitial.decode(encoded) == initial


def test_connect_response_spec_example_is_byte_exact() -> None:
    assert len(CONNECT_RESPONSE) == 337
    response = mcs.ConnectResponse.decode(_mcs(CONNECT_RESPONSE))
    assert response.result == mcs.McsResult.RT_SUCCESSFUL
    assert response.called_connect_id == 0
    assert response.domain_parameters == mcs.SERVER_DOMAIN_PARAMETERS
    assert response.user_data == GCC_CONFERENCE_CREATE_RESPONSE
    assert _frame(response.encode()) == CONNECT_RESPONSE
    built = mcs.ConnectResponse.for_user_data(GCC_CONFERENCE_CREATE_RESPONSE)
    assert _frame(built.encode()) == CONNECT_RESPONSE
    assert len(built.encode()) == 337 - 7


def test_xfreerdp_connect_initial_round_trips_byte_exact() -> None:
    assert len(XFREERDP_CONNECT_INITIAL) == 467
    initial = mcs.ConnectInitial.decode(_mcs(XFREERDP_CONNECT_INITIAL))
    assert initial.target_parameters.max_mcspdu_size == 65535
    assert _frame(initial.encode()) == XFREERDP_CONNECT_INITIAL
    request = gcc.ConferenceCreateRequest.decode(initial.user_data)
    client = gcc.ClientGccData.decode(request.user_data)
    assert client.core.client_name == "vm"
    assert (client.core.desktop_width, client.core.desktop_height) == (800, 600)
    assert client.core.server_selected_protocol == x224.Protocol.SSL
    assert client.core.device_scale_factor == 0
    assert client.net is not None
    assert [c.name for c in client.net.channels] == ["rdpdr", "rdpsnd", "cliprdr", "drdynvc"]
    assert client.message_channel is not None and client.multitransport is not None
    assert client.encode() == request.user_data
    assert request.encode() == initial.user_data

@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("7f 66 00", "Connect-Initial.tag"),  # a Connect-Response tag
        ("60 00", "Connect-Initial.tag"),
        ("7f 65 84 00 00 00 01", "Connect-Initial.length"),  # 4-byte length form
        ("7f 65 06 04 01 01 04 01", "Connect-Initial"),  # content longer than the data
        ("7f 65 03 04 01 01 00", "(end)"),  # trailing byte after the PDU
    ],
)
def test_connect_initial_rejects_malformed(data: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        mcs.ConnectInitial.decode(bytes.fromhex(data))
    assert info.value.pdu == "MCS Connect-Initial"
    assert info.value.field == field


def test_connect_initial_rejects_inner_trailing_bytes_and_long_selectors() -> None:
    body = _mcs(CONNECT_INITIAL)[5:] + b"\x00"
    data = b"\x7f\x65\x82" + len(body).to_bytes(2, "big") + body
    with pytest.raises(ProtocolError) as info:
        mcs.ConnectInitial.decode(data)
    assert info.value.field == "(end)"
    selector = b"\x04\x41" + bytes(65)
    data = b"\x7f\x65" + bytes((len(selector),)) + selector
    with pytest.raises(ProtocolError) as info:
        mcs.ConnectInitial.decode(data)
    assert info.value.field == "callingDomainSelector"


_params = st.builds(mcs.DomainParameters, *([st.integers(0, 0xFFFFFFFF)] * 8))


@given(
    st.binary(max_size=8), st.binary(max_size=8), st.booleans(), _params, _params, _params,
    st.binary(max_size=2000),
)
def test_connect_initial_round_trip(
    calling: bytes,
    called: bytes,
    upward: bool,
    target: mcs.DomainParameters,
    minimum: mcs.DomainParameters,
    maximum: mcs.DomainParameters,
    user_data: bytes,
) -> None:
    initial = mcs.ConnectInitial(calling, called, upward, target, minimum, maximum, user_data)
    assert mcs.ConnectInitial.decode(initial.encode()) == initial


@given(st.sampled_from(list(mcs.McsResult)), st.integers(0, 0xFFFF), _params, st.binary())
def test_connect_response_round_trip(
    result: mcs.McsResult, connect_id: int, params: mcs.DomainParameters, user_data: bytes
) -> None:
    response = mcs.ConnectResponse(result, connect_id, params, user_data)
    assert mcs.ConnectResponse.decode(response.encode()) == response


@given(st.binary(max_size=120))
def test_connect_decoders_only_raise_protocol_error(data: bytes) -> None:
    for decode in (mcs.ConnectInitial.decode, mcs.ConnectResponse.decode):
        with contextlib.suppress(ProtocolError):
            decode(data)
        with contextlib.suppress(ProtocolError):
            decode(b"\x7f\x65" + bytes((min(len(data), 0x7F),)) + data)


# -- domain PDUs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "pdu"),
    [
        (ERECT_DOMAIN_REQUEST, mcs.ErectDomainRequest(0, 0)),
        (ATTACH_USER_REQUEST, mcs.AttachUserRequest()),
        (ATTACH_USER_CONFIRM, mcs.AttachUserConfirm(mcs.McsResult.RT_SUCCESSFUL, 1007)),
        (CHANNEL_JOIN_REQUEST_1007, mcs.ChannelJoinRequest(1007, 1007)),
        (CHANNEL_JOIN_REQUEST_1003, mcs.ChannelJoinRequest(1007, 1003)),
        (CHANNEL_JOIN_CONFIRM_1007, mcs.ChannelJoinConfirm(0, 1007, 1007, 1007)),
        (CHANNEL_JOIN_CONFIRM_1006, mcs.ChannelJoinConfirm(0, 1007, 1006, 1006)),
        (
            DISCONNECT_PROVIDER_ULTIMATUM,
            mcs.DisconnectProviderUltimatum(mcs.DisconnectReason.RN_USER_REQUESTED),
        ),
    ],
)
def test_domain_pdu_spec_examples(frame: bytes, pdu: mcs.DomainPdu) -> None:
    assert mcs.decode_domain_pdu(_mcs(frame)) == pdu
    assert type(pdu).decode(_mcs(frame)) == pdu
    assert _frame(pdu.encode()) == frame
    assert len(pdu.encode()) == len(frame) - 7


def test_send_data_request_spec_header() -> None:
    request = mcs.SendDataRequest(initiator=1007, channel_id=1003, user_data=bytes(412))
    data = request.encode()
    assert data[:8] == SEND_DATA_REQUEST_HEADER
    assert len(data) == 8 + 412
    decoded = mcs.decode_domain_pdu(SEND_DATA_REQUEST_HEADER + bytes(412))
    assert decoded == request
    assert isinstance(decoded, mcs.SendDataRequest)
    assert decoded.data_priority == mcs.DataPriority.HIGH


def test_send_data_indication_spec_header() -> None:
    body = bytes(range(34))
    indication = mcs.SendDataIndication(initiator=1002, channel_id=1003, user_data=body)
    assert indication.encode() == SEND_DATA_INDICATION_HEADER + body
    assert mcs.SendDataIndication.decode(SEND_DATA_INDICATION_HEADER + body) == indication


def test_send_data_segmentation_and_priority_bits() -> None:
    middle = mcs.SendDataIndication(1007, 1004, b"x", mcs.DataPriority.LOW, mcs.Segmentation(0))
    assert middle.encode()[5] == 0xC0
    first = mcs.SendDataRequest(1007, 1004, b"x", mcs.DataPriority.TOP, mcs.Segmentation.BEGIN)
    assert first.encode()[5] == 0x20
    assert mcs.decode_domain_pdu(first.encode()) == first


def test_failed_confirms_spread_the_result_over_two_bytes() -> None:
    # rt-unspecified-failure (14 = 0b1110): top bit in byte 0, low three in byte 1.
    confirm = mcs.ChannelJoinConfirm(mcs.McsResult.RT_UNSPECIFIED_FAILURE, 1007, 1008, None)
    assert confirm.encode() == bytes.fromhex("3d c0 00 06 03 f0")
    assert mcs.decode_domain_pdu(confirm.encode()) == confirm
    attach = mcs.AttachUserConfirm(mcs.McsResult.RT_TOO_MANY_USERS, None)  # 13 = 0b1101
    assert attach.encode() == bytes.fromhex("2d a0")
    assert mcs.decode_domain_pdu(attach.encode()) == attach
    with pytest.raises(ValueError):
        mcs.AttachUserConfirm(16, 1007).encode()


def test_disconnect_provider_ultimatum_reasons() -> None:
    for reason in mcs.DisconnectReason:
        pdu = mcs.DisconnectProviderUltimatum(reason)
        assert len(pdu.encode()) == 2
        assert mcs.decode_domain_pdu(pdu.encode()) == pdu
    assert mcs.DisconnectProviderUltimatum(mcs.DisconnectReason.RN_PROVIDER_INITIATED).encode() == (
        b"\x20\x80"
    )
    with pytest.raises(ProtocolError) as info:
        mcs.decode_domain_pdu(b"\x22\x80")  # reason 5
    assert info.value.field == "reason"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("", "choice"),
        ("00", "choice"),  # plumbDomainIndication: not supported
        ("7c", "choice"),  # choice 31 does not exist
        ("28 00", "(end)"),  # attach user request with a trailing byte
        ("38 00 06 03", "channelId"),  # truncated join request
        ("64 00 06 03 eb 70 05 00", "userData"),  # length 5, one byte present
    ],
)
def test_domain_pdu_rejects_malformed(data: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        mcs.decode_domain_pdu(bytes.fromhex(data))
    assert info.value.field == field


def test_typed_decode_insists_on_its_own_pdu() -> None:
    with pytest.raises(ProtocolError) as info:
        mcs.ChannelJoinRequest.decode(_mcs(ATTACH_USER_REQUEST))
    assert info.value.pdu == "MCS ChannelJoinRequest"
    assert "AttachUserRequest" in info.value.reason


_user_ids = st.integers(1001, 1001 + 0xFFFF)
_channels = st.integers(0, 0xFFFF)
_domain_pdus = st.one_of(
    st.builds(mcs.ErectDomainRequest, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
    st.just(mcs.AttachUserRequest()),
    st.builds(mcs.AttachUserConfirm, st.sampled_from(list(mcs.McsResult)), _user_ids | st.none()),
    st.builds(mcs.ChannelJoinRequest, _user_ids, _channels),
    st.builds(
        mcs.ChannelJoinConfirm,
        st.sampled_from(list(mcs.McsResult)),
        _user_ids,
        _channels,
        _channels | st.none(),
    ),
    st.builds(mcs.DisconnectProviderUltimatum, st.sampled_from(list(mcs.DisconnectReason))),
    st.builds(
        mcs.SendDataRequest,
        _user_ids,
        _channels,
        st.binary(max_size=0x7FFF),
        st.sampled_from(list(mcs.DataPriority)),
        st.sampled_from([mcs.Segmentation(v) for v in range(4)]),
    ),
    st.builds(mcs.SendDataIndication, _user_ids, _channels, st.binary(max_size=300)),
)


@given(_domain_pdus)
def test_domain_pdu_round_trip(pdu: mcs.DomainPdu) -> None:
    data = pdu.encode()
    assert mcs.decode_domain_pdu(data) == pdu
    assert type(pdu).decode(data) == pdu


@given(st.binary(max_size=40))
def test_decode_domain_pdu_only_raises_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        mcs.decode_domain_pdu(data)


@given(st.sampled_from([1, 8, 10, 11, 14, 15, 25, 26]), st.binary(max_size=40))
def test_known_choices_with_random_bodies_only_raise_protocol_error(
    choice: int, body: bytes
) -> None:
    with contextlib.suppress(ProtocolError):
        mcs.decode_domain_pdu(bytes((choice << 2 | (body[0] & 3 if body else 0),)) + body)


# -- BER and PER helpers --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "02 01 00"), (34, "02 01 22"), (255, "02 02 00 ff"), (65528, "02 03 00 ff f8")],
)
def test_ber_integer(value: int, encoded: str) -> None:
    writer = Writer()
    ber.write_integer(writer, value)
    assert writer.getvalue() == bytes.fromhex(encoded)
    assert ber.read_integer(Reader(bytes.fromhex(encoded), "t"), "n") == value


def test_ber_lengths_and_limits() -> None:
    for length, encoded in ((0x7F, "7f"), (0x80, "81 80"), (0x194, "82 01 94")):
        writer = Writer()
        ber.write_length(writer, length)
        assert writer.getvalue() == bytes.fromhex(encoded)
        assert ber.read_length(Reader(bytes.fromhex(encoded), "t"), "f") == length
    with pytest.raises(ValueError):
        ber.write_length(Writer(), 0x10000)
    with pytest.raises(ProtocolError):
        ber.read_integer(Reader(bytes.fromhex("02 06 00 00 00 00 00 01"), "t"), "n")
    with pytest.raises(ProtocolError):
        ber.read_enumerated(Reader(bytes.fromhex("0a 01 10"), "t"), 16, "result")
    with pytest.raises(ProtocolError):
        ber.read_boolean(Reader(bytes.fromhex("01 02 ff ff"), "t"), "flag")


def test_per_helpers() -> None:
    writer = Writer()
    per.write_length(writer, 0x19C)
    per.write_integer16(writer, 1007, 1001)
    per.write_object_identifier(writer, (0, 0, 20, 124, 0, 1))
    per.write_numeric_string(writer, "1", 1)
    per.write_octet_string(writer, b"Duca", 4)
    per.write_integer(writer, 0x1234)
    assert writer.getvalue() == bytes.fromhex(
        "81 9c 00 06 05 00 14 7c 00 01 00 10 00 44 75 63 61 02 12 34"
    )
    reader = Reader(writer.getvalue(), "t")
    assert per.read_length(reader, "a") == 0x19C
    assert per.read_integer16(reader, 1001, "b") == 1007
    assert per.read_object_identifier(reader, "c") == (0, 0, 20, 124, 0, 1)
    assert per.read_numeric_string(reader, 1, "d") == "1"
    assert per.read_octet_string(reader, 4, "e") == b"Duca"
    assert per.read_integer(reader, "f") == 0x1234
    reader.expect_end()
    with pytest.raises(ValueError):
        per.write_length(Writer(), 0x8000)
    with pytest.raises(ProtocolError):
        per.read_numeric_string(Reader(b"\x00\xa0", "t"), 1, "name")


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_per_numeric_string_round_trip(text: str) -> None:
    writer = Writer()
    per.write_numeric_string(writer, text, 1)
    assert len(writer) == 1 + (len(text) + 1) // 2
    assert per.read_numeric_string(Reader(writer.getvalue(), "t"), 1, "n") == text


@pytest.mark.parametrize(
    "data",
    [
        "04 00 01 00 01",  # aardwolf's fixed Erect Domain body (malformed PER)
        "04 05 00 00 00 00 00 01 00",  # an integer of 5 bytes
    ],
)
def test_erect_domain_body_is_ignored_when_malformed(data: str) -> None:
    """A server ignores subHeight/subInterval (MS-RDPBCGR 3.3.5.3.5), as Windows does."""
    assert mcs.decode_domain_pdu(bytes.fromhex(data)) == mcs.ErectDomainRequest(0, 0)
