"""An MIT Kerberos KDC with PKINIT on a free loopback port (INTEROP-NOTES 7).

The KDC trusts the test PKI's root (with the issuing CA as an intermediate
pool), proves itself with the PKI's KDC certificate, accepts the Smart Card
Logon EKU (``pkinit_eku_checking = scLogin``) and maps each user's UPN to its
principal with a ``pkinit_cert_match`` string attribute, since MIT does not
match a bare UPN SAN to ``user@REALM``. For that attribute to decide, the KDC
runs the certauth modules ``pkinit_eku`` and ``dbmatch`` only: ``pkinit_san``
would reject a UPN-only certificate before ``dbmatch`` is asked.

The client side (krb5.conf) trusts the root, and picks the Smart Card Logon
certificate on a card holding several (``pkinit_cert_match = <EKU>msScLogin``),
as MIT refuses to choose among several by itself.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from rdscard.pki.ca import RealmPki, check_user_name
from rdscard.testbed.pcscd import PeerError, require_program
from rdscard.testbed.ports import free_tcp_port

START_TIMEOUT: Final = 20.0
PKINIT_PLUGIN: Final = Path("/usr/lib/x86_64-linux-gnu/krb5/plugins/preauth/pkinit.so")


class MitKdc:
    """``krb5kdc -n`` for ``pki.realm`` with its own database, config and logs in ``directory``."""

    def __init__(self, directory: Path, realm: str, pki: RealmPki, *, port: int | None = None
                 ) -> None:
        if realm != pki.realm:
            raise ValueError(f"realm {realm} differs from the PKI's realm {pki.realm}")
        self.directory = Path(directory)
        self.realm = realm
        self.pki = pki
        self.port = port or free_tcp_port()
        self.process: subprocess.Popen[bytes] | None = None

    # -- files ---------------------------------------------------------------------
    @property
    def kdc_conf(self) -> Path:
        return self.directory / "kdc.conf"

    @property
    def krb5_conf(self) -> Path:
        return self.directory / "krb5.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "kdc.log"

    @property
    def env(self) -> dict[str, str]:
        """Environment for kinit/klist/kadmin.local against this KDC."""
        return {
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(self.kdc_conf),
            "KRB5CCNAME": f"FILE:{self.directory / 'ccache'}",
        }

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _write_config(self) -> None:
        layout = self.pki.layout
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        realm = self.realm
        self.kdc_conf.write_text(
            f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}

[realms]
    {realm} = {{
        database_name = {d / 'principal'}
        key_stash_file = {d / 'stash'}
        acl_file = {d / 'kadm5.acl'}
        kdc_listen = 127.0.0.1:{self.port}
        kdc_tcp_listen = 127.0.0.1:{self.port}
        pkinit_identity = FILE:{layout.kdc_cert},{layout.kdc_key}
        pkinit_anchors = FILE:{layout.root_cert}
        pkinit_pool = FILE:{layout.issuing_cert}
        pkinit_eku_checking = scLogin
        pkinit_allow_upn = true
        max_life = 10h
    }}

[plugins]
    certauth = {{
        enable_only = pkinit_eku
        enable_only = dbmatch
    }}

[logging]
    kdc = FILE:{self.log_path}
    admin_server = FILE:{d / 'kadmin.log'}
    default = FILE:{d / 'krb5lib.log'}
"""
        )
        (d / "kadm5.acl").write_text("")
        self.krb5_conf.write_text(
            f"""[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
    pkinit_anchors = FILE:{layout.root_cert}
    pkinit_pool = FILE:{layout.issuing_cert}

[realms]
    {realm} = {{
        kdc = 127.0.0.1:{self.port}
        pkinit_anchors = FILE:{layout.root_cert}
        pkinit_pool = FILE:{layout.issuing_cert}
        pkinit_eku_checking = kpServerAuth
        pkinit_cert_match = <EKU>msScLogin
    }}

[domain_realm]
    .{self.pki.domain} = {realm}
    {self.pki.domain} = {realm}
"""
        )

    def _run(self, *argv: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=60,
            env={**os.environ, **self.env},
        )
        if result.returncode != 0:
            raise PeerError(f"{' '.join(argv[:2])} failed ({result.returncode}): "
                            f"{result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def kadmin(self, query: str) -> str:
        """Run one ``kadmin.local`` query on this realm's database."""
        return self._run(require_program("kadmin.local", "krb5-admin-server"), "-r", self.realm,
                         "-q", query)

    def add_user(self, user: str, *, cert_match: str | None = None) -> str:
        """Create ``user@REALM`` for PKINIT and bind it to its certificate's UPN.

        ``cert_match`` defaults to ``<SAN>^user@domain$`` (the UPN written by the PKI).
        Returns the principal name.
        """
        principal = self.pki.principal(check_user_name(user))
        self.kadmin(f"addprinc +requires_preauth -nokey {principal}")
        rule = cert_match or f"<SAN>^{re.escape(self.pki.upn(user))}$"
        self.kadmin(f'setstr {principal} pkinit_cert_match "{rule}"')
        return principal

    def add_service(self, service: str, keytab: Path) -> str:
        """Create ``service@REALM`` (``TERMSRV/host``) with a random key, exported to ``keytab``."""
        principal = f"{service}@{self.realm}"
        self.kadmin(f"addprinc -randkey {principal}")
        self.kadmin(f"ktadd -k {keytab} {principal}")
        return principal

    def add_password_user(self, user: str, password: str) -> str:
        """Create ``user@REALM`` with a password (a client for tests without a card)."""
        principal = f"{check_user_name(user)}@{self.realm}"
        self.kadmin(f"addprinc -pw {password} {principal}")
        return principal

    def kinit_password(self, principal: str, password: str, ccache: Path) -> None:
        """A TGT for ``principal`` in ``ccache`` (the password on stdin)."""
        result = subprocess.run(
            [require_program("kinit", "krb5-user"), "-c", f"FILE:{ccache}", principal],
            input=password + "\n", capture_output=True, text=True, timeout=30,
            env={**os.environ, **self.env})
        if result.returncode != 0:
            raise PeerError(f"kinit {principal} failed: {result.stderr.strip()}")

    # -- lifecycle ------------------------------------------------------------------
    def start(self, users: tuple[str, ...] | list[str] = ()) -> None:
        """Create the database and principals, start the KDC and wait until it accepts TCP."""
        if not PKINIT_PLUGIN.exists():
            raise PeerError(f"{PKINIT_PLUGIN} missing: install the Debian package krb5-pkinit")
        krb5kdc = require_program("krb5kdc", "krb5-kdc")
        kdb5_util = require_program("kdb5_util", "krb5-kdc")
        self._write_config()
        if not (self.directory / "principal").exists():
            master = secrets.token_hex(16)
            self._run(kdb5_util, "create", "-s", "-r", self.realm, "-P", master)
        for user in users:
            self.add_user(user)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [krb5kdc, "-n", "-r", self.realm],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **self.env}, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if self.process.poll() is not None:
                    raise PeerError(f"krb5kdc exited ({self.process.returncode}):\n"
                                    + self.log()) from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise PeerError("krb5kdc did not listen in time:\n" + self.log()) from None
                time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
