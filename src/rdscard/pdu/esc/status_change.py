"""Reader state calls and returns (MS-RDPESC 2.2.1.5-2.2.1.7, 2.2.1.11, 2.2.2, 2.2.3.5).

GetStatusChange (A and W) and LocateCards / LocateCardsByATR (A and W),
with the reader state structures they carry, and the return both share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from rdscard.pdu.esc.base import NdrMessage, check_u32
from rdscard.pdu.esc.constants import (
    MAX_ATR_SIZE,
    MAX_GET_STATUS_CHANGE_READERS,
    MAX_LOCATE_CARDS_ATRS,
    MAX_LOCATE_CARDS_READERS,
    MAX_MULTISTRING_BYTES,
)
from rdscard.pdu.ndr import (
    NdrReader,
    NdrWriter,
    RedirScardContext,
    check_sized,
    read_sized_bytes,
    write_sized_bytes,
)


def _fixed(data: bytes, size: int, name: str) -> bytes:
    if len(data) > size:
        raise ValueError(f"{name}: {len(data)} bytes exceed {size}")
    return data + bytes(size - len(data))


def _check_atr(cb_atr: int, name: str) -> None:
    if not 0 <= cb_atr <= MAX_ATR_SIZE:
        raise ValueError(f"{name}: cbAtr {cb_atr} outside 0..{MAX_ATR_SIZE}")


@dataclass(frozen=True, slots=True)
class ReaderStateReturn:
    """MS-RDPESC 2.2.1.11 ReaderState_Return, the fields of ReaderState_Common_Call (2.2.1.5).

    ``rgb_atr`` is kept as all 36 bytes (zero-padded when shorter) so that
    bytes past ``cb_atr`` survive a round trip; :attr:`atr` is the ATR.
    """

    dw_current_state: int
    dw_event_state: int
    cb_atr: int
    rgb_atr: bytes = b""

    SIZE: ClassVar[int] = 12 + MAX_ATR_SIZE

    def __post_init__(self) -> None:
        check_u32(self.dw_current_state, "dwCurrentState")
        check_u32(self.dw_event_state, "dwEventState")
        _check_atr(self.cb_atr, "ReaderState")
        object.__setattr__(self, "rgb_atr", _fixed(self.rgb_atr, MAX_ATR_SIZE, "rgbAtr"))

    @property
    def atr(self) -> bytes:
        """The first ``cb_atr`` bytes of ``rgb_atr``."""
        return self.rgb_atr[: self.cb_atr]

    def write(self, w: NdrWriter) -> None:
        """dwCurrentState, dwEventState, cbAtr, rgbAtr[36]."""
        w.u32(self.dw_current_state)
        w.u32(self.dw_event_state)
        w.u32(self.cb_atr)
        w.raw(self.rgb_atr)

    @classmethod
    def read_fields(cls, r: NdrReader, field: str) -> Self:
        """Read the four fields of one element."""
        current = r.u32(f"{field}.dwCurrentState")
        event = r.u32(f"{field}.dwEventState")
        cb_atr = r.bounded_u32(f"{field}.cbAtr", MAX_ATR_SIZE)
        rgb_atr = r.raw(MAX_ATR_SIZE, f"{field}.rgbAtr")
        return cls(current, event, cb_atr, rgb_atr)


@dataclass(frozen=True, slots=True)
class ReaderStateA:
    """MS-RDPESC 2.2.1.6 ReaderStateA: a reader name and ReaderState_Common_Call."""

    WIDE: ClassVar[bool] = False
    sz_reader: str | None
    common: ReaderStateReturn

    def write(self, w: NdrWriter) -> None:
        """The name pointer and the common fields; the name follows the array."""
        name, wide = self.sz_reader, self.WIDE
        w.pointer((lambda ww: ww.varying_string(name, wide)) if name is not None else None)
        self.common.write(w)

    @classmethod
    def read(cls, r: NdrReader, field: str) -> Callable[[], Self]:
        """One element; the builder gives it once the name has been read."""
        wide = cls.WIDE
        name = r.pointer(
            f"{field}.szReader", lambda rr: rr.varying_string(f"{field}.szReader", wide)
        )
        common = ReaderStateReturn.read_fields(r, field)
        return lambda: cls(name.get(), common)


@dataclass(frozen=True, slots=True)
class ReaderStateW(ReaderStateA):
    """MS-RDPESC 2.2.1.7 ReaderStateW: the name in UTF-16."""

    WIDE: ClassVar[bool] = True


def _write_states(
    w: NdrWriter, states: Sequence[ReaderStateA] | Sequence[ReaderStateReturn]
) -> None:
    w.u32(len(states))

    def array(ww: NdrWriter) -> None:
        ww.u32(len(states))
        for state in states:
            state.write(ww)

    w.pointer(array if states else None)


def _read_states(
    r: NdrReader, element: Callable[[NdrReader, str], Callable[[], object]], limit: int
) -> Callable[[], list[object]]:
    count = r.bounded_u32("cReaders", limit)

    def array(rr: NdrReader) -> list[Callable[[], object]]:
        rr.conformant_count("rgReaderStates", limit, count)
        return [element(rr, f"rgReaderStates[{i}]") for i in range(count)]

    ref = r.pointer("rgReaderStates", array)
    if count and not ref.present:
        raise r.error("rgReaderStates", f"null pointer with cReaders {count}")
    return lambda: [build() for build in ref.get() or []]


def _return_element(r: NdrReader, field: str) -> Callable[[], ReaderStateReturn]:
    state = ReaderStateReturn.read_fields(r, field)
    return lambda: state


@dataclass(frozen=True, slots=True)
class GetStatusChangeACall(NdrMessage):
    """MS-RDPESC 2.2.2.11 GetStatusChangeA_Call."""

    PDU = "GetStatusChangeA_Call"
    STATE: ClassVar[type[ReaderStateA]] = ReaderStateA
    context: RedirScardContext
    dw_time_out: int
    rg_reader_states: tuple[ReaderStateA, ...]

    def __post_init__(self) -> None:
        check_u32(self.dw_time_out, "dwTimeOut")
        if len(self.rg_reader_states) > MAX_GET_STATUS_CHANGE_READERS:
            raise ValueError(f"at most {MAX_GET_STATUS_CHANGE_READERS} reader states")
        _check_kind(self.rg_reader_states, self.STATE)

    def write(self, w: NdrWriter) -> None:
        self.context.write(w)
        w.u32(self.dw_time_out)
        _write_states(w, self.rg_reader_states)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        context = RedirScardContext.read(r)
        timeout = r.u32("dwTimeOut")
        states = _read_states(r, cls.STATE.read, MAX_GET_STATUS_CHANGE_READERS)
        return lambda: cls(context(), timeout, tuple(states()))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class GetStatusChangeWCall(GetStatusChangeACall):
    """MS-RDPESC 2.2.2.12 GetStatusChangeW_Call."""

    PDU = "GetStatusChangeW_Call"
    STATE: ClassVar[type[ReaderStateA]] = ReaderStateW


def _check_kind(states: Sequence[object], kind: type) -> None:
    for state in states:
        if type(state) is not kind:
            raise ValueError(f"reader states must be {kind.__name__}, got {type(state).__name__}")


@dataclass(frozen=True, slots=True)
class GetStatusChangeReturn(NdrMessage):
    """MS-RDPESC 2.2.3.5 GetStatusChange_Return (for both A and W).

    The specification gives the shared typedef a range of 0-10 readers; a
    GetStatusChange call may carry 11, so its return accepts 11 too.
    """

    PDU = "GetStatusChange_Return"
    LIMIT: ClassVar[int] = MAX_GET_STATUS_CHANGE_READERS
    return_code: int
    rg_reader_states: tuple[ReaderStateReturn, ...]

    def __post_init__(self) -> None:
        check_u32(self.return_code, "ReturnCode")
        if len(self.rg_reader_states) > self.LIMIT:
            raise ValueError(f"at most {self.LIMIT} reader states")

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A failed return: ``return_code`` and no data."""
        return cls(return_code, ())

    def write(self, w: NdrWriter) -> None:
        w.u32(self.return_code)
        _write_states(w, self.rg_reader_states)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        code = r.u32("ReturnCode")
        states = _read_states(r, _return_element, cls.LIMIT)
        return lambda: cls(code, tuple(states()))  # type: ignore[arg-type]


