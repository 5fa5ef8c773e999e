"""Round trips through pcscd + vpcd to the virtual PIV card, against a card that answers 9000.

Run as root (it starts an isolated pcscd): ``python bench/bench_card_pcsc.py [-n 300]``.

One pcscd with two vpcd readers: the provisioned virtual PIV card in reader 0,
a trivial card that answers 9000 at once in reader 1. A child process (the
pcscd client; libpcsclite reads PCSCLITE_CSOCK_NAME once per process) times
SELECT, GET DATA of a 1.5 KB certificate object and an RSA-2048 sign on the virtual
card, then replays the very same APDUs to the trivial card, so the difference
is what the virtual card itself costs. Prints p50/p99 per operation and the
difference per APDU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OPERATIONS = ("select", "get_data_cert_1_5k", "rsa2048_sign_9a")
CERT_SIZE = 1536


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def client(rounds: int) -> None:
    """Child process: time the operations; prints JSON {operation: {...}}."""
    from rdscard.pki.piv_client import PivClient
    from rdscard.pki.piv_codec import DataObject, KeyRef
    from rdscard.pki.transport import PcscTransport

    class Recorder:
        def __init__(self, inner: PcscTransport) -> None:
            self.inner = inner
            self.apdus: list[bytes] = []

        def transmit(self, apdu: bytes) -> bytes:
            self.apdus.append(apdu)
            return self.inner.transmit(apdu)

    card = PcscTransport("Virtual PCD 00 00")
    trivial = PcscTransport("Virtual PCD 00 01")
    recorder = Recorder(card)
    piv = PivClient(recorder)
    piv.select()
    piv.verify_pin(b"123456")
    # an EMSA-PKCS1-v1_5 block over SHA-256, as pkcs11-tool and kinit send it
    info = bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32)
    block = b"\x00\x01" + b"\xff" * (256 - 3 - len(info)) + b"\x00" + info
    actions: dict[str, Callable[[], object]] = {
        "select": piv.select,
        "get_data_cert_1_5k": lambda: piv.get_data(DataObject.X509_CERT_DIGITAL_SIGNATURE),
        "rsa2048_sign_9a": lambda: piv.rsa_private(KeyRef.AUTHENTICATION, block),
    }
    results: dict[str, dict[str, float]] = {}
    for name in OPERATIONS:
        action = actions[name]
        recorder.apdus.clear()
        action()  # warm up and record the APDUs of one run
        apdus = list(recorder.apdus)
        card_times: list[float] = []
        trivial_times: list[float] = []
        for _ in range(rounds):
            start = time.perf_counter()
            action()
            card_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            for apdu in apdus:
                trivial.transmit(apdu)
            trivial_times.append(time.perf_counter() - start)
        results[name] = {
            "apdus": len(apdus),
            "card_p50": statistics.median(card_times),
            "card_p99": _percentile(card_times, 0.99),
            "trivial_p50": statistics.median(trivial_times),
            "trivial_p99": _percentile(trivial_times, 0.99),
        }
    print(json.dumps(results))


def padded_certificate(size: int) -> bytes:
    """A self-signed RSA-2048 certificate padded to ``size`` bytes of DER (for GET DATA)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.UTC)
    pad = 0
    while True:
        der = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.UnrecognizedExtension(
                ObjectIdentifier("1.3.6.1.4.1.55555.1"), bytes(pad)), critical=False)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        )
        if len(der) >= size:
            return der
        pad += size - len(der)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=300)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.rounds)
        return 0

    from rdscard.card.piv import VirtualPivCard
    from rdscard.card.state import CardState
    from rdscard.card.vpcd import TrivialCard
    from rdscard.pki.ca import RealmPki
    from rdscard.pki.piv_client import PivClient
    from rdscard.pki.piv_codec import DataObject, KeyRef, encode_certificate_object
    from rdscard.pki.provision import Credentials, ProvisionOptions, provision
    from rdscard.pki.transport import InProcessTransport
    from rdscard.testbed.cards import CardInThread, wait_for_port
    from rdscard.testbed.pcscd import IsolatedPcscd
    from rdscard.testbed.ports import free_tcp_port

    with tempfile.TemporaryDirectory(prefix="bench-card-") as tmp:
        base = Path(tmp)
        print("creating a test PKI and an RSA-2048 card...", file=sys.stderr)
        pki = RealmPki.create(base / "pki", "EXAMPLE.TEST", "example.test")
        state = CardState.new(serial=0x4242, pin=b"123456", puk=b"12345678")
        piv_card = VirtualPivCard(state)
        provision(PivClient(InProcessTransport(piv_card)), pki, "alice", Credentials(),
                  ProvisionOptions(slots=(KeyRef.AUTHENTICATION,)))
        cert_der = padded_certificate(CERT_SIZE)
        admin = PivClient(InProcessTransport(piv_card))
        admin.select()
        admin.authenticate_admin()
        admin.put_data(DataObject.X509_CERT_DIGITAL_SIGNATURE,
                       encode_certificate_object(cert_der))
        cert_size = len(cert_der)
        with IsolatedPcscd(base / "pcscd", free_tcp_port(2)) as pcscd:
            ports = pcscd.vpcd_ports()
            for port in ports:
                wait_for_port("127.0.0.1", port)
            with CardInThread(piv_card, ports[0]), CardInThread(TrivialCard(), ports[1]):
                time.sleep(0.5)  # let pcscd power both cards up
                child = subprocess.run(
                    [sys.executable, __file__, "--client", "-n", str(args.rounds)],
                    capture_output=True, text=True, env={**os.environ, **pcscd.env},
                    timeout=600,
                )
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return 1
    results = json.loads(child.stdout)
    print(f"pcscd + vpcd round trips, {args.rounds} rounds each "
          f"(certificate {cert_size} bytes DER); times in microseconds")
    print(f"{'operation':<18} {'APDUs':>5} {'card p50':>9} {'card p99':>9} "
          f"{'9000 p50':>9} {'9000 p99':>9} {'diff/APDU p50':>14}")
    for name in OPERATIONS:
        r = results[name]
        diff = (r["card_p50"] - r["trivial_p50"]) / r["apdus"]
        print(f"{name:<18} {int(r['apdus']):>5} {r['card_p50'] * 1e6:>9.0f} "
              f"{r['card_p99'] * 1e6:>9.0f} {r['trivial_p50'] * 1e6:>9.0f} "
              f"{r['trivial_p99'] * 1e6:>9.0f} {diff * 1e6:>14.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
