"""PIN and PUK commands: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER.

SP 800-73-4 Part 2 3.2.1-3.2.3, plus the YubiKey SET PIN RETRIES and
RESET. Reference data travels padded with FF to 8 bytes; each failed
comparison spends one try and answers 63Cx (x tries left); a counter at
zero answers 6983; a success restores the counter.
"""

from __future__ import annotations

import hmac
from typing import Final

from rdscard.card.constants import DEFAULT_MANAGEMENT_KEY, Algorithm, KeyRef, Tag
from rdscard.card.objects import discovery_object
from rdscard.card.session import OK, CardContext, Reply, reply
from rdscard.card.state import (
    DEFAULT_PIN,
    DEFAULT_PUK,
    DEFAULT_RETRIES,
    MAX_RETRIES,
    PIN_MAX,
    PIN_MIN,
    CardState,
)
from rdscard.pdu.apdu import CommandApdu, StatusWord

REFERENCE_SIZE: Final = 8
PAD: Final = 0xFF


def pad(value: bytes) -> bytes:
    """Reference data padded with FF to 8 bytes (SP 800-73-4 Part 2 2.4.3)."""
    return value.ljust(REFERENCE_SIZE, bytes((PAD,)))


def unpad_pin(value: bytes) -> bytes | None:
    """The PIN inside padded reference data, or None when it is not a valid PIN."""
    pin = value.rstrip(bytes((PAD,)))
    if not PIN_MIN <= len(pin) <= PIN_MAX or PAD in pin:
        return None
    return pin


def _left(state: CardState, ref: int) -> int:
    return state.pin_retries_left if ref == KeyRef.PIV_PIN else state.puk_retries_left


def _check(ctx: CardContext, ref: int, candidate: bytes) -> bool:
    """Compare ``candidate`` with the reference data of ``ref``, keeping the counter."""
    state = ctx.state
    stored = state.pin if ref == KeyRef.PIV_PIN else state.puk
    good = hmac.compare_digest(pad(stored), candidate)
    if ref == KeyRef.PIV_PIN:
        before = state.pin_retries_left
        state.pin_retries_left = state.pin_retries_limit if good else before - 1
        ctx.session.pin_verified = ctx.session.pin_always = good
    else:
        before = state.puk_retries_left
        state.puk_retries_left = state.puk_retries_limit if good else before - 1
        ctx.session.puk_verified = good
    if _left(state, ref) != before:
        ctx.changed()
    return good


def _tries(left: int) -> Reply:
    return reply(StatusWord.VERIFICATION_FAILED | min(left, 0x0F))


