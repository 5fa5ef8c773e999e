"""Secret: a PIN or password that never leaks through a repr and can be wiped."""

from __future__ import annotations

import copy
import gc
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.secret import Secret, scrub_bytes


def test_repr_and_str_are_redacted() -> None:
    secret = Secret(b"246810")
    assert repr(secret) == "Secret(<redacted, 6 bytes>)"
    assert str(secret) == repr(secret)
    assert f"{secret}" == repr(secret)
    assert "246810" not in repr([secret, {"pin": secret}])


def test_reveal_gives_the_live_buffer() -> None:
    secret = Secret(b"1234")
    buf = secret.reveal()
    assert isinstance(buf, bytearray)
    assert buf == bytearray(b"1234")
    assert secret.reveal() is buf


def test_wipe_zeroes_in_place() -> None:
    secret = Secret(b"1234")
    buf = secret.reveal()
    secret.wipe()
    assert len(secret) == 0
    assert not secret
    assert bytes(buf) == b""
    assert repr(secret) == "Secret(<redacted, 0 bytes>)"


def test_wipe_overwrites_before_forgetting() -> None:
    secret = Secret(b"99887766")
    buf = secret.reveal()
    seen: list[bytes] = []

    class Spy(bytearray):
        pass

    spy = Spy(buf)
    secret._buf = spy  # observe the buffer contents just before clear()
    original_clear = spy.clear

    def clear() -> None:
        seen.append(bytes(spy))
        original_clear()

    spy.clear = clear  # type: ignore[method-assign]
    secret.wipe()
    assert seen == [bytes(8)]


def test_wipe_while_a_view_is_held_still_zeroes() -> None:
    secret = Secret(b"8642")
    view = memoryview(secret.reveal())
    secret.wipe()
    assert bytes(view) == bytes(4)
    view.release()


def test_context_manager_wipes_on_exit_even_on_error() -> None:
    with Secret(b"0000") as secret:
        buf = secret.reveal()
        assert buf == bytearray(b"0000")
    assert len(secret) == 0
    with pytest.raises(RuntimeError), Secret(b"1111") as other:
        raise RuntimeError("boom")
    assert len(other) == 0


def test_take_moves_and_zeroes_the_source() -> None:
    source = bytearray(b"4321")
    secret = Secret.take(source)
    assert source == bytearray(4)
    assert secret.reveal() == bytearray(b"4321")


def test_constructor_copies() -> None:
    source = bytearray(b"5555")
    secret = Secret(source)
    source[0] = ord("x")
    assert secret.reveal() == bytearray(b"5555")


def test_equality_compares_contents() -> None:
    assert Secret(b"1234") == Secret(b"1234")
    assert Secret(b"1234") != Secret(b"1235")
    assert Secret(b"1234") != Secret(b"12345")
    assert Secret(b"1234") != b"1234"
    assert Secret(b"1") != "1"


def test_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(Secret(b"1"))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cannot_be_pickled(protocol: int) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(b"1234"), protocol=protocol)


def test_cannot_be_copied() -> None:
    with pytest.raises(TypeError):
        copy.copy(Secret(b"1"))
    with pytest.raises(TypeError):
        copy.deepcopy(Secret(b"1"))


def test_garbage_collection_zeroes_the_buffer() -> None:
    secret = Secret(b"13579")
    buf = secret.reveal()
    del secret
    gc.collect()
    assert buf == bytearray(5)


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_equality_matches_bytes(a: bytes, b: bytes) -> None:
    assert (Secret(a) == Secret(b)) == (a == b)
    assert repr(Secret(a)) == f"Secret(<redacted, {len(a)} bytes>)"


def test_scrub_bytes_zeroes_an_immutable_object_in_place() -> None:
    data = bytes(bytearray(b"5\x008\x002\x001\x00"))  # a fresh object, held here alone
    scrub_bytes(data)
    assert data == bytes(8) and len(data) == 8
    single = b"7"
    scrub_bytes(single)  # one-byte objects are shared singletons: left alone
    assert single == b"7"
