"""Schedulers and nannies of clusters in the server environment are forked by the gateway's own
pre-imported starter (QHubLocalBackend.preimported_starter); those of clusters in built environments
by a starter of that user in that environment, run as the user (QHubLocalBackend.user_starters).

A real hub and gateway (as root) with cgroups, real Unix users gwp* (ids 42300-42399, removed at the
end), real Dask processes; the processes are found through /proc.
"""

from __future__ import annotations

import ast
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask_gateway import Gateway
from dask_gateway.auth import JupyterHubAuth

from qhub_hub.gateway.dask_preimport import FIXED_AT_IMPORT

from .harness import GatewayStack, UnixAccounts, base_folder, make_global_dask_environment, remove_tree

GROUPS = {"gwpusers": 42300, "gwpteam": 42310}
USERS = {"gwpam": (42301, "gwpusers", ["gwpteam"]), "gwpcy": (42302, "gwpusers", [])}
CGROUP_NAME = "qhub-gwpre-test"


def qhub_config(base: Path) -> dict:
    return {
        "security": {
            "groups": {name: {"gid": gid} for name, gid in GROUPS.items()},
            "users": {name: {"uid": uid, "primary_group": primary, "secondary_groups": others}
                      for name, (uid, primary, others) in USERS.items()},
        },
        "profiles": {"dask_worker": {"Small Worker": {
            "worker_cores": 1, "worker_cores_limit": 1, "worker_memory": "1G",
            "worker_memory_limit": "1G", "max_workers": 2}}},
        "storage": {"home_root": str(base / "home")},
        "conda_store": {"environments_root": str(base / "conda")},
    }


@pytest.fixture(scope="module")
def stack(require_root) -> Iterator[GatewayStack]:
    base = base_folder("qhub-gwpre-")
    accounts = UnixAccounts(GROUPS, USERS, homes=base / "home")
    stack = GatewayStack(base, qhub_config(base), cgroup_name=CGROUP_NAME)
    try:
        accounts.create()
        make_global_dask_environment(base)
        stack.start()
        stack.add_hub_users(list(USERS), {})
        yield stack
    finally:
        stack.stop()
        accounts.remove()
        remove_tree(base)
        for controller in Path("/sys/fs/cgroup").iterdir():  # the platform cgroup of this test
            for d in sorted(controller.rglob(CGROUP_NAME), reverse=True):
                for child in d.iterdir():
                    if child.is_dir():
                        child.rmdir()
                d.rmdir()


def gateway_for(stack: GatewayStack, user: str) -> Gateway:
    assert stack.gateway is not None
    return Gateway(address=stack.gateway.address, proxy_address=stack.gateway.proxy_address,
                   auth=JupyterHubAuth(api_token=stack.token(user)))


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def ids(pid: int) -> tuple[tuple[int, ...], tuple[int, ...], set[int]]:
    fields = status(pid)
    return (tuple(int(v) for v in fields["Uid"].split()), tuple(int(v) for v in fields["Gid"].split()),
            {int(v) for v in fields["Groups"].split()})


def parent(pid: int) -> int:
    return int(status(pid)["PPid"])


