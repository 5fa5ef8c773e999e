"""The Device Control Request and Response in one step (the smart card hot path).

MS-RDPEFS 2.2.1.4.5 DR_CONTROL_REQ and 2.2.1.5.5 DR_CONTROL_RSP, each an
RDPDR_HEADER and a DR_DEVICE_IOREQUEST / DR_DEVICE_IOCOMPLETION. Every
redirected smart card call is one of each. :mod:`rdscard.pdu.rdpdr_io`
holds the messages as objects and re-exports these functions; they are
apart so that they can be compiled (``rdscard.compiled``) while the
message classes stay interpreted.
"""

from __future__ import annotations

import struct
from typing import Final

from rdscard.pdu.rdpdr import Component, PacketId

#: Largest InputBuffer or OutputBuffer accepted in a device control message.
MAX_IOCTL_BUFFER: Final = 1024 * 1024
#: IRP_MJ_DEVICE_CONTROL (MS-RDPEFS 2.2.1.4, MajorFunction).
_DEVICE_CONTROL: Final = 0x0000000E
_CORE: Final = int(Component.RDPDR_CTYP_CORE)
_IOREQUEST: Final = int(PacketId.PAKID_CORE_DEVICE_IOREQUEST)
# RDPDR_HEADER, DR_DEVICE_IOREQUEST and DR_CONTROL_REQ up to the InputBuffer: 56 bytes.
_CONTROL_REQUEST: Final = struct.Struct("<HHIIIIIIII20x")
# RDPDR_HEADER, DR_DEVICE_IOCOMPLETION and OutputBufferLength: 20 bytes.
_CONTROL_RESPONSE: Final = struct.Struct("<HHIIII")
_CONTROL_RESPONSE_SIZE: Final = 20
#: The RDPDR_HEADER of every Device I/O Response.
IOCOMPLETION_HEADER: Final = struct.pack("<HH", Component.RDPDR_CTYP_CORE,
                                         PacketId.PAKID_CORE_DEVICE_IOCOMPLETION)


def encode_device_control_request(
    device_id: int,
    completion_id: int,
    io_control_code: int,
    input_buffer: bytes,
    output_buffer_length: int = 2048,
    file_id: int = 0,
    minor_function: int = 0,
) -> bytes:
    """The bytes of a ``DeviceControlRequest``, without building one."""
    return _CONTROL_REQUEST.pack(
        _CORE, _IOREQUEST, device_id, file_id, completion_id, _DEVICE_CONTROL, minor_function,
        output_buffer_length, len(input_buffer), io_control_code,
    ) + input_buffer


def parse_device_control_response(data: bytes) -> tuple[int, int, int, bytes] | None:
    """(DeviceId, CompletionId, IoStatus, OutputBuffer) of a well-formed DR_CONTROL_RSP.

    The hot path of ``DeviceControlResponse.decode``, without building one:
    ``None`` for anything else, which the full decoder then judges.
    """
    if len(data) < _CONTROL_RESPONSE_SIZE or data[:4] != IOCOMPLETION_HEADER:
        return None
    _, _, device_id, completion_id, io_status, length = _CONTROL_RESPONSE.unpack_from(data)
    if length != len(data) - _CONTROL_RESPONSE_SIZE or length > MAX_IOCTL_BUFFER:
        return None
    return device_id, completion_id, io_status, data[_CONTROL_RESPONSE_SIZE:]


__all__ = [
    "IOCOMPLETION_HEADER",
    "MAX_IOCTL_BUFFER",
    "encode_device_control_request",
    "parse_device_control_response",
]
