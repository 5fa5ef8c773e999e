"""Under attack: a legitimate client's accept-to-active time and the server's memory, per attack.

Run as root (privilege separation, as deployed): ``python bench/bench_attack.py [-n 40]``.

One real ``rdscard serve`` (monitor + unprivileged network process) with
the default limits (``[server] max_connections = 1000``,
``max_connections_per_address = 20``, ``connection_rate = 30`` per 10 s,
``connect_timeout = 30``, ``logon_timeout = 120``, ``output_pause`` 1 MiB,
``output_limit`` 16 MiB). Each scenario runs one attack from its own
loopback addresses (127.0.0.2 and up: the whole of 127/8 reaches the server
on 127.0.0.1, and each address has limits of its own, as on a network) in a
helper process of its own, and once the attack is in place measures ``-n``
legitimate connections one after another, each from an address of its own
(127.1.x.y: ``n`` users connecting once each, so that the legitimate side's
own ``connection_rate`` is not what is measured): the scripted client (the
project's sans-IO connector over asyncio and TLS, 1024x768), from the
TCP connect to the active session with the first logon-screen update.

Attacks:

- ``idle``: 1,000 TCP connections that send nothing, from one address;
- the same spread over many addresses, 20 each (the per-address limit lets
  them all in): 900 from 45 addresses, under the server-wide
  ``max_connections``, and 1,000 from 50, which fill it;
- ``parked``: sessions parked at the logon screen, 5 addresses x 22
  attempts (the per-address limit lets 20 each in);
- ``flood``: 5 clients (one per address) that flood rdpdr Client Device
  List Announces (128 devices each, every device answered) and never read,
  measured twice: while the server works through the flood
  (``flood-during``), and once every flooder has stalled (paused by the
  server) and the server is idle again;
- ``rate``: new connections as fast as possible from one address (32 in
  flight, each sends its X.224 Connection Request, reads the answer and
  closes), for the whole measurement.

A baseline without attack is measured first and again last. Printed per
scenario: the legitimate client's p50/p95 and their ratios to the first
baseline, its failures, the network process's and the monitor's RSS, the
server's CPU during the measurement per legitimate connection, the
attacker's own CPU (the machine has 2 cores: the attacker, the measuring
client and the server share them), and what the server did with the
attacker's connections: its view (log lines: refusals, with the suppressed
counts the rate-limited lines carry, pauses, drops, timeouts) and the
attacker's (refused, closed by the server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ServerProcess, cpu_ns, percentile, rss_kib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.rdp.raw_client import announce_many, rdpdr_ready

from rdscard.protocol.connector import ConnectorSettings, ConnectorState, RdpConnector

MIB = 1024 * 1024
#: Seconds a legitimate connection may take before it counts as failed.
CONNECT_LIMIT = 10.0


# --- client pieces shared by the measuring client and the attackers --------------------


def tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def bound_socket(port: int, source: str, rcvbuf: int | None = None) -> socket.socket:
    """A TCP socket from ``source`` connected to the server on 127.0.0.1 (blocking connect)."""
    sock = socket.socket()
    if rcvbuf is not None:  # before connect, so that the window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


class RefusedError(Exception):
    """The server answered the Connection Request with an RDP_NEG_FAILURE, or closed."""


Streams = tuple[RdpConnector, asyncio.StreamReader, asyncio.StreamWriter]


async def connect_active(port: int, source: str, *, channels: tuple[str, ...] = (),
                         rcvbuf: int | None = None, width: int = 1024,
                         height: int = 768) -> Streams:
    """Connect from ``source`` up to the active session and its first screen update."""
    sock = await asyncio.to_thread(bound_socket, port, source, rcvbuf)
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    client = RdpConnector(ConnectorSettings(width=width, height=height, channels=channels))
    try:
        writer.write(client.data_to_send())
        while client.state is ConnectorState.NEGOTIATING:
            data = await reader.read(65536)
            if not data:
                raise RefusedError("closed during negotiation")
            client.receive(data)
        if client.state is not ConnectorState.AWAIT_TLS:
            raise RefusedError(f"refused (RDP_NEG_FAILURE code {client.negotiation_failure})")
        await writer.start_tls(tls_context())
        client.tls_established()
        writer.write(client.data_to_send())
        while client.state is not ConnectorState.ACTIVE or not client.fastpath_frames:
            data = await reader.read(65536)
            if not data:
                raise RefusedError("closed before the session was active")
            client.receive(data)
            out = client.data_to_send()
            if out:
                writer.write(out)
    except BaseException:
        writer.transport.abort()
        raise
    return client, reader, writer


async def drain(reader: asyncio.StreamReader) -> None:
    """Read and discard until the server closes (a client that keeps its screen current)."""
    try:
        while await reader.read(1 << 18):
            pass
    except (ConnectionError, OSError):
        pass


# --- attackers (each runs in a process of its own) ------------------------------------


def report(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


async def wait_for_stop() -> None:
    """Until the benchmark writes a line (or closes) on standard input."""
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed (or reset) this connection; nothing is consumed."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b""


def attack_idle(port: int, addresses: list[str], count: int) -> None:
    """``count`` TCP connections spread over ``addresses``, held open, sending nothing."""
    held: list[socket.socket] = []
    failed = 0
    for index in range(count):
        try:
            held.append(bound_socket(port, addresses[index % len(addresses)]))
        except OSError:
            failed += 1
    report({"opened": len(held), "connect failed": failed})
    sys.stdin.readline()
    closed = sum(closed_by_server(sock) for sock in held)
    for sock in held:
        sock.close()
    report({"attempts": count, "closed by the server": closed + failed,
            "still open": len(held) - closed})


async def attack_parked(port: int, addresses: list[str], per_address: int) -> None:
    """Sessions brought to the logon screen and left there (reading what the server sends)."""
    counts = {"attempts": 0, "refused": 0, "failed": 0}
    parked: list[tuple[asyncio.StreamWriter, asyncio.Task[None]]] = []
    gate = asyncio.Semaphore(8)

    async def one(source: str) -> None:
        async with gate:
            counts["attempts"] += 1
            try:
                _client, reader, writer = await asyncio.wait_for(
                    connect_active(port, source), 30)
            except RefusedError:
                counts["refused"] += 1
                return
            except (TimeoutError, ConnectionError, OSError):
                counts["failed"] += 1
                return
            parked.append((writer, asyncio.create_task(drain(reader))))

    await asyncio.gather(*(one(a) for a in addresses for _ in range(per_address)))
    report({**counts, "parked": len(parked)})
    await wait_for_stop()
    ended = sum(task.done() for _, task in parked)
    for writer, task in parked:
        writer.transport.abort()
        task.cancel()
    report({**counts, "parked": len(parked), "closed by the server": ended})


async def attack_flood(port: int, addresses: list[str], report_early: bool) -> None:
    """One client per address: rdpdr device announces as fast as it can, never reading.

    ``report_early``: the first report as soon as every flooder is connected
    and starts flooding (the benchmark measures while the server works
    through the flood), else once every flooder has stalled.
    """
    connected = 0
    go = asyncio.Event()

    async def flooder(source: str) -> tuple[int, asyncio.StreamWriter]:
        nonlocal connected
        client, reader, writer = await connect_active(port, source, channels=("rdpdr",),
                                                      rcvbuf=16384)
        await rdpdr_ready(client, reader, writer)
        client.send_channel_data("rdpdr", announce_many())
        frames = client.data_to_send() * 16
        connected += 1
        if connected == len(addresses):
            go.set()
        await go.wait()
        sent = 0
        while sent < 256 * MIB:
            writer.write(frames)
            sent += len(frames)
            try:
                await asyncio.wait_for(writer.drain(), 3)
            except TimeoutError:
                break  # the server no longer reads this client
            except (ConnectionError, OSError):
                break
        return sent, writer

    flooding = asyncio.gather(*(flooder(a) for a in addresses))
    if report_early:
        await go.wait()
        report({"flooders": len(addresses), "flooding": True})
    results = await flooding
    report({"flooders": len(results), "MiB sent until stalled":
            round(sum(sent for sent, _ in results) / MIB, 1)})
    await wait_for_stop()
    closed = sum(writer.transport.is_closing() for _, writer in results)
    for _, writer in results:
        writer.transport.abort()
    report({"flooders": len(results), "closed by the server": closed})


async def attack_rate(port: int, address: str, in_flight: int) -> None:
    """New connections as fast as possible: Connection Request, read the answer, close."""
    counts = {"attempts": 0, "admitted": 0, "refused": 0, "closed unanswered": 0}
    stop = asyncio.Event()

    async def one() -> None:
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((address, 0))
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock)
        except OSError:
            sock.close()
            counts["closed unanswered"] += 1
            return
        client = RdpConnector(ConnectorSettings())
        writer.write(client.data_to_send())
        try:
            while client.state is ConnectorState.NEGOTIATING:
                data = await asyncio.wait_for(reader.read(65536), 5)
                if not data:
                    break
                client.receive(data)
        except (TimeoutError, ConnectionError, OSError):
            pass
        writer.transport.abort()
        if client.state is ConnectorState.AWAIT_TLS:
            counts["admitted"] += 1
        elif client.negotiation_failure is not None:
            counts["refused"] += 1
        else:
            counts["closed unanswered"] += 1

    async def loop() -> None:
        while not stop.is_set():
            counts["attempts"] += 1
            await one()

    start = time.perf_counter()
    tasks = [asyncio.create_task(loop()) for _ in range(in_flight)]
    await asyncio.sleep(1.0)  # the address's allowance is spent before the measurement
    report(dict(counts))
    await wait_for_stop()
    stop.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    report({**counts, "per second": round(counts["attempts"] / elapsed)})


def run_attacker(kind: str, port: int, addresses: list[str], count: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if kind == "idle":
        attack_idle(port, addresses, count)
    elif kind == "parked":
        asyncio.run(attack_parked(port, addresses, count))
    elif kind in ("flood", "flood-during"):
        asyncio.run(attack_flood(port, addresses, kind == "flood-during"))
    elif kind == "rate":
        asyncio.run(attack_rate(port, addresses[0], count))
    else:
        raise SystemExit(f"unknown attack {kind}")


# --- the benchmark --------------------------------------------------------------------


@dataclass
class Scenario:
    label: str
    kind: str | None = None
    addresses: list[str] = field(default_factory=list)
    count: int = 0


def scenarios() -> list[Scenario]:
    return [
        Scenario("no attack"),
        Scenario("(a) 1000 idle TCP, 1 address", "idle", ["127.0.0.2"], 1000),
        Scenario("(a') 900 idle TCP, 45 addr x 20", "idle",
                 [f"127.0.2.{i}" for i in range(1, 46)], 900),
        Scenario("(a'') 1000 idle TCP, 50 addr x 20", "idle",
                 [f"127.0.3.{i}" for i in range(1, 51)], 1000),
        Scenario("(b) parked at logon, 5 x 22", "parked",
                 [f"127.0.4.{i}" for i in range(1, 6)], 22),
        Scenario("(c) rdpdr flood, 5 clients: flooding", "flood-during",
                 [f"127.0.5.{i}" for i in range(1, 6)], 5),
        Scenario("(c') the same, once all stalled", "flood",
                 [f"127.0.7.{i}" for i in range(1, 6)], 5),
        Scenario("(d) connection-rate flood, 1 addr", "rate", ["127.0.6.1"], 32),
        Scenario("no attack (again)"),
    ]


def legitimate_addresses() -> Iterator[str]:
    for index in range(1 << 16):
        yield f"127.1.{index // 250}.{index % 250 + 1}"


async def measure(port: int, count: int,
                  addresses: Iterator[str]) -> tuple[list[float], Counter[str]]:
    """``count`` legitimate connections one after another: seconds to active, failures."""
    times: list[float] = []
    failures: Counter[str] = Counter()
    for _ in range(count):
        source = next(addresses)
        start = time.perf_counter()
        try:
            _client, _reader, writer = await asyncio.wait_for(
                connect_active(port, source), CONNECT_LIMIT)
        except RefusedError as exc:
            failures[str(exc)] += 1
            continue
        except (TimeoutError, ConnectionError, OSError) as exc:
            failures[type(exc).__name__] += 1
            continue
        times.append(time.perf_counter() - start)
        writer.transport.abort()
    return times, failures


SUPPRESSED = re.compile(r"\((\d+) similar messages suppressed\)")
SESSION_FROM = re.compile(r"\[session (\d+)\] connection from ([\d.]+):\d+")


def server_view(log: str, addresses: list[str]) -> dict[str, int]:
    """What the server's log says it did with the connections from ``addresses``."""
    wanted = set(addresses)
    sessions: set[str] = set()
    view = {"admitted": 0, "refusal lines": 0, "refusals suppressed": 0, "paused": 0,
            "dropped (output_limit)": 0, "connect timeout": 0, "logon timeout": 0,
            "protocol errors": 0}
    for line in log.splitlines():
        found = SESSION_FROM.search(line)
        if found and found.group(2) in wanted:
            sessions.add(found.group(1))
            view["admitted"] += 1
            continue
        refused = re.search(r"refused a connection from ([\d.]+):", line)
        if refused and refused.group(1) in wanted:
            view["refusal lines"] += 1
            more = SUPPRESSED.search(line)
            view["refusals suppressed"] += int(more.group(1)) if more else 0
            continue
        session = re.search(r"\[session (\d+)\]", line)
        if not session or session.group(1) not in sessions:
            continue
        more = SUPPRESSED.search(line)
        extra = int(more.group(1)) if more else 0
        if "reading paused" in line:
            view["paused"] += 1 + extra
        elif "dropped the connection" in line:
            view["dropped (output_limit)"] += 1 + extra
        elif "did not finish connecting" in line:
            view["connect timeout"] += 1
        elif "no sign-in within" in line:
            view["logon timeout"] += 1
        elif "protocol error" in line:
            view["protocol errors"] += 1 + extra
    return view


