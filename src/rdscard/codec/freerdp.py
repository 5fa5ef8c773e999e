"""FreeRDP's bitmap encoders and decoders through a thin ctypes binding.

The route gnome-remote-desktop and Weston take: libfreerdp2 (FreeRDP 2.x)
exports its planar (MS-RDPEGDI 2.2.2.5.1) and interleaved RLE
(MS-RDPBCGR 2.2.9.1.1.3.1.2.4) codecs. The binding reads tiles straight
out of the caller's BGRX frame (pointer plus stride, no copy) and writes
into one reusable buffer per thread, because FreeRDP's contexts are not
thread-safe and ctypes releases the GIL during each call.

:func:`load` returns ``None`` when the library is missing or lacks a
symbol; callers then use the numpy codecs. Loading a shared library is the
only side effect, and it happens once, on first use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Final

import numpy as np

from rdscard.codec.tiles import MAX_TILE, U8Array

#: FREERDP_PIXEL_FORMAT(bpp, type, a, r, g, b) from include/freerdp/codec/color.h.
PIXEL_FORMAT_BGRX32: Final = (32 << 24) | (4 << 16) | (0 << 12) | (8 << 8) | (8 << 4) | 8
PIXEL_FORMAT_BGRA32: Final = (32 << 24) | (4 << 16) | (8 << 12) | (8 << 8) | (8 << 4) | 8
#: planar context flags: the FormatHeader bits the encoder may use.
_PLANAR_FLAGS: Final = 0x10 | 0x20  # RLE | NA
_LIBRARY_NAMES: Final = ("libfreerdp2.so.2", "freerdp2")
_BUFFER_SIZE: Final = 1 + 2 * 4 * MAX_TILE * MAX_TILE + 1024

_u32 = ctypes.c_uint32
_ptr = ctypes.c_void_p


def _bind(lib: ctypes.CDLL) -> None:
    """Declare the prototypes of include/freerdp/codec/planar.h and interleaved.h (2.x)."""
    lib.freerdp_bitmap_planar_context_new.argtypes = [_u32, _u32, _u32]
    lib.freerdp_bitmap_planar_context_new.restype = _ptr
    lib.freerdp_bitmap_planar_context_free.argtypes = [_ptr]
    lib.freerdp_bitmap_planar_context_free.restype = None
    lib.freerdp_bitmap_compress_planar.argtypes = [
        _ptr,
        _ptr,
        _u32,
        _u32,
        _u32,
        _u32,
        _ptr,
        ctypes.POINTER(_u32),
    ]
    lib.freerdp_bitmap_compress_planar.restype = _ptr
    lib.planar_decompress.argtypes = [
        _ptr,
        _ptr,
        _u32,
        _u32,
        _u32,
        _ptr,
        _u32,
        _u32,
        _u32,
        _u32,
        _u32,
        _u32,
        ctypes.c_int,
    ]
    lib.planar_decompress.restype = ctypes.c_int
    lib.bitmap_interleaved_context_new.argtypes = [ctypes.c_int]
    lib.bitmap_interleaved_context_new.restype = _ptr
    lib.bitmap_interleaved_context_free.argtypes = [_ptr]
    lib.bitmap_interleaved_context_free.restype = None
    lib.interleaved_compress.argtypes = [
        _ptr,
        _ptr,
        ctypes.POINTER(_u32),
        _u32,
        _u32,
        _ptr,
        _u32,
        _u32,
        _u32,
        _u32,
        _ptr,
        _u32,
    ]
    lib.interleaved_compress.restype = ctypes.c_int
    lib.interleaved_decompress.argtypes = [
        _ptr,
        _ptr,
        _u32,
        _u32,
        _u32,
        _u32,
        _ptr,
        _u32,
        _u32,
        _u32,
        _u32,
        _u32,
        _u32,
        _ptr,
    ]
    lib.interleaved_decompress.restype = ctypes.c_int


class _Contexts(threading.local):
    """One planar and one interleaved context and an output buffer per thread.

    They live as long as the process (a few hundred kilobytes per encoding
    thread): a finaliser on a thread-local would run in another thread.
    """

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self.planar = lib.freerdp_bitmap_planar_context_new(_PLANAR_FLAGS, MAX_TILE, MAX_TILE)
        self.decoder = lib.freerdp_bitmap_planar_context_new(0, 8192, 8192)
        self.interleaved = lib.bitmap_interleaved_context_new(1)
        self.buffer = ctypes.create_string_buffer(_BUFFER_SIZE)
        if not (self.planar and self.decoder and self.interleaved):
            raise MemoryError("FreeRDP could not create its codec contexts")


class FreeRdpCodecs:
    """The planar and interleaved codecs of one loaded libfreerdp2."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        _bind(lib)
        self._lib = lib
        self._local = _Contexts(lib)

    def _source(self, frame: U8Array, left: int, top: int) -> tuple[U8Array, int]:
        """``frame``, checked, and the byte offset of its pixel (left, top)."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 4:
            raise ValueError("frame must be a (height, width, 4) uint8 BGRX array")
        if not frame.flags.c_contiguous:
            raise ValueError("frame must be C-contiguous")
        return frame, top * frame.strides[0] + left * 4

    def planar_compress(
        self, frame: U8Array, left: int, top: int, width: int, height: int
    ) -> bytes | None:
        """RLE planar bitmap of a ``width`` x ``height`` tile at (left, top), or None.

        None when FreeRDP declines (it does for tiles RLE would not shrink).
        """
        if not (0 < width <= MAX_TILE and 0 < height <= MAX_TILE):
            raise ValueError(f"planar tiles are at most {MAX_TILE}x{MAX_TILE}")
        source, offset = self._source(frame, left, top)
        size = _u32(_BUFFER_SIZE)
        local = self._local
        result = self._lib.freerdp_bitmap_compress_planar(
            local.planar,
            source.ctypes.data + offset,
            PIXEL_FORMAT_BGRX32,
            width,
            height,
            source.strides[0],
            ctypes.addressof(local.buffer),
            ctypes.byref(size),
        )
        if not result:
            return None
        return local.buffer.raw[: size.value]

    def interleaved_compress(
        self, frame: U8Array, left: int, top: int, width: int, height: int, bpp: int
    ) -> bytes | None:
        """Interleaved RLE bitmap (15, 16 or 24 bpp) of a tile; width a multiple of 4.

        For measurements only: FreeRDP 2.11's own decoder restores some of
        these streams wrongly (a shifted scanline at 15/16 bpp, wrong
        colours at 24 bpp), so the server encodes interleaved with numpy.
        """
        if not (0 < width <= MAX_TILE and 0 < height <= MAX_TILE) or width % 4:
            raise ValueError(f"interleaved tiles are at most {MAX_TILE}x{MAX_TILE}, width % 4 == 0")
        if bpp not in (15, 16, 24):
            raise ValueError("interleaved RLE is for 15, 16 and 24 bpp")
        source, offset = self._source(frame, left, top)
        size = _u32(_BUFFER_SIZE)
        local = self._local
        ok = self._lib.interleaved_compress(
            local.interleaved,
            ctypes.addressof(local.buffer),
            ctypes.byref(size),
            width,
            height,
            source.ctypes.data + offset,
            PIXEL_FORMAT_BGRX32,
            source.strides[0],
            0,
            0,
            None,
            bpp,
        )
        if not ok:
            return None
        return local.buffer.raw[: size.value]

    def planar_decompress(self, data: bytes, width: int, height: int) -> U8Array | None:
        """FreeRDP's decoding of a planar bitmap as ``(height, width, 4)`` BGRA, or None."""
        out = np.zeros((height, width, 4), dtype=np.uint8)
        ok = self._lib.planar_decompress(
            self._local.decoder,
            data,
            len(data),
            width,
            height,
            out.ctypes.data,
            PIXEL_FORMAT_BGRA32,
            width * 4,
            0,
            0,
            width,
            height,
            1,
        )
        return out if ok else None

    def interleaved_decompress(
        self, data: bytes, width: int, height: int, bpp: int
    ) -> U8Array | None:
        """FreeRDP's decoding of an interleaved RLE bitmap as ``(height, width, 4)`` BGRX."""
        out = np.zeros((height, width, 4), dtype=np.uint8)
        ok = self._lib.interleaved_decompress(
            self._local.interleaved,
            data,
            len(data),
            width,
            height,
            bpp,
            out.ctypes.data,
            PIXEL_FORMAT_BGRX32,
            width * 4,
            0,
            0,
            width,
            height,
            None,
        )
        return out if ok else None


_loaded: list[FreeRdpCodecs | None] = []
_load_lock = threading.Lock()


def load() -> FreeRdpCodecs | None:
    """The process's binding to libfreerdp2, or None when it cannot be loaded."""
    with _load_lock:
        if not _loaded:
            _loaded.append(_try_load())
        return _loaded[0]


def _try_load() -> FreeRdpCodecs | None:
    for name in _LIBRARY_NAMES:
        path = name if name.endswith(".2") else ctypes.util.find_library(name)
        if not path:
            continue
        try:
            return FreeRdpCodecs(ctypes.CDLL(path))
        except (OSError, AttributeError, MemoryError):
            continue
    return None
