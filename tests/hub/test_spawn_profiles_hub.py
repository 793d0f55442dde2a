"""A real hub (password logins with XSRF) and a local spawner sharing `PlanSpawnerMixin`:
the spawn form lists exactly the plan's profiles, the server refuses what the plan does not allow
(form and REST, 403/400 with readable messages), an allowed profile starts a real server with the
plan's environment, and saved options are re-checked at the next start after a config edit."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest
import requests

from tests.hub.conftest import example_data, hub_env, password_login, write_config, xsrf_of
from tests.support.hub import HubProcess
from tests.support.net import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def profile_data() -> dict:
    data = example_data()
    envs = {"small": {"PROFILE": "small"}, "medium": {"PROFILE": "medium"},
            "highmem": {"PROFILE": "highmem"},
            "gpu": {"PROFILE": "gpu", "QHUB_USER": "not-dave", "JUPYTERHUB_API_TOKEN": "stolen"}}
    for profile in data["profiles"]["jupyterlab"]:
        profile["kubespawner_override"]["environment"] = envs[profile["slug"]]
    return data


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("spawn-hub")
    config_path = workdir / "qhub-config.yaml"
    data = profile_data()
    write_config(config_path, data)
    hub = HubProcess(workdir, env=hub_env(config_path), extra_config=f"""
        from tests.hub.local_plan_spawner import PlanLocalSpawner
        c.JupyterHub.authenticator_class = "qhub-password"
        c.JupyterHub.spawner_class = PlanLocalSpawner
        c.Spawner.cmd = [{str(Path(sys.executable).parent / 'jupyterhub-singleuser')!r}]
        c.Spawner.args = ["--allow-root"]
        c.Spawner.notebook_dir = {str(workdir)!r}
        c.Spawner.start_timeout = 90
        c.Authenticator.auth_refresh_age = 1
        c.Spawner.http_timeout = 90
        c.PlanLocalSpawner.dask_gateway_address = "http://127.0.0.1:9/services/dask-gateway"
        c.PlanLocalSpawner.dask_gateway_proxy_address = "gateway://127.0.0.1:9"
    """)
    hub.start()
    sessions = {}
    for name in ("erin", "dave", "frank"):
        session, response = password_login(hub.url, name, f"{name}-password")
        assert response.status_code == 302, response.text
        sessions[name] = session
    yield hub, sessions, config_path, data
    for name in sessions:
        hub.api("DELETE", f"/users/{name}/server")
    hub.stop()


def offered(session: requests.Session, hub: HubProcess) -> list[str]:
    page = session.get(f"{hub.url}/hub/spawn", timeout=30)
    assert page.status_code == 200, page.text
    return re.findall(r'<input type="radio" name="profile" id="profile-[^"]+" value="([^"]+)"', page.text)


def test_password_login_needs_xsrf_and_the_right_password(hub):
    h = hub[0]
    session = requests.Session()
    session.get(f"{h.url}/hub/login", timeout=30)
    no_xsrf = session.post(f"{h.url}/hub/login", data={"username": "bob", "password": "bob-password"},
                           allow_redirects=False, timeout=30)
    assert no_xsrf.status_code == 403 and "Login form invalid or expired" in no_xsrf.text
    assert password_login(h.url, "bob", "wrong")[1].status_code == 403
    assert password_login(h.url, "nobody", "nobody-password")[1].status_code == 403
    ok = password_login(h.url, "bob", "bob-password")[1]
    assert ok.status_code == 302
    status, user = h.api("GET", "/users/bob")
    assert sorted(user["groups"]) == ["analysts", "users"] and user["admin"] is False
    assert h.api("GET", "/users/alice")[0] == 404  # not logged in yet
    password_login(h.url, "alice", "alice-password")
    assert h.api("GET", "/users/alice")[1]["admin"] is True


@pytest.mark.parametrize(("user", "profiles"), [
    ("erin", ["small", "medium", "highmem"]),  # read-only analyst
    ("dave", ["small", "medium", "gpu"]),      # ml
    ("frank", ["small", "medium"]),            # no extra group
])
def test_spawn_form_lists_exactly_the_allowed_profiles(hub, user, profiles):
    h, sessions, _, _ = hub
    assert offered(sessions[user], h) == profiles


def test_form_post_of_a_disallowed_profile_is_refused_with_a_message(hub):
    h, sessions, _, _ = hub
    session = sessions["frank"]
    page = session.get(f"{h.url}/hub/spawn", timeout=30)
    response = session.post(f"{h.url}/hub/spawn", data={"profile": "gpu", "_xsrf": xsrf_of(session, page.text)},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 403
    assert "&#39;frank&#39; may not use the profile &#39;gpu&#39;" in response.text
    assert "Profiles you may use: small, medium." in response.text
    assert h.api("GET", "/users/frank")[1]["servers"] == {}


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"profile": "gpu"}, 403, "'erin' may not use the profile 'gpu'. Profiles you may use: small, medium, highmem."),
    ({"profile": "no-such"}, 400, "There is no profile 'no-such'. Profiles you may use: small, medium, highmem."),
    ({"profile": 7}, 400, "The profile must be given by its slug (a string), not 7."),
])
def test_rest_spawn_is_checked_on_the_server(hub, body, status, message):
    h = hub[0]
    got_status, got = h.api("POST", "/users/erin/server", body)
    assert (got_status, got["message"]) == (status, message)
    assert h.api("GET", "/users/erin")[1]["servers"] == {}


def server_environ(user: str, hub: HubProcess) -> dict[str, str]:
    """The environment of the running single-user server of `user` on this hub (from /proc)."""
    marker = f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub.hub_port}/hub/api".encode()
    for proc in Path("/proc").iterdir():
        try:
            raw = (proc / "environ").read_bytes()
        except OSError:
            continue
        env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
        if marker in raw and env.get("JUPYTERHUB_USER") == user:
            return env
    return {}


def ready(hub: HubProcess, user: str) -> bool:
    server = hub.api("GET", f"/users/{user}")[1]["servers"].get("")
    return bool(server and server["ready"])


def test_allowed_profile_starts_with_plan_env_then_saved_options_are_rechecked(hub):
    h, sessions, config_path, data = hub
    status, body = h.api("POST", "/users/dave/server", {"profile": "gpu"})
    assert status in (201, 202), body
    wait_until(lambda: ready(h, "dave"), timeout=90, what="dave's server")
    env = server_environ("dave", h)
    assert env["PROFILE"] == "gpu"
    assert env["QHUB_USER"] == "dave" and env["QHUB_GROUPS"] == "ml,users"  # profile cannot override
    assert env["JUPYTERHUB_API_TOKEN"] != "stolen"
    assert env["DASK_GATEWAY__ADDRESS"] == "http://127.0.0.1:9/services/dask-gateway"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://127.0.0.1:9"
    assert env["DASK_GATEWAY__PUBLIC_ADDRESS"] == "http://127.0.0.1:9/services/dask-gateway"
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
    # group video rooms named with a key from the hub's cookie secret: only dave's groups, unguessable
    rooms = json.loads(env["QHUB_VIDEOCHAT_ROOMS"])
    assert sorted(rooms) == ["ml", "users"]
    assert all(re.fullmatch(rf"qhub-group-{g}-[0-9a-f]{{16}}", name) for g, name in rooms.items())
    # the server answers its owner through the proxy (after the hub's OAuth round trip)
    lab = sessions["dave"].get(f"{h.url}/user/dave/lab", timeout=60)
    assert lab.status_code == 200 and lab.url == f"{h.url}/user/dave/lab"
    assert h.api("DELETE", "/users/dave/server")[0] in (202, 204)
    wait_until(lambda: not h.api("GET", "/users/dave")[1]["servers"], what="dave's server to stop")

    # dave leaves the ml group: no hub restart, the saved options {"profile": "gpu"} are refused
    edited = copy.deepcopy(data)
    edited["security"]["users"]["dave"]["secondary_groups"] = []
    write_config(config_path, edited)
    try:
        status, body = h.api("POST", "/users/dave/server")  # no body: the saved options
        assert status == 403, body
        assert body["message"].startswith("'dave' may not use the profile 'gpu'")
        assert offered(sessions["dave"], h) == ["small", "medium"]

        # ... and his JupyterHub groups follow at the next auth refresh, without a new login
        def groups_now() -> list[str] | None:
            sessions["dave"].get(f"{h.url}/hub/home", timeout=30)
            groups = h.api("GET", "/users/dave")[1]["groups"]
            return groups if groups == ["users"] else None

        wait_until(groups_now, timeout=30, what="dave's groups to follow the config")
    finally:
        write_config(config_path, data)


def test_user_allowed_no_profile_gets_a_403_page(hub):
    h, sessions, config_path, data = hub
    edited = copy.deepcopy(data)
    for profile in edited["profiles"]["jupyterlab"]:
        profile["groups"] = ["ml"]
        profile["default"] = False
    write_config(config_path, edited)
    try:
        page = sessions["frank"].get(f"{h.url}/hub/spawn", timeout=30)
        assert page.status_code == 403
        assert "No server profile is available to &#39;frank&#39;" in page.text
        status, body = h.api("POST", "/users/frank/server", {})
        assert status == 403 and "Ask an admin" in body["message"]
    finally:
        write_config(config_path, data)
