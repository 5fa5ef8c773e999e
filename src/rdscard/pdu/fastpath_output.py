"""Server graphics output: the fast-path Update PDU.

MS-RDPBCGR 2.2.9.1.2 Server Fast-Path Update PDU (TS_FP_UPDATE_PDU) and
2.2.9.1.2.1 Fast-Path Update (TS_FP_UPDATE). Only Enhanced RDP Security
(TLS) is used, so the output header never says encrypted and carries no
signature; bulk compression is never negotiated, so ``compression`` is 0.

Ready-made PDUs: :func:`synchronize_update` (2.2.9.1.2.1.3),
:func:`pointer_default_update` and :func:`pointer_null_update`
(2.2.9.1.2.1.5). Bitmap updates are built by
:func:`rdscard.pdu.bitmap.encode_bitmap_updates`. :func:`split_fastpath_frames`
and :class:`FastPathReassembler` are the receiving side (tests, scripted
clients).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.input import FASTPATH_MAX_LENGTH, read_fastpath_length, write_fastpath_length

PDU = "TS_FP_UPDATE_PDU"

#: fpOutputHeader (1) + the two-byte length (2).
FASTPATH_OUTPUT_HEADER_SIZE: Final = 3
#: updateHeader (1) + size (2), no compressionFlags.
FASTPATH_UPDATE_HEADER_SIZE: Final = 3
#: Largest updateData that fits one fast-path PDU holding a single update.
FASTPATH_MAX_UPDATE_DATA: Final = (
    FASTPATH_MAX_LENGTH - FASTPATH_OUTPUT_HEADER_SIZE - FASTPATH_UPDATE_HEADER_SIZE
)
#: Cap on a reassembled fragmented update when the caller gives none.
DEFAULT_MAX_REASSEMBLED: Final = 8 << 20


class FastPathUpdateCode(IntEnum):
    """MS-RDPBCGR 2.2.9.1.2.1 updateCode (4 bits)."""

    FASTPATH_UPDATETYPE_ORDERS = 0x0
    FASTPATH_UPDATETYPE_BITMAP = 0x1
    FASTPATH_UPDATETYPE_PALETTE = 0x2
    FASTPATH_UPDATETYPE_SYNCHRONIZE = 0x3
    FASTPATH_UPDATETYPE_SURFCMDS = 0x4
    FASTPATH_UPDATETYPE_PTR_NULL = 0x5
    FASTPATH_UPDATETYPE_PTR_DEFAULT = 0x6
    FASTPATH_UPDATETYPE_PTR_POSITION = 0x8
    FASTPATH_UPDATETYPE_COLOR = 0x9
    FASTPATH_UPDATETYPE_CACHED = 0xA
    FASTPATH_UPDATETYPE_POINTER = 0xB
    FASTPATH_UPDATETYPE_LARGE_POINTER = 0xC


class FastPathFragmentation(IntEnum):
    """MS-RDPBCGR 2.2.9.1.2.1 fragmentation (2 bits)."""

    FASTPATH_FRAGMENT_SINGLE = 0x0
    FASTPATH_FRAGMENT_LAST = 0x1
    FASTPATH_FRAGMENT_FIRST = 0x2
    FASTPATH_FRAGMENT_NEXT = 0x3


class FastPathOutputFlags(IntFlag):
    """MS-RDPBCGR 2.2.9.1.2 fpOutputHeader flags (2 bits)."""

    FASTPATH_OUTPUT_SECURE_CHECKSUM = 0x1
    FASTPATH_OUTPUT_ENCRYPTED = 0x2


class FastPathCompression(IntFlag):
    """MS-RDPBCGR 2.2.9.1.2.1 compression (2 bits)."""

    FASTPATH_OUTPUT_COMPRESSION_USED = 0x2


@dataclass(frozen=True)
class FastPathUpdate:
    """MS-RDPBCGR 2.2.9.1.2.1 TS_FP_UPDATE, uncompressed."""

    update_code: FastPathUpdateCode
    data: bytes = b""
    fragmentation: FastPathFragmentation = FastPathFragmentation.FASTPATH_FRAGMENT_SINGLE

    def encode(self) -> bytes:
        """updateHeader, size, updateData."""
        if len(self.data) > 0xFFFF:
            raise ValueError(f"updateData of {len(self.data)} bytes exceeds the 16-bit size")
        header = self.update_code | self.fragmentation << 4
        return Writer().u8(header).u16le(len(self.data)).raw(self.data).getvalue()

    @classmethod
    def decode(cls, r: Reader) -> Self:
        """Read one update; compressed updates are refused (never negotiated)."""
        header = r.u8("updateHeader")
        try:
            code = FastPathUpdateCode(header & 0x0F)
        except ValueError:
            raise r.error(
                "updateHeader.updateCode", f"unknown update code {header & 0x0F}"
            ) from None
        if header >> 6 & FastPathCompression.FASTPATH_OUTPUT_COMPRESSION_USED:
            raise r.error("updateHeader.compression", "bulk compression is not supported")
        size = r.u16le("size")
        data = r.raw(size, "updateData")
        return cls(code, data, FastPathFragmentation((header >> 4) & 0x03))


@dataclass(frozen=True)
class FastPathUpdatePdu:
    """MS-RDPBCGR 2.2.9.1.2 TS_FP_UPDATE_PDU (action 0, no encryption)."""

    updates: tuple[FastPathUpdate, ...]

    def encode(self) -> bytes:
        """fpOutputHeader, length1/length2, then every update."""
        body = b"".join(update.encode() for update in self.updates)
        total = 1 + len(body)
        total += 1 if total + 1 < 0x80 else 2
        w = Writer().u8(0)  # action FASTPATH_OUTPUT_ACTION_FASTPATH, no flags
        write_fastpath_length(w, total)
        return w.raw(body).getvalue()

    @classmethod
    def decode(cls, frame: bytes) -> Self:
        """Decode exactly one frame; its length field must match ``len(frame)``."""
        r = Reader(frame, PDU)
        header = r.u8("fpOutputHeader")
        if header & 0x03:
            raise r.error("fpOutputHeader.action", f"action {header & 0x03} is not fast-path")
        if header >> 6:
            raise r.error("fpOutputHeader.flags", "encrypted or signed output is not used")
        length = read_fastpath_length(r)
        if length != len(frame):
            raise r.error("length1", f"says {length} bytes, frame has {len(frame)}")
        updates: list[FastPathUpdate] = []
        while r.remaining:
            updates.append(FastPathUpdate.decode(r))
        if not updates:
            raise r.error("fpOutputUpdates", "no update in the PDU")
        return cls(tuple(updates))


def encode_fastpath_pdu(*updates: FastPathUpdate) -> bytes:
    """One complete fast-path output frame holding ``updates``."""
    return FastPathUpdatePdu(updates).encode()


def single_update_prefix(update_code: FastPathUpdateCode, data_length: int) -> bytes:
    """The bytes before ``updateData`` in a PDU holding one unfragmented update.

    ``prefix + data`` equals ``encode_fastpath_pdu(FastPathUpdate(update_code, data))``;
    it lets an encoder join large payloads once instead of copying them per layer.
    """
    if data_length > 0xFFFF:
        raise ValueError(f"updateData of {data_length} bytes exceeds the 16-bit size")
    total = 1 + FASTPATH_UPDATE_HEADER_SIZE + data_length
    total += 1 if total + 1 < 0x80 else 2
    w = Writer().u8(0)
    write_fastpath_length(w, total)
    return w.u8(update_code).u16le(data_length).getvalue()


def synchronize_update() -> bytes:
    """Fast-path Synchronize update, a complete PDU (MS-RDPBCGR 2.2.9.1.2.1.3)."""
    return encode_fastpath_pdu(FastPathUpdate(FastPathUpdateCode.FASTPATH_UPDATETYPE_SYNCHRONIZE))


def pointer_default_update() -> bytes:
    """Show the client's default pointer, a complete PDU (MS-RDPBCGR 2.2.9.1.2.1.5)."""
    return encode_fastpath_pdu(FastPathUpdate(FastPathUpdateCode.FASTPATH_UPDATETYPE_PTR_DEFAULT))


