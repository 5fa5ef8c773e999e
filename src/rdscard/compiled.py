"""The compiled redirection hot path: which modules, and how to run without them.

``scripts/build_compiled.py`` compiles the modules in :data:`MODULES` with
mypyc, from the same source, into extension modules beside their ``.py``
files (and one runtime library shared by them, ``rdscard__mypyc``);
Python's import system then prefers them to the source. They are the
modules a redirected smart card call runs through: the static channel's
framing, rdpdr's Device Control, MS-RDPESC Transmit and its NDR, the
session's pcsc-lite socket and its request handling.

Pure Python stays the fallback: without a build nothing changes, and with
``RDSCARD_PURE_PYTHON=1`` in the environment (inherited by the server's
processes) :func:`install_source_finder` makes every ``rdscard`` module load
from its source even where an extension module is built.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Final

#: mypyc's runtime library of the compiled modules, a top-level module beside ``rdscard``.
RUNTIME: Final = "rdscard__mypyc"
#: The environment variable that makes ``rdscard`` ignore its built extension modules.
PURE_ENV: Final = "RDSCARD_PURE_PYTHON"

MODULES: Final = (
    # framing: TPKT, X.224, MCS, static channel chunks, the one-step Send Data frame
    "rdscard.pdu.buffer",
    "rdscard.pdu.tpkt",
    "rdscard.pdu.x224",
    "rdscard.pdu.per",
    "rdscard.pdu.mcs",
    "rdscard.pdu.send_data",
    "rdscard.pdu.channel",
    # rdpdr's Device Control in one step, and its state machine
    "rdscard.pdu.rdpdr_wire",
    "rdscard.protocol.rdpdr",
    # MS-RDPESC Transmit and the NDR (MS-RPCE) the general codecs are written in
    "rdscard.pdu.ndr",
    "rdscard.pdu.esc.constants",
    "rdscard.pdu.esc.transmit_wire",
    "rdscard.pdu.esc.dispatch",
    # the pcsc-lite client protocol and the session's service of it
    "rdscard.pdu.pcsclite",
    "rdscard.pdu.pcsclite_constants",
    "rdscard.pdu.pcsclite_framing",
    "rdscard.redirect.translate",
    "rdscard.redirect.lingering",
    "rdscard.redirect.esc_ioctl",
    "rdscard.redirect.reader_monitor",
    "rdscard.redirect.esc_backend",
    "rdscard.redirect.pcsclite_requests",
    "rdscard.redirect.pcsclite_connection",
    "rdscard.redirect.pcsclite_rules",
    "rdscard.redirect.pcsclite_service",
    # the connection: the acceptor's active-session lane, output accounting, the adapter
    "rdscard.protocol.acceptor",
    "rdscard.server.backpressure",
    "rdscard.server.stream_protocol",
    "rdscard.server.sign_in",
    "rdscard.server.connection",
    # the adapters on the path: the rdpdr channel, the session's socket
    "rdscard.server.smartcard_channel",
    "rdscard.server.pcsc_socket",
)


def pure_requested() -> bool:
    """Whether the environment asks for pure Python (``RDSCARD_PURE_PYTHON`` set, not 0)."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from an extension module."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


def loaded_compiled() -> list[str]:
    """The modules of :data:`MODULES` loaded in this process from extension modules."""
    return [name for name in MODULES if name in sys.modules and is_compiled(sys.modules[name])]


def stale_modules() -> list[str]:
    """Modules of :data:`MODULES` whose built extension module is older than the source.

    The extension module is what Python imports: after an edit of the source
    it runs the old code until ``scripts/build_compiled.py`` builds again.
    """
    stale = []
    for name in MODULES:
        spec = importlib.machinery.PathFinder.find_spec(name, _package_path(name))
        if spec is None or spec.origin is None or not spec.origin.endswith(_EXTENSIONS):
            continue
        directory = os.path.dirname(spec.origin)
        source = os.path.join(directory, name.rpartition(".")[2] + ".py")
        # The code is in the runtime library beside the top package; a module's own
        # extension is a small loader, copied again only when it changes.
        top = os.path.join(directory, *[".."] * name.count("."))
        built = [spec.origin, *(os.path.join(top, RUNTIME + suffix) for suffix in _EXTENSIONS)]
        try:
            newest = max(os.stat(path).st_mtime for path in built if os.path.exists(path))
            if os.stat(source).st_mtime > newest:
                stale.append(name)
        except OSError:
            continue
    return stale


_EXTENSIONS: Final = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _package_path(name: str) -> list[str] | None:
    package = sys.modules.get(name.rpartition(".")[0])
    path = getattr(package, "__path__", None)
    return list(path) if path is not None else None


class SourceOnlyFinder(importlib.abc.MetaPathFinder):
    """Finds ``rdscard``'s submodules as source or bytecode only, never an extension module."""

    _LOADERS: Final = (
        (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
    )

    def __init__(self) -> None:
        self._finders: dict[str, importlib.machinery.FileFinder] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("rdscard.") or path is None:
            return None
        for entry in path:
            finder = self._finders.get(entry)
            if finder is None:
                finder = importlib.machinery.FileFinder(entry, *self._LOADERS)
                self._finders[entry] = finder
            spec = finder.find_spec(fullname, target)
            if spec is not None and spec.loader is not None:
                return spec
        return None


def install_source_finder() -> None:
    """Load ``rdscard``'s submodules from source from now on (once per process)."""
    if not any(isinstance(finder, SourceOnlyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceOnlyFinder())


__all__ = [
    "MODULES",
    "PURE_ENV",
    "RUNTIME",
    "SourceOnlyFinder",
    "install_source_finder",
    "is_compiled",
    "loaded_compiled",
    "pure_requested",
    "stale_modules",
]
