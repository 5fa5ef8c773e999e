"""The [efs] section: defaults, settings, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdscard.config import parse_config
from rdscard.errors import ConfigError


def test_efs_is_off_by_default_and_its_envelopes_live_in_the_state_directory() -> None:
    config = parse_config("")
    assert not config.efs.enabled
    assert config.efs.directory(Path("/var/lib/rdscard")) == Path("/var/lib/rdscard/efs")


def test_efs_settings_are_read() -> None:
    config = parse_config('[efs]\nenabled = true\nenvelope_dir = "/srv/efs"\nbusy_retry = 5\n')
    assert config.efs.enabled and config.efs.busy_retry == 5.0
    assert config.efs.directory(Path("/x")) == Path("/srv/efs")


@pytest.mark.parametrize("text, why", [
    ('[efs]\nenvelope_dir = "relative"\n', "absolute"),
    ("[efs]\nbusy_retry = 0\n", "busy_retry"),
    ("[efs]\nenable = true\n", "unknown setting"),
])
def test_bad_efs_settings_are_errors(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_config(text)
