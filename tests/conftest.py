"""Settings shared by every test."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Timing is not what the property tests check: on a loaded 2-core machine,
# running with integration tests beside them, a per-example deadline only
# makes them flaky. Benchmarks under bench/ measure speed.
settings.register_profile(
    "rdscard", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("rdscard")
