"""Limits and the ledger through a real hub (password logins, the plan-enforcing local spawner):
spawns beyond a limit are refused 403 with the figures (REST and form), within are allowed, the
most generous group wins; sessions are closed by stop, the idle culler, and after a hub crash;
/hub/metrics carries the usage with user, group and profile labels."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from qhub_hub.hub_settings import CULLER_SCOPES
from qhub_hub.usage.ledger import SERVER, Ledger, month_start
from qhub_hub.usage.resources import Resources
from tests.hub.conftest import hub_env, password_login, write_config, xsrf_of
from tests.support.hub import HubProcess
from tests.support.net import wait_until
from tests.usage.support import usage_data

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LIMITS = {
    "groups": {
        "ml": {"gpus": 1, "monthly": {"gpu_hours": 40}},
        "data-eng": {"gpus": 1},
        "analysts": {"servers": 1},
    },
    "users": {"frank": {"servers": 0}},
}
USERS = ("alice", "bob", "carol", "dave", "frank")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("usage-hub")
    config_path = workdir / "qhub-config.yaml"
    write_config(config_path, usage_data(LIMITS))
    prom_token = "prometheus-" + os.urandom(8).hex()
    culler_token = "culler-" + os.urandom(8).hex()  # the culler runs as the embedded hub names it
    hub = HubProcess(workdir, env={**hub_env(config_path), "QHUB_USAGE_REFRESH_SECONDS": "1"},
                     extra_config=f"""
        from tests.hub.local_plan_spawner import PlanLocalSpawner
        c.JupyterHub.authenticator_class = "qhub-password"
        c.JupyterHub.spawner_class = PlanLocalSpawner
        c.JupyterHub.cleanup_servers = False
        c.Spawner.cmd = [{str(Path(sys.executable).parent / 'jupyterhub-singleuser')!r}]
        c.Spawner.args = ["--allow-root"]
        c.Spawner.notebook_dir = {str(workdir)!r}
        c.Spawner.start_timeout = 90
        c.Spawner.http_timeout = 90
        c.JupyterHub.services.append({{"name": "prometheus", "api_token": {prom_token!r}}})
        c.JupyterHub.load_roles.append({{"name": "prometheus", "scopes": ["read:metrics"],
                                         "services": ["prometheus"]}})
        c.JupyterHub.services.append({{"name": "idle-culler", "api_token": {culler_token!r}}})
        c.JupyterHub.load_roles.append({{"name": "idle-culler", "scopes": {list(CULLER_SCOPES)!r},
                                         "services": ["idle-culler"]}})
    """)
    hub.prom_token = prom_token
    hub.culler_token = culler_token
    hub.start()
    sessions = {}
    for name in USERS:
        session, response = password_login(hub.url, name, f"{name}-password")
        assert response.status_code == 302, response.text
        sessions[name] = session
    yield hub, sessions
    for name in USERS:
        hub.api("DELETE", f"/users/{name}/server")
    hub.stop()


def ledger_of(hub: HubProcess) -> Ledger:
    return Ledger(f"sqlite:///{hub.workdir / 'qhub-usage.sqlite'}")


def ready(hub: HubProcess, user: str) -> bool:
    server = hub.api("GET", f"/users/{user}")[1]["servers"].get("")
    return bool(server and server["ready"])


def start(hub: HubProcess, user: str, profile: str) -> None:
    status, body = hub.api("POST", f"/users/{user}/server", {"profile": profile})
    assert status in (201, 202), body
    wait_until(lambda: ready(hub, user), timeout=90, what=f"{user}'s server")


def stop(hub: HubProcess, user: str) -> None:
    assert hub.api("DELETE", f"/users/{user}/server")[0] in (202, 204)
    wait_until(lambda: hub.api("GET", f"/users/{user}")[1]["servers"] == {}, timeout=60,
               what=f"{user}'s server to stop")


def open_rows(hub: HubProcess) -> dict[str, object]:
    return {i.username: i for i in ledger_of(hub).open_intervals(SERVER)}


def test_within_the_limits_the_most_generous_group_is_charged(hub):
    h, _ = hub
    start(h, "dave", "gpu")  # ml's one GPU
    start(h, "carol", "gpu")  # carol is in ml (full) and data-eng (room): data-eng is charged
    rows = open_rows(h)
    assert (rows["dave"].charged_group, rows["dave"].profile, rows["dave"].gpus) == ("ml", "gpu", 1)
    assert rows["carol"].charged_group == "data-eng"
    assert rows["carol"].cost_per_hour == 1.5 and rows["carol"].cores == 3.0
    stop(h, "carol")


def test_rest_beyond_a_limit_is_refused_with_the_figures(hub):
    h, _ = hub
    start(h, "bob", "small")  # analysts share one server
    status, body = h.api("POST", "/users/alice/server", {"profile": "small"})
    assert status == 403
    assert "group analysts has 1 of 1 servers running" in body["message"]
    status, body = h.api("POST", "/users/frank/server", {"profile": "small"})
    assert (status, "user frank has 0 of 0 servers running" in body["message"]) == (403, True)
    assert h.api("GET", "/users/alice")[1]["servers"] == {}
    assert "alice" not in open_rows(h)
    # the server API is usage's stop-noting handler, still size-limited (`hub_request_limits`)
    status, body = h.api("POST", "/users/alice/server", {"profile": "small", "x": "a" * 70_000})
    assert status == 413 and "a spawn request may be at most 65536 bytes" in body["message"], body


def test_form_beyond_a_limit_is_refused_with_the_figures(hub):
    h, sessions = hub
    session = sessions["alice"]
    page = session.get(f"{h.url}/hub/spawn", timeout=30)
    response = session.post(f"{h.url}/hub/spawn", data={"profile": "small", "_xsrf": xsrf_of(session, page.text)},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 403
    assert "group analysts has 1 of 1 servers running" in response.text
    assert h.api("GET", "/users/alice")[1]["servers"] == {}


def test_a_used_up_gpu_budget_refuses_gpus_but_not_cpus(hub):
    h, _ = hub
    stop(h, "dave")
    now = time.time()
    # at least 41 GPU-hours charged to ml earlier this month, whatever the day: as many GPUs as
    # needed over the hour (or less) that has passed since the month began
    duration = min(3600.0, max(60.0, now - month_start(now) - 120))
    start_at = now - 60 - duration
    ledger = ledger_of(h)
    gpus = math.ceil(41 * 3600 / duration)
    ledger.open(SERVER, "server/seed/", "seed", ["ml"], Resources("gpu", gpus=gpus, cores=3.0), charged_group="ml",
                start=start_at)
    ledger.close("server/seed/", "stop", end=start_at + duration)
    status, body = h.api("POST", "/users/dave/server", {"profile": "gpu"})
    assert status == 403, body
    assert "group ml has used 41" in body["message"] and "of 40 GPU-hours this month" in body["message"]
    start(h, "dave", "small")  # a CPU server does not use GPU-hours
    assert open_rows(h)["dave"].profile == "small"


def test_metrics_carry_usage_with_user_group_and_profile(hub):
    h, _ = hub
    response = __import__("requests").get(f"{h.url}/hub/metrics", timeout=30,
                                           headers={"Authorization": f"token {h.prom_token}"})
    assert response.status_code == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples
               if s.name.startswith("qhub_usage_")}

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))))

    assert value("qhub_usage_running_servers", user="bob", group="analysts", profile="small") == 1
    assert value("qhub_usage_running_servers", user="dave", group="ml", profile="small") == 1
    assert value("qhub_usage_requested_cpu_cores", user="bob", group="analysts", profile="small",
                 kind="server") == 0.5
    assert value("qhub_usage_requested_memory_bytes", user="bob", group="analysts", profile="small",
                 kind="server") == 2**30
    assert value("qhub_usage_cost_per_hour", user="bob", group="analysts", profile="small", kind="server") == 0.05
    assert value("qhub_usage_requested_gpus", user="dave", group="ml", profile="small") == 0
    assert value("qhub_usage_running_servers", user="carol", group="data-eng", profile="gpu") is None  # stopped
    carol_seconds = value("qhub_usage_seconds_total", user="carol", group="data-eng", profile="gpu", kind="server")
    assert carol_seconds is not None and carol_seconds > 0
    assert value("qhub_usage_cost_total", user="carol", group="data-eng", profile="gpu",
                 kind="server") == pytest.approx(carol_seconds * 1.5 / 3600)
    [seed] = [i for i in ledger_of(h).intervals() if i.username == "seed"]  # seeded by the budget test
    assert value("qhub_usage_seconds_total", user="seed", group="ml", profile="gpu",
                 kind="server") == pytest.approx(seed.end - seed.start)


def test_the_idle_culler_closes_the_session(hub):
    h, _ = hub
    culler = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyterhub-idle-culler"), f"--url={h.url}/hub/api",
         "--timeout=1", "--cull-every=1"],
        env={**os.environ, "JUPYTERHUB_API_TOKEN": h.culler_token}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:  # the culler keeps running until both are gone: a pass may find one of them just active
        for user in ("bob", "dave"):
            wait_until(lambda user=user: h.api("GET", f"/users/{user}")[1]["servers"] == {}, timeout=90,
                       what=f"the culler to stop {user}'s server")
    finally:
        culler.send_signal(signal.SIGTERM)
        culler.wait(10)
    rows = [i for i in ledger_of(h).intervals() if i.username in ("bob", "dave")]
    assert [(i.username, i.profile, i.end_reason) for i in rows] == [
        ("dave", "gpu", "stop"), ("bob", "small", "culled"), ("dave", "small", "culled")]
    assert open_rows(h) == {}


def test_two_spawns_at_once_cannot_both_take_the_last_place(hub):
    from concurrent.futures import ThreadPoolExecutor

    h, _ = hub  # analysts share one server; bob and alice ask at the same moment
    with ThreadPoolExecutor(2) as pool:
        answers = dict(zip(("alice", "bob"), pool.map(
            lambda user: h.api("POST", f"/users/{user}/server", {"profile": "small"}), ("alice", "bob")),
            strict=True))
    statuses = sorted(status for status, _ in answers.values())
    assert statuses[0] in (201, 202) and statuses[1] == 403, answers
    winner = next(user for user, (status, _) in answers.items() if status != 403)
    wait_until(lambda: ready(h, winner), timeout=90, what=f"{winner}'s server")
    assert [i.username for i in ledger_of(h).open_intervals(SERVER) if i.charged_group == "analysts"] == [winner]
    stop(h, winner)


def server_pid(hub: HubProcess, user: str) -> int:
    marker = f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub.hub_port}/hub/api".encode()
    for proc in Path("/proc").iterdir():
        try:
            raw = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker in raw and f"JUPYTERHUB_USER={user}\0".encode() in raw:
            return int(proc.name)
    raise AssertionError(f"no server process of {user}")


def test_a_hub_crash_closes_sessions_of_dead_servers_at_their_last_seen_time(hub):
    h, _ = hub
    start(h, "dave", "small")  # (the culler stopped it)
    start(h, "carol", "medium")
    time.sleep(3)  # a few refreshes of `seen`
    seen_before = open_rows(h)["carol"].seen
    h.proc.kill()  # the hub dies: no stop hooks run
    h.proc.wait()
    crashed_at = time.time()
    os.kill(server_pid(h, "carol"), signal.SIGKILL)  # carol's server dies with it; dave's survives
    time.sleep(2)
    pid_file = h.workdir / "proxy.pid"
    os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    h.start()
    wait_until(lambda: "carol" not in open_rows(h), timeout=60, what="carol's session to be closed")
    [carol] = [i for i in ledger_of(h).intervals() if i.username == "carol" and i.profile == "medium"]
    assert seen_before <= carol.end <= crashed_at + 1  # the hub down time is not counted
    assert carol.end_reason == "recovered"
    wait_until(lambda: ready(h, "dave"), timeout=60, what="dave's server, which kept running")
    dave = open_rows(h)["dave"]
    assert dave.end is None and dave.profile == "small"  # still running: still open
    time.sleep(2)
    assert open_rows(h)["dave"].seen > dave.seen  # and watched again
