"""``rdscard certutil -scroots``: the root CA certificates carried on a smart card.

Windows' spelling (learn.microsoft.com, "certutil", ``-SCRoots``)::

    certutil -scroots update [+][InputRootFile] [ReaderName]
    certutil -scroots save @OutputRootFile [ReaderName]
    certutil -scroots delete [ReaderName]

plus ``view [ReaderName]``. ``update FILE`` makes the roots in FILE the
card's roots; ``update +FILE`` adds them to those already there; ``save
FILE`` writes the card's roots to FILE as the card holds them (a certs-only
PKCS #7, DER), never over an existing file without ``-f``. The roots
go into the card's msroots file as Yubico's minidriver keeps it on a PIV
card (:mod:`rdscard.pki.msroots`), so Windows and libykpiv read them too.
Writing takes the card management key (a YubiKey's rule for PUT DATA):
``--management-key-file`` holds it in hex; without it, the factory key.
Reading needs neither key nor PIN; no PIN try is ever spent.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from cryptography import x509

from rdscard.errors import ConfigError, ProtocolError, RdscardError
from rdscard.pki.msroots import (
    MSROOTS_OBJECTS,
    delete_roots,
    encode_roots,
    read_roots,
    sha1,
    split_file,
    write_roots,
)
from rdscard.pki.piv_client import DEFAULT_MANAGEMENT_KEY, PivClient, PivError
from rdscard.pki.piv_codec import SYMMETRIC_KEY_LENGTHS, Algorithm
from rdscard.pki.transport import PcscTransport, Transport, TransportError

ACTIONS: Final = ("update", "save", "delete", "view")
MANAGEMENT_ALGORITHMS: Final = {"3des": Algorithm.TDES, "aes128": Algorithm.AES_128,
                                "aes192": Algorithm.AES_192, "aes256": Algorithm.AES_256}
USAGE: Final = ("rdscard certutil -scroots update [+]ROOTFILE [READER] | "
                "-scroots save @OUTFILE [READER] | -scroots delete [READER] | "
                "-scroots view [READER]")
MAX_ROOT_FILE: Final = 1024 * 1024

#: Opens the card in a reader (exact name, a unique part of one, or None: the first with a
#: card) and yields its transport and the reader's name.
CardOpener = Callable[[str | None], contextlib.AbstractContextManager[tuple[Transport, str]]]


@contextlib.contextmanager
def open_pcsc(reader: str | None) -> Iterator[tuple[Transport, str]]:
    """The card in a PC/SC reader through pcscd."""
    with PcscTransport(reader) as transport:
        yield transport, transport.reader


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``-scroots`` (the management key for writes)."""
    parser.add_argument("--management-key-file", type=Path, metavar="FILE",
                        help="-scroots update/delete: the card's management key in hex "
                             "(default: the factory key 010203...0708)")
    parser.add_argument("--management-algorithm", choices=sorted(MANAGEMENT_ALGORITHMS),
                        default="3des",
                        help="-scroots: the management key's algorithm (default 3des)")


