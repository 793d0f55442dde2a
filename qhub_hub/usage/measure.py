"""What a cgroup measured (embedded mode): CPU-seconds and peak memory of a server, read just
before its cgroup is removed. Reading two small files: cheap.

cgroup v2: ``cpu.stat`` (usage_usec) and ``memory.peak`` (Linux >= 5.19). cgroup v1:
``cpuacct.usage`` (nanoseconds; only where cpu and cpuacct share a hierarchy, as systemd mounts
them) and ``memory.max_usage_in_bytes``. A figure the kernel does not offer stays None.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    cpu_seconds: float | None = None
    peak_memory: int | None = None


def _number(path: Path, key: str | None = None) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split()
        if key is None and len(parts) == 1:
            return int(parts[0]) if parts[0].isdigit() else None
        if key is not None and len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return None


def measure_cgroups(dirs: Iterable[str]) -> Measured:
    cpu: float | None = None
    peak: int | None = None
    for d in map(Path, dirs):
        usage_usec = _number(d / "cpu.stat", "usage_usec")
        if usage_usec is not None:
            cpu = usage_usec / 1e6
        usage_ns = _number(d / "cpuacct.usage")
        if usage_ns is not None and cpu is None:
            cpu = usage_ns / 1e9
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            value = _number(d / name)
            if value is not None:
                peak = max(peak or 0, value)
    return Measured(cpu, peak)
