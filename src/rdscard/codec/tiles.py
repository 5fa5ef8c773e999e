"""Cutting screen rectangles into tiles that codecs process in uniform blocks.

A rectangle cut into ``tile`` x ``tile`` pieces has at most four kinds of
tile: whole ones, a narrower right column, a shorter bottom row and the
corner. :func:`tile_blocks` returns each kind as one :class:`TileBlock` so a
numpy codec can reshape the block's pixels into ``(tiles, rows, columns)``
and encode every tile of it with the same array operations.

Compressed bitmaps are sent with widths padded to a multiple of 4 pixels
(TS_CD_HEADER cbScanWidth, MS-RDPBCGR 2.2.9.1.1.3.1.2.3, "MUST be divisible
by 4"; FreeRDP's interleaved encoder refuses any other width); the padding
repeats the tile's last column, which costs the run-length coders nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from rdscard.pdu.bitmap import Rect

#: Largest tile side: MS-RDPBCGR caps an interleaved bitmap at 64 x 64 pixels.
MAX_TILE: Final = 64

U8Array = npt.NDArray[np.uint8]


def padded_width(width: int) -> int:
    """``width`` rounded up to a multiple of 4 pixels."""
    return (width + 3) & ~3


@dataclass(frozen=True)
class TileBlock:
    """``rows`` x ``columns`` tiles of ``tile_height`` x ``tile_width`` pixels from ``origin``."""

    left: int
    top: int
    rows: int
    columns: int
    tile_width: int
    tile_height: int

    @property
    def count(self) -> int:
        """Number of tiles."""
        return self.rows * self.columns

    @property
    def padded_width(self) -> int:
        """Width of each tile as sent (a multiple of 4)."""
        return padded_width(self.tile_width)

    def rects(self) -> Iterator[Rect]:
        """Destination rectangle of every tile, row by row."""
        for row in range(self.rows):
            top = self.top + row * self.tile_height
            for column in range(self.columns):
                left = self.left + column * self.tile_width
                yield Rect(left, top, left + self.tile_width, top + self.tile_height)

    def pixels(self, frame: U8Array) -> U8Array:
        """The block's pixels, shape ``(count, tile_height, padded_width, channels)``.

        A view-based reshape plus one copy; the padding columns repeat each
        tile's last column.
        """
        height = self.rows * self.tile_height
        width = self.columns * self.tile_width
        region = frame[self.top : self.top + height, self.left : self.left + width]
        channels = region.shape[2]
        tiles = region.reshape(self.rows, self.tile_height, self.columns, self.tile_width, channels)
        tiles = tiles.transpose(0, 2, 1, 3, 4).reshape(
            self.count, self.tile_height, self.tile_width, channels
        )
        pad = self.padded_width - self.tile_width
        if pad:
            return np.pad(tiles, ((0, 0), (0, 0), (0, pad), (0, 0)), mode="edge")
        return np.ascontiguousarray(tiles)


def tile_blocks(rect: Rect, tile: int) -> list[TileBlock]:
    """The uniform blocks of ``tile`` x ``tile`` tiles covering ``rect`` (empty when it is)."""
    if not 1 <= tile <= MAX_TILE:
        raise ValueError(f"tile must be 1..{MAX_TILE} pixels")
    width, height = rect.width, rect.height
    if width <= 0 or height <= 0:
        return []
    full_columns, right = divmod(width, tile)
    full_rows, bottom = divmod(height, tile)
    blocks: list[TileBlock] = []
    spans_x = [(rect.left, full_columns, tile)] if full_columns else []
    if right:
        spans_x.append((rect.left + full_columns * tile, 1, right))
    spans_y = [(rect.top, full_rows, tile)] if full_rows else []
    if bottom:
        spans_y.append((rect.top + full_rows * tile, 1, bottom))
    for top, rows, tile_height in spans_y:
        for left, columns, tile_width in spans_x:
            blocks.append(TileBlock(left, top, rows, columns, tile_width, tile_height))
    return blocks
