"""rdpdr core PDUs: header, handshake, capabilities, device list (MS-RDPEFS 2.2.1, 2.2.2).

Every message starts with an RDPDR_HEADER (component, packetId). The
handshake messages, the capability sets and the device list live here; the
Device I/O requests and responses are in :mod:`rdscard.pdu.rdpdr_io`.
Decoders take the whole channel message, check the header and reject
truncated, oversized or trailing bytes with a :class:`ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, Final, Self

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader, Writer, decode_utf16le

RDPDR_HEADER_SIZE: Final = 4
#: Longest ComputerName accepted from a client, in bytes (with its terminator).
MAX_COMPUTER_NAME_LEN: Final = 512
#: Most capability sets accepted in one capability PDU.
MAX_CAPABILITIES: Final = 32
#: Most devices accepted in one Device List Announce or Remove.
MAX_DEVICES: Final = 128
#: Largest DeviceData accepted for one device.
MAX_DEVICE_DATA: Final = 64 * 1024
PREFERRED_DOS_NAME_SIZE: Final = 8
DEVICE_ANNOUNCE_HEADER_SIZE: Final = 20


class Component(IntEnum):
    """RDPDR_HEADER Component (MS-RDPEFS 2.2.1.1)."""

    RDPDR_CTYP_CORE = 0x4472
    RDPDR_CTYP_PRN = 0x5052


class PacketId(IntEnum):
    """RDPDR_HEADER PacketId (MS-RDPEFS 2.2.1.1)."""

    PAKID_CORE_SERVER_ANNOUNCE = 0x496E
    PAKID_CORE_CLIENTID_CONFIRM = 0x4343
    PAKID_CORE_CLIENT_NAME = 0x434E
    PAKID_CORE_DEVICELIST_ANNOUNCE = 0x4441
    PAKID_CORE_DEVICE_REPLY = 0x6472
    PAKID_CORE_DEVICE_IOREQUEST = 0x4952
    PAKID_CORE_DEVICE_IOCOMPLETION = 0x4943
    PAKID_CORE_SERVER_CAPABILITY = 0x5350
    PAKID_CORE_CLIENT_CAPABILITY = 0x4350
    PAKID_CORE_DEVICELIST_REMOVE = 0x444D
    PAKID_PRN_CACHE_DATA = 0x5043
    PAKID_CORE_USER_LOGGEDON = 0x554C
    PAKID_PRN_USING_XPS = 0x5543


class CapabilityType(IntEnum):
    """CAPABILITY_HEADER CapabilityType (MS-RDPEFS 2.2.1.2)."""

    CAP_GENERAL_TYPE = 0x0001
    CAP_PRINTER_TYPE = 0x0002
    CAP_PORT_TYPE = 0x0003
    CAP_DRIVE_TYPE = 0x0004
    CAP_SMARTCARD_TYPE = 0x0005


class GeneralCapabilityVersion(IntEnum):
    """General capability set versions (MS-RDPEFS 2.2.2.7.1)."""

    GENERAL_CAPABILITY_VERSION_01 = 0x00000001
    GENERAL_CAPABILITY_VERSION_02 = 0x00000002


class IoCode1(IntFlag):
    """ioCode1 bits of the general capability set (MS-RDPEFS 2.2.2.7.1)."""

    RDPDR_IRP_MJ_CREATE = 0x0001
    RDPDR_IRP_MJ_CLEANUP = 0x0002
    RDPDR_IRP_MJ_CLOSE = 0x0004
    RDPDR_IRP_MJ_READ = 0x0008
    RDPDR_IRP_MJ_WRITE = 0x0010
    RDPDR_IRP_MJ_FLUSH_BUFFERS = 0x0020
    RDPDR_IRP_MJ_SHUTDOWN = 0x0040
    RDPDR_IRP_MJ_DEVICE_CONTROL = 0x0080
    RDPDR_IRP_MJ_QUERY_VOLUME_INFORMATION = 0x0100
    RDPDR_IRP_MJ_SET_VOLUME_INFORMATION = 0x0200
    RDPDR_IRP_MJ_QUERY_INFORMATION = 0x0400
    RDPDR_IRP_MJ_SET_INFORMATION = 0x0800
    RDPDR_IRP_MJ_DIRECTORY_CONTROL = 0x1000
    RDPDR_IRP_MJ_LOCK_CONTROL = 0x2000
    RDPDR_IRP_MJ_QUERY_SECURITY = 0x4000
    RDPDR_IRP_MJ_SET_SECURITY = 0x8000


#: Every ioCode1 bit; what Windows servers and FreeRDP clients send.
IO_CODE1_ALL: Final = IoCode1(0xFFFF)


class ExtendedPdu(IntFlag):
    """extendedPDU bits of the general capability set (MS-RDPEFS 2.2.2.7.1)."""

    RDPDR_DEVICE_REMOVE_PDUS = 0x00000001
    RDPDR_CLIENT_DISPLAY_NAME_PDU = 0x00000002
    RDPDR_USER_LOGGEDON_PDU = 0x00000004


class ExtraFlags1(IntFlag):
    """extraFlags1 bits of the general capability set (MS-RDPEFS 2.2.2.7.1)."""

    ENABLE_ASYNCIO = 0x00000001


class DeviceType(IntEnum):
    """DEVICE_ANNOUNCE DeviceType (MS-RDPEFS 2.2.1.3)."""

    RDPDR_DTYP_SERIAL = 0x00000001
    RDPDR_DTYP_PARALLEL = 0x00000002
    RDPDR_DTYP_PRINT = 0x00000004
    RDPDR_DTYP_FILESYSTEM = 0x00000008
    RDPDR_DTYP_SMARTCARD = 0x00000020


class NtStatus(IntEnum):
    """NTSTATUS values used on the channel (MS-ERREF 2.3)."""

    STATUS_SUCCESS = 0x00000000
    STATUS_UNSUCCESSFUL = 0xC0000001
    STATUS_NOT_IMPLEMENTED = 0xC0000002
    STATUS_NO_SUCH_DEVICE = 0xC000000E
    STATUS_CANCELLED = 0xC0000120
    STATUS_NOT_SUPPORTED = 0xC00000BB
    STATUS_DEVICE_NOT_CONNECTED = 0xC000009D


_COMPONENTS: Final = {c.value: c for c in Component}
_PACKET_IDS: Final = {p.value: p for p in PacketId}


# -- header ----------------------------------------------------------------


@dataclass(frozen=True)
class RdpdrHeader:
    """RDPDR_HEADER (MS-RDPEFS 2.2.1.1): Component and PacketId."""

    component: Component
    packet_id: PacketId

    def encode(self) -> bytes:
        return Writer().u16le(self.component).u16le(self.packet_id).getvalue()

    @classmethod
    def read(cls, r: Reader) -> Self:
        component = r.u16le("Component")
        comp = _COMPONENTS.get(component)
        if comp is None:
            raise r.error("Component", f"unknown component 0x{component:04X}")
        packet = r.u16le("PacketId")
        pid = _PACKET_IDS.get(packet)
        if pid is None:
            raise r.error("PacketId", f"unknown packet id 0x{packet:04X}")
        return cls(comp, pid)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """The header at the start of ``data`` (the rest is not checked)."""
        return cls.read(Reader(data, "RDPDR_HEADER"))


def _core_header(packet_id: PacketId) -> Writer:
    return Writer().u16le(Component.RDPDR_CTYP_CORE).u16le(packet_id)


def open_core(data: bytes, pdu: str, packet_id: PacketId) -> Reader:
    """A reader positioned after an RDPDR_CTYP_CORE header with ``packet_id``."""
    r = Reader(data, pdu)
    header = RdpdrHeader.read(r)
    if header.component != Component.RDPDR_CTYP_CORE:
        raise r.error("Component", f"expected RDPDR_CTYP_CORE, got {header.component.name}")
    if header.packet_id != packet_id:
        raise r.error("PacketId", f"expected {packet_id.name}, got {header.packet_id.name}")
    return r


# -- announce / client id ------------------------------------------------------


@dataclass(frozen=True)
class _VersionedClientId:
    """VersionMajor, VersionMinor, ClientId: the body shared by three PDUs."""

    PACKET_ID: ClassVar[PacketId]
    PDU: ClassVar[str]
    SIZE: ClassVar[int] = 12

    client_id: int
    version_major: int = 1
    version_minor: int = 13

    def encode(self) -> bytes:
        w = _core_header(self.PACKET_ID)
        w.u16le(self.version_major).u16le(self.version_minor).u32le(self.client_id)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_core(data, cls.PDU, cls.PACKET_ID)
        major = r.u16le("VersionMajor")
        minor = r.u16le("VersionMinor")
        client_id = r.u32le("ClientId")
        r.expect_end()
        return cls(client_id=client_id, version_major=major, version_minor=minor)


@dataclass(frozen=True)
class ServerAnnounceRequest(_VersionedClientId):
    """DR_CORE_SERVER_ANNOUNCE_REQ (MS-RDPEFS 2.2.2.2)."""

    PACKET_ID = PacketId.PAKID_CORE_SERVER_ANNOUNCE
    PDU = "Server Announce Request"


@dataclass(frozen=True)
class ClientAnnounceReply(_VersionedClientId):
    """DR_CORE_CLIENT_ANNOUNCE_RSP (MS-RDPEFS 2.2.2.3); its PacketId is CLIENTID_CONFIRM."""

    PACKET_ID = PacketId.PAKID_CORE_CLIENTID_CONFIRM
    PDU = "Client Announce Reply"


@dataclass(frozen=True)
class ServerClientIdConfirm(_VersionedClientId):
    """DR_CORE_SERVER_CLIENTID_CONFIRM (MS-RDPEFS 2.2.2.6)."""

    PACKET_ID = PacketId.PAKID_CORE_CLIENTID_CONFIRM
    PDU = "Server Client ID Confirm"


@dataclass(frozen=True)
class ClientNameRequest:
    """DR_CORE_CLIENT_NAME_REQ (MS-RDPEFS 2.2.2.4).

    ``unicode_flag`` 1 means UTF-16LE, 0 ASCII (read as Latin-1 here);
    ComputerNameLen counts the NUL terminator, which must be present.
    """

    PDU: ClassVar[str] = "Client Name Request"

    computer_name: str
    unicode_flag: int = 1
    code_page: int = 0

    def _name_bytes(self) -> bytes:
        if self.unicode_flag & 1:
            return self.computer_name.encode("utf-16-le") + b"\0\0"
        return self.computer_name.encode("latin-1") + b"\0"

    def encode(self) -> bytes:
        name = self._name_bytes()
        w = _core_header(PacketId.PAKID_CORE_CLIENT_NAME)
        w.u32le(self.unicode_flag).u32le(self.code_page).u32le(len(name)).raw(name)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_core(data, cls.PDU, PacketId.PAKID_CORE_CLIENT_NAME)
        unicode_flag = r.u32le("UnicodeFlag")
        code_page = r.u32le("CodePage")
        length = r.u32le("ComputerNameLen")
        if length > MAX_COMPUTER_NAME_LEN:
            raise r.error("ComputerNameLen", f"{length} bytes, limit {MAX_COMPUTER_NAME_LEN}")
        raw = r.raw(length, "ComputerName")
        r.expect_end()
        if unicode_flag & 1:
            if length < 2 or length % 2 or raw[-2:] != b"\0\0":
                raise r.error("ComputerName", "not a NUL-terminated UTF-16 string")
            text = decode_utf16le(raw[:-2], r, "ComputerName")
        else:
            if length < 1 or raw[-1:] != b"\0":
                raise r.error("ComputerName", "not a NUL-terminated ASCII string")
            text = raw[:-1].decode("latin-1")
        # FreeRDP 2.x counts the terminator twice ("vm" arrives as v m NUL NUL):
        # the name ends at the first NUL, padding NULs after it are accepted.
        text, _, padding = text.partition("\0")
        if padding.strip("\0"):
            raise r.error("ComputerName", "characters after the terminating NUL")
        return cls(computer_name=text, unicode_flag=unicode_flag, code_page=code_page)


# -- capabilities --------------------------------------------------------------

CAPABILITY_HEADER_SIZE: Final = 8


@dataclass(frozen=True)
class GeneralCapabilitySet:
    """GENERAL_CAPS_SET (MS-RDPEFS 2.2.2.7.1).

    Version 2 is 44 bytes with SpecialTypeDeviceCap; version 1 is 40 bytes
    without it. FreeRDP 2.11.7 accepts only the 44-byte form.
    """

    os_type: int = 0
    os_version: int = 0
    protocol_major_version: int = 1
    protocol_minor_version: int = 13
    io_code1: int = IO_CODE1_ALL
    io_code2: int = 0
    extended_pdu: int = ExtendedPdu.RDPDR_DEVICE_REMOVE_PDUS | ExtendedPdu.RDPDR_USER_LOGGEDON_PDU
    extra_flags1: int = 0
    extra_flags2: int = 0
    special_type_device_cap: int = 0
    version: int = GeneralCapabilityVersion.GENERAL_CAPABILITY_VERSION_02

    capability_type: ClassVar[CapabilityType] = CapabilityType.CAP_GENERAL_TYPE

    @property
    def size(self) -> int:
        """Encoded length with the capability header: 44 (version 2) or 40."""
        return 40 if self.version == GeneralCapabilityVersion.GENERAL_CAPABILITY_VERSION_01 else 44

    def encode(self) -> bytes:
        w = Writer().u16le(self.capability_type).u16le(self.size).u32le(self.version)
        w.u32le(self.os_type).u32le(self.os_version)
        w.u16le(self.protocol_major_version).u16le(self.protocol_minor_version)
        w.u32le(self.io_code1).u32le(self.io_code2).u32le(self.extended_pdu)
        w.u32le(self.extra_flags1).u32le(self.extra_flags2)
        if self.size == 44:
            w.u32le(self.special_type_device_cap)
        return w.getvalue()

    @classmethod
    def read_body(cls, r: Reader, length: int, version: int) -> Self:
        if length not in (40, 44):
            raise r.error("CapabilityLength", f"general capability set of {length} bytes")
        if version == GeneralCapabilityVersion.GENERAL_CAPABILITY_VERSION_02 and length != 44:
            raise r.error("CapabilityLength", "version 2 general capability set must be 44 bytes")
        fields = [r.u32le("osType"), r.u32le("osVersion")]
        major = r.u16le("protocolMajorVersion")
        minor = r.u16le("protocolMinorVersion")
        io1, io2 = r.u32le("ioCode1"), r.u32le("ioCode2")
        ext, x1, x2 = r.u32le("extendedPDU"), r.u32le("extraFlags1"), r.u32le("extraFlags2")
        special = r.u32le("SpecialTypeDeviceCap") if length == 44 else 0
        return cls(fields[0], fields[1], major, minor, io1, io2, ext, x1, x2, special, version)


@dataclass(frozen=True)
class DeviceCapabilitySet:
    """PRINTER, PORT, DRIVE or SMARTCARD capability set (MS-RDPEFS 2.2.2.7.2-2.2.2.7.5).

    These are a CAPABILITY_HEADER only; ``data`` keeps any bytes a peer puts
    after the header so that a message re-encodes byte for byte.
    """

    capability_type: CapabilityType
    version: int = 1
    data: bytes = b""

    def encode(self) -> bytes:
        w = Writer().u16le(self.capability_type).u16le(CAPABILITY_HEADER_SIZE + len(self.data))
        return w.u32le(self.version).raw(self.data).getvalue()


CapabilitySet = GeneralCapabilitySet | DeviceCapabilitySet

#: The smart card capability set (MS-RDPEFS 2.2.2.7.5): header only, version 1.
SMARTCARD_CAPABILITY: Final = DeviceCapabilitySet(CapabilityType.CAP_SMARTCARD_TYPE, 1)


def read_capability_set(r: Reader) -> CapabilitySet:
    """One CAPABILITY_SET (MS-RDPEFS 2.2.1.2.1) with its header."""
    ctype = r.u16le("CapabilityType")
    length = r.u16le("CapabilityLength")
    version = r.u32le("Version")
    if length < CAPABILITY_HEADER_SIZE:
        raise r.error("CapabilityLength", f"{length} is shorter than the header")
    body = r.sub(length - CAPABILITY_HEADER_SIZE, "CapabilityData")
    try:
        cap_type = CapabilityType(ctype)
    except ValueError:
        raise r.error("CapabilityType", f"unknown capability type {ctype}") from None
    if cap_type == CapabilityType.CAP_GENERAL_TYPE:
        cap = GeneralCapabilitySet.read_body(body, length, version)
        body.expect_end()
        return cap
    return DeviceCapabilitySet(cap_type, version, body.rest())


@dataclass(frozen=True)
class _CoreCapability:
    """numCapabilities, Padding, CapabilityMessage (MS-RDPEFS 2.2.2.7)."""

    PACKET_ID: ClassVar[PacketId]
    PDU: ClassVar[str]

    capabilities: tuple[CapabilitySet, ...]
    padding: int = 0

    def encode(self) -> bytes:
        w = _core_header(self.PACKET_ID).u16le(len(self.capabilities)).u16le(self.padding)
        for cap in self.capabilities:
            w.raw(cap.encode())
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_core(data, cls.PDU, cls.PACKET_ID)
        count = r.u16le("numCapabilities")
        if count > MAX_CAPABILITIES:
            raise r.error("numCapabilities", f"{count} capability sets, limit {MAX_CAPABILITIES}")
        padding = r.u16le("Padding")
        caps = tuple(read_capability_set(r) for _ in range(count))
        r.expect_end()
        seen = [c.capability_type for c in caps]
        if len(set(seen)) != len(seen):
            raise r.error("CapabilityMessage", "a capability type appears twice")
        return cls(caps, padding)

    @property
    def general(self) -> GeneralCapabilitySet | None:
        """The general capability set, if present."""
        for cap in self.capabilities:
            if isinstance(cap, GeneralCapabilitySet):
                return cap
        return None

    def has(self, capability_type: CapabilityType) -> bool:
        """Whether a set of ``capability_type`` is present."""
        return any(c.capability_type == capability_type for c in self.capabilities)


@dataclass(frozen=True)
class ServerCoreCapabilityRequest(_CoreCapability):
    """DR_CORE_CAPABILITY_REQ (MS-RDPEFS 2.2.2.7)."""

    PACKET_ID = PacketId.PAKID_CORE_SERVER_CAPABILITY
    PDU = "Server Core Capability Request"


@dataclass(frozen=True)
class ClientCoreCapabilityResponse(_CoreCapability):
    """DR_CORE_CAPABILITY_RSP (MS-RDPEFS 2.2.2.8)."""

    PACKET_ID = PacketId.PAKID_CORE_CLIENT_CAPABILITY
    PDU = "Client Core Capability Response"


# -- devices -------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceAnnounce:
    """DEVICE_ANNOUNCE (MS-RDPEFS 2.2.1.3).

    PreferredDosName is 8 ASCII bytes, NUL-padded; the name is cut at the
    first NUL (FreeRDP fills all 8 bytes for an 8-character drive name).
    """

    device_type: DeviceType
    device_id: int
    preferred_dos_name: str
    device_data: bytes = b""

    def encode(self) -> bytes:
        name = self.preferred_dos_name.encode("latin-1")
        if len(name) > PREFERRED_DOS_NAME_SIZE:
            raise ValueError("PreferredDosName is at most 8 bytes")
        w = Writer().u32le(self.device_type).u32le(self.device_id)
        w.raw(name).zeros(PREFERRED_DOS_NAME_SIZE - len(name))
        return w.u32le(len(self.device_data)).raw(self.device_data).getvalue()

    @classmethod
    def read(cls, r: Reader) -> Self:
        dtype = r.u32le("DeviceType")
        try:
            device_type = DeviceType(dtype)
        except ValueError:
            raise r.error("DeviceType", f"unknown device type 0x{dtype:08X}") from None
        device_id = r.u32le("DeviceId")
        raw_name = r.raw(PREFERRED_DOS_NAME_SIZE, "PreferredDosName")
        name = raw_name.split(b"\0", 1)[0].decode("latin-1")
        length = r.u32le("DeviceDataLength")
        if length > MAX_DEVICE_DATA:
            raise r.error("DeviceDataLength", f"{length} bytes, limit {MAX_DEVICE_DATA}")
        return cls(device_type, device_id, name, r.raw(length, "DeviceData"))


def _read_count(r: Reader, item_size: int) -> int:
    count = r.u32le("DeviceCount")
    if count > MAX_DEVICES:
        raise r.error("DeviceCount", f"{count} devices, limit {MAX_DEVICES}")
    if count * item_size > r.remaining:
        raise r.error("DeviceCount", f"{count} devices cannot fit in {r.remaining} bytes")
    return count


@dataclass(frozen=True)
class ClientDeviceListAnnounceRequest:
    """DR_CORE_DEVICELIST_ANNOUNCE_REQ (MS-RDPEFS 2.2.2.9)."""

    PDU: ClassVar[str] = "Client Device List Announce Request"

    devices: tuple[DeviceAnnounce, ...]

    def encode(self) -> bytes:
        w = _core_header(PacketId.PAKID_CORE_DEVICELIST_ANNOUNCE).u32le(len(self.devices))
        for device in self.devices:
            w.raw(device.encode())
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_core(data, cls.PDU, PacketId.PAKID_CORE_DEVICELIST_ANNOUNCE)
        count = _read_count(r, DEVICE_ANNOUNCE_HEADER_SIZE)
        devices = tuple(DeviceAnnounce.read(r) for _ in range(count))
        r.expect_end()
        return cls(devices)


@dataclass(frozen=True)
class ClientDeviceListRemove:
    """DR_DEVICELIST_REMOVE (MS-RDPEFS 2.2.3.2): DeviceCount and DeviceIds."""

    PDU: ClassVar[str] = "Client Device List Remove"

    device_ids: tuple[int, ...]

    def encode(self) -> bytes:
        w = _core_header(PacketId.PAKID_CORE_DEVICELIST_REMOVE).u32le(len(self.device_ids))
        for device_id in self.device_ids:
            w.u32le(device_id)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_core(data, cls.PDU, PacketId.PAKID_CORE_DEVICELIST_REMOVE)
        count = _read_count(r, 4)
        ids = tuple(r.u32le("DeviceIds") for _ in range(count))
        r.expect_end()
        return cls(ids)


@dataclass(frozen=True)
class ServerDeviceAnnounceResponse:
    """DR_CORE_DEVICE_ANNOUNCE_RSP (MS-RDPEFS 2.2.2.1): DeviceId, ResultCode (NTSTATUS)."""

    PDU: ClassVar[str] = "Server Device Announce Response"
    SIZE: ClassVar[int] = 12

    device_id: int
    result_code: int = NtStatus.STATUS_SUCCESS

    def encode(self) -> bytes:
        w = _core_header(PacketId.PAKID_CORE_DEVICE_REPLY)
        return w.u32le(self.device_id).u32le(self.result_code).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_core(data, cls.PDU, PacketId.PAKID_CORE_DEVICE_REPLY)
        device_id = r.u32le("DeviceId")
        result = r.u32le("ResultCode")
        r.expect_end()
        return cls(device_id, result)


@dataclass(frozen=True)
class ServerUserLoggedOn:
    """DR_CORE_USER_LOGGEDON (MS-RDPEFS 2.2.2.5): the header alone."""

    PDU: ClassVar[str] = "Server User Logged On"
    SIZE: ClassVar[int] = 4

    def encode(self) -> bytes:
        return _core_header(PacketId.PAKID_CORE_USER_LOGGEDON).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_core(data, cls.PDU, PacketId.PAKID_CORE_USER_LOGGEDON)
        r.expect_end()
        return cls()


def check_core(data: bytes, pdu: str) -> PacketId:
    """The PacketId of an RDPDR_CTYP_CORE message, or a :class:`ProtocolError`."""
    header = RdpdrHeader.read(Reader(data, pdu))
    if header.component != Component.RDPDR_CTYP_CORE:
        raise ProtocolError(pdu, "Component", f"unexpected component {header.component.name}")
    return header.packet_id
