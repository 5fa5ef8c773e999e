"""``rdscard ntauth``: the enterprise NTAuth store (CAs trusted to issue sign-in certificates).

::

    rdscard ntauth add CA.pem      # a CA certificate (PEM, PEM bundle or DER)
    rdscard ntauth list
    rdscard ntauth remove ID       # fingerprint prefix, subject or common name
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rdscard.config import load_config
from rdscard.errors import ConfigError
from rdscard.logon.ntauth import (
    MAX_CERT_FILE,
    NtAuthEntry,
    NtAuthStore,
    is_ca_certificate,
    parse_certificates,
)


def register(subparsers: Any) -> None:
    """Add the ``ntauth`` subcommand and its verbs."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ntauth",
        help="add, list and remove the CAs trusted for smart card sign-in (NTAuth)",
        description=(
            "The enterprise NTAuth store: a smart card sign-in is accepted only when the "
            "certificate's issuing CA is in it. It lives in STATE/ntauth unless [logon] "
            "ntauth_dir says otherwise."
        ),
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument("--state-dir", metavar="DIR", help="the server's state directory")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="trust a CA to issue sign-in certificates")
    add.add_argument("certificate", type=Path, metavar="CERT",
                     help="CA certificate file (PEM, PEM bundle or DER)")
    add.set_defaults(handler=run_add)
    verbs.add_parser("list", help="list the trusted CAs").set_defaults(handler=run_list)
    remove = verbs.add_parser("remove", help="stop trusting a CA")
    remove.add_argument("ident", metavar="ID",
                        help="fingerprint prefix (6+ hex digits), subject or common name")
    remove.set_defaults(handler=run_remove)


def store_for(args: argparse.Namespace) -> NtAuthStore:
    """The store the configuration (and ``--state-dir``) points at."""
    config = load_config(args.config).with_overrides(state_dir=args.state_dir)
    return NtAuthStore(config.logon.ntauth_directory(config.server.state_dir))


def describe(entry: NtAuthEntry) -> list[str]:
    return [
        f"fingerprint: {entry.fingerprint}",
        f"  subject:   {entry.subject}",
        f"  issuer:    {entry.issuer}",
        f"  serial:    {entry.serial:X}",
        f"  valid:     {entry.not_before:%Y-%m-%d %H:%M} .. {entry.not_after:%Y-%m-%d %H:%M} UTC",
    ]


def run_add(args: argparse.Namespace) -> int:
    """Handler of ``rdscard ntauth add``: every certificate of the file must be a CA."""
    path: Path = args.certificate
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CERT_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CERT_FILE:
        raise ConfigError(f"{path} is larger than {MAX_CERT_FILE} bytes")
    certs = parse_certificates(data, str(path))
    store = store_for(args)
    for cert in certs:
        if not is_ca_certificate(cert):
            store.add(cert)  # raises the explanation; nothing of this file was added
    for cert in certs:
        entry, added = store.add(cert)
        print(("added " if added else "already present ") + entry.subject)
        print("\n".join(describe(entry)))
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Handler of ``rdscard ntauth list``."""
    store = store_for(args)
    entries = store.entries()
    if not entries:
        print(f"the NTAuth store ({store.directory}) is empty: add the issuing CA with "
              "`rdscard ntauth add CA.pem`")
        return 0
    for entry in entries:
        print("\n".join(describe(entry)))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Handler of ``rdscard ntauth remove``."""
    entry = store_for(args).remove(args.ident)
    print(f"removed {entry.subject} ({entry.fingerprint})")
    return 0
