"""``rdscard card``: create, insert and inspect virtual PIV cards; provision real ones.

``create`` provisions a card for a user of a test PKI: a new virtual card
(state file, in-process) or, with ``--reader``, the card in a PC/SC reader,
using the same PIV commands. ``insert`` connects a virtual card to a vpcd
reader until interrupted. ``status`` shows certificates and the PIN counter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import signal
import sys
from pathlib import Path
from typing import Any

from rdscard.errors import ConfigError
from rdscard.pki.ca import RealmPki, check_user_name
from rdscard.pki.inspect import summarize
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import SYMMETRIC_KEY_LENGTHS, Algorithm, KeyRef
from rdscard.pki.provision import (
    DEFAULT_PIN,
    DEFAULT_PUK,
    KEY_TYPES,
    CardStatus,
    Credentials,
    ProvisionOptions,
    provision,
    read_status,
)
from rdscard.pki.transport import InProcessTransport, PcscTransport
from rdscard.testbed.ports import is_listening

SLOT_NAMES = {"9a": KeyRef.AUTHENTICATION, "9c": KeyRef.DIGITAL_SIGNATURE,
              "9d": KeyRef.KEY_MANAGEMENT, "9e": KeyRef.CARD_AUTHENTICATION}
MANAGEMENT_ALGORITHMS = {"3des": Algorithm.TDES, "aes128": Algorithm.AES_128,
                         "aes192": Algorithm.AES_192, "aes256": Algorithm.AES_256}
DEFAULT_VPCD = "127.0.0.1:35963"


def register(subparsers: Any) -> None:
    """Add the ``card`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "card", help="virtual PIV cards: create, insert into vpcd, status",
        description="Create and provision PIV smart cards (virtual or in a PC/SC reader).",
    )
    sub = parser.add_subparsers(dest="card_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="provision a card for a user of a test PKI")
    create.add_argument("--pki", type=Path, required=True, help="PKI directory")
    create.add_argument("--user", required=True)
    target = create.add_mutually_exclusive_group(required=True)
    target.add_argument("--state", type=Path, help="new virtual card state file")
    target.add_argument("--reader", help="provision the card in this PC/SC reader instead")
    _pin_options(create, "PIN to set", "pin")
    _pin_options(create, "PUK to set", "puk")
    create.add_argument("--key-type", choices=sorted(KEY_TYPES), default="rsa2048")
    create.add_argument("--slots", default="9a,9d",
                        help="key slots to fill, comma-separated from 9a,9c,9d,9e (default 9a,9d)")
    create.add_argument("--serial", type=lambda s: int(s, 0), help="virtual card serial number")
    create.add_argument("--management-key-file", type=Path,
                        help="file with the new management key in hex (default: leave it)")
    create.add_argument("--management-algorithm", choices=sorted(MANAGEMENT_ALGORITHMS),
                        default="3des")
    create.add_argument("--current-pin-file", type=Path,
                        help="(--reader) the card's current PIN (default 123456)")
    create.add_argument("--current-puk-file", type=Path,
                        help="(--reader) the card's current PUK (default 12345678)")
    create.add_argument("--current-management-key-file", type=Path,
                        help="(--reader) the card's current 3DES management key in hex "
                             "(default: the factory key)")
    create.add_argument("--no-upn", action="store_true", help="certificates without UPN")
    create.add_argument("--no-pkinit-san", action="store_true", help="no id-pkinit-san")
    create.add_argument("--expired", action="store_true", help="expired certificates")
    create.add_argument("--untrusted", action="store_true",
                        help="certificates from a CA outside the PKI")
    create.add_argument("--force", action="store_true", help="overwrite an existing state file")
    create.set_defaults(handler=_create)

    insert = sub.add_parser("insert", help="insert a virtual card into a vpcd reader")
    insert.add_argument("--state", type=Path, required=True)
    insert.add_argument("--vpcd", default=DEFAULT_VPCD, metavar="HOST:PORT",
                        help=f"vpcd reader address (default {DEFAULT_VPCD})")
    insert.set_defaults(handler=_insert)

    status = sub.add_parser("status", help="certificates, slots and PIN tries of a card")
    where = status.add_mutually_exclusive_group(required=True)
    where.add_argument("--state", type=Path)
    where.add_argument("--reader")
    status.set_defaults(handler=_status)


def _pin_options(parser: argparse.ArgumentParser, what: str, name: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", help=f"{what} (prefer --{name}-file or the prompt)")
    group.add_argument(f"--{name}-file", type=Path, help=f"file holding the {what}")
    group.add_argument(f"--ask-{name}", action="store_true", help=f"prompt for the {what}")


def _secret(args: argparse.Namespace, name: str, default: bytes | None) -> bytearray | None:
    """A PIN/PUK from --NAME, --NAME-file or a prompt; ``default`` when none is given."""
    value: str | None = getattr(args, name)
    path: Path | None = getattr(args, f"{name}_file")
    if path is not None:
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    elif getattr(args, f"ask_{name}"):
        value = getpass.getpass(f"{name.upper()}: ")
    if value is None:
        return bytearray(default) if default is not None else None
    data = bytearray(value.encode("utf-8"))
    if not 6 <= len(data) <= 8:
        raise ConfigError(f"the {name.upper()} must be 6 to 8 characters long")
    return data


def _read_file_secret(path: Path | None, default: bytes, what: str) -> bytearray:
    if path is None:
        return bytearray(default)
    try:
        return bytearray(path.read_text().strip().encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from None


def _read_hex_key(path: Path, what: str) -> bytearray:
    try:
        text = path.read_text().strip()
        return bytearray(bytes.fromhex(text))
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path}: the {what} must be written in hex") from None


def _slots(text: str) -> tuple[KeyRef, ...]:
    try:
        return tuple(SLOT_NAMES[s.strip().lower()] for s in text.split(",") if s.strip())
    except KeyError as exc:
        raise ConfigError(f"unknown slot {exc.args[0]}: use 9a, 9c, 9d or 9e") from None


def _progress(message: str) -> None:
    print(f"  {message}...", file=sys.stderr, flush=True)


def _create(args: argparse.Namespace) -> int:
    user = check_user_name(args.user)
    pki = RealmPki.load(args.pki)
    options = ProvisionOptions(
        key_type=args.key_type, slots=_slots(args.slots), pkinit_san=not args.no_pkinit_san,
        upn=not args.no_upn, expired=args.expired, untrusted=args.untrusted,
    )
    new_pin = _secret(args, "pin", None)
    new_puk = _secret(args, "puk", None)
    credentials = Credentials()
    if args.management_key_file is not None:
        algorithm = MANAGEMENT_ALGORITHMS[args.management_algorithm]
        key = _read_hex_key(args.management_key_file, "management key")
        if len(key) != SYMMETRIC_KEY_LENGTHS[algorithm]:
            raise ConfigError(f"a {args.management_algorithm} management key is "
                              f"{SYMMETRIC_KEY_LENGTHS[algorithm]} bytes")
        credentials.new_management_key = key
        credentials.new_management_algorithm = algorithm
    try:
        if args.state is not None:
            return _create_virtual(args, pki, user, options, credentials, new_pin, new_puk)
        credentials.pin = _read_file_secret(args.current_pin_file, DEFAULT_PIN, "PIN")
        credentials.puk = _read_file_secret(args.current_puk_file, DEFAULT_PUK, "PUK")
        if args.current_management_key_file is not None:
            credentials.management_key = _read_hex_key(args.current_management_key_file,
                                                       "management key")
        credentials.new_pin, credentials.new_puk = new_pin, new_puk
        print(f"provisioning the card in {args.reader} for {user}", file=sys.stderr)
        with PcscTransport(args.reader) as transport:
            result = provision(PivClient(transport), pki, user, credentials, options,
                               progress=_progress)
    finally:
        credentials.wipe()
        for buf in (new_pin, new_puk):
            if buf is not None:
                buf[:] = bytes(len(buf))
    for slot, cert in result.certificates.items():
        print(f"slot {slot:02X}: {cert.subject.rfc4514_string()}")
    return 0


def _create_virtual(args: argparse.Namespace, pki: RealmPki, user: str,
                    options: ProvisionOptions, credentials: Credentials,
                    new_pin: bytearray | None, new_puk: bytearray | None) -> int:
    from rdscard.card.piv import VirtualPivCard
    from rdscard.card.state import CardState

    if args.state.exists() and not args.force:
        raise ConfigError(f"{args.state} exists: choose another file or pass --force")
    serial = args.serial if args.serial is not None else int.from_bytes(os.urandom(4), "big")
    # The state starts with the final PIN and PUK: nothing to change afterwards.
    state = CardState.new(serial=serial, pin=bytes(new_pin or DEFAULT_PIN),
                          puk=bytes(new_puk or DEFAULT_PUK))
    card = VirtualPivCard(state)
    print(f"creating a virtual card for {user} in {args.state}", file=sys.stderr)
    result = provision(PivClient(InProcessTransport(card)), pki, user, credentials, options,
                       progress=_progress)
    args.state.parent.mkdir(parents=True, exist_ok=True)
    state.save(args.state)
    for slot, cert in result.certificates.items():
        print(f"slot {slot:02X}: {cert.subject.rfc4514_string()}")
    if new_pin is None:
        print("the PIN is the default test PIN (set one with --pin-file or --ask-pin)",
              file=sys.stderr)
    return 0


def _parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--vpcd {text!r}: write it as HOST:PORT, e.g. {DEFAULT_VPCD}")
    return host, int(port)


def _insert(args: argparse.Namespace) -> int:
    from rdscard.card.piv import VirtualPivCard
    from rdscard.card.state import CardState
    from rdscard.card.vpcd import serve_card_to_vpcd

    host, port = _parse_hostport(args.vpcd)
    if not args.state.exists():
        raise ConfigError(f"{args.state} does not exist: create it with 'rdscard card create'")
    state = CardState.load(args.state)
    path: Path = args.state

    def save(*_ignored: object) -> None:
        state.save(path)

    card = VirtualPivCard(state, on_change=save)
    # A probe connection would look like a card insertion to vpcd: look, don't touch.
    if host in ("127.0.0.1", "localhost", "::1") and not is_listening(port):
        raise ConfigError(
            f"cannot reach vpcd at {host}:{port}: is pcscd running with the vpcd driver "
            "(package vsmartcard-vpcd)?"
        )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"card inserted into the vpcd reader at {host}:{port}; Ctrl-C removes it",
              file=sys.stderr, flush=True)
        await serve_card_to_vpcd(card, host, port, stop=stop, retry=True)

    asyncio.run(run())
    with contextlib.suppress(Exception):
        save()
    print("card removed", file=sys.stderr)
    return 0


def _print_status(status: CardStatus) -> None:
    if status.chuid is not None:
        print(f"CHUID GUID: {status.chuid.guid.hex()}  expires {status.chuid.expiration}")
    pin = status.pin
    if pin.verified:
        print("PIN: verified in this session")
    elif pin.blocked:
        print("PIN: BLOCKED (unblock it with the PUK)")
    else:
        print(f"PIN: {pin.tries_left} tries left")
    for slot in SLOT_NAMES.values():
        cert = status.certificates.get(slot)
        if cert is None:
            print(f"slot {slot:02X}: empty")
            continue
        print(f"slot {slot:02X} ({slot.name.lower()}):")
        for line in summarize(cert).lines():
            print(f"  {line}")


def _status(args: argparse.Namespace) -> int:
    if args.state is not None:
        from rdscard.card.piv import VirtualPivCard
        from rdscard.card.state import CardState

        if not args.state.exists():
            raise ConfigError(f"{args.state} does not exist: create it with 'rdscard card create'")
        card = VirtualPivCard(CardState.load(args.state))
        _print_status(read_status(PivClient(InProcessTransport(card))))
        return 0
    with PcscTransport(args.reader) as transport:
        print(f"reader: {transport.reader}")
        _print_status(read_status(PivClient(transport)))
    return 0

