"""Scancode, keysym and keyboard layout tables of the X desktop (pure)."""

from __future__ import annotations

import pytest

from rdscard.desktop import keymap
from rdscard.desktop.layouts import KLID_TO_XKB, setxkbmap_args, xkb_layout_for


@pytest.mark.parametrize(
    ("scancode", "keycode"),
    [
        (0x01, 9),  # Esc
        (0x02, 10),  # 1
        (0x10, 24),  # Q
        (0x1C, 36),  # Return
        (0x1D, 37),  # left Ctrl
        (0x2A, 50),  # left Shift
        (0x39, 65),  # space
        (0x3A, 66),  # Caps Lock
        (0x45, 77),  # Num Lock
        (0x46, 78),  # Scroll Lock
        (0x53, 91),  # keypad '.'
        (0x56, 94),  # <LSGT>
        (0x57, 95),  # F11
        (0x58, 96),  # F12
        (0x70, 101),  # Hiragana/Katakana
        (0x73, 97),  # AB11 (Ro)
        (0x79, 100),  # Henkan
        (0x7B, 102),  # Muhenkan
        (0x7D, 132),  # Yen
        (0x7E, 129),  # ABNT C2
    ],
)
def test_plain_scancodes(scancode: int, keycode: int) -> None:
    assert keymap.keycode_for(scancode) == keycode


@pytest.mark.parametrize(
    ("scancode", "keycode"),
    [
        (0x1C, 104),  # keypad Enter
        (0x1D, 105),  # right Ctrl
        (0x35, 106),  # keypad '/'
        (0x37, 107),  # Print
        (0x38, 108),  # right Alt
        (0x47, 110),  # Home
        (0x48, 111),  # Up
        (0x49, 112),  # Page Up
        (0x4B, 113),  # Left
        (0x4D, 114),  # Right
        (0x4F, 115),  # End
        (0x50, 116),  # Down
        (0x51, 117),  # Page Down
        (0x52, 118),  # Insert
        (0x53, 119),  # Delete
        (0x5B, 133),  # left Windows
        (0x5C, 134),  # right Windows
        (0x5D, 135),  # Menu
    ],
)
def test_extended_scancodes(scancode: int, keycode: int) -> None:
    assert keymap.keycode_for(scancode, extended=True) == keycode


def test_pause_and_unknown() -> None:
    assert keymap.keycode_for(0x1D, extended1=True) == keymap.KEYCODE_PAUSE == 127
    assert keymap.keycode_for(0x45, extended1=True) is None
    assert keymap.keycode_for(0x00) is None
    assert keymap.keycode_for(0x7F) is None
    assert keymap.keycode_for(0x02, extended=True) is None


def test_every_keycode_is_in_the_x_range() -> None:
    codes = [keymap.keycode_for(s) for s in range(0x80)]
    codes += [keymap.keycode_for(s, extended=True) for s in range(0x80)]
    assert all(8 <= c <= 255 for c in codes if c is not None)


@pytest.mark.parametrize(
    ("code_point", "keysym"),
    [
        (ord("a"), 0x61),
        (ord(" "), 0x20),
        (ord("~"), 0x7E),
        (0xE9, 0xE9),  # é: Latin-1 keysym eacute
        (0xA0, 0xA0),  # no-break space
        (0x20AC, 0x010020AC),  # €
        (0x0416, 0x01000416),  # Ж
        (0x1F600, 0x0101F600),  # a joined surrogate pair
        (0x0D, 0xFF0D),  # Return
        (0x08, 0xFF08),  # BackSpace
        (0x1B, 0xFF1B),  # Escape
    ],
)
def test_keysyms(code_point: int, keysym: int) -> None:
    assert keymap.keysym_for_code_point(code_point) == keysym


@pytest.mark.parametrize("code_point", [0x00, 0x07, 0x85, 0x9F, 0xD800, 0xDFFF, 0x110000])
def test_untypeable_code_points(code_point: int) -> None:
    assert keymap.keysym_for_code_point(code_point) is None


def test_surrogates() -> None:
    assert keymap.join_surrogates(0xD83D, 0xDE00) == 0x1F600
    with pytest.raises(ValueError):
        keymap.join_surrogates(0xDE00, 0xD83D)


@pytest.mark.parametrize(
    ("klid", "expected"),
    [
        (0x409, ("us", "")),
        (0x809, ("gb", "")),
        (0x407, ("de", "")),
        (0x807, ("ch", "")),
        (0x100C, ("ch", "fr")),
        (0x40C, ("fr", "")),
        (0x80C, ("be", "")),
        (0x410, ("it", "")),
        (0x40A, ("es", "")),
        (0xC0A, ("es", "")),
        (0x416, ("br", "")),
        (0x816, ("pt", "")),
        (0x413, ("nl", "")),
        (0x41D, ("se", "")),
        (0x414, ("no", "")),
        (0x406, ("dk", "")),
        (0x40B, ("fi", "")),
        (0x415, ("pl", "")),
        (0x405, ("cz", "")),
        (0x419, ("ru", "")),
        (0x411, ("jp", "")),
        (0x412, ("kr", "")),
        (0x10409, ("us", "dvorak")),
        (0x20409, ("us", "intl")),
        (0xE0010411, ("jp", "")),  # Japanese IME: the language's layout
        (0x00070407, ("de", "")),  # an unknown German variant
        (0x0000047C, ("us", "")),  # unknown language
        (0, ("us", "")),
    ],
)
def test_layouts(klid: int, expected: tuple[str, str]) -> None:
    assert xkb_layout_for(klid) == expected


def test_setxkbmap_args() -> None:
    assert setxkbmap_args(0x407) == ["de"]
    assert setxkbmap_args(0x10409) == ["us", "-variant", "dvorak"]


def test_layout_names_are_plain() -> None:
    for layout, variant in KLID_TO_XKB.values():
        assert layout.isascii() and layout.replace("_", "").isalnum()
        assert all(c.isalnum() or c in "-_" for c in variant)
