"""The PKINIT worker: MIT ``kinit`` with the session's smart card, the PIN through a pipe.

One ``kinit`` process per sign-in (INTEROP-NOTES 7): libpcsclite reads
``PCSCLITE_CSOCK_NAME`` once per process, so the worker is started with the
session's socket in its environment and reaches the card redirected from the
client. The identity is ``PKCS11:<module>`` (OpenSC's PIV driver); the KDC's
certificate is checked against ``X509_anchors`` (the NTAuth CAs and the
configured roots, as the seed checks the KDC certificate against NTAuth).

The PIN is written to kinit's standard input, a pipe, and nowhere else:
never argv, environment or a file. kinit reads one line, so a wrong PIN is
tried once and never again. kinit runs with the logon service's own
privileges (the anchors and configuration in the state directory are the
service's; the session socket admits root), in a fresh 0700 directory that,
with the ``FILE:`` credential cache in it, is handed to the account
afterwards. The TGT expiry is read from the cache file itself
(:mod:`rdscard.logon.ccache`).

kinit's messages (``LANG=C``) and its trace (``KRB5_TRACE``, read from its
standard error only to tell a wrong PIN from other pre-authentication
failures) become :class:`SignInRefused` reasons with the cause and the fix.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from cryptography import x509

from rdscard.errors import ProtocolError
from rdscard.logon.card_roots import anchor_file, validate_tgt
from rdscard.logon.ccache import Ccache
from rdscard.logon.kdc_relay import KdcRelay, overlay, realm_kdcs
from rdscard.logon.kdc_trust import (
    ANCHOR_FILE,
    check_kdc_issuer,
    ntauth_roots,
    write_anchors,
)
from rdscard.logon.mapping import AccountMapping
from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import KdcSettings, LogonConfig
from rdscard.logon.validation import load_certificate_files
from rdscard.secret import Secret

log = logging.getLogger(__name__)

CCACHE_NAME: Final = "krb5cc"
MAX_OUTPUT: Final = 256 * 1024
#: The lines of a failed kinit's trace that go to the debug log.
TRACE_LINES_LOGGED: Final = 40
MAX_CCACHE: Final = 4 * 1024 * 1024
_PRINCIPAL: Final = re.compile(r"^[^\s\x00-\x1f\x7f-][^\x00-\x1f\x7f]{0,510}$")
DEFAULT_PATH: Final = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class PkinitResult:
    """A TGT obtained by PKINIT."""

    principal: str
    ccache: Path
    ccname: str
    expires: datetime.datetime
    seconds: float


class PkinitRunner(Protocol):
    """The PKINIT step the logon service calls: a TGT for ``mapping`` with ``pin``.

    ``card_roots`` (given only with ``[logon.kdc] card_roots``): the card's
    roots, extra KDC anchors of this sign-in, the TGT then validated.
    """

    def __call__(self, mapping: AccountMapping, pin: Secret,
                 card_roots: Sequence[x509.Certificate] = ..., /) -> PkinitResult: ...


@dataclass(frozen=True)
class KinitCommand:
    """What the worker runs: argv and environment (neither ever holds the PIN)."""

    argv: tuple[str, ...]
    env: dict[str, str]


def kdc_anchors(config: LogonConfig, state_dir: Path) -> tuple[Path, ...]:
    """Trust anchors for the KDC certificate: ``[logon.kdc] anchors``, else the roots above
    the NTAuth CAs (:func:`~rdscard.logon.kdc_trust.ntauth_roots`), written to
    ``STATE/kdc-anchors.pem``.

    With no root above any NTAuth CA, the NTAuth CAs themselves: kinit then
    refuses every KDC, and says why.
    """
    if config.kdc.anchors:
        return config.kdc.anchors
    store = NtAuthStore(config.ntauth_directory(state_dir))
    roots = ntauth_roots(store.certificates(),
                         load_certificate_files(config.roots, "root certificate file"),
                         load_certificate_files(config.intermediates,
                                                "intermediate certificate file"))
    if not roots:
        return tuple(entry.path for entry in store.entries())
    return (write_anchors(roots, Path(state_dir) / ANCHOR_FILE),)


def build_command(
    principal: str,
    settings: KdcSettings,
    *,
    ccname: str,
    home: Path,
    anchors: Sequence[Path] = (),
    enterprise: bool = False,
    realm: str | None = None,
    pcsc_socket: str | None = None,
    realm_config: Path | None = None,
    base_env: Mapping[str, str] | None = None,
) -> KinitCommand:
    """The kinit argv and environment for ``principal``.

    With ``enterprise`` the principal is the UPN, sent as an enterprise name
    (``-E``) to ``realm``, which becomes the default realm through the small
    profile ``realm_config`` placed before the configured one.
    """
    if not _PRINCIPAL.match(principal):
        raise ValueError(f"{principal!r} is not a principal kinit can be given")
    if enterprise and "\\@" in principal:
        # The mapping's form user\@domain@REALM: kinit -E wants the bare UPN.
        name, _, principal_realm = principal.rpartition("@")
        principal = name.replace("\\@", "@")
        realm = realm or principal_realm
    argv = [settings.kinit, "-c", ccname,
            "-X", f"X509_user_identity=PKCS11:{settings.pkcs11_module}"]
    for anchor in anchors:
        argv += ["-X", f"X509_anchors=FILE:{anchor}"]
    if enterprise:
        argv.append("-E")
    argv.append(principal)
    base = dict(os.environ if base_env is None else base_env)
    configs = [str(settings.krb5_config)] if settings.krb5_config else [
        base.get("KRB5_CONFIG", "/etc/krb5.conf")]
    if enterprise and realm and realm_config is not None:
        configs.insert(0, str(realm_config))
    env = {
        "PATH": base.get("PATH", DEFAULT_PATH),
        "LANG": "C",
        "LC_ALL": "C",
        "HOME": str(home),
        "KRB5_CONFIG": ":".join(configs),
        "KRB5CCNAME": ccname,
        "KRB5_TRACE": "/dev/stderr",
    }
    if pcsc_socket:
        env["PCSCLITE_CSOCK_NAME"] = pcsc_socket
    return KinitCommand(argv=tuple(argv), env=env)


def _kinit_line(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("kinit:"):
            return line[len("kinit:"):].strip()[:400]
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[")]
    return lines[-1].strip()[:400] if lines else "no message"


def explain_failure(stderr: str, principal: str, returncode: int) -> SignInRefused:
    """Map kinit's standard error (message and trace) to a refusal naming cause and fix."""
    said = _kinit_line(stderr)
    lower = stderr.lower()
    realm = principal.rpartition("@")[2]
    # PKINIT did not succeed and kinit went on to the password (encrypted timestamp), which
    # it cannot have: what the KDC or the PKINIT module said is in the trace.
    fell_back = "cannot read password" in lower
    if fell_back:
        said = _last_trace_result(stderr) or said
    if "c_login failed: pin incorrect" in lower:
        return SignInRefused(ReasonCode.WRONG_PIN,
                             "wrong PIN: the card counted one failed try; type the PIN again")
    if "c_login failed: pin locked" in lower or "pin_locked" in lower:
        return SignInRefused(ReasonCode.PIN_BLOCKED,
                             "the card's PIN is blocked: unblock it with the PUK, then sign in "
                             "again", tries_left=0)
    if "cannot contact any kdc" in lower:
        return SignInRefused(
            ReasonCode.KDC_UNREACHABLE,
            f"no KDC of realm {realm} answered ({said}): check that the KDC is running and "
            "reachable from this host (krb5.conf [realms] kdc)",
        )
    if "cannot find kdc for realm" in lower:
        return SignInRefused(
            ReasonCode.KDC_UNKNOWN,
            f"no KDC is configured for realm {realm} ({said}): add it to krb5.conf [realms], "
            "or fix [logon.domain_realms]",
        )
    if "not found in kerberos database" in lower:
        return SignInRefused(
            ReasonCode.PRINCIPAL_UNKNOWN,
            f"the KDC has no principal {principal} ({said}): create it, or correct the "
            "UPN mapping",
        )
    if "client name mismatch" in lower or "certificate mismatch" in lower:
        return SignInRefused(
            ReasonCode.CLIENT_NAME_MISMATCH,
            f"the KDC does not accept this card's certificate for {principal} ({said}): bind "
            "the certificate to the principal on the KDC (pkinit_cert_match, an id-pkinit-san "
            "or an enterprise name)",
        )
    if ("verify own certificate" in lower or "kdc name mismatch" in lower
            or "invalid certificate" in lower or "unable to get local issuer" in lower
            or "unable to get issuer" in lower or "certificate verify failed" in lower):
        return SignInRefused(
            ReasonCode.KDC_UNTRUSTED,
            f"certificate trust failed during PKINIT ({said}): put the CAs of the card and "
            "the KDC in the NTAuth store (`rdscard ntauth add`) and their root in [logon] roots",
        )
    if "client not trusted" in lower:
        return SignInRefused(
            ReasonCode.PREAUTH_FAILED,
            f"the KDC does not trust the card's certificate ({said}): add its issuing CA to "
            "the KDC's pkinit_anchors/pkinit_pool",
        )
    if "preauthentication failed" in lower or "pre-authentication failed" in lower:
        return SignInRefused(
            ReasonCode.PREAUTH_FAILED,
            f"PKINIT pre-authentication failed ({said}): check that the card is in the "
            "session's reader and holds the sign-in certificate",
        )
    if fell_back:
        return SignInRefused(
            ReasonCode.PREAUTH_FAILED,
            f"PKINIT did not succeed ({said}) and kinit fell back to asking for a password: "
            "check the KDC's log for this principal, and that the card is in the session's "
            "reader",
        )
    return SignInRefused(ReasonCode.KINIT_FAILED,
                         f"kinit failed with status {returncode} ({said})")


