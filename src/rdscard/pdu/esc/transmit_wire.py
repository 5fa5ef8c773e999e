"""Transmit_Call and Transmit_Return in their usual shape, in one step.

MS-RDPESC 2.2.2.19 and 2.2.3.11. Transmit is the call every smart card
session makes most. The general NDR machinery (:mod:`rdscard.pdu.ndr`)
serialises any structure field by field with deferred pointers; this
module writes and reads the one shape that nearly every transmit has, with
``struct``:

- a call with a bare send PCI (no extra bytes), the APDU, and no receive
  PCI: the exact bytes ``TransmitCall.encode`` gives for it;
- a return with no receive PCI, and the response or nothing.

:func:`parse_transmit_return` answers ``None`` for any other shape (and for
anything malformed) so the caller uses the general decoder, which also
reports the errors. Layout (MS-RPCE 2.2.6 type serialization version 1,
NDR referent ids 0x00020000 + 4n in order of appearance): the two headers,
the flat part, then the deferred conformant arrays, each 4-aligned, and
padding to a multiple of 8.
"""

from __future__ import annotations

import struct
from typing import Final

from rdscard.pdu.esc.constants import MAX_BUFFER_SIZE_EXTENDED
from rdscard.pdu.ndr import COMMON_TYPE_HEADER, MAX_REDIR_HANDLE, REFERENT_ID_BASE

# Headers (common, ObjectBufferLength, Filler) and the 48-byte flat part of Transmit_Call:
# hCard {Context {cbContext, pbContext*}, cbHandle, pbHandle*}, ioSendPci {dwProtocol,
# cbExtraBytes, pbExtraBytes*}, cbSendLength, pbSendBuffer*, pioRecvPci*,
# fpbRecvBufferIsNULL, cbRecvLength.
_CALL_HEAD: Final = struct.Struct("<8sII12I")
# Headers and the flat part of Transmit_Return: ReturnCode, pioRecvPci*, cbRecvLength,
# pbRecvBuffer*, then the array's max count when the pointer is not null.
_RETURN_HEAD: Final = struct.Struct("<8sII4I")
_U32: Final = struct.Struct("<I")
_ZEROS: Final = bytes(8)


def _conformant(data: bytes) -> bytes:
    """A conformant byte array (max count, bytes) padded to the next 4-byte boundary."""
    return _U32.pack(len(data)) + data + _ZEROS[: -len(data) % 4]


def encode_transmit_call(
    context: bytes,
    handle: bytes,
    protocol: int,
    apdu: bytes,
    cb_recv_length: int,
    fpb_recv_buffer_is_null: int = 0,
) -> bytes:
    """A whole Transmit_Call with a bare send PCI, ``apdu`` and no receive PCI."""
    if len(context) > MAX_REDIR_HANDLE or len(handle) > MAX_REDIR_HANDLE:
        raise ValueError("a context or card handle exceeds 16 bytes")
    if len(apdu) > MAX_BUFFER_SIZE_EXTENDED:
        raise ValueError(f"pbSendBuffer of {len(apdu)} bytes exceeds {MAX_BUFFER_SIZE_EXTENDED}")
    referent = REFERENT_ID_BASE
    deferred = []
    context_ptr = handle_ptr = 0
    if context:
        context_ptr = referent
        referent += 4
        deferred.append(_conformant(context))
    if handle:
        handle_ptr = referent
        referent += 4
        deferred.append(_conformant(handle))
    deferred.append(_conformant(apdu))
    tail = b"".join(deferred)
    body_length = 48 + len(tail)
    padding = -body_length % 8
    head = _CALL_HEAD.pack(
        COMMON_TYPE_HEADER, body_length + padding, 0,
        len(context), context_ptr, len(handle), handle_ptr,
        protocol & 0xFFFFFFFF, 0, 0,
        len(apdu), referent, 0,
        fpb_recv_buffer_is_null & 0xFFFFFFFF, cb_recv_length & 0xFFFFFFFF,
    )
    return head + tail + _ZEROS[:padding]


def parse_transmit_return(data: bytes) -> tuple[int, int, bytes | None] | None:
    """(ReturnCode, cbRecvLength, pbRecvBuffer) of a Transmit_Return without receive PCI.

    ``None`` for any other shape or malformed bytes: use the general decoder.
    """
    size = len(data)
    if size < 32:
        return None
    header, length, filler, code, pci, count, pointer = _RETURN_HEAD.unpack_from(data)
    if (
        header != COMMON_TYPE_HEADER or filler or pci or length != size - 16 or length % 8
        or count > MAX_BUFFER_SIZE_EXTENDED
    ):
        return None
    if pointer == 0:
        end = 32
        buffer = None
    elif pointer == REFERENT_ID_BASE and size >= 36 and _U32.unpack_from(data, 32)[0] == count:
        end = 36 + count
        buffer = data[36:end]
    else:
        return None
    # Only padding to the 8-byte boundary may follow, or one more 8-byte block (FreeRDP 2.x).
    left = size - end
    pad = -(end - 16) % 8
    if left != pad and left != pad + 8:
        return None
    return code, count, buffer


__all__ = ["encode_transmit_call", "parse_transmit_return"]
