"""The compiled hot path and its pure-Python fallback (rdscard.compiled).

The suite runs once with the extension modules built by
``scripts/build_compiled.py`` and once more (unit and redirection tests)
with ``RDSCARD_PURE_PYTHON=1``: these tests check that each run imports
what it says it does.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import rdscard
from rdscard import compiled

SRC = Path(rdscard.__file__).resolve().parent.parent


def _extension_beside(name: str) -> bool:
    source = SRC / (name.replace(".", "/") + ".py")
    return any(source.with_suffix(suffix).exists()
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def test_every_listed_module_has_a_source_and_imports() -> None:
    for name in compiled.MODULES:
        assert (SRC / (name.replace(".", "/") + ".py")).is_file(), name
        importlib.import_module(name)


def test_this_run_imports_what_its_environment_asks_for() -> None:
    for name in compiled.MODULES:
        module = importlib.import_module(name)
        if compiled.pure_requested() or not _extension_beside(name):
            assert not compiled.is_compiled(module), name
            assert module.__file__ is not None and module.__file__.endswith(".py"), name
        else:  # built: the extension module takes precedence over the source
            assert compiled.is_compiled(module), name


def _imports_in_a_child(pure: str | None) -> dict[str, object]:
    script = (
        "import importlib, json, sys, uvloop\n"
        "from rdscard import compiled\n"
        "files = {n: importlib.import_module(n).__file__ for n in compiled.MODULES}\n"
        "print(json.dumps({'files': files, 'compiled': compiled.loaded_compiled(),\n"
        "                  'runtime': [m for m in sys.modules if m.endswith('__mypyc')]}))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != compiled.PURE_ENV}
    if pure is not None:
        env[compiled.PURE_ENV] = pure
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True, timeout=60)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_pure_python_is_asked_for_with_the_environment_variable() -> None:
    result = _imports_in_a_child("1")
    files = result["files"]
    assert isinstance(files, dict) and set(files) == set(compiled.MODULES)
    assert all(str(path).endswith(".py") for path in files.values())
    # no compiled module, not even mypyc's runtime library; other extensions load (uvloop)
    assert result["compiled"] == [] and result["runtime"] == []


def test_zero_or_empty_is_not_a_request_for_pure_python() -> None:
    built = [name for name in compiled.MODULES if _extension_beside(name)]
    for value in ("0", ""):
        result = _imports_in_a_child(value)
        assert result["compiled"] == built


def test_no_built_module_is_older_than_its_source() -> None:
    # Python imports the extension module: after an edit, the old code would run (and be
    # tested) until the build is redone. scripts/test.sh rebuilds first (install.sh).
    if not compiled.pure_requested():
        assert compiled.stale_modules() == [], "run scripts/build_compiled.py"


def test_a_source_newer_than_its_build_is_found(tmp_path: Path) -> None:
    package = tmp_path / "rdscard" / "pdu"
    package.mkdir(parents=True)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    built, source = package / f"send_data{suffix}", package / "send_data.py"
    runtime = tmp_path / f"{compiled.RUNTIME}{suffix}"
    for path in (built, source, runtime):
        path.write_bytes(b"")
    os.utime(built, (1_000_000, 1_000_000))
    os.utime(runtime, (1_500_000, 1_500_000))
    os.utime(source, (2_000_000, 2_000_000))
    pdu = sys.modules["rdscard.pdu"]
    saved = list(pdu.__path__)
    pdu.__path__[:] = [str(package)]
    try:
        assert "rdscard.pdu.send_data" in compiled.stale_modules()
        os.utime(runtime, (3_000_000, 3_000_000))  # rebuilt: the loader itself unchanged
        assert "rdscard.pdu.send_data" not in compiled.stale_modules()
    finally:
        pdu.__path__[:] = saved
