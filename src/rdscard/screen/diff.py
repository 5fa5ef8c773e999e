"""Which parts of the screen changed between two frames.

:func:`changed_rectangles` compares two images tile by tile in C (Pillow's
``ImageChops.difference`` and ``getbbox``) and returns the changed tiles,
merged into horizontal runs and then into taller blocks where runs line up,
so a server sends only what the client does not have yet.
"""

from __future__ import annotations

from PIL import Image, ImageChops

from rdscard.pdu.bitmap import Rect


def changed_rectangles(old: Image.Image | None, new: Image.Image, tile: int = 64) -> list[Rect]:
    """Tile-aligned rectangles of ``new`` that differ from ``old`` (all of it when None).

    Tiles sit on a grid of ``tile`` pixels from the top-left corner and are
    clipped to the image. Images of different sizes count as entirely changed.
    """
    if tile < 1:
        raise ValueError("tile must be positive")
    width, height = new.size
    if old is None or old.size != new.size:
        return [Rect(0, 0, width, height)]
    if old.mode != new.mode:
        old = old.convert(new.mode)
    difference = ImageChops.difference(old, new)
    bbox = difference.getbbox()
    if bbox is None:
        return []
    left, top, right, bottom = bbox
    first_col, last_col = left // tile, (right - 1) // tile
    first_row, last_row = top // tile, (bottom - 1) // tile

    runs_by_row: list[list[tuple[int, int]]] = []
    for row in range(first_row, last_row + 1):
        y0, y1 = row * tile, min((row + 1) * tile, height)
        runs: list[tuple[int, int]] = []
        for col in range(first_col, last_col + 1):
            x0, x1 = col * tile, min((col + 1) * tile, width)
            if difference.crop((x0, y0, x1, y1)).getbbox() is None:
                continue
            if runs and runs[-1][1] == x0:
                runs[-1] = (runs[-1][0], x1)
            else:
                runs.append((x0, x1))
        runs_by_row.append(runs)

    # Grow a block downwards while the next row has a run with the same span.
    rects: list[Rect] = []
    open_blocks: dict[tuple[int, int], Rect] = {}
    for offset, runs in enumerate(runs_by_row):
        row = first_row + offset
        y0, y1 = row * tile, min((row + 1) * tile, height)
        still_open: dict[tuple[int, int], Rect] = {}
        for span in runs:
            block = open_blocks.pop(span, None)
            still_open[span] = (
                Rect(span[0], block.top, span[1], y1) if block else Rect(span[0], y0, span[1], y1)
            )
        rects.extend(open_blocks.values())
        open_blocks = still_open
    rects.extend(open_blocks.values())
    rects.sort(key=lambda r: (r.top, r.left))
    return rects
