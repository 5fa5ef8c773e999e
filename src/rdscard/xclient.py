"""The stock RDP client side, run headlessly: Xvfb and xfreerdp.

Used by the end-to-end demo and the integration tests: a virtual X screen,
the stock FreeRDP client connected to an rdscard server inside it, keys
typed into its window with xdotool and screenshots of the screen.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import Image, ImageGrab

from rdscard.errors import RdscardError


class ClientToolMissingError(RdscardError):
    """A client-side program is not installed."""


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise ClientToolMissingError(
            f"{program} is not installed: install the Debian package {package} "
            "(scripts/install.sh installs everything)"
        )
    return path


class VirtualScreen:
    """An Xvfb server on a free display number, stopped on close."""

    def __init__(self, width: int = 1280, height: int = 1024) -> None:
        self.width = width
        self.height = height
        self._process: subprocess.Popen[bytes] | None = None
        self.display = ""

    def start(self) -> VirtualScreen:
        """Start Xvfb; returns when the display accepts clients."""
        xvfb = _require("Xvfb", "xvfb")
        read_fd, write_fd = os.pipe()
        # -displayfd makes Xvfb choose a free display and tell us which.
        self._process = subprocess.Popen(
            [
                xvfb,
                "-displayfd",
                str(write_fd),
                "-screen",
                "0",
                f"{self.width}x{self.height}x24",
                "-nolisten",
                "tcp",
            ],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as reader:
            number = reader.readline().strip()
        if not number:
            self.close()
            raise RdscardError("Xvfb did not start (no display number reported)")
        self.display = f":{int(number)}"
        return self

    def screenshot(self) -> Image.Image:
        """The whole screen as an RGB image."""
        return ImageGrab.grab(xdisplay=self.display).convert("RGB")

    def env(self) -> dict[str, str]:
        """An environment for X programs on this screen."""
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        return env

    def close(self) -> None:
        """Stop Xvfb."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> VirtualScreen:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class XFreeRdp:
    """One xfreerdp process connected to ``host:port`` on a virtual screen."""

    def __init__(
        self,
        screen: VirtualScreen,
        host: str,
        port: int,
        *,
        extra_args: Sequence[str] = (),
        security: str | None = "tls",
        size: tuple[int, int] = (1024, 768),
        bpp: int = 32,
        title: str | None = None,
        env: dict[str, str] | None = None,
        program: tuple[str, str] = ("xfreerdp", "freerdp2-x11"),
    ) -> None:
        """``program``: the client and its Debian package (``("xfreerdp3", "freerdp3-x11")``)."""
        self.screen = screen
        self.title = title or f"rdscard-{port}-{time.monotonic_ns()}"
        args = [
            _require(*program),
            f"/v:{host}:{port}",
            "/cert:ignore",
            f"/size:{size[0]}x{size[1]}",
            f"/bpp:{bpp}",
            f"/t:{self.title}",
            "/log-level:WARN",
        ]
        if security is not None:
            args.append(f"/sec:{security}")
        args.extend(extra_args)
        full_env = screen.env()
        if env:
            full_env.update(env)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            args, env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        """Everything xfreerdp printed so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def window_id(self, timeout: float = 10.0) -> str:
        """The X window id of the client's main window."""
        xdotool = _require("xdotool", "xdotool")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = subprocess.run(
                [xdotool, "search", "--name", self.title],
                env=self.screen.env(),
                capture_output=True,
                text=True,
                check=False,
            )
            ids = result.stdout.split()
            if ids:
                return ids[-1]
            if self.process.poll() is not None:
                raise RdscardError(f"xfreerdp exited early:\n{self.output()}")
            time.sleep(0.1)
        raise RdscardError(f"no xfreerdp window titled {self.title!r} appeared")

    def window_origin(self) -> tuple[int, int]:
        """Screen coordinates of the top-left corner of the client's desktop area."""
        xdotool = _require("xdotool", "xdotool")
        result = subprocess.run(
            [xdotool, "getwindowgeometry", "--shell", self.window_id()],
            env=self.screen.env(), capture_output=True, text=True, check=True,
        )
        values = dict(
            line.split("=", 1) for line in result.stdout.splitlines() if "=" in line
        )
        return int(values.get("X", 0)), int(values.get("Y", 0))

    def type_keys(self, *keys: str) -> None:
        """Press keys (xdotool key names such as ``1``, ``BackSpace``, ``Return``)."""
        xdotool = _require("xdotool", "xdotool")
        window = self.window_id()
        env = self.screen.env()
        subprocess.run([xdotool, "windowfocus", "--sync", window], env=env, check=False)
        subprocess.run(
            [xdotool, "key", "--delay", "30", "--window", window, *keys], env=env, check=True
        )

    def type_text(self, text: str) -> None:
        """Type ``text`` (one line) into the client's window, clicking into it first."""
        xdotool = _require("xdotool", "xdotool")
        window = self.window_id()
        env = self.screen.env()
        subprocess.run([xdotool, "windowfocus", "--sync", window], env=env, check=False)
        subprocess.run([xdotool, "mousemove", "--window", window, "300", "300", "click", "1"],
                       env=env, check=True)
        subprocess.run([xdotool, "type", "--delay", "30", "--window", window, text],
                       env=env, check=True)

    def close(self) -> int | None:
        """Stop the client; returns its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def wait_for(predicate: object, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@contextlib.contextmanager
def virtual_screen(width: int = 1280, height: int = 1024) -> Iterator[VirtualScreen]:
    """A started :class:`VirtualScreen`, stopped on exit."""
    screen = VirtualScreen(width, height).start()
    try:
        yield screen
    finally:
        screen.close()


def save_screenshot(screen: VirtualScreen, path: Path) -> Path:
    """Write a PNG of the screen to ``path``."""
    screen.screenshot().save(path)
    return path


def logon_screen_visible(
    shot: Image.Image, origin: tuple[int, int], width: int, height: int
) -> bool:
    """Whether ``shot`` shows rdscard's logon screen with its top-left at ``origin``.

    Checks the documented colours (:mod:`rdscard.screen.layout`): background
    in the corners, the panel, and the PIN field.
    """
    from rdscard.screen import layout

    ox, oy = origin

    def near(x: int, y: int, colour: tuple[int, int, int]) -> bool:
        pixel = shot.getpixel((ox + x, oy + y))
        assert isinstance(pixel, tuple)
        return all(abs(a - b) <= 24 for a, b in zip(pixel[:3], colour, strict=True))

    pin = layout.pin_box(width, height)
    panel = layout.panel_box(width, height)
    return (
        near(2, 2, layout.BACKGROUND)
        and near(width - 3, height - 3, layout.BACKGROUND)
        and near(panel.left + 4, panel.bottom - 4, layout.PANEL)
        and near(pin.right - 8, pin.top + 8, layout.PIN_BOX_FILL)
    )
