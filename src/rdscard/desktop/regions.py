"""Damaged rectangles and cursor pixels: pure helpers for the X desktop.

DAMAGE at ReportLevel RawRectangles (DAMAGE protocol 1.1, "DamageCreate")
sends one DamageNotify per drawing operation; :func:`coalesce` turns a
batch of them into a short list for the encoder. XFIXES GetCursorImage
(XFIXES protocol 2.0) gives the cursor as premultiplied ARGB; RDP wants
straight alpha (MS-RDPBCGR 2.2.9.1.1.4.5 TS_COLORPOINTERATTRIBUTE /
2.2.9.1.1.4.4 TS_LARGEPOINTERATTRIBUTE carry an XOR mask with an alpha
channel that is not premultiplied), hence :func:`unpremultiply`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np
from numpy.typing import NDArray

from rdscard.pdu.bitmap import Rect

#: More rectangles than this after clean-up are sent as their bounding box.
MAX_RECTS: Final = 48


def bounding_box(rects: Iterable[Rect]) -> Rect | None:
    """The smallest rectangle holding all of ``rects`` (None when there are none)."""
    items = list(rects)
    if not items:
        return None
    return Rect(
        min(r.left for r in items),
        min(r.top for r in items),
        max(r.right for r in items),
        max(r.bottom for r in items),
    )


def _contains(outer: Rect, inner: Rect) -> bool:
    return (
        outer.left <= inner.left
        and outer.top <= inner.top
        and outer.right >= inner.right
        and outer.bottom >= inner.bottom
    )


def coalesce(rects: Iterable[Rect], width: int, height: int, limit: int = MAX_RECTS) -> list[Rect]:
    """Clip to the screen, drop empty, repeated and covered rectangles, cap the count.

    The result covers every input pixel on the screen; when more than
    ``limit`` rectangles remain, it is their bounding box alone.
    """
    clipped = {c for r in rects if (c := r.clip(width, height)) is not None}
    if len(clipped) > 4 * limit:
        box = bounding_box(clipped)
        return [] if box is None else [box]
    ordered = sorted(clipped, key=lambda r: -(r.width * r.height))
    kept: list[Rect] = []
    for rect in ordered:
        if not any(_contains(big, rect) for big in kept):
            kept.append(rect)
    if len(kept) > limit:
        box = bounding_box(kept)
        return [] if box is None else [box]
    kept.sort(key=lambda r: (r.top, r.left))
    return kept


def join_touching(rects: Iterable[Rect], limit: int = MAX_RECTS) -> list[Rect]:
    """Fewer, larger rectangles: overlapping or touching ones joined, more than ``limit``
    as their bounding box (a typed character's cell and the cursor's beside it go as
    one bitmap)."""
    merged: list[Rect] = []
    for rect in sorted({r for r in rects if r.right > r.left and r.bottom > r.top}):
        for index, other in enumerate(merged):
            if (rect.left <= other.right and other.left <= rect.right
                    and rect.top <= other.bottom and other.top <= rect.bottom):
                merged[index] = Rect(min(rect.left, other.left), min(rect.top, other.top),
                                     max(rect.right, other.right),
                                     max(rect.bottom, other.bottom))
                break
        else:
            merged.append(rect)
    if len(merged) > limit:
        box = bounding_box(merged)
        return [] if box is None else [box]
    return merged


def unpremultiply(bgra: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Premultiplied BGRA pixels (h, w, 4) to straight alpha, rounded to nearest."""
    alpha = bgra[..., 3:4].astype(np.uint32)
    colour = bgra[..., :3].astype(np.uint32)
    safe = np.where(alpha == 0, 1, alpha)
    straight = np.minimum((colour * 255 + safe // 2) // safe, 255)
    straight = np.where(alpha == 0, 0, straight)
    out = np.empty_like(bgra)
    out[..., :3] = straight.astype(np.uint8)
    out[..., 3] = bgra[..., 3]
    return out
