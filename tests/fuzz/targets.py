"""Every network decoder of the server as a fuzz target, with its seed messages.

Seeds are built with the project's own encoders and the spec and capture
bytes of the unit tests. Each target decodes its input as the server would
and runs the same follow-up decoders on what came out; the fast paths are
checked against the layered decoders they stand in for (a disagreement is
an AssertionError, so a finding).

To fuzz a new decoder, add one :func:`~tests.fuzz.engine.register` call
(or one ``@target`` function) here; see :func:`_optional_targets` for the
form used for decoders that do not exist yet.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence

from rdscard.efs import cms
from rdscard.errors import ProtocolError
from rdscard.logon.ccache import Ccache
from rdscard.logon.kdc_relay import kdc_certificates
from rdscard.pdu import ber, gcc, mcs, per, share, tpkt, x224
from rdscard.pdu import client_info as ci
from rdscard.pdu.apdu import CommandApdu, ResponseApdu
from rdscard.pdu.buffer import Reader
from rdscard.pdu.channel import ChannelReassembler, chunk_channel_data
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
from rdscard.pdu.esc.constants import ScardIoctl
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
from rdscard.pdu.esc.dispatch import IOCTL_MESSAGES, decode_call, decode_return
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
from rdscard.pdu.esc.transmit_wire import parse_transmit_return
from rdscard.pdu.input import (
    FastPathInputPdu,
    KeyboardEvent,
    MouseEvent,
    SyncEvent,
    SyncToggleFlags,
    UnicodeKeyboardEvent,
    decode_fastpath_input,
    decode_slowpath_input,
)
from rdscard.pdu.licensing import decode_licensing, license_error_valid_client
from rdscard.pdu.ndr import RedirScardContext, RedirScardHandle
from rdscard.pdu.pcsclite_constants import Command
from rdscard.pdu.pcsclite_framing import (
    REQUEST_STRUCTS,
    PcscRequestReader,
    decode_reply,
)
from rdscard.pdu.pcsclite_structs import (
    ReadersStateSize,
    ReaderState,
    decode_readers_state,
    encode_readers_state,
)
from rdscard.pdu.rdpdr import (
    ClientAnnounceReply,
    ClientCoreCapabilityResponse,
    ClientDeviceListAnnounceRequest,
    ClientDeviceListRemove,
    ClientNameRequest,
    DeviceAnnounce,
    DeviceType,
    RdpdrHeader,
    ServerAnnounceRequest,
    ServerClientIdConfirm,
    ServerCoreCapabilityRequest,
    ServerDeviceAnnounceResponse,
    ServerUserLoggedOn,
)
from rdscard.pdu.rdpdr_io import (
    DeviceCloseResponse,
    DeviceControlResponse,
    DeviceCreateResponse,
    decode_io_request,
    encode_device_control_request,
    parse_device_control_response,
    read_io_completion_header,
)
from rdscard.pdu.secure import unwrap_basic_security
from rdscard.pdu.send_data import parse_send_data_request
from rdscard.pdu.tlv import Tlv, decode_all, tlv
from rdscard.protocol.acceptor import RdpAcceptor
from rdscard.protocol.connector import ConnectorSettings, RdpConnector
from rdscard.protocol.events import Phase
from rdscard.protocol.rdpdr import RdpdrServer
from tests.fuzz.engine import Target, register, target

# -- helpers ---------------------------------------------------------------------------------


def _each(decoders: Iterable[Callable[[bytes], object]], data: bytes) -> None:
    """Run every decoder on ``data``; each may refuse it with a ProtocolError."""
    for decode in decoders:
        with contextlib.suppress(ProtocolError):
            decode(data)


def _frames(stream: bytes) -> Iterator[bytes]:
    """The TPKT and fast-path frames of a well-formed byte stream."""
    offset = 0
    while offset < len(stream):
        length = tpkt.next_frame_length(stream[offset : offset + 4])
        assert length is not None
        yield stream[offset : offset + length]
        offset += length


def pack_messages(messages: Iterable[bytes]) -> bytes:
    """Several messages as one input: each behind its 16-bit little-endian length."""
    return b"".join(struct.pack("<H", len(m)) + m for m in messages)


def unpack_messages(data: bytes) -> list[bytes]:
    """The inverse of :func:`pack_messages`; a short last message is cut at the end."""
    out = []
    offset = 0
    while offset + 2 <= len(data):
        (length,) = struct.unpack_from("<H", data, offset)
        out.append(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return out


def message_variants(messages: Sequence[bytes]) -> list[list[bytes]]:
    """The sequence with each message left out, doubled, and swapped with the next.

    Byte mutations seldom move whole messages; state machines are seeded
    with these so that out-of-order and missing steps are tried too.
    """
    out: list[list[bytes]] = []
    items = list(messages)
    for i in range(len(items)):
        out.append(items[:i] + items[i + 1 :])
        out.append(items[: i + 1] + items[i:])
        if i + 1 < len(items):
            out.append([*items[:i], items[i + 1], items[i], *items[i + 2 :]])
    return out


# -- a recorded connection -------------------------------------------------------------------


def _record_session(settings: ConnectorSettings, after: Callable[[RdpConnector], None]) -> bytes:
    """Every byte a client sends through a whole connection, in order."""
    server = RdpAcceptor()
    client = RdpConnector(settings)
    sent = bytearray()

    def pump() -> None:
        for _ in range(100):
            out = client.data_to_send()
            sent.extend(out)
            if out:
                server.receive(out)
            server.events()
            if server.phase is Phase.TLS_HANDSHAKE:
                client.receive(server.data_to_send())
                server.tls_established()
                client.tls_established()
                continue
            back = server.data_to_send()
            if back:
                client.receive(back)
            if not out and not back:
                return
        raise AssertionError("the recorded session never went quiet")

    try:
        pump()
        after(client)
        pump()
    except ProtocolError:
        pass  # a session the server refuses: its bytes up to the refusal
    return bytes(sent)


def _active_traffic(client: RdpConnector) -> None:
    client.send_input([
        KeyboardEvent(scancode=0x1E, released=False, extended=False),
        UnicodeKeyboardEvent(code_point=0x20AC, released=True),
        MouseEvent(flags=0x0800, x=100, y=200),
        SyncEvent(SyncToggleFlags.TS_SYNC_NUM_LOCK),
    ])
    if "rdpdr" in client.channel_ids:
        client.send_channel_data("rdpdr", _xfreerdp()["device_list"])
        client.send_channel_data("rdpdr", bytes(range(256)) * 8)  # two chunks
    client.shutdown()


@functools.cache
def session_streams() -> tuple[bytes, ...]:
    """Client byte streams of whole connections (negotiation to shutdown)."""
    return (
        _record_session(ConnectorSettings(), lambda _c: None),
        _record_session(
            ConnectorSettings(user_name="alice", pin=b"24681357", channels=("rdpdr", "cliprdr")),
            _active_traffic,
        ),
        _record_session(ConnectorSettings(width=1920, height=1080, channels=("rdpdr",)),
                        _active_traffic),
        # Refused at Connect-Initial: a name given twice (its skipped join once crashed).
        _record_session(ConnectorSettings(channels=("rdpdr", "rdpdr")), lambda _c: None),
    )


def _acceptor_seeds() -> list[bytes]:
    streams = session_streams()
    variants = [b"".join(v) for s in streams[1:] for v in message_variants(list(_frames(s)))]
    return [*streams, *variants]


@functools.cache
def _tpdus() -> tuple[bytes, ...]:
    """The X.224 TPDUs of the recorded connections (the payloads of their TPKT frames)."""
    return tuple(
        tpkt.unwrap(f) for s in session_streams() for f in _frames(s) if not tpkt.is_fastpath(f)
    )


@functools.cache
def _domain_pdus() -> tuple[bytes, ...]:
    """MCS PDUs (X.224 Data payloads) of the recorded connections, Connect-Initial first."""
    return tuple(x224.unwrap_data(t) for t in _tpdus() if t[1:2] == b"\xf0")


@functools.cache
def _io_channel_data() -> tuple[bytes, ...]:
    """User data of every Send Data Request of the recorded connections."""
    out = []
    for pdu in _domain_pdus():
        with contextlib.suppress(ProtocolError):
            decoded = mcs.decode_domain_pdu(pdu)
            if isinstance(decoded, mcs.SendDataRequest):
                out.append(decoded.user_data)
    return tuple(out)


@functools.cache
def _xfreerdp() -> dict[str, bytes]:
    """rdpdr messages captured from xfreerdp 2.11.7 (see the rdpdr unit tests)."""
    from tests.unit import test_rdpdr_pdu as t

    return {
        "announce_reply": t.XFREERDP_ANNOUNCE_REPLY,
        "client_name": t.XFREERDP_CLIENT_NAME,
        "client_capability": t.XFREERDP_CLIENT_CAPABILITY,
        "device_list": t.XFREERDP_DEVICE_LIST,
        "control_response": t.XFREERDP_CONTROL_RESPONSE,
        "spec_announce_reply": t.SPEC_CLIENT_ANNOUNCE_REPLY,
    }


# -- framing, X.224, MCS, GCC -------------------------------------------------------------


def _tpkt_seeds() -> list[bytes]:
    return [f for s in session_streams() for f in _frames(s)]


@target("tpkt", _tpkt_seeds, "TPKT and fast-path framing (next_frame_length, unwrap)")
def fuzz_tpkt(data: bytes) -> None:
    offset = 0
    for _ in range(64):
        length = tpkt.next_frame_length(data[offset : offset + 4])
        if length is None or len(data) - offset < length:
            return
        frame = data[offset : offset + length]
        offset += length
        if tpkt.is_fastpath(frame):
            _each((tpkt.fastpath_unwrap,), frame)
        else:
            _each((tpkt.unwrap,), frame)


def _x224_seeds() -> list[bytes]:
    from tests.unit import test_tpkt_x224 as t

    return [*_tpdus()[:6], tpkt.unwrap(t.CONNECTION_REQUEST),
            tpkt.unwrap(t.XFREERDP_CONNECTION_REQUEST), tpkt.unwrap(t.CONNECTION_CONFIRM)]


@target("x224", _x224_seeds, "X.224 Connection Request/Confirm and Data TPDUs")
def fuzz_x224(data: bytes) -> None:
    _each((x224.ConnectionRequest.decode, x224.ConnectionConfirm.decode, x224.unwrap_data,
           x224.tpdu_code), data)


def _connect_initial_seeds() -> list[bytes]:
    from tests.unit import test_mcs as t

    connect_initials = [p for p in _domain_pdus() if p[:2] == b"\x7f\x65"]
    return [*connect_initials, x224.unwrap_data(tpkt.unwrap(t.XFREERDP_CONNECT_INITIAL))]


@target("mcs_connect_initial", _connect_initial_seeds,
        "MCS Connect-Initial (BER) with its GCC Conference Create Request (PER) and client blocks")
def fuzz_connect_initial(data: bytes) -> None:
    initial = mcs.ConnectInitial.decode(data)
    gcc.decode_client_data(initial.user_data)


def _domain_seeds() -> list[bytes]:
    return [p for p in _domain_pdus() if p[:2] != b"\x7f\x65"]


@target("mcs_domain", _domain_seeds, "MCS domain PDUs (PER): erect, attach, join, send data")
def fuzz_mcs_domain(data: bytes) -> None:
    mcs.decode_domain_pdu(data)


def _send_data_seeds() -> list[bytes]:
    return [f for f in _tpkt_seeds() if not tpkt.is_fastpath(f)]


@target("send_data_fast_path", _send_data_seeds,
        "one-step Send Data Request parser, checked against the layered decoders")
def fuzz_send_data(data: bytes) -> None:
    parsed = parse_send_data_request(data)
    if parsed is None:
        return
    pdu = mcs.decode_domain_pdu(x224.unwrap_data(tpkt.unwrap(data)))
    assert isinstance(pdu, mcs.SendDataRequest), f"fast path took a {type(pdu).__name__}"
    assert (pdu.channel_id, pdu.user_data) == parsed, "fast path and layers disagree"


def _gcc_seeds() -> list[bytes]:
    from tests.unit import test_gcc as t

    blocks = []
    for pdu in _connect_initial_seeds():
        initial = mcs.ConnectInitial.decode(pdu)
        blocks.append(gcc.ConferenceCreateRequest.decode(initial.user_data).user_data)
    return [*blocks, t.CS_CORE + t.CS_CLUSTER + t.CS_SECURITY + t.CS_NET]


@target("gcc_client_blocks", _gcc_seeds, "GCC client data blocks (core, security, net, ...)")
def fuzz_gcc_blocks(data: bytes) -> None:
    gcc.ClientGccData.decode(data)


def _ber_per_seeds() -> list[bytes]:
    return [*_connect_initial_seeds()[:1], b"\x02\x01\x05\x04\x82\x01\x00" + bytes(256),
            b"\x81\x80" + bytes(128), b"\x00\x05\x00\x14\x7c\x00\x01"]


@target("ber_per", _ber_per_seeds, "BER and PER primitives on arbitrary bytes")
def fuzz_ber_per(data: bytes) -> None:
    readers: tuple[Callable[[Reader], object], ...] = (
        lambda r: ber.read_length(r, "f"),
        lambda r: ber.read_integer(r, "f"),
        lambda r: ber.read_octet_string(r, "f"),
        lambda r: ber.read_boolean(r, "f"),
        lambda r: ber.read_enumerated(r, 4, "f"),
        lambda r: ber.read_sequence(r, "f"),
        lambda r: ber.read_application_tag(r, 101, "f"),
        lambda r: per.read_length(r, "f"),
        lambda r: per.read_integer(r, "f"),
        lambda r: per.read_integer16(r, 1001, "f"),
        lambda r: per.read_object_identifier(r, "f"),
        lambda r: per.read_octet_string(r, 4, "f"),
        lambda r: per.read_numeric_string(r, 1, "f"),
    )
    for read in readers:
        with contextlib.suppress(ProtocolError):
            read(Reader(data, "fuzz"))


# -- the I/O channel: client info, capabilities, share PDUs, input, licensing ---------------


def _client_info_seeds() -> list[bytes]:
    from tests.unit import test_client_info as t

    recorded = [d for d in _io_channel_data() if d[:1] == b"\x40"]
    return [*recorded, t.INFO_SECURITY_HEADER + t.SPEC_INFO_PACKET,
            t.INFO_SECURITY_HEADER + t.ANSI_INFO_PACKET]


@target("client_info", _client_info_seeds, "Client Info PDU behind its basic security header")
def fuzz_client_info(data: bytes) -> None:
    _flags, body = unwrap_basic_security(data)
    ci.ClientInfo.decode(body)


def _share_seeds() -> list[bytes]:
    from tests.unit import test_share as t

    recorded = [d for d in _io_channel_data() if d[:1] != b"\x40"]
    return [*recorded, t.CONFIRM_ACTIVE, t.DEMAND_ACTIVE, *(raw for raw, _ in t.FINALISATION)]


@target("share", _share_seeds,
        "share control/data PDUs, capability sets of Confirm Active, slow-path input inside")
def fuzz_share(data: bytes) -> None:
    for pdu in share.decode_share_pdus(data):
        if isinstance(pdu, share.ShareData) and isinstance(pdu.body, share.InputPdu):
            decode_slowpath_input(pdu.body.payload)


def _confirm_active_seeds() -> list[bytes]:
    return [d for d in _share_seeds() if d[2:3] == b"\x13"]


@target("confirm_active", _confirm_active_seeds, "Confirm Active PDU and its capability sets")
def fuzz_confirm_active(data: bytes) -> None:
    share.ConfirmActive.decode(data)


def _slow_input_seeds() -> list[bytes]:
    from tests.unit import test_input as t

    return [t.SLOW_KEY_AND_SYNC]


@target("input_slow_path", _slow_input_seeds, "slow-path input events (TS_INPUT_PDU_DATA)")
def fuzz_slow_input(data: bytes) -> None:
    decode_slowpath_input(data)


def _fast_input_seeds() -> list[bytes]:
    from tests.unit import test_input as t

    return [t.FP_KEY_A, t.FP_ALL_KINDS, *(f for s in session_streams() for f in _frames(s)
                                          if tpkt.is_fastpath(f)),
            FastPathInputPdu((KeyboardEvent(0x1E, False, False),) * 20).encode()]


@target("input_fast_path", _fast_input_seeds, "fast-path input PDUs")
def fuzz_fast_input(data: bytes) -> None:
    decode_fastpath_input(data)


def _licensing_seeds() -> list[bytes]:
    from tests.unit import test_licensing as t

    return [t.SPEC_VALID_CLIENT, license_error_valid_client()]


@target("licensing", _licensing_seeds, "licensing PDUs (preamble, error alert)")
def fuzz_licensing(data: bytes) -> None:
    decode_licensing(data)


def _channel_seeds() -> list[bytes]:
    from tests.unit import test_channel as t

    return [
        pack_messages([t.SINGLE_CHUNK]),
        pack_messages(chunk_channel_data(bytes(range(256)) * 13, 1600)),
        pack_messages(chunk_channel_data(b"abc", 1600) + chunk_channel_data(b"x" * 40, 16)),
    ]


@target("channel_chunks", _channel_seeds, "static virtual channel chunks into one reassembler")
def fuzz_channel(data: bytes) -> None:
    reassembler = ChannelReassembler()
    for chunk in unpack_messages(data):
        with contextlib.suppress(ProtocolError):
            reassembler.add(chunk)


# -- the whole connection --------------------------------------------------------------------


@target("acceptor", _acceptor_seeds, "RdpAcceptor fed a client's byte stream (TLS assumed)")
def fuzz_acceptor(data: bytes) -> None:
    acceptor = RdpAcceptor()
    try:
        acceptor.receive(data)
        if acceptor.phase is Phase.TLS_HANDSHAKE:
            acceptor.tls_established()
            acceptor.receive(b"")
    finally:
        acceptor.events()
        acceptor.data_to_send()


# -- rdpdr (MS-RDPEFS) ------------------------------------------------------------------------


def _rdpdr_seeds() -> list[bytes]:
    x = _xfreerdp()
    return [
        *x.values(),
        ClientDeviceListAnnounceRequest((
            DeviceAnnounce(DeviceType.RDPDR_DTYP_SMARTCARD, 1, "SCARD", b"SCARD\0"),
            DeviceAnnounce(DeviceType.RDPDR_DTYP_FILESYSTEM, 2, "HOME", b"home\0"),
        )).encode(),
        ClientDeviceListRemove((1, 2)).encode(),
        DeviceControlResponse(1, 1, 0, bytes(40)).encode(),
        DeviceCreateResponse(1, 2, 0, 7).encode(),
        DeviceCloseResponse(1, 3, 0).encode(),
        encode_device_control_request(1, 1, ScardIoctl.SCARD_IOCTL_TRANSMIT, bytes(48)),
        ServerAnnounceRequest(client_id=3, version_minor=13).encode(),
        ServerClientIdConfirm(client_id=3, version_major=1, version_minor=13).encode(),
        ServerDeviceAnnounceResponse(1, 0).encode(),
        ServerUserLoggedOn().encode(),
    ]


_RDPDR_DECODERS: tuple[Callable[[bytes], object], ...] = (
    RdpdrHeader.decode, ClientAnnounceReply.decode, ClientNameRequest.decode,
    ClientCoreCapabilityResponse.decode, ClientDeviceListAnnounceRequest.decode,
    ClientDeviceListRemove.decode, DeviceControlResponse.decode, DeviceCreateResponse.decode,
    DeviceCloseResponse.decode, read_io_completion_header, decode_io_request,
    ServerAnnounceRequest.decode, ServerClientIdConfirm.decode,
    ServerCoreCapabilityRequest.decode, ServerDeviceAnnounceResponse.decode,
    ServerUserLoggedOn.decode,
)


@target("rdpdr_pdu", _rdpdr_seeds, "every MS-RDPEFS PDU decoder on each input")
def fuzz_rdpdr_pdu(data: bytes) -> None:
    _each(_RDPDR_DECODERS, data)
    usual = parse_device_control_response(data)
    if usual is not None:
        full = DeviceControlResponse.decode(data)
        assert usual == (full.device_id, full.completion_id, full.io_status,
                         full.output_buffer), "fast path and layers disagree"


def _ready_machine() -> RdpdrServer:
    x = _xfreerdp()
    machine = RdpdrServer(client_id=1)
    machine.start()
    for message in ("announce_reply", "client_name", "client_capability", "device_list"):
        machine.receive(x[message], 0.0)
    for code in (ScardIoctl.SCARD_IOCTL_ESTABLISHCONTEXT, ScardIoctl.SCARD_IOCTL_TRANSMIT):
        machine.device_control(1, code, bytes(24), now=0.0)
    machine.data_to_send()
    return machine


def _rdpdr_server_seeds() -> list[bytes]:
    ready = (
        _xfreerdp()["device_list"],
        ClientDeviceListAnnounceRequest((
            DeviceAnnounce(DeviceType.RDPDR_DTYP_SMARTCARD, 5, "SCARD", b"SCARD\0"),
            DeviceAnnounce(DeviceType.RDPDR_DTYP_PRINT, 6, "PRN1", bytes(24)),
        )).encode(),
        ClientDeviceListRemove((1,)).encode(),
        DeviceControlResponse(1, 1, 0, bytes(40)).encode(),
        DeviceControlResponse(1, 2, 0xC0000001, b"").encode(),
        _xfreerdp()["client_name"],  # out of turn: refused
    )
    return [pack_messages([m]) for m in ready] + [pack_messages([
        DeviceControlResponse(1, 1, 0, bytes(16)).encode(),
        DeviceControlResponse(1, 2, 0, bytes(16)).encode(),
        ClientDeviceListRemove((1,)).encode(),
        _xfreerdp()["device_list"],
    ])]


@target("rdpdr_server", _rdpdr_server_seeds,
        "RdpdrServer after the handshake (a smart card, two IOCTLs pending) fed messages")
def fuzz_rdpdr_server(data: bytes) -> None:
    machine = _ready_machine()
    for message in unpack_messages(data):
        machine.receive(message, 1.0)
        machine.expire(2.0)
    machine.data_to_send()
    machine.close()


def _rdpdr_handshake_seeds() -> list[bytes]:
    x = _xfreerdp()
    handshake = [x["announce_reply"], x["client_name"], x["client_capability"],
                 x["device_list"], ClientDeviceListRemove((1,)).encode(), x["device_list"]]
    return [pack_messages(handshake), *map(pack_messages, message_variants(handshake))]


@target("rdpdr_server_handshake", _rdpdr_handshake_seeds,
        "RdpdrServer from its Server Announce fed a client's messages")
def fuzz_rdpdr_handshake(data: bytes) -> None:
    machine = RdpdrServer(client_id=1)
    machine.start()
    for message in unpack_messages(data):
        machine.receive(message, 0.0)
        if machine.smart_card_devices and not machine.pending_count:
            with contextlib.suppress(Exception):
                machine.device_control(next(iter(machine.smart_card_devices)),
                                       ScardIoctl.SCARD_IOCTL_TRANSMIT, bytes(8), now=0.0)


# -- MS-RDPESC (NDR) ---------------------------------------------------------------------------

_CONTEXT = RedirScardContext(bytes.fromhex("0d8b5e2a00000000"))
_HANDLE = RedirScardHandle(_CONTEXT, bytes.fromhex("6f1c3a0100000000"))
_ATR = bytes.fromhex("3bf81300008131fe15597562696b657934d4")
_ATR36 = _ATR + bytes(36 - len(_ATR))
_STATE = ReaderStateReturn(0x10, 0x22, len(_ATR), _ATR36)
_READERS_A = b"Yubico YubiKey\0Virtual PCD 00 00\0\0"
_READERS_W = "Yubico YubiKey\0Virtual PCD 00 00\0\0".encode("utf-16-le")
_APDU = bytes.fromhex("00a4040009a00000030800001000")
_PCI = SCardIORequest(2, 0, None)


def _esc_messages() -> list[NdrMessage]:
    states_a = (ReaderStateA("Yubico YubiKey", _STATE), ReaderStateA(None, _STATE))
    states_w = (ReaderStateW("Yubico YubiKey", _STATE), ReaderStateW("\\\\?PnP?\\Notification",
                                                                      _STATE))
    mask = LocateCardsAtrMask(len(_ATR), _ATR36, b"\xff" * 36)
    return [
        EstablishContextCall(2), EstablishContextReturn(0, _CONTEXT), ContextCall(_CONTEXT),
        LongReturn(0), LongReturn(0x8010002E), AccessStartedEventCall(0),
        ListReaderGroupsCall(_CONTEXT, 0, 0xFFFFFFFF),
        ListReadersCall(_CONTEXT, len(_READERS_A), _READERS_A, 0, 0xFFFFFFFF),
        ListReadersReturn(0, len(_READERS_A), _READERS_A),
        ListReadersReturn(0, len(_READERS_W), _READERS_W),
        ListReaderGroupsReturn(0, 16, b"SCard$AllReaders\0\0"[:16]),
        GetStatusChangeACall(_CONTEXT, 0xFFFFFFFF, states_a),
        GetStatusChangeWCall(_CONTEXT, 1000, states_w),
        GetStatusChangeReturn(0, (_STATE, _STATE)), LocateCardsReturn(0, (_STATE,)),
        LocateCardsACall(_CONTEXT, len(_READERS_A), _READERS_A, states_a),
        LocateCardsWCall(_CONTEXT, len(_READERS_W), _READERS_W, states_w),
        LocateCardsByATRACall(_CONTEXT, (mask,), states_a),
        LocateCardsByATRWCall(_CONTEXT, (mask, mask), states_w),
        ConnectACall("Yubico YubiKey", _CONTEXT, 2, 3), ConnectWCall("Yubico YubiKey", _CONTEXT,
                                                                      2, 3),
        ConnectReturn(0, _HANDLE, 2), ReconnectCall(_HANDLE, 2, 3, 1), ReconnectReturn(0, 2),
        HCardAndDispositionCall(_HANDLE, 0), StatusCall(_HANDLE, 0, 0xFFFFFFFF, 32),
        StatusReturn(0, len(_READERS_W), _READERS_W, 6, 2, _ATR + bytes(32 - len(_ATR)),
                     len(_ATR)),
        StateCall(_HANDLE, 0, 36), StateReturn(0, 6, 2, len(_ATR), _ATR),
        GetTransmitCountCall(_HANDLE), GetTransmitCountReturn(0, 7),
        TransmitCall(_HANDLE, _PCI, len(_APDU), _APDU, None, 0, 258),
        TransmitCall(_HANDLE, SCardIORequest(2, 4, b"\x01\x02\x03\x04"), len(_APDU), _APDU,
                     SCardIORequest(2, 2, b"\xaa\xbb"), 0, 258),
        TransmitReturn(0, None, 4, b"\x61\x11\x90\x00"),
        TransmitReturn(0, SCardIORequest(2, 4, b"\x00" * 4), 2, b"\x90\x00"),
        ControlCall(_HANDLE, 0x313520, 4, b"\x01\x02\x03\x04", 0, 256),
        ControlReturn(0, 3, b"abc"), GetAttribCall(_HANDLE, 0x90303, 0, 36),
        GetAttribReturn(0, len(_ATR), _ATR), SetAttribCall(_HANDLE, 0x90303, 2, b"ab"),
        ReadCacheACall("Cache", _CONTEXT, bytes(16), 1, 0, 64),
        ReadCacheWCall("Cache", _CONTEXT, None, 1, 0, 64), ReadCacheReturn(0, 5, b"hello"),
        WriteCacheACall("Cache", _CONTEXT, bytes(16), 1, 5, b"hello"),
        WriteCacheWCall("Cache", _CONTEXT, None, 1, 5, b"hello"),
        GetReaderIconCall(_CONTEXT, "Yubico YubiKey"), GetDeviceTypeIdCall(_CONTEXT, "Reader"),
        GetReaderIconReturn(0, 4, b"\x89PNG"), GetDeviceTypeIdReturn(0, 1),
        ContextAndStringACall(_CONTEXT, "Group"), ContextAndStringWCall(_CONTEXT, "Group"),
        ContextAndTwoStringACall(_CONTEXT, "Reader", "Device"),
        ContextAndTwoStringWCall(_CONTEXT, None, "Device"),
    ]


#: Every IOCTL of MS-RDPESC, in a fixed order: the first input byte picks one (modulo).
IOCTLS: tuple[ScardIoctl, ...] = tuple(sorted(IOCTL_MESSAGES))


def _esc_seeds(side: int) -> list[bytes]:
    messages = _esc_messages()
    seeds = []
    for index, code in enumerate(IOCTLS):
        kind = IOCTL_MESSAGES[code][side]
        found = [m for m in messages if type(m) is kind]
        assert found, f"no seed message for {kind.__name__}"
        seeds += [bytes([index]) + m.encode() for m in found]
    return seeds


def esc_call_seeds() -> list[bytes]:
    return _esc_seeds(0)


def esc_return_seeds() -> list[bytes]:
    return _esc_seeds(1)


def _multi_string(raw: bytes | None) -> None:
    if raw:
        with contextlib.suppress(UnicodeDecodeError):  # the backend's own check
            raw.decode("utf-16-le")


@target("esc_call", esc_call_seeds,
        "MS-RDPESC call structures of every IOCTL (first byte: IOCTL index)")
def fuzz_esc_call(data: bytes) -> None:
    if data:
        decode_call(IOCTLS[data[0] % len(IOCTLS)], data[1:])


@target("esc_return", esc_return_seeds,
        "MS-RDPESC return structures of every IOCTL (first byte: IOCTL index)")
def fuzz_esc_return(data: bytes) -> None:
    if not data:
        return
    code = IOCTLS[data[0] % len(IOCTLS)]
    body = data[1:]
    message = decode_return(code, body)
    if isinstance(message, ListReadersReturn | StatusReturn):
        _multi_string(message.msz if isinstance(message, ListReadersReturn)
                      else message.msz_reader_names)
    if code == ScardIoctl.SCARD_IOCTL_TRANSMIT:
        usual = parse_transmit_return(body)
        if usual is not None:
            assert isinstance(message, TransmitReturn)
            assert usual == (message.return_code, message.cb_recv_length,
                             message.pb_recv_buffer), "fast path and layers disagree"


# -- pcsc-lite ---------------------------------------------------------------------------------


def _pcsc_stream_seeds() -> list[bytes]:
    from tests.unit import test_pcsclite_pdu as t

    whole = b"".join(raw for raw, _ in t.SESSION)
    return [whole, *(raw for raw, _ in t.SESSION), t.LIBPCSCLITE_TRANSMIT, t.LIBPCSCLITE_CONTROL,
            t.LIBPCSCLITE_GET_ATTRIB, t.LIBPCSCLITE_WAIT + t.LIBPCSCLITE_STOP_WAITING]


@target("pcsclite_requests", _pcsc_stream_seeds,
        "pcsc-lite request stream (framing and every request struct), fed in three parts")
def fuzz_pcsc_requests(data: bytes) -> None:
    reader = PcscRequestReader()
    third = len(data) // 3
    for part in (data[:third], data[third : 2 * third], data[2 * third :]):
        reader.feed(part)


_PCSC_COMMANDS: tuple[Command, ...] = tuple(REQUEST_STRUCTS)


def _pcsc_struct_seeds() -> list[bytes]:
    seeds = []
    for request in _pcsc_stream_seeds()[1:]:
        with contextlib.suppress(ProtocolError):
            for parsed in PcscRequestReader().feed(request):
                if parsed.message is not None:
                    index = _PCSC_COMMANDS.index(parsed.command)
                    seeds.append(bytes([index]) + parsed.message.encode())
    table = encode_readers_state([ReaderState("Virtual PCD 00 00", 3, 0x34, 1, _ATR, 2)], 2)
    seeds += [bytes([0xFE]) + table, bytes([0xFF]) + ReadersStateSize(2).encode()]
    return seeds


@target("pcsclite_structs", _pcsc_struct_seeds,
        "pcsc-lite structs one at a time, and replies (first byte: command index)")
def fuzz_pcsc_structs(data: bytes) -> None:
    if not data:
        return
    selector, body = data[0], data[1:]
    if selector == 0xFE:
        decode_readers_state(body, len(body) // ReaderState.SIZE)
        return
    if selector == 0xFF:
        ReadersStateSize.decode(body)
        return
    command = _PCSC_COMMANDS[selector % len(_PCSC_COMMANDS)]
    struct_type = REQUEST_STRUCTS[command]
    if struct_type is not None:
        _each((struct_type.decode,), body)
    decode_reply(command, body, table_size=2)


# -- Kerberos, APDU, TLV ------------------------------------------------------------------------


def _ccache_seeds() -> list[bytes]:
    from tests.unit import test_logon_pkinit as t

    v4 = Ccache.decode(t.CCACHE_V4)
    v3 = type(v4)(type(v4.version)(0x0503), b"", v4.default_principal, v4.credentials)
    return [t.CCACHE_V4, v3.encode()]


@target("ccache", _ccache_seeds, "Kerberos credential cache files (v3, v4)")
def fuzz_ccache(data: bytes) -> None:
    cache = Ccache.decode(data)
    cache.tgt()


def _kdc_reply_seeds() -> list[bytes]:
    """PKINIT AS-REPs as MIT's and Heimdal's KDCs shape them, around one fixed certificate
    (Ed25519 signs deterministically, so the seeds are the same at every run)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    from rdscard.pki.der import tlv
    from tests.unit import test_kdc_relay as t

    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kdc.example.test")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=365)).sign(key, None))
    heimdal = t.heimdal_signed_data([cert, cert])
    return [t.as_rep([(19, b"etype-info"), (17, t.dh_rep([cert]))]),
            t.as_rep([(17, tlv(0xA0, tlv(0x30, tlv(0x80, heimdal))))])]


