"""Isolation on one machine, probed as a hostile user would (issue 11): a real `qhub-hub local up`
(hub, proxy, sshd, Dask Gateway), real servers, kernels, clusters and SSH sessions of two real Unix
users, ``isbob`` and ``iscarol``.

- bob's process scans every listening loopback socket (TCP ports from /proc/net/tcp{,6}, unix
  sockets from /proc/net/unix), subscribes to each with ZeroMQ and sends each an HTTP request: it
  gets nothing of carol's running kernel (which prints a secret in a loop) nor of her Dask
  dashboards; the same scan run as root (who may enter carol's runtime folder) does get the
  secret and a dashboard, so the scan is able to find them;
- carol's dashboard through the gateway: carol (token, or browser logged in to the hub) sees it,
  bob gets 403, nobody without credentials gets in; bob cannot list the clusters folder;
- SSH sessions and Dask processes sit in the platform's cgroups with the profile's (worker
  profile's) limits; a ``setsid`` process started over SSH, and everything else of the users,
  is ended by `qhub-hub local down`.

Users and groups: names ``is*``, ids 43000-43999 (this file's range), removed afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from qhub_hub.local.limits import CgroupLimiter
from qhub_hub.local.settings import PlatformSettings
from tests.gateway.harness import SITE_PACKAGES, make_environment

from .support import Platform, remove_test_accounts, remove_tree, write_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: real Unix users, setuid, cgroups")

PREFIX, ID_MIN, ID_MAX = "is", 43000, 43999
GROUPS = {"isusers": 43100}
USERS = {"isbob": {"uid": 43001, "primary_group": "isusers"},
         "iscarol": {"uid": 43002, "primary_group": "isusers"}}
UIDS = {name: spec["uid"] for name, spec in USERS.items()}
PROFILES = [{"display_name": "Small", "slug": "small", "default": True,
             "kubespawner_override": {"cpu_limit": 1, "mem_limit": "2G"}}]
DASK_PROFILES = {"Small Worker": {"worker_cores": 1, "worker_cores_limit": 1, "worker_memory": "1G",
                                  "worker_memory_limit": "1G", "max_workers": 2}}
GIB = 2**30
SECRET = f"is-secret-{uuid.uuid4().hex}"


def remove_is_accounts() -> None:
    """Every is* account and group in this file's id range (never anything else), their processes first."""
    remove_test_accounts(PREFIX, ID_MIN, ID_MAX)


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    remove_is_accounts()
    root = Path(tempfile.mkdtemp(prefix="qhub-is-", dir="/tmp"))
    root.chmod(0o755)
    config = write_config(root, users=USERS, groups=GROUPS, profiles=PROFILES)
    data = yaml.safe_load(config.read_text())
    data["profiles"]["dask_worker"] = DASK_PROFILES
    data["conda_store"] = {"enabled": False, "environments_root": str(root / "conda")}
    data["ssh"] = {"enabled": True}
    data["dask_gateway"] = {"enabled": True, "scheduler_cores": 1, "scheduler_memory": "1G"}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    # a "built" worker environment (no conda channels here): a venv importing the project's dask
    make_environment(root / "conda" / "global" / "envs" / "dask", [SITE_PACKAGES])
    for path in (root / "conda", root / "conda" / "global", root / "conda" / "global" / "envs"):
        path.chmod(0o755)
    running = Platform(root, config)
    try:
        running.up()
        yield running
    finally:
        running.down()
        remove_is_accounts()
        remove_tree(root)
        for uid in UIDS.values():  # the users' runtime folders (kernel sockets)
            remove_tree(Path(f"/run/qhub-hub/{uid}"))


def cgroup_name(platform: Platform) -> str:
    settings = PlatformSettings.load(platform.state_dir)
    assert settings is not None
    return settings.cgroup_name


# --- carol's kernel, through her server's kernel websocket ------------------------------------------


