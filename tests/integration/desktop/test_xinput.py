"""XTEST input into programs running as the session's account: typing, unicode, mouse, locks."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from rdscard.desktop import XDisplay
from rdscard.pdu.input import (
    ExtendedMouseEvent,
    ExtendedPointerFlags,
    InputEvent,
    MouseEvent,
    PointerFlags,
    SyncEvent,
    SyncToggleFlags,
    UnicodeKeyboardEvent,
)
from tests.integration.desktop.helpers import start_xterm, us_keys
from tests.integration.desktop.xsession import UserXServer, wait_until

pytestmark = pytest.mark.integration


def _contents(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _focus_xterm(xdisplay: XDisplay) -> None:
    # No window manager: the focus follows the pointer (PointerRoot).
    xdisplay.apply([MouseEvent(PointerFlags.PTRFLAGS_MOVE, 200, 100)])


def test_typing_a_command_into_xterm(xserver: UserXServer, xdisplay: XDisplay) -> None:
    start_xterm(xserver)
    _focus_xterm(xdisplay)
    xdisplay.apply(us_keys("echo hi > typed.txt\n"))
    out = xserver.user_file("typed.txt")
    wait_until(lambda: _contents(out) == b"hi\n", 10, "typed.txt with 'hi'")
    assert out.stat().st_uid == xserver.account.pw_uid


def test_typing_unicode_characters(xserver: UserXServer, xdisplay: XDisplay) -> None:
    start_xterm(xserver)
    _focus_xterm(xdisplay)
    text = "é€ü"
    events: list[InputEvent] = [*us_keys("echo ")]
    for ch in text:
        events += [UnicodeKeyboardEvent(ord(ch)), UnicodeKeyboardEvent(ord(ch), released=True)]
    events += us_keys(" > uni.txt\n")
    xdisplay.apply(events)
    out = xserver.user_file("uni.txt")
    wait_until(lambda: _contents(out) == (text + "\n").encode(), 10, f"uni.txt with {text!r}")
    # Typing them again reuses the bindings (no new keycodes taken).
    bound = xdisplay.input.bindings
    assert set(bound) == {0xE9, 0x010020AC, 0xFC}
    xdisplay.apply([UnicodeKeyboardEvent(0xE9), UnicodeKeyboardEvent(0xE9, released=True)])
    assert xdisplay.input.bindings == bound
    # close() gives the keycodes back.
    keycodes = set(bound.values())
    xdisplay.close()
    check = XDisplay.connect(xserver.display, xserver.cookie)

    def restored() -> bool:
        first, per, keysyms = check.sink.keyboard_mapping()
        return not any(any(keysyms[(k - first) * per : (k - first + 1) * per]) for k in keycodes)

    try:
        assert restored(), f"keycodes {sorted(keycodes)} still bound"
    finally:
        check.close()


class _Lines:
    """Lines a program prints, gathered by a thread."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._stdout = process.stdout
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self._stdout:
            self.lines.append(raw.decode(errors="replace"))

    def text(self) -> str:
        return "".join(self.lines)


def test_mouse_buttons_and_wheels_reach_a_window(
    xserver: UserXServer, xdisplay: XDisplay
) -> None:
    xev = xserver.run_program(
        ["stdbuf", "-oL", "xev", "-geometry", "300x300+100+100", "-event", "button"],
        stdout=subprocess.PIPE,
    )
    seen = _Lines(xev)
    subprocess.run(
        ["xdotool", "search", "--sync", "--onlyvisible", "--name", "Event Tester"],
        env=xserver.env(), capture_output=True, timeout=20, check=True,
    )
    down = PointerFlags.PTRFLAGS_DOWN
    events: list[InputEvent] = [MouseEvent(PointerFlags.PTRFLAGS_MOVE, 250, 250)]
    for flag in (PointerFlags.PTRFLAGS_BUTTON1, PointerFlags.PTRFLAGS_BUTTON2,
                 PointerFlags.PTRFLAGS_BUTTON3):
        events += [MouseEvent(flag | down, 250, 250), MouseEvent(flag, 250, 250)]
    events += [
        MouseEvent(PointerFlags.PTRFLAGS_WHEEL | 0x0F0, 250, 250),  # up, two clicks
        MouseEvent(PointerFlags.PTRFLAGS_WHEEL | PointerFlags.PTRFLAGS_WHEEL_NEGATIVE | 0x88,
                   250, 250),  # down, one click
        MouseEvent(PointerFlags.PTRFLAGS_HWHEEL | 0x078, 250, 250),  # right
        MouseEvent(PointerFlags.PTRFLAGS_HWHEEL | PointerFlags.PTRFLAGS_WHEEL_NEGATIVE | 0x88,
                   250, 250),  # left
    ]
    for xflag in (ExtendedPointerFlags.PTRXFLAGS_BUTTON1, ExtendedPointerFlags.PTRXFLAGS_BUTTON2):
        events += [ExtendedMouseEvent(xflag | ExtendedPointerFlags.PTRXFLAGS_DOWN, 250, 250),
                   ExtendedMouseEvent(xflag, 250, 250)]
    xdisplay.apply(events)
    wanted = [1, 3, 2, 4, 4, 5, 7, 6, 8, 9]  # RDP button 2 is the right button

    def presses() -> list[int]:
        found: list[int] = []
        lines = seen.text().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("ButtonPress"):
                detail = " ".join(lines[i : i + 4])
                if "button " not in detail:  # the rest of the event is still on its way
                    break
                found.append(int(detail.split("button ")[1].split(",")[0]))
        return found

    wait_until(lambda: presses() == wanted, 10, f"xev to see buttons {wanted}")
    releases = seen.text().count("ButtonRelease")
    assert releases == len(wanted)
    # The pointer is where the client put it.
    assert "root:(250,250)" in seen.text()


def test_sync_sets_the_lock_keys(xdisplay: XDisplay) -> None:
    assert xdisplay.sink.lock_states() == (False, False, False)
    caps_num = SyncToggleFlags.TS_SYNC_CAPS_LOCK | SyncToggleFlags.TS_SYNC_NUM_LOCK
    xdisplay.apply([SyncEvent(caps_num)])
    wait_until(lambda: xdisplay.sink.lock_states() == (True, True, False), 5, "Caps+Num on")
    # Xvfb's default keymap ties no LED to Scroll Lock (xkeyboard-config's
    # ledscroll indicator follows a modifier no key locks), so only Caps and
    # Num Lock can be checked; the Scroll Lock key is still tapped.
    xdisplay.apply([SyncEvent(SyncToggleFlags.TS_SYNC_NUM_LOCK)])
    wait_until(lambda: xdisplay.sink.lock_states()[:2] == (False, True), 5, "Num only")
    xdisplay.apply([SyncEvent(SyncToggleFlags(0))])
    wait_until(lambda: xdisplay.sink.lock_states()[:2] == (False, False), 5, "all off")
