"""The session leader's spec: parsing, checks and the JSON round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rdscard.session.spec import LeaderSpec, SpecError
from rdscard.session.xserver import x_server_argv, xauth_entry

BRIEF_EXAMPLE = (
    '{"session_id": 3, "account": "alice", "pam_service": "rdscard", '
    '"client_address": "1.2.3.4", "width": 1920, "height": 1080, "x_server": ["Xvfb"], '
    '"display_range": [10, 99], "keyboard_layout": "us", "keyboard_variant": "", '
    '"command": ["/bin/sh","-c","openbox & exec xterm"], '
    '"env": {"PCSCLITE_CSOCK_NAME": "/run/rdscard/session-3/pcscd.comm", '
    '"KRB5CCNAME": "FILE:/tmp/krb5cc_3"}, "runtime_dir": "/run/rdscard/session-3-x"}'
)


def test_parses_the_documented_example() -> None:
    spec = LeaderSpec.from_json(BRIEF_EXAMPLE)
    assert spec.session_id == 3
    assert spec.account == "alice"
    assert spec.command == ("/bin/sh", "-c", "openbox & exec xterm")
    assert spec.display_range == (10, 99)
    assert spec.env["KRB5CCNAME"] == "FILE:/tmp/krb5cc_3"
    assert spec.runtime_path == "/run/rdscard/session-3-x"


def test_round_trip() -> None:
    spec = LeaderSpec(session_id=7, account="bob", command=("xterm",), env={"A": "1"},
                      x_server=("Xvnc", "-SecurityTypes", "None"), x_timeout=3.5)
    again = LeaderSpec.from_json(spec.to_json())
    assert again == LeaderSpec(**{**spec.__dict__, "runtime_dir": "/run/rdscard/session-7-x"})
    assert "\n" not in spec.to_json()
    assert json.loads(spec.to_json())["runtime_dir"] == "/run/rdscard/session-7-x"


def test_defaults_and_integer_timeout() -> None:
    spec = LeaderSpec.from_json('{"session_id": 1, "account": "a", "command": ["x"], '
                                '"x_timeout": 5}')
    assert spec.pam_service == "rdscard"
    assert spec.x_server == ("Xvfb",)
    assert spec.x_timeout == 5.0


def _spec(**changes: Any) -> str:
    raw: dict[str, Any] = json.loads(BRIEF_EXAMPLE)
    raw.update(changes)
    return json.dumps({k: v for k, v in raw.items() if v is not ...})


@pytest.mark.parametrize(("changes", "names"), [
    ({"session_id": -1}, "session_id"),
    ({"session_id": True}, "session_id"),
    ({"session_id": ...}, "session_id"),
    ({"account": "../etc"}, "account"),
    ({"account": "-rf"}, "account"),
    ({"account": ""}, "account"),
    ({"pam_service": "../shadow"}, "pam_service"),
    ({"pam_service": "a/b"}, "pam_service"),
    ({"width": 10}, "width"),
    ({"height": "1080"}, "height"),
    ({"x_server": []}, "x_server"),
    ({"x_server": "Xvfb"}, "x_server"),
    ({"command": []}, "command"),
    ({"command": ["sh", ""]}, "command"),
    ({"command": ...}, "command"),
    ({"display_range": [99, 10]}, "display_range"),
    ({"display_range": [1]}, "display_range"),
    ({"display_range": [1, 70000]}, "display_range"),
    ({"keyboard_layout": "us; rm -rf /"}, "keyboard_layout"),
    ({"env": {"BAD NAME": "x"}}, "env"),
    ({"env": {"A": 1}}, "env"),
    ({"env": ["A=1"]}, "env"),
    ({"runtime_dir": "relative/dir"}, "runtime_dir"),
    ({"runtime_dir": "/"}, "runtime_dir"),
    ({"runtime_dir": "/run"}, "runtime_dir"),
    ({"runtime_dir": "/run/../etc/x"}, "runtime_dir"),
    ({"x_timeout": 0}, "x_timeout"),
    ({"surprise": 1}, "surprise"),
])
def test_wrong_fields_are_named(changes: dict[str, Any], names: str) -> None:
    with pytest.raises(SpecError, match=names):
        LeaderSpec.from_json(_spec(**changes))


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"a string"', "x" * 70000])
def test_not_a_spec(text: str) -> None:
    with pytest.raises(SpecError):
        LeaderSpec.from_json(text)


def test_xauthority_record_layout() -> None:
    cookie = bytes(range(16))
    record = xauth_entry(12, cookie)
    assert record == (b"\xff\xff" + b"\x00\x00" + b"\x00\x0212" + b"\x00\x12MIT-MAGIC-COOKIE-1"
                      + b"\x00\x10" + cookie)


def test_x_server_command_lines() -> None:
    assert x_server_argv(["Xvfb"], 12, 1920, 1080, "/r/Xauthority", 7) == [
        "Xvfb", ":12", "-screen", "0", "1920x1080x24", "-nolisten", "tcp", "-noreset",
        "-auth", "/r/Xauthority", "-displayfd", "7"]
    vnc = x_server_argv(["/usr/bin/Xvnc", "-SecurityTypes", "None"], 3, 800, 600, "/a", 5)
    assert vnc[:6] == ["/usr/bin/Xvnc", "-SecurityTypes", "None", ":3", "-geometry", "800x600"]
    assert "-screen" not in vnc and "tcp" in vnc
