"""A whole slow-path MCS Send Data frame in one step (the static channel hot path).

Every static virtual channel chunk (MS-RDPBCGR 2.2.6.1) travels as a TPKT
packet (T.123 8) holding an X.224 Data TPDU (X.224 13.7) holding an MCS
Send Data Request (client to server) or Send Data Indication (server to
client, T.125 11.32 and 11.33, aligned PER). :mod:`tpkt`, :mod:`x224` and
:mod:`mcs` build and parse those layers one field at a time; every
redirected smart card call crosses them twice, so this module does the
common case with one ``struct`` call:

- :func:`encode_send_data_indication` writes the exact bytes the layered
  encoders give for a Send Data Indication (priority high, begin and end
  segmentation);
- :func:`parse_send_data_request` reads a frame that is exactly one such
  Send Data Request and returns ``None`` for anything else, so the caller
  falls back to the layered decoders, which also produce the errors.
"""

from __future__ import annotations

import struct
from typing import Final, overload

from rdscard.pdu.mcs import BASE_CHANNEL_ID

# TPKT version 3, reserved 0, length; X.224 LI 2, DT, EOT; MCS choice, initiator,
# channelId, dataPriority/segmentation, PER length (one byte or two).
_SHORT: Final = struct.Struct(">BBH3sBHHBB")
_LONG: Final = struct.Struct(">BBH3sBHHBH")
_X224_DATA: Final = b"\x02\xf0\x80"
_SEND_DATA_REQUEST: Final = 25 << 2  # DomainMCSPDU choice 25, T.125 7 part 10
_SEND_DATA_INDICATION: Final = 26 << 2
#: dataPriority high (1) in bits 7-6, segmentation begin|end (0b11) in bits 5-4.
_PRIORITY_HIGH_WHOLE: Final = 0x70
_SHORT_HEADER: Final = _SHORT.size  # 14
_LONG_HEADER: Final = _LONG.size  # 15
MAX_USER_DATA: Final = 0x7FFF  # the PER length determinant's two-byte limit
_REQUEST_PREFIX: Final = _X224_DATA + bytes([_SEND_DATA_REQUEST])


def encode_send_data_indication(initiator: int, channel_id: int, user_data: bytes) -> bytes:
    """TPKT + X.224 Data + MCS Send Data Indication carrying ``user_data``."""
    length = len(user_data)
    if length < 0x80:
        head = _SHORT.pack(
            3, 0, _SHORT_HEADER + length, _X224_DATA, _SEND_DATA_INDICATION,
            initiator - BASE_CHANNEL_ID, channel_id, _PRIORITY_HIGH_WHOLE, length,
        )
    elif length <= MAX_USER_DATA:
        head = _LONG.pack(
            3, 0, _LONG_HEADER + length, _X224_DATA, _SEND_DATA_INDICATION,
            initiator - BASE_CHANNEL_ID, channel_id, _PRIORITY_HIGH_WHOLE, 0x8000 | length,
        )
    else:
        raise ValueError(f"MCS user data of {length} bytes exceeds {MAX_USER_DATA}")
    return head + user_data


@overload
def parse_send_data_request(frame: bytes) -> tuple[int, bytes] | None: ...
@overload
def parse_send_data_request(frame: memoryview) -> tuple[int, memoryview] | None: ...
def parse_send_data_request(
    frame: bytes | memoryview,
) -> tuple[int, bytes | memoryview] | None:
    """(channelId, userData) of a TPKT frame that is exactly one MCS Send Data Request.

    ``frame`` is one complete TPKT packet (its length already checked by
    the framing): bytes, or a view of a wipeable buffer (the Client Info,
    before any sign-in), and userData is of the same kind. ``None`` when
    the frame is anything else or not in the
    usual shape; the layered decoders then handle it.
    """
    if len(frame) < _SHORT_HEADER or frame[4:8] != _REQUEST_PREFIX:
        return None
    first = frame[13]
    if first < 0x80:
        start = _SHORT_HEADER
        length = first
    elif len(frame) >= _LONG_HEADER:
        start = _LONG_HEADER
        length = ((first & 0x7F) << 8) | frame[14]
    else:
        return None
    if start + length != len(frame):
        return None
    return (frame[10] << 8) | frame[11], frame[start:]


__all__ = ["MAX_USER_DATA", "encode_send_data_indication", "parse_send_data_request"]
