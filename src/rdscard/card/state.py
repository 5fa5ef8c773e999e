"""The persistent state of a virtual PIV card and its JSON file.

Everything a real card keeps across power cycles: PIN and PUK with their
retry counters (SP 800-73-4 Part 2 3.2.1-3.2.3), the card management key
(9B), the data objects (container content by tag) and the private keys per
key reference. The PIN, PUK, management key and private keys are test-card
secrets: the repr never shows them and nothing here logs them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

from rdscard.card.constants import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_MANAGEMENT_KEY,
    SYMMETRIC_KEY_SIZES,
    Algorithm,
    is_asymmetric_slot,
    is_known_object,
)
from rdscard.card.objects import default_objects
from rdscard.errors import ConfigError

FORMAT_VERSION: Final = 1
PIN_MIN: Final = 6
PIN_MAX: Final = 8
PUK_SIZE: Final = 8
MAX_RETRIES: Final = 15
MAX_OBJECT_SIZE: Final = 32768
MAX_SERIAL: Final = 0xFFFFFFFF
DEFAULT_RETRIES: Final = 3
DEFAULT_PIN: Final = b"123456"
DEFAULT_PUK: Final = b"12345678"
VALIDITY_YEARS: Final = 5


@dataclass(frozen=True, slots=True)
class SlotKey:
    """A private key in a key reference: algorithm id and PKCS#8 DER."""

    algorithm: int
    private_key: bytes = field(repr=False)
    generated: bool = True


def check_pin(pin: bytes) -> None:
    """A PIV PIN is 6 to 8 bytes, none of them the FF pad (SP 800-73-4 Part 2 2.4.3)."""
    if not PIN_MIN <= len(pin) <= PIN_MAX or 0xFF in pin:
        raise ConfigError("the PIN must be 6 to 8 characters")


def check_puk(puk: bytes) -> None:
    """The PUK is 8 bytes (SP 800-73-4 Part 2 2.4.3)."""
    if len(puk) != PUK_SIZE:
        raise ConfigError("the PUK must be 8 characters")


