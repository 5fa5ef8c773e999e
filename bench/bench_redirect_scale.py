"""Redirection at scale: one server, 1 to 1000 sessions, a program transmitting in every one.

Run as root (sessions run as root here): ``python bench/bench_redirect_scale.py
[--sessions 1 10 100 1000] [--duration 5]``.

One real ``rdscard serve`` process. Scripted RDP clients (this process,
asyncio + TLS, :mod:`scripted_rdp_client`) each open a session with a
200x200 desktop, read and discard its graphics, and redirect one smart card
reader whose card answers every IOCTL at once (Transmit -> 90 00). The
session count grows in steps on the same server (1, then 10, 100, 1000 in
all). At each step a second process plays one pcsc-lite program per session,
speaking the pcsc-lite wire protocol to the session's socket directly
(CMD_VERSION, ESTABLISH_CONTEXT, CONNECT, then a closed loop of TRANSMIT of
SELECT PIV AID, one call in flight per session) for ``--duration`` seconds.

Printed per step: sessions redirected, aggregate redirected calls per
second, p50/p99 latency seen by the programs, the server's CPU time per call
and the calls per second one core would carry at that cost, the CPU of the
two load generators per call (they share the machine's cores with the
server), and the server's resident memory per session: RSS growth per added
session, split into the RDP session itself (connected, logon screen, no
device yet) and the redirection (device announced, socket up, a program
connected with a context and a card handle). Also the server's CPU with no
calls at all: once each step's load has settled, and while the step's new
sessions sit on the logon screen without a smart card device.

``--compare-compiled`` starts two servers, one running the compiled hot
path and one with ``RDSCARD_PURE_PYTHON=1``, and runs the same steps on
each, alternately; ``--response-bytes N...`` adds, at each session count,
loads whose card answers N bytes, for the server's CPU per extra KiB of
response (the sessions are not signed in, and a connection that sends more
than 8 MiB before a sign-in is dropped: keep N times the calls per session
below that, with enough sessions or a short ``--duration``).

``--profile FILE`` runs the server under cProfile (in one process: privilege
separation off) and prints its hottest functions; with the compiled hot
path, only what is still interpreted shows by name (the profiler slows it
down; use it to see where time goes, not for the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import re
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (
    ServerProcess,
    cpu_ns,
    machine_busy_seconds,
    percentile,
    rss_kib,
    sched_ns,
)
from rdscard.pdu.pcsclite import (
    Command,
    Connect,
    EstablishContext,
    PcscRequest,
    Transmit,
    Version,
)
from scripted_rdp_client import ClientConnection, connect_client

SELECT_PIV = bytes.fromhex("00a4040009a00000030800001000" "00")
MAX_RECEIVE = 65538  # pcsc-lite's MAX_BUFFER_SIZE_EXTENDED
PCSC_T1 = 2
CONNECT_PARALLEL = 40
SETTLE = 0.5
IDLE_SETTLE = 3.0
IDLE_WINDOW = 2.0


# -- the programs in the sessions (a child process) -----------------------------------------


class PcscProgram:
    """One pcsc-lite client connection, speaking the wire protocol (pcsc-lite 4.4)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h_card = 0

    async def _call(self, command: Command, message: object, size: int) -> bytes:
        assert isinstance(message, Version | EstablishContext | Connect)
        self.writer.write(PcscRequest(command, message).encode())
        return await self.reader.readexactly(size)

    async def open(self, reader_name: str, deadline: float) -> None:
        version = Version.decode(await self._call(Command.CMD_VERSION, Version(4, 4),
                                                  Version.SIZE))
        if version.rv != 0:
            raise RuntimeError(f"CMD_VERSION refused: 0x{version.rv:08X}")
        context = EstablishContext.decode(await self._call(
            Command.SCARD_ESTABLISH_CONTEXT, EstablishContext(2), EstablishContext.SIZE))
        if context.rv != 0:
            raise RuntimeError(f"ESTABLISH_CONTEXT failed: 0x{context.rv:08X}")
        while True:  # the session learns of its reader from the client's first status answer
            reply = Connect.decode(await self._call(
                Command.SCARD_CONNECT, Connect(context.h_context, reader_name, 2, 3),
                Connect.SIZE))
            if reply.rv == 0:
                self.h_card = reply.h_card
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"CONNECT failed: 0x{reply.rv:08X}")
            await asyncio.sleep(0.05)

    async def transmit_loop(self, until: float, latencies: list[float]) -> None:
        request = PcscRequest(
            Command.SCARD_TRANSMIT,
            Transmit(self.h_card, PCSC_T1, 16, len(SELECT_PIV), PCSC_T1, 16, MAX_RECEIVE),
            SELECT_PIV,
        ).encode()
        reader, writer = self.reader, self.writer
        clock = time.perf_counter
        while clock() < until:
            start = clock()
            writer.write(request)
            head = Transmit.decode(await reader.readexactly(Transmit.SIZE))
            if head.rv != 0:
                raise RuntimeError(f"TRANSMIT failed: 0x{head.rv:08X}")
            response = await reader.readexactly(head.pcb_recv_length)
            latencies.append(clock() - start)
            if response[-2:] != b"\x90\x00":
                raise RuntimeError(f"unexpected response {response.hex()}")


