"""Rendered frames and their full-screen encodings, shared between sessions.

Most sessions show the same few screens (the logon screen of a host, with
0-8 PIN bullets), so one server keeps one bounded cache: a frame is drawn
once and encoded once per colour depth, and every session showing it
holds a reference instead of its own copy. This is what keeps an idle
session's memory small and a new connection cheap.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from PIL import Image

from rdscard.pdu.bitmap import encode_bitmap_updates
from rdscard.screen.model import LogonScreen
from rdscard.screen.render import render

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class FrameCache:
    """A bounded LRU of rendered frames and of their whole-screen fast-path PDUs."""

    def __init__(self, frames: int = 64, encodings: int = 16) -> None:
        self._frames: _Lru[LogonScreen, Image.Image] = _Lru(frames)
        self._encodings: _Lru[tuple[LogonScreen, int, int, int | None], list[bytes]] = _Lru(
            encodings
        )
        self.renders = 0

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