@target("kdc-reply", _kdc_reply_seeds,
        "AS-REP PKINIT replies read by the KDC relay for the KDC's certificates")
def fuzz_kdc_reply(data: bytes) -> None:
    kdc_certificates(data)


def _apdu_seeds() -> list[bytes]:
    from tests.unit import test_apdu as t

    return [t.SELECT_PIV, t.VERIFY_PIN, t.VERIFY_STATUS, t.GET_RESPONSE,
            bytes.fromhex("00 87 07 9a 00 00 01 00") + bytes(256) + b"\x00\x00",
            bytes.fromhex("61 11 4f 06 00 00 10 00 01 00 79 07 4f 05 a0 00 00 03 08 90 00")]


@target("apdu", _apdu_seeds, "ISO 7816-4 command and response APDUs")
def fuzz_apdu(data: bytes) -> None:
    _each((CommandApdu.decode, ResponseApdu.decode), data)


def _tlv_seeds() -> list[bytes]:
    from tests.unit import test_tlv as t

    nested = tlv(0x53, tlv(0x70, bytes(300)) + tlv(0x71, b"\x00") + tlv(0xFE, b""))
    return [t.DISCOVERY, t.TAG_LIST_CHUID, nested, tlv(0x7C, tlv(0x82, b"") + tlv(0x81, bytes(32)))]


