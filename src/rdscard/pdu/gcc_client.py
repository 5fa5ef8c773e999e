"""Client GCC user data blocks (MS-RDPBCGR 2.2.1.3.1-2.2.1.3.10).

Each block starts with a User Data Header (type, length including the
header). ``encode()`` returns the whole block, header included, and
``decode(data)`` takes exactly one whole block.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum, IntFlag
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer

USER_DATA_HEADER_SIZE: Final = 4
#: 2.2.1.3.4: at most 31 static virtual channels.
MAX_CHANNELS: Final = 31
#: 2.2.1.3.6: at most 16 monitors.
MAX_MONITORS: Final = 16
CHANNEL_DEF_SIZE: Final = 12
MONITOR_DEF_SIZE: Final = 20
MONITOR_ATTRIBUTE_SIZE: Final = 20


class ClientBlockType(IntEnum):
    """User Data Header types of client blocks (MS-RDPBCGR 2.2.1.3.1)."""

    CS_CORE = 0xC001
    CS_SECURITY = 0xC002
    CS_NET = 0xC003
    CS_CLUSTER = 0xC004
    CS_MONITOR = 0xC005
    CS_MCS_MSGCHANNEL = 0xC006
    CS_MONITOR_EX = 0xC008
    CS_MULTITRANSPORT = 0xC00A
    CS_UNUSED1 = 0xC00C


class RdpVersion(IntEnum):
    """version of TS_UD_CS_CORE and TS_UD_SC_CORE (2.2.1.3.2, 2.2.1.4.2)."""

    RDP_VERSION_4 = 0x00080001
    RDP_VERSION_5_PLUS = 0x00080004
    RDP_VERSION_10_0 = 0x00080005
    RDP_VERSION_10_1 = 0x00080006
    RDP_VERSION_10_2 = 0x00080007
    RDP_VERSION_10_3 = 0x00080008
    RDP_VERSION_10_4 = 0x00080009
    RDP_VERSION_10_5 = 0x0008000A
    RDP_VERSION_10_6 = 0x0008000B
    RDP_VERSION_10_7 = 0x0008000C
    RDP_VERSION_10_8 = 0x0008000D
    RDP_VERSION_10_9 = 0x0008000E
    RDP_VERSION_10_10 = 0x0008000F
    RDP_VERSION_10_11 = 0x00080010
    RDP_VERSION_10_12 = 0x00080011


class ColorDepth(IntEnum):
    """colorDepth and postBeta2ColorDepth values (2.2.1.3.2)."""

    RNS_UD_COLOR_4BPP = 0xCA00
    RNS_UD_COLOR_8BPP = 0xCA01
    RNS_UD_COLOR_16BPP_555 = 0xCA02
    RNS_UD_COLOR_16BPP_565 = 0xCA03
    RNS_UD_COLOR_24BPP = 0xCA04


class SupportedColorDepths(IntFlag):
    """supportedColorDepths (2.2.1.3.2)."""

    RNS_UD_24BPP_SUPPORT = 0x0001
    RNS_UD_16BPP_SUPPORT = 0x0002
    RNS_UD_15BPP_SUPPORT = 0x0004
    RNS_UD_32BPP_SUPPORT = 0x0008


class EarlyCapabilityFlags(IntFlag):
    """earlyCapabilityFlags of TS_UD_CS_CORE (2.2.1.3.2)."""

    RNS_UD_CS_SUPPORT_ERRINFO_PDU = 0x0001
    RNS_UD_CS_WANT_32BPP_SESSION = 0x0002
    RNS_UD_CS_SUPPORT_STATUSINFO_PDU = 0x0004
    RNS_UD_CS_STRONG_ASYMMETRIC_KEYS = 0x0008
    RNS_UD_CS_RELATIVE_MOUSE_INPUT = 0x0010
    RNS_UD_CS_VALID_CONNECTION_TYPE = 0x0020
    RNS_UD_CS_SUPPORT_MONITOR_LAYOUT_PDU = 0x0040
    RNS_UD_CS_SUPPORT_NETCHAR_AUTODETECT = 0x0080
    RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL = 0x0100
    RNS_UD_CS_SUPPORT_DYNAMIC_TIME_ZONE = 0x0200
    RNS_UD_CS_SUPPORT_HEARTBEAT_PDU = 0x0400
    RNS_UD_CS_SUPPORT_SKIP_CHANNELJOIN = 0x0800


class ConnectionType(IntEnum):
    """connectionType (2.2.1.3.2)."""

    CONNECTION_TYPE_MODEM = 0x01
    CONNECTION_TYPE_BROADBAND_LOW = 0x02
    CONNECTION_TYPE_SATELLITE = 0x03
    CONNECTION_TYPE_BROADBAND_HIGH = 0x04
    CONNECTION_TYPE_WAN = 0x05
    CONNECTION_TYPE_LAN = 0x06
    CONNECTION_TYPE_AUTODETECT = 0x07


class EncryptionMethod(IntFlag):
    """encryptionMethods / encryptionMethod (2.2.1.3.3, 2.2.1.4.3)."""

    ENCRYPTION_METHOD_NONE = 0x00000000
    ENCRYPTION_METHOD_40BIT = 0x00000001
    ENCRYPTION_METHOD_128BIT = 0x00000002
    ENCRYPTION_METHOD_56BIT = 0x00000008
    ENCRYPTION_METHOD_FIPS = 0x00000010


class ChannelOption(IntFlag):
    """CHANNEL_DEF options (2.2.1.3.4.1)."""

    CHANNEL_OPTION_INITIALIZED = 0x80000000
    CHANNEL_OPTION_ENCRYPT_RDP = 0x40000000
    CHANNEL_OPTION_ENCRYPT_SC = 0x20000000
    CHANNEL_OPTION_ENCRYPT_CS = 0x10000000
    CHANNEL_OPTION_PRI_HIGH = 0x08000000
    CHANNEL_OPTION_PRI_MED = 0x04000000
    CHANNEL_OPTION_PRI_LOW = 0x02000000
    CHANNEL_OPTION_COMPRESS_RDP = 0x00800000
    CHANNEL_OPTION_COMPRESS = 0x00400000
    CHANNEL_OPTION_SHOW_PROTOCOL = 0x00200000
    REMOTE_CONTROL_PERSISTENT = 0x00100000


class ClusterFlags(IntFlag):
    """TS_UD_CS_CLUSTER Flags (2.2.1.3.5); bits 2-5 hold the redirection version."""

    REDIRECTION_SUPPORTED = 0x00000001
    REDIRECTED_SESSIONID_FIELD_VALID = 0x00000002
    REDIRECTED_SMARTCARD = 0x00000040


def open_block(data: bytes, expected: int, pdu: str) -> Reader:
    """A reader over the body of one whole block of type ``expected``."""
    reader = Reader(data, pdu)
    kind = reader.u16le("header.type")
    if kind != expected:
        raise reader.error("header.type", f"expected 0x{expected:04x}, got 0x{kind:04x}")
    length = reader.u16le("header.length")
    if length != len(data):
        raise reader.error("header.length", f"says {length}, block has {len(data)} bytes")
    return reader


def close_block(kind: int, body: Writer | bytes) -> bytes:
    """Prefix ``body`` with its User Data Header."""
    payload = body.getvalue() if isinstance(body, Writer) else body
    length = USER_DATA_HEADER_SIZE + len(payload)
    if length > 0xFFFF:
        raise ValueError(f"GCC block 0x{kind:04x} too long")
    return Writer().u16le(kind).u16le(length).raw(payload).getvalue()


def read_utf16_fixed(reader: Reader, size: int, field: str) -> str:
    """A fixed-size UTF-16LE field, cut at its first NUL code unit."""
    raw = reader.raw(size, field)
    for index in range(0, size, 2):
        if raw[index] == 0 and raw[index + 1] == 0:
            raw = raw[:index]
            break
    try:
        return raw.decode("utf-16-le")
    except UnicodeDecodeError:
        raise reader.error(field, "invalid UTF-16") from None


def encode_utf16_fixed(text: str, size: int, field: str) -> bytes:
    """``text`` as NUL-terminated UTF-16LE padded to ``size`` bytes."""
    raw = text.encode("utf-16-le")
    if len(raw) > size - 2:
        raise ValueError(f"{field} longer than {size // 2 - 1} UTF-16 code units")
    return raw + bytes(size - len(raw))


# Optional fields of TS_UD_CS_CORE in wire order with their sizes; a field
# may be present only when every one before it is.
_CORE_TAIL: Final = (
    ("post_beta2_color_depth", 2),
    ("client_product_id", 2),
    ("serial_number", 4),
    ("high_color_depth", 2),
    ("supported_color_depths", 2),
    ("early_capability_flags", 2),
    ("client_dig_product_id", 64),
    ("connection_type", 1),
    ("pad1octet", 1),
    ("server_selected_protocol", 4),
    ("desktop_physical_width", 4),
    ("desktop_physical_height", 4),
    ("desktop_orientation", 2),
    ("desktop_scale_factor", 4),
    ("device_scale_factor", 4),
)


@dataclass(frozen=True, slots=True)
class ClientCoreData:
    """TS_UD_CS_CORE (MS-RDPBCGR 2.2.1.3.2).

    The fields from ``post_beta2_color_depth`` on are optional: None means
    absent, and once one is absent every later one must be too.
    ``client_dig_product_id`` is text (64 bytes of UTF-16 on the wire).
    """

    version: int
    desktop_width: int
    desktop_height: int
    color_depth: int
    sas_sequence: int
    keyboard_layout: int
    client_build: int
    client_name: str
    keyboard_type: int
    keyboard_sub_type: int
    keyboard_function_key: int
    ime_file_name: str
    post_beta2_color_depth: int | None = None
    client_product_id: int | None = None
    serial_number: int | None = None
    high_color_depth: int | None = None
    supported_color_depths: int | None = None
    early_capability_flags: int | None = None
    client_dig_product_id: str | None = None
    connection_type: int | None = None
    pad1octet: int | None = None
    server_selected_protocol: int | None = None
    desktop_physical_width: int | None = None
    desktop_physical_height: int | None = None
    desktop_orientation: int | None = None
    desktop_scale_factor: int | None = None
    device_scale_factor: int | None = None

    def __post_init__(self) -> None:
        absent = False
        for name, _ in _CORE_TAIL:
            value = getattr(self, name)
            if value is None:
                absent = True
            elif absent:
                raise ValueError(f"{name} present after an absent optional field")

    def encode(self) -> bytes:
        w = Writer()
        w.u32le(self.version).u16le(self.desktop_width).u16le(self.desktop_height)
        w.u16le(self.color_depth).u16le(self.sas_sequence).u32le(self.keyboard_layout)
        w.u32le(self.client_build).raw(encode_utf16_fixed(self.client_name, 32, "clientName"))
        w.u32le(self.keyboard_type).u32le(self.keyboard_sub_type)
        w.u32le(self.keyboard_function_key)
        w.raw(encode_utf16_fixed(self.ime_file_name, 64, "imeFileName"))
        for name, size in _CORE_TAIL:
            value = getattr(self, name)
            if value is None:
                break
            if size == 64:
                w.raw(encode_utf16_fixed(value, 64, "clientDigProductId"))
            elif size == 4:
                w.u32le(value)
            elif size == 2:
                w.u16le(value)
            else:
                w.u8(value)
        return close_block(ClientBlockType.CS_CORE, w)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ClientBlockType.CS_CORE, "TS_UD_CS_CORE")
        values: dict[str, object] = {
            "version": r.u32le("version"),
            "desktop_width": r.u16le("desktopWidth"),
            "desktop_height": r.u16le("desktopHeight"),
            "color_depth": r.u16le("colorDepth"),
            "sas_sequence": r.u16le("SASSequence"),
            "keyboard_layout": r.u32le("keyboardLayout"),
            "client_build": r.u32le("clientBuild"),
            "client_name": read_utf16_fixed(r, 32, "clientName"),
            "keyboard_type": r.u32le("keyboardType"),
            "keyboard_sub_type": r.u32le("keyboardSubType"),
            "keyboard_function_key": r.u32le("keyboardFunctionKey"),
            "ime_file_name": read_utf16_fixed(r, 64, "imeFileName"),
        }
        for name, size in _CORE_TAIL:
            if not r.remaining:
                break
            if size == 64:
                values[name] = read_utf16_fixed(r, 64, name)
            elif size == 4:
                values[name] = r.u32le(name)
            elif size == 2:
                values[name] = r.u16le(name)
            else:
                values[name] = r.u8(name)
        r.expect_end()
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ClientSecurityData:
    """TS_UD_CS_SEC (MS-RDPBCGR 2.2.1.3.3)."""

    encryption_methods: int = 0
    ext_encryption_methods: int = 0

    def encode(self) -> bytes:
        body = Writer().u32le(self.encryption_methods).u32le(self.ext_encryption_methods)
        return close_block(ClientBlockType.CS_SECURITY, body)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ClientBlockType.CS_SECURITY, "TS_UD_CS_SEC")
        block = cls(r.u32le("encryptionMethods"), r.u32le("extEncryptionMethods"))
        r.expect_end()
        return block


@dataclass(frozen=True, slots=True)
class ChannelDef:
    """CHANNEL_DEF (MS-RDPBCGR 2.2.1.3.4.1): a name of up to 7 ANSI characters."""

    name: str
    options: int

    def encode(self) -> bytes:
        raw = self.name.encode("ascii")
        if len(raw) > 7:
            raise ValueError(f"channel name {self.name!r} longer than 7 characters")
        return Writer().raw(raw).zeros(8 - len(raw)).u32le(self.options).getvalue()

    @classmethod
    def decode_from(cls, reader: Reader) -> Self:
        raw = reader.raw(8, "channelDefArray.name").split(b"\0", 1)[0]
        if not raw.isascii():
            raise reader.error("channelDefArray.name", "non-ASCII channel name")
        return cls(raw.decode("ascii"), reader.u32le("channelDefArray.options"))


@dataclass(frozen=True, slots=True)
class ClientNetworkData:
    """TS_UD_CS_NET (MS-RDPBCGR 2.2.1.3.4): the requested static virtual channels."""

    channel_def_array: tuple[ChannelDef, ...] = ()

    @property
    def channels(self) -> tuple[ChannelDef, ...]:
        """The requested channels, in the client's order."""
        return self.channel_def_array

    def encode(self) -> bytes:
        if len(self.channel_def_array) > MAX_CHANNELS:
            raise ValueError(f"more than {MAX_CHANNELS} channels")
        body = Writer().u32le(len(self.channel_def_array))
        for channel in self.channel_def_array:
            body.raw(channel.encode())
        return close_block(ClientBlockType.CS_NET, body)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ClientBlockType.CS_NET, "TS_UD_CS_NET")
        count = r.u32le("channelCount")
        if count > MAX_CHANNELS:
            raise r.error("channelCount", f"{count} channels, at most {MAX_CHANNELS}")
        channels = tuple(ChannelDef.decode_from(r) for _ in range(count))
        r.expect_end()
        return cls(channels)


