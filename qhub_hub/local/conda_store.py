"""The embedded platform's conda-store: a real conda-store-server and worker, SQLite, behind the hub.

`local up` runs them when `conda_store.enabled` and conda-store is installed (its own environment,
``$QHUB_PREFIX/conda-store``, made by scripts/setup.d/conda-store.sh):

- ``conda-store``: the server on 127.0.0.1:<conda_store_port> under the prefix
  ``/services/conda-store/``; it is the hub service ``conda-store``, so the hub's proxy serves it at
  ``<platform>/services/conda-store/`` and people log in to it with their hub account (the
  Services menu opens its UI);
- ``conda-store-worker``: builds environments into ``conda_store.environments_root``
  (``<root>/<namespace>/envs/<name>``), where user servers find them as kernels and the gateway as
  Dask worker environments;
- the hub submits the config's environments at start (`conda_store.hub_service`; unchanged specs
  are left alone) and logs one line per environment.

conda-store imports the `conda` library. When its environment has no real conda (PyPI does not
ship it), the stand-in `qhub_hub/conda_store/conda_shim` goes on its path and `up` says so: specs
are checked and stored, and every build fails at its first step, a ``conda`` command
(``<state>/conda-store/no-conda``) that says why, in conda-store's build log (UI and API) and in
the hub's log. Builds also fail, the same visible way, when conda channels cannot be
reached. Nothing waits for a build.

``<state>/conda-store/embedded.json`` records what `up` started, for the hub's config.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..conda_store.hub_service import SERVICE_NAME, conda_store_service, user_access_scopes
from . import procs
from .settings import PlatformSettings

STATE_NAME = "embedded.json"
CONFIG_NAME = "conda_store_config.py"
SHIM = Path(__file__).resolve().parent.parent / "conda_store" / "conda_shim"
URL_PREFIX = f"/services/{SERVICE_NAME}/"
SECRET_KEYS = ("conda_store_jwt", "conda_store_hub_token", "conda_store_oauth_secret")


def conda_store_env() -> Path:
    """conda-store's own environment, next to the platform's (setup.d/conda-store.sh)."""
    return Path(sys.prefix) / "conda-store"


def unavailable_reason(env: Path | None = None) -> str | None:
    env = env or conda_store_env()
    if not (env / "bin" / "conda-store-server").exists():
        return (f"conda-store-server is not installed in {env} (run `bash scripts/setup.sh`, "
                "which installs it)")
    return None


def has_real_conda(env: Path | None = None) -> bool:
    python = (env or conda_store_env()) / "bin" / "python"
    probe = subprocess.run([str(python), "-I", "-c", "import conda.models.match_spec"],
                           capture_output=True, timeout=60)
    return probe.returncode == 0


@dataclass(frozen=True)
class EmbeddedCondaStore:
    """What `up` started, as the hub's config needs it (saved as embedded.json, root-only)."""

    url: str  # the server as the hub reaches it, with the prefix: the API base
    service_url: str  # the hub service's url (no prefix: the proxy keeps the path)
    oauth_redirect_uri: str
    oauth_secret: str
    hub_token: str
    uses_standin: bool

    def hub_service(self) -> dict[str, Any]:
        return conda_store_service(api_token=self.oauth_secret, oauth_redirect_uri=self.oauth_redirect_uri,
                                   url=self.service_url)

    def user_scopes(self) -> list[str]:
        return user_access_scopes()


def describe(settings: PlatformSettings, secrets: Mapping[str, str], uses_standin: bool) -> EmbeddedCondaStore:
    base = f"http://127.0.0.1:{settings.conda_store_port}"
    return EmbeddedCondaStore(
        url=base + URL_PREFIX, service_url=base,
        oauth_redirect_uri=f"{settings.public_url}{URL_PREFIX}oauth_callback/",
        oauth_secret=secrets["conda_store_oauth_secret"], hub_token=secrets["conda_store_hub_token"],
        uses_standin=uses_standin)


