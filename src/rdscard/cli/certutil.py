"""``rdscard certutil``: the host's enterprise NTAuth store with Windows' certutil spellings.

The verbs and arguments are those of Windows' ``certutil.exe`` (learn.microsoft.com,
"certutil"), limited to the enterprise NTAuth store and its directory copy::

    rdscard certutil -addstore -enterprise NTAuth CA.pem     # = rdscard ntauth add
    rdscard certutil -viewstore -enterprise NTAuth           # = rdscard ntauth list
    rdscard certutil -delstore -enterprise NTAuth CERTID     # = rdscard ntauth remove
    rdscard certutil -viewdelstore "ldap:///CN=NTAuthCertificates,...?cACertificate?base?
        objectClass=certificationAuthority" CERTID          # remove the CA in the directory
    rdscard certutil -dspublish [-f] CA.pem NTAuthCA [DN]    # add the CA in the directory
    rdscard certutil -pulse                                  # refresh the store from it
    rdscard certutil -scinfo [--reader NAME]                 # what a sign-in would do
    rdscard certutil -scroots update [+]ROOTFILE [READER]    # roots on the card
    rdscard certutil -scroots save @OUTFILE [READER]
    rdscard certutil -scroots delete [READER]

The ``-dspublish`` and ``-pulse`` need a ``[directory]`` section
(docs/configuration.md). ``-scinfo`` reads the card through PC/SC without
the PIN (:mod:`rdscard.logon.scinfo`); ``-scroots`` writes the card's msroots
(:mod:`rdscard.cli.scroots`).
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rdscard.cli import scroots
from rdscard.cli.ntauth import describe, run_add, store_for
from rdscard.config import Config, load_config
from rdscard.errors import ConfigError

if TYPE_CHECKING:
    from rdscard.logon.scinfo import CardReport

VERBS: Final = ("addstore", "viewstore", "delstore", "viewdelstore", "dspublish", "pulse",
                "scinfo", "scroots")
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
  -viewstore "ldap:///CN=NTAuthCertificates,CN=Public Key Services,
        CN=Services,CN=Configuration,DC=example,DC=test?cACertificate?base?
        objectClass=certificationAuthority"
        list the directory's NTAuth CAs (one argument, quoted, on one line),
        numbered in the directory's order
  -viewdelstore "ldap:///CN=NTAuthCertificates,...?cACertificate?base?
        objectClass=certificationAuthority" CERTID
        remove one CA from the directory's NTAuthCertificates object; CERTID
        is its number in that list, its SHA-1 thumbprint, a SHA-256
        fingerprint prefix, its serial number or its subject or common name
        (without CERTID the list is shown: Windows shows a picker). Hosts
        stop trusting it at their next refresh; -pulse refreshes now.
        The URL's host is left out (ldap:///): the DCs are [directory] uris
  -viewdelstore -enterprise NTAuth CERTID
        the same as -delstore -enterprise NTAuth CERTID
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
  -scinfo [--reader NAME]
        read the smart card in the PC/SC reader NAME (exact name or a unique
        part of it; default: the first reader with a card) through pcscd,
        WITHOUT the PIN: show its PIV certificates (slots 9A, 9C, 9D, 9E:
        subject, issuer, serial, validity, key type, EKUs, UPN) and the PIN
        tries left, validate the sign-in certificate (slot 9A) with this
        host's configuration (NTAuth store, [logon] roots, intermediates,
        EKU, validity, crl_files), map its UPN to an account ([logon]
        accounts and domain_realms, or the directory with [directory]
        accounts = true), and end with what a sign-in with this card would
        do: "would sign in as ACCOUNT" or "would be refused: REASON-CODE
        MESSAGE" (the reason codes of the audit log). No PIN try is spent:
        the PIN, the card's proof of possession and PKINIT are not tried.
        The root CA certificates the card carries (-scroots) are listed too.
  -scroots update [+]ROOTFILE [READER]
        write the root CA certificates of ROOTFILE (PEM, DER or PKCS #7) onto
        the card in READER (default: the first reader with a card) as its
        msroots, where Windows and Yubico's minidriver keep a card's roots
        (PIV objects 5FFF11..5FFF15, a certs-only PKCS #7); +ROOTFILE adds
        them to the roots already on the card. Needs the card's management
        key (--management-key-file FILE, in hex; default: the factory key;
        --management-algorithm), not the PIN. A host with [logon.kdc]
        card_roots = true trusts them for the KDC's certificate, with the
        ticket checked against its keytab
  -scroots save @OUTFILE [READER]
        write the card's roots to OUTFILE as the card holds them (a certs-only
        PKCS #7, DER; the @ is optional); certutil -f -scroots save ...
        overwrites an existing file.
        Needs neither key nor PIN
  -scroots delete [READER]
        remove the roots from the card (management key as for update)
  -scroots view [READER]
        list the roots on the card

-dspublish, -pulse and the ldap:/// store use the [directory] section of the
configuration (domain controllers, bind account, CA of their LDAPS
certificates).
Exit status: 0 done, 2 an error (the message names the cause and the fix);
-scinfo: 0 a sign-in would succeed, 1 it would be refused (no card in the
reader included), 2 a usage or configuration error.
"""


