"""One battery of pcsc-lite calls, recorded so that two daemons can be compared record by record.

The same battery runs against the client's pcscd and against a session's
socket (the same card, redirected). Each record is (step, fields): the
return codes and the output fields a program can see, normalised where the
two legitimately differ:

- context and card handle values are each daemon's own random ids: only
  whether one was given (non-zero) is kept;
- a reader's eventCounter (the upper 16 bits of a GetStatusChange or
  SCardStatus state in libpcsclite) counts card events since that daemon
  started, so the two counts start at different times: dropped;
- readerSharing: libpcsclite looks only at its sign (-1 exclusive, >= 1 in
  use, 0 free: winscard_clnt.c SCardGetStatusChange), so only the sign is
  kept (pcscd counts the shared handles, MS-RDPESC only says "in use").

Reader names are the client's own pcsc-lite names on both sides (MS-RDPESC
ListReaders passes them through), so they are compared as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdscard.pdu.pcsclite import (
    BeginTransaction,
    Cancel,
    Command,
    Connect,
    Control,
    Disconnect,
    EndTransaction,
    EstablishContext,
    GetSetAttrib,
    ReaderState,
    Reconnect,
    ReleaseContext,
    Status,
    Transmit,
    Version,
    scard_ctl_code,
)
from rdscard.testbed.pcsclite_client import PeerClosedError, WireClient

C = Command
Record = tuple[str, dict[str, Any]]

SHARE_EXCLUSIVE, SHARE_SHARED, SHARE_DIRECT = 1, 2, 3
T0, T1, T0_OR_T1 = 1, 2, 3
LEAVE, RESET = 0, 1
SELECT_PIV = bytes.fromhex("00a4040009a0000003080000100000")
GET_CHUID = bytes.fromhex("00cb3fff055c035fc10200")
ATTR_ATR_STRING = 0x00090303
ATTR_FRIENDLY_NAME_A = 0x7FFF0003  # SCARD_ATTR_DEVICE_FRIENDLY_NAME_A (SCARD_CLASS_SYSTEM)
ATTR_SYSTEM_NAME_A = 0x7FFF0004  # SCARD_ATTR_DEVICE_SYSTEM_NAME_A
ATTR_VENDOR_NAME = 0x00010100
ATTR_UNKNOWN = 0x0001FFFF
FEATURE_REQUEST = scard_ctl_code(3400)
SHARING_VIOLATION = 0x8010000B


@dataclass
class CardSlot:
    """The card of the battery's reader, as the test can move it (vpcd).

    ``outside`` is the client's own pcscd socket: a program on the client's
    computer, beside the session, uses the same card there.
    """

    reader: str
    remove: Callable[[], None]
    insert: Callable[[], None]
    outside: Path | None = None


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def entry(table: tuple[ReaderState, ...], reader: str) -> dict[str, Any]:
    """What libpcsclite makes of ``reader``'s table entry (see the module docstring)."""
    for state in table:
        if state.reader_name == reader:
            return {"state": hex(state.reader_state), "sharing": _sign(state.reader_sharing),
                    "atr": state.card_atr.hex(), "protocol": state.card_protocol}
    return {"missing": True}


def retry(client: WireClient, command: Command, message: Any) -> Any:
    """libpcsclite's loop: the request again while pcscd answers SCARD_E_SHARING_VIOLATION."""
    for _ in range(1000):
        reply, _ = client.call(command, message)
        if reply.rv != SHARING_VIOLATION:
            return reply
        time.sleep(0.01)  # PCSCLITE_LOCK_POLL_RATE
    return reply


def readers(table: tuple[ReaderState, ...]) -> list[str]:
    return [state.reader_name for state in table if state.reader_name]


