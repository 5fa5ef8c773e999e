"""Context calls and returns (MS-RDPESC 2.2.2.1-2.2.2.4, 2.2.2.30, 2.2.3.2-2.2.3.4).

EstablishContext, ReleaseContext / IsValidContext / Cancel (Context_Call),
ListReaderGroups and ListReaders (A and W share one layout: the
multi-strings are byte arrays), AccessStartedEvent, and the Long_Return
that answers every call without output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.base import NdrMessage, check_u32
from rdscard.pdu.esc.constants import MAX_MULTISTRING_BYTES
from rdscard.pdu.ndr import (
    COMMON_TYPE_HEADER,
    HEADERS_LENGTH,
    NdrReader,
    NdrWriter,
    RedirScardContext,
    check_sized,
    decode_multistring,
    decode_top,
    read_sized_bytes,
    write_sized_bytes,
)

#: rdesktop 1.9's failed EstablishContext after the ReturnCode: cbContext 4, a null
#: pointer, max count 4 and a zero handle (see EstablishContextReturn._short_failure).
_RDESKTOP_NULL_CONTEXT = bytes.fromhex("04000000" "00000000" "04000000" "00000000")


@dataclass(frozen=True, slots=True)
class EstablishContextCall(NdrMessage):
    """MS-RDPESC 2.2.2.1 EstablishContext_Call."""

    PDU = "EstablishContext_Call"
    dw_scope: int

    def __post_init__(self) -> None:
        check_u32(self.dw_scope, "dwScope")

    def write(self, w: NdrWriter) -> None:
        w.u32(self.dw_scope)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        scope = r.u32("dwScope")
        return lambda: cls(scope)


@dataclass(frozen=True, slots=True)
class EstablishContextReturn(NdrMessage):
    """MS-RDPESC 2.2.3.2 EstablishContext_Return."""

    PDU = "EstablishContext_Return"
    return_code: int
    context: RedirScardContext

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, RedirScardContext())

    @classmethod
    def _failure_of_its_own(cls, body: bytes, tolerated: bool) -> Self | None:
        """rdesktop 1.9's failure: a null context pointer with cbContext 4.

        rdesktop (scard.c TS_SCardEstablishContext) writes its success layout
        whatever happened: cbContext 4, the handle as referent id, then max
        count 4 and the handle. A failed call has handle 0, so a null pointer
        with cbContext 4 and the two words after it that belong to no
        referent; then its padding, behind an ObjectBufferLength understated
        by 8. Only that exact shape with a non-zero ReturnCode is a failure.
        """
        code = int.from_bytes(body[:4], "little")
        if (not tolerated or code == 0 or len(body) not in (24, 32)
                or body[4:20] != _RDESKTOP_NULL_CONTEXT or any(body[20:])):
            return None
        return cls.failure(code)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        self.context.write(w)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        context = RedirScardContext.read(r)
        return lambda: cls(code, context())


@dataclass(frozen=True, slots=True)
class ContextCall(NdrMessage):
    """MS-RDPESC 2.2.2.2 Context_Call: ReleaseContext, IsValidContext and Cancel."""

    PDU = "Context_Call"
    context: RedirScardContext

    def write(self, w: NdrWriter) -> None:
        self.context.write(w)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        context = RedirScardContext.read(r)
        return lambda: cls(context())


@dataclass(frozen=True, slots=True)
class LongReturn(NdrMessage):
    """MS-RDPESC 2.2.3.3 Long_Return: the return code alone."""

    PDU = "Long_Return"
    return_code: int

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode, also accepting xfreerdp's unpadded answer to the StartedEvent IOCTLs.

        xfreerdp skips the 8-byte padding for AccessStartedEvent and
        ReleaseStartedEvent, so ObjectBufferLength is 4 there.
        """
        if (
            len(data) == HEADERS_LENGTH + 4
            and data[: len(COMMON_TYPE_HEADER)] == COMMON_TYPE_HEADER
            and data[8:16] == bytes.fromhex("0400000000000000")
        ):
            return cls(int.from_bytes(data[16:20], "little"))
        return decode_top(data, cls.PDU, cls.read)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        return lambda: cls(code)


