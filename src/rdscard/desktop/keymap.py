"""RDP keyboard input to X keycodes and keysyms: pure tables.

RDP clients send keys as scancode set 1 make codes with the E0 prefix
folded into ``KBDFLAGS_EXTENDED`` and the E1 prefix (Pause) into
``KBDFLAGS_EXTENDED1`` (MS-RDPBCGR 2.2.8.1.1.3.1.1.1 TS_KEYBOARD_EVENT,
2.2.8.1.2.2.1 TS_FP_KEYBOARD_EVENT). A session's Xvfb uses the evdev
keycodes (XKB rules ``evdev``, model ``pc105``): X keycode = Linux
``KEY_*`` code + 8 (``/usr/share/X11/xkb/keycodes/evdev``). For the main
block the Linux code equals the set 1 scancode, so keycode = scancode + 8
up to F10/Num Lock/keypad (0x01-0x53); everything else is listed here.
Every entry was checked against ``xkbcomp :N -`` of a running Xvfb 21.1
(the integration tests check them again, key name by key name).

Unicode key events (2.2.8.1.1.3.1.1.2) carry a UTF-16 code unit; they are
typed through a keysym bound to a spare keycode (see ``xinput``). The
keysym of a code point is the Latin-1 value itself for U+0020-U+007E and
U+00A0-U+00FF, a few control characters have function keysyms, and every
other character uses the Unicode keysym ``0x01000000 | cp`` (X11 keysym
encoding, "keysymdef.h", Appendix A of the X Window System Protocol).
"""

from __future__ import annotations

from typing import Final

#: The lowest keycode X allows (X11 protocol, "Keyboards"); evdev offset.
EVDEV_OFFSET: Final = 8

#: Keycodes of the lock keys (<CAPS>, <NMLK>, <SCLK>) in the evdev keymap.
KEYCODE_CAPS_LOCK: Final = 66
KEYCODE_NUM_LOCK: Final = 77
KEYCODE_SCROLL_LOCK: Final = 78
#: <PAUS>: RDP sends Pause as EXTENDED1 0x1D followed by a plain 0x45.
KEYCODE_PAUSE: Final = 127

#: Scancode 0x45 that follows EXTENDED1 0x1D in the Pause sequence.
SC_NUM_LOCK: Final = 0x45
SC_PAUSE_PREFIXED: Final = 0x1D

#: Non-extended scancodes beyond the identity block 0x01-0x53 (XKB key names).
PLAIN_EXTRA: Final[dict[int, int]] = {
    0x54: 107,  # Alt+Print (SysRq) -> <PRSC>
    0x56: 94,  # the 102nd key, <LSGT>
    0x57: 95,  # F11 <FK11>
    0x58: 96,  # F12 <FK12>
    0x59: 125,  # keypad '=' <KPEQ>
    0x64: 191,  # F13 <FK13>
    0x65: 192,  # F14
    0x66: 193,  # F15
    0x67: 194,  # F16
    0x68: 195,  # F17
    0x69: 196,  # F18
    0x6A: 197,  # F19
    0x6B: 198,  # F20
    0x6C: 199,  # F21
    0x6D: 200,  # F22
    0x6E: 201,  # F23
    0x70: 101,  # Hiragana/Katakana <HKTG>
    0x71: 131,  # Hanja <HJCV>
    0x72: 130,  # Hangul <HNGL>
    0x73: 97,  # Brazilian/Japanese '/' (ABNT C1, Ro) <AB11>
    0x76: 202,  # F24 <FK24>
    0x79: 100,  # Henkan <HENK>
    0x7B: 102,  # Muhenkan <MUHE>
    0x7D: 132,  # Yen <AE13>
    0x7E: 129,  # Brazilian keypad '.' (ABNT C2) <KPPT>
}

