"""KDC relay benchmark: what reading the KDC's certificate costs a PKINIT.

Run as root or not (it starts an MIT KDC on loopback):
``.venv/bin/python bench/bench_kdc_relay.py [--rounds 15]``.

kinit does PKINIT with a software key against a real MIT KDC, alternately
directly (the baseline) and through the logon service's relay
(:mod:`rdscard.logon.kdc_relay`): the relay started, kinit run with the
overlay krb5.conf, the relay stopped, the KDC certificate taken from the
replies and its issuer checked against the NTAuth CA. Wall milliseconds,
median of the rounds; the monitor's own CPU for the relay (thread and check)
is measured as the process's CPU time around the relayed runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rdscard.logon.kdc_relay import KdcRelay, overlay, realm_kdcs
from rdscard.logon.kdc_trust import check_kdc_issuer
from rdscard.pki.ca import CertProfile, RealmPki
from rdscard.testbed.kdc import MitKdc

REALM = "EXAMPLE.TEST"


def kinit(config: str, identity: str, ccache: Path) -> float:
    env = {**os.environ, "KRB5_CONFIG": config, "KRB5CCNAME": f"FILE:{ccache}"}
    started = time.perf_counter()
    result = subprocess.run(["kinit", "-X", f"X509_user_identity={identity}", f"alice@{REALM}"],
                            env=env, capture_output=True, text=True, input="", check=False)
    if result.returncode != 0:
        raise SystemExit(f"kinit failed: {result.stderr}")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rdscard-bench-relay-") as tmp:
        root = Path(tmp)
        pki = RealmPki.create(root / "pki", REALM, "example.test")
        pki.create_software_user("alice")
        layout = pki.layout
        identity = (f"FILE:{layout.user_cert('alice', CertProfile.AUTHENTICATION)},"
                    f"{layout.user_key('alice', CertProfile.AUTHENTICATION)}")
        with MitKdc(root / "kdc", REALM, pki) as kdc:
            kdc.add_user("alice")
            kdcs = realm_kdcs([kdc.krb5_conf], REALM)
            direct: list[float] = []
            relayed: list[float] = []
            cpu = 0.0
            for _ in range(args.rounds):
                direct.append(kinit(str(kdc.krb5_conf), identity, root / "cc-direct"))
                started, before = time.perf_counter(), time.process_time()
                relay = KdcRelay(kdcs).start()
                try:
                    (root / "overlay.conf").write_text(overlay(REALM, relay.port))
                    kinit(f"{root / 'overlay.conf'}:{kdc.krb5_conf}", identity,
                          root / "cc-relayed")
                finally:
                    relay.stop()
                check_kdc_issuer(relay.replies, [pki.issuing_cert], REALM)
                relayed.append((time.perf_counter() - started) * 1000)
                cpu += time.process_time() - before
    print(f"PKINIT by kinit, {args.rounds} rounds, median wall ms")
    print(f"{'baseline: kinit straight to the KDC':<44} {statistics.median(direct):8.1f}")
    print(f"{'kinit through the relay + issuer check':<44} {statistics.median(relayed):8.1f}")
    print(f"{'relay overhead':<44} "
          f"{statistics.median(relayed) - statistics.median(direct):8.1f}")
    print(f"{'relay CPU in this process per PKINIT':<44} {cpu / args.rounds * 1000:8.2f}")


if __name__ == "__main__":
    main()
