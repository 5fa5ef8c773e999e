"""A :class:`SmartCardBackend` over a local pcscd, through pyscard's low-level API.

This serves a session's pcsc-lite socket from the readers of this machine
("local reader passthrough"), and lets the whole pcsc-lite service be tested
end to end without RDP: program -> our socket -> PcscliteService ->
LocalPcscBackend -> pcscd. It is also the baseline of latency benchmarks.

pyscard's calls block, so they run in worker threads; the reader table is
kept current by a thread of its own that waits in SCardGetStatusChange on a
context of its own, ``\\\\?PnP?\\Notification`` included, so that readers
coming and going are seen too. libpcsclite reads ``PCSCLITE_CSOCK_NAME``
once per process: the process that uses this backend must have the local
pcscd's socket there before pyscard is first used, and must not be the
same process whose programs use our socket.

``python -m rdscard.redirect.local_backend --socket-dir DIR`` serves the
local readers on ``DIR/pcscd.comm`` until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, TypeVar

from rdscard.redirect import translate
from rdscard.redirect.backend import CardStatus, ReaderInfo, ScardError

log = logging.getLogger("rdscard.redirect.local")

T = TypeVar("T")

PNP_NOTIFICATION: Final = "\\\\?PnP?\\Notification"
MAX_READERS: Final = 16
#: SCardGetStatusChange timeout of the monitor thread, in ms: a backstop to SCardCancel.
MONITOR_TIMEOUT_MS: Final = 5000
WORKERS: Final = 32
STATE_CHANGED: Final = 0x0002
STATE_UNKNOWN: Final = 0x0004
STATE_UNAVAILABLE: Final = 0x0008
SCARD_S_SUCCESS: Final = 0
SCARD_E_CANCELLED: Final = 0x80100002
SCARD_E_TIMEOUT: Final = 0x8010000A
SCARD_E_NO_READERS_AVAILABLE: Final = 0x8010002E
SCARD_E_INVALID_HANDLE: Final = 0x80100003
SCARD_E_NO_SERVICE: Final = 0x8010001D


def _scard() -> Any:
    try:
        from smartcard import scard
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ScardError(
            SCARD_E_NO_SERVICE,
            "pyscard is not installed: install the 'pcsc' extra (python package pyscard)",
        ) from exc
    return scard


def _code(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def _check(hresult: int, call: str) -> None:
    code = _code(hresult)
    if code != SCARD_S_SUCCESS:
        raise ScardError(code, f"{call}: SCARD error 0x{code:08X}")


def _to_bytes(value: int) -> bytes:
    return (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")


def _from_bytes(value: bytes, what: str) -> int:
    if len(value) != 8:
        raise ScardError(SCARD_E_INVALID_HANDLE, f"not a local {what}")
    return int.from_bytes(value, "little")


def reader_info(name: str, event_state: int, atr: bytes, protocol: int = 0) -> ReaderInfo:
    """A pcsc-lite READER_STATE entry from an SCardGetStatusChange result of pcsc-lite.

    pcsc-lite keeps the reader's event counter in the high word of dwEventState.
    """
    bits, sharing = translate.reader_state_from_windows(event_state)
    present = bool(bits & translate.PCSC_PRESENT)
    return ReaderInfo(
        name=name,
        event_counter=(event_state >> 16) & 0xFFFF,
        state=bits,
        sharing=sharing,
        atr=bytes(atr) if present else b"",
        protocol=protocol if present else 0,
    )


class LocalPcscBackend:
    """The readers of the local pcscd as a :class:`SmartCardBackend`.

    ``scard`` is pyscard's ``smartcard.scard`` module (tests pass a stand-in).
    """

    def __init__(self, scard: Any = None) -> None:
        self._scard = scard if scard is not None else _scard()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="pcsc-call")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers: dict[str, ReaderInfo] = {}
        self._changed = asyncio.Event()
        self._handle_readers: dict[bytes, str] = {}
        self._monitor: threading.Thread | None = None
        self._monitor_context: int | None = None
        self._stop = threading.Event()
        self._closed = False
        self._first_table = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Establish the monitor context and wait for the first reader table."""
        self._loop = asyncio.get_running_loop()
        scard = self._scard
        hresult, context = await self._run(scard.SCardEstablishContext, scard.SCARD_SCOPE_USER)
        _check(hresult, "SCardEstablishContext")
        self._monitor_context = context
        self._monitor = threading.Thread(
            target=self._watch, args=(context,), name="pcsc-monitor", daemon=True
        )
        self._monitor.start()
        await self._run(self._first_table.wait, 10)

    async def close(self) -> None:
        """Stop the monitor; afterwards every call fails with SCARD_E_NO_SERVICE."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        context = self._monitor_context
        if context is not None:
            await self._quietly(self._scard.SCardCancel, context)
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            await self._run(monitor.join, 10)
        if context is not None:
            await self._quietly(self._scard.SCardReleaseContext, context)
        self._readers.clear()
        self._notify()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _quietly(self, function: Callable[..., object], *args: Any) -> None:
        try:
            await self._run(function, *args)
        except Exception as exc:  # closing: nothing left to report to
            log.debug("local pcscd: %s on close: %s", getattr(function, "__name__", ""), exc)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, function, *args)

    async def _call(self, name: str, *args: Any) -> Any:
        """Run ``scard.<name>(*args)``; raise ScardError unless it succeeded."""
        if self._closed:
            raise ScardError(SCARD_E_NO_SERVICE, "the local smart card service is closed")
        result = await self._run(getattr(self._scard, name), *args)
        hresult = result[0] if isinstance(result, list | tuple) else result
        _check(hresult, name)
        return result

    # -- the reader table ---------------------------------------------------------------------
    def readers(self) -> Sequence[ReaderInfo]:
        return list(self._readers.values())[:MAX_READERS]

    async def wait_for_reader_change(self) -> None:
        if self._closed:
            return
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _publish(self, states: list[tuple[str, int, bytes]]) -> None:
        """On the event loop: the monitor's latest view of every reader."""
        table: dict[str, ReaderInfo] = {}
        for name, event_state, atr in states:
            old = self._readers.get(name)
            keep = old is not None and old.atr == bytes(atr) and bool(old.atr)
            table[name] = reader_info(name, event_state, atr, old.protocol if keep and old else 0)
        if table != self._readers:
            self._readers = table
            self._notify()

    def _set_protocol(self, reader: str, protocol: int) -> None:
        old = self._readers.get(reader)
        if old is not None and old.atr and old.protocol != protocol:
            self._readers[reader] = replace(old, protocol=protocol)
            self._notify()

    def _watch(self, context: int) -> None:
        scard = self._scard
        known: dict[str, int] = {}
        pnp_state = 0
        while not self._stop.is_set():
            hresult, names = scard.SCardListReaders(context, [])
            code = _code(hresult)
            if code not in (SCARD_S_SUCCESS, SCARD_E_NO_READERS_AVAILABLE):
                log.warning("local pcscd: SCardListReaders failed: 0x%08X", code)
                self._stop.wait(1)
                continue
            names = list(names)[:MAX_READERS] if code == SCARD_S_SUCCESS else []
            if not names:
                self._post([])  # nothing to ask about: an empty table is the answer
            # A reader's state as last seen (0, UNAWARE, for a new one: an immediate answer).
            known = {name: known.get(name, 0) for name in names}
            request = [(PNP_NOTIFICATION, pnp_state), *known.items()]
            hresult, states = scard.SCardGetStatusChange(context, MONITOR_TIMEOUT_MS, request)
            code = _code(hresult)
            if code in (SCARD_E_TIMEOUT, SCARD_E_CANCELLED):
                continue
            if code != SCARD_S_SUCCESS:
                log.warning("local pcscd: SCardGetStatusChange failed: 0x%08X", code)
                self._stop.wait(1)
                continue
            pnp_state = states[0][1] & ~STATE_CHANGED
            view: list[tuple[str, int, bytes]] = []
            for name, event_state, atr in states[1:]:
                known[name] = event_state & ~STATE_CHANGED
                if not event_state & (STATE_UNKNOWN | STATE_UNAVAILABLE):
                    view.append((name, event_state, bytes(atr)))
            self._post(view)

    def _post(self, view: list[tuple[str, int, bytes]]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._publish, view)
        self._first_table.set()

    # -- calls ----------------------------------------------------------------------------------
    async def establish_context(self, scope: int) -> bytes:
        _, context = await self._call("SCardEstablishContext", scope)
        return _to_bytes(context)

    async def release_context(self, context: bytes) -> None:
        await self._call("SCardReleaseContext", _from_bytes(context, "context"))

    async def cancel(self, context: bytes) -> None:
        await self._call("SCardCancel", _from_bytes(context, "context"))

    async def connect(
        self, context: bytes, reader: str, share_mode: int, preferred_protocols: int
    ) -> tuple[bytes, int]:
        _, card, protocol = await self._call(
            "SCardConnect", _from_bytes(context, "context"), reader, share_mode,
            preferred_protocols,
        )
        handle = _to_bytes(card)
        self._handle_readers[handle] = reader
        self._set_protocol(reader, protocol)
        return handle, int(protocol)

    async def reconnect(
        self, handle: bytes, share_mode: int, preferred_protocols: int, initialization: int
    ) -> int:
        _, protocol = await self._call(
            "SCardReconnect", _from_bytes(handle, "card handle"), share_mode,
            preferred_protocols, initialization,
        )
        reader = self._handle_readers.get(handle)
        if reader is not None:
            self._set_protocol(reader, protocol)
        return int(protocol)

    async def disconnect(self, handle: bytes, disposition: int) -> None:
        try:
            await self._call("SCardDisconnect", _from_bytes(handle, "card handle"), disposition)
        finally:
            self._handle_readers.pop(handle, None)

    async def begin_transaction(self, handle: bytes) -> None:
        await self._call("SCardBeginTransaction", _from_bytes(handle, "card handle"))

    async def end_transaction(self, handle: bytes, disposition: int) -> None:
        await self._call("SCardEndTransaction", _from_bytes(handle, "card handle"), disposition)

    async def transmit(
        self, handle: bytes, protocol: int, apdu: bytes, max_response: int
    ) -> tuple[int, bytes]:
        _, response = await self._call(
            "SCardTransmit", _from_bytes(handle, "card handle"), protocol, list(apdu)
        )
        return protocol, bytes(response)

    async def control(
        self, handle: bytes, control_code: int, data: bytes, max_response: int
    ) -> bytes:
        _, response = await self._call(
            "SCardControl", _from_bytes(handle, "card handle"), control_code, list(data)
        )
        return bytes(response)

    async def status(self, handle: bytes) -> CardStatus:
        _, reader, state, protocol, atr = await self._call(
            "SCardStatus", _from_bytes(handle, "card handle")
        )
        return CardStatus(str(reader), int(state), int(protocol), bytes(atr))

    async def get_attrib(self, handle: bytes, attribute: int, max_length: int) -> bytes:
        _, value = await self._call(
            "SCardGetAttrib", _from_bytes(handle, "card handle"), attribute
        )
        return bytes(value)

    async def set_attrib(self, handle: bytes, attribute: int, value: bytes) -> None:
        await self._call(
            "SCardSetAttrib", _from_bytes(handle, "card handle"), attribute, list(value)
        )