@dataclass(frozen=True, slots=True)
class AccessStartedEventCall(NdrMessage):
    """MS-RDPESC 2.2.2.30 ScardAccessStartedEvent_Call (also sent for ReleaseStartedEvent).

    Four unused bytes with no NDR serialization and no headers: Windows
    sends them bare and FreeRDP skips the headers for these two IOCTLs.
    """

    PDU = "ScardAccessStartedEvent_Call"
    unused: int = 0

    def __post_init__(self) -> None:
        check_u32(self.unused, "Unused")

    def write(self, w: NdrWriter) -> None:
        w.u32(self.unused)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        unused = r.u32("Unused")
        return lambda: cls(unused)

    def encode(self) -> bytes:
        """The four bytes of Unused."""
        return self.unused.to_bytes(4, "little")

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Exactly four bytes."""
        if len(data) != 4:
            raise ProtocolError(cls.PDU, "Unused", f"{len(data)} bytes, expected 4")
        return cls(int.from_bytes(data, "little"))


@dataclass(frozen=True, slots=True)
class ListReaderGroupsCall(NdrMessage):
    """MS-RDPESC 2.2.2.3 ListReaderGroups_Call."""

    PDU = "ListReaderGroups_Call"
    context: RedirScardContext
    fmsz_groups_is_null: int
    cch_groups: int

    def __post_init__(self) -> None:
        check_u32(self.fmsz_groups_is_null, "fmszGroupsIsNULL")
        check_u32(self.cch_groups, "cchGroups")

    def write(self, w: NdrWriter) -> None:
        self.context.write(w)
        w.u32(self.fmsz_groups_is_null)
        w.u32(self.cch_groups)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        context = RedirScardContext.read(r)
        is_null = r.u32("fmszGroupsIsNULL")
        cch = r.u32("cchGroups")
        return lambda: cls(context(), is_null, cch)


@dataclass(frozen=True, slots=True)
class ListReadersCall(NdrMessage):
    """MS-RDPESC 2.2.2.4 ListReaders_Call (ListReadersA and ListReadersW)."""

    PDU = "ListReaders_Call"
    context: RedirScardContext
    c_bytes: int
    msz_groups: bytes | None
    fmsz_readers_is_null: int
    cch_readers: int

    def __post_init__(self) -> None:
        check_sized(self.c_bytes, self.msz_groups, MAX_MULTISTRING_BYTES, "mszGroups")
        check_u32(self.fmsz_readers_is_null, "fmszReadersIsNULL")
        check_u32(self.cch_readers, "cchReaders")

    @classmethod
    def for_groups(
        cls, context: RedirScardContext, msz_groups: bytes | None, cch_readers: int
    ) -> Self:
        """A call asking for the reader names (fmszReadersIsNULL 0)."""
        size = len(msz_groups) if msz_groups is not None else 0
        return cls(context, size, msz_groups, 0, cch_readers)

    def write(self, w: NdrWriter) -> None:
        self.context.write(w)
        write_sized_bytes(w, self.c_bytes, self.msz_groups)
        w.u32(self.fmsz_readers_is_null)
        w.u32(self.cch_readers)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        context = RedirScardContext.read(r)
        count, groups = read_sized_bytes(r, "cBytes", "mszGroups", MAX_MULTISTRING_BYTES)
        is_null = r.u32("fmszReadersIsNULL")
        cch = r.u32("cchReaders")
        return lambda: cls(context(), count, groups.get(), is_null, cch)


@dataclass(frozen=True, slots=True)
class ListReadersReturn(NdrMessage):
    """MS-RDPESC 2.2.3.4 ListReaderGroups_Return and ListReaders_Return.

    ``msz`` is ``None`` when the pointer is null (an error, or a length
    query whose answer is ``c_bytes``).
    """

    PDU = "ListReaders_Return"
    return_code: int
    c_bytes: int
    msz: bytes | None

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        check_sized(self.c_bytes, self.msz, MAX_MULTISTRING_BYTES, "msz")

    @classmethod
    def with_msz(cls, return_code: int, msz: bytes | None) -> Self:
        """A return carrying ``msz`` (or nothing), with ``c_bytes`` to match."""
        return cls(return_code, len(msz) if msz is not None else 0, msz)

    def names(self, wide: bool) -> tuple[str, ...]:
        """The reader (or group) names of ``msz``; raises ProtocolError when malformed."""
        return decode_multistring(self.msz or b"", wide, self.PDU, "msz")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, 0, None)

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        write_sized_bytes(w, self.c_bytes, self.msz)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        count, msz = read_sized_bytes(r, "cBytes", "msz", MAX_MULTISTRING_BYTES)
        return lambda: cls(code, count, msz.get())


class ListReaderGroupsReturn(ListReadersReturn):
    """MS-RDPESC 2.2.3.4 ListReaderGroups_Return (same layout as ListReaders_Return)."""

    __slots__ = ()
    PDU = "ListReaderGroups_Return"
