"""MS-RDPEFS codecs: property tests and interop cases."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.rdpdr import (
    CapabilityType,
    ClientAnnounceReply,
    ClientCoreCapabilityResponse,
    ClientDeviceListAnnounceRequest,
    ClientDeviceListRemove,
    ClientNameRequest,
    DeviceAnnounce,
    DeviceCapabilitySet,
    DeviceType,
    GeneralCapabilitySet,
    PacketId,
    RdpdrHeader,
    ServerAnnounceRequest,
    ServerClientIdConfirm,
    ServerCoreCapabilityRequest,
    ServerDeviceAnnounceResponse,
    ServerUserLoggedOn,
)
from rdscard.pdu.rdpdr_io import (
    DeviceCloseRequest,
    DeviceCloseResponse,
    DeviceControlRequest,
    DeviceControlResponse,
    DeviceCreateRequest,
    DeviceCreateResponse,
    decode_io_request,
    read_io_completion_header,
)

# -- properties -------------------------------------------------------------------------

DECODERS: list[Callable[[bytes], object]] = [
    RdpdrHeader.decode,
    ServerAnnounceRequest.decode,
    ClientAnnounceReply.decode,
    ServerClientIdConfirm.decode,
    ClientNameRequest.decode,
    ServerCoreCapabilityRequest.decode,
    ClientCoreCapabilityResponse.decode,
    ClientDeviceListAnnounceRequest.decode,
    ClientDeviceListRemove.decode,
    ServerDeviceAnnounceResponse.decode,
    ServerUserLoggedOn.decode,
    DeviceControlRequest.decode,
    DeviceCreateRequest.decode,
    DeviceCloseRequest.decode,
    decode_io_request,
    DeviceControlResponse.decode,
    DeviceCreateResponse.decode,
    DeviceCloseResponse.decode,
    read_io_completion_header,
]

HEADERS = [bytes.fromhex("7244") + pid.to_bytes(2, "little") for pid in PacketId]


@pytest.mark.parametrize("decoder", DECODERS)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(
    decoder: Callable[[bytes], object], data: bytes
) -> None:
    with contextlib.suppress(ProtocolError):
        decoder(data)


@pytest.mark.parametrize("decoder", DECODERS)
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=300))
def test_valid_header_arbitrary_body_raises_only_protocol_error(
    decoder: Callable[[bytes], object], header: bytes, body: bytes
) -> None:
    with contextlib.suppress(ProtocolError):
        decoder(header + body)


u32 = st.integers(0, 0xFFFFFFFF)
dos_names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=8)
devices = st.builds(
    DeviceAnnounce,
    st.sampled_from(DeviceType),
    u32,
    dos_names,
    st.binary(max_size=40),
)


@given(st.lists(devices, max_size=6))
def test_device_list_round_trip(items: list[DeviceAnnounce]) -> None:
    pdu = ClientDeviceListAnnounceRequest(tuple(items))
    data = pdu.encode()
    assert ClientDeviceListAnnounceRequest.decode(data) == pdu
    assert len(data) == 8 + sum(20 + len(d.device_data) for d in items)


@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=60))
def test_client_name_round_trip(name: str) -> None:
    pdu = ClientNameRequest(name)
    assert ClientNameRequest.decode(pdu.encode()) == pdu


@given(
    st.builds(
        GeneralCapabilitySet,
        u32,
        u32,
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        u32,
        u32,
        u32,
        u32,
        u32,
        u32,
    ),
    st.lists(st.sampled_from(list(CapabilityType)[1:]), unique=True),
)
def test_capability_round_trip(general: GeneralCapabilitySet, others: list[CapabilityType]) -> None:
    caps = (general, *(DeviceCapabilitySet(t, 1) for t in others))
    pdu = ServerCoreCapabilityRequest(caps)
    assert ServerCoreCapabilityRequest.decode(pdu.encode()) == pdu
    assert len(pdu.encode()) == 8 + 44 + 8 * len(others)


@given(u32, u32, u32, st.binary(max_size=200), u32)
def test_control_round_trip(device: int, cid: int, code: int, buf: bytes, out_len: int) -> None:
    request = DeviceControlRequest(device, cid, code, buf, out_len)
    assert DeviceControlRequest.decode(request.encode()) == request
    response = DeviceControlResponse(device, cid, code, buf)
    assert DeviceControlResponse.decode(response.encode()) == response


def test_client_name_with_freerdp_double_terminator() -> None:
    """FreeRDP 2.11.7 counts the name's NUL twice: "vm" arrives as v m NUL NUL (8 bytes)."""
    from rdscard.pdu.rdpdr import ClientNameRequest

    name = "vm".encode("utf-16-le") + bytes(4)
    data = (
        bytes.fromhex("7244 4e43")
        + (1).to_bytes(4, "little")
        + bytes(4)
        + len(name).to_bytes(4, "little")
        + name
    )
    assert ClientNameRequest.decode(data).computer_name == "vm"
