"""Running commands as steps that say what they do, how long they took, and where to look on failure."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path


class ClusterError(Exception):
    """A step failed; the message names the step and what to do (shown to the user without traceback)."""


def say(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


@contextmanager
def step(name: str):
    """Print `name ...`, then `name: done in N s`; on failure the error names the step."""
    say(f"{name} ...")
    started = time.monotonic()
    try:
        yield
    except ClusterError as e:
        raise ClusterError(f"{name}: {e}") from None
    say(f"{name}: done in {time.monotonic() - started:.1f} s")


def run(cmd: Sequence[str | Path], *, log: Path | None = None, cwd: Path | None = None,
        env: dict | None = None, input: bytes | None = None) -> str:
    """Run a command to completion; its output goes to `log` (or is returned). Raise ClusterError on failure."""
    cmd = [str(c) for c in cmd]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            out.write(f"\n$ {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.run(cmd, cwd=cwd, env=env, input=input, stdout=out, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-25:]
            raise ClusterError(f"`{' '.join(cmd[:3])} ...` failed (exit {proc.returncode}); end of {log}:\n"
                               + "\n".join(tail))
        return ""
    proc = subprocess.run(cmd, cwd=cwd, env=env, input=input, capture_output=True)
    if proc.returncode != 0:
        raise ClusterError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()[-2000:]}")
    return proc.stdout.decode(errors="replace")
