"""Lingering transactions and the answers a held transaction allows (redirect/lingering.py).

The in-memory client of test_esc_backend records every IOCTL it gets: what
is answered locally never reaches it, and what must reach it comes in
pcscd's order (another handle's call only after the lingering end).
"""

from __future__ import annotations

import asyncio

from rdscard.pdu.esc.constants import ScardIoctl
from rdscard.redirect import translate
from rdscard.redirect.esc_backend import EscBackend
from tests.unit.test_esc_backend import READER, VENDOR_NAME, FakeClient, table_settles

Io = ScardIoctl
BEGIN, END = Io.SCARD_IOCTL_BEGINTRANSACTION, Io.SCARD_IOCTL_ENDTRANSACTION


def sent(client: FakeClient) -> list[int]:
    return [code for code, _ in client.calls if code != Io.SCARD_IOCTL_CONNECTW]


async def ready(client: FakeClient, linger: float = 60.0) -> tuple[EscBackend, bytes, bytes]:
    backend = EscBackend(client, linger=linger)
    backend.start()
    await table_settles(backend, translate.PCSC_PRESENT)
    context = await backend.establish_context(0)
    first, _ = await backend.connect(context, READER, 2, translate.PCSC_T1)
    second, _ = await backend.connect(context, READER, 2, translate.PCSC_T1)
    return backend, first, second


def test_back_to_back_transactions_cross_once() -> None:
    async def scenario() -> None:
        client = FakeClient()
        backend, handle, _ = await ready(client)
        for _ in range(3):
            await backend.begin_transaction(handle)
            await backend.status(handle)
            await backend.transmit(handle, translate.PCSC_T1, b"\x00\xa4\x04\x00", 258)
            await backend.end_transaction(handle, 0)
        assert sent(client) == [BEGIN, Io.SCARD_IOCTL_TRANSMIT, Io.SCARD_IOCTL_TRANSMIT,
                                Io.SCARD_IOCTL_TRANSMIT]
        assert backend.local_answers == 8  # 2 begins, 3 ends, 3 statuses
        await backend.disconnect(handle, 0)  # answered at once: the lingering end goes first
        assert backend.local_answers == 9
        await backend.settled()
        assert sent(client)[-2:] == [END, Io.SCARD_IOCTL_DISCONNECT]
        await backend.close()

    asyncio.run(scenario())


def test_another_handle_waits_for_the_lingering_end() -> None:
    async def scenario() -> None:
        client = FakeClient()
        backend, first, second = await ready(client)
        await backend.begin_transaction(first)
        await backend.end_transaction(first, 0)
        done = asyncio.Event()
        backend.start_transmit(second, translate.PCSC_T1, b"\x00\xb0\x00\x00", 258,
                               lambda outcome: done.set())
        await asyncio.wait_for(done.wait(), 2)
        assert sent(client) == [BEGIN, END, Io.SCARD_IOCTL_TRANSMIT]
        await backend.begin_transaction(first)  # no longer lingering: asks the client
        assert sent(client)[-1] == BEGIN
        await backend.close()

    asyncio.run(scenario())


def test_the_linger_ends_by_itself() -> None:
    async def scenario() -> None:
        client = FakeClient()
        backend, handle, _ = await ready(client, linger=0.01)
        await backend.begin_transaction(handle)
        await backend.end_transaction(handle, 0)
        for _ in range(100):
            if END in sent(client):
                break
            await asyncio.sleep(0.01)
        assert sent(client) == [BEGIN, END]
        await backend.close()

    asyncio.run(scenario())


def test_nested_transactions_cross_once_and_resets_are_forwarded() -> None:
    async def scenario() -> None:
        client = FakeClient()
        backend, handle, _ = await ready(client)
        await backend.begin_transaction(handle)
        await backend.begin_transaction(handle)
        await backend.end_transaction(handle, 0)  # inner: counted here
        await backend.end_transaction(handle, 1)  # outer with a reset: the client's work
        assert sent(client) == [BEGIN, END]
        await backend.close()

    asyncio.run(scenario())


def test_vendor_attributes_and_status_are_local_only_inside_a_transaction() -> None:
    async def scenario() -> None:
        client = FakeClient()
        backend, handle, _ = await ready(client)
        assert await backend.get_attrib(handle, VENDOR_NAME, 264) == b"vpcd"
        await backend.status(handle)  # outside a transaction: the client is asked
        await backend.begin_transaction(handle)
        assert await backend.get_attrib(handle, VENDOR_NAME, 264) == b"vpcd"
        await backend.status(handle)
        assert sent(client) == [Io.SCARD_IOCTL_GETATTRIB, Io.SCARD_IOCTL_STATUSW, BEGIN]
        assert backend.local_answers == 2
        await backend.close()

    asyncio.run(scenario())


def test_no_local_answer_once_the_card_is_gone() -> None:
    async def scenario() -> None:
        client = FakeClient()
        backend, handle, _ = await ready(client)
        await backend.begin_transaction(handle)
        await backend.end_transaction(handle, 0)
        client.present = False
        client.change.set()
        await table_settles(backend, translate.PCSC_ABSENT)
        await backend.begin_transaction(handle)  # the lingering end, then the client's begin
        assert sent(client) == [BEGIN, END, BEGIN]
        await backend.status(handle)
        assert sent(client)[-1] == Io.SCARD_IOCTL_STATUSW
        await backend.close()

    asyncio.run(scenario())
