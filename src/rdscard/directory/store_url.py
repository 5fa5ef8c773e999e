"""The LDAP URL Windows' certutil takes for the directory's NTAuth store.

``certutil -viewstore`` and ``-viewdelstore`` name a directory store by an
LDAP URL (RFC 4516 2: ``ldap://host/dn?attributes?scope?filter?extensions``);
for the forest's NTAuth CAs Microsoft writes::

    ldap:///CN=NTAuthCertificates,CN=Public Key Services,CN=Services,
        CN=Configuration,DC=example,DC=test?cACertificate?base?objectClass=certificationAuthority

(one line). The host is empty: certutil asks a domain controller of the
machine's domain, here one of ``[directory] uris``. Only this object is a
store rdscard follows ([MS-ADTS] 6.1.1.2.4.1.2; :mod:`rdscard.directory.ntauth`),
so the URL must name it: attribute ``cACertificate``, scope ``base`` and the
filter ``objectClass=certificationAuthority`` when given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from rdscard.directory.ntauth import ATTRIBUTE, NTAUTH_CONTAINER, NTAUTH_RDN, ntauth_dn
from rdscard.errors import ConfigError

MAX_URL: Final = 2048
_PREFIX: Final = tuple(p.strip().casefold() for p in
                       f"{NTAUTH_RDN},{NTAUTH_CONTAINER},CN=Configuration".split(","))
EXAMPLE: Final = ("ldap:///CN=NTAuthCertificates,CN=Public Key Services,CN=Services,"
                  "CN=Configuration,DC=example,DC=test?cACertificate?base?"
                  "objectClass=certificationAuthority")


@dataclass(frozen=True)
class NtAuthStoreUrl:
    """A parsed store URL: the forest root domain's DN its object lives under."""

    base_dn: str

    @property
    def dn(self) -> str:
        return ntauth_dn(self.base_dn)


def is_ldap_url(text: str) -> bool:
    return text[:7].casefold() == "ldap://"


def _fail(url: str, why: str) -> ConfigError:
    return ConfigError(f"{url!r} {why}: name the directory's NTAuth store as certutil does, "
                       f'"{EXAMPLE}"')


def parse_store_url(url: str) -> NtAuthStoreUrl:
    """The NTAuthCertificates object named by ``url``; :class:`ConfigError` otherwise."""
    if len(url) > MAX_URL or not is_ldap_url(url):
        raise _fail(url[:80], "is not an ldap:/// URL")
    rest = url[7:]
    host, slash, rest = rest.partition("/")
    if not slash:
        raise _fail(url, "names no object")
    if host:
        raise _fail(url, f"names the server {host!r}; the domain controllers are "
                         "[directory] uris, so leave the host out (ldap:///)")
    parts = rest.split("?")
    if len(parts) > 5:
        raise _fail(url, "has too many ?-separated parts")
    parts += [""] * (5 - len(parts))
    dn, attributes, scope, query, extensions = (unquote(p).strip() for p in parts)
    rdns = [r.strip() for r in dn.split(",")]
    folded = tuple(r.casefold() for r in rdns)
    if folded[:len(_PREFIX)] != _PREFIX or len(rdns) == len(_PREFIX) or \
            not all(r.casefold().startswith("dc=") for r in rdns[len(_PREFIX):]):
        raise _fail(url, "does not name CN=NTAuthCertificates,CN=Public Key Services,"
                         "CN=Services,CN=Configuration,DC=... (the forest's NTAuth CAs)")
    if attributes and attributes.casefold() != ATTRIBUTE.casefold():
        raise _fail(url, f"asks for {attributes!r}, not cACertificate")
    if scope and scope.casefold() != "base":
        raise _fail(url, f"has the scope {scope!r}, not base")
    if query and query.strip("()").casefold() != "objectclass=certificationauthority":
        raise _fail(url, f"has the filter {query!r}, not objectClass=certificationAuthority")
    if extensions:
        raise _fail(url, "has extensions")
    return NtAuthStoreUrl(base_dn=",".join(rdns[len(_PREFIX):]))


__all__ = ("EXAMPLE", "NtAuthStoreUrl", "is_ldap_url", "parse_store_url")
