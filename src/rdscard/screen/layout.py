"""Colours and geometry of the logon screen that tests may rely on.

The colours tests may rely on are :data:`BACKGROUND`, :data:`PANEL`,
:data:`PIN_BOX_FILL`, :data:`PIN_BOX_DISABLED`, :data:`PIN_BOX_BORDER`,
:data:`BULLET` and :data:`ERROR_FILL`. A client at 24 or 32 bpp shows them
exactly. At 15 or 16 bpp each channel is cut to 5 or 6 bits and clients
expand it back in different ways (shift, bit replication, scaling), so
compare each channel within 8 (:func:`near`); black stays exact.

Geometry, for a desktop of ``width`` x ``height`` pixels (integer
arithmetic; ``cx = width // 2``, ``cy = max(height // 2, PANEL_HALF_HEIGHT)``):

- the background, :data:`BACKGROUND`, fills everything outside the panel;
  the top-left and bottom-right 16 x 16 pixels are always background;
- the panel, :data:`PANEL`, is :func:`panel_box`: ``PANEL_WIDTH`` (or the
  desktop width minus 32, if smaller) wide, centred, from ``cy - 170`` to
  ``cy + 170``;
- the PIN field is :func:`pin_box`: ``(cx - 160, cy, cx + 160, cy + 48)``
  (narrower on desktops below 352 pixels), filled with :data:`PIN_BOX_FILL`
  (or :data:`PIN_BOX_DISABLED` while PIN entry is off) inside a 2-pixel
  :data:`PIN_BOX_BORDER` frame. Nothing but bullets is ever drawn inside it;
- bullet ``i`` (0-based, one per typed character, at most 8) is the solid
  :data:`BULLET` square :func:`bullet_box`: ``BULLET_SIZE`` (14) pixels wide
  and high, its left edge at ``pin_box.left + 16 + i * BULLET_PITCH`` (26),
  its top at ``pin_box.top + 17``. :func:`count_pin_bullets` counts them in
  a screenshot;
- an error status is drawn as white text in a :data:`ERROR_FILL` box
  (:func:`status_box`) above the PIN field.

Boxes are :class:`~rdscard.pdu.bitmap.Rect` values with exclusive right and
bottom edges.
"""

from __future__ import annotations

from typing import Final

from PIL import Image

from rdscard.pdu.bitmap import Rect

RGB = tuple[int, int, int]

BACKGROUND: Final[RGB] = (16, 24, 90)
PANEL: Final[RGB] = (247, 247, 247)
TEXT: Final[RGB] = (16, 16, 16)
MUTED_TEXT: Final[RGB] = (74, 80, 90)
HEADER_TEXT: Final[RGB] = (255, 255, 255)
PIN_BOX_FILL: Final[RGB] = (255, 255, 206)
PIN_BOX_DISABLED: Final[RGB] = (231, 231, 231)
PIN_BOX_BORDER: Final[RGB] = (16, 24, 90)
BULLET: Final[RGB] = (0, 0, 0)
ERROR_FILL: Final[RGB] = (206, 16, 24)
ERROR_TEXT: Final[RGB] = (255, 255, 255)
SUCCESS_TEXT: Final[RGB] = (0, 107, 33)
ACCENT: Final[RGB] = (0, 107, 206)

PANEL_WIDTH: Final = 560
PANEL_HALF_HEIGHT: Final = 170
PIN_BOX_WIDTH: Final = 320
PIN_BOX_HEIGHT: Final = 48
PIN_BOX_BORDER_WIDTH: Final = 2
BULLET_SIZE: Final = 14
BULLET_PITCH: Final = 26
BULLET_LEFT: Final = 16
BULLET_TOP: Final = (PIN_BOX_HEIGHT - BULLET_SIZE) // 2
MAX_BULLETS: Final = 8
CORNER: Final = 16


def centre(width: int, height: int) -> tuple[int, int]:
    """The layout centre ``(cx, cy)``; ``cy`` keeps the panel on screen on short desktops."""
    return width // 2, max(height // 2, PANEL_HALF_HEIGHT)


def panel_box(width: int, height: int) -> Rect:
    """The light panel holding the sign-in content."""
    cx, cy = centre(width, height)
    panel_width = min(PANEL_WIDTH, width - 2 * CORNER)
    left = cx - panel_width // 2
    return Rect(left, cy - PANEL_HALF_HEIGHT, left + panel_width, cy + PANEL_HALF_HEIGHT)


def pin_box(width: int, height: int) -> Rect:
    """The PIN field, border included."""
    cx, cy = centre(width, height)
    box_width = min(PIN_BOX_WIDTH, width - 2 * CORNER)
    left = cx - box_width // 2
    return Rect(left, cy, left + box_width, cy + PIN_BOX_HEIGHT)


def bullet_box(width: int, height: int, index: int) -> Rect:
    """Where bullet ``index`` (0-based) is drawn inside the PIN field."""
    box = pin_box(width, height)
    left = box.left + BULLET_LEFT + index * BULLET_PITCH
    top = box.top + BULLET_TOP
    return Rect(left, top, left + BULLET_SIZE, top + BULLET_SIZE)


def status_box(width: int, height: int) -> Rect:
    """The status line; an error fills it with :data:`ERROR_FILL`."""
    panel = panel_box(width, height)
    _, cy = centre(width, height)
    return Rect(panel.left + 24, cy - 84, panel.right - 24, cy - 40)


def near(pixel: RGB, colour: RGB, tolerance: int = 8) -> bool:
    """Every channel of ``pixel`` is within ``tolerance`` of ``colour``."""
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def count_pin_bullets(
    image: Image.Image,
    width: int | None = None,
    height: int | None = None,
    origin: tuple[int, int] = (0, 0),
    tolerance: int = 24,
) -> int:
    """How many bullets the PIN field of a screenshot shows.

    ``image`` may be a larger screenshot with the desktop's top-left corner
    at ``origin``; ``width`` and ``height`` are the desktop size (default:
    the image size). A slot counts when its centre and its four corners are
    all :data:`BULLET` within ``tolerance``; counting stops at the first
    empty slot.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width = rgb.width if width is None else width
    height = rgb.height if height is None else height
    ox, oy = origin
    count = 0
    for index in range(MAX_BULLETS):
        box = bullet_box(width, height, index)
        points = [
            ((box.left + box.right) // 2, (box.top + box.bottom) // 2),
            (box.left + 1, box.top + 1),
            (box.right - 2, box.top + 1),
            (box.left + 1, box.bottom - 2),
            (box.right - 2, box.bottom - 2),
        ]
        hits = 0
        for x, y in points:
            pixel = rgb.getpixel((ox + x, oy + y))
            assert isinstance(pixel, tuple)
            if near((pixel[0], pixel[1], pixel[2]), BULLET, tolerance):
                hits += 1
        if hits != len(points):
            break
        count += 1
    return count
