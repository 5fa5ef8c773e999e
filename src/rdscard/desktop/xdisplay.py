"""The server's X client connection to one session's X server.

One :class:`XDisplay` per signed-in session: it connects with the
session's MIT-MAGIC-COOKIE-1 (X Window System Protocol, "Connection
Setup"; the cookie is handed to libxcb directly, no Xauthority file or
environment), then

- captures the screen with MIT-SHM ``ShmGetImage`` (MIT-SHM 1.2) into a
  segment the X server creates and passes to us (:mod:`.shm`); core
  ``GetImage`` is about a hundred times slower, so MIT-SHM is required;
- watches the root window with DAMAGE (1.1, ReportLevel RawRectangles)
  and XFIXES cursor notifications (``SelectCursorInput``, DisplayCursor),
  and reads the cursor with ``GetCursorImage``;
- injects input through XTEST (:mod:`.xtest`, :mod:`.xinput`).

With :meth:`XDisplay.attach` the connection's socket is watched by the
asyncio loop; events are read without blocking (``xcb_poll_for_event``),
damage is coalesced per read, and a dead X server is reported once through
``on_lost`` - never a hang, never an exception in the loop.

Pixels are 32 bits per pixel, byte order B, G, R, X (ZPixmap of a depth 24
TrueColor root on an LSBFirst server, the only format Xvfb offers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple

import numpy as np
import xcffib
import xcffib.damage
import xcffib.shm
import xcffib.xfixes
import xcffib.xproto
from numpy.typing import NDArray
from xcffib.ffi import ffi as xcb_ffi

from rdscard.desktop import shm
from rdscard.desktop.errors import (
    DesktopError,
    XConnectError,
    XConnectionLostError,
    XExtensionMissingError,
)
from rdscard.desktop.regions import coalesce, unpremultiply
from rdscard.desktop.xinput import FakeInput
from rdscard.desktop.xtest import XTestSink
from rdscard.pdu.bitmap import Rect
from rdscard.pdu.input import InputEvent

log = logging.getLogger(__name__)

AUTH_NAME: Final = b"MIT-MAGIC-COOKIE-1"
ALL_PLANES: Final = 0xFFFFFFFF
Z_PIXMAP: Final = 2
DAMAGE_RAW_RECTANGLES: Final = 0
XFIXES_DISPLAY_CURSOR: Final = 1
#: How long close() waits for the X server to take its last requests.
CLOSE_SYNC_TIMEOUT: Final = 0.5


class CursorImage(NamedTuple):
    """XFIXES GetCursorImage: position, hotspot, size, serial, straight-alpha BGRA pixels."""

    x: int
    y: int
    xhot: int
    yhot: int
    width: int
    height: int
    cursor_serial: int
    pixels: NDArray[np.uint8]


def _connect_with_cookie(display: str, cookie: bytes) -> Any:
    """An xcffib connection made with the cookie bytes given directly.

    ``xcffib.Connection(auth=b"NAME:DATA")`` splits on ``:``, which breaks
    for the one cookie in sixteen that contains the byte 0x3A; this builds
    the ``xcb_auth_info_t`` itself and lets xcffib set up the rest.
    """
    name = xcb_ffi.new("char[]", AUTH_NAME)
    data = xcb_ffi.new("char[]", cookie)
    auth = xcb_ffi.new("xcb_auth_info_t *")
    auth.name, auth.namelen = name, len(AUTH_NAME)
    auth.data, auth.datalen = data, len(cookie)
    screen = xcb_ffi.new("int *")
    conn: Any = xcffib.Connection.__new__(xcffib.Connection)
    conn._conn = xcffib.lib.xcb_connect_to_display_with_auth_info(
        display.encode("latin-1"), auth, screen
    )
    conn.pref_screen = screen[0]
    try:
        conn.invalid()
        conn._init_x()
    except BaseException:
        conn.disconnect()
        raise
    return conn


def _bounded_round_trip(conn: Any, timeout: float) -> bool:
    """GetInputFocus and wait at most ``timeout`` seconds for its reply (True if it came).

    Unlike ``cookie.reply()`` this never blocks on a hung X server.
    """
    cookie = conn.core.GetInputFocus()
    conn.flush()
    reply = xcb_ffi.new("void **")
    error = xcb_ffi.new("xcb_generic_error_t **")
    fd = conn.get_file_descriptor()
    deadline = time.monotonic() + timeout
    while True:
        if xcffib.lib.xcb_poll_for_reply(conn._conn, cookie.sequence, reply, error):
            for pointer in (reply[0], error[0]):
                if pointer != xcb_ffi.NULL:
                    xcffib.c_free(pointer)
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0 or conn.has_error():
            return False
        select.select([fd], [], [], remaining)


def _check_pixel_format(conn: Any, screen: Any) -> None:
    setup = conn.get_setup()
    depth = screen.root_depth
    bpp = next((f.bits_per_pixel for f in setup.pixmap_formats if f.depth == depth), None)
    if depth != 24 or bpp != 32 or setup.image_byte_order != 0:
        raise DesktopError(
            f"unsupported screen format: depth {depth}, {bpp} bits per pixel, "
            f"byte order {setup.image_byte_order} (need depth 24, 32 bpp, LSBFirst)"
        )


#: Size of the shared-memory segment captures go through (1920 x 128 pixels).
SEGMENT_BYTES: Final = 1920 * 128 * 4


class XDisplay:
    """A connection to one session's X server: capture, damage, cursor and input."""

    def __init__(self, conn: Any, display: str) -> None:
        self._conn = conn
        self.display = display
        screen = conn.get_setup().roots[conn.pref_screen]
        self.root: int = screen.root
        self._width: int = screen.width_in_pixels
        self._height: int = screen.height_in_pixels
        _check_pixel_format(conn, screen)
        self._require_extensions()
        # A bounded segment: larger rectangles are captured in bands. A whole
        # screen's worth per session would be most of the server's memory.
        size = min(self._width * self._height * 4, max(SEGMENT_BYTES, self._width * 4))
        self._segment_rows = size // (self._width * 4)
        self._shm = conn(xcffib.shm.key)
        self._shmseg, self._mapping = shm.create_segment(conn, size)
        self._pixels: NDArray[np.uint8] = np.frombuffer(self._mapping, dtype=np.uint8)
        self._xfixes = conn(xcffib.xfixes.key)
        self._damage_ext = conn(xcffib.damage.key)
        self._damage = conn.generate_id()
        self._damage_ext.Create(self._damage, self.root, DAMAGE_RAW_RECTANGLES)
        self._xfixes.SelectCursorInput(self.root, XFIXES_DISPLAY_CURSOR)
        self.sink = XTestSink(conn, self.root)
        self.input = FakeInput(self.sink, self._width, self._height)
        conn.flush()
        self._pending: list[Rect] = []
        self._cursor_changed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._on_damage: Callable[[list[Rect]], None] | None = None
        self._on_cursor: Callable[[], None] | None = None
        self._on_lost: Callable[[str], None] | None = None
        self._drain_scheduled = False
        self._closed = False

    @classmethod
    def connect(cls, display: str, cookie: bytes) -> XDisplay:
        """Connect to ``display`` (":N") with an MIT-MAGIC-COOKIE-1 cookie.

        Raises :class:`XConnectError` naming the display when the server is
        not there or refuses the cookie, :class:`XExtensionMissingError`
        when MIT-SHM 1.2, DAMAGE, XFIXES or XTEST is missing.
        """
        try:
            conn = _connect_with_cookie(display, cookie)
        except xcffib.XcffibException as exc:
            raise XConnectError(
                display, f"cannot connect ({exc}); is the X server running, is the cookie right?"
            ) from exc
        try:
            return cls(conn, display)
        except BaseException:
            conn.disconnect()
            raise

    def _require_extensions(self) -> None:
        names = {
            xcffib.shm.key.name,
            xcffib.damage.key.name,
            xcffib.xfixes.key.name,
            "XTEST",
        }
        cookies = {n: self._conn.core.QueryExtension(len(n), n) for n in sorted(names)}
        missing = [n for n, c in cookies.items() if not c.reply().present]
        if missing:
            raise XExtensionMissingError(
                f"X display {self.display} lacks {', '.join(missing)} (needed for the desktop)"
            )
        self._conn(xcffib.xfixes.key).QueryVersion(5, 0).reply()
        self._conn(xcffib.damage.key).QueryVersion(1, 1).reply()

    # -- properties ------------------------------------------------------

    @property
    def width(self) -> int:
        """Screen width in pixels."""
        return self._width

    @property
    def height(self) -> int:
        """Screen height in pixels."""
        return self._height

    @property
    def closed(self) -> bool:
        """close() was called or the X server was lost."""
        return self._closed

    # -- capture ---------------------------------------------------------

    def capture(self, rect: Rect | None = None, *, copy: bool = True) -> NDArray[np.uint8]:
        """The pixels of ``rect`` (default the whole screen) as (h, w, 4) BGRX.

        With ``copy=False`` the array may be a view of the shared segment,
        valid until the next capture (a rectangle larger than the segment is
        captured in bands into a new array). The rectangle is clipped to the
        screen; an empty one gives a (0, 0, 4) array.
        """
        self._check_open()
        box = Rect(0, 0, self._width, self._height) if rect is None else rect
        clipped = box.clip(self._width, self._height)
        if clipped is None:
            return np.zeros((0, 0, 4), dtype=np.uint8)
        w, h = clipped.width, clipped.height
        band = max(1, self._segment_rows * self._width // w)
        if h <= band:
            view = self._get_image(clipped.left, clipped.top, w, h)
            return view.copy() if copy else view
        out = np.empty((h, w, 4), dtype=np.uint8)
        for top in range(0, h, band):
            rows = min(band, h - top)
            out[top:top + rows] = self._get_image(clipped.left, clipped.top + top, w, rows)
        return out

    def _get_image(self, left: int, top: int, w: int, h: int) -> NDArray[np.uint8]:
        """ShmGetImage of one band into the segment: a view of it."""
        try:
            self._shm.GetImage(
                self.root, left, top, w, h, ALL_PLANES, Z_PIXMAP, self._shmseg, 0
            ).reply()
        except xcffib.ConnectionException as exc:
            raise self._lost_error(exc) from exc
        self._schedule_drain()
        return self._pixels[: w * h * 4].reshape(h, w, 4)

    def cursor_image(self) -> CursorImage:
        """XFIXES GetCursorImage with straight (not premultiplied) alpha."""
        self._check_open()
        try:
            reply = self._xfixes.GetCursorImage().reply()
        except xcffib.ConnectionException as exc:
            raise self._lost_error(exc) from exc
        self._schedule_drain()
        w, h = reply.width, reply.height
        raw = np.frombuffer(reply.cursor_image.raw, dtype="<u4", count=w * h)
        bgra = raw.view(np.uint8).reshape(h, w, 4)
        return CursorImage(
            reply.x, reply.y, reply.xhot, reply.yhot, w, h, reply.cursor_serial,
            unpremultiply(bgra),
        )

    # -- input -----------------------------------------------------------

    def apply(self, events: Iterable[InputEvent]) -> None:
        """Inject decoded RDP input events through XTEST, flushed once."""
        if self._closed:
            return
        try:
            self.input.apply(events)
        except xcffib.ConnectionException as exc:
            raise self._lost_error(exc) from exc

    # -- events ----------------------------------------------------------

    def poll(self) -> tuple[list[Rect], bool]:
        """Read every queued event without blocking: (coalesced damage, cursor changed).

        Raises :class:`XConnectionLostError` when the X server is gone.
        """
        self._check_open()
        conn = self._conn
        rects = self._pending
        self._pending = []
        cursor = self._cursor_changed
        self._cursor_changed = False
        while True:
            try:
                event = conn.poll_for_event()
            except xcffib.ConnectionException as exc:
                raise self._lost_error(exc) from exc
            except xcffib.XcffibException as exc:  # an X error for an unchecked request
                log.warning("X display %s: %r", self.display, exc)
                continue
            if event is None:
                break
            if isinstance(event, xcffib.damage.NotifyEvent):
                a = event.area
                rects.append(Rect(a.x, a.y, a.x + a.width, a.y + a.height))
            elif isinstance(event, xcffib.xfixes.CursorNotifyEvent):
                cursor = True
        return coalesce(rects, self._width, self._height), cursor

    def attach(
        self,
        loop: asyncio.AbstractEventLoop,
        on_damage: Callable[[list[Rect]], None],
        on_cursor: Callable[[], None],
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        """Watch the connection from ``loop``: damage and cursor changes as callbacks.

        ``on_lost(reason)`` is called once if the X server goes away; after
        it the display is closed.
        """
        if self._loop is not None:
            raise DesktopError(f"X display {self.display} is already attached")
        self._loop = loop
        self._on_damage, self._on_cursor, self._on_lost = on_damage, on_cursor, on_lost
        self._fd = self._conn.get_file_descriptor()
        loop.add_reader(self._fd, self._drain)
        self._schedule_drain()  # events read while connecting

    def _schedule_drain(self) -> None:
        if self._loop is not None and not self._drain_scheduled and not self._closed:
            self._drain_scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        if self._closed:
            return
        try:
            rects, cursor = self.poll()
        except Exception as exc:
            self._report_lost(str(exc))
            return
        try:
            if rects and self._on_damage is not None:
                self._on_damage(rects)
            if cursor and self._on_cursor is not None:
                self._on_cursor()
        except Exception:
            log.exception("X display %s: damage or cursor callback failed", self.display)

    def _check_open(self) -> None:
        if self._closed:
            raise XConnectionLostError(f"X display {self.display} is closed")

    def _lost_error(self, exc: BaseException) -> XConnectionLostError:
        reason = f"X display {self.display} lost: {exc}"
        if self._loop is not None:
            self._loop.call_soon(self._report_lost, reason)
        return XConnectionLostError(reason)

    def _report_lost(self, reason: str) -> None:
        if self._closed:
            return
        callback = self._on_lost
        self.close()
        if callback is not None:
            try:
                callback(reason)
            except Exception:
                log.exception("X display %s: on_lost callback failed", self.display)
        else:
            log.warning("%s", reason)

    # -- teardown --------------------------------------------------------

    def close(self) -> None:
        """Stop watching, restore borrowed keycodes, release held input, disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
        if not self._conn.has_error():
            try:
                self.input.close()
                self._damage_ext.Destroy(self._damage)
                self._shm.Detach(self._shmseg)
                # Xorg drops a closed client's unread requests: wait (briefly)
                # until these are through, or the keycodes stay bound.
                _bounded_round_trip(self._conn, CLOSE_SYNC_TIMEOUT)
            except xcffib.XcffibException:
                pass
        self._conn.disconnect()
        self._pixels = np.zeros(0, dtype=np.uint8)
        # A caller still holding a view keeps the mapping alive; it goes with the view.
        with contextlib.suppress(BufferError):
            self._mapping.close()

    def __enter__(self) -> XDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["CursorImage", "XDisplay"]
