"""The PKINIT worker without a KDC: ccache codec, kinit command, error mapping, PIN plumbing."""

from __future__ import annotations

import contextlib
import datetime
import os
import stat
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.logon.ccache import Ccache, CcacheVersion, Credential, Principal
from rdscard.logon.ntauth import NtAuthStore, parse_certificates
from rdscard.logon.pkinit import (
    PkinitResult,
    build_command,
    explain_failure,
    kdc_anchors,
    run_pkinit,
)
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import KdcSettings, LogonConfig
from rdscard.pki.ca import RealmPki
from rdscard.secret import Secret

PIN = b"58213907"

# A version 4 credential cache with alice@EXAMPLE.TEST's TGT (MIT ccache.txt layout).
CCACHE_V4 = bytes.fromhex(
    "0504"  # file_format_version 0x0504
    "000c"  # header_length 12
    "0001" "0008" "00000000" "00000000"  # tag 1 (KDC time offset), 8 bytes: 0 s, 0 us
    # default principal: NT-PRINCIPAL (1), 1 component, realm "EXAMPLE.TEST", "alice"
    "00000001" "00000001" "0000000c" "4558414d504c452e54455354" "00000005" "616c696365"
    # credential: client = the same principal
    "00000001" "00000001" "0000000c" "4558414d504c452e54455354" "00000005" "616c696365"
    # server: NT-SRV-INST (2), 2 components: "krbtgt", "EXAMPLE.TEST"
    "00000002" "00000002" "0000000c" "4558414d504c452e54455354"
    "00000006" "6b7262746774" "0000000c" "4558414d504c452e54455354"
    "0012" "00000004" "01020304"  # keytype 18 (aes256-cts), a 4-byte key for brevity
    "6a1e0000"  # authtime   2026-07-30 (0x6A1E0000)
    "6a1e0000"  # starttime
    "6a1e8ca0"  # endtime    = authtime + 36000 s (10 h)
    "6a1f0000"  # renew_till
    "00"  # is_skey
    "40e10000"  # ticket_flags: forwardable, renewable, initial, pre-authent
    "00000000"  # no addresses
    "00000000"  # no authdata
    "00000004" "544b5421"  # ticket "TKT!"
    "00000000"  # no second ticket
)


def test_ccache_decodes_the_spec_layout() -> None:
    cache = Ccache.decode(CCACHE_V4)
    assert cache.version is CcacheVersion.V4
    assert str(cache.default_principal) == "alice@EXAMPLE.TEST"
    (cred,) = cache.credentials
    assert str(cred.server) == "krbtgt/EXAMPLE.TEST@EXAMPLE.TEST"
    assert cred.keytype == 18 and cred.ticket == b"TKT!" and cred.ticket_flags == 0x40E10000
    assert cred.endtime - cred.authtime == 36000
    tgt = cache.tgt()
    assert tgt is cred
    assert tgt.expires == datetime.datetime.fromtimestamp(0x6A1E8CA0, datetime.UTC)
    assert "01020304" not in repr(cred)  # the session key never shows


def test_ccache_round_trip_and_size() -> None:
    cache = Ccache.decode(CCACHE_V4)
    assert cache.encode() == CCACHE_V4
    # header 16, two 33-byte principals, server 50, key 10, times 16, is_skey + flags 5,
    # address and authdata counts 8, ticket 8, second ticket 4
    assert len(cache.encode()) == len(CCACHE_V4) == 16 + 33 + 33 + 50 + 10 + 16 + 5 + 8 + 8 + 4


def test_ccache_version_3_and_config_entries() -> None:
    alice = Principal(1, "EXAMPLE.TEST", ("alice",))
    conf = Credential(alice, Principal(1, "X-CACHECONF:", ("krb5_ccache_conf_data", "pa_type")),
                      0, b"", 0, 0, 0, 0, 0, 0, (), (), b"16", b"")
    cache = Ccache(CcacheVersion.V3, b"", alice, (conf,))
    again = Ccache.decode(cache.encode())
    assert again == cache and again.tgt() is None and again.credentials[0].is_config


@pytest.mark.parametrize(("data", "field"), [
    (bytes.fromhex("0502"), "file_format_version"),
    (CCACHE_V4[:3], "header_length"),
    (CCACHE_V4[:-1], "second_ticket length"),
    (CCACHE_V4[:16] + bytes.fromhex("00000001" "00000011"), "num_components"),
    (CCACHE_V4[:16] + bytes.fromhex("00000001" "00000001" "7fffffff"), "realm length"),
])
def test_bad_ccache_names_the_field(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        Ccache.decode(data)
    assert info.value.pdu == "credential cache" and info.value.field == field


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_ccache_decoder_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        Ccache.decode(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=len(CCACHE_V4) - 1))
def test_truncated_ccache_is_refused(prefix: bytes) -> None:
    """A cut inside a record is refused; a cut between credentials is a shorter cache."""
    try:
        shorter = Ccache.decode(CCACHE_V4[:len(prefix)])
    except ProtocolError:
        return
    assert len(shorter.credentials) < len(Ccache.decode(CCACHE_V4).credentials)


