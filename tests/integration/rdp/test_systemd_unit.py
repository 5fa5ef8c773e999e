"""The shipped systemd unit: valid for systemd, sandboxed, and started with this rdscard."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_printed_unit_verifies_and_is_sandboxed(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "rdscard.cli.main", "serve", "--print-systemd-unit"],
        capture_output=True, text=True, check=True).stdout
    unit = tmp_path / "rdscard.service"
    unit.write_text(printed)
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                              text=True, cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(printed)
    service = parser["Service"]
    command = service["ExecStart"].split()
    assert Path(command[0]).name == "rdscard" and Path(command[0]).is_file()
    assert command[1] == "serve"
    for key, value in {"ProtectSystem": "strict", "PrivateTmp": "yes",
                       "StateDirectory": "rdscard", "StateDirectoryMode": "0700",
                       "RuntimeDirectory": "rdscard"}.items():
        assert service[key] == value, key
    assert "AF_INET6" in service["RestrictAddressFamilies"]
    assert "AF_PACKET" not in service["RestrictAddressFamilies"]
