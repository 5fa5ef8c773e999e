"""The virtual PIV card: a pure object that answers command APDUs (NIST SP 800-73-4).

:class:`VirtualPivCard` implements the PIV Card Application of SP 800-73-4
Part 2 (SELECT, GET DATA, PUT DATA, VERIFY, CHANGE REFERENCE DATA, RESET
RETRY COUNTER, GENERAL AUTHENTICATE, GENERATE ASYMMETRIC KEY PAIR) with
the YubiKey extensions OpenSC and yubico-piv-tool use (GET VERSION, GET
SERIAL, SET MANAGEMENT KEY, GET METADATA, SET PIN RETRIES, RESET), over
ISO/IEC 7816-4 command chaining and GET RESPONSE. It does no I/O:
:meth:`transmit` takes command bytes and returns response bytes, never
raising; persistence is the owner's job, through ``on_change``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from rdscard.card import keys, pin
from rdscard.card.constants import (
    CONTAINER_TAG,
    MIN_SELECT_AID,
    PIN_PROTECTED_TAGS,
    PIV_AID,
    SELF_TAGGED,
    TAG_LIST,
    YUBIKEY_ATR,
    Ins,
    is_known_object,
)
from rdscard.card.crypto import PrivateKey, load_private_key
from rdscard.card.objects import application_property_template
from rdscard.card.session import OK, CardContext, Handler, Reply, Session, reply
from rdscard.card.state import MAX_OBJECT_SIZE, CardState, SlotKey
from rdscard.errors import ProtocolError
from rdscard.pdu.apdu import (
    CLA_CHAINING,
    MAX_SHORT_NE,
    CommandApdu,
    StatusWord,
    status,
)
from rdscard.pdu.tlv import decode_all, tlv

log = logging.getLogger(__name__)

DEFAULT_VERSION: Final = (5, 4, 3)
MAX_CHAIN: Final = MAX_OBJECT_SIZE + 64
MAX_TAG_BYTES: Final = 3


@dataclass
class _Chain:
    """Command data collected from a chain (ISO/IEC 7816-4 5.1.1.1)."""

    header: tuple[int, int, int]
    data: bytearray


class VirtualPivCard:
    """A PIV card in memory; ``state`` is what it keeps between insertions."""

    def __init__(self, state: CardState, *, rng: Callable[[int], bytes] = os.urandom,
                 on_change: Callable[[CardState], None] | None = None,
                 atr: bytes = YUBIKEY_ATR,
                 version: tuple[int, int, int] = DEFAULT_VERSION) -> None:
        self.state = state
        self.rng = rng
        self.session = Session()
        self._on_change = on_change
        self._atr = bytes(atr)
        self._version = bytes(version)
        self._chain: _Chain | None = None
        self._pending = b""
        self._keys: dict[int, tuple[SlotKey, PrivateKey]] = {}
        self._handlers: dict[int, Handler] = {
            Ins.VERIFY: pin.verify,
            Ins.CHANGE_REFERENCE_DATA: pin.change_reference_data,
            Ins.RESET_RETRY_COUNTER: pin.reset_retry_counter,
            Ins.SET_PIN_RETRIES: pin.set_pin_retries,
            Ins.RESET: pin.reset_card,
            Ins.GENERAL_AUTHENTICATE: keys.general_authenticate,
            Ins.GENERATE_ASYMMETRIC_KEY_PAIR: keys.generate_key_pair,
            Ins.SET_MANAGEMENT_KEY: keys.set_management_key,
            Ins.GET_METADATA: keys.get_metadata,
            Ins.GET_DATA: _get_data,
            Ins.PUT_DATA: _put_data,
            Ins.GET_VERSION: self._get_version,
            Ins.GET_SERIAL: self._get_serial,
        }

    def __repr__(self) -> str:
        return f"VirtualPivCard(serial={self.state.serial})"

    # -- the contact interface --------------------------------------------------
    @property
    def atr(self) -> bytes:
        """The Answer To Reset."""
        return self._atr

    def power_on(self) -> bytes:
        """Cold reset: clear the volatile state and return the ATR."""
        self._clear()
        return self._atr

    def power_off(self) -> None:
        """Power off: security status and selection are lost."""
        self._clear()

    def reset(self) -> bytes:
        """Warm reset: as power on."""
        return self.power_on()

    def _clear(self) -> None:
        self.session = Session()
        self._chain = None
        self._pending = b""

    # -- CardContext ---------------------------------------------------------------
    def changed(self) -> None:
        """Hand the state to ``on_change``; a failure there must not break the card."""
        if self._on_change is None:
            return
        try:
            self._on_change(self.state)
        except Exception:
            log.exception("saving the card state failed")

    def private_key(self, key_ref: int) -> PrivateKey | None:
        slot = self.state.keys.get(key_ref)
        if slot is None:
            return None
        cached = self._keys.get(key_ref)
        if cached is not None and cached[0] is slot:
            return cached[1]
        try:
            key = load_private_key(slot)
        except (ValueError, TypeError):
            log.error("the stored key of slot %02X cannot be loaded", key_ref)
            return None
        self._keys[key_ref] = (slot, key)
        return key

    # -- APDU processing -----------------------------------------------------------
    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU and return response data followed by SW1 SW2."""
        try:
            return self._transmit(bytes(apdu))
        except Exception:
            log.exception("internal error processing a command APDU")
            self._chain = None
            self._pending = b""
            return status(StatusWord.NO_PRECISE_DIAGNOSIS)

    def _transmit(self, apdu: bytes) -> bytes:
        try:
            cmd = CommandApdu.decode(apdu)
        except ProtocolError:
            self._chain = None
            return status(StatusWord.WRONG_LENGTH)
        base = cmd.cla & ~CLA_CHAINING
        if base:
            self._chain = None
            if base < 0x20 and base & 0x03:
                return status(StatusWord.LOGICAL_CHANNEL_NOT_SUPPORTED)
            if base < 0x20 and base & 0x0C:
                return status(StatusWord.SECURE_MESSAGING_NOT_SUPPORTED)
            return status(StatusWord.CLA_NOT_SUPPORTED)
        if cmd.ins == Ins.GET_RESPONSE:
            return self._get_response(cmd)
        self._pending = b""
        header = (cmd.ins, cmd.p1, cmd.p2)
        chain, self._chain = self._chain, None
        data = cmd.data
        if chain is not None and chain.header == header:
            if len(chain.data) + len(data) > MAX_CHAIN:
                return status(StatusWord.NOT_ENOUGH_MEMORY)
            data = bytes(chain.data + data)
        if cmd.chained:
            self._chain = _Chain(header, bytearray(data))
            return status(StatusWord.SUCCESS)
        full = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, data, cmd.le, cmd.extended)
        sw, out = self._dispatch(full)
        return self._respond(sw, out, full.ne)

    def _respond(self, sw: int, data: bytes, ne: int) -> bytes:
        if len(data) <= ne:
            return status(sw, data)
        self._pending = data[ne:]
        # SW2 counts what is left; 00 stands for 256 bytes or more (a short Le of 00)
        left = min(len(self._pending), MAX_SHORT_NE) & 0xFF
        return status(StatusWord.BYTES_REMAINING | left, data[:ne])

    def _get_response(self, cmd: CommandApdu) -> bytes:
        """GET RESPONSE (ISO/IEC 7816-4 7.6.1): the next part of a long response."""
        self._chain = None
        if cmd.p1 or cmd.p2:
            return status(StatusWord.INCORRECT_P1_P2)
        if not self._pending:
            return status(StatusWord.CONDITIONS_OF_USE_NOT_SATISFIED)
        data, self._pending = self._pending, b""
        ne = cmd.le if cmd.le is not None else MAX_SHORT_NE
        return self._respond(StatusWord.SUCCESS, data, ne)

    def _dispatch(self, cmd: CommandApdu) -> Reply:
        if cmd.ins == Ins.SELECT:
            return self._select(cmd)
        handler = self._handlers.get(cmd.ins)
        if handler is None or not self.session.selected:
            return reply(StatusWord.INS_NOT_SUPPORTED)
        return handler(self, cmd)

    # -- commands of the card itself -----------------------------------------------
    def _select(self, cmd: CommandApdu) -> Reply:
        """SELECT (SP 800-73-4 Part 2 3.1.1): the PIV AID or a right-truncation of it."""
        if cmd.p1 != 0x04 or cmd.p2 not in (0x00, 0x0C):
            return reply(StatusWord.INCORRECT_P1_P2)
        if not (MIN_SELECT_AID <= len(cmd.data) <= len(PIV_AID)
                and PIV_AID.startswith(cmd.data)):
            return reply(StatusWord.FILE_NOT_FOUND)
        if not self.session.selected:
            self.session = Session(selected=True)
        if cmd.p2 == 0x0C:  # no response data wanted
            return OK
        return reply(StatusWord.SUCCESS, application_property_template())

    def _get_version(self, _ctx: object, cmd: CommandApdu) -> Reply:
        """GET VERSION (YubiKey): major, minor, patch."""
        return reply(StatusWord.SUCCESS, self._version)

    def _get_serial(self, _ctx: object, cmd: CommandApdu) -> Reply:
        """GET SERIAL (YubiKey): the serial number, 4 bytes big-endian."""
        return reply(StatusWord.SUCCESS, self.state.serial.to_bytes(4, "big"))