class Kernel:
    """A kernel of a user's server, driven through the server's websocket (as JupyterLab does)."""

    def __init__(self, platform: Platform, user: str, token: str):
        self.platform, self.user, self.token = platform, user, token
        self.id = ""
        self.conn = None

    async def start(self) -> Kernel:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        status, model = await asyncio.to_thread(self.platform.server_request, self.user, self.token,
                                                "POST", "api/kernels", {"name": "python3"})
        assert status == 201, (status, model)
        self.id = model["id"]
        url = f"ws://127.0.0.1:{self.platform.port}/user/{self.user}/api/kernels/{self.id}/channels"
        self.conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {self.token}"}))
        return self

    async def execute(self, code: str, until: str, timeout: float = 180) -> str:
        """Run `code`; return its stdout once it contains `until`."""
        msg_id = uuid.uuid4().hex
        self.conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": self.user, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        out = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(self.conn.read_message(), deadline - time.monotonic())
            assert raw is not None, f"kernel websocket closed; output so far:\n{out}"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out += msg["content"]["text"]
            elif msg["msg_type"] == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            if until in out:
                return out
        raise AssertionError(f"no {until!r} in the kernel's output in {timeout}s:\n{out}")


LEAK = f"""
import threading, time
def _leak():
    while True:
        print({SECRET!r}, flush=True)
        time.sleep(0.3)
threading.Thread(target=_leak, daemon=True).start()
print("answer", 6 * 7)
"""

CLUSTER = """
import os
from dask_gateway import GatewayCluster
cluster = GatewayCluster()
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=150)
print("CLUSTER", cluster.name, client.submit(os.getuid).result(), "END")
"""


@pytest.fixture(scope="module")
def carol(platform: Platform) -> dict:
    """carol's server, a kernel printing SECRET in a loop, and a 1-worker Dask cluster from it."""
    token = platform.token_for("iscarol")
    platform.start_server("iscarol")

    async def run() -> dict:
        kernel = await Kernel(platform, "iscarol", token).start()
        assert "answer 42" in await kernel.execute(LEAK, "answer 42")
        out = await kernel.execute(CLUSTER, "END", timeout=240)
        line = next(x for x in out.splitlines() if x.startswith("CLUSTER "))
        _, name, uid, _ = line.split()
        return {"kernel": kernel, "kernel_id": kernel.id, "cluster": name, "worker_uid": int(uid)}

    try:
        info = asyncio.run(run())
    except AssertionError as e:
        raise AssertionError(f"{e}\n{cluster_logs(platform)}") from None
    info["token"] = token
    return info


# --- bob's scan ---------------------------------------------------------------------------------------

SCANNER = r"""
import json, socket, ssl, sys, time
import zmq

args = json.loads(sys.argv[1])
result = {"tcp": {}, "unix": [], "messages": []}

def listening_tcp():
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    found[int(fields[1].rsplit(":", 1)[1], 16)] = int(fields[7])
    return found

def listening_unix():
    found = []
    with open("/proc/net/unix") as f:
        for line in list(f)[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[3] == "00010000" and fields[7].startswith("/"):
                found.append(fields[7])
    return found

def http(connect, path):
    try:
        with connect() as s:
            s.settimeout(3)
            s.sendall((f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                       f"Authorization: token {args['token']}\r\n\r\n").encode())
            data = b""
            while len(data) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data.decode(errors="replace")[:4000]
    except OSError as e:
        return f"error: {e}"

def tls(port):
    # what a TLS client (with the given certificate, or none) reads: a Dask comm speaks first
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if args.get("cert"):
        context.load_cert_chain(args["cert"], args["key"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
            with context.wrap_socket(raw) as s:
                s.settimeout(3)
                data = s.recv(4096)
                return f"read {len(data)} bytes: {data[:200]!r}" if data else "error: closed"
    except (OSError, ssl.SSLError) as e:
        return f"error: {e}"

def unix_connect(path):
    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return s
    return connect

context = zmq.Context()
sub = context.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.setsockopt(zmq.LINGER, 0)
for port, owner in listening_tcp().items():
    sub.connect(f"tcp://127.0.0.1:{port}")
    result["tcp"][port] = {"owner": owner, "tls": tls(port), "http": {
        path: http(lambda: socket.create_connection(("127.0.0.1", port), timeout=3), path)
        for path in args["paths"]}}
for path in listening_unix():
    try:
        sub.connect(f"ipc://{path}")
        result["unix"].append([path, "subscribed"])
    except zmq.ZMQError as e:
        result["unix"].append([path, f"error: {e}"])
    result["unix"].append([path, http(unix_connect(path), "/")])
deadline = time.monotonic() + args["seconds"]
while time.monotonic() < deadline:
    if sub.poll(200):
        result["messages"].append(repr(sub.recv_multipart()))
print(json.dumps(result))
"""


