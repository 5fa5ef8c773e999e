"""The Client Info PDU (MS-RDPBCGR 2.2.1.11).

:class:`ClientInfo` is TS_INFO_PACKET (2.2.1.11.1.1) with its optional
TS_EXTENDED_INFO_PACKET (2.2.1.11.1.1.1) as :class:`ExtendedInfo`. The bytes
given to :meth:`ClientInfo.decode` are those after the Basic Security Header
(see :mod:`rdscard.pdu.secure`).

The password (a smart card PIN when INFO_PASSWORD_IS_SC_PIN is set) comes
back as a :class:`~rdscard.secret.Secret` holding UTF-8 bytes, transcoded
from UTF-16 without going through an immutable ``str``; it is never shown
by a repr.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer, decode_utf16le
from rdscard.secret import Secret

PDU = "Client Info PDU"
#: CodePage, flags and the five string lengths (2.2.1.11.1.1).
_FIXED_PART: Final = 18
_STRINGS: Final = ("Domain", "UserName", "Password", "AlternateShell", "WorkingDir")

#: Largest cbDomain, cbUserName, cbPassword, cbAlternateShell, cbWorkingDir (2.2.1.11.1.1).
MAX_INFO_STRING: Final = 512
#: Largest cbClientAddress (2.2.1.11.1.1.1).
MAX_CLIENT_ADDRESS: Final = 80
#: Largest cbClientDir (2.2.1.11.1.1.1).
MAX_CLIENT_DIR: Final = 512
#: Size of TS_TIME_ZONE_INFORMATION (2.2.1.11.1.1.1.1).
TIME_ZONE_SIZE: Final = 172
#: Largest cbAutoReconnectCookie: an ARC_CS_PRIVATE_PACKET (2.2.4.3).
MAX_AUTORECONNECT_COOKIE: Final = 28
#: Largest cbDynamicDSTTimeZoneKeyName (2.2.1.11.1.1.1).
MAX_DYNAMIC_DST_NAME: Final = 254


class InfoFlag(IntFlag):
    """TS_INFO_PACKET flags (MS-RDPBCGR 2.2.1.11.1.1)."""

    INFO_MOUSE = 0x00000001
    INFO_DISABLECTRLALTDEL = 0x00000002
    INFO_AUTOLOGON = 0x00000008
    INFO_UNICODE = 0x00000010
    INFO_MAXIMIZESHELL = 0x00000020
    INFO_LOGONNOTIFY = 0x00000040
    INFO_COMPRESSION = 0x00000080
    INFO_ENABLEWINDOWSKEY = 0x00000100
    INFO_REMOTECONSOLEAUDIO = 0x00002000
    INFO_FORCE_ENCRYPTED_CS_PDU = 0x00004000
    INFO_RAIL = 0x00008000
    INFO_LOGONERRORS = 0x00010000
    INFO_MOUSE_HAS_WHEEL = 0x00020000
    INFO_PASSWORD_IS_SC_PIN = 0x00040000
    INFO_NOAUDIOPLAYBACK = 0x00080000
    INFO_USING_SAVED_CREDS = 0x00100000
    INFO_AUDIOCAPTURE = 0x00200000
    INFO_VIDEO_DISABLE = 0x00400000
    INFO_RESERVED1 = 0x00800000
    INFO_RESERVED2 = 0x01000000
    INFO_HIDEF_RAIL_SUPPORTED = 0x02000000


#: The four CompressionTypeMask bits of the flags field (2.2.1.11.1.1).
COMPRESSION_TYPE_MASK: Final = 0x00001E00
COMPRESSION_TYPE_SHIFT: Final = 9


class CompressionType(IntEnum):
    """Bulk compression types in CompressionTypeMask (MS-RDPBCGR 3.1.8)."""

    PACKET_COMPR_TYPE_8K = 0x0
    PACKET_COMPR_TYPE_64K = 0x1
    PACKET_COMPR_TYPE_RDP6 = 0x2
    PACKET_COMPR_TYPE_RDP61 = 0x3


class AddressFamily(IntEnum):
    """clientAddressFamily (MS-RDPBCGR 2.2.1.11.1.1.1)."""

    AF_INET = 0x0002
    AF_INET6 = 0x0017


class PerformanceFlag(IntFlag):
    """performanceFlags (MS-RDPBCGR 2.2.1.11.1.1.1)."""

    PERF_DISABLE_WALLPAPER = 0x00000001
    PERF_DISABLE_FULLWINDOWDRAG = 0x00000002
    PERF_DISABLE_MENUANIMATIONS = 0x00000004
    PERF_DISABLE_THEMING = 0x00000008
    PERF_RESERVED1 = 0x00000010
    PERF_DISABLE_CURSOR_SHADOW = 0x00000020
    PERF_DISABLE_CURSORSETTINGS = 0x00000040
    PERF_ENABLE_FONT_SMOOTHING = 0x00000080
    PERF_ENABLE_DESKTOP_COMPOSITION = 0x00000100
    PERF_RESERVED2 = 0x80000000


# -- text helpers ------------------------------------------------------------


def _ansi_codec(code_page: int) -> str:
    """The Python codec for an ANSI code page; Latin-1 when unknown."""
    if 0 < code_page < 0x10000:
        try:
            return codecs.lookup(f"cp{code_page}").name
        except LookupError:
            pass
    return "latin-1"


def _decode_text(raw: bytes, unicode: bool, codec: str, reader: Reader, name: str) -> str:
    if unicode:
        text = decode_utf16le(raw, reader, name)
    else:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError as exc:
            raise reader.error(name, f"invalid {codec} text: {exc.reason}") from None
    return text.split("\0", 1)[0]


def _encode_text(text: str, unicode: bool, codec: str) -> bytes:
    return text.encode("utf-16-le") if unicode else text.encode(codec)


def utf16le_to_utf8(
    raw: bytes | bytearray | memoryview, reader: Reader, name: str
) -> bytearray:
    """Transcode UTF-16LE to UTF-8 into a fresh ``bytearray``, stopping at a NUL.

    Written out by hand so that a password never exists as an immutable
    ``str`` that cannot be wiped; the work buffer is sized once (three
    UTF-8 bytes per UTF-16 unit at most) and zeroed, so no reallocation
    leaves a copy behind.
    """
    if len(raw) % 2:
        raise reader.error(name, f"odd UTF-16 length {len(raw)}")
    out = bytearray(len(raw) // 2 * 3)
    try:
        size = 0
        i = 0
        while i < len(raw):
            unit = raw[i] | raw[i + 1] << 8
            i += 2
            if unit == 0:
                break
            if 0xD800 <= unit <= 0xDBFF:
                if i >= len(raw):
                    raise reader.error(name, "invalid UTF-16: lone high surrogate")
                low = raw[i] | raw[i + 1] << 8
                if not 0xDC00 <= low <= 0xDFFF:
                    raise reader.error(name, "invalid UTF-16: lone high surrogate")
                i += 2
                unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            elif 0xDC00 <= unit <= 0xDFFF:
                raise reader.error(name, "invalid UTF-16: lone low surrogate")
            size = _put_utf8(out, size, unit)
        return bytearray(memoryview(out)[:size])
    finally:
        out[:] = bytes(len(out))


def _put_utf8(out: bytearray, at: int, cp: int) -> int:
    """Write code point ``cp`` as UTF-8 at ``out[at:]``; the offset after it."""
    if cp < 0x80:
        out[at] = cp
        return at + 1
    if cp < 0x800:
        out[at] = 0xC0 | cp >> 6
        out[at + 1] = 0x80 | cp & 0x3F
        return at + 2
    if cp < 0x10000:
        out[at] = 0xE0 | cp >> 12
        out[at + 1] = 0x80 | cp >> 6 & 0x3F
        out[at + 2] = 0x80 | cp & 0x3F
        return at + 3
    out[at] = 0xF0 | cp >> 18
    out[at + 1] = 0x80 | cp >> 12 & 0x3F
    out[at + 2] = 0x80 | cp >> 6 & 0x3F
    out[at + 3] = 0x80 | cp & 0x3F
    return at + 4


def utf8_to_utf16le(data: bytes | bytearray) -> bytearray:
    """Transcode UTF-8 to UTF-16LE into a fresh ``bytearray`` (for encoding a password)."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            cp, width = b, 1
        elif b >> 5 == 0x6:
            cp, width = b & 0x1F, 2
        elif b >> 4 == 0xE:
            cp, width = b & 0x0F, 3
        elif b >> 3 == 0x1E:
            cp, width = b & 0x07, 4
        else:
            raise ValueError("password is not valid UTF-8")
        if i + width > n:
            raise ValueError("password is not valid UTF-8")
        for k in range(1, width):
            cont = data[i + k]
            if cont >> 6 != 0x2:
                raise ValueError("password is not valid UTF-8")
            cp = cp << 6 | cont & 0x3F
        i += width
        if cp >= 0x10000:
            cp -= 0x10000
            for unit in (0xD800 | cp >> 10, 0xDC00 | cp & 0x3FF):
                out += bytes((unit & 0xFF, unit >> 8))
        else:
            out += bytes((cp & 0xFF, cp >> 8))
    return out


