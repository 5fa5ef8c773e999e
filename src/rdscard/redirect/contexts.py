"""The session's PC/SC contexts over the client's, with a small pool of idle client contexts.

pcscd answers SCardEstablishContext by checking the scope and picking a
random id, and SCardReleaseContext of a valid context with success
(pcsc-lite winscard.c SCardEstablishContext, SCardReleaseContext;
winscard_svc.c only adds the context to, or removes it from, the
connection). Neither needs the card, so a context the session's program
releases is kept on the client, up to ``size`` of them, and given to the
next SCardEstablishContext without crossing the network (MS-RDPESC
3.1.4.1 and 3.1.4.2 are then not sent).

The backend hands out its own context tokens, each naming one client
context. A pooled context is never shared: it has no card handle left,
and none of its handles ended inside a transaction (FreeRDP's client keeps
a transaction flag per context, winpr ``isTransactionLocked``, which a
disconnect inside a transaction leaves set: such a context is released on
the client instead). A client context taken from the pool may have become
invalid meanwhile (the client's pcscd restarted); the backend then
establishes a fresh one and repeats the call once, so the program sees
what a fresh context would have given.

The pool does not add to the client's contexts: it only grows when a
program releases one, and a fresh context is only established when the
pool is empty, so the session's programs' contexts plus the pooled ones
stay within ``[redirection] max_contexts``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

from rdscard.pdu.esc.constants import ScardReturn
from rdscard.redirect.backend import ScardError

#: Idle client contexts kept for the next SCardEstablishContext by default.
POOL_SIZE: Final = 4
#: What a call on a client context gives once the client's pcscd has dropped it: libpcsclite
#: fails the message on the dead socket (winscard_msg.c) or no longer knows the context.
STALE_CONTEXT: Final = frozenset({
    ScardReturn.SCARD_E_INVALID_HANDLE, ScardReturn.SCARD_E_NO_SERVICE,
    ScardReturn.SCARD_F_COMM_ERROR, ScardReturn.SCARD_E_SERVICE_STOPPED,
})


@dataclass
class _Context:
    client: bytes  # the client's context, echoed exactly (MS-RDPESC REDIR_SCARDCONTEXT)
    scope: int
    reused: bool  # taken from the pool and not yet used successfully since
    tainted: bool = False  # must not go back to the pool


class ClientContexts:
    """Context tokens of the session's programs, and the pool of idle client contexts."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self._tokens: dict[bytes, _Context] = {}
        self._pool: list[bytes] = []
        self._ids = itertools.count(1)

    @property
    def pooled(self) -> int:
        """Idle client contexts held for the next SCardEstablishContext."""
        return len(self._pool)

    def take_pooled(self) -> bytes | None:
        """An idle client context, or None when the pool is empty."""
        return self._pool.pop() if self._pool else None

    def add(self, client: bytes, scope: int, *, reused: bool) -> bytes:
        """A token for a program's context over ``client``."""
        token = b"ctx" + next(self._ids).to_bytes(8, "little")
        self._tokens[token] = _Context(client, scope, reused)
        return token

    def client(self, token: bytes) -> bytes:
        """The client context behind ``token``."""
        return self._get(token).client

    def _get(self, token: bytes) -> _Context:
        try:
            return self._tokens[token]
        except KeyError:
            raise ScardError(ScardReturn.SCARD_E_INVALID_HANDLE) from None

    def reused(self, token: bytes) -> bool:
        """Whether ``token``'s client context came from the pool and has not proved valid yet."""
        context = self._tokens.get(token)
        return context is not None and context.reused

    def proved(self, token: bytes) -> None:
        """The client answered a call on ``token``'s context: it is valid."""
        context = self._tokens.get(token)
        if context is not None:
            context.reused = False

    def replace(self, token: bytes, client: bytes) -> bytes:
        """``token`` now names ``client`` (a fresh context); returns the one it named before."""
        context = self._get(token)
        old, context.client, context.reused = context.client, client, False
        return old

    def scope(self, token: bytes) -> int:
        return self._get(token).scope

    def taint(self, token: bytes) -> None:
        """``token``'s client context is released on the client, never pooled."""
        context = self._tokens.get(token)
        if context is not None:
            context.tainted = True

    def release(self, token: bytes) -> tuple[bytes, bool]:
        """Forget ``token``: (its client context, whether that may go back to the pool)."""
        context = self._tokens.pop(token, None)
        if context is None:
            raise ScardError(ScardReturn.SCARD_E_INVALID_HANDLE)
        return context.client, not context.tainted

    def give_back(self, client: bytes) -> bool:
        """Pool ``client`` if there is room; False: the caller releases it on the client."""
        if len(self._pool) >= self.size:
            return False
        self._pool.append(client)
        return True

    def drain(self) -> list[bytes]:
        """Every pooled client context (to release on the client); the pool is emptied."""
        pool, self._pool = self._pool, []
        return pool

    def clear(self) -> None:
        self._tokens.clear()
        self._pool.clear()
