"""Static virtual channel chunks (MS-RDPBCGR 2.2.6.1, 3.1.5.2).

A message on a static virtual channel travels as chunks, each starting with
a CHANNEL_PDU_HEADER: ``length`` (the whole message) and ``flags`` (FIRST on
the first chunk, LAST on the last). :func:`chunk_channel_data` cuts a
message; a :class:`ChannelReassembler` (one per channel) puts it together
again and enforces a size limit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag
from typing import Final, Self

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader, Writer

PDU = "Virtual Channel PDU"

CHANNEL_PDU_HEADER_SIZE: Final = 8
#: CHANNEL_CHUNK_LENGTH, the default chunk size (2.2.7.1.10).
CHANNEL_CHUNK_LENGTH: Final = 1600
#: Largest reassembled message accepted by default.
DEFAULT_MAX_MESSAGE: Final = 16 * 1024 * 1024
#: CHANNEL_PDU_HEADER as a struct: length, flags.
CHANNEL_HEADER: Final = struct.Struct("<II")


class ChannelFlag(IntFlag):
    """CHANNEL_PDU_HEADER flags (MS-RDPBCGR 2.2.6.1.1)."""

    CHANNEL_FLAG_FIRST = 0x00000001
    CHANNEL_FLAG_LAST = 0x00000002
    CHANNEL_FLAG_SHOW_PROTOCOL = 0x00000010
    CHANNEL_FLAG_SUSPEND = 0x00000020
    CHANNEL_FLAG_RESUME = 0x00000040
    CHANNEL_FLAG_SHADOW_PERSISTENT = 0x00000080
    CHANNEL_PACKET_COMPRESSED = 0x00200000
    CHANNEL_PACKET_AT_FRONT = 0x00400000
    CHANNEL_PACKET_FLUSHED = 0x00800000


#: CompressionTypeMask bits of the flags (2.2.6.1.1).
CHANNEL_COMPRESSION_TYPE_MASK: Final = 0x000F0000
#: The flags of a message sent as one chunk.
WHOLE_MESSAGE: Final = int(ChannelFlag.CHANNEL_FLAG_FIRST | ChannelFlag.CHANNEL_FLAG_LAST)
_COMPRESSED: Final = int(ChannelFlag.CHANNEL_PACKET_COMPRESSED) | CHANNEL_COMPRESSION_TYPE_MASK
# The bits that decide whether a chunk is a whole uncompressed message.
_WHOLE_MASK: Final = WHOLE_MESSAGE | _COMPRESSED


@dataclass(frozen=True)
class ChannelPduHeader:
    """CHANNEL_PDU_HEADER (MS-RDPBCGR 2.2.6.1.1): length of the whole message, flags."""

    length: int
    flags: ChannelFlag

    def encode(self) -> bytes:
        return Writer().u32le(self.length).u32le(self.flags).getvalue()

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u32le("length"), ChannelFlag(r.u32le("flags")))


def chunk_channel_data(
    data: bytes,
    chunk_size: int = CHANNEL_CHUNK_LENGTH,
    flags: int = 0,
) -> list[bytes]:
    """Cut ``data`` into chunks of at most ``chunk_size`` bytes, each with its header.

    ``flags`` (for example CHANNEL_FLAG_SHOW_PROTOCOL) are added to every
    chunk; FIRST and LAST are set here. An empty message is one chunk.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    if len(data) > 0xFFFFFFFF:
        raise ValueError("message too long for CHANNEL_PDU_HEADER.length")
    extra = flags & ~WHOLE_MESSAGE
    total = len(data)
    if total <= chunk_size:
        return [CHANNEL_HEADER.pack(total, extra | WHOLE_MESSAGE) + data]
    last = total - 1 - (total - 1) % chunk_size  # offset of the last piece
    chunks = []
    for offset in range(0, total, chunk_size):
        chunk_flags = extra
        if offset == 0:
            chunk_flags |= ChannelFlag.CHANNEL_FLAG_FIRST
        if offset == last:
            chunk_flags |= ChannelFlag.CHANNEL_FLAG_LAST
        chunks.append(CHANNEL_HEADER.pack(total, chunk_flags) + data[offset : offset + chunk_size])
    return chunks


class ChannelReassembler:
    """Rebuilds the messages of one static virtual channel from its chunks.

    :meth:`add` returns the complete message when the LAST chunk arrives and
    ``None`` before. ProtocolError for: a message larger than ``max_size``, a
    chunk whose length differs from the first one's, more data than
    announced, LAST with data missing, FIRST in the middle of a message, a
    continuation with no message started, or compressed data.
    """

    __slots__ = ("_buffer", "_expected", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._expected: int | None = None

    @property
    def in_progress(self) -> bool:
        """True between a FIRST chunk and its LAST chunk."""
        return self._expected is not None

    def add(self, chunk: bytes) -> bytes | None:
        if self._expected is None and len(chunk) >= CHANNEL_PDU_HEADER_SIZE:
            # The usual case: a whole uncompressed message in one chunk.
            length, flags = CHANNEL_HEADER.unpack_from(chunk)
            if (
                flags & _WHOLE_MASK == WHOLE_MESSAGE
                and length == len(chunk) - CHANNEL_PDU_HEADER_SIZE
                and length <= self.max_size
            ):
                return chunk[CHANNEL_PDU_HEADER_SIZE:]
        if len(chunk) < CHANNEL_PDU_HEADER_SIZE:
            ChannelPduHeader.read(Reader(chunk, PDU))  # raises: the header is truncated
        length, flags = CHANNEL_HEADER.unpack_from(chunk)
        if flags & _COMPRESSED:
            raise ProtocolError(PDU, "flags", "compressed channel data is not supported")
        if length > self.max_size:
            raise ProtocolError(PDU, "length", f"message of {length} bytes exceeds {self.max_size}")
        if flags & ChannelFlag.CHANNEL_FLAG_FIRST:
            if self._expected is not None:
                self._reset()
                raise ProtocolError(PDU, "flags", "CHANNEL_FLAG_FIRST in the middle of a message")
            self._expected = length
        elif self._expected is None:
            raise ProtocolError(PDU, "flags", "continuation chunk without CHANNEL_FLAG_FIRST")
        elif length != self._expected:
            expected = self._expected
            self._reset()
            raise ProtocolError(PDU, "length", f"{length} differs from the announced {expected}")
        expected = self._expected
        if len(self._buffer) + len(chunk) - CHANNEL_PDU_HEADER_SIZE > expected:
            self._reset()
            raise ProtocolError(
                PDU, "length", f"chunks carry more than the announced {expected} bytes")
        # A view: the chunk's data is copied once, into the message.
        self._buffer += memoryview(chunk)[CHANNEL_PDU_HEADER_SIZE:]
        if not flags & ChannelFlag.CHANNEL_FLAG_LAST:
            return None
        if len(self._buffer) != expected:
            got = len(self._buffer)
            self._reset()
            raise ProtocolError(PDU, "length", f"LAST chunk after {got} of {expected} bytes")
        message = bytes(self._buffer)
        self._reset()
        return message

    def _reset(self) -> None:
        self._buffer = bytearray()
        self._expected = None
