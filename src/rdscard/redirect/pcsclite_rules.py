"""pcscd's rules for one connection: its limits, the checks it answers alone, its tables.

The constants and argument checks pcsc-lite's winscard_svc.c and winscard.c
apply before a request reaches a reader, and the records
:class:`~rdscard.redirect.pcsclite_connection.PcscliteConnection` keeps of
the contexts and card handles a program holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from rdscard.pdu.pcsclite import Command, Connect, Control, GetSetAttrib, ScardError

#: Contexts one connection may hold (libpcsclite establishes one per connection).
MAX_CONTEXTS_PER_CONNECTION: Final = 16
#: Card handles one connection may hold (pcscd's PCSC_MAX_CONTEXT_CARD_HANDLES).
MAX_HANDLES_PER_CONNECTION: Final = 200
#: Minor version assumed for a connection that never sent CMD_VERSION.
DEFAULT_MINOR: Final = 4
SUCCESS: Final = ScardError.SCARD_S_SUCCESS
#: SCARD_SCOPE_USER, _TERMINAL, _SYSTEM and _GLOBAL: the scopes pcscd accepts.
SCOPES: Final = frozenset({0, 1, 2, 3})
#: Protocol bits pcscd needs in a non-direct SCardConnect (T0, T1, RAW, winscard.c's ANY_OLD).
_CONNECT_PROTOCOLS: Final = 0x0001 | 0x0002 | 0x0004 | 0x1000
_SHARE_MODES: Final = frozenset({1, 2, 3})  # SCARD_SHARE_EXCLUSIVE, _SHARED, _DIRECT
_SHARE_DIRECT: Final = 3
#: Requests answered from the service's own state (the reader table, versions).
FROM_THE_TABLE: Final = frozenset({
    Command.CMD_GET_READERS_STATE, Command.CMD_WAIT_READER_STATE_CHANGE,
    Command.CMD_STOP_WAITING_READER_STATE_CHANGE, Command.CMD_GET_READER_EVENTS,
    Command.CMD_GET_READERS_STATE_SIZE, Command.CMD_GET_READERS_STATE_ARRAY,
    Command.CMD_VERSION,
})


def connect_arguments(message: Connect) -> int:
    """pcscd's first checks of SCardConnect (winscard.c), answered without the client.

    FreeRDP's client lets a shared connect without protocol bits through (its
    pcsc-lite layer turns "none" into "any"); pcscd refuses it.
    """
    if (message.dw_share_mode != _SHARE_DIRECT
            and not message.dw_preferred_protocols & _CONNECT_PROTOCOLS):
        return ScardError.SCARD_E_PROTO_MISMATCH
    if message.dw_share_mode not in _SHARE_MODES:
        return ScardError.SCARD_E_INVALID_VALUE
    return SUCCESS


def connect_reply(message: Connect, h_card: int, protocol: int, rv: int) -> bytes:
    """pcscd's SCardConnect reply: the request's fields, the new handle and protocol."""
    return Connect(message.h_context, message.sz_reader, message.dw_share_mode,
                   message.dw_preferred_protocols, h_card, protocol & 0xFFFFFFFF, rv).encode()


def control_reply(message: Control, rv: int, response: bytes) -> bytes:
    """pcscd's SCardControl reply: data only on success, and a reply larger than the
    program's buffer becomes SCARD_E_INSUFFICIENT_BUFFER."""
    if rv == SUCCESS and len(response) > message.cb_recv_length:
        rv = ScardError.SCARD_E_INSUFFICIENT_BUFFER
    reply = Control(message.h_card, message.dw_control_code, message.cb_send_length,
                    message.cb_recv_length, len(response), rv).encode()
    return reply + response if rv == SUCCESS else reply


def get_attrib_reply(message: GetSetAttrib, rv: int, attr: bytes) -> bytes:
    """pcscd's SCardGetAttrib reply: a value larger than the program's buffer becomes
    SCARD_E_INSUFFICIENT_BUFFER with the length it needs."""
    if rv == SUCCESS and len(attr) > message.cb_attr_len:
        reply = GetSetAttrib(message.h_card, message.dw_attr_id, b"", len(attr),
                             ScardError.SCARD_E_INSUFFICIENT_BUFFER)
    elif rv == SUCCESS:
        reply = GetSetAttrib(message.h_card, message.dw_attr_id, attr, len(attr), SUCCESS)
    else:
        reply = GetSetAttrib(message.h_card, message.dw_attr_id, b"", 0, rv)
    return reply.encode()


@dataclass
class ConnectionHandle:
    """A card handle of one connection: its context, the client's opaque hCard, nesting."""

    context: int
    opaque: bytes
    transactions: int = 0  # nested SCardBeginTransaction calls not yet ended

    @property
    def in_transaction(self) -> bool:
        """Inside at least one SCardBeginTransaction."""
        return self.transactions > 0


@dataclass
class ConnectionContext:
    """A context of one connection: the client's opaque context and its card handles."""

    opaque: bytes
    handles: set[int] = field(default_factory=set)