@dataclass(frozen=True, slots=True)
class ClientClusterData:
    """TS_UD_CS_CLUSTER (MS-RDPBCGR 2.2.1.3.5)."""

    flags: int
    redirected_session_id: int = 0

    def encode(self) -> bytes:
        body = Writer().u32le(self.flags).u32le(self.redirected_session_id)
        return close_block(ClientBlockType.CS_CLUSTER, body)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ClientBlockType.CS_CLUSTER, "TS_UD_CS_CLUSTER")
        block = cls(r.u32le("Flags"), r.u32le("RedirectedSessionID"))
        r.expect_end()
        return block


@dataclass(frozen=True, slots=True)
class MonitorDef:
    """TS_MONITOR_DEF (MS-RDPBCGR 2.2.1.3.6.1): inclusive desktop coordinates."""

    left: int
    top: int
    right: int
    bottom: int
    flags: int = 0

    def encode(self) -> bytes:
        w = Writer().i32le(self.left).i32le(self.top).i32le(self.right).i32le(self.bottom)
        return w.u32le(self.flags).getvalue()

    @classmethod
    def decode_from(cls, reader: Reader) -> Self:
        return cls(
            reader.i32le("left"),
            reader.i32le("top"),
            reader.i32le("right"),
            reader.i32le("bottom"),
            reader.u32le("flags"),
        )


