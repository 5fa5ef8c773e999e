"""The basic capability sets (MS-RDPBCGR 2.2.7.1) and the share-level ones (2.2.7.2).

General, Bitmap, Order, Pointer, Input, Share, Font, Control, Window
Activation, Color Table Cache, Sound and Virtual Channel. The server sends
General, Bitmap, Order, Pointer, Input, Font, Share and Virtual Channel in
its Demand Active PDU; a client sends most of them back in Confirm Active.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from rdscard.pdu.capabilities_base import CapabilitySetType as T
from rdscard.pdu.capabilities_base import FixedCapabilitySet


class OsMajorType(IntEnum):
    """osMajorType (MS-RDPBCGR 2.2.7.1.1)."""

    OSMAJORTYPE_UNSPECIFIED = 0x0000
    OSMAJORTYPE_WINDOWS = 0x0001
    OSMAJORTYPE_OS2 = 0x0002
    OSMAJORTYPE_MACINTOSH = 0x0003
    OSMAJORTYPE_UNIX = 0x0004
    OSMAJORTYPE_IOS = 0x0005
    OSMAJORTYPE_OSX = 0x0006
    OSMAJORTYPE_ANDROID = 0x0007
    OSMAJORTYPE_CHROME_OS = 0x0008


class OsMinorType(IntEnum):
    """osMinorType (MS-RDPBCGR 2.2.7.1.1)."""

    OSMINORTYPE_UNSPECIFIED = 0x0000
    OSMINORTYPE_WINDOWS_31X = 0x0001
    OSMINORTYPE_WINDOWS_95 = 0x0002
    OSMINORTYPE_WINDOWS_NT = 0x0003
    OSMINORTYPE_OS2_V21 = 0x0004
    OSMINORTYPE_POWER_PC = 0x0005
    OSMINORTYPE_MACINTOSH = 0x0006
    OSMINORTYPE_NATIVE_XSERVER = 0x0007
    OSMINORTYPE_PSEUDO_XSERVER = 0x0008
    OSMINORTYPE_WINDOWS_RT = 0x0009


class GeneralExtraFlag(IntFlag):
    """extraFlags of the General Capability Set (MS-RDPBCGR 2.2.7.1.1)."""

    FASTPATH_OUTPUT_SUPPORTED = 0x0001
    LONG_CREDENTIALS_SUPPORTED = 0x0004
    AUTORECONNECT_SUPPORTED = 0x0008
    ENC_SALTED_CHECKSUM = 0x0010
    NO_BITMAP_COMPRESSION_HDR = 0x0400


#: protocolVersion of the General Capability Set.
TS_CAPS_PROTOCOLVERSION = 0x0200


@dataclass(frozen=True)
class GeneralCapabilitySet(FixedCapabilitySet):
    """TS_GENERAL_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.1).

    refreshRectSupport and suppressOutputSupport may be missing from old
    clients' sets (``None``).
    """

    CAPABILITY_SET_TYPE = T.CAPSTYPE_GENERAL
    NAME = "TS_GENERAL_CAPABILITYSET"
    LAYOUT = (
        ("os_major_type", "osMajorType", "u16"),
        ("os_minor_type", "osMinorType", "u16"),
        ("protocol_version", "protocolVersion", "u16"),
        ("pad2octets_a", "pad2octetsA", "u16"),
        ("general_compression_types", "generalCompressionTypes", "u16"),
        ("extra_flags", "extraFlags", "u16"),
        ("update_capability_flag", "updateCapabilityFlag", "u16"),
        ("remote_unshare_flag", "remoteUnshareFlag", "u16"),
        ("general_compression_level", "generalCompressionLevel", "u16"),
        ("refresh_rect_support", "refreshRectSupport", "u8"),
        ("suppress_output_support", "suppressOutputSupport", "u8"),
    )
    OPTIONAL_FROM = 9

    os_major_type: int = OsMajorType.OSMAJORTYPE_UNIX
    os_minor_type: int = OsMinorType.OSMINORTYPE_NATIVE_XSERVER
    protocol_version: int = TS_CAPS_PROTOCOLVERSION
    pad2octets_a: int = 0
    general_compression_types: int = 0
    extra_flags: int = (
        GeneralExtraFlag.FASTPATH_OUTPUT_SUPPORTED
        | GeneralExtraFlag.LONG_CREDENTIALS_SUPPORTED
        | GeneralExtraFlag.NO_BITMAP_COMPRESSION_HDR
    )
    update_capability_flag: int = 0
    remote_unshare_flag: int = 0
    general_compression_level: int = 0
    refresh_rect_support: int | None = 1
    suppress_output_support: int | None = 1


class DrawingFlag(IntFlag):
    """drawingFlags of the Bitmap Capability Set (MS-RDPBCGR 2.2.7.1.2)."""

    DRAW_ALLOW_DYNAMIC_COLOR_FIDELITY = 0x02
    DRAW_ALLOW_COLOR_SUBSAMPLING = 0x04
    DRAW_ALLOW_SKIP_ALPHA = 0x08


@dataclass(frozen=True)
class BitmapCapabilitySet(FixedCapabilitySet):
    """TS_BITMAP_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.2).

    In the server's set, preferredBitsPerPixel and the desktop size are the
    ones the client must use.
    """

    CAPABILITY_SET_TYPE = T.CAPSTYPE_BITMAP
    NAME = "TS_BITMAP_CAPABILITYSET"
    LAYOUT = (
        ("preferred_bits_per_pixel", "preferredBitsPerPixel", "u16"),
        ("receive1_bit_per_pixel", "receive1BitPerPixel", "u16"),
        ("receive4_bits_per_pixel", "receive4BitsPerPixel", "u16"),
        ("receive8_bits_per_pixel", "receive8BitsPerPixel", "u16"),
        ("desktop_width", "desktopWidth", "u16"),
        ("desktop_height", "desktopHeight", "u16"),
        ("pad2octets", "pad2octets", "u16"),
        ("desktop_resize_flag", "desktopResizeFlag", "u16"),
        ("bitmap_compression_flag", "bitmapCompressionFlag", "u16"),
        ("high_color_flags", "highColorFlags", "u8"),
        ("drawing_flags", "drawingFlags", "u8"),
        ("multiple_rectangle_support", "multipleRectangleSupport", "u16"),
        ("pad2octets_b", "pad2octetsB", "u16"),
    )

    preferred_bits_per_pixel: int = 32
    receive1_bit_per_pixel: int = 1
    receive4_bits_per_pixel: int = 1
    receive8_bits_per_pixel: int = 1
    desktop_width: int = 1024
    desktop_height: int = 768
    pad2octets: int = 0
    desktop_resize_flag: int = 1
    bitmap_compression_flag: int = 1
    high_color_flags: int = 0
    drawing_flags: int = 0
    multiple_rectangle_support: int = 1
    pad2octets_b: int = 0


class OrderFlag(IntFlag):
    """orderFlags of the Order Capability Set (MS-RDPBCGR 2.2.7.1.3)."""

    NEGOTIATEORDERSUPPORT = 0x0002
    ZEROBOUNDSDELTASSUPPORT = 0x0008
    COLORINDEXSUPPORT = 0x0020
    SOLIDPATTERNBRUSHONLY = 0x0040
    ORDERFLAGS_EXTRA_FLAGS = 0x0080


@dataclass(frozen=True)
class OrderCapabilitySet(FixedCapabilitySet):
    """TS_ORDER_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.3).

    ``order_support`` is the 32-byte array indexed by TS_NEG_*_INDEX; a
    server that draws only bitmaps leaves it all zero.
    """

    CAPABILITY_SET_TYPE = T.CAPSTYPE_ORDER
    NAME = "TS_ORDER_CAPABILITYSET"
    LAYOUT = (
        ("terminal_descriptor", "terminalDescriptor", 16),
        ("pad4octets_a", "pad4octetsA", "u32"),
        ("desktop_save_x_granularity", "desktopSaveXGranularity", "u16"),
        ("desktop_save_y_granularity", "desktopSaveYGranularity", "u16"),
        ("pad2octets_a", "pad2octetsA", "u16"),
        ("maximum_order_level", "maximumOrderLevel", "u16"),
        ("number_fonts", "numberFonts", "u16"),
        ("order_flags", "orderFlags", "u16"),
        ("order_support", "orderSupport", 32),
        ("text_flags", "textFlags", "u16"),
        ("order_support_ex_flags", "orderSupportExFlags", "u16"),
        ("pad4octets_b", "pad4octetsB", "u32"),
        ("desktop_save_size", "desktopSaveSize", "u32"),
        ("pad2octets_c", "pad2octetsC", "u16"),
        ("pad2octets_d", "pad2octetsD", "u16"),
        ("text_ansi_code_page", "textANSICodePage", "u16"),
        ("pad2octets_e", "pad2octetsE", "u16"),
    )

    terminal_descriptor: bytes = bytes(16)
    pad4octets_a: int = 0
    desktop_save_x_granularity: int = 1
    desktop_save_y_granularity: int = 20
    pad2octets_a: int = 0
    maximum_order_level: int = 1
    number_fonts: int = 0
    order_flags: int = OrderFlag.NEGOTIATEORDERSUPPORT | OrderFlag.COLORINDEXSUPPORT
    order_support: bytes = bytes(32)
    text_flags: int = 0
    order_support_ex_flags: int = 0
    pad4octets_b: int = 0
    desktop_save_size: int = 480 * 480
    pad2octets_c: int = 0
    pad2octets_d: int = 0
    text_ansi_code_page: int = 0
    pad2octets_e: int = 0


@dataclass(frozen=True)
class PointerCapabilitySet(FixedCapabilitySet):
    """TS_POINTER_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.5); pointerCacheSize is optional."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_POINTER
    NAME = "TS_POINTER_CAPABILITYSET"
    LAYOUT = (
        ("color_pointer_flag", "colorPointerFlag", "u16"),
        ("color_pointer_cache_size", "colorPointerCacheSize", "u16"),
        ("pointer_cache_size", "pointerCacheSize", "u16"),
    )
    OPTIONAL_FROM = 2

    color_pointer_flag: int = 1
    color_pointer_cache_size: int = 25
    pointer_cache_size: int | None = 25


