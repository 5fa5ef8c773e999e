"""Server GCC user data blocks (MS-RDPBCGR 2.2.1.4.1-2.2.1.4.6).

Like the client blocks, ``encode()`` returns the whole block with its User
Data Header and ``decode(data)`` takes exactly one whole block.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final, Self

from rdscard.pdu.buffer import Writer
from rdscard.pdu.gcc_client import MAX_CHANNELS, close_block, open_block

#: 2.2.1.4.3: the server random is 32 bytes; the certificate is bounded by the block.
SERVER_RANDOM_SIZE: Final = 32


class ServerBlockType(IntEnum):
    """User Data Header types of server blocks (MS-RDPBCGR 2.2.1.4.1)."""

    SC_CORE = 0x0C01
    SC_SECURITY = 0x0C02
    SC_NET = 0x0C03
    SC_MCS_MSGCHANNEL = 0x0C04
    SC_MULTITRANSPORT = 0x0C08


class ServerEarlyCapabilityFlags(IntFlag):
    """earlyCapabilityFlags of TS_UD_SC_CORE (2.2.1.4.2)."""

    RNS_UD_SC_EDGE_ACTIONS_SUPPORTED_V1 = 0x00000001
    RNS_UD_SC_DYNAMIC_DST_SUPPORTED = 0x00000002
    RNS_UD_SC_EDGE_ACTIONS_SUPPORTED_V2 = 0x00000004
    RNS_UD_SC_SKIP_CHANNELJOIN_SUPPORTED = 0x00000008


class EncryptionLevel(IntEnum):
    """encryptionLevel of TS_UD_SC_SEC1 (2.2.1.4.3)."""

    ENCRYPTION_LEVEL_NONE = 0
    ENCRYPTION_LEVEL_LOW = 1
    ENCRYPTION_LEVEL_CLIENT_COMPATIBLE = 2
    ENCRYPTION_LEVEL_HIGH = 3
    ENCRYPTION_LEVEL_FIPS = 4


@dataclass(frozen=True, slots=True)
class ServerCoreData:
    """TS_UD_SC_CORE (MS-RDPBCGR 2.2.1.4.2); the two later fields are optional."""

    version: int
    client_requested_protocols: int | None = None
    early_capability_flags: int | None = None

    def __post_init__(self) -> None:
        if self.client_requested_protocols is None and self.early_capability_flags is not None:
            raise ValueError("earlyCapabilityFlags needs clientRequestedProtocols")

    def encode(self) -> bytes:
        body = Writer().u32le(self.version)
        if self.client_requested_protocols is not None:
            body.u32le(self.client_requested_protocols)
            if self.early_capability_flags is not None:
                body.u32le(self.early_capability_flags)
        return close_block(ServerBlockType.SC_CORE, body)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ServerBlockType.SC_CORE, "TS_UD_SC_CORE")
        version = r.u32le("version")
        requested = r.u32le("clientRequestedProtocols") if r.remaining else None
        flags = r.u32le("earlyCapabilityFlags") if r.remaining else None
        r.expect_end()
        return cls(version, requested, flags)


@dataclass(frozen=True, slots=True)
class ServerSecurityData:
    """TS_UD_SC_SEC1 (MS-RDPBCGR 2.2.1.4.3).

    Under TLS both the method and the level are 0 and nothing follows. With
    Standard RDP Security the server random and certificate are kept as raw
    bytes.
    """

    encryption_method: int = 0
    encryption_level: int = 0
    server_random: bytes | None = None
    server_certificate: bytes | None = None

    def encode(self) -> bytes:
        body = Writer().u32le(self.encryption_method).u32le(self.encryption_level)
        if self.server_random is not None or self.server_certificate is not None:
            random = self.server_random or b""
            certificate = self.server_certificate or b""
            body.u32le(len(random)).u32le(len(certificate)).raw(random).raw(certificate)
        return close_block(ServerBlockType.SC_SECURITY, body)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ServerBlockType.SC_SECURITY, "TS_UD_SC_SEC1")
        method = r.u32le("encryptionMethod")
        level = r.u32le("encryptionLevel")
        random: bytes | None = None
        certificate: bytes | None = None
        if r.remaining:
            random_length = r.u32le("serverRandomLen")
            certificate_length = r.u32le("serverCertLen")
            if random_length > SERVER_RANDOM_SIZE:
                raise r.error("serverRandomLen", f"{random_length} bytes, at most 32")
            random = r.raw(random_length, "serverRandom")
            if certificate_length != r.remaining:
                raise r.error("serverCertLen", f"{certificate_length} bytes, {r.remaining} left")
            certificate = r.raw(certificate_length, "serverCertificate")
        r.expect_end()
        return cls(method, level, random, certificate)


@dataclass(frozen=True, slots=True)
class ServerNetworkData:
    """TS_UD_SC_NET (MS-RDPBCGR 2.2.1.4.4): the I/O channel and one id per static channel."""

    mcs_channel_id: int
    channel_id_array: tuple[int, ...] = ()

    @property
    def channel_ids(self) -> tuple[int, ...]:
        """The static channel ids, in the order of the client's CS_NET channels."""
        return self.channel_id_array

    def encode(self) -> bytes:
        count = len(self.channel_id_array)
        if count > MAX_CHANNELS:
            raise ValueError(f"more than {MAX_CHANNELS} channels")
        body = Writer().u16le(self.mcs_channel_id).u16le(count)
        for channel_id in self.channel_id_array:
            body.u16le(channel_id)
        if count % 2:
            body.zeros(2)
        return close_block(ServerBlockType.SC_NET, body)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ServerBlockType.SC_NET, "TS_UD_SC_NET")
        mcs_channel_id = r.u16le("MCSChannelId")
        count = r.u16le("channelCount")
        if count > MAX_CHANNELS:
            raise r.error("channelCount", f"{count} channels, at most {MAX_CHANNELS}")
        ids = tuple(r.u16le("channelIdArray") for _ in range(count))
        if count % 2 and r.remaining:
            r.skip(2, "Pad")
        r.expect_end()
        return cls(mcs_channel_id, ids)


@dataclass(frozen=True, slots=True)
class ServerMessageChannelData:
    """TS_UD_SC_MCS_MSGCHANNEL (MS-RDPBCGR 2.2.1.4.5)."""

    mcs_channel_id: int

    def encode(self) -> bytes:
        return close_block(ServerBlockType.SC_MCS_MSGCHANNEL, Writer().u16le(self.mcs_channel_id))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ServerBlockType.SC_MCS_MSGCHANNEL, "TS_UD_SC_MCS_MSGCHANNEL")
        block = cls(r.u16le("MCSChannelID"))
        r.expect_end()
        return block


@dataclass(frozen=True, slots=True)
class ServerMultitransportChannelData:
    """TS_UD_SC_MULTITRANSPORT (MS-RDPBCGR 2.2.1.4.6)."""

    flags: int = 0

    def encode(self) -> bytes:
        return close_block(ServerBlockType.SC_MULTITRANSPORT, Writer().u32le(self.flags))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = open_block(data, ServerBlockType.SC_MULTITRANSPORT, "TS_UD_SC_MULTITRANSPORT")
        block = cls(r.u32le("flags"))
        r.expect_end()
        return block
