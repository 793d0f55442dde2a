"""`qhub-hub local up|down|status|restart`: the whole platform on one machine, from the one config.

Processes (each with a pid file in <state>/run and a log in <state>/logs):

- proxy: configurable-http-proxy on http://<ip>:<port> (default 127.0.0.1:8000). It is the
  platform's own process, not the hub's, so it keeps routing to running servers while the hub
  restarts;
- hub: JupyterHub with the qhub authenticator and `QHubLocalSpawner`, the idle culler as a hub
  service (config `cull`), `cleanup_servers = False`;
- sshd: the platform's OpenSSH server (`ssh.py`), when `ssh.enabled` and running as root;
- dask-gateway: when `dask_gateway.enabled` (config from `qhub_hub.gateway.server_config`);
- conda-store, conda-store-worker: when `conda_store.enabled` (`conda_store.py`).

A bad config never takes down what runs: `up` saves a copy of the config each time it is valid
(`<state>/config/last-good.yaml`, `qhub_hub.last_good`); every component and every command
(`status`, `restart`, `down`) that starts while the file is invalid runs with that copy and says
so, and `status` shows the file's problems with their paths.

`up` first creates (or checks) every group and every account of security.users with their ids, and
their folders: a conflict with the machine's accounts stops `up` before anything starts, with the
list of problems. It is idempotent: components already running are left alone.
`down` stops user servers (unless --keep-servers), then everything else, and removes the PAM
service. `restart` restarts the hub only: servers and the proxy keep running.

Not root: the platform starts as a single-Unix-user demo (every server runs as you, no ids, no
ACLs, no SSH server, no gateway) and says so loudly.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import QHubConfig, load_config
from ..config_errors import ConfigError
from ..last_good import LAST_GOOD_ENV, load_with_fallback, save_last_good
from ..policy import plan_for
from ..server_env import server_environment
from . import conda_store, procs, ssh
from .accounts import AccountError, account_spec, ensure_account, ensure_groups
from .acl import AclError
from .folders import FolderError, ensure_group_folder, ensure_shared_root, ensure_user_folders, user_folders
from .gateway import forget_gateway, gateway_unavailable_reason, prepare_gateway
from .hub_config import hub_config_file_text
from .limits import CgroupLimiter
from .runtime_dir import remove_idle_runtime_dirs
from .session_env import ensure_profile_hook, session_environment, write_session_env
from .settings import PlatformSettings

DEMO_WARNING = """\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! qhub-hub is NOT running as root: SINGLE-UNIX-USER DEMO MODE.                            !!
!! Every user's server runs as YOUR Unix user ({me}). The config's uids, gids, groups,     !!
!! folder modes and ACLs are NOT applied: users are not isolated from each other.           !!
!! No SSH server and no Dask Gateway. Run `qhub-hub local up` as root for the real platform.!!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""


