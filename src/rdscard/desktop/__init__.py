"""The server's window onto a session's X server: capture, damage, cursor, input.

:class:`XDisplay` connects to a session's Xvfb as an X client; the pure
tables (:mod:`.keymap`, :mod:`.layouts`) and the input translation
(:mod:`.xinput`) need no X server.
"""

from rdscard.desktop.errors import (
    DesktopError,
    XConnectError,
    XConnectionLostError,
    XExtensionMissingError,
)
from rdscard.desktop.layouts import setxkbmap_args, xkb_layout_for
from rdscard.desktop.xdisplay import CursorImage, XDisplay
from rdscard.desktop.xinput import FakeInput, InputSink

__all__ = [
    "CursorImage",
    "DesktopError",
    "FakeInput",
    "InputSink",
    "XConnectError",
    "XConnectionLostError",
    "XDisplay",
    "XExtensionMissingError",
    "setxkbmap_args",
    "xkb_layout_for",
]
