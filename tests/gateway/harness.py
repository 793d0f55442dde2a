"""A real JupyterHub + a real dask-gateway-server (embedded-mode config) + real Unix users.

Used by the integration tests and by benchmarks/gateway.py. Everything lives in a fresh folder under
/var/tmp (mode 0755: the test users must traverse it, which a 0700 pytest tmp folder forbids).
Unix users and groups: ONLY names starting with ``gw`` and ids 42000-42999; removed on `close()`.

"Built" environments: conda-store would build them with conda, which cannot run here, so each is a
venv made with the project's Python at the path conda-store builds to
(``<root>/<namespace>/envs/<name>``), with a ``.pth`` naming the folders it should import from
(the project's site-packages, which holds dask, distributed and dask-gateway).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from qhub_hub.gateway.server_config import EmbeddedGateway, write_embedded_gateway_config
from tests.support.hub import HubProcess
from tests.support.net import free_port, wait_for_http
from tests.support.process import request_json

SITE_PACKAGES = sysconfig.get_paths()["purelib"]
OLD_DASK_VERSION = "2026.7.1"  # unpacked by scripts/setup.d/gateway.sh
OLD_DASK = Path(sys.prefix) / "share" / "qhub-hub" / "test-envs" / f"dask-{OLD_DASK_VERSION}"


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@dataclass
class UnixAccounts:
    """Real groups and users (names gw*, ids 42000-42999), removed by `remove()`."""

    groups: dict[str, int]
    users: dict[str, tuple[int, str, list[str]]]  # name -> (uid, primary group, other groups)
    homes: Path
    made_users: list[str] = field(default_factory=list)
    made_groups: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, gid in {**self.groups}.items():
            assert name.startswith("gw") and 42000 <= gid <= 42999
        for name, (uid, _, _) in self.users.items():
            assert name.startswith("gw") and 42000 <= uid <= 42999

    def create(self) -> UnixAccounts:
        self.remove(leftovers=True)
        for name, gid in self.groups.items():
            _run(["groupadd", "--gid", str(gid), name])
            self.made_groups.append(name)
        for name, (uid, primary, others) in self.users.items():
            home = self.homes / name
            cmd = ["useradd", "--uid", str(uid), "--gid", primary, "--no-user-group", "--no-create-home",
                   "--home-dir", str(home), "--shell", "/usr/sbin/nologin"]
            if others:
                cmd += ["--groups", ",".join(others)]
            _run([*cmd, name])
            self.made_users.append(name)
            home.mkdir(parents=True, exist_ok=True)
            os.chown(home, uid, self.groups[primary])
            home.chmod(0o700)
        return self

    def remove(self, leftovers: bool = False) -> None:
        """Delete our users and groups (`leftovers`: also ones a crashed earlier run left)."""
        users = list(self.users) if leftovers else self.made_users
        groups = list(self.groups) if leftovers else self.made_groups
        for name in users:
            subprocess.run(["userdel", name], capture_output=True)
        for name in groups:
            subprocess.run(["groupdel", name], capture_output=True)
        self.made_users.clear()
        self.made_groups.clear()


def make_environment(prefix: Path, import_from: list[str | Path]) -> Path:
    """A "built" environment at `prefix`: a venv of the project's Python importing `import_from`."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = next(prefix.glob("lib/python3*/site-packages"))
    if import_from:
        (site / "qhub-test-env.pth").write_text("".join(f"{p}\n" for p in import_from))
    for path in [prefix, *prefix.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return prefix


def make_global_dask_environment(base: Path) -> Path:
    """`global/dask` under `base`/conda, importing this project's packages, with every folder on
    the way open for the gateway's users to enter."""
    prefix = make_environment(base / "conda" / "global" / "envs" / "dask", [SITE_PACKAGES])
    for path in [base / "conda", base / "conda" / "global", base / "conda" / "global" / "envs"]:
        path.chmod(0o755)
    return prefix


def base_folder(prefix: str) -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    base.chmod(0o755)
    return base


@dataclass
class GatewayStack:
    """A hub with the gateway registered as its service, and the gateway process."""

    base: Path
    qhub_config: dict
    hub: HubProcess | None = None
    gateway: EmbeddedGateway | None = None
    proc: subprocess.Popen | None = None
    cgroup_name: str = ""  # QHubLocalBackend.cgroup_name (empty: no cgroups)

    @property
    def config_path(self) -> Path:
        return self.base / "qhub-config.yaml"

    def start(self) -> GatewayStack:
        self.config_path.write_text(yaml.safe_dump(self.qhub_config, sort_keys=False))
        self.config_path.chmod(0o644)
        token = secrets.token_hex(16)
        http_port, tcp_port, api_port = free_port(), free_port(), free_port()
        service = {"name": "dask-gateway", "api_token": token,
                   "url": f"http://127.0.0.1:{http_port}"}
        # a qhub hub: it serves the users' plans, which the gateway asks for with its token
        self.hub = HubProcess(self.base / "hub", extra_config=textwrap.dedent(f"""
            from qhub_hub import hub_settings
            c.JupyterHub.authenticator_class = "qhub-password"
            c.Authenticator.qhub_config_path = {str(self.config_path)!r}
            hub_settings.configure_plan_scope(c)
            c.JupyterHub.services.append({service!r})
            c.JupyterHub.load_roles.append({{"name": "user", "scopes": hub_settings.user_role_scopes(
                ["access:services!service=dask-gateway"])}})
            c.JupyterHub.load_roles.append(hub_settings.plan_readers_role(["dask-gateway"]))
            c.JupyterHub.load_roles.append(hub_settings.usage_writers_role(["dask-gateway"]))
        """))
        # The gateway first: the hub waits for the services it proxies to answer before starting.
        self.gateway = write_embedded_gateway_config(
            self.config_path, workdir=self.base / "gateway",
            hub_api_url=f"http://127.0.0.1:{self.hub.hub_port}/hub/api", api_token=token,
            http_port=http_port, tcp_port=tcp_port, api_port=api_port, log_level="DEBUG",
            cgroup_name=self.cgroup_name)
        assert self.gateway.service_url == service["url"]
        log = (self.base / "gateway" / "gateway.log").open("ab")
        self.proc = subprocess.Popen(self.gateway.command, cwd=self.gateway.workdir, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_http(self.gateway.health_url, timeout=60, ok_statuses=(200,))
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"dask-gateway-server did not start:\n{self.gateway_log()[-4000:]}") from None
        self.hub.start()
        return self

    def gateway_log(self) -> str:
        path = self.base / "gateway" / "gateway.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_hub_users(self, users: list[str], groups: dict[str, list[str]]) -> None:
        assert self.hub is not None
        status, body = self.hub.api("POST", "/users", {"usernames": users})
        assert status == 201, body
        for group, members in groups.items():
            status, body = self.hub.api("POST", f"/groups/{group}", {"users": members})
            assert status == 201, body

    def token(self, user: str, scopes: list[str] | None = None) -> str:
        """A hub API token of `user` (default scopes: what a user server's token gets for Dask)."""
        assert self.hub is not None
        if scopes is None:
            scopes = ["access:services!service=dask-gateway", f"read:users:groups!user={user}",
                      f"read:users:name!user={user}"]
        status, body = self.hub.api("POST", f"/users/{user}/tokens", {"scopes": scopes, "note": "gw test"})
        assert status == 201, body
        return body["token"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # stops every cluster, then exits
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if self.hub is not None:
            self.hub.stop()


def gateway_request(stack: GatewayStack, method: str, path: str, token: str,
                    body: object = None) -> tuple[int, dict]:
    """Call the gateway's REST API as the owner of `token`; (status, JSON body or {})."""
    assert stack.gateway is not None
    status, parsed = request_json(method, f"{stack.gateway.address}/api/v1{path}", body,
                                  {"Authorization": f"jupyterhub {token}"})
    if isinstance(parsed, str):
        return status, {"raw": parsed}
    return status, parsed or {}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
