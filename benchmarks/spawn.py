"""Benchmark: spawning user servers in the embedded mode (`qhub-hub local up`).

    sudo /opt/qhub-hub/bin/python benchmarks/spawn.py [--rounds 5] [--users 50]

1. Spawn latency, request to ready, one server at a time: `QHubLocalSpawner` in a platform started
   by `qhub-hub local up` (plan, account and folder checks, exact ids, cgroup limits, session env)
   against JupyterHub's plain `LocalProcessSpawner` (anchor) in a hub of its own, same machine, same
   Unix users, same run, alternating. Prints min/median of each and the ratio of the medians.
2. N users logging in (password form, bcrypt cost 10) and spawning (profile form) at the same time
   through the platform's proxy: how many servers are up, and p50/p95/max of login-to-ready.

Uses temporary Unix users ltb00.. (uids 41300..; groups ltbench 41390) and removes them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import re
import statistics
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
    remove_lt_accounts,
    remove_tree,
    write_config,
)
from tests.support.hub import HubProcess  # noqa: E402

PROFILES = [{"display_name": "Small", "slug": "small", "default": True,
             "kubespawner_override": {"cpu_limit": 1, "mem_limit": "2G"}}]


def users(n: int) -> dict[str, dict]:
    return {f"ltb{i:02d}": {"uid": 41300 + i, "primary_group": "ltbench"} for i in range(n)}


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


def spawn_and_time(base: str, token: str, name: str, body: object) -> float:
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
            break
        if not server:
            raise RuntimeError(f"{name}'s server at {base} failed to start")
        time.sleep(0.05)
    api(base, token, "DELETE", f"/users/{name}/server")
    while api(base, token, "GET", f"/users/{name}")[1]["servers"]:
        time.sleep(0.1)
    return elapsed


def latency_ratio(platform: Platform, anchor: HubProcess, names: list[str], rounds: int) -> None:
    token = platform.secrets["platform_token"]
    ours, plain = [], []
    spawn_and_time(platform.url, token, names[0], {"profile": "small"})  # warm-up (caches)
    spawn_and_time(anchor.url, anchor.admin_token, names[0], {})
    for i in range(rounds):
        name = names[i % len(names)]
        ours.append(spawn_and_time(platform.url, token, name, {"profile": "small"}))
        plain.append(spawn_and_time(anchor.url, anchor.admin_token, name, {}))
    print(f"\n1. spawn latency, request to ready, {rounds} rounds, one at a time")
    print(f"   QHubLocalSpawner       min {min(ours):.2f}s  median {statistics.median(ours):.2f}s")
    print(f"   LocalProcessSpawner    min {min(plain):.2f}s  median {statistics.median(plain):.2f}s  (anchor)")
    print(f"   ratio (medians)        {statistics.median(ours) / statistics.median(plain):.2f}")


async def login_and_spawn(base: str, name: str) -> tuple[float, float]:
    """Log in and submit the spawn form as a browser would; returns (start, login seconds)."""
    import aiohttp

    start = time.perf_counter()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{base}/hub/login") as r:
            page = await r.text()
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
        async with session.post(f"{base}/hub/login?next=", data={
                "username": name, "password": password_of(name), "_xsrf": xsrf}) as r:
            page = await r.text()  # redirected to the spawn form
            if "profile" not in page:
                raise RuntimeError(f"{name}: login did not lead to the spawn form ({r.status})")
        logged_in = time.perf_counter() - start
        action = html.unescape(re.search(r'id="spawn_form"\s+action="([^"]+)"', page).group(1))
        async with session.post(f"{base}{action}", data={"profile": "small"}) as r:
            await r.read()
            if r.status >= 400:
                raise RuntimeError(f"{name}: the spawn form answered {r.status}")
    return start, logged_in


async def watch_ready(base: str, observer: str, names: list[str], timeout: float) -> dict[str, float]:
    """When each server is first seen ready (one listing per second, as a light observer)."""
    ready: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    while len(ready) < len(names) and time.perf_counter() < deadline:
        _, listing = await asyncio.to_thread(api, base, observer, "GET", "/users?state=ready&limit=1000")
        now = time.perf_counter()
        for user in listing.get("items", listing) if isinstance(listing, dict) else listing:
            ready.setdefault(user["name"], now)
        await asyncio.sleep(1)
    return ready


async def concurrent_logins(platform: Platform, names: list[str], timeout: float = 400) -> None:
    observer = platform.secrets["platform_token"]
    start = time.perf_counter()
    watcher = asyncio.create_task(watch_ready(platform.url, observer, names, timeout))
    results = await asyncio.gather(*(login_and_spawn(platform.url, n) for n in names),
                                   return_exceptions=True)
    ready = await watcher
    wall = time.perf_counter() - start
    errors = [r for r in results if isinstance(r, BaseException)]
    times = sorted(ready[n] - r[0] for n, r in zip(names, results, strict=True)
                   if n in ready and not isinstance(r, BaseException))
    logins = sorted(r[1] for r in results if not isinstance(r, BaseException))
    print(f"\n2. {len(names)} users logging in and spawning at once ({os.cpu_count()} cores)")
    print(f"   servers up: {len(times)}/{len(names)}; last one after {wall:.1f}s")
    if times:
        q = statistics.quantiles(times, n=20) if len(times) > 1 else times * 19
        print(f"   login to ready: p50 {statistics.median(times):.1f}s  p95 {q[18]:.1f}s  max {times[-1]:.1f}s")
    if logins:
        ql = statistics.quantiles(logins, n=20) if len(logins) > 1 else logins * 19
        print(f"   login alone:    p50 {statistics.median(logins):.2f}s  p95 {ql[18]:.2f}s")
    for e in errors[:5]:
        print(f"   error: {e!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--skip-ratio", action="store_true", help="only the concurrent part")
    parser.add_argument("--keep-logs", default="", help="copy the platform's logs here at the end")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (real Unix users)", file=sys.stderr)
        return 2
    remove_lt_accounts()
    root = public_dir("bench")
    names = list(users(args.users))
    config = write_config(root, users=users(args.users), groups={"ltbench": 41390}, profiles=PROFILES,
                          rounds=10, ssh={"enabled": False}, dask_gateway={"enabled": False},
                          cull={"enabled": False})
    platform = Platform(root, config)
    anchor = HubProcess(root / "anchor", extra_config="""
        c.JupyterHub.spawner_class = "localprocess"
        c.JupyterHub.authenticator_class = "dummy"
        c.Spawner.default_url = "/lab"
        c.JupyterHub.log_level = "INFO"
    """)
    try:
        print(f"qhub-hub local up ({args.users} users in the config) ...")
        up_start = time.perf_counter()
        platform.up()
        print(f"   up in {time.perf_counter() - up_start:.1f}s (accounts and folders of {args.users} users)")
        if not args.skip_ratio:
            anchor.start()
            latency_ratio(platform, anchor, names[:3], args.rounds)
            anchor.stop()
        asyncio.run(concurrent_logins(platform, names))
    finally:
        anchor.stop()
        down_start = time.perf_counter()
        platform.down()
        if args.keep_logs:
            import shutil

            shutil.copytree(platform.state_dir / "logs", args.keep_logs, dirs_exist_ok=True)
        print(f"\nlocal down (stopping every server) in {time.perf_counter() - down_start:.1f}s")
        remove_lt_accounts()
        remove_tree(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
