"""QHubLocalBackend as root: working directories owned by the user, processes started as the user.

Uses numeric ids 42050-42059 (no accounts needed for ownership and setuid) and folders under
/var/tmp; nothing outside them is touched.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from dask_gateway_server.backends.local import LocalBackend
from dask_gateway_server.utils import FrozenAttrDict

from qhub_hub.gateway.local_backend import QHubLocalBackend, RefusedToStart

from .harness import base_folder, remove_tree

UID, GID, OTHER_GID = 42050, 42051, 42052

pytestmark = pytest.mark.usefixtures("require_root")


@pytest.fixture
def base() -> Path:
    path = base_folder("qhub-gw-backend-")
    yield path
    remove_tree(path)


def cluster(name: str = "c0ffee", **config) -> SimpleNamespace:
    settings = {"uid": UID, "gid": GID, "supplemental_gids": [OTHER_GID], "unix_name": "gwalice",
                "environment": {"PATH": "/env/bin:/usr/bin", "CONDA_PREFIX": "/env"}, **config}
    return SimpleNamespace(name=name, username="Alice@Example.com", tls_cert=b"CERT", tls_key=b"KEY",
                           token="t", config=FrozenAttrDict(settings), state={})


def test_upstream_local_backend_chowns_characters_of_the_key_path(base: Path) -> None:
    """Why we subclass: upstream passes each character of the TLS paths to chown (as root: '/')."""
    recorded: list[str] = []

    class Recording(LocalBackend):
        def set_file_permissions(self, paths, username):  # record instead of chown
            recorded.extend(paths)

    backend = Recording(clusters_directory=str(base / "clusters"))
    workdir = backend.setup_working_directory(cluster())
    assert "/" in recorded  # root would chown / to the user
    assert str(Path(workdir) / ".certs" / "dask.pem") not in recorded


def test_working_directory_is_the_users_and_nothing_else_changes(base: Path) -> None:
    root_before = os.stat("/")
    backend = QHubLocalBackend(clusters_directory=str(base / "clusters"))
    workdir = Path(backend.setup_working_directory(cluster()))
    assert workdir == base / "clusters" / "c0ffee"
    expected = {
        workdir: 0o700,
        workdir / ".certs": 0o700,
        workdir / "logs": 0o700,
        workdir / ".certs" / "dask.crt": 0o600,
        workdir / ".certs" / "dask.pem": 0o600,
    }
    for path, mode in expected.items():
        info = os.lstat(path)
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (UID, GID, mode), path
    assert (workdir / ".certs" / "dask.pem").read_bytes() == b"KEY"
    clusters = os.stat(base / "clusters")
    assert (clusters.st_uid, stat.S_IMODE(clusters.st_mode)) == (0, 0o711)  # names not listable
    after = os.stat("/")
    assert (after.st_uid, after.st_gid, after.st_mode) == (root_before.st_uid, root_before.st_gid,
                                                           root_before.st_mode)
    backend.cleanup_working_directory(str(workdir))
    assert not workdir.exists()


def test_working_directory_in_a_temporary_folder(base: Path) -> None:
    backend = QHubLocalBackend()
    workdir = Path(backend.setup_working_directory(cluster()))
    try:
        assert os.stat(workdir).st_uid == UID
        assert os.stat(workdir / ".certs" / "dask.pem").st_uid == UID
    finally:
        backend.cleanup_working_directory(str(workdir))


@pytest.mark.parametrize(("config", "message"), [
    ({"uid": None, "gid": None}, "has no uid/gid in its config"),
    ({"uid": 0}, "would run as root"),
    ({"gid": 0}, "would run as root"),
])
def test_never_as_root(base: Path, config: dict, message: str) -> None:
    backend = QHubLocalBackend(clusters_directory=str(base / "clusters"))
    with pytest.raises(RefusedToStart, match=message):
        backend.setup_working_directory(cluster(**config))
    with pytest.raises(RefusedToStart, match=message):
        backend.make_preexec_fn(cluster(**config))
    assert not (base / "clusters" / "c0ffee").exists()


@pytest.mark.parametrize("mode", [0o777, 0o755])  # writable, or cluster names listable by others
def test_clusters_directory_writable_or_listable_by_others_is_refused(base: Path, mode: int) -> None:
    (base / "clusters").mkdir(mode=mode)
    (base / "clusters").chmod(mode)
    backend = QHubLocalBackend(clusters_directory=str(base / "clusters"))
    with pytest.raises(RefusedToStart, match="not writable by group or others"):
        backend.setup_working_directory(cluster())


async def test_processes_run_as_the_user_with_the_given_environment(base: Path) -> None:
    backend = QHubLocalBackend(clusters_directory=str(base / "clusters"),
                               api_url="http://127.0.0.1:1/api")
    c = cluster()
    c.state["workdir"] = backend.setup_working_directory(c)
    env = backend.get_env(c)
    assert env["USER"] == env["LOGNAME"] == "gwalice"
    assert env["PATH"] == "/env/bin:/usr/bin"  # the handler's, not the gateway's
    assert "VIRTUAL_ENV" not in env and "PYTHONPATH" not in env
    code = "import os; print(os.getuid(), os.getgid(), sorted(os.getgroups()), os.getcwd())"
    pid = await backend.start_process(c, [sys.executable, "-c", code], {**env, "PATH": "/usr/bin"}, "probe")
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            break
        await asyncio.sleep(0.05)
    log = Path(c.state["workdir"], "logs", "probe.log").read_text()
    assert log.split() == [str(UID), str(GID), f"[{OTHER_GID}]", c.state["workdir"]]
    backend.cleanup_working_directory(c.state["workdir"])


def test_workers_start_without_their_own_dashboard_and_as_copies_of_their_nanny(base: Path) -> None:
    """The cheaper worker start (README, "How fast a Dask cluster starts"); each setting can be
    turned back, and a cluster's own environment_variables choose the start method first."""
    backend = QHubLocalBackend(clusters_directory=str(base / "clusters"), api_url="http://127.0.0.1:1/api")
    c = cluster(worker_cmd=["/env/bin/python", "-m", "dask", "worker"], worker_threads=1,
                worker_memory=2**30)
    c.state["workdir"] = str(base / "c0ffee")  # only named, never made
    command = backend.get_worker_command(c, "w1", "tls://127.0.0.1:1")
    assert command[:5] == ["/env/bin/python", "-m", "dask", "worker", "tls://127.0.0.1:1"]
    assert "--no-dashboard" in command and "--dashboard" not in command
    assert command[command.index("--preload") + 1].endswith("qhub_peer_guard.py")
    env = backend.get_worker_env(c)
    assert env["DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"] == "fork"
    assert "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD" not in backend.get_scheduler_env(c)

    chosen = cluster(environment={"PATH": "/env/bin", "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD": "spawn"})
    chosen.state["workdir"] = c.state["workdir"]
    assert backend.get_worker_env(chosen)["DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"] == "spawn"

    upstream = QHubLocalBackend(clusters_directory=str(base / "clusters"), api_url="http://127.0.0.1:1/api",
                                worker_dashboard=True, worker_start_method="spawn")
    command = upstream.get_worker_command(c, "w1", "tls://127.0.0.1:1")
    assert "--dashboard" in command and "--no-dashboard" not in command
    assert upstream.get_worker_env(c)["DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"] == "spawn"
    with pytest.raises(Exception, match="worker_start_method"):
        QHubLocalBackend(worker_start_method="vfork")


