"""Whole smart card operations in a session against the same operation on the client's reader.

Run as root (it starts an isolated pcscd, an MIT KDC and Xvfb):
``.venv/bin/python bench/bench_redirect_operations.py [--rounds 10] [--client xfreerdp3]``.

Client side: an isolated pcscd with vpcd, alice's provisioned RSA-2048
virtual PIV card in reader 0; xfreerdp ``/smartcard`` under Xvfb, its
libpcsclite pointed at that pcscd. Server side: a real ``rdscard serve``.
Each operation runs as the stock tool with ``PCSCLITE_CSOCK_NAME`` set to
the client's pcscd (direct, the baseline) and to the session's socket
(redirected), alternating, ``--rounds`` times each:

- ``pkcs11-tool --read-object --type cert`` (OpenSC's PKCS#11 module),
- ``pkcs11-tool --login --sign`` (SHA256-RSA-PKCS over 32 bytes),
- ``kinit`` with PKINIT against the MIT KDC (the project's PKINIT worker).

Two servers run side by side, each with its own xfreerdp session on the same
client reader: "before" with the local answers of contexts and disconnects
off (``[redirection] context_pool = 0``, ``quick_disconnect = false``), and
"after" with the defaults; the operation alternates between direct, before
and after, so the A/B pair shares the machine's load.

Printed: median wall time of each path, the ratios, and each server's CPU per
redirected operation (its network process, from /proc schedstat). Then the
pcsc-lite requests each operation makes, counted by a pass-through socket on
the direct path (which calls a program makes), and the MS-RDPESC IOCTLs each
server actually sent its client for one operation (what still crosses the
network; read from the session's control record).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import ServerProcess, cpu_ns, machine_busy_seconds
from pcsc_request_counter import RequestCounter
from rdscard.server.control_client import query

PIN = "24681357"
REALM = "EXAMPLE.TEST"
MODULE = "opensc-pkcs11.so"
TARGETS = {"read-object": 1.3, "sign": 1.5, "kinit": 1.5}
#: The two servers compared: the new local answers off, and the defaults.
VARIANTS = {"before": "context_pool = 0\nquick_disconnect = false\n", "after": ""}
#: The clients the benchmark can run, with their Debian packages.
CLIENTS = {"xfreerdp": ("xfreerdp", "freerdp2-x11"), "xfreerdp3": ("xfreerdp3", "freerdp3-x11")}


def tool(argv: list[str], socket: Path, stdin: str | None = None) -> None:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PCSCLITE_CSOCK_NAME": str(socket)})
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.returncode}\n{result.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--client", choices=sorted(CLIENTS), default="xfreerdp",
                        help="the RDP client redirecting the reader (default xfreerdp 2)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the client's pcscd runs in its own mount namespace", file=sys.stderr)
        return 2

    from rdscard.card.piv import VirtualPivCard
    from rdscard.card.state import CardState
    from rdscard.logon.pkinit import kdc_anchors, run_pkinit
    from rdscard.logon.settings import LogonConfig
    from rdscard.pki.ca import RealmPki
    from rdscard.pki.piv_client import PivClient
    from rdscard.pki.provision import Credentials, ProvisionOptions, provision
    from rdscard.pki.transport import InProcessTransport
    from rdscard.secret import Secret
    from rdscard.testbed.cards import CardInThread, wait_for_port
    from rdscard.testbed.kdc import MitKdc
    from rdscard.testbed.pcscd import IsolatedPcscd
    from rdscard.testbed.ports import free_tcp_port
    from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for

    with tempfile.TemporaryDirectory(prefix="bench-operations-") as work:
        root = Path(work)
        os.chmod(root, 0o755)
        pki = RealmPki.create(root / "pki", REALM, "example.test")
        card = VirtualPivCard(CardState.new(serial=0x7778, pin=PIN.encode(), puk=b"12345678"))
        provision(PivClient(InProcessTransport(card)), pki, "alice", Credentials(),
                  ProvisionOptions(key_type="rsa2048"))
        data = root / "data"
        data.write_bytes(bytes(range(32)))
        with IsolatedPcscd(root / "pcscd", free_tcp_port(2)) as daemon, \
                MitKdc(root / "kdc", REALM, pki) as kdc:
            kdc.add_user("alice")
            port = daemon.vpcd_ports()[0]
            wait_for_port("127.0.0.1", port)
            inserted = CardInThread(card, port)
            inserted.insert()
            servers = {name: ServerProcess(
                root / f"server-{name}",
                f'[redirection]\nsocket_dir = "{root / name}"\n{extra}')
                for name, extra in VARIANTS.items()}
            config = LogonConfig.from_table({"roots": [str(pki.layout.root_cert)],
                                             "kdc": {"krb5_config": str(kdc.krb5_conf)}})
            anchors = kdc_anchors(config, root / "anchors")
            screen = VirtualScreen(1088, 832).start()
            clients = []
            sessions: dict[str, tuple[int, Path]] = {}
            try:
                for name, server in servers.items():
                    # xfreerdp3 asks for a user name on the terminal unless it has one
                    # (the session stays at the logon screen either way)
                    names = ["/u:bench", "/p:unused"] if args.client == "xfreerdp3" else []
                    clients.append(XFreeRdp(screen, "127.0.0.1", server.port,
                                            extra_args=["/smartcard", *names], env=daemon.env,
                                            program=CLIENTS[args.client]))
                    if not wait_for(lambda s=server: bool(s.redirected_sockets()), timeout=30):
                        print(f"no redirection:\n{server.log}\n{clients[-1].output()}",
                              file=sys.stderr)
                        return 1
                    sessions[name] = next(iter(server.redirected_sockets().items()))
                time.sleep(1.0)  # the card shows in the sessions' reader tables

                def kinit(socket: Path) -> None:
                    run_pkinit(f"alice@{REALM}", Secret(PIN.encode()), config.kdc,
                               ccache_base=root / "ccaches", anchors=anchors,
                               pcsc_socket=str(socket))

                operations: dict[str, Callable[[Path], None]] = {
                    "read-object": lambda s: tool(
                        ["pkcs11-tool", "--module", MODULE, "--read-object", "--type", "cert",
                         "--id", "01", "--output-file", str(root / "cert.der")], s),
                    "sign": lambda s: tool(
                        ["pkcs11-tool", "--module", MODULE, "--login", "--pin", PIN, "--sign",
                         "--id", "01", "-m", "SHA256-RSA-PKCS", "--input-file", str(data),
                         "--output-file", str(root / "sig")], s),
                    "kinit": kinit,
                }
                paths = {"direct": daemon.socket_path,
                         **{name: socket for name, (_, socket) in sessions.items()}}
                walls: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
                server_cpu: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
                busy, started = machine_busy_seconds(), time.perf_counter()
                for name, operation in operations.items():
                    for path in paths.values():
                        operation(path)  # warm-up: page cache, the KDC's first request
                    for _ in range(args.rounds):
                        for path, socket in paths.items():
                            pid = servers[path].pid if path in servers else 0
                            cpu = cpu_ns(pid) if pid else 0
                            begin = time.perf_counter()
                            operation(socket)
                            walls[(name, path)].append((time.perf_counter() - begin) * 1000)
                            if pid:
                                server_cpu[(name, path)].append((cpu_ns(pid) - cpu) / 1e6)
                busy = (machine_busy_seconds() - busy) / (time.perf_counter() - started)
                counter = RequestCounter(root / "counter.sock", daemon.socket_path)
                counts = {}
                for name, operation in operations.items():
                    counter.reset()
                    operation(counter.path)
                    time.sleep(0.1)
                    counts[name] = counter.reset()
                counter.close()
                ioctls: dict[tuple[str, str], collections.Counter[str]] = {}
                for name, operation in operations.items():
                    for path, (session_id, socket) in sessions.items():
                        before = sent_ioctls(servers[path], session_id)
                        operation(socket)
                        time.sleep(0.2)  # calls sent behind their answers complete
                        ioctls[(name, path)] = sent_ioctls(servers[path], session_id) - before
            finally:
                for client in clients:
                    client.close()
                screen.close()
                for server in servers.values():
                    server.stop()
                inserted.remove()

    print(f"whole operations, {args.rounds} alternating rounds per path after one warm-up; "
          f"median ms (machine busy {busy:.2f} of 2 cores on average, this benchmark included)")
    print(f"{'':<14} {'':>8} {'before':>22} {'after':>22}")
    print(f"{'operation':<14} {'direct':>8}" + f" {'redirected':>10} {'ratio':>5} {'CPU':>5}" * 2
          + f" {'target':>7}")
    for name in operations:
        d = statistics.median(walls[(name, "direct")])
        line = f"{name:<14} {d:>8.1f}"
        for variant in VARIANTS:
            r = statistics.median(walls[(name, variant)])
            cpu = statistics.median(server_cpu[(name, variant)])
            line += f" {r:>10.1f} {r / d:>5.2f} {cpu:>5.1f}"
        print(line + f" {TARGETS[name]:>7.1f}")
    print("(CPU: the server's network process per redirected operation, ms)")
    print("\npcsc-lite requests per operation (the program's calls, counted on the direct path)")
    commands = sorted({c for n in counts.values() for c in n})
    print(f"{'request':<38}" + "".join(f"{n:>13}" for n in operations))
    for command in commands:
        print(f"{command:<38}" + "".join(f"{counts[n][command]:>13}" for n in operations))
    print(f"{'total':<38}" + "".join(f"{sum(counts[n].values()):>13}" for n in operations))
    print("\nMS-RDPESC IOCTLs sent to the client per operation (before / after)")
    names = sorted({c for n in ioctls.values() for c in n})
    print(f"{'IOCTL':<38}" + "".join(f"{n:>13}" for n in operations))
    for ioctl in names:
        print(f"{ioctl:<38}" + "".join(
            f"{ioctls[(n, 'before')][ioctl]:>6} /{ioctls[(n, 'after')][ioctl]:>5}"
            for n in operations))
    print(f"{'total':<38}" + "".join(
        f"{sum(ioctls[(n, 'before')].values()):>6} /{sum(ioctls[(n, 'after')].values()):>5}"
        for n in operations))
    return 0


def sent_ioctls(server: ServerProcess, session_id: int) -> collections.Counter[str]:
    """The IOCTLs the server has sent the session's client so far, by name."""
    reply = query(server.state_dir, {"command": "session", "session": session_id})
    return collections.Counter(reply["session"]["smart_card_calls"])


if __name__ == "__main__":
    sys.exit(main())
