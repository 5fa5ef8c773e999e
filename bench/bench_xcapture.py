"""MIT-SHM capture time and keystroke-to-DamageNotify latency against a real Xvfb.

Starts Xvfb (1920x1080x24) as the test account ``rdscard-xtest`` (created
when missing; as the invoking user when not run as root) with an
Xauthority cookie, connects to it the way the server does
(:class:`rdscard.desktop.XDisplay`), then prints:

- ShmGetImage of the whole screen into the shared segment (view) and with
  the copy out of it, p50 and p99 over ``--captures`` captures; core
  GetImage of the same screen for comparison;
- from an XTEST key press of 'a' into an xterm to the first DamageNotify
  read back, p50 and p99 over ``--keys`` keys (each followed by a
  BackSpace whose damage is drained before the next one).

Run: ``.venv/bin/python bench/bench_xcapture.py``
"""

from __future__ import annotations

import argparse
import os
import pwd
import select
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.desktop.helpers import start_xterm
from tests.integration.desktop.xsession import UserXServer, ensure_account

from rdscard.desktop import XDisplay
from rdscard.pdu.input import KeyboardEvent, MouseEvent, PointerFlags

SC_A = 0x1E
SC_BACKSPACE = 0x0E


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(name: str, samples_s: list[float]) -> None:
    ms = [s * 1000 for s in samples_s]
    print(
        f"{name:<38} p50 {statistics.median(ms):8.3f} ms   p99 {percentile(ms, 0.99):8.3f} ms"
        f"   (n={len(ms)})"
    )


def wait_for_damage(display: XDisplay, timeout: float = 2.0) -> bool:
    """Block on the connection until DamageNotify arrives; False on timeout."""
    fd = display._conn.get_file_descriptor()
    deadline = time.perf_counter() + timeout
    while True:
        rects, _ = display.poll()
        if rects:
            return True
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return False
        select.select([fd], [], [], remaining)


def drain(display: XDisplay, quiet: float = 0.02) -> None:
    """Read damage until none has come for ``quiet`` seconds."""
    fd = display._conn.get_file_descriptor()
    while True:
        display.poll()
        if not select.select([fd], [], [], quiet)[0]:
            display.poll()
            return


def bench_capture(display: XDisplay, count: int) -> None:
    for _ in range(5):
        display.capture(copy=False)  # fault the segment in
    views, copies = [], []
    for _ in range(count):
        t0 = time.perf_counter()
        display.capture(copy=False)
        views.append(time.perf_counter() - t0)
    for _ in range(count):
        t0 = time.perf_counter()
        display.capture()
        copies.append(time.perf_counter() - t0)
    size = f"{display.width}x{display.height}"
    report(f"ShmGetImage {size} (view)", views)
    report(f"ShmGetImage {size} + copy", copies)
    core = []
    conn = display._conn
    for _ in range(5):
        t0 = time.perf_counter()
        conn.core.GetImage(2, display.root, 0, 0, display.width, display.height, 0xFFFFFFFF).reply()
        core.append(time.perf_counter() - t0)
    report(f"core GetImage {size}", core)


def bench_keys(server: UserXServer, display: XDisplay, count: int) -> None:
    start_xterm(server, "120x40+0+0")
    display.apply([MouseEvent(PointerFlags.PTRFLAGS_MOVE, 300, 200)])
    drain(display, 0.3)
    latencies, missed = [], 0
    for _ in range(count):
        t0 = time.perf_counter()
        display.apply([KeyboardEvent(SC_A), KeyboardEvent(SC_A, released=True)])
        if wait_for_damage(display):
            latencies.append(time.perf_counter() - t0)
        else:
            missed += 1
        drain(display, 0.005)
        display.apply([KeyboardEvent(SC_BACKSPACE), KeyboardEvent(SC_BACKSPACE, released=True)])
        drain(display, 0.01)
    report("keystroke -> DamageNotify (xterm)", latencies)
    if missed:
        print(f"  {missed} keys brought no damage within 2 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captures", type=int, default=200)
    parser.add_argument("--keys", type=int, default=200)
    args = parser.parse_args()
    account = ensure_account() if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    with UserXServer(account, 1920, 1080) as server:
        display = XDisplay.connect(server.display, server.cookie)
        try:
            print(f"Xvfb {server.display} as {account.pw_name}, client uid {os.geteuid()}")
            bench_capture(display, args.captures)
            bench_keys(server, display, args.keys)
        finally:
            display.close()


if __name__ == "__main__":
    main()
