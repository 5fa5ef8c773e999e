"""The logon screen: model, renderer, dirty-rectangle diff and PIN entry.

- :class:`LogonScreenController` - one session's screen: feed it input
  events, set its status, and take the fast-path PDUs of what changed.
- :class:`LogonScreen` - the immutable value describing what is shown.
- :func:`render` - draw a :class:`LogonScreen` with Pillow.
- :func:`changed_rectangles` - which tiles differ between two frames.
- :class:`PinEntry` - keyboard events to PIN edits, the PIN in a wiped buffer.
- :mod:`rdscard.screen.layout` - colours and boxes tests may rely on.
"""

from rdscard.pdu.bitmap import Rect
from rdscard.screen.controller import LogonScreenController, ScreenAction
from rdscard.screen.diff import changed_rectangles
from rdscard.screen.keyboard import PinCleared, PinEdited, PinEntry, PinSubmitted
from rdscard.screen.layout import count_pin_bullets, pin_box
from rdscard.screen.model import LogonScreen, SignedInInfo, StatusKind, View
from rdscard.screen.render import render

__all__ = [
    "LogonScreen",
    "LogonScreenController",
    "PinCleared",
    "PinEdited",
    "PinEntry",
    "PinSubmitted",
    "Rect",
    "ScreenAction",
    "SignedInInfo",
    "StatusKind",
    "View",
    "changed_rectangles",
    "count_pin_bullets",
    "pin_box",
    "render",
]
