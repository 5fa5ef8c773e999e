"""pcsc-lite client wire protocol codecs (pcsc-lite 1.9.9 winscard_msg.h, protocol 4.4-4.6).

The request vectors are what libpcsclite 1.9.9 (Debian 12) wrote on its
socket when a pyscard program called SCardEstablishContext, SCardListReaders,
SCardConnect, SCardTransmit and so on against a socket served with these
codecs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.pcsclite import (
    CM_IOCTL_GET_FEATURE_REQUEST,
    MAX_BUFFER_SIZE_EXTENDED,
    PCSCLITE_MAX_READERS_CONTEXTS,
    REQUEST_STRUCTS,
    BeginTransaction,
    Cancel,
    Command,
    Connect,
    Control,
    Disconnect,
    EndTransaction,
    EstablishContext,
    GetReaderEvents,
    GetSetAttrib,
    PcscRequest,
    PcscRequestReader,
    ReadersStateSize,
    ReaderState,
    ReaderStateFlag,
    Reconnect,
    ReleaseContext,
    ScardError,
    ScardProtocol,
    Status,
    Transmit,
    Version,
    WaitReaderStateChange,
    decode_readers_state,
    decode_reply,
    encode_readers_state,
    encode_reply,
    scard_ctl_code,
)

READER = "Virtual PCD 00 00"
READER_FIELD = READER.encode() + bytes(128 - len(READER))

# -- requests as libpcsclite 1.9.9 sends them --------------------------------------------

LIBPCSCLITE_VERSION = bytes.fromhex(
    "0c000000"  # size = 12
    "11000000"  # command = CMD_VERSION
    "04000000"  # major = 4
    "04000000"  # minor = 4
    "00000000"  # rv
)
LIBPCSCLITE_ESTABLISH = bytes.fromhex(
    "0c000000"
    "01000000"  # size 12, SCARD_ESTABLISH_CONTEXT
    "00000000"  # dwScope = SCARD_SCOPE_USER
    "00000000"  # hContext
    "00000000"  # rv
)
LIBPCSCLITE_GET_READERS_STATE = bytes.fromhex("0000000012000000")  # no struct
LIBPCSCLITE_CONNECT = (
    bytes.fromhex("980000000400000034120000")  # size 152, SCARD_CONNECT, hContext
    + READER_FIELD  # szReader[128]
    + bytes.fromhex(
        "02000000"  # dwShareMode = SCARD_SHARE_SHARED
        "03000000"  # dwPreferredProtocols = T0 | T1
        "00000000"  # hCard
        "00000000"  # dwActiveProtocol
        "00000000"  # rv
    )
)
LIBPCSCLITE_BEGIN = bytes.fromhex("08000000070000007856000000000000")
LIBPCSCLITE_TRANSMIT = bytes.fromhex(
    "20000000"
    "09000000"  # size 32, SCARD_TRANSMIT
    "78560000"  # hCard
    "02000000"  # ioSendPciProtocol = T1
    "10000000"  # ioSendPciLength = 16 (sizeof SCARD_IO_REQUEST on x86_64)
    "0a000000"  # cbSendLength = 10
    "03000000"  # ioRecvPciProtocol (pyscard passes T0 | T1)
    "10000000"  # ioRecvPciLength
    "0c000100"  # pcbRecvLength = 65548
    "00000000"  # rv
    "00a4040005a000000308"  # the APDU (SELECT PIV)
)
LIBPCSCLITE_CONTROL = bytes.fromhex(
    "18000000"
    "0a000000"  # size 24, SCARD_CONTROL
    "78560000"  # hCard
    "480d0042"  # dwControlCode = SCARD_CTL_CODE(3400)
    "00000000"  # cbSendLength = 0
    "0c000100"  # cbRecvLength = 65548
    "00000000"  # dwBytesReturned
    "00000000"  # rv
)
LIBPCSCLITE_GET_ATTRIB = (
    bytes.fromhex("180100000f0000007856000003030900")  # 280, GET_ATTRIB, hCard, ATR
    + bytes(264)  # pbAttr
    + bytes.fromhex("080100001d001080")  # cbAttrLen = 264, rv = SCARD_E_NO_SERVICE
)
LIBPCSCLITE_STATUS = bytes.fromhex("080000000b0000007856000000000000")
LIBPCSCLITE_END = bytes.fromhex("0c00000008000000785600000000000000000000")
LIBPCSCLITE_DISCONNECT = bytes.fromhex("0c00000006000000785600000000000000000000")
LIBPCSCLITE_RELEASE = bytes.fromhex("08000000020000003412000000000000")
LIBPCSCLITE_WAIT = bytes.fromhex("0000000013000000")
LIBPCSCLITE_STOP_WAITING = bytes.fromhex("0000000014000000")

SESSION = [
    (
        LIBPCSCLITE_VERSION,
        PcscRequest(Command.CMD_VERSION, Version(4, 4, 0)),
    ),
    (
        LIBPCSCLITE_ESTABLISH,
        PcscRequest(Command.SCARD_ESTABLISH_CONTEXT, EstablishContext(0)),
    ),
    (LIBPCSCLITE_GET_READERS_STATE, PcscRequest(Command.CMD_GET_READERS_STATE)),
    (
        LIBPCSCLITE_CONNECT,
        PcscRequest(Command.SCARD_CONNECT, Connect(0x1234, READER, 2, 3)),
    ),
    (LIBPCSCLITE_BEGIN, PcscRequest(Command.SCARD_BEGIN_TRANSACTION, BeginTransaction(0x5678))),
    (
        LIBPCSCLITE_TRANSMIT,
        PcscRequest(
            Command.SCARD_TRANSMIT,
            Transmit(0x5678, 2, 16, 10, 3, 16, 65548),
            bytes.fromhex("00a4040005a000000308"),
        ),
    ),
    (
        LIBPCSCLITE_CONTROL,
        PcscRequest(Command.SCARD_CONTROL, Control(0x5678, CM_IOCTL_GET_FEATURE_REQUEST, 0, 65548)),
    ),
    (
        LIBPCSCLITE_GET_ATTRIB,
        PcscRequest(
            Command.SCARD_GET_ATTRIB,
            GetSetAttrib(0x5678, 0x00090303, bytes(264), 264, ScardError.SCARD_E_NO_SERVICE),
        ),
    ),
    (LIBPCSCLITE_STATUS, PcscRequest(Command.SCARD_STATUS, Status(0x5678))),
    (LIBPCSCLITE_WAIT, PcscRequest(Command.CMD_WAIT_READER_STATE_CHANGE)),
    (LIBPCSCLITE_STOP_WAITING, PcscRequest(Command.CMD_STOP_WAITING_READER_STATE_CHANGE)),
    (LIBPCSCLITE_END, PcscRequest(Command.SCARD_END_TRANSACTION, EndTransaction(0x5678, 0))),
    (LIBPCSCLITE_DISCONNECT, PcscRequest(Command.SCARD_DISCONNECT, Disconnect(0x5678, 0))),
    (LIBPCSCLITE_RELEASE, PcscRequest(Command.SCARD_RELEASE_CONTEXT, ReleaseContext(0x1234))),
]


@pytest.mark.parametrize(("data", "request_"), SESSION)
def test_libpcsclite_requests(data: bytes, request_: PcscRequest) -> None:
    assert PcscRequestReader().feed(data) == [request_]
    assert request_.encode() == data


def test_whole_session_in_one_stream_and_byte_by_byte() -> None:
    stream = b"".join(data for data, _ in SESSION)
    expected = [request for _, request in SESSION]
    assert PcscRequestReader().feed(stream) == expected
    reader = PcscRequestReader()
    got = [r for i in range(len(stream)) for r in reader.feed(stream[i : i + 1])]
    assert got == expected
    assert reader.buffered == 0


def test_header_and_struct_in_separate_reads() -> None:
    # libpcsclite writes the header and the struct with two send() calls.
    reader = PcscRequestReader()
    assert reader.feed(LIBPCSCLITE_ESTABLISH[:8]) == []
    assert reader.buffered == 8
    assert reader.feed(LIBPCSCLITE_ESTABLISH[8:]) == [SESSION[1][1]]


def test_transmit_waits_for_its_apdu() -> None:
    reader = PcscRequestReader()
    assert reader.feed(LIBPCSCLITE_TRANSMIT[:40]) == []
    assert reader.feed(LIBPCSCLITE_TRANSMIT[40:]) == [SESSION[5][1]]


# -- struct sizes and field offsets (x86_64) -------------------------------------------------


@pytest.mark.parametrize(
    ("struct", "size"),
    [
        (EstablishContext(0), 12),
        (ReleaseContext(1), 8),
        (Connect(1, READER, 2, 3), 152),
        (Reconnect(1, 2, 3, 0), 24),
        (Disconnect(1, 0), 12),
        (BeginTransaction(1), 8),
        (EndTransaction(1, 0), 12),
        (Transmit(1, 2, 16, 5, 2, 16, 258), 32),
        (Control(1, 2, 3, 4), 24),
        (Status(1), 8),
        (Cancel(1), 8),
        (GetSetAttrib(1, 2, b"\x3b", 1), 280),
        (Version(), 12),
        (WaitReaderStateChange(), 8),
        (GetReaderEvents(1), 8),
        (ReadersStateSize(16), 4),
        (ReaderState(READER), 184),
    ],
)
def test_struct_sizes_and_round_trip(struct: object, size: int) -> None:
    data = struct.encode()  # type: ignore[attr-defined]
    assert len(data) == size == struct.SIZE  # type: ignore[attr-defined]
    assert type(struct).decode(data) == struct  # type: ignore[attr-defined]


def test_connect_offsets() -> None:
    data = Connect(0x11, READER, 0x22, 0x33, 0x44, 0x55, 0x66).encode()
    offsets = {0: 0x11, 132: 0x22, 136: 0x33, 140: 0x44, 144: 0x55, 148: 0x66}
    for offset, value in offsets.items():
        assert int.from_bytes(data[offset : offset + 4], "little") == value
    assert data[4 : 4 + len(READER)] == READER.encode()


def test_getset_offsets() -> None:
    data = GetSetAttrib(1, 0x90303, b"\x3b\x88", 2, 0x80100008).encode()
    assert data[8:10] == b"\x3b\x88"
    assert data[10:272] == bytes(262)
    assert int.from_bytes(data[272:276], "little") == 2
    assert int.from_bytes(data[276:280], "little") == 0x80100008


def test_version_is_signed() -> None:
    assert Version(-1, -2, 0).encode() == bytes.fromhex("fffffffffeffffff00000000")
    assert Version.decode(Version(-1, -2, 0).encode()) == Version(-1, -2, 0)


# -- READER_STATE and the table ---------------------------------------------------------------

ATR = bytes.fromhex("3b8880010000000000000000")
PRESENT = ReaderState(
    READER,
    event_counter=3,
    reader_state=ReaderStateFlag.SCARD_PRESENT
    | ReaderStateFlag.SCARD_POWERED
    | ReaderStateFlag.SCARD_NEGOTIABLE,
    reader_sharing=0,
    card_atr=ATR,
    card_protocol=ScardProtocol.SCARD_PROTOCOL_T1,
)
PRESENT_BYTES = (
    READER_FIELD  # readerName[128]
    + bytes.fromhex(
        "03000000"  # eventCounter @128
        "34000000"  # readerState @132 = PRESENT | POWERED | NEGOTIABLE
        "00000000"  # readerSharing @136
    )
    + ATR
    + bytes(33 - len(ATR))  # cardAtr[33] @140
    + bytes(3)  # padding
    + bytes.fromhex(
        "0c000000"  # cardAtrLength @176 = 12
        "02000000"  # cardProtocol @180 = T1
    )
)


def test_reader_state_layout() -> None:
    assert PRESENT.encode() == PRESENT_BYTES
    assert ReaderState.decode(PRESENT_BYTES) == PRESENT
    assert len(PRESENT_BYTES) == 184


def test_reader_sharing_exclusive_is_minus_one() -> None:
    state = ReaderState(READER, reader_sharing=-1)
    assert state.encode()[136:140] == b"\xff\xff\xff\xff"
    assert ReaderState.decode(state.encode()).reader_sharing == -1


def test_readers_state_table() -> None:
    table = encode_readers_state([PRESENT])
    assert len(table) == 16 * 184 == 2944
    assert table[:184] == PRESENT_BYTES
    assert table[184:] == bytes(2944 - 184)
    states = decode_readers_state(table)
    assert len(states) == PCSCLITE_MAX_READERS_CONTEXTS
    assert states[0] == PRESENT
    assert all(s == ReaderState() for s in states[1:])
    # Protocol 4.6: the table has the size CMD_GET_READERS_STATE_SIZE announced.
    assert decode_readers_state(encode_readers_state([PRESENT], 3), 3)[0] == PRESENT
    with pytest.raises(ValueError):
        encode_readers_state([PRESENT] * 17)


def test_flags_and_codes() -> None:
    assert [int(f) for f in ReaderStateFlag] == [1, 2, 4, 8, 0x10, 0x20, 0x40]
    assert ScardProtocol.SCARD_PROTOCOL_T0 == 1
    assert ScardProtocol.SCARD_PROTOCOL_T1 == 2
    assert ScardProtocol.SCARD_PROTOCOL_RAW == 4
    assert scard_ctl_code(1) == 0x42000001
    assert CM_IOCTL_GET_FEATURE_REQUEST == 0x42000D48
    assert ScardError.SCARD_E_NO_READERS_AVAILABLE == 0x8010002E
    assert ScardError.SCARD_W_REMOVED_CARD == 0x80100069


# -- replies ---------------------------------------------------------------------------------


def test_transmit_reply_carries_data_only_on_success() -> None:
    ok = Transmit(0x5678, 2, 16, 10, 3, 16, 2, 0)
    data = encode_reply(ok, b"\x90\x00")
    assert data == bytes.fromhex(
        "7856000002000000100000000a000000030000001000000002000000000000009000"
    )
    assert decode_reply(Command.SCARD_TRANSMIT, data) == (ok, b"\x90\x00")
    failed = Transmit(0x5678, 2, 16, 10, 3, 16, 0, ScardError.SCARD_W_REMOVED_CARD)
    assert decode_reply(Command.SCARD_TRANSMIT, failed.encode()) == (failed, b"")
    with pytest.raises(ProtocolError, match="payload"):
        decode_reply(Command.SCARD_TRANSMIT, failed.encode() + b"\x90\x00")
    with pytest.raises(ProtocolError, match="payload"):
        decode_reply(Command.SCARD_TRANSMIT, data[:-1])


def test_control_reply() -> None:
    reply = Control(1, CM_IOCTL_GET_FEATURE_REQUEST, 0, 65548, 6, 0)
    data = encode_reply(reply, bytes.fromhex("120442330d48"))
    assert decode_reply(Command.SCARD_CONTROL, data) == (reply, bytes.fromhex("120442330d48"))


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        (Command.CMD_VERSION, Version(4, 4, 0)),
        (Command.SCARD_ESTABLISH_CONTEXT, EstablishContext(0, 0x1234, 0)),
        (Command.SCARD_CONNECT, Connect(0x1234, READER, 2, 3, 0x5678, 2, 0)),
        (Command.SCARD_CANCEL, Cancel(0x1234, 0)),
        (Command.CMD_STOP_WAITING_READER_STATE_CHANGE, WaitReaderStateChange(0, 0)),
        (Command.CMD_GET_READER_EVENTS, GetReaderEvents(7, 0)),
        (Command.CMD_GET_READERS_STATE_SIZE, ReadersStateSize(16)),
    ],
)
def test_struct_replies(command: Command, reply: object) -> None:
    data = encode_reply(reply)  # type: ignore[arg-type]
    assert decode_reply(command, data) == (reply, b"")


def test_table_replies() -> None:
    table = encode_readers_state([PRESENT])
    for command in (Command.CMD_GET_READERS_STATE, Command.CMD_WAIT_READER_STATE_CHANGE):
        states, payload = decode_reply(command, table)
        assert isinstance(states, tuple)
        assert states[0] == PRESENT
        assert payload == b""
    states, _ = decode_reply(
        Command.CMD_GET_READERS_STATE_ARRAY, encode_readers_state([PRESENT], 2), table_size=2
    )
    assert isinstance(states, tuple)
    assert len(states) == 2


def test_cancel_wakes_a_waiter_with_one_message() -> None:
    message = WaitReaderStateChange(0, ScardError.SCARD_E_CANCELLED).encode()
    assert message == bytes.fromhex("0000000002001080")


# -- rejections ---------------------------------------------------------------------------------


def header(size: int, command: int) -> bytes:
    return size.to_bytes(4, "little") + command.to_bytes(4, "little")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (header(12, 0x99), "command"),
        (header(0, 0), "command"),
        (header(0, Command.SCARD_LIST_READERS), "command"),
        (header(0, Command.SCARD_GET_STATUS_CHANGE), "command"),
        (header(0, Command.SCARD_CANCEL_TRANSACTION), "command"),
        (header(8, Command.SCARD_ESTABLISH_CONTEXT), "size"),
        (header(151, Command.SCARD_CONNECT), "size"),
        (header(4, Command.CMD_GET_READERS_STATE), "size"),
        (header(8, Command.CMD_WAIT_READER_STATE_CHANGE), "size"),
        (header(0xFFFFFFFF, Command.SCARD_TRANSMIT), "size"),
        (
            header(32, Command.SCARD_TRANSMIT)
            + Transmit(1, 2, 16, MAX_BUFFER_SIZE_EXTENDED + 1, 2, 16, 0).encode(),
            "cbSendLength",
        ),
        (
            header(24, Command.SCARD_CONTROL) + Control(1, 2, 0x7FFFFFFF, 0).encode(),
            "cbSendLength",
        ),
        (header(152, Command.SCARD_CONNECT) + bytes(4) + b"A" * 128 + bytes(20), "szReader"),
        (header(152, Command.SCARD_CONNECT) + bytes(4) + b"\xff\0" + bytes(146), "szReader"),
    ],
)
def test_request_rejections(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        PcscRequestReader().feed(data)
    assert info.value.field == field


def test_a_slot_pcscd_has_not_initialised_reads_with_no_atr() -> None:
    # pcscd 1.9.9 marks unused slots and readers not yet polled with cardAtrLength 34
    # (READER_NOT_INITIALIZED, eventhandler.h)
    entry = ReaderState.decode(PRESENT_BYTES[:176] + (34).to_bytes(4, "little") + bytes(4))
    assert entry.card_atr == b"" and entry.reader_name == "Virtual PCD 00 00"


def test_largest_apdu_is_accepted() -> None:
    apdu = bytes(MAX_BUFFER_SIZE_EXTENDED)
    request = PcscRequest(Command.SCARD_TRANSMIT, Transmit(1, 2, 16, len(apdu), 2, 16, 65548), apdu)
    assert PcscRequestReader().feed(request.encode()) == [request]


@pytest.mark.parametrize(
    ("decoder", "data", "field"),
    [
        (EstablishContext.decode, bytes(11), "size"),
        (Connect.decode, bytes(153), "size"),
        (
            ReaderState.decode,
            PRESENT_BYTES[:176] + (35).to_bytes(4, "little") + bytes(4),
            "cardAtrLength",
        ),
        (ReaderState.decode, b"x" * 128 + PRESENT_BYTES[128:], "readerName"),
        (ReadersStateSize.decode, (-1).to_bytes(4, "little", signed=True), "array_size"),
        (ReadersStateSize.decode, (100_000).to_bytes(4, "little"), "array_size"),
        (lambda d: decode_readers_state(d), bytes(2943), "size"),
        (lambda d: decode_readers_state(d, 100_000), bytes(0), "count"),
        (lambda d: decode_reply(Command.SCARD_STATUS, d), bytes(7), "size"),
        (lambda d: decode_reply(Command.SCARD_LIST_READERS, d), bytes(8), "command"),
    ],
)
def test_struct_rejections(decoder: Callable[[bytes], object], data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decoder(data)
    assert info.value.field == field


def test_encoder_limits() -> None:
    with pytest.raises(ValueError):
        Connect(1, "x" * 128, 2, 3).encode()
    with pytest.raises(ValueError):
        ReaderState(READER, card_atr=bytes(34)).encode()
    with pytest.raises(ValueError):
        GetSetAttrib(1, 2, bytes(265)).encode()


# -- properties -----------------------------------------------------------------------------------

STRUCT_DECODERS: list[Callable[[bytes], object]] = [
    *(s.decode for s in {s for s in REQUEST_STRUCTS.values() if s is not None}),
    WaitReaderStateChange.decode,
    GetReaderEvents.decode,
    ReadersStateSize.decode,
    ReaderState.decode,
    decode_readers_state,
]


@settings(deadline=None)
@pytest.mark.parametrize("decoder", STRUCT_DECODERS)
@given(data=st.binary(max_size=400))
def test_struct_decoders_raise_only_protocol_error(
    decoder: Callable[[bytes], object], data: bytes
) -> None:
    with contextlib.suppress(ProtocolError):
        decoder(data)


@settings(deadline=None)
@pytest.mark.parametrize("size", [4, 8, 12, 24, 32, 152, 184, 280, 2944])
@given(data=st.data())
def test_exact_size_structs_raise_only_protocol_error(size: int, data: st.DataObject) -> None:
    body = data.draw(st.binary(min_size=size, max_size=size))
    for decoder in STRUCT_DECODERS:
        with contextlib.suppress(ProtocolError):
            decoder(body)


@settings(deadline=None)
@pytest.mark.parametrize("command", list(Command))
@given(data=st.binary(max_size=400))
def test_decode_reply_raises_only_protocol_error(command: Command, data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_reply(command, data)


@settings(deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=8))
def test_request_reader_raises_only_protocol_error(chunks: list[bytes]) -> None:
    reader = PcscRequestReader()
    with contextlib.suppress(ProtocolError):
        for chunk in chunks:
            reader.feed(chunk)


@given(
    st.sampled_from([c for c, s in REQUEST_STRUCTS.items() if s is not None]),
    st.binary(min_size=280, max_size=280),
)
def test_request_reader_with_valid_headers(command: Command, body: bytes) -> None:
    struct = REQUEST_STRUCTS[command]
    assert struct is not None
    data = header(struct.SIZE, command) + body[: struct.SIZE]
    with contextlib.suppress(ProtocolError):
        for request in PcscRequestReader().feed(data):
            assert request.command == command


u32 = st.integers(0, 0xFFFFFFFF)
names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=127)


@given(
    st.builds(
        ReaderState,
        names,
        u32,
        u32,
        st.integers(-(2**31), 2**31 - 1),
        st.binary(max_size=33),
        u32,
    )
)
def test_reader_state_round_trip(state: ReaderState) -> None:
    assert ReaderState.decode(state.encode()) == state


@given(u32, names, u32, u32, u32, u32, u32)
def test_connect_round_trip(
    ctx: int, name: str, share: int, prefer: int, card: int, active: int, rv: int
) -> None:
    struct = Connect(ctx, name, share, prefer, card, active, rv)
    assert Connect.decode(struct.encode()) == struct


@given(st.lists(st.integers(0, 0xFFFFFFFF), min_size=8, max_size=8), st.binary(max_size=300))
def test_transmit_request_round_trip(values: list[int], apdu: bytes) -> None:
    values[3] = len(apdu)
    request = PcscRequest(Command.SCARD_TRANSMIT, Transmit(*values), apdu)
    assert PcscRequestReader().feed(request.encode()) == [request]
