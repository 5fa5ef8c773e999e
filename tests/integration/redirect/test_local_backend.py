"""LocalPcscBackend's reader monitor and calls, against a scripted stand-in for pyscard.

vpcd's readers never come or go, so readers appearing and disappearing are
played here by a stand-in ``smartcard.scard`` whose SCardGetStatusChange
blocks like pcsc-lite's (until a state differs from the caller's, a timeout,
or SCardCancel), with the event counter in the high word of dwEventState.
The backend runs its real threads against it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from rdscard.redirect.backend import ScardError
from rdscard.redirect.local_backend import PNP_NOTIFICATION, LocalPcscBackend

pytestmark = pytest.mark.integration

ATR = bytes.fromhex("3b8880010000000000000000ff")
EMPTY, PRESENT, INUSE = 0x10, 0x20, 0x100  # SCARD_STATE_* of pcsc-lite


class FakeScard:
    """Readers and cards of a pretend pcscd; records calls."""

    SCARD_SCOPE_USER = 0

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.readers: dict[str, list[Any]] = {"Reader A": [PRESENT, 1, ATR]}  # state, counter, atr
        self.cancelled = False
        self.calls: list[str] = []
        self.transmit_rv = 0

    # the pretend world
    def set_reader(self, name: str, state: int | None, atr: bytes = b"") -> None:
        with self.lock:
            if state is None:
                del self.readers[name]
            else:
                counter = self.readers[name][1] + 1 if name in self.readers else 1
                self.readers[name] = [state, counter, atr]
            self.lock.notify_all()

    def _event(self, name: str) -> int:
        if name == PNP_NOTIFICATION:
            return len(self.readers) << 16
        if name not in self.readers:
            return 0x0004 | 0x0008  # UNKNOWN | UNAVAILABLE
        state, counter, _ = self.readers[name]
        return state | (counter << 16)

    # smartcard.scard
    def SCardEstablishContext(self, scope: int) -> tuple[int, int]:  # noqa: N802
        return 0, 0x1234

    def SCardReleaseContext(self, context: int) -> int:  # noqa: N802
        return 0

    def SCardCancel(self, context: int) -> int:  # noqa: N802
        with self.lock:
            self.cancelled = True
            self.lock.notify_all()
        return 0

    def SCardListReaders(self, context: int, groups: list[str]) -> tuple[int, list[str]]:  # noqa: N802
        with self.lock:
            return (0, list(self.readers)) if self.readers else (0x8010002E, [])

    def SCardGetStatusChange(  # noqa: N802
        self, context: int, timeout: int, states: list[tuple[str, int]]
    ) -> tuple[int, list[tuple[str, int, list[int]]]]:
        with self.lock:
            def changed() -> bool:
                return self.cancelled or any(
                    self._event(name) != current & ~0x2 for name, current in states
                )

            if not self.lock.wait_for(changed, timeout / 1000):
                return 0x8010000A, []
            if self.cancelled:
                self.cancelled = False
                return 0x80100002, []
            out = []
            for name, current in states:
                event = self._event(name)
                atr = self.readers[name][2] if name in self.readers else b""
                out.append((name, event | (0x2 if event != current else 0), list(atr)))
            return 0, out

    def SCardConnect(  # noqa: N802
        self, context: int, reader: str, share: int, protocols: int
    ) -> tuple[int, int, int]:
        self.calls.append(f"connect {reader}")
        return 0, 0x5678, 2

    def SCardTransmit(  # noqa: N802
        self, card: int, protocol: int, apdu: list[int]
    ) -> tuple[int, list[int]]:
        self.calls.append(f"transmit {bytes(apdu).hex()}")
        return self.transmit_rv, [0x90, 0x00]

    def SCardDisconnect(self, card: int, disposition: int) -> int:  # noqa: N802
        return 0


async def _changed(backend: LocalPcscBackend) -> None:
    await asyncio.wait_for(backend.wait_for_reader_change(), 5)


def test_the_reader_table_follows_readers_and_cards() -> None:
    async def main() -> None:
        scard = FakeScard()
        backend = LocalPcscBackend(scard)
        await backend.start()
        try:
            (reader,) = backend.readers()
            assert (reader.name, reader.event_counter, reader.atr) == ("Reader A", 1, ATR)
            assert reader.state == 0x04 | 0x10 | 0x20  # PRESENT | POWERED | NEGOTIABLE
            waiting = asyncio.ensure_future(_changed(backend))
            await asyncio.sleep(0.05)
            scard.set_reader("Reader B", EMPTY)  # a reader comes
            await waiting
            while len(backend.readers()) < 2:
                await _changed(backend)
            assert backend.readers()[1].state == 0x02  # ABSENT
            waiting = asyncio.ensure_future(_changed(backend))
            await asyncio.sleep(0.05)
            scard.set_reader("Reader A", EMPTY)  # its card goes
            await waiting
            a = backend.readers()[0]
            assert (a.state, a.atr, a.protocol, a.event_counter) == (0x02, b"", 0, 2)
            scard.set_reader("Reader B", None)  # a reader goes
            while [r.name for r in backend.readers()] != ["Reader A"]:
                await _changed(backend)
        finally:
            await backend.close()
        assert backend.readers() == []
        await _changed(backend)  # a closed backend never makes anyone wait

    asyncio.run(main())


def test_calls_map_results_errors_and_the_active_protocol() -> None:
    async def main() -> None:
        scard = FakeScard()
        backend = LocalPcscBackend(scard)
        await backend.start()
        try:
            context = await backend.establish_context(2)
            handle, protocol = await backend.connect(context, "Reader A", 2, 3)
            assert protocol == 2
            assert backend.readers()[0].protocol == 2  # the table shows the active protocol
            assert scard.calls == ["connect Reader A"]
            assert await backend.transmit(handle, 2, b"\x00\xa4", 258) == (2, b"\x90\x00")
            scard.transmit_rv = 0x80100069
            with pytest.raises(ScardError) as failure:
                await backend.transmit(handle, 2, b"\x00\xa4", 258)
            assert failure.value.code == 0x80100069  # SCARD_W_REMOVED_CARD
            with pytest.raises(ScardError) as failure:
                await backend.transmit(b"short", 2, b"\x00", 258)
            assert failure.value.code == 0x80100003  # not one of ours: invalid handle
            await backend.disconnect(handle, 0)
        finally:
            await backend.close()
        with pytest.raises(ScardError) as failure:
            await backend.establish_context(2)
        assert failure.value.code == 0x8010001D  # SCARD_E_NO_SERVICE once closed

    asyncio.run(main())
