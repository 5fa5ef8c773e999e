"""The scancode and layout tables checked against a running Xvfb's keymap."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from rdscard.desktop import XDisplay, keymap
from rdscard.desktop.layouts import KLID_TO_XKB, setxkbmap_args
from tests.integration.desktop.xsession import UserXServer

pytestmark = pytest.mark.integration

SYMBOLS = Path("/usr/share/X11/xkb/symbols")

#: The XKB key name each table entry is meant to reach.
PLAIN_NAMES = {
    0x54: "PRSC", 0x56: "LSGT", 0x57: "FK11", 0x58: "FK12", 0x59: "KPEQ",
    0x64: "FK13", 0x65: "FK14", 0x66: "FK15", 0x67: "FK16", 0x68: "FK17", 0x69: "FK18",
    0x6A: "FK19", 0x6B: "FK20", 0x6C: "FK21", 0x6D: "FK22", 0x6E: "FK23", 0x76: "FK24",
    0x70: "HKTG", 0x71: "HJCV", 0x72: "HNGL", 0x73: "AB11", 0x79: "HENK", 0x7B: "MUHE",
    0x7D: "AE13", 0x7E: "KPPT",
}
EXTENDED_NAMES = {
    0x10: "I173", 0x19: "I171", 0x1C: "KPEN", 0x1D: "RCTL", 0x20: "MUTE", 0x21: "I148",
    0x22: "I172", 0x24: "I174", 0x2E: "VOL-", 0x30: "VOL+", 0x32: "I180", 0x35: "KPDV",
    0x37: "PRSC", 0x38: "RALT", 0x46: "PAUS", 0x47: "HOME", 0x48: "UP", 0x49: "PGUP",
    0x4B: "LEFT", 0x4D: "RGHT", 0x4F: "END", 0x50: "DOWN", 0x51: "PGDN", 0x52: "INS",
    0x53: "DELE", 0x5B: "LWIN", 0x5C: "RWIN", 0x5D: "COMP", 0x5E: "POWR", 0x5F: "I150",
    0x63: "I151", 0x65: "I225", 0x66: "I164", 0x67: "I181", 0x68: "STOP", 0x69: "I167",
    0x6A: "I166", 0x6B: "I165", 0x6C: "I163", 0x6D: "I234",
}
#: The identity block 0x01-0x53, row by row (scancode set 1 order).
_IDENTITY_ROWS = (
    "ESC AE01 AE02 AE03 AE04 AE05 AE06 AE07 AE08 AE09 AE10 AE11 AE12 BKSP",
    "TAB AD01 AD02 AD03 AD04 AD05 AD06 AD07 AD08 AD09 AD10 AD11 AD12 RTRN",
    "LCTL AC01 AC02 AC03 AC04 AC05 AC06 AC07 AC08 AC09 AC10 AC11 TLDE LFSH",
    "BKSL AB01 AB02 AB03 AB04 AB05 AB06 AB07 AB08 AB09 AB10 RTSH KPMU LALT SPCE CAPS",
    "FK01 FK02 FK03 FK04 FK05 FK06 FK07 FK08 FK09 FK10 NMLK SCLK",
    "KP7 KP8 KP9 KPSU KP4 KP5 KP6 KPAD KP1 KP2 KP3 KP0 KPDL",
)
IDENTITY_NAMES = [name for row in _IDENTITY_ROWS for name in row.split()]


def _keycodes(xserver: UserXServer) -> dict[str, int]:
    dump = subprocess.run(
        ["xkbcomp", "-xkb", xserver.display, "-"],
        env=xserver.env(), capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    section = dump[dump.index("xkb_keycodes") : dump.index("xkb_types")]
    names = {m[1]: int(m[2]) for m in re.finditer(r"<([A-Z0-9+-]+)>\s*=\s*(\d+);", section)}
    for alias, target in re.findall(r"alias <([A-Z0-9+-]+)>\s*=\s*<([A-Z0-9+-]+)>;", section):
        names.setdefault(alias, names[target])
    return names


def test_scancode_table_matches_the_servers_keycodes(xserver: UserXServer) -> None:
    names = _keycodes(xserver)
    assert len(IDENTITY_NAMES) == keymap.IDENTITY_LAST
    for scancode, name in enumerate(IDENTITY_NAMES, start=1):
        assert keymap.keycode_for(scancode) == names[name], f"0x{scancode:02X} {name}"
    assert set(PLAIN_NAMES) == set(keymap.PLAIN_EXTRA)
    for scancode, name in PLAIN_NAMES.items():
        assert keymap.keycode_for(scancode) == names[name], f"0x{scancode:02X} {name}"
    assert set(EXTENDED_NAMES) == set(keymap.EXTENDED)
    for scancode, name in EXTENDED_NAMES.items():
        got = keymap.keycode_for(scancode, extended=True)
        assert got == names[name], f"E0 0x{scancode:02X} {name}"
    assert keymap.keycode_for(0x1D, extended1=True) == names["PAUS"]
    locks = (keymap.KEYCODE_CAPS_LOCK, keymap.KEYCODE_NUM_LOCK, keymap.KEYCODE_SCROLL_LOCK)
    assert locks == (names["CAPS"], names["NMLK"], names["SCLK"])


def test_keysyms_of_the_us_map(xdisplay: XDisplay) -> None:
    first, per, keysyms = xdisplay.sink.keyboard_mapping()

    def keysym(scancode: int, extended: bool = False) -> int:
        code = keymap.keycode_for(scancode, extended=extended)
        assert code is not None
        return int(keysyms[(code - first) * per])

    assert keysym(0x1E) == ord("a")
    assert keysym(0x56) == ord("<")
    assert keysym(0x1C, True) == 0xFF8D  # KP_Enter
    assert keysym(0x1D, True) == 0xFFE4  # Control_R
    assert keysym(0x35, True) == 0xFFAF  # KP_Divide
    assert keysym(0x37, True) == 0xFF61  # Print
    assert keysym(0x38, True) == 0xFFEA  # Alt_R
    assert keysym(0x47, True) == 0xFF50  # Home
    assert keysym(0x53, True) == 0xFFFF  # Delete
    assert keysym(0x5B, True) == 0xFFEB  # Super_L
    assert keysym(0x5D, True) == 0xFF67  # Menu
    assert int(keysyms[(keymap.KEYCODE_PAUSE - first) * per]) == 0xFF13  # Pause


def test_every_layout_exists_in_xkeyboard_config() -> None:
    for klid, (layout, variant) in KLID_TO_XKB.items():
        text = (SYMBOLS / layout).read_text(errors="replace")
        if variant:
            assert re.search(rf'xkb_symbols\s+"{re.escape(variant)}"', text), (
                f"0x{klid:08X}: {layout}({variant})")


@pytest.mark.parametrize(
    ("klid", "scancode", "char"),
    [(0x407, 0x15, "z"), (0x40C, 0x10, "a"), (0x10409, 0x10, "'"), (0x409, 0x15, "y")],
)
def test_setxkbmap_changes_the_map(
    xserver: UserXServer, xdisplay: XDisplay, klid: int, scancode: int, char: str
) -> None:
    subprocess.run(
        ["setxkbmap", "-display", xserver.display, *setxkbmap_args(klid)],
        env=xserver.env(), check=True, timeout=30,
    )
    first, per, keysyms = xdisplay.sink.keyboard_mapping()
    code = keymap.keycode_for(scancode)
    assert code is not None
    assert keysyms[(code - first) * per] == ord(char)
