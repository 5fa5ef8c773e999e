"""Two realms with a trust: EXAMPLE.TEST (this host's, with its keytab) and PARTNER.TEST
(the users of the other domain), each an MIT KDC with a PKI of its own, and one krb5.conf
naming both and the direct path between them."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.trust import client_config, trust
from tests.integration.card.conftest import PIN, PUK, pcscd, pki  # noqa: F401 - fixtures
from tests.integration.rdp.conftest import ServerProcess

HOME_REALM = "EXAMPLE.TEST"
PARTNER_REALM = "PARTNER.TEST"
PARTNER_DOMAIN = "partner.test"
HOST_SERVICE = f"host/rdsh.example.test@{HOME_REALM}"


@pytest.fixture(scope="module")
def partner_pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("partner-pki"), PARTNER_REALM, PARTNER_DOMAIN)


@dataclass
class Realms:
    """Both KDCs, the host's keytab (EXAMPLE.TEST) and the clients' krb5.conf."""

    home: MitKdc
    partner: MitKdc
    keytab: Path
    krb5_conf: Path


def start_realms(directory: Path, home_pki: RealmPki, partner_pki: RealmPki, *,
                 trusted: bool = True) -> Realms:
    home = MitKdc(directory / "home-kdc", HOME_REALM, home_pki)
    partner = MitKdc(directory / "partner-kdc", PARTNER_REALM, partner_pki)
    home.start()
    try:
        partner.start()
    except BaseException:
        home.stop()
        raise
    partner.add_user("carol")
    if trusted:
        trust(home, partner)
    keytab = directory / "host.keytab"
    home.add_service(HOST_SERVICE.rpartition("@")[0], keytab)
    return Realms(home, partner, keytab, client_config(directory / "krb5.conf", [home, partner]))


@pytest.fixture
def realms(tmp_path: Path, pki: RealmPki,  # noqa: F811 - fixture
           partner_pki: RealmPki) -> Iterator[Realms]:
    both = start_realms(tmp_path / "realms", pki, partner_pki)
    try:
        yield both
    finally:
        both.partner.stop()
        both.home.stop()


def partner_card(partner_pki: RealmPki, user: str = "carol") -> VirtualPivCard:
    """``user@partner.test``'s card, issued by the partner domain's CA.

    RSA keys: with a P-256 card, MIT kinit 1.20.1 (OpenSC's PKCS#11 module) builds
    its chain, then fails before sending its PKINIT request ("Preauthentication
    failed"), so no EC card signs in by PKINIT here.
    """
    state = CardState.new(serial=0x7000, pin=PIN.encode(), puk=PUK.encode())
    card = VirtualPivCard(state)
    provision(PivClient(InProcessTransport(card)), partner_pki, user, Credentials(),
              ProvisionOptions(key_type="rsa2048"))
    return card


def trusting_server(directory: Path, home_pki: RealmPki, partner_pki: RealmPki,
                    realms: Realms, logon: str, extra: str = "") -> ServerProcess:
    """A kerberos-mode server trusting both domains' CAs (NTAuth) and roots."""
    directory.mkdir(parents=True, exist_ok=True)
    state = directory / "state"
    for pki_ in (home_pki, partner_pki):
        NtAuthStore.in_state_dir(state).add(pki_.issuing_cert)
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = directory / "rdscard.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        f'[logon]\nmode = "kerberos"\n'
        f'roots = ["{home_pki.layout.root_cert}", "{partner_pki.layout.root_cert}"]\n'
        f"{logon}"
        f'[logon.kdc]\nkrb5_config = "{realms.krb5_conf}"\ntimeout = 20.0\n'
        f'validate = true\nvalidate_principal = "{HOST_SERVICE}"\n'
        f'validate_keytab = "{realms.keytab}"\n{extra}')
    return ServerProcess(state, ("--config", str(config)))
