"""Key commands: GENERAL AUTHENTICATE, GENERATE ASYMMETRIC KEY PAIR and YubiKey key extensions.

SP 800-73-4 Part 2 3.2.4 and appendix A (authentication flows with the
dynamic authentication template 7C: 80 witness, 81 challenge, 82 response,
85 exponentiation) and 3.3.2; SET MANAGEMENT KEY and GET METADATA follow
the YubiKey PIV extensions that yubico-piv-tool uses.
"""

from __future__ import annotations

import hmac
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rdscard.card import crypto
from rdscard.card.constants import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_MANAGEMENT_KEY,
    SYMMETRIC_KEY_SIZES,
    Algorithm,
    KeyRef,
    is_asymmetric_slot,
)
from rdscard.card.session import OK, CardContext, Reply, reply
from rdscard.card.state import DEFAULT_PIN, DEFAULT_PUK, SlotKey
from rdscard.errors import ProtocolError
from rdscard.pdu.apdu import CommandApdu, StatusWord
from rdscard.pdu.tlv import Tlv, decode_all, find, tlv

TEMPLATE: Final = 0x7C
WITNESS: Final = 0x80
CHALLENGE: Final = 0x81
RESPONSE: Final = 0x82
EXPONENTIATION: Final = 0x85
CONTROL_TEMPLATE: Final = 0xAC
MAX_TEMPLATE_ITEMS: Final = 8

# YubiKey PIN policies reported by GET METADATA (1 never, 2 once per session, 3 always).
PIN_POLICY: Final[dict[int, int]] = {
    KeyRef.PIV_AUTHENTICATION: 2,
    KeyRef.DIGITAL_SIGNATURE: 3,
    KeyRef.KEY_MANAGEMENT: 2,
    KeyRef.CARD_AUTHENTICATION: 1,
}
TOUCH_NEVER: Final = 1


def _template(data: bytes) -> list[Tlv] | None:
    """The objects inside a single dynamic authentication template, or None."""
    try:
        outer = decode_all(data, "Dynamic Authentication Template", max_items=1)
        if len(outer) != 1 or outer[0].tag != TEMPLATE:
            return None
        return outer[0].children("Dynamic Authentication Template",
                                 max_items=MAX_TEMPLATE_ITEMS)
    except ProtocolError:
        return None


