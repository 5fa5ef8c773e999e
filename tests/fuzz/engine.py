"""The fuzz engine: a registry of decoder targets and a loop that runs one of them.

A target is a name, a function that takes one input (bytes) and decodes it
the way the server would, and the seed messages its inputs are mutated
from. Adding a decoder is one :func:`register` call (see ``targets.py``).

A *finding* is an input for which the function raised anything other than
the target's allowed exceptions (``ProtocolError`` unless the target says
otherwise), or took longer than the slow limit (1 s). Findings are grouped
by exception type and the innermost frame of the project's own code, so a
bug found a thousand times is reported once with the count.
"""

from __future__ import annotations

import contextlib
import random
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from rdscard.errors import ProtocolError
from tests.fuzz.mutate import Mutator

SLOW_LIMIT = 1.0
#: A decode still running after this many seconds is stopped and reported as a hang.
HANG_LIMIT = 10.0


@dataclass(frozen=True)
class Target:
    """One decoder (or state machine) under fuzz."""

    name: str
    run: Callable[[bytes], object]
    seeds: Callable[[], Sequence[bytes]]
    description: str = ""
    allowed: tuple[type[BaseException], ...] = (ProtocolError,)


REGISTRY: dict[str, Target] = {}


def register(target: Target) -> Target:
    """Add ``target`` to the registry (names are unique)."""
    if target.name in REGISTRY:
        raise ValueError(f"fuzz target {target.name!r} is registered twice")
    REGISTRY[target.name] = target
    return target


def target(name: str, seeds: Callable[[], Sequence[bytes]], description: str = "",
           allowed: tuple[type[BaseException], ...] = (ProtocolError,),
           ) -> Callable[[Callable[[bytes], object]], Callable[[bytes], object]]:
    """Decorator form of :func:`register`."""

    def wrap(run: Callable[[bytes], object]) -> Callable[[bytes], object]:
        register(Target(name, run, seeds, description or (run.__doc__ or "").strip(), allowed))
        return run

    return wrap


class DecodeHang(BaseException):
    """Raised into a decode that ran past :data:`HANG_LIMIT`."""


@dataclass
class Finding:
    """One kind of failure of a target and the first input that showed it."""

    target: str
    kind: str
    location: str
    data: bytes
    trace: str
    count: int = 1

    def report(self) -> str:
        return (
            f"target: {self.target}\nkind: {self.kind}\nlocation: {self.location}\n"
            f"seen: {self.count} times\ninput ({len(self.data)} bytes):\n{self.data.hex()}\n\n"
            f"{self.trace}"
        )


@dataclass
class TargetResult:
    """What a run of one target gave."""

    name: str
    inputs: int
    seconds: float
    #: Inputs decoded without any exception (how far the mutations get past the checks).
    accepted: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0

    @property
    def finding_count(self) -> int:
        return sum(f.count for f in self.findings)


def _location(exc: BaseException) -> str:
    """The innermost frame of the project's code (else the innermost frame) of ``exc``."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "rdscard" in f.filename.replace("\\", "/").split("/")]
    if not (ours or frames):
        return "?"
    frame = (ours or frames)[-1]
    path = frame.filename.replace("\\", "/")
    short = path.split("/rdscard/", 1)[-1] if "/rdscard/" in path else path.rsplit("/", 1)[-1]
    return f"{short}:{frame.lineno} ({frame.name})"


@contextlib.contextmanager
def _hang_guard() -> Iterator[Callable[[float], None]]:
    """``arm(seconds)`` interrupts the main thread after ``seconds``; ``arm(0)`` disarms."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda _seconds: None
        return

    def on_alarm(_signum: int, _frame: object) -> None:
        raise DecodeHang(f"decode still running after {HANG_LIMIT:.0f} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:

        def arm(seconds: float) -> None:
            signal.setitimer(signal.ITIMER_REAL, seconds)

        yield arm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def memory_limit(limit: int | None) -> Iterator[None]:
    """Cap the address space (soft limit) so a huge allocation fails as MemoryError."""
    if limit is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    capped = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (capped, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_target(tgt: Target, inputs: int, seed: int = 0, *,
               slow_limit: float = SLOW_LIMIT) -> TargetResult:
    """Run ``tgt`` on its seeds unmodified, then on ``inputs`` generated inputs in all.

    Deterministic for a given ``seed``: the same inputs in the same order.
    """
    rng = random.Random(f"{seed}:{tgt.name}")
    seeds = list(tgt.seeds())
    mutator = Mutator(seeds, rng)
    found: dict[tuple[str, str], Finding] = {}
    allowed = tgt.allowed
    run = tgt.run
    clock = time.perf_counter
    count = accepted = 0
    start = clock()
    with _hang_guard() as arm:
        while count < inputs:
            data = seeds[count] if count < len(seeds) else mutator.next_input()
            count += 1
            began = clock()
            arm(HANG_LIMIT)
            try:
                run(data)
                accepted += 1
            except allowed:
                pass
            except (Exception, DecodeHang) as exc:  # every other exception is a finding
                arm(0)
                _record(found, tgt.name, data, type(exc).__name__, _location(exc),
                        traceback.format_exc())
                continue
            finally:
                arm(0)
            elapsed = clock() - began
            if elapsed > slow_limit:
                _record(found, tgt.name, data, "slow", f"{elapsed:.2f} s",
                        f"decode took {elapsed:.2f} s (limit {slow_limit} s)\n")
    return TargetResult(tgt.name, count, clock() - start, accepted, list(found.values()))


def _record(found: dict[tuple[str, str], Finding], name: str, data: bytes, kind: str,
            location: str, trace: str) -> None:
    key = (kind, location if kind != "slow" else "")
    known = found.get(key)
    if known is None:
        found[key] = Finding(name, kind, location, data, trace)
    else:
        known.count += 1
        if len(data) < len(known.data):  # keep the shortest example
            known.data, known.trace = data, trace
