"""Desktop session benchmark: keystroke to pixels, bytes, redraw CPU, start time, memory.

Run as root (it starts an isolated pcscd, Xvfb screens and desktops as a
local account): ``.venv/bin/python bench/bench_desktop.py [--keys 200]``.

Everything runs on loopback. The rdscard server runs in this process on a
uvloop event loop of its own thread (as ``rdscard serve`` runs it), with
desktops enabled, ``one_per_account = false`` and the stock PAM service
``rdscard``; the account ``rdscard-bench`` (created with a home when
missing) gets every desktop. The client side is the stock xfreerdp
(``/smartcard /smartcard-logon /p:PIN``, ``/size`` of the desktop, 32 bpp)
on its own Xvfb, with the project's virtual card in a vpcd reader of an
isolated pcscd.

Measured, each beside its target:

1. keystroke to pixels on the server: from the input bytes read from the
   socket (and from the input applied to the session's X server, the
   figure ``DesktopView.input_latencies`` keeps) to the bitmap update
   written, for ``--keys`` keys typed into the session's xterm. The
   instants come from wrappers set on the live objects of the session
   (the connection's direct lane, ``apply_input``, the X display's damage
   callback, the view's ``encode`` and ``send``); nothing in src changes.
2. keystroke to pixels end to end: the same keys pressed through XTEST on
   the client's Xvfb (a real key press into the focused xfreerdp window),
   until the client's X server reports the client's drawing (DAMAGE on the
   client's screen); split into client in, server, client out.
3. bytes written per typed character (all updates a key caused; baseline:
   the raw 32 bpp pixels of the same rectangles); a full redraw of the
   settled desktop (openbox + xterm) at the desktop size: bytes (baseline:
   the uncompressed bitmap updates of the same frame) and server CPU
   (capture, encode), plus the first picture a
   client got after sign-in (from the server's log line).
4. sign-in (log line "signed in:") to the first desktop picture written
   (log line "first desktop picture sent"), X server and session start
   included, for every session started.
5. memory per idle session: PSS and RSS of the session's processes (its
   session leader and every process below it or in its cgroup: Xvfb,
   dbus, openbox, xterm, sh), and the server process's own share per
   added idle session (RSS growth of this process from the first idle
   session to the last, per session).

Every process started here is stopped at the end (the server logs the
desktops off); ``--timeout`` bounds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import pwd
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uvloop
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.config import load_config
from rdscard.desktop import XDisplay
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pdu.bitmap import BitmapData, Rect, encode_bitmap_updates, pack_bitmap_updates
from rdscard.pdu.input import FASTPATH_MAX_LENGTH, KeyboardEvent
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.server.desktop import DesktopSession
from rdscard.server.desktop_view import DesktopView
from rdscard.server.listener import RdpServer
from rdscard.testbed.cards import CardInThread, wait_for_port
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.ports import free_tcp_port
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for

PIN = "24681357"
ACCOUNT = "rdscard-bench"
WHITE = (255, 255, 255)
#: US scancodes of letters typed into the terminal (a s d f ... p).
LETTERS = (0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
           0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19)
SESSION_LINE = re.compile(r"^\[session (\d+)\] (.*)$")

TARGETS = {
    "server p50": 5.0, "server p99": 15.0, "e2e p50": 30.0, "bytes/char": 300,
    "full frame KB": 800, "full redraw ms": 50.0, "start s": 1.5,
    "session MB": 150.0, "server MB/session": 2.0,
}


class DeadlineError(Exception):
    """The run took longer than --timeout."""


# -- the server in this process ------------------------------------------------------------

@dataclass
class LogRecordAt:
    at: float
    session: int | None
    text: str


class LogTimes(logging.Handler):
    """Keeps every server log line with the perf_counter instant it was emitted."""

    def __init__(self, echo: bool) -> None:
        super().__init__(logging.INFO)
        self.records: list[LogRecordAt] = []
        self.echo = echo
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        at = time.perf_counter()
        try:
            text = record.getMessage()
        except Exception:  # a bad log call of the server is not ours to fail on
            return
        match = SESSION_LINE.match(text)
        item = LogRecordAt(at, int(match.group(1)) if match else None,
                           match.group(2) if match else text)
        with self._lock:
            self.records.append(item)
        if self.echo or record.levelno >= logging.ERROR:
            print(f"  server: {record.levelname} {text}", file=sys.stderr, flush=True)

    def find(self, needle: str) -> list[LogRecordAt]:
        with self._lock:
            return [r for r in self.records if needle in r.text]


class ServerThread:
    """:class:`RdpServer` on a uvloop loop in a thread of this process."""

    def __init__(self, server: RdpServer) -> None:
        self.server = server
        self.loop = uvloop.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rdscard-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def call(self, func: Callable[[], Any], timeout: float = 30) -> Any:
        """Run ``func()`` in the server's loop thread; its result."""
        async def wrapped() -> Any:
            return func()
        return self.run(wrapped(), timeout)

    def run(self, coroutine: Any, timeout: float = 60) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.run(self.server.close(), 60)  # logs every desktop off
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(20)


