"""The client's pointer cache as the server keeps it (MS-RDPBCGR 3.2.5.9.2, pointer updates).

A shape seen before (same XFIXES cursor serial, same pixels) is shown again
with a Cached Pointer Update; a new one takes the least recently used slot
with a New Pointer Update.
"""

from __future__ import annotations

from collections import OrderedDict

from rdscard.desktop import CursorImage
from rdscard.pdu.pointer import encode_pointer_cached, encode_pointer_new

#: Slots the server uses; the Pointer capability set announces at least as many.
POINTER_CACHE_SIZE = 25


class PointerCache:
    """Which shape sits in which of the client's pointer cache slots."""

    def __init__(self, size: int = POINTER_CACHE_SIZE) -> None:
        self.size = size
        self._slots: OrderedDict[tuple[int, bytes], int] = OrderedDict()
        self._shown: tuple[int, bytes] | None = None

    def update(self, image: CursorImage) -> list[bytes]:
        """The fast-path PDU showing ``image``, or nothing when it is already shown."""
        key = (image.cursor_serial, image.pixels.tobytes())
        if key == self._shown:
            return []
        self._shown = key
        index = self._slots.get(key)
        if index is not None:
            self._slots.move_to_end(key)
            return [encode_pointer_cached(index)]
        if len(self._slots) < self.size:
            index = len(self._slots)
        else:
            _old, index = self._slots.popitem(last=False)
        self._slots[key] = index
        return [encode_pointer_new(index, image.xhot, image.yhot, image.pixels)]

    def forget(self) -> None:
        """A new connection has an empty cache."""
        self._slots.clear()
        self._shown = None
