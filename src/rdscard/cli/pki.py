"""``rdscard pki``: create a test PKI for a realm and issue certificates from it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rdscard.errors import ConfigError
from rdscard.pki.ca import CertProfile, RealmPki, generate_key, load_certificate, pem, write_public
from rdscard.pki.der import is_sid
from rdscard.pki.inspect import summarize


def register(subparsers: Any) -> None:
    """Add the ``pki`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "pki", help="test PKI: root and issuing CA, KDC and user certificates",
        description="Create and use a test PKI for a Kerberos realm (smart card logon).",
    )
    sub = parser.add_subparsers(dest="pki_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="create a PKI directory for a realm")
    create.add_argument("--dir", type=Path, required=True, help="PKI directory to create")
    create.add_argument("--realm", required=True, help="Kerberos realm, e.g. EXAMPLE.TEST")
    create.add_argument("--domain", required=True, help="UPN domain, e.g. example.test")
    create.add_argument("--user", action="append", default=[],
                        help="also issue a software-key authentication certificate (repeatable)")
    create.add_argument("--force", action="store_true", help="replace an existing PKI")
    create.set_defaults(handler=_create)

    issue = sub.add_parser("issue", help="issue a user certificate for a public key")
    issue.add_argument("--dir", type=Path, required=True, help="PKI directory")
    issue.add_argument("--user", required=True)
    issue.add_argument("--profile", choices=[p.value for p in CertProfile], default="auth",
                       help="auth (9A), sign (9C), keymgmt (9D), cardauth (9E)")
    issue.add_argument("--public-key", type=Path,
                       help="PEM public key to certify (default: generate a software key "
                            "and store it next to the certificate)")
    issue.add_argument("--key-type", choices=["rsa2048", "p256"], default="rsa2048")
    issue.add_argument("--out", type=Path, help="certificate file (default: users/USER/...)")
    issue.add_argument("--no-upn", action="store_true", help="leave out the UPN (negative test)")
    issue.add_argument("--pkinit-san", action="store_true", help="add id-pkinit-san user@REALM")
    issue.add_argument("--sid", help="add the SID extension (szOID_NTDS_CA_SECURITY_EXT, "
                       "KB5014754) naming the account's objectSid, S-1-5-21-...")
    issue.add_argument("--expired", action="store_true", help="validity ended (negative test)")
    issue.add_argument("--untrusted", action="store_true",
                       help="sign with a CA outside the PKI (negative test)")
    issue.set_defaults(handler=_issue)

    show = sub.add_parser("show", help="print the PKI's certificates")
    show.add_argument("--dir", type=Path, required=True)
    show.set_defaults(handler=_show)


def _print_cert(title: str, path: Path) -> None:
    print(f"{title} ({path}):")
    for line in summarize(load_certificate(path)).lines():
        print(f"  {line}")


def _create(args: argparse.Namespace) -> int:
    pki = RealmPki.create(args.dir, args.realm, args.domain, overwrite=args.force)
    print(f"created the test PKI for {pki.realm} in {pki.directory}", file=sys.stderr)
    for user in args.user:
        print(f"issuing a software-key certificate for {user}", file=sys.stderr)
        pki.create_software_user(user)
    print(f"root CA:     {pki.layout.root_cert}")
    print(f"issuing CA:  {pki.layout.issuing_cert}")
    print(f"KDC:         {pki.layout.kdc_cert} (key {pki.layout.kdc_key})")
    for user in args.user:
        print(f"user {user}: {pki.layout.user_cert(user, CertProfile.AUTHENTICATION)}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    pki = RealmPki.load(args.dir)
    profile = CertProfile(args.profile)
    if args.sid is not None and not is_sid(args.sid):
        raise ConfigError(f"--sid {args.sid!r}: give the account's objectSid as S-1-5-21-... "
                          "(samba-tool user show NAME --attributes=objectSid)")
    key = None
    if args.public_key is not None:
        try:
            public = serialization.load_pem_public_key(args.public_key.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the PEM public key {args.public_key}: {exc}") from None
        if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise ConfigError(f"{args.public_key}: only RSA and ECC public keys can be certified")
    else:
        key = generate_key(args.key_type)
        public = key.public_key()
    cert = pki.issue_user_certificate(
        args.user, public, profile=profile, upn=not args.no_upn, pkinit_san=args.pkinit_san,
        expired=args.expired, untrusted=args.untrusted, sid=args.sid,
    )
    if args.out is not None:
        write_public(args.out, pem(cert))
        path = args.out
        if key is not None:
            from rdscard.pki.ca import key_pem, write_private

            write_private(args.out.with_suffix(".key"), key_pem(key))
    else:
        path = pki.save_user_certificate(args.user, profile, cert, key)
    _print_cert(f"{args.user} {profile.value}", path)
    return 0


def _show(args: argparse.Namespace) -> int:
    pki = RealmPki.load(args.dir)
    print(f"realm {pki.realm}, UPN domain {pki.domain}")
    _print_cert("root CA", pki.layout.root_cert)
    _print_cert("issuing CA", pki.layout.issuing_cert)
    _print_cert("KDC", pki.layout.kdc_cert)
    for user in pki.users():
        for profile in CertProfile:
            path = pki.layout.user_cert(user, profile)
            if path.exists():
                _print_cert(f"{user} {profile.value}", path)
    return 0
