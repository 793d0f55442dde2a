"""Pre-imported Dask starters in conda-store environments: one per user and environment, run as
that user.

A cluster in a conda-store ("built") environment started each scheduler and nanny as a new
Python of that environment: about 1.8 CPU seconds of imports for a scheduler (distributed, the
gateway's preload, Bokeh) and 0.7 for a nanny. The gateway's own pre-imported starter cannot
serve them: it is root, and importing a user-built environment as root would run that
environment's code (its packages, its ``.pth`` files) as root.

So each (user, environment) gets a starter of its own (`server_starter.py --as-user`), started by
root with exactly the user's uid, gid and groups before the environment's Python runs, in a
cgroup of its own. It imports that environment's Dask code once and forks the user's schedulers
and nannies of clusters in that environment. It is never shared between users or environments,
is replaced when the environment changes on disk, and ends when idle (`UserStarters`).

The gateway does not trust it: it is the user's process, which the user may control. Its answers
are bounded lines read with a timeout, without a thread (a stuck starter holds nothing of the
gateway's). The pid it names must be its own child, stopped, with exactly the user's ids (read
from /proc through a pidfd held meanwhile) before the gateway puts it into its cgroups and
resumes it. Anything else ends that starter, and the process is started as a new Python instead.
A user who tampers with their own starter can run only their own code as themselves, within the
starter's cgroup: nothing they could not do already.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..local import server_starter
from ..local.server_starter import StartRequest
from ..local.starter_client import FreshInterpreterNeeded, StarterError

STARTER_FILE = server_starter.__file__  # run by path: the environment need not have qhub-hub
DASK_PREIMPORT = "qhub_hub.gateway.dask_preimport"  # what every Dask starter pre-imports (root's too)
READY_TIMEOUT = 120.0  # its imports: a few CPU seconds on a busy machine
ANSWER_TIMEOUT = 30.0  # one fork and the child's steps
MAX_LINE = 64 * 1024
LOGGED_LINES = 200  # of a starter's own output, per starter; the rest is read and dropped
KEPT_VARIABLES = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ")  # of the first process's


class UserStarterFailed(RuntimeError):
    """The starter did not start, broke the protocol or named a process it may not; the message
    says what. Its process is started as a new Python instead."""


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str = ""  # the Unix account's, for cgroup names and logs


def exact_ids(identity: Identity, cgroup_dirs: tuple[str, ...]) -> Callable[[], None]:
    """preexec_fn: into the cgroups while still root (before anything of the user runs), then
    exactly the user's ids, before exec. A raise fails the start."""

    def preexec() -> None:
        for d in cgroup_dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        os.setgroups(list(identity.groups))
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)
        if os.getresuid() != (identity.uid,) * 3 or os.getresgid() != (identity.gid,) * 3:
            raise OSError("the process did not get exactly the user's ids")  # pragma: no cover

    return preexec


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def held_child_problems(status: dict[str, str], parent: int, identity: Identity) -> list[str]:
    """Why a process is not the starter's stopped child with exactly the user's ids (empty: it is)."""
    problems = []
    if status.get("PPid") != str(parent):
        problems.append(f"its parent is {status.get('PPid')}, not the starter ({parent})")
    if not status.get("State", "").startswith("T"):
        problems.append(f"it is not stopped ({status.get('State')})")
    if status.get("Uid", "").split() != [str(identity.uid)] * 4:
        problems.append(f"its uids are {status.get('Uid')}")
    if status.get("Gid", "").split() != [str(identity.gid)] * 4:
        problems.append(f"its gids are {status.get('Gid')}")
    if sorted({int(g) for g in status.get("Groups", "").split()}) != sorted(set(identity.groups)):
        problems.append(f"its groups are {status.get('Groups')}")
    return problems


