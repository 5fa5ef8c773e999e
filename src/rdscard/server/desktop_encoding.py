"""How a desktop view turns captured pixels into bitmap update PDUs for one client.

The encoder is chosen per connection from what the client announced: the
colour depth of the session, whether compressed bitmaps may omit their
TS_CD_HEADER (General capability set, NO_BITMAP_COMPRESSION_HDR), and the
largest fast-path update it reassembles (Multifragment Update capability).
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from rdscard.pdu.bitmap import Rect, encode_bitmap_updates
from rdscard.server.desktop_view import Frame, UpdateEncoder


def update_encoder(*, compression_header: bool, max_request_size: int | None) -> UpdateEncoder:
    """The :class:`UpdateEncoder` of one connection."""

    def encode(frame: Frame, rects: Sequence[Rect], bpp: int) -> list[bytes]:
        height, width = frame.shape[:2]
        image = Image.frombuffer("RGB", (width, height), frame, "raw", "BGRX", 0, 1)
        return encode_bitmap_updates(image, list(rects), bpp, max_request_size=max_request_size)

    return encode