async def programs_main(sockets: list[str], reader_name: str, duration: float) -> None:
    """Child process: open one program per socket, report ready, transmit on "go"."""
    deadline = time.monotonic() + 120
    semaphore = asyncio.Semaphore(CONNECT_PARALLEL)

    async def open_one(path: str) -> PcscProgram:
        async with semaphore:
            reader, writer = await asyncio.open_unix_connection(path)
            program = PcscProgram(reader, writer)
            await program.open(reader_name, deadline)
            return program

    programs = await asyncio.gather(*(open_one(path) for path in sockets))
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print(f"ready {len(programs)}", flush=True)
    await stdin.readline()
    cpu_start = time.process_time()
    start = time.perf_counter()
    until = start + duration
    per_program: list[list[float]] = [[] for _ in programs]
    await asyncio.gather(*(p.transmit_loop(until, lat)
                           for p, lat in zip(programs, per_program, strict=True)))
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    latencies = [value for values in per_program for value in values]
    print(json.dumps({
        "calls": len(latencies), "wall": wall, "cpu": cpu,
        "p50": statistics.median(latencies), "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "per_session_min": min(len(values) for values in per_program),
    }), flush=True)
    for program in programs:
        program.writer.close()


# -- the orchestrator: server, scripted clients, measurements -------------------------------


@dataclass
class Step:
    sessions: int
    connect_seconds: float
    rss_session_kib: float
    rss_redirect_kib: float
    calls: int
    calls_per_second: float
    p50_us: float
    p99_us: float
    server_cpu_us: float
    clients_cpu_us: float
    programs_cpu_us: float
    server_busy: float
    server_wait_us: float
    other_cores: float
    min_session_calls: int
    idle_busy: float
    waiting_busy: float


@dataclass
class LoadStep:
    sessions: int
    response_bytes: int
    calls_per_second: float
    p50_us: float
    server_cpu_us: float


