"""Cache capability sets (MS-RDPBCGR 2.2.7.1.4, 2.2.7.1.7 - 2.2.7.1.9, 2.2.7.2.1).

Bitmap Cache (revisions 1 and 2), Bitmap Cache Host Support, Brush, Glyph
Cache and Offscreen Bitmap Cache. A server that sends only bitmap updates
decodes these from the client and otherwise ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from rdscard.pdu.capabilities_base import CapabilitySetType as T
from rdscard.pdu.capabilities_base import FixedCapabilitySet


@dataclass(frozen=True)
class BitmapCacheCapabilitySet(FixedCapabilitySet):
    """TS_BITMAPCACHE_CAPABILITYSET, revision 1 (MS-RDPBCGR 2.2.7.1.4.1).

    ``pads`` holds pad1 to pad6 (24 bytes).
    """

    CAPABILITY_SET_TYPE = T.CAPSTYPE_BITMAPCACHE
    NAME = "TS_BITMAPCACHE_CAPABILITYSET"
    LAYOUT = (
        ("pads", "pad1", 24),
        ("cache0_entries", "Cache0Entries", "u16"),
        ("cache0_maximum_cell_size", "Cache0MaximumCellSize", "u16"),
        ("cache1_entries", "Cache1Entries", "u16"),
        ("cache1_maximum_cell_size", "Cache1MaximumCellSize", "u16"),
        ("cache2_entries", "Cache2Entries", "u16"),
        ("cache2_maximum_cell_size", "Cache2MaximumCellSize", "u16"),
    )

    pads: bytes = bytes(24)
    cache0_entries: int = 0
    cache0_maximum_cell_size: int = 0
    cache1_entries: int = 0
    cache1_maximum_cell_size: int = 0
    cache2_entries: int = 0
    cache2_maximum_cell_size: int = 0


class BitmapCacheRev2Flag(IntFlag):
    """CacheFlags (MS-RDPBCGR 2.2.7.1.4.2)."""

    PERSISTENT_KEYS_EXPECTED_FLAG = 0x0001
    ALLOW_CACHE_WAITING_LIST_FLAG = 0x0002


@dataclass(frozen=True)
class BitmapCacheRev2CapabilitySet(FixedCapabilitySet):
    """TS_BITMAPCACHE_CAPABILITYSET_REV2 (MS-RDPBCGR 2.2.7.1.4.2).

    Each cell info is a TS_BITMAPCACHE_CELL_CACHE_INFO: NumEntries in the low
    31 bits, k (persistent) in the top bit; see :meth:`cell_info`.
    """

    CAPABILITY_SET_TYPE = T.CAPSTYPE_BITMAPCACHE_REV2
    NAME = "TS_BITMAPCACHE_CAPABILITYSET_REV2"
    LAYOUT = (
        ("cache_flags", "CacheFlags", "u16"),
        ("pad2", "Pad2", "u8"),
        ("num_cell_caches", "NumCellCaches", "u8"),
        ("bitmap_cache0_cell_info", "BitmapCache0CellInfo", "u32"),
        ("bitmap_cache1_cell_info", "BitmapCache1CellInfo", "u32"),
        ("bitmap_cache2_cell_info", "BitmapCache2CellInfo", "u32"),
        ("bitmap_cache3_cell_info", "BitmapCache3CellInfo", "u32"),
        ("bitmap_cache4_cell_info", "BitmapCache4CellInfo", "u32"),
        ("pad3", "Pad3", 12),
    )

    cache_flags: int = 0
    pad2: int = 0
    num_cell_caches: int = 0
    bitmap_cache0_cell_info: int = 0
    bitmap_cache1_cell_info: int = 0
    bitmap_cache2_cell_info: int = 0
    bitmap_cache3_cell_info: int = 0
    bitmap_cache4_cell_info: int = 0
    pad3: bytes = bytes(12)

    def cell_info(self, index: int) -> tuple[int, bool]:
        """(NumEntries, persistent) of cell cache ``index`` (0 to 4)."""
        value: int = getattr(self, f"bitmap_cache{index}_cell_info")
        return value & 0x7FFFFFFF, bool(value >> 31)


#: cacheVersion (MS-RDPBCGR 2.2.7.2.1).
TS_BITMAPCACHE_REV2 = 0x01


@dataclass(frozen=True)
class BitmapCacheHostSupportCapabilitySet(FixedCapabilitySet):
    """TS_BITMAPCACHE_HOSTSUPPORT_CAPABILITYSET (MS-RDPBCGR 2.2.7.2.1)."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_BITMAPCACHE_HOSTSUPPORT
    NAME = "TS_BITMAPCACHE_HOSTSUPPORT_CAPABILITYSET"
    LAYOUT = (
        ("cache_version", "cacheVersion", "u8"),
        ("pad1", "pad1", "u8"),
        ("pad2", "pad2", "u16"),
    )

    cache_version: int = TS_BITMAPCACHE_REV2
    pad1: int = 0
    pad2: int = 0