# -- time zone -----------------------------------------------------------------


@dataclass(frozen=True)
class TimeZoneInformation:
    """TS_TIME_ZONE_INFORMATION (MS-RDPBCGR 2.2.1.11.1.1.1.1), kept as its 172 bytes.

    Bias, StandardName, StandardDate, StandardBias, DaylightName, DaylightDate,
    DaylightBias; the properties decode the ones a server may show.
    """

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != TIME_ZONE_SIZE:
            raise ValueError(f"TS_TIME_ZONE_INFORMATION is {TIME_ZONE_SIZE} bytes")

    def __repr__(self) -> str:
        return (
            f"TimeZoneInformation(bias={self.bias}, standard_name={self.standard_name!r}, "
            f"daylight_name={self.daylight_name!r})"
        )

    @property
    def bias(self) -> int:
        """Minutes to add to local time to get UTC."""
        return int.from_bytes(self.raw[0:4], "little", signed=True)

    @property
    def standard_name(self) -> str:
        return self.raw[4:68].decode("utf-16-le", "replace").split("\0", 1)[0]

    @property
    def standard_bias(self) -> int:
        return int.from_bytes(self.raw[84:88], "little", signed=True)

    @property
    def daylight_name(self) -> str:
        return self.raw[88:152].decode("utf-16-le", "replace").split("\0", 1)[0]

    @property
    def daylight_bias(self) -> int:
        return int.from_bytes(self.raw[168:172], "little", signed=True)


