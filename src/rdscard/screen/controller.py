"""The logon screen of one session: model, PIN entry and graphics updates together.

Typical use by a session (no I/O here; the caller sends the bytes)::

    screen = LogonScreenController(width, height, host_name="rdsh1")
    send(screen.updates(bpp))                 # first frame, whole desktop
    for event in input_events:
        action = screen.on_input(event)
        if isinstance(action, PinSubmitted):
            start_logon(action.pin)           # the receiver wipes the PIN
    screen.set_status("Wrong PIN", StatusKind.ERROR)
    screen.set_tries_left(2)
    send(screen.updates(bpp))                 # only the tiles that changed

The screen is rendered again only when its :class:`LogonScreen` value
changed, and :meth:`updates` encodes only the tiles that differ from the
last frame it returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from PIL import Image

from rdscard.pdu.input import FASTPATH_MAX_LENGTH, InputEvent
from rdscard.screen.cache import FrameCache
from rdscard.screen.keyboard import (
    PIV_MAX_PIN_LENGTH,
    PinAction,
    PinCleared,
    PinEdited,
    PinEntry,
    PinSubmitted,
)
from rdscard.screen.model import (
    DEFAULT_STATUS,
    DEFAULT_TITLE,
    LogonScreen,
    SignedInInfo,
    StatusKind,
    View,
    tries_left_hint,
)

ScreenAction = PinAction


class LogonScreenController:
    """Owns the :class:`LogonScreen` value and the :class:`PinEntry` of one session."""

    def __init__(
        self,
        width: int,
        height: int,
        host_name: str = "",
        *,
        title: str = DEFAULT_TITLE,
        status: str = DEFAULT_STATUS,
        product_name: str = "rdscard",
        max_pin_length: int = PIV_MAX_PIN_LENGTH,
        frames: FrameCache | None = None,
    ) -> None:
        self._screen = LogonScreen(
            width, height, host_name=host_name, product_name=product_name, title=title,
            status=status,
        )
        self.pin = PinEntry(max_pin_length)
        self._frames = frames if frames is not None else FrameCache(frames=4, encodings=2)
        self._rendered: tuple[LogonScreen, Image.Image] | None = None
        #: The screen the client was last brought up to, and its frame.
        self._sent: tuple[LogonScreen, Image.Image] | None = None
        self.render_count = 0

    # -- state -----------------------------------------------------------------
    @property
    def screen(self) -> LogonScreen:
        """What the screen shows now."""
        return self._screen

    @screen.setter
    def screen(self, value: LogonScreen) -> None:
        self._screen = value

    @property
    def dirty(self) -> bool:
        """The client has not been sent the current screen yet."""
        return self._sent is None or self._rendered is None or self._rendered[0] != self._screen

    # -- input -----------------------------------------------------------------
    def on_input(self, event: InputEvent) -> ScreenAction | None:
        """Feed one input event; PIN keys only count on the logon page with PIN entry on."""
        self.pin.enabled = self._screen.view is View.LOGON and self._screen.pin_enabled
        action = self.pin.feed(event)
        if isinstance(action, PinEdited):
            self._screen = self._screen.with_pin_length(action.length)
        elif isinstance(action, PinCleared | PinSubmitted):
            self._screen = self._screen.with_pin_length(0)
        return action

    def on_inputs(self, events: Iterable[InputEvent]) -> list[ScreenAction]:
        """Feed several events; returns the actions they caused, in order."""
        actions = []
        for event in events:
            action = self.on_input(event)
            if action is not None:
                actions.append(action)
        return actions

    # -- what to show ----------------------------------------------------------
    def set_status(self, text: str, kind: StatusKind = StatusKind.INFO) -> None:
        """Change the status line ("Insert your smart card", an error...)."""
        self._screen = self._screen.with_status(text, kind)

    def set_tries_left(self, tries: int | None) -> None:
        """Show the PIN retry counter as the hint line (None hides it)."""
        self._screen = self._screen.with_hint(tries_left_hint(tries))

    def set_hint(self, hint: str | None) -> None:
        """Any hint line under the PIN field (None hides it)."""
        self._screen = self._screen.with_hint(hint)

    def set_pin_enabled(self, enabled: bool) -> None:
        """Accept PIN keys or not; turning it off also clears what was typed."""
        if not enabled:
            self.pin.clear()
        self._screen = self._screen.with_pin_enabled(enabled)

    def show_signed_in(
        self, user: str, realm: str = "", ticket_expiry: datetime | None = None, reader: str = ""
    ) -> None:
        """Switch to the signed-in page."""
        self.pin.clear()
        self._screen = self._screen.with_signed_in(
            SignedInInfo(user, realm, ticket_expiry, reader)
        )

    def show_logon(self) -> None:
        """Back to the logon page."""
        self._screen = self._screen.with_logon()

    # -- output ----------------------------------------------------------------
    def render(self) -> Image.Image:
        """The current frame, drawn again only when the screen value changed."""
        if self._rendered is None or self._rendered[0] != self._screen:
            self._rendered = (self._screen, self._frames.frame(self._screen))
            self.render_count += 1
        return self._rendered[1]

    def refresh(self) -> None:
        """The client lost its picture (Refresh Rect, Suppress Output off): send everything."""
        self._sent = None

    def release(self) -> None:
        """Drop the rendered frames (the desktop covers the screen); the next update is whole."""
        self._rendered = None
        self._sent = None

    def updates(
        self,
        bpp: int,
        max_pdu_size: int = FASTPATH_MAX_LENGTH,
        max_request_size: int | None = None,
    ) -> list[bytes]:
        """Fast-path PDUs bringing the client up to date; empty when nothing changed."""
        frame = self.render()
        sent = self._sent
        if sent is not None and frame is sent[1]:
            return []
        self._sent = (self._screen, frame)
        if sent is None:
            return self._frames.full_updates(self._screen, bpp, max_pdu_size, max_request_size)
        return self._frames.delta_updates(sent, self._sent, bpp, max_pdu_size, max_request_size)