class Battery:
    """Runs the calls against one daemon socket and keeps the records."""

    def __init__(self, path: Path, card: CardSlot) -> None:
        self.path = path
        self.card = card
        self.records: list[Record] = []
        self._open: list[WireClient] = []

    def record(self, step: str, **fields: Any) -> None:
        self.records.append((step, fields))

    def client(self) -> WireClient:
        client = WireClient(self.path, timeout=10)
        self._open.append(client)
        return client

    def context(self) -> tuple[WireClient, int]:
        """A connection with CMD_VERSION 4.4 and one context, as SCardEstablishContext makes."""
        client = self.client()
        version, _ = client.call(C.CMD_VERSION, Version(4, 4))
        assert version.rv == 0, version
        reply, _ = client.call(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
        assert reply.rv == 0 and reply.h_context, reply
        return client, reply.h_context

    def connect(self, client: WireClient, h_context: int, step: str, share: int,
                protocols: int = T0_OR_T1, reader: str | None = None) -> int:
        reply, _ = client.call(C.SCARD_CONNECT, Connect(h_context, reader or self.card.reader,
                                                        share, protocols))
        self.record(step, rv=hex(reply.rv), handle=bool(reply.h_card),
                    protocol=reply.dw_active_protocol)
        return reply.h_card

    def transmit(self, client: WireClient, h_card: int, step: str, apdu: bytes = SELECT_PIV,
                 *, protocol: int = T1, recv_length: int = 65548,
                 recv_protocol: int = T0_OR_T1) -> None:
        message = Transmit(h_card, protocol, 8, len(apdu), recv_protocol, 8, recv_length)
        reply, data = client.call(C.SCARD_TRANSMIT, message, apdu)
        self.record(step, rv=hex(reply.rv), recv_protocol=reply.io_recv_pci_protocol,
                    recv_pci_length=reply.io_recv_pci_length,
                    length=reply.pcb_recv_length if reply.rv == 0 else None,
                    sw=data[-2:].hex())

    def status(self, client: WireClient, h_card: int, step: str) -> None:
        reply, _ = client.call(C.SCARD_STATUS, Status(h_card))
        self.record(step, rv=hex(reply.rv), **entry(client.readers_state(), self.card.reader))

    def attrib(self, client: WireClient, h_card: int, step: str, attr: int, length: int) -> None:
        reply, _ = client.call(C.SCARD_GET_ATTRIB, GetSetAttrib(h_card, attr, b"", length))
        value = reply.pb_attr[: reply.cb_attr_len] if reply.rv == 0 else b""
        self.record(step, rv=hex(reply.rv), length=reply.cb_attr_len, value=value.hex())

    def simple(self, client: WireClient, step: str, command: Command, message: Any) -> None:
        reply, _ = client.call(command, message)
        self.record(step, rv=hex(reply.rv))

    def closes(self, step: str, command: Command, message: Any) -> None:
        """A request pcscd refuses by hanging up (a handle of another connection)."""
        client = self.client()
        client.call(C.CMD_VERSION, Version(4, 4))
        try:
            reply, _ = client.call(command, message)
        except PeerClosedError:
            self.record(step, closed=True)
        else:
            self.record(step, closed=False, rv=hex(reply.rv))

    # -- the battery -----------------------------------------------------------------
    def run(self) -> list[Record]:
        try:
            self._contexts_and_readers()
            self._waits()
            self._sharing()
            self._card_calls()
            self._transactions()
            self._answered_at_once()
            if self.card.outside is not None:
                self._outside_program(self.card.outside)
            self._removal()
        finally:
            for client in self._open:
                client.close()
        return self.records

    def _contexts_and_readers(self) -> None:
        client = self.client()
        reply, _ = client.call(C.CMD_VERSION, Version(4, 4))
        self.record("version 4.4", rv=hex(reply.rv), major=reply.major, minor=reply.minor)
        for scope in (0, 2, 7):
            established, _ = client.call(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(scope))
            self.record(f"establish scope {scope}", rv=hex(established.rv),
                        context=bool(established.h_context))
            self.simple(client, f"release scope {scope}", C.SCARD_RELEASE_CONTEXT,
                        ReleaseContext(established.h_context))
        self.simple(client, "release unknown context", C.SCARD_RELEASE_CONTEXT,
                    ReleaseContext(0x1234567))
        table = client.readers_state()
        self.record("list readers", readers=readers(table))
        self.record("reader entry", **entry(table, self.card.reader))
        _, h_context = self.context()
        self.simple(self.client(), "cancel unknown context", C.SCARD_CANCEL, Cancel(0x7654321))
        other, _ = self.context()
        self.simple(other, "release another connection's context", C.SCARD_RELEASE_CONTEXT,
                    ReleaseContext(h_context))

    def _waits(self) -> None:
        waiter, h_context = self.context()
        table = waiter.start_waiting()
        self.record("wait: table at once", **entry(table, self.card.reader))
        # the program's own timeout ends the wait: stop waiting, one 8-byte answer
        self.record("wait: stop after timeout", rv=hex(waiter.stop_waiting().rv))
        # SCardCancel from a connection of its own ends a wait with SCARD_E_CANCELLED
        waiter.start_waiting()
        canceller = self.client()
        self.simple(canceller, "cancel a waiting context", C.SCARD_CANCEL, Cancel(h_context))
        # the cancel was the registration's one message: pcscd sends nothing for a stop now
        self.record("wait: cancelled", rv=hex(waiter.read_wait_result().rv))

    def _sharing(self) -> None:
        a, ctx_a = self.context()
        b, ctx_b = self.context()
        h_a = self.connect(a, ctx_a, "connect shared", SHARE_SHARED)
        self.record("table with a shared handle", **entry(b.readers_state(), self.card.reader))
        self.connect(b, ctx_b, "connect exclusive while shared", SHARE_EXCLUSIVE)
        self.simple(a, "disconnect shared", C.SCARD_DISCONNECT, Disconnect(h_a, LEAVE))
        h_x = self.connect(a, ctx_a, "connect exclusive", SHARE_EXCLUSIVE)
        # what SCardGetStatusChange of another context sees: the table at the wait
        waiting = b.start_waiting()
        self.record("wait: reader held exclusively", **entry(waiting, self.card.reader))
        b.stop_waiting()
        self.connect(b, ctx_b, "connect shared while exclusive", SHARE_SHARED)
        self.connect(b, ctx_b, "connect direct while exclusive", SHARE_DIRECT, 0)
        self.simple(a, "disconnect exclusive", C.SCARD_DISCONNECT, Disconnect(h_x, LEAVE))
        self.record("table after exclusive", **entry(b.readers_state(), self.card.reader))
        self.connect(b, ctx_b, "connect unknown reader", SHARE_SHARED,
                     reader="No Such Reader 00 00")
        self.connect(b, ctx_b, "connect shared without protocols", SHARE_SHARED, 0)
        reply, _ = a.call(C.SCARD_CONNECT, Connect(ctx_b, self.card.reader, SHARE_SHARED,
                                                    T0_OR_T1))
        self.record("connect with another connection's context", rv=hex(reply.rv))

    def _card_calls(self) -> None:
        a, ctx_a = self.context()
        b, ctx_b = self.context()
        h = self.connect(a, ctx_a, "connect T1 shared", SHARE_SHARED, T1)
        self.transmit(a, h, "transmit SELECT")
        self.transmit(a, h, "transmit GET DATA CHUID", GET_CHUID)
        self.transmit(a, h, "transmit short receive buffer", recv_length=1)
        self.transmit(a, h, "transmit T0 on a T1 card", protocol=T0)
        self.transmit(a, h, "transmit receive pci T1", recv_protocol=T1)
        self.status(a, h, "status")
        self.simple(a, "begin transaction", C.SCARD_BEGIN_TRANSACTION, BeginTransaction(h))
        self.transmit(a, h, "transmit in transaction")
        self.simple(a, "end transaction", C.SCARD_END_TRANSACTION, EndTransaction(h, LEAVE))
        self.simple(a, "end transaction again", C.SCARD_END_TRANSACTION, EndTransaction(h, LEAVE))
        for name, attr in (("ATR", ATTR_ATR_STRING), ("friendly name", ATTR_FRIENDLY_NAME_A),
                           ("system name", ATTR_SYSTEM_NAME_A), ("vendor name", ATTR_VENDOR_NAME),
                           ("unknown", ATTR_UNKNOWN)):
            self.attrib(a, h, f"get attrib {name}", attr, 264)
            self.attrib(a, h, f"get attrib {name}, 4-byte buffer", attr, 4)
        reply, _ = a.call(C.SCARD_SET_ATTRIB, GetSetAttrib(h, ATTR_VENDOR_NAME, b"x", 1))
        self.record("set attrib vendor name", rv=hex(reply.rv))
        reply, data = a.call(C.SCARD_CONTROL, Control(h, FEATURE_REQUEST, 0, 256))
        self.record("control feature request", rv=hex(reply.rv),
                    returned=reply.dw_bytes_returned if reply.rv == 0 else None, data=data.hex())
        # a second handle resets the card: the first one's next call says so
        h_b = self.connect(b, ctx_b, "connect second handle", SHARE_SHARED)
        reply, _ = b.call(C.SCARD_RECONNECT, Reconnect(h_b, SHARE_SHARED, T0_OR_T1, RESET))
        self.record("reconnect with reset", rv=hex(reply.rv), protocol=reply.dw_active_protocol)
        self.transmit(a, h, "transmit after another handle's reset")
        self.transmit(a, h, "transmit after the reset was reported")
        reply, _ = a.call(C.SCARD_RECONNECT, Reconnect(h, SHARE_SHARED, T0_OR_T1, LEAVE))
        self.record("reconnect leave", rv=hex(reply.rv), protocol=reply.dw_active_protocol)
        self.closes("disconnect another connection's handle", C.SCARD_DISCONNECT,
                    Disconnect(h, LEAVE))
        self.simple(a, "disconnect", C.SCARD_DISCONNECT, Disconnect(h, LEAVE))
        self.simple(b, "disconnect second", C.SCARD_DISCONNECT, Disconnect(h_b, RESET))

    def _transactions(self) -> None:
        """Transactions back to back, as OpenSC makes them, and what a held one allows."""
        a, ctx_a = self.context()
        b, ctx_b = self.context()
        h = self.connect(a, ctx_a, "tx: connect", SHARE_SHARED)
        h_b = self.connect(b, ctx_b, "tx: connect second handle", SHARE_SHARED)
        for round_ in (1, 2, 3):  # end, begin again at once: one transaction on the client
            self.simple(a, f"tx {round_}: begin", C.SCARD_BEGIN_TRANSACTION, BeginTransaction(h))
            self.status(a, h, f"tx {round_}: status")
            self.transmit(a, h, f"tx {round_}: transmit")
            self.attrib(a, h, f"tx {round_}: get attrib vendor name", ATTR_VENDOR_NAME, 264)
            self.attrib(a, h, f"tx {round_}: get attrib vendor name, 4-byte buffer",
                        ATTR_VENDOR_NAME, 4)
            self.attrib(a, h, f"tx {round_}: get attrib ATR", ATTR_ATR_STRING, 264)
            self.simple(a, f"tx {round_}: end", C.SCARD_END_TRANSACTION, EndTransaction(h, LEAVE))
        self.simple(a, "tx: status after the end", C.SCARD_STATUS, Status(h))
        # another handle right after the end: it gets the lock (the first one's is let go)
        self.simple(b, "tx: begin on the second handle", C.SCARD_BEGIN_TRANSACTION,
                    BeginTransaction(h_b))
        self.transmit(a, h, "tx: transmit while the second handle holds one")
        self.simple(a, "tx: status while the second handle holds one", C.SCARD_STATUS,
                    Status(h))
        self.simple(a, "tx: end while the second handle holds one", C.SCARD_END_TRANSACTION,
                    EndTransaction(h, LEAVE))
        self.simple(b, "tx: end on the second handle", C.SCARD_END_TRANSACTION,
                    EndTransaction(h_b, LEAVE))
        # nested transactions of one handle
        for step in ("begin", "begin nested"):
            self.simple(a, f"tx: {step}", C.SCARD_BEGIN_TRANSACTION, BeginTransaction(h))
        for step in ("end nested", "end outer", "end once more"):
            self.simple(a, f"tx: {step}", C.SCARD_END_TRANSACTION, EndTransaction(h, LEAVE))
        # a reset by another handle between two transactions is reported by the begin
        self.simple(a, "tx: begin before a reset", C.SCARD_BEGIN_TRANSACTION,
                    BeginTransaction(h))
        self.simple(a, "tx: end before a reset", C.SCARD_END_TRANSACTION,
                    EndTransaction(h, LEAVE))
        reply, _ = b.call(C.SCARD_RECONNECT, Reconnect(h_b, SHARE_SHARED, T0_OR_T1, RESET))
        self.record("tx: another handle resets the card", rv=hex(reply.rv),
                    protocol=reply.dw_active_protocol)
        self.simple(a, "tx: begin after the reset", C.SCARD_BEGIN_TRANSACTION,
                    BeginTransaction(h))
        self.simple(a, "tx: status after the reset", C.SCARD_STATUS, Status(h))
        reply, _ = a.call(C.SCARD_RECONNECT, Reconnect(h, SHARE_SHARED, T0_OR_T1, LEAVE))
        self.record("tx: reconnect after the reset", rv=hex(reply.rv))
        self.simple(a, "tx: begin after reconnecting", C.SCARD_BEGIN_TRANSACTION,
                    BeginTransaction(h))
        self.simple(a, "tx: end with reset", C.SCARD_END_TRANSACTION, EndTransaction(h, RESET))
        self.simple(b, "tx: status of the other handle after an end with reset",
                    C.SCARD_STATUS, Status(h_b))
        self.simple(a, "tx: disconnect", C.SCARD_DISCONNECT, Disconnect(h, LEAVE))
        self.simple(b, "tx: disconnect second", C.SCARD_DISCONNECT, Disconnect(h_b, LEAVE))

    def _answered_at_once(self) -> None:
        """Disconnects with SCARD_LEAVE_CARD and contexts: what follows sees them done.

        The session answers these without waiting for the client (a released
        context serves a later establish; the client's disconnect follows the
        answer), so each next call here is one that would see the client late.
        """
        a, ctx_a = self.context()
        b, ctx_b = self.context()
        h_x = self.connect(a, ctx_a, "quick: connect exclusive", SHARE_EXCLUSIVE)
        self.simple(a, "quick: disconnect exclusive", C.SCARD_DISCONNECT, Disconnect(h_x, LEAVE))
        self.record("quick: table right after", **entry(b.readers_state(), self.card.reader))
        h_b = self.connect(b, ctx_b, "quick: another connect exclusive right after",
                           SHARE_EXCLUSIVE)
        self.simple(b, "quick: disconnect it", C.SCARD_DISCONNECT, Disconnect(h_b, LEAVE))
        h = self.connect(a, ctx_a, "quick: connect", SHARE_SHARED)
        h_b = self.connect(b, ctx_b, "quick: connect second", SHARE_SHARED)
        self.simple(a, "quick: begin", C.SCARD_BEGIN_TRANSACTION, BeginTransaction(h))
        self.simple(a, "quick: disconnect inside the transaction", C.SCARD_DISCONNECT,
                    Disconnect(h, LEAVE))
        self.transmit(b, h_b, "quick: another handle's transmit right after")
        self.simple(b, "quick: another handle's begin right after", C.SCARD_BEGIN_TRANSACTION,
                    BeginTransaction(h_b))
        self.simple(b, "quick: its end", C.SCARD_END_TRANSACTION, EndTransaction(h_b, LEAVE))
        # the context whose handle left inside a transaction, released; then a new one
        self.simple(a, "pool: release the context", C.SCARD_RELEASE_CONTEXT,
                    ReleaseContext(ctx_a))
        c, ctx_c = self.context()
        h_c = self.connect(c, ctx_c, "pool: connect on a new context", SHARE_SHARED)
        self.simple(c, "pool: begin", C.SCARD_BEGIN_TRANSACTION, BeginTransaction(h_c))
        self.transmit(b, h_b, "pool: another handle's transmit while it holds the card")
        self.simple(c, "pool: end", C.SCARD_END_TRANSACTION, EndTransaction(h_c, LEAVE))
        self.transmit(b, h_b, "pool: another handle's transmit after the end")
        self.simple(c, "pool: disconnect", C.SCARD_DISCONNECT, Disconnect(h_c, LEAVE))
        self.simple(c, "pool: release", C.SCARD_RELEASE_CONTEXT, ReleaseContext(ctx_c))
        self.simple(c, "pool: release again", C.SCARD_RELEASE_CONTEXT, ReleaseContext(ctx_c))
        # a released context does not cancel: its id is gone
        self.simple(self.client(), "pool: cancel a released context", C.SCARD_CANCEL,
                    Cancel(ctx_c))
        self.simple(b, "quick: disconnect the second", C.SCARD_DISCONNECT, Disconnect(h_b, LEAVE))
        d, ctx_d = self.context()
        h_d = self.connect(d, ctx_d, "pool: connect exclusive on another new context",
                           SHARE_EXCLUSIVE)
        self.connect(b, ctx_b, "pool: connect while it is exclusive", SHARE_SHARED)
        if h_d:
            self.simple(d, "pool: disconnect with reset", C.SCARD_DISCONNECT,
                        Disconnect(h_d, RESET))
        h_b = self.connect(b, ctx_b, "pool: connect after the reset", SHARE_SHARED)
        self.transmit(b, h_b, "pool: transmit after the reset")
        self.simple(b, "pool: status after the reset", C.SCARD_STATUS, Status(h_b))
        self.simple(b, "quick: disconnect the last", C.SCARD_DISCONNECT, Disconnect(h_b, LEAVE))

    def _outside_program(self, outside: Path) -> None:
        """A program on the client's computer uses the card between the session's calls."""
        a, ctx_a = self.context()
        h = self.connect(a, ctx_a, "outside: session handle", SHARE_SHARED)
        self.simple(a, "outside: begin", C.SCARD_BEGIN_TRANSACTION, BeginTransaction(h))
        self.simple(a, "outside: end", C.SCARD_END_TRANSACTION, EndTransaction(h, LEAVE))
        other = WireClient(outside, timeout=10)
        self._open.append(other)
        other.call(C.CMD_VERSION, Version(4, 4))
        established, _ = other.call(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
        connected, _ = other.call(C.SCARD_CONNECT, Connect(established.h_context,
                                                           self.card.reader, SHARE_SHARED,
                                                           T0_OR_T1))
        h_o = connected.h_card
        # libpcsclite retries SCardBeginTransaction and SCardReconnect while pcscd answers
        # SCARD_E_SHARING_VIOLATION (winscard_clnt.c): so does this program
        self.record("outside: begin", rv=hex(retry(other, C.SCARD_BEGIN_TRANSACTION,
                                                   BeginTransaction(h_o)).rv))
        self.transmit(a, h, "outside: session transmit while the outside program holds one")
        self.simple(a, "outside: session status while the outside program holds one",
                    C.SCARD_STATUS, Status(h))
        self.record("outside: end", rv=hex(retry(other, C.SCARD_END_TRANSACTION,
                                                 EndTransaction(h_o, LEAVE)).rv))
        reset = retry(other, C.SCARD_RECONNECT, Reconnect(h_o, SHARE_SHARED, T0_OR_T1, RESET))
        self.record("outside: the outside program resets the card", rv=hex(reset.rv))
        self.simple(a, "outside: session begin after the outside reset",
                    C.SCARD_BEGIN_TRANSACTION, BeginTransaction(h))
        self.simple(a, "outside: session status after the outside reset", C.SCARD_STATUS,
                    Status(h))
        reply, _ = a.call(C.SCARD_RECONNECT, Reconnect(h, SHARE_SHARED, T0_OR_T1, LEAVE))
        self.record("outside: session reconnect", rv=hex(reply.rv))
        self.simple(a, "outside: session begin after reconnecting", C.SCARD_BEGIN_TRANSACTION,
                    BeginTransaction(h))
        self.simple(a, "outside: session end", C.SCARD_END_TRANSACTION, EndTransaction(h, LEAVE))
        # the session's transaction just ended: the outside program may take the card
        self.record("outside: begin right after the session's end",
                    rv=hex(retry(other, C.SCARD_BEGIN_TRANSACTION, BeginTransaction(h_o)).rv))
        self.record("outside: end again", rv=hex(retry(other, C.SCARD_END_TRANSACTION,
                                                       EndTransaction(h_o, LEAVE)).rv))
        other.call(C.SCARD_DISCONNECT, Disconnect(h_o, LEAVE))
        self.simple(a, "outside: session disconnect", C.SCARD_DISCONNECT, Disconnect(h, LEAVE))

    def _removal(self) -> None:
        a, ctx_a = self.context()
        h = self.connect(a, ctx_a, "connect before removal", SHARE_SHARED)
        waiter, _ = self.context()
        waiter.start_waiting()
        self.card.remove()
        self.record("wait: woken by removal", rv=hex(waiter.read_wait_result().rv))
        self.record("table after removal", **entry(waiter.readers_state(), self.card.reader))
        self.transmit(a, h, "transmit after removal")
        self.status(a, h, "status after removal")
        self.connect(a, ctx_a, "connect to an empty reader", SHARE_SHARED)
        waiter.start_waiting()
        self.card.insert()
        self.record("wait: woken by insertion", rv=hex(waiter.read_wait_result().rv))
        self.record("table after insertion", **entry(waiter.readers_state(), self.card.reader))
        h2 = self.connect(a, ctx_a, "connect after insertion", SHARE_SHARED)
        self.transmit(a, h2, "transmit after insertion")
        self.simple(a, "disconnect removed card's handle", C.SCARD_DISCONNECT,
                    Disconnect(h, LEAVE))
        self.simple(a, "release context", C.SCARD_RELEASE_CONTEXT, ReleaseContext(ctx_a))
