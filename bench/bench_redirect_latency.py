"""Redirected SCardTransmit latency: a program in the session vs. the same program on the client.

Run as root (it starts an isolated pcscd and runs a program in the session's
environment): ``python bench/bench_redirect_latency.py [-n 1000] [--repeat 2]``.

Client side: an isolated pcscd with two vpcd readers, the project's virtual
PIV card in reader 0 and a trivial card that answers 90 00 at once in
reader 1 (both served from threads of this process); xfreerdp ``/smartcard``
under Xvfb, its libpcsclite pointed at that pcscd. Server side: a real
``rdscard serve``. One small pyscard program (smartcard.scard, the
low-level API) transmits SELECT PIV AID to each reader in a loop; it runs
with ``PCSCLITE_CSOCK_NAME`` set to

- the client's pcscd socket (direct, the baseline), and
- the session's pcsc-lite socket (redirected: program -> rdscard server ->
  RDP/TLS -> xfreerdp -> the client's pcscd -> vpcd -> card, and back),

alternately, ``--repeat`` times each, and the samples of each path are pooled.

It prints p50/p99 of each path, the ratio and what the redirection adds at
p50; then, to split that addition, the CPU time each process spent per
transmit during the timed loops (from /proc/PID/task/*/schedstat, outside
the processes: no hook in the server). Whatever is left of the added time
after the CPU shares is wake-up and scheduling latency of the extra hops.
Last, the server's own CPU call by call (p50, p99): the program reads the
server's schedstat after every redirected transmit.

``--compare-privilege-separation`` runs two servers side by side, both as
root, one with ``[server] privilege_separation = true`` (the monitor and
the unprivileged network process; the figures are the network process's)
and one with ``false`` (one process), each with its own xfreerdp, and
times the redirected path through each, alternately, ``--repeat`` times
each (the direct path too, for scale); it prints latency p50/p99 per card,
the server's CPU per transmit call by call p50/p99 and the monitor's CPU
per transmit, side by side with the ratio.

``--compare-compiled`` does the same with two servers as deployed, one
running the compiled hot path (``scripts/build_compiled.py``) and one with
``RDSCARD_PURE_PYTHON=1`` (the same source, interpreted).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ServerProcess, cpu_ns, machine_busy_seconds, percentile, sched_ns

SELECT_PIV = [0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10,
              0x00, 0x00]
READERS = {"piv": "Virtual PCD 00 00", "9000": "Virtual PCD 00 01"}
CARD_LABELS = {"piv": "virtual PIV card", "9000": "trivial card (90 00)"}


def client(rounds: int, warmup: int, server_pid: int) -> int:
    """Child process: connect to both readers, warm up, wait for "go", time the loops.

    With ``server_pid``, it also reads the server's main thread CPU time
    (/proc/PID/schedstat, nanoseconds) once per transmit: consecutive
    readings split the server's CPU into one window per call, with no gaps.
    """
    from smartcard import scard

    def check(hresult: int, what: str) -> None:
        if hresult != scard.SCARD_S_SUCCESS:
            raise SystemExit(f"{what}: {scard.SCardGetErrorMessage(hresult)}")

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    check(hresult, "SCardEstablishContext")
    deadline = time.monotonic() + 20
    states = [(name, scard.SCARD_STATE_UNAWARE) for name in READERS.values()]
    while True:  # both cards present, as a program that waits for its card would
        hresult, states = scard.SCardGetStatusChange(context, 500, states)
        if hresult == scard.SCARD_S_SUCCESS and all(
            state & scard.SCARD_STATE_PRESENT for _, state, _ in states
        ):
            break
        if hresult not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT):
            check(hresult, "SCardGetStatusChange")
        if time.monotonic() > deadline:
            raise SystemExit("the cards did not show up as present")
        states = [(name, state & ~scard.SCARD_STATE_CHANGED) for name, state, _ in states]
    cards: dict[str, tuple[int, int]] = {}
    for key, name in READERS.items():
        hresult, card, protocol = scard.SCardConnect(
            context, name, scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        check(hresult, f"SCardConnect {name}")
        cards[key] = (card, protocol)
        for _ in range(warmup):
            hresult, response = scard.SCardTransmit(card, protocol, SELECT_PIV)
            check(hresult, "SCardTransmit")
        if response[-2:] != [0x90, 0x00]:
            raise SystemExit(f"{name}: SELECT answered {bytes(response).hex()}")
    print("ready", flush=True)
    sys.stdin.readline()
    results: dict[str, list[float]] = {}
    server_cpu: list[int] = []
    schedstat = os.open(f"/proc/{server_pid}/schedstat", os.O_RDONLY) if server_pid else None

    def server_ns() -> int:
        return int(os.pread(schedstat, 128, 0).split()[0]) if schedstat is not None else 0

    cpu_start = time.process_time()
    for key, (card, protocol) in cards.items():
        times = []
        mark = server_ns()
        for _ in range(rounds):
            start = time.perf_counter()
            hresult, response = scard.SCardTransmit(card, protocol, SELECT_PIV)
            times.append(time.perf_counter() - start)
            if hresult != scard.SCARD_S_SUCCESS:
                check(hresult, "SCardTransmit")
            now = server_ns()
            server_cpu.append(now - mark)
            mark = now
        results[key] = times
    cpu = time.process_time() - cpu_start
    print(json.dumps({"times": results, "cpu": cpu, "server_cpu": server_cpu}), flush=True)
    for card, _ in cards.values():
        scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    scard.SCardReleaseContext(context)
    return 0


def run_client(
    socket: Path, rounds: int, warmup: int, watched: dict[str, int], server_pid: int
) -> tuple[dict[str, list[float]], dict[str, float], list[int]]:
    """One timed run: the samples per card, CPU ns per transmit per process, and the
    server's CPU ns of each call (when ``server_pid`` is given)."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--client", "-n", str(rounds), "--warmup", str(warmup),
         "--server-pid", str(server_pid)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PCSCLITE_CSOCK_NAME": str(socket)},
    )
    assert child.stdin is not None and child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.wait(30)
        raise RuntimeError(f"the measuring program failed (status {child.returncode})")
    before = {name: cpu_ns(pid) for name, pid in watched.items()}
    server_wait = sched_ns(watched["server"])[1]
    machine, wall = machine_busy_seconds(), time.perf_counter()
    child.stdin.write("go\n")
    child.stdin.flush()
    result = json.loads(child.stdout.readline())
    after = {name: cpu_ns(pid) for name, pid in watched.items()}
    server_wait = sched_ns(watched["server"])[1] - server_wait
    machine, wall = machine_busy_seconds() - machine, time.perf_counter() - wall
    child.stdin.close()
    child.wait(30)
    calls = rounds * len(READERS)
    cpu = {name: (after[name] - before[name]) / calls for name in watched}
    cpu["program"] = result["cpu"] * 1e9 / calls
    cpu["server waited"] = server_wait / calls
    ours = (sum(after.values()) - sum(before.values())) / 1e9 + result["cpu"]
    cpu["other load"] = max(0.0, machine - ours) / wall * 1000  # cores, x1000 like the rest
    return result["times"], cpu, result["server_cpu"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=1000,
                        help="timed transmits per reader per run (default 1000)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2,
                        help="alternating runs of each path (default 2)")
    parser.add_argument("--compare-privilege-separation", action="store_true",
                        help="time the redirected path through a server with privilege "
                        "separation and one without, alternately")
    parser.add_argument("--compare-compiled", action="store_true",
                        help="time the redirected path through a server running the compiled "
                        "hot path and one in pure Python (RDSCARD_PURE_PYTHON=1), alternately")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return client(args.rounds, args.warmup, args.server_pid)
    if os.geteuid() != 0:
        print("run as root: the client's pcscd runs in its own mount namespace",
              file=sys.stderr)
        return 2
    if args.compare_privilege_separation:
        return compare_privilege_separation(args)
    if args.compare_compiled:
        return compare_compiled(args)

    from rdscard.card.piv import VirtualPivCard
    from rdscard.card.state import CardState
    from rdscard.card.vpcd import TrivialCard
    from rdscard.testbed.cards import CardInThread, wait_for_port
    from rdscard.testbed.pcscd import IsolatedPcscd
    from rdscard.testbed.ports import free_tcp_port
    from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for

    samples: dict[tuple[str, str], list[float]] = {}
    cpu_runs: dict[str, list[dict[str, float]]] = {"direct": [], "redirected": []}
    server_calls: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench-redirect-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        piv = VirtualPivCard(CardState.new(serial=0x4243, pin=b"123456", puk=b"12345678"))
        with IsolatedPcscd(base / "pcscd", free_tcp_port(2)) as pcscd:
            ports = pcscd.vpcd_ports()
            for port in ports:
                wait_for_port("127.0.0.1", port)
            with CardInThread(piv, ports[0]), CardInThread(TrivialCard(), ports[1]):
                server = ServerProcess(
                    base / "server", f'[redirection]\nsocket_dir = "{base / "run"}"\n')
                screen = VirtualScreen(1088, 832).start()
                rdp = None
                try:
                    rdp = XFreeRdp(screen, "127.0.0.1", server.port,
                                   extra_args=["/smartcard"], env=pcscd.env)
                    if not wait_for(lambda: bool(server.redirected_sockets()), timeout=30):
                        print(f"no redirection:\n{server.log}\n{rdp.output()}", file=sys.stderr)
                        return 1
                    session_socket = next(iter(server.redirected_sockets().values()))
                    assert pcscd.process is not None
                    watched = {"server": server.pid, "xfreerdp": rdp.process.pid,
                               "pcscd": pcscd.process.pid, "card": os.getpid()}
                    paths = {"direct": pcscd.socket_path, "redirected": session_socket}
                    for _ in range(args.repeat):
                        for path, socket in paths.items():
                            times, cpu, calls = run_client(
                                socket, args.rounds, args.warmup, watched,
                                server.pid if path == "redirected" else 0,
                            )
                            cpu_runs[path].append(cpu)
                            if path == "redirected":
                                server_calls.extend(calls)
                            for key, values in times.items():
                                samples.setdefault((key, path), []).extend(values)
                finally:
                    if rdp is not None:
                        rdp.close()
                    screen.close()
                    server.stop()

    total = args.rounds * args.repeat
    print(f"SCardTransmit of SELECT PIV AID (15 bytes), {total} transmits per reader and path "
          f"after {args.warmup} warm-up ({args.repeat} alternating runs); microseconds")
    print(f"{'card':<22} {'direct p50':>10} {'p99':>7} {'redirected p50':>15} {'p99':>7}"
          f" {'ratio p50':>9} {'added p50':>9} {'added p99':>9}")
    added_p50: dict[str, float] = {}
    added_mean: dict[str, float] = {}
    for key in READERS:
        d, r = samples[(key, "direct")], samples[(key, "redirected")]
        d50, d99 = statistics.median(d) * 1e6, percentile(d, 0.99) * 1e6
        r50, r99 = statistics.median(r) * 1e6, percentile(r, 0.99) * 1e6
        added_p50[key] = r50 - d50
        added_mean[key] = (statistics.mean(r) - statistics.mean(d)) * 1e6
        print(f"{CARD_LABELS[key]:<22} {d50:>10.0f} {d99:>7.0f} {r50:>15.0f} {r99:>7.0f}"
              f" {r50 / d50:>9.2f} {r50 - d50:>9.0f} {r99 - d99:>9.0f}")

    names = ["program", "server", "xfreerdp", "pcscd", "card"]
    mean_cpu = {path: {name: statistics.mean(run[name] for run in runs) / 1000 for name in names}
                for path, runs in cpu_runs.items()}
    print()
    print("CPU per transmit (us, mean of both cards), read from /proc outside each process")
    print(f"{'path':<12}" + "".join(f"{name:>10}" for name in names) + f"{'sum':>10}")
    for path, row in mean_cpu.items():
        print(f"{path:<12}" + "".join(f"{row[name]:>10.1f}" for name in names)
              + f"{sum(row.values()):>10.1f}")
    extra = {name: mean_cpu["redirected"][name] - mean_cpu["direct"][name] for name in names}
    added = statistics.mean(added_mean.values())
    rest = added - sum(extra.values())
    print()
    # CPU figures are means, so they split the mean addition, not the median one
    print(f"what the redirection adds, mean per transmit (both cards): {added:.0f} us "
          f"(p50: {statistics.mean(added_p50.values()):.0f} us) =")
    print(f"  server (rdscard serve) CPU                          {extra['server']:>7.1f} us")
    print(f"  xfreerdp CPU                                        {extra['xfreerdp']:>7.1f} us")
    print(f"  client pcscd CPU difference                         {extra['pcscd']:>7.1f} us")
    print(f"  program and card CPU difference                     "
          f"{extra['program'] + extra['card']:>7.1f} us")
    print(f"  rest: wake-ups, scheduling, kernel socket/TCP hops  {rest:>7.1f} us")
    if rest < 0:
        print("  (a negative rest: part of that CPU runs off the critical path, after a reply "
              "is sent, or on the other core at the same time)")
    waited = statistics.mean(run["server waited"] for run in cpu_runs["redirected"]) / 1000
    others = [statistics.mean(run["other load"] for run in runs) / 1e6
              for runs in cpu_runs.values()]
    print(f"the server waited {waited:.1f} us per redirected transmit for a free core; other "
          f"processes kept {others[0]:.2f} (direct) and {others[1]:.2f} (redirected) of the "
          "machine's cores busy (/proc/stat, 10 ms ticks)")
    per_call = [ns / 1000 for ns in server_calls]
    print(f"server CPU per redirected transmit, call by call (its main thread's schedstat read "
          f"by the program after each call): p50 {statistics.median(per_call):.1f} us, "
          f"p99 {percentile(per_call, 0.99):.1f} us, mean {statistics.mean(per_call):.1f} us")
    print("target: the server adds under 150 us at p50 (the server's own CPU per call, p50 "
          "just above; the whole addition also pays xfreerdp and one more RDP round trip)")
    return 0


