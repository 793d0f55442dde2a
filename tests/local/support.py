"""Helpers for the embedded-mode tests: lt* Unix accounts, configs, a running platform, terminals.

Real Unix users and groups made here are named ``lt*`` with ids in 41000-41999 (this suite's
range: other suites run side by side) and are removed by `remove_lt_accounts`.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from tests.support.net import free_port
from tests.support.process import request_json

ID_MIN, ID_MAX = 41000, 41999
PREFIX = "lt"


def is_lt(name: str, ident: int) -> bool:
    return name.startswith(PREFIX) and ID_MIN <= ident <= ID_MAX


def remove_test_accounts(prefix: str, id_min: int, id_max: int) -> None:
    """Delete every account and group named `prefix`* with an id in [id_min, id_max] (never anything
    else), their processes first. Each suite passes its own prefix and range."""
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(prefix) and id_min <= entry.pw_uid <= id_max:
            subprocess.run(["pkill", "-KILL", "-u", str(entry.pw_uid)], capture_output=True)
            subprocess.run(["userdel", entry.pw_name], capture_output=True)
    for entry in grp.getgrall():
        if entry.gr_name.startswith(prefix) and id_min <= entry.gr_gid <= id_max:
            subprocess.run(["groupdel", entry.gr_name], capture_output=True)


def remove_lt_accounts() -> None:
    """Delete every lt* account and group in this suite's id range (never anything else)."""
    remove_test_accounts(PREFIX, ID_MIN, ID_MAX)


def public_dir(tag: str) -> Path:
    """A fresh root-owned 0755 folder under /tmp (pytest's tmp_path is 0700: users cannot enter)."""
    path = Path(tempfile.mkdtemp(prefix=f"qhub-lt-{tag}-", dir="/tmp"))
    os.chmod(path, 0o755)
    return path


