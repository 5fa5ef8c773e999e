"""Bodies of Share Data PDUs (MS-RDPBCGR 2.2.8.1.1.1.2, pduType2).

Each class is the part after the Share Data Header; :mod:`rdscard.pdu.share`
adds the headers (:func:`~rdscard.pdu.share.wrap_share_data`) and picks the
class from pduType2 when decoding. The connection finalisation PDUs
(2.2.1.14 - 2.2.1.22), shutdown (2.2.2.2, 2.2.2.3), Refresh Rect (2.2.11.2)
and Suppress Output (2.2.11.3) live here, Set Error Info and Save Session
Info in :mod:`rdscard.pdu.share_session`; the slow-path input body is passed
on raw to :mod:`rdscard.pdu.input`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.share_base import PduType2, ShareDataBodyBase
from rdscard.pdu.share_session import ErrorInfo, InfoType, SaveSessionInfo, SetErrorInfo

__all__ = [
    "ALLOW_DISPLAY_UPDATES",
    "DATA_BODIES",
    "FONTLIST_ENTRY_SIZE",
    "FONTLIST_FIRST",
    "FONTLIST_LAST",
    "FONTMAP_ENTRY_SIZE",
    "SUPPRESS_DISPLAY_UPDATES",
    "SYNCMSGTYPE_SYNC",
    "Control",
    "ControlAction",
    "ErrorInfo",
    "FontList",
    "FontMap",
    "InfoType",
    "InputPdu",
    "PduType2",
    "PersistentKeyList",
    "RawShareData",
    "Rectangle16",
    "RefreshRect",
    "SaveSessionInfo",
    "SetErrorInfo",
    "ShareDataBody",
    "ShareDataBodyBase",
    "ShutdownDenied",
    "ShutdownRequest",
    "SuppressOutput",
    "Synchronize",
]


# -- synchronize and control (2.2.1.14, 2.2.1.15, 2.2.1.16, 2.2.1.19 - 2.2.1.21) ----------

#: messageType of TS_SYNCHRONIZE_PDU (2.2.1.14.1).
SYNCMSGTYPE_SYNC: Final = 0x0001


@dataclass(frozen=True)
class Synchronize(ShareDataBodyBase):
    """TS_SYNCHRONIZE_PDU (MS-RDPBCGR 2.2.1.14.1): messageType, targetUser.

    The client sends it with the server's channel id as targetUser; the
    server answers with the user channel id (2.2.1.19).
    """

    PDU_TYPE2 = PduType2.PDUTYPE2_SYNCHRONIZE
    NAME = "Synchronize PDU"

    target_user: int
    message_type: int = SYNCMSGTYPE_SYNC

    def encode(self) -> bytes:
        return Writer().u16le(self.message_type).u16le(self.target_user).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, cls.NAME)
        message_type = r.u16le("messageType")
        if message_type != SYNCMSGTYPE_SYNC:
            raise r.error("messageType", f"0x{message_type:04X} is not SYNCMSGTYPE_SYNC")
        target_user = r.u16le("targetUser")
        r.expect_end()
        return cls(target_user, message_type)


class ControlAction(IntEnum):
    """action of TS_CONTROL_PDU (MS-RDPBCGR 2.2.1.15.1)."""

    CTRLACTION_REQUEST_CONTROL = 0x0001
    CTRLACTION_GRANTED_CONTROL = 0x0002
    CTRLACTION_DETACH = 0x0003
    CTRLACTION_COOPERATE = 0x0004


@dataclass(frozen=True)
class Control(ShareDataBodyBase):
    """TS_CONTROL_PDU (MS-RDPBCGR 2.2.1.15.1): action, grantId, controlId.

    Client Control Cooperate (2.2.1.15) and Request Control (2.2.1.16);
    server Control Cooperate (2.2.1.20) and Granted Control (2.2.1.21),
    where grantId is the user channel id and controlId the server channel id.
    """

    PDU_TYPE2 = PduType2.PDUTYPE2_CONTROL
    NAME = "Control PDU"

    action: ControlAction
    grant_id: int = 0
    control_id: int = 0

    @classmethod
    def cooperate(cls) -> Self:
        return cls(ControlAction.CTRLACTION_COOPERATE)

    @classmethod
    def request_control(cls) -> Self:
        return cls(ControlAction.CTRLACTION_REQUEST_CONTROL)

    @classmethod
    def granted_control(cls, grant_id: int, control_id: int) -> Self:
        return cls(ControlAction.CTRLACTION_GRANTED_CONTROL, grant_id, control_id)

    def encode(self) -> bytes:
        w = Writer().u16le(self.action).u16le(self.grant_id).u32le(self.control_id)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, cls.NAME)
        raw_action = r.u16le("action")
        try:
            action = ControlAction(raw_action)
        except ValueError:
            raise r.error("action", f"unknown action 0x{raw_action:04X}") from None
        grant_id = r.u16le("grantId")
        control_id = r.u32le("controlId")
        r.expect_end()
        return cls(action, grant_id, control_id)


# -- persistent key list, font list, font map (2.2.1.17, 2.2.1.18, 2.2.1.22) --------------

#: Size of TS_BITMAPCACHE_PERSISTENT_LIST_ENTRY (two 32-bit keys).
PERSISTENT_ENTRY_SIZE: Final = 8


@dataclass(frozen=True)
class PersistentKeyList(ShareDataBodyBase):
    """TS_BITMAPCACHE_PERSISTENT_LIST_PDU (MS-RDPBCGR 2.2.1.17.1).

    The server keeps no bitmap cache, so the keys are accepted and kept raw
    (``entries``: 8 bytes per key, as many as the numEntriesCache fields say).
    """

    PDU_TYPE2 = PduType2.PDUTYPE2_BITMAPCACHE_PERSISTENT_LIST
    NAME = "Persistent Key List PDU"

    num_entries: tuple[int, int, int, int, int]
    total_entries: tuple[int, int, int, int, int]
    bit_mask: int
    entries: bytes = b""
    pad2: int = 0
    pad3: int = 0

    def encode(self) -> bytes:
        w = Writer()
        for value in (*self.num_entries, *self.total_entries):
            w.u16le(value)
        w.u8(self.bit_mask).u8(self.pad2).u16le(self.pad3)
        if len(self.entries) != PERSISTENT_ENTRY_SIZE * sum(self.num_entries):
            raise ValueError("entries do not match numEntriesCache")
        return w.raw(self.entries).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, cls.NAME)
        num = tuple(r.u16le(f"numEntriesCache{i}") for i in range(5))
        total = tuple(r.u16le(f"totalEntriesCache{i}") for i in range(5))
        bit_mask = r.u8("bBitMask")
        pad2 = r.u8("Pad2")
        pad3 = r.u16le("Pad3")
        entries = r.raw(PERSISTENT_ENTRY_SIZE * sum(num), "entries")
        r.expect_end()
        return cls(num, total, bit_mask, entries, pad2, pad3)  # type: ignore[arg-type]


#: listFlags / mapFlags (2.2.1.18.1, 2.2.1.22.1).
FONTLIST_FIRST: Final = 0x0001
FONTLIST_LAST: Final = 0x0002
#: entrySize values the spec mandates.
FONTLIST_ENTRY_SIZE: Final = 0x0032
FONTMAP_ENTRY_SIZE: Final = 0x0004


@dataclass(frozen=True)
class FontList(ShareDataBodyBase):
    """TS_FONT_LIST_PDU (MS-RDPBCGR 2.2.1.18.1), sent by the client, carries no fonts."""

    PDU_TYPE2 = PduType2.PDUTYPE2_FONTLIST
    NAME = "Font List PDU"

    number_fonts: int = 0
    total_num_fonts: int = 0
    list_flags: int = FONTLIST_FIRST | FONTLIST_LAST
    entry_size: int = FONTLIST_ENTRY_SIZE

    def encode(self) -> bytes:
        w = Writer().u16le(self.number_fonts).u16le(self.total_num_fonts)
        return w.u16le(self.list_flags).u16le(self.entry_size).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, cls.NAME)
        value = cls(
            r.u16le("numberFonts"),
            r.u16le("totalNumFonts"),
            r.u16le("listFlags"),
            r.u16le("entrySize"),
        )
        r.expect_end()
        return value


@dataclass(frozen=True)
class FontMap(ShareDataBodyBase):
    """TS_FONT_MAP_PDU (MS-RDPBCGR 2.2.1.22.1), the server's last finalisation PDU."""

    PDU_TYPE2 = PduType2.PDUTYPE2_FONTMAP
    NAME = "Font Map PDU"

    number_entries: int = 0
    total_num_entries: int = 0
    map_flags: int = FONTLIST_FIRST | FONTLIST_LAST
    entry_size: int = FONTMAP_ENTRY_SIZE

    def encode(self) -> bytes:
        w = Writer().u16le(self.number_entries).u16le(self.total_num_entries)
        return w.u16le(self.map_flags).u16le(self.entry_size).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, cls.NAME)
        value = cls(
            r.u16le("numberEntries"),
            r.u16le("totalNumEntries"),
            r.u16le("mapFlags"),
            r.u16le("entrySize"),
        )
        r.expect_end()
        return value