#: Attacks that go on while the legitimate client is measured (the others are in place first).
ONGOING = frozenset({"rate", "flood-during"})


def quiet(pid: int, limit: float = 20.0) -> None:
    """Wait until ``pid`` uses under 5% of a core over 0.5 s (at most ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_ns(pid)
        time.sleep(0.5)
        if cpu_ns(pid) - before < 25_000_000:
            return


@dataclass
class Result:
    scenario: Scenario
    times: list[float]
    failures: Counter[str]
    rss: int
    rss_after: int
    monitor_rss: int
    server_cpu_ms: float
    setup_cpu_s: float
    attacker_cores: float
    attacker: list[dict[str, Any]]
    server: dict[str, int]


def run_scenario(server: ServerProcess, scenario: Scenario, count: int,
                 addresses: Iterator[str]) -> Result:
    log_start = len(server.log)
    setup_cpu = cpu_ns(server.pid)
    attacker: subprocess.Popen[str] | None = None
    reports: list[dict[str, Any]] = []
    if scenario.kind is not None:
        attacker = subprocess.Popen(
            [sys.executable, __file__, "--attacker", scenario.kind, "--port", str(server.port),
             "--addresses", ",".join(scenario.addresses), "--count", str(scenario.count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert attacker.stdin is not None and attacker.stdout is not None
        line = attacker.stdout.readline()
        if not line:
            raise RuntimeError(f"attacker {scenario.kind} failed")
        reports.append(json.loads(line))
        if scenario.kind not in ONGOING:  # in place: measure once the server is done with it
            time.sleep(0.5)
            quiet(server.pid)
    setup_cpu = cpu_ns(server.pid) - setup_cpu
    rss = rss_kib(server.pid)
    monitor_rss = rss_kib(server.monitor_pid)
    cpu_before = cpu_ns(server.pid)
    attacker_before = cpu_ns(attacker.pid) if attacker else 0
    wall = time.perf_counter()
    times, failures = asyncio.run(measure(server.port, count, addresses))
    wall = time.perf_counter() - wall
    server_cpu = cpu_ns(server.pid) - cpu_before
    attacker_cores = (cpu_ns(attacker.pid) - attacker_before) / 1e9 / wall if attacker else 0.0
    rss = max(rss, rss_kib(server.pid))
    monitor_rss = max(monitor_rss, rss_kib(server.monitor_pid))
    if attacker is not None:
        assert attacker.stdin is not None and attacker.stdout is not None
        attacker.stdin.write("stop\n")
        attacker.stdin.flush()
        reports.extend(json.loads(line) for line in attacker.stdout)
        attacker.wait(60)
    time.sleep(1.0)
    quiet(server.pid)
    return Result(scenario, times, failures, rss, rss_kib(server.pid), monitor_rss,
                  server_cpu / 1e6 / count, setup_cpu / 1e9, attacker_cores, reports,
                  server_view(server.log[log_start:], scenario.addresses))


def print_results(results: list[Result], count: int) -> None:
    base = results[0]
    base50 = statistics.median(base.times) * 1000
    base95 = percentile(base.times, 0.95) * 1000
    print(f"legitimate client: {count} connections one after another, each from its own "
          "address; accept -> active + first logon-screen update, ms")
    print(f"{'scenario':<36} {'ok':>6} {'p50':>7} {'p95':>7} {'max':>7} {'x p50':>6} {'x p95':>6}"
          f" {'srv CPU':>8} {'net RSS':>8} {'after':>7} {'mon RSS':>8} {'attacker':>8}"
          f" {'setup':>6}")
    print(f"{'':<36} {'':>6} {'ms':>7} {'ms':>7} {'ms':>7} {'':>6} {'':>6}"
          f" {'ms/conn':>8} {'MiB':>8} {'MiB':>7} {'MiB':>8} {'cores':>8} {'CPU s':>6}")
    for r in results:
        ok = f"{len(r.times)}/{count}"
        if r.times:
            p50 = statistics.median(r.times) * 1000
            p95 = percentile(r.times, 0.95) * 1000
            top = max(r.times) * 1000
            timing = (f"{p50:>7.1f} {p95:>7.1f} {top:>7.1f} {p50 / base50:>6.2f}"
                      f" {p95 / base95:>6.2f}")
        else:
            timing = f"{'-':>7} {'-':>7} {'-':>7} {'-':>6} {'-':>6}"
        print(f"{r.scenario.label:<36} {ok:>6} {timing} {r.server_cpu_ms:>8.1f}"
              f" {r.rss / 1024:>8.1f} {r.rss_after / 1024:>7.1f} {r.monitor_rss / 1024:>8.1f}"
              f" {r.attacker_cores:>8.2f} {r.setup_cpu_s:>6.2f}")
    print()
    print("what happened to the attackers' connections")
    for r in results:
        if r.scenario.kind is None:
            continue
        view = ", ".join(f"{k} {v}" for k, v in r.server.items() if v)
        print(f"{r.scenario.label}")
        if r.failures:
            print("  legitimate client failed: "
                  + ", ".join(f"{why} x{n}" for why, n in r.failures.items()))
        print(f"  server log: {view or 'nothing'}")
        for index, rep in enumerate(r.attacker):
            when = "when in place" if index == 0 else "at the end"
            print(f"  attacker {when}: " + ", ".join(f"{k} {v}" for k, v in rep.items()))
    print()
    print("srv CPU: the network process's CPU during the measurement per legitimate "
          "connection (the attack's own load in that window included); RSS: network process "
          "during the attack and after it ended, monitor during; attacker: cores its "
          "process used meanwhile. 2 cores for the server, the attacker and the measuring "
          "client together. setup: the network process's CPU from the attack's start to the "
          "measurement (an attack put in place first: until the server was idle again). "
          "Refusal lines are rate-limited: the suppressed count of a key is "
          "only told by its next line, so the log's tally can be short of the attacker's.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--connections", type=int, default=40,
                        help="legitimate connections per scenario (default 40)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="attack kinds to run (idle parked flood flood-during rate); "
                        "all by default")
    parser.add_argument("--attacker", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--addresses", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        run_attacker(args.attacker, args.port, args.addresses.split(","), args.count)
        return 0
    if os.geteuid() != 0:
        print("run as root: the server then runs as deployed, with privilege separation",
              file=sys.stderr)
        return 2
    chosen = [s for s in scenarios()
              if s.kind is None or args.only is None or s.kind in args.only]
    with tempfile.TemporaryDirectory(prefix="bench-attack-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        server = ServerProcess(base / "server", "[server]\n")
        try:
            addresses = legitimate_addresses()
            asyncio.run(measure(server.port, 5, addresses))  # warm-up
            results = []
            for scenario in chosen:
                print(f"... {scenario.label}", file=sys.stderr, flush=True)
                results.append(run_scenario(server, scenario, args.connections, addresses))
        finally:
            server.stop()
    print_results(results, args.connections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
