"""Slow-path and fast-path Input Event PDUs (MS-RDPBCGR 2.2.8.1.1.3.1, 2.2.8.1.2)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.input import (
    ExtendedMouseEvent,
    FastPathInputPdu,
    InputEvent,
    KeyboardEvent,
    MouseEvent,
    PointerFlags,
    QoeTimestampEvent,
    RelativeMouseEvent,
    SlowPathInputPdu,
    SyncEvent,
    SyncToggleFlags,
    UnicodeKeyboardEvent,
    decode_fastpath_input,
    decode_slowpath_input,
)

# -- fast path -----------------------------------------------------------------

# Fast-path: press and release of the "A" key (scancode 0x1E).
FP_KEY_A = bytes(
    [
        0x08,  # fpInputHeader: action 0, numEvents 2 (bits 2-5), flags 0
        0x06,  # length1: 6 bytes in all (one-byte form)
        0x00,  # eventHeader: FASTPATH_INPUT_EVENT_SCANCODE (0 << 5), no flags
        0x1E,  # keyCode
        0x01,  # eventHeader: SCANCODE | FASTPATH_INPUT_KBDFLAGS_RELEASE
        0x1E,  # keyCode
    ]
)

# Fast-path: one event of every kind.
FP_ALL_KINDS = bytes(
    [
        0x1C,  # fpInputHeader: numEvents 7
        0x22,  # length1: 34 bytes
        0x02, 0x1D,  # SCANCODE | KBDFLAGS_EXTENDED, keyCode 0x1D (right Ctrl)
        0x80, 0x41, 0x00,  # FASTPATH_INPUT_EVENT_UNICODE (4 << 5), unicodeCode "A"
        0x20, 0x00, 0x08, 0x00, 0x01, 0x80, 0x00,  # MOUSE, PTRFLAGS_MOVE, x 256, y 128
        0x40, 0x01, 0x80, 0x0A, 0x00, 0x14, 0x00,  # MOUSEX, PTRXFLAGS_DOWN|BUTTON1, x 10, y 20
        0x66,  # FASTPATH_INPUT_EVENT_SYNC (3 << 5) | NUM_LOCK | CAPS_LOCK
        0xA0, 0x00, 0x08, 0xFF, 0xFF, 0x02, 0x00,  # RELMOUSE, MOVE, dx -1, dy 2
        0xC0, 0x78, 0x56, 0x34, 0x12,  # QOE_TIMESTAMP, timestamp 0x12345678
    ]
)
FP_ALL_KINDS_EVENTS = (
    KeyboardEvent(0x1D, extended=True),
    UnicodeKeyboardEvent(0x41),
    MouseEvent(PointerFlags.PTRFLAGS_MOVE, 256, 128),
    ExtendedMouseEvent(0x8001, 10, 20),
    SyncEvent(SyncToggleFlags.TS_SYNC_NUM_LOCK | SyncToggleFlags.TS_SYNC_CAPS_LOCK),
    RelativeMouseEvent(PointerFlags.PTRFLAGS_MOVE, -1, 2),
    QoeTimestampEvent(0x12345678),
)


def test_fastpath_key_press_release_decodes() -> None:
    assert decode_fastpath_input(FP_KEY_A) == [
        KeyboardEvent(0x1E),
        KeyboardEvent(0x1E, released=True),
    ]


def test_fastpath_key_press_release_encodes_byte_exact() -> None:
    pdu = FastPathInputPdu((KeyboardEvent(0x1E), KeyboardEvent(0x1E, released=True)))
    assert pdu.encode() == FP_KEY_A
    assert len(pdu.encode()) == 6


def test_fastpath_every_event_kind() -> None:
    assert tuple(decode_fastpath_input(FP_ALL_KINDS)) == FP_ALL_KINDS_EVENTS
    assert FastPathInputPdu(FP_ALL_KINDS_EVENTS).encode() == FP_ALL_KINDS
    assert len(FP_ALL_KINDS) == 34


def test_fastpath_sync_event_lock_properties() -> None:
    (event,) = decode_fastpath_input(bytes([0x04, 0x03, 0x62]))  # SYNC | NUM_LOCK
    assert isinstance(event, SyncEvent)
    assert event.num_lock and not event.caps_lock


def test_fastpath_extended1_flag() -> None:
    frame = bytes([0x04, 0x04, 0x04, 0x1D])  # SCANCODE | KBDFLAGS_EXTENDED1 (Pause prefix)
    assert decode_fastpath_input(frame) == [KeyboardEvent(0x1D, extended1=True)]


def test_fastpath_more_than_15_events_uses_numevents_byte() -> None:
    events = tuple(KeyboardEvent(0x02 + i % 10) for i in range(20))
    frame = FastPathInputPdu(events).encode()
    assert frame[0] == 0x00  # numEvents 0 in the header: the count follows the length
    assert frame[1] == 0x2B  # length1: 1 + 1 + 1 + 20 * 2 = 43
    assert frame[2] == 20  # numEvents
    assert len(frame) == 43
    assert tuple(decode_fastpath_input(frame)) == events


def test_fastpath_two_byte_length() -> None:
    events = tuple(MouseEvent(PointerFlags.PTRFLAGS_MOVE, i, i) for i in range(30))
    frame = FastPathInputPdu(events).encode()
    assert len(frame) == 1 + 2 + 1 + 30 * 7  # header, length1/length2, numEvents, events
    assert frame[1:3] == bytes([0x80 | (len(frame) >> 8), len(frame) & 0xFF])
    assert tuple(decode_fastpath_input(frame)) == events


def test_fastpath_zero_events_round_trip() -> None:
    frame = FastPathInputPdu(()).encode()
    assert frame == bytes([0x00, 0x03, 0x00])
    assert decode_fastpath_input(frame) == []


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (bytes([0x88, 0x06, 0x00, 0x1E, 0x01, 0x1E]), "fpInputHeader.flags"),  # encrypted
        (bytes([0x48, 0x06, 0x00, 0x1E, 0x01, 0x1E]), "fpInputHeader.flags"),  # checksum
        (bytes([0x0B, 0x06, 0x00, 0x1E, 0x01, 0x1E]), "fpInputHeader.action"),
        (bytes([0x08, 0x07, 0x00, 0x1E, 0x01, 0x1E]), "length1"),  # says 7, has 6
        (bytes([0x08, 0x05, 0x00, 0x1E, 0x01]), "fpInputEvents[1].keyCode"),  # truncated
        (bytes([0x04, 0x03, 0xE0]), "fpInputEvents[0].eventCode"),  # unknown code 7
        (bytes([0x04, 0x05, 0x00, 0x1E, 0x00]), "(end)"),  # trailing byte
        (bytes([0x04, 0x03, 0x70]), "fpInputEvents[0].eventFlags"),  # sync flag 0x10
        (bytes([0x00, 0x02]), "numEvents"),
        (b"", "fpInputHeader"),
        (bytes([0x04, 0x80]), "length2"),
    ],
)
def test_fastpath_rejects_malformed(frame: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_fastpath_input(frame)
    assert info.value.pdu == "TS_FP_INPUT_PDU"
    assert info.value.field == field


def test_fastpath_encoder_refuses_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        FastPathInputPdu((KeyboardEvent(0x100),)).encode()
    with pytest.raises(ValueError):
        FastPathInputPdu(tuple(KeyboardEvent(1) for _ in range(256))).encode()


# -- slow path -----------------------------------------------------------------

# TS_INPUT_PDU_DATA after the Share Data Header: a release of "A" and a sync.
SLOW_KEY_AND_SYNC = bytes(
    [
        0x02, 0x00,  # numEvents 2
        0x00, 0x00,  # pad2Octets
        0x10, 0x27, 0x00, 0x00,  # eventTime (ignored)
        0x04, 0x00,  # messageType INPUT_EVENT_SCANCODE
        0x00, 0x80,  # keyboardFlags KBDFLAGS_RELEASE
        0x1E, 0x00,  # keyCode 0x1E
        0x00, 0x00,  # pad2Octets
        0x00, 0x00, 0x00, 0x00,  # eventTime
        0x00, 0x00,  # messageType INPUT_EVENT_SYNC
        0x00, 0x00,  # pad2Octets
        0x02, 0x00, 0x00, 0x00,  # toggleFlags TS_SYNC_NUM_LOCK
    ]
)


def test_slowpath_decodes_spec_layout() -> None:
    assert decode_slowpath_input(SLOW_KEY_AND_SYNC) == [
        KeyboardEvent(0x1E, released=True),
        SyncEvent(SyncToggleFlags.TS_SYNC_NUM_LOCK),
    ]


def test_slowpath_encodes_with_zero_event_time() -> None:
    pdu = SlowPathInputPdu(
        (KeyboardEvent(0x1E, released=True), SyncEvent(SyncToggleFlags.TS_SYNC_NUM_LOCK))
    )
    expected = SLOW_KEY_AND_SYNC[:4] + bytes(4) + SLOW_KEY_AND_SYNC[8:]
    assert pdu.encode() == expected
    assert len(pdu.encode()) == 4 + 2 * 12


def test_slowpath_every_event_kind_round_trips() -> None:
    events: tuple[InputEvent, ...] = (
        KeyboardEvent(0x2A, extended=True, extended1=True),
        UnicodeKeyboardEvent(0x20AC, released=True),
        MouseEvent(0x9000, 1023, 767),
        ExtendedMouseEvent(0x0002, 5, 6),
        RelativeMouseEvent(0x0800, -300, 300),
        SyncEvent(SyncToggleFlags(0x0F)),
    )
    data = SlowPathInputPdu(events).encode()
    assert len(data) == 4 + 12 * len(events)
    assert SlowPathInputPdu.decode(data).events == events


def test_slowpath_skips_unused_events() -> None:
    unused = bytes([0, 0, 0, 0, 0x02, 0x00]) + bytes(6)
    data = bytes([0x01, 0x00, 0x00, 0x00]) + unused
    assert decode_slowpath_input(data) == []


def test_slowpath_refuses_qoe_event() -> None:
    with pytest.raises(ValueError):
        SlowPathInputPdu((QoeTimestampEvent(1),)).encode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (SLOW_KEY_AND_SYNC[:-1], "numEvents"),  # count does not match the bytes
        (SLOW_KEY_AND_SYNC + b"\0", "numEvents"),
        (bytes([1, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x00]) + bytes(6),
         "slowPathInputEvents[0].messageType"),
        (bytes([1, 0, 0, 0, 0, 0, 0, 0, 0x04, 0x00, 0, 0, 0x00, 0x01, 0, 0]),
         "slowPathInputEvents[0].keyCode"),
        (bytes([1, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0, 0, 0x10, 0, 0, 0]),
         "slowPathInputEvents[0].toggleFlags"),
        (b"\x01", "numEvents"),
    ],
)
def test_slowpath_rejects_malformed(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_slowpath_input(data)
    assert info.value.pdu == "TS_INPUT_PDU_DATA"
    assert info.value.field == field


# -- properties ------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
common_events = st.one_of(
    st.builds(KeyboardEvent, st.integers(0, 0xFF), st.booleans(), st.booleans(), st.booleans()),
    st.builds(UnicodeKeyboardEvent, u16, st.booleans()),
    st.builds(MouseEvent, u16, u16, u16),
    st.builds(ExtendedMouseEvent, u16, u16, u16),
    st.builds(RelativeMouseEvent, u16, st.integers(-0x8000, 0x7FFF), st.integers(-0x8000, 0x7FFF)),
    st.builds(SyncEvent, st.integers(0, 15).map(SyncToggleFlags)),
)
fastpath_events = st.one_of(common_events, st.builds(QoeTimestampEvent, st.integers(0, 2**32 - 1)))


@given(st.lists(fastpath_events, max_size=60))
def test_fastpath_round_trip_property(events: list[InputEvent]) -> None:
    frame = FastPathInputPdu(tuple(events)).encode()
    assert decode_fastpath_input(frame) == events


@given(st.lists(common_events, max_size=60))
def test_slowpath_round_trip_property(events: list[InputEvent]) -> None:
    data = SlowPathInputPdu(tuple(events)).encode()
    assert len(data) == 4 + 12 * len(events)
    assert decode_slowpath_input(data) == events


@given(st.binary(max_size=300))
def test_fastpath_decoder_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_fastpath_input(data)


@given(st.binary(max_size=300))
def test_slowpath_decoder_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_slowpath_input(data)


@given(st.integers(0, 15), st.binary(max_size=120))
def test_fastpath_decoder_with_valid_header_raises_only_protocol_error(
    count: int, body: bytes
) -> None:
    frame = bytes([count << 2, (len(body) + 2) & 0x7F]) + body
    with contextlib.suppress(ProtocolError):
        decode_fastpath_input(frame)
