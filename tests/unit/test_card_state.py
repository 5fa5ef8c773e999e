"""The virtual card's state file and its RSA fast path."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from rdscard.card.state import CardState, SlotKey
from rdscard.errors import ConfigError
from tests.unit.test_piv_card import der, new_state, rsa_key  # noqa: F401 - fixture


# -- CardState -----------------------------------------------------------------------------
def test_state_save_load_round_trip(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:  # noqa: F811
    state = new_state()
    state.keys[0x9A] = SlotKey(0x07, der(rsa_key))
    state.pin_retries_left = 2
    path = tmp_path / "card.json"
    state.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]
    loaded = CardState.load(path)
    assert loaded.to_json() == state.to_json()
    assert loaded.keys[0x9A].private_key == der(rsa_key)


def test_state_repr_hides_secrets() -> None:
    state = CardState.new(serial=7, pin=b"918273", puk=b"56473829")
    text = repr(state) + str(state)
    assert "918273" not in text and "56473829" not in text
    assert "serial=7" in text and "5FC102" in text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"pin": b"123"}, "PIN"), ({"puk": b"1234"}, "PUK"), ({"serial": -1}, "serial"),
    ({"pin_retries": 0}, "retry"),
])
def test_state_new_validates(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"serial": 1, **kwargs}
    with pytest.raises(ConfigError, match=message):
        CardState.new(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("edit", [
    lambda d: d.update(format=2),
    lambda d: d.update(pin="***"),
    lambda d: d.update(pin_retries_left=9),
    lambda d: d.update(management_key="AAAA"),
    lambda d: d["data_objects"].update({"5FC104": "AA=="}),
    lambda d: d["data_objects"].update({"zz": "AA=="}),
    lambda d: d["keys"].update({"9B": {"algorithm": 7, "private_key": "AA=="}}),
    lambda d: d.update(serial=True),
])
def test_state_load_rejects_bad_files(tmp_path: Path, edit: Callable[[dict[str, object]],
                                                                      None]) -> None:
    doc = new_state().to_json()
    edit(doc)
    path = tmp_path / "card.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError):
        CardState.load(path)


def test_state_load_missing_and_invalid(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        CardState.load(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        CardState.load(tmp_path / "bad.json")


def test_fast_rsa_signature_path_matches_the_raw_private_operation() -> None:
    """An EMSA-PKCS1-v1_5 block signed by OpenSSL equals the plain CRT exponentiation."""

    from cryptography.hazmat.primitives.asymmetric import rsa as _rsa

    from rdscard.card import crypto

    key = _rsa.generate_private_key(public_exponent=65537, key_size=2048)
    prefix = bytes.fromhex("3031300d060960864801650304020105000420")
    info = prefix + hashlib.sha256(b"data").digest()
    block = b"\x00\x01" + b"\xff" * (256 - 3 - len(info)) + b"\x00" + info
    numbers = key.private_numbers()
    expected = pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n)
    assert crypto.rsa_private(key, block) == expected.to_bytes(256, "big")
    odd = b"\x00\x02" + block[2:]  # not a signature block: the exponentiation path
    expected = pow(int.from_bytes(odd, "big"), numbers.d, numbers.public_numbers.n)
    assert crypto.rsa_private(key, odd) == expected.to_bytes(256, "big")