class Bench:
    def __init__(self, server: ServerProcess, duration: float) -> None:
        self.server = server
        self.duration = duration
        self.clients: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.ready = 0

    def _on_ready(self, _client: ClientConnection) -> None:
        self.ready += 1

    async def add_sessions(self, count: int) -> list[ClientConnection]:
        semaphore = asyncio.Semaphore(CONNECT_PARALLEL)

        async def one() -> ClientConnection:
            async with semaphore:
                client, task = await connect_client(
                    "127.0.0.1", self.server.port, announce_device=False,
                    on_ready=self._on_ready)
                self.tasks.append(task)
                return client

        added = await asyncio.gather(*(one() for _ in range(count)))
        self.clients.extend(added)
        return list(added)

    async def wait(self, predicate: object, timeout: float, what: str) -> None:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    def respond_with(self, size: int) -> None:
        """Every session's card answers its transmits with ``size`` bytes (..., 90 00)."""
        response = bytes(max(0, size - 2)) + b"\x90\x00"
        for client in self.clients:
            client.card.transmit_response(response)

    async def load(self, size: int) -> LoadStep:
        """The sessions' programs transmitting again, the card answering ``size`` bytes."""
        self.respond_with(size)
        pid = self.server.pid
        sockets = [str(path) for path in self.server.redirected_sockets().values()]
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--programs", "--duration", str(self.duration),
            *sockets, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        assert child.stdin is not None and child.stdout is not None
        line = (await child.stdout.readline()).decode()
        if not line.startswith("ready"):
            await child.wait()
            raise RuntimeError(f"the programs did not start (status {child.returncode})")
        await asyncio.sleep(SETTLE)
        before = sched_ns(pid)[0]
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        result = json.loads(await child.stdout.readline())
        after = sched_ns(pid)[0]
        child.stdin.close()
        await child.wait()
        await asyncio.sleep(SETTLE)
        calls = int(result["calls"])
        return LoadStep(len(sockets), size, calls / result["wall"], result["p50"] * 1e6,
                        (after - before) / 1000 / calls)

    async def step(self, total: int) -> Step:
        pid = self.server.pid
        added = total - len(self.clients)
        rss_start = rss_kib(pid)
        started = time.monotonic()
        new = await self.add_sessions(added)
        await asyncio.sleep(SETTLE)
        rss_sessions = rss_kib(pid)
        connect_seconds = time.monotonic() - started
        waiting_start, waiting_wall = cpu_ns(pid), time.perf_counter()
        await asyncio.sleep(IDLE_WINDOW)
        waiting_busy = (cpu_ns(pid) - waiting_start) / 1e9 / (time.perf_counter() - waiting_wall)
        announced = time.monotonic()
        for client in new:
            client.announce()
        await self.wait(lambda: len(self.server.redirected_sockets()) >= total, 300,
                        f"{total} redirected sessions")
        connect_seconds += time.monotonic() - announced
        sockets = [str(path) for path in self.server.redirected_sockets().values()]
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--programs", "--duration", str(self.duration),
            *sockets, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        assert child.stdin is not None and child.stdout is not None
        line = (await child.stdout.readline()).decode()
        if not line.startswith("ready"):
            await child.wait()
            raise RuntimeError(f"the programs did not start (status {child.returncode})")
        await asyncio.sleep(SETTLE)
        rss_programs = rss_kib(pid)
        me = os.getpid()
        server_before, me_before = sched_ns(pid), cpu_ns(me)
        machine_before, wall_before = machine_busy_seconds(), time.perf_counter()
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        result = json.loads(await child.stdout.readline())
        server_after, me_after = sched_ns(pid), cpu_ns(me)
        machine_after, wall_after = machine_busy_seconds(), time.perf_counter()
        child.stdin.close()
        await child.wait()
        # idle: once the programs are gone and the server has finished releasing their calls
        await asyncio.sleep(IDLE_SETTLE)
        idle_start, idle_wall = cpu_ns(pid), time.perf_counter()
        await asyncio.sleep(IDLE_WINDOW)
        idle_busy = (cpu_ns(pid) - idle_start) / 1e9 / (time.perf_counter() - idle_wall)
        calls = int(result["calls"])
        wall = wall_after - wall_before
        server_cpu = (server_after[0] - server_before[0]) / 1e9
        ours = server_cpu + (me_after - me_before) / 1e9 + result["cpu"]
        return Step(
            sessions=len(sockets),
            connect_seconds=connect_seconds,
            rss_session_kib=(rss_sessions - rss_start) / added,
            rss_redirect_kib=(rss_programs - rss_sessions) / added,
            calls=calls,
            calls_per_second=calls / result["wall"],
            p50_us=result["p50"] * 1e6,
            p99_us=result["p99"] * 1e6,
            server_cpu_us=server_cpu * 1e6 / calls,
            clients_cpu_us=(me_after - me_before) / 1000 / calls,
            programs_cpu_us=result["cpu"] * 1e6 / calls,
            server_busy=server_cpu / wall,
            server_wait_us=(server_after[1] - server_before[1]) / 1000 / calls,
            other_cores=max(0.0, (machine_after - machine_before) - ours) / wall,
            min_session_calls=int(result["per_session_min"]),
            idle_busy=idle_busy,
            waiting_busy=waiting_busy,
        )

    async def close(self) -> None:
        for client in self.clients:
            client.writer.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def orchestrate(server: ServerProcess, counts: list[int], duration: float,
                      budget: float) -> tuple[list[Step], str]:
    bench = Bench(server, duration)
    steps: list[Step] = []
    note = ""
    started = time.monotonic()
    try:
        for total in counts:
            if time.monotonic() - started > budget:
                note = f"stopped before {total} sessions: the time budget of {budget:.0f} s ran out"
                break
            try:
                step = await bench.step(total)
            except (RuntimeError, OSError, asyncio.IncompleteReadError) as exc:
                note = f"stopped at {total} sessions: {exc}"
                break
            steps.append(step)
            print(f"  {step.sessions} sessions: {step.calls_per_second:.0f} calls/s",
                  file=sys.stderr)
    finally:
        await bench.close()
    return steps, note


