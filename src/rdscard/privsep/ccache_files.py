"""A session's Kerberos credential cache on disk: destroyed at logoff, renewed on reconnect.

Each session's cache lives in a private directory under the runtime
directory's ``krb5``; the logon service (root) creates it for the account
and is the only one that removes or replaces it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def remove_ccache(ccname: str | None, runtime_dir: Path) -> None:
    """Destroy a session's credential cache (its private directory under ``runtime_dir/krb5``)."""
    if not ccname:
        return
    path = Path(ccname.removeprefix("FILE:"))
    base = runtime_dir / "krb5"
    if base in path.parents:
        shutil.rmtree(path.parent if path.parent != base else path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def replace_ccache(new: str, old: str, uid: int, gid: int) -> None:
    """Put the new sign-in's tickets into the old session's ccache (atomically), drop the new."""
    source = Path(new.removeprefix("FILE:"))
    target = Path(old.removeprefix("FILE:"))
    with contextlib.suppress(OSError):
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".ccache-")
        with os.fdopen(fd, "wb") as out:
            out.write(source.read_bytes())
        os.chown(temporary, uid, gid)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    shutil.rmtree(source.parent, ignore_errors=True)
