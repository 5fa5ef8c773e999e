"""``[sessions]``: the desktop settings."""

from __future__ import annotations

import pytest

from rdscard.config import DEFAULT_SESSION_COMMAND, parse_config
from rdscard.errors import ConfigError


def test_defaults() -> None:
    sessions = parse_config("").sessions
    assert sessions.enabled and sessions.one_per_account
    assert sessions.command == DEFAULT_SESSION_COMMAND
    assert sessions.x_server == ("Xvfb",)
    assert sessions.pam_service == "rdscard"
    assert sessions.disconnected_limit == 0 and sessions.idle_limit == 0


def test_a_command_string_runs_in_the_shell_and_a_list_as_is() -> None:
    assert parse_config('[sessions]\ncommand = "/etc/X11/Xsession"\n').sessions.command == (
        "/bin/sh", "-c", "/etc/X11/Xsession")
    parsed = parse_config('[sessions]\ncommand = ["xterm", "-ls"]\nx_server = ["Xvnc"]\n')
    assert parsed.sessions.command == ("xterm", "-ls")
    assert parsed.sessions.x_server == ("Xvnc",)


def test_limits_and_switches() -> None:
    sessions = parse_config(
        "[sessions]\ndisconnected_limit = 3600\nidle_limit = 900.5\none_per_account = false\n"
        'display_range = [20, 30]\npam_service = "rdscard-kiosk"\nenabled = false\n').sessions
    assert sessions.disconnected_limit == 3600.0 and sessions.idle_limit == 900.5
    assert not sessions.one_per_account and not sessions.enabled
    assert sessions.display_range == (20, 30)
    assert sessions.pam_service == "rdscard-kiosk"


@pytest.mark.parametrize(("text", "named"), [
    ('command = ""', "sessions.command"),
    ("command = []", "sessions.command"),
    ("command = [1]", "sessions.command"),
    ("display_range = [30, 20]", "sessions.display_range"),
    ("display_range = [0]", "sessions.display_range"),
    ("idle_limit = -1", "sessions.idle_limit"),
    ("start_timeout = 0", "sessions.start_timeout"),
    ('pam_service = "../x"', "sessions.pam_service"),
    ("colour = 1", "colour"),
])
def test_bad_settings_name_themselves(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_config(f"[sessions]\n{text}\n", "rdscard.toml")
