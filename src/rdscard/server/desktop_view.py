"""One connection's view of a desktop session: damage in, bitmap updates out, input in.

The session's X server reports what changed (DAMAGE, raw rectangles: for a
typed character, its cell and the cursor's); the view captures those
rectangles (MIT-SHM) and sends them as compressed bitmap updates (planar
at 32 bpp, interleaved below: MS-RDPEGDI 2.2.2.5.1, MS-RDPBCGR
2.2.9.1.1.3.1.2.4). It keeps no copy of the screen: a mirror to diff
against would cost a whole frame per session (8 MB at 1920x1080) and more
CPU than the bytes it saves; only the last few small rectangles sent are
kept, so that a small update leaves out what the client already shows
(:mod:`rdscard.server.recent_rects`). Sending is paced only by the connection's flow
control: while one batch drains, new damage accumulates and goes out as one
union afterwards; there is no frame timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from rdscard.desktop import CursorImage
from rdscard.desktop.regions import join_touching
from rdscard.pdu.bitmap import BitmapData, Rect, pack_bitmap_updates
from rdscard.pdu.input import FASTPATH_MAX_LENGTH
from rdscard.server.allocator import trim_soon
from rdscard.server.pointer_cache import PointerCache
from rdscard.server.recent_rects import RecentRects

Frame = npt.NDArray[np.uint8]
SendGraphics = Callable[[list[bytes]], Awaitable[None]]
#: Above this many pixels a batch is encoded in a worker thread, so that one
#: session's full redraw never stalls the event loop of every other session.
THREAD_ENCODE_PIXELS = 256 * 256
#: Rows captured and encoded at a time (the encoder's tile height).
BAND_ROWS = 64
#: More separate rectangles than this are sent as their bounding box.
MAX_RECTANGLES = 32


class DesktopSource(Protocol):
    """What a view needs from the session's X server."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    def capture(self, rect: Rect | None = None, *, copy: bool = True) -> Frame:
        """The pixels of ``rect`` as (height, width, 4) BGRX (``copy=False``: a view)."""
        ...


class CursorSource(Protocol):
    """Where the pointer's shape comes from (XFIXES)."""

    def cursor_image(self) -> CursorImage: ...


class UpdateEncoder(Protocol):
    """Turns the captured pixels of one rectangle into bitmap rectangles (TS_BITMAP_DATA)."""

    def __call__(self, pixels: Frame, rect: Rect, bpp: int) -> list[BitmapData]: ...


