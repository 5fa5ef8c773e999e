"""Volatile card state (security status, pending exchanges) and the handler interface.

SP 800-73-4 Part 2 2.4: the security status indicators belong to the
selected application and are all reset when the card is powered off or
reset. Command handlers are plain functions from a :class:`CardContext` and a
command APDU to a :data:`Reply`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rdscard.card.crypto import PrivateKey
from rdscard.card.state import CardState
from rdscard.pdu.apdu import CommandApdu, StatusWord

Reply = tuple[int, bytes]
"""Status word and response data of one command."""


def reply(sw: int, data: bytes = b"") -> Reply:
    return sw, data


OK: Reply = (StatusWord.SUCCESS, b"")


@dataclass
class Session:
    """Security status and half-finished exchanges; nothing here survives a reset."""

    selected: bool = False
    pin_verified: bool = False
    pin_always: bool = False  # PIN verified and not yet spent on a "PIN always" key (9C)
    puk_verified: bool = False
    admin: bool = False
    witness: bytes | None = None  # mutual authentication: the witness sent encrypted
    challenge: bytes | None = None  # external authentication: the challenge sent clear

    def clear_security(self) -> None:
        self.pin_verified = self.pin_always = self.puk_verified = self.admin = False
        self.witness = self.challenge = None


class CardContext(Protocol):
    """What command handlers may use of the card."""

    state: CardState
    session: Session
    rng: Callable[[int], bytes]

    def changed(self) -> None:
        """Report that :attr:`state` changed (the owner persists it)."""

    def private_key(self, key_ref: int) -> PrivateKey | None:
        """The loaded private key of ``key_ref``, or None when the slot is empty."""


Handler = Callable[[CardContext, CommandApdu], Reply]