def test_schedulers_load_the_prompt_heartbeat_after_the_gateways_own_preload(base: Path) -> None:
    backend = QHubLocalBackend(clusters_directory=str(base / "clusters"), api_url="http://127.0.0.1:1/api")
    c = cluster(scheduler_cmd=["/env/bin/python", "-m", "dask", "scheduler"], adaptive_period=3,
                idle_timeout=0)
    command = backend.get_scheduler_command(c)
    preloads = [command[i + 1] for i, arg in enumerate(command) if arg == "--preload"]
    assert preloads[0] == "dask_gateway.scheduler_preload"  # it makes the service this one uses
    assert [Path(p).name for p in preloads[1:]] == ["qhub_peer_guard.py", "qhub_prompt_heartbeat.py"]


async def test_the_prompt_heartbeat_is_sent_once_at_setup_and_a_failure_is_left_to_the_loop(caplog) -> None:
    """Loaded by path as distributed loads it: `dask_setup` sends the gateway service's heartbeat
    once; without that service, or when the beat fails, the scheduler starts all the same."""
    import importlib.util

    from qhub_hub.gateway.preload import PROMPT_HEARTBEAT

    spec = importlib.util.spec_from_file_location("qhub_prompt_heartbeat_test", PROMPT_HEARTBEAT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Service:
        def __init__(self, error: Exception | None = None) -> None:
            self.beats, self.error = 0, error

        async def heartbeat(self) -> None:
            self.beats += 1
            if self.error:
                raise self.error

    service = Service()
    await module.dask_setup(SimpleNamespace(services={"gateway": service}))
    assert service.beats == 1
    failing = Service(ConnectionRefusedError("gateway down"))
    await module.dask_setup(SimpleNamespace(services={"gateway": failing}))
    assert failing.beats == 1
    assert "the first heartbeat failed (gateway down); the heartbeat loop retries" in caplog.text
    await module.dask_setup(SimpleNamespace(services={}))
    assert "no dask-gateway service on this scheduler" in caplog.text
