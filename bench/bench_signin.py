"""Sign-in benchmark: TCP accept to the signed-in screen, split by phase.

Run as root (it starts an isolated pcscd, an MIT KDC and Xvfb):
``.venv/bin/python bench/bench_signin.py [--rounds 5]``.

For each account mode (local, kerberos) a real ``rdscard serve`` signs in
the stock client (``xfreerdp /smartcard /smartcard-logon /p:PIN``) with the
project's virtual card in the client's reader, ``--rounds`` times. Printed:
the server's own phase timings (from its log line ``sign-in phases``), the
wall time from starting the client to the signed-in log line, and the
server's CPU time per sign-in (user + system of the server's processes, from
/proc: the monitor with the helpers it ran, such as the kinit worker, and the
network process; the server's own share, without the client, the card or
the KDC).
Baseline in the same run: the same PKINIT done by ``kinit`` directly on the
client's card (the project's PKINIT worker against the client's pcscd).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.rdp.conftest import ServerProcess

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.ntauth import NtAuthStore
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

PIN = "24681357"
REALM = "EXAMPLE.TEST"
PHASES = re.compile(r"sign-in phases \(ms\): (.*)")
ACTIVE = re.compile(r"session active after (\d+) ms")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of ``pid`` (with ``children``: and of its children it waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / CLK_TCK


NETWORK_PROCESS = re.compile(r"network process (\d+): running as")


def server_cpu_seconds(srv: ServerProcess) -> tuple[float, float]:
    """The server's CPU: (the monitor with its finished helpers, such as the kinit worker;
    the network process, where the sessions run, 0 without privilege separation)."""
    found = NETWORK_PROCESS.search(srv.log)
    network = cpu_seconds(int(found.group(1))) if found else 0.0
    return cpu_seconds(srv.process.pid, children=True), network


def server(root: Path, pki: RealmPki, kdc: MitKdc, mode: str) -> ServerProcess:
    state = root / f"state-{mode}"
    NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = root / f"{mode}.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        # The sign-in alone: the desktop it opens is bench_desktop.py's.
        '[sessions]\nenabled = false\n'
        f'[logon]\nmode = "{mode}"\nroots = ["{pki.layout.root_cert}"]\n'
        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
        '[logon.accounts]\n"alice@example.test" = "root"\n'
        f'[logon.kdc]\nkrb5_config = "{kdc.krb5_conf}"\n'
    )
    # As deployed: without -v (its debug lines cost the server about a tenth of its CPU).
    return ServerProcess(state, ("--config", str(config)), verbose=False)


def sign_in_rounds(
    srv: ServerProcess, daemon: IsolatedPcscd, rounds: int
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        before = srv.log.count("sign-in phases")
        cpu = server_cpu_seconds(srv)
        started = time.perf_counter()
        with VirtualScreen(1088, 832) as screen:
            client = XFreeRdp(screen, "127.0.0.1", srv.port, env=daemon.env,
                              extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"])
            try:
                if not wait_for(lambda n=before: srv.log.count("sign-in phases") > n, 60):
                    raise RuntimeError("no sign-in:\n" + srv.log[-3000:])
                wall = time.perf_counter() - started
                after = server_cpu_seconds(srv)
            finally:
                client.close()
        connection = ACTIVE.findall(srv.log)[-1]
        results.setdefault("connection (accept -> active)", []).append(float(connection))
        line = PHASES.findall(srv.log)[-1]
        for item in line.split(", "):
            name, value = item.split("=")
            results.setdefault(name, []).append(float(value))
        results.setdefault("wall (client start -> signed in)", []).append(wall * 1000)
        monitor, network = after[0] - cpu[0], after[1] - cpu[1]
        results.setdefault("server CPU", []).append((monitor + network) * 1000)
        results.setdefault("  network process", []).append(network * 1000)
        results.setdefault("  monitor and its helpers", []).append(monitor * 1000)
        time.sleep(0.5)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        print("preparing: test PKI, alice's RSA-2048 card, pcscd + vpcd, MIT KDC", flush=True)
        pki = RealmPki.create(root / "pki", REALM, "example.test")
        state = CardState.new(serial=0x7777, pin=PIN.encode(), puk=b"12345678")
        card = VirtualPivCard(state)
        provision(PivClient(InProcessTransport(card)), pki, "alice",
                  Credentials(), ProvisionOptions(key_type="rsa2048"))
        with IsolatedPcscd(root / "pcscd", free_tcp_port(2)) as daemon, \
                MitKdc(root / "kdc", REALM, pki) as kdc:
            kdc.add_user("alice")
            port = daemon.vpcd_ports()[0]
            wait_for_port("127.0.0.1", port)
            inserted = CardInThread(card, port)
            inserted.insert()
            time.sleep(1.0)
            table: dict[str, dict[str, list[float]]] = {}
            for mode in ("local", "kerberos"):
                srv = server(root, pki, kdc, mode)
                try:
                    table[mode] = sign_in_rounds(srv, daemon, args.rounds)
                finally:
                    srv.stop()
            config = LogonConfig.from_table({"roots": [str(pki.layout.root_cert)],
                                             "kdc": {"krb5_config": str(kdc.krb5_conf)}})
            anchors = kdc_anchors(config, root / "state-kerberos")
            direct = []
            direct_cpu = []
            for _ in range(args.rounds):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                run_pkinit(f"alice@{REALM}", Secret(PIN.encode()), config.kdc,
                           ccache_base=root / "direct", anchors=anchors,
                           pcsc_socket=daemon.env["PCSCLITE_CSOCK_NAME"])
                direct.append((time.perf_counter() - started) * 1000)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                direct_cpu.append((after.ru_utime + after.ru_stime
                                   - before.ru_utime - before.ru_stime) * 1000)
            inserted.remove()
    print(f"\nsign-in, {args.rounds} rounds per mode, median ms "
          "(server phases from its log; CPU: mean)")
    names = list(dict.fromkeys(n for mode in table.values() for n in mode))
    print(f"{'phase':<36} {'local':>10} {'kerberos':>10}")
    for name in names:
        # CPU is read in 10 ms clock ticks: its mean over the rounds is finer than a median.
        summary = statistics.mean if "CPU" in name or name.startswith("  ") else statistics.median
        cells = [f"{summary(table[m][name]):10.1f}" if name in table[m] else
                 f"{'-':>10}" for m in ("local", "kerberos")]
        print(f"{name:<36} {' '.join(cells)}")
    kdc_direct = statistics.median(direct)
    redirected = statistics.median(table["kerberos"]["PKINIT"])
    print(f"{'baseline: kinit directly on the card':<36} {'':>10} {kdc_direct:10.1f}")
    print(f"{'ratio PKINIT redirected / direct':<36} {'':>10} {redirected / kdc_direct:10.2f}")
    print(f"{'baseline: CPU of that kinit':<36} {'':>10} {statistics.median(direct_cpu):10.1f}")
    print("target (issue 14): the server's CPU per Kerberos-mode sign-in at most 60 ms")


if __name__ == "__main__":
    main()