class BrushSupportLevel(IntEnum):
    """brushSupportLevel (MS-RDPBCGR 2.2.7.1.7)."""

    BRUSH_DEFAULT = 0x00000000
    BRUSH_COLOR_8X8 = 0x00000001
    BRUSH_COLOR_FULL = 0x00000002


@dataclass(frozen=True)
class BrushCapabilitySet(FixedCapabilitySet):
    """TS_BRUSH_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.7)."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_BRUSH
    NAME = "TS_BRUSH_CAPABILITYSET"
    LAYOUT = (("brush_support_level", "brushSupportLevel", "u32"),)

    brush_support_level: int = BrushSupportLevel.BRUSH_DEFAULT


class GlyphSupportLevel(IntEnum):
    """GlyphSupportLevel (MS-RDPBCGR 2.2.7.1.8)."""

    GLYPH_SUPPORT_NONE = 0x0000
    GLYPH_SUPPORT_PARTIAL = 0x0001
    GLYPH_SUPPORT_FULL = 0x0002
    GLYPH_SUPPORT_ENCODE = 0x0003


@dataclass(frozen=True)
class GlyphCacheCapabilitySet(FixedCapabilitySet):
    """TS_GLYPHCACHE_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.8).

    ``glyph_cache`` is the raw array of ten TS_CACHE_DEFINITION (CacheEntries,
    CacheMaximumCellSize) pairs; :attr:`cache_definitions` decodes it.
    """

    CAPABILITY_SET_TYPE = T.CAPSTYPE_GLYPHCACHE
    NAME = "TS_GLYPHCACHE_CAPABILITYSET"
    LAYOUT = (
        ("glyph_cache", "GlyphCache", 40),
        ("frag_cache", "FragCache", "u32"),
        ("glyph_support_level", "GlyphSupportLevel", "u16"),
        ("pad2octets", "pad2octets", "u16"),
    )

    glyph_cache: bytes = bytes(40)
    frag_cache: int = 0
    glyph_support_level: int = GlyphSupportLevel.GLYPH_SUPPORT_NONE
    pad2octets: int = 0

    @property
    def cache_definitions(self) -> tuple[tuple[int, int], ...]:
        raw = self.glyph_cache
        return tuple(
            (
                int.from_bytes(raw[i : i + 2], "little"),
                int.from_bytes(raw[i + 2 : i + 4], "little"),
            )
            for i in range(0, 40, 4)
        )


@dataclass(frozen=True)
class OffscreenBitmapCacheCapabilitySet(FixedCapabilitySet):
    """TS_OFFSCREEN_CAPABILITYSET (MS-RDPBCGR 2.2.7.1.9)."""

    CAPABILITY_SET_TYPE = T.CAPSTYPE_OFFSCREENCACHE
    NAME = "TS_OFFSCREEN_CAPABILITYSET"
    LAYOUT = (
        ("offscreen_support_level", "offscreenSupportLevel", "u32"),
        ("offscreen_cache_size", "offscreenCacheSize", "u16"),
        ("offscreen_cache_entries", "offscreenCacheEntries", "u16"),
    )

    offscreen_support_level: int = 0
    offscreen_cache_size: int = 0
    offscreen_cache_entries: int = 0
