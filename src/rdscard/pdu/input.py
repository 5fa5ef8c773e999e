"""Client input: slow-path and fast-path Input Event PDUs.

One set of event dataclasses serves both encodings:

- MS-RDPBCGR 2.2.8.1.1.3.1 Client Input Event PDU Data (TS_INPUT_PDU_DATA),
  the slow-path body carried in a Share Data PDU (pduType2 PDUTYPE2_INPUT);
  :func:`decode_slowpath_input` takes the bytes after the Share Data Header.
- MS-RDPBCGR 2.2.8.1.2 Client Fast-Path Input Event PDU (TS_FP_INPUT_PDU);
  :func:`decode_fastpath_input` takes one whole frame, header included.

Only Enhanced RDP Security (TLS) is supported, so a fast-path PDU that says
it is encrypted or signed is refused. The slow-path ``eventTime`` is ignored
by the server (2.2.8.1.1.3.1.1) and encoded as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer

SLOWPATH_PDU = "TS_INPUT_PDU_DATA"
FASTPATH_PDU = "TS_FP_INPUT_PDU"

#: Fast-path frames carry their length in 15 bits (2.2.8.1.2, length1/length2).
FASTPATH_MAX_LENGTH: Final = 0x7FFF
#: Every slow-path event is 12 bytes: eventTime, messageType, 6 data bytes.
SLOWPATH_EVENT_SIZE: Final = 12


class InputEventType(IntEnum):
    """MS-RDPBCGR 2.2.8.1.1.3.1.1 TS_INPUT_EVENT messageType."""

    INPUT_EVENT_SYNC = 0x0000
    INPUT_EVENT_UNUSED = 0x0002
    INPUT_EVENT_SCANCODE = 0x0004
    INPUT_EVENT_UNICODE = 0x0005
    INPUT_EVENT_MOUSE = 0x8001
    INPUT_EVENT_MOUSEX = 0x8002
    INPUT_EVENT_MOUSEREL = 0x8004


class FastPathInputEventCode(IntEnum):
    """MS-RDPBCGR 2.2.8.1.2.2 TS_FP_INPUT_EVENT eventCode (3 bits)."""

    FASTPATH_INPUT_EVENT_SCANCODE = 0x0
    FASTPATH_INPUT_EVENT_MOUSE = 0x1
    FASTPATH_INPUT_EVENT_MOUSEX = 0x2
    FASTPATH_INPUT_EVENT_SYNC = 0x3
    FASTPATH_INPUT_EVENT_UNICODE = 0x4
    FASTPATH_INPUT_EVENT_RELMOUSE = 0x5
    FASTPATH_INPUT_EVENT_QOE_TIMESTAMP = 0x6


class FastPathInputFlags(IntFlag):
    """MS-RDPBCGR 2.2.8.1.2 fpInputHeader flags (2 bits)."""

    FASTPATH_INPUT_SECURE_CHECKSUM = 0x1
    FASTPATH_INPUT_ENCRYPTED = 0x2


class KeyboardFlags(IntFlag):
    """MS-RDPBCGR 2.2.8.1.1.3.1.1.1 TS_KEYBOARD_EVENT keyboardFlags."""

    KBDFLAGS_EXTENDED = 0x0100
    KBDFLAGS_EXTENDED1 = 0x0200
    KBDFLAGS_DOWN = 0x4000
    KBDFLAGS_RELEASE = 0x8000


class FastPathKeyboardFlags(IntFlag):
    """MS-RDPBCGR 2.2.8.1.2.2.1 TS_FP_KEYBOARD_EVENT eventFlags."""

    FASTPATH_INPUT_KBDFLAGS_RELEASE = 0x01
    FASTPATH_INPUT_KBDFLAGS_EXTENDED = 0x02
    FASTPATH_INPUT_KBDFLAGS_EXTENDED1 = 0x04


class SyncToggleFlags(IntFlag):
    """MS-RDPBCGR 2.2.8.1.1.3.1.1.5 TS_SYNC_EVENT toggleFlags.

    The fast-path eventFlags (2.2.8.1.2.2.5, FASTPATH_INPUT_SYNC_*) use the
    same bit values.
    """

    TS_SYNC_SCROLL_LOCK = 0x01
    TS_SYNC_NUM_LOCK = 0x02
    TS_SYNC_CAPS_LOCK = 0x04
    TS_SYNC_KANA_LOCK = 0x08


class PointerFlags(IntFlag):
    """MS-RDPBCGR 2.2.8.1.1.3.1.1.3 TS_POINTER_EVENT pointerFlags."""

    WHEEL_ROTATION_MASK = 0x01FF
    PTRFLAGS_WHEEL_NEGATIVE = 0x0100
    PTRFLAGS_WHEEL = 0x0200
    PTRFLAGS_HWHEEL = 0x0400
    PTRFLAGS_MOVE = 0x0800
    PTRFLAGS_BUTTON1 = 0x1000
    PTRFLAGS_BUTTON2 = 0x2000
    PTRFLAGS_BUTTON3 = 0x4000
    PTRFLAGS_DOWN = 0x8000


class ExtendedPointerFlags(IntFlag):
    """MS-RDPBCGR 2.2.8.1.1.3.1.1.4 TS_POINTERX_EVENT pointerFlags."""

    PTRXFLAGS_BUTTON1 = 0x0001
    PTRXFLAGS_BUTTON2 = 0x0002
    PTRXFLAGS_DOWN = 0x8000


# -- events ------------------------------------------------------------------


@dataclass(frozen=True)
class KeyboardEvent:
    """A key press or release by scancode (MS-RDPBCGR 2.2.8.1.1.3.1.1.1, 2.2.8.1.2.2.1)."""

    scancode: int
    released: bool = False
    extended: bool = False
    extended1: bool = False


@dataclass(frozen=True)
class UnicodeKeyboardEvent:
    """A UTF-16 code unit typed (MS-RDPBCGR 2.2.8.1.1.3.1.1.2, 2.2.8.1.2.2.2)."""

    code_point: int
    released: bool = False


@dataclass(frozen=True)
class MouseEvent:
    """Pointer move, buttons 1-3 and wheel (MS-RDPBCGR 2.2.8.1.1.3.1.1.3, 2.2.8.1.2.2.3).

    ``flags`` holds :class:`PointerFlags` bits plus the wheel rotation value.
    """

    flags: int
    x: int
    y: int


@dataclass(frozen=True)
class ExtendedMouseEvent:
    """Extended buttons 4 and 5 (MS-RDPBCGR 2.2.8.1.1.3.1.1.4, 2.2.8.1.2.2.4)."""

    flags: int
    x: int
    y: int


@dataclass(frozen=True)
class RelativeMouseEvent:
    """Relative pointer motion (MS-RDPBCGR 2.2.8.1.1.3.1.1.6, 2.2.8.1.2.2.7)."""

    flags: int
    dx: int
    dy: int


@dataclass(frozen=True)
class SyncEvent:
    """Lock key state (MS-RDPBCGR 2.2.8.1.1.3.1.1.5, 2.2.8.1.2.2.5)."""

    toggle_flags: SyncToggleFlags

    @property
    def num_lock(self) -> bool:
        """Num Lock is on."""
        return bool(self.toggle_flags & SyncToggleFlags.TS_SYNC_NUM_LOCK)

    @property
    def caps_lock(self) -> bool:
        """Caps Lock is on."""
        return bool(self.toggle_flags & SyncToggleFlags.TS_SYNC_CAPS_LOCK)


@dataclass(frozen=True)
class QoeTimestampEvent:
    """Quality of experience timestamp, fast-path only (MS-RDPBCGR 2.2.8.1.2.2.6)."""

    timestamp: int


InputEvent = (
    KeyboardEvent
    | UnicodeKeyboardEvent
    | MouseEvent
    | ExtendedMouseEvent
    | RelativeMouseEvent
    | SyncEvent
    | QoeTimestampEvent
)


def _i16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def _check_range(value: int, limit: int, what: str) -> None:
    if not 0 <= value <= limit:
        raise ValueError(f"{what} {value} out of range 0..{limit}")


# -- slow path ---------------------------------------------------------------


def _decode_slowpath_event(r: Reader, index: int) -> InputEvent | None:
    r.skip(4, f"slowPathInputEvents[{index}].eventTime")
    field = f"slowPathInputEvents[{index}]"
    message_type = r.u16le(f"{field}.messageType")
    if message_type == InputEventType.INPUT_EVENT_SYNC:
        r.skip(2, f"{field}.pad2Octets")
        toggle = r.u32le(f"{field}.toggleFlags")
        if toggle & ~0x0F:
            raise r.error(f"{field}.toggleFlags", f"unknown bits 0x{toggle:08X}")
        return SyncEvent(SyncToggleFlags(toggle))
    if message_type == InputEventType.INPUT_EVENT_SCANCODE:
        flags = r.u16le(f"{field}.keyboardFlags")
        key_code = r.u16le(f"{field}.keyCode")
        r.skip(2, f"{field}.pad2Octets")
        if key_code > 0xFF:
            raise r.error(f"{field}.keyCode", f"scancode 0x{key_code:04X} exceeds one byte")
        return KeyboardEvent(
            scancode=key_code,
            released=bool(flags & KeyboardFlags.KBDFLAGS_RELEASE),
            extended=bool(flags & KeyboardFlags.KBDFLAGS_EXTENDED),
            extended1=bool(flags & KeyboardFlags.KBDFLAGS_EXTENDED1),
        )
    if message_type == InputEventType.INPUT_EVENT_UNICODE:
        flags = r.u16le(f"{field}.keyboardFlags")
        code = r.u16le(f"{field}.unicodeCode")
        r.skip(2, f"{field}.pad2Octets")
        return UnicodeKeyboardEvent(code, released=bool(flags & KeyboardFlags.KBDFLAGS_RELEASE))
    if message_type in (InputEventType.INPUT_EVENT_MOUSE, InputEventType.INPUT_EVENT_MOUSEX):
        flags = r.u16le(f"{field}.pointerFlags")
        x = r.u16le(f"{field}.xPos")
        y = r.u16le(f"{field}.yPos")
        if message_type == InputEventType.INPUT_EVENT_MOUSE:
            return MouseEvent(flags, x, y)
        return ExtendedMouseEvent(flags, x, y)
    if message_type == InputEventType.INPUT_EVENT_MOUSEREL:
        flags = r.u16le(f"{field}.pointerFlags")
        dx = _i16(r.u16le(f"{field}.xDelta"))
        dy = _i16(r.u16le(f"{field}.yDelta"))
        return RelativeMouseEvent(flags, dx, dy)
    if message_type == InputEventType.INPUT_EVENT_UNUSED:
        r.skip(6, f"{field}.slowPathInputData")
        return None
    raise r.error(f"{field}.messageType", f"unknown input event type 0x{message_type:04X}")


def decode_slowpath_input(data: bytes) -> list[InputEvent]:
    """Decode TS_INPUT_PDU_DATA after its Share Data Header (MS-RDPBCGR 2.2.8.1.1.3.1).

    INPUT_EVENT_UNUSED entries are skipped; anything else unknown, a count
    that does not match the bytes, or trailing bytes raise ProtocolError.
    """
    r = Reader(data, SLOWPATH_PDU)
    num_events = r.u16le("numEvents")
    r.skip(2, "pad2Octets")
    if num_events * SLOWPATH_EVENT_SIZE != r.remaining:
        raise r.error(
            "numEvents",
            f"{num_events} events need {num_events * SLOWPATH_EVENT_SIZE} bytes, "
            f"{r.remaining} present",
        )
    events: list[InputEvent] = []
    for index in range(num_events):
        event = _decode_slowpath_event(r, index)
        if event is not None:
            events.append(event)
    r.expect_end()
    return events


def _encode_slowpath_event(w: Writer, event: InputEvent) -> None:
    w.u32le(0)  # eventTime: ignored by the server
    if isinstance(event, SyncEvent):
        w.u16le(InputEventType.INPUT_EVENT_SYNC).u16le(0).u32le(event.toggle_flags)
    elif isinstance(event, KeyboardEvent):
        _check_range(event.scancode, 0xFF, "scancode")
        flags = KeyboardFlags(0)
        if event.released:
            flags |= KeyboardFlags.KBDFLAGS_RELEASE
        if event.extended:
            flags |= KeyboardFlags.KBDFLAGS_EXTENDED
        if event.extended1:
            flags |= KeyboardFlags.KBDFLAGS_EXTENDED1
        w.u16le(InputEventType.INPUT_EVENT_SCANCODE).u16le(flags).u16le(event.scancode).u16le(0)
    elif isinstance(event, UnicodeKeyboardEvent):
        _check_range(event.code_point, 0xFFFF, "code unit")
        flags = KeyboardFlags.KBDFLAGS_RELEASE if event.released else KeyboardFlags(0)
        w.u16le(InputEventType.INPUT_EVENT_UNICODE).u16le(flags).u16le(event.code_point).u16le(0)
    elif isinstance(event, MouseEvent | ExtendedMouseEvent):
        kind = (
            InputEventType.INPUT_EVENT_MOUSE
            if isinstance(event, MouseEvent)
            else InputEventType.INPUT_EVENT_MOUSEX
        )
        w.u16le(kind).u16le(event.flags).u16le(event.x).u16le(event.y)
    elif isinstance(event, RelativeMouseEvent):
        w.u16le(InputEventType.INPUT_EVENT_MOUSEREL).u16le(event.flags)
        w.u16le(event.dx & 0xFFFF).u16le(event.dy & 0xFFFF)
    else:
        raise ValueError(f"{type(event).__name__} has no slow-path form")


@dataclass(frozen=True)
class SlowPathInputPdu:
    """MS-RDPBCGR 2.2.8.1.1.3.1 TS_INPUT_PDU_DATA without its Share Data Header."""

    events: tuple[InputEvent, ...]

    def encode(self) -> bytes:
        """numEvents, pad2Octets, then 12 bytes per event."""
        w = Writer().u16le(len(self.events)).u16le(0)
        for event in self.events:
            _encode_slowpath_event(w, event)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode; see :func:`decode_slowpath_input`."""
        return cls(tuple(decode_slowpath_input(data)))


