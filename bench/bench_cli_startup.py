"""Start-up time of the ``rdscard`` command per verb, beside ``python -c pass``.

Run: ``.venv/bin/python bench/bench_cli_startup.py [--runs 20]``. Each verb is
started ``--runs`` times as a fresh process (``python -m rdscard.cli.main``,
what the ``rdscard`` script runs) and the median wall time printed with the
interpreter's own start-up, measured the same way in the same run.
``session exec`` and ``session list`` are pointed at a state directory with
no server, so they stop at the control socket: the time is start-up and the
argument handling, not the server's answer.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_MS = 100.0


def wall_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    rdscard = [sys.executable, "-m", "rdscard.cli.main"]
    with tempfile.TemporaryDirectory() as empty:
        verbs = {
            "rdscard --help": [*rdscard, "--help"],
            "rdscard session exec 1 -- true": [*rdscard, "session", "--state-dir", empty,
                                               "exec", "1", "--", "true"],
            "rdscard session list": [*rdscard, "session", "--state-dir", empty, "list"],
            "rdscard ntauth list": [*rdscard, "ntauth", "--state-dir", empty, "list"],
            "rdscard serve --help": [*rdscard, "serve", "--help"],
        }
        baseline = wall_ms([sys.executable, "-c", "pass"], args.runs)
        print(f"median of {args.runs} starts, ms; baseline python -c pass: {baseline:.1f}")
        print(f"{'command':<34} {'ms':>7} {'minus python':>13} {'target':>7}")
        for name, argv in verbs.items():
            ms = wall_ms(argv, args.runs)
            target = "" if "serve" in name else f"{TARGET_MS:>7.0f}"
            print(f"{name:<34} {ms:>7.1f} {ms - baseline:>13.1f} {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