def hash_password(password: str, rounds: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def password_of(user: str) -> str:
    return f"{user}-password"


GROUPS = {"ltusers": 41100, "ltanalysts": 41101, "ltml": 41102}
USERS: dict[str, dict[str, Any]] = {
    "ltalice": {"uid": 41001, "primary_group": "ltusers", "secondary_groups": ["ltanalysts"]},
    "ltbob": {"uid": 41002, "primary_group": "ltusers", "secondary_groups": ["ltanalysts", "ltml"]},
    "lterin": {"uid": 41003, "primary_group": "ltusers", "readonly_groups": ["ltanalysts"]},
    "ltfrank": {"uid": 41004, "primary_group": "ltusers"},
}
PROFILES = [
    {"display_name": "Small", "slug": "small", "default": True,
     "kubespawner_override": {"cpu_limit": 1, "mem_limit": "2G"}},
    {"display_name": "Analyst", "slug": "analyst", "groups": ["ltanalysts"],
     "kubespawner_override": {"cpu_limit": 1, "mem_limit": "3G"}},
    {"display_name": "Machine Learning", "slug": "ml", "groups": ["ltml"],
     "kubespawner_override": {"cpu_limit": 2, "mem_limit": "4G", "mem_guarantee": "1G"}},
]


def write_config(root: Path, *, users: dict[str, dict[str, Any]] | None = None,
                 groups: dict[str, int] | None = None, profiles: list | None = None,
                 rounds: int = 4, **sections: Any) -> Path:
    users = USERS if users is None else users
    data: dict[str, Any] = {
        "security": {
            "authentication": {"type": "password"},
            "groups": {name: {"gid": gid} for name, gid in (groups or GROUPS).items()},
            "users": {name: {**spec, "password": hash_password(password_of(name), rounds)}
                      for name, spec in users.items()},
        },
        "profiles": {"jupyterlab": PROFILES if profiles is None else profiles},
        "storage": {"home_root": str(root / "home"), "shared_root": str(root / "shared")},
        "conda_store": {"enabled": False},
        **sections,
    }
    path = root / "qhub-config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def qhub_cli(*args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "qhub_hub.cli", *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"qhub-hub {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


class Platform:
    """A platform started with `qhub-hub local up` on free ports, in its own state dir."""

    def __init__(self, root: Path, config: Path, ssh: bool = True):
        self.root = root
        self.config = config
        self.state_dir = root / "state"
        self.port = free_port()
        self.ssh_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> subprocess.CompletedProcess:
        return qhub_cli("local", "up", "--config", str(self.config), "--state-dir", str(self.state_dir),
                        "--port", str(self.port), "--ssh-port", str(self.ssh_port))

    def down(self) -> subprocess.CompletedProcess:
        return qhub_cli("local", "down", "--state-dir", str(self.state_dir), check=False)

    def cli(self, command: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return qhub_cli("local", command, "--state-dir", str(self.state_dir), *args, check=check)

    @property
    def secrets(self) -> dict[str, str]:
        return json.loads((self.state_dir / "secrets.json").read_text())

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        return request_json(method, f"{self.url}/hub/api{path}", body,
                            {"Authorization": f"token {token or self.secrets['platform_token']}"})

    def ensure_hub_user(self, name: str) -> None:
        status, _ = self.api("GET", f"/users/{name}")
        if status == 404:
            status, body = self.api("POST", f"/users/{name}")
            assert status == 201, body

    def token_for(self, name: str) -> str:
        self.ensure_hub_user(name)
        status, body = self.api("POST", f"/users/{name}/tokens", {"note": "test"})
        assert status == 201, body
        return body["token"]

    def start_server(self, name: str, profile: str | None = None, timeout: float = 120) -> dict:
        self.ensure_hub_user(name)
        status, body = self.api("POST", f"/users/{name}/server", {"profile": profile} if profile else {})
        assert status in (201, 202), (status, body)
        return self.wait_ready(name, timeout)

    def wait_ready(self, name: str, timeout: float = 120) -> dict:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, model = self.api("GET", f"/users/{name}")
            server = (model or {}).get("servers", {}).get("")
            if server and server.get("ready"):
                return model
            if server is None and status == 200 and model.get("pending") is None:
                raise AssertionError(f"{name}'s server failed to start:\n{self.server_log(name)}")
            time.sleep(0.3)
        raise AssertionError(f"{name}'s server not ready in {timeout}s:\n{self.server_log(name)}")

    def server_log(self, unix_name: str) -> str:
        path = self.state_dir / "logs" / "servers" / f"{unix_name}.log"
        hub = (self.state_dir / "logs" / "hub.log").read_text(errors="replace")[-3000:]
        own = path.read_text(errors="replace")[-3000:] if path.exists() else "(no server log)"
        return f"{own}\n--- hub log:\n{hub}"

    def server_request(self, name: str, token: str, method: str, path: str,
                       body: Any = None) -> tuple[int, Any]:
        """A request to the user's server through the proxy (path below /user/<name>/)."""
        return request_json(method, f"{self.url}/user/{name}/{path.lstrip('/')}", body,
                            {"Authorization": f"token {token}"})

    async def terminal(self, name: str, token: str, command: str, timeout: float = 30) -> tuple[int, str]:
        """Run `command` in a JupyterLab terminal of the user's server: (exit status, output)."""
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        status, term = await asyncio.to_thread(self.server_request, name, token, "POST", "api/terminals")
        assert status == 200, (status, term)
        ws_url = f"ws://127.0.0.1:{self.port}/user/{name}/terminals/websocket/{term['name']}"
        conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}))
        marker = uuid.uuid4().hex[:12]
        conn.write_message(json.dumps(["stdin", f"{command}; echo {marker}=$?=\r"]))
        output = ""
        try:
            while True:
                message = await asyncio.wait_for(conn.read_message(), timeout)
                if message is None:
                    raise AssertionError(f"terminal closed; output so far:\n{output}")
                kind, *data = json.loads(message)
                if kind == "stdout":
                    output += data[0]
                    found = re.search(rf"{marker}=(\d+)=", output)
                    if found:
                        break
        finally:
            conn.close()
            await asyncio.to_thread(self.server_request, name, token, "DELETE",
                                    f"api/terminals/{term['name']}")
        text = re.sub(r"\x1b\][^\x07]*\x07|\x1b\[[0-9;?]*[A-Za-z]|\r", "", output)
        end = re.search(rf"{marker}=(\d+)=", text)
        # the command line as echoed (twice when typed before the prompt: tty, then readline)
        echoed = text.rfind(f"{marker}=$?=", 0, end.start())
        start = text.find("\n", echoed) + 1 if echoed != -1 else 0
        return int(end.group(1)), text[start:end.start()]


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running_platform(tag: str, **config: Any) -> Iterator[Platform]:
    """A platform of the test config (`config`: write_config's overrides) running for the block;
    its accounts, folders and state are removed afterwards."""
    root = public_dir(tag)
    platform = Platform(root, write_config(root, **config))
    try:
        platform.up()
        yield platform
    finally:
        platform.down()
        remove_lt_accounts()
        remove_tree(root)