def _walk(items: Sequence[Tlv], depth: int) -> None:
    for item in items:
        if item.constructed and depth < 8:
            _walk(item.children(), depth + 1)


@target("tlv", _tlv_seeds, "BER-TLV objects (ISO 7816-4), constructed ones opened")
def fuzz_tlv(data: bytes) -> None:
    _walk(decode_all(data), 0)


# -- CredSSP (MS-CSSP) ----------------------------------------------------------------------------


def _credssp_seeds() -> list[bytes]:
    from rdscard.pdu.credssp import (
        TsCredentials,
        TsCspDataDetail,
        TsRequest,
        TsSmartCardCreds,
    )
    from rdscard.secret import Secret
    from tests.unit.test_credssp_pdu import SPEC_EXAMPLE

    card = TsSmartCardCreds(Secret(b"123456"), TsCspDataDetail(
        1, "PIV\0", "Virtual PCD 00 00\0", "{1d9b8e6c-0000}", "Microsoft Base Smart Card "
        "Crypto Provider"), "alice\0", "EXAMPLE.TEST\0")
    return [
        SPEC_EXAMPLE, TsCredentials(2, card.encode()).encode(), card.encode(),
        TsCredentials(1, bytes.fromhex("3000")).encode(),
        TsRequest(6, (bytes.fromhex("6082010006062b0601050502a0"),),
                  client_nonce=bytes(32)).encode(),
        TsRequest(2, (b"\x6e" * 40,)).encode(),
        TsRequest(6, pub_key_auth=b"\x05\x04" + bytes(90), client_nonce=bytes(32)).encode(),
        TsRequest(6, auth_info=b"\x05\x04" + bytes(300)).encode(),
        TsRequest(6, error_code=0xC000006D).encode(),
    ]


