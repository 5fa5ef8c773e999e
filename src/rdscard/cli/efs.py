"""``rdscard efs``: card-bound encrypted folders (enroll, status, recover, rekey, lock).

The logon service opens an enrolled folder at sign-in with the user's
redirected card; these commands are the administrator's (root: they read
the root-only envelopes and call the fscrypt ioctls). See docs/efs.md.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.config import Config, load_config
from rdscard.efs import vault
from rdscard.efs.cms import KeyOperator
from rdscard.efs.operators import KEY_MANAGEMENT, CardKeyOperator
from rdscard.efs.store import EnvelopeStore
from rdscard.errors import ConfigError, RdscardError
from rdscard.pki.piv_client import PivClient, PivError
from rdscard.pki.transport import InProcessTransport, PcscTransport
from rdscard.server.control_client import query


def register(subparsers: Any) -> None:
    """Add the ``efs`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "efs", help="encrypted folders opened with the smart card at sign-in",
        description="Card-bound file encryption: fscrypt folders whose key the logon "
                    "service opens with the user's smart card (PIV slot 9D).")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument("--state-dir", metavar="DIR", help="the server's state directory")
    sub = parser.add_subparsers(dest="efs_command", metavar="ACTION", required=True)

    enroll = sub.add_parser("enroll", help="encrypt an account's empty folder for its card")
    enroll.add_argument("--user", required=True, metavar="ACCOUNT")
    enroll.add_argument("--dir", required=True, type=Path, metavar="PATH",
                        help="the account's empty directory, on a filesystem with encryption")
    _card_source(enroll, "the user's key-management certificate (9D)", "")
    enroll.add_argument("--recovery-cert", type=Path, action="append", default=[],
                        metavar="CERT", help="a recovery agent's certificate (repeatable)")
    enroll.set_defaults(handler=_enroll)

    status = sub.add_parser("status", help="enrolled accounts, folders, locked or unlocked")
    status.set_defaults(handler=_status)

    recover = sub.add_parser("recover", help="the recovery agent unlocks a folder")
    recover.add_argument("--user", required=True, metavar="ACCOUNT")
    recover.add_argument("--recovery-key", required=True, type=Path, metavar="KEY",
                         help="the recovery agent's private key (PEM)")
    recover.add_argument("--key-password-file", type=Path, metavar="FILE")
    recover.set_defaults(handler=_recover)

    rekey = sub.add_parser("rekey", help="seal the folder's key for a new card or certificate")
    rekey.add_argument("--user", required=True, metavar="ACCOUNT")
    old = rekey.add_mutually_exclusive_group(required=True)
    old.add_argument("--recovery-key", type=Path, metavar="KEY",
                     help="open with the recovery agent's private key (PEM)")
    old.add_argument("--old-reader", metavar="READER", help="open with the old card here")
    old.add_argument("--old-card-state", type=Path, metavar="FILE",
                     help="open with this virtual card")
    rekey.add_argument("--pin-file", type=Path, help="the old card's PIN (default: prompt)")
    rekey.add_argument("--key-password-file", type=Path, metavar="FILE")
    _card_source(rekey, "the new key-management certificate (9D)", "new-", required=False)
    rekey.add_argument("--recovery-cert", type=Path, action="append", default=None,
                       metavar="CERT", help="replace the recovery agents (repeatable)")
    rekey.set_defaults(handler=_rekey)

    lock = sub.add_parser("lock", help="remove an account's key now (lock its folder)")
    lock.add_argument("--user", required=True, metavar="ACCOUNT")
    lock.add_argument("--force", action="store_true",
                      help="lock even while the account is signed in (its programs lose the "
                           "folder's files; the running server does not know)")
    lock.set_defaults(handler=_lock)


def _card_source(parser: argparse.ArgumentParser, what: str, prefix: str, *,
                 required: bool = True) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(f"--{prefix}cert", type=Path, metavar="FILE",
                       help=f"{what} from a PEM or DER file")
    group.add_argument(f"--{prefix}reader", metavar="READER",
                       help=f"{what} read from the card in this PC/SC reader")
    group.add_argument(f"--{prefix}card-state", type=Path, metavar="FILE",
                       help=f"{what} read from this virtual card")


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config).with_overrides(state_dir=args.state_dir)


def _store(args: argparse.Namespace) -> EnvelopeStore:
    config = _config(args)
    return EnvelopeStore(config.efs.directory(config.server.state_dir))


def load_certificate(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise ConfigError(f"{path} is not an X.509 certificate (PEM or DER)") from None


@contextlib.contextmanager
def _card(reader: str | None, state: Path | None) -> Iterator[PivClient]:
    if state is not None:
        yield PivClient(InProcessTransport(VirtualPivCard(CardState.load(state))))
        return
    with PcscTransport(reader) as transport:
        yield PivClient(transport)


def _card_certificate(client: PivClient) -> x509.Certificate:
    try:
        client.select()
        cert = client.read_certificate(KEY_MANAGEMENT)
    except PivError as exc:
        raise RdscardError(f"the card cannot be read: {exc}") from None
    if cert is None:
        raise RdscardError("the card has no key-management certificate (PIV slot 9D): "
                           "provision one (rdscard card create --slots 9a,9d) first")
    return cert


def _new_certificate(args: argparse.Namespace, prefix: str) -> x509.Certificate | None:
    cert: Path | None = getattr(args, f"{prefix}cert")
    reader: str | None = getattr(args, f"{prefix}reader")
    state: Path | None = getattr(args, f"{prefix}card_state")
    if cert is not None:
        return load_certificate(cert)
    if reader is None and state is None:
        return None
    with _card(reader, state) as client:
        return _card_certificate(client)


def _enroll(args: argparse.Namespace) -> int:
    card = _new_certificate(args, "")
    assert card is not None
    recovery = [load_certificate(p) for p in args.recovery_cert]
    if not recovery:
        print("warning: no recovery agent (--recovery-cert): a lost card means lost files")
    enrollment = vault.enroll(_store(args), args.user, args.dir, card, recovery)
    print(f"enrolled {enrollment.account}: {enrollment.directory} is encrypted (key "
          f"{enrollment.key_identifier.hex()}) for {card.subject.rfc4514_string()} and "
          f"{len(recovery)} recovery agent(s); it opens at the next sign-in with the card")
    return 0


def _status(args: argparse.Namespace) -> int:
    rows = vault.status(_store(args))
    print(f"{'ACCOUNT':<20} {'STATE':<28} DIRECTORY")
    for row in rows:
        print(f"{row.account:<20} {row.state:<28} {row.directory}")
    return 0


def _password(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _recover(args: argparse.Namespace) -> int:
    enrollment = vault.recover(_store(args), args.user, _read_key(args.recovery_key),
                               _password(args.key_password_file))
    print(f"unlocked {enrollment.directory} of {enrollment.account} with the recovery key; "
          f"`rdscard efs lock --user {enrollment.account}` locks it again")
    return 0


def _rekey(args: argparse.Namespace) -> int:
    store = _store(args)
    enrollment = vault.require(store, args.user)
    new_card = _new_certificate(args, "new_")
    recovery = [load_certificate(p) for p in args.recovery_cert] \
        if args.recovery_cert is not None else None
    if new_card is None and recovery is None:
        raise ConfigError("give the new certificate (--new-cert, --new-reader, "
                          "--new-card-state) or new recovery agents (--recovery-cert)")
    if args.recovery_key is not None:
        opener: tuple[x509.Certificate, KeyOperator] = vault.recovery_operator(
            enrollment, _read_key(args.recovery_key), _password(args.key_password_file))
        updated = vault.rekey(store, args.user, opener, new_card, recovery)
    else:
        with _card(args.old_reader, args.old_card_state) as client:
            cert = _card_certificate(client)
            pin = bytearray(args.pin_file.read_bytes().strip() if args.pin_file
                            else getpass.getpass("PIN of the old card: ").encode())
            try:
                client.verify_pin(pin)
            finally:
                pin[:] = bytes(len(pin))
            public_key = cert.public_key()
            operator = CardKeyOperator(client, public_key)  # type: ignore[arg-type]
            updated = vault.rekey(store, args.user, (cert, operator), new_card, recovery)
    print(f"rekeyed {updated.account}: the folder's key is sealed for "
          f"{updated.card_certificate.subject.rfc4514_string()} and "
          f"{len(updated.recovery_certificates)} recovery agent(s); the files are unchanged")
    return 0


#: Session phases in which the running server holds the account's key (see
#: rdscard.efs.keyring: a session at the logon or lock screen holds none).
HOLDING_PHASES = frozenset({"signed in", "desktop"})


def live_sessions(state_dir: Path, account: str) -> list[int]:
    """The sessions of ``account`` on the server running with ``state_dir`` (asked on its
    control socket) that hold its encrypted folder open; none when no server runs there."""
    try:
        reply = query(state_dir, {"command": "list"})
    except (FileNotFoundError, ConnectionRefusedError):
        return []
    except PermissionError:
        raise RdscardError("the control socket is for root: run this as root") from None
    except (OSError, ValueError) as exc:
        raise RdscardError(f"the running server's control socket does not answer ({exc}): "
                           "try again, or lock anyway with --force") from None
    return [int(s["session_id"]) for s in reply.get("sessions", [])
            if s.get("account") == account and s.get("phase") in HOLDING_PHASES
            and s.get("state") != "ended"]


def _lock(args: argparse.Namespace) -> int:
    if not args.force:
        sessions = live_sessions(_config(args).server.state_dir, args.user)
        if sessions:
            ids = ", ".join(str(n) for n in sessions)
            raise RdscardError(
                f"{args.user} is signed in (session {ids}): the server locks the folder at "
                f"the account's last logoff. Log off first (rdscard session logoff ID), or "
                f"lock anyway with --force (the session's programs then lose the folder's "
                f"files until the account signs in again)")
    removal = vault.lock(_store(args), args.user)
    if not removal.removed:
        print(f"the folder of {args.user} was locked already")
    elif removal.files_busy:
        print(f"the folder of {args.user} locks when its open files close (run it again to "
              "finish)")
    else:
        print(f"locked the folder of {args.user}")
    return 0
