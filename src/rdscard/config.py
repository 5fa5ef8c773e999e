"""The rdscard configuration file (TOML).

Every setting has a documented default (see ``docs/configuration.md`` and
``rdscard.example.toml``); a file only names what it changes. Unknown keys
are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rdscard.directory.settings import DirectoryConfig
from rdscard.errors import ConfigError
from rdscard.logon.settings import LogonConfig

DEFAULT_PORT = 3389


@dataclass(frozen=True)
class ListenAddress:
    """A host and TCP port to listen on."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """Parse ``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT``."""
        text = text.strip()
        host, port_text = text, str(DEFAULT_PORT)
        if text.startswith("["):
            end = text.find("]")
            if end < 0:
                raise ConfigError(f"listen address {text!r}: missing ']' after the IPv6 address")
            host, rest = text[1:end], text[end + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ConfigError(f"listen address {text!r}: expected ':PORT' after ']'")
                port_text = rest[1:]
        elif ":" in text:
            host, port_text = text.rsplit(":", 1)
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(
                f"listen address {text!r}: port {port_text!r} is not a number (use HOST:PORT)"
            ) from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"listen address {text!r}: port {port} is out of range 0-65535")
        return cls(host or "0.0.0.0", port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerConfig:
    """``[server]``: where and how the RD Session Host listens."""

    listen: ListenAddress = field(default_factory=lambda: ListenAddress("0.0.0.0", DEFAULT_PORT))
    state_dir: Path = Path("/var/lib/rdscard")
    certificate: Path | None = None
    private_key: Path | None = None
    host_name: str = ""
    max_connections: int = 1000
    connect_timeout: float = 30.0
    max_connections_per_address: int = 20
    connection_rate: int = 30
    logon_timeout: float = 120.0
    output_pause: int = 1 << 20
    output_limit: int = 16 << 20
    #: Run the network side as ``user`` apart from a root monitor (when started as root).
    privilege_separation: bool = True
    user: str = "rdscard"
    #: The key type of a generated certificate: "ec" (P-256) or "rsa" (2048 bits).
    certificate_type: str = "ec"


#: ``[server] connection_rate`` counts new connections over this many seconds.
CONNECTION_RATE_WINDOW = 10.0
#: The smallest ``output_pause``: below it, ordinary bursts (a full screen of
#: graphics) would stop a connection's input.
MIN_OUTPUT_PAUSE = 256 * 1024


@dataclass(frozen=True)
class DisplayConfig:
    """``[display]``: the desktop the server draws, when the client asks for none."""

    width: int = 1024
    height: int = 768


@dataclass(frozen=True)
class RedirectionConfig:
    """``[redirection]``: smart card redirection (the policy "allow smart card redirection")."""

    enabled: bool = True
    socket_dir: Path = Path("/run/rdscard")
    call_timeout: float = 30.0
    max_contexts: int = 32
    max_program_connections: int = 64
    # Idle client contexts kept for the session's next SCardEstablishContext (0: none).
    context_pool: int = 4
    # SCardDisconnect(SCARD_LEAVE_CARD) answered at once, the client's disconnect sent behind.
    quick_disconnect: bool = True


#: The client's pcscd serves about 200 contexts in all (PCSC_MAX_CONTEXT_THREADS); one
#: session must leave the client's own programs most of them.
MAX_CONTEXTS_LIMIT = 150
MAX_PROGRAM_CONNECTIONS_LIMIT = 1000
MAX_CONTEXT_POOL = 16


#: A light window manager that starts a terminal once it manages windows (a terminal
#: mapped while the window manager starts can be left unmapped by it).
DEFAULT_SESSION_COMMAND: tuple[str, ...] = (
    "openbox", "--startup", "xterm -geometry 100x30+20+20",
)


@dataclass(frozen=True)
class SessionsConfig:
    """``[sessions]``: the desktop each signed-in user gets (an X server and programs as them)."""

    enabled: bool = True
    command: tuple[str, ...] = DEFAULT_SESSION_COMMAND
    x_server: tuple[str, ...] = ("Xvfb",)
    display_range: tuple[int, int] = (10, 999)
    pam_service: str = "rdscard"
    one_per_account: bool = True
    disconnected_limit: float = 0.0
    idle_limit: float = 0.0
    start_timeout: float = 20.0


@dataclass(frozen=True)
class EfsConfig:
    """``[efs]``: card-bound file encryption (fscrypt keys opened with the card at sign-in)."""

    enabled: bool = False
    #: where the envelopes live; empty: ``STATE/efs``
    envelope_dir: Path | None = None
    #: seconds between tries to finish removing a key while files are still open
    busy_retry: float = 2.0

    def directory(self, state_dir: Path) -> Path:
        return self.envelope_dir if self.envelope_dir is not None else state_dir / "efs"


@dataclass(frozen=True)
class NlaConfig:
    """``[nla]``: Network Level Authentication, CredSSP with smart card credentials.

    MS-RDPBCGR 5.4.5.2 and MS-CSSP: the client authenticates with Kerberos
    to ``service_principal`` (keys from ``keytab``) before any RDP PDU, then
    delegates its smart card PIN over the channel CredSSP established. It
    needs ``[logon] mode = "kerberos"``: without a KDC nothing can verify
    the client's ticket, and the server keeps plain TLS.
    """

    enabled: bool = False
    keytab: Path | None = None
    service_principal: str = ""
    require: bool = False


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    redirection: RedirectionConfig = field(default_factory=RedirectionConfig)
    logon: LogonConfig = field(default_factory=LogonConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    efs: EfsConfig = field(default_factory=EfsConfig)
    nla: NlaConfig = field(default_factory=NlaConfig)
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)

    def nla_active(self) -> bool:
        """NLA is offered: configured, and a KDC (kerberos mode) can verify the client."""
        return self.nla.enabled and self.logon.mode.value == "kerberos"

    def with_overrides(
        self, *, listen: str | None = None, state_dir: str | Path | None = None
    ) -> Config:
        """The same configuration with command-line overrides applied."""
        server = self.server
        if listen is not None:
            server = replace(server, listen=ListenAddress.parse(listen))
        if state_dir is not None:
            server = replace(server, state_dir=Path(state_dir))
        return replace(self, server=server)


def _take(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.pop(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _take_count(table: dict[str, Any], key: str, where: str, low: int, high: int,
                why: str = "") -> int:
    """An integer setting that must lie in ``low``..``high``; ``why`` ends the error."""
    count: int = _take(table, key, int, where)
    if not low <= count <= high:
        raise ConfigError(f"{where}.{key} = {count}: choose {low} to {high}{why}")
    return count


def _reject_unknown(table: dict[str, Any], where: str) -> None:
    if table:
        names = ", ".join(sorted(table))
        raise ConfigError(f"[{where}]: unknown setting(s) {names}; see docs/configuration.md")


def _server(table: dict[str, Any]) -> ServerConfig:
    cfg = ServerConfig()
    if "listen" in table:
        cfg = replace(cfg, listen=ListenAddress.parse(_take(table, "listen", str, "server")))
    if "state_dir" in table:
        cfg = replace(cfg, state_dir=Path(_take(table, "state_dir", str, "server")))
    if "certificate" in table:
        text = _take(table, "certificate", str, "server")
        cfg = replace(cfg, certificate=Path(text) if text else None)
    if "private_key" in table:
        text = _take(table, "private_key", str, "server")
        cfg = replace(cfg, private_key=Path(text) if text else None)
    if "host_name" in table:
        cfg = replace(cfg, host_name=_take(table, "host_name", str, "server"))
    if "max_connections" in table:
        count = _take(table, "max_connections", int, "server")
        if count < 1:
            raise ConfigError("server.max_connections must be at least 1")
        cfg = replace(cfg, max_connections=count)
    if "connect_timeout" in table:
        seconds = _take(table, "connect_timeout", float, "server")
        if seconds <= 0:
            raise ConfigError("server.connect_timeout must be a positive number of seconds")
        cfg = replace(cfg, connect_timeout=seconds)
    if "privilege_separation" in table:
        cfg = replace(cfg, privilege_separation=_take(table, "privilege_separation", bool,
                                                      "server"))
    if "user" in table:
        user = _take(table, "user", str, "server")
        if not user or user == "root":
            raise ConfigError("server.user must name an unprivileged system account "
                              "(not root), such as rdscard")
        cfg = replace(cfg, user=user)
    if "certificate_type" in table:
        kind = _take(table, "certificate_type", str, "server")
        if kind not in ("ec", "rsa"):
            raise ConfigError(f'server.certificate_type = {kind!r}: choose "ec" or "rsa"')
        cfg = replace(cfg, certificate_type=kind)
    cfg = _server_limits(table, cfg)
    _reject_unknown(table, "server")
    if (cfg.certificate is None) != (cfg.private_key is None):
        raise ConfigError(
            "server.certificate and server.private_key go together: set both, "
            "or neither to use a generated self-signed certificate"
        )
    return cfg


def _count(table: dict[str, Any], key: str, where: str) -> int:
    """A whole number, 0 meaning "no limit"."""
    value = int(_take(table, key, int, where))
    if value < 0:
        raise ConfigError(f"{where}.{key} must be 0 (no limit) or a positive whole number")
    return value


def _buffer_size(table: dict[str, Any], key: str, where: str) -> int:
    size = int(_take(table, key, int, where))
    if size < MIN_OUTPUT_PAUSE:
        raise ConfigError(f"{where}.{key} = {size}: choose at least {MIN_OUTPUT_PAUSE} bytes "
                          "(256 KiB)")
    return size


def _server_limits(table: dict[str, Any], cfg: ServerConfig) -> ServerConfig:
    """The ``[server]`` settings that keep one client from taking the server down."""
    where = "server"
    if "max_connections_per_address" in table:
        cfg = replace(cfg, max_connections_per_address=_count(
            table, "max_connections_per_address", where))
    if "connection_rate" in table:
        cfg = replace(cfg, connection_rate=_count(table, "connection_rate", where))
    if "logon_timeout" in table:
        cfg = replace(cfg, logon_timeout=_seconds(table, "logon_timeout", where))
    if "output_pause" in table:
        cfg = replace(cfg, output_pause=_buffer_size(table, "output_pause", where))
    if "output_limit" in table:
        cfg = replace(cfg, output_limit=_buffer_size(table, "output_limit", where))
    if cfg.output_limit <= cfg.output_pause:
        raise ConfigError(
            f"{where}.output_limit ({cfg.output_limit}) must be larger than "
            f"{where}.output_pause ({cfg.output_pause}): a connection is paused first, "
            "then dropped")
    return cfg


def _display(table: dict[str, Any]) -> DisplayConfig:
    cfg = DisplayConfig()
    sizes: dict[str, int] = {}
    for key in ("width", "height"):
        if key in table:
            value = _take(table, key, int, "display")
            if not 200 <= value <= 8192:
                raise ConfigError(f"display.{key} = {value}: choose a value from 200 to 8192")
            sizes[key] = value
    cfg = DisplayConfig(sizes.get("width", cfg.width), sizes.get("height", cfg.height))
    _reject_unknown(table, "display")
    return cfg


def _redirection(table: dict[str, Any]) -> RedirectionConfig:
    cfg = RedirectionConfig()
    if "enabled" in table:
        cfg = replace(cfg, enabled=_take(table, "enabled", bool, "redirection"))
    if "socket_dir" in table:
        cfg = replace(cfg, socket_dir=Path(_take(table, "socket_dir", str, "redirection")))
    if "call_timeout" in table:
        seconds = _take(table, "call_timeout", float, "redirection")
        if seconds <= 0:
            raise ConfigError("redirection.call_timeout must be a positive number of seconds")
        cfg = replace(cfg, call_timeout=seconds)
    if "max_contexts" in table:
        cfg = replace(cfg, max_contexts=_take_count(
            table, "max_contexts", "redirection", 1, MAX_CONTEXTS_LIMIT,
            " (every context is one on the client's pcscd, which serves about 200 in all)"))
    if "max_program_connections" in table:
        cfg = replace(cfg, max_program_connections=_take_count(
            table, "max_program_connections", "redirection", 1, MAX_PROGRAM_CONNECTIONS_LIMIT))
    if "context_pool" in table:
        cfg = replace(cfg, context_pool=_take_count(
            table, "context_pool", "redirection", 0, MAX_CONTEXT_POOL))
    if "quick_disconnect" in table:
        cfg = replace(cfg, quick_disconnect=_take(table, "quick_disconnect", bool, "redirection"))
    _reject_unknown(table, "redirection")
    return cfg


def _argv(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A command: a string run by ``/bin/sh -c``, or a non-empty list of arguments."""
    value = table.pop(key)
    if isinstance(value, str) and value.strip():
        return ("/bin/sh", "-c", value)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ConfigError(f"{where}.{key}: expected a command line (string) or a non-empty list of "
                      f"arguments, got {value!r}")


