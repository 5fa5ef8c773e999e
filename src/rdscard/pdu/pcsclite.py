"""The pcsc-lite client wire protocol, versions 4.4 to 4.6 (pcsc-lite winscard_msg.h).

This is what ``libpcsclite.so.1`` speaks to pcscd over a UNIX socket. A
request is a header ``{uint32 size; uint32 command}`` followed by a fixed
struct of exactly ``size`` bytes (TRANSMIT and CONTROL add ``cbSendLength``
bytes of payload after it). Replies carry no header: the same struct with
its outputs filled in, then any payload. Integers are in host order, which
is little-endian on every platform this project supports; the struct sizes
are those of x86_64.

This module gathers the three parts: :mod:`rdscard.pdu.pcsclite_constants`
(commands, limits, reader states, SCARD_* codes),
:mod:`rdscard.pdu.pcsclite_structs` (every message struct and the reader
state table) and :mod:`rdscard.pdu.pcsclite_framing` (requests cut from a
byte stream, replies).
"""

from __future__ import annotations

from rdscard.pdu.pcsclite_constants import (
    CM_IOCTL_GET_FEATURE_REQUEST as CM_IOCTL_GET_FEATURE_REQUEST,
)
from rdscard.pdu.pcsclite_constants import (
    HEADER_SIZE as HEADER_SIZE,
)
from rdscard.pdu.pcsclite_constants import (
    MAX_ATR_SIZE as MAX_ATR_SIZE,
)
from rdscard.pdu.pcsclite_constants import (
    MAX_BUFFER_SIZE as MAX_BUFFER_SIZE,
)
from rdscard.pdu.pcsclite_constants import (
    MAX_BUFFER_SIZE_EXTENDED as MAX_BUFFER_SIZE_EXTENDED,
)
from rdscard.pdu.pcsclite_constants import (
    MAX_READERNAME as MAX_READERNAME,
)
from rdscard.pdu.pcsclite_constants import (
    MAX_READERS_STATE_ARRAY as MAX_READERS_STATE_ARRAY,
)
from rdscard.pdu.pcsclite_constants import (
    PCSCLITE_MAX_READERS_CONTEXTS as PCSCLITE_MAX_READERS_CONTEXTS,
)
from rdscard.pdu.pcsclite_constants import (
    PROTOCOL_VERSION_MAJOR as PROTOCOL_VERSION_MAJOR,
)
from rdscard.pdu.pcsclite_constants import (
    PROTOCOL_VERSION_MINORS as PROTOCOL_VERSION_MINORS,
)
from rdscard.pdu.pcsclite_constants import (
    READER_STATE_SIZE as READER_STATE_SIZE,
)
from rdscard.pdu.pcsclite_constants import (
    Command as Command,
)
from rdscard.pdu.pcsclite_constants import (
    Disposition as Disposition,
)
from rdscard.pdu.pcsclite_constants import (
    ReaderSharing as ReaderSharing,
)
from rdscard.pdu.pcsclite_constants import (
    ReaderStateFlag as ReaderStateFlag,
)
from rdscard.pdu.pcsclite_constants import (
    ScardError as ScardError,
)
from rdscard.pdu.pcsclite_constants import (
    ScardProtocol as ScardProtocol,
)
from rdscard.pdu.pcsclite_constants import (
    ShareMode as ShareMode,
)
from rdscard.pdu.pcsclite_constants import (
    scard_ctl_code as scard_ctl_code,
)
from rdscard.pdu.pcsclite_framing import (
    REQUEST_STRUCTS as REQUEST_STRUCTS,
)
from rdscard.pdu.pcsclite_framing import (
    PcscRequest as PcscRequest,
)
from rdscard.pdu.pcsclite_framing import (
    PcscRequestReader as PcscRequestReader,
)
from rdscard.pdu.pcsclite_framing import (
    ReplyStruct as ReplyStruct,
)
from rdscard.pdu.pcsclite_framing import (
    RequestStruct as RequestStruct,
)
from rdscard.pdu.pcsclite_framing import (
    decode_reply as decode_reply,
)
from rdscard.pdu.pcsclite_framing import (
    encode_reply as encode_reply,
)
from rdscard.pdu.pcsclite_framing import (
    payload_length as payload_length,
)
from rdscard.pdu.pcsclite_structs import (
    BeginTransaction as BeginTransaction,
)
from rdscard.pdu.pcsclite_structs import (
    Cancel as Cancel,
)
from rdscard.pdu.pcsclite_structs import (
    Connect as Connect,
)
from rdscard.pdu.pcsclite_structs import (
    Control as Control,
)
from rdscard.pdu.pcsclite_structs import (
    Disconnect as Disconnect,
)
from rdscard.pdu.pcsclite_structs import (
    EndTransaction as EndTransaction,
)
from rdscard.pdu.pcsclite_structs import (
    EstablishContext as EstablishContext,
)
from rdscard.pdu.pcsclite_structs import (
    GetReaderEvents as GetReaderEvents,
)
from rdscard.pdu.pcsclite_structs import (
    GetSetAttrib as GetSetAttrib,
)
from rdscard.pdu.pcsclite_structs import (
    PcscStruct as PcscStruct,
)
from rdscard.pdu.pcsclite_structs import (
    ReadersStateSize as ReadersStateSize,
)
from rdscard.pdu.pcsclite_structs import (
    ReaderState as ReaderState,
)
from rdscard.pdu.pcsclite_structs import (
    Reconnect as Reconnect,
)
from rdscard.pdu.pcsclite_structs import (
    ReleaseContext as ReleaseContext,
)
from rdscard.pdu.pcsclite_structs import (
    Status as Status,
)
from rdscard.pdu.pcsclite_structs import (
    Transmit as Transmit,
)
from rdscard.pdu.pcsclite_structs import (
    Version as Version,
)
from rdscard.pdu.pcsclite_structs import (
    WaitReaderStateChange as WaitReaderStateChange,
)
from rdscard.pdu.pcsclite_structs import (
    decode_readers_state as decode_readers_state,
)
from rdscard.pdu.pcsclite_structs import (
    encode_readers_state as encode_readers_state,
)
