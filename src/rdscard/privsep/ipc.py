"""The monitor IPC codec: typed, length-limited messages between the two processes.

The network process (unprivileged, parses everything that comes from the
network) asks the privileged monitor for the few things it may not do
itself: a session's card socket, a sign-in, a desktop, a ticket move. Every
message is one datagram of a ``SOCK_SEQPACKET`` pair::

    u16 kind | u32 request id | fields in declaration order

Fields are typed by the message's annotations: ``int`` (i64), ``bool`` (one
byte, 0 or 1), ``float`` (finite f64), ``str`` (u16 length + UTF-8),
``bytes`` (u32 length) and :class:`~rdscard.secret.Secret` (u16 length, for
the PIN: decoded straight into a wipeable buffer, never into ``bytes``).
Each is bounded; a datagram must be consumed exactly. :func:`decode`
rejects anything else with :class:`~rdscard.errors.ProtocolError`, and the
monitor treats the peer's bytes as untrusted input like the network's own.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass
from typing import ClassVar, Final, get_type_hints

from rdscard.errors import ProtocolError
from rdscard.secret import Secret

PDU: Final = "monitor IPC message"
#: The largest datagram either side sends or accepts.
MAX_MESSAGE: Final = 96 * 1024
MAX_TEXT: Final = 4096
MAX_BYTES: Final = 70 * 1024
MAX_SECRET: Final = 256

_HEADER: Final = struct.Struct("<HI")
_I64: Final = struct.Struct("<q")
_F64: Final = struct.Struct("<d")
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")


@dataclass
class Message:
    """A message; subclasses set ``KIND`` and declare their fields."""

    KIND: ClassVar[int] = 0


# -- network process -> monitor ---------------------------------------------------------
@dataclass
class OpenCardSocket(Message):
    """Create session ``session_id``'s card socket (its listening descriptor comes back)."""

    KIND: ClassVar[int] = 1
    session_id: int


@dataclass
class CloseCardSocket(Message):
    """Remove session ``session_id``'s card socket directory."""

    KIND: ClassVar[int] = 2
    session_id: int


@dataclass
class SignIn(Message):
    """One sign-in attempt with the card reached through link ``link_id``.

    ``card_error`` non-empty: the card could not even be opened; the monitor
    only audits the refusal.
    """

    KIND: ClassVar[int] = 3
    session_id: int
    link_id: int
    client_address: str
    client_name: str
    reader: str
    user_name: str
    domain: str
    card_error: str
    #: Use the PIN the session's CredSSP exchange delegated (``pin`` is then empty).
    nla: bool
    pin: Secret


@dataclass
class StartDesktop(Message):
    """Start the desktop of the account signed in on ``session_id``."""

    KIND: ClassVar[int] = 4
    session_id: int
    width: int
    height: int
    keyboard_layout: int
    client_address: str


@dataclass
class EndDesktop(Message):
    """Log session ``session_id``'s desktop off (the reply comes once it is gone)."""

    KIND: ClassVar[int] = 5
    session_id: int


@dataclass
class TakeOver(Message):
    """Session ``new_session_id`` (a new sign-in) takes over ``old_session_id``."""

    KIND: ClassVar[int] = 6
    old_session_id: int
    new_session_id: int


@dataclass
class SessionEnded(Message):
    """Session ``session_id`` is gone: forget it, remove its socket and tickets."""

    KIND: ClassVar[int] = 7
    session_id: int


@dataclass
class SessionLocked(Message):
    """Session ``session_id`` was locked by the card removal policy (lock or logoff): its
    claim on the account's encrypted folder ends (the folder locks when no session holds it)."""

    KIND: ClassVar[int] = 8
    session_id: int


@dataclass
class CredSsp(Message):
    """One TSRequest of session ``session_id``'s Network Level Authentication (MS-CSSP).

    The bytes are relayed as they came out of TLS: the security context
    that seals the credentials lives in the monitor alone.
    """

    KIND: ClassVar[int] = 9
    session_id: int
    client_address: str
    data: bytes


# -- monitor -> network process ------------------------------------------------------------
@dataclass
class ControlRequest(Message):
    """One request line of the control socket (the monitor serves it)."""

    KIND: ClassVar[int] = 22
    line: str


@dataclass
class Transmit(Message):
    """One APDU of a sign-in, for the card behind ``link_id``."""

    KIND: ClassVar[int] = 20
    link_id: int
    apdu: bytes


@dataclass
class DesktopEnded(Message):
    """A notification: session ``session_id``'s leader ended the session by itself."""

    KIND: ClassVar[int] = 21
    session_id: int
    reason: str


# -- replies (either way) -----------------------------------------------------------------
@dataclass
class Done(Message):
    """A request succeeded; ``text`` is what it has to say (a path, a reason)."""

    KIND: ClassVar[int] = 40
    text: str


@dataclass
class Failed(Message):
    """A request failed; ``message`` names the cause and the fix."""

    KIND: ClassVar[int] = 41
    message: str


@dataclass
class ControlReply(Message):
    """The JSON answer to a :class:`ControlRequest`."""

    KIND: ClassVar[int] = 46
    answer: bytes


@dataclass
class TransmitReply(Message):
    """The card's response to a :class:`Transmit`."""

    KIND: ClassVar[int] = 42
    response: bytes


@dataclass
class SignedInReply(Message):
    """A successful sign-in: what the network process may know of it (no secret)."""

    KIND: ClassVar[int] = 43
    account: str
    uid: int
    gid: int
    upn: str
    realm: str
    principal: str
    mode: str
    subject: str
    serial: str
    ccname: str
    expires: float
    phases: str


