"""Provision a PIV card for a user, and read back its status.

Provisioning (SP 800-73-4 Part 2 commands only, so it works on the virtual
card and on a real card): select the PIV application, authenticate with the
card management key, generate the key pairs on the card (9A, 9D by default;
9C and 9E on request), issue a certificate from the test PKI for each public
key and write it into the slot's certificate object, optionally write a
CHUID, then set the new management key, PIN and PUK.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509

from rdscard.errors import ConfigError
from rdscard.pki.ca import CertProfile, RealmPki
from rdscard.pki.piv_client import DEFAULT_MANAGEMENT_KEY, PinStatus, PivClient, PivError
from rdscard.pki.piv_codec import Algorithm, Chuid, DataObject, KeyRef

DEFAULT_PIN: Final = b"123456"
DEFAULT_PUK: Final = b"12345678"
# FASC-N for a non-federal issuer (agency code 9999), as commonly used on test cards.
TEST_FASCN: Final = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")

PROFILE_FOR_SLOT: Final = {
    KeyRef.AUTHENTICATION: CertProfile.AUTHENTICATION,
    KeyRef.DIGITAL_SIGNATURE: CertProfile.SIGNATURE,
    KeyRef.KEY_MANAGEMENT: CertProfile.KEY_MANAGEMENT,
    KeyRef.CARD_AUTHENTICATION: CertProfile.CARD_AUTHENTICATION,
}
KEY_TYPES: Final = {"rsa2048": Algorithm.RSA_2048, "p256": Algorithm.ECC_P256}


def key_algorithm(key_type: str) -> Algorithm:
    try:
        return KEY_TYPES[key_type]
    except KeyError:
        raise ConfigError(f"unknown key type {key_type!r}: use rsa2048 or p256") from None


@dataclass
class Credentials:
    """Current and new card secrets; :meth:`wipe` zeroes them. Never logged."""

    pin: bytearray = field(default_factory=lambda: bytearray(DEFAULT_PIN))
    puk: bytearray = field(default_factory=lambda: bytearray(DEFAULT_PUK))
    management_key: bytearray = field(default_factory=lambda: bytearray(DEFAULT_MANAGEMENT_KEY))
    management_algorithm: Algorithm = Algorithm.TDES
    new_pin: bytearray | None = None
    new_puk: bytearray | None = None
    new_management_key: bytearray | None = None
    new_management_algorithm: Algorithm | None = None

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"

    def wipe(self) -> None:
        for buf in (self.pin, self.puk, self.management_key, self.new_pin, self.new_puk,
                    self.new_management_key):
            if buf is not None:
                buf[:] = bytes(len(buf))


@dataclass(frozen=True)
class ProvisionOptions:
    """What to put on the card."""

    key_type: str = "rsa2048"
    slots: tuple[KeyRef, ...] = (KeyRef.AUTHENTICATION, KeyRef.KEY_MANAGEMENT)
    pkinit_san: bool = True
    upn: bool = True
    expired: bool = False
    untrusted: bool = False
    #: the account's objectSid, written in the SID extension of the authentication certificate
    sid: str | None = None
    write_chuid: bool = True


@dataclass(frozen=True)
class ProvisionResult:
    """The certificates written, by slot."""

    user: str
    certificates: dict[KeyRef, x509.Certificate]


def provision(
    client: PivClient,
    pki: RealmPki,
    user: str,
    credentials: Credentials,
    options: ProvisionOptions = ProvisionOptions(),
    *,
    progress: Callable[[str], None] = lambda _msg: None,
    rng: Callable[[int], bytes] = os.urandom,
) -> ProvisionResult:
    """Provision the card behind ``client`` for ``user`` of ``pki``."""
    algorithm = key_algorithm(options.key_type)
    progress("selecting the PIV application")
    client.select()
    progress("authenticating with the card management key")
    client.authenticate_admin(credentials.management_key, credentials.management_algorithm)
    certificates: dict[KeyRef, x509.Certificate] = {}
    for slot in options.slots:
        profile = PROFILE_FOR_SLOT[KeyRef(slot)]
        progress(f"generating a {options.key_type} key in slot {slot:02X} on the card")
        public_key = client.generate_key(slot, algorithm)
        progress(f"issuing the {profile.name.lower().replace('_', ' ')} certificate")
        cert = pki.issue_user_certificate(
            user, public_key, profile=profile, upn=options.upn,
            pkinit_san=options.pkinit_san and profile is CertProfile.AUTHENTICATION,
            expired=options.expired, untrusted=options.untrusted,
            sid=options.sid if profile is CertProfile.AUTHENTICATION else None,
        )
        progress(f"writing the certificate into slot {slot:02X}")
        client.write_certificate(slot, cert)
        pki.save_user_certificate(user, profile, cert)
        certificates[KeyRef(slot)] = cert
    if options.write_chuid:
        progress("writing the CHUID")
        expiry = (datetime.date.today() + datetime.timedelta(days=3650)).strftime("%Y%m%d")
        client.put_data(DataObject.CHUID, Chuid(TEST_FASCN, rng(16), expiry).encode())
    if credentials.new_management_key is not None:
        progress("setting the new management key")
        client.set_management_key(
            credentials.new_management_key,
            credentials.new_management_algorithm or credentials.management_algorithm,
        )
    if credentials.new_pin is not None:
        progress("setting the PIN")
        client.change_pin(credentials.pin, credentials.new_pin)
    if credentials.new_puk is not None:
        progress("setting the PUK")
        client.change_puk(credentials.puk, credentials.new_puk)
    return ProvisionResult(user=user, certificates=certificates)


@dataclass(frozen=True)
class CardStatus:
    """What ``rdscard card status`` shows."""

    chuid: Chuid | None
    certificates: dict[KeyRef, x509.Certificate]
    pin: PinStatus


def read_status(client: PivClient) -> CardStatus:
    """Select the PIV application and read CHUID, certificates and the PIN counter."""
    client.select()
    chuid: Chuid | None = None
    raw = client.get_data(DataObject.CHUID)
    if raw:
        chuid = Chuid.decode(raw)
    certificates: dict[KeyRef, x509.Certificate] = {}
    for slot in PROFILE_FOR_SLOT:
        try:
            cert = client.read_certificate(slot)
        except PivError:
            cert = None
        if cert is not None:
            certificates[slot] = cert
    return CardStatus(chuid=chuid, certificates=certificates, pin=client.pin_status())
