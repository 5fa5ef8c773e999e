"""Licensing PDUs (MS-RDPBCGR 2.2.1.12).

The server skips licensing with the License Error PDU - Valid Client
(2.2.1.12): ERROR_ALERT, STATUS_VALID_CLIENT, ST_NO_TRANSITION and an empty
BB_ERROR_BLOB. :func:`license_error_valid_client` returns it without the
Basic Security Header; send it as
``wrap_basic_security(SecurityFlag.SEC_LICENSE_PKT, license_error_valid_client())``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer

PDU = "Licensing PDU"

PREAMBLE_SIZE: Final = 4
#: Largest licensing message accepted (the size field is 16 bits).
MAX_LICENSE_MESSAGE: Final = 0xFFFF


class LicenseMsgType(IntEnum):
    """bMsgType of the licensing preamble (MS-RDPBCGR 2.2.1.12.1.1)."""

    LICENSE_REQUEST = 0x01
    PLATFORM_CHALLENGE = 0x02
    NEW_LICENSE = 0x03
    UPGRADE_LICENSE = 0x04
    LICENSE_INFO = 0x12
    NEW_LICENSE_REQUEST = 0x13
    PLATFORM_CHALLENGE_RESPONSE = 0x15
    ERROR_ALERT = 0xFF


class PreambleFlag(IntFlag):
    """flags of the licensing preamble (MS-RDPBCGR 2.2.1.12.1.1).

    The low four bits are the version (PREAMBLE_VERSION_2_0 or _3_0).
    """

    PREAMBLE_VERSION_2_0 = 0x02
    PREAMBLE_VERSION_3_0 = 0x03
    EXTENDED_ERROR_MSG_SUPPORTED = 0x80


class LicenseErrorCode(IntEnum):
    """dwErrorCode (MS-RDPBCGR 2.2.1.12.1.3)."""

    ERR_INVALID_SERVER_CERTIFICATE = 0x00000001
    ERR_NO_LICENSE = 0x00000002
    ERR_INVALID_MAC = 0x00000003
    ERR_INVALID_SCOPE = 0x00000004
    ERR_NO_LICENSE_SERVER = 0x00000006
    STATUS_VALID_CLIENT = 0x00000007
    ERR_INVALID_CLIENT = 0x00000008
    ERR_INVALID_PRODUCTID = 0x0000000B
    ERR_INVALID_MESSAGE_LEN = 0x0000000C


class StateTransition(IntEnum):
    """dwStateTransition (MS-RDPBCGR 2.2.1.12.1.3)."""

    ST_TOTAL_ABORT = 0x00000001
    ST_NO_TRANSITION = 0x00000002
    ST_RESET_PHASE_TO_START = 0x00000003
    ST_RESEND_LAST_MESSAGE = 0x00000004


class BlobType(IntEnum):
    """wBlobType of LICENSE_BINARY_BLOB (MS-RDPBCGR 2.2.1.12.1.2)."""

    BB_ANY_BLOB = 0x0000
    BB_DATA_BLOB = 0x0001
    BB_RANDOM_BLOB = 0x0002
    BB_CERTIFICATE_BLOB = 0x0003
    BB_ERROR_BLOB = 0x0004
    BB_ENCRYPTED_DATA_BLOB = 0x0009
    BB_KEY_EXCHG_ALG_BLOB = 0x000D
    BB_SCOPE_BLOB = 0x000E
    BB_CLIENT_USER_NAME_BLOB = 0x000F
    BB_CLIENT_MACHINE_NAME_BLOB = 0x0010


@dataclass(frozen=True)
class LicensePreamble:
    """LICENSE_PREAMBLE (MS-RDPBCGR 2.2.1.12.1.1): bMsgType, flags, wMsgSize.

    wMsgSize counts the preamble and the message that follows it.
    """

    msg_type: int
    flags: int
    msg_size: int

    def write(self, w: Writer) -> None:
        w.u8(self.msg_type).u8(self.flags).u16le(self.msg_size)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u8("bMsgType"), r.u8("flags"), r.u16le("wMsgSize"))


@dataclass(frozen=True)
class LicenseErrorMessage:
    """An ERROR_ALERT licensing PDU: preamble and LICENSE_ERROR_MESSAGE (2.2.1.12.1.3).

    ``error_info`` is the bbErrorInfo blob's data (empty for STATUS_VALID_CLIENT).
    """

    error_code: int
    state_transition: int
    error_info: bytes = field(default=b"", repr=False)
    error_info_blob_type: int = BlobType.BB_ERROR_BLOB
    flags: int = PreambleFlag.PREAMBLE_VERSION_3_0

    def encode(self) -> bytes:
        size = PREAMBLE_SIZE + 12 + len(self.error_info)
        if size > MAX_LICENSE_MESSAGE:
            raise ValueError("licensing message too long")
        w = Writer()
        LicensePreamble(LicenseMsgType.ERROR_ALERT, self.flags, size).write(w)
        w.u32le(self.error_code).u32le(self.state_transition)
        w.u16le(self.error_info_blob_type).u16le(len(self.error_info)).raw(self.error_info)
        return w.getvalue()

    @classmethod
    def read_body(cls, r: Reader, flags: int) -> Self:
        error_code = r.u32le("dwErrorCode")
        state_transition = r.u32le("dwStateTransition")
        blob_type = r.u16le("bbErrorInfo.wBlobType")
        blob_length = r.u16le("bbErrorInfo.wBlobLen")
        blob = r.raw(blob_length, "bbErrorInfo.blobData")
        r.expect_end()
        return cls(error_code, state_transition, blob, blob_type, flags)

    @property
    def is_valid_client(self) -> bool:
        return (
            self.error_code == LicenseErrorCode.STATUS_VALID_CLIENT
            and self.state_transition == StateTransition.ST_NO_TRANSITION
        )


@dataclass(frozen=True)
class RawLicensingMessage:
    """A licensing message other than ERROR_ALERT, kept as bytes (MS-RDPELE)."""

    msg_type: int
    flags: int
    body: bytes = field(repr=False)

    def encode(self) -> bytes:
        w = Writer()
        LicensePreamble(self.msg_type, self.flags, PREAMBLE_SIZE + len(self.body)).write(w)
        return w.raw(self.body).getvalue()


LicensingMessage = LicenseErrorMessage | RawLicensingMessage


def decode_licensing(data: bytes) -> LicensingMessage:
    """Decode a licensing PDU (the bytes after the Basic Security Header).

    wMsgSize must equal the length of ``data``; some senders also count the
    4-byte security header, which is accepted too.
    """
    r = Reader(data, PDU)
    preamble = LicensePreamble.read(r)
    if preamble.msg_size not in (len(data), len(data) + 4):
        raise r.error("wMsgSize", f"{preamble.msg_size} does not match {len(data)} bytes")
    if preamble.msg_type == LicenseMsgType.ERROR_ALERT:
        return LicenseErrorMessage.read_body(r, preamble.flags)
    return RawLicensingMessage(preamble.msg_type, preamble.flags, r.rest())


def license_error_valid_client() -> bytes:
    """The License Error PDU - Valid Client body (MS-RDPBCGR 2.2.1.12.1, 16 bytes)."""
    return LicenseErrorMessage(
        LicenseErrorCode.STATUS_VALID_CLIENT, StateTransition.ST_NO_TRANSITION
    ).encode()
