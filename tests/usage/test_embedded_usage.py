"""The usage ledger on the real embedded platform (`qhub-hub local up`, root, real Unix users): a
server session is recorded with its start, end and the peak memory of the user's own cgroup; a
group limit refuses a second server with the figures; /hub/metrics shows the running server, then
its seconds once stopped; a server the platform's idle culler stops ends "culled".

Test accounts: ``us*`` users and groups with ids in 46000-46999 (this file's range), removed
afterwards."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from qhub_hub.usage.ledger import SERVER, Ledger
from tests.hub.conftest import password_login
from tests.local.support import Platform, password_of, public_dir, remove_test_accounts, remove_tree, write_config
from tests.support.net import wait_until

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: real Unix users"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PREFIX, ID_MIN, ID_MAX = "us", 46000, 46999
GROUPS = {"ususers": 46100, "usml": 46101, "usadmin": 46102}
USERS = {
    "usalice": {"uid": 46001, "primary_group": "ususers", "secondary_groups": ["usml", "usadmin"]},
    "usbob": {"uid": 46002, "primary_group": "ususers", "secondary_groups": ["usml"]},
}
MEM_LIMIT = 1024**3
PROFILES = [{"display_name": "Small", "slug": "small", "default": True, "cost_per_hour": 0.10,
             "kubespawner_override": {"cpu_limit": 1, "mem_limit": "1G"}}]
LIMITS = {"groups": {"usml": {"servers": 1}}}
ALLOCATED = 300 * 2**20  # what usalice's terminal command holds


def remove_us_accounts() -> None:
    remove_test_accounts(PREFIX, ID_MIN, ID_MAX)


@contextmanager
def usage_platform(**sections: Any) -> Iterator[Platform]:
    """A platform of this file's accounts and limits (`sections`: more of the config), for the block."""
    remove_us_accounts()
    root = public_dir("usage")
    path = write_config(root, users=USERS, groups=GROUPS, profiles=PROFILES, limits=LIMITS,
                        usage={"currency": "EUR"}, ssh={"enabled": False}, dask_gateway={"enabled": False},
                        **sections)
    data = yaml.safe_load(path.read_text())
    data["security"]["admin_groups"] = ["usadmin"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    platform = Platform(root, path)
    try:
        platform.up()
        yield platform
    finally:
        platform.down()
        remove_us_accounts()
        remove_tree(root)


@pytest.fixture
def platform() -> Iterator[Platform]:
    with usage_platform() as platform:
        yield platform


def ledger_of(platform: Platform) -> Ledger:
    return Ledger(f"sqlite:///{platform.state_dir / 'hub' / 'qhub-usage.sqlite'}")


def metrics(platform: Platform, token: str) -> dict[tuple[str, frozenset], float]:
    response = requests.get(f"{platform.url}/hub/metrics", headers={"Authorization": f"token {token}"},
                            timeout=30)
    assert response.status_code == 200, response.text[:300]
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples
            if s.name.startswith("qhub_usage_")}


def labels(**kw: str) -> frozenset:
    return frozenset(kw.items())


def stop_server(platform: Platform, name: str) -> None:
    status, body = platform.api("DELETE", f"/users/{name}/server")
    assert status in (202, 204), (status, body)

    def stopped() -> bool:
        _, model = platform.api("GET", f"/users/{name}")
        return not model["servers"] and model.get("pending") is None

    wait_until(stopped, timeout=60, what=f"{name}'s server stopped")


