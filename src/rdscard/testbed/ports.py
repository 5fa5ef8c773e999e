"""Free loopback TCP ports for peers started by tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_tcp_port(count: int = 1) -> int:
    """A port ``p`` such that ``p .. p+count-1`` are all free on 127.0.0.1 right now.

    The vpcd driver listens on consecutive ports for its readers, hence ``count``.
    Ports come from below the kernel's ephemeral range: a port the kernel
    hands out as the source of outgoing connections (a test opening a
    thousand of them, say) could otherwise be taken between this check and
    the peer's bind. The launchers fail loudly if another process takes it.
    """
    low, _high = _ephemeral_range()
    top = min(low, 65536) - count
    for _ in range(500):
        base = random.randrange(10000, max(top, 10001))
        if all(_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no run of {count} free TCP ports on 127.0.0.1")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def is_listening(port: int) -> bool:
    """Whether a local TCP socket listens on ``port`` (Linux ``/proc/net/tcp``).

    Unlike a probe connection this is invisible to the listener: the vpcd
    driver would take a probe for a card being inserted and removed.
    """
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    listening = len(fields) > 3 and fields[3] == "0A"  # TCP_LISTEN
                    if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            continue
    return False
