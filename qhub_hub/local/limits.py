"""Profile resources on one machine: a cgroup per user server where the kernel lets us make one.

What is enforced, from the profile's `kubespawner_override`:

- with a writable cgroup (v1 memory+cpu controllers, or v2 with them delegated), a cgroup per server
  below the hub's own: `mem_limit` -> memory.limit_in_bytes / memory.max (the whole server, kernels
  included, is OOM-killed past it), `mem_guarantee` -> soft limit / memory.low, `cpu_limit` -> CFS
  quota (cpu.cfs_quota_us / cpu.max), `cpu_guarantee` -> cpu.shares / cpu.weight. When the server
  stops, whatever is left in its cgroup is killed and the cgroup removed.
- without one: `mem_limit` -> RLIMIT_AS per process (each process of the server may map at most
  that much; a weaker limit) and `cpu_limit` -> CPU affinity to ceil(cpu_limit) cores (whole cores
  only); guarantees are not enforced.
- never: GPUs (`extra_resource_limits`), node selectors and tolerations — one machine has no nodes.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..units import parse_bytes

CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD = 100_000


@dataclass(frozen=True)
class Limits:
    mem_limit: int | None = None  # bytes
    mem_guarantee: int | None = None
    cpu_limit: float | None = None  # cores
    cpu_guarantee: float | None = None

    @classmethod
    def from_values(cls, mem_limit=None, mem_guarantee=None, cpu_limit=None,  # noqa: ANN001
                    cpu_guarantee=None) -> Limits:
        return cls(
            mem_limit=parse_bytes(mem_limit) if mem_limit else None,
            mem_guarantee=parse_bytes(mem_guarantee) if mem_guarantee else None,
            cpu_limit=float(cpu_limit) if cpu_limit else None,
            cpu_guarantee=float(cpu_guarantee) if cpu_guarantee else None,
        )

    @property
    def empty(self) -> bool:
        return not (self.mem_limit or self.mem_guarantee or self.cpu_limit or self.cpu_guarantee)


@dataclass(frozen=True)
class CgroupPlan:
    """The cgroup directories of one server and the files to write in each (pure data)."""

    dirs: tuple[str, ...]
    writes: tuple[tuple[str, str], ...] = field(default=())  # (file path, value)


def cgroup_plan(limits: Limits, name: str, layout: dict[str, str], version: int) -> CgroupPlan:
    """Which cgroups to create for server `name` under `layout` (controller -> parent dir)."""
    writes: list[tuple[str, str]] = []
    if version == 2:
        d = f"{layout['unified']}/{name}"
        if limits.mem_limit:
            writes.append((f"{d}/memory.max", str(limits.mem_limit)))
            writes.append((f"{d}/memory.swap.max", "0"))
        if limits.mem_guarantee:
            writes.append((f"{d}/memory.low", str(limits.mem_guarantee)))
        if limits.cpu_limit:
            writes.append((f"{d}/cpu.max", f"{int(limits.cpu_limit * CFS_PERIOD)} {CFS_PERIOD}"))
        if limits.cpu_guarantee:
            writes.append((f"{d}/cpu.weight", str(max(1, min(10000, int(limits.cpu_guarantee * 100))))))
        return CgroupPlan((d,), tuple(writes))
    dirs = []
    if "memory" in layout:
        d = f"{layout['memory']}/{name}"
        dirs.append(d)
        if limits.mem_limit:
            writes.append((f"{d}/memory.limit_in_bytes", str(limits.mem_limit)))
        if limits.mem_guarantee:
            writes.append((f"{d}/memory.soft_limit_in_bytes", str(limits.mem_guarantee)))
    if "cpu" in layout:
        d = f"{layout['cpu']}/{name}"
        dirs.append(d)
        if limits.cpu_limit:
            writes.append((f"{d}/cpu.cfs_period_us", str(CFS_PERIOD)))
            writes.append((f"{d}/cpu.cfs_quota_us", str(int(limits.cpu_limit * CFS_PERIOD))))
        if limits.cpu_guarantee:
            writes.append((f"{d}/cpu.shares", str(max(2, int(limits.cpu_guarantee * 1024)))))
    return CgroupPlan(tuple(dirs), tuple(writes))


def own_cgroups(proc_cgroup: str | None = None) -> tuple[int, dict[str, str]]:
    """(cgroup version, controller -> this process's cgroup dir) for memory and cpu; {} if none."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    v1: dict[str, str] = {}
    unified = None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            unified = path
        for c in controllers.split(","):
            if c in ("memory", "cpu"):
                v1[c] = str(CGROUP_ROOT / c / path.lstrip("/")).rstrip("/")
    v1 = {c: d for c, d in v1.items() if Path(d).is_dir()}
    if v1:
        return 1, v1
    if unified is not None:
        base = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else CGROUP_ROOT / "unified"
        d = str(base / unified.lstrip("/")).rstrip("/")
        controllers = _read(f"{d}/cgroup.subtree_control").split()
        if {"memory", "cpu"} <= set(controllers):
            return 2, {"unified": d}
    return 0, {}


class CgroupLimiter:
    """Creates, joins and removes per-server cgroups below `<own cgroup>/<group_name>`."""

    def __init__(self, group_name: str = "qhub-servers", proc_cgroup: str | None = None):
        self.version, own = own_cgroups(proc_cgroup)
        self.layout = {c: f"{d}/{group_name}" for c, d in own.items()}
        self.problem = ""
        if self.version:
            try:
                for d in self.layout.values():
                    os.makedirs(d, exist_ok=True)
                if self.version == 2:  # let the per-server cgroups below use the controllers
                    Path(self.layout["unified"], "cgroup.subtree_control").write_text("+memory +cpu")
            except OSError as e:
                self.problem = f"cannot create cgroups below {own}: {e}"
                self.version = 0
        else:
            self.problem = "no writable memory/cpu cgroup for this process"

    @staticmethod
    def probe() -> str | None:
        """Why per-server cgroups cannot be made here, or None when they can (creates nothing)."""
        version, own = own_cgroups()
        if not version:
            return "no memory/cpu cgroup for this process"
        unwritable = [d for d in own.values() if not os.access(d, os.W_OK)]
        return f"cannot create cgroups below {unwritable}" if unwritable else None

    @property
    def available(self) -> bool:
        return self.version > 0

    def prepare(self, name: str, limits: Limits) -> CgroupPlan:
        plan = cgroup_plan(limits, name, self.layout, self.version)
        for d in plan.dirs:
            os.makedirs(d, exist_ok=True)
        for path, value in plan.writes:
            Path(path).write_text(value)
        return plan

    @staticmethod
    def attach(plan: CgroupPlan, pid: int) -> None:
        for d in plan.dirs:
            Path(d, "cgroup.procs").write_text(str(pid))

    @staticmethod
    def children(group_name: str) -> dict[str, list[str]]:
        """The cgroups below this platform's (`group_name`): name -> its dirs (one per controller).

        Names: ``<unix name>[.<server>]`` (servers), ``<unix name>@ssh`` (SSH sessions),
        ``<unix name>@dask-<cluster>-<process>`` (Dask schedulers and workers)."""
        _, own = own_cgroups()
        found: dict[str, list[str]] = {}
        for d in own.values():
            parent = Path(d, group_name)
            if parent.is_dir():
                for child in sorted(parent.iterdir()):
                    if child.is_dir():
                        found.setdefault(child.name, []).append(str(child))
        return found

    @staticmethod
    def remove_parent(group_name: str) -> None:
        """Remove the (empty) parent cgroups of this platform's servers."""
        _, own = own_cgroups()
        for d in own.values():
            try:
                os.rmdir(f"{d}/{group_name}")
            except OSError:
                pass

    @staticmethod
    def release(dirs: tuple[str, ...] | list[str], timeout: float = 5) -> None:
        """Kill what is left in the server's cgroups, then remove them."""
        deadline = time.monotonic() + timeout
        for d in dirs:
            while Path(d).is_dir():
                pids = [int(p) for p in _read(f"{d}/cgroup.procs").split()]
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


def rlimit_fallback(limits: Limits, uid: int) -> dict[str, object]:
    """Per-process limits for machines without cgroups: {'as': bytes, 'cpus': set of cpu ids}."""
    result: dict[str, object] = {}
    if limits.mem_limit:
        result["as"] = limits.mem_limit
    if limits.cpu_limit:
        cpus = sorted(os.sched_getaffinity(0))
        n = math.ceil(limits.cpu_limit)
        if n < len(cpus):
            start = uid % len(cpus)  # spread users over the cores
            result["cpus"] = {cpus[(start + i) % len(cpus)] for i in range(n)}
    return result


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
