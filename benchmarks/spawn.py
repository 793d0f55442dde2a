"""Benchmark: spawning user servers in the embedded mode (`qhub-hub local up`).

    sudo /opt/qhub-hub/bin/python benchmarks/spawn.py [--rounds 5] [--users 50]

Every figure is printed next to an anchor measured in the same run: plain JupyterHub with its
`LocalProcessSpawner`, the same Unix users and the same server environment (/opt/qhub-hub), with a
password authenticator of the same bcrypt cost as ours (cost 10), so only what qhub-hub adds differs.

1. One spawn at a time, request to ready: `QHubLocalSpawner` in a platform started by `qhub-hub
   local up` (plan, account and folder checks, exact ids, cgroup limits, session env) against the
   anchor, alternating. Also the CPU seconds the new server used until it was ready
   (user+system of its processes and their reaped children, from /proc).
2. N users logging in (password form) and spawning at the same time through each hub's proxy: how
   many servers are up, p50/p95/max of login-to-ready, and the hub's memory (VmRSS) with all up.

Last line: ``result: spawn_ratio=... concurrent_ratio=... concurrent_p50_s=... concurrent_p95_s=...
up=N/N server_cpu_s=... server_start=starter`` (ours; ratios are ours / anchor).

``--server-start exec`` measures ours with `QHubLocalSpawner.preimported_starter` off (a new Python
per server, as before the server starter); the default is the starter (forked servers).

Uses temporary Unix users scb00.. (uids 45300..; group scbench 45390) and removes them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import html
import json
import os
import pwd
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.local.support import (  # noqa: E402 - the repository root is added just above
    Platform,
    password_of,
    public_dir,
    remove_tree,
    write_config,
)
from tests.support.hub import HubProcess  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anchor_auth import ANCHOR_AUTH  # noqa: E402

PREFIX, UID_BASE, GID = "scb", 45300, 45390  # this benchmark's own names and ids
PROFILES = [{"display_name": "Small", "slug": "small", "default": True,
             "kubespawner_override": {"cpu_limit": 1, "mem_limit": "2G"}}]

def users(n: int) -> dict[str, dict]:
    return {f"{PREFIX}{i:02d}": {"uid": UID_BASE + i, "primary_group": f"{PREFIX}ench"} for i in range(n)}


def remove_accounts() -> None:
    """Delete this benchmark's accounts and group (name prefix and id range both must match)."""
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(PREFIX) and UID_BASE <= entry.pw_uid < UID_BASE + 90:
            subprocess.run(["pkill", "-KILL", "-u", str(entry.pw_uid)], capture_output=True)
            subprocess.run(["userdel", entry.pw_name], capture_output=True)
    for entry in grp.getgrall():
        if entry.gr_name == f"{PREFIX}ench" and entry.gr_gid == GID:
            subprocess.run(["groupdel", entry.gr_name], capture_output=True)


