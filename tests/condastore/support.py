"""A real conda-store server (and worker) on loopback, and environments made where it builds them.

conda-store runs from its own environment ($prefix/conda-store, made by
scripts/setup.d/conda-store.sh) with SQLite and local storage, configured by our own
`qhub_hub.conda_store.server_config.configure`. It imports the `conda` library, which no registry
here provides: the platform's stand-in (`qhub_hub/conda_store/conda_shim`, as the embedded mode uses
when conda is missing) is put on the server's PYTHONPATH, never anywhere else.
No channel is indexed, and builds fail cleanly ('mamba' not found): a test that needs a built
environment makes one at the path conda-store would build to (`make_environment`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import textwrap
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

from tests.support.net import free_port, wait_for_http

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STANDIN = REPO / "qhub_hub" / "conda_store" / "conda_shim"
CONDA_STORE_ENV = Path(sys.prefix) / "conda-store"
SERVER_SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])


class CondaStoreProcess:
    """conda-store-server (+ conda-store-worker with ``worker=True``) for one qhub config file."""

    def __init__(self, workdir: Path, qhub_config_file: Path, *, worker: bool = False,
                 jupyterhub_url: str | None = None, oauth_client_secret: str | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.qhub_config_file = qhub_config_file
        self.worker = worker
        self.jupyterhub_url = jupyterhub_url
        self.oauth_client_secret = oauth_client_secret
        self.port = free_port()
        self.hub_token = secrets.token_hex(16)  # what the hub holds (roles.hub_role_bindings)
        self.admin_token = secrets.token_hex(16)  # test-only operator token: admin everywhere
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        settings = {
            "qhub_config_file": str(self.qhub_config_file),
            "database_url": f"sqlite:///{self.workdir / 'conda-store.sqlite'}",
            "jwt_secret": secrets.token_hex(32),
            "hub_token": self.hub_token,
            "address": "127.0.0.1",
            "port": self.port,
            "jupyterhub_url": self.jupyterhub_url,
            "oauth_client_secret": self.oauth_client_secret,
            "storage_threshold": 0,
            "worker_concurrency": 1,
            "enable_ui": False,
        }
        return textwrap.dedent(f"""
            import json
            from qhub_hub.config import load_config
            from qhub_hub.conda_store.server_config import CondaStoreServerSettings, configure

            settings = CondaStoreServerSettings(**json.loads({json.dumps(settings)!r}))
            configure(c, load_config(settings.qhub_config_file), settings)  # noqa: F821
            # test only: an operator token, to set up namespaces nobody else may write
            c.AuthenticationBackend.predefined_tokens = {{  # noqa: F821
                **c.AuthenticationBackend.predefined_tokens,  # noqa: F821
                {self.admin_token!r}: {{"primary_namespace": "operator",
                                        "role_bindings": {{"*/*": ["admin"]}}}},
            }}
        """)

    def _spawn(self, program: str, log_name: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": f"{STANDIN}:{REPO}", "PYTHONUNBUFFERED": "1"}
        env.pop("VIRTUAL_ENV", None)
        log = (self.workdir / log_name).open("ab")
        proc = subprocess.Popen(
            [str(CONDA_STORE_ENV / "bin" / program), "--config", str(self.workdir / "config.py")],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self, timeout: float = 90) -> CondaStoreProcess:
        if not (CONDA_STORE_ENV / "bin" / "conda-store-server").exists():
            raise RuntimeError(f"{CONDA_STORE_ENV} has no conda-store-server: run "
                               "`bash scripts/setup.sh --test` (scripts/setup.d/conda-store.sh)")
        (self.workdir / "config.py").write_text(self.config_text())
        self._spawn("conda-store-server", "server.log")
        try:
            wait_for_http(f"{self.url}/api/v1/", timeout=timeout, ok_statuses=(200,))
            if self.worker:  # after the server: it creates the database the worker uses
                self._start_worker(timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"conda-store did not start; log:\n{self.log()[-4000:]}") from None
        return self

    def _start_worker(self, timeout: float, attempts: int = 3) -> None:
        # conda-store's worker runs celery beat in-process; on the SQLite broker the two can race
        # to create the 'celery' queue row (IntegrityError, UNIQUE constraint failed:
        # kombu_queue.name) and the worker exits. Upstream's race, not ours: start it again.
        for attempt in range(1, attempts + 1):
            self._spawn("conda-store-worker", "worker.log")
            try:
                return self._wait_for_worker(timeout)
            except TimeoutError:
                if self.procs[-1].poll() is None or attempt == attempts:
                    raise
                self.procs.pop()

    def _wait_for_worker(self, timeout: float) -> None:
        # The server refuses specs (500) until the worker has recorded the disk's free space.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with closing(sqlite3.connect(self.workdir / "conda-store.sqlite")) as db:
                if db.execute("SELECT free_storage FROM conda_store_configuration").fetchall():
                    return
            if self.procs[-1].poll() is not None:
                break
            time.sleep(0.2)
        raise TimeoutError("conda-store-worker")

    def stop(self) -> None:
        for proc in reversed(self.procs):  # the worker first, killed: its queue is throwaway
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL if proc is not self.procs[0] else signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.procs.clear()

    def log(self, name: str = "server.log") -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def api(self, method: str, path: str, token: str | None = None, body: object = None
            ) -> tuple[int, dict]:
        """A raw REST call (the tests check the client against it)."""
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def make_environment(prefix: Path, *, ipykernel: str | None = "kernelspec") -> Path:
    """A Python environment at `prefix`, standing in for a conda-store build there.

    A venv of the system Python whose site-packages reach the project's (a .pth file), so it can
    run ipykernel without copying it. `ipykernel`: "kernelspec" writes the kernel.json that
    installing ipykernel puts in ``share/jupyter/kernels/python3``; "package" links the ipykernel
    package into the environment's site-packages (no kernel.json); None: no ipykernel at all.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = prefix / "lib" / version / "site-packages"
    if ipykernel is not None:
        (site / "qhub-test-reach-project.pth").write_text(f"{SERVER_SITE_PACKAGES}\n")
    if ipykernel == "kernelspec":
        kernel_dir = prefix / "share" / "jupyter" / "kernels" / "python3"
        kernel_dir.mkdir(parents=True)
        (kernel_dir / "kernel.json").write_text(json.dumps({
            "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)", "language": "python",
            "metadata": {"debugger": True}}))
    elif ipykernel == "package":
        (site / "ipykernel").symlink_to(SERVER_SITE_PACKAGES / "ipykernel")
    return prefix
