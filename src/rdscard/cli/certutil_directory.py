"""``rdscard certutil -viewstore/-viewdelstore "ldap:///CN=NTAuthCertificates,..."``.

Windows' certutil names the directory's NTAuth store by an LDAP URL
(:mod:`rdscard.directory.store_url`)::

    certutil -viewstore "ldap:///CN=NTAuthCertificates,...?cACertificate?base?objectClass=..."
    certutil -viewdelstore "ldap:///CN=NTAuthCertificates,...?...?base?..." [CERTID]

``-viewstore`` lists the CAs of the object, numbered in the directory's
order; ``-viewdelstore`` removes the one CERTID names (an index of that
list, a SHA-1 thumbprint, a SHA-256 fingerprint prefix, a serial number or a
subject; :func:`rdscard.logon.ntauth.match_entries`). Windows shows a
picker when CERTID is left out; here the list is printed and CERTID asked
for. The last CA leaves the zero-byte placeholder the mandatory
``cACertificate`` needs (:meth:`DirectoryNtAuth.unpublish`). Hosts stop
trusting the CA at their next refresh (``-pulse`` refreshes now).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rdscard.cli.certutil import directory_config
from rdscard.directory.ntauth import DirectoryCa, DirectoryNtAuth
from rdscard.directory.store_url import EXAMPLE, parse_store_url
from rdscard.errors import ConfigError
from rdscard.logon.ntauth import NtAuthEntry, match_entries

USAGE = f'rdscard certutil -viewdelstore "{EXAMPLE}" CERTID'


def _read(url: str, args: argparse.Namespace) -> tuple[DirectoryNtAuth, str,
                                                        list[tuple[NtAuthEntry, DirectoryCa]]]:
    store = parse_store_url(url)
    directory = DirectoryNtAuth(directory_config(args).directory, base_dn=store.base_dn)
    dn, cas = directory.read()
    return directory, dn, [(NtAuthEntry.of(ca.certificate, Path(dn)), ca) for ca in cas]


def _listing(dn: str, entries: list[NtAuthEntry]) -> list[str]:
    from rdscard.cli.ntauth import describe

    out = [f"{dn}: {len(entries)} CAs"]
    for index, entry in enumerate(entries):
        out.append(f"================ Certificate {index} ================")
        out.append(f"Cert Hash(sha1): {entry.sha1}")
        out += describe(entry)
    return out


def view(words: list[str], args: argparse.Namespace) -> int:
    """``-viewstore URL``: the directory's NTAuth CAs."""
    if len(words) != 1:
        raise ConfigError(f'-viewstore takes one LDAP URL: rdscard certutil -viewstore '
                          f'"{EXAMPLE}"')
    _, dn, found = _read(words[0], args)
    print("\n".join(_listing(dn, [entry for entry, _ in found])))
    return 0


def delete(words: list[str], args: argparse.Namespace) -> int:
    """``-viewdelstore URL CERTID``: remove one CA from the directory's NTAuth store."""
    if len(words) not in (1, 2):
        raise ConfigError(f"-viewdelstore: wrong number of arguments: {USAGE}")
    directory, dn, found = _read(words[0], args)
    entries = [entry for entry, _ in found]
    if len(words) == 1:
        print("\n".join(_listing(dn, entries)))
        raise ConfigError("-viewdelstore: give the CERTID of the CA to remove (its number "
                          f"above, SHA-1 thumbprint, serial number or subject): {USAGE}")
    matches = match_entries(entries, words[1])
    if not matches:
        raise ConfigError(f"no CA in {dn} matches {words[1]!r}: give its number, SHA-1 "
                          "thumbprint, SHA-256 fingerprint prefix, serial number or subject, "
                          f'as `rdscard certutil -viewstore "{EXAMPLE}"` shows them')
    if len(matches) > 1:
        names = "; ".join(f"{e.sha1} {e.subject}" for e in matches)
        raise ConfigError(f"{words[1]!r} matches {len(matches)} CAs ({names}): give the SHA-1 "
                          "thumbprint of the one to remove")
    (entry,) = matches
    ca = next(ca for e, ca in found if e is entry)
    dn, removed = directory.unpublish(ca.certificate)
    if not removed:  # another administrator was quicker
        print(f"{entry.subject} ({entry.sha1}) is no longer in {dn}")
        return 0
    print(f"removed {entry.subject} ({entry.sha1}) from {dn}")
    print("hosts stop trusting it at their next refresh; `rdscard certutil -pulse` refreshes now")
    return 0
