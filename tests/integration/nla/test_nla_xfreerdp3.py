"""Network Level Authentication with FreeRDP 3: CredSSP with smart card credentials.

xfreerdp3 does PKINIT on the client with its own (virtual) card, a Kerberos
AP-REQ for TERMSRV/localhost inside SPNEGO, then delegates the PIN
(TSSmartCardCreds). The server signs in with that PIN, verified once on the
card, with no prompt; in Kerberos mode the session gets a TGT.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import insert
from tests.integration.logon.conftest import LOGON_PIN, logon_card_state  # noqa: F401
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.test_signin import ACCOUNT, local_account  # noqa: F401
from tests.integration.sessioncard.test_signin_kerberos import proc_texts

pytestmark = pytest.mark.integration

REALM = "EXAMPLE.TEST"
OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
XFREERDP3 = ("xfreerdp3", "freerdp3-x11")


@pytest.fixture
def kdc(pki: RealmPki, tmp_path: Path) -> Iterator[MitKdc]:
    with MitKdc(tmp_path / "kdc", REALM, pki) as server:
        server.add_user("alice")
        server.add_service("TERMSRV/localhost", tmp_path / "rdscard.keytab")
        yield server


def nla_server(tmp_path: Path, pki: RealmPki, kdc: MitKdc, *, require: bool = False,
               extra: str = "", accounts: dict[str, str] | None = None,
               domains: tuple[str, ...] = ("example.test",)) -> ServerProcess:
    state = tmp_path / "state"
    NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = tmp_path / "rdscard.toml"
    config.write_text(
        f'{extra}'
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        f'[logon]\nmode = "kerberos"\nroots = ["{pki.layout.root_cert}"]\n'
        '[logon.domain_realms]\n' + "".join(f'"{domain}" = "{REALM}"\n' for domain in domains) +
        '[logon.accounts]\n' + "".join(
            f'"{upn}" = "{account}"\n' for upn, account in
            ({"alice@example.test": ACCOUNT} if accounts is None else accounts).items()) +
        f'[logon.kdc]\nkrb5_config = "{kdc.krb5_conf}"\n'
        f'[nla]\nenabled = true\nrequire = {"true" if require else "false"}\n'
        f'keytab = "{tmp_path / "rdscard.keytab"}"\n'
    )
    return ServerProcess(state, ("--config", str(config)))


def client_env(kdc: MitKdc, pcscd: IsolatedPcscd, tmp_path: Path) -> dict[str, str]:
    return {**pcscd.env, "KRB5_CONFIG": str(kdc.krb5_conf),
            "KRB5CCNAME": f"FILE:{tmp_path / 'client.ccache'}"}


@pytest.mark.parametrize("security", ["nla", "ext"])
def test_xfreerdp3_signs_in_with_delegated_smart_card_credentials(
    security: str, tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
    logon_card_state: Path, local_account: str,  # noqa: F811
) -> None:
    server = nla_server(tmp_path, pki, kdc)
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "localhost", server.port, security=security,
                      env=client_env(kdc, pcscd, tmp_path), program=XFREERDP3, extra_args=[
                          "/smartcard", "/smartcard-logon", f"/kerberos:pkcs11-module:{OPENSC}",
                          f"/p:{LOGON_PIN.decode()}"])
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.extend(proc_texts({client.process.pid}))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        try:
            assert wait_for(lambda: "signed in:" in server.log or "refused" in server.log, 90), \
                server.log + client.output()
        finally:
            stop.set()
            watcher.join()
        log = server.log
        assert f"NLA: alice@{REALM} authenticated by Kerberos" in log, log + client.output()
        assert re.search(rf"signed in: alice@example.test as local account {ACCOUNT} .*"
                         rf"TGT for alice@{REALM}", log), log
        assert "selected CredSSP" + ("-EX" if security == "ext" else "") in log
        assert "Type your PIN" not in log
        # The host verified the PIN once: the client's own PKINIT used it once too.
        assert card.state.pin_retries_left == 3
        records = [json.loads(line) for line in
                   (server.state_dir / "audit.jsonl").read_text().splitlines()]
        success = [r for r in records if r["result"] == "success"]
        assert len(success) == 1
        assert success[0]["principal"] == f"alice@{REALM}"
        assert success[0]["upn"] == "alice@example.test"
        forms = (LOGON_PIN, LOGON_PIN.decode().encode("utf-16-le"), LOGON_PIN.hex().encode())
        for text in [server.log.encode(), *seen]:
            assert not any(form in text for form in forms)
    finally:
        client.close()
        screen.close()
        inserted.remove()
        server.stop()


def memory_hits(pid: int, needles: tuple[bytes, ...]) -> list[str]:
    """Which of ``needles`` occur in the readable memory of process ``pid`` (as root)."""
    found: list[str] = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            found += [f"{needle!r} in {fields[5] if len(fields) > 5 else 'anonymous'}"
                      for needle in needles if needle in chunk]
    return found


def pin_forms() -> tuple[bytes, bytes]:
    """The PIN as the logon service uses it (UTF-8) and as RDP carries it (UTF-16LE)."""
    return LOGON_PIN, LOGON_PIN.decode().encode("utf-16-le")


def files_with_pin(roots: tuple[Path, ...]) -> list[str]:
    """Files under ``roots`` holding the PIN in any of its forms."""
    return [str(path) for root in roots for path in root.rglob("*")
            if path.is_file() and any(form in path.read_bytes() for form in pin_forms())]


@pytest.mark.parametrize("security", ["nla", "tls"])
def test_the_network_process_keeps_no_copy_of_the_pin(
    security: str, tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
    logon_card_state: Path, local_account: str,  # noqa: F811
) -> None:
    """With privilege separation no form of the PIN stays in the network process.

    The network process relays sealed TSRequests and asks for the sign-in
    with ``SignIn.nla`` and an empty PIN: the form the logon service uses
    (UTF-8, the card's VERIFY data) never exists in its memory. FreeRDP 3
    also sends its own UTF-16 copy in the Client Info PDU, in TLS
    plaintext: OpenSSL cleanses its record buffer, the TLS layer decrypts
    into the connection's wipeable buffer and the password is decoded from
    there into a Secret, wiped unused, so that form is gone too. Without
    NLA (``/sec:tls``) that Client Info PIN is the one the sign-in uses: it
    goes to the monitor in a message zeroed once sent, and no copy stays
    either. Neither form is in any process's argv or environment, nor in a
    file of the server; nor in the monitor once the sign-in is done.
    """
    server = nla_server(tmp_path, pki, kdc)
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "localhost", server.port, security=security,
                      env=client_env(kdc, pcscd, tmp_path), program=XFREERDP3, extra_args=[
                          "/smartcard", "/smartcard-logon", f"/kerberos:pkcs11-module:{OPENSC}",
                          f"/p:{LOGON_PIN.decode()}"])
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.extend(proc_texts({client.process.pid}))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        try:
            assert wait_for(lambda: "signed in:" in server.log or "refused" in server.log, 90), \
                server.log + client.output()
        finally:
            stop.set()
            watcher.join()
        assert "signed in: alice@example.test" in server.log, server.log
        assert ("NLA: alice@" in server.log) == (security == "nla"), server.log
        network = int(re.findall(r"network process (\d+)", server.log)[0])
        assert memory_hits(network, pin_forms()) == []
        assert memory_hits(network, (b"alice@EXAMPLE.TEST",))  # the scan does see its memory
        # The monitor, the logon service, used the PIN for the sign-in: none is left after it.
        monitor = server.process.pid
        assert memory_hits(monitor, pin_forms()) == []
        assert memory_hits(monitor, (b"alice@EXAMPLE.TEST",))
        assert not [text for text in [server.log.encode(), *seen]
                    if any(form in text for form in pin_forms())]
        run_dir = Path(tomllib.loads((tmp_path / "rdscard.toml").read_text())
                       ["redirection"]["socket_dir"])
        assert files_with_pin((server.state_dir, run_dir)) == []
    finally:
        client.close()
        screen.close()
        inserted.remove()
        server.stop()
