"""The Kerberos acceptor against MIT's KDC and MIT's initiator (python-gssapi as the client)."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import gssapi
import pytest

from rdscard.logon.gss import KerberosAcceptor, acceptor_credentials
from rdscard.pdu.credssp import (
    CredType,
    TsCredentials,
    TsCspDataDetail,
    TsRequest,
    TsSmartCardCreds,
)
from rdscard.pki.ca import RealmPki
from rdscard.protocol.credssp import (
    CLIENT_SERVER_MAGIC,
    SERVER_CLIENT_MAGIC,
    CredSspServer,
    CredSspState,
    GssError,
)
from rdscard.secret import Secret
from rdscard.testbed.kdc import MitKdc
from tests.integration.card.conftest import pki  # noqa: F401

pytestmark = pytest.mark.integration

REALM = "EXAMPLE.TEST"
PASSWORD = "kerberos-test-password"
KEY = b"\x30\x0a" + bytes(range(10))
NONCE = bytes(range(32))
SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")


@pytest.fixture
def realm(pki: RealmPki, tmp_path: Path,  # noqa: F811
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MitKdc, Path, Path]]:
    with MitKdc(tmp_path / "kdc", REALM, pki) as kdc:
        keytab = tmp_path / "rdscard.keytab"
        kdc.add_service("TERMSRV/localhost", keytab)
        kdc.add_service("TERMSRV/elsewhere", tmp_path / "other.keytab")
        principal = kdc.add_password_user("bob", PASSWORD)
        ccache = tmp_path / "bob.ccache"
        kdc.kinit_password(principal, PASSWORD, ccache)
        monkeypatch.setenv("KRB5_CONFIG", str(kdc.krb5_conf))
        monkeypatch.setenv("KRB5RCACHEDIR", str(tmp_path))
        monkeypatch.delenv("KRB5_KTNAME", raising=False)
        yield kdc, keytab, ccache


def initiator(ccache: Path, target: str = "TERMSRV@localhost",
              mech: str = "kerberos") -> gssapi.SecurityContext:
    creds = gssapi.Credentials(usage="initiate", store={b"ccache": f"FILE:{ccache}".encode()})
    name = gssapi.Name(target, gssapi.NameType.hostbased_service)
    flags = [gssapi.RequirementFlag.mutual_authentication, gssapi.RequirementFlag.confidentiality,
             gssapi.RequirementFlag.integrity]
    oid = SPNEGO if mech == "spnego" else gssapi.MechType.kerberos
    return gssapi.SecurityContext(name=name, creds=creds, usage="initiate", mech=oid,
                                  flags=flags)


def run_exchange(server: CredSspServer, client: gssapi.SecurityContext, version: int
                 ) -> TsSmartCardCreds | None:
    """The client side of MS-CSSP 3.1.5 with MIT as the initiator."""
    token = client.step()
    while True:
        step = server.receive(TsRequest(version, (token,), client_nonce=NONCE).encode())
        assert not step.failure, step.failure
        reply = TsRequest.decode(step.reply)
        assert reply.version == min(version, 6)
        token = client.step(reply.nego_tokens[0]) if reply.nego_tokens else None
        if client.complete:
            break
    proof = hashlib.sha256(CLIENT_SERVER_MAGIC + NONCE + KEY).digest() if version >= 5 else KEY
    step = server.receive(TsRequest(version, (token,) if token else (),
                                    pub_key_auth=client.wrap(proof, True).message,
                                    client_nonce=NONCE).encode())
    assert not step.failure, step.failure
    sealed = TsRequest.decode(step.reply).pub_key_auth
    assert sealed is not None
    # The Windows SSPI layout FreeRDP 3 requires: RRC 28 (rotated trailer), EC 0.
    tok_id, flags, filler, ec, rrc = struct.unpack(">HBBHH", sealed[:8])
    assert (tok_id, filler, ec, rrc) == (0x0504, 0xFF, 0, 28)
    assert flags & 0x02  # sealed (confidential)
    answer = client.unwrap(sealed).message
    expected = hashlib.sha256(SERVER_CLIENT_MAGIC + NONCE + KEY).digest() if version >= 5 \
        else bytes((KEY[0] + 1,)) + KEY[1:]
    assert answer == expected
    card = TsSmartCardCreds(Secret(b"58213907"), TsCspDataDetail(1, None, "Virtual PCD 00 00"))
    creds = TsCredentials(CredType.SMART_CARD, card.encode()).encode()
    step = server.receive(TsRequest(version, auth_info=client.wrap(creds, True).message).encode())
    return step.credentials


@pytest.mark.parametrize("mech, version", [("spnego", 6), ("kerberos", 2), ("kerberos", 6)])
def test_mit_initiator_delegates_smart_card_credentials(
        realm: tuple[MitKdc, Path, Path], mech: str, version: int) -> None:
    _kdc, keytab, ccache = realm
    server = CredSspServer(KerberosAcceptor(acceptor_credentials(keytab)), KEY)
    credentials = run_exchange(server, initiator(ccache, mech=mech), version)
    assert credentials is not None and bytes(credentials.pin.reveal()) == b"58213907"
    assert server.client_principal == f"bob@{REALM}"
    assert server.state is CredSspState.DONE


def test_a_ticket_for_another_service_is_refused(realm: tuple[MitKdc, Path, Path]) -> None:
    _kdc, keytab, ccache = realm
    server = CredSspServer(KerberosAcceptor(acceptor_credentials(keytab)), KEY)
    client = initiator(ccache, target="TERMSRV@elsewhere")
    step = server.receive(TsRequest(6, (client.step(),), client_nonce=NONCE).encode())
    assert step.failure.startswith("Kerberos refused") and step.credentials is None
    assert TsRequest.decode(step.reply).error_code == 0xC000006D


def test_a_replayed_ticket_is_refused(realm: tuple[MitKdc, Path, Path]) -> None:
    _kdc, keytab, ccache = realm
    token = initiator(ccache).step()
    first = CredSspServer(KerberosAcceptor(acceptor_credentials(keytab)), KEY)
    assert not first.receive(TsRequest(6, (token,), client_nonce=NONCE).encode()).failure
    second = CredSspServer(KerberosAcceptor(acceptor_credentials(keytab)), KEY)
    step = second.receive(TsRequest(6, (token,), client_nonce=NONCE).encode())
    assert "Kerberos refused" in step.failure


def test_a_restricted_service_principal_takes_no_other_key(
        realm: tuple[MitKdc, Path, Path], tmp_path: Path) -> None:
    _kdc, keytab, _ccache = realm
    with pytest.raises(GssError):
        acceptor_credentials(keytab, f"TERMSRV/elsewhere@{REALM}")
    assert os.path.exists(keytab)
