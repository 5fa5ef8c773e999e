"""Nested redirection: an RDP client run inside a session redirects the redirected card again."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rdscard.xclient import VirtualScreen, wait_for
from tests.integration.card.conftest import OPENSC_PKCS11
from tests.integration.sessioncard.conftest import REDIRECTED, RedirectedSession, start_server

pytestmark = pytest.mark.integration


def test_xfreerdp_inside_a_session_redirects_the_card_to_a_second_server(
    redirected: RedirectedSession, tmp_path: Path
) -> None:
    (tmp_path / "second").mkdir()
    second = start_server(tmp_path / "second")
    screen = VirtualScreen(1088, 832).start()
    inner = None
    try:
        # xfreerdp runs as a program of the first session: its PC/SC is that session's socket
        inner = subprocess.Popen(
            [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
             str(redirected.server.state_dir), "exec", str(redirected.session), "--",
             "env", f"DISPLAY={screen.display}", "xfreerdp", f"/v:127.0.0.1:{second.port}",
             "/sec:tls", "/cert:ignore", "/smartcard", "/log-level:WARN"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert wait_for(lambda: re.search(REDIRECTED, second.log) is not None, timeout=30), (
            f"second hop not redirected\n{second.log}"
        )
        hop = int(re.search(REDIRECTED, second.log).group(1))  # type: ignore[union-attr]
        argv = [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
                str(second.state_dir), "exec", str(hop), "--",
                "pkcs11-tool", "--module", OPENSC_PKCS11, "-L"]
        slots = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert slots.returncode == 0, slots.stderr + second.log[-3000:]
        assert "alice (Authentication)" in slots.stdout
    finally:
        if inner is not None:
            inner.terminate()
            inner.wait(10)
        screen.close()
        second.stop()
