"""Kerberos mode against Samba 4.17's own KDC (Heimdal's, with PKINIT).

A card whose certificate names its user by the UPN alone (no id-pkinit-san)
signs in through xfreerdp ``/smartcard-logon``: the UPN maps through the
directory to its user, whose sAMAccountName is not the UPN's name, and
Samba's KDC gives that user a TGT, found by UPN as AD does
(:mod:`rdscard.testbed.samba` says how). Samba's KDC checks neither NTAuth nor
the certificate's EKUs; shown here with its own kinit, then rdscard refusing
the certificate of a CA the KDC trusts but NTAuth does not list, and one
with no sign-in EKU, before the PIN reaches the card.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.directory.ntauth import ntauth_dn
from rdscard.pki.ca import (
    CertProfile,
    RealmPki,
    generate_key,
    key_pem,
    pem,
    write_private,
    write_public,
)
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import KeyRef
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.pcscd import IsolatedPcscd, PeerError
from rdscard.testbed.samba import SambaDc
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, PUK, insert
from tests.integration.directory.test_kerberos_bind import keytab, service_account  # noqa: F401
from tests.integration.directory.test_ntauth_directory import certutil
from tests.integration.directory.test_ntauth_directory import write_config as admin_config
from tests.integration.directory.test_signin_accounts import directory_user
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.conftest import ensure_account

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("samba-dc")]

REALM = "EXAMPLE.TEST"
USER = "mia"  # the card's UPN mia@example.test, the user's userPrincipalName
ACCOUNT = "rdscard-smia"  # the directory user's sAMAccountName, and the local account
HOST_SPN = "host/rdsh.example.test"  # the host's key, the TGT validated against it


@pytest.fixture(scope="module")
def directory_mia(samba_dc: SambaDc) -> Iterator[str]:
    directory_user(samba_dc, ACCOUNT, f"{USER}@example.test")
    ensure_account(ACCOUNT)
    yield ACCOUNT
    samba_dc.samba_tool("user", "delete", ACCOUNT)


def software_identity(pki: RealmPki, directory: Path, label: str, **options: bool | CertProfile
                      ) -> str:
    """``FILE:cert,key`` of a UPN-only certificate for :data:`USER` with a software key."""
    key = generate_key()
    cert = pki.issue_user_certificate(USER, key.public_key(), pkinit_san=False,
                                      **options)  # type: ignore[arg-type]
    cert_path, key_path = directory / f"{label}.pem", directory / f"{label}.key"
    write_public(cert_path, pem(cert))
    write_private(key_path, key_pem(key))
    return f"FILE:{cert_path},{key_path}"


def samba_kinit(dc: SambaDc, pki: RealmPki, identity: str, ccache: Path,
                principal: str = f"{ACCOUNT}@{REALM}") -> subprocess.CompletedProcess[str]:
    """MIT kinit by PKINIT straight to the DC's KDC (no rdscard): what Samba itself grants.

    The client's krb5.conf leaves out ``pkinit_cert_match``, so that MIT's client
    sends any certificate it is given and the KDC alone decides.
    """
    conf = ccache.with_suffix(".conf")
    conf.write_text(dc.krb5_conf.read_text().replace(
        "        pkinit_cert_match = <EKU>msScLogin\n", ""))
    return subprocess.run(
        ["kinit", "-c", f"FILE:{ccache}", "-X", f"X509_user_identity={identity}",
         "-X", f"X509_anchors=FILE:{pki.layout.root_cert}",
         "-X", f"X509_anchors=FILE:{pki.layout.untrusted_cert}", principal],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "KRB5_CONFIG": str(conf), "LANG": "C", "LC_ALL": "C"})


def test_samba_kdc_maps_the_upn_and_checks_neither_ntauth_nor_ekus(
    tmp_path: Path, samba_dc: SambaDc, pki: RealmPki, directory_mia: str,
) -> None:
    granted = {}
    cases: dict[str, dict[str, bool | CertProfile]] = {
        "good": {},
        # a CA among the KDC's pkinit_anchors, in no NTAuth store
        "other-ca": {"untrusted": True},
        # emailProtection alone: neither Smart Card Logon nor clientAuth nor KPClientAuth
        "no-sign-in-eku": {"profile": CertProfile.SIGNATURE},
        "no-upn": {"upn": False},
    }
    for label, options in cases.items():
        identity = software_identity(pki, tmp_path, label, **options)
        result = samba_kinit(samba_dc, pki, identity, tmp_path / f"{label}.ccache")
        granted[label] = (result.returncode, result.stderr.strip())
    assert granted["good"][0] == 0, granted["good"]
    assert granted["other-ca"][0] == 0, granted["other-ca"]
    assert granted["no-sign-in-eku"][0] == 0, granted["no-sign-in-eku"]
    assert granted["no-upn"][0] != 0 and "Client name mismatch" in granted["no-upn"][1]
    klist = subprocess.run(["klist", "-c", f"FILE:{tmp_path / 'good.ccache'}"],
                           capture_output=True, text=True, timeout=30, check=True)
    assert f"Default principal: {ACCOUNT}@{REALM}" in klist.stdout, klist.stdout
    # The UPN's name in the realm is found as that UPN too (case aside), so the default
    # principal form user@REALM reaches the same user without [directory] accounts.
    by_upn = samba_kinit(samba_dc, pki, software_identity(pki, tmp_path, "by-upn"),
                         tmp_path / "by-upn.ccache", principal=f"{USER}@{REALM}")
    assert by_upn.returncode == 0, by_upn.stderr


class CountingCard(VirtualPivCard):
    """A card that counts the PIN presented to it (VERIFY with data, ISO 7816-4 11.5.6)."""

    pins_presented = 0

    def transmit(self, apdu: bytes) -> bytes:
        if len(apdu) > 5 and apdu[1] == 0x20 and apdu[3] == 0x80:
            self.pins_presented += 1
        return super().transmit(apdu)


def upn_only_card(pki: RealmPki, serial: int, *, untrusted: bool = False,
                  profile: CertProfile = CertProfile.AUTHENTICATION) -> CountingCard:
    """A card for :data:`USER` whose sign-in certificate (slot 9A) has the UPN and no
    id-pkinit-san; with ``profile``, that certificate is reissued in that profile."""
    state = CardState.new(serial=serial, pin=PIN.encode(), puk=PUK.encode())
    client = PivClient(InProcessTransport(VirtualPivCard(state)))
    provision(client, pki, USER, Credentials(),
              ProvisionOptions(key_type="rsa2048", pkinit_san=False, untrusted=untrusted))
    if profile is not CertProfile.AUTHENTICATION:
        client.select()
        client.authenticate_admin()
        first = client.read_certificate(KeyRef.AUTHENTICATION)
        assert first is not None
        client.write_certificate(KeyRef.AUTHENTICATION, pki.issue_user_certificate(
            USER, first.public_key(), profile=profile, pkinit_san=False))  # type: ignore[arg-type]
    return CountingCard(state)


@pytest.fixture
def host_keytab(samba_dc: SambaDc, service_account: str, tmp_path: Path  # noqa: F811
                ) -> Path:
    """The host's own key (an SPN of the service account) for ``[logon.kdc] validate``."""
    try:
        samba_dc.samba_tool("spn", "add", HOST_SPN, service_account.partition("@")[0])
    except PeerError as exc:
        if "already" not in str(exc).lower():
            raise
    path = samba_dc.export_keytab(f"{HOST_SPN}@{REALM}", tmp_path / "host.keytab")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def sign_in(server: ServerProcess, pcscd: IsolatedPcscd, card: VirtualPivCard) -> Iterator[str]:
    """xfreerdp /smartcard-logon with the card and its PIN; the server's result line, the
    client connected until the block ends."""
    pattern = re.compile(r"\[session \d+\] (signed in: .*|sign-in refused \(\w+\): .*)")
    before = len(pattern.findall(server.log))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port, env=pcscd.env,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"])
    try:
        assert wait_for(lambda: len(pattern.findall(server.log)) > before, timeout=90), \
            server.log + client.output()
        yield [m.group(0) for m in pattern.finditer(server.log)][before]
    finally:
        client.close()
        screen.close()
        inserted.remove()