# -- shutdown (2.2.2.2, 2.2.2.3) ----------------------------------------------------------


@dataclass(frozen=True)
class ShutdownRequest(ShareDataBodyBase):
    """Shutdown Request PDU (MS-RDPBCGR 2.2.2.2): the user closed the client. No body."""

    PDU_TYPE2 = PduType2.PDUTYPE2_SHUTDOWN_REQUEST
    NAME = "Shutdown Request PDU"

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, data: bytes) -> Self:
        Reader(data, cls.NAME).expect_end()
        return cls()


@dataclass(frozen=True)
class ShutdownDenied(ShareDataBodyBase):
    """Shutdown Request Denied PDU (MS-RDPBCGR 2.2.2.3). No body."""

    PDU_TYPE2 = PduType2.PDUTYPE2_SHUTDOWN_DENIED
    NAME = "Shutdown Request Denied PDU"

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, data: bytes) -> Self:
        Reader(data, cls.NAME).expect_end()
        return cls()


# -- refresh rect, suppress output (2.2.11.2, 2.2.11.3) --------------------------------------


@dataclass(frozen=True)
class Rectangle16:
    """TS_RECTANGLE16 (MS-RDPBCGR 2.2.11.1): inclusive bounds."""

    left: int
    top: int
    right: int
    bottom: int

    def write(self, w: Writer) -> None:
        w.u16le(self.left).u16le(self.top).u16le(self.right).u16le(self.bottom)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u16le("left"), r.u16le("top"), r.u16le("right"), r.u16le("bottom"))


