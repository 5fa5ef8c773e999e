"""RDP input events turned into X input: what to press, where, and in which order.

:class:`FakeInput` translates the decoded client input events of
:mod:`rdscard.pdu.input` (MS-RDPBCGR 2.2.8.1.1.3.1.1 slow path,
2.2.8.1.2.2 fast path) into calls on an :class:`InputSink`; the X
implementation of the sink sends XTEST FakeInput requests (XTEST 2.2,
"FakeInput"), the unit tests use a recording fake.

- Keys by scancode go through :func:`rdscard.desktop.keymap.keycode_for`.
  Pause (EXTENDED1 0x1D then a plain 0x45) presses <PAUS> once and
  swallows the trailing 0x45.
- Unicode key events bind the character's keysym to a spare keycode (one
  with no symbols), then press and release it. Bindings stay in place and
  are reused (least recently used first to go when every spare keycode is
  taken): restoring a keycode right after the release races the clients,
  which look the keysym up again when they see MappingNotify, possibly
  after the restore. :meth:`FakeInput.close` restores them all.
- Pointer: absolute motion, buttons 1-3 (left=1, middle=2, right=3),
  the wheel as buttons 4 (up) / 5 (down) and the horizontal wheel as
  6 (left) / 7 (right), one click per 120 units of rotation
  (2.2.8.1.1.3.1.1.3: rotation in the low 9 bits, two's complement with
  PTRFLAGS_WHEEL_NEGATIVE as the sign); the extended buttons XBUTTON1/2
  (2.2.8.1.1.3.1.1.4) as X buttons 8 and 9.
- Synchronize (2.2.8.1.1.3.1.1.5) sets Caps, Num and Scroll Lock by
  tapping the lock keys whose state differs from the client's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Final, Protocol

from rdscard.desktop import keymap
from rdscard.pdu.input import (
    ExtendedMouseEvent,
    ExtendedPointerFlags,
    InputEvent,
    KeyboardEvent,
    MouseEvent,
    PointerFlags,
    SyncEvent,
    SyncToggleFlags,
    UnicodeKeyboardEvent,
)

#: One wheel "click" (WHEEL_DELTA of the Windows API) in RDP rotation units.
WHEEL_DELTA: Final = 120
#: At most this many clicks per wheel event, whatever the client says.
MAX_WHEEL_CLICKS: Final = 16

BUTTON_LEFT: Final = 1
BUTTON_MIDDLE: Final = 2
BUTTON_RIGHT: Final = 3
BUTTON_WHEEL_UP: Final = 4
BUTTON_WHEEL_DOWN: Final = 5
BUTTON_WHEEL_LEFT: Final = 6
BUTTON_WHEEL_RIGHT: Final = 7
BUTTON_BACK: Final = 8
BUTTON_FORWARD: Final = 9

_POINTER_BUTTONS: Final = (
    (PointerFlags.PTRFLAGS_BUTTON1, BUTTON_LEFT),
    (PointerFlags.PTRFLAGS_BUTTON2, BUTTON_RIGHT),
    (PointerFlags.PTRFLAGS_BUTTON3, BUTTON_MIDDLE),
)


class InputSink(Protocol):
    """Where translated input goes (an X server through XTEST, or a test fake)."""

    def key(self, keycode: int, pressed: bool) -> None:
        """Press or release a keycode."""

    def button(self, button: int, pressed: bool) -> None:
        """Press or release a pointer button."""

    def motion(self, x: int, y: int) -> None:
        """Move the pointer to an absolute screen position."""

    def spare_keycodes(self) -> list[int]:
        """Keycodes with no keysyms, free for unicode bindings."""

    def bind(self, keycode: int, keysym: int) -> None:
        """Give ``keycode`` the single keysym ``keysym`` (0 restores NoSymbol)."""

    def lock_states(self) -> tuple[bool, bool, bool]:
        """Caps Lock, Num Lock and Scroll Lock as the X server has them now."""

    def flush(self) -> None:
        """Send what was queued."""


def wheel_clicks(flags: int) -> int:
    """Signed clicks of a wheel event: positive away from the user (up/right for RDP).

    The rotation is the low 9 bits of ``pointerFlags`` as a two's complement
    number (PTRFLAGS_WHEEL_NEGATIVE is its sign bit); each 120 units is one
    click, and any non-zero rotation is at least one.
    """
    rotation = int(flags & PointerFlags.WHEEL_ROTATION_MASK)
    if flags & PointerFlags.PTRFLAGS_WHEEL_NEGATIVE:
        rotation -= 0x200
    if rotation == 0:
        return 0
    clicks = max(1, min(abs(rotation) // WHEEL_DELTA, MAX_WHEEL_CLICKS))
    return clicks if rotation > 0 else -clicks


class FakeInput:
    """Translate RDP input events for one session's X server."""

    def __init__(self, sink: InputSink, width: int, height: int) -> None:
        self._sink = sink
        self._width = width
        self._height = height
        self._pressed_keys: set[int] = set()
        self._pressed_buttons: set[int] = set()
        self._pause_pending = False
        self._high_surrogate: int | None = None
        self._spare: list[int] | None = None
        #: keysym -> keycode, least recently used first.
        self._bindings: OrderedDict[int, int] = OrderedDict()

    # -- public ----------------------------------------------------------

    def apply(self, events: Iterable[InputEvent]) -> None:
        """Apply one batch of decoded events, then flush once."""
        for event in events:
            self.apply_one(event)
        self._sink.flush()

    def apply_one(self, event: InputEvent) -> None:
        """Apply one event without flushing."""
        if isinstance(event, KeyboardEvent):
            self._scancode(event)
        elif isinstance(event, UnicodeKeyboardEvent):
            self._unicode(event)
        elif isinstance(event, MouseEvent):
            self._mouse(event)
        elif isinstance(event, ExtendedMouseEvent):
            self._mouse_x(event)
        elif isinstance(event, SyncEvent):
            self._sync(event.toggle_flags)
        # Relative motion and QoE timestamps are not advertised by the server.

    def release_all(self) -> None:
        """Release every key and button this object holds down (focus lost, session end)."""
        for keycode in sorted(self._pressed_keys):
            self._sink.key(keycode, False)
        for button in sorted(self._pressed_buttons):
            self._sink.button(button, False)
        self._pressed_keys.clear()
        self._pressed_buttons.clear()
        self._sink.flush()

    def close(self) -> None:
        """Release what is held and restore the keycodes used for unicode characters."""
        self.release_all()
        for keycode in self._bindings.values():
            self._sink.bind(keycode, 0)
        self._bindings.clear()
        self._sink.flush()

    @property
    def bindings(self) -> dict[int, int]:
        """The unicode bindings in place: keysym -> keycode."""
        return dict(self._bindings)

    # -- keyboard --------------------------------------------------------

    def _key(self, keycode: int, pressed: bool) -> None:
        if pressed:
            self._pressed_keys.add(keycode)
        elif keycode in self._pressed_keys:
            self._pressed_keys.discard(keycode)
        self._sink.key(keycode, pressed)

    def _scancode(self, event: KeyboardEvent) -> None:
        if event.extended1:
            keycode = keymap.keycode_for(event.scancode, extended1=True)
            self._pause_pending = keycode is not None
            if keycode is not None:
                self._key(keycode, not event.released)
            return
        if self._pause_pending:
            self._pause_pending = False
            if event.scancode == keymap.SC_NUM_LOCK and not event.extended:
                return
        keycode = keymap.keycode_for(event.scancode, extended=event.extended)
        if keycode is not None:
            self._key(keycode, not event.released)

    def _unicode(self, event: UnicodeKeyboardEvent) -> None:
        code = event.code_point
        # A character beyond the BMP comes as two code units, each pressed and
        # released (high down, high up, low down, low up): the low one types it.
        if 0xD800 <= code <= 0xDBFF:
            self._high_surrogate = code
            return
        if 0xDC00 <= code <= 0xDFFF:
            if self._high_surrogate is None:
                return
            code = keymap.join_surrogates(self._high_surrogate, code)
        else:
            self._high_surrogate = None
        keysym = keymap.keysym_for_code_point(code)
        if keysym is None:
            return
        keycode = self._keycode_for_keysym(keysym, allocate=not event.released)
        if keycode is not None:
            self._key(keycode, not event.released)

    def _keycode_for_keysym(self, keysym: int, *, allocate: bool) -> int | None:
        keycode = self._bindings.get(keysym)
        if keycode is not None:
            self._bindings.move_to_end(keysym)
            return keycode
        if not allocate:
            return None
        if self._spare is None:
            self._spare = self._sink.spare_keycodes()
        used = set(self._bindings.values())
        free = [k for k in self._spare if k not in used]
        if free:
            keycode = free[0]
        elif self._bindings:
            # Reuse the least recently used binding that is not held down.
            victim = next(
                (ks for ks, kc in self._bindings.items() if kc not in self._pressed_keys), None
            )
            if victim is None:
                return None
            keycode = self._bindings.pop(victim)
        else:
            return None
        self._sink.bind(keycode, keysym)
        self._bindings[keysym] = keycode
        return keycode

    def _sync(self, flags: SyncToggleFlags) -> None:
        wanted = (
            bool(flags & SyncToggleFlags.TS_SYNC_CAPS_LOCK),
            bool(flags & SyncToggleFlags.TS_SYNC_NUM_LOCK),
            bool(flags & SyncToggleFlags.TS_SYNC_SCROLL_LOCK),
        )
        current = self._sink.lock_states()
        keys = (keymap.KEYCODE_CAPS_LOCK, keymap.KEYCODE_NUM_LOCK, keymap.KEYCODE_SCROLL_LOCK)
        for want, have, keycode in zip(wanted, current, keys, strict=True):
            if want != have:
                self._sink.key(keycode, True)
                self._sink.key(keycode, False)

    # -- pointer ---------------------------------------------------------

    def _move(self, x: int, y: int) -> None:
        self._sink.motion(min(max(x, 0), self._width - 1), min(max(y, 0), self._height - 1))

    def _button(self, button: int, pressed: bool) -> None:
        if pressed:
            self._pressed_buttons.add(button)
        else:
            self._pressed_buttons.discard(button)
        self._sink.button(button, pressed)

    def _click(self, button: int, times: int) -> None:
        for _ in range(times):
            self._sink.button(button, True)
            self._sink.button(button, False)

    def _mouse(self, event: MouseEvent) -> None:
        flags = event.flags
        if flags & PointerFlags.PTRFLAGS_WHEEL:
            clicks = wheel_clicks(flags)
            self._click(BUTTON_WHEEL_UP if clicks > 0 else BUTTON_WHEEL_DOWN, abs(clicks))
            return
        if flags & PointerFlags.PTRFLAGS_HWHEEL:
            # Positive horizontal rotation is to the right (2.2.8.1.1.3.1.1.3).
            clicks = wheel_clicks(flags)
            self._click(BUTTON_WHEEL_RIGHT if clicks > 0 else BUTTON_WHEEL_LEFT, abs(clicks))
            return
        # A button event carries the position too: move first, then press.
        self._move(event.x, event.y)
        pressed = bool(flags & PointerFlags.PTRFLAGS_DOWN)
        for flag, button in _POINTER_BUTTONS:
            if flags & flag:
                self._button(button, pressed)

    def _mouse_x(self, event: ExtendedMouseEvent) -> None:
        self._move(event.x, event.y)
        pressed = bool(event.flags & ExtendedPointerFlags.PTRXFLAGS_DOWN)
        if event.flags & ExtendedPointerFlags.PTRXFLAGS_BUTTON1:
            self._button(BUTTON_BACK, pressed)
        if event.flags & ExtendedPointerFlags.PTRXFLAGS_BUTTON2:
            self._button(BUTTON_FORWARD, pressed)