async def orchestrate_pair(servers: dict[str, ServerProcess], counts: list[int],
                           duration: float, sizes: list[int]) -> dict[str, list[LoadStep]]:
    """Two servers side by side, the same steps on each, alternately (A B, B A, ...); at
    each session count a load for each response size."""
    benches = {name: Bench(server, duration) for name, server in servers.items()}
    loads: dict[str, list[LoadStep]] = {name: [] for name in servers}
    try:
        for index, total in enumerate(counts):
            order = list(benches.items())
            if index % 2:
                order.reverse()
            for name, bench in order:
                step = await bench.step(total)
                loads[name].append(LoadStep(step.sessions, 2, step.calls_per_second,
                                            step.p50_us, step.server_cpu_us))
                print(f"  {name}: {step.sessions} sessions: {step.calls_per_second:.0f} calls/s",
                      file=sys.stderr)
            for size in sizes:
                if size == 2:
                    continue
                for name, bench in order:
                    loads[name].append(await bench.load(size))
                for _name, bench in order:
                    bench.respond_with(2)
    finally:
        for bench in benches.values():
            await bench.close()
    return loads


def report_pair(loads: dict[str, list[LoadStep]], duration: float) -> None:
    names = list(loads)
    first, second = names
    print(f"redirected SCardTransmit (SELECT PIV AID), one program per session, {duration:.0f} s "
          f"per load, the two servers alternately; server CPU per call (us, mean over the load)")
    print(f"{'sessions':>8} {'response':>8} {'CPU/call ' + first:>17} {'CPU/call ' + second:>17}"
          f" {'ratio':>6} {'1-core calls/s ' + first:>24} {'1-core calls/s ' + second:>24}"
          f" {'p50 ' + first:>13} {'p50 ' + second:>13}")
    for a, b in zip(loads[first], loads[second], strict=True):
        print(f"{a.sessions:>8} {a.response_bytes:>8} {a.server_cpu_us:>17.1f}"
              f" {b.server_cpu_us:>17.1f} {a.server_cpu_us / b.server_cpu_us:>6.2f}"
              f" {1e6 / a.server_cpu_us:>24.0f} {1e6 / b.server_cpu_us:>24.0f}"
              f" {a.p50_us:>13.0f} {b.p50_us:>13.0f}")
    sizes = sorted({load.response_bytes for load in loads[first]})
    if len(sizes) > 1:
        print("server CPU per extra KiB of response (us), per session count: "
              "(CPU at the largest response - CPU at 2 bytes) / extra KiB")
        for name in names:
            by_count: dict[int, dict[int, float]] = {}
            for load in loads[name]:
                by_count.setdefault(load.sessions, {})[load.response_bytes] = load.server_cpu_us
            parts = []
            for count, cpu in by_count.items():
                big = max(cpu)
                parts.append(f"{count} sessions {(cpu[big] - cpu[2]) / ((big - 2) / 1024):.2f}")
            print(f"  {name}: " + ", ".join(parts))
    print("targets (compiled): 25,000 calls/s per core; <= 5 us per extra KiB of response")


