"""RateLimitedLog: a bounded number of lines per key, and the count of what was held back."""

from __future__ import annotations

import logging

import pytest

from rdscard.server.log_limits import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_one_per_interval_with_the_suppressed_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("test.limits"), interval=10, burst=2, clock=clock)
    with caplog.at_level(logging.WARNING, "test.limits"):
        logged = [limited.warning("refused 10.0.0.1", "refused %s", i) for i in range(100)]
        assert logged[:2] == [True, True] and not any(logged[2:])
        clock.now = 10.0
        assert limited.warning("refused 10.0.0.1", "refused %s", "again")
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0", "refused 1", "refused again (98 similar messages suppressed)",
    ]


def test_keys_are_independent_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("test.limits"), burst=1, clock=clock, max_keys=3)
    with caplog.at_level(logging.INFO, "test.limits"):
        assert limited.info("a", "one") and not limited.info("a", "two")
        assert limited.info("b", "three")  # another address is not held back by the first
        for key in "cdef":
            limited.info(key, "x")
        assert len(limited._buckets) == 3
        assert limited.info("a", "forgotten keys start afresh")


def test_another_logger_may_carry_the_line(caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logging.getLogger("test.limits"))
    session = logging.LoggerAdapter(logging.getLogger("test.session"), {})
    with caplog.at_level(logging.INFO):
        limited.info("k", "hello %d", 1, logger=session)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("test.session", "hello 1")]