# -- instruments on one live session ---------------------------------------------------------

@dataclass
class Probe:
    """Instants recorded by wrappers set on one session's live objects (loop thread)."""

    received: list[float] = field(default_factory=list)
    applied: list[tuple[float, bool]] = field(default_factory=list)  # (instant, a key press)
    damage: list[float] = field(default_factory=list)
    encoded: list[tuple[float, int]] = field(default_factory=list)  # (instant, raw pixel bytes)
    sent: list[tuple[float, float, int]] = field(default_factory=list)  # (start, end, bytes)


def instrument(desktop: DesktopSession) -> Probe:
    """Wrap the session's input, damage, encode and send paths (call in the loop thread)."""
    probe = Probe()
    view = desktop.view
    owner = desktop.owner
    assert view is not None and owner is not None
    connection = owner.connection  # type: ignore[attr-defined]
    protocol = connection.protocol
    direct = protocol.direct
    assert direct is not None, "the connection is not on its direct lane"

    def received(data: bytes) -> None:
        probe.received.append(time.perf_counter())
        direct(data)

    protocol.direct = received
    apply_input = desktop.apply_input

    def applied(events: Any) -> None:
        apply_input(events)
        press = any(isinstance(e, KeyboardEvent) and not e.released for e in events)
        probe.applied.append((time.perf_counter(), press))

    desktop.apply_input = applied  # type: ignore[method-assign]
    display = desktop.display
    on_damage = display._on_damage
    assert on_damage is not None

    def damaged(rects: list[Rect]) -> None:
        probe.damage.append(time.perf_counter())
        on_damage(rects)

    display._on_damage = damaged
    encode, send = view.encode, view.send

    def encoded(pixels: Any, rect: Rect, bpp: int) -> list[BitmapData]:
        pdus = encode(pixels, rect, bpp)
        probe.encoded.append((time.perf_counter(), rect.width * rect.height * 4))
        return pdus

    async def sent(pdus: list[bytes]) -> None:
        start = time.perf_counter()
        await send(pdus)
        probe.sent.append((start, time.perf_counter(), sum(len(p) for p in pdus)))

    view.encode = encoded
    view.send = sent
    return probe


# -- the client side ----------------------------------------------------------------------------

class ClientDamage:
    """DAMAGE on the client's Xvfb: when xfreerdp's drawing reaches the client's screen."""

    def __init__(self, screen: VirtualScreen) -> None:
        self.x = XDisplay.connect(screen.display, b"")
        self._fd = self.x._conn.get_file_descriptor()

    def drain(self, quiet: float) -> None:
        """Read damage until none comes for ``quiet`` seconds."""
        while True:
            self.x.poll()
            if not select.select([self._fd], [], [], quiet)[0]:
                self.x.poll()
                return

    def wait(self, timeout: float) -> float | None:
        """The instant damage next arrives, or None after ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while True:
            rects, _cursor = self.x.poll()
            if rects:
                return time.perf_counter()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            select.select([self._fd], [], [], remaining)

    def close(self) -> None:
        self.x.close()


def terminal_shown(client: XFreeRdp, timeout: float) -> bool:
    """The session's xterm (its white page) is on the client's screen."""
    origin = client.window_origin()

    def white() -> bool:
        shot = client.screen.screenshot()
        return all(shot.getpixel((origin[0] + x, origin[1] + y)) == WHITE
                   for x in range(280, 330, 10) for y in range(280, 330, 10))

    return wait_for(white, timeout)


def focus_terminal(client: XFreeRdp) -> None:
    """Focus the client's window and click into the terminal, as a user would."""
    window = client.window_id()
    env = client.screen.env()
    subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, check=False)
    subprocess.run(["xdotool", "mousemove", "--window", window, "300", "300", "click", "1"],
                   env=env, check=True)


