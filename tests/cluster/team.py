"""The team of examples/qhub-config.yaml on an installed qhub release: what tests/cluster/test_chart.py
and benchmarks/chart_install.py share (values, a client through the public proxy, diagnostics)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from ..hub.conftest import password_login, xsrf_of
from . import release as releaselib

REPO = Path(__file__).resolve().parents[2]
STORAGE_CLAIM, ENVIRONMENTS_CLAIM = "team-storage", "team-conda-envs"
IDS = {"alice": 3001, "bob": 3002, "carol": 3003, "dave": 3004, "erin": 3005}


def team_config() -> dict:
    """examples/qhub-config.yaml, with requests small enough for 2 cores."""
    config = yaml.safe_load((REPO / "examples" / "qhub-config.yaml").read_text())
    for profile in config["profiles"]["jupyterlab"]:
        profile["kubespawner_override"].update(cpu_guarantee=0.05, mem_guarantee="128M")
    for worker in config["profiles"]["dask_worker"].values():
        worker.update(worker_cores=0.1, worker_memory="384M")
    config["dask_gateway"].update(scheduler_cores=0.1, scheduler_memory="512M")
    config["ssh"] = {"enabled": False}
    return config


def team_values(config: dict | None = None) -> dict:
    return {
        "qhub": config or team_config(),
        "storage": {"type": "existing-claim", "existingClaim": STORAGE_CLAIM,
                    "condaStoreExistingClaim": ENVIRONMENTS_CLAIM},
        # no load balancer here: the tests reach proxy-public's ClusterIP (kube-proxy routes it)
        "jupyterhub": {"proxy": {"service": {"type": "ClusterIP"}}},
    }


@dataclass
class Team:
    cluster: Any  # tests/cluster/conftest.Cluster: kubectl()
    release: releaselib.Release
    install_seconds: float
    notes: str
    proxy: str = ""
    sessions: dict[str, requests.Session] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    uninstalled: bool = False

    def kubectl(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.cluster.kubectl("-n", self.release.namespace, *args, **kw)

    def pods(self, selector: str = "") -> list[dict]:
        args = ["get", "pods", "-o", "json"] + (["-l", selector] if selector else [])
        return json.loads(self.kubectl(*args).stdout)["items"]

    def sh(self, pod: str, script: str, check: bool = True, container: str = "") -> subprocess.CompletedProcess:
        extra = ["-c", container] if container else []
        return self.kubectl("exec", pod, *extra, "--", "sh", "-c", script, check=check, timeout=300)

    def login(self, user: str) -> requests.Session:
        if user not in self.sessions:
            session, response = password_login(self.proxy, user, f"{user}-password")
            assert response.status_code == 302, f"{user} could not log in: {response.status_code}"
            self.sessions[user] = session
        return self.sessions[user]

    def token(self, user: str) -> str:
        """A token of the user's own, made through the REST API with their login cookie."""
        if user not in self.tokens:
            session = self.login(user)
            page = session.get(f"{self.proxy}/hub/token", timeout=30)
            response = session.post(f"{self.proxy}/hub/api/users/{user}/tokens", json={"note": "tests"},
                                    headers={"X-XSRFToken": xsrf_of(session, page.text)}, timeout=30)
            assert response.status_code in (200, 201), response.text
            self.tokens[user] = response.json()["token"]
        return self.tokens[user]

    def api(self, method: str, path: str, user: str, body: dict | None = None) -> requests.Response:
        return requests.request(method, f"{self.proxy}/hub/api{path}", json=body, timeout=60,
                                headers={"Authorization": f"token {self.token(user)}"})

    def wait_for_hub(self, timeout: float = 180) -> float:
        """Seconds until the hub answers through the public proxy again. After `helm upgrade --wait`
        the new hub pod is Ready, but until kube-proxy routes its Service to it the proxy answers
        503: a user sees that page for a moment, as with z2jh's single, recreated hub."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if requests.get(f"{self.proxy}/hub/api", timeout=10).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the hub did not answer through the proxy in {timeout} s\n{describe(self)}")

    def offered_profiles(self, user: str) -> list[str]:
        page = self.login(user).get(f"{self.proxy}/hub/spawn", timeout=60)
        assert page.status_code == 200, page.text[-2000:]
        return re.findall(r'<input type="radio" name="profile" id="profile-[^"]+" value="([^"]+)"', page.text)

    def spawn(self, user: str, profile: str = "small", timeout: float = 300) -> float:
        """Spawn by the form, as a browser does; wait until JupyterLab answers. Seconds taken."""
        session = self.login(user)
        server = self.api("GET", f"/users/{user}", user).json().get("servers", {}).get("")
        if server and server.get("ready"):
            return 0.0  # running already (a reused release)
        started = time.monotonic()
        page = session.get(f"{self.proxy}/hub/spawn", timeout=60)
        response = session.post(f"{self.proxy}/hub/spawn", data={"profile": profile,
                                                                 "_xsrf": xsrf_of(session, page.text)},
                                allow_redirects=False, timeout=120)
        assert response.status_code == 302, response.text[-2000:]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lab = session.get(f"{self.proxy}/user/{user}/lab", timeout=60)
            if lab.status_code == 200 and lab.url.endswith(f"/user/{user}/lab") and "JupyterLab" in lab.text:
                return time.monotonic() - started
            time.sleep(1)
        raise AssertionError(f"{user}'s JupyterLab did not answer in {timeout} s\n{describe(self)}")


def describe(team: Team) -> str:
    """Pods, their states and the last log lines of those not ready: what a failed test shows."""
    out = [team.kubectl("get", "pods", "-o", "wide", check=False).stdout]
    for pod in team.pods():
        statuses = pod["status"].get("containerStatuses", []) + pod["status"].get("initContainerStatuses", [])
        if all(s.get("ready") for s in pod["status"].get("containerStatuses", [])) and statuses:
            continue
        name = pod["metadata"]["name"]
        out.append(f"--- {name}: {json.dumps([s.get('state') for s in statuses])[:800]}")
        out.append(team.kubectl("logs", name, "--all-containers", "--tail=25", check=False).stdout[-3000:])
    out.append(team.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False).stdout[-3000:])
    return "\n".join(out)


