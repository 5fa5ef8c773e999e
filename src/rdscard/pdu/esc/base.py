"""The shape every MS-RDPESC call and return shares (MS-RDPESC 2.2.2, 2.2.3).

A message is a frozen dataclass that writes its flat part to an
:class:`~rdscard.pdu.ndr.NdrWriter` and reads it back from an
:class:`~rdscard.pdu.ndr.NdrReader`; :meth:`NdrMessage.encode` and
:meth:`NdrMessage.decode` add the MS-RPCE type serialization headers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Self

from rdscard.errors import ProtocolError
from rdscard.pdu.ndr import NdrReader, NdrWriter, decode_top, encode_top, open_body_tolerant

#: rdesktop 1.9 answers a failed Status or GetAttrib with the ReturnCode and 256 zero
#: bytes (scard.c SC_returnCode), not aligned, then (260 mod 16) = 4 more: 264 bytes.
RDESKTOP_FAILURE_BODY = 264


class NdrMessage:
    """Base of the MS-RDPESC call and return structures."""

    __slots__ = ()
    PDU: ClassVar[str] = "MS-RDPESC message"

    def write(self, w: NdrWriter) -> None:
        """Write the structure's flat part (pointers are deferred by ``w``)."""
        raise NotImplementedError

    @classmethod
    def read(cls, r: NdrReader) -> Callable[[], Self]:
        """Read the flat part; the builder returned gives the message."""
        raise NotImplementedError

    def encode(self) -> bytes:
        """The type-serialized structure, headers included."""
        return encode_top(self.write)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a type-serialized structure, headers included.

        A return whose body holds only a failing ReturnCode (FreeRDP answers
        a failed EstablishContext that way; rdesktop 1.9 a failed Status or
        GetAttrib, with 256 zero bytes after it) decodes as :meth:`failure`.
        """
        return cls.decode_ndr(data)

    @classmethod
    def decode_ndr(cls, data: bytes) -> Self:
        """:meth:`decode` through the general NDR reader (for messages with a faster path)."""
        try:
            return decode_top(data, cls.PDU, cls.read)
        except ProtocolError:
            short = cls._short_failure(data)
            if short is None:
                raise
            return short

    @classmethod
    def failure(cls, return_code: int) -> Self:
        """A return carrying ``return_code`` and no data (returns only)."""
        raise NotImplementedError(f"{cls.PDU} is not a return")

    @classmethod
    def _short_failure(cls, data: bytes) -> Self | None:
        try:
            body, tolerated = open_body_tolerant(data, cls.PDU)
        except ProtocolError:
            return None
        # ReturnCode and padding, possibly with FreeRDP's extra 8-byte block; or
        # rdesktop's ReturnCode and zero bytes behind its understated length.
        allowed = len(body) in (8, 16) or (tolerated and 8 <= len(body) <= RDESKTOP_FAILURE_BODY)
        if not allowed or any(body[4:]):
            return cls._failure_of_its_own(body, tolerated)
        code = int.from_bytes(body[:4], "little")
        if code == 0:
            return None
        try:
            return cls.failure(code)
        except NotImplementedError:
            return None


    @classmethod
    def _failure_of_its_own(cls, body: bytes, tolerated: bool) -> Self | None:
        """A failure shape one return has beside the bare ReturnCode (None: not one)."""
        return None


def check_u32(value: int, name: str) -> None:
    """Reject a field value that does not fit an unsigned 32-bit integer."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} {value} does not fit 32 bits")