# -- fast path ---------------------------------------------------------------


def read_fastpath_length(r: Reader) -> int:
    """The 1- or 2-byte length of MS-RDPBCGR 2.2.8.1.2 / 2.2.9.1.2 (length1, length2)."""
    length1 = r.u8("length1")
    if length1 & 0x80:
        return ((length1 & 0x7F) << 8) | r.u8("length2")
    return length1


def write_fastpath_length(w: Writer, length: int) -> None:
    """Write the length: one byte below 0x80, otherwise two with the top bit set."""
    if length < 0x80:
        w.u8(length)
    elif length <= FASTPATH_MAX_LENGTH:
        w.u16be(0x8000 | length)
    else:
        raise ValueError(f"fast-path length {length} exceeds {FASTPATH_MAX_LENGTH}")


def _decode_fastpath_event(r: Reader, index: int) -> InputEvent:
    field = f"fpInputEvents[{index}]"
    header = r.u8(f"{field}.eventHeader")
    flags = header & 0x1F
    code = header >> 5
    if code == FastPathInputEventCode.FASTPATH_INPUT_EVENT_SCANCODE:
        key_code = r.u8(f"{field}.keyCode")
        return KeyboardEvent(
            scancode=key_code,
            released=bool(flags & FastPathKeyboardFlags.FASTPATH_INPUT_KBDFLAGS_RELEASE),
            extended=bool(flags & FastPathKeyboardFlags.FASTPATH_INPUT_KBDFLAGS_EXTENDED),
            extended1=bool(flags & FastPathKeyboardFlags.FASTPATH_INPUT_KBDFLAGS_EXTENDED1),
        )
    if code in (
        FastPathInputEventCode.FASTPATH_INPUT_EVENT_MOUSE,
        FastPathInputEventCode.FASTPATH_INPUT_EVENT_MOUSEX,
    ):
        pointer_flags = r.u16le(f"{field}.pointerFlags")
        x = r.u16le(f"{field}.xPos")
        y = r.u16le(f"{field}.yPos")
        if code == FastPathInputEventCode.FASTPATH_INPUT_EVENT_MOUSE:
            return MouseEvent(pointer_flags, x, y)
        return ExtendedMouseEvent(pointer_flags, x, y)
    if code == FastPathInputEventCode.FASTPATH_INPUT_EVENT_SYNC:
        if flags & ~0x0F:
            raise r.error(f"{field}.eventFlags", f"unknown sync flags 0x{flags:02X}")
        return SyncEvent(SyncToggleFlags(flags))
    if code == FastPathInputEventCode.FASTPATH_INPUT_EVENT_UNICODE:
        unicode_code = r.u16le(f"{field}.unicodeCode")
        released = bool(flags & FastPathKeyboardFlags.FASTPATH_INPUT_KBDFLAGS_RELEASE)
        return UnicodeKeyboardEvent(unicode_code, released=released)
    if code == FastPathInputEventCode.FASTPATH_INPUT_EVENT_RELMOUSE:
        pointer_flags = r.u16le(f"{field}.pointerFlags")
        dx = _i16(r.u16le(f"{field}.xDelta"))
        dy = _i16(r.u16le(f"{field}.yDelta"))
        return RelativeMouseEvent(pointer_flags, dx, dy)
    if code == FastPathInputEventCode.FASTPATH_INPUT_EVENT_QOE_TIMESTAMP:
        return QoeTimestampEvent(r.u32le(f"{field}.timestamp"))
    raise r.error(f"{field}.eventCode", f"unknown fast-path input event code {code}")


