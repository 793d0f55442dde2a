"""Background processes of the embedded platform: start with a pid file and a log, check, stop.

A process counts as running when its pid is alive, not a zombie, and its command line still
mentions the state dir (a recycled pid of some other program is not mistaken for ours).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Component:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(repr=False)
    cwd: Path
    log: Path
    pid_file: Path
    marker: str  # a string its command line contains (the state dir)
    ready_url: str | None = None  # answers 200 when ready
    ready_port: int | None = None  # accepts TCP connections when ready
    ready_check: Callable[[], bool] | None = field(default=None, repr=False)  # True when ready
    start_attempts: int = 1  # starts tried when it exits during startup (a known upstream race)


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def alive(pid: int, marker: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if is_zombie(pid):
        return False
    if marker is None:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def running_pid(component: Component) -> int | None:
    try:
        pid = int(component.pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid, component.marker) else None


def start(component: Component) -> int:
    """Start `component` in its own session (it outlives the command that started it)."""
    component.log.parent.mkdir(parents=True, exist_ok=True)
    component.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(component.log, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {component.name}\n".encode())
        log.flush()
        proc = subprocess.Popen(list(component.argv), env=dict(component.env), cwd=component.cwd,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_default_signals)
    component.pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def _default_signals() -> None:
    # started from a background job (`cmd &`, nohup) SIGINT/SIGHUP may be ignored, and ignored
    # signals are inherited: the hub could then not stop its services with SIGINT
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def wait_ready(component: Component, pid: int, timeout: float = 120) -> None:
    """Until the component answers; RuntimeError with the end of its log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise RuntimeError(f"{component.name} exited during startup; end of {component.log}:\n"
                               f"{tail(component.log)}")
        if _answers(component):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{component.name} did not become ready in {timeout:.0f}s; end of "
                       f"{component.log}:\n{tail(component.log)}")


def wait_url(url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer at {url} in {timeout:.0f}s")


def _answers(component: Component) -> bool:
    if component.ready_check is not None and not component.ready_check():
        return False
    if component.ready_url:
        try:
            with urllib.request.urlopen(component.ready_url, timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False
    if component.ready_port:
        try:
            with socket.create_connection(("127.0.0.1", component.ready_port), timeout=2):
                return True
        except OSError:
            return False
    return True


def stop(component: Component, timeout: float = 30) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True if it was running."""
    pid = running_pid(component)
    if pid is None:
        component.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    try:  # whatever it left in its process group (a worker pool, a child that ignored SIGTERM)
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _reap(pid)
    component.pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
