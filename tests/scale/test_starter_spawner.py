"""QHubLocalSpawner with the server starter (on by default), in a real embedded platform: servers
are the starter's children with exactly their own ids, environment and cgroup; stop, a dead starter
and a hub restart work as with a new Python per server.

Own users sst* (uids 49510-49519, group 49590), removed at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qhub_hub.local.starter_client import KEPT_VARIABLES
from tests.local.support import Platform, public_dir, remove_test_accounts, remove_tree, write_config
from tests.support.net import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="real Unix users (root)")

PREFIX, ID_MIN, ID_MAX = "sst", 49500, 49599
USERS = {"sstann": {"uid": 49510, "primary_group": "sstusers"},
         "sstben": {"uid": 49511, "primary_group": "sstusers"}}
PROFILES = [{"display_name": "Small", "slug": "small", "default": True,
             "kubespawner_override": {"cpu_limit": 1, "mem_limit": "1G"}},
            # sets a variable the interpreter reads at its own start: a forked server could not honour it
            {"display_name": "Unbuffered", "slug": "unbuffered",
             "kubespawner_override": {"cpu_limit": 1, "mem_limit": "1G",
                                      "environment": {"PYTHONUNBUFFERED": "1"}}}]


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    remove_test_accounts(PREFIX, ID_MIN, ID_MAX)
    root = public_dir("sst")
    platform = Platform(root, write_config(root, users=USERS, groups={"sstusers": 49590},
                                           profiles=PROFILES, ssh={"enabled": False},
                                           dask_gateway={"enabled": False}, cull={"enabled": False}),
                        ssh=False)
    try:
        platform.up()
        yield platform
    finally:
        platform.down()
        remove_test_accounts(PREFIX, ID_MIN, ID_MAX)
        remove_tree(root)


def server_pid(platform: Platform, name: str) -> int:
    _, model = platform.api("GET", f"/users/{name}")
    return model["servers"][""]["state"]["pid"]


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def starter_of(pid: int) -> int:
    return int(proc_status(pid)["PPid"])


def wait_gone(pid: int, timeout: float = 30) -> None:
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout,
               what=f"process {pid} to end and be reaped", interval=0.1)


def stop(platform: Platform, name: str) -> None:
    platform.api("DELETE", f"/users/{name}/server")
    deadline = time.monotonic() + 60
    while platform.api("GET", f"/users/{name}")[1]["servers"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_servers_are_forked_by_the_starter_with_their_own_ids_env_and_cgroup(platform: Platform) -> None:
    for name in USERS:
        platform.start_server(name)
    pids = {name: server_pid(platform, name) for name in USERS}
    starter = {starter_of(pid) for pid in pids.values()}
    assert len(starter) == 1
    (starter_pid,) = starter
    assert "qhub_hub.local.server_starter" in cmdline(starter_pid)
    assert proc_status(starter_pid)["Uid"].split() == ["0"] * 4
    for name, pid in pids.items():
        uid = str(USERS[name]["uid"])
        status = proc_status(pid)
        assert status["Uid"].split() == [uid] * 4 and status["Gid"].split() == ["49590"] * 4
        assert cmdline(pid).startswith(f"{Path(sys.prefix)}/bin/jupyterhub-singleuser ")
        token = platform.token_for(name)
        other = next(n for n in USERS if n != name)
        # the environment as the server holds it (/proc/<pid>/environ shows the memory a process
        # started with; a forked server's is blank), through a terminal of its own
        code, out = asyncio.run(platform.terminal(
            name, token, f"printenv USER HOME JUPYTERHUB_SERVICE_PREFIX; env | grep -c {other}"))
        assert (code, out.split()) == (1, [name, str(platform.root / "home" / name),
                                           f"/user/{name}/", "0"]), out
        # /proc/<pid>/environ is the memory the starter had its environment in, which now holds
        # the end of the server's title: nothing there but that, or the starter's few variables
        title = cmdline(pid)
        for chunk in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            text = chunk.decode(errors="replace").strip()
            assert not text or text in title or text.split("=", 1)[0] in KEPT_VARIABLES, text
        assert f"/{name}" in Path(f"/proc/{pid}/cgroup").read_text()  # its own cgroup (key = name)
        code, body = platform.server_request(name, token, "GET", "api/me")
        assert code == 200 and body["identity"]["username"] == name, body


def test_stop_ends_and_reaps_the_server(platform: Platform) -> None:
    pid = server_pid(platform, "sstann")
    stop(platform, "sstann")
    wait_gone(pid)  # ended, and reaped by the starter (a zombie keeps /proc/<pid>)


def test_a_dead_starter_is_replaced_at_the_next_spawn(platform: Platform) -> None:
    old = starter_of(server_pid(platform, "sstben"))
    os.kill(old, signal.SIGKILL)
    time.sleep(0.5)
    platform.start_server("sstann")
    new = starter_of(server_pid(platform, "sstann"))
    assert new != old and "qhub_hub.local.server_starter" in cmdline(new)
    hub_log = (platform.state_dir / "logs" / "hub.log").read_text(errors="replace")
    assert f"The server starter (pid {old}) ended" in hub_log
    stop(platform, "sstann")


def test_servers_outlive_a_hub_restart_and_stop_by_pid(platform: Platform) -> None:
    pid = server_pid(platform, "sstben")  # started by the first starter, which was killed above
    platform.cli("restart")
    model = platform.wait_ready("sstben", timeout=60)
    assert model["servers"][""]["state"]["pid"] == pid
    os.kill(pid, 0)
    stop(platform, "sstben")
    wait_gone(pid)


def test_a_profile_setting_a_start_up_variable_gets_a_new_python_with_the_same_guarantees(
        platform: Platform) -> None:
    platform.start_server("sstann", profile="unbuffered")
    pid = server_pid(platform, "sstann")
    parent = starter_of(pid)
    assert "qhub_hub.local.server_starter" not in cmdline(parent)  # not forked by the starter
    assert "qhub_hub.server_start" in cmdline(pid)  # today's exec path
    status = proc_status(pid)
    assert status["Uid"].split() == ["49510"] * 4 and status["Gid"].split() == ["49590"] * 4
    assert "/sstann" in Path(f"/proc/{pid}/cgroup").read_text()
    token = platform.token_for("sstann")
    code, out = asyncio.run(platform.terminal("sstann", token, "printenv PYTHONUNBUFFERED USER"))
    assert (code, out.split()) == (0, ["1", "sstann"]), out
    hub_log = (platform.state_dir / "logs" / "hub.log").read_text(errors="replace")
    assert "Starting this server with a new Python: its environment sets PYTHONUNBUFFERED" in hub_log
    stop(platform, "sstann")
    wait_gone(pid)