@dataclass
class RefusedReply(Message):
    """A refused sign-in; ``tries_left`` is -1 when not a PIN refusal."""

    KIND: ClassVar[int] = 44
    reason_code: str
    message: str
    tries_left: int


@dataclass
class CredSspReply(Message):
    """A CredSSP step: the bytes to send back, and how the exchange stands (no secret)."""

    KIND: ClassVar[int] = 47
    status: str
    reply: bytes
    principal: str
    account: str
    message: str
    after_credentials: bool


@dataclass
class DesktopReply(Message):
    """A started desktop: where its X server is and its cookie."""

    KIND: ClassVar[int] = 45
    display: str
    cookie: bytes
    xauthority: str


MESSAGES: Final[dict[int, type[Message]]] = {
    cls.KIND: cls for cls in (
        OpenCardSocket, CloseCardSocket, SignIn, StartDesktop, EndDesktop, TakeOver,
        SessionEnded, SessionLocked, Transmit, DesktopEnded, ControlRequest, Done, Failed,
        TransmitReply, SignedInReply, RefusedReply, DesktopReply, ControlReply, CredSsp,
        CredSspReply)
}
_FIELDS: Final[dict[type[Message], tuple[tuple[str, type], ...]]] = {
    cls: tuple((f.name, get_type_hints(cls)[f.name]) for f in dataclasses.fields(cls))
    for cls in MESSAGES.values()
}


def encode(message: Message, request_id: int) -> bytearray:
    """The datagram of ``message``; a caller sending a Secret wipes it after sending."""
    out = bytearray(_HEADER.pack(message.KIND, request_id))
    for name, kind in _FIELDS[type(message)]:
        value = getattr(message, name)
        if kind is bool:
            out.append(1 if value else 0)
        elif kind is int:
            if not -(1 << 63) <= value < 1 << 63:
                raise ValueError(f"{type(message).__name__}.{name} is out of range")
            out += _I64.pack(value)
        elif kind is float:
            out += _F64.pack(value)
        elif kind is str:
            data = value.encode()
            if len(data) > MAX_TEXT:
                raise ValueError(f"{type(message).__name__}.{name} is too long")
            out += _U16.pack(len(data)) + data
        elif kind is bytes:
            if len(value) > MAX_BYTES:
                raise ValueError(f"{type(message).__name__}.{name} is too long")
            out += _U32.pack(len(value)) + value
        else:  # Secret
            buf = value.reveal()
            if len(buf) > MAX_SECRET:
                raise ValueError(f"{type(message).__name__}.{name} is too long")
            out += _U16.pack(len(buf))
            out += buf
    if len(out) > MAX_MESSAGE:
        raise ValueError(f"{type(message).__name__} is larger than {MAX_MESSAGE} bytes")
    return out


def decode(data: bytes | bytearray | memoryview) -> tuple[Message, int]:
    """The message and request id of one datagram; ProtocolError for anything malformed."""
    view = memoryview(data)
    if len(view) > MAX_MESSAGE:
        raise ProtocolError(PDU, "length", f"{len(view)} bytes, more than {MAX_MESSAGE}")
    if len(view) < _HEADER.size:
        raise ProtocolError(PDU, "header", f"truncated: {len(view)} bytes")
    kind, request_id = _HEADER.unpack_from(view)
    cls = MESSAGES.get(kind)
    if cls is None:
        raise ProtocolError(PDU, "kind", f"unknown message kind {kind}")
    pos = _HEADER.size
    values: dict[str, object] = {}
    secrets: list[Secret] = []
    try:
        for name, field_type in _FIELDS[cls]:
            values[name], pos = _field(view, pos, cls.__name__, name, field_type)
            if isinstance(values[name], Secret):
                secrets.append(values[name])  # type: ignore[arg-type]
        if pos != len(view):
            raise ProtocolError(PDU, cls.__name__, f"{len(view) - pos} trailing bytes")
    except ProtocolError:
        for secret in secrets:
            secret.wipe()
        raise
    return cls(**values), request_id


def _field(view: memoryview, pos: int, message: str, name: str,
           kind: type) -> tuple[object, int]:
    where = f"{message}.{name}"

    def need(count: int) -> None:
        if len(view) - pos < count:
            raise ProtocolError(PDU, where, f"truncated: need {count} bytes, "
                                f"{len(view) - pos} left")

    if kind is bool:
        need(1)
        if view[pos] > 1:
            raise ProtocolError(PDU, where, f"boolean {view[pos]} is neither 0 nor 1")
        return view[pos] == 1, pos + 1
    if kind is int:
        need(8)
        return _I64.unpack_from(view, pos)[0], pos + 8
    if kind is float:
        need(8)
        number = _F64.unpack_from(view, pos)[0]
        if not math.isfinite(number):
            raise ProtocolError(PDU, where, "not a finite number")
        return number, pos + 8
    if kind is bytes:
        need(4)
        (length,) = _U32.unpack_from(view, pos)
        if length > MAX_BYTES:
            raise ProtocolError(PDU, where, f"{length} bytes, more than {MAX_BYTES}")
        pos += 4
        need(length)
        return bytes(view[pos:pos + length]), pos + length
    need(2)
    (length,) = _U16.unpack_from(view, pos)
    pos += 2
    if kind is str:
        if length > MAX_TEXT:
            raise ProtocolError(PDU, where, f"{length} bytes, more than {MAX_TEXT}")
        need(length)
        try:
            return str(view[pos:pos + length], "utf-8"), pos + length
        except UnicodeDecodeError:
            raise ProtocolError(PDU, where, "not UTF-8") from None
    if length > MAX_SECRET:
        raise ProtocolError(PDU, where, f"{length} bytes, more than {MAX_SECRET}")
    need(length)
    return Secret(view[pos:pos + length]), pos + length
