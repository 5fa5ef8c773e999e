"""Fuzz campaign: every network decoder on mutated seed messages and random bytes.

For each target (``tests/fuzz/targets.py``) runs ``--inputs`` inputs and
prints the inputs per second and the findings: exceptions other than
ProtocolError, and decodes slower than 1 s. Each finding's input (hex) and
traceback go to ``--findings DIR``. The same ``--seed`` gives the same
inputs, so a long campaign runs as several chunks with different seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz import targets as _targets  # registers the targets
from tests.fuzz.engine import REGISTRY, TargetResult, memory_limit, run_target

del _targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs per decoder")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the mutations")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run this target only (repeatable; a prefix is enough)")
    parser.add_argument("--findings", type=Path, help="write each finding here")
    parser.add_argument("--memory-limit-mb", type=int, default=4096,
                        help="address space cap, so a huge allocation is a MemoryError")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name, tgt in REGISTRY.items():
            print(f"{name:24} {tgt.description}")
        return 0
    names = [n for n in REGISTRY if not args.only or any(n.startswith(o) for o in args.only)]
    if not names:
        parser.error(f"no target matches {args.only}; --list shows them")

    print(f"seed {args.seed}, {args.inputs} inputs per decoder")
    print(f"{'decoder':24} {'inputs':>9} {'inputs/s':>10} {'findings':>9} {'accepted':>9}")
    results: list[TargetResult] = []
    began = time.perf_counter()
    with memory_limit(args.memory_limit_mb << 20):
        for name in names:
            result = run_target(REGISTRY[name], args.inputs, args.seed)
            results.append(result)
            share = result.accepted / max(result.inputs, 1)
            print(f"{name:24} {result.inputs:9d} {result.rate:10.0f} "
                  f"{result.finding_count:9d} {share:9.1%}", flush=True)
            for finding in result.findings:
                print(f"    {finding.kind} at {finding.location} (x{finding.count})")
                if args.findings is not None:
                    args.findings.mkdir(parents=True, exist_ok=True)
                    number = len(list(args.findings.iterdir()))
                    stem = f"{name}-seed{args.seed}-{finding.kind}-{number}"
                    (args.findings / f"{stem}.txt").write_text(finding.report())
    total = sum(r.finding_count for r in results)
    print(f"{len(results)} decoders, {sum(r.inputs for r in results)} inputs, "
          f"{total} findings, {time.perf_counter() - began:.0f} s")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