def register(subparsers: Any) -> None:
    """Add the ``certutil`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "certutil",
        help="the NTAuth store and its directory copy, with Windows' certutil verbs",
        description=(
            "Windows' certutil verbs for the host's enterprise NTAuth store (the CAs trusted "
            "for smart card sign-in) and for the directory's NTAuthCertificates object; "
            "-scinfo: what a sign-in with the card in a reader would do, read without the PIN; "
            "-scroots: the root CA certificates the card carries."
        ),
        usage=("rdscard certutil [--config FILE] [--state-dir DIR]\n"
               "         (-addstore | -viewstore | -delstore | -viewdelstore) "
               "-enterprise NTAuth [ARG]\n"
               "       | (-viewstore | -viewdelstore) \"ldap:///CN=NTAuthCertificates,...\" "
               "[CERTID]\n"
               "       | -dspublish [-f] CERTFILE NTAuthCA [DN] | -pulse\n"
               "       | -scinfo [--reader NAME]\n"
               "       | -scroots (update [+]ROOTFILE | save @OUTFILE | delete | view) "
               "[READER]\n"
               "         [--management-key-file FILE] [--management-algorithm ALG]"),
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
                        help="-dspublish: create the NTAuthCertificates object when absent; "
                             "-scroots save: overwrite the output file")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument("--state-dir", metavar="DIR", help="the server's state directory")
    parser.add_argument("--reader", metavar="NAME",
                        help="-scinfo, -scroots: the PC/SC reader (exact name or a unique "
                             "part of it; default: the first reader with a card)")
    scroots.add_options(parser)
    parser.add_argument("arguments", nargs="*", metavar="ARG",
                        help="the verb's arguments (see below)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch one verb after checking its arguments as certutil would."""
    verb: str = args.verb
    words: list[str] = list(args.arguments)
    if args.reader is not None and verb not in ("scinfo", "scroots"):
        raise ConfigError(f"--reader is for -scinfo and -scroots, not -{verb}")
    if verb == "scroots":
        if args.enterprise:
            raise ConfigError("-scroots takes no -enterprise")
        if args.force and [w.lower() for w in words[:1]] != ["save"]:
            raise ConfigError("-scroots takes -f only with save")
        return scroots.run_scroots(words, args, reader=args.reader, overwrite=args.force)
    if verb in ("viewstore", "viewdelstore") and words and words[0][:7].lower() == "ldap://":
        if args.enterprise or args.force:
            raise ConfigError(f"-{verb} with an ldap:/// store takes no -enterprise or -f")
        from rdscard.cli import certutil_directory

        if verb == "viewstore":
            return certutil_directory.view(words, args)
        return certutil_directory.delete(words, args)
    if verb in ("addstore", "viewstore", "delstore", "viewdelstore"):
        return _store_verb(verb, words, args)
    if args.enterprise:
        raise ConfigError(f"-{verb} takes no -enterprise")
    if verb == "dspublish":
        return _dspublish(words, args)
    if verb == "scinfo":
        if args.force:
            raise ConfigError("-scinfo takes no -f")
        if words:
            raise ConfigError(f"-scinfo takes no arguments, not {' '.join(words)!r}: "
                              "rdscard certutil -scinfo [--reader NAME]")
        return _scinfo(args)
    if words:
        raise ConfigError(f"-pulse takes no arguments, not {' '.join(words)!r}")
    return _pulse(args)


def _store_verb(verb: str, words: list[str], args: argparse.Namespace) -> int:
    wanted = {"addstore": "CERTFILE", "viewstore": "", "delstore": "CERTID",
              "viewdelstore": "CERTID"}[verb]
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


def directory_config(args: argparse.Namespace) -> Config:
    """The configuration of a verb that needs ``[directory]``; a clear error without one."""
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
    config = directory_config(args)
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

    config = directory_config(args)
    store = NtAuthStore(config.logon.ntauth_directory(config.server.state_dir))
    result = pulse(DirectoryNtAuth(config.directory), store)
    for entry in result.added:
        print(f"added {entry.subject} ({entry.sha1})")
    for entry in result.removed:
        print(f"removed {entry.subject} ({entry.sha1})")
    print(f"NTAuth refreshed from {result.dn}: {len(result.trusted)} CAs "
          f"({len(result.added)} added, {len(result.removed)} removed)")
    return 0


