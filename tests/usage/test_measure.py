"""CPU-seconds and peak memory read from a real cgroup (the embedded mode's per-server cgroups)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qhub_hub.local.limits import CgroupLimiter, Limits
from qhub_hub.usage.measure import measure_cgroups

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or CgroupLimiter.probe() is not None,
                                reason="needs root and a writable memory/cpu cgroup")

WORK = ("x = bytearray(96 * 2**20)\nimport time\nend = time.process_time() + 0.4\n"
        "while time.process_time() < end: pass\n")


def test_a_server_cgroup_reports_its_peak_memory_and_cpu_when_the_kernel_offers_them():
    group = f"qhub-usage-test-{os.getpid()}"
    limiter = CgroupLimiter(group)
    plan = limiter.prepare("ususer", Limits(mem_limit=512 * 2**20))
    try:
        proc = subprocess.Popen([sys.executable, "-c", f"import os, sys; sys.stdin.read(1)\n{WORK}"],
                                stdin=subprocess.PIPE)
        CgroupLimiter.attach(plan, proc.pid)
        proc.communicate(b"x", timeout=60)  # joined before it allocates and computes
        measured = measure_cgroups(plan.dirs)
        assert measured.peak_memory is not None and measured.peak_memory >= 96 * 2**20
        layout_has_cpu_usage = any(
            os.path.exists(f"{d}/cpu.stat") and "usage_usec" in open(f"{d}/cpu.stat").read()  # noqa: SIM115
            or os.path.exists(f"{d}/cpuacct.usage") for d in plan.dirs)
        if layout_has_cpu_usage:
            assert measured.cpu_seconds is not None and measured.cpu_seconds >= 0.35
        else:  # v1 with cpu and cpuacct apart (as here): no per-cgroup CPU time to read
            assert measured.cpu_seconds is None
    finally:
        CgroupLimiter.release(plan.dirs)
        CgroupLimiter.remove_parent(group)
