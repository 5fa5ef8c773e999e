"""A Samba 4 Active Directory domain controller in a private directory (INTEROP-NOTES 9).

``samba-tool domain provision`` writes a whole domain (its ``sam.ldb``,
``smb.conf`` and ``krb5.conf``) under one target directory in a few seconds;
``samba -i -M single -s DIR/etc/smb.conf`` then serves it from a single
process group until SIGTERM. Only the LDAP service runs (``server services =
ldap``): no DNS, NetBIOS, SMB or KDC, and nothing outside the directory is
written. LDAP listens on the fixed ports 389 and 636 of ``127.0.0.1`` (Samba
has no setting to move them), so one DC runs per machine at a time.

LDAPS uses a certificate made here by a CA of its own (``tls-ca.pem``) naming
``localhost`` and the DC's DNS name, as a DC enrolled for the "Domain
Controller" template would have; Samba's own self-signed certificate names
only ``DC1.<domain>`` and has no subjectAltName.

With ``kdc_port`` the DC's KDC serves too, and with ``pkinit`` (:class:`KdcPkinit`)
it takes smart card sign-ins. Samba 4.17's KDC is Heimdal's (``third_party/heimdal``)
and has no smb.conf switch for PKINIT: it reads the ``[kdc]`` section of the
``krb5.conf`` beside ``smb.conf`` (``lpcfg_config_path(.., "krb5.conf")``,
prepended to the default profile), once at start (``kdc/default_config.c``):
``enable-pkinit``, ``pkinit_identity`` (one hx509 store, ``FILE:cert,key``),
``pkinit_anchors`` (one store; a PEM file may hold several roots),
``pkinit_pool`` (intermediates, also sent with the KDC's reply) and
``pkinit_revoke`` (CRL stores; without one nothing is checked for revocation).
``pkinit_principal_in_certificate`` defaults to yes.

What the 4.17 KDC checks of a client certificate (``kdc/pkinit.c``,
``_kdc_pk_check_client``, probed in the directory tests): the CMS signature
and a chain to ``pkinit_anchors`` (hx509), then the name, first an
id-pkinit-san equal to the requested principal, else the Microsoft UPN SAN:
exactly one, parsed as a principal (its domain as the realm) and looked up
in the directory as a UPN (``userPrincipalName``, falling back to
``sAMAccountName@<the DC's realm>``, Samba's implicit UPN,
``samba_kdc_lookup_client``); the request is granted when that object's
``objectSid`` is the requested principal's (``samba_kdc_check_pkinit_ms_upn_match``),
as AD maps a UPN-only certificate. Not checked: the client certificate's EKUs
(neither Smart Card Logon nor id-pkinit-KPClientAuth is required), the
NTAuthCertificates object (trust is ``pkinit_anchors`` alone), revocation
without ``pkinit_revoke``. Only its own certificate's id-pkinit-KPKdc is looked
at, and a missing one is only logged. A client principal ``name@REALM`` whose
``name@domain`` is a user's UPN is that user (the UPN lookup ignores case).

Its PKINIT reply's SignedData names the signer by subjectKeyIdentifier in a
SignerInfo of version 1 (MIT's kinit takes it; OpenSSL's PKCS #7 parser does
not, see :func:`rdscard.logon.kdc_relay.signed_data_certificates`). It issues
service tickets to service principal names only: a ticket for a user's own
name is "Server not found in Kerberos database", so a host key checked with
``kvno`` is an SPN of an account (``samba-tool spn add``) exported under that
name (``samba-tool domain exportkeytab --principal=SPN``).
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rdscard.testbed.pcscd import PeerError, require_program

START_TIMEOUT: Final = 30.0
LDAP_PORTS: Final = (389, 636)
ADDRESS: Final = "127.0.0.1"


@dataclass(frozen=True)
class KdcPkinit:
    """PKINIT for the DC's KDC: its certificate (id-pkinit-KPKdc, id-pkinit-san
    ``krbtgt/REALM@REALM``) and key, the roots it trusts for clients' certificates
    (``pkinit_anchors``) and the intermediate CAs (``pkinit_pool``)."""

    certificate: Path
    key: Path
    anchors: Sequence[Path]
    pool: Sequence[Path] = ()


class SambaDc:
    """A provisioned domain ``realm`` (NetBIOS ``domain``) served from ``directory``."""

    def __init__(self, directory: Path, *, realm: str = "EXAMPLE.TEST", domain: str = "EXAMPLE",
                 admin_password: str = "Adm1n.Pass.Word", host_name: str = "dc1",
                 kdc_port: int | None = None, pkinit: KdcPkinit | None = None) -> None:
        if pkinit is not None and kdc_port is None:
            raise ValueError("PKINIT needs the DC's KDC: give kdc_port too")
        self.directory = Path(directory)
        #: with a port, the DC's KDC serves too (``krb5 port``; Kerberos binds, keytabs)
        self.kdc_port = kdc_port
        #: with it, the KDC takes PKINIT (the ``[kdc]`` section of ``etc/krb5.conf``)
        self.pkinit = pkinit
        self.realm = realm.upper()
        self.domain = domain.upper()
        self.admin_password = admin_password
        self.host_name = host_name
        self.process: subprocess.Popen[bytes] | None = None

    # -- names -------------------------------------------------------------------------
    @property
    def dns_domain(self) -> str:
        return self.realm.lower()

    @property
    def base_dn(self) -> str:
        """The domain's DN, ``DC=example,DC=test``."""
        return ",".join(f"DC={label}" for label in self.dns_domain.split("."))

    @property
    def admin_upn(self) -> str:
        return f"Administrator@{self.dns_domain}"

    @property
    def smb_conf(self) -> Path:
        return self.directory / "etc" / "smb.conf"

    @property
    def sam_ldb(self) -> Path:
        """The directory database itself (``ldbsearch -H`` reads it while the DC runs)."""
        return self.directory / "private" / "sam.ldb"

    @property
    def tls_ca(self) -> Path:
        """The CA that issued the DC's LDAPS certificate (``[directory] ca_file``)."""
        return self.directory / "tls-ca.pem"

    @property
    def ldaps_uri(self) -> str:
        return "ldaps://localhost"

    def log(self) -> str:
        parts = []
        for path in [*sorted(self.directory.glob("log.*")), self.directory / "samba.out"]:
            try:
                parts.append(path.read_text(errors="replace")[-4000:])
            except OSError:
                continue
        return "\n".join(parts)

    # -- life ----------------------------------------------------------------------------
    def _tls_files(self) -> tuple[Path, Path]:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.realm} DC TLS CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1))
              .not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                           False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        fqdn = f"{self.host_name}.{self.dns_domain}"
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(fqdn), x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        tls = self.directory / "tls"
        tls.mkdir(mode=0o700, exist_ok=True)
        self.tls_ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert_path, key_path = tls / "dc-cert.pem", tls / "dc-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # Samba insists
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return cert_path, key_path

    def provision(self) -> None:
        """``samba-tool domain provision`` into ``directory`` (a few seconds)."""
        tool = require_program("samba-tool", "samba")
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory
        cert, key = self._tls_files()
        options = {
            "interfaces": ADDRESS, "bind interfaces only": "yes",
            "server services": "ldap", "log file": f"{target}/log.%m",
            "tls enabled": "yes", "tls certfile": str(cert), "tls keyfile": str(key),
            "tls cafile": str(self.tls_ca),
        }
        argv = [tool, "domain", "provision", "--use-rfc2307", "--server-role=dc",
                "--dns-backend=NONE", f"--realm={self.realm}", f"--domain={self.domain}",
                f"--adminpass={self.admin_password}", f"--host-name={self.host_name}",
                f"--targetdir={target}"]
        argv += [f"--option={name}={value}" for name, value in options.items()]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        if result.returncode != 0:
            raise PeerError(f"samba-tool domain provision failed ({result.returncode}): "
                            f"{result.stderr[-2000:]}")

    def start(self) -> Self:
        """Provision when needed, then serve LDAP and LDAPS; returns when 636 answers."""
        if not self.smb_conf.exists():
            self.provision()
        for port in LDAP_PORTS:
            if _answers(port):
                raise PeerError(f"{ADDRESS}:{port} is taken by another LDAP server: stop it "
                                "(Samba's LDAP ports cannot be moved)")
        samba = require_program("samba", "samba")
        argv = [samba, "-i", "-M", "single", "-s", str(self.smb_conf)]
        if self.kdc_port is not None:
            # Samba's default ("yes") refuses a SASL bind inside TLS without its own
            # signing or sealing; Windows DCs accept it (and refuse signing inside TLS).
            argv += ["--option=server services=ldap kdc", f"--option=krb5 port={self.kdc_port}",
                     "--option=ldap server require strong auth=allow_sasl_over_tls"]
            self._write_krb5_conf()
            self._write_kdc_conf()
        out = (self.directory / "samba.out").open("wb")
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not (_answers(636) and (self.kdc_port is None or _answers(self.kdc_port))):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PeerError(f"samba did not serve LDAPS within {START_TIMEOUT:g} s:\n"
                                + self.log())
            time.sleep(0.1)
        return self

    @property
    def krb5_conf(self) -> Path:
        """A client krb5.conf for the DC's KDC (with ``kdc_port``)."""
        return self.directory / "krb5-client.conf"

    def _write_krb5_conf(self) -> None:
        pkinit = ""
        if self.pkinit is not None:
            # MIT's client: the intermediates of its own and the KDC's chains, and the
            # Smart Card Logon certificate among a card's several (MIT will not choose)
            pkinit = "".join(f"        pkinit_pool = FILE:{path}\n" for path in self.pkinit.pool)
            pkinit += "        pkinit_cert_match = <EKU>msScLogin\n"
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"    default_realm = {self.realm}\n"
            "    dns_lookup_kdc = false\n    dns_lookup_realm = false\n    rdns = false\n"
            "    dns_canonicalize_hostname = false\n    udp_preference_limit = 1\n"
            f"[realms]\n    {self.realm} = {{\n        kdc = {ADDRESS}:{self.kdc_port}\n"
            f"{pkinit}    }}\n"
            f"[domain_realm]\n    .{self.dns_domain} = {self.realm}\n"
            f"    {self.dns_domain} = {self.realm}\n    localhost = {self.realm}\n")

    @property
    def kdc_conf(self) -> Path:
        """The profile Samba's KDC reads first: ``krb5.conf`` beside ``smb.conf``."""
        return self.smb_conf.parent / "krb5.conf"

    def _write_kdc_conf(self) -> None:
        """``[kdc]`` with PKINIT (or without it), read by the KDC when it starts."""
        lines = ["[kdc]"]
        if self.pkinit is None:
            lines.append("    enable-pkinit = false")
        else:
            anchors = self.directory / "pkinit-anchors.pem"
            anchors.write_bytes(b"".join(Path(p).read_bytes() for p in self.pkinit.anchors))
            lines += ["    enable-pkinit = true",
                      f"    pkinit_identity = FILE:{self.pkinit.certificate},{self.pkinit.key}",
                      f"    pkinit_anchors = FILE:{anchors}"]
            lines += [f"    pkinit_pool = FILE:{path}" for path in self.pkinit.pool]
        self.kdc_conf.write_text("\n".join(lines) + "\n")

    def export_keytab(self, principal: str, keytab: Path) -> Path:
        """``samba-tool domain exportkeytab``: ``principal``'s keys, as an administrator on
        the DC exports them for a member host or service."""
        tool = require_program("samba-tool", "samba")
        result = subprocess.run([tool, "domain", "exportkeytab", str(keytab),
                                 f"--principal={principal}", "-s", str(self.smb_conf)],
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise PeerError(f"samba-tool domain exportkeytab failed ({result.returncode}): "
                            f"{result.stderr}{result.stdout}")
        return keytab

    def stop(self) -> None:
        """SIGTERM to the DC's process group, then SIGKILL after 10 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- Samba's own tools -------------------------------------------------------------------
    def ldbsearch(self, base: str, *attributes: str, scope: str = "base") -> str:
        """``ldbsearch`` on the DC's ``sam.ldb`` (Samba's view, not ours); its LDIF output."""
        tool = require_program("ldbsearch", "ldb-tools")
        result = subprocess.run(
            [tool, "-H", str(self.sam_ldb), "-b", base, "-s", scope, *attributes],
            capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise PeerError(f"ldbsearch failed ({result.returncode}): {result.stderr}")
        return result.stdout

    def samba_tool(self, *argv: str) -> str:
        """``samba-tool ARGV -H sam.ldb`` on the DC's own database; its output.

        ``user create NAME PASSWORD``, ``user disable NAME`` and the like, as
        an administrator on the DC runs them.
        """
        tool = require_program("samba-tool", "samba")
        result = subprocess.run([tool, *argv, "-H", str(self.sam_ldb), "-s", str(self.smb_conf)],
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise PeerError(f"samba-tool {' '.join(argv[:2])} failed ({result.returncode}): "
                            f"{result.stderr}{result.stdout}")
        return result.stdout

    def ldbmodify(self, ldif: str) -> None:
        """``ldbmodify`` on the DC's ``sam.ldb`` with ``ldif``."""
        tool = require_program("ldbmodify", "ldb-tools")
        result = subprocess.run([tool, "-H", str(self.sam_ldb)], input=ldif,
                                capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise PeerError(f"ldbmodify failed ({result.returncode}): {result.stderr}"
                            f"{result.stdout}")


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((ADDRESS, port)) == 0
