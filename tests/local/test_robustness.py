"""Bad input gets a clear 4xx, and a bad config edit takes nothing down (root, one real platform).

The platform (conda-store, Dask Gateway, SSH) runs for the module with this file's own accounts:
``rb*`` users and groups with ids in 44000-44999, removed afterwards (other suites use other names
and ranges and may run side by side). The tests run in file order: first the hostile or careless
requests, then the config file is broken and every component that starts or restarts while it is
invalid runs with the last good copy.
"""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from qhub_hub.local.settings import PlatformSettings

from .support import Platform, password_of, public_dir, remove_test_accounts, remove_tree, write_config

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


PREFIX, ID_MIN, ID_MAX = "rb", 44000, 44999
GROUPS = {"rbusers": 44100, "rbanalysts": 44101, "rbml": 44102}
USERS = {
    "rbalice": {"uid": 44001, "primary_group": "rbusers", "secondary_groups": ["rbanalysts"]},
    "rbbob": {"uid": 44002, "primary_group": "rbusers", "secondary_groups": ["rbanalysts", "rbml"]},
    "rberin": {"uid": 44003, "primary_group": "rbusers"},
    "rbfrank": {"uid": 44004, "primary_group": "rbusers"},
}
PROFILES = [
    {"display_name": "Small", "slug": "small", "default": True,
     "kubespawner_override": {"cpu_limit": 1, "mem_limit": "2G"}},
    {"display_name": "Machine Learning", "slug": "ml", "groups": ["rbml"],
     "kubespawner_override": {"cpu_limit": 1, "mem_limit": "3G"}},
]


def remove_rb_accounts() -> None:
    remove_test_accounts(PREFIX, ID_MIN, ID_MAX)


@pytest.fixture(scope="module")
def platform():
    remove_rb_accounts()
    root = public_dir("robust")
    config = write_config(root, users=USERS, groups=GROUPS, profiles=PROFILES,
                          ssh={"enabled": True}, dask_gateway={"enabled": True},
                          conda_store={"enabled": True, "environments_root": str(root / "envs")})
    platform = Platform(root, config)
    try:
        platform.up()
        yield platform
    finally:
        platform.down()
        remove_rb_accounts()
        remove_tree(root)


def hub_log(platform) -> str:
    return (platform.state_dir / "logs" / "hub.log").read_text(errors="replace")


def logged_in(platform, user: str, password: str | None = None) -> tuple[requests.Session, requests.Response]:
    """A browser-like session after posting the login form (JupyterHub's _xsrf included)."""
    session = requests.Session()
    page = session.get(f"{platform.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    data = {"username": user, "password": password or password_of(user)}
    if xsrf:
        data["_xsrf"] = xsrf.group(1)
    response = session.post(f"{platform.url}/hub/login", data=data, timeout=60, allow_redirects=False)
    return session, response


# --- bad input --------------------------------------------------------------------------------------


def test_a_password_over_72_bytes_gets_a_message_not_a_500(platform):
    _, response = logged_in(platform, "rbalice", "p" * 73)
    assert response.status_code == 400, response.text[:500]
    assert "at most 72 bytes" in html.unescape(response.text)
    _, response = logged_in(platform, "rbalice", "é" * 37)  # 74 bytes in UTF-8
    assert response.status_code == 400 and "74 bytes" in html.unescape(response.text)
    _, response = logged_in(platform, "rbalice")
    assert response.status_code == 302  # the right password still works


def test_user_options_with_unknown_keys_are_refused_and_not_kept(platform):
    platform.ensure_hub_user("rberin")
    status, body = platform.api("POST", "/users/rberin/server", {"profile": "small", "evil": "x" * 100})
    assert (status, body["message"]) == (400, "Unknown server option(s): 'evil'. This platform takes "
                                              "only 'profile'; remove the others.")
    assert stored_user_options(platform, "rberin") == {"profile": "small"}


def test_a_huge_spawn_request_is_refused_before_it_is_stored(platform):
    size_before = (platform.state_dir / "hub" / "jupyterhub.sqlite").stat().st_size
    status, body = platform.api("POST", "/users/rberin/server", {"profile": "small", "x": "a" * 20_000_000})
    assert status == 413 and "a spawn request may be at most 65536 bytes" in body["message"], body
    status, body = platform.api("POST", "/users/rberin/server", {"profile": "small", "x": "a" * 20_000})
    assert status == 413 and "at most 16384 are accepted" in body["message"], body
    assert stored_user_options(platform, "rberin") == {"profile": "small"}
    size_after = (platform.state_dir / "hub" / "jupyterhub.sqlite").stat().st_size
    assert size_after - size_before < 1_000_000


def stored_user_options(platform, user: str):
    db = platform.state_dir / "hub" / "jupyterhub.sqlite"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT spawners.user_options FROM spawners JOIN users ON spawners.user_id = "
                           "users.id WHERE users.name = ? AND spawners.name = ''", (user,)).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def test_a_refused_profile_is_one_warning_without_traceback(platform):
    platform.ensure_hub_user("rbfrank")
    before = len(hub_log(platform))
    status, body = platform.api("POST", "/users/rbfrank/server", {"profile": "ml"})
    assert status == 403, body
    new = hub_log(platform)[before:]
    assert re.search(r"^\[W .*Refusing to start rbfrank's server: 'rbfrank' may not use the profile 'ml'",
                     new, re.M), new
    assert "Traceback" not in new
    assert not re.search(r"^\[E ", new, re.M), new
    assert stored_user_options(platform, "rbfrank") == {}  # the next start is not refused again