@dataclass(frozen=True, slots=True)
class ClientMonitorData:
    """TS_UD_CS_MONITOR (MS-RDPBCGR 2.2.1.3.6)."""

    monitor_def_array: tuple[MonitorDef, ...]
    flags: int = 0

    def encode(self) -> bytes:
        if len(self.monitor_def_array) > MAX_MONITORS:
            raise ValueError(f"more than {MAX_MONITORS} monitors")
        body = Writer().u32le(self.flags).u32le(len(self.monitor_def_array))
        for monitor in self.monitor_def_array:
            body.raw(monitor.encode())
        return close_block(ClientBlockType.CS_MONITOR, body)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ClientBlockType.CS_MONITOR, "TS_UD_CS_MONITOR")
        flags = r.u32le("flags")
        count = r.u32le("monitorCount")
        if count > MAX_MONITORS:
            raise r.error("monitorCount", f"{count} monitors, at most {MAX_MONITORS}")
        monitors = tuple(MonitorDef.decode_from(r) for _ in range(count))
        r.expect_end()
        return cls(monitors, flags)


@dataclass(frozen=True, slots=True)
class MonitorAttributes:
    """TS_MONITOR_ATTRIBUTES (MS-RDPBCGR 2.2.1.3.9.1)."""

    physical_width: int
    physical_height: int
    orientation: int
    desktop_scale_factor: int
    device_scale_factor: int

    def encode(self) -> bytes:
        w = Writer()
        for field in fields(self):
            w.u32le(getattr(self, field.name))
        return w.getvalue()

    @classmethod
    def decode_from(cls, reader: Reader) -> Self:
        return cls(*(reader.u32le(field.name) for field in fields(cls)))


