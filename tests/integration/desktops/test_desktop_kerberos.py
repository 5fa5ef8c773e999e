"""Kerberos mode with a desktop: the session's terminal has the TGT; a reconnect renews it
in the same credential cache; logoff destroys the cache."""

from __future__ import annotations

import re
import shutil
import tempfile
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
from tests.integration.desktops.conftest import (
    DesktopServer,
    PamRecorder,
    account,
    ensure_home_account,
    read_when_ready,
    terminal_shown,
    type_text,
)
from tests.integration.logon.conftest import LOGON_PIN, logon_card_state  # noqa: F401
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.test_signin_kerberos import REALM, kdc  # noqa: F401

pytestmark = pytest.mark.integration

USER = "rdscard-dk-kate"


@pytest.fixture
def kerberos_desktops(tmp_path: Path, pki: RealmPki, kdc: MitKdc,  # noqa: F811
                      pam_recorder: PamRecorder) -> Iterator[DesktopServer]:
    ensure_home_account(USER)
    state = tmp_path / "state"
    NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = tmp_path / "rdscard.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        f'[sessions]\npam_service = "{pam_recorder.service}"\n'
        f'[logon]\nmode = "kerberos"\nroots = ["{pki.layout.root_cert}"]\n'
        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
        f'[logon.accounts]\n"alice@example.test" = "{USER}"\n'
        f'[logon.kdc]\nkrb5_config = "{kdc.krb5_conf}"\n'
    )
    server = DesktopServer(ServerProcess(state, ("--config", str(config))), run_dir,
                           pam_recorder)
    yield server
    server.server.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


def test_the_terminal_has_the_tgt_and_a_reconnect_renews_it_in_the_same_cache(
    kerberos_desktops: DesktopServer, pcscd: IsolatedPcscd,
    logon_card_state: Path,  # noqa: F811
) -> None:
    server = kerberos_desktops
    user = account(USER)
    card = insert(VirtualPivCard(CardState.load(logon_card_state)), pcscd)
    screen = VirtualScreen(1088, 832).start()

    def connect() -> XFreeRdp:
        return XFreeRdp(screen, "127.0.0.1", server.server.port, env=pcscd.env, extra_args=[
            "/smartcard", "/smartcard-logon", f"/p:{LOGON_PIN.decode()}"])

    client = connect()
    first = Path(user.pw_dir) / "klist-first"
    second = Path(user.pw_dir) / "klist-second"
    for path in (first, second):
        path.unlink(missing_ok=True)
    try:
        [(session, _display)] = server.started()
        assert terminal_shown(client), server.server.log[-4000:]
        type_text(client, f'echo "$KRB5CCNAME" > {first}; klist >> {first} 2>&1\n')
        text = read_when_ready(first, needle="krbtgt/", client=client)
        ccname = text.splitlines()[0]
        assert ccname.startswith("FILE:") and f"Ticket cache: {ccname}" in text, text
        assert f"alice@{REALM}" in text
        ccache = Path(ccname.removeprefix("FILE:"))
        before = ccache.read_bytes()
        assert ccache.stat().st_uid == user.pw_uid and ccache.stat().st_mode & 0o077 == 0

        client.close()
        assert wait_for(lambda: "disconnected" in server.listing().get(session, ""), 20)
        client = connect()
        assert wait_for(lambda: "reconnected: connection from" in server.server.log, 60), (
            server.server.log[-6000:])
        assert terminal_shown(client), server.server.log[-4000:]
        type_text(client, f'echo "$KRB5CCNAME" > {second}; klist >> {second} 2>&1\n')
        text = read_when_ready(second, needle="krbtgt/", client=client)
        assert text.splitlines()[0] == ccname, "the same cache as before the disconnect"
        assert ccache.read_bytes() != before, "the new sign-in's TGT replaced the old one"
        assert ccache.stat().st_uid == user.pw_uid
        assert len(re.findall(r"signed in: alice@example.test", server.server.log)) == 2

        server.session("logoff", str(session))
        assert wait_for(lambda: not ccache.exists(), 15), "logoff destroys the cache"
    finally:
        client.close()
        screen.close()
        card.remove()
