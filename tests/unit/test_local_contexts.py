"""Pooled client contexts and disconnects answered at once (redirect/contexts.py, behind.py).

The in-memory client of test_esc_backend records the IOCTLs it gets: what is
answered locally never reaches it, and what follows an answer reaches it in
the program's order, before any later call that could see the difference.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from rdscard.pdu.esc.card import ConnectReturn, ConnectWCall
from rdscard.pdu.esc.constants import ScardIoctl, ScardReturn
from rdscard.pdu.esc.context import ContextCall, EstablishContextCall, LongReturn
from rdscard.pdu.esc.io import TransmitCall
from rdscard.pdu.ndr import RedirScardContext, RedirScardHandle
from rdscard.redirect import translate
from rdscard.redirect.backend import ScardError
from rdscard.redirect.esc_backend import EscBackend
from tests.unit.test_esc_backend import READER, FakeClient, table_settles

Io = ScardIoctl
T1 = translate.PCSC_T1
SELECT = b"\x00\xa4\x04\x00"


class CountingClient(FakeClient):
    """Records establishes too; can hold disconnects back, and forget its contexts."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_disconnects = asyncio.Event()
        self.hold_disconnects.set()
        self.stale: set[bytes] = set()  # contexts its pcscd no longer knows
        self.established: list[bytes] = []

    async def ioctl(self, code: int, payload: bytes, *, timeout: float | None) -> bytes:
        if code == Io.SCARD_IOCTL_ESTABLISHCONTEXT:
            EstablishContextCall.decode(payload)
            self.calls.append((code, None))
            self.established.append((self.contexts + 1).to_bytes(8, "little"))
        if code == Io.SCARD_IOCTL_DISCONNECT:
            await self.hold_disconnects.wait()
        if code == Io.SCARD_IOCTL_CONNECTW:
            connect = ConnectWCall.decode(payload)
            if connect.context.pb_context in self.stale:
                self.calls.append((code, connect))
                # what FreeRDP's client answers when its libpcsclite lost the context
                return ConnectReturn(ScardReturn.SCARD_E_INVALID_HANDLE, RedirScardHandle(
                    RedirScardContext(b""), b""), 0).encode()
        return await super().ioctl(code, payload, timeout=timeout)

    def codes(self) -> list[int]:
        return [code for code, _ in self.calls]

    def released(self) -> list[bytes]:
        return [call.context.pb_context for code, call in self.calls
                if code == Io.SCARD_IOCTL_RELEASECONTEXT and isinstance(call, ContextCall)]


async def ready(client: CountingClient, **options: object) -> EscBackend:
    backend = EscBackend(client, **options)  # type: ignore[arg-type]
    backend.start()
    await table_settles(backend, translate.PCSC_PRESENT)
    client.calls.clear()
    client.established.clear()  # the backend's own context for the reader table
    return backend


def test_a_released_context_serves_the_next_establish_without_the_client() -> None:
    async def scenario() -> None:
        client = CountingClient()
        backend = await ready(client)
        for _ in range(3):  # a program run three times: establish, connect, disconnect, release
            context = await backend.establish_context(2)
            handle, _ = await backend.connect(context, READER, 2, T1)
            await backend.transmit(handle, T1, SELECT, 258)
            await backend.disconnect(handle, 0)
            await backend.release_context(context)
        await backend.settled()
        assert client.codes().count(Io.SCARD_IOCTL_ESTABLISHCONTEXT) == 1
        assert Io.SCARD_IOCTL_RELEASECONTEXT not in client.codes()
        assert client.codes().count(Io.SCARD_IOCTL_DISCONNECT) == 3
        # every connect went to the one client context
        connects = {call.context.pb_context for code, call in client.calls
                    if code == Io.SCARD_IOCTL_CONNECTW}
        assert connects == {client.established[0]}
        await backend.close()  # the pooled context is released on the client
        assert client.released() == [client.established[0]]

    asyncio.run(scenario())