@contextlib.contextmanager
def client_side(base: Path) -> Iterator[Any]:
    """The client's isolated pcscd with the virtual PIV card and the trivial card in threads."""
    from rdscard.card.piv import VirtualPivCard
    from rdscard.card.state import CardState
    from rdscard.card.vpcd import TrivialCard
    from rdscard.testbed.cards import CardInThread, wait_for_port
    from rdscard.testbed.pcscd import IsolatedPcscd
    from rdscard.testbed.ports import free_tcp_port

    piv = VirtualPivCard(CardState.new(serial=0x4243, pin=b"123456", puk=b"12345678"))
    with IsolatedPcscd(base / "pcscd", free_tcp_port(2)) as pcscd:
        ports = pcscd.vpcd_ports()
        for port in ports:
            wait_for_port("127.0.0.1", port)
        with CardInThread(piv, ports[0]), CardInThread(TrivialCard(), ports[1]):
            yield pcscd


@contextlib.contextmanager
def redirected_session(base: Path, name: str, config: str, pcscd: Any,
                       env: dict[str, str] | None = None,
                       ) -> Iterator[tuple[ServerProcess, Any, Path]]:
    """A server with ``config`` (and ``env``), xfreerdp /smartcard connected to it, its
    session's socket."""
    from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for

    server = ServerProcess(base / name, config
                           + f'[redirection]\nsocket_dir = "{base / (name + "-run")}"\n',
                           env=env)
    screen = VirtualScreen(1088, 832).start()
    rdp = None
    try:
        rdp = XFreeRdp(screen, "127.0.0.1", server.port, extra_args=["/smartcard"],
                       env=pcscd.env)
        if not wait_for(lambda: bool(server.redirected_sockets()), timeout=30):
            raise RuntimeError(f"no redirection:\n{server.log}\n{rdp.output()}")
        yield server, rdp, next(iter(server.redirected_sockets().values()))
    finally:
        if rdp is not None:
            rdp.close()
        screen.close()
        server.stop()


