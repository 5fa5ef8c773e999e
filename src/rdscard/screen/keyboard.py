"""PIN entry from RDP keyboard events.

:class:`PinEntry` turns :class:`~rdscard.pdu.input.KeyboardEvent` (US
layout, scancode set 1, the codes RDP clients send) and
:class:`~rdscard.pdu.input.UnicodeKeyboardEvent` into PIN edits: printable
ASCII characters are appended, Backspace removes one, Escape clears, Enter
submits. Key releases only matter for Shift. The PIN lives in a fixed
``bytearray`` of ``max_length`` bytes (8 for PIV, NIST SP 800-73-4 3.2.1)
that is zeroed after every submit or clear and never reallocated, so no
stray copy is left behind; extra keys beyond the maximum are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from rdscard.pdu.input import InputEvent, KeyboardEvent, SyncEvent, UnicodeKeyboardEvent
from rdscard.secret import Secret

PIV_MAX_PIN_LENGTH: Final = 8

SC_ESCAPE: Final = 0x01
SC_BACKSPACE: Final = 0x0E
SC_ENTER: Final = 0x1C
SC_LEFT_SHIFT: Final = 0x2A
SC_RIGHT_SHIFT: Final = 0x36
SC_CAPS_LOCK: Final = 0x3A
SC_NUM_LOCK: Final = 0x45


def _row(first: int, plain: str, shifted: str) -> dict[int, tuple[str, str]]:
    return {first + i: (p, s) for i, (p, s) in enumerate(zip(plain, shifted, strict=True))}


#: Scancode set 1, US layout: scancode -> (character, character with Shift).
US_SCANCODES: Final[dict[int, tuple[str, str]]] = {
    **_row(0x02, "1234567890-=", "!@#$%^&*()_+"),
    **_row(0x10, "qwertyuiop[]", "QWERTYUIOP{}"),
    **_row(0x1E, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    **_row(0x2B, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
}

#: Keypad digits (not extended), meaningful while Num Lock is on.
KEYPAD_DIGITS: Final[dict[int, str]] = {
    0x47: "7", 0x48: "8", 0x49: "9",
    0x4B: "4", 0x4C: "5", 0x4D: "6",
    0x4F: "1", 0x50: "2", 0x51: "3",
    0x52: "0",
}


@dataclass(frozen=True)
class PinEdited:
    """A character was added or removed; ``length`` is the new PIN length."""

    length: int


@dataclass(frozen=True)
class PinCleared:
    """Escape emptied the PIN field."""


@dataclass(frozen=True, eq=False)
class PinSubmitted:
    """Enter was pressed: the receiver owns ``pin`` and must wipe it after use."""

    pin: Secret = field(repr=False)


PinAction = PinEdited | PinCleared | PinSubmitted


class PinEntry:
    """The PIN being typed, fed one input event at a time."""

    def __init__(self, max_length: int = PIV_MAX_PIN_LENGTH) -> None:
        if not 1 <= max_length <= 64:
            raise ValueError("max_length must be 1..64")
        self.max_length = max_length
        self.enabled = True
        self._buf = bytearray(max_length)
        self._length = 0
        self._shift_down: set[int] = set()
        self.caps_lock = False
        self.num_lock = True
        self._pause_pending = False

    def __repr__(self) -> str:
        return f"PinEntry(<{self._length} of {self.max_length} characters>)"

    @property
    def length(self) -> int:
        """How many characters are typed."""
        return self._length

    @property
    def shift(self) -> bool:
        """A Shift key is held."""
        return bool(self._shift_down)

    def feed(self, event: InputEvent) -> PinAction | None:
        """Apply one event; returns what happened to the PIN, if anything."""
        if isinstance(event, SyncEvent):
            self.caps_lock = event.caps_lock
            self.num_lock = event.num_lock
            return None
        if isinstance(event, KeyboardEvent):
            return self._scancode(event)
        if isinstance(event, UnicodeKeyboardEvent):
            return self._unicode(event)
        return None

    def clear(self) -> None:
        """Zero and forget the typed characters."""
        self._buf[:] = bytes(self.max_length)
        self._length = 0

    def _scancode(self, event: KeyboardEvent) -> PinAction | None:
        code = event.scancode
        if code in (SC_LEFT_SHIFT, SC_RIGHT_SHIFT) and not event.extended:
            if event.released:
                self._shift_down.discard(code)
            else:
                self._shift_down.add(code)
            return None
        if event.extended1:
            # Pause arrives as EXTENDED1 0x1D followed by a plain 0x45 that is not Num Lock.
            self._pause_pending = code == 0x1D and not event.released
            return None
        if code == SC_NUM_LOCK and self._pause_pending:
            self._pause_pending = False
            return None
        self._pause_pending = False
        if event.released:
            return None
        if code == SC_ENTER:  # main Enter, or keypad Enter when extended
            return self._submit()
        if event.extended:
            return None
        if code == SC_CAPS_LOCK:
            self.caps_lock = not self.caps_lock
            return None
        if code == SC_NUM_LOCK:
            self.num_lock = not self.num_lock
            return None
        if code == SC_BACKSPACE:
            return self._backspace()
        if code == SC_ESCAPE:
            return self._escape()
        if code in KEYPAD_DIGITS:
            return self._append(ord(KEYPAD_DIGITS[code])) if self.num_lock else None
        pair = US_SCANCODES.get(code)
        if pair is None:
            return None
        plain, shifted = pair
        upper = self.shift
        if plain.isalpha() and self.caps_lock:
            upper = not upper
        return self._append(ord(shifted if upper else plain))

    def _unicode(self, event: UnicodeKeyboardEvent) -> PinAction | None:
        if event.released:
            return None
        code = event.code_point
        if code in (0x0D, 0x0A):
            return self._submit()
        if code == 0x08:
            return self._backspace()
        if code == 0x1B:
            return self._escape()
        if 0x21 <= code <= 0x7E:
            return self._append(code)
        return None

    def _append(self, byte: int) -> PinAction | None:
        if not self.enabled or self._length >= self.max_length:
            return None
        self._buf[self._length] = byte
        self._length += 1
        return PinEdited(self._length)

    def _backspace(self) -> PinAction | None:
        if not self.enabled or self._length == 0:
            return None
        self._length -= 1
        self._buf[self._length] = 0
        return PinEdited(self._length)

    def _escape(self) -> PinAction | None:
        if not self.enabled:
            return None
        self.clear()
        return PinCleared()

    def _submit(self) -> PinAction | None:
        if not self.enabled or self._length == 0:
            return None
        with memoryview(self._buf) as view:
            pin = Secret(view[: self._length])
        self.clear()
        return PinSubmitted(pin)