def load_roots(path: Path) -> list[x509.Certificate]:
    """The certificates of a root file: PEM (one or a bundle), DER, or PKCS #7 (.p7b)."""
    from cryptography.hazmat.primitives.serialization import pkcs7

    try:
        with path.open("rb") as f:
            data = f.read(MAX_ROOT_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_ROOT_FILE:
        raise ConfigError(f"{path} is larger than {MAX_ROOT_FILE} bytes: not a root file")
    certs: list[x509.Certificate] = []
    loaders = (x509.load_pem_x509_certificates, pkcs7.load_pem_pkcs7_certificates) \
        if b"-----BEGIN" in data else \
        (lambda d: [x509.load_der_x509_certificate(d)], pkcs7.load_der_pkcs7_certificates)
    for loader in loaders:
        try:
            certs = list(loader(data))
            break
        except ValueError:
            continue
    if not certs:
        raise ConfigError(f"{path} holds no certificate (PEM, DER or PKCS #7)")
    for cert in certs:
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            raise ConfigError(f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate "
                              "(basicConstraints cA): only CA roots belong on the card")
    return certs


def _management_key(args: argparse.Namespace) -> tuple[bytearray, Algorithm]:
    algorithm = MANAGEMENT_ALGORITHMS[args.management_algorithm]
    path: Path | None = args.management_key_file
    if path is None:
        if algorithm != Algorithm.TDES:
            raise ConfigError("--management-algorithm without --management-key-file: the "
                              "factory key is 3DES")
        return bytearray(DEFAULT_MANAGEMENT_KEY), algorithm
    try:
        key = bytearray(bytes.fromhex(path.read_text().strip()))
    except OSError as exc:
        raise ConfigError(f"cannot read the management key file {path}: {exc.strerror}") \
            from None
    except ValueError:
        raise ConfigError(f"{path}: write the management key in hex") from None
    if len(key) != SYMMETRIC_KEY_LENGTHS[algorithm]:
        length = len(key)
        key[:] = bytes(length)
        raise ConfigError(f"{path}: a {args.management_algorithm} management key is "
                          f"{SYMMETRIC_KEY_LENGTHS[algorithm]} bytes, not {length}")
    return key, algorithm


def _parse(words: Sequence[str]) -> tuple[str, Path | None, bool, str | None]:
    """(action, root file, add, reader) from certutil's words."""
    if not words or words[0].lower() not in ACTIONS:
        raise ConfigError(f"-scroots needs an action (update, delete or view): {USAGE}")
    action, rest = words[0].lower(), list(words[1:])
    if action == "update":
        if not rest or not rest[0].lstrip("+"):
            raise ConfigError(f"-scroots update needs the root file: {USAGE}")
        name = rest.pop(0)
        add = name.startswith("+")
        if len(rest) > 1:
            raise ConfigError(f"-scroots update: too many arguments: {USAGE}")
        return action, Path(name[1:] if add else name), add, rest[0] if rest else None
    if action == "save":
        if not rest or not rest[0].lstrip("@"):
            raise ConfigError(f"-scroots save needs the output file: {USAGE}")
        name = rest.pop(0).removeprefix("@")
        if len(rest) > 1:
            raise ConfigError(f"-scroots save: too many arguments: {USAGE}")
        return action, Path(name), False, rest[0] if rest else None
    if len(rest) > 1:
        raise ConfigError(f"-scroots {action}: too many arguments ({' '.join(rest)!r}); "
                          f"quote a reader name with spaces: {USAGE}")
    return action, None, False, rest[0] if rest else None


def _describe(roots: Sequence[x509.Certificate]) -> list[str]:
    out = []
    for index, cert in enumerate(roots):
        out.append(f"  {index}: {cert.subject.rfc4514_string()}")
        out.append(f"     Cert Hash(sha1): {sha1(cert)}")
        out.append(f"     valid: {cert.not_valid_before_utc:%Y-%m-%d} .. "
                   f"{cert.not_valid_after_utc:%Y-%m-%d}")
    return out


def run_scroots(words: Sequence[str], args: argparse.Namespace, *,
                reader: str | None = None, opener: CardOpener = open_pcsc,
                overwrite: bool = False) -> int:
    """One ``-scroots`` action on the card in ``reader``; prints what it did.

    ``overwrite``: ``save`` may replace an existing file (certutil's ``-f``).
    """
    action, path, add, named = _parse(words)
    if reader is not None and named is not None:
        raise ConfigError("give the reader once: as the last word or with --reader")
    reader = reader if reader is not None else named
    new_roots = load_roots(path) if path is not None and action == "update" else []
    key: bytearray | None = None
    algorithm = Algorithm.TDES
    if action not in ("view", "save"):
        key, algorithm = _management_key(args)
    try:
        with opener(reader) as (transport, name):
            print(f"reader: {name}")
            client = PivClient(transport)
            try:
                client.select()
                current = read_roots(client)
                if action == "view":
                    print(f"roots on the card (msroots): {len(current)}")
                    print("\n".join(_describe(current)))
                    return 0
                if action == "save":
                    assert path is not None
                    return _save(current, path, overwrite)
                assert key is not None
                client.authenticate_admin(key, algorithm)
                if action == "delete":
                    delete_roots(client)
                    print(f"deleted the roots on the card (msroots, {len(current)} before)")
                    return 0
                roots = _merge(current, new_roots) if add else _merge([], new_roots)
                size = write_roots(client, roots)
            except (PivError, ProtocolError) as exc:
                raise RdscardError(f"the card refused -scroots {action} ({exc}): check the "
                                   "management key (--management-key-file) and that it is a "
                                   "PIV card") from None
    except TransportError as exc:
        raise RdscardError(str(exc)) from None
    finally:
        if key is not None:
            key[:] = bytes(len(key))
    objects = len(split_file(encode_roots(roots)))
    tags = ", ".join(f"{t:X}" for t in MSROOTS_OBJECTS[:objects])
    print(f"wrote {len(roots)} roots to the card (msroots: {size} bytes in {tags}):")
    print("\n".join(_describe(roots)))
    return 0


def _save(roots: Sequence[x509.Certificate], path: Path, overwrite: bool) -> int:
    """Write ``roots`` to ``path`` as the card's msroots holds them (certs-only PKCS #7)."""
    if not roots:
        raise RdscardError("the card carries no roots (msroots is empty): nothing to save")
    data = encode_roots(roots)
    try:
        with path.open("wb" if overwrite else "xb") as out:
            out.write(data)
    except FileExistsError:
        raise ConfigError(f"{path} exists: give -f to overwrite it") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    print(f"saved {len(roots)} roots from the card to {path} (PKCS #7, {len(data)} bytes):")
    print("\n".join(_describe(roots)))
    return 0


def _merge(current: Sequence[x509.Certificate], new: Sequence[x509.Certificate]
           ) -> list[x509.Certificate]:
    """``current`` then the certificates of ``new`` not already there."""
    out = list(current)
    seen = {sha1(c) for c in out}
    for cert in new:
        if sha1(cert) not in seen:
            seen.add(sha1(cert))
            out.append(cert)
    return out