def cgroups(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def gateway_children(gateway_pid: int, marker: bytes) -> list[int]:
    """The gateway's child processes whose command line has `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                if marker in cmdline and parent(int(entry.name)) == gateway_pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def dask_starters(gateway_pid: int) -> list[int]:
    """The gateway's own (root) Dask starter."""
    return [pid for pid in gateway_children(gateway_pid, b"qhub_hub.gateway.dask_preimport")
            if pid not in user_starters(gateway_pid)]


def user_starters(gateway_pid: int) -> list[int]:
    """Users' Dask starters (``server_starter.py --as-user``)."""
    return gateway_children(gateway_pid, b" --as-user ")


def gone(pid: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.2)
    return False


def test_server_environment_cluster_is_forked_with_exact_ids_and_cgroups(stack: GatewayStack) -> None:
    def identity():
        import os
        import sys

        import dask.config

        return (os.getpid(), os.getppid(), sys.prefix, os.environ.get("GWP_MARK"),
                dask.config.get("distributed.comm.require-encryption"),
                dask.config.get("distributed.worker.multiprocessing-method"))

    assert stack.proc is not None
    uid, gid, team = 42301, 42300, 42310
    with gateway_for(stack, "gwpam") as gw:
        with gw.new_cluster(profile="Small Worker", environment="server",
                            environment_variables={"GWP_MARK": "seen"}) as cluster:
            cluster.scale(1)
            with cluster.get_client() as client:
                client.wait_for_workers(1, timeout=120)
                assert client.submit(sum, [1, 2, 3]).result() == 6
                scheduler, _, prefix, mark, encrypted, _ = client.run_on_scheduler(identity)
                [(worker, nanny, _, worker_mark, _, method)] = client.run(identity).values()
                assert (prefix, mark, encrypted) == (sys.prefix, "seen", True)
                assert (worker_mark, method) == ("seen", "fork")

                starters = dask_starters(stack.proc.pid)
                assert len(starters) == 1, starters
                # scheduler and nanny: children of the gateway's starter, not of the gateway
                assert parent(scheduler) == starters[0]
                assert parent(nanny) == starters[0]
                assert parent(worker) == nanny
                for pid in (scheduler, nanny, worker):
                    assert ids(pid) == ((uid,) * 4, (gid,) * 4, {team}), pid
                assert f"gwpam@dask-{cluster.name}-scheduler" in cgroups(scheduler)
                assert f"gwpam@dask-{cluster.name}-worker-" in cgroups(nanny)
                assert f"gwpam@dask-{cluster.name}-worker-" in cgroups(worker)
                assert b"dask scheduler" in Path(f"/proc/{scheduler}/cmdline").read_bytes()
                assert starters[0] not in (scheduler, nanny)
                assert ids(starters[0])[0] == (0,) * 4  # the starter itself runs no Dask code

                client.restart()  # the nanny forks a new worker
                client.wait_for_workers(1, timeout=120)
                [(new_worker, new_nanny, *_)] = client.run(identity).values()
                assert new_nanny == nanny and new_worker != worker
                assert ids(new_worker) == ((uid,) * 4, (gid,) * 4, {team})
                assert client.submit(sum, [4, 5]).result() == 9
    # stopping the cluster ends the processes the starter forked (they are reaped: no zombies)
    for pid in (scheduler, nanny, new_worker):
        assert gone(pid), (pid, status(pid))


def test_built_environment_clusters_are_forked_by_a_starter_of_that_user(stack: GatewayStack) -> None:
    """A conda-store environment is never imported by root: its schedulers and nannies come from a
    starter that runs as exactly the user, one per user, with every process placed in its cgroup."""
    def identity():
        import os
        import sys

        return os.getpid(), os.getppid(), sys.prefix, os.environ.get("GWP_MARK")

    assert stack.proc is not None
    prefix = str(stack.base / "conda" / "global" / "envs" / "dask")
    seen: dict[str, tuple[int, int, int]] = {}
    for user, (uid, gid, groups) in {"gwpcy": (42302, 42300, set()), "gwpam": (42301, 42300, {42310})}.items():
        with gateway_for(stack, user) as gw:
            with gw.new_cluster(profile="Small Worker", environment="global/dask",
                                environment_variables={"GWP_MARK": user}) as cluster:
                cluster.scale(1)
                with cluster.get_client() as client:
                    client.wait_for_workers(1, timeout=120)
                    assert client.submit(sum, [1, 2]).result() == 3
                    scheduler, starter, scheduler_prefix, mark = client.run_on_scheduler(identity)
                    [(worker, nanny, worker_prefix, worker_mark)] = client.run(identity).values()
                    assert (scheduler_prefix, worker_prefix) == (prefix, prefix)
                    assert (mark, worker_mark) == (user, user)
                    assert starter in user_starters(stack.proc.pid)
                    assert parent(nanny) == starter and parent(worker) == nanny
                    # the starter itself: exactly the user, in its own cgroup, the environment's Python
                    assert ids(starter) == ((uid,) * 4, (gid,) * 4, groups)
                    assert f"{user}@dask-starter-" in cgroups(starter)
                    assert Path(f"/proc/{starter}/cmdline").read_bytes().startswith(
                        f"{prefix}/bin/python -P ".encode())
                    for pid in (scheduler, nanny, worker):
                        assert ids(pid) == ((uid,) * 4, (gid,) * 4, groups), pid
                    assert f"{user}@dask-{cluster.name}-scheduler" in cgroups(scheduler)
                    assert f"{user}@dask-starter-" not in cgroups(scheduler)
                    assert f"{user}@dask-{cluster.name}-worker-" in cgroups(nanny)
                    seen[user] = (starter, scheduler, nanny)
    assert seen["gwpcy"][0] != seen["gwpam"][0]  # never shared between users
    for starter, scheduler, nanny in seen.values():
        assert gone(scheduler) and gone(nanny)
        assert Path(f"/proc/{starter}").exists()  # kept for the user's next cluster there
    # a second cluster of the same user in the same environment: the same starter
    with gateway_for(stack, "gwpcy") as gw:
        with gw.new_cluster(profile="Small Worker", environment="global/dask") as cluster:
            with cluster.get_client() as client:
                assert client.run_on_scheduler(identity)[1] == seen["gwpcy"][0]


def test_a_dask_config_read_at_import_gets_a_fresh_interpreter(stack: GatewayStack) -> None:
    """A value distributed reads at import, set in the user's own Dask config: a fork would keep the
    starter's, so the scheduler is a new Python, which honours it."""
    def offload():
        import os

        from distributed.comm.utils import OFFLOAD_THRESHOLD

        return os.getppid(), OFFLOAD_THRESHOLD

    assert stack.proc is not None
    folder = stack.base / "home" / "gwpcy" / ".config" / "dask"
    folder.mkdir(parents=True, exist_ok=True)  # dask may have made it already
    (folder / "offload.yaml").write_text("distributed:\n  comm:\n    offload: 12345\n")
    for path in (folder.parent, folder, folder / "offload.yaml"):
        os.chown(path, 42302, 42300)
    try:
        with gateway_for(stack, "gwpcy") as gw:
            with gw.new_cluster(profile="Small Worker", environment="server") as cluster:
                with cluster.get_client() as client:
                    assert client.run_on_scheduler(offload) == (stack.proc.pid, 12345)
        assert "with a new Python: the Dask config sets distributed.comm.offload" in stack.gateway_log()
    finally:
        (folder / "offload.yaml").unlink()


def test_every_config_value_distributed_reads_at_import_is_checked() -> None:
    """Module-level `dask.config.get(...)` in distributed: each key is in FIXED_AT_IMPORT."""
    import distributed

    found = set()
    for path in Path(distributed.__file__).parent.rglob("*.py"):
        if "tests" in path.parts:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            for call in ast.walk(node):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and call.func.attr == "get" and ast.unparse(call.func.value) == "dask.config"
                        and call.args and isinstance(call.args[0], ast.Constant)):
                    found.add(call.args[0].value)
    assert found, "no module-level dask.config.get found: the check itself is broken"
    assert found <= set(FIXED_AT_IMPORT), sorted(found - set(FIXED_AT_IMPORT))


