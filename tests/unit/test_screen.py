"""Logon screen: rendering, documented geometry, dirty tiles and the session controller."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from rdscard.pdu.bitmap import Rect, apply_bitmap, decode_bitmap_update
from rdscard.pdu.fastpath_output import FastPathUpdatePdu
from rdscard.pdu.input import KeyboardEvent, MouseEvent
from rdscard.screen import (
    LogonScreen,
    LogonScreenController,
    PinSubmitted,
    SignedInInfo,
    StatusKind,
    changed_rectangles,
    count_pin_bullets,
    layout,
    render,
)
from rdscard.screen.cache import FrameCache
from rdscard.screen.model import View, tries_left_hint
from rdscard.screen.render import draw_text, font

SIZES = [(1024, 768), (800, 600), (1920, 1080), (640, 480), (400, 300)]


def pixel(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    value = image.getpixel((x, y))
    assert isinstance(value, tuple)
    return (value[0], value[1], value[2])


def box_colours(image: Image.Image, box: Rect) -> set[tuple[int, int, int]]:
    colours = image.crop(box).getcolors(maxcolors=1 << 16)
    assert colours is not None
    return {(c[0], c[1], c[2]) for _, c in colours if isinstance(c, tuple)}


def client_view(pdus: list[bytes], canvas: Image.Image) -> Image.Image:
    for frame in pdus:
        for update in FastPathUpdatePdu.decode(frame).updates:
            for bitmap in decode_bitmap_update(update).rectangles:
                apply_bitmap(canvas, bitmap)
    return canvas


# -- rendering and documented geometry ----------------------------------------------


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_render_size_and_known_colours(width: int, height: int) -> None:
    image = render(LogonScreen(width, height, host_name="rdsh1"))
    assert image.size == (width, height) and image.mode == "RGB"
    assert pixel(image, 0, 0) == layout.BACKGROUND
    assert pixel(image, width - 1, height - 1) == layout.BACKGROUND
    box = layout.pin_box(width, height)
    border = layout.PIN_BOX_BORDER_WIDTH
    assert pixel(image, box.left, box.top) == layout.PIN_BOX_BORDER
    assert pixel(image, box.right - border - 2, box.bottom - border - 2) == layout.PIN_BOX_FILL
    panel = layout.panel_box(width, height)
    assert pixel(image, panel.left + 2, panel.top + 10) == layout.PANEL


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("typed", range(9))
def test_bullet_count_equals_typed_length(width: int, height: int, typed: int) -> None:
    image = render(LogonScreen(width, height, pin_length=typed))
    assert count_pin_bullets(image) == typed
    for index in range(typed):
        bullet = layout.bullet_box(width, height, index)
        assert box_colours(image, bullet) == {layout.BULLET}


@pytest.mark.parametrize("typed", [0, 3, 8])
def test_nothing_but_bullets_inside_the_pin_field(typed: int) -> None:
    image = render(LogonScreen(1024, 768, pin_length=typed))
    box = layout.pin_box(1024, 768)
    inside = Rect(box.left + 2, box.top + 2, box.right - 2, box.bottom - 2)
    expected = {layout.PIN_BOX_FILL} | ({layout.BULLET} if typed else set())
    assert box_colours(image, inside) == expected  # no digits, no anti-aliased text


def test_bullets_found_in_a_larger_screenshot() -> None:
    desktop = render(LogonScreen(800, 600, pin_length=5))
    shot = Image.new("RGB", (900, 700), (40, 40, 40))
    shot.paste(desktop, (30, 50))
    assert count_pin_bullets(shot, 800, 600, origin=(30, 50)) == 5


def test_error_status_is_a_red_box() -> None:
    image = render(LogonScreen(1024, 768).with_status("The PIN is incorrect", StatusKind.ERROR))
    box = layout.status_box(1024, 768)
    assert pixel(image, box.left + 3, box.top + 3) == layout.ERROR_FILL
    assert pixel(image, box.right - 4, box.bottom - 4) == layout.ERROR_FILL
    assert layout.ERROR_TEXT in box_colours(image, box)
    plain = render(LogonScreen(1024, 768).with_status("Insert your smart card"))
    assert pixel(plain, box.left + 3, box.top + 3) == layout.PANEL


def test_status_text_changes_the_image() -> None:
    first = render(LogonScreen(1024, 768).with_status("Insert your smart card"))
    second = render(LogonScreen(1024, 768).with_status("Waiting for the smart card reader"))
    assert first != second


def test_disabled_pin_field_is_grey_and_empty() -> None:
    screen = LogonScreen(1024, 768, pin_length=4).with_pin_enabled(False)
    assert screen.pin_length == 0
    image = render(screen)
    box = layout.pin_box(1024, 768)
    assert pixel(image, box.left + 5, box.top + 5) == layout.PIN_BOX_DISABLED
    assert count_pin_bullets(image) == 0


def test_hint_line_is_drawn() -> None:
    base = LogonScreen(1024, 768)
    assert render(base.with_hint(tries_left_hint(2))) != render(base)


def test_tries_left_wording() -> None:
    assert tries_left_hint(3) == "3 tries left"
    assert tries_left_hint(1) == "1 try left"
    assert tries_left_hint(0) == "The PIN is blocked"
    assert tries_left_hint(None) is None


def test_signed_in_view_has_no_pin_field() -> None:
    info = SignedInInfo("alice", "EXAMPLE.ORG", datetime(2026, 11, 27, 8, 0, tzinfo=UTC), "vpcd")
    screen = LogonScreen(1024, 768, pin_length=3).with_signed_in(info)
    assert screen.view is View.SIGNED_IN and screen.pin_length == 0
    image = render(screen)
    box = layout.pin_box(1024, 768)
    assert layout.PIN_BOX_FILL not in box_colours(image, box)
    assert count_pin_bullets(image) == 0
    assert render(screen.with_logon()) == render(LogonScreen(1024, 768))


def test_long_texts_are_cut_to_fit() -> None:
    long = "x" * 500
    image = render(LogonScreen(640, 480, host_name=long, title=long, status=long, hint=long))
    assert image.size == (640, 480)
    assert pixel(image, 639, 479) == layout.BACKGROUND


def test_model_validation() -> None:
    with pytest.raises(ValueError):
        LogonScreen(0, 768)
    with pytest.raises(ValueError):
        LogonScreen(1024, 768, pin_length=9)
    with pytest.raises(ValueError):
        LogonScreen(1024, 768, view=View.SIGNED_IN)


def test_known_colours_survive_high_colour_depths() -> None:
    controller = LogonScreenController(1024, 768)
    for key in (0x02, 0x03, 0x04):
        controller.on_input(KeyboardEvent(key))
    controller.set_status("The PIN is incorrect", StatusKind.ERROR)
    for bpp in (16, 15):
        fresh = LogonScreenController(1024, 768)
        fresh.screen = controller.screen
        view = client_view(fresh.updates(bpp), Image.new("RGB", (1024, 768)))
        assert count_pin_bullets(view, tolerance=0) == 3  # black bullets stay exact
        box = layout.pin_box(1024, 768)
        assert layout.near(pixel(view, 0, 0), layout.BACKGROUND)
        assert layout.near(pixel(view, box.right - 6, box.bottom - 6), layout.PIN_BOX_FILL)
        assert not layout.near(pixel(view, box.right - 6, box.bottom - 6), layout.PANEL)
        status = layout.status_box(1024, 768)
        assert layout.near(pixel(view, status.left + 3, status.top + 3), layout.ERROR_FILL)


# -- dirty rectangles -----------------------------------------------------------------


def test_diff_without_a_previous_frame_is_the_whole_screen() -> None:
    image = Image.new("RGB", (100, 50))
    assert changed_rectangles(None, image) == [Rect(0, 0, 100, 50)]
    assert changed_rectangles(Image.new("RGB", (10, 10)), image) == [Rect(0, 0, 100, 50)]


def test_diff_of_identical_frames_is_empty() -> None:
    image = render(LogonScreen(800, 600))
    assert changed_rectangles(image, image.copy()) == []


def test_diff_single_pixel_is_one_clipped_tile() -> None:
    old = Image.new("RGB", (100, 100))
    new = old.copy()
    new.putpixel((70, 90), (1, 0, 0))
    assert changed_rectangles(old, new, tile=64) == [Rect(64, 64, 100, 100)]


def test_diff_merges_adjacent_tiles_into_blocks() -> None:
    old = Image.new("RGB", (256, 256))
    new = old.copy()
    ImageDraw.Draw(new).rectangle((10, 10, 100, 100), fill=(255, 255, 255))  # tiles (0..1, 0..1)
    new.putpixel((200, 10), (9, 9, 9))  # tile (3, 0), separate
    assert changed_rectangles(old, new, tile=64) == [
        Rect(0, 0, 128, 128),
        Rect(192, 0, 256, 64),
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 199), st.integers(0, 149)), min_size=1, max_size=12),
       st.sampled_from([16, 32, 64]))
def test_diff_covers_every_change_and_nothing_overlaps(
    points: list[tuple[int, int]], tile: int
) -> None:
    old = Image.new("RGB", (200, 150))
    new = old.copy()
    for point in points:
        new.putpixel(point, (255, 0, 0))
    rects = changed_rectangles(old, new, tile)
    for x, y in points:
        assert sum(r.left <= x < r.right and r.top <= y < r.bottom for r in rects) == 1
    for rect in rects:
        assert 0 <= rect.left < rect.right <= 200 and 0 <= rect.top < rect.bottom <= 150
    patched = old.copy()
    for rect in rects:
        patched.paste(new.crop(rect), (rect.left, rect.top))
    assert patched == new


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x24F), min_size=1,
                 max_size=24),
    x=st.floats(0, 120, allow_nan=False), y=st.floats(0, 40, allow_nan=False),
    size=st.sampled_from([15, 18, 26]),
    fill=st.tuples(*[st.integers(0, 255)] * 3),
)
def test_a_text_stamp_draws_what_pillow_draws(
    text: str, x: float, y: float, size: int, fill: tuple[int, int, int]
) -> None:
    # A striped background: any blending difference would show.
    background = Image.linear_gradient("L").resize((400, 120)).convert("RGB")
    expected, stamped = background.copy(), background.copy()
    ImageDraw.Draw(expected).text((x, y), text, font=font(size), fill=fill)
    draw_text(ImageDraw.Draw(stamped), x, y, text, font(size), fill)
    draw_text(ImageDraw.Draw(background), x, y, text, font(size), fill)  # from the cache
    assert stamped == expected and background == expected


# -- controller ------------------------------------------------------------------------


def test_controller_first_update_paints_the_whole_desktop() -> None:
    controller = LogonScreenController(1024, 768, host_name="rdsh1")
    view = client_view(controller.updates(32), Image.new("RGB", (1024, 768)))
    assert view == controller.render()
    assert controller.updates(32) == []  # nothing changed since


def test_controller_typing_updates_only_the_pin_field() -> None:
    controller = LogonScreenController(1024, 768)
    view = client_view(controller.updates(32), Image.new("RGB", (1024, 768)))
    assert controller.on_input(KeyboardEvent(0x02)) is not None
    pdus = controller.updates(32)
    assert 1 <= len(pdus) <= 2
    box = layout.pin_box(1024, 768)
    for frame in pdus:
        for update in FastPathUpdatePdu.decode(frame).updates:
            for bitmap in decode_bitmap_update(update).rectangles:
                assert bitmap.dest_top <= box.top + layout.BULLET_TOP
                assert bitmap.dest_bottom >= box.top + layout.BULLET_TOP + layout.BULLET_SIZE - 1
    client_view(pdus, view)
    assert count_pin_bullets(view) == 1
    assert view == controller.render()


def test_sessions_sharing_a_frame_cache_compare_a_change_once() -> None:
    frames = FrameCache()
    first, second = (LogonScreenController(800, 600, frames=frames) for _ in range(2))
    views = [client_view(c.updates(32), Image.new("RGB", (800, 600))) for c in (first, second)]
    for controller, view in zip((first, second), views, strict=True):
        controller.set_status("Signing in...", StatusKind.WAITING)
        controller.on_input(KeyboardEvent(0x02))
        client_view(controller.updates(32), view)
        assert view == controller.render()
    assert frames.comparisons == 1  # the second session's change came from the cache
    # A change back is another change, compared once more; the pictures stay exact.
    first.set_status("Insert your smart card")
    assert client_view(first.updates(32), views[0]) == first.render()
    assert frames.comparisons == 2


def test_controller_renders_only_when_something_changed() -> None:
    controller = LogonScreenController(800, 600)
    controller.render()
    assert controller.render_count == 1
    controller.set_status("Insert your smart card")  # same as the default
    controller.on_input(MouseEvent(0x0800, 5, 5))
    controller.on_input(KeyboardEvent(0x02, released=True))
    controller.render()
    assert controller.render_count == 1
    controller.set_tries_left(3)
    controller.render()
    assert controller.render_count == 2


def test_controller_submit_returns_the_pin_and_clears_the_field() -> None:
    controller = LogonScreenController(800, 600)
    for key in (0x02, 0x03, 0x04, 0x05):
        controller.on_input(KeyboardEvent(key))
    assert controller.screen.pin_length == 4
    actions = controller.on_inputs([KeyboardEvent(0x1C), KeyboardEvent(0x1C, released=True)])
    assert len(actions) == 1 and isinstance(actions[0], PinSubmitted)
    assert bytes(actions[0].pin.reveal()) == b"1234"
    assert controller.screen.pin_length == 0
    assert count_pin_bullets(controller.render()) == 0


def test_controller_ignores_pin_keys_when_disabled_or_signed_in() -> None:
    controller = LogonScreenController(800, 600)
    controller.on_input(KeyboardEvent(0x02))
    controller.set_pin_enabled(False)
    assert controller.screen.pin_length == 0
    assert controller.on_input(KeyboardEvent(0x03)) is None
    controller.set_pin_enabled(True)
    controller.show_signed_in("alice", "EXAMPLE.ORG")
    assert controller.on_input(KeyboardEvent(0x03)) is None
    controller.show_logon()
    controller.on_input(KeyboardEvent(0x03))
    assert controller.screen.pin_length == 1


def test_controller_refresh_resends_everything() -> None:
    controller = LogonScreenController(640, 480)
    first = controller.updates(16)
    assert controller.updates(16) == []
    controller.refresh()
    assert controller.updates(16) == first


def test_kept_changes_stay_within_their_byte_budget() -> None:
    frames = FrameCache(delta_budget=150_000)
    controllers = [LogonScreenController(800, 600, frames=frames) for _ in range(2)]
    for controller in controllers:
        controller.updates(32)
    for status in ("One", "Two", "Three", "Four"):
        for controller in controllers:
            controller.set_status(status)
            assert controller.updates(32)
    # each change is kept (the second session reuses it) but old ones make room
    assert frames.comparisons == 4
    assert 0 < frames.delta_bytes <= 150_000
    controllers[0].set_status("One")
    controllers[0].updates(32)
    assert frames.comparisons == 5  # "Four" -> "One" was never seen