@dataclass(repr=False)
class CardState:
    """Everything the card remembers between insertions."""

    serial: int
    pin: bytes
    puk: bytes
    pin_retries_limit: int = DEFAULT_RETRIES
    pin_retries_left: int = DEFAULT_RETRIES
    puk_retries_limit: int = DEFAULT_RETRIES
    puk_retries_left: int = DEFAULT_RETRIES
    management_key_algorithm: int = Algorithm.TDES
    management_key: bytes = DEFAULT_MANAGEMENT_KEY
    data_objects: dict[int, bytes] = field(default_factory=dict)
    keys: dict[int, SlotKey] = field(default_factory=dict)

    def __repr__(self) -> str:
        objects = ", ".join(f"{tag:X}" for tag in sorted(self.data_objects))
        slots = ", ".join(f"{ref:02X}" for ref in sorted(self.keys))
        return (f"CardState(serial={self.serial}, pin_retries_left={self.pin_retries_left}/"
                f"{self.pin_retries_limit}, puk_retries_left={self.puk_retries_left}/"
                f"{self.puk_retries_limit}, management_key_algorithm="
                f"{self.management_key_algorithm:02X}, data_objects=[{objects}], "
                f"keys=[{slots}])")

    __str__ = __repr__

    @classmethod
    def new(cls, serial: int, pin: bytes = DEFAULT_PIN, puk: bytes = DEFAULT_PUK, *,
            pin_retries: int = DEFAULT_RETRIES, puk_retries: int = DEFAULT_RETRIES,
            rng: Callable[[int], bytes] = os.urandom,
            today: datetime.date | None = None) -> Self:
        """A fresh card: CHUID, CCC and Discovery Object, no keys, default management key."""
        check_pin(pin)
        check_puk(puk)
        if not 0 <= serial <= MAX_SERIAL:
            raise ConfigError(f"card serial {serial} must fit in 32 bits")
        for name, value in (("PIN", pin_retries), ("PUK", puk_retries)):
            if not 1 <= value <= MAX_RETRIES:
                raise ConfigError(f"{name} retry count {value} must be 1 to {MAX_RETRIES}")
        day = today or datetime.date.today()
        expiry = day.replace(year=day.year + VALIDITY_YEARS, day=min(day.day, 28))
        return cls(serial=serial, pin=bytes(pin), puk=bytes(puk),
                   pin_retries_limit=pin_retries, pin_retries_left=pin_retries,
                   puk_retries_limit=puk_retries, puk_retries_left=puk_retries,
                   data_objects=default_objects(serial, rng, expiry))

    # -- JSON ------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The JSON form (bytes as base64, tags and key references as hex)."""
        return {
            "format": FORMAT_VERSION,
            "serial": self.serial,
            "pin": _b64(self.pin),
            "puk": _b64(self.puk),
            "pin_retries_limit": self.pin_retries_limit,
            "pin_retries_left": self.pin_retries_left,
            "puk_retries_limit": self.puk_retries_limit,
            "puk_retries_left": self.puk_retries_left,
            "management_key_algorithm": self.management_key_algorithm,
            "management_key": _b64(self.management_key),
            "data_objects": {f"{t:X}": _b64(v) for t, v in sorted(self.data_objects.items())},
            "keys": {
                f"{ref:02X}": {"algorithm": k.algorithm, "private_key": _b64(k.private_key),
                               "generated": k.generated}
                for ref, k in sorted(self.keys.items())
            },
        }

    @classmethod
    def from_json(cls, doc: object) -> Self:
        """Parse and check the JSON form; :class:`ConfigError` says what is wrong."""
        d = _dict(doc, "card state")
        if d.get("format") != FORMAT_VERSION:
            raise ConfigError(f"card state: unsupported format {d.get('format')!r}")
        state = cls(
            serial=_int(d, "serial", 0, MAX_SERIAL),
            pin=_bytes(d, "pin"),
            puk=_bytes(d, "puk"),
            pin_retries_limit=_int(d, "pin_retries_limit", 1, MAX_RETRIES),
            pin_retries_left=_int(d, "pin_retries_left", 0, MAX_RETRIES),
            puk_retries_limit=_int(d, "puk_retries_limit", 1, MAX_RETRIES),
            puk_retries_left=_int(d, "puk_retries_left", 0, MAX_RETRIES),
            management_key_algorithm=_int(d, "management_key_algorithm", 0, 0xFF),
            management_key=_bytes(d, "management_key"),
        )
        check_pin(state.pin)
        check_puk(state.puk)
        if state.pin_retries_left > state.pin_retries_limit or (
                state.puk_retries_left > state.puk_retries_limit):
            raise ConfigError("card state: more retries left than the limit")
        size = SYMMETRIC_KEY_SIZES.get(state.management_key_algorithm)
        if size != len(state.management_key):
            raise ConfigError("card state: management key does not match its algorithm")
        for name, value in _dict(d.get("data_objects", {}), "data_objects").items():
            tag = _hex_key(name, "data_objects")
            if not is_known_object(tag):
                raise ConfigError(f"card state: unknown data object {name}")
            raw = _decode_b64(value, f"data object {name}")
            if len(raw) > MAX_OBJECT_SIZE:
                raise ConfigError(f"card state: data object {name} is too large")
            state.data_objects[tag] = raw
        for name, value in _dict(d.get("keys", {}), "keys").items():
            ref = _hex_key(name, "keys")
            entry = _dict(value, f"key {name}")
            algorithm = _int(entry, "algorithm", 0, 0xFF)
            if not is_asymmetric_slot(ref) or algorithm not in ASYMMETRIC_ALGORITHMS:
                raise ConfigError(f"card state: key {name} has a bad slot or algorithm")
            generated = entry.get("generated", True)
            state.keys[ref] = SlotKey(algorithm, _bytes(entry, "private_key"),
                                      bool(generated))
        return state

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a state file written by :meth:`save`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read card state {path}: {exc.strerror}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"card state {path} is not valid JSON: {exc}") from None
        return cls.from_json(doc)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: a temporary file beside ``path``, fsync, rename; mode 0600."""
        target = Path(path)
        data = json.dumps(self.to_json(), indent=1).encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                   suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode_b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"card state: {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"card state: {what} is not valid base64") from None


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"card state: {what} must be an object")
    return value


def _int(d: dict[str, Any], key: str, low: int, high: int) -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"card state: {key} must be an integer from {low} to {high}")
    return value


def _bytes(d: dict[str, Any], key: str) -> bytes:
    return _decode_b64(d.get(key), key)


def _hex_key(name: str, what: str) -> int:
    try:
        return int(name, 16)
    except ValueError:
        raise ConfigError(f"card state: {what} key {name!r} is not hexadecimal") from None