@dataclass
class UserStarter:
    """One user's starter in one environment."""

    python: str
    identity: Identity
    env: dict[str, str] = field(repr=False)
    cgroup_dirs: tuple[str, ...] = ()
    log: logging.Logger = field(default_factory=lambda: logging.getLogger(__name__), repr=False)
    last_used: float = field(default_factory=time.monotonic)
    broken: str = ""  # why it may not be asked again (a request whose answer was not read)
    proc: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _reader: asyncio.StreamReader | None = field(default=None, repr=False)
    _writer: asyncio.StreamWriter | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _output: asyncio.Task | None = field(default=None, repr=False)
    _output_pipe: asyncio.ReadTransport | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self.broken

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        # its output through a pipe of ours, not asyncio's: asyncio's wait() would also wait for
        # every process that kept the pipe open (the user's, after a kill)
        output, output_end = os.pipe()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                self.python, "-P", STARTER_FILE, "--as-user", "--preimport", DASK_PREIMPORT,
                stdin=theirs.fileno(), stdout=output_end, stderr=output_end,
                env=self.env, cwd="/", start_new_session=True,
                preexec_fn=exact_ids(self.identity, self.cgroup_dirs))
        except (OSError, subprocess.SubprocessError) as e:  # the latter: from preexec_fn
            ours.close()
            os.close(output)
            raise UserStarterFailed(f"{self.python} could not be started as uid {self.identity.uid} "
                                    f"({e})") from None
        finally:
            theirs.close()
            os.close(output_end)
        lines = asyncio.StreamReader(limit=MAX_LINE)
        self._output_pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(lines), os.fdopen(output, "rb", 0))
        self._output = asyncio.ensure_future(self._relay_output(lines))
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours, limit=MAX_LINE)
        line = await self._read_line(READY_TIMEOUT, "to be ready")
        if line != b"ready\n":
            raise UserStarterFailed(f"the starter said {line[:200]!r} instead of ready")

    async def start_process(self, request: StartRequest) -> int:
        """Fork the process for `request`: its pid, stopped until `release`. StarterError: the
        child's own steps refused it (FreshInterpreterNeeded: it needs a new Python)."""
        if not self.alive or self._writer is None:
            raise UserStarterFailed("the starter is not running")
        async with self._lock:
            self.last_used = time.monotonic()
            try:
                self._writer.write(request.to_json())
                await self._writer.drain()
                line = await self._read_line(ANSWER_TIMEOUT, "to answer")
            except BaseException:
                # cancelled, or unreadable: its answer would be taken for the next request's
                self.broken = "a start ended before its answer was read"
                raise
        try:
            answer = json.loads(line)
        except ValueError:
            raise UserStarterFailed(f"the starter answered {line[:200]!r}") from None
        if not isinstance(answer, dict):
            raise UserStarterFailed(f"the starter answered {line[:200]!r}")
        if "error" in answer:
            error = str(answer["error"])[:2000]
            raise (FreshInterpreterNeeded if answer.get("fresh") else StarterError)(error)
        pid = answer.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
            raise UserStarterFailed(f"the starter answered {line[:200]!r}")
        return pid

    def release(self, pid: int, cgroup_dirs: tuple[str, ...]) -> None:
        """Check that `pid` is this starter's stopped child with exactly the user's ids, put it into
        `cgroup_dirs` and resume it; UserStarterFailed (and nothing done to it) otherwise."""
        assert self.proc is not None
        try:
            pidfd = os.pidfd_open(pid)  # the same process throughout, or an error below
        except OSError as e:
            raise UserStarterFailed(f"the process {pid} the starter named is gone ({e.strerror})") from None
        try:
            try:
                problems = held_child_problems(proc_status(pid), self.proc.pid, self.identity)
            except OSError as e:
                problems = [f"its status cannot be read ({e.strerror})"]
            if problems:
                raise UserStarterFailed(f"the starter named process {pid}, which is not its stopped "
                                        f"child as uid {self.identity.uid}: {'; '.join(problems)}")
            try:
                for d in cgroup_dirs:
                    Path(d, "cgroup.procs").write_text(str(pid))
                signal.pidfd_send_signal(pidfd, signal.SIGCONT)
            except OSError:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                raise
        finally:
            os.close(pidfd)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()  # its end of file: the starter returns
            self._writer = None
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()  # the user's process; its children are on their own already
            await self.proc.wait()
        if self._output is not None:
            self._output.cancel()
            self._output = None
        if self._output_pipe is not None:
            self._output_pipe.close()
            self._output_pipe = None

    async def _read_line(self, timeout: float, what: str) -> bytes:
        assert self._reader is not None
        try:
            line = await asyncio.wait_for(self._reader.readline(), timeout)
        except TimeoutError:
            raise UserStarterFailed(f"the starter took over {timeout:.0f} s {what}") from None
        except (ValueError, asyncio.LimitOverrunError, OSError) as e:
            raise UserStarterFailed(f"the starter's answer was unreadable ({e})") from None
        if not line.endswith(b"\n"):
            raise UserStarterFailed(f"the starter ended (status {self.proc and self.proc.returncode}); "
                                    "see the lines above in this log")
        return line

    async def _relay_output(self, lines: asyncio.StreamReader) -> None:
        """The starter's own output (import errors, mostly) into the gateway's log, bounded."""
        logged = 0
        while True:
            try:
                line = await lines.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue
            if not line:
                return
            if logged < LOGGED_LINES:
                logged += 1
                self.log.warning("Dask starter of uid %s in %s: %s", self.identity.uid,
                                 self.python, line[:500].decode(errors="replace").rstrip())