Alternated = tuple[dict[tuple[str, str], list[float]], dict[str, list[int]],
                   dict[str, list[dict[str, float]]], dict[str, tuple[int, int, str]]]


def hot_path(log: str) -> str:
    """What the server's log says of its redirection hot path (compiled or pure Python)."""
    found = re.search(r"redirection hot path: (.*)", log)
    return found.group(1) if found else "not logged"


def alternate(args: argparse.Namespace,
              variants: dict[str, tuple[str, dict[str, str]]]) -> Alternated:
    """Two servers side by side (each its config and environment, its own xfreerdp), the
    redirected path through each timed alternately (A, B, B, A, ...), the direct path after
    each round; the samples, the server CPU of each call, the CPU per process, the pids."""
    samples: dict[tuple[str, str], list[float]] = {}
    server_calls: dict[str, list[int]] = {name: [] for name in [*variants, "direct"]}
    cpu_runs: dict[str, list[dict[str, float]]] = {name: [] for name in [*variants, "direct"]}
    with tempfile.TemporaryDirectory(prefix="bench-redirect-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        with client_side(base) as pcscd, contextlib.ExitStack() as stack:
            sessions = {name: stack.enter_context(redirected_session(
                base, f"server-{name}", config, pcscd, env))
                for name, (config, env) in variants.items()}
            assert pcscd.process is not None
            for repeat in range(args.repeat):
                order = list(sessions.items())
                if repeat % 2:  # A, B, B, A, ...: neither always goes first
                    order.reverse()
                for name, (server, rdp, socket) in order:
                    watched = {"server": server.pid, "monitor": server.monitor_pid,
                               "xfreerdp": rdp.process.pid, "pcscd": pcscd.process.pid,
                               "card": os.getpid()}
                    times, cpu, calls = run_client(socket, args.rounds, args.warmup, watched,
                                                   server.pid)
                    cpu_runs[name].append(cpu)
                    server_calls[name].extend(calls)
                    for key, values in times.items():
                        samples.setdefault((key, name), []).extend(values)
                server, rdp, _ = order[0][1]
                times, cpu, _calls = run_client(
                    pcscd.socket_path, args.rounds, args.warmup,
                    {"server": server.pid, "xfreerdp": rdp.process.pid,
                     "pcscd": pcscd.process.pid, "card": os.getpid()}, 0)
                for key, values in times.items():
                    samples.setdefault((key, "direct"), []).extend(values)
            pids = {name: (server.pid, server.monitor_pid, hot_path(server.log))
                    for name, (server, _rdp, _socket) in sessions.items()}
    return samples, server_calls, cpu_runs, pids


def compare_privilege_separation(args: argparse.Namespace) -> int:
    """The redirected path through a server with privilege separation and one without."""
    variants = {"on": ("[server]\nprivilege_separation = true\n", {}),
                "off": ("[server]\nprivilege_separation = false\n", {})}
    samples, server_calls, cpu_runs, pids = alternate(args, variants)
    on_pid, on_monitor, _ = pids["on"]
    off_pid = pids["off"][0]

    total = args.rounds * args.repeat
    print(f"privilege separation on and off: SCardTransmit of SELECT PIV AID through the "
          f"session, {total} transmits per reader and server after {args.warmup} warm-up "
          f"({args.repeat} alternating runs); microseconds")
    print(f"both servers run as root; 'on' measures the network process ({on_pid}, its "
          f"monitor {on_monitor}), 'off' the one process ({off_pid})")
    print(f"{'figure':<46} {'direct':>8} {'on':>8} {'off':>8} {'on/off':>7}")

    def row(label: str, on: float, off: float, direct: float | None = None) -> None:
        shown = f"{direct:>8.1f}" if direct is not None else f"{'':>8}"
        ratio = on / off if off else float("nan")
        print(f"{label:<46} {shown} {on:>8.1f} {off:>8.1f} {ratio:>7.2f}")

    for key in READERS:
        for q, what in ((0.5, "p50"), (0.99, "p99")):
            values = {name: percentile(samples[(key, name)], q) * 1e6
                      for name in ("on", "off", "direct")}
            row(f"latency {what}, {CARD_LABELS[key]}", values["on"], values["off"],
                values["direct"])
    for q, what in ((0.5, "p50"), (0.99, "p99")):
        row(f"server CPU per transmit {what}, call by call",
            percentile(server_calls["on"], q) / 1000, percentile(server_calls["off"], q) / 1000)
    means = {name: statistics.mean(run["server"] for run in cpu_runs[name]) / 1000
             for name in variants}
    row("server CPU per transmit, mean (/proc)", means["on"], means["off"])
    monitor = statistics.mean(run["monitor"] for run in cpu_runs["on"]) / 1000
    print(f"{'monitor CPU per transmit, mean (on only)':<46} {'':>8} {monitor:>8.2f}")
    xfreerdp = {name: statistics.mean(run["xfreerdp"] for run in cpu_runs[name]) / 1000
                for name in variants}
    row("xfreerdp CPU per transmit, mean (/proc)", xfreerdp["on"], xfreerdp["off"])
    others = {name: statistics.mean(run["other load"] for run in cpu_runs[name]) / 1e6
              for name in variants}
    print(f"other processes kept {others['on']:.2f} (on) and {others['off']:.2f} (off) of the "
          "machine's cores busy during the timed loops (/proc/stat, 10 ms ticks)")
    print("target: the server adds under 150 us at p50 (its own CPU per call, p50 above)")
    return 0



def compare_compiled(args: argparse.Namespace) -> int:
    """The redirected path through a server running the compiled hot path and a pure one."""
    from rdscard.compiled import PURE_ENV

    variants = {"compiled": ("", {}), "pure": ("", {PURE_ENV: "1"})}
    samples, server_calls, cpu_runs, pids = alternate(args, variants)
    total = args.rounds * args.repeat
    print(f"compiled and pure Python: SCardTransmit of SELECT PIV AID through the session, "
          f"{total} transmits per reader and server after {args.warmup} warm-up "
          f"({args.repeat} alternating runs); microseconds")
    print("both servers as deployed (privilege separation when root), figures of the network "
          "process; their logs say:")
    for name, (pid, _monitor, said) in pids.items():
        print(f"  {name} ({pid}): redirection hot path: {said}")
    print(f"{'figure':<46} {'direct':>8} {'compiled':>9} {'pure':>8} {'c/p':>6}")

    def row(label: str, fast: float, pure: float, direct: float | None = None) -> None:
        shown = f"{direct:>8.1f}" if direct is not None else f"{'':>8}"
        ratio = fast / pure if pure else float("nan")
        print(f"{label:<46} {shown} {fast:>9.1f} {pure:>8.1f} {ratio:>6.2f}")

    for key in READERS:
        for q, what in ((0.5, "p50"), (0.99, "p99")):
            values = {name: percentile(samples[(key, name)], q) * 1e6
                      for name in ("compiled", "pure", "direct")}
            row(f"latency {what}, {CARD_LABELS[key]}", values["compiled"], values["pure"],
                values["direct"])
    for q, what in ((0.5, "p50"), (0.99, "p99")):
        row(f"server CPU per transmit {what}, call by call",
            percentile(server_calls["compiled"], q) / 1000,
            percentile(server_calls["pure"], q) / 1000)
    means = {name: statistics.mean(run["server"] for run in cpu_runs[name]) / 1000
             for name in variants}
    row("server CPU per transmit, mean (/proc)", means["compiled"], means["pure"])
    xfreerdp = {name: statistics.mean(run["xfreerdp"] for run in cpu_runs[name]) / 1000
                for name in variants}
    row("xfreerdp CPU per transmit, mean (/proc)", xfreerdp["compiled"], xfreerdp["pure"])
    others = {name: statistics.mean(run["other load"] for run in cpu_runs[name]) / 1e6
              for name in variants}
    print(f"other processes kept {others['compiled']:.2f} (compiled) and {others['pure']:.2f} "
          "(pure) of the machine's cores busy during the timed loops (/proc/stat, 10 ms ticks)")
    print("target: server CPU per redirected short transmit <= 50 us at p50 (compiled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