# -- extended info ---------------------------------------------------------------


@dataclass(frozen=True)
class ExtendedInfo:
    """TS_EXTENDED_INFO_PACKET (MS-RDPBCGR 2.2.1.11.1.1.1).

    Every field after clientDir may be absent (older clients stop early); a
    field is ``None`` when it and everything after it were not sent. The
    auto-reconnect cookie is a credential and is not shown by the repr.
    """

    client_address_family: int = AddressFamily.AF_INET
    client_address: str = ""
    client_dir: str = ""
    client_time_zone: TimeZoneInformation | None = None
    client_session_id: int | None = None
    performance_flags: PerformanceFlag | None = None
    auto_reconnect_cookie: bytes | None = field(default=None, repr=False)
    reserved1: int | None = None
    reserved2: int | None = None
    dynamic_dst_time_zone_key_name: str | None = None
    dynamic_daylight_time_disabled: int | None = None

    _TAIL = (
        "client_time_zone",
        "client_session_id",
        "performance_flags",
        "auto_reconnect_cookie",
        "reserved1",
        "reserved2",
        "dynamic_dst_time_zone_key_name",
        "dynamic_daylight_time_disabled",
    )

    def _present(self) -> int:
        """How many tail fields are written: up to the last one that is set."""
        count = 0
        for index, name in enumerate(self._TAIL):
            if getattr(self, name) is not None:
                count = index + 1
        return count

    def write(self, w: Writer, unicode: bool, codec: str) -> None:
        nul = b"\0\0" if unicode else b"\0"
        address = _encode_text(self.client_address, unicode, codec) + nul
        directory = _encode_text(self.client_dir, unicode, codec) + nul
        w.u16le(self.client_address_family)
        w.u16le(len(address)).raw(address)
        w.u16le(len(directory)).raw(directory)
        present = self._present()
        if present >= 1:
            tz = self.client_time_zone
            w.raw(tz.raw if tz is not None else bytes(TIME_ZONE_SIZE))
        if present >= 2:
            w.u32le(self.client_session_id or 0)
        if present >= 3:
            w.u32le(self.performance_flags or 0)
        if present >= 4:
            cookie = self.auto_reconnect_cookie or b""
            w.u16le(len(cookie)).raw(cookie)
        if present >= 5:
            w.u16le(self.reserved1 or 0)
        if present >= 6:
            w.u16le(self.reserved2 or 0)
        if present >= 7:
            name = (self.dynamic_dst_time_zone_key_name or "").encode("utf-16-le")
            w.u16le(len(name)).raw(name)
        if present >= 8:
            w.u16le(self.dynamic_daylight_time_disabled or 0)

    @classmethod
    def read(cls, r: Reader, unicode: bool, codec: str) -> Self:
        family = r.u16le("clientAddressFamily")
        cb_address = r.u16le("cbClientAddress")
        if cb_address > MAX_CLIENT_ADDRESS:
            raise r.error("cbClientAddress", f"{cb_address} exceeds {MAX_CLIENT_ADDRESS}")
        address = _decode_text(
            r.raw(cb_address, "clientAddress"), unicode, codec, r, "clientAddress"
        )
        cb_dir = r.u16le("cbClientDir")
        if cb_dir > MAX_CLIENT_DIR:
            raise r.error("cbClientDir", f"{cb_dir} exceeds {MAX_CLIENT_DIR}")
        directory = _decode_text(r.raw(cb_dir, "clientDir"), unicode, codec, r, "clientDir")
        values: dict[str, object] = {}
        if r.remaining:
            values["client_time_zone"] = TimeZoneInformation(
                r.raw(TIME_ZONE_SIZE, "clientTimeZone")
            )
        if r.remaining:
            values["client_session_id"] = r.u32le("clientSessionId")
        if r.remaining:
            values["performance_flags"] = PerformanceFlag(r.u32le("performanceFlags"))
        if r.remaining:
            cb_cookie = r.u16le("cbAutoReconnectCookie")
            if cb_cookie > MAX_AUTORECONNECT_COOKIE:
                raise r.error(
                    "cbAutoReconnectCookie", f"{cb_cookie} exceeds {MAX_AUTORECONNECT_COOKIE}"
                )
            values["auto_reconnect_cookie"] = r.raw(cb_cookie, "autoReconnectCookie")
        if r.remaining:
            values["reserved1"] = r.u16le("reserved1")
        if r.remaining:
            values["reserved2"] = r.u16le("reserved2")
        if r.remaining:
            cb_name = r.u16le("cbDynamicDSTTimeZoneKeyName")
            if cb_name > MAX_DYNAMIC_DST_NAME:
                raise r.error(
                    "cbDynamicDSTTimeZoneKeyName", f"{cb_name} exceeds {MAX_DYNAMIC_DST_NAME}"
                )
            values["dynamic_dst_time_zone_key_name"] = r.utf16z(
                cb_name, "dynamicDSTTimeZoneKeyName"
            )
        if r.remaining:
            values["dynamic_daylight_time_disabled"] = r.u16le("dynamicDaylightTimeDisabled")
        return cls(family, address, directory, **values)  # type: ignore[arg-type]


