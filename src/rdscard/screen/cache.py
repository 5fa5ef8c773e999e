"""Rendered frames and their full-screen encodings, shared between sessions.

Most sessions show the same few screens (the logon screen of a host, with
0-8 PIN bullets), so one server keeps one bounded cache: a frame is drawn
once and encoded once per colour depth, and every session showing it
holds a reference instead of its own copy. This is what keeps an idle
session's memory small and a new connection cheap.

Sessions also go through the same changes (a status line, a bullet more),
so the updates from one screen to the next are kept too: comparing two
frames pixel by pixel costs about 2 ms, more than the rest of a sign-in's
screen work.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from PIL import Image

from rdscard.pdu.bitmap import encode_bitmap_updates
from rdscard.screen.diff import changed_rectangles
from rdscard.screen.model import LogonScreen
from rdscard.screen.render import render

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _one(_: object) -> int:
    return 1


def _pdu_bytes(pdus: list[bytes]) -> int:
    return sum(map(len, pdus))


class _Lru(Generic[K, V]):
    """Least recently used entries kept within ``capacity``, counted by ``weight`` (by
    default one per entry); an entry heavier than the whole capacity is not kept."""

    def __init__(self, capacity: int, weight: Callable[[V], int] = _one) -> None:
        self.capacity = capacity
        self.size = 0
        self._weight = weight
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        weight = self._weight(value)
        if weight > self.capacity:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= self._weight(old)
        self._items[key] = value
        self.size += weight
        while self.size > self.capacity:
            _, dropped = self._items.popitem(last=False)
            self.size -= self._weight(dropped)

    def __len__(self) -> int:
        return len(self._items)


#: What the kept changes may hold in all: a status line is about 64 KiB of updates at
#: 32 bpp, a signed-in page about 420 KiB.
DELTA_BUDGET = 4 * 1024 * 1024


class FrameCache:
    """Bounded LRUs of rendered frames, their whole-screen fast-path PDUs and the
    PDUs that turn one frame into another."""

    def __init__(
        self, frames: int = 64, encodings: int = 16, delta_budget: int = DELTA_BUDGET
    ) -> None:
        self._frames: _Lru[LogonScreen, Image.Image] = _Lru(frames)
        self._encodings: _Lru[tuple[LogonScreen, int, int, int | None], list[bytes]] = _Lru(
            encodings
        )
        self._deltas: _Lru[tuple[LogonScreen, LogonScreen, int, int, int | None],
                           list[bytes]] = _Lru(delta_budget, _pdu_bytes)
        self.renders = 0
        self.comparisons = 0

    def frame(self, screen: LogonScreen) -> Image.Image:
        """The rendered frame of ``screen`` (drawn on first use)."""
        image = self._frames.get(screen)
        if image is None:
            image = render(screen)
            self.renders += 1
            self._frames.put(screen, image)
        return image

    def full_updates(
        self, screen: LogonScreen, bpp: int, max_pdu_size: int, max_request_size: int | None
    ) -> list[bytes]:
        """Fast-path PDUs carrying the whole frame of ``screen`` (encoded on first use)."""
        key = (screen, bpp, max_pdu_size, max_request_size)
        pdus = self._encodings.get(key)
        if pdus is None:
            pdus = encode_bitmap_updates(
                self.frame(screen), None, bpp, max_pdu_size, max_request_size
            )
            self._encodings.put(key, pdus)
        return pdus

    @property
    def delta_bytes(self) -> int:
        """The size of the kept changes' PDUs."""
        return self._deltas.size

    def delta_updates(
        self,
        old: tuple[LogonScreen, Image.Image],
        new: tuple[LogonScreen, Image.Image],
        bpp: int,
        max_pdu_size: int,
        max_request_size: int | None,
    ) -> list[bytes]:
        """Fast-path PDUs turning the frame of ``old`` into that of ``new`` (each a screen
        and its frame); empty when the two frames are the same."""
        key = (old[0], new[0], bpp, max_pdu_size, max_request_size)
        pdus = self._deltas.get(key)
        if pdus is None:
            self.comparisons += 1
            rects = changed_rectangles(old[1], new[1])
            pdus = (encode_bitmap_updates(new[1], rects, bpp, max_pdu_size, max_request_size)
                    if rects else [])
            self._deltas.put(key, pdus)
        return pdus
