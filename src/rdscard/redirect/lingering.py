"""Transactions the host ends a little late, and what a held transaction lets it answer.

OpenSC brackets every card operation in SCardBeginTransaction and
SCardEndTransaction (dozens per sign-in), and each would cross the network
to the client's pcscd. pcsc-lite's rules (winscard.c, readerfactory.c
RFLockSharing, RFUnlockSharing, RFCheckSharing, RFCheckReaderEventState)
make most of those crossings unnecessary while one card handle of the
session holds the client's lock:

- while a handle holds the lock, no other handle can reset the card
  (SCardReconnect and SCardDisconnect with a reset answer
  SCARD_E_SHARING_VIOLATION) nor take the lock; only a removal can happen,
  and the host's reader table shows it;
- a nested begin and an inner end only count (pcscd counts them, LockCount);
- an SCardEndTransaction(SCARD_LEAVE_CARD) that ends the handle's
  outermost transaction is answered at once and the client's lock kept for
  ``linger`` seconds: an SCardBeginTransaction of the same handle in that
  time is answered here too (the lock is still the handle's, as pcscd's
  would be on a fresh begin). Any call of another handle of the session,
  and a disconnect or reconnect of this one, first ends the lingering
  transaction on the client and waits for it; so does the timer;
- while the handle holds the lock, SCardStatus of that handle (pcscd checks
  only the sharing and the handle's reset/removal events: winscard.c
  SCardStatus) and the reader's vendor attributes (SCARD_CLASS_VENDOR_INFO,
  the reader driver's fixed answers, cached from the client's first one)
  are answered from the table and the cache.

Every local answer is withheld once the client has reported the card reset
or removed for the handle, or the table shows the card gone. A program on
the client's own computer that wants the card during a linger waits for it
(libpcsclite retries a begin on SCARD_E_SHARING_VIOLATION) or gets
SCARD_E_SHARING_VIOLATION for a transmit outside a transaction, exactly as
if the session's program had begun its next transaction a moment sooner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

#: Seconds the client's lock outlives a program's SCardEndTransaction(SCARD_LEAVE_CARD).
LINGER: Final = 0.05
#: SCARD_CLASS_VENDOR_INFO (pcsc-lite reader.h SCARD_ATTR_VALUE(class, tag)).
VENDOR_INFO_CLASS: Final = 0x0001
#: pcsc-lite SCARD_W_RESET_CARD and SCARD_W_REMOVED_CARD.
CARD_EVENTS: Final = frozenset({0x80100068, 0x80100069})


def is_reader_attribute(attribute: int) -> bool:
    """An attribute fixed by the reader driver (SCARD_CLASS_VENDOR_INFO)."""
    return attribute >> 16 == VENDOR_INFO_CLASS


@dataclass
class _Lock:
    depth: int = 0  # the program's nesting of transactions the client holds for it
    linger: asyncio.TimerHandle | None = None  # the client holds one more, already ended
    event: bool = False  # the client reported the card reset or removed on this handle


class CardLocks:
    """The session's card handles' transactions as the client's pcscd holds them.

    ``end_lingering(handle)`` is called when a lingering transaction's time is up.
    """

    def __init__(self, linger: float, end_lingering: Callable[[bytes], None]) -> None:
        self._linger = linger
        self._end_lingering = end_lingering
        self._locks: dict[bytes, _Lock] = {}
        self._attributes: dict[tuple[str, int], bytes] = {}
        self.lingering: set[bytes] = set()

    def _lock(self, handle: bytes) -> _Lock:
        lock = self._locks.get(handle)
        if lock is None:
            lock = self._locks[handle] = _Lock()
        return lock

    def holds(self, handle: bytes) -> bool:
        """The client holds a lock for ``handle`` and has reported no card event on it."""
        lock = self._locks.get(handle)
        return lock is not None and not lock.event and (lock.depth > 0 or handle in self.lingering)

    def nested(self, handle: bytes, *, inner: bool = False) -> bool:
        """``handle`` is in a transaction (``inner``: in more than one)."""
        lock = self._locks.get(handle)
        return lock is not None and lock.depth > (1 if inner else 0)

    def began(self, handle: bytes) -> None:
        self._lock(handle).depth += 1

    def ended(self, handle: bytes) -> None:
        lock = self._locks.get(handle)
        if lock is not None and lock.depth > 0:
            lock.depth -= 1

    def can_linger(self, handle: bytes) -> bool:
        """Whether ending ``handle``'s transaction now may leave the client's lock in place."""
        lock = self._locks.get(handle)
        return (self._linger > 0 and lock is not None and lock.depth == 1 and not lock.event
                and handle not in self.lingering)

    def linger(self, handle: bytes) -> None:
        """The program ended its outermost transaction; the client's lock stays a while."""
        lock = self._lock(handle)
        lock.depth = 0
        loop = asyncio.get_running_loop()
        lock.linger = loop.call_later(self._linger, self._end_lingering, handle)
        self.lingering.add(handle)

    def resume(self, handle: bytes) -> bool:
        """A begin of a lingering handle: True when it is answered here (the lock is kept)."""
        if handle not in self.lingering:
            return False
        lock = self._lock(handle)
        self.stop_lingering(handle)
        if lock.event:
            return False
        lock.depth = 1
        return True

    def stop_lingering(self, handle: bytes) -> bool:
        """Forget ``handle``'s linger (its end is then the caller's); False if there was none."""
        if handle not in self.lingering:
            return False
        self.lingering.discard(handle)
        lock = self._locks.get(handle)
        if lock is not None and lock.linger is not None:
            lock.linger.cancel()
            lock.linger = None
        return True

    def others_lingering(self, handle: bytes | None) -> list[bytes]:
        return [other for other in self.lingering if other != handle]

    def card_event(self, handle: bytes, code: int) -> None:
        """The client answered ``code`` for ``handle``: note a reset or a removal."""
        if code in CARD_EVENTS:
            self._lock(handle).event = True

    def reconnected(self, handle: bytes) -> None:
        """A successful SCardReconnect clears the handle's events and its transactions."""
        self.stop_lingering(handle)
        self._locks.pop(handle, None)

    def disconnected(self, handle: bytes) -> None:
        self.stop_lingering(handle)
        self._locks.pop(handle, None)

    # -- the reader's fixed attributes -------------------------------------------------
    def attribute(self, reader: str, attribute: int) -> bytes | None:
        return self._attributes.get((reader, attribute))

    def keep_attribute(self, reader: str, attribute: int, value: bytes) -> None:
        if is_reader_attribute(attribute):
            self._attributes[(reader, attribute)] = value

    def forget_reader(self, reader: str) -> None:
        for key in [key for key in self._attributes if key[0] == reader]:
            del self._attributes[key]

    def clear(self) -> None:
        for handle in list(self.lingering):
            self.stop_lingering(handle)
        self._locks.clear()
        self._attributes.clear()
