"""The shape every MS-RDPESC call and return shares (MS-RDPESC 2.2.2, 2.2.3).

A message is a frozen dataclass that writes its flat part to an
:class:`~rdscard.pdu.ndr.NdrWriter` and reads it back from an
:class:`~rdscard.pdu.ndr.NdrReader`; :meth:`NdrMessage.encode` and
:meth:`NdrMessage.decode` add the MS-RPCE type serialization headers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Self

from rdscard.pdu.ndr import NdrReader, NdrWriter, decode_top, encode_top


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
        """Decode a type-serialized structure, headers included."""
        return decode_top(data, cls.PDU, cls.read)


def check_u32(value: int, name: str) -> None:
    """Reject a field value that does not fit an unsigned 32-bit integer."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} {value} does not fit 32 bits")