@dataclass(frozen=True)
class RefreshRect(ShareDataBodyBase):
    """TS_REFRESH_RECT_PDU (MS-RDPBCGR 2.2.11.2.1): areas the client wants redrawn."""

    PDU_TYPE2 = PduType2.PDUTYPE2_REFRESH_RECT
    NAME = "Refresh Rect PDU"

    areas_to_refresh: tuple[Rectangle16, ...]

    def encode(self) -> bytes:
        if not 0 < len(self.areas_to_refresh) <= 0xFF:
            raise ValueError("1 to 255 areas")
        w = Writer().u8(len(self.areas_to_refresh)).zeros(3)
        for area in self.areas_to_refresh:
            area.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, cls.NAME)
        count = r.u8("numberOfAreas")
        if count == 0:
            raise r.error("numberOfAreas", "no area")
        r.skip(3, "pad3Octets")
        areas = tuple(Rectangle16.read(r) for _ in range(count))
        r.expect_end()
        return cls(areas)


#: allowDisplayUpdates (2.2.11.3.1).
SUPPRESS_DISPLAY_UPDATES: Final = 0x00
ALLOW_DISPLAY_UPDATES: Final = 0x01


@dataclass(frozen=True)
class SuppressOutput(ShareDataBodyBase):
    """TS_SUPPRESS_OUTPUT_PDU (MS-RDPBCGR 2.2.11.3.1): the client window was minimised or restored.

    desktopRect is present only when display updates are allowed.
    """

    PDU_TYPE2 = PduType2.PDUTYPE2_SUPPRESS_OUTPUT
    NAME = "Suppress Output PDU"

    allow_display_updates: int
    desktop_rect: Rectangle16 | None = None

    @property
    def allowed(self) -> bool:
        return self.allow_display_updates == ALLOW_DISPLAY_UPDATES

    def encode(self) -> bytes:
        w = Writer().u8(self.allow_display_updates).zeros(3)
        if self.allowed:
            if self.desktop_rect is None:
                raise ValueError("desktopRect is required when updates are allowed")
            self.desktop_rect.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, cls.NAME)
        allow = r.u8("allowDisplayUpdates")
        if allow not in (SUPPRESS_DISPLAY_UPDATES, ALLOW_DISPLAY_UPDATES):
            raise r.error("allowDisplayUpdates", f"invalid value {allow}")
        r.skip(3, "pad3Octets")
        rect = Rectangle16.read(r) if allow == ALLOW_DISPLAY_UPDATES else None
        r.expect_end()
        return cls(allow, rect)


# -- passed on ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputPdu(ShareDataBodyBase):
    """The slow-path TS_INPUT_PDU_DATA body (MS-RDPBCGR 2.2.8.1.1.3.1), undecoded.

    Decode ``payload`` with :func:`rdscard.pdu.input.decode_slowpath_input`.
    """

    PDU_TYPE2 = PduType2.PDUTYPE2_INPUT
    NAME = "Input PDU"

    payload: bytes

    def encode(self) -> bytes:
        return self.payload

    @classmethod
    def decode(cls, data: bytes) -> Self:
        return cls(data)


@dataclass(frozen=True)
class RawShareData:
    """A Share Data body whose pduType2 is not decoded here, kept as bytes."""

    type_code: int
    payload: bytes

    @property
    def pdu_type2(self) -> int:
        return self.type_code

    def encode(self) -> bytes:
        return self.payload


ShareDataBody = (
    Synchronize
    | Control
    | PersistentKeyList
    | FontList
    | FontMap
    | ShutdownRequest
    | ShutdownDenied
    | SetErrorInfo
    | SaveSessionInfo
    | RefreshRect
    | SuppressOutput
    | InputPdu
    | RawShareData
)

#: pduType2 -> decoder of the body; other pduType2 values become RawShareData.
DATA_BODIES: Final[dict[int, Callable[[bytes], ShareDataBody]]] = {
    cls.PDU_TYPE2: cls.decode
    for cls in (
        Synchronize,
        Control,
        PersistentKeyList,
        FontList,
        FontMap,
        ShutdownRequest,
        ShutdownDenied,
        SetErrorInfo,
        SaveSessionInfo,
        RefreshRect,
        SuppressOutput,
        InputPdu,
    )
}
