"""The client's keyboard layout as an XKB layout and variant: a pure table.

The client says which layout its user types on in the Client Core Data
``keyboardLayout`` field (MS-RDPBCGR 2.2.1.3.2 TS_UD_CS_CORE), a Windows
keyboard layout identifier (KLID): the low word a language identifier
(MS-LCID), the high word a layout variant (``0x0001xxxx`` Dvorak, Belgian
comma, ...) or, with the top nibble 0xE, an input method on top of the
language's plain layout. The session start applies the answer with
``setxkbmap -display :N LAYOUT [-variant VARIANT]``; every pair names a
symbols file and section of xkeyboard-config (checked by the integration
tests against the installed ``/usr/share/X11/xkb/symbols``).
"""

from __future__ import annotations

from typing import Final

DEFAULT_LAYOUT: Final = ("us", "")

#: KLID -> (XKB layout, XKB variant); an empty variant is the layout's default.
KLID_TO_XKB: Final[dict[int, tuple[str, str]]] = {
    0x00000401: ("ara", ""),  # Arabic (101)
    0x00000402: ("bg", ""),  # Bulgarian
    0x00000404: ("tw", ""),  # Chinese (Traditional) - US keyboard
    0x00000405: ("cz", ""),  # Czech
    0x00000406: ("dk", ""),  # Danish
    0x00000407: ("de", ""),  # German
    0x00000408: ("gr", ""),  # Greek
    0x00000409: ("us", ""),  # United States
    0x0000040A: ("es", ""),  # Spanish (traditional sort)
    0x0000040B: ("fi", ""),  # Finnish
    0x0000040C: ("fr", ""),  # French (AZERTY)
    0x0000040D: ("il", ""),  # Hebrew
    0x0000040E: ("hu", ""),  # Hungarian
    0x0000040F: ("is", ""),  # Icelandic
    0x00000410: ("it", ""),  # Italian
    0x00000411: ("jp", ""),  # Japanese
    0x00000412: ("kr", ""),  # Korean
    0x00000413: ("nl", ""),  # Dutch
    0x00000414: ("no", ""),  # Norwegian
    0x00000415: ("pl", ""),  # Polish (Programmers)
    0x00000416: ("br", ""),  # Portuguese (Brazil ABNT)
    0x00000418: ("ro", ""),  # Romanian
    0x00000419: ("ru", ""),  # Russian
    0x0000041A: ("hr", ""),  # Croatian
    0x0000041B: ("sk", ""),  # Slovak
    0x0000041D: ("se", ""),  # Swedish
    0x0000041E: ("th", ""),  # Thai Kedmanee
    0x0000041F: ("tr", ""),  # Turkish Q
    0x00000422: ("ua", ""),  # Ukrainian
    0x00000423: ("by", ""),  # Belarusian
    0x00000424: ("si", ""),  # Slovenian
    0x00000425: ("ee", ""),  # Estonian
    0x00000426: ("lv", ""),  # Latvian
    0x00000427: ("lt", ""),  # Lithuanian
    0x0000042F: ("mk", ""),  # Macedonian
    0x00000804: ("cn", ""),  # Chinese (Simplified) - US keyboard
    0x00000807: ("ch", ""),  # Swiss German
    0x00000809: ("gb", ""),  # United Kingdom
    0x0000080A: ("latam", ""),  # Latin American
    0x0000080C: ("be", ""),  # Belgian French
    0x00000813: ("be", ""),  # Belgian (Period)
    0x00000816: ("pt", ""),  # Portuguese
    0x00000C0A: ("es", ""),  # Spanish (modern sort)
    0x00000C0C: ("ca", "fr-legacy"),  # Canadian French (Legacy)
    0x00000C1A: ("rs", ""),  # Serbian (Cyrillic)
    0x00001009: ("ca", ""),  # Canadian French
    0x0000100C: ("ch", "fr"),  # Swiss French
    0x0000081A: ("rs", "latin"),  # Serbian (Latin)
    0x00001809: ("ie", ""),  # Irish
    0x00000C09: ("us", ""),  # English (Australia): US keyboard
    0x00001409: ("us", ""),  # English (New Zealand): US keyboard
    0x00004009: ("in", "eng"),  # English (India)
    0x00010402: ("bg", "phonetic"),  # Bulgarian (Latin / phonetic)
    0x00010405: ("cz", "qwerty"),  # Czech (QWERTY)
    0x00010407: ("de", ""),  # German (IBM)
    0x00010408: ("gr", ""),  # Greek (220)
    0x00010409: ("us", "dvorak"),  # United States-Dvorak
    0x0001040A: ("es", ""),  # Spanish Variation
    0x0001040E: ("hu", "101_qwerty_comma_nodead"),  # Hungarian 101-key
    0x00010410: ("it", ""),  # Italian (142)
    0x00010415: ("pl", "qwertz"),  # Polish (214)
    0x00010416: ("br", ""),  # Portuguese (Brazil ABNT2)
    0x00010419: ("ru", "typewriter"),  # Russian (Typewriter)
    0x0001041B: ("sk", "qwerty"),  # Slovak (QWERTY)
    0x0001041F: ("tr", "f"),  # Turkish F
    0x00010426: ("lv", ""),  # Latvian (QWERTY)
    0x00010427: ("lt", "ibm"),  # Lithuanian (IBM)
    0x0001080C: ("be", ""),  # Belgian (Comma)
    0x00011009: ("ca", "multix"),  # Canadian Multilingual Standard
    0x00020409: ("us", "intl"),  # United States-International
    0x00020418: ("ro", "std"),  # Romanian (Standard)
    0x00030409: ("us", "dvorak-l"),  # United States-Dvorak for left hand
    0x00040409: ("us", "dvorak-r"),  # United States-Dvorak for right hand
    0x00050409: ("us", ""),  # United States-English (old US)
}

#: High-word values whose top nibble marks an input method (IME) layout.
IME_NIBBLE: Final = 0xE


def xkb_layout_for(keyboard_layout: int) -> tuple[str, str]:
    """The XKB (layout, variant) for a client's ``keyboardLayout`` KLID.

    An exact entry wins; an IME or unknown variant falls back to the
    language's plain layout (the low word); anything else is US English.
    """
    exact = KLID_TO_XKB.get(keyboard_layout)
    if exact is not None:
        return exact
    language = keyboard_layout & 0xFFFF
    return KLID_TO_XKB.get(language, DEFAULT_LAYOUT)


def setxkbmap_args(keyboard_layout: int) -> list[str]:
    """The ``setxkbmap`` arguments after ``-display :N`` for a client's KLID."""
    layout, variant = xkb_layout_for(keyboard_layout)
    return [layout, "-variant", variant] if variant else [layout]