def test_the_pool_is_bounded_and_off_when_its_size_is_zero() -> None:
    async def scenario() -> None:
        client = CountingClient()
        backend = await ready(client, context_pool=2)
        contexts = [await backend.establish_context(0) for _ in range(4)]
        for context in contexts:
            await backend.release_context(context)
        await backend.settled()
        assert len(client.released()) == 2  # two kept, two released on the client
        assert len({await backend.establish_context(0) for _ in range(2)}) == 2
        assert client.codes().count(Io.SCARD_IOCTL_ESTABLISHCONTEXT) == 4
        await backend.close()

        client = CountingClient()
        backend = await ready(client, context_pool=0)
        context = await backend.establish_context(0)
        await backend.release_context(context)
        await backend.establish_context(0)
        assert client.codes() == [Io.SCARD_IOCTL_ESTABLISHCONTEXT, Io.SCARD_IOCTL_RELEASECONTEXT,
                                  Io.SCARD_IOCTL_ESTABLISHCONTEXT]
        with pytest.raises(ScardError) as unknown:
            await backend.release_context(context)
        assert unknown.value.code == ScardReturn.SCARD_E_INVALID_HANDLE
        await backend.close()

    asyncio.run(scenario())


def test_a_context_left_inside_a_transaction_is_not_pooled() -> None:
    async def scenario() -> None:
        client = CountingClient()
        backend = await ready(client)
        context = await backend.establish_context(0)
        handle, _ = await backend.connect(context, READER, 2, T1)
        await backend.begin_transaction(handle)
        await backend.disconnect(handle, 0)  # FreeRDP would still count a transaction on it
        await backend.release_context(context)
        await backend.settled()
        assert client.released() == [client.established[0]]
        await backend.establish_context(0)
        assert client.codes().count(Io.SCARD_IOCTL_ESTABLISHCONTEXT) == 2
        await backend.close()

    asyncio.run(scenario())


def test_a_pooled_context_the_client_forgot_is_replaced_and_the_connect_repeated() -> None:
    async def scenario() -> None:
        client = CountingClient()
        backend = await ready(client)
        context = await backend.establish_context(0)
        await backend.release_context(context)
        await backend.settled()
        client.stale.add(client.established[0])  # the client's pcscd restarted
        context = await backend.establish_context(0)
        handle, protocol = await backend.connect(context, READER, 2, T1)
        assert protocol == T1
        assert await backend.transmit(handle, T1, SELECT, 258) == (T1, b"\x90\x00")
        await backend.settled()
        fresh = client.established[1]
        assert client.released() == [client.established[0]]
        sent = [call for code, call in client.calls if isinstance(call, TransmitCall)]
        assert sent[-1].h_card.context.pb_context == fresh
        # SCardCancel reaches the context the program's context now names
        await backend.cancel(context)
        cancelled = [call for code, call in client.calls if code == Io.SCARD_IOCTL_CANCEL]
        assert isinstance(cancelled[0], ContextCall) and cancelled[0].context.pb_context == fresh

        # a context that was never pooled is not retried: the program gets the client's answer
        client.stale.add(fresh)
        with pytest.raises(ScardError) as invalid:
            await backend.connect(context, READER, 2, T1)
        assert invalid.value.code == ScardReturn.SCARD_E_INVALID_HANDLE
        await backend.close()

    asyncio.run(scenario())


def test_a_leave_disconnect_is_answered_before_the_client_and_later_calls_wait_for_it() -> None:
    async def scenario() -> None:
        client = CountingClient()
        backend = await ready(client)
        context = await backend.establish_context(0)
        first, _ = await backend.connect(context, READER, 1, T1)  # exclusive
        client.hold_disconnects.clear()
        await asyncio.wait_for(backend.disconnect(first, 0), 1)  # the client has not answered
        assert backend.readers()[0].sharing == 0  # the table shows it at once, as pcscd's
        connect = asyncio.create_task(backend.connect(context, READER, 2, T1))
        await asyncio.sleep(0.05)
        assert not connect.done()  # another connect could see the exclusive handle: it waits
        assert client.codes().count(Io.SCARD_IOCTL_CONNECTW) == 1
        # a connect to another reader cannot see it: it goes at once
        await asyncio.wait_for(backend.connect(context, "Virtual PCD 00 01", 3, 0), 1)
        client.hold_disconnects.set()
        second, _ = await asyncio.wait_for(connect, 1)
        assert client.codes()[-3:] == [Io.SCARD_IOCTL_CONNECTW, Io.SCARD_IOCTL_DISCONNECT,
                                       Io.SCARD_IOCTL_CONNECTW]

        # a transmit of another handle started while a disconnect is on its way follows it
        third, _ = await backend.connect(context, READER, 2, T1)
        client.hold_disconnects.clear()
        await backend.disconnect(third, 0)
        outcomes: list[object] = []
        backend.start_transmit(second, T1, SELECT, 258, outcomes.append)
        await asyncio.sleep(0.05)
        assert outcomes == [] and Io.SCARD_IOCTL_TRANSMIT not in client.codes()
        client.hold_disconnects.set()
        for _ in range(100):
            if outcomes:
                break
            await asyncio.sleep(0.01)
        assert outcomes == [(T1, b"\x90\x00")]
        assert client.codes()[-2:] == [Io.SCARD_IOCTL_DISCONNECT, Io.SCARD_IOCTL_TRANSMIT]
        await backend.close()

    asyncio.run(scenario())


