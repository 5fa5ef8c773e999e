"""PcscliteService against an in-memory backend, driven by a scripted pcsc-lite client.

The client is built from the codecs of rdscard.pdu.pcsclite and reads replies
exactly as libpcsclite does (fixed struct sizes, payloads only when rv is 0).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdscard.pdu.pcsclite import (
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
    ReadersStateSize,
    ReaderState,
    Reconnect,
    ReleaseContext,
    ScardError,
    Status,
    Transmit,
    Version,
    WaitReaderStateChange,
    decode_readers_state,
)
from rdscard.pdu.pcsclite_framing import REQUEST_STRUCTS, PcscRequest, RequestStruct
from rdscard.redirect.backend import CardStatus, ReaderInfo
from rdscard.redirect.backend import ScardError as BackendError
from rdscard.redirect.pcsclite_connection import PcscliteConnection
from rdscard.redirect.pcsclite_service import PcscliteService

READER = "Virtual PCD 00 00"
ATR = bytes.fromhex("3b8880010000000000000000ff")
PRESENT = 0x0004 | 0x0010 | 0x0020  # SCARD_PRESENT | SCARD_POWERED | SCARD_NEGOTIABLE
E = ScardError
C = Command
TABLE = 16 * 184


class FakeBackend:
    """One reader with a card; records every call; failures and delays on request."""

    def __init__(self) -> None:
        self.table = [ReaderInfo(READER, 1, PRESENT, 0, ATR, 0)]
        self.changed = asyncio.Event()
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.fail: dict[str, int] = {}
        self.gate: dict[str, asyncio.Event] = {}
        self.response = bytes.fromhex("9000")
        self.attrib = b"\x01\x02\x03"
        self.ids = itertools.count(1)
        self.waits = 0

    def readers(self) -> Sequence[ReaderInfo]:
        return list(self.table)

    def change(self, table: list[ReaderInfo]) -> None:
        self.table = table
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait_for_reader_change(self) -> None:
        self.waits += 1
        await self.changed.wait()

    async def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        gate = self.gate.get(name)
        if gate is not None:
            await gate.wait()
        if name in self.fail:
            raise BackendError(self.fail[name])

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    async def establish_context(self, scope: int) -> bytes:
        await self._record("establish_context", scope)
        return b"ctx-%d" % next(self.ids)

    async def release_context(self, context: bytes) -> None:
        await self._record("release_context", context)

    async def cancel(self, context: bytes) -> None:
        await self._record("cancel", context)

    async def connect(
        self, context: bytes, reader: str, share_mode: int, preferred_protocols: int
    ) -> tuple[bytes, int]:
        await self._record("connect", context, reader, share_mode, preferred_protocols)
        return b"card-%d" % next(self.ids), 2

    async def reconnect(
        self, handle: bytes, share_mode: int, preferred_protocols: int, initialization: int
    ) -> int:
        await self._record("reconnect", handle, share_mode, preferred_protocols, initialization)
        return 1

    async def disconnect(self, handle: bytes, disposition: int) -> None:
        await self._record("disconnect", handle, disposition)

    async def begin_transaction(self, handle: bytes) -> None:
        await self._record("begin_transaction", handle)

    async def end_transaction(self, handle: bytes, disposition: int) -> None:
        await self._record("end_transaction", handle, disposition)

    async def transmit(
        self, handle: bytes, protocol: int, apdu: bytes, max_response: int
    ) -> tuple[int, bytes]:
        await self._record("transmit", handle, protocol, apdu, max_response)
        return protocol, self.response

    async def control(
        self, handle: bytes, control_code: int, data: bytes, max_response: int
    ) -> bytes:
        await self._record("control", handle, control_code, data, max_response)
        return self.response

    async def status(self, handle: bytes) -> CardStatus:
        await self._record("status", handle)
        return CardStatus(READER, PRESENT, 2, ATR)

    async def get_attrib(self, handle: bytes, attribute: int, max_length: int) -> bytes:
        await self._record("get_attrib", handle, attribute, max_length)
        return self.attrib

    async def set_attrib(self, handle: bytes, attribute: int, value: bytes) -> None:
        await self._record("set_attrib", handle, attribute, value)


class Client:
    """A scripted libpcsclite: sends requests, keeps every byte the service sent it."""

    def __init__(self, service: PcscliteService) -> None:
        self.out = bytearray()
        self.conn: PcscliteConnection = service.connect(self.out.extend, peer="test")
        self.open = True

    async def send(self, command: Command, message: RequestStruct | None = None,
                   payload: bytes = b"") -> bytes:
        """Send one request; return everything the service sent since the last call."""
        self.open = await self.conn.receive(PcscRequest(command, message, payload).encode())
        return self.take()

    def take(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data

    async def establish(self, minor: int = 4) -> int:
        version = Version.decode(await self.send(C.CMD_VERSION, Version(4, minor)))
        assert version.rv == 0
        reply = EstablishContext.decode(
            await self.send(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
        )
        assert reply.rv == 0 and reply.h_context != 0
        return reply.h_context

    async def connect(self, h_context: int) -> int:
        reply = Connect.decode(
            await self.send(C.SCARD_CONNECT, Connect(h_context, READER, 2, 3))
        )
        assert reply.rv == 0
        return reply.h_card


B = TypeVar("B", bound=FakeBackend)


def run(
    scenario: Callable[[B, PcscliteService], Awaitable[None]],
    backend_type: Callable[[], B] = FakeBackend,  # type: ignore[assignment]
) -> None:
    async def main() -> None:
        backend = backend_type()
        service = PcscliteService(backend, log=logging.getLogger("test.pcsclite"))
        try:
            await scenario(backend, service)
        finally:
            await service.close()

    asyncio.run(main())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- version, contexts, the reader table --------------------------------------------------


@pytest.mark.parametrize("minor", [4, 5, 6])
def test_supported_versions_are_answered_with_the_clients_own(minor: int) -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        # 11 00 00 00 = CMD_VERSION, 0c 00 00 00 = 12 bytes; {major 4, minor, rv 0}
        reply = await client.send(C.CMD_VERSION, Version(4, minor))
        assert reply == bytes([4, 0, 0, 0, minor, 0, 0, 0, 0, 0, 0, 0])
        assert client.conn.minor == minor

    run(scenario)


@pytest.mark.parametrize(("major", "minor"), [(4, 7), (4, 3), (3, 0), (5, 4)])
def test_other_versions_get_service_stopped_with_4_6_offered(major: int, minor: int) -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        reply = Version.decode(await client.send(C.CMD_VERSION, Version(major, minor)))
        assert reply == Version(4, 6, E.SCARD_E_SERVICE_STOPPED)
        assert client.open

    run(scenario)


def test_establish_and_release_context() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        a, b = Client(service), Client(service)
        ctx_a, ctx_b = await a.establish(), await b.establish()
        assert ctx_a != ctx_b
        assert backend.calls[:2] == [("establish_context", (2,)), ("establish_context", (2,))]
        assert service.find_context(ctx_a) is a.conn
        # b may not release a's context; an unknown one is an invalid handle
        reply = await b.send(C.SCARD_RELEASE_CONTEXT, ReleaseContext(ctx_a))
        assert ReleaseContext.decode(reply) == ReleaseContext(ctx_a, E.SCARD_E_INVALID_VALUE)
        reply = await b.send(C.SCARD_RELEASE_CONTEXT, ReleaseContext(0x1234))
        assert ReleaseContext.decode(reply).rv == E.SCARD_E_INVALID_HANDLE
        reply = await a.send(C.SCARD_RELEASE_CONTEXT, ReleaseContext(ctx_a))
        assert len(reply) == 8 and ReleaseContext.decode(reply) == ReleaseContext(ctx_a, 0)
        assert backend.calls[-1] == ("release_context", (b"ctx-1",))
        assert service.find_context(ctx_a) is None

    run(scenario)


def test_establish_failure_reports_the_backend_code() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        backend.fail["establish_context"] = E.SCARD_E_NO_SERVICE
        client = Client(service)
        reply = await client.send(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
        assert EstablishContext.decode(reply) == EstablishContext(2, 0, E.SCARD_E_NO_SERVICE)
        assert client.conn.context_ids == ()

    run(scenario)


def test_reader_table_is_16_entries_built_from_the_backend() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        reply = await client.send(C.CMD_GET_READERS_STATE)
        assert len(reply) == TABLE
        table = decode_readers_state(reply)
        assert table[0] == ReaderState(READER, 1, PRESENT, 0, ATR, 0)
        assert all(entry == ReaderState() for entry in table[1:])
        backend.table = [ReaderInfo(f"Reader {i}", i, 2) for i in range(20)]
        backend.table.insert(0, ReaderInfo("x" * 200, 1, 2))  # cannot be named: left out
        backend.table.insert(1, ReaderInfo("bad \udc80 name", 1, 2))  # not UTF-8 either
        table = decode_readers_state(await client.send(C.CMD_GET_READERS_STATE))
        assert [e.reader_name for e in table] == [f"Reader {i}" for i in range(16)]

    run(scenario)


def test_4_6_table_size_and_array() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        await client.establish(6)
        size = await client.send(C.CMD_GET_READERS_STATE_SIZE)
        assert size == b"\x10\x00\x00\x00" and ReadersStateSize.decode(size).array_size == 16
        array = await client.send(C.CMD_GET_READERS_STATE_ARRAY)
        assert decode_readers_state(array)[0].reader_name == READER

    run(scenario)


def test_reader_events_count_readers_coming_and_going() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        await client.establish(5)
        reply = await client.send(C.CMD_GET_READER_EVENTS)
        assert reply == b"\x01\x00\x00\x00\x00\x00\x00\x00"
        backend.change([*backend.table, ReaderInfo("Second", 1, 2)])
        await settle()
        assert GetReaderEvents.decode(await client.send(C.CMD_GET_READER_EVENTS)).reader_events == 2
        backend.change([replace(backend.table[0], state=2, atr=b"", event_counter=2)])
        await settle()  # a card change is not a reader event, but "Second" went away
        assert GetReaderEvents.decode(await client.send(C.CMD_GET_READER_EVENTS)).reader_events == 3

    run(scenario)


# -- card handles ----------------------------------------------------------------------------


def test_connect_transmit_and_disconnect() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        ctx = await client.establish()
        reply = await client.send(C.SCARD_CONNECT, Connect(ctx, READER, 2, 3))
        assert len(reply) == 152
        connect = Connect.decode(reply)
        assert connect.rv == 0 and connect.h_card not in (0, ctx)
        assert connect.dw_active_protocol == 2
        assert backend.calls[-1] == ("connect", (b"ctx-1", READER, 2, 3))
        h = connect.h_card
        select = bytes.fromhex("00a4040009a0000003080000100000")
        backend.response = bytes.fromhex("61119000")
        reply = await client.send(
            C.SCARD_TRANSMIT, Transmit(h, 2, 16, len(select), 2, 16, 258), select
        )
        assert len(reply) == 32 + 4
        assert Transmit.decode(reply[:32]) == Transmit(h, 2, 16, len(select), 2, 16, 4, 0)
        assert reply[32:] == backend.response
        # the whole response is asked for, as pcscd asks its driver; the program's 258
        # bytes only decide SCARD_E_INSUFFICIENT_BUFFER
        assert backend.calls[-1] == ("transmit", (b"card-2", 2, select, 65548))
        reply = await client.send(C.SCARD_DISCONNECT, Disconnect(h, 0))
        assert Disconnect.decode(reply) == Disconnect(h, 0, 0)
        assert backend.calls[-1] == ("disconnect", (b"card-2", 0))
        assert client.conn.handle_ids == ()

    run(scenario)


def test_transmit_errors_carry_no_data_and_short_buffers_get_the_needed_length() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        h = await client.connect(await client.establish())
        backend.response = bytes(300) + b"\x90\x00"
        reply = await client.send(C.SCARD_TRANSMIT, Transmit(h, 2, 16, 5, 2, 16, 258), bytes(5))
        assert len(reply) == 32
        assert Transmit.decode(reply).rv == E.SCARD_E_INSUFFICIENT_BUFFER
        assert Transmit.decode(reply).pcb_recv_length == 302
        backend.fail["transmit"] = E.SCARD_W_REMOVED_CARD
        reply = await client.send(C.SCARD_TRANSMIT, Transmit(h, 2, 16, 5, 2, 16, 258), bytes(5))
        assert len(reply) == 32 and Transmit.decode(reply).rv == E.SCARD_W_REMOVED_CARD
        assert Transmit.decode(reply).pcb_recv_length == 0

    run(scenario)


def test_control_status_transactions_reconnect_and_attributes() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        h = await client.connect(await client.establish())
        backend.response = b"\x12\x04\x42\x33\x13\x00"
        reply = await client.send(C.SCARD_CONTROL, Control(h, 0x42000D48, 0, 256))
        assert len(reply) == 24 + 6 and Control.decode(reply[:24]).dw_bytes_returned == 6
        assert reply[24:] == backend.response
        reply = await client.send(C.SCARD_CONTROL, Control(h, 0x42000D48, 2, 4), b"ab")
        assert len(reply) == 24
        assert Control.decode(reply).rv == E.SCARD_E_INSUFFICIENT_BUFFER
        assert backend.calls[-1] == ("control", (b"card-2", 0x42000D48, b"ab", 4))
        assert await client.send(C.SCARD_STATUS, Status(h)) == Status(h, 0).encode()
        backend.fail["status"] = E.SCARD_W_REMOVED_CARD
        assert Status.decode(await client.send(C.SCARD_STATUS, Status(h))).rv == 0x80100069
        reply = await client.send(C.SCARD_BEGIN_TRANSACTION, Status(h))
        assert reply == h.to_bytes(4, "little") + bytes(4)
        reply = await client.send(C.SCARD_END_TRANSACTION, EndTransaction(h, 1))
        assert EndTransaction.decode(reply) == EndTransaction(h, 1, 0)
        reply = await client.send(C.SCARD_RECONNECT, Reconnect(h, 2, 3, 1))
        assert len(reply) == 24 and Reconnect.decode(reply) == Reconnect(h, 2, 3, 1, 1, 0)
        reply = await client.send(C.SCARD_GET_ATTRIB, GetSetAttrib(h, 0x90303, b"", 264))
        assert len(reply) == 280
        assert GetSetAttrib.decode(reply) == GetSetAttrib(h, 0x90303, b"\x01\x02\x03", 3, 0)
        reply = await client.send(C.SCARD_GET_ATTRIB, GetSetAttrib(h, 0x90303, b"", 2))
        assert GetSetAttrib.decode(reply).rv == E.SCARD_E_INSUFFICIENT_BUFFER
        assert GetSetAttrib.decode(reply).cb_attr_len == 3
        reply = await client.send(C.SCARD_SET_ATTRIB, GetSetAttrib(h, 0x7FFF0003, b"\x05", 1))
        assert GetSetAttrib.decode(reply).rv == 0
        assert backend.calls[-1] == ("set_attrib", (b"card-2", 0x7FFF0003, b"\x05"))

    run(scenario)


def test_connect_needs_a_context_of_this_connection() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        a, b = Client(service), Client(service)
        ctx = await a.establish()
        reply = Connect.decode(await b.send(C.SCARD_CONNECT, Connect(ctx, READER, 2, 3)))
        assert (reply.rv, reply.h_card) == (E.SCARD_E_INVALID_VALUE, 0)
        reply = Connect.decode(await b.send(C.SCARD_CONNECT, Connect(99, READER, 2, 3)))
        assert reply.rv == E.SCARD_E_INVALID_HANDLE
        backend.fail["connect"] = E.SCARD_E_NO_SMARTCARD
        reply = Connect.decode(await a.send(C.SCARD_CONNECT, Connect(ctx, READER, 2, 3)))
        assert reply.rv == E.SCARD_E_NO_SMARTCARD
        assert "connect" in backend.names()

    run(scenario)


def test_a_card_handle_of_another_connection_closes_only_the_offender() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        a, b = Client(service), Client(service)
        h = await a.connect(await a.establish())
        await b.establish()
        assert await b.send(C.SCARD_TRANSMIT, Transmit(h, 2, 16, 1, 2, 16, 2), b"\0") == b""
        assert not b.open
        assert "transmit" not in backend.names()
        assert Status.decode(await a.send(C.SCARD_STATUS, Status(h))).rv == 0

    run(scenario)


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("0800000001000000") + bytes(8),  # ESTABLISH_CONTEXT with 8 bytes, not 12
        bytes.fromhex("0000000003000000"),  # LIST_READERS: never sent by libpcsclite
        bytes.fromhex("00000000ff000000"),  # unknown command
        # TRANSMIT announcing cbSendLength 70000 (over MAX_BUFFER_SIZE_EXTENDED)
        bytes.fromhex("2000000009000000") + Transmit(1, 2, 16, 70000, 2, 16, 2).encode(),
    ],
)
def test_a_bad_message_closes_only_that_connection(data: bytes) -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        good, bad = Client(service), Client(service)
        await good.establish()
        assert not await bad.conn.receive(data)
        assert bad.take() == b""
        assert len(await good.send(C.CMD_GET_READERS_STATE)) == TABLE

    run(scenario)


def test_get_attrib_over_264_bytes_closes_the_connection() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        h = await client.connect(await client.establish())
        assert await client.send(C.SCARD_GET_ATTRIB, GetSetAttrib(h, 1, b"", 265)) == b""
        assert not client.open

    run(scenario)


def test_closing_a_connection_disconnects_its_handles_and_releases_its_contexts() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client, other = Client(service), Client(service)
        ctx = await client.establish()
        h1 = await client.connect(ctx)
        h2 = await client.connect(ctx)
        await client.send(C.SCARD_BEGIN_TRANSACTION, Status(h2))
        await other.establish()
        backend.calls.clear()
        await client.conn.release()
        assert sorted(backend.calls) == [
            ("disconnect", (b"card-2", 0)),  # SCARD_LEAVE_CARD
            ("disconnect", (b"card-3", 1)),  # in a transaction: SCARD_RESET_CARD
            ("release_context", (b"ctx-1",)),
        ]
        assert service.connections == (other.conn,)
        assert service.find_context(ctx) is None and h1 and h2
        assert not await client.conn.receive(PcscRequest(C.CMD_GET_READERS_STATE).encode())

    run(scenario)


def test_release_context_disconnects_its_handles() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        ctx = await client.establish()
        await client.connect(ctx)
        backend.calls.clear()
        await client.send(C.SCARD_RELEASE_CONTEXT, ReleaseContext(ctx))
        assert backend.calls == [("disconnect", (b"card-2", 0)), ("release_context", (b"ctx-1",))]
        assert client.conn.handle_ids == ()

    run(scenario)


def test_ids_are_non_zero_and_unique_in_the_session() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        values = iter([0, 7, 7, 0x1_0000_0007, 9, 7, 9, 11])
        service._random_id = lambda: next(values)
        client = Client(service)
        ctx = await client.establish()
        assert ctx == 7
        assert await client.connect(ctx) == 9  # 0, 7 and 2**32 + 7 are skipped
        assert await client.connect(ctx) == 11

    run(scenario)


def test_a_slow_call_of_one_program_does_not_hold_up_another() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        slow, fast = Client(service), Client(service)
        h = await slow.connect(await slow.establish())
        await fast.establish()
        backend.gate["transmit"] = asyncio.Event()
        pending = asyncio.create_task(
            slow.send(C.SCARD_TRANSMIT, Transmit(h, 2, 16, 1, 2, 16, 2), b"\0")
        )
        await settle()
        assert not pending.done()
        assert len(await fast.send(C.CMD_GET_READERS_STATE)) == TABLE
        backend.gate["transmit"].set()
        assert len(await pending) == 32 + 2

    run(scenario)


# -- waiting, stop and cancel (pcsc-lite winscard_svc.c and eventhandler.c) ---------------


def test_waiters_get_the_table_at_once_and_one_wake_up_each() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        a, b = Client(service), Client(service)
        await a.establish(4)
        await b.establish(5)
        assert len(await a.send(C.CMD_WAIT_READER_STATE_CHANGE)) == TABLE
        assert len(await b.send(C.CMD_WAIT_READER_STATE_CHANGE)) == TABLE
        assert a.conn.waiting and b.conn.waiting
        backend.change([replace(backend.table[0], state=2, atr=b"", event_counter=2)])
        await settle()
        assert a.take() == b"\0" * 8 and b.take() == b"\0" * 8  # {timeOut 0, rv 0}
        backend.change([replace(backend.table[0], event_counter=3)])
        await settle()
        assert a.take() == b"" and b.take() == b""  # unregistered after one wake-up
        # the client timed out at the same moment: its stop gets nothing more
        assert await a.send(C.CMD_STOP_WAITING_READER_STATE_CHANGE) == b""

    run(scenario)


def test_stop_waiting_while_registered_gets_exactly_one_reply() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        await client.establish()
        await client.send(C.CMD_WAIT_READER_STATE_CHANGE)
        reply = await client.send(C.CMD_STOP_WAITING_READER_STATE_CHANGE)
        assert reply == WaitReaderStateChange(0, 0).encode()
        assert not client.conn.waiting
        backend.change([replace(backend.table[0], event_counter=9)])
        await settle()
        assert client.take() == b""

    run(scenario)


def test_4_6_wait_sends_no_table_and_holds_the_wake_up_until_the_table_is_read() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        await client.establish(6)
        assert await client.send(C.CMD_WAIT_READER_STATE_CHANGE) == b""
        backend.change([replace(backend.table[0], event_counter=5)])
        await settle()
        assert client.take() == b""  # the client is about to ask for the table size
        assert len(await client.send(C.CMD_GET_READERS_STATE_SIZE)) == 4
        reply = await client.send(C.CMD_GET_READERS_STATE_ARRAY)
        assert len(reply) == TABLE + 8 and reply[TABLE:] == bytes(8)
        assert decode_readers_state(reply[:TABLE])[0].event_counter == 5

    run(scenario)


def test_cancel_from_a_new_connection_wakes_the_waiter_of_that_context() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        waiter, bystander = Client(service), Client(service)
        ctx = await waiter.establish()
        await bystander.establish()
        await waiter.send(C.CMD_WAIT_READER_STATE_CHANGE)
        await bystander.send(C.CMD_WAIT_READER_STATE_CHANGE)
        canceller = Client(service)  # no CMD_VERSION, as SCardCancel does
        reply = await canceller.send(C.SCARD_CANCEL, Cancel(ctx))
        assert reply == Cancel(ctx, 0).encode()
        assert WaitReaderStateChange.decode(waiter.take()) == WaitReaderStateChange(
            0, E.SCARD_E_CANCELLED
        )
        assert bystander.take() == b"" and bystander.conn.waiting
        assert ("cancel", (b"ctx-1",)) in backend.calls
        # the waiter's stop after the cancel: nothing more, it already has its message
        assert await waiter.send(C.CMD_STOP_WAITING_READER_STATE_CHANGE) == b""
        # a cancel when nobody waits succeeds and sends the context nothing
        assert Cancel.decode(await Client(service).send(C.SCARD_CANCEL, Cancel(ctx))).rv == 0
        assert waiter.take() == b""
        reply = await Client(service).send(C.SCARD_CANCEL, Cancel(0x5555))
        assert Cancel.decode(reply).rv == E.SCARD_E_INVALID_HANDLE

    run(scenario)


def test_a_connection_that_ends_while_waiting_is_never_signalled() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        await client.establish()
        await client.send(C.CMD_WAIT_READER_STATE_CHANGE)
        await client.conn.release()
        backend.change([])
        await settle()
        assert client.take() == b""

    run(scenario)


def test_a_backend_that_returns_from_every_wait_does_not_spin_or_wake_anyone() -> None:
    class Spurious(FakeBackend):
        async def wait_for_reader_change(self) -> None:
            self.waits += 1
            await asyncio.sleep(0)

    async def main() -> None:
        backend = Spurious()
        service = PcscliteService(backend)
        client = Client(service)
        await client.establish()
        await client.send(C.CMD_WAIT_READER_STATE_CHANGE)
        await asyncio.sleep(0.5)
        assert backend.waits < 12  # backs off to a pause of up to a second
        assert client.take() == b"" and client.conn.waiting
        await service.close()

    asyncio.run(main())


# -- arbitrary input ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=400), max_size=4))
def test_arbitrary_bytes_never_break_the_service(chunks: list[bytes]) -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        victim, other = Client(service), Client(service)
        ctx = await other.establish()
        for chunk in chunks:
            if not await victim.conn.receive(chunk):
                break
        await victim.conn.release()
        assert len(await other.send(C.CMD_GET_READERS_STATE)) == TABLE
        assert service.find_context(ctx) is other.conn

    run(scenario)


_commands = st.sampled_from([c for c in Command if c not in (C.SCARD_LIST_READERS,
                                                               C.SCARD_GET_STATUS_CHANGE,
                                                               C.SCARD_CANCEL_TRANSACTION)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_commands, st.binary(min_size=280, max_size=300)), max_size=8))
def test_well_framed_requests_with_arbitrary_fields_never_break_the_service(
    requests: list[tuple[Command, bytes]],
) -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        for command, body in requests:
            struct = REQUEST_STRUCTS[command]
            size = struct.SIZE if struct is not None else 0
            header = size.to_bytes(4, "little") + int(command).to_bytes(4, "little")
            if not await client.conn.receive(header + body[:size]):
                break
        await client.conn.release()
        assert service.connections == ()

    run(scenario)



class StartingBackend(FakeBackend):
    """A backend with the hot path: transmits are started and answered by a callback."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[Callable[[object], None]] = []
        self.twice = False

    def start_transmit(
        self, handle: bytes, protocol: int, apdu: bytes, max_response: int,
        done: Callable[[object], None],
    ) -> None:
        self.calls.append(("start_transmit", (handle, protocol, apdu, max_response)))
        if "start_transmit" in self.fail:
            raise BackendError(self.fail["start_transmit"])
        self.started.append(done)

    def answer(self, outcome: object) -> None:
        done = self.started.pop(0)
        done(outcome)
        if self.twice:
            done(outcome)