def uid_cpu_seconds(uid: int) -> float:
    """user+system CPU of every process of `uid` and of their reaped children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


def starter_figures(hub_pid: int) -> tuple[float, float] | None:
    """(CPU seconds, RSS MiB) of the hub's server starter, if it runs one."""
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if b"qhub_hub.local.server_starter" not in cmdline:
                continue
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == hub_pid:  # ppid
            cpu = sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")
            return cpu, rss_mib(int(entry))
    return None


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def api(base: str, token: str, method: str, path: str, body: object = None) -> tuple[int, object]:
    request = urllib.request.Request(f"{base}/hub/api{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None


def spawn_and_time(base: str, token: str, name: str, uid: int, body: object) -> tuple[float, float]:
    """(seconds from request to ready, CPU seconds of the server until ready)."""
    api(base, token, "POST", f"/users/{name}")
    start = time.perf_counter()
    status, _ = api(base, token, "POST", f"/users/{name}/server", body)
    if status not in (201, 202):
        raise RuntimeError(f"spawn of {name} at {base} answered {status}")
    while True:
        _, model = api(base, token, "GET", f"/users/{name}")
        server = model["servers"].get("")
        if server and server.get("ready"):
            elapsed = time.perf_counter() - start
            cpu = uid_cpu_seconds(uid)
            break
        if not server:
            raise RuntimeError(f"{name}'s server at {base} failed to start")
        time.sleep(0.05)
    api(base, token, "DELETE", f"/users/{name}/server")
    deadline = time.perf_counter() + 60
    while api(base, token, "GET", f"/users/{name}")[1]["servers"] and time.perf_counter() < deadline:
        time.sleep(0.1)
    return elapsed, cpu


def latency_ratio(platform: Platform, anchor: HubProcess, names: list[str], rounds: int) -> dict:
    token = platform.secrets["platform_token"]
    uids = {n: UID_BASE + int(n[len(PREFIX):]) for n in names}
    ours, plain = [], []
    spawn_and_time(platform.url, token, names[0], uids[names[0]], {"profile": "small"})  # warm-up
    spawn_and_time(anchor.url, anchor.admin_token, names[0], uids[names[0]], {})
    for i in range(rounds):
        name = names[i % len(names)]
        ours.append(spawn_and_time(platform.url, token, name, uids[name], {"profile": "small"}))
        plain.append(spawn_and_time(anchor.url, anchor.admin_token, name, uids[name], {}))
    o, p = statistics.median(t for t, _ in ours), statistics.median(t for t, _ in plain)
    oc, pc = statistics.median(c for _, c in ours), statistics.median(c for _, c in plain)
    print(f"\n1. one spawn at a time, request to ready, {rounds} rounds (medians)")
    print(f"   QHubLocalSpawner       {o:6.2f}s   server CPU {oc:.2f}s")
    print(f"   LocalProcessSpawner    {p:6.2f}s   server CPU {pc:.2f}s  (anchor)")
    print(f"   ratio                  {o / p:6.2f}    server CPU {oc / pc:.2f}")
    return {"spawn_ratio": o / p, "server_cpu_s": oc, "anchor_server_cpu_s": pc}


async def login_and_spawn(base: str, name: str, form: bool) -> tuple[float, float]:
    """Log in and start the server as a browser would; returns (start, login seconds).

    `form`: the hub shows a profile form after login (ours) that is submitted; otherwise the login
    redirects to /hub/spawn, which starts the server (plain JupyterHub without options form).
    """
    import aiohttp

    start = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=timeout) as session:
        async with session.get(f"{base}/hub/login") as r:
            page = await r.text()
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
        data = {"username": name, "password": password_of(name), "_xsrf": xsrf}
        if form:
            async with session.post(f"{base}/hub/login?next=", data=data) as r:
                page = await r.text()  # redirected to the spawn form
                if "profile" not in page:
                    raise RuntimeError(f"{name}: login did not lead to the spawn form ({r.status})")
            logged_in = time.perf_counter() - start
            action = html.unescape(re.search(r'id="spawn_form"\s+action="([^"]+)"', page).group(1))
            async with session.post(f"{base}{action}", data={"profile": "small"}) as r:
                await r.read()
                if r.status >= 400:
                    raise RuntimeError(f"{name}: the spawn form answered {r.status}")
        else:
            async with session.post(f"{base}/hub/login?next=", data=data, allow_redirects=False) as r:
                if r.status != 302:
                    raise RuntimeError(f"{name}: login answered {r.status}")
            logged_in = time.perf_counter() - start
            async with session.get(f"{base}/hub/spawn") as r:  # starts the server, then pending
                await r.read()
                if r.status >= 400:
                    raise RuntimeError(f"{name}: /hub/spawn answered {r.status}")
    return start, logged_in


async def watch_ready(base: str, observer: str, names: list[str], timeout: float) -> dict[str, float]:
    """When each server is first seen ready (one listing per second, as a light observer)."""
    ready: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    while len(ready) < len(names) and time.perf_counter() < deadline:
        _, listing = await asyncio.to_thread(api, base, observer, "GET", "/users?state=ready&limit=1000")
        now = time.perf_counter()
        for user in listing.get("items", listing) if isinstance(listing, dict) else listing or []:
            if user["name"] in names:
                ready.setdefault(user["name"], now)
        await asyncio.sleep(1)
    return ready


async def concurrent_logins(label: str, base: str, observer: str, names: list[str], form: bool,
                            hub_pid: int, timeout: float = 600) -> dict:
    start = time.perf_counter()
    watcher = asyncio.create_task(watch_ready(base, observer, names, timeout))
    results = await asyncio.gather(*(login_and_spawn(base, n, form) for n in names),
                                   return_exceptions=True)
    ready = await watcher
    wall = time.perf_counter() - start
    memory = rss_mib(hub_pid)
    errors = [r for r in results if isinstance(r, BaseException)]
    times = sorted(ready[n] - r[0] for n, r in zip(names, results, strict=True)
                   if n in ready and not isinstance(r, BaseException))
    logins = sorted(r[1] for r in results if not isinstance(r, BaseException))
    out = {"up": len(times), "p50": float("nan"), "p95": float("nan"), "rss": memory}
    print(f"   {label}: servers up {len(times)}/{len(names)}, last after {wall:.1f}s; "
          f"hub memory {memory:.0f} MiB")
    if times:
        q = statistics.quantiles(times, n=20) if len(times) > 1 else times * 19
        out.update(p50=statistics.median(times), p95=q[18])
        print(f"      login to ready: p50 {out['p50']:.1f}s  p95 {out['p95']:.1f}s  max {times[-1]:.1f}s")
    if logins:
        ql = statistics.quantiles(logins, n=20) if len(logins) > 1 else logins * 19
        print(f"      login alone:    p50 {statistics.median(logins):.2f}s  p95 {ql[18]:.2f}s")
    for e in errors[:5]:
        print(f"      error: {e!r}")
    return out