class LocateCardsReturn(GetStatusChangeReturn):
    """MS-RDPESC 2.2.3.5 LocateCards_Return: at most 10 reader states."""

    __slots__ = ()
    PDU = "LocateCards_Return"
    LIMIT: ClassVar[int] = MAX_LOCATE_CARDS_READERS


@dataclass(frozen=True, slots=True)
class LocateCardsACall(NdrMessage):
    """MS-RDPESC 2.2.2 LocateCardsA_Call: card names as a multi-string."""

    PDU = "LocateCardsA_Call"
    STATE: ClassVar[type[ReaderStateA]] = ReaderStateA
    context: RedirScardContext
    c_bytes: int
    msz_cards: bytes | None
    rg_reader_states: tuple[ReaderStateA, ...]

    def __post_init__(self) -> None:
        check_sized(self.c_bytes, self.msz_cards, MAX_MULTISTRING_BYTES, "mszCards")
        if len(self.rg_reader_states) > MAX_LOCATE_CARDS_READERS:
            raise ValueError(f"at most {MAX_LOCATE_CARDS_READERS} reader states")
        _check_kind(self.rg_reader_states, self.STATE)

    def write(self, w: NdrWriter) -> None:
        self.context.write(w)
        write_sized_bytes(w, self.c_bytes, self.msz_cards)
        _write_states(w, self.rg_reader_states)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        context = RedirScardContext.read(r)
        count, cards = read_sized_bytes(r, "cBytes", "mszCards", MAX_MULTISTRING_BYTES)
        states = _read_states(r, cls.STATE.read, MAX_LOCATE_CARDS_READERS)
        return lambda: cls(
            context(), count, cards.get(), tuple(states())  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class LocateCardsWCall(LocateCardsACall):
    """MS-RDPESC 2.2.2 LocateCardsW_Call."""

    PDU = "LocateCardsW_Call"
    STATE: ClassVar[type[ReaderStateA]] = ReaderStateW


@dataclass(frozen=True, slots=True)
class LocateCardsAtrMask:
    """MS-RDPESC 2.2.1 LocateCards_ATRMask: an ATR and the mask to compare it under."""

    cb_atr: int
    rgb_atr: bytes = b""
    rgb_mask: bytes = b""

    def __post_init__(self) -> None:
        _check_atr(self.cb_atr, "LocateCards_ATRMask")
        object.__setattr__(self, "rgb_atr", _fixed(self.rgb_atr, MAX_ATR_SIZE, "rgbAtr"))
        object.__setattr__(self, "rgb_mask", _fixed(self.rgb_mask, MAX_ATR_SIZE, "rgbMask"))

    def write(self, w: NdrWriter) -> None:
        """cbAtr, rgbAtr[36], rgbMask[36]."""
        w.u32(self.cb_atr)
        w.raw(self.rgb_atr)
        w.raw(self.rgb_mask)

    @classmethod
    def read_fields(cls, r: NdrReader, field: str) -> Self:
        """One element of rgAtrMasks."""
        cb_atr = r.bounded_u32(f"{field}.cbAtr", MAX_ATR_SIZE)
        atr = r.raw(MAX_ATR_SIZE, f"{field}.rgbAtr")
        mask = r.raw(MAX_ATR_SIZE, f"{field}.rgbMask")
        return cls(cb_atr, atr, mask)


@dataclass(frozen=True, slots=True)
class LocateCardsByATRACall(NdrMessage):
    """MS-RDPESC 2.2.2 LocateCardsByATRA_Call."""

    PDU = "LocateCardsByATRA_Call"
    STATE: ClassVar[type[ReaderStateA]] = ReaderStateA
    context: RedirScardContext
    rg_atr_masks: tuple[LocateCardsAtrMask, ...]
    rg_reader_states: tuple[ReaderStateA, ...]

    def __post_init__(self) -> None:
        if len(self.rg_atr_masks) > MAX_LOCATE_CARDS_ATRS:
            raise ValueError(f"at most {MAX_LOCATE_CARDS_ATRS} ATR masks")
        if len(self.rg_reader_states) > MAX_LOCATE_CARDS_READERS:
            raise ValueError(f"at most {MAX_LOCATE_CARDS_READERS} reader states")
        _check_kind(self.rg_reader_states, self.STATE)

    def write(self, w: NdrWriter) -> None:
        self.context.write(w)
        masks = self.rg_atr_masks
        w.u32(len(masks))

        def array(ww: NdrWriter) -> None:
            ww.u32(len(masks))
            for mask in masks:
                mask.write(ww)

        w.pointer(array if masks else None)
        _write_states(w, self.rg_reader_states)

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        context = RedirScardContext.read(r)
        count = r.bounded_u32("cAtrs", MAX_LOCATE_CARDS_ATRS)

        def array(rr: NdrReader) -> list[LocateCardsAtrMask]:
            rr.conformant_count("rgAtrMasks", MAX_LOCATE_CARDS_ATRS, count)
            return [LocateCardsAtrMask.read_fields(rr, f"rgAtrMasks[{i}]") for i in range(count)]

        masks = r.pointer("rgAtrMasks", array)
        if count and not masks.present:
            raise r.error("rgAtrMasks", f"null pointer with cAtrs {count}")
        states = _read_states(r, cls.STATE.read, MAX_LOCATE_CARDS_READERS)
        return lambda: cls(
            context(), tuple(masks.get() or ()), tuple(states())  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class LocateCardsByATRWCall(LocateCardsByATRACall):
    """MS-RDPESC 2.2.2 LocateCardsByATRW_Call."""

    PDU = "LocateCardsByATRW_Call"
    STATE: ClassVar[type[ReaderStateA]] = ReaderStateW