def test_a_started_transmit_is_answered_from_its_callback_and_holds_the_next_request() -> None:
    async def scenario(backend: StartingBackend, service: PcscliteService) -> None:
        client = Client(service)
        h_card = await client.connect(await client.establish())
        transmit = Transmit(h_card, 2, 16, 4, 2, 16, 258)
        # TRANSMIT and STATUS in one write: STATUS waits for the transmit's answer.
        assert client.conn.feed(
            PcscRequest(C.SCARD_TRANSMIT, transmit, b"\x00\xa4\x04\x00").encode()
            + PcscRequest(C.SCARD_STATUS, Status(h_card)).encode()
        )
        await asyncio.sleep(0)
        assert backend.names()[-1] == "start_transmit" and client.take() == b""
        backend.twice = True  # a second callback of the same call is ignored
        backend.answer((2, b"\x61\x10"))
        reply = client.take()
        assert len(reply) == 34 and Transmit.decode(reply[:32]).rv == 0
        assert reply[32:] == b"\x61\x10"
        await asyncio.sleep(0.01)
        assert backend.names()[-1] == "status"
        assert Status.decode(client.take()).rv == 0

        backend.fail["start_transmit"] = ScardError.SCARD_W_REMOVED_CARD
        short = Transmit(h_card, 2, 16, 1, 2, 16, 258)
        assert client.conn.feed(PcscRequest(C.SCARD_TRANSMIT, short, b"\x00").encode())
        reply = client.take()  # refused at once: the reply is already there, without data
        assert len(reply) == 32 and Transmit.decode(reply).rv == ScardError.SCARD_W_REMOVED_CARD

    run(scenario, StartingBackend)


