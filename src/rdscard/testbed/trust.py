"""Two MIT realms with a two-way trust, for sign-in across domains.

A trust between Kerberos realms is a pair of cross-realm ticket-granting
principals sharing keys (RFC 4120 1.2, 6.1): ``krbtgt/B@A`` in both
databases lets users of ``A`` get tickets for services of ``B``, and
``krbtgt/A@B`` the other way. Both databases derive the key from the same
password; the salt is the principal's name, which is the same in both, so
the keys agree. Active Directory's forest and external trusts keep the same
pair of keys ([MS-ADTS] 6.1.6.9.1 "trustAuthInfo").

The client side needs one krb5.conf naming both realms' KDCs, each DNS
domain's realm, and the direct path between them (``[capaths]``): the two
realm names share only the parent ``TEST``, and MIT's default hierarchical
path would go through a realm ``TEST`` that does not exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from rdscard.testbed.kdc import MitKdc


def trust(first: MitKdc, second: MitKdc) -> None:
    """A two-way trust between the realms of ``first`` and ``second`` (both databases exist)."""
    for a, b in ((first, second), (second, first)):
        principal = f"krbtgt/{b.realm}@{a.realm}"
        password = secrets.token_urlsafe(24)
        for kdc in (first, second):
            kdc.kadmin(f"addprinc -pw {password} {principal}")


def client_config(path: Path, kdcs: Sequence[MitKdc], *, default_realm: str | None = None,
                  anchors: Sequence[Path] = (), hosts: Mapping[str, str] | None = None
                  ) -> Path:
    """One krb5.conf for clients of every realm in ``kdcs``.

    ``anchors`` are the PKINIT anchors of a client that gets none on its
    command line (FreeRDP 3); the logon service gives kinit its own.
    ``hosts`` maps more host names to realms (``localhost``): without an
    entry a client asks its own realm's KDC for the service, as for a
    referral, and MIT's KDC refers no single-label host name.
    """
    realms = [kdc.realm for kdc in kdcs]
    lines = [
        "[libdefaults]",
        f"    default_realm = {default_realm or realms[0]}",
        "    dns_lookup_kdc = false",
        "    dns_lookup_realm = false",
        "    rdns = false",
        "    dns_canonicalize_hostname = false",
        "    udp_preference_limit = 1",
        *[f"    pkinit_anchors = FILE:{anchor}" for anchor in anchors],
        "",
        "[realms]",
    ]
    for kdc in kdcs:
        layout = kdc.pki.layout
        lines += [
            f"    {kdc.realm} = {{",
            f"        kdc = 127.0.0.1:{kdc.port}",
            f"        pkinit_pool = FILE:{layout.issuing_cert}",
            "        pkinit_eku_checking = kpServerAuth",
            "        pkinit_cert_match = <EKU>msScLogin",
            "    }",
        ]
    lines += ["", "[domain_realm]"]
    for kdc in kdcs:
        lines += [f"    .{kdc.pki.domain} = {kdc.realm}", f"    {kdc.pki.domain} = {kdc.realm}"]
    lines += [f"    {host} = {realm}" for host, realm in (hosts or {}).items()]
    lines += ["", "[capaths]"]
    for realm in realms:
        lines.append(f"    {realm} = {{")
        lines += [f"        {other} = ." for other in realms if other != realm]
        lines.append("    }")
    path.write_text("\n".join(lines) + "\n")
    return path
