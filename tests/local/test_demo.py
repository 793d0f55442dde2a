"""Not root: `local up` still starts, as a single-Unix-user demo, and says so loudly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.net import free_port

from .support import public_dir, remove_lt_accounts, remove_tree, write_config

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to become a user)")]


@pytest.fixture(scope="module")
def demo():
    root = public_dir("demo")
    home = root / "ltdemo"
    subprocess.run(["useradd", "-u", "41060", "-U", "-M", "-d", str(home), "-s", "/bin/bash", "ltdemo"], check=True)
    home.mkdir()
    os.chown(home, 41060, 41060)
    config = write_config(root, ssh={"enabled": True}, dask_gateway={"enabled": False})
    yield root, home, config
    as_demo(home, "local", "down", "--state-dir", str(home / "state"))
    remove_lt_accounts()
    remove_tree(root)


def as_demo(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"HOME": str(home), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(["/usr/sbin/runuser", "-u", "ltdemo", "--", sys.executable, "-m", "qhub_hub.cli", *args],
                          capture_output=True, text=True, env=env, cwd=home, timeout=240)


def test_without_root_the_platform_is_a_loud_single_user_demo(demo):
    root, home, config = demo
    port = free_port()
    up = as_demo(home, "local", "up", "--config", str(config), "--state-dir", str(home / "state"),
                 "--port", str(port))
    assert up.returncode == 0, up.stderr
    assert "SINGLE-UNIX-USER DEMO MODE" in up.stderr
    assert "users are not isolated from each other" in up.stderr
    assert "started sshd" not in up.stdout  # an SSH server needs root
    status = as_demo(home, "local", "status", "--state-dir", str(home / "state"))
    assert "[DEMO MODE: single Unix user]" in status.stdout and status.returncode == 0

    token = json.loads((home / "state" / "secrets.json").read_text())["platform_token"]

    def api(method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/hub/api{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=60) as r:
            raw = r.read()
            return json.loads(raw) if raw else {}

    api("POST", "/users/ltbob")
    api("POST", "/users/ltbob/server", {"profile": "ml"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        server = api("GET", "/users/ltbob")["servers"].get("")
        if server and server.get("ready"):
            break
        time.sleep(0.5)
    assert server and server.get("ready"), (home / "state/logs/hub.log").read_text()[-3000:]
    pid = server["state"]["pid"]
    uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
    assert uid == 41060  # the demo user, not bob's 41002
    assert (home / "state" / "demo" / "home" / "ltbob").is_dir()
    assert not (root / "home").exists()  # nothing outside the state dir
    # profiles are still enforced on the server
    api("POST", "/users/lterin")
    with pytest.raises(urllib.error.HTTPError) as refused:
        api("POST", "/users/lterin/server", {"profile": "ml"})
    assert refused.value.code == 403
