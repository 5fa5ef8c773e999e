"""RDP input events to X input (FakeInput against a recording sink)."""

from __future__ import annotations

import numpy as np
import pytest

from rdscard.desktop.regions import coalesce, unpremultiply
from rdscard.desktop.xinput import FakeInput, wheel_clicks
from rdscard.pdu.bitmap import Rect
from rdscard.pdu.input import (
    ExtendedMouseEvent,
    ExtendedPointerFlags,
    KeyboardEvent,
    MouseEvent,
    PointerFlags,
    SyncEvent,
    SyncToggleFlags,
    UnicodeKeyboardEvent,
)

Call = tuple[object, ...]


class RecordingSink:
    """An InputSink that writes down every call."""

    def __init__(self, spare: list[int] | None = None) -> None:
        self.calls: list[Call] = []
        self.spare = spare if spare is not None else [250, 251, 252]
        self.locks = (False, False, False)
        self.flushes = 0

    def key(self, keycode: int, pressed: bool) -> None:
        self.calls.append(("key", keycode, pressed))

    def button(self, button: int, pressed: bool) -> None:
        self.calls.append(("button", button, pressed))

    def motion(self, x: int, y: int) -> None:
        self.calls.append(("motion", x, y))

    def spare_keycodes(self) -> list[int]:
        return list(self.spare)

    def bind(self, keycode: int, keysym: int) -> None:
        self.calls.append(("bind", keycode, keysym))

    def lock_states(self) -> tuple[bool, bool, bool]:
        return self.locks

    def flush(self) -> None:
        self.flushes += 1


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def fake(sink: RecordingSink) -> FakeInput:
    return FakeInput(sink, 1024, 768)


def test_keys_and_one_flush_per_batch(fake: FakeInput, sink: RecordingSink) -> None:
    fake.apply([
        KeyboardEvent(0x2A),  # left Shift
        KeyboardEvent(0x1E),  # A
        KeyboardEvent(0x1E, released=True),
        KeyboardEvent(0x2A, released=True),
        KeyboardEvent(0x48, extended=True),  # Up
        KeyboardEvent(0x48, extended=True, released=True),
        KeyboardEvent(0x00),  # nothing
    ])
    assert sink.calls == [
        ("key", 50, True), ("key", 38, True), ("key", 38, False), ("key", 50, False),
        ("key", 111, True), ("key", 111, False),
    ]
    assert sink.flushes == 1


def test_pause_swallows_the_num_lock_half(fake: FakeInput, sink: RecordingSink) -> None:
    fake.apply([
        KeyboardEvent(0x1D, extended1=True),
        KeyboardEvent(0x45),
        KeyboardEvent(0x1D, extended1=True, released=True),
        KeyboardEvent(0x45, released=True),
        KeyboardEvent(0x45),  # a real Num Lock
    ])
    assert sink.calls == [("key", 127, True), ("key", 127, False), ("key", 77, True)]


def test_unicode_binds_a_spare_keycode_once(fake: FakeInput, sink: RecordingSink) -> None:
    fake.apply([
        UnicodeKeyboardEvent(0xE9), UnicodeKeyboardEvent(0xE9, released=True),
        UnicodeKeyboardEvent(0x20AC), UnicodeKeyboardEvent(0x20AC, released=True),
        UnicodeKeyboardEvent(0xE9), UnicodeKeyboardEvent(0xE9, released=True),
    ])
    assert sink.calls == [
        ("bind", 250, 0xE9), ("key", 250, True), ("key", 250, False),
        ("bind", 251, 0x010020AC), ("key", 251, True), ("key", 251, False),
        ("key", 250, True), ("key", 250, False),
    ]
    assert fake.bindings == {0xE9: 250, 0x010020AC: 251}


def test_unicode_reuses_the_least_recently_used(sink: RecordingSink) -> None:
    sink.spare = [200, 201]
    fake = FakeInput(sink, 100, 100)
    for ch in "éüé€":
        fake.apply([UnicodeKeyboardEvent(ord(ch)), UnicodeKeyboardEvent(ord(ch), released=True)])
    binds = [c for c in sink.calls if c[0] == "bind"]
    # é -> 200, ü -> 201, é again uses 200, € takes ü's 201 (least recently used).
    assert binds == [("bind", 200, 0xE9), ("bind", 201, 0xFC), ("bind", 201, 0x010020AC)]
    fake.close()
    assert sink.calls[-2:] == [("bind", 200, 0), ("bind", 201, 0)]


def test_unicode_surrogate_pair_types_one_character(fake: FakeInput, sink: RecordingSink) -> None:
    fake.apply([
        UnicodeKeyboardEvent(0xD83D), UnicodeKeyboardEvent(0xD83D, released=True),
        UnicodeKeyboardEvent(0xDE00), UnicodeKeyboardEvent(0xDE00, released=True),
    ])
    assert sink.calls == [("bind", 250, 0x0101F600), ("key", 250, True), ("key", 250, False)]


