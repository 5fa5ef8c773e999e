"""Bitmap update encoders on a desktop frame: bytes and server CPU per redraw.

Run: ``python bench/bench_bitmap_codec.py``. Prints, for a full 1920x1080
redraw of a synthetic desktop (wallpaper gradient, taskbar, four
overlapping windows full of anti-aliased text) and for one typed glyph,
the bytes on the wire (complete fast-path PDUs) and the CPU milliseconds
(best of several runs, ``time.process_time``) of: uncompressed 32 bpp
(``encode_bitmap_updates``), planar with the numpy encoder, planar with
FreeRDP's encoder (ctypes), and interleaved RLE at 16 bpp (numpy).
Targets: full frame <= 800 KB, <= 50 ms; <= 300 bytes per typed character.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rdscard.codec import freerdp
from rdscard.pdu.bitmap import Rect, encode_bitmap_updates
from rdscard.pdu.bitmap_codec import encode_compressed_updates


def _font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(name, size)
    except OSError:
        return ImageFont.load_default()


def desktop_image(width: int = 1920, height: int = 1080, windows: int = 4) -> Image.Image:
    """A busy desktop: gradient wallpaper, taskbar, ``windows`` text windows."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(0, height, 4):
        draw.rectangle(
            (0, y, width, y + 3), fill=(40 + y * 40 // height, 90 + y * 30 // height, 150)
        )
    font, mono = _font("DejaVuSans.ttf", 13), _font("DejaVuSansMono.ttf", 13)
    draw.rectangle((0, height - 32, width, height), fill=(30, 30, 30))
    for i in range(8):
        draw.rectangle((8 + i * 150, height - 28, 150 + i * 150, height - 4), fill=(60, 60, 60))
        draw.text((16 + i * 150, height - 24), f"Window {i}", fill=(230, 230, 230), font=font)
    rng = np.random.default_rng(7)
    for w in range(windows):
        x0, y0 = 60 + w * 300, 50 + w * 90
        x1, y1 = x0 + 900, y0 + 600
        draw.rectangle((x0 + 6, y0 + 6, x1 + 6, y1 + 6), fill=(20, 40, 60))
        draw.rectangle((x0, y0, x1, y1), fill=(255, 255, 255), outline=(120, 120, 120))
        draw.rectangle((x0, y0, x1, y0 + 28), fill=(225, 225, 230))
        draw.text((x0 + 10, y0 + 7), f"Terminal {w} - editor.py", fill=(0, 0, 0), font=font)
        for line in range(36):
            words = " ".join(
                "".join(chr(97 + int(c)) for c in rng.integers(0, 26, rng.integers(2, 9)))
                for _ in range(rng.integers(3, 12))
            )
            colour = (20 + 40 * (line % 3), 20, 80 * (line % 2))
            draw.text((x0 + 10, y0 + 36 + line * 15), words, fill=colour, font=mono)
    return image


def bgrx(image: Image.Image) -> np.ndarray:  # type: ignore[type-arg]
    """The image as a C-contiguous (H, W, 4) BGRX frame."""
    return np.frombuffer(image.tobytes("raw", "BGRX"), dtype=np.uint8).reshape(
        image.height, image.width, 4
    )


def measure(run: Callable[[], list[bytes]], repeat: int) -> tuple[int, float]:
    """Total PDU bytes and the best CPU milliseconds of ``repeat`` runs."""
    best = float("inf")
    size = 0
    for _ in range(repeat):
        start = time.process_time()
        pdus = run()
        best = min(best, time.process_time() - start)
        size = sum(map(len, pdus))
    return size, best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--windows", type=int, default=4, help="text windows on the desktop")
    args = parser.parse_args()
    image = desktop_image(windows=args.windows)
    frame = bgrx(image)
    # One typed glyph: the next character of the first window's first line.
    typed = image.copy()
    ImageDraw.Draw(typed).text((470, 86), "x", fill=(0, 0, 0), font=_font("DejaVuSansMono.ttf", 13))
    typed_frame = bgrx(typed)
    changed = np.argwhere((typed_frame != frame).any(axis=2))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0) + 1
    glyph = [Rect(int(left), int(top), int(right), int(bottom))]

    encoders: list[tuple[str, Callable[[np.ndarray, list[Rect] | None], list[bytes]]]] = [  # type: ignore[type-arg]
        (
            "uncompressed 32 bpp",
            lambda f, r: encode_bitmap_updates(typed if f is typed_frame else image, r, 32),
        ),
        ("planar, numpy", lambda f, r: encode_compressed_updates(f, r, 32, encoder="numpy")),
    ]
    if freerdp.load() is not None:
        encoders.append(
            (
                "planar, libfreerdp2",
                lambda f, r: encode_compressed_updates(f, r, 32, encoder="freerdp"),
            )
        )
    encoders.append(
        (
            "interleaved 16 bpp, numpy",
            lambda f, r: encode_compressed_updates(f, r, 16, encoder="numpy"),
        )
    )
    print(
        f"desktop {frame.shape[1]}x{frame.shape[0]}, one glyph {glyph[0].width}x{glyph[0].height}"
    )
    print(
        f"{'encoder':28} {'full bytes':>11} {'ratio':>6} {'full ms':>8} "
        f"{'glyph bytes':>12} {'glyph ms':>9}"
    )
    base = None
    for name, encode in encoders:
        full_bytes, full_ms = measure(lambda e=encode: e(frame, None), args.repeat)
        glyph_bytes, glyph_ms = measure(lambda e=encode: e(typed_frame, glyph), args.repeat * 20)
        base = base or full_bytes
        print(
            f"{name:28} {full_bytes:11,} {base / full_bytes:6.1f} {full_ms:8.1f} "
            f"{glyph_bytes:12,} {glyph_ms:9.3f}"
        )


if __name__ == "__main__":
    main()
