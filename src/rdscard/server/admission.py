"""Who may open a connection: per-address limits, so one client cannot lock everyone out.

Two limits per client address (an IPv6 client counts by its /64, the
block one host or site usually holds): how many connections it has open at
once (``[server] max_connections_per_address``) and how many new ones it
may open per :data:`~rdscard.config.CONNECTION_RATE_WINDOW` seconds
(``[server] connection_rate``, a token bucket: the whole allowance at
once, then refilled evenly). The server-wide ``max_connections`` applies
on top. A refused connection is told so where the protocol allows it:
:func:`refusal_confirm` answers its X.224 Connection Request with an
RDP_NEG_FAILURE (MS-RDPBCGR 2.2.1.2.2).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from rdscard.config import CONNECTION_RATE_WINDOW, ServerConfig
from rdscard.pdu import tpkt, x224

#: The failure code of a refused connection. No RDP_NEG_FAILURE code means
#: "busy"; SSL_CERT_NOT_ON_SERVER ("the server cannot initialize the
#: External Security Protocol Provider", 2.2.1.2.2) is the one that blames
#: neither the client's settings nor its choice of protocol, so clients
#: report a server-side failure instead of suggesting other security.
REFUSAL_CODE = x224.FailureCode.SSL_CERT_NOT_ON_SERVER
#: Rate buckets kept before full (idle) ones are forgotten.
MAX_TRACKED = 4096


def address_key(host: str) -> str:
    """The key an address is limited by: the address itself, an IPv6 one by its /64."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass
class _Rate:
    tokens: float
    updated: float


class Admission:
    """Counts each address's open connections and its recent new ones."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_total = config.max_connections
        self.max_per_address = config.max_connections_per_address
        self.rate = config.connection_rate
        self.clock = clock
        self.total = 0
        self._open: dict[str, int] = {}
        self._rates: dict[str, _Rate] = {}

    def admit(self, key: str, *, make_room: Callable[[], bool] | None = None) -> str | None:
        """Register a new connection from ``key``; None, or why it is refused.

        A refused connection is not counted, but it does use up the rate
        allowance: retrying at once only keeps an address refused. When the
        server is full, ``make_room`` may end another connection (one that
        never signed in) for this one; it returns whether it did (the count
        then runs over by one until that connection is gone).
        """
        limited = self._take_token(key)
        full = self.total >= self.max_total
        if full and (limited or (self.max_per_address
                                 and self._open.get(key, 0) >= self.max_per_address)
                     or make_room is None or not make_room()):
            return f"the server's {self.max_total} connections are in use (server.max_connections)"
        if self.max_per_address and self._open.get(key, 0) >= self.max_per_address:
            return (f"{key} already has {self.max_per_address} connections open "
                    "(server.max_connections_per_address)")
        if limited:
            return (f"{key} opened more than {self.rate} connections in "
                    f"{CONNECTION_RATE_WINDOW:.0f} s (server.connection_rate)")
        self._open[key] = self._open.get(key, 0) + 1
        self.total += 1
        return None

    def release(self, key: str) -> None:
        """A connection admitted for ``key`` has ended."""
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)
        self.total = max(self.total - 1, 0)

    def open_connections(self, key: str) -> int:
        """How many admitted connections ``key`` has open."""
        return self._open.get(key, 0)

    def _take_token(self, key: str) -> bool:
        """Take one new-connection token; True when ``key`` had none left."""
        if not self.rate:
            return False
        now = self.clock()
        per_second = self.rate / CONNECTION_RATE_WINDOW
        bucket = self._rates.get(key)
        if bucket is None:
            if len(self._rates) >= MAX_TRACKED:
                self._forget_full(now, per_second)
            bucket = self._rates[key] = _Rate(float(self.rate), now)
        else:
            bucket.tokens = min(float(self.rate),
                                bucket.tokens + (now - bucket.updated) * per_second)
            bucket.updated = now
        if bucket.tokens < 1.0:
            return True
        bucket.tokens -= 1.0
        return False

    def _forget_full(self, now: float, per_second: float) -> None:
        """Drop the buckets that have refilled (they hold no memory of anything)."""
        for key, bucket in list(self._rates.items()):
            if bucket.tokens + (now - bucket.updated) * per_second >= self.rate:
                del self._rates[key]
        if len(self._rates) >= MAX_TRACKED:  # all busy: forget the oldest half
            for key in list(self._rates)[: MAX_TRACKED // 2]:
                del self._rates[key]


def refusal_confirm(request: bytes) -> bytes | None:
    """The answer to a refused client's first TPKT frame, or None to just close.

    Only a Connection Request that carries an RDP_NEG_REQ may be answered
    with an RDP_NEG_FAILURE (MS-RDPBCGR 2.2.1.2.2, 3.3.5.3.2); anything
    else gets no answer. Raises ProtocolError for bytes that are no
    Connection Request at all.
    """
    parsed = x224.ConnectionRequest.decode(tpkt.unwrap(request))
    if parsed.negotiation is None:
        return None
    return tpkt.wrap(x224.ConnectionConfirm.failing(REFUSAL_CODE).encode())


__all__ = ["REFUSAL_CODE", "Admission", "address_key", "refusal_confirm"]
