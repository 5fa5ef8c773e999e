"""Command and response APDUs (ISO/IEC 7816-4 5.1 and 5.6).

:class:`CommandApdu` decodes the four cases in both short and extended
form (5.1, table 1) and keeps which form was used; :class:`ResponseApdu` is
the response data followed by the status word SW1 SW2. ``le`` is the
expected response length Ne (``None`` when the command carries no Le
field): a short Le of ``00`` means 256 and an extended Le of ``0000``
means 65536.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader

COMMAND_PDU: Final = "Command APDU"
RESPONSE_PDU: Final = "Response APDU"
MAX_SHORT_NC: Final = 255
MAX_SHORT_NE: Final = 256
MAX_EXTENDED_NC: Final = 65535
MAX_EXTENDED_NE: Final = 65536
CLA_CHAINING: Final = 0x10


class StatusWord(IntEnum):
    """Status words SW1 SW2 (ISO/IEC 7816-4 5.6, SP 800-73-4 Part 2 table 6)."""

    SUCCESS = 0x9000
    BYTES_REMAINING = 0x6100  # low byte: number of bytes still available
    VERIFICATION_FAILED = 0x63C0  # low nibble: tries left
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    COMMAND_CHAINING_NOT_SUPPORTED = 0x6884
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTHENTICATION_METHOD_BLOCKED = 0x6983
    CONDITIONS_OF_USE_NOT_SATISFIED = 0x6985
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1_P2 = 0x6A86
    REFERENCE_DATA_NOT_FOUND = 0x6A88
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU: header CLA INS P1 P2, optional data (Nc bytes), optional Le (Ne)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    @property
    def chained(self) -> bool:
        """CLA bit 5 (``0x10``): more command data follows (ISO/IEC 7816-4 5.1.1.1)."""
        return bool(self.cla & CLA_CHAINING)

    @property
    def ne(self) -> int:
        """The response length the host accepts: Le, or the short maximum when Le is absent."""
        return self.le if self.le is not None else MAX_SHORT_NE

    def encode(self) -> bytes:
        """The APDU bytes, in extended form when asked or when a length needs it."""
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} {value} is not a byte")
        nc = len(self.data)
        if nc > MAX_EXTENDED_NC:
            raise ValueError(f"command data of {nc} bytes is too long")
        if self.le is not None and not 1 <= self.le <= MAX_EXTENDED_NE:
            raise ValueError(f"Le {self.le} out of range")
        extended = (self.extended or nc > MAX_SHORT_NC
                    or (self.le is not None and self.le > MAX_SHORT_NE))
        out = bytearray((self.cla, self.ins, self.p1, self.p2))
        if extended:
            if nc:
                out += b"\x00" + nc.to_bytes(2, "big") + self.data
            if self.le is not None:
                if not nc:
                    out += b"\x00"
                out += (self.le & 0xFFFF).to_bytes(2, "big")
        else:
            if nc:
                out += bytes((nc,)) + self.data
            if self.le is not None:
                out.append(self.le & 0xFF)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse one command APDU (ISO/IEC 7816-4 5.1, cases 1, 2S/E, 3S/E, 4S/E)."""
        reader = Reader(data, COMMAND_PDU)
        cla, ins, p1, p2 = (reader.u8(f) for f in ("CLA", "INS", "P1", "P2"))
        n = reader.remaining
        if n == 0:
            return cls(cla, ins, p1, p2)
        b0 = reader.u8("Lc/Le")
        if n == 1:
            return cls(cla, ins, p1, p2, le=b0 or MAX_SHORT_NE)
        if b0:
            body = reader.raw(b0, "data")
            if reader.remaining == 0:
                return cls(cla, ins, p1, p2, body)
            if reader.remaining == 1:
                return cls(cla, ins, p1, p2, body, reader.u8("Le") or MAX_SHORT_NE)
            raise reader.error("Le", f"{reader.remaining} bytes after the short command data")
        if n < 3:
            raise reader.error("Lc/Le", "truncated extended length")
        first = reader.u16be("Lc/Le")
        if n == 3:
            return cls(cla, ins, p1, p2, le=first or MAX_EXTENDED_NE, extended=True)
        if first == 0:
            raise reader.error("Lc", "extended Lc of zero")
        body = reader.raw(first, "data")
        if reader.remaining == 0:
            return cls(cla, ins, p1, p2, body, extended=True)
        if reader.remaining == 2:
            le = reader.u16be("Le") or MAX_EXTENDED_NE
            return cls(cla, ins, p1, p2, body, le, extended=True)
        raise reader.error("Le", f"{reader.remaining} bytes after the extended command data")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU: response data then SW1 SW2 (ISO/IEC 7816-4 5.1, 5.6)."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    def encode(self) -> bytes:
        if not 0 <= self.sw <= 0xFFFF:
            raise ValueError(f"status word {self.sw:X} out of range")
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if len(data) < 2:
            raise ProtocolError(RESPONSE_PDU, "SW1 SW2", f"truncated: {len(data)} bytes")
        if len(data) > MAX_EXTENDED_NE + 2:
            raise ProtocolError(RESPONSE_PDU, "data", f"{len(data) - 2} bytes is too long")
        return cls(bytes(data[:-2]), int.from_bytes(data[-2:], "big"))


def status(sw: int, data: bytes = b"") -> bytes:
    """Response bytes for ``data`` and status word ``sw``."""
    return data + sw.to_bytes(2, "big")
