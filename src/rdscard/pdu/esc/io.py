"""Card I/O calls and returns (MS-RDPESC 2.2.1.8, 2.2.2.19-2.2.2.22, 2.2.3).

Transmit with its SCardIO_Request PCI structures, Control, GetAttrib and
SetAttrib; GetAttrib_Return's layout also serves every byte-buffer return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from rdscard.pdu.esc.base import NdrMessage, check_u32
from rdscard.pdu.esc.constants import (
    MAX_ATTRIB_SIZE,
    MAX_BUFFER_SIZE_EXTENDED,
    MAX_PCI_EXTRA_BYTES,
)
from rdscard.pdu.esc.transmit_wire import encode_transmit_call, parse_transmit_return
from rdscard.pdu.ndr import (
    NdrReader,
    NdrWriter,
    RedirScardHandle,
    Ref,
    check_sized,
    encode_top,
    read_sized_bytes,
    write_sized_bytes,
)


@dataclass(frozen=True, slots=True)
class SCardIORequest:
    """MS-RDPESC 2.2.1.8 SCardIO_Request: a protocol and its extra PCI bytes."""

    dw_protocol: int
    cb_extra_bytes: int = 0
    pb_extra_bytes: bytes | None = None

    def __post_init__(self) -> None:
        check_u32(self.dw_protocol, "dwProtocol")
        check_sized(self.cb_extra_bytes, self.pb_extra_bytes, MAX_PCI_EXTRA_BYTES, "pbExtraBytes")

    def write(self, w: NdrWriter) -> None:
        """dwProtocol, cbExtraBytes and the pointer to the extra bytes."""
        w.u32(self.dw_protocol)
        write_sized_bytes(w, self.cb_extra_bytes, self.pb_extra_bytes)

    @classmethod
    def read(cls, r: NdrReader, field: str) -> Callable[[], SCardIORequest]:
        """The flat part; the builder gives the request once the bytes are read."""
        protocol = r.u32(f"{field}.dwProtocol")
        count, extra = read_sized_bytes(
            r, f"{field}.cbExtraBytes", f"{field}.pbExtraBytes", MAX_PCI_EXTRA_BYTES
        )
        if count and not extra.present:
            raise r.error(f"{field}.pbExtraBytes", f"null pointer with cbExtraBytes {count}")
        return lambda: cls(protocol, count, extra.get())


def _optional_request(r: NdrReader, field: str) -> Ref[Callable[[], SCardIORequest]]:
    return r.pointer(field, lambda rr: SCardIORequest.read(rr, field))


def _write_optional_request(w: NdrWriter, request: SCardIORequest | None) -> None:
    w.pointer(request.write if request is not None else None)


def _build_optional(ref: Ref[Callable[[], SCardIORequest]]) -> SCardIORequest | None:
    build = ref.get()
    return build() if build is not None else None


@dataclass(frozen=True, slots=True)
class TransmitCall(NdrMessage):
    """MS-RDPESC 2.2.2.19 Transmit_Call."""

    PDU = "Transmit_Call"
    h_card: RedirScardHandle
    io_send_pci: SCardIORequest
    cb_send_length: int
    pb_send_buffer: bytes | None
    pio_recv_pci: SCardIORequest | None
    fpb_recv_buffer_is_null: int
    cb_recv_length: int

    def __post_init__(self) -> None:
        check_sized(
            self.cb_send_length, self.pb_send_buffer, MAX_BUFFER_SIZE_EXTENDED, "pbSendBuffer"
        )
        check_u32(self.fpb_recv_buffer_is_null, "fpbRecvBufferIsNULL")
        check_u32(self.cb_recv_length, "cbRecvLength")

    @classmethod
    def simple(
        cls, h_card: RedirScardHandle, protocol: int, apdu: bytes, cb_recv_length: int
    ) -> Self:
        """The usual call: a bare PCI, the APDU, no receive PCI."""
        return cls(h_card, SCardIORequest(protocol), len(apdu), apdu, None, 0, cb_recv_length)

    def encode(self) -> bytes:
        """The usual shape in one step (:mod:`.transmit_wire`), any other through NDR."""
        pci = self.io_send_pci
        if (
            self.pio_recv_pci is None
            and pci.pb_extra_bytes is None
            and pci.cb_extra_bytes == 0
            and self.pb_send_buffer is not None
        ):
            return encode_transmit_call(
                self.h_card.context.pb_context, self.h_card.pb_handle, pci.dw_protocol,
                self.pb_send_buffer, self.cb_recv_length, self.fpb_recv_buffer_is_null,
            )
        return encode_top(self.write)

    def write(self, w: NdrWriter) -> None:
        self.h_card.write(w)
        self.io_send_pci.write(w)
        write_sized_bytes(w, self.cb_send_length, self.pb_send_buffer)
        _write_optional_request(w, self.pio_recv_pci)
        w.u32(self.fpb_recv_buffer_is_null)
        w.u32(self.cb_recv_length)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        handle = RedirScardHandle.read(r)
        send_pci = SCardIORequest.read(r, "ioSendPci")
        count, send = read_sized_bytes(r, "cbSendLength", "pbSendBuffer", MAX_BUFFER_SIZE_EXTENDED)
        if count and not send.present:
            raise r.error("pbSendBuffer", f"null pointer with cbSendLength {count}")
        recv_pci = _optional_request(r, "pioRecvPci")
        is_null = r.u32("fpbRecvBufferIsNULL")
        cb_recv = r.u32("cbRecvLength")
        return lambda: cls(
            handle(), send_pci(), count, send.get(), _build_optional(recv_pci), is_null, cb_recv
        )


@dataclass(frozen=True, slots=True)
class TransmitReturn(NdrMessage):
    """MS-RDPESC 2.2.3.11 Transmit_Return."""

    PDU = "Transmit_Return"
    return_code: int
    pio_recv_pci: SCardIORequest | None
    cb_recv_length: int
    pb_recv_buffer: bytes | None

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_sized(
            self.cb_recv_length, self.pb_recv_buffer, MAX_BUFFER_SIZE_EXTENDED, "pbRecvBuffer"
        )

    @classmethod
    def with_response(cls, return_code: int, response: bytes | None) -> Self:
        """A return carrying ``response`` (or nothing) and no receive PCI."""
        return cls(return_code, None, len(response) if response is not None else 0, response)

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, None, 0, None)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """The usual shape in one step (:mod:`.transmit_wire`), any other through NDR."""
        usual = parse_transmit_return(data)
        if usual is not None:
            return cls(usual[0], None, usual[1], usual[2])
        return cls.decode_ndr(data)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        _write_optional_request(w, self.pio_recv_pci)
        write_sized_bytes(w, self.cb_recv_length, self.pb_recv_buffer)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        recv_pci = _optional_request(r, "pioRecvPci")
        count, recv = read_sized_bytes(r, "cbRecvLength", "pbRecvBuffer", MAX_BUFFER_SIZE_EXTENDED)
        return lambda: cls(code, _build_optional(recv_pci), count, recv.get())


@dataclass(frozen=True, slots=True)
class ControlCall(NdrMessage):
    """MS-RDPESC 2.2.2.20 Control_Call."""

    PDU = "Control_Call"
    h_card: RedirScardHandle
    dw_control_code: int
    cb_in_buffer_size: int
    pv_in_buffer: bytes | None
    fpv_out_buffer_is_null: int
    cb_out_buffer_size: int

    def __post_init__(self) -> None:
        check_u32(self.dw_control_code, "dwControlCode")
        check_sized(
            self.cb_in_buffer_size, self.pv_in_buffer, MAX_BUFFER_SIZE_EXTENDED, "pvInBuffer"
        )
        check_u32(self.fpv_out_buffer_is_null, "fpvOutBufferIsNULL")
        check_u32(self.cb_out_buffer_size, "cbOutBufferSize")

    def write(self, w: NdrWriter) -> None:
        self.h_card.write(w)
        w.u32(self.dw_control_code)
        write_sized_bytes(w, self.cb_in_buffer_size, self.pv_in_buffer)
        w.u32(self.fpv_out_buffer_is_null)
        w.u32(self.cb_out_buffer_size)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        handle = RedirScardHandle.read(r)
        code = r.u32("dwControlCode")
        count, data = read_sized_bytes(
            r, "cbInBufferSize", "pvInBuffer", MAX_BUFFER_SIZE_EXTENDED
        )
        is_null = r.u32("fpvOutBufferIsNULL")
        cb_out = r.u32("cbOutBufferSize")
        return lambda: cls(handle(), code, count, data.get(), is_null, cb_out)


@dataclass(frozen=True, slots=True)
class ControlReturn(NdrMessage):
    """MS-RDPESC 2.2.3 Control_Return."""

    PDU = "Control_Return"
    return_code: int
    cb_out_buffer_size: int
    pv_out_buffer: bytes | None

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_sized(
            self.cb_out_buffer_size, self.pv_out_buffer, MAX_BUFFER_SIZE_EXTENDED, "pvOutBuffer"
        )

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, 0, None)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        write_sized_bytes(w, self.cb_out_buffer_size, self.pv_out_buffer)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        count, data = read_sized_bytes(
            r, "cbOutBufferSize", "pvOutBuffer", MAX_BUFFER_SIZE_EXTENDED
        )
        return lambda: cls(code, count, data.get())


@dataclass(frozen=True, slots=True)
class GetAttribCall(NdrMessage):
    """MS-RDPESC 2.2.2.21 GetAttrib_Call."""

    PDU = "GetAttrib_Call"
    h_card: RedirScardHandle
    dw_attr_id: int
    fpb_attr_is_null: int
    cb_attr_len: int

    def __post_init__(self) -> None:
        check_u32(self.dw_attr_id, "dwAttrId")
        check_u32(self.fpb_attr_is_null, "fpbAttrIsNULL")
        check_u32(self.cb_attr_len, "cbAttrLen")

    def write(self, w: NdrWriter) -> None:
        self.h_card.write(w)
        w.u32(self.dw_attr_id)
        w.u32(self.fpb_attr_is_null)
        w.u32(self.cb_attr_len)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        handle = RedirScardHandle.read(r)
        attr = r.u32("dwAttrId")
        is_null = r.u32("fpbAttrIsNULL")
        cb = r.u32("cbAttrLen")
        return lambda: cls(handle(), attr, is_null, cb)


@dataclass(frozen=True, slots=True)
class GetAttribReturn(NdrMessage):
    """MS-RDPESC 2.2.3.12 GetAttrib_Return: a return code and a byte buffer."""

    PDU = "GetAttrib_Return"
    return_code: int
    cb_attr_len: int
    pb_attr: bytes | None

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_sized(self.cb_attr_len, self.pb_attr, MAX_ATTRIB_SIZE, "pbAttr")

    @classmethod
    def with_data(cls, return_code: int, data: bytes | None) -> Self:
        """A return carrying ``data`` (or nothing), with the length to match."""
        return cls(return_code, len(data) if data is not None else 0, data)

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, 0, None)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        write_sized_bytes(w, self.cb_attr_len, self.pb_attr)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        count, data = read_sized_bytes(r, "cbAttrLen", "pbAttr", MAX_ATTRIB_SIZE)
        return lambda: cls(code, count, data.get())


@dataclass(frozen=True, slots=True)
class SetAttribCall(NdrMessage):
    """MS-RDPESC 2.2.2.22 SetAttrib_Call."""

    PDU = "SetAttrib_Call"
    h_card: RedirScardHandle
    dw_attr_id: int
    cb_attr_len: int
    pb_attr: bytes | None

    def __post_init__(self) -> None:
        check_u32(self.dw_attr_id, "dwAttrId")
        check_sized(self.cb_attr_len, self.pb_attr, MAX_ATTRIB_SIZE, "pbAttr")

    def write(self, w: NdrWriter) -> None:
        self.h_card.write(w)
        w.u32(self.dw_attr_id)
        write_sized_bytes(w, self.cb_attr_len, self.pb_attr)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        handle = RedirScardHandle.read(r)
        attr = r.u32("dwAttrId")
        count, data = read_sized_bytes(r, "cbAttrLen", "pbAttr", MAX_ATTRIB_SIZE)
        if count and not data.present:
            raise r.error("pbAttr", f"null pointer with cbAttrLen {count}")
        return lambda: cls(handle(), attr, count, data.get())