def _seconds(table: dict[str, Any], key: str, where: str) -> float:
    seconds = float(_take(table, key, float, where))
    if seconds < 0:
        raise ConfigError(f"{where}.{key} must be 0 (no limit) or a positive number of seconds")
    return seconds


def _sessions(table: dict[str, Any]) -> SessionsConfig:
    cfg = SessionsConfig()
    where = "sessions"
    if "enabled" in table:
        cfg = replace(cfg, enabled=_take(table, "enabled", bool, where))
    if "command" in table:
        cfg = replace(cfg, command=_argv(table, "command", where))
    if "x_server" in table:
        cfg = replace(cfg, x_server=_argv(table, "x_server", where))
    if "display_range" in table:
        value = table.pop("display_range")
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                or not 1 <= value[0] <= value[1] <= 65535):
            raise ConfigError(f"{where}.display_range: expected [FIRST, LAST] display numbers "
                              f"with 1 <= FIRST <= LAST, got {value!r}")
        cfg = replace(cfg, display_range=(value[0], value[1]))
    if "pam_service" in table:
        service = _take(table, "pam_service", str, where)
        if not service or "/" in service:
            raise ConfigError(f"{where}.pam_service: {service!r} is not a PAM service name")
        cfg = replace(cfg, pam_service=service)
    if "one_per_account" in table:
        cfg = replace(cfg, one_per_account=_take(table, "one_per_account", bool, where))
    if "disconnected_limit" in table:
        cfg = replace(cfg, disconnected_limit=_seconds(table, "disconnected_limit", where))
    if "idle_limit" in table:
        cfg = replace(cfg, idle_limit=_seconds(table, "idle_limit", where))
    if "start_timeout" in table:
        seconds = _seconds(table, "start_timeout", where)
        if seconds == 0:
            raise ConfigError(f"{where}.start_timeout must be a positive number of seconds")
        cfg = replace(cfg, start_timeout=seconds)
    _reject_unknown(table, where)
    return cfg


