"""rdpdr PDU codecs (MS-RDPEFS 2.2): spec examples, xfreerdp 2.11.7 bytes, limits, properties."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rdscard.errors import ProtocolError
from rdscard.pdu.rdpdr import (
    MAX_CAPABILITIES,
    MAX_DEVICE_DATA,
    MAX_DEVICES,
    SMARTCARD_CAPABILITY,
    CapabilityType,
    ClientAnnounceReply,
    ClientCoreCapabilityResponse,
    ClientDeviceListAnnounceRequest,
    ClientDeviceListRemove,
    ClientNameRequest,
    Component,
    DeviceAnnounce,
    DeviceCapabilitySet,
    DeviceType,
    ExtendedPdu,
    GeneralCapabilitySet,
    NtStatus,
    PacketId,
    RdpdrHeader,
    ServerAnnounceRequest,
    ServerClientIdConfirm,
    ServerCoreCapabilityRequest,
    ServerDeviceAnnounceResponse,
    ServerUserLoggedOn,
    check_core,
)
from rdscard.pdu.rdpdr_io import (
    MAX_IOCTL_BUFFER,
    DeviceCloseRequest,
    DeviceCloseResponse,
    DeviceControlRequest,
    DeviceControlResponse,
    DeviceCreateRequest,
    DeviceCreateResponse,
    MajorFunction,
    decode_io_request,
    read_io_completion_header,
)

# -- MS-RDPEFS section 4 examples ----------------------------------------------------

# MS-RDPEFS 4.1 Server Announce Request
SPEC_SERVER_ANNOUNCE = bytes.fromhex(
    "7244"  # Header.Component = RDPDR_CTYP_CORE (0x4472)
    "6e49"  # Header.PacketId = PAKID_CORE_SERVER_ANNOUNCE (0x496E)
    "0100"  # VersionMajor = 1
    "0c00"  # VersionMinor = 12
    "02000000"  # ClientId = 2
)

# MS-RDPEFS 4.2 Client Announce Reply
SPEC_CLIENT_ANNOUNCE_REPLY = bytes.fromhex(
    "7244"  # RDPDR_CTYP_CORE
    "4343"  # PAKID_CORE_CLIENTID_CONFIRM (0x4343)
    "0100"  # VersionMajor = 1
    "0c00"  # VersionMinor = 12
    "02000000"  # ClientId = 2
)

# MS-RDPEFS 4.7 Server Client ID Confirm: same layout and values as 4.2
SPEC_CLIENT_ID_CONFIRM = SPEC_CLIENT_ANNOUNCE_REPLY

# MS-RDPEFS 4.x Device Create Request, 56 bytes, server to client. The
# spec's annotation shifts the fields after AllocationSize; the bytes, read
# with the 2.2.1.4.1 layout (AllocationSize is 8 bytes), give these values.
SPEC_DEVICE_CREATE = bytes.fromhex(
    "7244"  # RDPDR_CTYP_CORE
    "5249"  # PAKID_CORE_DEVICE_IOREQUEST (0x4952)
    "03000000"  # DeviceId = 3
    "00000000"  # FileId = 0
    "01000000"  # CompletionId = 1
    "00000000"  # MajorFunction = IRP_MJ_CREATE
    "00000000"  # MinorFunction = 0
    "80000000"  # DesiredAccess = 0x80 (FILE_READ_ATTRIBUTES)
    "0000000000000000"  # AllocationSize = 0
    "00000000"  # FileAttributes = 0
    "07000000"  # SharedAccess = READ | WRITE | DELETE
    "01000000"  # CreateDisposition = FILE_OPEN
    "01000000"  # CreateOptions = FILE_DIRECTORY_FILE
    "00000000"  # PathLength = 0 (the device root)
)


def test_spec_server_announce() -> None:
    pdu = ServerAnnounceRequest.decode(SPEC_SERVER_ANNOUNCE)
    assert pdu == ServerAnnounceRequest(client_id=2, version_major=1, version_minor=12)
    assert pdu.encode() == SPEC_SERVER_ANNOUNCE
    assert len(pdu.encode()) == ServerAnnounceRequest.SIZE == 12


def test_spec_client_announce_reply() -> None:
    pdu = ClientAnnounceReply.decode(SPEC_CLIENT_ANNOUNCE_REPLY)
    assert (pdu.version_major, pdu.version_minor, pdu.client_id) == (1, 12, 2)
    assert pdu.encode() == SPEC_CLIENT_ANNOUNCE_REPLY


def test_spec_client_id_confirm() -> None:
    pdu = ServerClientIdConfirm.decode(SPEC_CLIENT_ID_CONFIRM)
    assert pdu == ServerClientIdConfirm(client_id=2, version_major=1, version_minor=12)
    assert pdu.encode() == SPEC_CLIENT_ID_CONFIRM


def test_spec_device_create_request() -> None:
    pdu = DeviceCreateRequest.decode(SPEC_DEVICE_CREATE)
    assert pdu == DeviceCreateRequest(
        device_id=3,
        completion_id=1,
        desired_access=0x80,
        allocation_size=0,
        file_attributes=0,
        shared_access=7,
        create_disposition=1,
        create_options=1,
        path="",
    )
    assert pdu.encode() == SPEC_DEVICE_CREATE
    assert len(pdu.encode()) == 56
    assert decode_io_request(SPEC_DEVICE_CREATE) == pdu


# -- what xfreerdp 2.11.7 sends ------------------------------------------------------------
# Captured from xfreerdp 2.11.7 /smartcard (Debian 12) talking to RdpdrServer
# (client id 1) on host "vm"; its own pcsc-lite answered the IOCTL.

# Client Announce Reply: xfreerdp echoes version 1.13 and the ClientId.
XFREERDP_ANNOUNCE_REPLY = bytes.fromhex(
    "7244"  # RDPDR_CTYP_CORE
    "4343"  # PAKID_CORE_CLIENTID_CONFIRM
    "0100"  # VersionMajor = 1
    "0d00"  # VersionMinor = 13
    "01000000"  # ClientId = 1
)

# Client Name Request: always Unicode, CodePage 0. ComputerNameLen counts
# the terminator twice: "vm" arrives as v, m, NUL, NUL (8 bytes).
XFREERDP_CLIENT_NAME = bytes.fromhex(
    "7244"  # RDPDR_CTYP_CORE
    "4e43"  # PAKID_CORE_CLIENT_NAME (0x434E)
    "01000000"  # UnicodeFlag = 1
    "00000000"  # CodePage = 0
    "08000000"  # ComputerNameLen = 8
    "76006d00"  # "vm"
    "00000000"  # two UTF-16 NULs
)

# Client Core Capability Response: five sets, general first.
XFREERDP_CLIENT_CAPABILITY = bytes.fromhex(
    "7244"  # RDPDR_CTYP_CORE
    "5043"  # PAKID_CORE_CLIENT_CAPABILITY (0x4350)
    "0500"  # numCapabilities = 5
    "0000"  # Padding
    "01002c00"  # CAP_GENERAL_TYPE, CapabilityLength 44
    "02000000"  # GENERAL_CAPABILITY_VERSION_02
    "00000000"  # osType
    "00000000"  # osVersion
    "0100"  # protocolMajorVersion = 1
    "0d00"  # protocolMinorVersion = 13
    "ffff0000"  # ioCode1 = client & server bits
    "00000000"  # ioCode2
    "07000000"  # extendedPDU = DEVICE_REMOVE | CLIENT_DISPLAY_NAME | USER_LOGGEDON
    "01000000"  # extraFlags1 = ENABLE_ASYNCIO
    "00000000"  # extraFlags2
    "00000000"  # SpecialTypeDeviceCap
    "02000800"
    "01000000"  # CAP_PRINTER_TYPE, 8 bytes, version 1
    "03000800"
    "01000000"  # CAP_PORT_TYPE, 8 bytes, version 1
    "04000800"
    "02000000"  # CAP_DRIVE_TYPE, 8 bytes, version 2
    "05000800"
    "01000000"  # CAP_SMARTCARD_TYPE, 8 bytes, version 1
)

# Client Device List Announce with the smart card device of /smartcard
# (sent twice: once after the Client ID Confirm, once after User Logged On).
XFREERDP_DEVICE_LIST = bytes.fromhex(
    "7244"  # RDPDR_CTYP_CORE
    "4144"  # PAKID_CORE_DEVICELIST_ANNOUNCE (0x4441)
    "01000000"  # DeviceCount = 1
    "20000000"  # DeviceType = RDPDR_DTYP_SMARTCARD
    "01000000"  # DeviceId = 1
    "5343415244000000"  # PreferredDosName = "SCARD"
    "06000000"  # DeviceDataLength = 6
    "534341524400"  # DeviceData = "SCARD\0"
)

# Device Control Response to an EstablishContext IOCTL (CompletionId 1).
XFREERDP_CONTROL_OUTPUT = bytes.fromhex(
    "01100800cccccccc"  # NDR common type header
    "1800000000000000"  # private header: ObjectBufferLength 24, filler
    "00000000"  # ReturnCode = SCARD_S_SUCCESS
    "08000000"  # Context.cbContext = 8
    "00000200"  # Context.pbContext referent id 0x00020000
    "08000000"  # conformant array size 8
    "3412000000000000"  # the context (pcsc-lite's 0x1234)
)
XFREERDP_CONTROL_RESPONSE = (
    bytes.fromhex(
        "7244"  # RDPDR_CTYP_CORE
        "4349"  # PAKID_CORE_DEVICE_IOCOMPLETION (0x4943)
        "01000000"  # DeviceId = 1
        "01000000"  # CompletionId = 1
        "00000000"  # IoStatus = STATUS_SUCCESS
        "28000000"  # OutputBufferLength = 40
    )
    + XFREERDP_CONTROL_OUTPUT
)


def test_xfreerdp_announce_reply() -> None:
    pdu = ClientAnnounceReply.decode(XFREERDP_ANNOUNCE_REPLY)
    assert pdu == ClientAnnounceReply(client_id=1, version_major=1, version_minor=13)
    assert pdu.encode() == XFREERDP_ANNOUNCE_REPLY
    assert len(pdu.encode()) == 12


def test_xfreerdp_client_name() -> None:
    pdu = ClientNameRequest.decode(XFREERDP_CLIENT_NAME)
    assert pdu == ClientNameRequest("vm", unicode_flag=1, code_page=0)
    # Encoding writes the terminator once, as the spec has it.
    assert pdu.encode() == XFREERDP_CLIENT_NAME[:12] + bytes.fromhex("0600000076006d000000")
    assert ClientNameRequest.decode(pdu.encode()) == pdu


def test_xfreerdp_client_capability() -> None:
    pdu = ClientCoreCapabilityResponse.decode(XFREERDP_CLIENT_CAPABILITY)
    general = pdu.general
    assert general == GeneralCapabilitySet(
        protocol_minor_version=13,
        io_code1=0xFFFF,
        extended_pdu=7,
        extra_flags1=1,
        special_type_device_cap=0,
    )
    assert general.extended_pdu & ExtendedPdu.RDPDR_USER_LOGGEDON_PDU
    assert [c.capability_type for c in pdu.capabilities] == list(CapabilityType)
    assert pdu.capabilities[3] == DeviceCapabilitySet(CapabilityType.CAP_DRIVE_TYPE, 2)
    assert pdu.has(CapabilityType.CAP_SMARTCARD_TYPE)
    assert pdu.encode() == XFREERDP_CLIENT_CAPABILITY
    assert len(XFREERDP_CLIENT_CAPABILITY) == 8 + 44 + 4 * 8 == 84


def test_xfreerdp_device_list() -> None:
    pdu = ClientDeviceListAnnounceRequest.decode(XFREERDP_DEVICE_LIST)
    assert pdu.devices == (DeviceAnnounce(DeviceType.RDPDR_DTYP_SMARTCARD, 1, "SCARD", b"SCARD\0"),)
    assert pdu.encode() == XFREERDP_DEVICE_LIST
    assert len(pdu.encode()) == 34


def test_xfreerdp_control_response() -> None:
    pdu = DeviceControlResponse.decode(XFREERDP_CONTROL_RESPONSE)
    assert pdu == DeviceControlResponse(1, 1, NtStatus.STATUS_SUCCESS, XFREERDP_CONTROL_OUTPUT)
    assert pdu.encode() == XFREERDP_CONTROL_RESPONSE
    assert len(pdu.encode()) == pdu.size == 60
    header = read_io_completion_header(XFREERDP_CONTROL_RESPONSE)
    assert (header.device_id, header.completion_id, header.io_status) == (1, 1, 0)


# -- what the server sends ----------------------------------------------------------------

# Server Core Capability Request: a 44-byte general set (version 2) and the
# smart card set, the form xfreerdp 2.11.7 requires.
SERVER_CAPABILITY = bytes.fromhex(
    "7244"
    "5053"  # RDPDR_CTYP_CORE, PAKID_CORE_SERVER_CAPABILITY (0x5350)
    "0200"
    "0000"  # numCapabilities = 2, Padding
    "0100"
    "2c00"
    "02000000"  # CAP_GENERAL_TYPE, 44 bytes, version 2
    "00000000"
    "00000000"  # osType, osVersion
    "0100"
    "0d00"  # protocol 1.13
    "ffff0000"
    "00000000"  # ioCode1 = every IRP, ioCode2
    "05000000"  # extendedPDU = DEVICE_REMOVE_PDUS | USER_LOGGEDON_PDU
    "00000000"
    "00000000"  # extraFlags1, extraFlags2
    "01000000"  # SpecialTypeDeviceCap = 1
    "0500"
    "0800"
    "01000000"  # CAP_SMARTCARD_TYPE, version 1
)

# Device Control Request: IOCTL 0x00090014 (SCARD_IOCTL_LISTREADERSW-like
# code), OutputBufferLength 2048, three input bytes.
SERVER_CONTROL_REQUEST = bytes.fromhex(
    "7244"
    "5249"  # RDPDR_CTYP_CORE, PAKID_CORE_DEVICE_IOREQUEST
    "01000000"  # DeviceId = 1
    "00000000"  # FileId = 0
    "09000000"  # CompletionId = 9
    "0e000000"  # MajorFunction = IRP_MJ_DEVICE_CONTROL
    "00000000"  # MinorFunction
    "00080000"  # OutputBufferLength = 2048
    "03000000"  # InputBufferLength = 3
    "14000900"  # IoControlCode
    + "00" * 20  # Padding
    + "616263"  # InputBuffer
)


def test_server_capability_bytes() -> None:
    pdu = ServerCoreCapabilityRequest(
        (GeneralCapabilitySet(special_type_device_cap=1), SMARTCARD_CAPABILITY)
    )
    assert pdu.encode() == SERVER_CAPABILITY
    assert ServerCoreCapabilityRequest.decode(SERVER_CAPABILITY) == pdu
    assert len(pdu.capabilities[0].encode()) == 44


def test_general_capability_version_1_is_40_bytes() -> None:
    cap = GeneralCapabilitySet(version=1)
    assert len(cap.encode()) == cap.size == 40
    pdu = ClientCoreCapabilityResponse((cap,))
    assert ClientCoreCapabilityResponse.decode(pdu.encode()) == pdu


def test_server_control_request_bytes() -> None:
    pdu = DeviceControlRequest(
        device_id=1, completion_id=9, io_control_code=0x00090014, input_buffer=b"abc"
    )
    assert pdu.encode() == SERVER_CONTROL_REQUEST
    assert len(pdu.encode()) == pdu.size == 59
    assert DeviceControlRequest.decode(SERVER_CONTROL_REQUEST) == pdu
    assert decode_io_request(SERVER_CONTROL_REQUEST) == pdu


@pytest.mark.parametrize(
    ("pdu", "hex_bytes"),
    [
        (ServerDeviceAnnounceResponse(1, NtStatus.STATUS_SUCCESS), "724472640100000000000000"),
        (
            ServerDeviceAnnounceResponse(2, NtStatus.STATUS_NOT_SUPPORTED),
            "7244726402000000bb0000c0",
        ),
        (ServerUserLoggedOn(), "72444c55"),
        (ClientDeviceListRemove((1, 4)), "72444d44020000000100000004000000"),
        (
            DeviceCloseRequest(1, 2, 3),
            "724452490100000002000000030000000200000000000000" + "00" * 32,
        ),
        (DeviceCloseResponse(1, 3, 0), "7244434901000000030000000000000000000000"),
        (DeviceCreateResponse(1, 3, 0, 0x11, 0), "724443490100000003000000000000001100000000"),
        (ClientNameRequest("AB", unicode_flag=0), "72444e43000000000000000003000000414200"),
    ],
)
def test_fixed_layouts(pdu: object, hex_bytes: str) -> None:
    data = bytes.fromhex(hex_bytes)
    assert pdu.encode() == data  # type: ignore[attr-defined]
    assert type(pdu).decode(data) == pdu  # type: ignore[attr-defined]


def test_header_and_dispatch() -> None:
    header = RdpdrHeader.decode(XFREERDP_DEVICE_LIST)
    assert header == RdpdrHeader(Component.RDPDR_CTYP_CORE, PacketId.PAKID_CORE_DEVICELIST_ANNOUNCE)
    assert header.encode() == XFREERDP_DEVICE_LIST[:4]
    assert check_core(XFREERDP_CLIENT_NAME, "x") == PacketId.PAKID_CORE_CLIENT_NAME
    with pytest.raises(ProtocolError, match="Component"):
        check_core(bytes.fromhex("52504350"), "x")


def test_failed_control_response_without_length() -> None:
    data = bytes.fromhex("724443490100000005000000010000c0")
    pdu = DeviceControlResponse.decode(data)
    assert pdu.io_status == NtStatus.STATUS_UNSUCCESSFUL
    assert pdu.output_buffer == b""


def test_create_response_without_information() -> None:
    data = bytes.fromhex("7244434901000000030000000000000011000000")
    assert DeviceCreateResponse.decode(data).information is None
    assert DeviceCreateResponse.decode(data).encode() == data


def test_create_request_with_path() -> None:
    pdu = DeviceCreateRequest(1, 2, 0x80, path="\\dir")
    assert DeviceCreateRequest.decode(pdu.encode()) == pdu
    assert decode_io_request(pdu.encode()) == pdu


# -- rejections ----------------------------------------------------------------------


def _name(length: int, body: bytes, flag: int = 1) -> bytes:
    head = bytes.fromhex("72444e43") + flag.to_bytes(4, "little") + bytes(4)
    return head + length.to_bytes(4, "little") + body


def _devices(count: int, body: bytes = b"") -> bytes:
    return bytes.fromhex("72444144") + count.to_bytes(4, "little") + body


@pytest.mark.parametrize(
    ("decoder", "data", "field"),
    [
        (ServerAnnounceRequest.decode, bytes.fromhex("73446e4901000d0002000000"), "Component"),
        (ServerAnnounceRequest.decode, bytes.fromhex("7244000001000d0002000000"), "PacketId"),
        (ServerAnnounceRequest.decode, SPEC_CLIENT_ANNOUNCE_REPLY, "PacketId"),
        (ServerAnnounceRequest.decode, SPEC_SERVER_ANNOUNCE[:10], "ClientId"),
        (ServerAnnounceRequest.decode, SPEC_SERVER_ANNOUNCE + b"\0", "(end)"),
        (ServerAnnounceRequest.decode, bytes.fromhex("52506e49" + "00" * 8), "Component"),
        (ClientNameRequest.decode, _name(6, "pc1".encode("utf-16-le")), "ComputerName"),
        (ClientNameRequest.decode, _name(3, b"pc\0"), "ComputerName"),
        (ClientNameRequest.decode, _name(0, b""), "ComputerName"),
        (ClientNameRequest.decode, _name(2, b"pc", flag=0), "ComputerName"),
        (ClientNameRequest.decode, _name(4, b"\x00\xd8\x00\x00"), "ComputerName"),
        (ClientNameRequest.decode, _name(100_000, b""), "ComputerNameLen"),
        (ClientNameRequest.decode, _name(8, b"p\0"), "ComputerName"),
        (ClientNameRequest.decode, _name(4, b"\0\0\0\0") + b"x", "(end)"),
        (ClientDeviceListAnnounceRequest.decode, _devices(MAX_DEVICES + 1), "DeviceCount"),
        (
            ClientDeviceListAnnounceRequest.decode,
            _devices(2, XFREERDP_DEVICE_LIST[8:]),
            "DeviceCount",
        ),
        (
            ClientDeviceListAnnounceRequest.decode,
            _devices(1, bytes.fromhex("4000000001000000") + bytes(12)),
            "DeviceType",
        ),
        (
            ClientDeviceListAnnounceRequest.decode,
            _devices(
                1,
                bytes.fromhex("2000000001000000")
                + bytes(8)
                + (MAX_DEVICE_DATA + 1).to_bytes(4, "little"),
            ),
            "DeviceDataLength",
        ),
        (
            ClientDeviceListAnnounceRequest.decode,
            _devices(
                1,
                bytes.fromhex("2000000001000000")
                + bytes(8)
                + (7).to_bytes(4, "little")
                + b"SCARD\0",
            ),
            "DeviceData",
        ),
        (ClientDeviceListRemove.decode, bytes.fromhex("72444d440300000001000000"), "DeviceCount"),
        (
            ClientCoreCapabilityResponse.decode,
            bytes.fromhex("72445043") + (MAX_CAPABILITIES + 1).to_bytes(2, "little") + bytes(2),
            "numCapabilities",
        ),
        (
            ClientCoreCapabilityResponse.decode,
            bytes.fromhex("72445043010000000900080001000000"),
            "CapabilityType",
        ),
        (
            ClientCoreCapabilityResponse.decode,
            bytes.fromhex("72445043010000000500040001000000"),
            "CapabilityLength",
        ),
        (
            ClientCoreCapabilityResponse.decode,
            bytes.fromhex("72445043010000000100280002000000") + bytes(32),
            "CapabilityLength",
        ),
        (
            ClientCoreCapabilityResponse.decode,
            bytes.fromhex("72445043010000000100300002000000") + bytes(40),
            "CapabilityLength",
        ),
        (
            ClientCoreCapabilityResponse.decode,
            bytes.fromhex("7244504302000000") + SMARTCARD_CAPABILITY.encode() * 2,
            "CapabilityMessage",
        ),
        (DeviceControlRequest.decode, SERVER_CONTROL_REQUEST[:-1], "InputBuffer"),
        (DeviceControlRequest.decode, SERVER_CONTROL_REQUEST + b"\0", "(end)"),
        (DeviceControlRequest.decode, SPEC_DEVICE_CREATE, "MajorFunction"),
        (
            DeviceControlRequest.decode,
            SERVER_CONTROL_REQUEST[:28]
            + (MAX_IOCTL_BUFFER + 1).to_bytes(4, "little")
            + SERVER_CONTROL_REQUEST[32:],
            "InputBufferLength",
        ),
        (
            decode_io_request,
            SERVER_CONTROL_REQUEST[:16] + (3).to_bytes(4, "little") + bytes(4),
            "MajorFunction",
        ),
        (
            decode_io_request,
            SERVER_CONTROL_REQUEST[:16] + (0x99).to_bytes(4, "little") + bytes(4),
            "MajorFunction",
        ),
        (DeviceControlResponse.decode, XFREERDP_CONTROL_RESPONSE[:-1], "OutputBuffer"),
        (DeviceControlResponse.decode, XFREERDP_CONTROL_RESPONSE + b"\0", "(end)"),
        (DeviceControlResponse.decode, XFREERDP_CONTROL_RESPONSE[:16], "OutputBufferLength"),
        (
            DeviceControlResponse.decode,
            XFREERDP_CONTROL_RESPONSE[:16] + (MAX_IOCTL_BUFFER + 1).to_bytes(4, "little"),
            "OutputBufferLength",
        ),
        (
            DeviceCreateRequest.decode,
            SPEC_DEVICE_CREATE[:-4] + (3).to_bytes(4, "little") + b"abc",
            "Path",
        ),
        (
            DeviceCreateRequest.decode,
            SPEC_DEVICE_CREATE[:-4] + (2).to_bytes(4, "little") + b"ab",
            "Path",
        ),
        (
            DeviceCreateRequest.decode,
            SPEC_DEVICE_CREATE[:-4] + (1 << 20).to_bytes(4, "little"),
            "PathLength",
        ),
        (DeviceCloseResponse.decode, bytes.fromhex("72444349") + bytes(12 + 9), "Padding"),
        (ServerUserLoggedOn.decode, bytes.fromhex("72444c5500"), "(end)"),
    ],
)
def test_rejects(decoder: Callable[[bytes], object], data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decoder(data)
    assert info.value.field == field


def test_error_names_the_pdu() -> None:
    with pytest.raises(ProtocolError) as info:
        ClientNameRequest.decode(_name(6, "pc1".encode("utf-16-le")))
    assert info.value.pdu == "Client Name Request"


def test_encoder_limits() -> None:
    with pytest.raises(ValueError, match="PreferredDosName"):
        DeviceAnnounce(DeviceType.RDPDR_DTYP_FILESYSTEM, 1, "TOOLONGNAME").encode()


def test_eight_character_dos_name_without_nul() -> None:
    device = DeviceAnnounce(DeviceType.RDPDR_DTYP_FILESYSTEM, 2, "ABCDEFGH", b"x")
    pdu = ClientDeviceListAnnounceRequest((device,))
    assert ClientDeviceListAnnounceRequest.decode(pdu.encode()) == pdu


def test_major_function_values() -> None:
    assert MajorFunction.IRP_MJ_DEVICE_CONTROL == 0x0E
    assert NtStatus.STATUS_NOT_SUPPORTED == 0xC00000BB