class InputFlag(IntFlag):
    """inputFlags of the Input Capability Set (MS-RDPBCGR 2.2.7.1.6)."""

    INPUT_FLAG_SCANCODES = 0x0001
    INPUT_FLAG_MOUSEX = 0x0004
    INPUT_FLAG_FASTPATH_INPUT = 0x0008
    INPUT_FLAG_UNICODE = 0x0010
    INPUT_FLAG_FASTPATH_INPUT2 = 0x0020
    INPUT_FLAG_UNUSED1 = 0x0040
    INPUT_FLAG_MOUSE_RELATIVE = 0x0080
    TS_INPUT_FLAG_MOUSE_HWHEEL = 0x0100
    TS_INPUT_FLAG_QOE_TIMESTAMPS = 0x0200


@dataclass(frozen=True)
class InputCapabilitySet(FixedCapabilitySet):
    """TS_INPUT_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.6).

    ``ime_file_name`` is the raw 64-byte UTF-16 field; see :attr:`ime_file_name_text`.
    """

    CAPABILITY_SET_TYPE = T.CAPSTYPE_INPUT
    NAME = "TS_INPUT_CAPABILITYSET"
    LAYOUT = (
        ("input_flags", "inputFlags", "u16"),
        ("pad2octets_a", "pad2octetsA", "u16"),
        ("keyboard_layout", "keyboardLayout", "u32"),
        ("keyboard_type", "keyboardType", "u32"),
        ("keyboard_sub_type", "keyboardSubType", "u32"),
        ("keyboard_function_key", "keyboardFunctionKey", "u32"),
        ("ime_file_name", "imeFileName", 64),
    )

    input_flags: int = (
        InputFlag.INPUT_FLAG_SCANCODES
        | InputFlag.INPUT_FLAG_MOUSEX
        | InputFlag.INPUT_FLAG_FASTPATH_INPUT
        | InputFlag.INPUT_FLAG_UNICODE
        | InputFlag.INPUT_FLAG_FASTPATH_INPUT2
    )
    pad2octets_a: int = 0
    keyboard_layout: int = 0
    keyboard_type: int = 0
    keyboard_sub_type: int = 0
    keyboard_function_key: int = 0
    ime_file_name: bytes = bytes(64)

    @property
    def ime_file_name_text(self) -> str:
        return self.ime_file_name.decode("utf-16-le", "replace").split("\0", 1)[0]


