"""The desktop view: damage to captured rectangles, pacing, suspend and refresh.

The X server and the encoder are fakes here (this layer alone); the real
chain is proved against xfreerdp in tests/integration/desktops.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rdscard.desktop.regions import join_touching
from rdscard.pdu.bitmap import BitmapData, BitmapDataFlags, Rect
from rdscard.server.desktop_view import (
    THREAD_ENCODE_PIXELS,
    DesktopView,
    Frame,
)


class FakeScreen:
    def __init__(self, width: int = 64, height: int = 48) -> None:
        self.pixels = np.zeros((height, width, 4), dtype=np.uint8)
        self.captures: list[Rect] = []

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    def capture(self, rect: Rect | None = None, *, copy: bool = True) -> Frame:
        assert rect is not None
        self.captures.append(rect)
        return self.pixels[rect.top:rect.bottom, rect.left:rect.right].copy()


class Recorder:
    def __init__(self) -> None:
        self.encoded: list[list[Rect]] = []
        self.pixels: list[Frame] = []
        self.sent: list[list[bytes]] = []
        self.gate: asyncio.Event | None = None

    def encode(self, pixels: Frame, rect: Rect, bpp: int) -> list[BitmapData]:
        assert pixels.shape == (rect.height, rect.width, 4)
        self.encoded.append([rect])
        self.pixels.append(pixels.copy())
        return [BitmapData(rect.left, rect.top, rect.right - 1, rect.bottom - 1, 4, 1, bpp,
                           BitmapDataFlags.BITMAP_COMPRESSION, b"data")]

    async def send(self, pdus: list[bytes]) -> None:
        self.sent.append(pdus)
        if self.gate is not None:
            await self.gate.wait()


def make_view(screen: FakeScreen, recorder: Recorder, width: int = 64,
              height: int = 48) -> DesktopView:
    return DesktopView(screen, recorder.send, recorder.encode, width=width, height=height,
                       bpp=32, log=logging.getLogger("test"))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_join_touching_joins_overlapping_rectangles_and_keeps_apart_ones() -> None:
    assert join_touching([Rect(0, 0, 10, 10), Rect(5, 5, 20, 20), Rect(40, 40, 50, 50)]) == [
        Rect(0, 0, 20, 20), Rect(40, 40, 50, 50)]
    many = [Rect(i * 3, 0, i * 3 + 1, 1) for i in range(40)]
    assert join_touching(many, limit=32) == [Rect(0, 0, 118, 1)]
    assert join_touching([Rect(3, 3, 3, 9)]) == []


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 40), st.integers(1, 20),
                          st.integers(1, 20)), max_size=12))
def test_merged_rectangles_cover_every_damaged_pixel(
    boxes: list[tuple[int, int, int, int]],
) -> None:
    rects = [Rect(x, y, x + w, y + h) for x, y, w, h in boxes]
    merged = join_touching(rects)
    for rect in rects:
        for x, y in ((rect.left, rect.top), (rect.right - 1, rect.bottom - 1)):
            assert any(m.left <= x < m.right and m.top <= y < m.bottom for m in merged)


def test_damage_sends_the_captured_rectangles() -> None:
    async def scenario() -> None:
        screen, recorder = FakeScreen(), Recorder()
        view = make_view(screen, recorder)
        screen.pixels[10:12, 20:25] = 200
        view.damage([Rect(20, 10, 25, 12), Rect(25, 10, 30, 12), Rect(40, 40, 44, 44)])
        await settle()
        # Touching rectangles go as one: a typed character and the cursor beside it.
        assert recorder.encoded == [[Rect(20, 10, 30, 12)], [Rect(40, 40, 44, 44)]]
        assert (recorder.pixels[0][:, :5] == 200).all() and not recorder.pixels[0][:, 5:].any()
        assert len(recorder.sent) == 1 and view.updates_sent == 1

    asyncio.run(scenario())


def test_a_large_rectangle_is_encoded_in_a_worker_thread_from_its_own_copy() -> None:
    async def scenario() -> None:
        screen, recorder = FakeScreen(400, 300), Recorder()
        assert THREAD_ENCODE_PIXELS < 400 * 300
        view = make_view(screen, recorder, width=400, height=300)
        screen.pixels[:] = 9
        view.refresh()
        async with asyncio.timeout(30):  # worker threads on a loaded machine
            while view.pending:
                await asyncio.sleep(0.01)
        # In bands of 64 rows, each from its own copy.
        assert recorder.encoded == [[Rect(0, top, 400, min(top + 64, 300))]
                                    for top in range(0, 300, 64)]
        assert all((pixels == 9).all() for pixels in recorder.pixels)

    asyncio.run(scenario())


def test_damage_during_a_send_goes_out_once_afterwards() -> None:
    async def scenario() -> None:
        screen, recorder = FakeScreen(), Recorder()
        recorder.gate = asyncio.Event()
        view = make_view(screen, recorder)
        screen.pixels[0:2, 0:2] = 1
        view.damage([Rect(0, 0, 2, 2)])
        await settle()
        assert len(recorder.sent) == 1  # waiting for the client
        for x in range(10, 20):
            view.damage([Rect(x, 5, x + 1, 6)])
        await settle()
        assert len(recorder.sent) == 1
        recorder.gate.set()
        await settle()
        assert len(recorder.sent) == 2
        assert recorder.encoded[1] == [Rect(10, 5, 20, 6)]

    asyncio.run(scenario())


def test_suspended_view_sends_nothing_and_resume_sends_the_whole_picture() -> None:
    async def scenario() -> None:
        screen, recorder = FakeScreen(), Recorder()
        view = make_view(screen, recorder, width=40, height=30)  # the client's is smaller
        view.suspend()
        screen.pixels[:] = 5
        view.damage([Rect(0, 0, 64, 48)])
        await settle()
        assert recorder.sent == [] and not view.pending  # nothing piles up while locked
        view.resume()
        await settle()
        assert recorder.encoded == [[Rect(0, 0, 40, 30)]]
        assert all(r.right <= 40 and r.bottom <= 30 for r in screen.captures)

    asyncio.run(scenario())


def test_a_closed_view_stops_sending() -> None:
    async def scenario() -> None:
        screen, recorder = FakeScreen(), Recorder()
        recorder.gate = asyncio.Event()
        view = make_view(screen, recorder)
        screen.pixels[1, 1] = 3
        view.damage([Rect(0, 0, 4, 4)])
        await settle()
        await view.close()
        screen.pixels[2, 2] = 3
        view.damage([Rect(0, 0, 4, 4)])
        await settle()
        assert len(recorder.sent) == 1 and not view.pending

    asyncio.run(scenario())