def test_a_started_transmit_on_a_foreign_handle_cuts_the_program_off() -> None:
    async def scenario(backend: StartingBackend, service: PcscliteService) -> None:
        ended: list[bool] = []
        out = bytearray()
        conn = service.connect(out.extend, peer="intruder", on_end=lambda: ended.append(True))
        transmit = Transmit(0x1234, 2, 16, 1, 2, 16, 258)
        assert not conn.feed(PcscRequest(C.SCARD_TRANSMIT, transmit, b"\x00").encode())
        assert ended == [True] and out == b"" and "start_transmit" not in backend.names()
        await conn.release()

    run(scenario, StartingBackend)


def test_release_waits_for_the_started_transmit() -> None:
    async def scenario(backend: StartingBackend, service: PcscliteService) -> None:
        client = Client(service)
        h_card = await client.connect(await client.establish())
        transmit = Transmit(h_card, 2, 16, 1, 2, 16, 258)
        assert client.conn.feed(PcscRequest(C.SCARD_TRANSMIT, transmit, b"\x00").encode())
        release = asyncio.create_task(client.conn.release())
        await asyncio.sleep(0.01)
        assert not release.done() and "disconnect" not in backend.names()
        backend.answer((2, b"\x90\x00"))
        await asyncio.wait_for(release, 1)
        assert backend.names()[-2:] == ["disconnect", "release_context"]

    run(scenario, StartingBackend)