def pointer_null_update() -> bytes:
    """Hide the pointer, a complete PDU (MS-RDPBCGR 2.2.9.1.2.1.5)."""
    return encode_fastpath_pdu(FastPathUpdate(FastPathUpdateCode.FASTPATH_UPDATETYPE_PTR_NULL))


def fragment_update(
    update_code: FastPathUpdateCode, data: bytes, max_fragment: int
) -> list[FastPathUpdate]:
    """Split ``data`` into FIRST/NEXT.../LAST fragments of at most ``max_fragment`` bytes.

    Data that fits in one fragment is a single FASTPATH_FRAGMENT_SINGLE update.
    """
    if max_fragment < 1:
        raise ValueError("max_fragment must be positive")
    if len(data) <= max_fragment:
        return [FastPathUpdate(update_code, data)]
    pieces = [data[i : i + max_fragment] for i in range(0, len(data), max_fragment)]
    frag = FastPathFragmentation
    result = [FastPathUpdate(update_code, pieces[0], frag.FASTPATH_FRAGMENT_FIRST)]
    result += [FastPathUpdate(update_code, p, frag.FASTPATH_FRAGMENT_NEXT) for p in pieces[1:-1]]
    result.append(FastPathUpdate(update_code, pieces[-1], frag.FASTPATH_FRAGMENT_LAST))
    return result