# -- the info packet ---------------------------------------------------------------


@dataclass(frozen=True)
class ClientInfo:
    """TS_INFO_PACKET (MS-RDPBCGR 2.2.1.11.1.1), the body of the Client Info PDU.

    Strings are Unicode when INFO_UNICODE is set, otherwise in the ANSI code
    page named by ``code_page``. The password is a :class:`Secret` of UTF-8
    bytes (the raw code-page bytes for an ANSI client) and is never shown.
    """

    code_page: int = 0
    flags: InfoFlag = InfoFlag.INFO_MOUSE | InfoFlag.INFO_UNICODE
    domain: str = ""
    user_name: str = ""
    password: Secret = field(default_factory=Secret, repr=False)
    alternate_shell: str = ""
    working_dir: str = ""
    extra_info: ExtendedInfo | None = None

    @property
    def unicode(self) -> bool:
        return bool(self.flags & InfoFlag.INFO_UNICODE)

    @property
    def password_is_smart_card_pin(self) -> bool:
        """INFO_PASSWORD_IS_SC_PIN: the password field holds the smart card PIN."""
        return bool(self.flags & InfoFlag.INFO_PASSWORD_IS_SC_PIN)

    @property
    def autologon(self) -> bool:
        return bool(self.flags & InfoFlag.INFO_AUTOLOGON)

    @property
    def compression_type(self) -> int:
        """CompressionTypeMask bits (meaningful when INFO_COMPRESSION is set)."""
        return (int(self.flags) & COMPRESSION_TYPE_MASK) >> COMPRESSION_TYPE_SHIFT

    def encode(self) -> bytes:
        unicode = self.unicode
        codec = _ansi_codec(self.code_page)
        nul = b"\0\0" if unicode else b"\0"
        secret = self.password.reveal()
        password = utf8_to_utf16le(secret) if unicode else bytearray(secret)
        try:
            fields: list[bytes | bytearray] = [
                _encode_text(self.domain, unicode, codec),
                _encode_text(self.user_name, unicode, codec),
                password,
                _encode_text(self.alternate_shell, unicode, codec),
                _encode_text(self.working_dir, unicode, codec),
            ]
            w = Writer().u32le(self.code_page).u32le(self.flags)
            for value in fields:
                if len(value) > MAX_INFO_STRING:
                    raise ValueError(f"a Client Info string exceeds {MAX_INFO_STRING} bytes")
                w.u16le(len(value))
            for value in fields:
                w.raw(value).raw(nul)
            if self.extra_info is not None:
                self.extra_info.write(w, unicode, codec)
            return w.getvalue()
        finally:
            password[:] = bytes(len(password))

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Self:
        """Parse TS_INFO_PACKET; ``data`` follows the Basic Security Header.

        The password goes from ``data`` straight into a :class:`Secret`; the
        other fields are parsed from a copy in which the password's bytes
        are zero. Given a view of a wipeable buffer (the server's pre-sign-in
        receive path), the decoder thus leaves no copy of the PIN behind.
        """
        head = Reader(bytes(data[:_FIXED_PART]), PDU)
        code_page = head.u32le("CodePage")
        flags = InfoFlag(head.u32le("flags"))
        unicode = bool(flags & InfoFlag.INFO_UNICODE)
        codec = _ansi_codec(code_page)
        sizes = []
        for name in _STRINGS:
            size = head.u16le("cb" + name)
            if size > MAX_INFO_STRING:
                raise head.error("cb" + name, f"{size} exceeds {MAX_INFO_STRING}")
            if unicode and size % 2:
                raise head.error("cb" + name, f"odd length {size} for a Unicode string")
            sizes.append(size)
        nul = 2 if unicode else 1
        start = _FIXED_PART + sizes[0] + nul + sizes[1] + nul
        end = start + sizes[2]
        password = Secret()
        if end <= len(data):  # else the parse below says what is truncated
            raw = memoryview(data)[start:end]
            password = Secret.take(utf16le_to_utf8(raw, head, "Password") if unicode
                                   else bytearray(raw))
        scrubbed = bytearray(data)
        secret_part = memoryview(scrubbed)[start:end]
        secret_part[:] = bytes(len(secret_part))
        secret_part.release()
        r = Reader(bytes(scrubbed), PDU)
        scrubbed[:] = bytes(len(scrubbed))
        r.skip(_FIXED_PART, "header")
        texts: list[str] = []
        for name, size in zip(_STRINGS, sizes, strict=True):
            raw_text = r.raw(size, name)
            if any(r.raw(nul, name + " terminator")):
                password.wipe()
                raise r.error(name, "missing null terminator")
            if name != "Password":
                texts.append(_decode_text(raw_text, unicode, codec, r, name))
        try:
            extra = ExtendedInfo.read(r, unicode, codec) if r.remaining else None
            r.expect_end()
        except Exception:
            password.wipe()
            raise
        domain, user_name, shell, working_dir = texts
        return cls(code_page, flags, domain, user_name, password, shell, working_dir, extra)