# -- measurements -----------------------------------------------------------------------------

@dataclass
class KeySample:
    e2e: float | None  # client key press -> client's screen damaged
    received: float  # input bytes read by the server
    applied: float  # XTEST request sent to the session's X server
    damage: float | None  # DamageNotify read by the server
    written: float | None  # bitmap update written (send returned)
    pressed: float  # XTEST press on the client's screen
    bytes: int  # every update written for this key
    raw: int  # raw pixels of the rectangles encoded for this key


def type_keys(srv: ServerThread, probe: Probe, client_damage: ClientDamage,
              count: int) -> list[KeySample]:
    """Press ``count`` letters into the focused client, one at a time."""
    samples = []
    client_damage.drain(0.3)
    for index in range(count):
        scancode = LETTERS[index % len(LETTERS)]
        marks = srv.call(lambda: (len(probe.received), len(probe.applied), len(probe.damage),
                                  len(probe.sent), len(probe.encoded)))
        pressed = time.perf_counter()
        client_damage.x.apply([KeyboardEvent(scancode)])
        shown = client_damage.wait(2.0)
        time.sleep(0.015)  # a key is held for a moment
        client_damage.x.apply([KeyboardEvent(scancode, released=True)])
        client_damage.drain(0.04)
        received, applied, damage, sent, encoded = srv.call(lambda m=marks: (
            probe.received[m[0]:], probe.applied[m[1]:], probe.damage[m[2]:],
            probe.sent[m[3]:], probe.encoded[m[4]:]))
        presses = [at for at, press in applied if press]
        if not presses:
            continue
        at = presses[0]
        reads = [r for r in received if r <= at]
        after_damage = [d for d in damage if d >= at]
        after_sent = [end for _start, end, _size in sent if end >= at]
        samples.append(KeySample(
            e2e=None if shown is None else shown - pressed,
            received=reads[-1] if reads else at, applied=at,
            damage=after_damage[0] if after_damage else None,
            written=after_sent[0] if after_sent else None, pressed=pressed,
            bytes=sum(size for _s, _e, size in sent), raw=sum(raw for _t, raw in encoded),
        ))
    return samples


def full_redraw(desktop: DesktopSession, view: DesktopView, rounds: int) -> dict[str, Any]:
    """Capture + encode of the whole screen, as ``DesktopView._updates`` does it on a refresh.

    Runs in the loop thread; the view's own encoder (the connection's
    settings). Returns median wall and thread-CPU milliseconds per step.
    """
    display = desktop.display
    rect = Rect(0, 0, view.width, view.height)
    steps: dict[str, list[float]] = {"capture": [], "encode": [], "cpu": []}
    pdus: list[bytes] = []
    frame = None
    for _ in range(rounds):
        cpu = time.thread_time()
        t0 = time.perf_counter()
        frame = display.capture(rect)
        t1 = time.perf_counter()
        pdus = pack_bitmap_updates(view.encode(frame, rect, view.bpp), FASTPATH_MAX_LENGTH)
        t2 = time.perf_counter()
        steps["cpu"].append((time.thread_time() - cpu) * 1000)
        steps["capture"].append((t1 - t0) * 1000)
        steps["encode"].append((t2 - t1) * 1000)
    assert frame is not None
    result: dict[str, Any] = {name: statistics.median(v) for name, v in steps.items()}
    result["bytes"] = sum(len(p) for p in pdus)
    result["frame"] = frame
    return result


async def view_updates_wall(desktop: DesktopSession, view: DesktopView) -> float:
    """Wall ms of ``DesktopView._updates`` on a whole-screen refresh (worker-thread encode)."""
    probe_view = DesktopView(desktop.display, _discard, view.encode, width=view.width,
                             height=view.height, bpp=view.bpp, log=logging.getLogger("bench"))
    started = time.perf_counter()
    await probe_view._updates([Rect(0, 0, view.width, view.height)])
    return (time.perf_counter() - started) * 1000


async def _discard(pdus: list[bytes]) -> None:
    return None


def uncompressed_bytes(frame: Any, bpp: int) -> int:
    """Bytes of the uncompressed bitmap updates of a BGRX frame (the baseline encoder)."""
    image = Image.fromarray(np.ascontiguousarray(frame[..., 2::-1]), "RGB")
    return sum(len(p) for p in encode_bitmap_updates(image, None, bpp))