def report(steps: list[Step], rss_first: int, rss_last: int, note: str, duration: float) -> None:
    print(f"redirected SCardTransmit (SELECT PIV AID -> 90 00), one program per session, "
          f"{duration:.0f} s per step; times in microseconds")
    print(f"{'sessions':>8} {'min calls':>9} {'calls/s':>8} {'p50':>7} {'p99':>7}"
          f" {'server CPU/call':>15} {'1-core calls/s':>14} {'server busy':>11}"
          f" {'clients CPU/call':>16} {'programs CPU/call':>17} {'server waited/call':>18}"
          f" {'other load':>10}")
    for s in steps:
        one_core = 1e6 / s.server_cpu_us if s.server_cpu_us else float("inf")
        print(f"{s.sessions:>8} {s.min_session_calls:>9} {s.calls_per_second:>8.0f}"
              f" {s.p50_us:>7.0f} {s.p99_us:>7.0f} {s.server_cpu_us:>15.1f}"
              f" {one_core:>14.0f} {s.server_busy * 100:>10.0f}%"
              f" {s.clients_cpu_us:>16.1f} {s.programs_cpu_us:>17.1f}"
              f" {s.server_wait_us:>18.1f} {s.other_cores:>6.2f} cores")
    print()
    print("server resident memory per added session (KiB): RDP session (logon screen, no device) "
          "+ redirection (device, socket, program with context and card) = total")
    previous = 0
    for s in steps:
        print(f"{previous + 1:>5}..{s.sessions:<5} {s.rss_session_kib:>10.1f} + "
              f"{s.rss_redirect_kib:>7.1f} = {s.rss_session_kib + s.rss_redirect_kib:>7.1f}"
              f"   (set up in {s.connect_seconds:.1f} s)")
        previous = s.sessions
    print("server CPU with no calls, in % of a core: after each step's load, and while the new "
          "sessions of the step had no smart card device yet (logon screen waiting for one)")
    for s in steps:
        print(f"{s.sessions:>8} sessions: idle {s.idle_busy * 100:5.1f}%; "
              f"new sessions without a device: {s.waiting_busy * 100:5.1f}%")
    if steps:
        print(f"server RSS: {rss_first / 1024:.1f} MiB before the first session, "
              f"{rss_last / 1024:.1f} MiB with {steps[-1].sessions} sessions")
    if note:
        print(f"note: {note}")
    print("'min calls': the fewest calls any one session completed (every session transmits)")
    print("the load generators (scripted RDP clients in this process, pcsc-lite programs in "
          "a child) share the machine's cores with the server: see their CPU per call;\n"
          "'server waited' is the time the server was runnable but had no core (run queue), "
          "'other load' the cores busy with processes outside this benchmark")
    print("targets: 10,000 redirected calls/s on one core; 1,000 sessions in one process; "
          "under 100 KB per session")


def compare_compiled(base: Path, config: str, counts: list[int], duration: float,
                     sizes: list[int]) -> int:
    from rdscard.compiled import PURE_ENV

    servers: dict[str, ServerProcess] = {}
    try:
        for name, env in (("compiled", {}), ("pure", {PURE_ENV: "1"})):
            run = base / f"run-{name}"
            servers[name] = ServerProcess(
                base / f"server-{name}",
                config.replace(f'socket_dir = "{base / "run"}"', f'socket_dir = "{run}"'),
                env=env)
        try:
            loads = asyncio.run(orchestrate_pair(servers, counts, duration, sizes))
        except Exception:
            for name, server in servers.items():
                print(f"--- {name} server's log (end):\n{server.log[-3000:]}", file=sys.stderr)
            raise
        said = {name: re.search(r"redirection hot path: (.*)", server.log)
                for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    for name, found in said.items():
        print(f"{name} server: redirection hot path: "
              f"{found.group(1) if found else 'not logged'}")
    report_pair(loads, duration)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--budget", type=float, default=600.0,
                        help="seconds after which no further step starts (default 600)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="run the server under cProfile (slower), statistics to FILE, "
                        "and print where its time went")
    parser.add_argument("--compare-compiled", action="store_true",
                        help="two servers, the compiled hot path and pure Python "
                        "(RDSCARD_PURE_PYTHON=1), the same steps on each, alternately")
    parser.add_argument("--response-bytes", type=int, nargs="+", default=[2], metavar="N",
                        help="with --compare-compiled: at each session count, a load with "
                        "each response size (bytes, 90 00 included; default 2)")
    parser.add_argument("--programs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("sockets", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.programs:
        from scripted_rdp_client import READER

        asyncio.run(programs_main(args.sockets, READER, args.duration))
        return 0
    if os.geteuid() != 0:
        print("run as root: sessions and their sockets are made for their user", file=sys.stderr)
        return 2
    counts = sorted(set(args.sessions))
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        config = (f'[server]\nmax_connections = {max(counts) + 100}\n'
                  # every scripted client connects from 127.0.0.1
                  'max_connections_per_address = 0\nconnection_rate = 0\n'
                  # cProfile sees one process only: the server's work then stays in it
                  + ('privilege_separation = false\n' if args.profile is not None else '')
                  + f'[redirection]\nsocket_dir = "{base / "run"}"\n')
        if args.compare_compiled:
            return compare_compiled(base, config, counts, args.duration,
                                    sorted({2, *args.response_bytes}))
        server = ServerProcess(base / "server", config, profile=args.profile)
        try:
            rss_first = rss_kib(server.pid)
            steps, note = asyncio.run(orchestrate(server, counts, args.duration, args.budget))
            rss_last = rss_kib(server.pid)
        finally:
            server.stop()
    report(steps, rss_first, rss_last, note, args.duration)
    if args.profile is not None:
        print(f"\nwhere the server's time went (cProfile, slows it down), from {args.profile}:")
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