def split_fastpath_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """Cut a byte stream of fast-path frames into whole frames plus the unfinished rest."""
    frames: list[bytes] = []
    pos = 0
    while pos < len(data):
        if data[pos] & 0x03:
            raise Reader(data[pos:], PDU).error("fpOutputHeader.action", "not a fast-path PDU")
        if pos + 2 > len(data):
            break
        length1 = data[pos + 1]
        if length1 & 0x80:
            if pos + 3 > len(data):
                break
            length = ((length1 & 0x7F) << 8) | data[pos + 2]
            minimum = 3
        else:
            length = length1
            minimum = 2
        if length < minimum:
            raise Reader(data[pos:], PDU).error("length1", f"length {length} is too small")
        if pos + length > len(data):
            break
        frames.append(data[pos : pos + length])
        pos += length
    return frames, data[pos:]


class FastPathReassembler:
    """Joins FIRST/NEXT/LAST fragments back into whole updates (MS-RDPBCGR 3.2.5.9.2).

    ``max_size`` bounds a reassembled update (the client's
    MultifragmentUpdate MaxRequestSize).
    """

    def __init__(self, max_size: int = DEFAULT_MAX_REASSEMBLED) -> None:
        self.max_size = max_size
        self._code: FastPathUpdateCode | None = None
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, update: FastPathUpdate) -> FastPathUpdate | None:
        """Feed one update; returns a whole SINGLE update when one is complete."""
        frag = FastPathFragmentation
        r = Reader(b"", PDU)
        if update.fragmentation == frag.FASTPATH_FRAGMENT_SINGLE:
            if self._code is not None:
                raise r.error("updateHeader.fragmentation", "SINGLE inside a fragmented update")
            return update
        if update.fragmentation == frag.FASTPATH_FRAGMENT_FIRST:
            if self._code is not None:
                raise r.error("updateHeader.fragmentation", "FIRST before the previous LAST")
            self._code = update.update_code
            self._parts, self._size = [], 0
        elif self._code is None:
            raise r.error("updateHeader.fragmentation", "NEXT or LAST without FIRST")
        elif update.update_code != self._code:
            raise r.error("updateHeader.updateCode", "fragment of a different update")
        self._size += len(update.data)
        if self._size > self.max_size:
            self._code = None
            raise r.error("updateData", f"reassembled update exceeds {self.max_size} bytes")
        self._parts.append(update.data)
        if update.fragmentation != frag.FASTPATH_FRAGMENT_LAST:
            return None
        whole = FastPathUpdate(self._code, b"".join(self._parts))
        self._code, self._parts, self._size = None, [], 0
        return whole
