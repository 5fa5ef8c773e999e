"""Client calls sent behind an answer already given, one after the other.

When pcscd's answer to a call is known without the client (an
SCardDisconnect(SCARD_LEAVE_CARD) of a valid handle, a context going back
to the pool, the end of a lingering transaction), the program gets it at
once and the client's call follows in the background. :class:`Behind`
runs those calls in the order they were started, each after the previous
one has completed; a later call of the session that could see the
difference awaits :meth:`Behind.settled` before it goes to the client, so
the client sees every call in the program's order. A call can be tagged
with its reader: a card handle's disconnect can only be seen on its own
reader (pcsc-lite readerfactory.c keeps sharing and locks per reader), so
calls on other readers need not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("rdscard.redirect")


class Behind:
    """Background client calls, in order."""

    def __init__(self) -> None:
        self._last: asyncio.Task[None] | None = None
        self._last_for: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """Whether a call started here has not completed yet."""
        return self._last is not None

    def pending(self, reader: str) -> bool:
        """Whether a call tagged with ``reader`` has not completed yet."""
        return reader in self._last_for

    def run(self, call: Callable[[], Awaitable[object]], reader: str | None = None) -> None:
        """Start ``call()`` once every call started before it has completed.

        ``call`` must not raise for the program's sake (it was answered):
        its own errors are its to log.
        """
        previous = self._last
        task = asyncio.get_running_loop().create_task(self._after(previous, call))
        self._last = task
        if reader is not None:
            self._last_for[reader] = task
            task.add_done_callback(functools.partial(self._reader_done, reader))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    @staticmethod
    async def _after(previous: asyncio.Task[None] | None,
                     call: Callable[[], Awaitable[object]]) -> None:
        if previous is not None:
            await asyncio.wait((previous,))
        try:
            await call()
        except Exception:  # a bug: the program had its answer; the next call goes on
            log.exception("a smart card call sent behind its answer failed")

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._last is task:
            self._last = None

    def _reader_done(self, reader: str, task: asyncio.Task[None]) -> None:
        if self._last_for.get(reader) is task:
            del self._last_for[reader]

    async def settled(self, reader: str | None = None) -> None:
        """Return once every call started so far (``reader``: up to its last one) completed."""
        last = self._last if reader is None else self._last_for.get(reader)
        if last is not None:
            await asyncio.wait((last,))

    async def close(self) -> None:
        """Let the started calls finish (they fail at once when the client is gone)."""
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