@dataclass(frozen=True, slots=True)
class ClientMonitorExtendedData:
    """TS_UD_CS_MONITOR_EX (MS-RDPBCGR 2.2.1.3.9)."""

    monitor_attributes_array: tuple[MonitorAttributes, ...]
    flags: int = 0

    def encode(self) -> bytes:
        if len(self.monitor_attributes_array) > MAX_MONITORS:
            raise ValueError(f"more than {MAX_MONITORS} monitors")
        body = Writer().u32le(self.flags).u32le(MONITOR_ATTRIBUTE_SIZE)
        body.u32le(len(self.monitor_attributes_array))
        for attributes in self.monitor_attributes_array:
            body.raw(attributes.encode())
        return close_block(ClientBlockType.CS_MONITOR_EX, body)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ClientBlockType.CS_MONITOR_EX, "TS_UD_CS_MONITOR_EX")
        flags = r.u32le("flags")
        size = r.u32le("monitorAttributeSize")
        if size != MONITOR_ATTRIBUTE_SIZE:
            raise r.error("monitorAttributeSize", f"expected 20, got {size}")
        count = r.u32le("monitorCount")
        if count > MAX_MONITORS:
            raise r.error("monitorCount", f"{count} monitors, at most {MAX_MONITORS}")
        attributes = tuple(MonitorAttributes.decode_from(r) for _ in range(count))
        r.expect_end()
        return cls(attributes, flags)


