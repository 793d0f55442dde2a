"""Benchmark: 200 users logging in (no spawn) at 4 logins per second.

    sudo /opt/qhub-hub/bin/python benchmarks/logins.py [--users 200] [--rate 4]

Ours: the hub of `qhub-hub local up` (QHubPasswordAuthenticator: bcrypt cost 10 hashes from the
config, the plan computed at each login, config groups synced into JupyterHub, auth_state kept).
Anchor, same run: plain JupyterHub with a password authenticator of the same cost (JupyterHub's
`Authenticator` checking the same bcrypt hashes in a thread pool). Logins arrive on a fixed
schedule (open loop: a slow hub does not slow the arrivals): GET /hub/login, then POST the form
(not following the redirect: no server is started). Meanwhile an observer asks the hub's REST API
(GET /hub/api/users/<name>) four times a second.

Prints, for each hub: p50/p95/max of the login POST, p50/p95 of the API calls, errors, the hub's CPU
seconds during the run and its memory. Last line:
``result: login_p95_ratio=... api_p95_ratio=... errors=N login_p95_s=... anchor_login_p95_s=...``

Uses temporary Unix users scl000.. (uids 45000..; group sclogin 45290), removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import json
import os
import pwd
import re
import statistics
import subprocess
import sys
import time
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

PREFIX, UID_BASE, GID, MAX_USERS = "scl", 45000, 45290, 280


def users(n: int) -> dict[str, dict]:
    return {f"{PREFIX}{i:03d}": {"uid": UID_BASE + i, "primary_group": f"{PREFIX}ogin"} for i in range(n)}


def remove_accounts() -> None:
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(PREFIX) and UID_BASE <= entry.pw_uid < UID_BASE + MAX_USERS:
            subprocess.run(["pkill", "-KILL", "-u", str(entry.pw_uid)], capture_output=True)
            subprocess.run(["userdel", entry.pw_name], capture_output=True)
    for entry in grp.getgrall():
        if entry.gr_name == f"{PREFIX}ogin" and entry.gr_gid == GID:
            subprocess.run(["groupdel", entry.gr_name], capture_output=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def login(session_factory, base: str, name: str) -> float:
    """Seconds of the login POST; raises on anything but the redirect that follows a login."""
    async with session_factory() as session:
        async with session.get(f"{base}/hub/login") as r:
            page = await r.text()
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
        start = time.perf_counter()
        async with session.post(f"{base}/hub/login?next=", allow_redirects=False,
                                data={"username": name, "password": password_of(name), "_xsrf": xsrf}) as r:
            await r.read()
            elapsed = time.perf_counter() - start
            if r.status != 302:
                raise RuntimeError(f"{name}: login answered {r.status}")
    return elapsed


async def observe(base: str, token: str, name: str, stop: asyncio.Event) -> list[float]:
    import aiohttp

    times: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as session:
        while not stop.is_set():
            start = time.perf_counter()
            async with session.get(f"{base}/hub/api/users/{name}") as r:
                await r.read()
                if r.status == 200:
                    times.append(time.perf_counter() - start)
            await asyncio.sleep(0.25)
    return times


async def run_logins(label: str, base: str, token: str, names: list[str], rate: float, hub_pid: int) -> dict:
    import aiohttp

    def session_factory() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=300))

    await login(session_factory, base, names[0])  # warm-up: the first login of the hub (caches)
    stop = asyncio.Event()
    observer = asyncio.create_task(observe(base, token, names[0], stop))
    cpu_before = cpu_seconds(hub_pid)
    start = time.perf_counter()

    async def scheduled(i: int, name: str) -> float:
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        return await login(session_factory, base, name)

    results = await asyncio.gather(*(scheduled(i, n) for i, n in enumerate(names[1:])),
                                   return_exceptions=True)
    stop.set()
    api_times = sorted(await observer)
    wall = time.perf_counter() - start
    cpu = cpu_seconds(hub_pid) - cpu_before
    times = sorted(r for r in results if not isinstance(r, BaseException))
    errors = [r for r in results if isinstance(r, BaseException)]
    q = statistics.quantiles(times, n=20) if len(times) > 1 else times * 19
    qa = statistics.quantiles(api_times, n=20) if len(api_times) > 1 else api_times * 19
    out = {"p50": statistics.median(times), "p95": q[18], "api_p50": statistics.median(api_times),
           "api_p95": qa[18], "errors": len(errors), "cpu": cpu, "rss": rss_mib(hub_pid)}
    print(f"   {label}: {len(times)} logins in {wall:.1f}s; errors {len(errors)}")
    print(f"      login POST p50 {out['p50']:.3f}s  p95 {out['p95']:.3f}s  max {times[-1]:.3f}s")
    print(f"      hub API    p50 {out['api_p50']:.3f}s  p95 {out['api_p95']:.3f}s  ({len(api_times)} calls)")
    print(f"      hub CPU {cpu:.1f}s during the run; memory {out['rss']:.0f} MiB")
    for e in errors[:5]:
        print(f"      error: {e!r}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rate", type=float, default=4.0, help="logins per second")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (real Unix users for `local up`)", file=sys.stderr)
        return 2
    if not 2 <= args.users <= MAX_USERS:
        print(f"--users: 2 to {MAX_USERS}", file=sys.stderr)
        return 2
    remove_accounts()
    root = public_dir("sclogin")
    names = list(users(args.users))
    print(f"writing a config of {args.users} users (bcrypt cost 10) ...")
    config = write_config(root, users=users(args.users), groups={f"{PREFIX}ogin": GID}, rounds=10,
                          profiles=[{"display_name": "Small", "slug": "small", "default": True}],
                          ssh={"enabled": False}, dask_gateway={"enabled": False}, cull={"enabled": False})
    import yaml

    hashes = {n: u["password"] for n, u in yaml.safe_load(config.read_text())["security"]["users"].items()}
    (root / "anchor").mkdir()
    (root / "anchor" / "hashes.json").write_text(json.dumps(hashes))
    platform = Platform(root, config)
    anchor = HubProcess(root / "anchor", extra_config=ANCHOR_AUTH.format(
        hashes=str(root / "anchor" / "hashes.json")) + '\nc.JupyterHub.log_level = "INFO"\n')
    try:
        platform.up()
        anchor.start()
        assert anchor.proc is not None
        print(f"\n{len(names) - 1} logins at {args.rate:g}/s after one warm-up login ({os.cpu_count()} cores)")
        hub_pid = int((platform.state_dir / "run" / "hub.pid").read_text())
        ours = asyncio.run(run_logins("qhub-hub (local up)", platform.url, platform.secrets["platform_token"],
                                      names, args.rate, hub_pid))
        plain = asyncio.run(run_logins("anchor (JupyterHub, bcrypt authenticator)", anchor.url,
                                       anchor.admin_token, names, args.rate, anchor.proc.pid))
    finally:
        anchor.stop()
        platform.down()
        remove_accounts()
        remove_tree(root)
    print(f"\n   ratio ours/anchor: login p95 {ours['p95'] / plain['p95']:.2f}, "
          f"API p95 {ours['api_p95'] / plain['api_p95']:.2f}, hub CPU {ours['cpu'] / plain['cpu']:.2f}")
    print(f"result: login_p95_ratio={ours['p95'] / plain['p95']:.2f} "
          f"api_p95_ratio={ours['api_p95'] / plain['api_p95']:.2f} errors={ours['errors']} "
          f"login_p95_s={ours['p95']:.3f} anchor_login_p95_s={plain['p95']:.3f} "
          f"anchor_errors={plain['errors']} hub_cpu_ratio={ours['cpu'] / plain['cpu']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
