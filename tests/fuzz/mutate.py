"""Deterministic mutation of seed messages (pure Python, no coverage feedback).

Every input comes from one :class:`random.Random`, so a run is reproduced
by its seed. An input is either random bytes or a seed with one to four
stacked mutations: bit flips, interesting byte values, inserted, deleted or
duplicated runs, length-field tweaks (1, 2 or 4 bytes, either byte order,
set to a boundary value or moved by a small amount), truncation, and
splicing with another seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal

INTERESTING_8 = (0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xFE, 0xFF)
INTERESTING_VALUES = (
    0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000,
    0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x20000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF,
)
MAX_INPUT = 1 << 16

Mutation = Callable[[random.Random, bytearray, Sequence[bytes]], bytearray]


def _flip_bit(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> bytearray:
    if data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return data


def _set_byte(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> bytearray:
    if data:
        data[rng.randrange(len(data))] = (
            rng.choice(INTERESTING_8) if rng.random() < 0.5 else rng.randrange(256)
        )
    return data


def _insert(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> bytearray:
    at = rng.randrange(len(data) + 1)
    size = rng.choice((1, 1, 2, 4, 8, rng.randrange(1, 64)))
    fill = bytes([rng.randrange(256)]) * size if rng.random() < 0.5 else rng.randbytes(size)
    data[at:at] = fill
    return data


def _delete(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> bytearray:
    if data:
        at = rng.randrange(len(data))
        size = rng.choice((1, 1, 2, 4, 8, rng.randrange(1, 64)))
        del data[at : at + size]
    return data


def _duplicate(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> bytearray:
    if data:
        start = rng.randrange(len(data))
        end = min(len(data), start + rng.randrange(1, 128))
        at = rng.randrange(len(data) + 1)
        data[at:at] = data[start:end] * rng.choice((1, 1, 2, 8))
    return data


def _length_field(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> bytearray:
    width = rng.choice((1, 2, 2, 4, 4))
    if len(data) < width:
        return data
    at = rng.randrange(len(data) - width + 1)
    order: Literal["little", "big"] = "little" if rng.random() < 0.5 else "big"
    old = int.from_bytes(data[at : at + width], order)
    choice = rng.random()
    if choice < 0.4:
        new = rng.choice(INTERESTING_VALUES)
    elif choice < 0.7:
        new = old + rng.choice((-8, -4, -2, -1, 1, 2, 4, 8))
    else:
        new = len(data) + rng.choice((-4, -1, 0, 1, 4)) - at
    data[at : at + width] = (new % (1 << (8 * width))).to_bytes(width, order)
    return data


def _truncate(rng: random.Random, data: bytearray, _: Sequence[bytes]) -> bytearray:
    if data:
        del data[rng.randrange(len(data)) :]
    return data


def _splice(rng: random.Random, data: bytearray, seeds: Sequence[bytes]) -> bytearray:
    other = rng.choice(seeds) if seeds else b""
    if not other:
        return data
    cut = rng.randrange(len(data) + 1)
    start = rng.randrange(len(other))
    return data[:cut] + other[start : start + rng.randrange(1, len(other) + 1)]


MUTATIONS: tuple[Mutation, ...] = (
    _flip_bit, _flip_bit, _set_byte, _set_byte, _insert, _delete, _duplicate,
    _length_field, _length_field, _length_field, _truncate, _splice,
)


class Mutator:
    """Inputs for one target: mutated seeds, and random bytes now and then."""

    def __init__(self, seeds: Sequence[bytes], rng: random.Random,
                 random_share: float = 0.05) -> None:
        self.seeds = [bytes(s) for s in seeds]
        self.rng = rng
        self.random_share = random_share if self.seeds else 1.0

    def next_input(self) -> bytes:
        rng = self.rng
        if rng.random() < self.random_share:
            return rng.randbytes(rng.choice((0, 1, 2, 4, 8, 16, rng.randrange(256))))
        data = bytearray(rng.choice(self.seeds))
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            data = rng.choice(MUTATIONS)(rng, data, self.seeds)
        if len(data) > MAX_INPUT:
            del data[MAX_INPUT:]
        return bytes(data)
