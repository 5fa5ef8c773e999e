"""Translation between the two PC/SC worlds: Windows (MS-RDPESC) and pcsc-lite.

The RDP client speaks Windows values (MS-RDPESC 2.2.5 and the WinSCard
headers); programs in the session speak pcsc-lite's. Return codes and
attribute ids have the same values in both; reader states, protocol bits
and control codes differ.
"""

from __future__ import annotations

from typing import Final

from rdscard.pdu.esc.constants import ScardReaderState

# pcsc-lite protocol bits (pcsclite.h)
PCSC_T0: Final = 0x0001
PCSC_T1: Final = 0x0002
PCSC_RAW: Final = 0x0004
PCSC_T15: Final = 0x0008
# Windows protocol bits (winscard.h)
WIN_T0: Final = 0x0001
WIN_T1: Final = 0x0002
WIN_RAW: Final = 0x00010000

# pcsc-lite readerState bits (pcsclite.h SCARD_ABSENT...)
PCSC_UNKNOWN: Final = 0x0001
PCSC_ABSENT: Final = 0x0002
PCSC_PRESENT: Final = 0x0004
PCSC_SWALLOWED: Final = 0x0008
PCSC_POWERED: Final = 0x0010
PCSC_NEGOTIABLE: Final = 0x0020
PCSC_SPECIFIC: Final = 0x0040

# readerSharing values of pcscd's reader table
SHARING_NO_CONTEXT: Final = 0
SHARING_LAST_CONTEXT: Final = 1
SHARING_EXCLUSIVE: Final = -1

PCSC_CTL_BASE: Final = 0x42000000
WIN_CTL_BASE: Final = 0x00310000  # CTL_CODE(FILE_DEVICE_SMART_CARD, n, METHOD_BUFFERED, 0)


WIN_E_UNSUPPORTED_FEATURE: Final = 0x80100022
PCSC_E_UNSUPPORTED_FEATURE: Final = 0x8010001F  # pcsclite.h: the same value as E_UNEXPECTED


def error_from_windows(code: int) -> int:
    """A Windows SCARD_* return code as pcsc-lite spells it.

    The values agree but for SCARD_E_UNSUPPORTED_FEATURE, which pcsc-lite
    defines as 0x8010001F (FreeRDP maps it to the Windows 0x80100022 on the
    way to the server; this maps it back for programs in the session).
    """
    return PCSC_E_UNSUPPORTED_FEATURE if code == WIN_E_UNSUPPORTED_FEATURE else code


def protocols_to_windows(pcsc: int) -> int:
    """pcsc-lite protocol bits to Windows ones (RAW moves from 4 to 0x10000)."""
    out = pcsc & (PCSC_T0 | PCSC_T1)
    if pcsc & PCSC_RAW:
        out |= WIN_RAW
    return out


def protocols_from_windows(windows: int) -> int:
    """Windows protocol bits to pcsc-lite ones."""
    out = windows & (WIN_T0 | WIN_T1)
    if windows & WIN_RAW:
        out |= PCSC_RAW
    return out


def driver_protocol(pcsc: int) -> int:
    """The protocol number pcscd hands a reader driver (SCARD_IO_HEADER.Protocol).

    pcsc-lite winscard.c SCardTransmit: T=1 is 1, RAW stays SCARD_PROTOCOL_RAW,
    anything else is T=0, 0. Drivers such as vpcd leave it in the receive
    header, and pcscd returns it to the program as ioRecvPci.dwProtocol.
    """
    if pcsc == PCSC_T1:
        return 1
    if pcsc == PCSC_RAW:
        return PCSC_RAW
    return 0


def control_code_to_windows(pcsc_code: int) -> int:
    """pcsc-lite SCARD_CTL_CODE(n) = 0x42000000 + n to Windows CTL_CODE(0x31, n, 0, 0).

    Codes outside pcsc-lite's range pass through unchanged.
    """
    function = pcsc_code - PCSC_CTL_BASE
    if 0 <= function < 0x1000:
        return WIN_CTL_BASE | (function << 2)
    return pcsc_code


def control_code_from_windows(windows_code: int) -> int:
    """The inverse of :func:`control_code_to_windows`."""
    if windows_code & 0xFFFF0000 == WIN_CTL_BASE and windows_code & 0x3 == 0:
        return PCSC_CTL_BASE + ((windows_code & 0xFFFF) >> 2)
    return windows_code


def reader_state_from_windows(event_state: int) -> tuple[int, int]:
    """A Windows dwEventState to pcsc-lite (readerState bits, readerSharing)."""
    state = ScardReaderState(event_state & 0xFFFF)
    if state & ScardReaderState.SCARD_STATE_PRESENT:
        bits = PCSC_PRESENT
        if state & ScardReaderState.SCARD_STATE_MUTE:
            bits |= PCSC_SWALLOWED
        else:
            bits |= PCSC_POWERED | PCSC_NEGOTIABLE
    elif state & ScardReaderState.SCARD_STATE_EMPTY:
        bits = PCSC_ABSENT
    else:
        bits = PCSC_UNKNOWN
    if state & ScardReaderState.SCARD_STATE_EXCLUSIVE:
        sharing = SHARING_EXCLUSIVE
    elif state & ScardReaderState.SCARD_STATE_INUSE:
        sharing = SHARING_LAST_CONTEXT
    else:
        sharing = SHARING_NO_CONTEXT
    return bits, sharing


def card_state_from_windows(state: int) -> int:
    """A Windows SCardStatus dwState (SCARD_ABSENT 1 ... SCARD_SPECIFIC 6) to pcsc-lite bits."""
    return {
        0: PCSC_UNKNOWN,
        1: PCSC_ABSENT,
        2: PCSC_PRESENT,
        3: PCSC_PRESENT | PCSC_SWALLOWED,
        4: PCSC_PRESENT | PCSC_POWERED,
        5: PCSC_PRESENT | PCSC_POWERED | PCSC_NEGOTIABLE,
        6: PCSC_PRESENT | PCSC_POWERED | PCSC_SPECIFIC,
    }.get(state, PCSC_UNKNOWN)
