"""Property tests over every MS-RDPESC call and return (MS-RDPESC 2.2.2, 2.2.3).

Generated structures survive encode/decode unchanged; arbitrary bytes, and
arbitrary bodies behind valid headers, raise nothing but ProtocolError.
"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.base import NdrMessage
from rdscard.pdu.esc.cache import (
    GetDeviceTypeIdCall,
    GetDeviceTypeIdReturn,
    GetReaderIconCall,
    GetReaderIconReturn,
    ReadCacheACall,
    ReadCacheReturn,
    ReadCacheWCall,
    WriteCacheACall,
    WriteCacheWCall,
)
from rdscard.pdu.esc.card import (
    ConnectACall,
    ConnectReturn,
    ConnectWCall,
    GetTransmitCountCall,
    GetTransmitCountReturn,
    HCardAndDispositionCall,
    ReconnectCall,
    ReconnectReturn,
    StateCall,
    StateReturn,
    StatusCall,
    StatusReturn,
)
from rdscard.pdu.esc.context import (
    AccessStartedEventCall,
    ContextCall,
    EstablishContextCall,
    EstablishContextReturn,
    ListReaderGroupsCall,
    ListReaderGroupsReturn,
    ListReadersCall,
    ListReadersReturn,
    LongReturn,
)
from rdscard.pdu.esc.database import (
    ContextAndStringACall,
    ContextAndStringWCall,
    ContextAndTwoStringACall,
    ContextAndTwoStringWCall,
)
from rdscard.pdu.esc.dispatch import IOCTL_MESSAGES
from rdscard.pdu.esc.io import (
    ControlCall,
    ControlReturn,
    GetAttribCall,
    GetAttribReturn,
    SCardIORequest,
    SetAttribCall,
    TransmitCall,
    TransmitReturn,
)
from rdscard.pdu.esc.status_change import (
    GetStatusChangeACall,
    GetStatusChangeReturn,
    GetStatusChangeWCall,
    LocateCardsACall,
    LocateCardsAtrMask,
    LocateCardsByATRACall,
    LocateCardsByATRWCall,
    LocateCardsReturn,
    LocateCardsWCall,
    ReaderStateA,
    ReaderStateReturn,
    ReaderStateW,
)
from rdscard.pdu.ndr import COMMON_TYPE_HEADER, RedirScardContext, RedirScardHandle, serialize

u32 = st.integers(0, 0xFFFFFFFF)
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=24
)
contexts = st.builds(RedirScardContext, st.binary(max_size=16))
handles = st.builds(RedirScardHandle, contexts, st.binary(max_size=16))


def sized(max_size: int) -> st.SearchStrategy[tuple[int, bytes | None]]:
    """A (count, bytes-or-None) pair: the bytes, or a null pointer with any count."""
    present = st.binary(max_size=max_size).map(lambda b: (len(b), b))
    null = st.integers(0, max_size).map(lambda n: (n, None))
    return st.one_of(present, null)


def _state_return(draw: st.DrawFn) -> ReaderStateReturn:
    atr = draw(st.binary(min_size=36, max_size=36))
    return ReaderStateReturn(draw(u32), draw(u32), draw(st.integers(0, 36)), atr)


@st.composite
def reader_state_returns(draw: st.DrawFn) -> ReaderStateReturn:
    return _state_return(draw)


@st.composite
def reader_states(draw: st.DrawFn, kind: type[ReaderStateA]) -> ReaderStateA:
    return kind(draw(st.none() | text), _state_return(draw))


@st.composite
def pcis(draw: st.DrawFn) -> SCardIORequest:
    extra = draw(st.binary(max_size=24))
    if extra:
        return SCardIORequest(draw(u32), len(extra), extra)
    return SCardIORequest(draw(u32))


@st.composite
def messages(draw: st.DrawFn) -> NdrMessage:
    return draw(st.one_of(*_MESSAGE_STRATEGIES))


def _sized_build(  # type: ignore[no-untyped-def]
    cls: type, *before: st.SearchStrategy[object], limit: int, after=()
):
    @st.composite
    def build(draw: st.DrawFn) -> object:
        head = [draw(s) for s in before]
        count, data = draw(sized(limit))
        tail = [draw(s) for s in after]
        return cls(*head, count, data, *tail)

    return build()


@st.composite
def status_returns(draw: st.DrawFn) -> StatusReturn:
    count, names = draw(sized(64))
    atr = draw(st.binary(min_size=32, max_size=32))
    cb_atr = draw(st.integers(0, 32))
    return StatusReturn(draw(u32), count, names, draw(u32), draw(u32), atr, cb_atr)


@st.composite
def transmit_calls(draw: st.DrawFn) -> TransmitCall:
    send = draw(st.binary(max_size=64))
    return TransmitCall(
        draw(handles), draw(pcis()), len(send), send or None, draw(st.none() | pcis()),
        draw(u32), draw(u32),
    )


@st.composite
def transmit_returns(draw: st.DrawFn) -> TransmitReturn:
    count, data = draw(sized(64))
    return TransmitReturn(draw(u32), draw(st.none() | pcis()), count, data)


@st.composite
def set_attrib_calls(draw: st.DrawFn) -> SetAttribCall:
    data = draw(st.binary(max_size=32))
    return SetAttribCall(draw(handles), draw(u32), len(data), data or None)


uuids = st.none() | st.binary(min_size=16, max_size=16)


@st.composite
def locate_by_atr(draw: st.DrawFn, cls: type[LocateCardsByATRACall]) -> LocateCardsByATRACall:
    masks = draw(
        st.lists(
            st.builds(
                LocateCardsAtrMask,
                st.integers(0, 36),
                st.binary(min_size=36, max_size=36),
                st.binary(min_size=36, max_size=36),
            ),
            max_size=3,
        )
    )
    states = draw(st.lists(reader_states(cls.STATE), max_size=3))
    return cls(draw(contexts), tuple(masks), tuple(states))


@st.composite
def locate_cards(draw: st.DrawFn, cls: type[LocateCardsACall]) -> LocateCardsACall:
    count, cards = draw(sized(40))
    states = draw(st.lists(reader_states(cls.STATE), max_size=3))
    return cls(draw(contexts), count, cards, tuple(states))


@st.composite
def write_cache(draw: st.DrawFn, cls: type[WriteCacheACall]) -> WriteCacheACall:
    count, data = draw(sized(40))
    return cls(draw(text), draw(contexts), draw(uuids), draw(u32), count, data)


_states_a = st.lists(reader_states(ReaderStateA), max_size=4).map(tuple)
_states_w = st.lists(reader_states(ReaderStateW), max_size=4).map(tuple)

_MESSAGE_STRATEGIES: list[st.SearchStrategy[NdrMessage]] = [
    st.builds(EstablishContextCall, u32),
    st.builds(EstablishContextReturn, u32, contexts),
    st.builds(ContextCall, contexts),
    st.builds(LongReturn, u32),
    st.builds(AccessStartedEventCall, u32),
    st.builds(ListReaderGroupsCall, contexts, u32, u32),
    _sized_build(ListReadersCall, contexts, limit=64, after=(u32, u32)),
    _sized_build(ListReadersReturn, u32, limit=64),
    _sized_build(ListReaderGroupsReturn, u32, limit=64),
    st.builds(GetStatusChangeACall, contexts, u32, _states_a),
    st.builds(GetStatusChangeWCall, contexts, u32, _states_w),
    st.builds(GetStatusChangeReturn, u32, st.lists(reader_state_returns(), max_size=11).map(tuple)),
    st.builds(LocateCardsReturn, u32, st.lists(reader_state_returns(), max_size=10).map(tuple)),
    locate_cards(LocateCardsACall),
    locate_cards(LocateCardsWCall),
    locate_by_atr(LocateCardsByATRACall),
    locate_by_atr(LocateCardsByATRWCall),
    st.builds(ConnectACall, text, contexts, u32, u32),
    st.builds(ConnectWCall, text, contexts, u32, u32),
    st.builds(ConnectReturn, u32, handles, u32),
    st.builds(ReconnectCall, handles, u32, u32, u32),
    st.builds(ReconnectReturn, u32, u32),
    st.builds(HCardAndDispositionCall, handles, u32),
    st.builds(StatusCall, handles, u32, u32, u32),
    status_returns(),
    st.builds(StateCall, handles, u32, u32),
    _sized_build(StateReturn, u32, u32, u32, limit=36),
    st.builds(GetTransmitCountCall, handles),
    st.builds(GetTransmitCountReturn, u32, u32),
    transmit_calls(),
    transmit_returns(),
    _sized_build(ControlCall, handles, u32, limit=64, after=(u32, u32)),
    _sized_build(ControlReturn, u32, limit=64),
    st.builds(GetAttribCall, handles, u32, u32, u32),
    _sized_build(GetAttribReturn, u32, limit=64),
    set_attrib_calls(),
    st.builds(ReadCacheACall, text, contexts, uuids, u32, u32, u32),
    st.builds(ReadCacheWCall, text, contexts, uuids, u32, u32, u32),
    _sized_build(ReadCacheReturn, u32, limit=64),
    write_cache(WriteCacheACall),
    write_cache(WriteCacheWCall),
    st.builds(GetReaderIconCall, contexts, text),
    st.builds(GetDeviceTypeIdCall, contexts, text),
    _sized_build(GetReaderIconReturn, u32, limit=64),
    st.builds(GetDeviceTypeIdReturn, u32, u32),
    st.builds(ContextAndStringACall, contexts, text),
    st.builds(ContextAndStringWCall, contexts, text),
    st.builds(ContextAndTwoStringACall, contexts, st.none() | text, st.none() | text),
    st.builds(ContextAndTwoStringWCall, contexts, st.none() | text, st.none() | text),
]

ALL_TYPES: list[type[NdrMessage]] = sorted(
    {t for pair in IOCTL_MESSAGES.values() for t in pair}, key=lambda t: t.__name__
)


@settings(max_examples=600)
@given(messages())
def test_round_trip(message: NdrMessage) -> None:
    data = message.encode()
    if isinstance(message, AccessStartedEventCall):
        assert len(data) == 4  # sent bare, without type serialization headers
    else:
        assert data[:8] == COMMON_TYPE_HEADER
        assert int.from_bytes(data[8:12], "little") == len(data) - 16
        assert len(data) % 8 == 0
    decoded = type(message).decode(data)
    assert decoded == message
    assert decoded.encode() == data


def test_every_ioctl_type_has_a_round_trip_strategy() -> None:
    covered = {type(st_example) for st_example in _examples()}
    assert set(ALL_TYPES) <= covered


def _examples() -> list[NdrMessage]:
    found: list[NdrMessage] = []
    for strategy in _MESSAGE_STRATEGIES:

        @settings(max_examples=1, database=None)
        @given(strategy)
        def grab(value: NdrMessage) -> None:
            found.append(value)

        grab()
    return found


@settings(max_examples=300)
@given(st.sampled_from(ALL_TYPES), st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_protocol_errors(cls: type[NdrMessage], data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        cls.decode(data)


@settings(max_examples=1500)
@given(
    st.sampled_from(ALL_TYPES),
    st.lists(
        st.one_of(
            st.sampled_from([0, 1, 4, 8, 16, 36, 0x00020000, 0x00020004, 0x00020008, 0x0002000C]),
            u32,
        ),
        max_size=40,
    ),
)
def test_arbitrary_bodies_behind_valid_headers_raise_only_protocol_errors(
    cls: type[NdrMessage], words: list[int]
) -> None:
    body = b"".join(w.to_bytes(4, "little") for w in words)
    with contextlib.suppress(ProtocolError):
        cls.decode(serialize(body))


@settings(max_examples=300)
@given(messages(), st.data())
def test_mutated_encodings_raise_only_protocol_errors(
    message: NdrMessage, data: st.DataObject
) -> None:
    encoded = bytearray(message.encode())
    first = 16 if len(encoded) > 16 else 0
    position = data.draw(st.integers(first, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    with contextlib.suppress(ProtocolError):
        type(message).decode(bytes(encoded))
    with contextlib.suppress(ProtocolError):
        type(message).decode(bytes(encoded[:cut]))
