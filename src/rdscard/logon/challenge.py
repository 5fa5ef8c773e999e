"""The card part of a sign-in: one PIN check, then proof of possession of the key.

PIN (SP 800-73-4 Part 2 3.2.1 VERIFY): an empty VERIFY first reads the tries
left without spending one, and a blocked PIN stops the sign-in there, with
the way to unblock it. Then exactly one VERIFY with the PIN: a wrong PIN costs
one try (the card's counter), a right one costs nothing, and nothing here
ever sends the PIN a second time. The :class:`~rdscard.secret.Secret` is
wiped when the check returns, whatever the outcome.

Proof of possession: the card signs a fresh random challenge with its PIV
Authentication key (slot 9A, Part 1 3.1.1) through GENERAL AUTHENTICATE, and
the signature is verified with the public key of the certificate that was
validated. RSA keys get an EMSA-PKCS1-v1_5 block built here (RFC 8017 9.2,
SHA-256 DigestInfo), as a PIV card only performs the raw private operation;
ECC keys sign the SHA-256 (P-256) or SHA-384 (P-384) digest (SP 800-73-4
Part 2 A.4). Every function takes a :class:`PivClient`, so the same code runs
over the virtual card in process, pcscd, or a session's redirected reader.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from rdscard.errors import ProtocolError
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.pki.piv_client import PinBlockedError, PivClient, PivError, WrongPinError
from rdscard.pki.piv_codec import Algorithm, KeyRef
from rdscard.pki.transport import TransportError
from rdscard.secret import Secret

CHALLENGE_LENGTH: Final = 32
PROOF_CONTEXT: Final = b"rdscard smart card sign-in proof of possession\x00"
# DER DigestInfo prefix for SHA-256 (RFC 8017 9.2 note 1).
SHA256_DIGEST_INFO: Final = bytes.fromhex("3031300d060960864801650304020105000420")
UNBLOCK_HINT: Final = ("unblock it with the PUK (for example `yubico-piv-tool -a unblock-pin`) "
                       "or ask the administrator, then sign in again")
RSA_ALGORITHMS: Final = {1024: Algorithm.RSA_1024, 2048: Algorithm.RSA_2048}
EC_ALGORITHMS: Final = {"secp256r1": (Algorithm.ECC_P256, hashes.SHA256()),
                        "secp384r1": (Algorithm.ECC_P384, hashes.SHA384())}


@dataclass(frozen=True)
class PinCheck:
    """A successful PIN check: the tries the card had left before it (None: already verified)."""

    tries_left_before: int | None


@dataclass(frozen=True)
class ProofOfPossession:
    """A verified signature of ``challenge`` by the card's key."""

    challenge: bytes
    signature: bytes
    algorithm: Algorithm


def _card_error(exc: Exception, what: str) -> SignInRefused:
    return SignInRefused(
        ReasonCode.CARD_ERROR,
        f"the card failed while {what} ({exc}): check that it is still in the reader "
        "and sign in again",
    )


def blocked_refusal() -> SignInRefused:
    return SignInRefused(ReasonCode.PIN_BLOCKED, f"the card's PIN is blocked: {UNBLOCK_HINT}",
                         tries_left=0)


def verify_pin_once(client: PivClient, pin: Secret) -> PinCheck:
    """Check ``pin`` on the card with exactly one VERIFY carrying it; wipes ``pin``.

    Raises :class:`SignInRefused`: ``WRONG_PIN`` with ``tries_left``,
    ``PIN_BLOCKED`` (before any try is spent when the card is already
    blocked), ``BAD_PIN`` for a PIN no card accepts (nothing is sent), or
    ``CARD_ERROR``.
    """
    try:
        buf = pin.reveal()
        if not 1 <= len(buf) <= 8 or 0xFF in buf:
            raise SignInRefused(ReasonCode.BAD_PIN,
                                "a PIV PIN is 1 to 8 characters long: type the card's PIN again")
        try:
            status = client.pin_status()
        except (PivError, ProtocolError, TransportError) as exc:
            raise _card_error(exc, "reading the PIN status") from None
        if status.blocked:
            raise blocked_refusal()
        try:
            client.verify_pin(buf)
        except WrongPinError as exc:
            left = exc.tries_left
            if left == 0:
                raise blocked_refusal() from None
            raise SignInRefused(
                ReasonCode.WRONG_PIN,
                f"wrong PIN: {left} {'try' if left == 1 else 'tries'} left before the card "
                "blocks it; type the PIN again",
                tries_left=left,
            ) from None
        except PinBlockedError:
            raise blocked_refusal() from None
        except (PivError, ProtocolError, TransportError) as exc:
            raise _card_error(exc, "checking the PIN") from None
        return PinCheck(tries_left_before=status.tries_left)
    finally:
        pin.wipe()


