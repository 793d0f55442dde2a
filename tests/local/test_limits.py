"""Profile resources -> cgroup files (pure), and the fallback without cgroups."""

from __future__ import annotations

import os

import pytest

from qhub_hub.local.limits import CgroupPlan, Limits, cgroup_plan, own_cgroups, rlimit_fallback

PROFILE = Limits.from_values(mem_limit="4G", mem_guarantee="1G", cpu_limit=2, cpu_guarantee=0.5)


def test_limits_from_profile_values():
    assert PROFILE == Limits(mem_limit=4 * 2**30, mem_guarantee=2**30, cpu_limit=2.0, cpu_guarantee=0.5)
    assert Limits.from_values().empty and not PROFILE.empty


def test_cgroup_v1_plan():
    layout = {"memory": "/sys/fs/cgroup/memory/hub/qhub", "cpu": "/sys/fs/cgroup/cpu/qhub"}
    assert cgroup_plan(PROFILE, "alice", layout, 1) == CgroupPlan(
        dirs=("/sys/fs/cgroup/memory/hub/qhub/alice", "/sys/fs/cgroup/cpu/qhub/alice"),
        writes=(("/sys/fs/cgroup/memory/hub/qhub/alice/memory.limit_in_bytes", "4294967296"),
                ("/sys/fs/cgroup/memory/hub/qhub/alice/memory.soft_limit_in_bytes", "1073741824"),
                ("/sys/fs/cgroup/cpu/qhub/alice/cpu.cfs_period_us", "100000"),
                ("/sys/fs/cgroup/cpu/qhub/alice/cpu.cfs_quota_us", "200000"),
                ("/sys/fs/cgroup/cpu/qhub/alice/cpu.shares", "512")))


def test_cgroup_v2_plan():
    assert cgroup_plan(PROFILE, "alice", {"unified": "/sys/fs/cgroup/hub/qhub"}, 2) == CgroupPlan(
        dirs=("/sys/fs/cgroup/hub/qhub/alice",),
        writes=(("/sys/fs/cgroup/hub/qhub/alice/memory.max", "4294967296"),
                ("/sys/fs/cgroup/hub/qhub/alice/memory.swap.max", "0"),
                ("/sys/fs/cgroup/hub/qhub/alice/memory.low", "1073741824"),
                ("/sys/fs/cgroup/hub/qhub/alice/cpu.max", "200000 100000"),
                ("/sys/fs/cgroup/hub/qhub/alice/cpu.weight", "50")))


def test_only_what_the_profile_sets_is_written():
    plan = cgroup_plan(Limits(mem_limit=2**30), "bob", {"memory": "/m", "cpu": "/c"}, 1)
    assert plan.writes == (("/m/bob/memory.limit_in_bytes", "1073741824"),)


def test_this_process_cgroups_are_found():
    version, layout = own_cgroups()
    own = open("/proc/self/cgroup").read()
    if version == 1:
        memory = next(line.split(":", 2)[2] for line in own.splitlines() if ":memory:" in line)
        assert layout["memory"] == f"/sys/fs/cgroup/memory{memory}".rstrip("/")
    else:
        pytest.skip(f"cgroup version {version} here")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_fallback_pins_whole_cores_and_limits_address_space():
    cpus = sorted(os.sched_getaffinity(0))
    got = rlimit_fallback(Limits(mem_limit=2**30, cpu_limit=1.5 if len(cpus) > 2 else 1), uid=41001)
    assert got["as"] == 2**30
    assert len(got["cpus"]) == (2 if len(cpus) > 2 else 1) and got["cpus"] <= set(cpus)
    assert "cpus" not in rlimit_fallback(Limits(cpu_limit=len(cpus)), uid=1)
