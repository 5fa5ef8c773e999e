"""Draw a :class:`~rdscard.screen.model.LogonScreen` with Pillow.

Fonts come from Pillow itself (``ImageFont.load_default(size=...)``, a
scalable TrueType font bundled with Pillow >= 10.1 when FreeType is
available), so nothing depends on the fonts installed on the host. The
colours and boxes tests rely on are in :mod:`rdscard.screen.layout`.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from rdscard.screen import layout
from rdscard.screen.layout import RGB
from rdscard.screen.model import LogonScreen, SignedInInfo, StatusKind, View

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont

SMALL = 15
BODY = 18
TITLE = 26

_STATUS_COLOURS: dict[StatusKind, RGB] = {
    StatusKind.INFO: layout.TEXT,
    StatusKind.WAITING: layout.ACCENT,
    StatusKind.SUCCESS: layout.SUCCESS_TEXT,
    StatusKind.ERROR: layout.ERROR_TEXT,
}


@lru_cache(maxsize=8)
def font(size: int) -> Font:
    """Pillow's bundled font at ``size`` pixels (the fixed bitmap font without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except ImportError:  # Pillow built without FreeType
        return ImageFont.load_default()


@lru_cache(maxsize=256)
def fit(text: str, face: Font, max_width: int) -> str:
    """``text``, cut with an ellipsis so that it is at most ``max_width`` pixels wide."""
    if face.getlength(text) <= max_width:
        return text
    while text and face.getlength(text + "…") > max_width:
        text = text[:-1]
    return text + "…" if text else ""


@lru_cache(maxsize=256)
def _bbox(text: str, face: Font) -> tuple[float, float, float, float]:
    left, top, right, bottom = _MEASURE.textbbox((0, 0), text, font=face)
    return left, top, right, bottom


_MEASURE = ImageDraw.Draw(Image.new("L", (1, 1)))


@lru_cache(maxsize=128)
def _stamp(text: str, face: Font, start_x: float, start_y: float) -> tuple[Image.Image, int]:
    """``text``'s coverage as an "L" mask, drawn at (margin + start_x, margin + start_y).

    Drawing 255 into black gives exactly the glyphs' coverage, and drawing a
    colour through that mask blends as Pillow's own ``text`` does, so a
    stamp reproduces ``draw.text`` pixel for pixel (the fractional start is
    part of the key: FreeType renders it differently).
    """
    left, top, right, bottom = _bbox(text, face)
    margin = int(max(0.0, -left, -top)) + 2
    mask = Image.new("L", (int(right) + 2 * margin + 2, int(bottom) + 2 * margin + 2))
    ImageDraw.Draw(mask).text((margin + start_x, margin + start_y), text, font=face, fill=255)
    return mask, margin


def draw_text(
    draw: ImageDraw.ImageDraw, x: float, y: float, text: str, face: Font, fill: RGB
) -> None:
    """``draw.text((x, y), text, ...)`` for non-negative x and y, with the glyphs of
    repeated texts rendered once (FreeType's rendering was most of a frame's time)."""
    whole_x, whole_y = int(x), int(y)
    mask, margin = _stamp(text, face, x - whole_x, y - whole_y)
    draw.bitmap((whole_x - margin, whole_y - margin), mask, fill=fill)


def _centred(
    draw: ImageDraw.ImageDraw, x: float, y: float, text: str, face: Font, fill: RGB
) -> None:
    left, top, right, bottom = _bbox(text, face)
    draw_text(draw, x - (left + right) / 2, y - (top + bottom) / 2, text, face, fill)


def _left(
    draw: ImageDraw.ImageDraw, x: float, y: float, text: str, face: Font, fill: RGB
) -> None:
    _, top, _, bottom = _bbox(text, face)
    draw_text(draw, x, y - (top + bottom) / 2, text, face, fill)


