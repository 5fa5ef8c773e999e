"""Settings shared by every test."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Timing is not what the property tests check: on a loaded 2-core machine,
# running with integration tests beside them, a per-example deadline only
# makes them flaky. Benchmarks under bench/ measure speed.
settings.register_profile(
    "rdscard", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# CI runs the same examples every time, so a red run is reproducible; local
# runs keep exploring new ones.
settings.register_profile(
    "rdscard-ci", parent=settings.get_profile("rdscard"), derandomize=True, database=None
)
settings.load_profile("rdscard-ci" if os.environ.get("CI") else "rdscard")
