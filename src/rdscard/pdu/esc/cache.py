"""Card cache and reader information calls (MS-RDPESC 2.2.1.9-2.2.1.10, 2.2.2, 2.2.3).

ReadCache and WriteCache (A and W) with their common parts, GetReaderIcon
and GetDeviceTypeId, and their returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from rdscard.pdu.esc.base import NdrMessage, check_u32
from rdscard.pdu.esc.constants import MAX_ATTRIB_SIZE
from rdscard.pdu.ndr import (
    NdrReader,
    NdrWriter,
    RedirScardContext,
    Ref,
    check_sized,
    read_sized_bytes,
    write_sized_bytes,
)

UUID_SIZE: Final = 16
MAX_CACHE_DATA: Final = MAX_ATTRIB_SIZE


def _check_uuid(value: bytes | None) -> None:
    if value is not None and len(value) != UUID_SIZE:
        raise ValueError(f"CardIdentifier must be {UUID_SIZE} bytes, got {len(value)}")


def _write_uuid(w: NdrWriter, value: bytes | None) -> None:
    def referent(ww: NdrWriter) -> None:
        ww.align(4)
        ww.raw(value or b"")

    w.pointer(referent if value is not None else None)


def _read_uuid(r: NdrReader) -> Ref[bytes]:
    def referent(rr: NdrReader) -> bytes:
        rr.align(4, "CardIdentifier")
        return rr.raw(UUID_SIZE, "CardIdentifier")

    return r.pointer("CardIdentifier", referent)


def _write_name(w: NdrWriter, name: str, wide: bool) -> None:
    w.pointer(lambda ww: ww.varying_string(name, wide))


def _read_name(r: NdrReader, field: str, wide: bool) -> Ref[str]:
    return r.pointer(field, lambda rr: rr.varying_string(field, wide), required=True)


@dataclass(frozen=True, slots=True)
class ReadCacheACall(NdrMessage):
    """MS-RDPESC 2.2.2.25 ReadCacheA_Call: szLookupName and ReadCache_Common (2.2.1.9)."""

    PDU = "ReadCacheA_Call"
    WIDE: ClassVar[bool] = False
    sz_lookup_name: str
    context: RedirScardContext
    card_identifier: bytes | None
    freshness_counter: int
    f_pb_data_is_null: int
    cb_data_len: int

    def __post_init__(self) -> None:
        _check_uuid(self.card_identifier)
        check_u32(self.freshness_counter, "FreshnessCounter")
        check_u32(self.f_pb_data_is_null, "fPbDataIsNULL")
        check_u32(self.cb_data_len, "cbDataLen")

    def write(self, w: NdrWriter) -> None:
        _write_name(w, self.sz_lookup_name, self.WIDE)
        self.context.write(w)
        _write_uuid(w, self.card_identifier)
        w.u32(self.freshness_counter)
        w.u32(self.f_pb_data_is_null)
        w.u32(self.cb_data_len)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        name = _read_name(r, "szLookupName", cls.WIDE)
        context = RedirScardContext.read(r, "Common.Context")
        uuid = _read_uuid(r)
        freshness = r.u32("Common.FreshnessCounter")
        is_null = r.u32("Common.fPbDataIsNULL")
        cb = r.u32("Common.cbDataLen")
        return lambda: cls(name.get() or "", context(), uuid.get(), freshness, is_null, cb)


@dataclass(frozen=True, slots=True)
class ReadCacheWCall(ReadCacheACall):
    """MS-RDPESC 2.2.2.26 ReadCacheW_Call."""

    PDU = "ReadCacheW_Call"
    WIDE: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ReadCacheReturn(NdrMessage):
    """MS-RDPESC 2.2.3.1 ReadCache_Return."""

    PDU = "ReadCache_Return"
    return_code: int
    cb_data_len: int
    pb_data: bytes | None

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_sized(self.cb_data_len, self.pb_data, MAX_CACHE_DATA, "pbData")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, 0, None)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        write_sized_bytes(w, self.cb_data_len, self.pb_data)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        count, data = read_sized_bytes(r, "cbDataLen", "pbData", MAX_CACHE_DATA)
        return lambda: cls(code, count, data.get())


@dataclass(frozen=True, slots=True)
class WriteCacheACall(NdrMessage):
    """MS-RDPESC 2.2.2.27 WriteCacheA_Call: szLookupName and WriteCache_Common (2.2.1.10)."""

    PDU = "WriteCacheA_Call"
    WIDE: ClassVar[bool] = False
    sz_lookup_name: str
    context: RedirScardContext
    card_identifier: bytes | None
    freshness_counter: int
    cb_data_len: int
    pb_data: bytes | None

    def __post_init__(self) -> None:
        _check_uuid(self.card_identifier)
        check_u32(self.freshness_counter, "FreshnessCounter")
        check_sized(self.cb_data_len, self.pb_data, MAX_CACHE_DATA, "pbData")

    def write(self, w: NdrWriter) -> None:
        _write_name(w, self.sz_lookup_name, self.WIDE)
        self.context.write(w)
        _write_uuid(w, self.card_identifier)
        w.u32(self.freshness_counter)
        write_sized_bytes(w, self.cb_data_len, self.pb_data)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        name = _read_name(r, "szLookupName", cls.WIDE)
        context = RedirScardContext.read(r, "Common.Context")
        uuid = _read_uuid(r)
        freshness = r.u32("Common.FreshnessCounter")
        count, data = read_sized_bytes(r, "Common.cbDataLen", "Common.pbData", MAX_CACHE_DATA)
        return lambda: cls(name.get() or "", context(), uuid.get(), freshness, count, data.get())


@dataclass(frozen=True, slots=True)
class WriteCacheWCall(WriteCacheACall):
    """MS-RDPESC 2.2.2.28 WriteCacheW_Call."""

    PDU = "WriteCacheW_Call"
    WIDE: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class GetReaderIconCall(NdrMessage):
    """MS-RDPESC 2.2.2 GetReaderIcon_Call (the reader name is UTF-16)."""

    PDU = "GetReaderIcon_Call"
    context: RedirScardContext
    sz_reader_name: str

    def write(self, w: NdrWriter) -> None:
        self.context.write(w)
        _write_name(w, self.sz_reader_name, True)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        context = RedirScardContext.read(r)
        name = _read_name(r, "szReaderName", True)
        return lambda: cls(context(), name.get() or "")


class GetDeviceTypeIdCall(GetReaderIconCall):
    """MS-RDPESC 2.2.2 GetDeviceTypeId_Call (same layout as GetReaderIcon_Call)."""

    __slots__ = ()
    PDU = "GetDeviceTypeId_Call"


class GetReaderIconReturn(ReadCacheReturn):
    """MS-RDPESC 2.2.3 GetReaderIcon_Return (same layout as ReadCache_Return)."""

    __slots__ = ()
    PDU = "GetReaderIcon_Return"


@dataclass(frozen=True, slots=True)
class GetDeviceTypeIdReturn(NdrMessage):
    """MS-RDPESC 2.2.3 GetDeviceTypeId_Return."""

    PDU = "GetDeviceTypeId_Return"
    return_code: int
    dw_device_id: int

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_u32(self.dw_device_id, "dwDeviceId")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, 0)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        w.u32(self.dw_device_id)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        device = r.u32("dwDeviceId")
        return lambda: cls(code, device)