def scan_as(uid: int | None, token: str, paths: list[str], seconds: float = 6, **tls: str) -> dict:
    """Run SCANNER as `uid` (None: root) with the project's Python (which has pyzmq); `tls`:
    cert= and key= files its TLS client presents."""
    kwargs: dict = {}
    if uid is not None:
        entry = pwd.getpwuid(uid)
        kwargs = {"user": uid, "group": entry.pw_gid, "extra_groups": []}
    proc = subprocess.run([sys.executable, "-I", "-c", SCANNER, json.dumps(
        {"token": token, "paths": paths, "seconds": seconds, **tls})], capture_output=True, text=True,
        cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": "/"}, timeout=300, **kwargs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_bob_scanning_every_socket_gets_nothing_of_carols(platform: Platform, carol: dict) -> None:
    bob_token = platform.token_for("isbob")
    paths = ["/json/identity.json", "/user/iscarol/api/contents", "/user/iscarol/api/kernels"]

    bob = scan_as(UIDS["isbob"], bob_token, paths)
    carols_ports = {int(p): v for p, v in bob["tcp"].items() if v["owner"] == UIDS["iscarol"]}
    # her server, the scheduler (TLS, dashboard, gateway API) and the worker (TLS, HTTP), at least
    assert len(carols_ports) >= 5, bob["tcp"]
    seen_by_bob = json.dumps(bob)
    assert SECRET not in seen_by_bob
    assert not any(" 200 " in r.split("\r\n", 1)[0]
                   for v in carols_ports.values() for r in v["http"].values()), carols_ports
    # the Jupyter server answers, but only its owner: bob's token is refused
    answers = [r.split("\r\n", 1)[0] for v in carols_ports.values()
               for path, r in v["http"].items() if r.startswith("HTTP/") and path.startswith("/user/")]
    assert answers and all(" 403 " in a for a in answers), answers
    # her Dask comms: TLS that wants the cluster's certificate (bob has none): not a byte
    assert all(v["tls"].startswith("error") for v in carols_ports.values()), carols_ports
    # her kernel's sockets are unix sockets bob cannot even connect to
    runtime = f"/run/qhub-hub/{UIDS['iscarol']}/"
    kernel_sockets = [entry for entry in bob["unix"] if entry[0].startswith(runtime)]
    assert kernel_sockets and all("error" in entry[1] for entry in kernel_sockets
                                  if entry[1] != "subscribed"), kernel_sockets

    # the same scan as root (who may enter carol's folder) does get the secret and her dashboard:
    # the scan can find them, and bob's finds nothing because of the isolation
    certs = platform.state_dir / "gateway" / "clusters" / carol["cluster"] / ".certs"
    control = scan_as(None, bob_token, paths, seconds=4, cert=str(certs / "dask.crt"), key=str(certs / "dask.pem"))
    assert SECRET in json.dumps(control["messages"])
    # with the cluster's certificate, the Dask comms do talk (the scheduler's and the worker's)
    assert sum(v["tls"].startswith("read") for v in control["tcp"].values()
               if v["owner"] == UIDS["iscarol"]) >= 2, control["tcp"]
    assert any(" 200 " in r.split("\r\n", 1)[0] and '"Scheduler"' in r
               for v in control["tcp"].values() if v["owner"] == UIDS["iscarol"]
               for r in v["http"].values()), "root's scan did not read carol's dashboard"


def test_kernels_run_over_ipc_in_the_private_runtime_folder(carol: dict) -> None:
    runtime = Path(f"/run/qhub-hub/{UIDS['iscarol']}")
    info = os.lstat(runtime)
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (UIDS["iscarol"], "0o700")
    connection = json.loads((runtime / f"kernel-{carol['kernel_id']}.json").read_text())
    assert connection["transport"] == "ipc"
    assert connection["ip"].startswith(f"{runtime}/")
    for port in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
        assert Path(f"{connection['ip']}-{connection[port]}").is_socket()
    assert carol["worker_uid"] == UIDS["iscarol"]  # and the kernel ran a Dask cluster as carol


# --- dashboards -----------------------------------------------------------------------------------


def cluster_logs(platform: Platform) -> str:
    logs = [platform.state_dir / "logs" / "dask-gateway.log",
            *sorted((platform.state_dir / "gateway" / "clusters").glob("*/logs/*.log"))]
    return "\n".join(f"--- {p}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())


def get(session: requests.Session | None, url: str, **kwargs) -> requests.Response:
    """GET; a 5xx of the dashboard itself (distributed's /json/identity.json answers 500 while a
    worker's state changes) is retried, an access decision (401/403) never is."""
    for _ in range(5):
        r = (session or requests).get(url, timeout=60, **kwargs)
        if r.status_code < 500:
            return r
        time.sleep(1)
    return r


def browser_login(platform: Platform, user: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{platform.url}/hub/login", timeout=30)
    r = session.post(f"{platform.url}/hub/login", timeout=30, data={
        "username": user, "password": f"{user}-password", "_xsrf": session.cookies.get("_xsrf", "")})
    assert r.status_code == 200 and "/hub/login" not in r.url, (r.status_code, r.url)
    return session


def test_only_carol_reaches_her_dashboard(platform: Platform, carol: dict) -> None:
    bob_token = platform.token_for("isbob")
    gateway = json.loads((platform.state_dir / "gateway" / "embedded.json").read_text())
    page = f"/services/dask-gateway/clusters/{carol['cluster']}/json/identity.json"
    through_hub, direct = f"{platform.url}{page}", f"{gateway['service_url']}{page}"
    html = {"Accept": "text/html"}
    for url in (through_hub, direct):  # the hub's proxy, and the gateway's own proxy port
        r = get(None, url, headers={"Authorization": f"token {carol['token']}"})
        assert (r.status_code, r.json()["type"]) == (200, "Scheduler"), url
        r = requests.get(url, headers={"Authorization": f"token {bob_token}"}, timeout=30)
        assert r.status_code == 403, url
        assert requests.get(url, timeout=30).status_code == 401
        r = requests.get(url, headers=html, allow_redirects=False, timeout=30)
        assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["Location"]
    # a name with no cluster has no route at all (the gateway answers 404): only someone who already
    # knows a 128-bit random name could tell that it exists, and names cannot be listed (below)
    other = through_hub.replace(carol["cluster"], "0" * 32)
    assert requests.get(other, headers={"Authorization": f"token {bob_token}"}, timeout=30).status_code == 404

    # browsers logged in to the hub: the hub's OAuth, then a dashboard session cookie
    r = get(browser_login(platform, "iscarol"), through_hub, headers=html)
    assert (r.status_code, r.url) == (200, through_hub), (r.history, r.url, r.text[:2000], cluster_logs(platform))
    assert r.json()["type"] == "Scheduler"
    r = browser_login(platform, "isbob").get(through_hub, headers=html, timeout=60)
    assert r.status_code == 403 and r.url == through_hub
    # the Bokeh dashboard itself, page and websocket, through the guard
    status = through_hub.replace("/json/identity.json", "/status")
    r = requests.get(status, headers={"Authorization": f"token {carol['token']}"}, timeout=60)
    assert r.status_code == 200 and "bokeh" in r.text.lower(), r.text[:1000]
    assert asyncio.run(bokeh_ack(status, carol["token"], r.text)), "no ACK on the dashboard's websocket"
    # bob's own token cannot see carol's clusters through the API either
    status_body = requests.get(f"{platform.url}/services/dask-gateway/api/v1/clusters/",
                               headers={"Authorization": f"jupyterhub {bob_token}"}, timeout=30)
    assert (status_body.status_code, status_body.json()) == (200, {})


async def bokeh_ack(page_url: str, token: str, page: str) -> bool:
    """Open the Bokeh websocket of a dashboard page as its browser would; True on Bokeh's ACK."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    session_token = re.search(r'\\?"token\\?":\\?"([^"\\]+)', page)
    assert session_token, page[:2000]
    url = page_url.replace("http://", "ws://") + "/ws"
    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}),
                                   subprotocols=["bokeh", session_token.group(1)])
    try:
        first = await asyncio.wait_for(conn.read_message(), 30)
        return first is not None and '"ACK"' in str(first)
    finally:
        conn.close()


def run_as(user: str, code: str) -> subprocess.CompletedProcess:
    uid = UIDS[user]
    return subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd="/",
                          user=uid, group=pwd.getpwuid(uid).pw_gid, extra_groups=[], timeout=60)


def test_cluster_names_are_not_listable(platform: Platform, carol: dict) -> None:
    clusters = platform.state_dir / "gateway" / "clusters"
    assert oct(clusters.stat().st_mode & 0o777) == "0o711"
    listing = f"import os; print(os.listdir({str(clusters)!r}))"
    for user in ("isbob", "iscarol"):
        proc = run_as(user, listing)
        assert proc.returncode != 0 and "PermissionError" in proc.stderr, (user, proc.stdout)
    own = run_as("iscarol", f"import os; print(sorted(os.listdir({str(clusters / carol['cluster'])!r})))")
    assert own.returncode == 0 and "logs" in own.stdout  # her own cluster's folder, by its name
    assert run_as("isbob", f"import os; os.listdir({str(clusters / carol['cluster'])!r})").returncode != 0


# --- one resource boundary per user ---------------------------------------------------------------


def cgroup_of(pid: int) -> tuple[str, int, int]:
    """(memory cgroup path, memory limit in bytes, CPU quota per 100ms period) of `pid`."""
    entries = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            entries[c] = path
    base = Path("/sys/fs/cgroup")
    if (base / "memory").is_dir() and "memory" in entries:  # cgroup v1
        memory = base / "memory" / entries["memory"].lstrip("/")
        cpu = base / "cpu" / entries["cpu"].lstrip("/")
        return (entries["memory"], int((memory / "memory.limit_in_bytes").read_text()),
                int((cpu / "cpu.cfs_quota_us").read_text()) * 100_000 // int((cpu / "cpu.cfs_period_us").read_text()))
    unified = base / entries[""].lstrip("/")
    quota, period = (unified / "cpu.max").read_text().split()
    return entries[""], int((unified / "memory.max").read_text()), int(quota) * 100_000 // int(period)


def pids_of(uid: int, needle: str = "") -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = {line.split(":", 1)[0]: line.split()[1:] for line in status.splitlines() if line.strip()}
        if str(uid) in fields["Uid"] and needle in cmdline and fields["State"][0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def test_dask_processes_sit_in_cgroups_with_the_worker_profiles_limits(platform: Platform, carol: dict) -> None:
    group = cgroup_name(platform)
    scheduler = pids_of(UIDS["iscarol"], "dask scheduler")
    workers = pids_of(UIDS["iscarol"], "dask worker")
    assert scheduler and workers, "no Dask processes of carol found"
    for pid in scheduler:
        path, memory, cpu = cgroup_of(pid)
        assert path.endswith(f"/{group}/iscarol@dask-{carol['cluster']}-scheduler"), path
        assert (memory, cpu) == (1 * GIB, 100_000)  # dask_gateway.scheduler_memory/_cores
    for pid in workers:  # the nanny and the worker process it runs
        path, memory, cpu = cgroup_of(pid)
        assert f"/{group}/iscarol@dask-{carol['cluster']}-worker-" in path, path
        assert (memory, cpu) == (1 * GIB, 100_000)  # Small Worker: worker_memory_limit 1G, 1 core


async def ssh_run(platform: Platform, user: str, token: str, command: str) -> str:
    import asyncssh

    async with asyncssh.connect("127.0.0.1", port=platform.ssh_port, username=user, password=token,
                                known_hosts=None, client_keys=None, preferred_auth="password") as conn:
        result = await conn.run(command, check=True, timeout=60)
        return str(result.stdout)


def test_ssh_sessions_sit_in_the_users_cgroup_and_setsid_does_not_escape(platform: Platform) -> None:
    token = platform.token_for("isbob")
    out = asyncio.run(ssh_run(platform, "isbob", token, "cat /proc/self/cgroup; "
                              "setsid -f sh -c 'exec sleep 4321' </dev/null >/dev/null 2>&1; echo done"))
    group = cgroup_name(platform)
    assert f"/{group}/isbob@ssh" in out, out
    deadline = time.monotonic() + 10
    while not (escaped := pids_of(UIDS["isbob"], "sleep 4321")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert escaped, "the setsid process did not start"
    for pid in escaped:  # it outlived its session, still inside the boundary
        path, memory, cpu = cgroup_of(pid)
        assert path.endswith(f"/{group}/isbob@ssh"), path
        assert (memory, cpu) == (2 * GIB, 100_000)  # the default profile: mem_limit 2G, cpu_limit 1


def test_down_ends_every_process_of_the_users(platform: Platform, carol: dict) -> None:
    group = cgroup_name(platform)
    assert pids_of(UIDS["isbob"], "sleep 4321"), "run with the SSH test: its setsid process is gone"
    server = pids_of(UIDS["iscarol"], "jupyterhub-singleuser")
    assert server and pids_of(UIDS["iscarol"], "dask worker")
    # --keep-servers: SSH leftovers and Dask processes end, servers (and their kernels) stay
    kept = platform.cli("down", "--keep-servers")
    assert "ended the processes of isbob@ssh" in kept.stdout, kept.stdout
    wait_gone = time.monotonic() + 20
    while (pids_of(UIDS["isbob"]) or pids_of(UIDS["iscarol"], "dask ")) and time.monotonic() < wait_gone:
        time.sleep(0.2)
    assert not pids_of(UIDS["isbob"]) and not pids_of(UIDS["iscarol"], "dask ")
    assert all(pid in pids_of(UIDS["iscarol"], "jupyterhub-singleuser") for pid in server)
    # what is left of carol is her server and its kernels, in the server's cgroup
    assert {cgroup_of(pid)[0].rsplit("/", 1)[-1] for pid in pids_of(UIDS["iscarol"])} == {"iscarol"}
    down = platform.down()
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 20
    while (left := pids_of(UIDS["isbob"]) + pids_of(UIDS["iscarol"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes() for p in left if Path(f"/proc/{p}").exists()]
    assert CgroupLimiter.children(group) == {}
    assert not any(Path(f"/run/qhub-hub/{uid}").exists() for uid in UIDS.values())  # runtime folders


def test_runtime_folder_is_private_and_never_follows_a_link(tmp_path: Path) -> None:
    from qhub_hub.local.runtime_dir import ensure_runtime_dir

    root = tmp_path / "run"
    uid, gid = UIDS["isbob"], GROUPS["isusers"]
    path = Path(ensure_runtime_dir(root, uid, gid))
    info = os.lstat(path)
    assert (path, info.st_uid, info.st_gid, oct(info.st_mode & 0o777)) == (root / str(uid), uid, gid, "0o700")
    assert oct(root.stat().st_mode & 0o777) == "0o755"
    # a link planted in its place (or a folder left by an earlier owner of the uid) is replaced
    path.rmdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    path.symlink_to(target)
    assert not Path(ensure_runtime_dir(root, uid, gid)).is_symlink()
    assert os.stat(target).st_uid == 0
    os.chown(path, UIDS["iscarol"], gid)
    (path / "kernel-old.json").write_text("{}")
    ensure_runtime_dir(root, uid, gid)
    assert os.stat(path).st_uid == uid and not (path / "kernel-old.json").exists()
    # a root folder others could write to is refused
    root.chmod(0o777)
    with pytest.raises(OSError, match="writable only by root"):
        ensure_runtime_dir(root, uid, gid)
