"""The CredSSP server machine (MS-CSSP 3.1.5) against a scripted acceptor."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rdscard.pdu.credssp import (
    CredType,
    NtStatus,
    TsCredentials,
    TsCspDataDetail,
    TsRequest,
    TsSmartCardCreds,
    subject_public_key,
)
from rdscard.protocol.credssp import (
    CLIENT_SERVER_MAGIC,
    SERVER_CLIENT_MAGIC,
    CredSspServer,
    CredSspState,
    GssError,
)
from rdscard.secret import Secret

KEY = b"\x30\x0a" + bytes(range(10))
NONCE = bytes(range(100, 132))


class FakeAcceptor:
    """Completes after ``rounds`` tokens; 'seals' by prefixing a tag (reversible, checked)."""

    def __init__(self, rounds: int = 1) -> None:
        self.rounds = rounds
        self.seen: list[bytes] = []

    @property
    def complete(self) -> bool:
        return len(self.seen) >= self.rounds

    @property
    def client_principal(self) -> str:
        return "alice@EXAMPLE.TEST"

    def step(self, token: bytes) -> bytes | None:
        if token == b"bad":
            raise GssError("bad token")
        if token == b"expired":
            raise GssError("ticket expired", error_token=b"krb-error")
        self.seen.append(token)
        return b"reply-" + token

    def wrap(self, data: bytes) -> bytes:
        return b"S:" + data

    def unwrap(self, data: bytes) -> bytes:
        if not data.startswith(b"C:"):
            raise GssError("not sealed by the client")
        return data[2:]


def sealed_credentials(cred_type: int = CredType.SMART_CARD) -> bytes:
    card = TsSmartCardCreds(Secret(b"123456"), TsCspDataDetail(1, None, "Virtual PCD 00 00"))
    return b"C:" + TsCredentials(cred_type, card.encode()).encode()


def client_hash() -> bytes:
    return b"C:" + hashlib.sha256(CLIENT_SERVER_MAGIC + NONCE + KEY).digest()


def test_version_6_exchange_with_two_rounds() -> None:
    server = CredSspServer(FakeAcceptor(rounds=2), KEY)
    first = server.receive(TsRequest(6, (b"t1",), client_nonce=NONCE).encode())
    assert TsRequest.decode(first.reply) == TsRequest(6, (b"reply-t1",))
    second = server.receive(TsRequest(6, (b"t2",), client_nonce=NONCE).encode())
    assert TsRequest.decode(second.reply) == TsRequest(6, (b"reply-t2",))
    assert server.state is CredSspState.PUB_KEY_AUTH
    third = server.receive(TsRequest(6, pub_key_auth=client_hash(), client_nonce=NONCE).encode())
    answer = TsRequest.decode(third.reply)
    assert answer.pub_key_auth == b"S:" + hashlib.sha256(
        SERVER_CLIENT_MAGIC + NONCE + KEY).digest()
    done = server.receive(TsRequest(6, auth_info=sealed_credentials()).encode())
    assert done.credentials is not None and not done.failure
    assert bytes(done.credentials.pin.reveal()) == b"123456"
    assert done.credentials.csp_data.reader_name == "Virtual PCD 00 00"
    assert server.state is CredSspState.DONE and server.client_principal == "alice@EXAMPLE.TEST"


def test_token_and_public_key_in_one_message() -> None:  # FreeRDP sends a last token with it
    server = CredSspServer(FakeAcceptor(rounds=1), KEY)
    step = server.receive(TsRequest(6, (b"t1",), pub_key_auth=client_hash(),
                                    client_nonce=NONCE).encode())
    reply = TsRequest.decode(step.reply)
    assert reply.nego_tokens == (b"reply-t1",) and reply.pub_key_auth is not None
    assert server.state is CredSspState.CREDENTIALS


def test_version_2_echoes_the_key_plus_one_and_answers_version_2() -> None:
    server = CredSspServer(FakeAcceptor(), KEY)
    server.receive(TsRequest(2, (b"t1",)).encode())
    step = server.receive(TsRequest(2, pub_key_auth=b"C:" + KEY).encode())
    reply = TsRequest.decode(step.reply)
    assert reply.version == 2
    assert reply.pub_key_auth == b"S:" + bytes((KEY[0] + 1,)) + KEY[1:]


def test_a_later_client_gets_version_6() -> None:
    server = CredSspServer(FakeAcceptor(rounds=2), KEY)
    assert TsRequest.decode(server.receive(TsRequest(9, (b"a",)).encode()).reply).version == 6


@pytest.mark.parametrize("version, status_sent", [(6, True), (3, True), (2, False)])
def test_a_bad_token_is_refused_with_an_error_code_from_version_3(version: int,
                                                                  status_sent: bool) -> None:
    server = CredSspServer(FakeAcceptor(), KEY)
    step = server.receive(TsRequest(version, (b"bad",)).encode())
    assert step.failure == "bad token" and server.state is CredSspState.FAILED
    if status_sent:
        assert TsRequest.decode(step.reply).error_code == NtStatus.STATUS_LOGON_FAILURE
    else:
        assert step.reply == b""


@pytest.mark.parametrize("version", [6, 3])
def test_the_mechanisms_error_token_goes_back_with_the_error_code(version: int) -> None:
    server = CredSspServer(FakeAcceptor(), KEY)
    step = server.receive(TsRequest(version, (b"expired",)).encode())
    reply = TsRequest.decode(step.reply)
    assert (reply.error_code, reply.nego_tokens) == (NtStatus.STATUS_LOGON_FAILURE,
                                                      (b"krb-error",))
    assert TsRequest.decode(server.receive(TsRequest(version, (b"bad",)).encode()).reply) \
        .nego_tokens == ()  # nothing after the end, and no token where none was made


def test_a_wrong_public_key_hash_is_a_man_in_the_middle() -> None:
    server = CredSspServer(FakeAcceptor(), KEY)
    server.receive(TsRequest(6, (b"t1",), client_nonce=NONCE).encode())
    other = b"C:" + hashlib.sha256(CLIENT_SERVER_MAGIC + NONCE + b"another key").digest()
    step = server.receive(TsRequest(6, pub_key_auth=other, client_nonce=NONCE).encode())
    assert "man in the middle" in step.failure
    assert TsRequest.decode(step.reply).error_code == NtStatus.STATUS_LOGON_FAILURE
    assert step.credentials is None


def test_version_5_without_nonce_is_refused() -> None:
    server = CredSspServer(FakeAcceptor(), KEY)
    server.receive(TsRequest(6, (b"t1",)).encode())
    step = server.receive(TsRequest(6, pub_key_auth=client_hash()).encode())
    assert "clientNonce" in step.failure


def test_password_credentials_are_refused() -> None:
    server = CredSspServer(FakeAcceptor(), KEY)
    server.receive(TsRequest(6, (b"t1",), client_nonce=NONCE).encode())
    server.receive(TsRequest(6, pub_key_auth=client_hash(), client_nonce=NONCE).encode())
    step = server.receive(TsRequest(6, auth_info=sealed_credentials(CredType.PASSWORD)).encode())
    assert step.credentials is None and "password credentials" in step.failure
    assert step.error_code == NtStatus.STATUS_NOT_SUPPORTED


@pytest.mark.parametrize("data, reason", [
    (b"\x30\x00", "malformed"),
    (TsRequest(1, (b"t",)).encode(), "version 1"),
    (TsRequest(6).encode(), "no negoToken"),
    (TsRequest(6, error_code=0xC000006D).encode(), "gave up"),
])
def test_bad_first_messages(data: bytes, reason: str) -> None:
    step = CredSspServer(FakeAcceptor(), KEY).receive(data)
    assert reason in step.failure and step.credentials is None


def test_nothing_after_the_end() -> None:
    server = CredSspServer(FakeAcceptor(), KEY)
    server.receive(TsRequest(6, (b"bad",)).encode())
    assert server.receive(TsRequest(6, (b"t1",)).encode()).failure


def test_credentials_before_the_public_key_are_not_taken() -> None:
    server = CredSspServer(FakeAcceptor(), KEY)
    server.receive(TsRequest(6, (b"t1",), client_nonce=NONCE).encode())
    step = server.receive(TsRequest(6, auth_info=sealed_credentials()).encode())
    assert step.credentials is None and step.failure


@pytest.mark.parametrize("key", [
    rsa.generate_private_key(65537, 2048).public_key(),
    ec.generate_private_key(ec.SECP256R1()).public_key(),
])
def test_subject_public_key_of_rsa_and_ec(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
                                          ) -> None:
    spki = key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(key, rsa.RSAPublicKey):
        expected = key.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.PKCS1)
    else:
        expected = key.public_bytes(serialization.Encoding.X962,
                                    serialization.PublicFormat.UncompressedPoint)
    assert subject_public_key(spki) == expected


class KeepingAcceptor(FakeAcceptor):
    """Keeps every unsealed message it returned, as GSS returns it: an immutable bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.returned: list[bytes] = []

    def unwrap(self, data: bytes) -> bytes:
        plain = super().unwrap(data)
        self.returned.append(plain)
        return plain


