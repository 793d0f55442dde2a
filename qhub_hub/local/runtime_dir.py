"""Each user's private runtime folder: where their kernels' connection files and sockets live.

``<root>/<uid>`` (default ``/run/qhub-hub/<uid>``), mode 0700, owned by the user, below a root-owned
0755 ``<root>``: no other user can create, replace or enter it. The server gets it as
``JUPYTER_RUNTIME_DIR`` and runs kernels over ZeroMQ's IPC transport, so a kernel's channels are
unix sockets in this folder (``kernel-<id>-ipc-<n>``) instead of loopback TCP ports. A short root
keeps socket paths below the 107-byte limit of unix socket addresses.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from .procs import is_zombie

RUNTIME_ROOT = "/run/qhub-hub"


def ensure_runtime_dir(root: str | os.PathLike, uid: int, gid: int) -> str:
    """Create (or repair) ``<root>/<uid>``: a real folder, 0700, owned by uid:gid. Returns its path."""
    base = Path(root)
    base.mkdir(mode=0o755, parents=True, exist_ok=True)
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise OSError(f"{base} must be a folder owned by root and writable only by root")
    path = base / str(uid)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISDIR(info.st_mode):  # a symlink or a file: never follow
        path.unlink()
        info = None
    if info is None:
        os.mkdir(path, 0o700)
    elif info.st_uid != uid:  # a recycled uid: nothing of the old owner stays reachable
        shutil.rmtree(path)
        os.mkdir(path, 0o700)
    os.chown(path, uid, gid, follow_symlinks=False)
    os.chmod(path, 0o700)
    return str(path)


def remove_idle_runtime_dirs(root: str | os.PathLike = RUNTIME_ROOT) -> list[int]:
    """Remove ``<root>/<uid>`` of every uid that has no process left (`local down`); returns them.

    A uid with a running process keeps its folder (its kernels' files may be in use, maybe by
    another platform on this machine); a later start makes the folder again."""
    base = Path(root)
    if not base.is_dir():
        return []
    live = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and not is_zombie(int(entry.name)):  # exited, not yet reaped
            try:
                live.add(entry.stat().st_uid)
            except OSError:
                continue
    removed = []
    for child in base.iterdir():
        if child.name.isdigit() and int(child.name) not in live and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
            removed.append(int(child.name))
    return removed