def test_sign_in_gets_a_tgt_from_samba_and_ntauth_still_holds(
    tmp_path: Path, samba_dc: SambaDc, pki: RealmPki, pcscd: IsolatedPcscd,
    directory_mia: str, service_account: str, keytab: Path,  # noqa: F811
    host_keytab: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "admin").mkdir()
    publish = admin_config(tmp_path / "admin", samba_dc)
    published = certutil(publish, "-dspublish", "-f", str(pki.layout.issuing_cert), "NTAuthCA")
    assert published.returncode == 0, published.stderr
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = tmp_path / "rdscard.toml"
    # The other CA is a root here too, so that its card fails on NTAuth alone.
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        f'[logon]\nmode = "kerberos"\n'
        f'roots = ["{pki.layout.root_cert}", "{pki.layout.untrusted_cert}"]\n'
        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
        f'[logon.kdc]\nkrb5_config = "{samba_dc.krb5_conf}"\nvalidate = true\n'
        f'validate_keytab = "{host_keytab}"\nvalidate_principal = "{HOST_SPN}"\n'
        "[directory]\nenabled = true\naccounts = true\n"
        f'uris = ["{samba_dc.ldaps_uri}"]\nca_file = "{samba_dc.tls_ca}"\n'
        f'bind_method = "kerberos"\nkeytab = "{keytab}"\nbind_principal = "{service_account}"\n'
        "refresh_interval = 3600\ntimeout = 5\n")
    # the monitor's own krb5.conf names the DC's KDC for its directory bind
    monkeypatch.setenv("KRB5_CONFIG", str(samba_dc.krb5_conf))
    server = ServerProcess(tmp_path / "state", ("--config", str(config)))
    try:
        assert wait_for(lambda: "NTAuth refreshed from" in server.log, timeout=20), server.log
        # 1. a UPN-only card: mapped through the directory, a TGT from Samba's KDC
        card = upn_only_card(pki, 0x5A01)
        with sign_in(server, pcscd, card) as result:
            assert f"signed in: {USER}@example.test as local account {ACCOUNT}" in result, \
                server.log
            assert f"TGT for {ACCOUNT}@{REALM}" in result, result
            session = re.search(r"\[session (\d+)\]", result).group(1)  # type: ignore[union-attr]
            klist = subprocess.run(
                [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
                 str(server.state_dir), "exec", session, "--", "klist"],
                capture_output=True, text=True, timeout=30, check=False)
        assert f"Default principal: {ACCOUNT}@{REALM}" in klist.stdout, \
            klist.stdout + klist.stderr
        assert f"krbtgt/{REALM}@{REALM}" in klist.stdout, klist.stdout
        assert card.pins_presented > 0
        assert card.state.pin_retries_left == card.state.pin_retries_limit
        # 2. a card of a CA Samba's KDC trusts (it granted that CA's certificate a TGT
        #    above) but NTAuth does not list: refused before the PIN, no try spent
        other = upn_only_card(pki, 0x5A02, untrusted=True)
        with sign_in(server, pcscd, other) as refused:
            pass
        assert "sign-in refused (not_in_ntauth)" in refused, refused
        assert other.pins_presented == 0
        assert other.state.pin_retries_left == other.state.pin_retries_limit
        # 3. a certificate with no sign-in EKU (emailProtection alone), which Samba's KDC
        #    also granted a TGT above: refused as rdscard's policy says, before the PIN
        no_eku = upn_only_card(pki, 0x5A03, profile=CertProfile.SIGNATURE)
        with sign_in(server, pcscd, no_eku) as refused:
            pass
        assert "sign-in refused (wrong_eku)" in refused, refused
        assert no_eku.pins_presented == 0
        records = [json.loads(line) for line in
                   (server.state_dir / "audit.jsonl").read_text().splitlines()]
        (success,) = [r for r in records if r["result"] == "success"]
        assert (success["account"], success["upn"]) == (ACCOUNT, f"{USER}@example.test")
        assert [r["reason"] for r in records if r["result"] == "refused"] == [
            "not_in_ntauth", "wrong_eku"]
    finally:
        server.stop()
        samba_dc.ldbmodify(f"dn: {ntauth_dn(samba_dc.base_dn)}\nchangetype: delete\n")