@pytest.mark.parametrize(("python", "extra_env", "enabled", "forked"), [
    (os.path.join(sys.prefix, "bin", "python"), {}, True, True),
    ("/envs/global/dask/bin/python", {}, True, False),  # a built environment: never imported by root
    (os.path.join(sys.prefix, "bin", "python"), {"PYTHONUNBUFFERED": "1"}, True, False),
    (os.path.join(sys.prefix, "bin", "python"), {}, False, False),
])
def test_which_processes_the_starter_forks(require_root, tmp_path: Path, python: str,
                                           extra_env: dict, enabled: bool, forked: bool) -> None:
    from types import SimpleNamespace

    from dask_gateway_server.utils import FrozenAttrDict

    from qhub_hub.gateway.local_backend import QHubLocalBackend

    backend = QHubLocalBackend(preimported_starter=enabled)
    cluster = SimpleNamespace(name="c1", username="gwpam", state={"workdir": str(tmp_path)},
                              config=FrozenAttrDict({"uid": 42301, "gid": 42300,
                                                     "supplemental_gids": [42310]}))
    request = backend._starter_request(cluster, [python, "-m", "dask", "scheduler", "--port", "0"],
                                       {"HOME": "/h", **extra_env}, "scheduler", ("/cg",), "/l.log")
    assert (request is not None) == forked
    if request is not None:
        assert request.argv == ["-m", "dask", "scheduler", "--port", "0"]
        assert (request.uid, request.gid, request.groups) == (42301, 42300, [42310])
        assert (request.cwd, request.cgroup_dirs, request.log_path) == (str(tmp_path), ["/cg"], "/l.log")
        assert request.env == {"HOME": "/h"}