def _efs(table: dict[str, Any]) -> EfsConfig:
    where = "efs"
    cfg = EfsConfig()
    if "enabled" in table:
        cfg = replace(cfg, enabled=_take(table, "enabled", bool, where))
    if "envelope_dir" in table:
        text = _take(table, "envelope_dir", str, where)
        if text and not Path(text).is_absolute():
            raise ConfigError(f"{where}.envelope_dir must be an absolute path")
        cfg = replace(cfg, envelope_dir=Path(text) if text else None)
    if "busy_retry" in table:
        seconds = _seconds(table, "busy_retry", where)
        if not 0.05 <= seconds <= 600:
            raise ConfigError(f"{where}.busy_retry must be 0.05 to 600 seconds")
        cfg = replace(cfg, busy_retry=seconds)
    _reject_unknown(table, where)
    return cfg


def _nla(table: dict[str, Any]) -> NlaConfig:
    cfg = NlaConfig()
    if "enabled" in table:
        cfg = replace(cfg, enabled=_take(table, "enabled", bool, "nla"))
    if "require" in table:
        cfg = replace(cfg, require=_take(table, "require", bool, "nla"))
    if "keytab" in table:
        text = _take(table, "keytab", str, "nla")
        cfg = replace(cfg, keytab=Path(text) if text else None)
    if "service_principal" in table:
        cfg = replace(cfg, service_principal=_take(table, "service_principal", str, "nla"))
    _reject_unknown(table, "nla")
    if cfg.require and not cfg.enabled:
        raise ConfigError("nla.require needs nla.enabled = true")
    return cfg


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse configuration text; errors name the file and the setting."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        server = _server(dict(data.pop("server", {})))
        display = _display(dict(data.pop("display", {})))
        redirection = _redirection(dict(data.pop("redirection", {})))
        logon = LogonConfig.from_table(dict(data.pop("logon", {})))
        sessions = _sessions(dict(data.pop("sessions", {})))
        efs = _efs(dict(data.pop("efs", {})))
        nla = _nla(dict(data.pop("nla", {})))
        directory = DirectoryConfig.from_table(dict(data.pop("directory", {})))
        _reject_unknown(data, "top level")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return Config(server=server, display=display, redirection=redirection, logon=logon,
                  sessions=sessions, efs=efs, nla=nla, directory=directory)


def load_config(path: Path | None) -> Config:
    """Load the configuration file, or the defaults when ``path`` is None."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    return parse_config(text, str(path))