@target("credssp", _credssp_seeds,
        "CredSSP: TSRequest, TSCredentials and TSSmartCardCreds (and the framing)")
def _credssp(data: bytes) -> None:
    from rdscard.pdu import credssp

    with contextlib.suppress(ProtocolError):
        credssp.ts_request_length(data[:5])
    errors: list[ProtocolError] = []
    for decode in (credssp.TsRequest.decode, credssp.TsCredentials.decode,
                   credssp.TsSmartCardCreds.decode):
        try:
            decoded = decode(data)
        except ProtocolError as exc:
            errors.append(exc)
            continue
        if isinstance(decoded, credssp.TsSmartCardCreds):
            decoded.pin.wipe()
    if len(errors) == 3:
        raise errors[0]


# -- decoders to come ---------------------------------------------------------------------------


def _optional_targets() -> None:
    """Targets of decoders that may not exist yet: registered once their module imports.

    One entry per decoder: (target name, module, function taking bytes, description).
    """
    planned: tuple[tuple[str, str, str, str], ...] = ()
    for name, module_name, function, description in planned:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        decode = getattr(module, function, None)
        if decode is None:
            continue
        seeds = tuple(getattr(module, "FUZZ_SEEDS", ()))
        register(Target(name, decode, functools.partial(tuple, seeds), description))