def stop_all(base: str, token: str, names: list[str], timeout: float = 120) -> None:
    for name in names:
        api(base, token, "DELETE", f"/users/{name}/server")
    deadline = time.perf_counter() + timeout
    for name in names:
        while time.perf_counter() < deadline:
            status, model = api(base, token, "GET", f"/users/{name}")
            if status != 200 or not model["servers"]:
                break
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--skip-ratio", action="store_true", help="only the concurrent part")
    parser.add_argument("--keep-logs", default="", help="copy the platform's logs here at the end")
    parser.add_argument("--server-start", choices=("starter", "exec"), default="starter",
                        help="ours with the server starter (default) or a new Python per server")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (real Unix users)", file=sys.stderr)
        return 2
    if not 1 <= args.users <= 90:
        print("--users: 1 to 90", file=sys.stderr)
        return 2
    remove_accounts()
    root = public_dir("scbench")
    names = list(users(args.users))
    config = write_config(root, users=users(args.users), groups={f"{PREFIX}ench": GID}, profiles=PROFILES,
                          rounds=10, ssh={"enabled": False}, dask_gateway={"enabled": False},
                          cull={"enabled": False})
    import yaml

    hashes = {n: u["password"] for n, u in yaml.safe_load(config.read_text())["security"]["users"].items()}
    (root / "anchor").mkdir()
    (root / "anchor" / "hashes.json").write_text(json.dumps(hashes))
    platform = Platform(root, config)
    anchor = HubProcess(root / "anchor", extra_config=ANCHOR_AUTH.format(
        hashes=str(root / "anchor" / "hashes.json")) + """
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 300  # as `local up` sets them
c.Spawner.http_timeout = 300
c.JupyterHub.log_level = "INFO"
""")
    figures: dict = {}
    try:
        print(f"qhub-hub local up ({args.users} users in the config) ...")
        up_start = time.perf_counter()
        platform.up()
        print(f"   up in {time.perf_counter() - up_start:.1f}s (accounts and folders of {args.users} users)")
        if args.server_start == "exec":  # platform.json holds the setting; the hub reads it at start
            platform.down()
            settings = json.loads((platform.state_dir / "platform.json").read_text())
            settings["preimported_starter"] = False
            (platform.state_dir / "platform.json").write_text(json.dumps(settings))
            platform.up()
        print(f"   ours starts servers with: {args.server_start}")
        figures["server_start"] = args.server_start
        anchor.start()
        if not args.skip_ratio:
            figures.update(latency_ratio(platform, anchor, names[:3], args.rounds))
        print(f"\n2. {len(names)} users logging in and spawning at once ({os.cpu_count()} cores)")
        hub_pid = int((platform.state_dir / "run" / "hub.pid").read_text())
        ours = asyncio.run(concurrent_logins("qhub-hub (QHubLocalSpawner)", platform.url,
                                             platform.secrets["platform_token"], names, True, hub_pid))
        stop_all(platform.url, platform.secrets["platform_token"], names)
        assert anchor.proc is not None
        plain = asyncio.run(concurrent_logins("anchor (JupyterHub + LocalProcessSpawner)", anchor.url,
                                              anchor.admin_token, names, False, anchor.proc.pid))
        stop_all(anchor.url, anchor.admin_token, names)
        print(f"   ratio p50 ours/anchor {ours['p50'] / plain['p50']:.2f}; "
              f"hub memory ours {ours['rss']:.0f} MiB, anchor {plain['rss']:.0f} MiB")
        starter = starter_figures(hub_pid)
        if starter:
            print(f"   server starter (once per hub, not in server CPU): CPU {starter[0]:.2f}s, "
                  f"memory {starter[1]:.0f} MiB")
        figures.update(concurrent_ratio=ours["p50"] / plain["p50"], concurrent_p50_s=ours["p50"],
                       concurrent_p95_s=ours["p95"], up=f"{ours['up']}/{len(names)}",
                       anchor_p50_s=plain["p50"], anchor_up=f"{plain['up']}/{len(names)}",
                       hub_rss_mib=ours["rss"], anchor_hub_rss_mib=plain["rss"])
    finally:
        anchor.stop()
        down_start = time.perf_counter()
        platform.down()
        if args.keep_logs:
            import shutil

            shutil.copytree(platform.state_dir / "logs", args.keep_logs, dirs_exist_ok=True)
            shutil.copy(anchor.log_path, Path(args.keep_logs) / "anchor-jupyterhub.log")
        print(f"\nlocal down (stopping every server) in {time.perf_counter() - down_start:.1f}s")
        remove_accounts()
        remove_tree(root)
    names_order = ["spawn_ratio", "concurrent_ratio", "concurrent_p50_s", "concurrent_p95_s", "up",
                   "server_cpu_s", "anchor_server_cpu_s", "anchor_p50_s", "anchor_up", "hub_rss_mib",
                   "anchor_hub_rss_mib", "server_start"]
    print("result: " + " ".join(
        f"{k}={figures[k]:.2f}" if isinstance(figures[k], float) else f"{k}={figures[k]}"
        for k in names_order if k in figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