class DesktopView:
    """Streams one desktop to one connection and feeds its input back."""

    def __init__(
        self,
        source: DesktopSource,
        send: SendGraphics,
        encode: UpdateEncoder,
        *,
        width: int,
        height: int,
        bpp: int,
        log: logging.LoggerAdapter[logging.Logger] | logging.Logger,
        cursor: CursorSource | None = None,
    ) -> None:
        self.source = source
        self.send = send
        self.encode = encode
        # The client's desktop may differ from the X screen (a reconnect from
        # another client): what lies outside both is never sent.
        self.width = min(width, source.width)
        self.height = min(height, source.height)
        self.bpp = bpp
        self.log = log
        self.cursor = cursor
        self._cursor_dirty = cursor is not None
        self.pointers = PointerCache()
        self.recent = RecentRects()
        self._dirty: list[Rect] = []
        self._task: asyncio.Task[None] | None = None
        self.suspended = False
        self.closed = False
        self.updates_sent = 0
        # (monotonic time of the input, set until the next update is written)
        self._input_at: float | None = None
        self.input_latencies: list[float] = []

    # -- what changes ------------------------------------------------------------
    def damage(self, rects: Iterable[Rect]) -> None:
        """The X server drew into ``rects``."""
        if self.closed or self.suspended:
            return  # resume() sends the whole picture
        for rect in rects:
            clipped = rect.clip(self.width, self.height)
            if clipped is not None:
                self._dirty.append(clipped)
        self._kick()

    def refresh(self) -> None:
        """The client needs the whole picture again (activation, Refresh Rect, unlock)."""
        self.recent.clear()
        self.pointers.forget()  # the logon screen may have shown another pointer
        self._cursor_dirty = self.cursor is not None
        self._dirty = [Rect(0, 0, self.width, self.height)]
        self._kick()

    def suspend(self) -> None:
        """Stop sending (the lock screen covers the desktop)."""
        self.suspended = True

    def resume(self) -> None:
        """Send again, starting with the whole picture."""
        self.suspended = False
        self.refresh()

    def cursor_changed(self) -> None:
        """The pointer's shape changed: send the new one with the next batch."""
        self._cursor_dirty = True
        self._kick()

    def input_seen(self) -> None:
        """A key press went to the X server now: time the next update it causes."""
        if self._input_at is None:
            self._input_at = time.perf_counter()

    # -- sending -------------------------------------------------------------------
    def _kick(self) -> None:
        if self.suspended or self.closed or self._task is not None:
            return
        if not self._dirty and not self._cursor_dirty:
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while (self._dirty or self._cursor_dirty) and not self.suspended and not self.closed:
                rects, self._dirty = join_touching(self._dirty, MAX_RECTANGLES), []
                pdus = await self._updates(rects) if rects else []
                if self._cursor_dirty:
                    self._cursor_dirty = False
                    pdus.extend(self._pointer_updates())
                if pdus and not self.closed:
                    await self.send(pdus)
                    size = sum(len(p) for p in pdus)
                    self.updates_sent += 1
                    if self.updates_sent == 1:
                        self.log.info("first desktop picture sent: %d bytes, %d x %d at %d bpp",
                                      size, self.width, self.height, self.bpp)
                    if self._input_at is not None:
                        self.input_latencies.append(time.perf_counter() - self._input_at)
                        del self.input_latencies[:-1000]
                        self._input_at = None
        except (ConnectionError, OSError):
            self.closed = True
        except Exception:
            self.log.exception("the desktop picture could not be sent")
        finally:
            self._task = None
        if self._dirty or self._cursor_dirty:
            self._kick()

    def _pointer_updates(self) -> list[bytes]:
        """The pointer's current shape, from the pointer cache when it was sent before."""
        if self.cursor is None:
            return []
        image = self.cursor.cursor_image()
        return self.pointers.update(image)

    async def _updates(self, rects: list[Rect]) -> list[bytes]:
        """Capture ``rects`` and encode them, a band of rows at a time.

        Bands keep every buffer small (a whole 1920x1080 frame would be 8 MB
        per redraw); large areas are encoded in a worker thread, each band
        from its own copy while the loop goes on.
        """
        bitmaps: list[BitmapData] = []
        if any(rect.width * rect.height > THREAD_ENCODE_PIXELS for rect in rects):
            trim_soon()  # the bands' buffers, freed by then, go back to the system
        for rect in rects:
            threaded = rect.width * rect.height > THREAD_ENCODE_PIXELS
            for top in range(rect.top, rect.bottom, BAND_ROWS):
                band = Rect(rect.left, top, rect.right, min(top + BAND_ROWS, rect.bottom))
                if threaded:
                    self.recent.forget(band)
                    pixels = self.source.capture(band)
                    bitmaps += await asyncio.to_thread(self.encode, pixels, band, self.bpp)
                    continue
                pixels = self.source.capture(band, copy=False)
                part = self.recent.trim(band, pixels)
                if part is not None:
                    rows, cols = (slice(part.top - band.top, part.bottom - band.top),
                                  slice(part.left - band.left, part.right - band.left))
                    bitmaps += self.encode(np.ascontiguousarray(pixels[rows, cols]), part,
                                           self.bpp)
        # One batch shares PDUs: a typed character and the cursor in one update.
        return pack_bitmap_updates(bitmaps, FASTPATH_MAX_LENGTH)

    async def close(self) -> None:
        """Stop for good (the connection ends or leaves the session)."""
        self.closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):  # cancelled, or failed and logged
                await task

    @property
    def pending(self) -> bool:
        """Damage waits to be sent, or a batch is being sent."""
        return bool(self._dirty) or self._task is not None