#: E0-prefixed (KBDFLAGS_EXTENDED) scancodes.
EXTENDED: Final[dict[int, int]] = {
    0x10: 173,  # previous track <I173>
    0x19: 171,  # next track <I171>
    0x1C: 104,  # keypad Enter <KPEN>
    0x1D: 105,  # right Ctrl <RCTL>
    0x20: 121,  # mute <MUTE>
    0x21: 148,  # calculator <I148>
    0x22: 172,  # play/pause <I172>
    0x24: 174,  # stop <I174>
    0x2E: 122,  # volume down <VOL->
    0x30: 123,  # volume up <VOL+>
    0x32: 180,  # browser home <I180>
    0x35: 106,  # keypad '/' <KPDV>
    0x37: 107,  # Print Screen <PRSC>
    0x38: 108,  # right Alt / AltGr <RALT>
    0x46: 127,  # Ctrl+Break <PAUS>
    0x47: 110,  # Home <HOME>
    0x48: 111,  # Up <UP>
    0x49: 112,  # Page Up <PGUP>
    0x4B: 113,  # Left <LEFT>
    0x4D: 114,  # Right <RGHT>
    0x4F: 115,  # End <END>
    0x50: 116,  # Down <DOWN>
    0x51: 117,  # Page Down <PGDN>
    0x52: 118,  # Insert <INS>
    0x53: 119,  # Delete <DELE>
    0x5B: 133,  # left Windows <LWIN>
    0x5C: 134,  # right Windows <RWIN>
    0x5D: 135,  # Menu <COMP>
    0x5E: 124,  # power <POWR>
    0x5F: 150,  # sleep <I150>
    0x63: 151,  # wake <I151>
    0x65: 225,  # browser search <I225>
    0x66: 164,  # favourites <I164>
    0x67: 181,  # browser refresh <I181>
    0x68: 136,  # browser stop <STOP>
    0x69: 167,  # browser forward <I167>
    0x6A: 166,  # browser back <I166>
    0x6B: 165,  # my computer <I165>
    0x6C: 163,  # mail <I163>
    0x6D: 234,  # media select <I234>
}

#: Scancodes 0x01-0x53 map to keycode scancode + 8 (Esc=9 ... keypad '.'=91).
IDENTITY_LAST: Final = 0x53


def keycode_for(scancode: int, *, extended: bool = False, extended1: bool = False) -> int | None:
    """The evdev X keycode of an RDP scancode, or None for a key X has no code for.

    ``extended1`` is only meaningful with 0x1D (the first half of Pause).
    """
    if extended1:
        return KEYCODE_PAUSE if scancode == SC_PAUSE_PREFIXED else None
    if extended:
        return EXTENDED.get(scancode)
    if 0x01 <= scancode <= IDENTITY_LAST:
        return scancode + EVDEV_OFFSET
    return PLAIN_EXTRA.get(scancode)


#: Control characters with keysyms of their own (keysymdef.h XK_BackSpace etc.).
_CONTROL_KEYSYMS: Final[dict[int, int]] = {
    0x08: 0xFF08,  # BackSpace
    0x09: 0xFF09,  # Tab
    0x0A: 0xFF0D,  # Return (line feed typed as Enter)
    0x0D: 0xFF0D,  # Return
    0x1B: 0xFF1B,  # Escape
    0x7F: 0xFFFF,  # Delete
}

#: Unicode keysyms: 0x01000000 + the code point (X11 keysym encoding, Appendix A).
UNICODE_KEYSYM_BASE: Final = 0x01000000


def keysym_for_code_point(code_point: int) -> int | None:
    """The keysym that types ``code_point``, or None for a code that cannot be typed.

    UTF-16 surrogates (0xD800-0xDFFF) are None: a character outside the
    BMP arrives as two events and must be joined first
    (:func:`join_surrogates`).
    """
    if code_point in _CONTROL_KEYSYMS:
        return _CONTROL_KEYSYMS[code_point]
    if code_point < 0x20 or 0x80 <= code_point < 0xA0:
        return None
    if code_point <= 0xFF:
        return code_point
    if 0xD800 <= code_point <= 0xDFFF or code_point > 0x10FFFF:
        return None
    return UNICODE_KEYSYM_BASE | code_point


def join_surrogates(high: int, low: int) -> int:
    """The code point of a UTF-16 surrogate pair (RFC 2781 2.2)."""
    if not (0xD800 <= high <= 0xDBFF and 0xDC00 <= low <= 0xDFFF):
        raise ValueError(f"0x{high:04X} 0x{low:04X} is not a surrogate pair")
    return 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