# -- memory ---------------------------------------------------------------------------------

def _status(pid: int | str) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            values[name] = int(rest.split()[0])
    return values


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def session_processes(desktop: DesktopSession, tree: dict[int, list[int]]) -> set[int]:
    """The leader and everything below it, plus the members of the session's cgroup."""
    found: set[int] = set()
    stack = [desktop.leader.pid]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(tree.get(pid, []))
    for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        procs = root / "rdscard" / f"session-{desktop.info.session_id}" / "cgroup.procs"
        with contextlib.suppress(OSError, ValueError):
            found.update(int(p) for p in procs.read_text().split())
    return found


def session_memory(desktops: list[DesktopSession]) -> tuple[list[tuple[int, int]],
                                                             dict[str, list[int]]]:
    """Per session (PSS, RSS) KiB; per command name, PSS KiB of each session."""
    tree = children_map()
    totals = []
    by_name: dict[str, list[int]] = {}
    for desktop in desktops:
        pss = rss = 0
        names: dict[str, int] = {}
        for pid in session_processes(desktop, tree):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                one = pss_kib(pid)
                rss += _status(pid).get("VmRSS", 0)
            except OSError:
                continue
            if pid == desktop.leader.pid:
                comm = "session leader"
            pss += one
            names[comm] = names.get(comm, 0) + one
        totals.append((pss, rss))
        for name, value in names.items():
            by_name.setdefault(name, []).append(value)
    return totals, by_name


def own_memory() -> dict[str, int]:
    gc.collect()
    status = _status("self")
    return {key: status.get(key, 0) for key in ("VmRSS", "RssAnon", "RssFile", "RssShmem")}


# -- the run ------------------------------------------------------------------------------------

def ensure_account(name: str) -> pwd.struct_passwd:
    """A local account with a home directory (created once)."""
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True,
                       capture_output=True)
        account = pwd.getpwnam(name)
    home = Path(account.pw_dir)
    if not home.is_dir():
        home.mkdir(mode=0o750, parents=True)
        os.chown(home, account.pw_uid, account.pw_gid)
    return account


def preflight() -> None:
    if os.geteuid() != 0:
        sys.exit("run as root: desktops start as another account, pcscd runs isolated")
    missing = [p for p in ("Xvfb", "xfreerdp", "xdotool", "openbox", "xterm", "pcscd")
               if shutil.which(p) is None]
    if missing:
        sys.exit(f"missing programs: {', '.join(missing)}")
    if not Path("/etc/pam.d/rdscard").exists():
        sys.exit("the PAM service rdscard is missing: run `rdscard session install-pam` first")


