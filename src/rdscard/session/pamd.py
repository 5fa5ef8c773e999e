"""The PAM service file shipped with rdscard, and installing it.

The file is package data (``rdscard/session/pam.d/rdscard``). PAM falls back
to the ``other`` service when ``/etc/pam.d/<service>`` is missing, which on
Debian would silently apply a different policy, so the session leader checks
for the file first and says how to install it.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from rdscard.errors import RdscardError

SERVICE_NAME = "rdscard"
PAM_DIRS = (Path("/etc/pam.d"), Path("/usr/lib/pam.d"))


def shipped_service_file() -> Path:
    """The PAM service file inside the installed package."""
    return Path(str(resources.files("rdscard.session") / "pam.d" / SERVICE_NAME))


def install_pam_service(dest: Path = Path("/etc/pam.d"), *, name: str = SERVICE_NAME,
                        overwrite: bool = False) -> Path:
    """Copy the shipped PAM service to ``dest/name`` (mode 0644); returns its path.

    An existing file is kept (an administrator may have edited it) unless
    ``overwrite`` is true.
    """
    target = dest / name
    if target.exists() and not overwrite:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    temporary = dest / f".{name}.rdscard-new"
    shutil.copyfile(shipped_service_file(), temporary)
    os.chmod(temporary, 0o644)
    os.replace(temporary, target)
    return target


def check_service(service: str, dirs: tuple[Path, ...] = PAM_DIRS) -> Path:
    """The service file PAM will read for ``service``; a clear error when there is none."""
    for directory in dirs:
        candidate = directory / service
        if candidate.is_file():
            return candidate
    raise RdscardError(
        f"the PAM service {service!r} is not installed ({dirs[0] / service} is missing): "
        f"install it: rdscard session install-pam --name {service} "
        f"(or cp {shipped_service_file()} {dirs[0] / service})"
    )