# -- the kinit command --------------------------------------------------------------------
def test_command_has_identity_anchors_socket_and_no_pin(tmp_path: Path) -> None:
    command = build_command(
        "alice@EXAMPLE.TEST", KdcSettings(krb5_config=Path("/etc/k.conf")),
        ccname="FILE:/s/cc", home=tmp_path, anchors=[Path("/n/a.pem"), Path("/r.pem")],
        pcsc_socket="/run/s1.comm", base_env={"PATH": "/bin", "SECRET_THING": "x"},
    )
    assert command.argv == ("kinit", "-c", "FILE:/s/cc",
                            "-X", "X509_user_identity=PKCS11:opensc-pkcs11.so",
                            "-X", "X509_anchors=FILE:/n/a.pem", "-X", "X509_anchors=FILE:/r.pem",
                            "alice@EXAMPLE.TEST")
    assert command.env == {
        "PATH": "/bin", "LANG": "C", "LC_ALL": "C", "HOME": str(tmp_path),
        "KRB5_CONFIG": "/etc/k.conf", "KRB5CCNAME": "FILE:/s/cc", "KRB5_TRACE": "/dev/stderr",
        "PCSCLITE_CSOCK_NAME": "/run/s1.comm",
    }


def test_enterprise_command_puts_the_realm_first(tmp_path: Path) -> None:
    command = build_command("alice@example.test", KdcSettings(), ccname="FILE:c", home=tmp_path,
                            enterprise=True, realm="EXAMPLE.TEST",
                            realm_config=tmp_path / "r.conf",
                            base_env={"KRB5_CONFIG": "/etc/krb5.conf"})
    assert command.argv[-2:] == ("-E", "alice@example.test")
    assert command.env["KRB5_CONFIG"] == f"{tmp_path / 'r.conf'}:/etc/krb5.conf"


