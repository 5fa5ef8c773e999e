"""xfreerdp 2.11.7 decodes the compressed bitmaps and pointer shapes the server sends.

A test-only server drives the sans-IO acceptor over TLS and, once the
session is active, paints a known picture with planar (32 bpp, TS_CD_HEADER
present) or interleaved RLE (16 bpp, header left out) bitmap updates cut
along rectangles whose tiles need width padding, then sends a 32 bpp
pointer. The picture is read back from the Xvfb screen, the pointer through
XFIXES GetCursorImage.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from rdscard.codec.interleaved import pixel_bytes
from rdscard.pdu.bitmap import Rect
from rdscard.pdu.bitmap_codec import _widen, encode_compressed_updates
from rdscard.pdu.pointer import encode_pointer_new, encode_pointer_position
from rdscard.protocol.acceptor import RdpAcceptor
from rdscard.protocol.events import RefreshRequested, SessionActivated, StartTls
from rdscard.server.tls import ensure_server_certificate, server_ssl_context
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for

pytestmark = pytest.mark.integration

WIDTH, HEIGHT = 640, 480
RECTS = [Rect(0, 0, 333, 250), Rect(333, 0, WIDTH, 250), Rect(0, 250, WIDTH, HEIGHT)]


def picture() -> np.ndarray:  # type: ignore[type-arg]
    """A BGRX test picture: gradients, flat blocks, text and fine detail."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for x in range(0, WIDTH, 2):
        draw.line((x, 0, x, 120), fill=(x * 255 // WIDTH, 80, 255 - x * 255 // WIDTH))
    draw.rectangle((30, 150, 300, 400), fill=(20, 120, 40), outline=(0, 0, 0))
    draw.ellipse((350, 160, 600, 420), fill=(200, 30, 90))
    for line in range(12):
        draw.text(
            (40, 160 + 18 * line), f"line {line}: compressed bitmap text", fill=(255, 255, 255)
        )
    for y in range(430, 470, 3):
        draw.line((0, y, WIDTH, y), fill=(y % 256, 0, 255 - y % 256))
    return np.frombuffer(image.tobytes("raw", "BGRX"), dtype=np.uint8).reshape(HEIGHT, WIDTH, 4)


CURSOR = np.zeros((20, 20, 4), dtype=np.uint8)
CURSOR[2:18, 2:18] = (255, 0, 255, 255)  # opaque magenta (BGRA)
CURSOR[8:12, 8:12, 3] = 0  # a transparent hole


class PictureServer:
    """Serves one picture per connection on a loopback port, in a thread of its own."""

    def __init__(self, state_dir: Path, frame: np.ndarray, compression_header: bool) -> None:  # type: ignore[type-arg]
        self.frame = frame
        self.compression_header = compression_header
        self.ssl = server_ssl_context(ensure_server_certificate(state_dir, None, None, "localhost"))
        self.loop = asyncio.new_event_loop()
        self.activated: list[SessionActivated] = []
        self.errors: list[BaseException] = []
        ready = threading.Event()
        self.port = 0

        async def start() -> None:
            server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(
            target=lambda: (self.loop.run_until_complete(start()), self.loop.run_forever()),
            daemon=True,
        )
        self.thread.start()
        ready.wait(10)

    def paint(self, bpp: int) -> bytes:
        pdus = encode_compressed_updates(
            self.frame, RECTS, bpp, compression_header=self.compression_header
        )
        pdus.append(encode_pointer_new(2, 3, 4, CURSOR))
        pdus.append(encode_pointer_position(100, 100))
        return b"".join(pdus)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        acceptor = RdpAcceptor()
        bpp = 32
        try:
            while data := await reader.read(65536):
                acceptor.receive(data)
                for event in acceptor.events():
                    if isinstance(event, StartTls):
                        writer.write(acceptor.data_to_send())
                        await writer.drain()
                        await writer.start_tls(self.ssl)
                        acceptor.tls_established()
                    elif isinstance(event, SessionActivated):
                        self.activated.append(event)
                        bpp = event.color_depth
                        writer.write(acceptor.data_to_send() + self.paint(bpp))
                    elif isinstance(event, RefreshRequested):
                        writer.write(self.paint(bpp))
                writer.write(acceptor.data_to_send())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # surfaced by the test
            self.errors.append(exc)
        finally:
            writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def frame() -> np.ndarray:  # type: ignore[type-arg]
    return picture()


def shown(screen: VirtualScreen, client: XFreeRdp) -> np.ndarray:  # type: ignore[type-arg]
    left, top = client.window_origin()
    shot = screen.screenshot().crop((left, top, left + WIDTH, top + HEIGHT))
    return np.asarray(shot)[..., ::-1]  # RGB -> BGR


def cursor_image(screen: VirtualScreen) -> np.ndarray | None:  # type: ignore[type-arg]
    """The X server's current cursor as (height, width, 4) BGRA, via XFIXES."""
    import xcffib
    import xcffib.xfixes

    connection = xcffib.connect(display=screen.display)
    try:
        xfixes = connection(xcffib.xfixes.key)
        xfixes.QueryVersion(4, 0).reply()
        reply = xfixes.GetCursorImage().reply()
        argb = np.array(reply.cursor_image, dtype="<u4").reshape(reply.height, reply.width)
        return argb.view(np.uint8).reshape(reply.height, reply.width, 4)
    finally:
        connection.disconnect()


@pytest.fixture
def screen() -> Iterator[VirtualScreen]:
    with VirtualScreen(1088, 832) as virtual:
        yield virtual


@pytest.mark.parametrize(("bpp", "header"), [(32, True), (16, False)])
def test_xfreerdp_shows_compressed_bitmaps_and_pointer(
    screen: VirtualScreen,
    frame: np.ndarray,
    tmp_path: Path,
    bpp: int,
    header: bool,  # type: ignore[type-arg]
) -> None:
    server = PictureServer(tmp_path, frame, header)
    client = XFreeRdp(screen, "127.0.0.1", server.port, size=(WIDTH, HEIGHT), bpp=bpp)
    try:
        assert wait_for(lambda: server.activated, timeout=25), client.output()
        expected = frame[..., :3] if bpp == 32 else _widen(pixel_bytes(frame, bpp), bpp)[..., :3]

        def matches() -> bool:
            diff = np.abs(shown(screen, client).astype(int) - expected.astype(int))
            return bool(diff.max() <= (0 if bpp == 32 else 8))

        assert wait_for(matches, timeout=15), (
            f"the window does not show the picture\n{client.output()}"
        )
        assert not server.errors, server.errors

        # Put the X pointer over the client's window: xfreerdp shows our shape there.
        import subprocess

        left, top = client.window_origin()
        subprocess.run(
            ["xdotool", "mousemove", str(left + 200), str(top + 200)], env=screen.env(), check=True
        )

        def pointer_shown() -> bool:
            image = cursor_image(screen)
            return (
                image is not None
                and image.shape[:2] == (20, 20)
                and (image[5, 5].tolist() == [255, 0, 255, 255] and image[9, 9, 3] == 0)
            )

        assert wait_for(pointer_shown, timeout=10), "xfreerdp does not show the pointer"
        assert client.process.poll() is None, client.output()
    finally:
        client.close()
        server.close()