_optional_targets()


def _ipc_seeds() -> tuple[bytes, ...]:
    from rdscard.privsep import ipc
    from rdscard.secret import Secret

    messages: list[ipc.Message] = [
        ipc.OpenCardSocket(7), ipc.CloseCardSocket(7), ipc.EndDesktop(3), ipc.TakeOver(1, 3),
        ipc.SignIn(3, 1, "127.0.0.1:5000", "vm", "Virtual PCD 00 00", "alice", "EXAMPLE", "",
                   False, Secret(b"123456")),
        ipc.SignIn(4, 2, "127.0.0.1:5001", "vm", "Virtual PCD 00 00", "", "", "", True,
                   Secret()),
        ipc.CredSsp(4, "127.0.0.1:5001", bytes.fromhex("3005a003020106")),
        ipc.CredSspReply("done", b"", "alice@EXAMPLE.TEST", "alice", "", False),
        ipc.CredSspReply("refused", bytes.fromhex("300ba003020106a4040204c000006d"), "", "",
                         "bad token", False),
        ipc.StartDesktop(3, 1024, 768, 0x409, "127.0.0.1"), ipc.SessionEnded(3),
        ipc.SessionLocked(3),
        ipc.Transmit(1, bytes.fromhex("00a4040009a00000030800001000")),
        ipc.DesktopEnded(3, "the session command exited"), ipc.Done("/run/x"),
        ipc.Failed("no"), ipc.TransmitReply(b"\x90\x00"), ipc.ControlRequest('{"command":1}'),
        ipc.ControlReply(b'{"sessions":[]}'), ipc.RefusedReply("wrong_pin", "Wrong PIN", 2),
        ipc.SignedInReply("alice", 1001, 1001, "alice@example.test", "EXAMPLE.TEST",
                          "alice@EXAMPLE.TEST", "kerberos", "CN=Alice", "5A0F", "FILE:/x",
                          1.8e9, '{"PIN verify": 0.01}'),
        ipc.DesktopReply(":12", bytes(16), "/run/rdscard/desktop-3/Xauthority"),
    ]
    return tuple(bytes(ipc.encode(m, 9)) for m in messages)