async def test_a_starter_failure_fails_the_start_with_a_clear_message(require_root) -> None:
    """Nothing runs and the cluster start fails, naming the cause: a starter that cannot start, and a
    child that cannot take the user's working folder (before any Dask code)."""
    from types import SimpleNamespace

    from dask_gateway_server.utils import FrozenAttrDict

    from qhub_hub.gateway.local_backend import QHubLocalBackend, RefusedToStart
    from qhub_hub.local.starter_client import StarterClient

    base = base_folder("qhub-gwpre-fail-")
    try:
        backend = QHubLocalBackend(clusters_directory=str(base / "clusters"),
                                   api_url="http://127.0.0.1:1/api")
        cluster = SimpleNamespace(name="c2", username="gwpam", tls_cert=b"C", tls_key=b"K", token="t",
                                  state={}, config=FrozenAttrDict({"uid": 42301, "gid": 42300,
                                                                   "supplemental_gids": []}))
        cluster.state["workdir"] = backend.setup_working_directory(cluster)
        cmd = [os.path.join(sys.prefix, "bin", "python"), "-m", "dask", "scheduler"]
        backend.__dict__["_qhub_starter"] = StarterClient(None, None, "qhub_hub.gateway.no_such_module")
        with pytest.raises(RefusedToStart, match="could not start the scheduler of cluster c2: the server "
                                                 "starter did not start .*nothing of it was run"):
            await backend.start_process(cluster, cmd, {"HOME": "/"}, "scheduler")
        del backend.__dict__["_qhub_starter"]  # the real one
        os.chmod(cluster.state["workdir"], 0o700)
        os.chown(cluster.state["workdir"], 0, 0)  # the user cannot enter it
        with pytest.raises(RefusedToStart, match=r"could not start the worker-w of cluster c2: cannot "
                                                 r"enter .* as uid 42301 \(Permission denied\)"):
            await backend.start_process(cluster, cmd, {"HOME": "/"}, "worker-w")
        await backend.do_cleanup()
    finally:
        remove_tree(base)


def test_a_bokeh_setting_in_the_environment_gets_a_fresh_interpreter(monkeypatch) -> None:
    """Bokeh reads some of its settings at import (a fork would keep the starter's): any BOKEH_*
    variable sends the process to a new Python; without one, the child goes on."""
    import copy
    import multiprocessing

    import dask.config

    from qhub_hub.gateway import dask_preimport
    from qhub_hub.local.server_starter import NeedsFreshInterpreter

    # what the child step changes, given back to this process afterwards
    monkeypatch.setattr(multiprocessing.current_process(), "authkey", multiprocessing.current_process().authkey)
    monkeypatch.setattr(dask.config, "paths", list(dask.config.paths))
    monkeypatch.setattr(dask.config, "PATH", dask.config.PATH)
    saved = copy.deepcopy(dask.config.config)
    monkeypatch.delenv("DASK_CONFIG", raising=False)
    for name in [name for name in os.environ if name.startswith("BOKEH_")]:
        monkeypatch.delenv(name)
    try:
        dask_preimport.after_environment()  # nothing set: no refusal
        monkeypatch.setenv("BOKEH_PY_LOG_LEVEL", "debug")
        with pytest.raises(NeedsFreshInterpreter, match="sets BOKEH_PY_LOG_LEVEL, which Bokeh may read at import"):
            dask_preimport.after_environment()
    finally:
        dask.config.config.clear()
        dask.config.config.update(saved)
