"""Rate-limited logging: a flood of connections must not become a flood of log lines.

:class:`RateLimitedLog` keeps a token bucket per key (usually the client's
address, with the kind of message): a key may log ``burst`` lines at once
and then one every ``interval`` seconds. What it holds back is counted, and
the next line that goes through says how many similar messages were
suppressed, so nothing disappears without a trace.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_Logger = logging.Logger | logging.LoggerAdapter[Any]
#: How many keys are remembered; the least recently used are forgotten first.
MAX_KEYS = 4096


@dataclass
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0


class RateLimitedLog:
    """Per-key token buckets in front of a logger."""

    def __init__(
        self,
        logger: _Logger,
        *,
        interval: float = 10.0,
        burst: int = 3,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, key: str) -> tuple[bool, int]:
        """Take a token for ``key``: whether to log now, and how many were suppressed before."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst),
                                bucket.tokens + (now - bucket.updated) / self.interval)
            bucket.updated = now
        if bucket.tokens < 1.0:
            bucket.suppressed += 1
            return False, 0
        bucket.tokens -= 1.0
        suppressed, bucket.suppressed = bucket.suppressed, 0
        return True, suppressed

    def log(
        self,
        level: int,
        key: str,
        msg: str,
        *args: object,
        logger: _Logger | None = None,
    ) -> bool:
        """Log ``msg % args`` unless ``key`` is over its rate; True when it was logged.

        ``logger`` replaces this object's logger for the line (a session's
        logger, so that the line names the session).
        """
        allowed, suppressed = self.allow(key)
        if not allowed:
            return False
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        (logger or self.logger).log(level, msg, *args)
        return True

    def warning(self, key: str, msg: str, *args: object, logger: _Logger | None = None) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, key, msg, *args, logger=logger)

    def info(self, key: str, msg: str, *args: object, logger: _Logger | None = None) -> bool:
        """:meth:`log` at INFO."""
        return self.log(logging.INFO, key, msg, *args, logger=logger)


__all__ = ["RateLimitedLog"]
