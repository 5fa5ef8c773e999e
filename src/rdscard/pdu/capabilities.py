"""Capability sets (MS-RDPBCGR 2.2.7): decoding a list, and every known set.

The sets themselves live in :mod:`capabilities_core`,
:mod:`capabilities_cache` and :mod:`capabilities_ext`; this module
re-exports them and turns the capabilitySets field of Demand Active and
Confirm Active into objects. Sets of a type not modelled here (Draw Nine
Grid, Draw GDI+, RAIL, Window List, Desktop Composition, or anything new)
are kept as :class:`RawCapabilitySet`, which is not an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, TypeVar

from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.capabilities_base import (
    CAPABILITY_HEADER_SIZE,
    CapabilitySet,
    CapabilitySetType,
    FixedCapabilitySet,
    RawCapabilitySet,
)
from rdscard.pdu.capabilities_cache import (
    BitmapCacheCapabilitySet,
    BitmapCacheHostSupportCapabilitySet,
    BitmapCacheRev2CapabilitySet,
    BitmapCacheRev2Flag,
    BrushCapabilitySet,
    BrushSupportLevel,
    GlyphCacheCapabilitySet,
    GlyphSupportLevel,
    OffscreenBitmapCacheCapabilitySet,
)
from rdscard.pdu.capabilities_core import (
    CHANNEL_CHUNK_LENGTH,
    CHANNEL_CHUNK_MAX_LENGTH,
    BitmapCapabilitySet,
    ColorCacheCapabilitySet,
    ControlCapabilitySet,
    DrawingFlag,
    FontCapabilitySet,
    GeneralCapabilitySet,
    GeneralExtraFlag,
    InputCapabilitySet,
    InputFlag,
    OrderCapabilitySet,
    OrderFlag,
    OsMajorType,
    OsMinorType,
    PointerCapabilitySet,
    ShareCapabilitySet,
    SoundCapabilitySet,
    VirtualChannelCapabilitySet,
    VirtualChannelFlag,
    WindowActivationCapabilitySet,
)
from rdscard.pdu.capabilities_ext import (
    BitmapCodec,
    BitmapCodecsCapabilitySet,
    FrameAcknowledgeCapabilitySet,
    LargePointerCapabilitySet,
    LargePointerFlag,
    MultifragmentUpdateCapabilitySet,
    SurfaceCommandFlag,
    SurfaceCommandsCapabilitySet,
)

__all__ = [
    "CAPABILITY_HEADER_SIZE",
    "CHANNEL_CHUNK_LENGTH",
    "CHANNEL_CHUNK_MAX_LENGTH",
    "KNOWN_SETS",
    "MAX_CAPABILITY_SETS",
    "BitmapCacheCapabilitySet",
    "BitmapCacheHostSupportCapabilitySet",
    "BitmapCacheRev2CapabilitySet",
    "BitmapCacheRev2Flag",
    "BitmapCapabilitySet",
    "BitmapCodec",
    "BitmapCodecsCapabilitySet",
    "BrushCapabilitySet",
    "BrushSupportLevel",
    "CapabilitySet",
    "CapabilitySetType",
    "ColorCacheCapabilitySet",
    "ControlCapabilitySet",
    "DrawingFlag",
    "FixedCapabilitySet",
    "FontCapabilitySet",
    "FrameAcknowledgeCapabilitySet",
    "GeneralCapabilitySet",
    "GeneralExtraFlag",
    "GlyphCacheCapabilitySet",
    "GlyphSupportLevel",
    "InputCapabilitySet",
    "InputFlag",
    "LargePointerCapabilitySet",
    "LargePointerFlag",
    "MultifragmentUpdateCapabilitySet",
    "OffscreenBitmapCacheCapabilitySet",
    "OrderCapabilitySet",
    "OrderFlag",
    "OsMajorType",
    "OsMinorType",
    "PointerCapabilitySet",
    "RawCapabilitySet",
    "ShareCapabilitySet",
    "SoundCapabilitySet",
    "SurfaceCommandFlag",
    "SurfaceCommandsCapabilitySet",
    "VirtualChannelCapabilitySet",
    "VirtualChannelFlag",
    "WindowActivationCapabilitySet",
    "decode_capability_set",
    "decode_capability_sets",
    "encode_capability_sets",
    "find_capability",
]

#: Most capability sets accepted in one PDU (about 30 types exist).
MAX_CAPABILITY_SETS: Final = 64

KNOWN_SETS: Final[dict[int, type[CapabilitySet]]] = {
    cls.CAPABILITY_SET_TYPE: cls
    for cls in (
        GeneralCapabilitySet,
        BitmapCapabilitySet,
        OrderCapabilitySet,
        BitmapCacheCapabilitySet,
        ControlCapabilitySet,
        WindowActivationCapabilitySet,
        PointerCapabilitySet,
        ShareCapabilitySet,
        ColorCacheCapabilitySet,
        SoundCapabilitySet,
        InputCapabilitySet,
        FontCapabilitySet,
        BrushCapabilitySet,
        GlyphCacheCapabilitySet,
        OffscreenBitmapCacheCapabilitySet,
        BitmapCacheHostSupportCapabilitySet,
        BitmapCacheRev2CapabilitySet,
        VirtualChannelCapabilitySet,
        MultifragmentUpdateCapabilitySet,
        LargePointerCapabilitySet,
        SurfaceCommandsCapabilitySet,
        BitmapCodecsCapabilitySet,
        FrameAcknowledgeCapabilitySet,
    )
}


def decode_capability_set(r: Reader) -> CapabilitySet:
    """Read one TS_CAPS_SET (MS-RDPBCGR 2.2.1.13.1.1.1) from ``r``."""
    type_code = r.u16le("capabilitySetType")
    length = r.u16le("lengthCapability")
    if length < CAPABILITY_HEADER_SIZE:
        raise r.error("lengthCapability", f"{length} is shorter than the 4-byte header")
    cls = KNOWN_SETS.get(type_code)
    if cls is None:
        return RawCapabilitySet(type_code, r.raw(length - CAPABILITY_HEADER_SIZE, "capabilityData"))
    body = r.sub(length - CAPABILITY_HEADER_SIZE, "capabilityData", f"{r.pdu}: {cls.NAME}")
    return cls.decode_body(body)


def decode_capability_sets(r: Reader, count: int) -> tuple[CapabilitySet, ...]:
    """Read ``count`` capability sets (numberCapabilities) from ``r``."""
    if count > MAX_CAPABILITY_SETS:
        raise r.error("numberCapabilities", f"{count} exceeds {MAX_CAPABILITY_SETS}")
    return tuple(decode_capability_set(r) for _ in range(count))


def encode_capability_sets(sets: Iterable[CapabilitySet]) -> bytes:
    """The concatenated encodings of ``sets``."""
    w = Writer()
    for capability in sets:
        w.raw(capability.encode())
    return w.getvalue()


C = TypeVar("C", bound=CapabilitySet)


def find_capability(sets: Sequence[CapabilitySet], kind: type[C]) -> C | None:
    """The first set of class ``kind`` in ``sets``, or None."""
    for capability in sets:
        if isinstance(capability, kind):
            return capability
    return None
