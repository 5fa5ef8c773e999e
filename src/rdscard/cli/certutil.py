"""``rdscard certutil``: the host's enterprise NTAuth store with Windows' certutil spellings.

The verbs and arguments are those of Windows' ``certutil.exe`` (learn.microsoft.com,
"certutil"), limited to the enterprise NTAuth store and its directory copy::

    rdscard certutil -addstore -enterprise NTAuth CA.pem     # = rdscard ntauth add
    rdscard certutil -viewstore -enterprise NTAuth           # = rdscard ntauth list
    rdscard certutil -delstore -enterprise NTAuth CERTID     # = rdscard ntauth remove
    rdscard certutil -dspublish [-f] CA.pem NTAuthCA [DN]    # add the CA in the directory
    rdscard certutil -pulse                                  # refresh the store from it

The last two need a ``[directory]`` section (docs/configuration.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final

from rdscard.cli.ntauth import describe, run_add, store_for
from rdscard.config import Config, load_config
from rdscard.errors import ConfigError

VERBS: Final = ("addstore", "viewstore", "delstore", "dspublish", "pulse")
STORE_NAME: Final = "ntauth"

EPILOG: Final = """\
what each verb does (Windows' spelling -> rdscard):
  -addstore -enterprise NTAuth CERTFILE
        trust the CA in CERTFILE (PEM, PEM bundle or DER) to issue sign-in
        certificates on this host: `rdscard ntauth add CERTFILE`
  -viewstore -enterprise NTAuth
        list the host's NTAuth CAs, numbered, with their SHA-1 thumbprint
        ("Cert Hash(sha1)") and SHA-256 fingerprint: `rdscard ntauth list`
  -delstore -enterprise NTAuth CERTID
        stop trusting one CA; CERTID is its index in -viewstore, its SHA-1
        thumbprint, a SHA-256 fingerprint prefix, its serial number or its
        subject or common name: `rdscard ntauth remove CERTID`
  -dspublish [-f] CERTFILE NTAuthCA [DN]
        add the CA to the directory's NTAuthCertificates object
        (CN=NTAuthCertificates,CN=Public Key Services,CN=Services,
        CN=Configuration,<forest root DN>); -f creates the object when it is
        absent. DN: the forest root domain's DN (DC=example,DC=test), else
        [directory] base_dn, else the DC's RootDSE
  -pulse
        refresh the host's NTAuth store from the directory now: the
        directory's NTAuth CAs become the store; when the directory cannot
        be read, the store keeps its last copy

-dspublish and -pulse use the [directory] section of the configuration
(domain controllers, bind account, CA of their LDAPS certificates).
Exit status: 0 done, 2 an error (the message names the cause and the fix).
"""


def register(subparsers: Any) -> None:
    """Add the ``certutil`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "certutil",
        help="the NTAuth store and its directory copy, with Windows' certutil verbs",
        description=(
            "Windows' certutil verbs for the host's enterprise NTAuth store (the CAs trusted "
            "for smart card sign-in) and for the directory's NTAuthCertificates object."
        ),
        usage=("rdscard certutil [--config FILE] [--state-dir DIR]\n"
               "         (-addstore | -viewstore | -delstore) -enterprise NTAuth [ARG]\n"
               "       | -dspublish [-f] CERTFILE NTAuthCA [DN] | -pulse"),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    verbs = parser.add_mutually_exclusive_group(required=True)
    for verb in VERBS:
        verbs.add_argument(f"-{verb}", dest="verb", action="store_const", const=verb,
                           help=argparse.SUPPRESS)
    parser.add_argument("-enterprise", action="store_true",
                        help="the enterprise store (the only one there is here)")
    parser.add_argument("-f", dest="force", action="store_true",
                        help="-dspublish: create the NTAuthCertificates object when absent")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument("--state-dir", metavar="DIR", help="the server's state directory")
    parser.add_argument("arguments", nargs="*", metavar="ARG",
                        help="the verb's arguments (see below)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch one verb after checking its arguments as certutil would."""
    verb: str = args.verb
    words: list[str] = list(args.arguments)
    if verb in ("addstore", "viewstore", "delstore"):
        return _store_verb(verb, words, args)
    if args.enterprise:
        raise ConfigError(f"-{verb} takes no -enterprise")
    if verb == "dspublish":
        return _dspublish(words, args)
    if words:
        raise ConfigError(f"-pulse takes no arguments, not {' '.join(words)!r}")
    return _pulse(args)


def _store_verb(verb: str, words: list[str], args: argparse.Namespace) -> int:
    wanted = {"addstore": "CERTFILE", "viewstore": "", "delstore": "CERTID"}[verb]
    usage = f"rdscard certutil -{verb} -enterprise NTAuth {wanted}".rstrip()
    if not args.enterprise or not words or words[0].lower() != STORE_NAME:
        raise ConfigError(f"-{verb} works on the enterprise NTAuth store only: {usage}")
    rest = words[1:]
    if len(rest) != (1 if wanted else 0):
        raise ConfigError(f"-{verb}: wrong number of arguments: {usage}")
    if args.force and verb != "addstore":
        raise ConfigError(f"-{verb} takes no -f")
    if verb == "addstore":
        return run_add(argparse.Namespace(certificate=Path(rest[0]), config=args.config,
                                          state_dir=args.state_dir))
    store = store_for(args)
    if verb == "viewstore":
        entries = store.entries()
        print(f"NTAuth (enterprise, {store.directory}): {len(entries)} CAs")
        for index, entry in enumerate(entries):
            print(f"================ Certificate {index} ================")
            print(f"Cert Hash(sha1): {entry.sha1}")
            print("\n".join(describe(entry)))
        return 0
    entry = store.remove(rest[0])
    print(f"removed {entry.subject} ({entry.sha1}) from the enterprise NTAuth store")
    return 0


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config).with_overrides(state_dir=args.state_dir)
    if not config.directory.uris:
        raise ConfigError("no directory configured: give --config FILE with a [directory] "
                          'section (uris = ["ldaps://dc1.example.test"], bind_dn, '
                          "bind_password_file, ca_file); see docs/configuration.md")
    return config


def _dspublish(words: list[str], args: argparse.Namespace) -> int:
    usage = "rdscard certutil -dspublish [-f] CERTFILE NTAuthCA [DN]"
    if len(words) not in (2, 3):
        raise ConfigError(f"-dspublish: wrong number of arguments: {usage}")
    if words[1].lower() != "ntauthca":
        raise ConfigError(f"-dspublish publishes NTAuth CAs only ({words[1]!r} is not "
                          f"NTAuthCA): {usage}")
    from rdscard.directory.ntauth import DirectoryNtAuth, load_certificate

    cert = load_certificate(Path(words[0]))
    config = _config(args)
    directory = DirectoryNtAuth(config.directory, base_dn=words[2] if len(words) == 3 else "")
    dn, added = directory.publish(cert, create=args.force)
    state = "published" if added else "already published"
    print(f"{state}: {cert.subject.rfc4514_string()} in {dn}")
    if added:
        print("hosts follow it at their next refresh; `rdscard certutil -pulse` refreshes now")
    return 0


def _pulse(args: argparse.Namespace) -> int:
    from rdscard.directory.ntauth import DirectoryNtAuth, pulse
    from rdscard.logon.ntauth import NtAuthStore

    config = _config(args)
    store = NtAuthStore(config.logon.ntauth_directory(config.server.state_dir))
    result = pulse(DirectoryNtAuth(config.directory), store)
    for entry in result.added:
        print(f"added {entry.subject} ({entry.sha1})")
    for entry in result.removed:
        print(f"removed {entry.subject} ({entry.sha1})")
    print(f"NTAuth refreshed from {result.dn}: {len(result.trusted)} CAs "
          f"({len(result.added)} added, {len(result.removed)} removed)")
    return 0