# -- the session's context limit -----------------------------------------------------------


def limited(limit: int) -> Callable[[Callable[[FakeBackend, PcscliteService], Awaitable[None]]],
                                    None]:
    """Run a scenario with a service limited to ``limit`` contexts."""

    def runner(scenario: Callable[[FakeBackend, PcscliteService], Awaitable[None]]) -> None:
        async def main() -> None:
            backend = FakeBackend()
            service = PcscliteService(backend, log=logging.getLogger("test.pcsclite"),
                                      max_contexts=limit)
            try:
                await scenario(backend, service)
            finally:
                await service.close()

        asyncio.run(main())

    return runner


def test_contexts_over_the_session_limit_get_no_memory_and_never_reach_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        clients = [Client(service) for _ in range(3)]
        contexts = [await client.establish() for client in clients[:2]]
        # the third program's call is answered here: 00 00 00 00 scope... rv 0x80100006
        reply = await clients[2].send(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
        assert EstablishContext.decode(reply) == EstablishContext(2, 0, E.SCARD_E_NO_MEMORY)
        assert backend.names().count("establish_context") == 2
        assert service.context_count == 2 and service.refused_contexts == 1
        # a released context frees its place
        await clients[0].send(C.SCARD_RELEASE_CONTEXT, ReleaseContext(contexts[0]))
        assert service.context_count == 1
        assert await clients[2].establish() != 0
        # a program that goes away gives its contexts back, released on the client
        await clients[1].conn.release()
        assert ("release_context", (b"ctx-2",)) in backend.calls
        assert service.context_count == 1
        assert await Client(service).establish() != 0

    with caplog.at_level(logging.DEBUG, logger="test.pcsclite"):
        limited(2)(scenario)
    refusals = [r for r in caplog.records if "refused (SCARD_E_NO_MEMORY)" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.WARNING]
    assert "max_contexts" in refusals[0].getMessage()


def test_establishments_in_flight_count_against_the_limit() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        gate = backend.gate["establish_context"] = asyncio.Event()
        clients = [Client(service) for _ in range(5)]
        for client in clients:
            client.conn.feed(PcscRequest(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2)).encode())
        await settle()
        assert backend.names().count("establish_context") == 3  # two answered at once
        refused = [EstablishContext.decode(c.take()) for c in clients if c.out]
        assert [r.rv for r in refused] == [E.SCARD_E_NO_MEMORY] * 2
        gate.set()
        await settle()
        assert service.context_count == 3

    limited(3)(scenario)


