"""rdpdr Device I/O requests and responses (MS-RDPEFS 2.2.1.4, 2.2.1.5).

The server sends DR_DEVICE_IOREQUEST messages (header PAKID_CORE_DEVICE_IOREQUEST)
and the client answers with DR_DEVICE_IOCOMPLETION (PAKID_CORE_DEVICE_IOCOMPLETION).
A response does not say which request it answers except by CompletionId, so
:func:`read_io_completion_header` gives the three common fields and the
caller, which knows the pending request, decodes the matching response type.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final, Self

from rdscard.pdu.buffer import Reader, Writer, decode_utf16le
from rdscard.pdu.rdpdr import Component, NtStatus, PacketId, open_core

# The struct forms of the Device Control messages live apart (compiled); named here too.
from rdscard.pdu.rdpdr_wire import IOCOMPLETION_HEADER as IOCOMPLETION_HEADER
from rdscard.pdu.rdpdr_wire import MAX_IOCTL_BUFFER as MAX_IOCTL_BUFFER
from rdscard.pdu.rdpdr_wire import (
    encode_device_control_request as encode_device_control_request,
)
from rdscard.pdu.rdpdr_wire import (
    parse_device_control_response as parse_device_control_response,
)

#: Largest Path accepted in a Device Create Request, in bytes.
MAX_PATH_LENGTH: Final = 2 * 32768
DEVICE_IO_REQUEST_SIZE: Final = 24
DEVICE_IO_RESPONSE_SIZE: Final = 16
DEVICE_CONTROL_PADDING: Final = 20
DEVICE_CLOSE_REQUEST_PADDING: Final = 32
DEVICE_CLOSE_RESPONSE_PADDING: Final = 4


class MajorFunction(IntEnum):
    """DR_DEVICE_IOREQUEST MajorFunction (MS-RDPEFS 2.2.1.4)."""

    IRP_MJ_CREATE = 0x00000000
    IRP_MJ_CLOSE = 0x00000002
    IRP_MJ_READ = 0x00000003
    IRP_MJ_WRITE = 0x00000004
    IRP_MJ_QUERY_INFORMATION = 0x00000005
    IRP_MJ_SET_INFORMATION = 0x00000006
    IRP_MJ_QUERY_VOLUME_INFORMATION = 0x0000000A
    IRP_MJ_SET_VOLUME_INFORMATION = 0x0000000B
    IRP_MJ_DIRECTORY_CONTROL = 0x0000000C
    IRP_MJ_DEVICE_CONTROL = 0x0000000E
    IRP_MJ_LOCK_CONTROL = 0x00000011


@dataclass(frozen=True)
class DeviceIoRequestHeader:
    """DR_DEVICE_IOREQUEST (MS-RDPEFS 2.2.1.4) after the RDPDR_HEADER."""

    device_id: int
    file_id: int
    completion_id: int
    major_function: MajorFunction
    minor_function: int = 0

    def write(self, w: Writer) -> Writer:
        w.u32le(self.device_id).u32le(self.file_id).u32le(self.completion_id)
        return w.u32le(self.major_function).u32le(self.minor_function)

    @classmethod
    def read(cls, r: Reader) -> Self:
        device_id = r.u32le("DeviceId")
        file_id = r.u32le("FileId")
        completion_id = r.u32le("CompletionId")
        major = r.u32le("MajorFunction")
        try:
            major_function = MajorFunction(major)
        except ValueError:
            raise r.error("MajorFunction", f"unknown major function 0x{major:X}") from None
        return cls(device_id, file_id, completion_id, major_function, r.u32le("MinorFunction"))


def _io_request(
    pdu: str, data: bytes, major: MajorFunction
) -> tuple[Reader, DeviceIoRequestHeader]:
    r = open_core(data, pdu, PacketId.PAKID_CORE_DEVICE_IOREQUEST)
    header = DeviceIoRequestHeader.read(r)
    if header.major_function != major:
        raise r.error("MajorFunction", f"expected {major.name}, got {header.major_function.name}")
    return r, header


def _request_writer(
    device_id: int, file_id: int, completion_id: int, major: MajorFunction, minor: int
) -> Writer:
    w = Writer().u16le(Component.RDPDR_CTYP_CORE).u16le(PacketId.PAKID_CORE_DEVICE_IOREQUEST)
    return DeviceIoRequestHeader(device_id, file_id, completion_id, major, minor).write(w)


@dataclass(frozen=True)
class DeviceControlRequest:
    """DR_CONTROL_REQ (MS-RDPEFS 2.2.1.4.5): an IOCTL with its input buffer.

    OutputBufferLength, InputBufferLength, IoControlCode, 20 padding bytes,
    InputBuffer. InputBufferLength is written from ``input_buffer``.
    """

    PDU: ClassVar[str] = "Device Control Request"

    device_id: int
    completion_id: int
    io_control_code: int
    input_buffer: bytes
    output_buffer_length: int = 2048
    file_id: int = 0
    minor_function: int = 0

    @property
    def size(self) -> int:
        """Encoded length: 56 bytes of headers plus the input buffer."""
        return DEVICE_IO_REQUEST_SIZE + 12 + DEVICE_CONTROL_PADDING + len(self.input_buffer)

    def encode(self) -> bytes:
        return encode_device_control_request(
            self.device_id, self.completion_id, self.io_control_code, self.input_buffer,
            self.output_buffer_length, self.file_id, self.minor_function,
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r, h = _io_request(cls.PDU, data, MajorFunction.IRP_MJ_DEVICE_CONTROL)
        out_len = r.u32le("OutputBufferLength")
        in_len = r.u32le("InputBufferLength")
        code = r.u32le("IoControlCode")
        if in_len > MAX_IOCTL_BUFFER:
            raise r.error("InputBufferLength", f"{in_len} bytes, limit {MAX_IOCTL_BUFFER}")
        r.skip(DEVICE_CONTROL_PADDING, "Padding")
        buf = r.raw(in_len, "InputBuffer")
        r.expect_end()
        return cls(h.device_id, h.completion_id, code, buf, out_len, h.file_id, h.minor_function)


@dataclass(frozen=True)
class DeviceCreateRequest:
    """DR_CREATE_REQ (MS-RDPEFS 2.2.1.4.1).

    Smart card redirection needs no IRP_MJ_CREATE (FileId 0 is used); this
    is here for clients that want one. Path is UTF-16LE with a NUL, or empty.
    """

    PDU: ClassVar[str] = "Device Create Request"

    device_id: int
    completion_id: int
    desired_access: int
    allocation_size: int = 0
    file_attributes: int = 0
    shared_access: int = 0
    create_disposition: int = 0
    create_options: int = 0
    path: str = ""
    file_id: int = 0
    minor_function: int = 0

    def _path_bytes(self) -> bytes:
        return self.path.encode("utf-16-le") + b"\0\0" if self.path else b""

    def encode(self) -> bytes:
        w = _request_writer(
            self.device_id,
            self.file_id,
            self.completion_id,
            MajorFunction.IRP_MJ_CREATE,
            self.minor_function,
        )
        path = self._path_bytes()
        w.u32le(self.desired_access).u64le(self.allocation_size).u32le(self.file_attributes)
        w.u32le(self.shared_access).u32le(self.create_disposition).u32le(self.create_options)
        return w.u32le(len(path)).raw(path).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r, h = _io_request(cls.PDU, data, MajorFunction.IRP_MJ_CREATE)
        access = r.u32le("DesiredAccess")
        allocation = r.u64le("AllocationSize")
        attributes = r.u32le("FileAttributes")
        shared = r.u32le("SharedAccess")
        disposition = r.u32le("CreateDisposition")
        options = r.u32le("CreateOptions")
        length = r.u32le("PathLength")
        if length > MAX_PATH_LENGTH:
            raise r.error("PathLength", f"{length} bytes, limit {MAX_PATH_LENGTH}")
        raw = r.raw(length, "Path")
        r.expect_end()
        path = ""
        if length:
            if length % 2 or raw[-2:] != b"\0\0":
                raise r.error("Path", "not a NUL-terminated UTF-16 string")
            path = decode_utf16le(raw[:-2], r, "Path")
        return cls(
            h.device_id,
            h.completion_id,
            access,
            allocation,
            attributes,
            shared,
            disposition,
            options,
            path,
            h.file_id,
            h.minor_function,
        )


@dataclass(frozen=True)
class DeviceCloseRequest:
    """DR_CLOSE_REQ (MS-RDPEFS 2.2.1.4.2): the I/O header and 32 padding bytes."""

    PDU: ClassVar[str] = "Device Close Request"
    SIZE: ClassVar[int] = DEVICE_IO_REQUEST_SIZE + DEVICE_CLOSE_REQUEST_PADDING

    device_id: int
    file_id: int
    completion_id: int
    minor_function: int = 0

    def encode(self) -> bytes:
        w = _request_writer(
            self.device_id,
            self.file_id,
            self.completion_id,
            MajorFunction.IRP_MJ_CLOSE,
            self.minor_function,
        )
        return w.zeros(DEVICE_CLOSE_REQUEST_PADDING).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r, h = _io_request(cls.PDU, data, MajorFunction.IRP_MJ_CLOSE)
        r.skip(DEVICE_CLOSE_REQUEST_PADDING, "Padding")
        r.expect_end()
        return cls(h.device_id, h.file_id, h.completion_id, h.minor_function)


DeviceIoRequest = DeviceControlRequest | DeviceCreateRequest | DeviceCloseRequest


def decode_io_request(data: bytes) -> DeviceIoRequest:
    """A Device Create, Close or Control request (what a scripted client reads)."""
    r = open_core(data, "Device I/O Request", PacketId.PAKID_CORE_DEVICE_IOREQUEST)
    header = DeviceIoRequestHeader.read(r)
    if header.major_function == MajorFunction.IRP_MJ_DEVICE_CONTROL:
        return DeviceControlRequest.decode(data)
    if header.major_function == MajorFunction.IRP_MJ_CREATE:
        return DeviceCreateRequest.decode(data)
    if header.major_function == MajorFunction.IRP_MJ_CLOSE:
        return DeviceCloseRequest.decode(data)
    raise r.error("MajorFunction", f"{header.major_function.name} is not supported")


# -- responses -------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceIoResponseHeader:
    """DR_DEVICE_IOCOMPLETION (MS-RDPEFS 2.2.1.5) after the RDPDR_HEADER."""

    device_id: int
    completion_id: int
    io_status: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u32le("DeviceId"), r.u32le("CompletionId"), r.u32le("IoStatus"))


def _response_writer(device_id: int, completion_id: int, io_status: int) -> Writer:
    w = Writer().u16le(Component.RDPDR_CTYP_CORE).u16le(PacketId.PAKID_CORE_DEVICE_IOCOMPLETION)
    return w.u32le(device_id).u32le(completion_id).u32le(io_status)


def _io_response(pdu: str, data: bytes) -> tuple[Reader, DeviceIoResponseHeader]:
    r = open_core(data, pdu, PacketId.PAKID_CORE_DEVICE_IOCOMPLETION)
    return r, DeviceIoResponseHeader.read(r)


def read_io_completion_header(data: bytes) -> DeviceIoResponseHeader:
    """DeviceId, CompletionId and IoStatus of a Device I/O Response."""
    return _io_response("Device I/O Response", data)[1]


@dataclass(frozen=True)
class DeviceControlResponse:
    """DR_CONTROL_RSP (MS-RDPEFS 2.2.1.5.5): OutputBufferLength and OutputBuffer.

    A failed IRP may end right after IoStatus (no OutputBufferLength); that
    decodes as an empty output. A successful one must carry the length.
    """

    PDU: ClassVar[str] = "Device Control Response"

    device_id: int
    completion_id: int
    io_status: int
    output_buffer: bytes = b""

    @property
    def size(self) -> int:
        """Encoded length: 20 bytes plus the output buffer."""
        return DEVICE_IO_RESPONSE_SIZE + 4 + len(self.output_buffer)

    def encode(self) -> bytes:
        w = _response_writer(self.device_id, self.completion_id, self.io_status)
        return w.u32le(len(self.output_buffer)).raw(self.output_buffer).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        usual = parse_device_control_response(data)
        if usual is not None:
            return cls(*usual)
        r, h = _io_response(cls.PDU, data)
        if r.remaining == 0 and h.io_status != NtStatus.STATUS_SUCCESS:
            return cls(h.device_id, h.completion_id, h.io_status, b"")
        length = r.u32le("OutputBufferLength")
        if length > MAX_IOCTL_BUFFER:
            raise r.error("OutputBufferLength", f"{length} bytes, limit {MAX_IOCTL_BUFFER}")
        out = r.raw(length, "OutputBuffer")
        r.expect_end()
        return cls(h.device_id, h.completion_id, h.io_status, out)


@dataclass(frozen=True)
class DeviceCreateResponse:
    """DR_CREATE_RSP (MS-RDPEFS 2.2.1.5.1): FileId and the optional Information byte."""

    PDU: ClassVar[str] = "Device Create Response"

    device_id: int
    completion_id: int
    io_status: int
    file_id: int
    information: int | None = 0

    def encode(self) -> bytes:
        w = _response_writer(self.device_id, self.completion_id, self.io_status)
        w.u32le(self.file_id)
        if self.information is not None:
            w.u8(self.information)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r, h = _io_response(cls.PDU, data)
        file_id = r.u32le("FileId")
        information = r.u8("Information") if r.remaining else None
        r.expect_end()
        return cls(h.device_id, h.completion_id, h.io_status, file_id, information)


@dataclass(frozen=True)
class DeviceCloseResponse:
    """DR_CLOSE_RSP (MS-RDPEFS 2.2.1.5.2): the I/O response header and 4 padding bytes."""

    PDU: ClassVar[str] = "Device Close Response"
    SIZE: ClassVar[int] = DEVICE_IO_RESPONSE_SIZE + DEVICE_CLOSE_RESPONSE_PADDING

    device_id: int
    completion_id: int
    io_status: int

    def encode(self) -> bytes:
        w = _response_writer(self.device_id, self.completion_id, self.io_status)
        return w.zeros(DEVICE_CLOSE_RESPONSE_PADDING).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r, h = _io_response(cls.PDU, data)
        # Some clients send 5 padding bytes, some none: up to 8 are tolerated.
        if r.remaining > 8:
            raise r.error("Padding", f"{r.remaining} bytes of padding")
        r.rest()
        return cls(h.device_id, h.completion_id, h.io_status)
