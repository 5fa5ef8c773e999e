"""The short fuzz run for CI: every decoder target for a few thousand inputs, no findings.

The long campaign is ``bench/fuzz_decoders.py`` (see BENCHMARKS.md); this
runs the same targets with the same engine on a fixed seed, so a failure
here is reproduced by ``bench/fuzz_decoders.py --seed 0 --inputs N --only NAME``.
"""

from __future__ import annotations

import pytest

from rdscard.errors import ProtocolError
from tests.fuzz import targets as _targets
from tests.fuzz.engine import REGISTRY, Target, register, run_target
from tests.fuzz.mutate import Mutator

del _targets

INPUTS = 3000
EXPECTED = {
    "tpkt", "x224", "mcs_connect_initial", "mcs_domain", "send_data_fast_path",
    "gcc_client_blocks", "ber_per", "client_info", "share", "confirm_active",
    "input_slow_path", "input_fast_path", "licensing", "channel_chunks", "acceptor",
    "rdpdr_pdu", "rdpdr_server", "rdpdr_server_handshake", "esc_call", "esc_return",
    "pcsclite_requests", "pcsclite_structs", "ccache", "apdu", "tlv", "cms_envelope",
    "kdc-reply",
}


def test_every_decoder_has_a_target() -> None:
    assert set(REGISTRY) >= EXPECTED


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_target_has_no_findings(name: str) -> None:
    result = run_target(REGISTRY[name], INPUTS, seed=0)
    reports = "\n\n".join(f.report() for f in result.findings)
    assert not result.findings, reports
    assert result.inputs == INPUTS


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_seeds_decode(name: str) -> None:
    """Seeds are valid messages: a target whose seeds all fail fuzzes only the first checks."""
    tgt = REGISTRY[name]
    seeds = list(tgt.seeds())
    accepted = 0
    for seed in seeds:
        try:
            tgt.run(seed)
            accepted += 1
        except ProtocolError:
            pass
    assert accepted >= max(1, len(seeds) // 2), f"{accepted} of {len(seeds)} seeds decode"


def test_inputs_depend_on_the_seed_only() -> None:
    def inputs(seed: int) -> list[bytes]:
        import random

        mutator = Mutator([b"\x03\x00\x00\x08\x02\xf0\x80\x28"], random.Random(seed))
        return [mutator.next_input() for _ in range(200)]

    assert inputs(1) == inputs(1)
    assert inputs(1) != inputs(2)


def test_a_crashing_decoder_is_a_finding() -> None:
    def decode(data: bytes) -> None:
        if len(data) > 3 and data[3] == 0xFF:
            raise IndexError("index out of range")
        raise ProtocolError("test", "field", "refused")

    tgt = Target("crashes_on_ff", decode, lambda: [b"\x00\x01\x02\x03\x04"])
    result = run_target(tgt, 2000, seed=0)
    assert [f.kind for f in result.findings] == ["IndexError"]
    assert result.findings[0].data[3] == 0xFF
    assert "crashes_on_ff" not in REGISTRY  # built, not registered: register() is for real ones
    assert register is not None
