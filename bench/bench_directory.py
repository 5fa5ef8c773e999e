"""Directory benchmark: what Active Directory adds to a sign-in, and an NTAuth refresh.

Run as root (it provisions and starts a Samba 4 AD DC on 127.0.0.1:389/636,
waiting for any other run's DC first): ``.venv/bin/python bench/bench_directory.py
[--rounds 20]``.

Sign-in: the logon service's whole sign-in (certificate read and validated,
account mapped, PIN verified, proof of possession) on the project's virtual
card in process, so that the figures are the server's own work, in three
configurations interleaved round by round:

- baseline: ``[logon] mode = "local"`` with ``[logon.accounts]``;
- directory, warm: ``[directory] accounts = true, strong_mapping = "full"``
  with the monitor's account source as it runs, its bound LDAPS connection
  kept from the previous sign-in: one search for the user, the state checks,
  the SID extension checked against ``objectSid``;
- directory, cold: the same with a new account source each time: TCP, TLS
  handshake, simple bind, RootDSE read and the search.

Printed: the median and 95th percentile of each, the directory work added
to a sign-in (difference of the medians; targets: at most 10 ms warm, at
most 100 ms cold), and the directory step alone (lookup, state and mapping
checks, timed around them).

NTAuth: 100 CA certificates published in the directory's NTAuthCertificates
object, then ``certutil -pulse``'s work (:func:`rdscard.directory.ntauth.pulse`):
into an empty store (100 CAs written) and into a store already up to date,
beside the directory read alone.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ldap3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.directory.accounts import CachedAccountSource
from rdscard.directory.ntauth import ATTRIBUTE, DirectoryNtAuth, pulse
from rdscard.directory.settings import DirectoryConfig
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.service import LogonService, SignInRequest
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import KeyRef
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.secret import Secret
from rdscard.testbed.samba import SambaDc

PIN = b"24681357"
USER = "rdscard-bench"
UPN = "alice@example.test"
REQUEST = SignInRequest(client_address="127.0.0.1:50000", client_name="BENCH",
                        reader="Virtual PCD 00 00")
CAS = 100


def ms(seconds: float) -> float:
    return seconds * 1000.0


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(call: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    call(*args)
    return ms(time.perf_counter() - started)


def object_sid(dc: SambaDc) -> str:
    ldif = dc.ldbsearch(f"CN={USER},CN=Users,{dc.base_dn}", "objectSid")
    (sid,) = [line.split(": ", 1)[1] for line in ldif.splitlines()
              if line.startswith("objectSid: ")]
    return sid


def ca_certificates(count: int) -> list[x509.Certificate]:
    now = datetime.datetime.now(datetime.UTC)
    out = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Bench CA {index:03d}")])
        out.append(x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                  critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                False, False), critical=True)
                   .sign(key, hashes.SHA256()))
    return out


def summary(name: str, values: list[float]) -> str:
    return f"{name:<44} {statistics.median(values):9.2f} {p95(values):9.2f}"


def sign_in_figures(root: Path, dc: SambaDc, rounds: int) -> None:
    pki = RealmPki.create(root / "pki", "EXAMPLE.TEST", "example.test")
    dc.samba_tool("user", "create", USER, "Us3r.Pass.Word")
    dc.ldbmodify(f"dn: CN={USER},CN=Users,{dc.base_dn}\nchangetype: modify\n"
                 f"replace: userPrincipalName\nuserPrincipalName: {UPN}\n")
    card = VirtualPivCard(CardState.new(serial=0x5150, pin=PIN, puk=b"12345678"))
    client = PivClient(InProcessTransport(card))
    provision(client, pki, "alice", Credentials(pin=bytearray(PIN)),
              ProvisionOptions(key_type="p256", slots=(KeyRef.AUTHENTICATION,),
                               sid=object_sid(dc)))
    password = root / "bind.pw"
    password.write_text(dc.admin_password + "\n")
    password.chmod(0o600)
    directory = DirectoryConfig(enabled=True, uris=(dc.ldaps_uri,), accounts=True,
                                strong_mapping="full", bind_dn=dc.admin_upn,
                                bind_password_file=password, ca_file=dc.tls_ca)
    local = LogonConfig.from_table({"mode": "local", "accounts": {UPN: USER}})
    validator = CertificateValidator([pki.issuing_cert])

    def service(accounts: CachedAccountSource | None) -> LogonService:
        return LogonService(local, validator,
                            mapper=AccountMapper(local, account_exists=lambda _: True),
                            accounts=accounts)

    baseline = service(None)
    warm_source = CachedAccountSource(directory)
    warm = service(warm_source)
    runs: dict[str, list[float]] = {"local": [], "warm": [], "cold": []}
    steps: dict[str, list[float]] = {"warm": [], "cold": []}
    cert = client.read_certificate(KeyRef.AUTHENTICATION)
    assert cert is not None

    def step(source: CachedAccountSource) -> None:
        entry = source.resolve(UPN)
        assert entry.refusal(datetime.datetime.now(datetime.UTC)) is None
        source.check_certificate(entry, cert)

    warm.sign_in(client, Secret(bytearray(PIN)), REQUEST)  # the connection made, imports done
    for _ in range(rounds):
        runs["local"].append(timed(baseline.sign_in, client, Secret(bytearray(PIN)), REQUEST))
        runs["warm"].append(timed(warm.sign_in, client, Secret(bytearray(PIN)), REQUEST))
        cold_source = CachedAccountSource(directory)
        cold = service(cold_source)
        runs["cold"].append(timed(cold.sign_in, client, Secret(bytearray(PIN)), REQUEST))
        cold_source.directory.close()
        steps["warm"].append(timed(step, warm_source))
        fresh = CachedAccountSource(directory)
        steps["cold"].append(timed(step, fresh))
        fresh.directory.close()
    warm_source.directory.close()

    print(f"\nsign-in in process (virtual card, P-256), {rounds} rounds, ms")
    print(f"{'':<44} {'median':>9} {'p95':>9}")
    print(summary("baseline: local mode ([logon.accounts])", runs["local"]))
    print(summary("directory, strong mapping full, warm", runs["warm"]))
    print(summary("directory, strong mapping full, cold", runs["cold"]))
    base = statistics.median(runs["local"])
    print(f"directory work added, warm: {statistics.median(runs['warm']) - base:6.2f} ms "
          "(target <= 10 ms)")
    print(f"directory work added, cold: {statistics.median(runs['cold']) - base:6.2f} ms "
          "(target <= 100 ms)")
    print(summary("directory step alone, warm", steps["warm"]))
    print(summary("directory step alone, cold", steps["cold"]))


def ntauth_figures(root: Path, dc: SambaDc, rounds: int) -> None:
    password = root / "bind.pw"
    config = DirectoryConfig(enabled=True, uris=(dc.ldaps_uri,), bind_dn=dc.admin_upn,
                             bind_password_file=password, ca_file=dc.tls_ca)
    directory = DirectoryNtAuth(config)
    cas = ca_certificates(CAS)
    dn, _ = directory.publish(cas[0], create=True)
    conn = directory.connect()
    try:
        conn.modify(dn, {ATTRIBUTE: [(ldap3.MODIFY_ADD, [
            c.public_bytes(serialization.Encoding.DER) for c in cas[1:]])]})
    finally:
        conn.unbind()
    assert len(directory.read()[1]) == CAS
    reads, fresh, unchanged = [], [], []
    for index in range(rounds):
        reads.append(timed(directory.read))
        store = NtAuthStore(root / f"ntauth-{index}")
        fresh.append(timed(pulse, directory, store))
        assert len(store.certificates()) == CAS
        unchanged.append(timed(pulse, directory, store))
    print(f"\nNTAuth refresh of {CAS} CAs from the directory, {rounds} rounds, ms")
    print(f"{'':<44} {'median':>9} {'p95':>9}")
    print(summary("directory read alone (connect, bind, read)", reads))
    print(summary("-pulse into an empty store (100 written)", fresh))
    print(summary("-pulse into an up-to-date store", unchanged))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    lock = (Path(tempfile.gettempdir()) / "rdscard-samba-dc.lock").open("a")
    print("waiting for the machine's Samba DC lock", flush=True)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with tempfile.TemporaryDirectory() as work:
            root = Path(work)
            print("preparing: Samba 4 AD DC, test PKI, alice's card", flush=True)
            with SambaDc(root / "dc") as dc:
                sign_in_figures(root, dc, args.rounds)
                ntauth_figures(root, dc, max(3, args.rounds // 4))
    finally:
        lock.close()


if __name__ == "__main__":
    main()