@pytest.mark.parametrize("principal", ["-V", "", " a@R", "a\n@R", "a\x00@R", "x" * 600])
def test_option_like_or_odd_principals_are_refused(principal: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_command(principal, KdcSettings(), ccname="FILE:c", home=tmp_path)


def test_anchors_default_to_the_roots_above_ntauth(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    pki = RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")
    other = RealmPki.create(tmp_path_factory.mktemp("pki"), "OTHER.TEST", "other.test")
    entry, _ = NtAuthStore.in_state_dir(tmp_path).add(pki.issuing_cert)
    # the other PKI's root is configured, but none of its CAs is in NTAuth: not an anchor
    config = LogonConfig.from_table({"roots": [str(other.layout.root_cert),
                                               str(pki.layout.root_cert)]})
    (bundle,) = kdc_anchors(config, tmp_path)
    assert bundle == tmp_path / "kdc-anchors.pem"
    assert parse_certificates(bundle.read_bytes(), "bundle") == [pki.root_cert]
    # no root above the NTAuth CA: the CA itself (kinit then refuses and says why)
    assert kdc_anchors(LogonConfig.from_table({"roots": [str(other.layout.root_cert)]}),
                       tmp_path) == (entry.path,)
    config = LogonConfig.from_table({"kdc": {"anchors": ["/k.pem"]}})
    assert kdc_anchors(config, tmp_path) == (Path("/k.pem"),)


# -- kinit's messages -------------------------------------------------------------------------
TRACE_WRONG_PIN = (
    "[13256] 1795650633.010577: Received error from KDC: -1765328359/Additional "
    "pre-authentication required\n"
    "[13256] 1795650633.010591: PKINIT PKCS11 C_Login failed: pin incorrect\n"
    "kinit: Pre-authentication failed: Preauthentication failed while getting initial "
    "credentials\n")


@pytest.mark.parametrize(("stderr", "code", "words"), [
    (TRACE_WRONG_PIN, ReasonCode.WRONG_PIN, "one failed try"),
    ("[1] 1.0: PKINIT PKCS11 C_Login failed: pin locked\nkinit: Pre-authentication failed\n",
     ReasonCode.PIN_BLOCKED, "PUK"),
    ("kinit: Cannot contact any KDC for realm 'EXAMPLE.TEST' while getting initial "
     "credentials\n", ReasonCode.KDC_UNREACHABLE, "KDC is running"),
    ('kinit: Cannot find KDC for realm "OTHER.TEST" while getting initial credentials\n',
     ReasonCode.KDC_UNKNOWN, "[realms]"),
    ("kinit: Client 'nobody@EXAMPLE.TEST' not found in Kerberos database while getting "
     "initial credentials\n", ReasonCode.PRINCIPAL_UNKNOWN, "create it"),
    ("kinit: Certificate mismatch while getting initial credentials\n",
     ReasonCode.CLIENT_NAME_MISMATCH, "pkinit_cert_match"),
    ("kinit: Client name mismatch while getting initial credentials\n",
     ReasonCode.CLIENT_NAME_MISMATCH, "bind"),
    ("kinit: Pre-authentication failed: Failed to verify own certificate (depth 1): unable "
     "to get local issuer certificate while getting initial credentials\n",
     ReasonCode.KDC_UNTRUSTED, "rdscard ntauth add"),
    ("kinit: Pre-authentication failed: Preauthentication failed while getting initial "
     "credentials\n", ReasonCode.PREAUTH_FAILED, "session's reader"),
    # PKINIT refused by the KDC with an error kinit answers by trying the password (which
    # it cannot read: the PIN was the only line): the KDC's word is in the message
    ("[7] 1.1: Received error from KDC: -1765328359/Additional pre-authentication required\n"
     "[7] 1.2: Received error from KDC: -1765328360/Preauthentication failed\n"
     "kinit: Cannot read password while getting initial credentials\n",
     ReasonCode.PREAUTH_FAILED,
     "failed (Received error from KDC: -1765328360/Preauthentication failed): check"),
    # the KDC's certificate not trusted while processing its reply (PA-PK-AS-REP, 17)
    ("[7] 1.1: Preauth module pkinit (17) (real) returned: -1765328360/Failed to verify "
     "received certificate (depth 0): unable to get local issuer certificate\n"
     "kinit: Cannot read password while getting initial credentials\n",
     ReasonCode.KDC_UNTRUSTED, "(Preauth module pkinit (17) (real) returned: -1765328360/"),
    ("[7] 1.1: Preauth module pkinit (16) (real) returned: -1765328360/C_Sign failed\n"
     "kinit: Cannot read password while getting initial credentials\n",
     ReasonCode.PREAUTH_FAILED, "returned: -1765328360/C_Sign failed) and kinit fell back"),
    ("kinit: Cannot read password while getting initial credentials\n",
     ReasonCode.PREAUTH_FAILED, "(Cannot read password while getting initial credentials)"),
    ("kinit: Something new\n", ReasonCode.KINIT_FAILED, "Something new"),
    ("", ReasonCode.KINIT_FAILED, "no message"),
])
def test_kinit_messages_become_reasons(stderr: str, code: ReasonCode, words: str) -> None:
    refusal = explain_failure(stderr, "alice@EXAMPLE.TEST", 1)
    assert refusal.reason_code is code
    assert words in refusal.message
    assert "[13256]" not in refusal.message  # trace lines stay out of messages


# -- the worker with a stand-in kinit ------------------------------------------------------------
FAKE_KINIT = """#!{python}
import os, sys
line = sys.stdin.buffer.readline()
rest = sys.stdin.buffer.read()
seen = open(os.environ["HOME"] + "/seen", "wb")
seen.write(b"\\0".join(a.encode() for a in sys.argv) + b"\\0" + repr(dict(os.environ)).encode())
seen.close()
mode = os.environ.get("FAKE_MODE", "ok")
if mode == "sleep":
    import time; time.sleep(30)
if line.rstrip(b"\\n") != {pin!r} or rest:
    sys.stderr.write("[1] 1.0: PKINIT PKCS11 C_Login failed: pin incorrect\\n"
                     "kinit: Pre-authentication failed: Preauthentication failed\\n")
    sys.exit(1)
if mode == "nocache":
    sys.exit(0)
path = os.environ["KRB5CCNAME"][len("FILE:"):]
open(path, "wb").write(bytes.fromhex({ccache!r}))
"""


@pytest.fixture
def fake_kinit(tmp_path: Path) -> Path:
    path = tmp_path / "fake-kinit"
    path.write_text(FAKE_KINIT.format(python=sys.executable, pin=PIN, ccache=CCACHE_V4.hex()))
    path.chmod(0o755)
    return path


def _run(fake: Path, base: Path, pin: Secret, mode: str = "ok",
         timeout: float = 10) -> PkinitResult:
    return run_pkinit("alice@EXAMPLE.TEST", pin, KdcSettings(kinit=str(fake), timeout=timeout),
                      ccache_base=base, pcsc_socket="/run/session-7.comm",
                      base_env={"PATH": os.environ["PATH"], "FAKE_MODE": mode})


def test_pin_goes_through_stdin_once_and_is_wiped(fake_kinit: Path, tmp_path: Path) -> None:
    pin = Secret(PIN)
    result = _run(fake_kinit, tmp_path / "cc", pin)
    assert len(pin) == 0
    assert result.principal == "alice@EXAMPLE.TEST"
    assert result.expires == datetime.datetime.fromtimestamp(0x6A1E8CA0, datetime.UTC)
    assert result.ccname == f"FILE:{result.ccache}"
    assert stat.S_IMODE(result.ccache.parent.stat().st_mode) == 0o700
    seen = (result.ccache.parent / "seen").read_bytes()
    assert b"PCSCLITE_CSOCK_NAME" in seen and b"/run/session-7.comm" in seen
    assert b"FAKE_MODE" not in seen  # only the worker's own variables reach kinit
    assert PIN not in seen


def test_wrong_pin_from_the_stand_in_is_explained_and_cleaned_up(fake_kinit: Path,
                                                                  tmp_path: Path) -> None:
    pin = Secret(b"11111111")
    with pytest.raises(SignInRefused) as info:
        _run(fake_kinit, tmp_path / "cc", pin)
    assert info.value.reason_code is ReasonCode.WRONG_PIN
    assert len(pin) == 0
    assert list((tmp_path / "cc").iterdir()) == []


def test_timeout_kills_kinit(fake_kinit: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SignInRefused) as info:
        _sleeping(fake_kinit, tmp_path)
    assert time.monotonic() - started < 10
    assert info.value.reason_code is ReasonCode.KINIT_TIMEOUT
    assert "[logon.kdc] timeout" in info.value.message


def _sleeping(fake: Path, tmp_path: Path) -> PkinitResult:
    # FAKE_MODE does not reach kinit's environment; a wrapper sets it.
    wrapper = tmp_path / "sleepy-kinit"
    wrapper.write_text(f"#!/bin/sh\nFAKE_MODE=sleep exec '{fake}' \"$@\"\n")
    wrapper.chmod(0o755)
    return _run(wrapper, tmp_path / "cc", Secret(PIN), timeout=0.5)


def test_missing_ccache_and_missing_kinit(fake_kinit: Path, tmp_path: Path) -> None:
    wrapper = tmp_path / "no-cache-kinit"
    wrapper.write_text(f"#!/bin/sh\nFAKE_MODE=nocache exec '{fake_kinit}' \"$@\"\n")
    wrapper.chmod(0o755)
    with pytest.raises(SignInRefused) as info:
        _run(wrapper, tmp_path / "cc", Secret(PIN))
    assert info.value.reason_code is ReasonCode.KINIT_FAILED
    assert "credential cache is unusable" in info.value.message
    pin = Secret(PIN)
    with pytest.raises(SignInRefused) as info:
        _run(tmp_path / "no-such-kinit", tmp_path / "cc", pin)
    assert info.value.reason_code is ReasonCode.KINIT_FAILED and "cannot run" in info.value.message
    assert len(pin) == 0


def test_cache_is_handed_to_the_account(fake_kinit: Path, tmp_path: Path) -> None:
    # Only root can give files away; anyone else keeps the cache as their own.
    owner = 65534 if os.geteuid() == 0 else os.geteuid()
    result = run_pkinit("alice@EXAMPLE.TEST", Secret(PIN), KdcSettings(kinit=str(fake_kinit)),
                        ccache_base=tmp_path / "cc", uid=65534, gid=65534,
                        base_env={"PATH": os.environ["PATH"]})
    for path in (result.ccache, result.ccache.parent):
        info = path.stat()
        assert info.st_uid == owner
    assert stat.S_IMODE(result.ccache.stat().st_mode) == 0o600
    assert stat.S_IMODE(result.ccache.parent.stat().st_mode) == 0o700


def test_enterprise_command_accepts_the_mapping_form(tmp_path: Path) -> None:
    command = build_command("alice\\@example.test@EXAMPLE.TEST", KdcSettings(), ccname="FILE:c",
                            home=tmp_path, enterprise=True, realm_config=tmp_path / "r.conf",
                            base_env={})
    assert command.argv[-2:] == ("-E", "alice@example.test")
    assert command.env["KRB5_CONFIG"] == f"{tmp_path / 'r.conf'}:/etc/krb5.conf"
