"""What the server asks a session leader for: :class:`LeaderSpec`.

The spec is the first line the leader reads on its standard input, one JSON
object. The server builds it from trusted data (its configuration and the
account a sign-in mapped the card to), but the leader runs as root, so every
field is checked here before anything uses it: a wrong value is a
:class:`SpecError` naming the field and what it should be.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rdscard.errors import RdscardError

_ACCOUNT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?")
_SERVICE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYBOARD = re.compile(r"[A-Za-z0-9_,().+-]*")
MAX_SPEC_BYTES = 64 * 1024


class SpecError(RdscardError):
    """A session leader spec field is missing or wrong; the message names it."""


def default_runtime_dir(session_id: int) -> str:
    """The per-session runtime directory used when the spec names none."""
    return f"/run/rdscard/session-{session_id}-x"


@dataclass(frozen=True)
class LeaderSpec:
    """One desktop session: who, what to run and on which X server.

    ``command`` runs under ``dbus-run-session`` (when installed) with the
    session environment plus ``env``. ``x_server`` is the X server's argv
    prefix (``Xvfb``, or ``Xvnc`` with its own options); the leader adds the
    display, the screen size, ``-nolisten tcp``, ``-auth`` and
    ``-displayfd``. ``display_range`` bounds the display numbers tried, both
    ends included. ``x_timeout`` is how long the X server may take to accept
    connections.
    """

    session_id: int
    account: str
    command: tuple[str, ...]
    pam_service: str = "rdscard"
    client_address: str = ""
    width: int = 1024
    height: int = 768
    x_server: tuple[str, ...] = ("Xvfb",)
    display_range: tuple[int, int] = (10, 99)
    keyboard_layout: str = "us"
    keyboard_variant: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    runtime_dir: str = ""
    x_timeout: float = 10.0

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def runtime_path(self) -> str:
        """The runtime directory: ``runtime_dir`` or the default for the session id."""
        return self.runtime_dir or default_runtime_dir(self.session_id)

    def to_json(self) -> str:
        """The spec as one line of JSON (no newline), as the leader reads it."""
        return json.dumps({
            "session_id": self.session_id,
            "account": self.account,
            "pam_service": self.pam_service,
            "client_address": self.client_address,
            "width": self.width,
            "height": self.height,
            "x_server": list(self.x_server),
            "display_range": list(self.display_range),
            "keyboard_layout": self.keyboard_layout,
            "keyboard_variant": self.keyboard_variant,
            "command": list(self.command),
            "env": dict(self.env),
            "runtime_dir": self.runtime_path,
            "x_timeout": self.x_timeout,
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> LeaderSpec:
        """Parse and check one spec line; raises :class:`SpecError`."""
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError(f"the session spec is larger than {MAX_SPEC_BYTES} bytes")
        try:
            raw = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpecError(f"the session spec is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise SpecError("the session spec must be a JSON object")
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LeaderSpec:
        """Build a spec from decoded JSON; raises :class:`SpecError`."""
        known = {
            "session_id", "account", "pam_service", "client_address", "width", "height",
            "x_server", "display_range", "keyboard_layout", "keyboard_variant", "command",
            "env", "runtime_dir", "x_timeout",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SpecError(f"unknown session spec field(s): {', '.join(unknown)}")
        for required in ("session_id", "account", "command"):
            if required not in raw:
                raise SpecError(f"the session spec has no {required!r}")
        kwargs: dict[str, Any] = dict(raw)
        for name in ("command", "x_server", "display_range"):
            if name in kwargs:
                value = kwargs[name]
                if not isinstance(value, list):
                    raise SpecError(f"{name} must be a JSON array, not {_kind(value)}")
                kwargs[name] = tuple(value)
        if "env" in kwargs and not isinstance(kwargs["env"], dict):
            raise SpecError(f"env must be a JSON object, not {_kind(kwargs['env'])}")
        if isinstance(kwargs.get("x_timeout"), int) and not isinstance(
                kwargs["x_timeout"], bool):
            kwargs["x_timeout"] = float(kwargs["x_timeout"])
        return cls(**kwargs)


def _kind(value: object) -> str:
    return type(value).__name__


def _int(spec: LeaderSpec, name: str, low: int, high: int) -> None:
    value = getattr(spec, name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SpecError(f"{name} must be an integer from {low} to {high}, not {value!r}")


def _str(spec: LeaderSpec, name: str, pattern: re.Pattern[str] | None = None,
         what: str = "") -> None:
    value = getattr(spec, name)
    if not isinstance(value, str) or "\0" in value:
        raise SpecError(f"{name} must be a string, not {_kind(value)}")
    if pattern is not None and not pattern.fullmatch(value):
        raise SpecError(f"{name} {value!r} is not {what}")


def _argv(spec: LeaderSpec, name: str) -> None:
    value = getattr(spec, name)
    if not value or not all(isinstance(a, str) and a and "\0" not in a for a in value):
        raise SpecError(f"{name} must be a non-empty list of non-empty strings")


def _validate(spec: LeaderSpec) -> None:
    _int(spec, "session_id", 0, 2**31 - 1)
    _str(spec, "account", _ACCOUNT, "a valid account name")
    _str(spec, "pam_service", _SERVICE,
         "a PAM service name (a file name in /etc/pam.d, such as rdscard)")
    _str(spec, "client_address")
    _int(spec, "width", 64, 16384)
    _int(spec, "height", 64, 16384)
    _argv(spec, "x_server")
    _argv(spec, "command")
    low_high = spec.display_range
    if (len(low_high) != 2 or not all(isinstance(n, int) and not isinstance(n, bool)
                                      and 0 <= n <= 65535 for n in low_high)
            or low_high[0] > low_high[1]):
        raise SpecError(
            f"display_range must be [first, last] display numbers with first <= last, "
            f"not {list(low_high)!r}")
    _str(spec, "keyboard_layout", _KEYBOARD, "an XKB layout such as us or de,fr")
    _str(spec, "keyboard_variant", _KEYBOARD, "an XKB variant such as nodeadkeys")
    for key, value in spec.env.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise SpecError(f"env name {key!r} is not a valid environment variable name")
        if not isinstance(value, str) or "\0" in value:
            raise SpecError(f"env value of {key} must be a string without NUL")
    _str(spec, "runtime_dir")
    path = spec.runtime_path
    if (not os.path.isabs(path) or os.path.normpath(path) != path
            or path.count("/") < 2):
        raise SpecError(
            f"runtime_dir {path!r} must be a normalised absolute path at least two levels "
            f"deep, such as {default_runtime_dir(spec.session_id)}")
    timeout = spec.x_timeout
    if not isinstance(timeout, float) or not 0.1 <= timeout <= 300:
        raise SpecError(f"x_timeout must be a number of seconds from 0.1 to 300, not {timeout!r}")