# -- a stand-alone server: the local readers on a pcsc-lite socket of our own ------------------


async def serve(socket_dir: Path, owner_uid: int, owner_gid: int) -> None:
    """Serve the local readers on ``socket_dir/pcscd.comm`` until SIGTERM or SIGINT."""
    from rdscard.redirect.pcsclite_service import PcscliteService
    from rdscard.server.pcsc_socket import SOCKET_NAME, PcscSocketServer

    upstream = os.environ.get("PCSCLITE_CSOCK_NAME", "")
    if upstream and Path(upstream).resolve() == (socket_dir / SOCKET_NAME).resolve():
        raise SystemExit("PCSCLITE_CSOCK_NAME must name the local pcscd, not the socket served")
    backend = LocalPcscBackend()
    await backend.start()
    service = PcscliteService(backend)
    server = PcscSocketServer(service, socket_dir, owner_uid, owner_gid)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        print(f"ready {server.socket_path}", flush=True)
        await stop.wait()
    finally:
        await server.close()
        await service.close()
        await backend.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rdscard.redirect.local_backend",
        description="Serve this machine's smart card readers on a pcsc-lite socket of our own "
        "(PCSCLITE_CSOCK_NAME must name the local pcscd's socket, if not the default).",
    )
    parser.add_argument("--socket-dir", type=Path, required=True,
                        help="directory to create (mode 0700) for the socket pcscd.comm")
    parser.add_argument("--uid", type=int, default=os.getuid(), help="owner and allowed user")
    parser.add_argument("--gid", type=int, default=os.getgid(), help="group of the directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(args.socket_dir, args.uid, args.gid))
    except ScardError as exc:
        upstream = os.environ.get("PCSCLITE_CSOCK_NAME", "the default pcscd socket")
        print(f"cannot use the local pcscd ({upstream}): {exc}; is pcscd running?",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
