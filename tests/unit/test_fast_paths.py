"""The one-step codecs of the redirection hot path agree with the layered ones.

Each fast path (:mod:`rdscard.pdu.send_data`, :mod:`rdscard.pdu.esc.transmit_wire`,
the struct forms in :mod:`rdscard.pdu.rdpdr_io` and :mod:`rdscard.pdu.channel`)
must give exactly the bytes of the general encoder, and on input either
decline (``None``, the general decoder then decides) or decode exactly what
the general decoder would: it never accepts what the general path rejects.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu import mcs, tpkt, x224
from rdscard.pdu.channel import ChannelReassembler, chunk_channel_data
from rdscard.pdu.esc.io import SCardIORequest, TransmitCall, TransmitReturn
from rdscard.pdu.esc.transmit_wire import encode_transmit_call, parse_transmit_return
from rdscard.pdu.ndr import RedirScardContext, RedirScardHandle, encode_top
from rdscard.pdu.rdpdr_io import DeviceControlResponse, encode_device_control_request
from rdscard.pdu.send_data import (
    MAX_USER_DATA,
    encode_send_data_indication,
    parse_send_data_request,
)
from rdscard.protocol.acceptor import USER_CHANNEL_ID

u32 = st.integers(0, 0xFFFFFFFF)
opaque = st.binary(max_size=16)


def _layered_indication(initiator: int, channel_id: int, data: bytes) -> bytes:
    pdu = mcs.SendDataIndication(initiator=initiator, channel_id=channel_id, user_data=data)
    return tpkt.wrap(x224.wrap_data(pdu.encode()))


def _layered_request(channel_id: int, data: bytes) -> bytes:
    pdu = mcs.SendDataRequest(initiator=USER_CHANNEL_ID, channel_id=channel_id, user_data=data)
    return tpkt.wrap(x224.wrap_data(pdu.encode()))


@given(st.integers(1001, 1001 + 0xFFFF), st.integers(0, 0xFFFF),
       st.binary(max_size=300) | st.binary(min_size=1600, max_size=1700))
def test_send_data_indication_matches_the_layers(initiator: int, channel: int, data: bytes) -> None:
    assert encode_send_data_indication(initiator, channel, data) == _layered_indication(
        initiator, channel, data
    )


def test_send_data_indication_refuses_oversized_user_data() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        encode_send_data_indication(1002, 1004, bytes(MAX_USER_DATA + 1))


@given(st.integers(0, 0xFFFF), st.binary(max_size=300) | st.binary(min_size=1600, max_size=1700))
def test_send_data_request_parsed_like_the_layers(channel: int, data: bytes) -> None:
    assert parse_send_data_request(_layered_request(channel, data)) == (channel, data)


@given(st.binary(min_size=4, max_size=40), st.data())
def test_send_data_request_parser_never_accepts_what_the_layers_reject(
    body: bytes, data: st.DataObject
) -> None:
    """Arbitrary TPKT frames, often close to a real Send Data Request."""
    if data.draw(st.booleans()):
        body = b"\x02\xf0\x80\x64" + body
    frame = bytes([3, 0]) + (4 + len(body)).to_bytes(2, "big") + body
    fast = parse_send_data_request(frame)
    try:
        pdu = mcs.decode_domain_pdu(x224.unwrap_data(tpkt.unwrap(frame)))
    except ProtocolError:
        assert fast is None
        return
    if fast is not None:
        assert isinstance(pdu, mcs.SendDataRequest)
        assert fast == (pdu.channel_id, pdu.user_data)


@given(opaque, opaque, u32, st.binary(max_size=300), u32, st.integers(0, 1))
def test_transmit_call_matches_ndr(
    context: bytes, handle: bytes, protocol: int, apdu: bytes, cb_recv: int, is_null: int
) -> None:
    call = TransmitCall(
        RedirScardHandle(RedirScardContext(context), handle), SCardIORequest(protocol),
        len(apdu), apdu, None, is_null, cb_recv,
    )
    wire = encode_transmit_call(context, handle, protocol, apdu, cb_recv, is_null)
    assert wire == encode_top(call.write) == call.encode()
    assert TransmitCall.decode(wire) == call


@given(u32, st.none() | st.binary(max_size=300), st.booleans())
def test_transmit_return_parsed_like_ndr(code: int, response: bytes | None, pad: bool) -> None:
    wire = TransmitReturn.with_response(code, response).encode()
    if pad:  # FreeRDP 2.x adds a whole 8-byte block of padding
        length = int.from_bytes(wire[8:12], "little") + 8
        wire = wire[:8] + length.to_bytes(4, "little") + wire[12:] + bytes(8)
    parsed = parse_transmit_return(wire)
    assert parsed == (code, len(response) if response is not None else 0, response)
    assert TransmitReturn.decode(wire) == TransmitReturn.decode_ndr(wire)


@given(st.binary(min_size=16, max_size=64), st.data())
def test_transmit_return_parser_never_accepts_what_ndr_rejects(
    tail: bytes, data: st.DataObject
) -> None:
    length = data.draw(st.sampled_from([len(tail), len(tail) - len(tail) % 8, 0x40]))
    wire = bytes.fromhex("01100800cccccccc") + length.to_bytes(4, "little") + bytes(4) + tail
    fast = parse_transmit_return(wire)
    try:
        general = TransmitReturn.decode_ndr(wire)
    except ProtocolError:
        assert fast is None
        return
    if fast is not None:
        assert general.pio_recv_pci is None
        assert fast == (general.return_code, general.cb_recv_length, general.pb_recv_buffer)


def test_transmit_with_a_receive_pci_takes_the_general_path() -> None:
    reply = TransmitReturn(0, SCardIORequest(2, 2, b"ab"), 2, b"\x90\x00")
    assert parse_transmit_return(reply.encode()) is None
    assert TransmitReturn.decode(reply.encode()) == reply


@given(u32, u32, u32, st.binary(max_size=200), u32)
def test_device_control_request_layout(
    device: int, completion: int, code: int, data: bytes, out_len: int
) -> None:
    wire = encode_device_control_request(device, completion, code, data, out_len)
    assert wire[:4] == bytes.fromhex("7244 5249")  # RDPDR_CTYP_CORE, PAKID_CORE_DEVICE_IOREQUEST
    fields = [int.from_bytes(wire[i : i + 4], "little") for i in range(4, 36, 4)]
    assert fields == [device, 0, completion, 0x0E, 0, out_len, len(data), code]
    assert wire[36:56] == bytes(20) and wire[56:] == data


@given(u32, u32, u32, st.binary(max_size=40), st.integers(-2, 2), st.booleans())
def test_device_control_response_decodes_exactly(
    device: int, completion: int, status: int, output: bytes, skew: int, short: bool
) -> None:
    """A right length decodes to its fields; a wrong one is refused, never misread."""
    head = bytes.fromhex("72444349") + struct.pack("<III", device, completion, status)
    wire = head if short else head + struct.pack("<I", (len(output) + skew) % 2**32) + output
    try:
        response = DeviceControlResponse.decode(wire)
    except ProtocolError:
        assert skew != 0 or (short and status == 0)
        return
    assert (response.device_id, response.completion_id, response.io_status) == (
        device, completion, status
    )
    assert response.output_buffer == (b"" if short else output)
    assert short or skew == 0


@given(st.binary(max_size=5000), st.sampled_from([8, 1600]))
def test_whole_message_chunks_reassemble(data: bytes, size: int) -> None:
    reassembler = ChannelReassembler()
    out = [reassembler.add(chunk) for chunk in chunk_channel_data(data, size)]
    assert out[-1] == data and all(piece is None for piece in out[:-1])
