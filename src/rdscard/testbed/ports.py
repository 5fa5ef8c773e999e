"""Free loopback TCP ports for peers started by tests."""

from __future__ import annotations

import socket


def free_tcp_port(count: int = 1) -> int:
    """A port ``p`` such that ``p .. p+count-1`` are all free on 127.0.0.1 right now.

    The vpcd driver listens on consecutive ports for its readers, hence ``count``.
    There is a small window in which another process may take the port; the
    launchers fail loudly if that happens.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
            if base + count > 65535:
                continue
            if all(_is_free(base + i) for i in range(1, count)):
                return base
    raise RuntimeError(f"no run of {count} free TCP ports on 127.0.0.1")


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