def general_authenticate(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """GENERAL AUTHENTICATE (SP 800-73-4 Part 2 3.2.4): P1 algorithm, P2 key reference."""
    if cmd.p2 == KeyRef.CARD_MANAGEMENT:
        return _admin(ctx, cmd)
    if not is_asymmetric_slot(cmd.p2):
        return reply(StatusWord.INCORRECT_P1_P2)
    slot = ctx.state.keys.get(cmd.p2)
    if slot is None:
        return reply(StatusWord.REFERENCE_DATA_NOT_FOUND)
    if cmd.p1 != slot.algorithm:
        return reply(StatusWord.INCORRECT_P1_P2)
    items = _template(cmd.data)
    if items is None:
        return reply(StatusWord.INCORRECT_DATA)
    response, challenge, point = (find(items, t) for t in (RESPONSE, CHALLENGE, EXPONENTIATION))
    if response is None or response.value or (challenge is None) == (point is None):
        return reply(StatusWord.INCORRECT_DATA)
    session = ctx.session
    if cmd.p2 == KeyRef.DIGITAL_SIGNATURE:
        allowed = session.pin_always
        session.pin_always = False
    elif cmd.p2 == KeyRef.CARD_AUTHENTICATION:
        allowed = True
    else:
        allowed = session.pin_verified
    if not allowed:
        return reply(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
    key = ctx.private_key(cmd.p2)
    if key is None:
        return reply(StatusWord.REFERENCE_DATA_NOT_FOUND)
    try:
        if point is not None:
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                return reply(StatusWord.INCORRECT_DATA)
            result = crypto.ecdh(key, point.value)
        elif challenge is not None and isinstance(key, rsa.RSAPrivateKey):
            result = crypto.rsa_private(key, challenge.value)
        elif challenge is not None and isinstance(key, ec.EllipticCurvePrivateKey):
            result = crypto.ecdsa_sign(key, slot.algorithm, challenge.value)
        else:
            return reply(StatusWord.INCORRECT_DATA)
    except crypto.CardCryptoError:
        return reply(StatusWord.INCORRECT_DATA)
    return reply(StatusWord.SUCCESS, tlv(TEMPLATE, tlv(RESPONSE, result)))


def _admin(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """Card management key (9B) authentication: mutual, external, or card challenge."""
    state, session = ctx.state, ctx.session
    witness, challenge = session.witness, session.challenge
    session.witness = session.challenge = None
    items = _template(cmd.data)
    if items is None:
        return reply(StatusWord.INCORRECT_DATA)
    w, c, r = (find(items, t) for t in (WITNESS, CHALLENGE, RESPONSE))
    size = crypto.block_size(state.management_key_algorithm)
    if cmd.p1 == 0x00 and c is not None and not c.value and w is None and r is None:
        # OpenSC's GET CHALLENGE: a challenge that authenticates nothing.
        return reply(StatusWord.SUCCESS, tlv(TEMPLATE, tlv(CHALLENGE, ctx.rng(size))))
    if cmd.p1 != state.management_key_algorithm:
        return reply(StatusWord.INCORRECT_P1_P2)
    key, alg = state.management_key, state.management_key_algorithm

    def ok_size(item: Tlv) -> bool:
        return len(item.value) == size

    if w is not None and not w.value and c is None and r is None:
        new_witness = ctx.rng(size)
        session.witness = new_witness
        return reply(StatusWord.SUCCESS,
                     tlv(TEMPLATE, tlv(WITNESS, crypto.block_encrypt(alg, key, new_witness))))
    if w is not None and c is not None and (r is None or not r.value):
        if not ok_size(w) or not ok_size(c):
            return reply(StatusWord.INCORRECT_DATA)
        if witness is None or not hmac.compare_digest(w.value, witness):
            session.admin = False
            return reply(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        session.admin = True
        return reply(StatusWord.SUCCESS,
                     tlv(TEMPLATE, tlv(RESPONSE, crypto.block_encrypt(alg, key, c.value))))
    if c is not None and not c.value and w is None and (r is None or not r.value):
        new_challenge = ctx.rng(size)
        session.challenge = new_challenge
        return reply(StatusWord.SUCCESS, tlv(TEMPLATE, tlv(CHALLENGE, new_challenge)))
    if r is not None and r.value and w is None and c is None:
        if not ok_size(r):
            return reply(StatusWord.INCORRECT_DATA)
        expected = crypto.block_encrypt(alg, key, challenge) if challenge is not None else None
        if expected is None or not hmac.compare_digest(r.value, expected):
            session.admin = False
            return reply(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        session.admin = True
        return OK
    if c is not None and c.value and r is not None and not r.value and w is None:
        if not ok_size(c):
            return reply(StatusWord.INCORRECT_DATA)
        return reply(StatusWord.SUCCESS,
                     tlv(TEMPLATE, tlv(RESPONSE, crypto.block_encrypt(alg, key, c.value))))
    return reply(StatusWord.INCORRECT_DATA)


def generate_key_pair(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Part 2 3.3.2): AC { 80 algorithm }."""
    if cmd.p1 != 0x00 or not is_asymmetric_slot(cmd.p2):
        return reply(StatusWord.INCORRECT_P1_P2)
    if not ctx.session.admin:
        return reply(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
    try:
        outer = decode_all(cmd.data, "Control Reference Template", max_items=1)
        if len(outer) != 1 or outer[0].tag != CONTROL_TEMPLATE:
            return reply(StatusWord.INCORRECT_DATA)
        alg = find(outer[0].children("Control Reference Template",
                                     max_items=MAX_TEMPLATE_ITEMS), 0x80)
    except ProtocolError:
        return reply(StatusWord.INCORRECT_DATA)
    if alg is None or len(alg.value) != 1 or alg.value[0] not in ASYMMETRIC_ALGORITHMS:
        return reply(StatusWord.INCORRECT_DATA)
    slot, key = crypto.generate(alg.value[0])
    ctx.state.keys[cmd.p2] = slot
    ctx.changed()
    return reply(StatusWord.SUCCESS, crypto.public_key_template(key))


def set_management_key(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """SET MANAGEMENT KEY (YubiKey): P1 FF, P2 FF (no touch) or FE; data alg 9B len key."""
    if cmd.p1 != 0xFF or cmd.p2 not in (0xFF, 0xFE):
        return reply(StatusWord.INCORRECT_P1_P2)
    if not ctx.session.admin:
        return reply(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
    data = cmd.data
    if len(data) < 3 or data[1] != KeyRef.CARD_MANAGEMENT or data[2] != len(data) - 3:
        return reply(StatusWord.INCORRECT_DATA)
    alg, key = data[0], data[3:]
    if SYMMETRIC_KEY_SIZES.get(alg) != len(key):
        return reply(StatusWord.INCORRECT_DATA)
    ctx.state.management_key_algorithm = alg
    ctx.state.management_key = bytes(key)
    ctx.changed()
    return OK


def get_metadata(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """GET METADATA (YubiKey 5.3+): algorithm, policy, origin, public key, default, retries."""
    if cmd.p1 != 0x00:
        return reply(StatusWord.INCORRECT_P1_P2)
    state, ref = ctx.state, cmd.p2
    if ref in (KeyRef.PIV_PIN, KeyRef.PUK):
        pin = ref == KeyRef.PIV_PIN
        default = state.pin == DEFAULT_PIN if pin else state.puk == DEFAULT_PUK
        limit = state.pin_retries_limit if pin else state.puk_retries_limit
        left = state.pin_retries_left if pin else state.puk_retries_left
        return reply(StatusWord.SUCCESS, tlv(0x01, b"\xff") + tlv(0x05, bytes((default,)))
                     + tlv(0x06, bytes((limit, left))))
    if ref == KeyRef.CARD_MANAGEMENT:
        default = (state.management_key == DEFAULT_MANAGEMENT_KEY
                   and state.management_key_algorithm == Algorithm.TDES)
        return reply(StatusWord.SUCCESS,
                     tlv(0x01, bytes((state.management_key_algorithm,)))
                     + tlv(0x02, bytes((0, TOUCH_NEVER))) + tlv(0x05, bytes((default,))))
    if not is_asymmetric_slot(ref):
        return reply(StatusWord.INCORRECT_P1_P2)
    slot: SlotKey | None = state.keys.get(ref)
    key = ctx.private_key(ref)
    if slot is None or key is None:
        return reply(StatusWord.REFERENCE_DATA_NOT_FOUND)
    public = Tlv.decode(crypto.public_key_template(key)).value
    return reply(StatusWord.SUCCESS,
                 tlv(0x01, bytes((slot.algorithm,)))
                 + tlv(0x02, bytes((PIN_POLICY.get(ref, 2), TOUCH_NEVER)))
                 + tlv(0x03, b"\x01" if slot.generated else b"\x02") + tlv(0x04, public))
