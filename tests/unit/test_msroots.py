"""The msroots codec (:mod:`rdscard.pki.msroots`) against libykpiv's layout, and the card."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from cryptography import x509

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.errors import ProtocolError
from rdscard.pki.ca import generate_key, make_ca
from rdscard.pki.msroots import (
    FILE_MAX,
    MSROOTS_OBJECTS,
    PART_MAX,
    decode_roots,
    delete_roots,
    encode_roots,
    join_file,
    read_roots,
    split_file,
    write_roots,
)
from rdscard.pki.piv_client import PivClient, PivError
from rdscard.pki.transport import InProcessTransport


@pytest.fixture(scope="module")
def roots() -> list[x509.Certificate]:
    return [make_ca(f"Root {n}", "msroots test", generate_key("p256")) for n in range(3)]


def _set(certs: Iterable[x509.Certificate]) -> set[x509.Certificate]:
    """Certificates as a set: PKCS #7 keeps them in a SET OF, sorted by DER."""
    return set(certs)


def _client(card: VirtualPivCard, admin: bool = True) -> PivClient:
    client = PivClient(InProcessTransport(card))
    client.select()
    if admin:
        client.authenticate_admin()
    return client


def test_parts_are_libykpiv_s_tags_and_lengths() -> None:
    # One part: tag 82 (last), then _ykpiv_set_length's 1, 2 and 3-byte forms.
    assert split_file(b"\x01" * 0x7F) == [b"\x82\x7f" + b"\x01" * 0x7F]
    assert split_file(b"\x01" * 0xC8) == [b"\x82\x81\xc8" + b"\x01" * 0xC8]
    assert split_file(b"\x01" * 0x123) == [b"\x82\x82\x01\x23" + b"\x01" * 0x123]
    # 3059 bytes per part; a file of exactly one part's size gets an empty last part,
    # as n_objs = len / 3059 + 1 in ykpiv_util_write_msroots.
    assert PART_MAX == 3059
    two = split_file(bytes(PART_MAX))
    assert [c[:4] for c in two] == [b"\x83\x82\x0b\xf3", b"\x82\x00"]
    assert len(two[0]) == 4 + PART_MAX
    assert len(split_file(bytes(FILE_MAX))) == len(MSROOTS_OBJECTS)
    with pytest.raises(ValueError, match="at most"):
        split_file(bytes(FILE_MAX + 1))
    with pytest.raises(ValueError):
        split_file(b"")


def test_join_reads_what_split_wrote_and_what_libykpiv_ignores() -> None:
    data = bytes(range(256)) * 30  # 7680 bytes: three parts
    parts = split_file(data)
    assert len(parts) == 3
    assert join_file([*parts, None, None]) == data
    assert join_file(parts) == data
    assert join_file([None]) is None  # no msroots on the card
    assert join_file([b"\x82"]) is None  # shorter than a tag and a length
    assert join_file([b"\x81\x01\x00"]) is None  # another tag (the container map's)
    assert join_file([b"\x82\x05ab"]) is None  # a length past the object
    assert join_file([b"\x82\x83\x00\x00\x01\x00"]) is None  # a length form libykpiv lacks
    mid = b"\x83\x01a"
    assert join_file([mid] * 5) is None  # a middle part in the last object
    assert join_file([mid] * 4 + [b"\x82\x01b"]) == b"aaaab"
    with pytest.raises(ProtocolError, match="incomplete"):
        join_file([mid, None])
    with pytest.raises(ProtocolError, match="incomplete"):
        join_file([mid, mid])


def test_the_file_is_a_certs_only_pkcs7(roots: list[x509.Certificate]) -> None:
    data = encode_roots(roots)
    assert data[:1] == b"\x30"
    assert b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" in data[:32]  # id-signedData
    assert _set(decode_roots(data)) == _set(roots)
    with pytest.raises(ProtocolError, match="PKCS #7"):
        decode_roots(b"\x30\x03\x02\x01\x01")
    with pytest.raises(ValueError):
        encode_roots([])


def test_virtual_card_keeps_roots_writes_need_the_management_key(
        roots: list[x509.Certificate]) -> None:
    state = CardState.new(serial=11)
    card = VirtualPivCard(state)
    assert read_roots(_client(card, admin=False)) == ()
    with pytest.raises(PivError, match="security status not satisfied"):
        write_roots(_client(card, admin=False), roots)
    size = write_roots(_client(card), roots)
    assert size == len(encode_roots(roots))
    assert _set(read_roots(_client(card, admin=False))) == _set(roots)
    # the roots survive the state file, as a real card keeps them
    again = VirtualPivCard(CardState.from_json(state.to_json()))
    assert _set(read_roots(_client(again, admin=False))) == _set(roots)
    write_roots(_client(card), roots[:1])  # fewer roots: the stale parts go too
    assert read_roots(_client(card, admin=False)) == tuple(roots[:1])
    assert [t for t in MSROOTS_OBJECTS if t in state.data_objects] == [MSROOTS_OBJECTS[0]]
    with pytest.raises(PivError):
        delete_roots(_client(card, admin=False))
    delete_roots(_client(card))
    assert read_roots(_client(card, admin=False)) == ()
    assert not any(t in state.data_objects for t in MSROOTS_OBJECTS)


def test_many_roots_span_several_objects() -> None:
    many = [make_ca(f"Root {n}", "msroots spanning test", generate_key("p256"))
            for n in range(12)]
    state = CardState.new(serial=12)
    card = VirtualPivCard(state)
    size = write_roots(_client(card), many)
    assert size > PART_MAX
    used = [t for t in MSROOTS_OBJECTS if t in state.data_objects]
    assert used == list(MSROOTS_OBJECTS[:size // PART_MAX + 1])
    assert state.data_objects[used[0]][:1] == b"\x83"
    assert state.data_objects[used[-1]][:1] == b"\x82"
    assert _set(read_roots(_client(card, admin=False))) == _set(many)