@target("privsep_ipc", _ipc_seeds, "the monitor's IPC codec (both directions)")
def _privsep_ipc(data: bytes) -> None:
    from rdscard.privsep import ipc

    ipc.decode(data)


class _SeedCard:
    """A card's slot 9D for the seed keys, as :class:`~rdscard.pki.piv_client.PivClient`
    answers: the raw RSA result (a seed's ciphertext gives its real block, any other block
    comes back as it is, as a wrong key's result would look) and ECDH's shared secret."""

    def __init__(self) -> None:
        from tests.fuzz import cms_seeds

        keys = cms_seeds.keys()
        rsa_key, ec_key = keys["rsa2048"], keys["p256"]
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        assert isinstance(rsa_key, rsa.RSAPrivateKey)
        assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
        self.rsa_public, self.ec_key = rsa_key.public_key(), ec_key
        numbers = rsa_key.private_numbers()
        self.blocks: dict[bytes, bytes] = {}
        for seed in cms_seeds.envelopes():
            for recipient in cms.parse_envelope(seed).recipients:
                if isinstance(recipient, cms.KeyTransRecipient):
                    c = int.from_bytes(recipient.encrypted_key, "big")
                    self.blocks[recipient.encrypted_key] = pow(
                        c, numbers.d, numbers.public_numbers.n).to_bytes(256, "big")

    def rsa_private(self, slot: int, block: bytes) -> bytes:
        return self.blocks.get(block, block)

    def ecdh(self, slot: int, peer_point: bytes, algorithm: object) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec

        peer = ec.EllipticCurvePublicKey.from_encoded_point(self.ec_key.curve, peer_point)
        return self.ec_key.exchange(ec.ECDH(), peer)


