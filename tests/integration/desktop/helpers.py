"""Test-side helpers: a second X client that draws, US typing, running the loop."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from typing import Any

import xcffib
import xcffib.xproto
from xcffib.ffi import ffi as xcb_ffi

from rdscard.pdu.input import KeyboardEvent
from rdscard.screen.keyboard import US_SCANCODES
from tests.integration.desktop.xsession import UserXServer

SC_SHIFT = 0x2A
SC_SPACE = 0x39
SC_RETURN = 0x1C

_CHARS: dict[str, tuple[int, bool]] = {}
for _code, (_plain, _shifted) in US_SCANCODES.items():
    _CHARS.setdefault(_plain, (_code, False))
    _CHARS.setdefault(_shifted, (_code, True))
_CHARS[" "] = (SC_SPACE, False)
_CHARS["\n"] = (SC_RETURN, False)


def us_keys(text: str) -> list[KeyboardEvent]:
    """Scancode events typing ``text`` on a US keyboard (Shift where needed)."""
    events: list[KeyboardEvent] = []
    for ch in text:
        code, shift = _CHARS[ch]
        if shift:
            events.append(KeyboardEvent(SC_SHIFT))
        events += [KeyboardEvent(code), KeyboardEvent(code, released=True)]
        if shift:
            events.append(KeyboardEvent(SC_SHIFT, released=True))
    return events


def drawing_client(server: UserXServer) -> Any:
    """Another X client of ``server`` (with the cookie), to draw known pixels."""
    auth = xcb_ffi.new("xcb_auth_info_t *")
    name = xcb_ffi.new("char[]", b"MIT-MAGIC-COOKIE-1")
    data = xcb_ffi.new("char[]", server.cookie)
    auth.name, auth.namelen, auth.data, auth.datalen = name, 18, data, len(server.cookie)
    screen = xcb_ffi.new("int *")
    conn: Any = xcffib.Connection.__new__(xcffib.Connection)
    conn._conn = xcffib.lib.xcb_connect_to_display_with_auth_info(
        server.display.encode(), auth, screen
    )
    conn.pref_screen = screen[0]
    conn.invalid()
    conn._init_x()
    return conn


def solid_window(conn: Any, x: int, y: int, w: int, h: int, rgb: int) -> int:
    """Map an override-redirect window filled with ``rgb`` (0xRRGGBB); returns its id."""
    root = conn.get_setup().roots[0].root
    wid = conn.generate_id()
    cw = xcffib.xproto.CW
    conn.core.CreateWindow(
        0, wid, root, x, y, w, h, 0, xcffib.xproto.WindowClass.InputOutput, 0,
        cw.BackPixel | cw.OverrideRedirect, [rgb, 1],
    )
    conn.core.MapWindow(wid)
    conn.flush()
    return int(wid)


def run_loop_until(
    loop: asyncio.AbstractEventLoop, predicate: Callable[[], bool], timeout: float, what: str
) -> None:
    """Run ``loop`` in 10 ms steps until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        loop.run_until_complete(asyncio.sleep(0.01))
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_xterm(server: UserXServer, geometry: str = "100x30+0+0") -> None:
    """An xterm running /bin/sh as the account, in UTF-8, mapped before returning."""
    server.run_program(["xterm", "-u8", "-geometry", geometry, "-e", "/bin/sh"])
    subprocess.run(
        ["xdotool", "search", "--sync", "--onlyvisible", "--class", "xterm"],
        env=server.env(), capture_output=True, timeout=20, check=True,
    )
    time.sleep(0.3)  # the shell's prompt
