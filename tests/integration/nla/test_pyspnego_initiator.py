"""pyspnego's initiator (Kerberos and Negotiate) against the project's GSS acceptor.

A second client implementation beside MIT's own (test_gss_acceptor): pyspnego
builds its tokens and seals its messages through its own code paths (its own
SPNEGO for Negotiate), with the tickets of MIT's KDC. The whole CredSSP
exchange runs (MS-CSSP 3.1.5): tokens, pubKeyAuth both ways, then the
delegated smart card credentials.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import spnego

from rdscard.logon.gss import KerberosAcceptor, acceptor_credentials
from rdscard.pdu.credssp import (
    CredType,
    NtStatus,
    TsCredentials,
    TsCspDataDetail,
    TsRequest,
    TsSmartCardCreds,
)
from rdscard.protocol.credssp import (
    CLIENT_SERVER_MAGIC,
    SERVER_CLIENT_MAGIC,
    CredSspServer,
    CredSspState,
)
from rdscard.secret import Secret
from rdscard.testbed.kdc import MitKdc
from tests.integration.nla.test_gss_acceptor import KEY, NONCE, REALM, realm  # noqa: F401

pytestmark = pytest.mark.integration

PIN = b"58213907"


def pyspnego_client(protocol: str) -> spnego.ContextProxy:
    """pyspnego's initiator for TERMSRV/localhost with the default ccache (bob's)."""
    return spnego.client(hostname="localhost", service="TERMSRV", protocol=protocol,
                         context_req=spnego.ContextReq.mutual_auth
                         | spnego.ContextReq.confidentiality | spnego.ContextReq.integrity)


@pytest.mark.parametrize("protocol", ["kerberos", "negotiate"])
def test_pyspnego_initiator_delegates_smart_card_credentials(
        realm: tuple[MitKdc, Path, Path], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        protocol: str) -> None:
    _kdc, keytab, ccache = realm
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{ccache}")
    server = CredSspServer(KerberosAcceptor(acceptor_credentials(keytab)), KEY)
    client = pyspnego_client(protocol)
    token = client.step()
    assert token
    rounds = 0
    while True:
        rounds += 1
        step = server.receive(TsRequest(6, (token,), client_nonce=NONCE).encode())
        assert not step.failure, step.failure
        reply = TsRequest.decode(step.reply)
        token = client.step(reply.nego_tokens[0]) if reply.nego_tokens else None
        if client.complete:
            break
        assert rounds < 5
    assert client.negotiated_protocol == "kerberos"
    proof = hashlib.sha256(CLIENT_SERVER_MAGIC + NONCE + KEY).digest()
    step = server.receive(TsRequest(6, (token,) if token else (),
                                    pub_key_auth=client.wrap(proof, encrypt=True).data,
                                    client_nonce=NONCE).encode())
    assert not step.failure, step.failure
    sealed = TsRequest.decode(step.reply).pub_key_auth
    assert sealed is not None
    # The server's Windows-style sealing (rotated trailer) unseals in pyspnego too.
    answer = client.unwrap(sealed)
    assert answer.encrypted
    assert answer.data == hashlib.sha256(SERVER_CLIENT_MAGIC + NONCE + KEY).digest()
    card = TsSmartCardCreds(Secret(PIN), TsCspDataDetail(1, None, "Virtual PCD 00 00"),
                            "bob", REALM)
    creds = TsCredentials(CredType.SMART_CARD, card.encode()).encode()
    step = server.receive(TsRequest(6, auth_info=client.wrap(creds, encrypt=True).data)
                          .encode())
    assert step.credentials is not None, step.failure
    assert bytes(step.credentials.pin.reveal()) == PIN
    assert (step.credentials.user_hint, step.credentials.domain_hint) == ("bob", REALM)
    assert server.client_principal == f"bob@{REALM}"
    assert server.state is CredSspState.DONE


def test_credentials_sealed_without_encryption_are_refused(
        realm: tuple[MitKdc, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """pyspnego can sign without sealing: the PIN must never travel only signed."""
    _kdc, keytab, ccache = realm
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{ccache}")
    server = CredSspServer(KerberosAcceptor(acceptor_credentials(keytab)), KEY)
    client = pyspnego_client("kerberos")
    token = client.step()
    while True:
        reply = TsRequest.decode(server.receive(
            TsRequest(6, (token,), client_nonce=NONCE).encode()).reply)
        token = client.step(reply.nego_tokens[0]) if reply.nego_tokens else None
        if client.complete:
            break
    proof = hashlib.sha256(CLIENT_SERVER_MAGIC + NONCE + KEY).digest()
    signed = client.wrap(proof, encrypt=False).data
    step = server.receive(TsRequest(6, (token,) if token else (), pub_key_auth=signed,
                                    client_nonce=NONCE).encode())
    assert "signed but not encrypted" in step.failure
    assert TsRequest.decode(step.reply).error_code == NtStatus.STATUS_LOGON_FAILURE
