"""aardwolf (an independent asyncio RDP client) receives the logon screen."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from rdscard.screen import layout
from tests.integration.rdp.conftest import ServerProcess

pytestmark = pytest.mark.integration

WIDTH, HEIGHT = 800, 600


async def grab_desktop(port: int) -> Image.Image:
    """Connect with aardwolf over TLS, wait for bitmap updates, return its desktop."""
    from aardwolf.commons.factory import RDPConnectionFactory
    from aardwolf.commons.iosettings import RDPIOSettings
    from aardwolf.commons.queuedata.constants import VIDEO_FORMAT

    settings = RDPIOSettings()
    settings.channels = []
    settings.video_width = WIDTH
    settings.video_height = HEIGHT
    settings.video_bpp_min = 15
    settings.video_bpp_max = 32
    settings.video_out_format = VIDEO_FORMAT.PIL
    settings.clipboard_use_pyperclip = False
    url = f"rdp+plain://tester:unused@127.0.0.1:{port}"
    connection = RDPConnectionFactory.from_url(url, settings).get_connection(settings)
    connection.target.unsafe_ssl = True
    _, err = await asyncio.wait_for(connection.connect(), 20)
    if err is not None:
        raise err
    try:
        for _ in range(100):
            if connection.desktop_buffer_has_data:
                await asyncio.sleep(0.5)  # let the remaining tiles arrive
                break
            await asyncio.sleep(0.1)
        image: Image.Image = connection.get_desktop_buffer(VIDEO_FORMAT.PIL)
        return image.convert("RGB")
    finally:
        await connection.terminate()


def near(pixel: object, colour: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= 24 for a, b in zip(pixel[:3], colour, strict=True))


def test_aardwolf_receives_the_logon_screen(rdp_server: ServerProcess) -> None:
    desktop = asyncio.run(grab_desktop(rdp_server.port))
    assert desktop.size == (WIDTH, HEIGHT)
    pin = layout.pin_box(WIDTH, HEIGHT)
    panel = layout.panel_box(WIDTH, HEIGHT)
    assert near(desktop.getpixel((3, 3)), layout.BACKGROUND)
    assert near(desktop.getpixel((WIDTH - 4, HEIGHT - 4)), layout.BACKGROUND)
    assert near(desktop.getpixel((panel.left + 4, panel.bottom - 4)), layout.PANEL)
    assert near(desktop.getpixel((pin.right - 8, pin.top + 8)), layout.PIN_BOX_FILL)
    assert rdp_server.wait_for_log(r"session active after .* \(800x600")
