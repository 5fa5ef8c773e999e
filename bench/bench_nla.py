"""NLA benchmark: the CredSSP phase's server CPU, and the NLA sign-in against the TLS one.

Run as root (it starts an MIT KDC, an isolated pcscd and Xvfb):
``.venv/bin/python bench/bench_nla.py [--rounds 5]``.

1. CredSSP phase, in process: MIT's initiator (python-gssapi, SPNEGO,
   CredSSP version 6, a password principal's ticket) against the server's
   CredSSP machine with the Kerberos acceptor; the server's CPU time per
   connection (acceptor set-up, AP-REQ, pubKeyAuth both ways, authInfo),
   the TLS handshake not included. Target: at most 15 ms.
2. Whole sign-in, in one run: ``xfreerdp3 /sec:nla`` (PIN delegated by
   CredSSP) and ``xfreerdp /sec:tls`` (PIN in Client Info) against a real
   ``rdscard serve`` in Kerberos mode with the virtual card: wall time from
   the client's start to the server's ``signed in`` line, and the server's
   CPU (monitor and network process, from /proc).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gssapi
from tests.integration.rdp.conftest import ServerProcess

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.gss import KerberosAcceptor, acceptor_credentials
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pdu.credssp import TsCredentials, TsCspDataDetail, TsRequest, TsSmartCardCreds
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.protocol.credssp import CLIENT_SERVER_MAGIC, CredSspServer
from rdscard.secret import Secret
from rdscard.testbed.cards import CardInThread, wait_for_port
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.ports import free_tcp_port
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for

PIN = "24681357"
REALM = "EXAMPLE.TEST"
OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NONCE = bytes(range(32))
KEY = os.urandom(270)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def credssp_cpu(keytab: Path, ccache: Path, rounds: int) -> list[float]:
    """Server CPU (ms) of whole CredSSP exchanges, MIT initiator as the client."""
    creds = acceptor_credentials(keytab)
    client_creds = gssapi.Credentials(usage="initiate",
                                      store={b"ccache": f"FILE:{ccache}".encode()})
    spnego = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")
    card = TsSmartCardCreds(Secret(PIN.encode()), TsCspDataDetail(1, None, "Virtual PCD 00 00"))
    inner = TsCredentials(2, card.encode()).encode()
    out = []
    for _ in range(rounds):
        client = gssapi.SecurityContext(
            name=gssapi.Name("TERMSRV@localhost", gssapi.NameType.hostbased_service),
            creds=client_creds, usage="initiate", mech=spnego,
            flags=[gssapi.RequirementFlag.mutual_authentication,
                   gssapi.RequirementFlag.confidentiality, gssapi.RequirementFlag.integrity])
        used = 0.0
        token = client.step()
        mark = time.process_time()
        server = CredSspServer(KerberosAcceptor(creds), KEY)
        used += time.process_time() - mark
        while not client.complete:
            message = TsRequest(6, (token,), client_nonce=NONCE).encode()
            mark = time.process_time()
            step = server.receive(message)
            used += time.process_time() - mark
            reply = TsRequest.decode(step.reply)
            token = client.step(reply.nego_tokens[0])
        proof = client.wrap(hashlib.sha256(CLIENT_SERVER_MAGIC + NONCE + KEY).digest(),
                            True).message
        message = TsRequest(6, (token,) if token else (), pub_key_auth=proof,
                            client_nonce=NONCE).encode()
        mark = time.process_time()
        step = server.receive(message)
        used += time.process_time() - mark
        client.unwrap(TsRequest.decode(step.reply).pub_key_auth or b"")
        message = TsRequest(6, auth_info=client.wrap(inner, True).message).encode()
        mark = time.process_time()
        step = server.receive(message)
        used += time.process_time() - mark
        assert step.credentials is not None, step.failure
        step.credentials.pin.wipe()
        out.append(used * 1000)
    return out


def sign_ins(root: Path, pki: RealmPki, kdc: MitKdc, daemon: IsolatedPcscd, nla: bool,
             rounds: int) -> tuple[list[float], list[float]]:
    state = root / ("state-nla" if nla else "state-tls")
    NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = root / "bench.toml"
    config.write_text(
        f'[server]\nconnection_rate = 0\n[redirection]\nsocket_dir = "{run_dir}"\n'
        '[sessions]\nenabled = false\n'
        f'[logon]\nmode = "kerberos"\nroots = ["{pki.layout.root_cert}"]\n'
        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
        f'[logon.accounts]\n"alice@example.test" = "root"\n'
        f'[logon.kdc]\nkrb5_config = "{kdc.krb5_conf}"\n'
        f'[nla]\nenabled = true\nkeytab = "{root / "rdscard.keytab"}"\n')
    server = ServerProcess(state, ("--config", str(config)))
    walls, cpus = [], []
    try:
        assert wait_for(lambda: "running as" in server.log, 30), server.log
        network = int(re.findall(r"network process (\d+)", server.log)[0])
        pids = (server.process.pid, network)
        screen = VirtualScreen(1088, 832).start()
        env = {**daemon.env, "KRB5_CONFIG": str(kdc.krb5_conf),
               "KRB5CCNAME": f"FILE:{root / 'client.ccache'}"}
        try:
            for n in range(rounds):
                before = sum(cpu_seconds(p) for p in pids)
                started = time.perf_counter()
                if nla:
                    client = XFreeRdp(screen, "localhost", server.port, security="nla", env=env,
                                      program=("xfreerdp3", "freerdp3-x11"), extra_args=[
                                          "/smartcard", "/smartcard-logon",
                                          f"/kerberos:pkcs11-module:{OPENSC}", f"/p:{PIN}"])
                else:
                    client = XFreeRdp(screen, "127.0.0.1", server.port, env=daemon.env,
                                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"])
                try:
                    assert wait_for(lambda n=n: server.log.count("signed in:") > n, 60), \
                        server.log[-2000:]
                    walls.append((time.perf_counter() - started) * 1000)
                    cpus.append((sum(cpu_seconds(p) for p in pids) - before) * 1000)
                finally:
                    client.close()
                time.sleep(0.5)
        finally:
            screen.close()
    finally:
        server.stop()
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        print("preparing: test PKI, alice's card, pcscd + vpcd, MIT KDC", flush=True)
        pki = RealmPki.create(root / "pki", REALM, "example.test")
        state = CardState.new(serial=0x7777, pin=PIN.encode(), puk=b"12345678")
        card = VirtualPivCard(state)
        provision(PivClient(InProcessTransport(card)), pki, "alice",
                  Credentials(), ProvisionOptions(key_type="rsa2048"))
        with IsolatedPcscd(root / "pcscd", free_tcp_port(2)) as daemon, \
                MitKdc(root / "kdc", REALM, pki) as kdc:
            kdc.add_user("alice")
            kdc.add_service("TERMSRV/localhost", root / "rdscard.keytab")
            kdc.kinit_password(kdc.add_password_user("bob", "bench-password"), "bench-password",
                               root / "bob.ccache")
            os.environ["KRB5_CONFIG"] = str(kdc.krb5_conf)
            phase = credssp_cpu(root / "rdscard.keytab", root / "bob.ccache", 5 * args.rounds)
            port = daemon.vpcd_ports()[0]
            wait_for_port("127.0.0.1", port)
            inserted = CardInThread(card, port)
            inserted.insert()
            time.sleep(1.0)
            tls = sign_ins(root, pki, kdc, daemon, False, args.rounds)
            nla = sign_ins(root, pki, kdc, daemon, True, args.rounds)
            inserted.remove()
    print(f"\nCredSSP phase, server CPU per connection ({len(phase)} exchanges): "
          f"median {statistics.median(phase):.2f} ms, max {max(phase):.2f} ms "
          "(target <= 15 ms beyond the TLS handshake)")
    print(f"\nwhole sign-in in Kerberos mode, {args.rounds} rounds, median ms")
    print(f"{'':<28} {'wall':>10} {'server CPU':>12}")
    for name, (walls, cpus) in (("xfreerdp /sec:tls", tls), ("xfreerdp3 /sec:nla", nla)):
        print(f"{name:<28} {statistics.median(walls):10.0f} {statistics.median(cpus):12.0f}")


if __name__ == "__main__":
    main()