_TRACE_RESULT: Final = re.compile(
    r"(Received error from KDC: -?\d+/.*|Preauth module pkinit \(1[67]\) \(real\) "
    r"returned: -\d+/.*)$")


def _last_trace_result(stderr: str) -> str:
    """The last KDC error or failed PKINIT step kinit's trace records, or ""."""
    found = ""
    for line in stderr.splitlines():
        match = _TRACE_RESULT.search(line)
        if match and "Additional pre-authentication required" not in match.group(1):
            found = match.group(1)
    return found[:300]


def make_logon_directory(base: Path) -> Path:
    """A fresh 0700 directory under ``base`` for one sign-in's credential cache."""
    base.mkdir(parents=True, exist_ok=True, mode=0o711)
    directory = Path(tempfile.mkdtemp(prefix="logon-", dir=base))
    os.chmod(directory, 0o700)
    return directory


def _hand_over(directory: Path, ccache: Path, uid: int | None, gid: int | None) -> None:
    """Give the signed-in account its cache: the directory and file become its own (root only)."""
    os.chmod(ccache, 0o600)
    if uid is None or os.geteuid() != 0 or uid == 0:
        return
    group = gid if gid is not None else -1
    os.chown(ccache, uid, group)
    os.chown(directory, uid, group)


def _write_pin(fd: int, pin: Secret) -> None:
    line = bytearray(pin.reveal())
    line += b"\n"
    try:
        view = memoryview(line)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            view.release()
    except BrokenPipeError:
        pass  # kinit stopped before reading: its exit status and message say why
    finally:
        line[:] = bytes(len(line))


