"""What every capability set shares (MS-RDPBCGR 2.2.1.13.1.1.1, TS_CAPS_SET).

A capability set is ``capabilitySetType`` (2 bytes), ``lengthCapability``
(2 bytes, header included) and a body. Concrete sets are frozen dataclasses
deriving from :class:`CapabilitySet`; most of them are fixed layouts of
little-endian integers and byte runs described by a ``LAYOUT`` table read
and written by :class:`FixedCapabilitySet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Final, Self

from rdscard.pdu.buffer import Reader, Writer

#: capabilitySetType + lengthCapability.
CAPABILITY_HEADER_SIZE: Final = 4


class CapabilitySetType(IntEnum):
    """capabilitySetType values (MS-RDPBCGR 2.2.1.13.1.1.1)."""

    CAPSTYPE_GENERAL = 0x0001
    CAPSTYPE_BITMAP = 0x0002
    CAPSTYPE_ORDER = 0x0003
    CAPSTYPE_BITMAPCACHE = 0x0004
    CAPSTYPE_CONTROL = 0x0005
    CAPSTYPE_ACTIVATION = 0x0007
    CAPSTYPE_POINTER = 0x0008
    CAPSTYPE_SHARE = 0x0009
    CAPSTYPE_COLORCACHE = 0x000A
    CAPSTYPE_SOUND = 0x000C
    CAPSTYPE_INPUT = 0x000D
    CAPSTYPE_FONT = 0x000E
    CAPSTYPE_BRUSH = 0x000F
    CAPSTYPE_GLYPHCACHE = 0x0010
    CAPSTYPE_OFFSCREENCACHE = 0x0011
    CAPSTYPE_BITMAPCACHE_HOSTSUPPORT = 0x0012
    CAPSTYPE_BITMAPCACHE_REV2 = 0x0013
    CAPSTYPE_VIRTUALCHANNEL = 0x0014
    CAPSTYPE_DRAWNINEGRIDCACHE = 0x0015
    CAPSTYPE_DRAWGDIPLUS = 0x0016
    CAPSTYPE_RAIL = 0x0017
    CAPSTYPE_WINDOW = 0x0018
    CAPSETTYPE_COMPDESK = 0x0019
    CAPSETTYPE_MULTIFRAGMENTUPDATE = 0x001A
    CAPSETTYPE_LARGE_POINTER = 0x001B
    CAPSETTYPE_SURFACE_COMMANDS = 0x001C
    CAPSETTYPE_BITMAP_CODECS = 0x001D
    CAPSSETTYPE_FRAME_ACKNOWLEDGE = 0x001E


class CapabilitySet:
    """Base of every capability set: subclasses give the type, a name and the body codec."""

    CAPABILITY_SET_TYPE: ClassVar[int]
    NAME: ClassVar[str]

    @property
    def capability_set_type(self) -> int:
        return self.CAPABILITY_SET_TYPE

    def encode_body(self) -> bytes:
        """The bytes after lengthCapability."""
        raise NotImplementedError

    @classmethod
    def decode_body(cls, r: Reader) -> Self:
        """Parse the body; ``r`` holds exactly lengthCapability - 4 bytes."""
        raise NotImplementedError

    def encode(self) -> bytes:
        """The whole set: type, length and body."""
        body = self.encode_body()
        length = CAPABILITY_HEADER_SIZE + len(body)
        if length > 0xFFFF:
            raise ValueError(f"{self.NAME} is too long ({length} bytes)")
        return Writer().u16le(self.capability_set_type).u16le(length).raw(body).getvalue()

    def __len__(self) -> int:
        return CAPABILITY_HEADER_SIZE + len(self.encode_body())


#: A layout entry: (attribute, spec field name, kind) where kind is
#: "u8", "u16", "u32", "i32" or a byte count for a fixed byte run.
LayoutEntry = tuple[str, str, str | int]


class FixedCapabilitySet(CapabilitySet):
    """A capability set whose body is a fixed list of fields (``LAYOUT``).

    Fields from index ``OPTIONAL_FROM`` on may be missing at the end of the
    body (older peers send shorter sets); they are then ``None`` and are not
    encoded. Bytes after the last known field are ignored: later versions of
    the protocol append fields to existing sets.
    """

    LAYOUT: ClassVar[tuple[LayoutEntry, ...]]
    OPTIONAL_FROM: ClassVar[int | None] = None

    def encode_body(self) -> bytes:
        w = Writer()
        for index, (attr, _, kind) in enumerate(self.LAYOUT):
            value = getattr(self, attr)
            if value is None:
                if self.OPTIONAL_FROM is None or index < self.OPTIONAL_FROM:
                    raise ValueError(f"{self.NAME}.{attr} is required")
                break
            if isinstance(kind, int):
                if len(value) != kind:
                    raise ValueError(f"{self.NAME}.{attr} must be {kind} bytes")
                w.raw(value)
            else:
                getattr(w, _WRITERS[kind])(value)
        return w.getvalue()

    @classmethod
    def decode_body(cls, r: Reader) -> Self:
        values: dict[str, Any] = {}
        for index, (attr, spec_name, kind) in enumerate(cls.LAYOUT):
            if cls.OPTIONAL_FROM is not None and index >= cls.OPTIONAL_FROM and not r.remaining:
                values[attr] = None
                continue
            if isinstance(kind, int):
                values[attr] = r.raw(kind, spec_name)
            else:
                values[attr] = getattr(r, _READERS[kind])(spec_name)
        return cls(**values)


_WRITERS: Final = {"u8": "u8", "u16": "u16le", "u32": "u32le", "i32": "i32le"}
_READERS: Final = _WRITERS


@dataclass(frozen=True)
class RawCapabilitySet(CapabilitySet):
    """A capability set this project does not interpret, kept byte for byte."""

    NAME: ClassVar[str] = "TS_CAPS_SET"

    type_code: int
    data: bytes = field(repr=False)

    @property
    def capability_set_type(self) -> int:
        return self.type_code

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, r: Reader) -> Self:
        raise NotImplementedError("raw sets are built by decode_capability_set")