def render(screen: LogonScreen) -> Image.Image:
    """The RGB image of the whole desktop for ``screen``."""
    width, height = screen.width, screen.height
    image = Image.new("RGB", (width, height), layout.BACKGROUND)
    draw = ImageDraw.Draw(image)
    corner = layout.CORNER
    header = screen.product_name + (f"  ·  {screen.host_name}" if screen.host_name else "")
    _left(draw, corner + 8, corner + 14, fit(header, font(BODY), width - 4 * corner),
          font(BODY), layout.HEADER_TEXT)

    panel = layout.panel_box(width, height)
    draw.rectangle((panel.left, panel.top, panel.right - 1, panel.bottom - 1), fill=layout.PANEL)
    draw.rectangle((panel.left, panel.top, panel.right - 1, panel.top + 5), fill=layout.ACCENT)
    cx, cy = layout.centre(width, height)
    inner = panel.width - 48

    if screen.view is View.SIGNED_IN and screen.signed_in is not None:
        _draw_signed_in(draw, screen, screen.signed_in, inner)
        _draw_status(draw, screen, inner)
        return image

    _centred(draw, cx, cy - 126, fit(screen.title, font(TITLE), inner), font(TITLE), layout.TEXT)
    _draw_status(draw, screen, inner)
    box = layout.pin_box(width, height)
    _left(draw, box.left, cy - 18, "PIN", font(SMALL), layout.MUTED_TEXT)
    border = layout.PIN_BOX_BORDER_WIDTH
    draw.rectangle(
        (box.left, box.top, box.right - 1, box.bottom - 1),
        fill=layout.PIN_BOX_FILL if screen.pin_enabled else layout.PIN_BOX_DISABLED,
        outline=layout.PIN_BOX_BORDER,
        width=border,
    )
    for index in range(screen.pin_length):
        bullet = layout.bullet_box(width, height, index)
        if bullet.right > box.right - border:
            break
        draw.rectangle(
            (bullet.left, bullet.top, bullet.right - 1, bullet.bottom - 1), fill=layout.BULLET
        )
    if screen.hint:
        _centred(draw, cx, cy + 72, fit(screen.hint, font(BODY), inner), font(BODY),
                 layout.ERROR_FILL)
    if screen.footer:
        _centred(draw, cx, cy + 130, fit(screen.footer, font(SMALL), inner), font(SMALL),
                 layout.MUTED_TEXT)
    return image


def _draw_status(draw: ImageDraw.ImageDraw, screen: LogonScreen, inner: int) -> None:
    if not screen.status:
        return
    box = layout.status_box(screen.width, screen.height)
    mid_x, mid_y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    face = font(BODY)
    if screen.status_kind is StatusKind.ERROR:
        draw.rectangle((box.left, box.top, box.right - 1, box.bottom - 1), fill=layout.ERROR_FILL)
        text = fit(screen.status, face, box.width - 24)
    else:
        text = fit(screen.status, face, inner)
    _centred(draw, mid_x, mid_y, text, face, _STATUS_COLOURS[screen.status_kind])


def _draw_signed_in(
    draw: ImageDraw.ImageDraw, screen: LogonScreen, info: SignedInInfo, inner: int
) -> None:
    cx, cy = layout.centre(screen.width, screen.height)
    _centred(draw, cx, cy - 126, fit(f"Signed in as {info.user}", font(TITLE), inner),
             font(TITLE), layout.TEXT)
    expiry = (
        info.ticket_expiry.strftime("%Y-%m-%d %H:%M %Z").strip()
        if info.ticket_expiry is not None
        else "no ticket"
    )
    rows = [
        ("User", info.user),
        ("Realm", info.realm or "-"),
        ("Ticket valid until", expiry),
        ("Smart card reader", info.reader or "-"),
    ]
    panel = layout.panel_box(screen.width, screen.height)
    label_x = panel.left + 32
    value_x = panel.left + 32 + min(190, inner // 3)
    value_width = panel.right - 32 - value_x
    for index, (label, value) in enumerate(rows):
        y = cy - 16 + index * 34
        _left(draw, label_x, y, label, font(BODY), layout.MUTED_TEXT)
        _left(draw, value_x, y, fit(value, font(BODY), value_width), font(BODY), layout.TEXT)
