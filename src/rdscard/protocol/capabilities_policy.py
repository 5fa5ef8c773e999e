"""The server's choices in the connection sequence.

Desktop size and colour depth from the client's core data (MS-RDPBCGR
2.2.1.3.2), the capability sets of the Demand Active PDU (2.2.1.13.1,
2.2.7), and the finalisation replies (2.2.1.19 - 2.2.1.22). Kept apart from
the state machine so the transitions stay readable.

Interop facts behind the choices: xfreerdp reaches the active state with
General + Bitmap alone, and a client-only set (Control, Window Activation)
in the Demand Active kills the connection, so the server sends only sets a
server may send. The Bitmap set's preferredBitsPerPixel and desktop size
are the ones the client then uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from rdscard.pdu import share
from rdscard.pdu.capabilities import (
    CHANNEL_CHUNK_LENGTH,
    CHANNEL_CHUNK_MAX_LENGTH,
    BitmapCapabilitySet,
    CapabilitySet,
    FontCapabilitySet,
    GeneralCapabilitySet,
    InputCapabilitySet,
    MultifragmentUpdateCapabilitySet,
    OrderCapabilitySet,
    PointerCapabilitySet,
    ShareCapabilitySet,
    VirtualChannelCapabilitySet,
    find_capability,
)
from rdscard.pdu.gcc_client import (
    ClientCoreData,
    ColorDepth,
    EarlyCapabilityFlags,
    SupportedColorDepths,
)
from rdscard.pdu.share_data import (
    Control,
    ControlAction,
    FontList,
    FontMap,
    ShareDataBody,
    SuppressOutput,
    Synchronize,
)

if TYPE_CHECKING:
    from rdscard.protocol.acceptor import AcceptorSettings

#: The chunks the server cuts its own channel messages into (every client takes 1600).
DEFAULT_CHUNK_SIZE: Final = CHANNEL_CHUNK_LENGTH
#: VCChunkSize, the largest chunk a client may send (MS-RDPBCGR 2.2.7.1.10: 1600 to 16256,
#: the server's choice): clients cut their channel data at it (FreeRDP does), so a 4 KiB
#: smart card response arrives as one chunk, one TLS record and one frame instead of three.
ADVERTISED_CHUNK_SIZE: Final = CHANNEL_CHUNK_MAX_LENGTH
MIN_DESKTOP: Final = 200
MAX_DESKTOP: Final = 8192
SERVER_CHANNEL_ID: Final = 0x03EA
MULTIFRAGMENT_MAX_REQUEST: Final = 0x3F0000

_HIGH_COLOR_BY_LEGACY: Final = {
    ColorDepth.RNS_UD_COLOR_24BPP: 24,
    ColorDepth.RNS_UD_COLOR_16BPP_565: 16,
    ColorDepth.RNS_UD_COLOR_16BPP_555: 15,
}


def desktop_size(width: int, height: int, settings: AcceptorSettings) -> tuple[int, int]:
    """The client's desktop size, or the configured default when it is unusable."""
    if not (MIN_DESKTOP <= width <= MAX_DESKTOP and MIN_DESKTOP <= height <= MAX_DESKTOP):
        return settings.default_width, settings.default_height
    return width, height


def color_depth(core: ClientCoreData) -> int:
    """The session colour depth (MS-RDPBCGR 2.2.1.3.2 highColorDepth and friends).

    32 bpp when the client wants a 32 bpp session and supports it; otherwise
    its highColorDepth (24, 16 or 15); 8 bpp and 4 bpp are answered with 16.
    """
    early = core.early_capability_flags or 0
    supported = core.supported_color_depths or 0
    if early & EarlyCapabilityFlags.RNS_UD_CS_WANT_32BPP_SESSION and (
        supported & SupportedColorDepths.RNS_UD_32BPP_SUPPORT
    ):
        return 32
    high = core.high_color_depth
    if high in (24, 16, 15):
        return int(high)
    legacy = core.post_beta2_color_depth or core.color_depth
    return _HIGH_COLOR_BY_LEGACY.get(legacy, 16) if high is None else 16  # type: ignore[call-overload]


def server_capability_sets(width: int, height: int, bpp: int) -> tuple[CapabilitySet, ...]:
    """The capability sets of the server's Demand Active PDU."""
    return (
        GeneralCapabilitySet(),
        BitmapCapabilitySet(
            preferred_bits_per_pixel=bpp, desktop_width=width, desktop_height=height
        ),
        OrderCapabilitySet(),
        PointerCapabilitySet(),
        InputCapabilitySet(),
        VirtualChannelCapabilitySet(vc_chunk_size=ADVERTISED_CHUNK_SIZE),
        ShareCapabilitySet(node_id=SERVER_CHANNEL_ID),
        FontCapabilitySet(),
        MultifragmentUpdateCapabilitySet(max_request_size=MULTIFRAGMENT_MAX_REQUEST),
    )


def demand_active(
    *, share_id: int, session_id: int, width: int, height: int, color_depth: int
) -> share.DemandActive:
    """The server's Demand Active PDU (MS-RDPBCGR 2.2.1.13.1)."""
    return share.DemandActive(
        share_id=share_id,
        capability_sets=server_capability_sets(width, height, color_depth),
        session_id=session_id,
        source_descriptor=b"RDP\x00",
        pdu_source=SERVER_CHANNEL_ID,
    )


def multifragment_max(capability_sets: Sequence[CapabilitySet]) -> int | None:
    """The client's MaxRequestSize for fast-path updates, if it announced one."""
    found = find_capability(capability_sets, MultifragmentUpdateCapabilitySet)
    return found.max_request_size if found is not None and found.max_request_size else None


def finalization_step(body: ShareDataBody) -> str | None:
    """Which client finalisation PDU ``body`` is (MS-RDPBCGR 1.3.1.1 phase 9), if any."""
    if isinstance(body, Synchronize):
        return "synchronize"
    if isinstance(body, Control):
        if body.action == ControlAction.CTRLACTION_COOPERATE:
            return "cooperate"
        if body.action == ControlAction.CTRLACTION_REQUEST_CONTROL:
            return "request_control"
        return None
    if isinstance(body, FontList):
        return "font_list"
    return None


def server_synchronize(user_channel_id: int) -> ShareDataBody:
    """The server's Synchronize PDU (MS-RDPBCGR 2.2.1.19), sent right after Confirm Active."""
    return Synchronize(target_user=user_channel_id)


def finalization_reply(step: str, user_channel_id: int) -> ShareDataBody | None:
    """The server's answer to one client finalisation PDU (MS-RDPBCGR 3.3.5.3.20 - 22).

    Each goes out as its PDU arrives: rdesktop 1.9 waits for the Control
    Cooperate and Granted Control before it sends its Font List.
    """
    if step == "cooperate":
        return Control.cooperate()
    if step == "request_control":
        return Control.granted_control(grant_id=user_channel_id, control_id=SERVER_CHANNEL_ID)
    if step == "font_list":
        return FontMap()
    return None


def wants_refresh(body: ShareDataBody) -> bool:
    """Whether a Refresh Rect or Suppress Output PDU asks for the screen again."""
    if isinstance(body, SuppressOutput):
        return body.allowed
    return True
