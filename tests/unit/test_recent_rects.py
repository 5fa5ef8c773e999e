"""RecentRects: small updates leave out what the client shows, and the client stays exact."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.pdu.bitmap import Rect
from rdscard.server.recent_rects import RecentRects

WIDTH, HEIGHT = 40, 30


def cell(screen: np.ndarray, rect: Rect) -> np.ndarray:  # type: ignore[type-arg]
    return screen[rect.top:rect.bottom, rect.left:rect.right]


def test_a_typed_character_sends_the_two_cells_that_changed_not_the_third() -> None:
    screen = np.full((HEIGHT, WIDTH, 4), 255, dtype=np.uint8)
    recent = RecentRects()
    # The cursor (a black cell) at column 6, then 'x' typed there: the cursor moves to 12.
    screen[0:13, 6:12] = 0
    assert recent.trim(Rect(0, 0, 18, 13), cell(screen, Rect(0, 0, 18, 13))) == Rect(
        0, 0, 18, 13)  # nothing known yet: all of it
    screen[0:13, 6:12] = 255
    screen[4:9, 7:11] = 0  # the glyph
    screen[0:13, 12:18] = 0  # the cursor
    damaged = Rect(0, 0, 18, 13)  # the terminal redraws the cell before too
    assert recent.trim(damaged, cell(screen, damaged)) == Rect(6, 0, 18, 13)
    assert recent.trim(damaged, cell(screen, damaged)) is None  # drawn again, unchanged


def test_large_rectangles_are_sent_whole_and_forget_what_they_cover() -> None:
    screen = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    recent = RecentRects(max_pixels=100)
    small = Rect(0, 0, 5, 5)
    assert recent.trim(small, cell(screen, small)) == small
    big = Rect(0, 0, 20, 20)
    assert recent.trim(big, cell(screen, big)) == big
    assert recent.trim(small, cell(screen, small)) == small  # forgotten: sent again


def test_what_a_later_rectangle_sent_is_what_older_ones_remember() -> None:
    screen = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    client = screen.copy()
    recent = RecentRects()

    def send(rect: Rect) -> None:
        part = recent.trim(rect, cell(screen, rect).copy())
        if part is not None:
            cell(client, part)[...] = cell(screen, part)

    send(Rect(0, 0, 10, 10))  # A at (0..10)
    screen[2:4, 2:4] = 7
    send(Rect(0, 0, 5, 5))  # B over part of A
    screen[2:4, 2:4] = 0  # back to what A once held
    send(Rect(1, 1, 6, 6))
    assert (client == screen).all()


@settings(max_examples=400)
@given(st.lists(st.tuples(
    st.integers(0, WIDTH - 1), st.integers(0, HEIGHT - 1), st.integers(1, 12),
    st.integers(1, 12), st.sampled_from(["paint", "same", "noise"]), st.integers(0, 3),
    st.integers(0, 255)), max_size=40))
def test_the_client_always_shows_the_screen(
    steps: list[tuple[int, int, int, int, str, int, int]],
) -> None:
    rng = np.random.default_rng(1)
    screen = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    client = screen.copy()
    recent = RecentRects(max_entries=4, max_pixels=64)
    for left, top, width, height, how, grow, colour in steps:
        drawn = Rect(left, top, left + width, top + height).clip(WIDTH, HEIGHT)
        assert drawn is not None
        target = cell(screen, drawn)
        if how == "paint":
            target[...] = colour
        elif how == "noise":
            target[...] = rng.integers(0, 2, target.shape, dtype=np.uint8) * colour
        # DAMAGE covers at least what was drawn.
        damaged = Rect(drawn.left - grow, drawn.top - grow, drawn.right + grow,
                       drawn.bottom + grow).clip(WIDTH, HEIGHT)
        assert damaged is not None
        part = recent.trim(damaged, cell(screen, damaged).copy())
        if part is not None:
            assert damaged.left <= part.left and part.right <= damaged.right
            cell(client, part)[...] = cell(screen, part)
        assert (client == screen).all()