def verify(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """VERIFY (SP 800-73-4 Part 2 3.2.1); P1=FF resets the verification status."""
    if cmd.p2 not in (KeyRef.PIV_PIN, KeyRef.PUK):
        return reply(StatusWord.REFERENCE_DATA_NOT_FOUND)
    session = ctx.session
    if cmd.p1 == 0xFF:
        if cmd.data:
            return reply(StatusWord.WRONG_LENGTH)
        if cmd.p2 == KeyRef.PIV_PIN:
            session.pin_verified = session.pin_always = False
        else:
            session.puk_verified = False
        return OK
    if cmd.p1 != 0x00:
        return reply(StatusWord.INCORRECT_P1_P2)
    left = _left(ctx.state, cmd.p2)
    if not cmd.data:
        if left == 0:
            return reply(StatusWord.AUTHENTICATION_METHOD_BLOCKED)
        verified = session.pin_verified if cmd.p2 == KeyRef.PIV_PIN else session.puk_verified
        return OK if verified else _tries(left)
    if len(cmd.data) != REFERENCE_SIZE:
        return reply(StatusWord.WRONG_LENGTH)
    if left == 0:
        return reply(StatusWord.AUTHENTICATION_METHOD_BLOCKED)
    if _check(ctx, cmd.p2, cmd.data):
        return OK
    return _tries(_left(ctx.state, cmd.p2))


def change_reference_data(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """CHANGE REFERENCE DATA (SP 800-73-4 Part 2 3.2.2): old then new, 8 bytes each."""
    if cmd.p1 != 0x00:
        return reply(StatusWord.INCORRECT_P1_P2)
    if cmd.p2 not in (KeyRef.PIV_PIN, KeyRef.PUK):
        return reply(StatusWord.REFERENCE_DATA_NOT_FOUND)
    if len(cmd.data) != 2 * REFERENCE_SIZE:
        return reply(StatusWord.WRONG_LENGTH)
    old, new = cmd.data[:REFERENCE_SIZE], cmd.data[REFERENCE_SIZE:]
    new_value = unpad_pin(new) if cmd.p2 == KeyRef.PIV_PIN else new
    if new_value is None:
        return reply(StatusWord.INCORRECT_DATA)
    if _left(ctx.state, cmd.p2) == 0:
        return reply(StatusWord.AUTHENTICATION_METHOD_BLOCKED)
    if not _check(ctx, cmd.p2, old):
        return _tries(_left(ctx.state, cmd.p2))
    if cmd.p2 == KeyRef.PIV_PIN:
        ctx.state.pin = new_value
    else:
        ctx.state.puk = new_value
    ctx.changed()
    return OK


def reset_retry_counter(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """RESET RETRY COUNTER (SP 800-73-4 Part 2 3.2.3): PUK then the new PIN."""
    if cmd.p1 != 0x00:
        return reply(StatusWord.INCORRECT_P1_P2)
    if cmd.p2 != KeyRef.PIV_PIN:
        return reply(StatusWord.REFERENCE_DATA_NOT_FOUND)
    if len(cmd.data) != 2 * REFERENCE_SIZE:
        return reply(StatusWord.WRONG_LENGTH)
    puk, new = cmd.data[:REFERENCE_SIZE], cmd.data[REFERENCE_SIZE:]
    new_pin = unpad_pin(new)
    if new_pin is None:
        return reply(StatusWord.INCORRECT_DATA)
    if ctx.state.puk_retries_left == 0:
        return reply(StatusWord.AUTHENTICATION_METHOD_BLOCKED)
    if not _check(ctx, KeyRef.PUK, puk):
        return _tries(ctx.state.puk_retries_left)
    ctx.state.pin = new_pin
    ctx.state.pin_retries_left = ctx.state.pin_retries_limit
    ctx.changed()
    return OK


def set_pin_retries(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """SET PIN RETRIES (YubiKey): P1 PIN tries, P2 PUK tries; PIN and PUK back to defaults.

    Needs the management key and the PIN, as on a YubiKey.
    """
    if not ctx.session.admin or not ctx.session.pin_verified:
        return reply(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
    if not (1 <= cmd.p1 <= MAX_RETRIES and 1 <= cmd.p2 <= MAX_RETRIES):
        return reply(StatusWord.INCORRECT_P1_P2)
    state = ctx.state
    state.pin, state.puk = DEFAULT_PIN, DEFAULT_PUK
    state.pin_retries_limit = state.pin_retries_left = cmd.p1
    state.puk_retries_limit = state.puk_retries_left = cmd.p2
    ctx.session.pin_verified = ctx.session.pin_always = False
    ctx.changed()
    return OK


def reset_card(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """RESET (YubiKey): only once PIN and PUK are both blocked; back to a blank card.

    Keys, certificates and other objects go; the Discovery Object, default
    PIN, PUK, retry counts and management key come back.
    """
    if cmd.p1 or cmd.p2:
        return reply(StatusWord.INCORRECT_P1_P2)
    state = ctx.state
    if state.pin_retries_left or state.puk_retries_left:
        return reply(StatusWord.CONDITIONS_OF_USE_NOT_SATISFIED)
    state.pin, state.puk = DEFAULT_PIN, DEFAULT_PUK
    state.pin_retries_limit = state.pin_retries_left = DEFAULT_RETRIES
    state.puk_retries_limit = state.puk_retries_left = DEFAULT_RETRIES
    state.management_key_algorithm = Algorithm.TDES
    state.management_key = DEFAULT_MANAGEMENT_KEY
    state.keys.clear()
    state.data_objects.clear()
    state.data_objects[Tag.DISCOVERY] = discovery_object()[2:]
    ctx.session.clear_security()
    ctx.changed()
    return OK