@dataclass(frozen=True)
class ShareCapabilitySet(FixedCapabilitySet):
    """TS_SHARE_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.4): the server's MCS channel id."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_SHARE
    NAME = "TS_SHARE_CAPABILITYSET"
    LAYOUT = (("node_id", "nodeId", "u16"), ("pad2octets", "pad2octets", "u16"))

    node_id: int = 0
    pad2octets: int = 0


#: fontSupportFlags (MS-RDPBCGR 2.2.7.2.5).
FONTSUPPORT_FONTLIST = 0x0001


@dataclass(frozen=True)
class FontCapabilitySet(FixedCapabilitySet):
    """TS_FONT_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.5); some clients send it empty."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_FONT
    NAME = "TS_FONT_CAPABILITYSET"
    LAYOUT = (
        ("font_support_flags", "fontSupportFlags", "u16"),
        ("pad2octets", "pad2octets", "u16"),
    )
    OPTIONAL_FROM = 0

    font_support_flags: int | None = FONTSUPPORT_FONTLIST
    pad2octets: int | None = 0


#: controlInterest / detachInterest value (MS-RDPBCGR 2.2.7.2.2).
CONTROLPRIORITY_NEVER = 0x0002


@dataclass(frozen=True)
class ControlCapabilitySet(FixedCapabilitySet):
    """TS_CONTROL_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.2), client to server only."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_CONTROL
    NAME = "TS_CONTROL_CAPABILITYSET"
    LAYOUT = (
        ("control_flags", "controlFlags", "u16"),
        ("remote_detach_flag", "remoteDetachFlag", "u16"),
        ("control_interest", "controlInterest", "u16"),
        ("detach_interest", "detachInterest", "u16"),
    )

    control_flags: int = 0
    remote_detach_flag: int = 0
    control_interest: int = CONTROLPRIORITY_NEVER
    detach_interest: int = CONTROLPRIORITY_NEVER


@dataclass(frozen=True)
class WindowActivationCapabilitySet(FixedCapabilitySet):
    """TS_WINDOWACTIVATION_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.3), client to server only."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_ACTIVATION
    NAME = "TS_WINDOWACTIVATION_CAPABILITYSET"
    LAYOUT = (
        ("help_key_flag", "helpKeyFlag", "u16"),
        ("help_key_index_flag", "helpKeyIndexFlag", "u16"),
        ("help_extended_key_flag", "helpExtendedKeyFlag", "u16"),
        ("window_manager_key_flag", "windowManagerKeyFlag", "u16"),
    )

    help_key_flag: int = 0
    help_key_index_flag: int = 0
    help_extended_key_flag: int = 0
    window_manager_key_flag: int = 0