def starter_environment(python: str, process_env: dict[str, str]) -> dict[str, str]:
    """A starter's whole environment: the user's account variables from the first process's, and
    the environment's bin folder first on PATH (the rest is each child's own)."""
    env = {name: process_env[name] for name in KEPT_VARIABLES if name in process_env}
    env["PATH"] = f"{os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin"
    env.setdefault("LANG", "C.UTF-8")
    return env


StarterKey = tuple[int, str]  # (uid, the environment's python, resolved)


@dataclass
class UserStarters:
    """The gateway's starters, one per (user, environment): started on a first process there,
    replaced when the environment's folders change, stopped when idle or with the gateway."""

    idle_timeout: float
    make_cgroup: Callable[[Identity, str], tuple[str, ...]]  # a new starter's cgroup dirs
    release_cgroup: Callable[[tuple[str, ...]], None]
    log: logging.Logger = field(default_factory=lambda: logging.getLogger(__name__), repr=False)
    _running: dict[StarterKey, tuple[tuple, UserStarter]] = field(default_factory=dict, repr=False)
    _failed: dict[StarterKey, tuple] = field(default_factory=dict, repr=False)  # key -> layout
    _locks: dict[StarterKey, asyncio.Lock] = field(default_factory=dict, repr=False)

    async def get(self, python: str, identity: Identity, process_env: dict[str, str],
                  layout: tuple) -> UserStarter | None:
        """The running starter for this user and environment, started if needed; None where it
        cannot run (the reason is logged once per state of the environment's folders)."""
        key = (identity.uid, os.path.realpath(python))
        async with self._locks.setdefault(key, asyncio.Lock()):
            known = self._running.get(key)
            if known is not None:
                known_layout, starter = known
                if starter.alive and known_layout == layout and starter.identity == identity:
                    return starter
                reason = ("its environment changed on disk" if known_layout != layout else
                          "the user's groups changed" if starter.identity != identity else
                          starter.broken or f"it ended (status {starter.proc and starter.proc.returncode})")
                await self.discard(starter, reason)
            if self._failed.get(key) == layout:
                return None
            starter = UserStarter(python, identity, starter_environment(python, process_env), log=self.log)
            try:
                starter.cgroup_dirs = self.make_cgroup(identity, key[1])
                await starter.start()
            except (UserStarterFailed, OSError) as e:
                self._failed[key] = layout
                self.log.warning("No pre-imported Dask starter for uid %s in %s (%s): its clusters "
                                 "start new Pythons", identity.uid, python, e)
                await self._end(starter)
                return None
            except BaseException:  # cancelled while it started: not left running unknown
                await asyncio.shield(self._end(starter))
                raise
            self._failed.pop(key, None)
            self._running[key] = (layout, starter)
            self.log.info("Dask starter for uid %s in %s running (pid %s)", identity.uid, python,
                          starter.proc.pid if starter.proc else None)
            return starter

    async def discard(self, starter: UserStarter, reason: str) -> None:
        for key, (_, known) in list(self._running.items()):
            if known is starter:
                del self._running[key]
        self.log.info("Stopping the Dask starter for uid %s in %s: %s", starter.identity.uid,
                      starter.python, reason)
        await self._end(starter)

    async def stop_idle(self) -> None:
        now = time.monotonic()
        for _, starter in list(self._running.values()):
            if now - starter.last_used > self.idle_timeout:
                await self.discard(starter, f"unused for {self.idle_timeout:.0f} s")

    async def stop_all(self) -> None:
        for _, starter in list(self._running.values()):
            await self.discard(starter, "the gateway is stopping")

    async def _end(self, starter: UserStarter) -> None:
        await starter.stop()
        if starter.cgroup_dirs:
            try:
                await asyncio.to_thread(self.release_cgroup, starter.cgroup_dirs)
            except OSError as e:
                self.log.warning("Could not remove the cgroups %s: %s", list(starter.cgroup_dirs), e)