def test_a_session_with_its_cgroup_peak_a_refusal_and_the_metrics(platform):
    alice = {"user": "usalice", "group": "usml", "profile": "small"}
    _, login = password_login(platform.url, "usalice", password_of("usalice"))  # her group usadmin makes
    assert login.status_code == 302  # her an admin: her tokens may read the metrics
    status, body = platform.api("POST", "/users/usalice/tokens", {"note": "metrics", "scopes": ["read:metrics"]})
    assert status == 201, body
    metrics_token = body["token"]

    before = time.time()
    platform.start_server("usalice")
    running = [i for i in ledger_of(platform).open_intervals(SERVER) if i.username == "usalice"]
    assert [(i.key, i.profile, i.charged_group, i.cores, i.memory, i.cost_per_hour) for i in running] == [
        ("server/usalice/", "small", "usml", 1.0, MEM_LIMIT, 0.10)]
    assert before <= running[0].start <= time.time()
    seen = metrics(platform, metrics_token)
    assert seen[("qhub_usage_running_servers", labels(**alice))] == 1
    assert seen[("qhub_usage_requested_memory_bytes", labels(**alice, kind="server"))] == MEM_LIMIT
    assert seen[("qhub_usage_cost_per_hour", labels(**alice, kind="server"))] == pytest.approx(0.10)

    # the group's one server is taken: usbob is refused, with the figures
    platform.ensure_hub_user("usbob")
    status, body = platform.api("POST", "/users/usbob/server", {"profile": "small"})
    assert status == 403, body
    assert body["message"] == ("Not enough of your limits left for a server: group usml has 1 of 1 servers "
                               "running. Stop something you run, or ask an admin to raise the limit (limits "
                               "in the platform's config)."), body
    assert [i.username for i in ledger_of(platform).open_intervals(SERVER)] == ["usalice"]

    # memory used inside usalice's server (a terminal of hers), then the server stops
    token = platform.token_for("usalice")
    code, output = asyncio.run(platform.terminal(
        "usalice", token, f"python3 -c 'b = b\"x\" * {ALLOCATED}; print(len(b))'", timeout=60))
    assert (code, output.strip()) == (0, str(ALLOCATED))
    stop_server(platform, "usalice")
    ended = [i for i in ledger_of(platform).intervals() if i.username == "usalice"]
    assert len(ended) == 1
    session = ended[0]
    assert session.end_reason == "stop" and session.start < session.end <= time.time()
    # from the server's own cgroup (memory.peak or memory.max_usage_in_bytes), read as it stopped:
    # it saw the 300 MiB, and the cgroup's limit held it below 1 GiB
    assert session.peak_memory is not None and ALLOCATED <= session.peak_memory <= MEM_LIMIT, session
    assert session.cpu_seconds is None or session.cpu_seconds > 0

    seen = metrics(platform, metrics_token)
    assert ("qhub_usage_running_servers", labels(**alice)) not in seen
    assert seen[("qhub_usage_seconds_total", labels(**alice, kind="server"))] == pytest.approx(
        session.end - session.start)
    assert seen[("qhub_usage_cost_total", labels(**alice, kind="server"))] == pytest.approx(
        (session.end - session.start) / 3600 * 0.10)

    # the place is free again: usbob starts within the limit
    platform.start_server("usbob")
    assert [i.username for i in ledger_of(platform).open_intervals(SERVER)] == ["usbob"]
    stop_server(platform, "usbob")


def test_a_server_the_idle_culler_stops_ends_culled():
    """The platform's own culler service (jupyterhub-idle-culler as `idle-culler`), at its shortest
    timeout (60 s idle, a pass every 10 s)."""
    with usage_platform(cull={"server_idle_timeout": 60, "every": 10}) as platform:
        platform.start_server("usbob")
        started = time.time()

        def culled() -> bool:
            _, model = platform.api("GET", "/users/usbob")
            return not model["servers"] and model.get("pending") is None

        wait_until(culled, timeout=180, what="the idle culler stopping usbob's server")
        sessions = [i for i in ledger_of(platform).intervals() if i.username == "usbob"]
        assert [(i.end_reason, i.profile, i.charged_group) for i in sessions] == [("culled", "small", "usml")]
        assert sessions[0].end - started >= 55  # idle for the culler's timeout first
        log = (platform.state_dir / "logs" / "hub.log").read_text(errors="replace")
        assert re.search(r"DELETE /hub/api/users/usbob/server \(idle-culler@", log), log[-3000:]
