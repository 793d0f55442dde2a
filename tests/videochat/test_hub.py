"""Behind a real JupyterHub: the config's plan -> the spawner's environment -> the user's rooms.

The hub runs with a simple local spawner whose environment is `qhub_hub.server_env` of the
example config's plan, as the qhub spawners set it; alice's server is a real
`jupyterhub-singleuser` with the extension, reached through the hub's proxy with hub tokens.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from qhub_hub.config import load_config
from qhub_hub.policy import plan_for
from tests.conftest import EXAMPLE_CONFIG
from tests.support.hub import HubProcess

ENV_NAMES = ("QHUB_USER", "QHUB_GROUPS", "QHUB_VIDEOCHAT_URL", "QHUB_VIDEOCHAT_ROOM_PREFIX")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, installed_extension: Path):
    workdir = tmp_path_factory.mktemp("videochat-hub")
    config = f"""
        from qhub_hub.config import load_config
        from qhub_hub.policy import plan_for
        from qhub_hub.server_env import server_environment

        qhub = load_config({str(EXAMPLE_CONFIG)!r})

        def from_plan(name):
            return lambda spawner: server_environment(qhub, plan_for(qhub, spawner.user.name))[name]

        c.JupyterHub.authenticator_class = "dummy"
        c.Authenticator.allow_all = True
        c.JupyterHub.spawner_class = "simple"
        c.SimpleLocalProcessSpawner.home_dir_template = {str(workdir / "homes" / "{username}")!r}
        c.Spawner.environment = {{name: from_plan(name) for name in {ENV_NAMES!r}}}
        c.Spawner.args = ["--allow-root"]
        c.Spawner.start_timeout = 60
        c.Spawner.http_timeout = 60
    """
    with HubProcess(workdir, extra_config=config) as hub:
        for user in ("alice", "bob"):
            assert hub.api("POST", f"/users/{user}")[0] == 201
        assert hub.api("POST", "/users/alice/server")[0] in (201, 202)
        deadline = time.monotonic() + 90
        while not hub.api("GET", "/users/alice")[1]["servers"].get("", {}).get("ready"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"alice's server did not start; hub log:\n{hub.log()[-4000:]}")
            time.sleep(0.5)
        yield hub
        hub.api("DELETE", "/users/alice/server")


def token_for(hub: HubProcess, user: str) -> str:
    status, body = hub.api("POST", f"/users/{user}/tokens", {"note": "videochat test"})
    assert status == 201, body
    return body["token"]


def get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_rooms_follow_the_config_plan(hub: HubProcess) -> None:
    status, raw = get(f"{hub.url}/user/alice/qhub-videochat/config", token_for(hub, "alice"))
    assert status == 200, raw
    config = json.loads(raw)
    qhub = load_config(EXAMPLE_CONFIG)
    groups = plan_for(qhub, "alice").group_names
    assert set(groups) == {"admin", "analysts", "users"}  # the example config's alice
    assert config["enabled"] is True
    assert config["jitsi_url"] == qhub.videochat.jitsi_url
    assert config["display_name"] == "alice"
    assert [r["name"] for r in config["rooms"]] == [f"qhub-group-{g}" for g in groups]
    assert not {"finance", "ml", "data-eng"} & {r["group"] for r in config["rooms"]}


def test_another_user_cannot_read_alices_rooms(hub: HubProcess) -> None:
    status, _ = get(f"{hub.url}/user/alice/qhub-videochat/config", token_for(hub, "bob"))
    assert status == 403