def _object_tag(data: bytes) -> int | None:
    """The tag named by a tag list 5C (SP 800-73-4 Part 2 3.1.2), or None."""
    try:
        items = decode_all(data, "GET DATA", max_items=1)
    except ProtocolError:
        return None
    if len(items) != 1 or items[0].tag != TAG_LIST:
        return None
    value = items[0].value
    if not 1 <= len(value) <= MAX_TAG_BYTES:
        return None
    return int.from_bytes(value, "big")


def _get_data(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """GET DATA (SP 800-73-4 Part 2 3.1.2): 5C tag list -> 53 container (or 7E, 7F61)."""
    if (cmd.p1, cmd.p2) != (0x3F, 0xFF):
        return reply(StatusWord.INCORRECT_P1_P2)
    tag = _object_tag(cmd.data)
    if tag is None:
        return reply(StatusWord.INCORRECT_DATA)
    if not is_known_object(tag):
        return reply(StatusWord.FILE_NOT_FOUND)
    if tag in PIN_PROTECTED_TAGS and not ctx.session.pin_verified:
        return reply(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
    content = ctx.state.data_objects.get(tag)
    if content is None:
        return reply(StatusWord.FILE_NOT_FOUND)
    return reply(StatusWord.SUCCESS, tlv(tag if tag in SELF_TAGGED else CONTAINER_TAG, content))


def _put_data(ctx: CardContext, cmd: CommandApdu) -> Reply:
    """PUT DATA (SP 800-73-4 Part 2 3.3.1): 5C tag + 53 content, or a 7E / 7F61 template.

    An empty content deletes the object.
    """
    if (cmd.p1, cmd.p2) != (0x3F, 0xFF):
        return reply(StatusWord.INCORRECT_P1_P2)
    if not ctx.session.admin:
        return reply(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
    try:
        items = decode_all(cmd.data, "PUT DATA", max_length=MAX_CHAIN, max_items=2)
    except ProtocolError:
        return reply(StatusWord.INCORRECT_DATA)
    if len(items) == 1 and items[0].tag in SELF_TAGGED:
        tag, content = items[0].tag, items[0].value
    elif len(items) == 2 and items[1].tag == CONTAINER_TAG:
        found = _object_tag(items[0].encode())
        if found is None or found in SELF_TAGGED or not is_known_object(found):
            return reply(StatusWord.INCORRECT_DATA)
        tag, content = found, items[1].value
    else:
        return reply(StatusWord.INCORRECT_DATA)
    if len(content) > MAX_OBJECT_SIZE:
        return reply(StatusWord.NOT_ENOUGH_MEMORY)
    if content:
        ctx.state.data_objects[tag] = content
    else:
        ctx.state.data_objects.pop(tag, None)
    ctx.changed()
    return OK
