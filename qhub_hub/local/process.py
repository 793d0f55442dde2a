"""Start a process as exactly the plan's ids, or not at all.

`ProcessSpec` is pure data (argv, env, ids, limits); `start_process` runs it. The ids are switched by
the kernel calls `setgroups`, `setregid` and `setreuid` (Popen's ``extra_groups``/``group``/``user``),
whose failure is reported back to the parent; then, in the child and before `exec`, the real,
effective and saved uid and gid and the supplementary groups are read back and compared with the
spec. Any failure or mismatch fails the start with `ProcessStartError`: the process never runs
with other ids.

With a cgroup to join, the command is preceded by a gate (``/bin/sh`` waiting on a pipe): the parent
moves the process into its cgroup first and only then opens the gate, so nothing of the server
runs outside its limits.
"""

from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

GATE = 'read -r _ || exit 75; exec "$@" </dev/null'  # the gate is the child's stdin
EX_GATE_CLOSED = 75


class ProcessStartError(RuntimeError):
    """The process could not be started with the requested ids and limits."""


@dataclass(frozen=True)
class ProcessSpec:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    cwd: str
    uid: int | None  # None: stay who we are (the single-Unix-user demo mode)
    gid: int | None
    groups: tuple[int, ...] | None  # exact supplementary groups (the primary gid included)
    umask: int = 0o022
    address_space: int | None = None  # RLIMIT_AS, bytes (machines without cgroups)
    cpus: frozenset[int] | None = None  # CPU affinity (machines without cgroups)

    def describe(self) -> str:
        if self.uid is None:
            return "as the hub's own user"
        return f"as uid {self.uid}, gid {self.gid}, groups {list(self.groups or ())}"


def _child_setup(spec: ProcessSpec) -> Callable[[], None]:
    """Runs in the child after the id switch, before exec: verify ids, apply per-process limits."""
    want_groups = sorted(set(spec.groups or ()))

    def setup() -> None:
        if spec.uid is not None:
            problems = []
            if os.getresuid() != (spec.uid,) * 3:
                problems.append(f"uids are {os.getresuid()}")
            if os.getresgid() != (spec.gid,) * 3:
                problems.append(f"gids are {os.getresgid()}")
            if sorted(set(os.getgroups())) != want_groups:
                problems.append(f"groups are {sorted(os.getgroups())}")
            if problems:
                os.write(2, f"qhub-hub: refusing to run {spec.describe()}: "
                            f"{'; '.join(problems)}\n".encode())
                raise ProcessStartError("ids do not match")
        if spec.address_space:
            resource.setrlimit(resource.RLIMIT_AS, (spec.address_space, spec.address_space))
        if spec.cpus:
            os.sched_setaffinity(0, spec.cpus)

    return setup


def start_process(spec: ProcessSpec, *, log_path: str | None = None,
                  gated: bool = False) -> tuple[subprocess.Popen, int | None]:
    """Start `spec`; returns (process, write end of the gate or None).

    With `gated`, the process waits until `open_gate(fd)` (or exits 75 when the fd is closed
    unwritten). `log_path`: where stdout and stderr go (appended); None: inherited.
    """
    argv = list(spec.argv)
    read_fd = write_fd = None
    if gated:
        read_fd, write_fd = os.pipe()
        argv = ["/bin/sh", "-c", GATE, "qhub-gate", *argv]
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - handed to the child
    kwargs: dict = dict(env=dict(spec.env), cwd=spec.cwd, umask=spec.umask, start_new_session=True,
                        preexec_fn=_child_setup(spec),
                        stdin=subprocess.DEVNULL if read_fd is None else read_fd)
    if log is not None:
        kwargs.update(stdout=log, stderr=subprocess.STDOUT)
    if spec.uid is not None:
        kwargs.update(user=spec.uid, group=spec.gid, extra_groups=list(spec.groups or ()))
    try:
        try:
            proc = subprocess.Popen(argv, **kwargs)
        except BaseException:
            if write_fd is not None:
                os.close(write_fd)
            raise
    except subprocess.SubprocessError as e:  # the child's own check (preexec) refused
        raise ProcessStartError(
            f"refused to start the server {spec.describe()}: after switching ids the process did "
            f"not have exactly those ids (details in the server log). Nothing was run.") from e
    except PermissionError as e:
        raise ProcessStartError(
            f"could not start the server {spec.describe()}: {e.strerror}. Switching to a user's "
            f"ids needs root: run the hub as root (or use the single-user demo mode). Nothing "
            f"was run with other ids.") from e
    except OSError as e:
        raise ProcessStartError(f"could not start the server {spec.describe()}: {e}") from e
    finally:
        if log is not None:
            log.close()
        if read_fd is not None:
            os.close(read_fd)
    return proc, write_fd


def open_gate(write_fd: int) -> None:
    try:
        os.write(write_fd, b"go\n")
    finally:
        os.close(write_fd)


def close_gate(write_fd: int) -> None:
    """Close the gate unopened: the gated process exits without running the command."""
    os.close(write_fd)