def _scinfo(args: argparse.Namespace) -> int:
    from rdscard.logon.mapping import AccountMapper
    from rdscard.logon.refusal import ReasonCode, SignInRefused
    from rdscard.logon.scinfo import CardReport, inspect_card
    from rdscard.logon.validation import CertificateValidator
    from rdscard.pki.piv_client import PivClient
    from rdscard.pki.transport import PcscTransport, TransportError

    config = load_config(args.config).with_overrides(state_dir=args.state_dir)
    validator = CertificateValidator.from_config(config.logon, config.server.state_dir)
    mapper = AccountMapper(config.logon)
    accounts = None
    if config.directory.enabled and config.directory.accounts:
        from rdscard.directory.accounts import CachedAccountSource

        accounts = CachedAccountSource(config.directory)
    try:
        with PcscTransport(args.reader) as transport:
            print(f"reader: {transport.reader}")
            report = inspect_card(PivClient(transport), validator, mapper, accounts=accounts)
    except TransportError as exc:
        report = CardReport(refusal=SignInRefused(ReasonCode.CARD_ERROR, str(exc)))
    from rdscard.logon.settings import AccountMode

    kdc = config.logon.kdc
    use = (f"yes: [logon.kdc] card_roots, for the KDC's certificate, the ticket checked "
           f"against {kdc.validate_keytab or '/etc/krb5.keytab'}"
           if kdc.card_roots and config.logon.mode is AccountMode.KERBEROS
           else "no ([logon.kdc] card_roots is off or [logon] mode is not kerberos)")
    print("\n".join(scinfo_lines(report, roots_used=use)))
    return 0 if report.would_sign_in else 1


def _moment(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _roots_lines(report: CardReport, roots_used: str) -> list[str]:
    """The card's roots (msroots, ``-scroots``) in ``-scinfo``."""
    from rdscard.pki.msroots import sha1

    out = [f"================ roots on the card (msroots): {len(report.roots)} "
           "================"]
    if report.roots and roots_used:
        out.append(f"used by this host: {roots_used}")
    if report.roots_problem:
        out.append(f"unreadable: {report.roots_problem}")
    elif not report.roots:
        out.append("none")
    for cert in report.roots:
        out += [f"subject:  {cert.subject.rfc4514_string()}",
                f"Cert Hash(sha1): {sha1(cert)}",
                f"valid:    {_moment(cert.not_valid_before_utc)} .. "
                f"{_moment(cert.not_valid_after_utc)}"]
    return out


def scinfo_lines(report: CardReport, *, roots_used: str = "") -> list[str]:
    """The ``-scinfo`` display of ``report``, its verdict last.

    ``roots_used``: whether and how this host would use the card's roots.
    """
    from rdscard.logon.scinfo import SLOTS
    from rdscard.pki.inspect import summarize

    out: list[str] = []
    pin = report.pin
    if pin is not None:
        if pin.verified:
            out.append("PIN: verified in the card's current session (not tried)")
        elif pin.blocked:
            out.append("PIN: BLOCKED (unblock it with the PUK)")
        else:
            out.append(f"PIN: {pin.tries_left} tries left (not tried)")
    if pin is not None or report.certificates:
        for slot, name in SLOTS:
            out.append(f"================ slot {slot:02X} ({name}) ================")
            cert = report.certificates.get(slot)
            if cert is None:
                problem = report.unreadable.get(slot)
                out.append(f"unreadable: {problem}" if problem else "empty")
                continue
            summary = summarize(cert)
            out += [
                f"subject:  {summary.subject}",
                f"issuer:   {summary.issuer}",
                f"serial:   {summary.serial:X}",
                f"valid:    {_moment(summary.not_before)} .. {_moment(summary.not_after)}",
                f"key:      {summary.key}",
                "EKU:      " + (", ".join(summary.ekus) or "(none: any use)"),
                "UPN:      " + (", ".join(summary.upns) or "(none)"),
            ]
            out += [f"problem:  {p}" for p in summary.problems]
    if pin is not None or report.certificates:
        out += _roots_lines(report, roots_used)
    out.append("================ sign-in ================")
    valid = report.validated
    if valid is not None:
        chain = " -> ".join(c.subject.rfc4514_string() for c in valid.chain)
        out.append(f"certificate: valid (slot 9A, SHA-256 {valid.fingerprint})")
        out.append(f"chain:       {chain}")
    mapping = report.mapping
    if mapping is not None:
        out.append(f"UPN:         {mapping.upn or '(none)'} -> account {mapping.account}")
        if mapping.principal:
            out.append(f"principal:   {mapping.principal} (PKINIT not tried)")
    if report.refusal is not None:
        out.append(f"would be refused: {report.refusal.reason_code.value} "
                   f"{report.refusal.message}")
    elif mapping is not None:
        out.append(f"would sign in as {mapping.account} (once the card's PIN is right)")
    return out
