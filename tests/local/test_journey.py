"""A newcomer's first hour on a fresh machine, end to end (root, real everything).

The README's first command (`bash scripts/run.sh up`) is setup plus `qhub-hub local up --config
examples/qhub-config.yaml`; here that command runs with a scratch state dir, a scratch shared
folder and free ports. Then carol logs in through the platform's URL in headless Chromium and
starts her server; in a real kernel of it, over the Jupyter server's kernel API as the browser
would, `GatewayCluster()` with no arguments scales to 2 workers that run as carol, before any
conda-store build has finished (conda-store's builds cannot reach conda channels here: they fail,
visibly); the dashboard page opens in the browser, logged in as carol; `down` leaves no process
and no cgroup behind.

The example team's accounts (alice ... frank, uids 3001-3006) and groups are real: they are made by
`up` and removed at the end, with the homes `up` made (only what did not exist before the test).
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
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.support.net import free_port
from tests.support.process import request_json

pytestmark = [pytest.mark.root, pytest.mark.browser,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian chromium")]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "qhub-config.yaml"
CONFIG = yaml.safe_load(EXAMPLE.read_text())
USERS = {name: spec["uid"] for name, spec in CONFIG["security"]["users"].items()}
GROUPS = {name: spec["gid"] for name, spec in CONFIG["security"]["groups"].items()}
HOME_ROOT = Path("/home")  # the example's storage.home_root (the default)
ENVIRONMENTS_ROOT = Path("/home/conda")  # the example's conda_store.environments_root (the default)
SCREENSHOTS = Path(os.environ.get("QHUB_SCREENSHOTS", "/tmp/qhub-screenshots"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def qhub(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qhub_hub.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


# --- the machine before and after ------------------------------------------------------------------


def _group_by_gid(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def machine_conflicts() -> list[str]:
    """What on this machine would make `up` refuse the example team (not left by this test)."""
    found = []
    for name, uid in USERS.items():
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            entry = None
        if entry is not None and entry.pw_uid != uid:
            found.append(f"account {name} exists with uid {entry.pw_uid}")
    return found


def remove_example_team(made: dict[str, list[str]]) -> None:
    """Remove what `up` made for the example team (and nothing that existed before the test)."""
    for name in made["users"]:
        uid = USERS[name]
        subprocess.run(["pkill", "-KILL", "-u", str(uid)], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)
    for group in made["groups"]:
        subprocess.run(["groupdel", group], capture_output=True)
    for path in made["paths"]:
        shutil.rmtree(path, ignore_errors=True)


def example_team_leftovers() -> dict[str, list[str]]:
    """Accounts, groups and folders of the example team that exist right now."""
    users = [n for n, uid in USERS.items() if _uid_name(uid) == n]
    groups = [g for gid in GROUPS.values() if (g := _group_by_gid(gid))]
    paths = [str(HOME_ROOT / n) for n in USERS if (HOME_ROOT / n).exists()]
    if ENVIRONMENTS_ROOT.exists():
        paths.append(str(ENVIRONMENTS_ROOT))
    return {"users": users, "groups": groups, "paths": paths}


def _uid_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def processes_of(uids: set[int], marker: str) -> list[str]:
    """Live processes running as one of `uids` or whose command line mentions `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            uid = entry.stat().st_uid
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state in ("Z", "X"):
            continue
        if uid in uids or marker in cmdline:
            found.append(f"pid {entry.name} uid {uid}: {cmdline[:200]}")
    return found


def cgroups_named(fragment: str) -> list[str]:
    found = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "8", "-type", "d", "-name", f"*{fragment}*"],
                           capture_output=True, text=True).stdout.split()
    return sorted(found)


# --- the platform -----------------------------------------------------------------------------------


class Journey:
    def __init__(self, root: Path):
        self.root = root
        self.state_dir = root / "state"
        self.shared_dir = root / "shared"
        self.port = free_port()
        self.ssh_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.up_output = ""
        self.up_seconds = 0.0
        self.made: dict[str, list[str]] = {"users": [], "groups": [], "paths": []}

    def up(self) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = qhub("local", "up", "--config", str(EXAMPLE), "--state-dir", str(self.state_dir),
                    "--port", str(self.port), "--ssh-port", str(self.ssh_port),
                    "--shared-dir", str(self.shared_dir))
        self.up_seconds = time.monotonic() - started
        self.up_output = proc.stdout + proc.stderr
        return proc

    def down(self) -> subprocess.CompletedProcess:
        return qhub("local", "down", "--state-dir", str(self.state_dir))

    @property
    def secrets(self) -> dict[str, str]:
        return json.loads((self.state_dir / "secrets.json").read_text())

    @property
    def settings(self) -> dict:
        return json.loads((self.state_dir / "platform.json").read_text())

    def log(self, name: str) -> str:
        path = self.state_dir / "logs" / name
        return path.read_text(errors="replace") if path.exists() else ""

    def hub_api(self, method: str, path: str, body=None) -> tuple[int, object]:
        return request_json(method, f"{self.url}/hub/api{path}", body,
                            {"Authorization": f"token {self.secrets['platform_token']}"})


@pytest.fixture(scope="module")
def journey():
    conflicts = machine_conflicts()
    if conflicts:
        pytest.fail("this machine's accounts clash with the example team: " + "; ".join(conflicts))
    before = example_team_leftovers()
    root = Path(tempfile.mkdtemp(prefix="qhub-journey-", dir="/tmp"))
    os.chmod(root, 0o755)
    journey = Journey(root)
    try:
        yield journey
    finally:
        journey.down()
        after = example_team_leftovers()
        journey.made = {key: [x for x in after[key] if x not in before[key]] for key in after}
        remove_example_team(journey.made)
        shutil.rmtree(root, ignore_errors=True)


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def carol(journey, browser):
    """carol's browser: logged in through the platform's URL, her server started from the form."""
    assert journey.up().returncode == 0, journey.up_output
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{journey.url}/hub/login")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "carol-password")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/hub/spawn**", timeout=60_000)
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")  # the default
    page.wait_for_url("**/user/carol/lab**", timeout=180_000)
    page.wait_for_selector(".jp-Launcher, .jp-LauncherBody", timeout=120_000)
    page.screenshot(path=str(SCREENSHOTS / "journey-jupyterlab.png"))
    yield context
    context.close()


def cookie_header(context, url: str) -> tuple[str, str]:
    """The Cookie header a browser would send to `url`, and the Jupyter server's _xsrf token."""
    cookies = context.cookies(url)
    xsrf = next((c["value"] for c in cookies if c["name"] == "_xsrf"), "")
    return "; ".join(f"{c['name']}={c['value']}" for c in cookies), xsrf


async def run_in_kernel(base_url: str, cookie: str, xsrf: str, code: str, timeout: float = 300) -> str:
    """Start a kernel of the server's default kernelspec over the kernel API, run `code` as a
    notebook cell, return what it printed (an error's traceback fails the test). The kernel keeps
    running, as a notebook's does: a cluster it made lives as long as it does."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Cookie": cookie, "X-XSRFToken": xsrf, "Content-Type": "application/json"}
    http = AsyncHTTPClient()
    response = await http.fetch(HTTPRequest(f"{base_url}/api/kernels", method="POST", headers=headers,
                                            body=json.dumps({})))
    kernel = json.loads(response.body)
    ws_url = base_url.replace("http://", "ws://") + f"/api/kernels/{kernel['id']}/channels"
    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Cookie": cookie}))
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "carol", "session": uuid.uuid4().hex, "msg_type":
                   "execute_request", "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    output, error = [], None
    deadline = time.monotonic() + timeout
    try:
        while True:
            message = await asyncio.wait_for(conn.read_message(), max(1, deadline - time.monotonic()))
            assert message is not None, "the kernel's websocket closed"
            msg = json.loads(message)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                output.append(msg["content"]["text"])
            elif kind == "error":
                error = "\n".join(msg["content"]["traceback"])
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        conn.close()
    text = "".join(output)
    assert error is None, re.sub(r"\x1b\[[0-9;]*m", "", error) + "\n" + text
    return text


def in_thread(coroutine):
    """Run `coroutine` on its own event loop (Playwright's sync API holds this thread's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


CELL = """
import os
from dask_gateway import GatewayCluster

cluster = GatewayCluster()  # no arguments, as the README promises
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout=240)
print("WORKERS", len(client.scheduler_info()["workers"]))
print("SUBMIT", client.submit(os.getuid, pure=False).result())
print("WORKER_UIDS", sorted(set(client.run(os.getuid).values())))
print("ENVIRONMENT", client.run(lambda: os.environ.get("CONDA_PREFIX")).popitem()[1])
print("DASHBOARD", cluster.dashboard_link)
"""


# --- the journey, in order ------------------------------------------------------------------------


def test_up_starts_everything_the_readme_says(journey, carol):
    status = qhub("local", "status", "--state-dir", str(journey.state_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    for component in ("proxy", "conda-store", "conda-store-worker", "dask-gateway", "hub", "sshd"):
        assert re.search(rf"^\s+{component}\s+running, pid \d+", status.stdout, re.M), status.stdout
    print(f"journey: up took {journey.up_seconds:.1f} s")
    # a normal start is not "slow", and the gateway answers the hub's service check (no 404)
    assert "slow to become responsive" not in journey.log("hub.log")
    assert not re.search(r" 404 GET ", journey.log("dask-gateway.log")), journey.log("dask-gateway.log")[-2000:]


def test_gateway_cluster_with_no_arguments_runs_as_carol(journey, carol):
    cookie, xsrf = cookie_header(carol, f"{journey.url}/user/carol/")
    assert xsrf, "the Jupyter server set no _xsrf cookie in the browser"
    started = time.monotonic()
    out = in_thread(run_in_kernel(f"{journey.url}/user/carol", cookie, xsrf, CELL))
    seconds = time.monotonic() - started
    values = dict(line.split(" ", 1) for line in out.strip().splitlines() if " " in line)
    assert values["WORKERS"] == "2", out
    assert values["SUBMIT"] == str(USERS["carol"]), out
    assert values["WORKER_UIDS"] == f"[{USERS['carol']}]", out
    assert values["ENVIRONMENT"] == sys.prefix, out  # the server's (and kernel's) environment
    journey.dashboard_link = values["DASHBOARD"]
    assert journey.dashboard_link.startswith(f"{journey.url}/services/dask-gateway/clusters/"), out
    print(f"journey: GatewayCluster() to 2 workers and a result took {seconds:.1f} s")


def test_dashboard_opens_for_carol(journey, carol):
    page = carol.new_page()
    try:
        page.goto(journey.dashboard_link, timeout=120_000)
        page.wait_for_load_state("networkidle", timeout=120_000)
        page.wait_for_selector("canvas", timeout=60_000)  # Bokeh drew the plots (its websocket works)
        time.sleep(3)  # a few frames more before the screenshot
        page.screenshot(path=str(SCREENSHOTS / "journey-dask-dashboard.png"))
        body = page.inner_text("body")
        assert "Dask" in page.title(), (page.url, page.title(), body[:1000])
        assert "bokeh>=" not in body.lower() and "Dask needs bokeh" not in body, body[:500]
        parsed = urllib.parse.urlparse(page.url)
        assert parsed.path.startswith("/services/dask-gateway/clusters/"), page.url
    finally:
        page.close()


def test_conda_store_builds_fail_visibly(journey, carol):
    store = json.loads((journey.state_dir / "conda-store" / "embedded.json").read_text())
    deadline = time.monotonic() + 240
    builds: list = []
    while time.monotonic() < deadline:
        status, body = request_json("GET", f"{store['url']}api/v1/build/?size=100", None,
                                    {"Authorization": f"Bearer {store['hub_token']}"})
        builds = body.get("data", []) if status == 200 else []
        if len(builds) >= 2 and all(b["status"] in ("FAILED", "COMPLETED") for b in builds):
            break
        time.sleep(2)
    assert {b["status"] for b in builds} == {"FAILED"}, builds
    hub_log = journey.log("hub.log")
    for name in ("dask", "analytics"):  # with the reason
        assert re.search(rf"conda-store global/{name}: \w+ \(build \d+: FAILED\): .*this machine's "
                         "conda-store cannot build environments: conda and mamba are not installed",
                         hub_log), hub_log[-3000:]


def test_built_environments_appear_as_kernels(journey, carol):
    # a finished build stands in for one conda-store could not make here (no conda channels): an
    # environment at the path conda-store builds `analytics` to, as the conda-store tests do
    from tests.condastore.support import make_environment

    prefix = ENVIRONMENTS_ROOT / "global" / "envs" / "analytics"
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    make_environment(prefix)
    subprocess.run(["chmod", "-R", "go+rX", str(ENVIRONMENTS_ROOT)], check=True)
    cookie, xsrf = cookie_header(carol, f"{journey.url}/user/carol/")
    status, specs = request_json("GET", f"{journey.url}/user/carol/api/kernelspecs", None,
                                 {"Cookie": cookie, "X-XSRFToken": xsrf})
    assert status == 200, specs
    assert "conda-global.analytics" in specs["kernelspecs"], sorted(specs["kernelspecs"])


def test_down_leaves_no_process_and_no_cgroup(journey, carol):
    proc = journey.down()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from qhub_hub.local.settings import PlatformSettings

    instance = PlatformSettings.load(journey.state_dir).instance
    deadline = time.monotonic() + 30
    left = processes_of(set(USERS.values()), str(journey.state_dir))
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = processes_of(set(USERS.values()), str(journey.state_dir))
    assert left == [], "\n".join(left)
    assert cgroups_named(instance) == []
    assert not Path(f"/etc/pam.d/qhub-sshd-{instance}").exists()
