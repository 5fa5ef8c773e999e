"""Card handle calls and returns (MS-RDPESC 2.2.1, 2.2.2.13-2.2.2.18, 2.2.3).

Connect (A and W), Reconnect, Disconnect / BeginTransaction /
EndTransaction (HCardAndDisposition_Call), Status (A and W), State and
GetTransmitCount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Self

from rdscard.pdu.esc.base import NdrMessage, check_u32
from rdscard.pdu.esc.constants import MAX_ATR_SIZE, MAX_MULTISTRING_BYTES, STATUS_ATR_SIZE
from rdscard.pdu.ndr import (
    NdrReader,
    NdrWriter,
    RedirScardContext,
    RedirScardHandle,
    check_sized,
    decode_multistring,
    read_sized_bytes,
    write_sized_bytes,
)


@dataclass(frozen=True, slots=True)
class ConnectACall(NdrMessage):
    """MS-RDPESC 2.2.2.13 ConnectA_Call: szReader and Connect_Common (2.2.1)."""

    PDU = "ConnectA_Call"
    WIDE: ClassVar[bool] = False
    sz_reader: str
    context: RedirScardContext
    dw_share_mode: int
    dw_preferred_protocols: int

    def __post_init__(self) -> None:
        check_u32(self.dw_share_mode, "dwShareMode")
        check_u32(self.dw_preferred_protocols, "dwPreferredProtocols")

    def write(self, w: NdrWriter) -> None:
        name, wide = self.sz_reader, self.WIDE
        w.pointer(lambda ww: ww.varying_string(name, wide))
        self.context.write(w)
        w.u32(self.dw_share_mode)
        w.u32(self.dw_preferred_protocols)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        wide = cls.WIDE
        name = r.pointer(
            "szReader", lambda rr: rr.varying_string("szReader", wide), required=True
        )
        context = RedirScardContext.read(r, "Common.Context")
        share = r.u32("Common.dwShareMode")
        protocols = r.u32("Common.dwPreferredProtocols")
        return lambda: cls(name.get() or "", context(), share, protocols)


@dataclass(frozen=True, slots=True)
class ConnectWCall(ConnectACall):
    """MS-RDPESC 2.2.2.14 ConnectW_Call."""

    PDU = "ConnectW_Call"
    WIDE: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ConnectReturn(NdrMessage):
    """MS-RDPESC 2.2.3 Connect_Return."""

    PDU = "Connect_Return"
    return_code: int
    h_card: RedirScardHandle
    dw_active_protocol: int

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_u32(self.dw_active_protocol, "dwActiveProtocol")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, RedirScardHandle(RedirScardContext()), 0)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        self.h_card.write(w)
        w.u32(self.dw_active_protocol)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        handle = RedirScardHandle.read(r)
        protocol = r.u32("dwActiveProtocol")
        return lambda: cls(code, handle(), protocol)


@dataclass(frozen=True, slots=True)
class ReconnectCall(NdrMessage):
    """MS-RDPESC 2.2.2.15 Reconnect_Call."""

    PDU = "Reconnect_Call"
    h_card: RedirScardHandle
    dw_share_mode: int
    dw_preferred_protocols: int
    dw_initialization: int

    def __post_init__(self) -> None:
        check_u32(self.dw_share_mode, "dwShareMode")
        check_u32(self.dw_preferred_protocols, "dwPreferredProtocols")
        check_u32(self.dw_initialization, "dwInitialization")

    def write(self, w: NdrWriter) -> None:
        self.h_card.write(w)
        w.u32(self.dw_share_mode)
        w.u32(self.dw_preferred_protocols)
        w.u32(self.dw_initialization)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        handle = RedirScardHandle.read(r)
        share = r.u32("dwShareMode")
        protocols = r.u32("dwPreferredProtocols")
        init = r.u32("dwInitialization")
        return lambda: cls(handle(), share, protocols, init)


@dataclass(frozen=True, slots=True)
class ReconnectReturn(NdrMessage):
    """MS-RDPESC 2.2.3 Reconnect_Return."""

    PDU = "Reconnect_Return"
    return_code: int
    dw_active_protocol: int

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_u32(self.dw_active_protocol, "dwActiveProtocol")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, 0)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        w.u32(self.dw_active_protocol)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        protocol = r.u32("dwActiveProtocol")
        return lambda: cls(code, protocol)


@dataclass(frozen=True, slots=True)
class HCardAndDispositionCall(NdrMessage):
    """MS-RDPESC 2.2.2.16 HCardAndDisposition_Call: Disconnect, Begin/EndTransaction."""

    PDU = "HCardAndDisposition_Call"
    h_card: RedirScardHandle
    dw_disposition: int

    def __post_init__(self) -> None:
        check_u32(self.dw_disposition, "dwDisposition")

    def write(self, w: NdrWriter) -> None:
        self.h_card.write(w)
        w.u32(self.dw_disposition)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        handle = RedirScardHandle.read(r)
        disposition = r.u32("dwDisposition")
        return lambda: cls(handle(), disposition)


@dataclass(frozen=True, slots=True)
class StatusCall(NdrMessage):
    """MS-RDPESC 2.2.2.18 Status_Call (StatusA and StatusW)."""

    PDU = "Status_Call"
    h_card: RedirScardHandle
    fmsz_reader_names_is_null: int
    cch_reader_len: int
    cb_atr_len: int

    def __post_init__(self) -> None:
        check_u32(self.fmsz_reader_names_is_null, "fmszReaderNamesIsNULL")
        check_u32(self.cch_reader_len, "cchReaderLen")
        check_u32(self.cb_atr_len, "cbAtrLen")

    def write(self, w: NdrWriter) -> None:
        self.h_card.write(w)
        w.u32(self.fmsz_reader_names_is_null)
        w.u32(self.cch_reader_len)
        w.u32(self.cb_atr_len)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        handle = RedirScardHandle.read(r)
        is_null = r.u32("fmszReaderNamesIsNULL")
        cch = r.u32("cchReaderLen")
        cb_atr = r.u32("cbAtrLen")
        return lambda: cls(handle(), is_null, cch, cb_atr)


@dataclass(frozen=True, slots=True)
class StatusReturn(NdrMessage):
    """MS-RDPESC 2.2.3.10 Status_Return.

    ``pb_atr`` is kept as all 32 bytes; :attr:`atr` is its first ``cb_atr_len``.
    """

    PDU = "Status_Return"
    return_code: int
    c_bytes: int
    msz_reader_names: bytes | None
    dw_state: int
    dw_protocol: int
    pb_atr: bytes
    cb_atr_len: int

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_sized(self.c_bytes, self.msz_reader_names, MAX_MULTISTRING_BYTES, "mszReaderNames")
        check_u32(self.dw_state, "dwState")
        check_u32(self.dw_protocol, "dwProtocol")
        if not 0 <= self.cb_atr_len <= STATUS_ATR_SIZE:
            raise ValueError(f"cbAtrLen {self.cb_atr_len} outside 0..{STATUS_ATR_SIZE}")
        if len(self.pb_atr) > STATUS_ATR_SIZE:
            raise ValueError(f"pbAtr of {len(self.pb_atr)} bytes exceeds {STATUS_ATR_SIZE}")
        object.__setattr__(
            self, "pb_atr", self.pb_atr + bytes(STATUS_ATR_SIZE - len(self.pb_atr))
        )

    @property
    def atr(self) -> bytes:
        """The card's ATR."""
        return self.pb_atr[: self.cb_atr_len]

    def names(self, wide: bool) -> tuple[str, ...]:
        """The reader names; raises ProtocolError when malformed."""
        return decode_multistring(self.msz_reader_names or b"", wide, self.PDU, "mszReaderNames")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, 0, None, 0, 0, b"", 0)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        write_sized_bytes(w, self.c_bytes, self.msz_reader_names)
        w.u32(self.dw_state)
        w.u32(self.dw_protocol)
        w.raw(self.pb_atr)
        w.u32(self.cb_atr_len)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        count, names = read_sized_bytes(r, "cBytes", "mszReaderNames", MAX_MULTISTRING_BYTES)
        state = r.u32("dwState")
        protocol = r.u32("dwProtocol")
        atr = r.raw(STATUS_ATR_SIZE, "pbAtr")
        cb_atr = r.bounded_u32("cbAtrLen", STATUS_ATR_SIZE)
        return lambda: cls(code, count, names.get(), state, protocol, atr, cb_atr)