@dataclass
class Bench:
    args: argparse.Namespace
    stack: contextlib.ExitStack
    root: Path
    logs: LogTimes
    srv: ServerThread | None = None
    env: dict[str, str] = field(default_factory=dict)

    def step(self, text: str) -> None:
        print(f"[bench] {text}", flush=True)

    def prepare(self) -> None:
        self.step("preparing: test PKI, alice's P-256 card, pcscd + vpcd, the account "
                  f"{ACCOUNT}")
        ensure_account(ACCOUNT)
        pki = RealmPki.create(self.root / "pki", "EXAMPLE.TEST", "example.test")
        card = VirtualPivCard(CardState.new(serial=0x4242, pin=PIN.encode(), puk=b"12345678"))
        provision(PivClient(InProcessTransport(card)), pki, "alice", Credentials(),
                  ProvisionOptions(key_type="p256"))
        daemon = IsolatedPcscd(self.root / "pcscd", free_tcp_port(2))
        daemon.start()
        self.stack.callback(daemon.stop)
        port = daemon.vpcd_ports()[0]
        wait_for_port("127.0.0.1", port)
        inserted = CardInThread(card, port)
        inserted.insert()
        self.stack.callback(inserted.remove)
        self.env = daemon.env
        state = self.root / "state"
        NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
        run_dir = self.root / "run"
        run_dir.mkdir(mode=0o755)
        config = self.root / "rdscard.toml"
        config.write_text(
            f'[redirection]\nsocket_dir = "{run_dir}"\n'
            '[sessions]\npam_service = "rdscard"\none_per_account = false\n'
            f'[logon]\nmode = "local"\nroots = ["{pki.layout.root_cert}"]\n'
            f'[logon.accounts]\n"alice@example.test" = "{ACCOUNT}"\n'
        )
        cfg = load_config(config).with_overrides(listen="127.0.0.1:0", state_dir=state)
        self.srv = ServerThread(RdpServer(cfg)).start()
        self.stack.callback(self.srv.stop)
        time.sleep(0.5)  # pcscd sees the card

    def connect(self, screen: VirtualScreen) -> tuple[XFreeRdp, DesktopSession]:
        """A client signing in; returns once its desktop's first picture is written."""
        assert self.srv is not None
        before = len(self.logs.find("first desktop picture sent"))
        client = XFreeRdp(screen, "127.0.0.1", self.srv.server.port, env=self.env,
                          size=(self.args.width, self.args.height),
                          extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"])
        self.stack.callback(client.close)
        if not wait_for(lambda: len(self.logs.find("first desktop picture sent")) > before,
                        60, 0.02):
            raise RuntimeError("no desktop picture within 60 s:\n" + client.output())
        session = self.logs.find("first desktop picture sent")[-1].session
        context = self.srv.server.context
        assert context is not None
        desktop = context.desktops.get(session or -1)
        assert desktop is not None, f"session {session} has no desktop"
        return client, desktop

    def screen(self, count: int = 1) -> VirtualScreen:
        screen = VirtualScreen(self.args.width + 64 * count, self.args.height + 64).start()
        self.stack.callback(screen.close)
        return screen


def fmt_target(value: float, target: float, unit: str = "") -> str:
    mark = "met" if value <= target else "MISSED"
    return f"<= {target:g}{unit}  {mark}"


def run(args: argparse.Namespace) -> None:
    logs = LogTimes(args.verbose)
    logging.getLogger().addHandler(logs)
    logging.getLogger().setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="rdscard-bench-") as work, \
            contextlib.ExitStack() as stack:
        root = Path(work)
        root.chmod(0o755)
        bench = Bench(args, stack, root, logs)
        bench.prepare()
        srv = bench.srv
        assert srv is not None
        own = {"before": own_memory()}

        bench.step(f"session 1: xfreerdp {args.width}x{args.height} signs in with the card")
        screen = bench.screen()
        client, desktop = bench.connect(screen)
        if not terminal_shown(client, 30):
            raise RuntimeError("the session's terminal did not appear on the client")
        focus_terminal(client)
        time.sleep(1.0)
        view = desktop.view
        assert view is not None
        probe = srv.call(lambda: instrument(desktop))
        client_damage = ClientDamage(screen)
        stack.callback(client_damage.close)
        own["one"] = own_memory()

        bench.step(f"typing {args.keys} letters into the session's xterm (through xfreerdp)")
        view_latencies_before = srv.call(lambda: len(view.input_latencies))
        samples = type_keys(srv, probe, client_damage, args.keys)
        view_latencies = srv.call(lambda: [s * 1000 for s in
                                           view.input_latencies[view_latencies_before:]])

        bench.step("full redraws of the settled desktop")
        redraw = srv.call(lambda: full_redraw(desktop, view, args.redraws), 120)
        updates_wall = statistics.median(
            srv.run(view_updates_wall(desktop, view)) for _ in range(args.redraws))
        uncompressed = uncompressed_bytes(redraw["frame"], view.bpp)

        bench.step(f"{args.sessions - 1} more idle sessions for the memory figures")
        own["after 1"] = own_memory()
        desktops = [desktop]
        others = bench.screen(args.sessions)
        growth = []
        for _ in range(args.sessions - 1):
            _client, extra = bench.connect(others)
            desktops.append(extra)
            time.sleep(args.settle)
            growth.append(own_memory())
        time.sleep(args.settle)
        memory, by_name = session_memory(desktops)
        own["after all"] = own_memory()

    report(args, samples, view_latencies, redraw, updates_wall, uncompressed, logs,
           memory, by_name, own, growth)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def row(name: str, p50: float, p99: float | None, target: str) -> None:
    p99_text = f"{p99:9.2f}" if p99 is not None else f"{'':>9}"
    print(f"{name:<50} {p50:9.2f} {p99_text}   {target}")


