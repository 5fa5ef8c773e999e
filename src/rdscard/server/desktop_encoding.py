"""How a desktop view turns captured pixels into bitmap update PDUs for one client.

The encoder is chosen per connection from what the client announced: the
colour depth of the session (planar at 32 bpp, interleaved RLE below),
whether compressed bitmaps may omit their TS_CD_HEADER (General capability
set, NO_BITMAP_COMPRESSION_HDR) and the largest fast-path update it
reassembles (Multifragment Update capability).
"""

from __future__ import annotations

from rdscard.pdu.bitmap import BitmapData, Rect
from rdscard.pdu.bitmap_codec import compressed_bitmaps
from rdscard.server.desktop_view import Frame, UpdateEncoder


def update_encoder(*, compression_header: bool, max_request_size: int | None) -> UpdateEncoder:
    """The :class:`UpdateEncoder` of one connection."""

    def encode(pixels: Frame, rect: Rect, bpp: int) -> list[BitmapData]:
        return compressed_bitmaps(pixels, None, bpp, origin=(rect.left, rect.top),
                                  compression_header=compression_header,
                                  max_request_size=max_request_size)

    return encode
