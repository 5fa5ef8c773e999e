"""The X side of :class:`rdscard.desktop.xinput.InputSink`: XTEST and the core keymap.

- XTEST 2.2 ``FakeInput``: KeyPress (2) / KeyRelease (3) with the keycode
  as detail, ButtonPress (4) / ButtonRelease (5) with the button,
  MotionNotify (6) with detail 0 (absolute) and the root window. Time 0
  (CurrentTime) means "now"; device 0 is the core device.
- Unicode bindings: core ``ChangeKeyboardMapping`` (X11 protocol, request
  100) with two keysyms per keycode, both the character, so Shift does not
  change it; XKB servers derive the XKB map from it. Spare keycodes are the
  ones ``GetKeyboardMapping`` lists with no keysym at all; Xvfb 21.1's
  default evdev ``us`` map has 19 of them (8, 93, 97, 103, 120, 132, 149,
  154, 168, 178, 183, 184, 197, 202, 217, 219, 222, 230, 248); the highest
  are used first.
- Lock state: core ``GetKeyboardControl``'s ``led_mask``; with XKB the
  first three LEDs are Caps Lock, Num Lock and Scroll Lock (xkeyboard-config
  ``compat/ledcaps``, ``lednum``, ``ledscroll``: indicators 1-3).
"""

from __future__ import annotations

from typing import Any, Final

import xcffib
import xcffib.xproto
import xcffib.xtest

KEY_PRESS: Final = 2
KEY_RELEASE: Final = 3
BUTTON_PRESS: Final = 4
BUTTON_RELEASE: Final = 5
MOTION_NOTIFY: Final = 6

LED_CAPS_LOCK: Final = 0x1
LED_NUM_LOCK: Final = 0x2
LED_SCROLL_LOCK: Final = 0x4


class XTestSink:
    """Send input to an X server through XTEST (an :class:`InputSink`)."""

    def __init__(self, conn: Any, root: int) -> None:
        self._conn = conn
        self._root = root
        self._xtest = conn(xcffib.xtest.key)
        version = self._xtest.GetVersion(2, 2).reply()
        self.version = (version.major_version, version.minor_version)

    def key(self, keycode: int, pressed: bool) -> None:
        """XTEST FakeInput KeyPress or KeyRelease."""
        kind = KEY_PRESS if pressed else KEY_RELEASE
        self._xtest.FakeInput(kind, keycode, 0, 0, 0, 0, 0)

    def button(self, button: int, pressed: bool) -> None:
        """XTEST FakeInput ButtonPress or ButtonRelease."""
        kind = BUTTON_PRESS if pressed else BUTTON_RELEASE
        self._xtest.FakeInput(kind, button, 0, 0, 0, 0, 0)

    def motion(self, x: int, y: int) -> None:
        """XTEST FakeInput MotionNotify to an absolute root position."""
        self._xtest.FakeInput(MOTION_NOTIFY, 0, 0, self._root, x, y, 0)

    def keyboard_mapping(self) -> tuple[int, int, list[int]]:
        """(first keycode, keysyms per keycode, keysyms) of the whole core map."""
        setup = self._conn.get_setup()
        first, last = setup.min_keycode, setup.max_keycode
        reply = self._conn.core.GetKeyboardMapping(first, last - first + 1).reply()
        return first, reply.keysyms_per_keycode, list(reply.keysyms)

    def spare_keycodes(self) -> list[int]:
        """Keycodes with no keysym, highest first (least likely to be on a real keyboard)."""
        first, per, keysyms = self.keyboard_mapping()
        count = len(keysyms) // per if per else 0
        spare = [
            first + i for i in range(count) if not any(keysyms[i * per : (i + 1) * per])
        ]
        return sorted(spare, reverse=True)

    def bind(self, keycode: int, keysym: int) -> None:
        """ChangeKeyboardMapping of one keycode to ``keysym`` on both levels."""
        self._conn.core.ChangeKeyboardMapping(1, keycode, 2, [keysym, keysym])

    def lock_states(self) -> tuple[bool, bool, bool]:
        """Caps, Num and Scroll Lock from the keyboard LEDs."""
        leds = int(self._conn.core.GetKeyboardControl().reply().led_mask)
        return (
            bool(leds & LED_CAPS_LOCK),
            bool(leds & LED_NUM_LOCK),
            bool(leds & LED_SCROLL_LOCK),
        )

    def flush(self) -> None:
        """Write the queued requests to the X server."""
        self._conn.flush()
