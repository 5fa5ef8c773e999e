"""One PIN check that costs one try only when wrong, and proof of possession, on a virtual card."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.challenge import (
    CHALLENGE_LENGTH,
    SHA256_DIGEST_INFO,
    emsa_pkcs1_v15_sha256,
    prove_possession,
    read_sign_in_certificate,
    verify_pin_once,
)
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.pki.ca import CertProfile, RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import Algorithm, Ins
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport, TransportError
from rdscard.secret import Secret

PIN = b"739182"
PUK = b"87654321"


class CountingTransport:
    """Records every command APDU sent to the card."""

    def __init__(self, card: VirtualPivCard) -> None:
        self.inner = InProcessTransport(card)
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(bytes(apdu))
        return self.inner.transmit(apdu)

    def pin_verifies(self) -> int:
        """VERIFY commands carrying a PIN (not the empty status VERIFY)."""
        return sum(1 for a in self.sent if a[1] == Ins.VERIFY and len(a) > 4)


class PulledTransport:
    """A card taken out of the reader."""

    def transmit(self, apdu: bytes) -> bytes:
        raise TransportError("card in Virtual PCD 00 00 stopped answering: was it removed?")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


def _provisioned(pki: RealmPki, user: str, key_type: str) -> dict[str, object]:
    state = CardState.new(serial=0x2000 + len(user), pin=PIN, puk=PUK)
    provision(PivClient(InProcessTransport(VirtualPivCard(state))), pki, user, Credentials(
        pin=bytearray(PIN), puk=bytearray(PUK)), ProvisionOptions(key_type=key_type))
    return state.to_json()


@pytest.fixture(scope="module")
def rsa_state(pki: RealmPki) -> dict[str, object]:
    return _provisioned(pki, "alice", "rsa2048")


@pytest.fixture(scope="module")
def ecc_state(pki: RealmPki) -> dict[str, object]:
    return _provisioned(pki, "bob", "p256")


def fresh(doc: dict[str, object]) -> tuple[CardState, PivClient, CountingTransport]:
    state = CardState.from_json(doc)
    transport = CountingTransport(VirtualPivCard(state))
    client = PivClient(transport)
    client.select()
    return state, client, transport


def refusal(call: Callable[[], object]) -> SignInRefused:
    with pytest.raises(SignInRefused) as info:
        call()
    return info.value


# -- the PIN ----------------------------------------------------------------------------------
def test_right_pin_costs_no_try_and_is_wiped(rsa_state: dict[str, object]) -> None:
    state, client, transport = fresh(rsa_state)
    pin = Secret(PIN)
    check = verify_pin_once(client, pin)
    assert check.tries_left_before == 3
    assert state.pin_retries_left == 3
    assert transport.pin_verifies() == 1
    assert len(pin) == 0 and bytes(pin.reveal()) == b""


def test_wrong_pin_costs_exactly_one_try_and_is_never_retried(
        rsa_state: dict[str, object]) -> None:
    state, client, transport = fresh(rsa_state)
    pin = Secret(b"000000")
    error = refusal(lambda: verify_pin_once(client, pin))
    assert error.reason_code is ReasonCode.WRONG_PIN
    assert error.tries_left == 2 and "2 tries left" in error.message
    assert state.pin_retries_left == 2
    assert transport.pin_verifies() == 1
    assert len(pin) == 0
    assert "000000" not in error.message and "000000" not in repr(error)


def test_last_wrong_try_blocks_and_says_how_to_unblock(rsa_state: dict[str, object]) -> None:
    state, client, _ = fresh(rsa_state)
    state.pin_retries_left = 1
    error = refusal(lambda: verify_pin_once(client, Secret(b"000000")))
    assert error.reason_code is ReasonCode.PIN_BLOCKED and "PUK" in error.message
    assert state.pin_retries_left == 0


def test_one_try_left_is_singular(rsa_state: dict[str, object]) -> None:
    state, client, _ = fresh(rsa_state)
    state.pin_retries_left = 2
    error = refusal(lambda: verify_pin_once(client, Secret(b"000000")))
    assert error.tries_left == 1 and "1 try left" in error.message


def test_blocked_card_is_refused_before_any_pin_is_sent(rsa_state: dict[str, object]) -> None:
    state, client, transport = fresh(rsa_state)
    state.pin_retries_left = 0
    pin = Secret(PIN)
    error = refusal(lambda: verify_pin_once(client, pin))
    assert error.reason_code is ReasonCode.PIN_BLOCKED
    assert "unblock it with the PUK" in error.message
    assert transport.pin_verifies() == 0
    assert len(pin) == 0


@pytest.mark.parametrize("bad", [b"", b"123456789", b"12\xff456"])
def test_impossible_pin_is_refused_without_touching_the_card(
        rsa_state: dict[str, object], bad: bytes) -> None:
    state, client, transport = fresh(rsa_state)
    before = len(transport.sent)
    error = refusal(lambda: verify_pin_once(client, Secret(bad)))
    assert error.reason_code is ReasonCode.BAD_PIN
    assert len(transport.sent) == before and state.pin_retries_left == 3


def test_removed_card_is_a_card_error_and_the_pin_is_wiped() -> None:
    pin = Secret(PIN)
    error = refusal(lambda: verify_pin_once(PivClient(PulledTransport()), pin))
    assert error.reason_code is ReasonCode.CARD_ERROR and "removed" in error.message
    assert len(pin) == 0


# -- proof of possession ------------------------------------------------------------------------
@pytest.mark.parametrize(("fixture", "algorithm"), [("rsa_state", Algorithm.RSA_2048),
                                                    ("ecc_state", Algorithm.ECC_P256)])
def test_card_proves_possession_of_its_certificate_key(
        request: pytest.FixtureRequest, fixture: str, algorithm: Algorithm) -> None:
    _, client, _ = fresh(request.getfixturevalue(fixture))
    cert = read_sign_in_certificate(client)
    verify_pin_once(client, Secret(PIN))
    challenges = iter([b"\x01" * CHALLENGE_LENGTH, b"\x02" * CHALLENGE_LENGTH])
    first = prove_possession(client, cert, rng=lambda n: next(challenges))
    second = prove_possession(client, cert, rng=lambda n: next(challenges))
    assert first.algorithm is algorithm
    assert first.challenge != second.challenge and first.signature != second.signature


def test_proof_fails_for_another_cards_certificate(rsa_state: dict[str, object],
                                                   pki: RealmPki) -> None:
    _, client, _ = fresh(rsa_state)
    verify_pin_once(client, Secret(PIN))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = pki.issue_user_certificate("alice", other.public_key())
    error = refusal(lambda: prove_possession(client, foreign))
    assert error.reason_code is ReasonCode.PROOF_FAILED
    assert "re-provision" in error.message


def test_proof_needs_the_pin_first(rsa_state: dict[str, object]) -> None:
    _, client, _ = fresh(rsa_state)
    cert = read_sign_in_certificate(client)
    error = refusal(lambda: prove_possession(client, cert))
    assert error.reason_code is ReasonCode.CARD_ERROR
    assert "security status not satisfied" in error.message


def test_card_without_certificate_is_refused() -> None:
    state = CardState.new(serial=0x3000, pin=PIN, puk=PUK)
    client = PivClient(InProcessTransport(VirtualPivCard(state)))
    client.select()
    error = refusal(lambda: read_sign_in_certificate(client))
    assert error.reason_code is ReasonCode.NO_CERTIFICATE and "9A" in error.message


def test_read_certificate_matches_the_issued_one(rsa_state: dict[str, object],
                                                 pki: RealmPki) -> None:
    _, client, _ = fresh(rsa_state)
    cert = read_sign_in_certificate(client)
    assert cert.subject.rfc4514_string().startswith("CN=alice (Authentication)")
    assert x509.load_pem_x509_certificate(
        pki.layout.user_cert("alice", CertProfile.AUTHENTICATION).read_bytes()) == cert


# -- the PKCS#1 v1.5 block ---------------------------------------------------------------------
def test_emsa_block_layout() -> None:
    # RFC 8017 9.2: 00 01 FF..FF 00 || DigestInfo(SHA-256) || H, 256 bytes for RSA-2048.
    block = emsa_pkcs1_v15_sha256(b"abc", 256)
    assert len(block) == 256
    # 256 - 3 - (19-byte DigestInfo prefix + 32-byte hash) = 202 bytes of FF padding.
    assert block[:2] == b"\x00\x01" and set(block[2:204]) == {0xFF} and block[204] == 0
    assert block[205:224] == SHA256_DIGEST_INFO
    assert block[224:] == hashlib.sha256(b"abc").digest()
    # SHA-256("abc") = ba7816bf 8f01cfea ... (FIPS 180-2 B.1)
    assert block[224:228] == bytes.fromhex("ba7816bf")


@settings(max_examples=5, deadline=None)
@given(st.binary(max_size=64))
def test_raw_rsa_of_the_block_is_a_standard_signature(message: bytes) -> None:
    key = _software_key()
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    block = emsa_pkcs1_v15_sha256(message, 256)
    signature = pow(int.from_bytes(block, "big"), numbers.d, n).to_bytes(256, "big")
    key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


_KEY: list[rsa.RSAPrivateKey] = []


def _software_key() -> rsa.RSAPrivateKey:
    if not _KEY:
        _KEY.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEY[0]