@functools.cache
def _seed_card() -> _SeedCard:
    return _SeedCard()


def _cms_seeds() -> tuple[bytes, ...]:
    from tests.fuzz import cms_seeds

    return cms_seeds.envelopes()


@target("cms_envelope", _cms_seeds,
        "CMS EnvelopedData of an encrypted folder's key, each recipient opened with a 9D",
        allowed=(cms.EnvelopeError,))
def fuzz_cms_envelope(data: bytes) -> None:
    from rdscard.efs.keywrap import UnwrapError
    from rdscard.efs.operators import CardKeyOperator

    envelope = cms.parse_envelope(data)
    card = _seed_card()
    for recipient in envelope.recipients:
        recipient.rid.describe()
        public = card.rsa_public if isinstance(recipient, cms.KeyTransRecipient) \
            else card.ec_key.public_key()
        operator = CardKeyOperator(card, public)  # type: ignore[arg-type]
        try:
            with cms.open_envelope(envelope, recipient, operator) as master:
                assert len(master) <= cms.MAX_CONTENT
        except UnwrapError:
            continue


def _sid_extension_seeds() -> tuple[bytes, ...]:
    from rdscard.pki.der import encode_sid_extension

    return (encode_sid_extension("S-1-5-21-3623811015-3361044348-30300820-1013"),
            encode_sid_extension("S-1-5-18"))


@target("sid_extension", _sid_extension_seeds,
        "the SID extension (szOID_NTDS_CA_SECURITY_EXT) of a card's sign-in certificate")
def _sid_extension(data: bytes) -> None:
    from rdscard.pki.der import decode_sid_extension, encode_sid_extension, is_sid

    sid = decode_sid_extension(data)
    assert is_sid(sid) and encode_sid_extension(sid) == data