def run_pkinit(
    principal: str,
    pin: Secret,
    settings: KdcSettings,
    *,
    ccache_base: Path,
    anchors: Sequence[Path] = (),
    enterprise: bool = False,
    realm: str | None = None,
    pcsc_socket: str | None = None,
    uid: int | None = None,
    gid: int | None = None,
    base_env: Mapping[str, str] | None = None,
    card_roots: Sequence[x509.Certificate] = (),
    kdc_issuers: Sequence[x509.Certificate] | None = None,
) -> PkinitResult:
    """Get a TGT for ``principal`` with the card behind ``pcsc_socket``; wipes ``pin``.

    ``card_roots``: roots read from the card, extra KDC anchors of this kinit
    only; the TGT must then pass :func:`~rdscard.logon.card_roots.validate_tgt`
    (as every TGT must with ``[logon.kdc] validate``).
    ``kdc_issuers`` (the NTAuth CAs): kinit reaches the realm through a
    relay that shows the KDC's certificate (:mod:`rdscard.logon.kdc_relay`),
    whose issuing CA must be one of them.

    Raises :class:`SignInRefused` with the cause (wrong PIN, KDC unreachable,
    name mismatch...) and removes the logon directory when it fails.
    """
    if not card_roots:
        return _run_pkinit(principal, pin, settings, ccache_base=ccache_base, anchors=anchors,
                           enterprise=enterprise, realm=realm, pcsc_socket=pcsc_socket,
                           uid=uid, gid=gid, base_env=base_env, kdc_issuers=kdc_issuers,
                           validate=settings.validate)
    try:
        with anchor_file(ccache_base, card_roots) as extra:
            return _run_pkinit(principal, pin, settings, ccache_base=ccache_base,
                               anchors=(*anchors, extra), enterprise=enterprise, realm=realm,
                               pcsc_socket=pcsc_socket, uid=uid, gid=gid, base_env=base_env,
                               kdc_issuers=kdc_issuers, validate=True)
    finally:
        pin.wipe()


