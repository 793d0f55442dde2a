"""Starting a process as exactly the plan's ids, inside its limits, or not at all."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from qhub_hub.local.accounts import AccountSpec, ensure_account
from qhub_hub.local.limits import CgroupLimiter, Limits
from qhub_hub.local.process import EX_GATE_CLOSED, ProcessSpec, close_gate, open_gate, start_process

from .support import public_dir, remove_lt_accounts, remove_tree

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

GROUPS = {"ltusers": 41100, "ltanalysts": 41101}


@pytest.fixture(scope="module")
def alice():
    root = public_dir("process")
    ensure_account(AccountSpec("ltalice", 41001, 41100, "ltusers", (("ltanalysts", 41101),),
                               str(root), "ltalice"), GROUPS)
    os.chown(root, 41001, 41100)
    yield root
    remove_lt_accounts()
    remove_tree(root)


def spec(root: Path, *argv: str, **changes) -> ProcessSpec:
    base = dict(argv=argv, env={"PATH": "/usr/bin:/bin", "HOME": str(root)}, cwd=str(root),
                uid=41001, gid=41100, groups=(41100, 41101))
    return ProcessSpec(**{**base, **changes})


def run(root: Path, script: str, timeout: float = 30, **changes) -> tuple[int, str]:
    log = root / f"{uuid.uuid4().hex}.log"
    proc, _ = start_process(spec(root, "/bin/sh", "-c", script, **changes), log_path=str(log))
    code = proc.wait(timeout)
    return code, log.read_text()


def test_the_process_has_exactly_the_ids(alice):
    code, out = run(alice, "id -u; id -g; id -G; cat /proc/self/status | grep -E '^(Uid|Gid|Groups)'; pwd")
    assert code == 0, out
    assert out.split("\n") == ["41001", "41100", "41100 41101", "Uid:\t41001\t41001\t41001\t41001",
                               "Gid:\t41100\t41100\t41100\t41100", "Groups:\t41100 41101 ",
                               str(alice), ""]


def test_root_groups_are_not_inherited(alice):
    code, out = run(alice, "id -G", groups=(41100,))
    assert (code, out) == (0, "41100\n")


def test_a_failed_setgroups_fails_the_start_and_runs_nothing(alice):
    marker = alice / "ran"
    # a root process without CAP_SETGID (as in a container that dropped it): setgroups fails
    script = textwrap.dedent(f"""
        from qhub_hub.local.process import ProcessSpec, ProcessStartError, start_process
        spec = ProcessSpec(argv=("/bin/touch", {str(marker)!r}), env={{}}, cwd="/", uid=41001,
                           gid=41100, groups=(41100, 41101))
        try:
            start_process(spec)
        except ProcessStartError as e:
            print(e)
        else:
            print("started")
    """)
    proc = subprocess.run(["setpriv", "--bounding-set", "-setgid", "--inh-caps", "-setgid", sys.executable,
                           "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == (
        "could not start the server as uid 41001, gid 41100, groups [41100, 41101]: Operation not "
        "permitted. Switching to a user's ids needs root: run the hub as root (or use the single-user "
        "demo mode). Nothing was run with other ids."), proc.stderr
    time.sleep(0.2)
    assert not marker.exists()


def test_the_gate_holds_the_command_until_opened(alice):
    out = alice / "gated.txt"
    proc, gate = start_process(spec(alice, "/bin/sh", "-c", f"echo ran > {out}"), gated=True)
    time.sleep(0.3)
    assert proc.poll() is None and not out.exists()
    open_gate(gate)
    assert proc.wait(10) == 0 and out.read_text() == "ran\n"

    proc, gate = start_process(spec(alice, "/bin/sh", "-c", f"echo ran > {out}.2"), gated=True)
    close_gate(gate)
    assert proc.wait(10) == EX_GATE_CLOSED and not Path(f"{out}.2").exists()


ALLOCATE = "python3 -c 'import sys; b = bytearray(int(sys.argv[1]) * 2**20); b[::4096] = b\"x\" * len(b[::4096])' "


@pytest.fixture
def limiter():
    limiter = CgroupLimiter(f"qhub-test-{uuid.uuid4().hex[:8]}")
    if not limiter.available:
        pytest.skip(f"no cgroup on this machine: {limiter.problem}")
    yield limiter
    for d in limiter.layout.values():
        os.rmdir(d)


def test_the_memory_limit_holds_the_whole_server(alice, limiter):
    plan = limiter.prepare("ltalice", Limits(mem_limit=96 * 2**20, cpu_limit=0.5))
    log = alice / "mem.log"
    script = f"{ALLOCATE} 32 && echo small-ok; cat /proc/self/cgroup; {ALLOCATE} 400; echo big=$?"
    proc, gate = start_process(spec(alice, "/bin/sh", "-c", script), log_path=str(log), gated=True)
    CgroupLimiter.attach(plan, proc.pid)
    open_gate(gate)
    assert proc.wait(60) == 0
    out = log.read_text()
    assert "small-ok" in out
    assert "big=137" in out  # the kernel's OOM killer (SIGKILL) stopped the child over the limit
    assert f"memory:{limiter.layout['memory'].removeprefix('/sys/fs/cgroup/memory')}/ltalice" in out
    assert Path(plan.dirs[1], "cpu.cfs_quota_us").read_text().strip() == "50000"
    CgroupLimiter.release(plan.dirs)
    assert not any(Path(d).exists() for d in plan.dirs)


def test_without_cgroups_memory_is_limited_per_process(alice):
    code, out = run(alice, f"{ALLOCATE} 400; echo big=$?", address_space=256 * 2**20)
    assert code == 0 and "MemoryError" in out and "big=1" in out