def test_the_unsealed_credentials_are_zeroed_once_the_pin_is_taken() -> None:
    acceptor = KeepingAcceptor()
    server = CredSspServer(acceptor, KEY)
    server.receive(TsRequest(6, (b"t1",), client_nonce=NONCE).encode())
    server.receive(TsRequest(6, pub_key_auth=client_hash(), client_nonce=NONCE).encode())
    done = server.receive(TsRequest(6, auth_info=sealed_credentials()).encode())
    assert done.credentials is not None
    assert bytes(done.credentials.pin.reveal()) == b"123456"
    assert done.credentials.csp_data.reader_name == "Virtual PCD 00 00"
    plain = acceptor.returned[-1]
    assert len(plain) > 20 and not any(plain)  # the GSS output: zeroed in place


def test_password_credentials_are_zeroed_too_and_refused() -> None:
    acceptor = KeepingAcceptor()
    server = CredSspServer(acceptor, KEY)
    server.receive(TsRequest(6, (b"t1",), client_nonce=NONCE).encode())
    server.receive(TsRequest(6, pub_key_auth=client_hash(), client_nonce=NONCE).encode())
    step = server.receive(TsRequest(6, auth_info=sealed_credentials(CredType.PASSWORD)).encode())
    assert "password credentials" in step.failure
    assert not any(acceptor.returned[-1])
