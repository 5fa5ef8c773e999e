"""Compiles the smart card redirection hot path with mypyc, in place.

Usage: ``python scripts/build_compiled.py`` (build; ``--if-stale``: only when
a compiled module's source changed since), ``--clean`` (remove the built
extension modules: the tree is pure Python again), ``--list`` (the compiled
modules, one a line). It needs mypy (pinned in requirements-dev.txt), a C
compiler and the Python headers.

The same source is compiled: each module listed gets an
extension module beside its ``.py`` file (``rdscard/pdu/send_data.cpython-
311-x86_64-linux-gnu.so``), which Python's import system prefers to the
source, plus one runtime library shared by all of them
(``src/rdscard__mypyc...so``). Setting ``RDSCARD_PURE_PYTHON=1`` in the
environment makes ``rdscard`` import the ``.py`` files even where the
extension modules are built (see ``rdscard/__init__.py``). Build products
are ignored by git; C sources and objects go to ``build/mypyc``.

The modules are listed in ``rdscard.compiled.MODULES``.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
BUILD = ROOT / "build" / "mypyc"
#: Names the shared runtime library (``rdscard__mypyc``) rather than a hash.
GROUP = "rdscard"

sys.path.insert(0, str(SRC))
from rdscard.compiled import MODULES  # noqa: E402

#: The sources compiled, relative to src/.
COMPILED = tuple(name.replace(".", "/") + ".py" for name in MODULES)


def built_files() -> list[Path]:
    """Every extension module under src/ now: this script's (and stale ones of modules
    no longer listed, which would still be imported)."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return sorted([*SRC.glob(f"rdscard/**/*{suffix}"), *SRC.glob(f"{GROUP}__mypyc*{suffix}")])


def stale() -> bool:
    """Whether a module lacks its extension module or changed since it was built."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    runtime = SRC / f"{GROUP}__mypyc{suffix}"
    if not runtime.exists():
        return True
    built = runtime.stat().st_mtime
    listed = SRC / "rdscard" / "compiled.py"
    sources = [SRC / path for path in COMPILED]
    if any(not (SRC / (path[: -len(".py")] + suffix)).exists() for path in COMPILED):
        return True
    return any(path.stat().st_mtime > built for path in [*sources, listed, Path(__file__)])


def clean() -> None:
    for path in built_files():
        path.unlink()
        print(f"removed {path.relative_to(ROOT)}")


def build() -> None:
    # Imported here: --clean and --list need neither mypy nor setuptools.
    from mypyc.build import mypycify
    from setuptools import setup

    clean()
    os.chdir(SRC)  # the extension modules land beside their sources
    extensions = mypycify(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(BUILD / "cache"),
         *COMPILED],
        target_dir=str(BUILD / "c"),
        group_name=GROUP,
        opt_level="3",
    )
    setup(
        name="rdscard-compiled",
        ext_modules=extensions,
        script_args=["-q", "build_ext", "--inplace", "--build-temp", str(BUILD / "temp"),
                     "--build-lib", str(BUILD / "lib")],
    )
    for path in built_files():
        # Stamped now: an unchanged extension is copied with its old time, and the sources
        # would then look newer than the build (rdscard.compiled.stale_modules).
        os.utime(path)
        print(f"built {path.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the built modules")
    parser.add_argument("--list", action="store_true", help="print the compiled modules")
    parser.add_argument("--if-stale", action="store_true",
                        help="build only when a module changed since the last build")
    args = parser.parse_args()
    if args.if_stale and not stale():
        return 0
    if args.list:
        for name in MODULES:
            print(name)
    elif args.clean:
        clean()
    else:
        build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
