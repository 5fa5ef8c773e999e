"""What ``[logon.kdc] card_roots`` adds to a Kerberos sign-in: reading the card's roots, and the
keytab check of the TGT.

Run as root (it starts an isolated pcscd and an MIT KDC):
``.venv/bin/python bench/bench_card_roots.py [--rounds 10]``.

alice's virtual RSA-2048 card, carrying the realm's root in its msroots, sits
in a vpcd reader. Each round times, through pcscd: reading the roots
(:func:`rdscard.pki.msroots.read_roots`), and the project's PKINIT worker
(:func:`rdscard.logon.pkinit.run_pkinit`) with the card's roots as extra
anchors and the TGT validated against the host's keytab (``kvno -k``).
Baseline in the same run: the same PKINIT on a host that holds the root
itself (``[logon] roots``), no card roots, no keytab check.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.pkinit import kdc_anchors, run_pkinit
from rdscard.logon.settings import LogonConfig
from rdscard.pki.ca import RealmPki
from rdscard.pki.msroots import read_roots, write_roots
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport, PcscTransport
from rdscard.secret import Secret
from rdscard.testbed.cards import CardInThread, wait_for_port
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.ports import free_tcp_port

PIN = "24681357"
REALM = "EXAMPLE.TEST"
HOST = "host/rdscard-bench.example.test"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        print("preparing: test PKI, alice's card with the root, pcscd + vpcd, MIT KDC",
              flush=True)
        pki = RealmPki.create(root / "pki", REALM, "example.test")
        card = VirtualPivCard(CardState.new(serial=0x7778, pin=PIN.encode(), puk=b"12345678"))
        client = PivClient(InProcessTransport(card))
        provision(client, pki, "alice", Credentials(), ProvisionOptions(key_type="rsa2048"))
        client.select()
        client.authenticate_admin()
        write_roots(client, [pki.root_cert])
        state = root / "state"
        NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
        with IsolatedPcscd(root / "pcscd", free_tcp_port(2)) as daemon, \
                MitKdc(root / "kdc", REALM, pki) as kdc:
            kdc.add_user("alice")
            keytab = root / "host.keytab"
            kdc.add_service(HOST, keytab)
            os.environ["PCSCLITE_CSOCK_NAME"] = daemon.env["PCSCLITE_CSOCK_NAME"]
            port = daemon.vpcd_ports()[0]
            wait_for_port("127.0.0.1", port)
            inserted = CardInThread(card, port)
            inserted.insert()
            time.sleep(1.0)
            kdc_settings = {"krb5_config": str(kdc.krb5_conf)}
            host_root = LogonConfig.from_table({"roots": [str(pki.layout.root_cert)],
                                                "kdc": kdc_settings})
            card_roots = LogonConfig.from_table({"kdc": {
                **kdc_settings, "card_roots": True, "validate_keytab": str(keytab),
                "validate_principal": HOST}})
            socket = daemon.env["PCSCLITE_CSOCK_NAME"]
            reads: list[float] = []
            baseline: list[float] = []
            with_roots: list[float] = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                run_pkinit(f"alice@{REALM}", Secret(PIN.encode()), host_root.kdc,
                           ccache_base=root / "ccache", anchors=kdc_anchors(host_root, state),
                           pcsc_socket=socket)
                baseline.append(time.perf_counter() - started)
                started = time.perf_counter()
                with PcscTransport(daemon.reader_names()[0]) as transport:
                    reader = PivClient(transport)
                    reader.select()
                    roots = read_roots(reader)
                reads.append(time.perf_counter() - started)
                started = time.perf_counter()
                run_pkinit(f"alice@{REALM}", Secret(PIN.encode()), card_roots.kdc,
                           ccache_base=root / "ccache", anchors=kdc_anchors(card_roots, state),
                           pcsc_socket=socket, card_roots=roots)
                with_roots.append(time.perf_counter() - started)
            inserted.remove()
    extra = median_ms(reads) + median_ms(with_roots) - median_ms(baseline)
    print(f"\ncard_roots, {args.rounds} rounds, median ms (through pcscd + vpcd, MIT KDC)")
    print(f"{'baseline: PKINIT, the root on the host':<52} {median_ms(baseline):8.1f}")
    print(f"{'reading the roots on the card (SELECT + GET DATA)':<52} {median_ms(reads):8.1f}")
    print(f"{'PKINIT with the card roots + keytab check':<52} {median_ms(with_roots):8.1f}")
    print(f"{'card_roots adds':<52} {extra:8.1f}")


if __name__ == "__main__":
    main()