def decode_fastpath_input(frame: bytes) -> list[InputEvent]:
    """Decode one whole TS_FP_INPUT_PDU frame (MS-RDPBCGR 2.2.8.1.2).

    The frame must be exactly as long as its length field says, use action
    FASTPATH_INPUT_ACTION_FASTPATH (0), carry no encryption or checksum
    flags (TLS protects it), and hold exactly ``numEvents`` events.
    """
    r = Reader(frame, FASTPATH_PDU)
    header = r.u8("fpInputHeader")
    if header & 0x03:
        raise r.error("fpInputHeader.action", f"action {header & 0x03} is not fast-path (0)")
    flags = header >> 6
    if flags:
        raise r.error(
            "fpInputHeader.flags",
            f"flags 0x{flags:X} (encrypted or signed) are not used under TLS",
        )
    length = read_fastpath_length(r)
    if length != len(frame):
        raise r.error("length1", f"says {length} bytes, frame has {len(frame)}")
    num_events = (header >> 2) & 0x0F
    if num_events == 0:
        num_events = r.u8("numEvents")
    events = [_decode_fastpath_event(r, index) for index in range(num_events)]
    r.expect_end()
    return events


def _encode_fastpath_event(w: Writer, event: InputEvent) -> None:
    codes = FastPathInputEventCode
    if isinstance(event, KeyboardEvent):
        _check_range(event.scancode, 0xFF, "scancode")
        flags = FastPathKeyboardFlags(0)
        if event.released:
            flags |= FastPathKeyboardFlags.FASTPATH_INPUT_KBDFLAGS_RELEASE
        if event.extended:
            flags |= FastPathKeyboardFlags.FASTPATH_INPUT_KBDFLAGS_EXTENDED
        if event.extended1:
            flags |= FastPathKeyboardFlags.FASTPATH_INPUT_KBDFLAGS_EXTENDED1
        w.u8(codes.FASTPATH_INPUT_EVENT_SCANCODE << 5 | flags).u8(event.scancode)
    elif isinstance(event, UnicodeKeyboardEvent):
        _check_range(event.code_point, 0xFFFF, "code unit")
        flags = (
            FastPathKeyboardFlags.FASTPATH_INPUT_KBDFLAGS_RELEASE
            if event.released
            else FastPathKeyboardFlags(0)
        )
        w.u8(codes.FASTPATH_INPUT_EVENT_UNICODE << 5 | flags).u16le(event.code_point)
    elif isinstance(event, MouseEvent | ExtendedMouseEvent):
        code = (
            codes.FASTPATH_INPUT_EVENT_MOUSE
            if isinstance(event, MouseEvent)
            else codes.FASTPATH_INPUT_EVENT_MOUSEX
        )
        w.u8(code << 5).u16le(event.flags).u16le(event.x).u16le(event.y)
    elif isinstance(event, SyncEvent):
        w.u8(codes.FASTPATH_INPUT_EVENT_SYNC << 5 | (event.toggle_flags & 0x0F))
    elif isinstance(event, RelativeMouseEvent):
        w.u8(codes.FASTPATH_INPUT_EVENT_RELMOUSE << 5).u16le(event.flags)
        w.u16le(event.dx & 0xFFFF).u16le(event.dy & 0xFFFF)
    else:
        w.u8(codes.FASTPATH_INPUT_EVENT_QOE_TIMESTAMP << 5).u32le(event.timestamp)


@dataclass(frozen=True)
class FastPathInputPdu:
    """MS-RDPBCGR 2.2.8.1.2 TS_FP_INPUT_PDU (no encryption: TLS)."""

    events: tuple[InputEvent, ...]

    def encode(self) -> bytes:
        """Header with the count in bits 2-5 (or a numEvents byte), length, events."""
        count = len(self.events)
        _check_range(count, 0xFF, "numEvents")
        body = Writer()
        inline = 0 < count <= 0x0F
        if not inline:
            body.u8(count)
        for event in self.events:
            _encode_fastpath_event(body, event)
        payload = body.getvalue()
        header = (count << 2) if inline else 0
        total = 1 + len(payload)
        total += 1 if total + 1 < 0x80 else 2
        w = Writer().u8(header)
        write_fastpath_length(w, total)
        return w.raw(payload).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode; see :func:`decode_fastpath_input`."""
        return cls(tuple(decode_fastpath_input(data)))
