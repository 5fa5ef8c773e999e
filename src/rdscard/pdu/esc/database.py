"""Reader database calls (MS-RDPESC 2.2.2.5-2.2.2.8).

ContextAndStringA/W_Call (IntroduceReaderGroup, ForgetReaderGroup,
ForgetReader) and ContextAndTwoStringA/W_Call (IntroduceReader,
AddReaderToGroup, RemoveReaderFromGroup); all are answered by Long_Return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Self

from rdscard.pdu.esc.base import NdrMessage
from rdscard.pdu.ndr import NdrReader, NdrWriter, RedirScardContext


def _write_name(w: NdrWriter, name: str | None, wide: bool) -> None:
    w.pointer((lambda ww: ww.varying_string(name, wide)) if name is not None else None)


@dataclass(frozen=True, slots=True)
class ContextAndStringACall(NdrMessage):
    """MS-RDPESC 2.2.2 ContextAndStringA_Call: a context and one name."""

    PDU = "ContextAndStringA_Call"
    WIDE: ClassVar[bool] = False
    context: RedirScardContext
    sz: str

    def write(self, w: NdrWriter) -> None:
        self.context.write(w)
        _write_name(w, self.sz, self.WIDE)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        wide = cls.WIDE
        context = RedirScardContext.read(r)
        name = r.pointer("sz", lambda rr: rr.varying_string("sz", wide), required=True)
        return lambda: cls(context(), name.get() or "")


@dataclass(frozen=True, slots=True)
class ContextAndStringWCall(ContextAndStringACall):
    """MS-RDPESC 2.2.2 ContextAndStringW_Call."""

    PDU = "ContextAndStringW_Call"
    WIDE: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ContextAndTwoStringACall(NdrMessage):
    """MS-RDPESC 2.2.2 ContextAndTwoStringA_Call: a context and two names."""

    PDU = "ContextAndTwoStringA_Call"
    WIDE: ClassVar[bool] = False
    context: RedirScardContext
    sz1: str | None
    sz2: str | None

    def write(self, w: NdrWriter) -> None:
        self.context.write(w)
        _write_name(w, self.sz1, self.WIDE)
        _write_name(w, self.sz2, self.WIDE)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        wide = cls.WIDE
        context = RedirScardContext.read(r)
        sz1 = r.pointer("sz1", lambda rr: rr.varying_string("sz1", wide))
        sz2 = r.pointer("sz2", lambda rr: rr.varying_string("sz2", wide))
        return lambda: cls(context(), sz1.get(), sz2.get())


@dataclass(frozen=True, slots=True)
class ContextAndTwoStringWCall(ContextAndTwoStringACall):
    """MS-RDPESC 2.2.2 ContextAndTwoStringW_Call."""

    PDU = "ContextAndTwoStringW_Call"
    WIDE: ClassVar[bool] = True