def _run_pkinit(
    principal: str,
    pin: Secret,
    settings: KdcSettings,
    *,
    ccache_base: Path,
    anchors: Sequence[Path],
    enterprise: bool,
    realm: str | None,
    pcsc_socket: str | None,
    uid: int | None,
    gid: int | None,
    base_env: Mapping[str, str] | None,
    kdc_issuers: Sequence[x509.Certificate] | None = None,
    validate: bool = False,
) -> PkinitResult:
    started = time.monotonic()
    relay: KdcRelay | None = None
    try:
        directory = make_logon_directory(ccache_base)
        ccache = directory / CCACHE_NAME
        realm_config: Path | None = None
        if enterprise and realm:
            realm_config = directory / "krb5-realm.conf"
            realm_config.write_text(f"[libdefaults]\n    default_realm = {realm}\n")
        command = build_command(
            principal, settings, ccname=f"FILE:{ccache}", home=directory, anchors=anchors,
            enterprise=enterprise, realm=realm, pcsc_socket=pcsc_socket,
            realm_config=realm_config, base_env=base_env,
        )
        kdc_realm = realm or principal.rpartition("@")[2]
        try:
            if kdc_issuers is not None:
                relay, command = _relayed(command, directory, kdc_realm, settings.timeout)
            read_end, write_end = os.pipe()
            try:
                try:
                    process = subprocess.Popen(
                        command.argv, stdin=read_end, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, env=command.env, cwd=directory, close_fds=True,
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise SignInRefused(
                        ReasonCode.KINIT_FAILED,
                        f"cannot run {settings.kinit} ({exc.strerror}): install MIT Kerberos "
                        "(krb5-user, krb5-pkinit) or set [logon.kdc] kinit",
                    ) from None
                finally:
                    os.close(read_end)
                _write_pin(write_end, pin)
            finally:
                pin.wipe()
                os.close(write_end)
            try:
                out, err = process.communicate(timeout=settings.timeout)
            except subprocess.TimeoutExpired:
                _kill(process)
                raise SignInRefused(
                    ReasonCode.KINIT_TIMEOUT,
                    f"kinit did not finish within {settings.timeout:g} s: check the KDC and the "
                    "card reader, or raise [logon.kdc] timeout",
                ) from None
            stderr = err[:MAX_OUTPUT].decode("utf-8", "replace")
            del out
            if process.returncode != 0:
                # The trace says why; kinit's trace never holds the PIN (it is read by
                # the prompter, which the trace does not record).
                log.debug("kinit for %s failed; the end of its trace:\n%s", principal,
                          "\n".join(stderr.splitlines()[-TRACE_LINES_LOGGED:]))
                raise explain_failure(stderr, principal, process.returncode)
            try:
                cache = read_ccache(ccache)
            except (OSError, ProtocolError) as exc:
                raise SignInRefused(ReasonCode.KINIT_FAILED,
                                    f"kinit succeeded but its credential cache is unusable ({exc})"
                                    ) from None
            tgt = cache.tgt()
            if tgt is None:
                raise SignInRefused(ReasonCode.KINIT_FAILED,
                                    "kinit succeeded but left no ticket-granting ticket")
            if relay is not None and kdc_issuers is not None:
                check_kdc_issuer(list(relay.replies), kdc_issuers, kdc_realm)
            if validate:
                validate_tgt(f"FILE:{ccache}", str(cache.default_principal), settings,
                             command.env)
        except SignInRefused:  # nothing of a refused sign-in stays behind
            shutil.rmtree(directory, ignore_errors=True)
            raise
        _hand_over(directory, ccache, uid, gid)
        return PkinitResult(principal=str(cache.default_principal), ccache=ccache,
                            ccname=f"FILE:{ccache}", expires=tgt.expires,
                            seconds=time.monotonic() - started)
    finally:
        pin.wipe()
        if relay is not None:
            relay.stop()


def _relayed(command: KinitCommand, directory: Path, realm: str, timeout: float
             ) -> tuple[KdcRelay, KinitCommand]:
    """A started relay to ``realm``'s KDCs and the command that reaches them through it."""
    configs = [Path(p) for p in command.env["KRB5_CONFIG"].split(":") if p]
    kdcs = realm_kdcs(configs, realm)
    if not kdcs:
        raise SignInRefused(
            ReasonCode.KDC_UNKNOWN,
            f"krb5.conf lists no KDC of realm {realm} ([realms] {realm} kdc): the logon "
            "service checks the KDC certificate's issuing CA against NTAuth and reaches the "
            "realm through the KDCs listed there")
    relay = KdcRelay(kdcs, timeout=timeout).start()
    path = directory / "krb5-relay.conf"
    path.write_text(overlay(realm, relay.port))
    env = dict(command.env, KRB5_CONFIG=f"{path}:{command.env['KRB5_CONFIG']}")
    return relay, KinitCommand(argv=command.argv, env=env)


def read_ccache(path: Path) -> Ccache:
    """Parse a ccache file (at most 4 MiB)."""
    with path.open("rb") as f:
        data = f.read(MAX_CCACHE + 1)
    return Ccache.decode(data)


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def make_runner(
    config: LogonConfig,
    state_dir: Path,
    *,
    pcsc_socket: str | None,
    uid: int | None = None,
    gid: int | None = None,
    ccache_base: Path | None = None,
) -> PkinitRunner:
    """The PKINIT step of :class:`~rdscard.logon.service.LogonService` for one session.

    Credential caches go to ``ccache_base`` (default ``STATE/ccache``); the
    KDC anchors are read now (:func:`kdc_anchors`).
    """
    anchors = kdc_anchors(config, state_dir)
    issuers = NtAuthStore(config.ntauth_directory(state_dir)).certificates()
    base = ccache_base if ccache_base is not None else Path(state_dir) / "ccache"

    def runner(mapping: AccountMapping, pin: Secret,
               card_roots: Sequence[x509.Certificate] = ()) -> PkinitResult:
        principal = mapping.upn if mapping.enterprise and mapping.upn else mapping.principal
        if principal is None:
            pin.wipe()
            raise SignInRefused(ReasonCode.KDC_UNKNOWN,
                                "no Kerberos principal for this sign-in: use kerberos mode "
                                "with a realm in [logon.domain_realms]")
        return run_pkinit(principal, pin, config.kdc, ccache_base=base, anchors=anchors,
                          enterprise=mapping.enterprise, realm=mapping.realm,
                          pcsc_socket=pcsc_socket, uid=uid, gid=gid, card_roots=card_roots,
                          kdc_issuers=issuers)

    return runner