def test_a_failed_establishment_gives_its_place_back() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        backend.fail["establish_context"] = E.SCARD_E_NO_SERVICE
        client = Client(service)
        for _ in range(3):
            reply = await client.send(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
            assert EstablishContext.decode(reply).rv == E.SCARD_E_NO_SERVICE
        assert service.context_count == 0
        del backend.fail["establish_context"]
        assert await client.establish() != 0

    limited(1)(scenario)


def test_refusals_are_logged_once_in_a_hundred(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        await Client(service).establish()
        late = Client(service)
        for _ in range(250):
            reply = await late.send(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
            assert EstablishContext.decode(reply).rv == E.SCARD_E_NO_MEMORY

    with caplog.at_level(logging.DEBUG, logger="test.pcsclite"):
        limited(1)(scenario)
    levels = [r.levelno for r in caplog.records if "refused" in r.getMessage()]
    assert len(levels) == 250 and levels.count(logging.WARNING) == 3  # 1st, 101st, 201st


def test_limits_are_at_least_one() -> None:
    with pytest.raises(ValueError):
        PcscliteService(FakeBackend(), max_contexts=0)


def test_pcscd_argument_checks_are_answered_without_the_client() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        reply = await client.send(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(7))
        assert EstablishContext.decode(reply) == EstablishContext(7, 0, E.SCARD_E_INVALID_VALUE)
        ctx = await client.establish()
        for share, protocols, rv in ((2, 0, E.SCARD_E_PROTO_MISMATCH),
                                     (9, 3, E.SCARD_E_INVALID_VALUE)):
            reply = await client.send(C.SCARD_CONNECT, Connect(ctx, READER, share, protocols))
            assert Connect.decode(reply).rv == rv
        h = await client.connect(ctx)
        reply = await client.send(C.SCARD_END_TRANSACTION, EndTransaction(h, 0))
        assert EndTransaction.decode(reply).rv == E.SCARD_E_NOT_TRANSACTED
        # FreeRDP's client would answer success: the end is not forwarded, SCardStatus asks
        assert backend.names() == ["establish_context", "connect", "status"]

    run(scenario)


def test_an_end_without_a_transaction_reports_what_status_finds() -> None:
    """pcscd answers SCARD_E_SHARING_VIOLATION when another handle holds the card."""

    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        h = await client.connect(await client.establish())
        backend.fail["status"] = E.SCARD_E_SHARING_VIOLATION
        reply = await client.send(C.SCARD_END_TRANSACTION, EndTransaction(h, 0))
        assert EndTransaction.decode(reply).rv == E.SCARD_E_SHARING_VIOLATION
        assert "end_transaction" not in backend.names()

    run(scenario)


def test_nested_transactions_are_counted() -> None:
    async def scenario(backend: FakeBackend, service: PcscliteService) -> None:
        client = Client(service)
        h = await client.connect(await client.establish())
        for _ in range(2):
            reply = await client.send(C.SCARD_BEGIN_TRANSACTION, BeginTransaction(h))
            assert BeginTransaction.decode(reply).rv == 0
        for rv in (0, 0, E.SCARD_E_NOT_TRANSACTED):
            reply = await client.send(C.SCARD_END_TRANSACTION, EndTransaction(h, 0))
            assert EndTransaction.decode(reply).rv == rv
        assert backend.names().count("end_transaction") == 2

    run(scenario)