def report(args: argparse.Namespace, samples: list[KeySample], view_latencies: list[float],
           redraw: dict[str, Any], updates_wall: float, uncompressed: int, logs: LogTimes,
           memory: list[tuple[int, int]], by_name: dict[str, list[int]],
           own: dict[str, dict[str, int]], growth: list[dict[str, int]]) -> None:
    size = f"{args.width}x{args.height}"
    ok = [s for s in samples if s.written is not None]
    print(f"\ndesktop benchmark: {size} at 32 bpp, {len(samples)} keys typed into xterm, "
          f"{len(memory)} sessions")
    print(f"\n1-2. keystroke to pixels, ms ({len(ok)} keys with an update)")
    print(f"{'':<50} {'p50':>9} {'p99':>9}   target")

    def series(values: list[float | None]) -> list[float]:
        return [v * 1000 for v in values if v is not None]

    recv_written = series([s.written - s.received if s.written else None for s in ok])
    applied_written = series([s.written - s.applied if s.written else None for s in ok])
    row("server: input read -> update written", pct(recv_written, .5), pct(recv_written, .99),
        f"p50 {fmt_target(pct(recv_written, .5), TARGETS['server p50'])}, "
        f"p99 {fmt_target(pct(recv_written, .99), TARGETS['server p99'])}")
    row("server: input applied -> update written", pct(applied_written, .5),
        pct(applied_written, .99), "(input_seen's definition)")
    parts = {
        "  read -> applied to X (XTEST)": [s.applied - s.received for s in ok],
        "  applied -> DamageNotify read": [s.damage - s.applied if s.damage else None
                                           for s in ok],
        "  DamageNotify -> written (capture, encode, write)": [
            s.written - s.damage if s.damage and s.written else None for s in ok],
    }
    for name, values in parts.items():
        ms = series(values)
        if ms:
            row(name, pct(ms, .5), pct(ms, .99), "")
    if view_latencies:
        row("DesktopView.input_latencies as recorded", pct(view_latencies, .5),
            pct(view_latencies, .99), f"(n={len(view_latencies)}; key releases counted too)")
    e2e = series([s.e2e for s in samples])
    if e2e:
        row("end to end: client key -> client screen drawn", pct(e2e, .5), pct(e2e, .99),
            f"p50 {fmt_target(pct(e2e, .5), TARGETS['e2e p50'])}")
        both = [s for s in ok if s.e2e is not None]
        for name, values in {
            "  client in: key -> server read": [s.received - s.pressed for s in both],
            "  server: read -> written": [s.written - s.received for s in both if s.written],
            "  client out: written -> client screen drawn": [
                s.pressed + s.e2e - s.written for s in both if s.e2e and s.written],
        }.items():
            ms = series(values)
            row(name, pct(ms, .5), pct(ms, .99), "")
        early = sum(1 for s in both if s.e2e is not None and s.written is not None
                    and s.pressed + s.e2e < s.written)
        if early:
            print(f"  ({early} keys: the client's screen changed before the update was written)")
    missed = len(samples) - len(e2e)
    if missed:
        print(f"  ({missed} keys drew nothing on the client within 2 s)")

    print(f"\n3. bytes and server CPU ({size}, 32 bpp planar)")
    per_key = [s.bytes for s in ok]
    raw_key = [s.raw for s in ok if s.raw]
    bpc = statistics.median(per_key)
    print(f"{'bytes written per typed character (median)':<50} {bpc:9.0f} "
          f"{'':>9}   {fmt_target(bpc, TARGETS['bytes/char'])}")
    if raw_key:
        raw = statistics.median(raw_key)
        print(f"{'  baseline: raw 32 bpp pixels of the same rects':<50} {raw:9.0f} "
              f"{'':>9}   ratio {bpc / raw:.3f}")
    full_kb = redraw["bytes"] / 1000
    print(f"{'full redraw of the settled desktop, KB':<50} {full_kb:9.1f} {'':>9}   "
          f"{fmt_target(full_kb, TARGETS['full frame KB'], ' KB')}")
    print(f"{'  baseline: uncompressed bitmap updates, KB':<50} {uncompressed / 1000:9.1f} "
          f"{'':>9}   ratio {redraw['bytes'] / uncompressed:.3f}")
    firsts = logs.find("first desktop picture sent")
    first_bytes = [int(re.search(r"sent: (\d+) bytes", r.text).group(1))  # type: ignore[union-attr]
                   for r in firsts]
    if first_bytes:
        print(f"{'  first picture after sign-in, KB (median)':<50} "
              f"{statistics.median(first_bytes) / 1000:9.1f} {'':>9}   "
              f"(n={len(first_bytes)}; may precede the terminal)")
    total = redraw["capture"] + redraw["encode"]
    print(f"{'server full redraw, wall ms (capture+encode)':<50} {total:9.1f} {'':>9}   "
          f"{fmt_target(total, TARGETS['full redraw ms'], ' ms')}")
    for name, label in (("capture", "capture (ShmGetImage in 1 MB bands)"),
                        ("encode", "encode (the connection's encoder)")):
        print(f"{'  ' + label:<50} {redraw[name]:9.1f}")
    print(f"{'  CPU of the loop thread for the above, ms':<50} {redraw['cpu']:9.1f}")
    print(f"{'  DesktopView._updates on a refresh, wall ms':<50} {updates_wall:9.1f}"
          f"{'':>9}    (encode in a worker thread)")

    print("\n4. sign-in -> first desktop picture written (X server + session start included)")
    signed = {r.session: r.at for r in logs.find("signed in:")}
    starts = []
    for record in firsts:
        if record.session in signed:
            starts.append(record.at - signed[record.session])
    started = [float(m.group(1)) for r in logs.find("desktop started on display")
               if (m := re.search(r" in (\d+) ms", r.text))]
    if starts:
        print(f"{'signed in -> first picture, s':<50} {statistics.median(starts):9.2f} "
              f"{max(starts):9.2f}   median, max (n={len(starts)}); "
              f"{fmt_target(statistics.median(starts), TARGETS['start s'], ' s')}")
    if started:
        print(f"{'  of which the desktop start (leader, X, PAM), s':<50} "
              f"{statistics.median(started) / 1000:9.2f} {max(started) / 1000:9.2f}")

    print(f"\n5. memory ({len(memory)} idle sessions at {size})")
    pss = statistics.median(p for p, _r in memory) / 1024
    rss = statistics.median(r for _p, r in memory) / 1024
    print(f"{'per session: PSS of its processes, MB (median)':<50} {pss:9.1f} {'':>9}   "
          f"{fmt_target(pss, TARGETS['session MB'], ' MB')}")
    print(f"{'per session: RSS of its processes, MB (median)':<50} {rss:9.1f}")
    for name, values in sorted(by_name.items(), key=lambda kv: -sum(kv[1])):
        print(f"{'  PSS ' + name + ', MB':<50} {statistics.median(values) / 1024:9.1f}")
    if growth and len(memory) > 1:
        first, last = own["after 1"], own["after all"]
        per = (last["VmRSS"] - first["VmRSS"]) / (len(memory) - 1) / 1024
        print(f"{'server process: RSS growth per idle session, MB':<50} {per:9.2f} {'':>9}   "
              f"{fmt_target(per, TARGETS['server MB/session'], ' MB')}")
        for key in ("RssAnon", "RssShmem", "RssFile"):
            part = (last[key] - first[key]) / (len(memory) - 1) / 1024
            print(f"{'  of which ' + key + ', MB':<50} {part:9.2f}")
        frame_mb = args.width * args.height * 4 / 2**20
        print(f"{'  for scale: one BGRX frame, MB':<50} {frame_mb:9.2f}")
        first_session = (own["one"]["VmRSS"] - own["before"]["VmRSS"]) / 1024
        print(f"{'  first session (with one-time imports), MB':<50} {first_session:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Run as root; needs Xvfb, xfreerdp, xdotool, openbox, xterm, pcscd with vpcd "
               "and the PAM service rdscard (rdscard session install-pam).")
    parser.add_argument("--keys", type=int, default=200, help="letters typed (default 200)")
    parser.add_argument("--sessions", type=int, default=4,
                        help="idle sessions for the memory figures, the first included "
                             "(default 4)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--redraws", type=int, default=7, help="full redraws timed (default 7)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds an added session is left idle before memory is read")
    parser.add_argument("--timeout", type=int, default=420,
                        help="give up (and clean up) after this many seconds (default 420)")
    parser.add_argument("--verbose", action="store_true", help="echo the server's log")
    args = parser.parse_args()
    if args.sessions < 1 or args.keys < 1:
        parser.error("--sessions and --keys must be at least 1")
    preflight()

    def on_alarm(_signum: int, _frame: object) -> None:
        raise DeadlineError(f"the run took longer than {args.timeout} s")

    def on_term(_signum: int, _frame: object) -> None:
        raise SystemExit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(args.timeout)
    started = time.monotonic()
    try:
        run(args)
    finally:
        signal.alarm(0)
    print(f"\n(run time {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
