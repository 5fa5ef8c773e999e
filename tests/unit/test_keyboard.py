"""PIN entry from keyboard events (US layout, scancode set 1)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rdscard.pdu.input import (
    InputEvent,
    KeyboardEvent,
    MouseEvent,
    SyncEvent,
    SyncToggleFlags,
    UnicodeKeyboardEvent,
)
from rdscard.screen.keyboard import (
    SC_BACKSPACE,
    SC_CAPS_LOCK,
    SC_ENTER,
    SC_ESCAPE,
    SC_LEFT_SHIFT,
    SC_RIGHT_SHIFT,
    PinCleared,
    PinEdited,
    PinEntry,
    PinSubmitted,
)
from rdscard.secret import Secret

DIGIT_SCANCODES = {str((i + 1) % 10): 0x02 + i for i in range(10)}  # "1" is 0x02, "0" is 0x0B


def tap(entry: PinEntry, scancode: int, extended: bool = False) -> object:
    """Press and release a key; returns what the press did."""
    action = entry.feed(KeyboardEvent(scancode, extended=extended))
    assert entry.feed(KeyboardEvent(scancode, released=True, extended=extended)) is None
    return action


def type_digits(entry: PinEntry, digits: str) -> None:
    for digit in digits:
        tap(entry, DIGIT_SCANCODES[digit])


def submit(entry: PinEntry) -> bytes:
    action = tap(entry, SC_ENTER)
    assert isinstance(action, PinSubmitted)
    return bytes(action.pin.reveal())


def test_digits_are_appended_and_submitted() -> None:
    entry = PinEntry()
    assert tap(entry, DIGIT_SCANCODES["1"]) == PinEdited(1)
    type_digits(entry, "234567")
    assert entry.length == 7
    assert submit(entry) == b"1234567"
    assert entry.length == 0


def test_submit_returns_a_secret_and_wipes_the_buffer() -> None:
    entry = PinEntry()
    type_digits(entry, "9876")
    action = tap(entry, SC_ENTER)
    assert isinstance(action, PinSubmitted)
    assert isinstance(action.pin, Secret)
    assert "9876" not in repr(action) and "9876" not in repr(entry)
    assert bytes(entry._buf) == bytes(8)  # the entry keeps no copy
    action.pin.wipe()
    assert len(action.pin) == 0


def test_backspace_removes_one_and_zeroes_it() -> None:
    entry = PinEntry()
    type_digits(entry, "123")
    assert tap(entry, SC_BACKSPACE) == PinEdited(2)
    assert entry._buf[2] == 0
    assert submit(entry) == b"12"


def test_backspace_on_empty_does_nothing() -> None:
    assert tap(PinEntry(), SC_BACKSPACE) is None


def test_escape_clears() -> None:
    entry = PinEntry()
    type_digits(entry, "1234")
    assert tap(entry, SC_ESCAPE) == PinCleared()
    assert entry.length == 0
    assert bytes(entry._buf) == bytes(8)
    type_digits(entry, "5")
    assert submit(entry) == b"5"


def test_enter_with_nothing_typed_submits_nothing() -> None:
    assert tap(PinEntry(), SC_ENTER) is None


def test_maximum_length_is_eight_and_extra_keys_are_ignored() -> None:
    entry = PinEntry()
    type_digits(entry, "12345678")
    assert tap(entry, DIGIT_SCANCODES["9"]) is None
    assert entry.length == 8
    assert submit(entry) == b"12345678"


def test_keypad_enter_submits() -> None:
    entry = PinEntry()
    type_digits(entry, "42")
    action = tap(entry, SC_ENTER, extended=True)
    assert isinstance(action, PinSubmitted)
    assert bytes(action.pin.reveal()) == b"42"


def test_shift_gives_symbols_and_capitals_while_held() -> None:
    entry = PinEntry()
    entry.feed(KeyboardEvent(SC_LEFT_SHIFT))
    tap(entry, DIGIT_SCANCODES["1"])  # "!"
    tap(entry, 0x1E)  # "A"
    entry.feed(KeyboardEvent(SC_LEFT_SHIFT, released=True))
    tap(entry, 0x1E)  # "a"
    entry.feed(KeyboardEvent(SC_RIGHT_SHIFT))
    tap(entry, 0x10)  # "Q"
    entry.feed(KeyboardEvent(SC_RIGHT_SHIFT, released=True))
    assert submit(entry) == b"!AaQ"


def test_caps_lock_key_and_sync_event() -> None:
    entry = PinEntry()
    tap(entry, SC_CAPS_LOCK)
    tap(entry, 0x30)  # "B"
    tap(entry, DIGIT_SCANCODES["2"])  # digits are not affected by Caps Lock
    entry.feed(KeyboardEvent(SC_LEFT_SHIFT))
    tap(entry, 0x30)  # Shift with Caps Lock: "b"
    entry.feed(KeyboardEvent(SC_LEFT_SHIFT, released=True))
    entry.feed(SyncEvent(SyncToggleFlags(0)))  # the client says Caps Lock is off
    tap(entry, 0x30)
    assert submit(entry) == b"B2bb"


def test_keypad_digits_follow_num_lock() -> None:
    entry = PinEntry()
    entry.feed(SyncEvent(SyncToggleFlags.TS_SYNC_NUM_LOCK))
    for scancode in (0x4F, 0x50, 0x51, 0x4B, 0x4C, 0x4D, 0x47, 0x48, 0x49, 0x52):
        tap(entry, scancode)
        if entry.length == 8:
            break
    assert submit(entry) == b"12345678"
    entry.feed(SyncEvent(SyncToggleFlags(0)))  # Num Lock off: keypad keys navigate
    assert tap(entry, 0x4F) is None
    assert entry.length == 0


def test_pause_key_does_not_toggle_num_lock() -> None:
    entry = PinEntry()
    entry.feed(SyncEvent(SyncToggleFlags.TS_SYNC_NUM_LOCK))
    for released in (False, True):  # Pause: EXTENDED1 0x1D then 0x45, pressed then released
        entry.feed(KeyboardEvent(0x1D, released=released, extended1=True))
        entry.feed(KeyboardEvent(0x45, released=released))
    assert entry.num_lock
    tap(entry, 0x4F)  # keypad 1 still types a digit
    tap(entry, 0x45)  # a real Num Lock press turns it off
    assert not entry.num_lock
    assert submit(entry) == b"1"


def test_extended_keys_are_not_digits() -> None:
    entry = PinEntry()
    entry.feed(SyncEvent(SyncToggleFlags.TS_SYNC_NUM_LOCK))
    assert tap(entry, 0x48, extended=True) is None  # Up arrow shares scancode 0x48
    assert tap(entry, 0x4B, extended=True) is None  # Left arrow
    assert entry.length == 0


def test_releases_and_mouse_events_are_ignored() -> None:
    entry = PinEntry()
    assert entry.feed(KeyboardEvent(DIGIT_SCANCODES["5"], released=True)) is None
    assert entry.feed(MouseEvent(0x0800, 10, 10)) is None
    assert entry.feed(KeyboardEvent(0x3B)) is None  # F1
    assert entry.length == 0


def test_auto_repeat_presses_each_count() -> None:
    entry = PinEntry()
    for _ in range(3):
        entry.feed(KeyboardEvent(DIGIT_SCANCODES["7"]))
    assert submit(entry) == b"777"


def test_unicode_events() -> None:
    entry = PinEntry()
    for char in "a1Z":
        assert entry.feed(UnicodeKeyboardEvent(ord(char))) is not None
        assert entry.feed(UnicodeKeyboardEvent(ord(char), released=True)) is None
    assert entry.feed(UnicodeKeyboardEvent(0xE9)) is None  # not ASCII: ignored
    assert entry.feed(UnicodeKeyboardEvent(0x08)) == PinEdited(2)  # backspace
    action = entry.feed(UnicodeKeyboardEvent(0x0D))
    assert isinstance(action, PinSubmitted)
    assert bytes(action.pin.reveal()) == b"a1"
    entry.feed(UnicodeKeyboardEvent(ord("x")))
    assert entry.feed(UnicodeKeyboardEvent(0x1B)) == PinCleared()


def test_disabled_entry_ignores_edits_but_tracks_shift() -> None:
    entry = PinEntry()
    entry.enabled = False
    entry.feed(KeyboardEvent(SC_LEFT_SHIFT))
    assert tap(entry, DIGIT_SCANCODES["1"]) is None
    assert tap(entry, SC_ENTER) is None
    assert entry.shift
    entry.enabled = True
    tap(entry, 0x1E)
    assert submit(entry) == b"A"


def test_custom_maximum_length() -> None:
    entry = PinEntry(max_length=4)
    type_digits(entry, "123456")
    assert submit(entry) == b"1234"


keyboard_events = st.one_of(
    st.builds(KeyboardEvent, st.integers(0, 0xFF), st.booleans(), st.booleans(), st.booleans()),
    st.builds(UnicodeKeyboardEvent, st.integers(0, 0xFFFF), st.booleans()),
    st.builds(SyncEvent, st.integers(0, 15).map(SyncToggleFlags)),
)


@given(st.lists(keyboard_events, max_size=80))
def test_any_key_sequence_keeps_the_pin_within_limits(events: list[InputEvent]) -> None:
    entry = PinEntry()
    for event in events:
        action = entry.feed(event)
        assert 0 <= entry.length <= 8
        if isinstance(action, PinSubmitted):
            pin = bytes(action.pin.reveal())
            assert 1 <= len(pin) <= 8
            assert all(0x21 <= b <= 0x7E for b in pin)
            assert entry.length == 0
        if isinstance(action, PinEdited):
            assert action.length == entry.length
        assert bytes(entry._buf[entry.length :]) == bytes(8 - entry.length)