def test_unicode_without_spare_keycodes_is_dropped() -> None:
    sink = RecordingSink(spare=[])
    FakeInput(sink, 10, 10).apply([UnicodeKeyboardEvent(0xE9)])
    assert sink.calls == []


def test_buttons(fake: FakeInput, sink: RecordingSink) -> None:
    down, move = PointerFlags.PTRFLAGS_DOWN, PointerFlags.PTRFLAGS_MOVE
    fake.apply([
        MouseEvent(move, 10, 20),
        MouseEvent(PointerFlags.PTRFLAGS_BUTTON1 | down, 10, 20),
        MouseEvent(PointerFlags.PTRFLAGS_BUTTON1, 11, 20),
        MouseEvent(PointerFlags.PTRFLAGS_BUTTON2 | down, 11, 20),
        MouseEvent(PointerFlags.PTRFLAGS_BUTTON3 | down, 11, 20),
        ExtendedMouseEvent(ExtendedPointerFlags.PTRXFLAGS_BUTTON1 | 0x8000, 5000, 5000),
        ExtendedMouseEvent(ExtendedPointerFlags.PTRXFLAGS_BUTTON2, 0, 0),
    ])
    assert sink.calls == [
        ("motion", 10, 20),
        ("motion", 10, 20), ("button", 1, True),
        ("motion", 11, 20), ("button", 1, False),
        ("motion", 11, 20), ("button", 3, True),
        ("motion", 11, 20), ("button", 2, True),
        ("motion", 1023, 767), ("button", 8, True),
        ("motion", 0, 0), ("button", 9, False),
    ]


@pytest.mark.parametrize(
    ("flags", "clicks"),
    [
        (0x0200 | 0x078, 1),  # +120: one click up
        (0x0200 | 0x0F0, 2),  # +240
        (0x0200 | 0x0100 | 0x088, -1),  # -120 (0x188 in 9 bits)
        (0x0200 | 0x0100 | 0x010, -2),  # -240 (0x110)
        (0x0200 | 0x001, 1),  # any rotation is at least one click
        (0x0200, 0),
    ],
)
def test_wheel_clicks(flags: int, clicks: int) -> None:
    assert wheel_clicks(flags) == clicks


def test_wheel_buttons(fake: FakeInput, sink: RecordingSink) -> None:
    fake.apply([
        MouseEvent(0x0200 | 0x0F0, 5, 5),  # up twice
        MouseEvent(0x0200 | 0x0100 | 0x088, 5, 5),  # down once
        MouseEvent(0x0400 | 0x078, 5, 5),  # right
        MouseEvent(0x0400 | 0x0100 | 0x088, 5, 5),  # left
    ])
    presses = [c[1] for c in sink.calls if c[0] == "button" and c[2]]
    releases = [c[1] for c in sink.calls if c[0] == "button" and not c[2]]
    assert presses == releases == [4, 4, 5, 7, 6]


def test_sync_taps_the_lock_keys_that_differ(fake: FakeInput, sink: RecordingSink) -> None:
    sink.locks = (False, True, False)  # Num Lock on
    fake.apply([SyncEvent(SyncToggleFlags.TS_SYNC_CAPS_LOCK | SyncToggleFlags.TS_SYNC_NUM_LOCK)])
    assert sink.calls == [("key", 66, True), ("key", 66, False)]
    sink.calls.clear()
    fake.apply([SyncEvent(SyncToggleFlags.TS_SYNC_SCROLL_LOCK)])
    assert sink.calls == [
        ("key", 77, True), ("key", 77, False), ("key", 78, True), ("key", 78, False)]


def test_release_all(fake: FakeInput, sink: RecordingSink) -> None:
    fake.apply([
        KeyboardEvent(0x1D), KeyboardEvent(0x38),
        MouseEvent(PointerFlags.PTRFLAGS_BUTTON1 | PointerFlags.PTRFLAGS_DOWN, 1, 1),
    ])
    sink.calls.clear()
    fake.release_all()
    assert sink.calls == [("key", 37, False), ("key", 64, False), ("button", 1, False)]


def test_coalesce() -> None:
    rects = [Rect(0, 0, 10, 10), Rect(2, 2, 5, 5), Rect(0, 0, 10, 10), Rect(-5, 95, 20, 120),
             Rect(50, 50, 50, 60)]
    assert coalesce(rects, 100, 100) == [Rect(0, 0, 10, 10), Rect(0, 95, 20, 100)]
    many = [Rect(i * 2, 0, i * 2 + 1, 1) for i in range(40)]
    assert coalesce(many, 100, 100, limit=8) == [Rect(0, 0, 79, 1)]


def test_unpremultiply() -> None:
    px = np.array([[[64, 32, 128, 128], [0, 0, 0, 0], [255, 255, 255, 255], [10, 0, 0, 20]]],
                  dtype=np.uint8)
    out = unpremultiply(px)
    assert out.tolist() == [[[128, 64, 255, 128], [0, 0, 0, 0], [255, 255, 255, 255],
                             [128, 0, 0, 20]]]
