"""A PIN or password held in a wipeable buffer.

:class:`Secret` keeps the bytes in a ``bytearray`` that :meth:`Secret.wipe`
zeroes in place. It never shows the bytes in a ``repr``/``str``, refuses to
be pickled or copied, compares in constant time, and wipes itself when used
as a context manager or when it is garbage collected.
"""

from __future__ import annotations

import contextlib
import ctypes
import hmac
import sys
from types import TracebackType
from typing import Any, NoReturn, Self


class Secret:
    """Sensitive bytes (a smart card PIN, a password) that never leak through a repr.

    The constructor copies ``data``; :meth:`take` moves a ``bytearray`` in and
    zeroes the original. :meth:`reveal` hands the live buffer to its one
    consumer, which must not keep it.
    """

    __slots__ = ("__weakref__", "_buf")

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._buf = bytearray(data)

    @classmethod
    def take(cls, buf: bytearray) -> Secret:
        """A secret holding the bytes of ``buf``; ``buf`` is zeroed."""
        secret = cls(buf)
        _zero(buf)
        return secret

    # -- access --------------------------------------------------------------
    def reveal(self) -> bytearray:
        """The live buffer: read it, use it, do not store it."""
        return self._buf

    def wipe(self) -> None:
        """Overwrite the bytes with zeros and forget them."""
        _zero(self._buf)
        # A live memoryview forbids resizing: the bytes are zero either way.
        with contextlib.suppress(BufferError):
            self._buf.clear()

    def __len__(self) -> int:
        return len(self._buf)

    def __bool__(self) -> bool:
        return bool(self._buf)

    # -- context manager -------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wipe()

    def __del__(self) -> None:
        buf = getattr(self, "_buf", None)
        if buf is not None:
            _zero(buf)

    # -- never shown -----------------------------------------------------------
    def __repr__(self) -> str:
        return f"Secret(<redacted, {len(self._buf)} bytes>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    # -- equality without timing leaks -----------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._buf, other._buf)

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return not hmac.compare_digest(self._buf, other._buf)

    __hash__ = None  # type: ignore[assignment]

    # -- no pickling, no copies ------------------------------------------------
    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> NoReturn:
        raise TypeError("a Secret cannot be copied; pass the object itself")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError("a Secret cannot be copied; pass the object itself")


class SecretBuffer:
    """A byte queue whose storage never leaves a copy behind: received bytes that may hold a PIN.

    Bytes are written into :meth:`free` (an ``asyncio.BufferedProtocol``
    reads the socket or TLS plaintext straight into it) or copied in with
    :meth:`append`, read through :meth:`view` and dropped from the front
    with :meth:`consume`, which zeroes what they occupied. Growing moves the
    bytes to a larger ``bytearray`` and zeroes the old one: no freed block
    of memory keeps them, as it would after ``bytes`` slicing or a
    ``bytearray`` reallocating itself.
    """

    __slots__ = ("__weakref__", "_buf", "_len")

    def __init__(self, capacity: int = 4096) -> None:
        self._buf = bytearray(max(capacity, 16))
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"SecretBuffer(<redacted, {self._len} bytes>)"

    def free(self, at_least: int) -> memoryview:
        """A writable view of the free space after the bytes held, ``at_least`` bytes long."""
        need = self._len + max(at_least, 1)
        if need > len(self._buf):
            bigger = bytearray(max(need, 2 * len(self._buf)))
            memoryview(bigger)[: self._len] = memoryview(self._buf)[: self._len]
            _zero(self._buf)
            self._buf = bigger
        return memoryview(self._buf)[self._len :]

    def commit(self, size: int) -> None:
        """``size`` bytes were written at the start of the last :meth:`free` view."""
        if not 0 <= size <= len(self._buf) - self._len:
            raise ValueError(f"cannot commit {size} bytes")
        self._len += size

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` in after the bytes held."""
        size = len(data)
        self.free(size)[:size] = data
        self._len += size

    def view(self) -> memoryview:
        """The bytes held, read-only: do not keep the view past the next consume or append."""
        return memoryview(self._buf)[: self._len].toreadonly()

    def consume(self, size: int) -> None:
        """Drop ``size`` bytes from the front; the space they held and vacate is zeroed."""
        size = min(size, self._len)
        rest = self._len - size
        whole = memoryview(self._buf)
        if rest:
            whole[:rest] = whole[size : self._len]  # contiguous: a memmove, no temporary copy
        whole[rest : self._len] = bytes(self._len - rest)
        self._len = rest

    def wipe(self) -> None:
        """Zero and forget everything held."""
        _zero(self._buf)
        self._len = 0

    def __del__(self) -> None:
        buf = getattr(self, "_buf", None)
        if buf is not None:
            _zero(buf)


def scrub_bytes(data: bytes) -> None:
    """Zero, in place, one immutable ``bytes`` object holding a secret a C library returned.

    Python cannot wipe ``bytes``; this writes zeros over the object's own
    storage (CPython's PyBytesObject, whose ob_sval starts at
    ``bytes.__basicsize__ - 1``). Only for an object the caller alone holds,
    never hashed (a bytes object caches its hash) and used for nothing
    afterwards: python-gssapi's unwrapped TSCredentials. Objects of 0 or 1
    byte are interpreter-wide singletons and are left alone; on another
    interpreter this does nothing.
    """
    if type(data) is not bytes or len(data) < 2 or sys.implementation.name != "cpython":
        return
    ctypes.memset(id(data) + bytes.__basicsize__ - 1, 0, len(data))


def _zero(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))