@dataclass(frozen=True, slots=True)
class ClientMessageChannelData:
    """TS_UD_CS_MCS_MSGCHANNEL (MS-RDPBCGR 2.2.1.3.7)."""

    flags: int = 0

    def encode(self) -> bytes:
        return close_block(ClientBlockType.CS_MCS_MSGCHANNEL, Writer().u32le(self.flags))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ClientBlockType.CS_MCS_MSGCHANNEL, "TS_UD_CS_MCS_MSGCHANNEL")
        block = cls(r.u32le("flags"))
        r.expect_end()
        return block


@dataclass(frozen=True, slots=True)
class ClientMultitransportChannelData:
    """TS_UD_CS_MULTITRANSPORT (MS-RDPBCGR 2.2.1.3.8)."""

    flags: int = 0

    def encode(self) -> bytes:
        return close_block(ClientBlockType.CS_MULTITRANSPORT, Writer().u32le(self.flags))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ClientBlockType.CS_MULTITRANSPORT, "TS_UD_CS_MULTITRANSPORT")
        block = cls(r.u32le("flags"))
        r.expect_end()
        return block


@dataclass(frozen=True, slots=True)
class UnknownBlock:
    """A user data block of a type this module does not interpret, kept verbatim."""

    type: int
    data: bytes

    def encode(self) -> bytes:
        return close_block(self.type, self.data)
