"""What the client shows in the last few small rectangles sent, to send only what changed.

DAMAGE reports where drawing happened, not whether pixels changed: a
terminal redraws the cell its cursor left with the same glyph, so a typed
character damages three cells where two changed. Keeping the pixels of the
last small rectangles sent (a few hundred KiB at most, not a frame) lets
the next small update that overlaps them leave out the part the client
already shows.

The cache stays exact: every rectangle a view sends passes through
:meth:`RecentRects.trim` (small ones) or :meth:`RecentRects.forget`
(large ones), and after a trim the client shows the captured pixels over
the whole rectangle (the part sent is new, the rest was equal), so the
entries overlapping it take those pixels.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from rdscard.pdu.bitmap import Rect

Frame = npt.NDArray[np.uint8]
#: Rectangles larger than this are sent whole and not kept (a 64 x 64 tile).
MAX_PIXELS = 64 * 64
MAX_ENTRIES = 16


def _overlap(a: Rect, b: Rect) -> Rect | None:
    left, top = max(a.left, b.left), max(a.top, b.top)
    right, bottom = min(a.right, b.right), min(a.bottom, b.bottom)
    return Rect(left, top, right, bottom) if left < right and top < bottom else None


def _local(region: Rect, origin: Rect) -> tuple[slice, slice]:
    return (slice(region.top - origin.top, region.bottom - origin.top),
            slice(region.left - origin.left, region.right - origin.left))


class RecentRects:
    """The pixels of the last small rectangles sent to one client."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_pixels: int = MAX_PIXELS) -> None:
        self.max_entries = max_entries
        self.max_pixels = max_pixels
        self._entries: OrderedDict[Rect, Frame] = OrderedDict()

    def trim(self, rect: Rect, pixels: Frame) -> Rect | None:
        """The part of ``rect`` to send (None: the client shows it all already).

        ``pixels`` are the captured (height, width, 4) pixels of ``rect``;
        the caller sends the returned part of them.
        """
        if rect.width * rect.height > self.max_pixels:
            self.forget(rect)
            return rect
        send = np.ones((rect.height, rect.width), dtype=bool)
        overlapping = [(other, region) for other in self._entries
                       if (region := _overlap(rect, other)) is not None]
        for other, region in overlapping:
            mine, theirs = _local(region, rect), _local(region, other)
            same = (pixels[mine] == self._entries[other][theirs]).all(axis=2)
            send[mine] &= ~same
        for other, region in overlapping:
            self._entries[other][_local(region, other)] = pixels[_local(region, rect)]
        self._entries[rect] = pixels.copy()
        self._entries.move_to_end(rect)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        rows = np.flatnonzero(send.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(send.any(axis=0))
        return Rect(rect.left + int(cols[0]), rect.top + int(rows[0]),
                    rect.left + int(cols[-1]) + 1, rect.top + int(rows[-1]) + 1)

    def forget(self, rect: Rect) -> None:
        """``rect`` goes to the client whole: entries overlapping it no longer tell."""
        for other in [o for o in self._entries if _overlap(rect, o) is not None]:
            del self._entries[other]

    def clear(self) -> None:
        """The client's picture is unknown (a refresh)."""
        self._entries.clear()
