"""Extended capability sets (MS-RDPBCGR 2.2.7.2.6 - 2.2.7.2.10).

Multifragment Update, Large Pointer, Surface Commands, Bitmap Codecs and
Frame Acknowledge (MS-RDPRFX 2.2.1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.capabilities_base import CapabilitySet, FixedCapabilitySet
from rdscard.pdu.capabilities_base import CapabilitySetType as T


@dataclass(frozen=True)
class MultifragmentUpdateCapabilitySet(FixedCapabilitySet):
    """TS_MULTIFRAGMENTUPDATE_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.6)."""

    CAPABILITY_SET_TYPE = T.CAPSETTYPE_MULTIFRAGMENTUPDATE
    NAME = "TS_MULTIFRAGMENTUPDATE_CAPABILITYSET"
    LAYOUT = (("max_request_size", "MaxRequestSize", "u32"),)

    max_request_size: int = 0


class LargePointerFlag(IntFlag):
    """largePointerSupportFlags (MS-RDPBCGR 2.2.7.2.7)."""

    LARGE_POINTER_FLAG_96X96 = 0x0001
    LARGE_POINTER_FLAG_384X384 = 0x0002


@dataclass(frozen=True)
class LargePointerCapabilitySet(FixedCapabilitySet):
    """TS_LARGE_POINTER_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.7)."""

    CAPABILITY_SET_TYPE = T.CAPSETTYPE_LARGE_POINTER
    NAME = "TS_LARGE_POINTER_CAPABILITYSET"
    LAYOUT = (("large_pointer_support_flags", "largePointerSupportFlags", "u16"),)

    large_pointer_support_flags: int = 0


class SurfaceCommandFlag(IntFlag):
    """cmdFlags (MS-RDPBCGR 2.2.7.2.9)."""

    SURFCMDS_SETSURFACEBITS = 0x00000002
    SURFCMDS_FRAMEMARKER = 0x00000010
    SURFCMDS_STREAMSURFACEBITS = 0x00000040


@dataclass(frozen=True)
class SurfaceCommandsCapabilitySet(FixedCapabilitySet):
    """TS_SURFCMDS_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.9)."""

    CAPABILITY_SET_TYPE = T.CAPSETTYPE_SURFACE_COMMANDS
    NAME = "TS_SURFCMDS_CAPABILITYSET"
    LAYOUT = (("cmd_flags", "cmdFlags", "u32"), ("reserved", "reserved", "u32"))

    cmd_flags: int = 0
    reserved: int = 0


@dataclass(frozen=True)
class FrameAcknowledgeCapabilitySet(FixedCapabilitySet):
    """TS_FRAME_ACKNOWLEDGE_CAPABILITYSET (MS-RDPRFX 2.2.1.3)."""

    CAPABILITY_SET_TYPE = T.CAPSSETTYPE_FRAME_ACKNOWLEDGE
    NAME = "TS_FRAME_ACKNOWLEDGE_CAPABILITYSET"
    LAYOUT = (("max_unacknowledged_frame_count", "maxUnacknowledgedFrameCount", "u32"),)

    max_unacknowledged_frame_count: int = 0


#: Largest codecPropertiesLength accepted; the whole set is bounded by its 16-bit length anyway.
MAX_CODEC_PROPERTIES: Final = 0xFFFF


@dataclass(frozen=True)
class BitmapCodec:
    """TS_BITMAPCODEC (MS-RDPBCGR 2.2.7.2.10.1.1): a GUID, an id and opaque properties."""

    codec_guid: bytes
    codec_id: int
    codec_properties: bytes = b""

    def write(self, w: Writer) -> None:
        if len(self.codec_guid) != 16:
            raise ValueError("codecGUID must be 16 bytes")
        w.raw(self.codec_guid).u8(self.codec_id)
        w.u16le(len(self.codec_properties)).raw(self.codec_properties)

    @classmethod
    def read(cls, r: Reader) -> Self:
        guid = r.raw(16, "codecGUID")
        codec_id = r.u8("codecID")
        length = r.u16le("codecPropertiesLength")
        return cls(guid, codec_id, r.raw(length, "codecProperties"))


@dataclass(frozen=True)
class BitmapCodecsCapabilitySet(CapabilitySet):
    """TS_BITMAPCODECS_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.10): TS_BITMAPCODECS."""

    CAPABILITY_SET_TYPE = T.CAPSETTYPE_BITMAP_CODECS
    NAME = "TS_BITMAPCODECS_CAPABILITYSET"

    codecs: tuple[BitmapCodec, ...] = ()

    def encode_body(self) -> bytes:
        if len(self.codecs) > 0xFF:
            raise ValueError("at most 255 bitmap codecs")
        w = Writer().u8(len(self.codecs))
        for codec in self.codecs:
            codec.write(w)
        return w.getvalue()

    @classmethod
    def decode_body(cls, r: Reader) -> Self:
        count = r.u8("bitmapCodecCount")
        return cls(tuple(BitmapCodec.read(r) for _ in range(count)))
