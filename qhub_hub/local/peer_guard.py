"""The kernels' peer guard (``peer_guard.c``): built once, then preloaded into every kernel.

A user server's kernels (and what they start, e.g. the debugger's debugpy adapter) get
``LD_PRELOAD=<library>`` (`guarded_env`, used by `kernel_manager.GuardedKernelManager`), so any TCP
port they listen on answers only the same uid and root; see the C file for how and its limits.

The library is compiled from the C file with the machine's C compiler (``build-essential``,
installed by scripts/setup.sh) into ``<sys.prefix>/lib/qhub-hub/``, a root-owned folder users can
read but not change, under a name holding the source's digest: a changed source is built anew,
an unchanged one never again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

SOURCE = Path(__file__).with_name("peer_guard.c")
VARIABLE = "QHUB_PEER_GUARD"  # the server's environment names the library for its kernel manager


class PeerGuardError(RuntimeError):
    """The guard cannot be built; the message says what to install."""


def library_path(prefix: str | Path = sys.prefix) -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    return Path(prefix) / "lib" / "qhub-hub" / f"peer-guard-{digest}.so"


@cache
def peer_guard_library(prefix: str = sys.prefix) -> str:
    """The path of the built library (built now if needed); `PeerGuardError` when it cannot be."""
    target = library_path(prefix)
    if target.is_file():
        return str(target)
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise PeerGuardError("no C compiler to build the kernels' peer guard: install build-essential "
                             "(scripts/setup.sh does)")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".peer-guard-", suffix=".so")
    os.close(fd)
    try:
        result = subprocess.run([compiler, "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o", tmp,
                                 str(SOURCE), "-ldl"], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise PeerGuardError(f"building the kernels' peer guard failed:\n{result.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(target)


def guarded_env(env: dict[str, str], library: str) -> dict[str, str]:
    """`env` with `library` first in LD_PRELOAD (whatever else was preloaded stays)."""
    others = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p != library]
    return {**env, "LD_PRELOAD": " ".join([library, *others])}
