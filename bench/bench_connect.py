"""Connection benchmark: accept-to-active time and memory per idle session.

Starts a real ``rdscard serve`` process on loopback and connects 1, then N
scripted clients (the project's sans-IO connector over asyncio + TLS) at
once. For each run it prints:

- wall time from connect to the active session with the logon screen
  received (client view), p50 and max;
- server CPU time per connection (user + system of the server process,
  read from /proc), which is the server's own share of that time;
- server resident memory per idle connected session (RSS growth / N).

Baseline in the same run: a bare asyncio TLS server with the same
certificate that only completes the handshake, so the ratio shows what the
RDP sequence and the logon screen add on top of TLS itself.

``--compare-privilege-separation`` (as root) runs two servers instead, one
with ``[server] privilege_separation = true`` (figures from the network
process) and one with ``false`` (one process), and connects the same
rounds of clients to each, alternately, ``--repeat`` times; it prints both
side by side with the ratio.

Usage: .venv/bin/python bench/bench_connect.py [--clients 50]
       [--compare-privilege-separation [--repeat 3]]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rdscard.protocol.connector import ConnectorSettings, ConnectorState, RdpConnector

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def rdp_client(
    port: int, hold: asyncio.Event
) -> tuple[float, asyncio.StreamWriter]:
    """Connect one scripted client; returns seconds to active + logon screen."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connector = RdpConnector(ConnectorSettings(width=1024, height=768))
    writer.write(connector.data_to_send())
    while connector.state is not ConnectorState.AWAIT_TLS:
        connector.receive(await reader.read(65536))
    await writer.start_tls(client_context())
    connector.tls_established()
    writer.write(connector.data_to_send())
    while connector.state is not ConnectorState.ACTIVE or connector.fastpath_frames == 0:
        data = await reader.read(65536)
        if not data:
            raise RuntimeError("server closed the connection")
        connector.receive(data)
        out = connector.data_to_send()
        if out:
            writer.write(out)
    elapsed = time.perf_counter() - start
    # a real client keeps reading the rest of the screen; so does this one
    drain = asyncio.create_task(_drain(reader))
    _DRAINS.add(drain)
    drain.add_done_callback(_DRAINS.discard)
    return elapsed, writer


_DRAINS: set[asyncio.Task[None]] = set()


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def tls_client(port: int, hold: asyncio.Event) -> tuple[float, asyncio.StreamWriter]:
    start = time.perf_counter()
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context())
    return time.perf_counter() - start, writer


async def run_clients(
    port: int, count: int, pid: int, tls_only: bool
) -> dict[str, float]:
    hold = asyncio.Event()
    cpu_before, rss_before = cpu_seconds(pid), rss_kib(pid)
    factory = tls_client if tls_only else rdp_client
    results = await asyncio.gather(*(factory(port, hold) for _ in range(count)))
    await asyncio.sleep(0.5)  # let the server settle before reading its memory
    cpu_after, rss_after = cpu_seconds(pid), rss_kib(pid)
    times = sorted(t for t, _ in results)
    for _, writer in results:
        writer.close()
    await asyncio.sleep(0.3)
    return {
        "p50_ms": statistics.median(times) * 1000,
        "max_ms": times[-1] * 1000,
        "cpu_ms": (cpu_after - cpu_before) * 1000 / count,
        "rss_kib": (rss_after - rss_before) / count,
    }