@dataclass(frozen=True)
class ColorCacheCapabilitySet(FixedCapabilitySet):
    """TS_COLORTABLE_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.1)."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_COLORCACHE
    NAME = "TS_COLORTABLE_CAPABILITYSET"
    LAYOUT = (
        ("color_table_cache_size", "colorTableCacheSize", "u16"),
        ("pad2octets", "pad2octets", "u16"),
    )

    color_table_cache_size: int = 6
    pad2octets: int = 0


#: soundFlags (MS-RDPBCGR 2.2.7.1.11).
SOUND_BEEPS_FLAG = 0x0001


@dataclass(frozen=True)
class SoundCapabilitySet(FixedCapabilitySet):
    """TS_SOUND_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.11)."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_SOUND
    NAME = "TS_SOUND_CAPABILITYSET"
    LAYOUT = (("sound_flags", "soundFlags", "u16"), ("pad2octets_a", "pad2octetsA", "u16"))

    sound_flags: int = 0
    pad2octets_a: int = 0


class VirtualChannelFlag(IntEnum):
    """flags of the Virtual Channel Capability Set (MS-RDPBCGR 2.2.7.1.10)."""

    VCCAPS_NO_COMPR = 0x00000000
    VCCAPS_COMPR_SC = 0x00000001
    VCCAPS_COMPR_CS_8K = 0x00000002


#: CHANNEL_CHUNK_LENGTH: the chunk size when VCChunkSize is absent (2.2.7.1.10).
CHANNEL_CHUNK_LENGTH = 1600
#: Largest VCChunkSize a server may advertise (2.2.7.1.10).
CHANNEL_CHUNK_MAX_LENGTH = 16256


@dataclass(frozen=True)
class VirtualChannelCapabilitySet(FixedCapabilitySet):
    """TS_VIRTUALCHANNEL_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.10); VCChunkSize is optional."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_VIRTUALCHANNEL
    NAME = "TS_VIRTUALCHANNEL_CAPABILITYSET"
    LAYOUT = (("flags", "flags", "u32"), ("vc_chunk_size", "VCChunkSize", "u32"))
    OPTIONAL_FROM = 1

    flags: int = VirtualChannelFlag.VCCAPS_NO_COMPR
    vc_chunk_size: int | None = CHANNEL_CHUNK_LENGTH

    @property
    def chunk_size(self) -> int:
        """VCChunkSize, or the 1600-byte default when absent or zero."""
        return self.vc_chunk_size or CHANNEL_CHUNK_LENGTH
