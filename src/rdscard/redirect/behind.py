"""Client calls sent behind an answer already given, one after the other.

When pcscd's answer to a call is known without the client (an
SCardDisconnect(SCARD_LEAVE_CARD) of a valid handle, a context going back
to the pool, the end of a lingering transaction), the program gets it at
once and the client's call follows in the background. :class:`Behind`
runs those calls in the order they were started, each after the previous
one has completed; a later call of the session that could see the
difference awaits :meth:`Behind.settled` before it goes to the client, so
the client sees every call in the program's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("rdscard.redirect")


class Behind:
    """Background client calls, in order."""

    def __init__(self) -> None:
        self._last: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """Whether a call started here has not completed yet."""
        return self._last is not None

    def run(self, call: Callable[[], Awaitable[object]]) -> None:
        """Start ``call()`` once every call started before it has completed.

        ``call`` must not raise for the program's sake (it was answered):
        its own errors are its to log.
        """
        previous = self._last
        task = asyncio.get_running_loop().create_task(self._after(previous, call))
        self._last = task
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

    async def settled(self) -> None:
        """Return once every call started so far has completed."""
        last = self._last
        if last is not None:
            await asyncio.wait((last,))

    async def close(self) -> None:
        """Let the started calls finish (they fail at once when the client is gone)."""
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
