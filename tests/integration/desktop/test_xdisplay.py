"""XDisplay against a real Xvfb run as a non-root account: connect, capture, damage, cursor."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import numpy as np
import pytest

from rdscard.desktop import XConnectError, XConnectionLostError, XDisplay
from rdscard.pdu.bitmap import Rect
from rdscard.pdu.input import MouseEvent, PointerFlags
from tests.integration.desktop.helpers import (
    drawing_client,
    run_loop_until,
    solid_window,
    start_xterm,
)
from tests.integration.desktop.xsession import UserXServer

pytestmark = pytest.mark.integration


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def test_server_runs_as_the_account(xserver: UserXServer) -> None:
    assert os.stat(f"/proc/{xserver.pid}").st_uid == xserver.account.pw_uid != 0


def test_wrong_cookie_is_refused_naming_the_display(xserver: UserXServer) -> None:
    with pytest.raises(XConnectError, match=f"X display {xserver.display}"):
        XDisplay.connect(xserver.display, bytes(16))


def test_missing_display_is_named() -> None:
    with pytest.raises(XConnectError, match="X display :4711"):
        XDisplay.connect(":4711", bytes(16))


def test_capture_of_drawn_windows(xserver: UserXServer, xdisplay: XDisplay) -> None:
    assert (xdisplay.width, xdisplay.height) == (1280, 800)
    painter = drawing_client(xserver)
    try:
        solid_window(painter, 100, 50, 200, 100, 0x336699)
        solid_window(painter, 400, 300, 64, 32, 0xFF8000)
        painter.core.GetInputFocus().reply()  # the windows are drawn
        frame = xdisplay.capture()
        assert frame.shape == (800, 1280, 4) and frame.dtype == np.uint8
        assert frame[50:150, 100:300, :3].reshape(-1, 3).tolist() == [[0x99, 0x66, 0x33]] * 20000
        assert frame[300:332, 400:464, :3].reshape(-1, 3).tolist() == [[0x00, 0x80, 0xFF]] * 2048
        assert frame[49, 100, :3].tolist() != [0x99, 0x66, 0x33]
        part = xdisplay.capture(Rect(390, 290, 470, 340))
        assert part.shape == (50, 80, 4)
        assert part[10:42, 10:74, :3].reshape(-1, 3).tolist() == [[0x00, 0x80, 0xFF]] * 2048
        view = xdisplay.capture(Rect(1270, 790, 1300, 900), copy=False)
        assert view.shape == (10, 10, 4)
        assert xdisplay.capture(Rect(2000, 0, 2100, 10)).shape == (0, 0, 4)
    finally:
        painter.disconnect()


def test_damage_reaches_the_loop(
    xserver: UserXServer, xdisplay: XDisplay, loop: asyncio.AbstractEventLoop
) -> None:
    damaged: list[Rect] = []
    xdisplay.attach(loop, damaged.extend, lambda: None)
    loop.run_until_complete(asyncio.sleep(0.1))  # the start-up damage
    damaged.clear()
    painter = drawing_client(xserver)
    try:
        solid_window(painter, 600, 200, 120, 80, 0x00FF00)
        want = Rect(600, 200, 720, 280)

        def covered() -> bool:
            return any(
                r.left <= want.left and r.top <= want.top
                and r.right >= want.right and r.bottom >= want.bottom
                for r in damaged
            )

        run_loop_until(loop, covered, 5, f"damage covering {want}")
        pixel = xdisplay.capture(want)[40, 60, :3].tolist()
        assert pixel == [0x00, 0xFF, 0x00]
    finally:
        painter.disconnect()


def test_cursor_image_and_change(
    xserver: UserXServer, xdisplay: XDisplay, loop: asyncio.AbstractEventLoop
) -> None:
    root_cursor = xdisplay.cursor_image()
    assert root_cursor.width > 0 and root_cursor.height > 0
    assert root_cursor.pixels.shape == (root_cursor.height, root_cursor.width, 4)
    assert 0 <= root_cursor.xhot < root_cursor.width
    assert 0 <= root_cursor.yhot < root_cursor.height
    assert root_cursor.pixels[..., 3].max() == 255
    changes: list[int] = []
    xdisplay.attach(loop, lambda rects: None, lambda: changes.append(1))
    start_xterm(xserver, "40x10+0+0")
    xdisplay.apply([MouseEvent(PointerFlags.PTRFLAGS_MOVE, 60, 40)])
    run_loop_until(loop, lambda: bool(changes), 5, "a cursor change notification")
    text_cursor = xdisplay.cursor_image()
    assert (text_cursor.x, text_cursor.y) == (60, 40)
    assert text_cursor.cursor_serial != root_cursor.cursor_serial


def test_lost_server_is_reported_once(
    xserver: UserXServer, xdisplay: XDisplay, loop: asyncio.AbstractEventLoop
) -> None:
    reasons: list[str] = []
    xdisplay.attach(loop, lambda rects: None, lambda: None, reasons.append)
    loop.run_until_complete(asyncio.sleep(0.05))
    xserver.kill_server()
    started = time.monotonic()
    run_loop_until(loop, lambda: bool(reasons), 5, "on_lost")
    assert time.monotonic() - started < 2
    loop.run_until_complete(asyncio.sleep(0.05))
    assert len(reasons) == 1 and xserver.display in reasons[0]
    assert xdisplay.closed
    with pytest.raises(XConnectionLostError):
        xdisplay.capture()
    xdisplay.apply([])  # ignored once closed


def test_capture_after_the_server_died_raises(xserver: UserXServer, xdisplay: XDisplay) -> None:
    xserver.kill_server()
    with pytest.raises(XConnectionLostError, match=xserver.display):
        xdisplay.capture()