class PlatformError(RuntimeError):
    """`up`/`down` cannot proceed; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Platform:
    settings: PlatformSettings
    config: QHubConfig
    config_problem: ConfigError | None = None  # the file is invalid: `config` is the last good copy

    # --- components -------------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        path = f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return {"PATH": path, "LANG": os.environ.get("LANG", "C.UTF-8"),
                "QHUB_CONFIG": self.settings.config_path,
                LAST_GOOD_ENV: str(self.settings.last_good_config)}

    def secrets(self) -> dict[str, str]:
        return json.loads(self.settings.secrets_file.read_text())

    def proxy(self) -> procs.Component:
        s = self.settings
        chp = Path(sys.executable).parent / "configurable-http-proxy"
        argv = [str(chp), "--ip", s.ip, "--port", str(s.port), "--api-ip", "127.0.0.1",
                "--api-port", str(s.proxy_api_port),
                "--default-target", f"http://127.0.0.1:{s.hub_port}",
                "--error-target", f"http://127.0.0.1:{s.hub_port}/hub/error",
                "--pid-file", str(s.run_dir / "chp.pid"), "--log-level", "info"]
        env = {**self.base_env(), "CONFIGPROXY_AUTH_TOKEN": self.secrets()["proxy_token"]}
        return procs.Component("proxy", argv, env, s.root, s.log_dir / "proxy.log",
                               s.run_dir / "proxy.pid", str(s.root), ready_port=s.proxy_api_port)

    def hub(self) -> procs.Component:
        s = self.settings
        secret = self.secrets()
        env = {**self.base_env(), "JUPYTERHUB_CRYPT_KEY": secret["crypt_key"],
               "CONFIGPROXY_AUTH_TOKEN": secret["proxy_token"]}
        argv = [sys.executable, "-m", "jupyterhub", "-f", str(s.hub_dir / "jupyterhub_config.py")]
        return procs.Component("hub", argv, env, s.hub_dir, s.log_dir / "hub.log",
                               s.run_dir / "hub.pid", str(s.root), ready_url=f"{s.hub_api_url}/")

    def ssh_settings(self) -> ssh.SshSettings:
        s = self.settings
        return ssh.SshSettings(
            state_dir=s.ssh_dir, port=s.ssh_port or self.config.ssh.port, listen=s.ip or "0.0.0.0",
            session_dir=s.session_dir, hub_api_url=s.hub_api_url, api_token_file=s.root / "ssh-api-token",
            config_file=Path(s.config_path), log_dir=s.log_dir, run_dir=s.run_dir,
            instance=s.instance, cgroup_name="" if s.demo else s.cgroup_name,
            last_good_config=s.last_good_config)

    def sshd(self) -> procs.Component:
        s, settings = self.settings, self.ssh_settings()
        return procs.Component("sshd", ssh.command(settings), self.base_env(), s.root,
                               s.log_dir / "sshd.log", s.run_dir / "sshd-main.pid", str(s.root),
                               ready_port=settings.port)

    def gateway(self, gateway: Any) -> procs.Component:
        s = self.settings
        return procs.Component("dask-gateway", gateway.command, self.base_env(), gateway.workdir,
                               s.log_dir / "dask-gateway.log", s.run_dir / "dask-gateway.pid",
                               str(s.root), ready_url=gateway.health_url)

    def components(self) -> list[procs.Component]:
        """All components this platform may run, in start order."""
        from .gateway import load_embedded_gateway

        # the gateway before the hub: the hub waits for every service with a url to answer
        found = [self.proxy()]
        store = conda_store.load(self.settings)
        if store is not None:
            found += conda_store.components(self.settings, self.base_env(), self.secrets(), store)
        gateway = load_embedded_gateway(self.settings) if self.config.dask_gateway.enabled else None
        if gateway is not None:
            found.append(self.gateway(gateway))
        found.append(self.hub())
        if self.ssh_enabled:
            found.append(self.sshd())
        return found

    @property
    def ssh_enabled(self) -> bool:
        return self.config.ssh.enabled and not self.settings.demo

    # --- hub API ----------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
        token = self.secrets()["platform_token"]
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.settings.hub_api_url}{path}", data=data, method=method,
                                         headers={"Authorization": f"token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, None

    def running_servers(self) -> list[tuple[str, str]]:
        """(username, server name) of every server the hub counts as running or starting."""
        status, users = self.api("GET", "/users?state=active&limit=10000")
        if status != 200:
            raise PlatformError(f"the hub API answered {status} when listing users")
        items = users.get("items", users) if isinstance(users, dict) else users
        return [(u["name"], name) for u in items for name in (u.get("servers") or {})]


# --- up -------------------------------------------------------------------------------------------


def resolve_settings(settings: PlatformSettings) -> PlatformSettings:
    """Fill ports left at 0 (a free port, kept from then on) and the demo flag."""
    changes: dict[str, Any] = {"demo": os.geteuid() != 0}
    taken = {settings.port}
    for name in ("hub_port", "proxy_api_port", "gateway_http_port", "gateway_tcp_port",
                 "gateway_api_port", "conda_store_port"):
        if not getattr(settings, name):
            port = _free_port(taken)
            changes[name] = port
        taken.add(changes.get(name, getattr(settings, name)))
    return settings.with_changes(**changes)


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in taken:
            return port


def _ensure_secrets(settings: PlatformSettings) -> dict[str, str]:
    path = settings.secrets_file
    current = json.loads(path.read_text()) if path.exists() else {}
    for key in ("proxy_token", "platform_token", "ssh_token", "gateway_token",
                *conda_store.SECRET_KEYS):
        current.setdefault(key, secrets.token_hex(32))
    current.setdefault("crypt_key", secrets.token_hex(32))
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(current, f, indent=1)
    os.replace(path.with_suffix(".tmp"), path)
    token_file = settings.root / "ssh-api-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(current["ssh_token"] + "\n")
    return current


def _make_dirs(s: PlatformSettings) -> None:
    # the state dir and ssh/gateway dirs are traversed by users (SSH session wrapper, gateway
    # clusters); hub data and logs are root-only
    for path, mode in ((s.root, 0o755), (s.hub_dir, 0o700), (s.log_dir, 0o700), (s.run_dir, 0o755),
                       (s.ssh_dir, 0o755), (s.session_dir, 0o755)):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)


def provision(platform: Platform, out: Any = sys.stdout) -> list[str]:
    """Groups, accounts and folders of every user in security.users; returns problems (if any)."""
    config, s = platform.config, platform.settings
    problems: list[str] = []
    groups = {name: g.gid for name, g in config.security.groups.items()}
    try:
        names = ensure_groups(groups)
    except AccountError as e:
        return [str(e)]
    for name, unix in names.items():
        if unix != name:
            print(f"note: {name!r} is a system group of this machine, so the config group {name!r} "
                  f"(gid {groups[name]}) is the Unix group {unix!r}", file=out)
    shared_dir = s.shared_dir or None
    env_extra: dict[str, str] = {}
    from .gateway import load_embedded_gateway

    gateway = load_embedded_gateway(s) if config.dask_gateway.enabled else None
    if gateway is not None:
        env_extra = gateway.user_server_environment()
    first = True
    for name in config.security.users:
        plan = plan_for(config, name, ())
        try:
            ensure_account(account_spec(plan), groups)
            folders = user_folders(config, plan, shared_dir)
            if first:
                ensure_shared_root(folders.shared, adopt=s.adopt_shared)
                for folder in (*folders.groups, *folders.other_groups):
                    ensure_group_folder(folder)
                first = False
            ensure_user_folders(folders, adopt_shared=s.adopt_shared)
        except (AccountError, FolderError, AclError) as e:
            problems.append(f"security.users.{name}: {e}")
            continue
        env = {**platform.base_env(), **server_environment(config, plan), **env_extra}
        env.pop("QHUB_CONFIG", None)
        write_session_env(s.session_dir, plan.uid, session_environment(env))
    return problems


def up(settings: PlatformSettings, out: Any = sys.stdout) -> Platform:
    try:
        config = load_config(settings.config_path)
    except Exception as e:  # ConfigError: its text lists every problem
        raise PlatformError(f"{settings.config_path} is not a valid qhub config:\n{e}\n"
                            f"Fix it (`qhub-hub validate {settings.config_path}`) and run up again.") from None
    settings = resolve_settings(settings)
    _make_dirs(settings)
    settings.save()
    save_last_good(settings.config_path, settings.last_good_config)
    secret = _ensure_secrets(settings)
    platform = Platform(settings, config)
    if settings.demo:
        print(DEMO_WARNING.format(me=_me()), file=sys.stderr)
    else:
        problem = CgroupLimiter.probe()
        if problem:
            print(f"note: profile memory/CPU limits use RLIMIT_AS and CPU affinity ({problem})", file=out)

    gateway = None
    if config.dask_gateway.enabled and not settings.demo:
        reason = gateway_unavailable_reason()
        if reason:
            print(f"warning: dask_gateway.enabled but {reason}; starting without Dask Gateway", file=out)
        else:
            gateway = prepare_gateway(settings, config, secret["gateway_token"])
    if gateway is None:
        forget_gateway(settings)

    store = None
    if config.conda_store.enabled and not config.conda_store.url and not settings.demo:
        reason = conda_store.unavailable_reason()
        if reason:
            print(f"warning: conda_store.enabled but {reason}; starting without conda-store", file=out)
        else:
            store = conda_store.prepare(settings, secret)
            if store.uses_standin:
                print("note: conda is not installed for conda-store on this machine: environments are "
                      "checked and stored, but every build fails (the reason is in conda-store's build "
                      "log and the hub log). GatewayCluster() uses the server's own environment.",
                      file=out)
    if store is None:
        conda_store.forget(settings)

    if not settings.demo:
        ensure_profile_hook()
        problems = provision(platform, out)
        if problems:
            raise PlatformError("the machine's accounts or folders do not match the config; nothing "
                                "was started:\n  - " + "\n  - ".join(problems))

    (settings.hub_dir / "jupyterhub_config.py").write_text(hub_config_file_text(settings))
    if platform.ssh_enabled:
        ssh.prepare(platform.ssh_settings())

    started: list[procs.Component] = []
    try:
        for component in platform.components():
            pid = procs.running_pid(component)
            if pid is not None:
                print(f"{component.name} already running (pid {pid})", file=out)
                procs.wait_ready(component, pid)
                continue
            for attempt in range(1, component.start_attempts + 1):
                pid = procs.start(component)
                started.append(component)
                print(f"started {component.name} (pid {pid}, log {component.log})", file=out)
                try:
                    procs.wait_ready(component, pid)
                    break
                except RuntimeError:
                    if attempt == component.start_attempts or procs.alive(pid):
                        raise
                    print(f"{component.name} exited during startup; starting it again", file=out)
        procs.wait_url(f"{settings.public_url}/hub/api/", "the platform (proxy to hub)")
    except RuntimeError as e:
        for component in reversed(started):
            procs.stop(component)
        raise PlatformError(str(e)) from None
    print(f"\nqhub-hub is up: {settings.public_url}", file=out)
    if platform.ssh_enabled:
        port = platform.ssh_settings().port
        print(f"SSH/SFTP: ssh -p {port} <user>@{settings.public_url.split('//')[1].split(':')[0]} "
              "(password: a JupyterHub API token from /hub/token)", file=out)
    print(f"state and logs: {settings.root}   stop: qhub-hub local down --state-dir {settings.root}",
          file=out)
    return platform


# --- down / restart / status ---------------------------------------------------------------------


def open_platform(state_dir: str | os.PathLike, out: Any = sys.stderr) -> Platform:
    settings = PlatformSettings.load(state_dir)
    if settings is None:
        raise PlatformError(f"no platform in {state_dir} (no platform.json); start one with "
                            "`qhub-hub local up --config FILE`")
    try:
        loaded = load_with_fallback(settings.config_path, settings.last_good_config)
    except ConfigError as e:
        raise PlatformError(f"{settings.config_path} is not a valid qhub config any more, and there "
                            f"is no last good copy ({settings.last_good_config}):\n{e}") from None
    if loaded.from_copy and out is not None:
        print(f"warning: {loaded.note(settings.config_path)}", file=out)
    return Platform(settings, loaded.config, loaded.problem)


def stop_servers(platform: Platform, timeout: float = 90, out: Any = sys.stdout) -> None:
    """Stop every user server through the hub; servers the hub cannot stop are killed."""
    hub = platform.hub()
    if procs.running_pid(hub) is not None:
        try:
            servers = platform.running_servers()
        except (PlatformError, OSError) as e:
            print(f"warning: cannot list servers through the hub ({e}); stopping them directly", file=out)
            servers = None
        if servers is not None:
            def stop_one(server: tuple[str, str]) -> None:
                user, name = (urllib.parse.quote(part, safe="") for part in server)
                platform.api("DELETE", f"/users/{user}/servers/{name}" if name else f"/users/{user}/server")

            with ThreadPoolExecutor(max_workers=16) as pool:  # each DELETE waits for its stop
                list(pool.map(stop_one, servers))
            deadline = time.monotonic() + timeout
            while servers and time.monotonic() < deadline:
                time.sleep(0.5)
                servers = platform.running_servers()
            if not servers:
                return
    _kill_servers_from_db(platform, out)


def _kill_servers_from_db(platform: Platform, out: Any) -> None:
    db = platform.settings.hub_dir / "jupyterhub.sqlite"
    if not db.exists():
        return
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT state FROM spawners WHERE state IS NOT NULL").fetchall()
    for (raw,) in rows:
        try:
            state = json.loads(raw) if isinstance(raw, str) else json.loads(raw.decode())
        except (ValueError, AttributeError):
            continue
        pid = state.get("pid") if isinstance(state, dict) else None
        if isinstance(pid, int) and procs.alive(pid):
            print(f"killing user server pid {pid}", file=out)
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not procs.alive(pid):
                    break
                time.sleep(0.1)
            if procs.alive(pid):
                os.kill(pid, signal.SIGKILL)
        if isinstance(state, dict) and state.get("cgroups"):
            try:
                CgroupLimiter.release(state["cgroups"])
            except OSError:
                pass


def down(state_dir: str | os.PathLike, keep_servers: bool = False, out: Any = sys.stdout) -> None:
    platform = open_platform(state_dir)
    if not keep_servers:
        stop_servers(platform, out=out)
    for component in reversed(platform.components()):
        if procs.stop(component):
            print(f"stopped {component.name}", file=out)
    if not platform.settings.demo:
        ssh.cleanup(platform.ssh_settings())
    end_user_processes(platform, keep_servers, out)
    if not keep_servers:
        CgroupLimiter.remove_parent(platform.settings.cgroup_name)
        remove_idle_runtime_dirs()
    print("qhub-hub is down" + (" (user servers left running)" if keep_servers else ""), file=out)


def end_user_processes(platform: Platform, keep_servers: bool, out: Any = sys.stdout) -> None:
    """Kill whatever is left in the platform's cgroups: SSH sessions (``setsid`` ones included) and
    Dask processes always, servers (and their kernels) unless `keep_servers`."""
    for name, dirs in CgroupLimiter.children(platform.settings.cgroup_name).items():
        if keep_servers and "@" not in name:  # a server's cgroup: <unix name>[.<server name>]
            continue
        try:
            CgroupLimiter.release(dirs)
            print(f"ended the processes of {name}", file=out)
        except OSError as e:
            print(f"warning: could not end the processes in {dirs}: {e}", file=out)


def restart(state_dir: str | os.PathLike, out: Any = sys.stdout) -> None:
    """Restart the hub (and its services); the proxy and user servers keep running."""
    platform = open_platform(state_dir)
    hub = platform.hub()
    if procs.stop(hub):
        print("stopped hub", file=out)
    (platform.settings.hub_dir / "jupyterhub_config.py").write_text(
        hub_config_file_text(platform.settings))
    pid = procs.start(hub)
    print(f"started hub (pid {pid})", file=out)
    try:
        procs.wait_ready(hub, pid)
    except RuntimeError as e:
        raise PlatformError(str(e)) from None


def status(state_dir: str | os.PathLike, out: Any = sys.stdout) -> bool:
    """Print what runs; True when every component is up."""
    platform = open_platform(state_dir, out=None)
    s = platform.settings
    all_up = True
    print(f"qhub-hub at {s.public_url} (state {s.root}, config {s.config_path})"
          + ("  [DEMO MODE: single Unix user]" if s.demo else ""), file=out)
    if platform.config_problem is not None:
        print(f"  config        INVALID: {s.config_path}: {len(platform.config_problem.problems)} "
              f"problem(s); running with the last good copy {s.last_good_config}", file=out)
        for problem in platform.config_problem.problems:
            print(f"    error: {problem}", file=out)
    for component in platform.components():
        pid = procs.running_pid(component)
        all_up &= pid is not None
        print(f"  {component.name:<13} {'running, pid ' + str(pid) if pid else 'STOPPED'}", file=out)
    if procs.running_pid(platform.hub()) is not None:
        try:
            servers = platform.running_servers()
            print(f"  user servers  {len(servers)} running"
                  + (": " + ", ".join(u for u, _ in servers[:20]) if servers else ""), file=out)
        except (PlatformError, OSError) as e:
            print(f"  user servers  unknown ({e})", file=out)
    return all_up


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