@dataclass(frozen=True, slots=True)
class StateCall(NdrMessage):
    """MS-RDPESC 2.2.2.17 State_Call."""

    PDU = "State_Call"
    h_card: RedirScardHandle
    fpb_atr_is_null: int
    cb_atr_len: int

    def __post_init__(self) -> None:
        check_u32(self.fpb_atr_is_null, "fpbAtrIsNULL")
        check_u32(self.cb_atr_len, "cbAtrLen")

    def write(self, w: NdrWriter) -> None:
        self.h_card.write(w)
        w.u32(self.fpb_atr_is_null)
        w.u32(self.cb_atr_len)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        handle = RedirScardHandle.read(r)
        is_null = r.u32("fpbAtrIsNULL")
        cb_atr = r.u32("cbAtrLen")
        return lambda: cls(handle(), is_null, cb_atr)


@dataclass(frozen=True, slots=True)
class StateReturn(NdrMessage):
    """MS-RDPESC 2.2.3.9 State_Return."""

    PDU = "State_Return"
    return_code: int
    dw_state: int
    dw_protocol: int
    cb_atr_len: int
    rg_atr: bytes | None

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_u32(self.dw_state, "dwState")
        check_u32(self.dw_protocol, "dwProtocol")
        check_sized(self.cb_atr_len, self.rg_atr, MAX_ATR_SIZE, "rgAtr")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, 0, 0, 0, None)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        w.u32(self.dw_state)
        w.u32(self.dw_protocol)
        write_sized_bytes(w, self.cb_atr_len, self.rg_atr)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        state = r.u32("dwState")
        protocol = r.u32("dwProtocol")
        count, atr = read_sized_bytes(r, "cbAtrLen", "rgAtr", MAX_ATR_SIZE)
        return lambda: cls(code, state, protocol, count, atr.get())


@dataclass(frozen=True, slots=True)
class GetTransmitCountCall(NdrMessage):
    """MS-RDPESC 2.2.2 GetTransmitCount_Call."""

    PDU = "GetTransmitCount_Call"
    h_card: RedirScardHandle

    def write(self, w: NdrWriter) -> None:
        self.h_card.write(w)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        handle = RedirScardHandle.read(r)
        return lambda: cls(handle())


@dataclass(frozen=True, slots=True)
class GetTransmitCountReturn(NdrMessage):
    """MS-RDPESC 2.2.3 GetTransmitCount_Return."""

    PDU = "GetTransmitCount_Return"
    return_code: int
    c_transmit_count: int

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_u32(self.c_transmit_count, "cTransmitCount")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, 0)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        w.u32(self.c_transmit_count)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        count = r.u32("cTransmitCount")
        return lambda: cls(code, count)
