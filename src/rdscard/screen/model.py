"""What the logon screen shows, as an immutable value (no I/O, no drawing).

A :class:`LogonScreen` is replaced, never mutated: ``screen.with_status(...)``
returns a new value, and two equal values render to identical images, so
"did anything change?" is an equality test. The PIN itself never enters the
model, only how many characters were typed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Self

from rdscard.screen.layout import MAX_BULLETS

DEFAULT_TITLE = "Sign in with your smart card"
DEFAULT_STATUS = "Insert your smart card"


class StatusKind(Enum):
    """How the status line is drawn."""

    INFO = "info"
    WAITING = "waiting"
    SUCCESS = "success"
    ERROR = "error"


class View(Enum):
    """Which page the screen shows."""

    LOGON = "logon"
    SIGNED_IN = "signed-in"


@dataclass(frozen=True)
class SignedInInfo:
    """The signed-in page: who, where, until when, with which reader."""

    user: str
    realm: str = ""
    ticket_expiry: datetime | None = None
    reader: str = ""


@dataclass(frozen=True)
class LogonScreen:
    """The whole content of the logon screen for one session."""

    width: int
    height: int
    host_name: str = ""
    product_name: str = "rdscard"
    title: str = DEFAULT_TITLE
    status: str = DEFAULT_STATUS
    status_kind: StatusKind = StatusKind.INFO
    pin_length: int = 0
    pin_enabled: bool = True
    hint: str | None = None
    footer: str = "Type your PIN, then press Enter. Esc clears."
    view: View = View.LOGON
    signed_in: SignedInInfo | None = None

    def __post_init__(self) -> None:
        if not (1 <= self.width <= 8192 and 1 <= self.height <= 8192):
            raise ValueError(f"desktop size {self.width}x{self.height} out of range")
        if not 0 <= self.pin_length <= MAX_BULLETS:
            raise ValueError(f"pin_length {self.pin_length} out of range 0..{MAX_BULLETS}")
        if self.view is View.SIGNED_IN and self.signed_in is None:
            raise ValueError("the signed-in view needs SignedInInfo")

    def with_status(self, text: str, kind: StatusKind = StatusKind.INFO) -> Self:
        """The same screen with another status line."""
        return dataclasses.replace(self, status=text, status_kind=kind)

    def with_pin_length(self, length: int) -> Self:
        """The same screen showing ``length`` bullets."""
        return dataclasses.replace(self, pin_length=length)

    def with_hint(self, hint: str | None) -> Self:
        """The same screen with another hint line (None hides it)."""
        return dataclasses.replace(self, hint=hint)

    def with_pin_enabled(self, enabled: bool) -> Self:
        """PIN entry on or off (off draws the field greyed out and empty)."""
        return dataclasses.replace(self, pin_enabled=enabled, pin_length=0 if not enabled
                                   else self.pin_length)

    def with_signed_in(self, info: SignedInInfo) -> Self:
        """Switch to the signed-in page."""
        return dataclasses.replace(self, view=View.SIGNED_IN, signed_in=info, pin_length=0)

    def with_logon(self) -> Self:
        """Back to the logon page."""
        return dataclasses.replace(self, view=View.LOGON, signed_in=None)


def tries_left_hint(tries: int | None) -> str | None:
    """The hint for a PIN retry counter: "3 tries left", "1 try left", or None."""
    if tries is None:
        return None
    if tries <= 0:
        return "The PIN is blocked"
    return f"{tries} {'try' if tries == 1 else 'tries'} left"
