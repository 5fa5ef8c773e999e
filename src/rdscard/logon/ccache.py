"""The MIT Kerberos credential cache file format (versions 3 and 4), read and written.

Used to learn what a PKINIT sign-in obtained (the client principal and the
TGT's expiry) without parsing ``klist`` output, whose date format follows
the locale. The layout is MIT krb5's ``ccache.txt`` ("The Kerberos
Credential Cache Binary File Format"); all integers are big-endian::

    file      = u16 version (0x0503 | 0x0504), [v4: u16 header_length, header]
                default_principal, credential*
    principal = u32 name_type, u32 num_components, data realm, data component*
    credential = principal client, principal server,
                 u16 keytype, data key,
                 u32 authtime, u32 starttime, u32 endtime, u32 renew_till,
                 u8 is_skey, u32 ticket_flags,
                 u32 num_addresses, {u16 addrtype, data}*,
                 u32 num_authdata, {u16 ad_type, data}*,
                 data ticket, data second_ticket
    data      = u32 length, bytes

Entries whose server realm is ``X-CACHECONF:`` are configuration, not tickets.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader, Writer

PDU: Final = "credential cache"
MAX_FILE: Final = 4 * 1024 * 1024
MAX_DATA: Final = 1024 * 1024
MAX_COMPONENTS: Final = 16
MAX_ITEMS: Final = 256
MAX_CREDENTIALS: Final = 4096
CONFIG_REALM: Final = "X-CACHECONF:"


class CcacheVersion(IntEnum):
    """File format versions this module reads (MIT ccache.txt)."""

    V3 = 0x0503
    V4 = 0x0504


def _data(reader: Reader, field: str) -> bytes:
    length = reader.u32be(f"{field} length")
    if length > MAX_DATA:
        raise reader.error(f"{field} length", f"{length} exceeds {MAX_DATA}")
    return reader.raw(length, field)


def _text(reader: Reader, field: str) -> str:
    raw = _data(reader, field)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise reader.error(field, "not valid UTF-8") from None


def _put_data(writer: Writer, data: bytes) -> None:
    writer.u32be(len(data)).raw(data)


def _time(value: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(value, datetime.UTC)


@dataclass(frozen=True)
class Principal:
    """A Kerberos principal as stored in a ccache."""

    name_type: int
    realm: str
    components: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(c.replace("@", "\\@") for c in self.components) + "@" + self.realm

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        name_type = reader.u32be("name_type")
        count = reader.u32be("num_components")
        if count > MAX_COMPONENTS:
            raise reader.error("num_components", f"{count} exceeds {MAX_COMPONENTS}")
        realm = _text(reader, "realm")
        components = tuple(_text(reader, "component") for _ in range(count))
        return cls(name_type=name_type, realm=realm, components=components)

    def encode_into(self, writer: Writer) -> None:
        writer.u32be(self.name_type).u32be(len(self.components))
        _put_data(writer, self.realm.encode())
        for component in self.components:
            _put_data(writer, component.encode())


@dataclass(frozen=True)
class Credential:
    """One cached credential (a ticket and its session key)."""

    client: Principal
    server: Principal
    keytype: int
    key: bytes
    authtime: int
    starttime: int
    endtime: int
    renew_till: int
    is_skey: int
    ticket_flags: int
    addresses: tuple[tuple[int, bytes], ...]
    authdata: tuple[tuple[int, bytes], ...]
    ticket: bytes
    second_ticket: bytes

    def __repr__(self) -> str:  # never show the session key
        return f"Credential(client={self.client}, server={self.server}, endtime={self.endtime})"

    @property
    def is_config(self) -> bool:
        return self.server.realm == CONFIG_REALM

    @property
    def expires(self) -> datetime.datetime:
        return _time(self.endtime)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        client = Principal.decode(reader)
        server = Principal.decode(reader)
        keytype = reader.u16be("keytype")
        key = _data(reader, "key")
        authtime = reader.u32be("authtime")
        starttime = reader.u32be("starttime")
        endtime = reader.u32be("endtime")
        renew_till = reader.u32be("renew_till")
        is_skey = reader.u8("is_skey")
        flags = reader.u32be("ticket_flags")
        return cls(client=client, server=server, keytype=keytype, key=key, authtime=authtime,
                   starttime=starttime, endtime=endtime, renew_till=renew_till,
                   is_skey=is_skey, ticket_flags=flags, addresses=_items(reader, "address"),
                   authdata=_items(reader, "authdata"), ticket=_data(reader, "ticket"),
                   second_ticket=_data(reader, "second_ticket"))

    def encode_into(self, writer: Writer) -> None:
        self.client.encode_into(writer)
        self.server.encode_into(writer)
        writer.u16be(self.keytype)
        _put_data(writer, self.key)
        for value in (self.authtime, self.starttime, self.endtime, self.renew_till):
            writer.u32be(value)
        writer.u8(self.is_skey).u32be(self.ticket_flags)
        for items in (self.addresses, self.authdata):
            writer.u32be(len(items))
            for kind, data in items:
                writer.u16be(kind)
                _put_data(writer, data)
        _put_data(writer, self.ticket)
        _put_data(writer, self.second_ticket)


def _items(reader: Reader, field: str) -> tuple[tuple[int, bytes], ...]:
    count = reader.u32be(f"num_{field}")
    if count > MAX_ITEMS:
        raise reader.error(f"num_{field}", f"{count} exceeds {MAX_ITEMS}")
    return tuple((reader.u16be(f"{field} type"), _data(reader, field)) for _ in range(count))


@dataclass(frozen=True)
class Ccache:
    """A whole credential cache file."""

    version: CcacheVersion
    header: bytes
    default_principal: Principal
    credentials: tuple[Credential, ...]

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if len(data) > MAX_FILE:
            raise ProtocolError(PDU, "file", f"{len(data)} bytes exceeds {MAX_FILE}")
        reader = Reader(data, PDU)
        raw_version = reader.u16be("file_format_version")
        if raw_version not in (CcacheVersion.V3, CcacheVersion.V4):
            raise reader.error("file_format_version",
                               f"0x{raw_version:04X} (only 0x0503 and 0x0504 are read)")
        version = CcacheVersion(raw_version)
        header = b""
        if version is CcacheVersion.V4:
            length = reader.u16be("header_length")
            header = reader.raw(length, "header")
        default = Principal.decode(reader)
        creds: list[Credential] = []
        while reader.remaining:
            if len(creds) == MAX_CREDENTIALS:
                raise reader.error("credential", f"more than {MAX_CREDENTIALS}")
            creds.append(Credential.decode(reader))
        return cls(version, header, default, tuple(creds))

    def encode(self) -> bytes:
        writer = Writer().u16be(self.version)
        if self.version is CcacheVersion.V4:
            writer.u16be(len(self.header)).raw(self.header)
        self.default_principal.encode_into(writer)
        for cred in self.credentials:
            cred.encode_into(writer)
        return writer.getvalue()

    def tgt(self) -> Credential | None:
        """The ticket-granting ticket ``krbtgt/REALM@REALM`` of the default principal's realm."""
        realm = self.default_principal.realm
        for cred in self.credentials:
            if (not cred.is_config and cred.server.realm == realm
                    and cred.server.components == ("krbtgt", realm)):
                return cred
        return None