def test_a_disconnect_that_changes_the_card_is_the_clients_and_so_is_every_one_when_off() -> None:
    async def scenario() -> None:
        for quick, disposition in ((True, 1), (False, 0)):
            client = CountingClient()
            backend = await ready(client, quick_disconnect=quick)
            context = await backend.establish_context(0)
            handle, _ = await backend.connect(context, READER, 2, T1)
            client.hold_disconnects.clear()
            disconnect = asyncio.create_task(backend.disconnect(handle, disposition))
            await asyncio.sleep(0.05)
            assert not disconnect.done()  # answered by the client only
            client.hold_disconnects.set()
            await asyncio.wait_for(disconnect, 1)
            await backend.close()

    asyncio.run(scenario())


def test_a_failed_client_disconnect_behind_the_answer_does_not_stop_later_calls() -> None:
    class FailingDisconnects(CountingClient):
        async def ioctl(self, code: int, payload: bytes, *, timeout: float | None) -> bytes:
            if code == Io.SCARD_IOCTL_DISCONNECT:
                self.calls.append((code, None))
                return LongReturn(ScardReturn.SCARD_E_INVALID_HANDLE).encode()
            return await super().ioctl(code, payload, timeout=timeout)

    async def scenario() -> None:
        client = FailingDisconnects()
        backend = await ready(client)
        context = await backend.establish_context(0)
        handle, _ = await backend.connect(context, READER, 2, T1)
        await backend.disconnect(handle, 0)
        other, _ = await backend.connect(context, READER, 2, T1)
        assert await backend.transmit(other, T1, SELECT, 258) == (T1, b"\x90\x00")
        await backend.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("seed", range(5))
def test_the_pool_keeps_the_client_within_the_sessions_context_limit(seed: int) -> None:
    """Programs' contexts plus pooled ones never exceed what the service lets programs hold."""
    limit = 3

    async def scenario() -> None:
        client = CountingClient()
        backend = await ready(client, context_pool=2)
        rng = random.Random(seed)
        held: list[bytes] = []
        for _ in range(200):
            if held and (len(held) == limit or rng.random() < 0.5):
                await backend.release_context(held.pop(rng.randrange(len(held))))
            else:  # the service lets a program establish only below its limit
                held.append(await backend.establish_context(0))
            if rng.random() < 0.3:
                await backend.settled()
            live = client.codes().count(Io.SCARD_IOCTL_ESTABLISHCONTEXT) - len(client.released())
            assert live <= limit
        await backend.close()

    asyncio.run(scenario())


def test_the_reader_monitor_starts_again_when_the_client_fails_its_context() -> None:
    class RestartingClient(CountingClient):
        """Fails the monitor's wait once, as xfreerdp does when its pcscd restarts."""

        fail_wait = False

        async def ioctl(self, code: int, payload: bytes, *, timeout: float | None) -> bytes:
            if code == Io.SCARD_IOCTL_GETSTATUSCHANGEW and self.fail_wait:
                self.fail_wait = False
                await self.change.wait()
                self.change = asyncio.Event()
                raise ScardError(ScardReturn.SCARD_F_COMM_ERROR)
            return await super().ioctl(code, payload, timeout=timeout)

    async def scenario() -> None:
        client = RestartingClient()
        backend = EscBackend(client)
        backend.start()
        await table_settles(backend, translate.PCSC_PRESENT)
        first = client.established[0]
        client.fail_wait = True
        client.change.set()  # ends the wait in progress; the next one fails
        await asyncio.sleep(0.01)
        client.change.set()  # the client's pcscd goes away under the monitor's wait
        for _ in range(100):
            if not backend.readers():
                break
            await asyncio.sleep(0.01)
        assert backend.readers() == []  # programs see no reader, as on the client meanwhile
        await table_settles(backend, translate.PCSC_PRESENT)  # then a fresh context finds it
        assert len(client.established) == 2 and client.released() == [first]
        await backend.close()

    asyncio.run(scenario())