def environment(settings: PlatformSettings, secrets: Mapping[str, str], uses_standin: bool) -> dict[str, str]:
    """The variables `qhub_hub.conda_store.server_config.settings_from_environment` reads."""
    store = describe(settings, secrets, uses_standin)
    env = {
        "QHUB_CONFIG": settings.config_path,
        "QHUB_LAST_GOOD_CONFIG": str(settings.last_good_config),
        "CONDA_STORE_DATABASE_URL": f"sqlite:///{settings.conda_store_dir / 'conda-store.sqlite'}",
        "CONDA_STORE_JWT_SECRET": secrets["conda_store_jwt"],
        "QHUB_CONDA_STORE_HUB_TOKEN": store.hub_token,
        "CONDA_STORE_ADDRESS": "127.0.0.1",
        "CONDA_STORE_LISTEN_PORT": str(settings.conda_store_port),
        "CONDA_STORE_URL_PREFIX": URL_PREFIX,
        "CONDA_STORE_BEHIND_PROXY": "true",
        "JUPYTERHUB_URL": settings.public_url,
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{settings.hub_port}",
        "CONDA_STORE_OAUTH_CLIENT_SECRET": store.oauth_secret,
        "CONDA_STORE_OAUTH_CALLBACK_URL": store.oauth_redirect_uri,
        "CONDA_STORE_WORKER_CONCURRENCY": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if uses_standin:
        env["PYTHONPATH"] = str(SHIM)
        env["QHUB_CONDA_STORE_NO_CONDA"] = str(settings.conda_store_dir / NO_CONDA)
    return env


NO_CONDA = "no-conda"
NO_CONDA_TEXT = """#!/bin/sh
# conda-store's conda command while conda is not installed for it (qhub_hub.local.conda_store)
echo "qhub-hub: this machine's conda-store cannot build environments: conda and mamba are not installed" \\
     "in its environment ({env}); conda is not on PyPI. Install conda and mamba there, or point" \\
     "conda_store.url at a conda-store that can build." >&2
exit 1
"""


CONFIG_TEXT = """\
# conda-store's config for qhub-hub's embedded mode; written by `qhub-hub local up` at every start.
# Settings come from the environment (qhub_hub.conda_store.server_config.settings_from_environment);
# the qhub config is the file's, or its last good copy while the file is invalid (said in the log).
import os
import sys

from qhub_hub.conda_store.server_config import configure, settings_from_environment
from qhub_hub.last_good import load_with_fallback

settings = settings_from_environment()
loaded = load_with_fallback(settings.qhub_config_file)
if loaded.from_copy:
    print("qhub-hub: " + loaded.note(settings.qhub_config_file), file=sys.stderr)
configure(c, loaded.config, settings)  # noqa: F821
if os.environ.get("QHUB_CONDA_STORE_NO_CONDA"):  # no conda here: builds fail saying so
    c.CondaStore.conda_command = os.environ["QHUB_CONDA_STORE_NO_CONDA"]  # noqa: F821
"""


def prepare(settings: PlatformSettings, secrets: Mapping[str, str]) -> EmbeddedCondaStore:
    """Write conda-store's config and embedded.json; returns what the hub needs."""
    folder = settings.conda_store_dir
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # its database and logs are root's
    (folder / CONFIG_NAME).write_text(CONFIG_TEXT)
    store = describe(settings, secrets, uses_standin=not has_real_conda())
    _write_private(folder / STATE_NAME, json.dumps(asdict(store), indent=1) + "\n")
    (folder / NO_CONDA).write_text(NO_CONDA_TEXT.format(env=conda_store_env()))
    os.chmod(folder / NO_CONDA, 0o755)
    return store


def forget(settings: PlatformSettings) -> None:
    """No conda-store this time: the hub must not register a stale one."""
    (settings.conda_store_dir / STATE_NAME).unlink(missing_ok=True)


def load(settings: PlatformSettings) -> EmbeddedCondaStore | None:
    path = settings.conda_store_dir / STATE_NAME
    if not path.exists():
        return None
    return EmbeddedCondaStore(**json.loads(path.read_text()))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# --- processes ---------------------------------------------------------------------------------


def components(settings: PlatformSettings, base_env: Mapping[str, str], secrets: Mapping[str, str],
               store: EmbeddedCondaStore) -> list[procs.Component]:
    """The server, then the worker (it uses the database the server creates)."""
    env_dir, folder = conda_store_env(), settings.conda_store_dir
    env = {**base_env, "PATH": f"{env_dir / 'bin'}:{base_env.get('PATH', '')}",
           **environment(settings, secrets, store.uses_standin)}
    config = str(folder / CONFIG_NAME)
    server = procs.Component(
        "conda-store", [str(env_dir / "bin" / "conda-store-server"), "--config", config], env, folder,
        settings.log_dir / "conda-store.log", settings.run_dir / "conda-store.pid", str(settings.root),
        ready_url=f"{store.url}api/v1/")
    database = folder / "conda-store.sqlite"
    worker = procs.Component(
        "conda-store-worker", [str(env_dir / "bin" / "conda-store-worker"), "--config", config], env,
        folder, settings.log_dir / "conda-store-worker.log", settings.run_dir / "conda-store-worker.pid",
        str(settings.root), ready_check=lambda: worker_has_run(database),
        # conda-store's worker runs celery beat in-process; on the SQLite broker the two can race
        # to create the 'celery' queue row (UNIQUE constraint failed: kombu_queue.name) and the
        # worker exits. Upstream's race: starting it again gets past it.
        start_attempts=3)
    return [server, worker]


def worker_has_run(database: Path) -> bool:
    """The server refuses specs (500) until the worker has recorded the disk's free space."""
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
            return bool(db.execute("SELECT free_storage FROM conda_store_configuration "
                                   "WHERE free_storage IS NOT NULL").fetchall())
    except sqlite3.Error:
        return False


# --- in the hub ----------------------------------------------------------------------------------


def start_sync(settings: PlatformSettings, config: Any, log: Any = None) -> Any:
    """Submit the config's environments to the embedded conda-store (in the hub's event loop);
    None when there is no conda-store or nothing to submit."""
    import asyncio

    store = load(settings)
    if store is None or not config.declared_environments:
        return None
    try:
        asyncio.get_running_loop()  # JupyterHub loads its config inside its event loop
    except RuntimeError:
        return None
    from ..conda_store.hub_service import start_background_sync

    # waits for the builds it started, so that each one's outcome (and a failure's reason) is in
    # the hub's log; the hub never waits for this task
    return start_background_sync(config, url=store.url, token=store.hub_token, log=log,
                                 retry_interval=5.0, wait=1800)