def read_sign_in_certificate(client: PivClient,
                             slot: int = KeyRef.AUTHENTICATION) -> x509.Certificate:
    """The certificate of ``slot`` (PIV Authentication by default), or a refusal."""
    try:
        cert = client.read_certificate(slot)
    except (PivError, ProtocolError, TransportError) as exc:
        raise _card_error(exc, "reading its certificate") from None
    if cert is None:
        raise SignInRefused(
            ReasonCode.NO_CERTIFICATE,
            f"the card has no certificate in slot {slot:02X} (PIV Authentication): provision "
            "the card with a sign-in certificate",
        )
    return cert


def emsa_pkcs1_v15_sha256(message: bytes, key_bytes: int) -> bytes:
    """The EMSA-PKCS1-v1_5 encoding of SHA-256(message) for a ``key_bytes``-byte modulus."""
    t = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if key_bytes < len(t) + 11:
        raise ValueError("RSA modulus too short for a SHA-256 PKCS#1 v1.5 signature")
    return b"\x00\x01" + b"\xff" * (key_bytes - len(t) - 3) + b"\x00" + t


def prove_possession(client: PivClient, cert: x509.Certificate, *,
                     slot: int = KeyRef.AUTHENTICATION,
                     rng: Callable[[int], bytes] = os.urandom) -> ProofOfPossession:
    """Have the card sign a fresh challenge and verify it with ``cert``'s public key.

    Needs the PIN verified first. Raises :class:`SignInRefused` ``PROOF_FAILED``
    when the signature does not verify (the card's key is not the
    certificate's), ``CARD_ERROR`` when the card fails.
    """
    challenge = rng(CHALLENGE_LENGTH)
    if len(challenge) != CHALLENGE_LENGTH:
        raise ValueError("the random source returned a short challenge")
    message = PROOF_CONTEXT + challenge
    public_key = cert.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            algorithm = RSA_ALGORITHMS.get(public_key.key_size)
            if algorithm is None:
                raise _unsupported(f"RSA-{public_key.key_size}")
            block = emsa_pkcs1_v15_sha256(message, public_key.key_size // 8)
            signature = client.general_authenticate(slot, algorithm, 0x81, block)
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            entry = EC_ALGORITHMS.get(public_key.curve.name)
            if entry is None:
                raise _unsupported(f"ECC {public_key.curve.name}")
            algorithm, digest_algorithm = entry
            h = hashes.Hash(digest_algorithm)
            h.update(message)
            signature = client.sign_ecdsa(slot, h.finalize(), algorithm)
            public_key.verify(signature, message, ec.ECDSA(digest_algorithm))
        else:
            raise _unsupported(type(public_key).__name__)
    except InvalidSignature:
        raise SignInRefused(
            ReasonCode.PROOF_FAILED,
            "the card's key did not sign as its certificate says (proof of possession "
            "failed): the certificate does not belong to this card's key; re-provision the card",
        ) from None
    except PivError as exc:
        raise _card_error(exc, "signing the sign-in challenge") from None
    except (ProtocolError, TransportError) as exc:
        raise _card_error(exc, "signing the sign-in challenge") from None
    return ProofOfPossession(challenge=challenge, signature=signature, algorithm=algorithm)


def _unsupported(kind: str) -> SignInRefused:
    return SignInRefused(
        ReasonCode.PROOF_FAILED,
        f"the certificate's {kind} key is not supported for sign-in: use RSA-2048 or ECC P-256",
    )