class ServerProcess:
    def __init__(self, state_dir: str, privilege_separation: bool = True) -> None:
        # Every client connects from 127.0.0.1: no per-address limits.
        config = Path(state_dir) / "bench.toml"
        config.write_text("[server]\nmax_connections_per_address = 0\nconnection_rate = 0\n"
                          f"privilege_separation = {str(privilege_separation).lower()}\n")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rdscard.cli.main", "serve", "--listen", "127.0.0.1:0",
             "--state-dir", state_dir, "--config", str(config)],
            stderr=subprocess.PIPE, text=True,
        )
        assert self.process.stderr is not None
        # The network process (privilege separation, as root) does the work: its pid.
        self.pid = self.process.pid
        for line in self.process.stderr:
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                if os.geteuid() != 0 or not privilege_separation:
                    break
            network = re.search(r"network process (\d+): running as", line)
            if network:
                self.pid = int(network.group(1))
                break
        # drain the log so the server never blocks on a full pipe
        self._drain = subprocess.Popen(["cat"], stdin=self.process.stderr,
                                       stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


async def tls_baseline_server(cert: Path, key: Path) -> tuple[asyncio.Server, int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


async def serve_baseline(cert: Path, key: Path) -> None:
    """Run the TLS-only baseline server until killed, printing its port."""
    _server, port = await tls_baseline_server(cert, key)
    print(port, flush=True)
    await asyncio.Event().wait()


def baseline_in_subprocess(cert: Path, key: Path, counts: list[int]) -> list[dict[str, float]]:
    """Run the TLS-only baseline server in a child process and measure it like rdscard."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--tls-baseline-server", str(cert), str(key)],
        stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    port = int(child.stdout.readline())
    try:
        return [asyncio.run(run_clients(port, n, child.pid, tls_only=True)) for n in counts]
    finally:
        child.terminate()
        child.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--compare-privilege-separation", action="store_true",
                        help="a server with privilege separation beside one without (root)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="alternating rounds per server with --compare-privilege-separation")
    parser.add_argument("--tls-baseline-server", nargs=2, metavar=("CERT", "KEY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tls_baseline_server:
        asyncio.run(serve_baseline(Path(args.tls_baseline_server[0]),
                                   Path(args.tls_baseline_server[1])))
        return
    if args.compare_privilege_separation:
        compare_privilege_separation(args.clients, args.repeat)
        return
    counts = [1, args.clients]
    with tempfile.TemporaryDirectory() as state:
        server = ServerProcess(state)
        try:
            asyncio.run(run_clients(server.port, 1, server.pid, False))  # warm-up
            rdp = [asyncio.run(run_clients(server.port, n, server.pid, False))
                   for n in counts]
        finally:
            server.stop()
        tls_dir = Path(state) / "tls"
        base = baseline_in_subprocess(
            tls_dir / "server-cert.pem", tls_dir / "server-key.pem", counts
        )
    print(f"{'clients':>8} {'what':<28} {'p50 ms':>8} {'max ms':>8} {'server CPU ms/conn':>19}"
          f" {'server KiB/session':>19}")
    for n, r, b in zip(counts, rdp, base, strict=True):
        print(f"{n:>8} {'rdscard: accept -> active':<28} {r['p50_ms']:>8.1f} {r['max_ms']:>8.1f}"
              f" {r['cpu_ms']:>19.2f} {r['rss_kib']:>19.0f}")
        print(f"{n:>8} {'baseline: TLS handshake only':<28} {b['p50_ms']:>8.1f}"
              f" {b['max_ms']:>8.1f} {b['cpu_ms']:>19.2f} {b['rss_kib']:>19.0f}")
        ratio = r["cpu_ms"] / b["cpu_ms"] if b["cpu_ms"] else float("inf")
        print(f"{n:>8} {'ratio CPU rdscard/TLS':<28} {ratio:>8.2f}")
    print("targets: server CPU per connection < 50 ms; memory per idle session < 2048 KiB")


def compare_privilege_separation(clients: int, repeat: int) -> None:
    """Rounds of ``clients`` at once against a server with and one without privilege separation."""
    if os.geteuid() != 0:
        raise SystemExit("run as root: without root there is no privilege separation")
    runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as on_dir, tempfile.TemporaryDirectory() as off_dir:
        servers = {"on": ServerProcess(on_dir, True), "off": ServerProcess(off_dir, False)}
        try:
            for server in servers.values():
                asyncio.run(run_clients(server.port, 1, server.pid, False))  # warm-up
            for round_ in range(repeat):
                order = list(servers.items())
                if round_ % 2:  # on, off, off, on, ...: neither always goes first
                    order.reverse()
                for name, server in order:
                    runs[name].append(asyncio.run(run_clients(server.port, clients, server.pid,
                                                              False)))
        finally:
            for server in servers.values():
                server.stop()
    print(f"accept -> active, {clients} clients at once, {repeat} alternating rounds per server "
          "(figures: median over the rounds); privilege separation on: the network process")
    print(f"{'figure':<30} {'on':>9} {'off':>9} {'on/off':>7}")
    for key, label in (("p50_ms", "p50 ms"), ("max_ms", "max ms"),
                       ("cpu_ms", "server CPU ms/conn"), ("rss_kib", "server KiB/session")):
        on = statistics.median(r[key] for r in runs["on"])
        off = statistics.median(r[key] for r in runs["off"])
        ratio = on / off if off else float("nan")
        print(f"{label:<30} {on:>9.1f} {off:>9.1f} {ratio:>7.2f}")
    print("per round (on | off): " + "; ".join(
        f"{a['p50_ms']:.0f}/{a['cpu_ms']:.1f} | {b['p50_ms']:.0f}/{b['cpu_ms']:.1f}"
        for a, b in zip(runs["on"], runs["off"], strict=True)) + "  (p50 ms / CPU ms per conn)")


if __name__ == "__main__":
    main()