def test_a_normal_start_is_not_slow_and_the_gateway_logs_no_404(platform):
    platform.start_server("rbfrank")
    assert "slow to become responsive" not in hub_log(platform)
    gateway_log = (platform.state_dir / "logs" / "dask-gateway.log").read_text(errors="replace")
    assert "GET /" in gateway_log  # the hub checked the service at its start ...
    assert not re.search(r" 404 GET ", gateway_log), gateway_log[-2000:]  # ... and got an answer


def test_every_services_menu_entry_opens_a_page(platform):
    session, response = logged_in(platform, "rbbob")
    assert response.status_code == 302
    home = session.get(f"{platform.url}/hub/home", timeout=30)
    links = sorted(set(re.findall(r'href="(/services/[^"]+)"', home.text)))
    assert {"/services/dask-gateway/", "/services/conda-store/"} <= set(links), links
    for link in links:
        page = session.get(f"{platform.url}{link}", timeout=60)
        assert page.status_code == 200, (link, page.status_code, page.text[:300])
    assert "GatewayCluster()" in session.get(f"{platform.url}/services/dask-gateway/", timeout=30).text


# --- a bad config -----------------------------------------------------------------------------------


BROKEN = "security.users.rbbob.uid: uid 44001 is also the uid of 'rbalice'"


def test_a_broken_config_is_shown_by_status_and_running_things_stay(platform):
    text = platform.config.read_text()
    platform.config.write_text(text.replace("uid: 44002", "uid: 44001"))
    status = platform.cli("status", check=False)
    assert status.returncode == 0, status.stdout + status.stderr  # everything still runs
    assert f"config        INVALID: {platform.config}: 1 problem(s); running with the last good copy" \
        in status.stdout, status.stdout
    assert BROKEN in status.stdout
    assert (platform.state_dir / "config" / "last-good.yaml").read_text() == text


def test_the_hub_restarts_on_the_last_good_copy(platform):
    restart = platform.cli("restart", check=False)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert "Running with the last good copy" in restart.stderr
    assert "is used until it is fixed" in hub_log(platform)
    model = platform.start_server("rbbob", profile="ml")  # a spawn under the last good config
    assert model["servers"][""]["ready"]


def test_a_fresh_gateway_process_answers_with_the_last_good_copy(platform):
    # the gateway had not read the config yet: its first read meets the broken file
    token = platform.token_for("rbalice")
    status, options = platform_get(platform, "/services/dask-gateway/api/v1/options", token)
    assert status == 200, options
    fields = {f["field"] for f in options["cluster_options"]}
    assert {"environment", "max_workers"} <= fields


def platform_get(platform, path: str, token: str):
    from tests.support.process import request_json

    return request_json("GET", f"{platform.url}{path}", None, {"Authorization": f"jupyterhub {token}"})


def test_the_ssh_check_admits_with_the_last_good_copy(platform):
    settings = PlatformSettings.load(platform.state_dir)
    check = subprocess.run([sys.executable, "-I", "-m", "qhub_hub.local.ssh_check",
                            str(settings.ssh_dir / "check.json")],
                           env={"PAM_TYPE": "account", "PAM_USER": "rbalice", "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "allowed" in check.stderr


def test_down_works_on_the_last_good_copy(platform):
    down = platform.cli("down", check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "qhub-hub is down" in down.stdout
    assert "Running with the last good copy" in down.stderr
    status = platform.cli("status", check=False)
    assert status.returncode == 3 and "STOPPED" in status.stdout
    assert Path(platform.config).exists()
