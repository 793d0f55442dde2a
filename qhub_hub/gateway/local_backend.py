"""dask-gateway's multi-user LocalBackend, fixed for root and driven by the user's plan.

Upstream's `LocalBackend` (2026.3.0) has these problems when the gateway runs as root, which it
must to start processes as other users:

- `setup_working_directory` adds the TLS cert and key to the list of paths to chown with
  ``paths.extend(path)``, which adds each *character* of the path string: root then chowns ``/``
  (and any one-letter relative path that exists) to the user, or fails on a missing one;
- it looks the user up with ``getpwnam(<hub username>)``, but a hub username is not always a
  Unix name (``Alice@Example.com`` becomes ``alice-example-com--<hash>``), and takes supplemental
  groups from /etc/group rather than from the config.

`QHubLocalBackend` creates the working directory (0700) with its ``.certs`` and ``logs`` folders
and the cert and key (0600) owned by the user, and starts the scheduler and workers with the uid,
gid and supplemental gids the options handler (`qhub_hub.gateway_options`, local rendering) put in
the cluster config. A cluster config without a uid, or with uid 0, is refused: nothing is ever
started as root. A failing ``setgroups``/``setgid``/``setuid`` fails the start.

What other users can reach (see the README, "What a user's processes listen on"):

- scheduler and worker comms are TLS with the cluster's own certificate on both ends
  (dask-gateway's ``require_encryption``; the key is in the user's 0700 working directory);
- their HTTP servers (dashboard, ``/info``, ``/json``, ``/metrics``) answer only the process's own
  uid and root (`preload/qhub_peer_guard.py`, loaded with ``--preload``);
- the gateway's proxy sends ``<prefix>/clusters/<name>/`` to the `DashboardGuard` (in this
  process) instead of the dashboard: only the cluster's owner, logged in to the hub, gets through.

A scheduler sends its first heartbeat as soon as it listens (`preload/qhub_prompt_heartbeat.py`),
not after upstream's fixed 0.25 s: the cluster is running, and `new_cluster()` returns, sooner.

Workers start cheaper than upstream's (README, "How fast a Dask cluster starts"): without their
own Bokeh pages (`worker_dashboard`), and each nanny forks its worker instead of spawning a fresh
interpreter (`worker_start_method`), so a worker imports distributed once, not twice.

Schedulers and nannies of clusters in the server environment (the platform's own prefix, which
the gateway runs) are forked from a root process that has imported distributed, dask-gateway's
preload and Bokeh once (`preimported_starter`; the server starter of the embedded spawner with
`qhub_hub.gateway.dask_preimport`), with the same ids, cgroup, environment and working folder.
Clusters in conda-store environments are never imported by a root process (that would run the
environment's code as root): their schedulers and nannies are forked from a starter of that user in
that environment, run as the user (`user_starters`, `user_starters.py`), which the gateway checks
and does not trust.

With `cgroup_name` set, each scheduler and worker runs in a cgroup of its own below the
platform's (``<unix name>@dask-<cluster>-<process>``) holding the cluster's memory and CPU
limits (worker profile; `dask_gateway.scheduler_*`); it is joined before the user's code runs,
and whatever is left in it is killed when the process is stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dask_gateway_server.backends.local import LocalBackend, LocalClusterConfig
from traitlets import Bool, CaselessStrEnum, Float, Integer, List, Unicode, default

from ..local.limits import CgroupLimiter, Limits
from ..local.server_starter import StartRequest, needs_fresh_interpreter
from ..local.starter_client import FreshInterpreterNeeded, StarterClient, StarterError
from ..naming import unix_name
from .dashboard_guard import DashboardGuard, HubLink
from .environments import environment_layout
from .limits import ClusterLimitMixin
from .preload import PEER_GUARD, PROMPT_HEARTBEAT
from .user_starters import DASK_PREIMPORT, Identity, UserStarterFailed, UserStarters, exact_ids

START_METHOD_VARIABLE = "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"
OWN_PYTHON = os.path.join(sys.prefix, "bin", "python")  # the server environment's, which the gateway runs


class QHubLocalClusterConfig(LocalClusterConfig):
    """One local cluster's settings; the ids come from the user's plan via the options handler."""

    uid = Integer(None, allow_none=True, help="Unix uid the scheduler and workers run as "
                  "(set by qhub_hub.gateway_options; never 0).", config=True)
    gid = Integer(None, allow_none=True, help="Primary gid of the scheduler and workers.", config=True)
    supplemental_gids = List(Integer(), help="Supplemental gids (the user's read-write config "
                             "groups).", config=True)
    unix_name = Unicode("", help="The user's Unix account name (USER, LOGNAME).", config=True)
    worker_cpu_limit = Float(0.0, help="Cores one worker may use (its cgroup's CPU quota; 0: no "
                             "quota).", config=True)
    scheduler_cpu_limit = Float(0.0, help="Cores the scheduler may use (0: no quota).", config=True)


def _own_umask() -> int:
    """This process's umask (what a new Python would inherit), read without changing it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


class RefusedToStart(RuntimeError):
    """A cluster whose config does not say which user to run as; the message says what to fix."""


class QHubLocalBackend(ClusterLimitMixin, LocalBackend):
    """Local processes started as the user, in the chosen environment (embedded mode)."""

    @default("cluster_config_class")
    def _default_cluster_config_class(self) -> str:
        return "qhub_hub.gateway.local_backend.QHubLocalClusterConfig"

    @default("inherited_environment")
    def _default_inherited_environment(self) -> list[str]:
        # Not PATH, PYTHONPATH, VIRTUAL_ENV or CONDA_*: those would point the user's processes at
        # the gateway's own Python; the handler sets them for the chosen environment.
        return ["LANG", "LC_ALL", "TZ"]

    clusters_directory = Unicode(
        help="""
        Folder holding one working directory per cluster (<folder>/<cluster name>, mode 0700,
        owned by the user). It must be owned by root, mode 0711 (users enter their own cluster's
        folder but cannot list the others: cluster names are private); every folder above it must
        be traversable by users. Unset: a fresh temporary folder per cluster (in /tmp, where
        cluster names can be listed).
        """,
        config=True,
    )

    cgroup_name = Unicode(
        "",
        help="""
        Name of the platform's cgroup (below the gateway's own) in which every scheduler and worker
        gets a cgroup of its own with the cluster's memory and CPU limits, e.g. the
        ``qhub-servers-<id>`` of `qhub-hub local up`. Empty (default): no cgroups.
        """,
        config=True,
    )

    hub_api_url = Unicode(
        "",
        help="The hub's API as the gateway reaches it (http://127.0.0.1:8081/hub/api): the "
        "dashboard guard asks it who a browser or token belongs to. Empty (default): dashboards "
        "are not routed at all.",
        config=True,
    )

    hub_api_token = Unicode(
        "",
        help="The gateway service's hub API token, also its OAuth client secret (dashboard logins).",
        config=True,
    )

    hub_prefix = Unicode("/hub/", help="The hub's public path, where browsers log in (default /hub/).",
                         config=True)

    worker_dashboard = Bool(
        False,
        help="""
        Serve each worker's own Bokeh status pages (``dask worker --dashboard``). Off by default:
        they listen on a loopback port that only the worker's own user may connect to, and the
        gateway routes browsers to the scheduler's dashboard only, so nobody could open them;
        loading Bokeh was a third of a worker's start (0.7 of 2.2 CPU seconds). The scheduler's
        dashboard, which shows every worker, and each worker's plain HTTP endpoints (``/health``,
        ``/metrics``) are unchanged.
        """,
        config=True,
    )

    preimported_starter = Bool(
        True,
        help="""
        Start the scheduler and nannies of clusters in the server environment (the platform's own
        Python, which GatewayCluster() from a default kernel uses) by forking them from one
        root-owned process of the gateway that has already imported distributed, dask-gateway's
        scheduler preload and Bokeh, instead of a new Python each: about a second of CPU less per
        process. Each still gets exactly the user's uid, gid and groups (read back before any Dask
        code runs), its cgroup, the cluster's environment and working folder; a failure fails the
        start. Clusters in conda-store environments always start their own Python (their code is
        never imported by a root process). A cluster whose environment sets PYTHON* (or another
        variable read at import), or whose Dask config changes a value distributed reads at
        import, gets a new Python. False: always a new Python. Default True.
        """,
        config=True,
    )

    user_starters = Bool(
        True,
        help="""
        Start the schedulers and nannies of clusters in conda-store environments by forking them
        from a pre-imported starter of that user in that environment, instead of a new Python each
        (about 1.8 CPU seconds less per scheduler, 0.7 per nanny). The starter runs as exactly the
        user (never root), in a cgroup of its own (`user_starter_memory`); it is started with the
        user's first cluster process in that environment, replaced when the environment changes,
        and stopped after `user_starter_idle_timeout`. The gateway checks each process it forks
        (its child, stopped, exactly the user's ids) before putting it into its cgroups and
        resuming it; anything else ends the starter and the process starts as a new Python. A
        starter holds about 150 MiB while it runs. False: always a new Python. Default True.
        """,
        config=True,
    )

    user_starter_idle_timeout = Float(
        600.0,
        help="Seconds a user's Dask starter in an environment is kept without starting anything, "
        "before it is stopped (its memory freed); the next cluster there starts a new one. "
        "Default 600.",
        config=True,
    )

    user_starter_memory = Unicode(
        "1G",
        help="Memory limit of the cgroup each user's Dask starter runs in (with `cgroup_name` set): "
        "its imports and any process not yet moved into its cluster's cgroups. Default 1G.",
        config=True,
    )

    # -- identity --

    @staticmethod
    def _ids(cluster: Any) -> tuple[int, int, list[int]]:
        config = cluster.config
        uid, gid = config.get("uid"), config.get("gid")
        if not isinstance(uid, int) or not isinstance(gid, int):
            raise RefusedToStart(
                f"cluster {cluster.name} has no uid/gid in its config; set c.Backend.cluster_options "
                "= qhub_hub.gateway_options.QHubClusterOptions(rendering='local') so every cluster "
                "runs as its user")
        if uid == 0 or gid == 0:
            raise RefusedToStart(f"cluster {cluster.name} would run as root (uid {uid}, gid {gid}); "
                                 "refusing")
        gids = [int(g) for g in config.get("supplemental_gids") or []]
        return uid, gid, gids

    def _identity(self, cluster: Any) -> Identity:
        uid, gid, gids = self._ids(cluster)
        return Identity(uid, gid, tuple(sorted(set(gids))),
                        cluster.config.get("unix_name") or unix_name(cluster.username))

    def make_preexec_fn(self, cluster: Any, cgroup_dirs: tuple[str, ...] = ()) -> Callable[[], None]:
        become_user = exact_ids(self._identity(cluster), cgroup_dirs)
        workdir = cluster.state["workdir"]

        def preexec() -> None:  # runs in the child between fork and exec: raising fails the start
            become_user()
            os.chdir(workdir)

        return preexec

    def set_file_permissions(self, paths: list[str], username: str) -> None:
        raise NotImplementedError("QHubLocalBackend chowns in setup_working_directory")

    def setup_working_directory(self, cluster: Any) -> str:
        uid, gid, _ = self._ids(cluster)
        if self.clusters_directory:
            base = self.clusters_directory
            os.makedirs(base, 0o711, exist_ok=True)
            info = os.lstat(base)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o066:
                raise RefusedToStart(
                    f"clusters_directory {base} must be a folder owned by the gateway's user, not "
                    "writable by group or others and not listable by them (chmod 711): cluster "
                    "names are private")
            workdir = os.path.join(base, cluster.name)
            os.mkdir(workdir, 0o700)
        else:
            workdir = tempfile.mkdtemp(prefix="dask-", suffix=f"-{cluster.name}")
        certsdir = self.get_certs_directory(workdir)
        logsdir = self.get_logs_directory(workdir)
        os.mkdir(certsdir, 0o700)
        os.mkdir(logsdir, 0o700)
        cert_path, key_path = self._get_tls_paths(workdir)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        for path, data in ((cert_path, cluster.tls_cert), (key_path, cluster.tls_key)):
            with os.fdopen(os.open(path, flags, 0o600), "wb") as f:
                f.write(data)
        for path in (workdir, certsdir, logsdir, cert_path, key_path):
            os.chown(path, uid, gid, follow_symlinks=False)
        self.log.debug("Working directory %s for cluster %s created", workdir, cluster.name)
        return workdir

    def get_env(self, cluster: Any) -> dict[str, str]:
        env = super().get_env(cluster)
        name = cluster.config.get("unix_name") or unix_name(cluster.username)
        env["USER"] = env["LOGNAME"] = name
        return env

    worker_start_method = CaselessStrEnum(
        ["fork", "spawn", "forkserver"],
        "fork",
        help="""
        How each worker's nanny starts the worker process (distributed's
        ``distributed.worker.multiprocessing-method``, given to workers as
        ``DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD``). ``fork`` (default here;
        distributed's own default is ``spawn``): the worker is a copy of its nanny, which has
        already imported distributed and the preloads, so it does not import them again (about
        0.6 CPU seconds, half of a worker's start without Bokeh). The nanny stays: ``client.restart()`` and
        its memory watch work as before, and the copy has the nanny's uid, gids, cgroup and
        environment. ``spawn``: a fresh interpreter that imports everything again. A cluster's own
        ``environment_variables`` may set the variable; theirs wins.
        """,
        config=True,
    )

    # -- commands: HTTP servers answer their owner only --

    def get_scheduler_command(self, cluster: Any) -> list[str]:
        return [*super().get_scheduler_command(cluster), "--preload", PEER_GUARD,
                "--preload", PROMPT_HEARTBEAT]

    def get_worker_env(self, cluster: Any) -> dict[str, str]:
        env = super().get_worker_env(cluster)
        env.setdefault(START_METHOD_VARIABLE, self.worker_start_method)  # the user's choice first
        return env

    def get_worker_command(self, cluster: Any, worker_name: str, scheduler_address: Any = None) -> list[str]:
        return [*super().get_worker_command(cluster, worker_name, scheduler_address),
                "--preload", PEER_GUARD, "--dashboard" if self.worker_dashboard else "--no-dashboard"]

    # -- processes: each in a cgroup with the cluster's limits --

    def _limiter(self) -> CgroupLimiter | None:
        if not self.cgroup_name:
            return None
        limiter = self.__dict__.get("_qhub_limiter")
        if limiter is None:
            limiter = self.__dict__["_qhub_limiter"] = CgroupLimiter(self.cgroup_name)
            if not limiter.available:
                self.log.warning("Dask processes run without cgroup limits: %s", limiter.problem)
        return limiter if limiter.available else None

    @staticmethod
    def cgroup_key(cluster: Any, process: str) -> str:
        name = cluster.config.get("unix_name") or unix_name(cluster.username)
        return f"{name}@dask-{cluster.name}-{process}"

    @staticmethod
    def process_limits(cluster: Any, process: str) -> Limits:
        config = cluster.config
        if process == "scheduler":
            return Limits(mem_limit=config.get("scheduler_memory") or None,
                          cpu_limit=config.get("scheduler_cpu_limit") or None)
        return Limits(mem_limit=config.get("worker_memory") or None,
                      cpu_limit=config.get("worker_cpu_limit") or None)

    async def start_process(self, cluster: Any, cmd: list[str], env: dict[str, str], name: str) -> int:
        limiter = self._limiter()
        dirs: tuple[str, ...] = ()
        if limiter is not None:
            try:
                plan = limiter.prepare(self.cgroup_key(cluster, name), self.process_limits(cluster, name))
            except OSError as e:
                raise RefusedToStart(f"could not set up the cgroup of {cluster.name}'s {name} ({e}); "
                                     "nothing was run") from None
            dirs = plan.dirs
        log_path = os.path.join(self.get_logs_directory(cluster.state["workdir"]), f"{name}.log")
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchown(fd, *self._ids(cluster)[:2])
            pid = await self._start_from_user_starter(cluster, cmd, env, name, dirs, log_path)
            if pid is not None:
                if dirs:
                    self.__dict__.setdefault("_qhub_cgroups", {})[pid] = dirs
                return pid
            request = self._starter_request(cluster, cmd, env, name, dirs, log_path)
            if request is not None:
                try:
                    pid = await asyncio.to_thread(self._starter().start_server, request)
                except FreshInterpreterNeeded as e:
                    self.log.info("Starting %s's %s with a new Python: %s", cluster.name, name, e)
                except StarterError as e:
                    self.log.error("Cannot start %s's %s: %s", cluster.name, name, e)
                    raise RefusedToStart(f"could not start the {name} of cluster {cluster.name}: "
                                         f"{e}; nothing of it was run") from None
                else:
                    if dirs:
                        self.__dict__.setdefault("_qhub_cgroups", {})[pid] = dirs
                    return pid
            proc = await asyncio.create_subprocess_exec(
                *cmd, preexec_fn=self.make_preexec_fn(cluster, cgroup_dirs=dirs),
                start_new_session=True, env=env, stdout=fd, stderr=asyncio.subprocess.STDOUT)
        except BaseException:
            if dirs:
                await asyncio.to_thread(CgroupLimiter.release, dirs)
            raise
        finally:
            os.close(fd)
        if dirs:
            self.__dict__.setdefault("_qhub_cgroups", {})[proc.pid] = dirs
        return proc.pid

    def _forkable(self, cluster: Any, cmd: list[str], env: dict[str, str], name: str) -> bool:
        """Whether a pre-imported starter may start this process: ``<python> -m dask ...`` as root,
        with nothing in its environment that a fork would not honour."""
        if os.geteuid() != 0 or len(cmd) < 3 or cmd[1:3] != ["-m", "dask"]:
            return False
        unhonoured = needs_fresh_interpreter(env)
        if unhonoured:
            self.log.info("Starting %s's %s with a new Python: its environment sets %s, which a "
                          "pre-imported process would not honour", cluster.name, name,
                          ", ".join(unhonoured))
        return not unhonoured

    def _request(self, cluster: Any, cmd: list[str], env: dict[str, str], cgroup_dirs: tuple[str, ...],
                 log_path: str) -> StartRequest:
        uid, gid, gids = self._ids(cluster)
        return StartRequest(argv=list(cmd[1:]), env=dict(env), cwd=cluster.state["workdir"],
                            uid=uid, gid=gid, groups=gids, umask=_own_umask(),
                            cgroup_dirs=list(cgroup_dirs), log_path=log_path)

    def _starter_request(self, cluster: Any, cmd: list[str], env: dict[str, str], name: str,
                         cgroup_dirs: tuple[str, ...], log_path: str) -> StartRequest | None:
        """What to ask the gateway's own Dask starter for, or None where it does not start the
        process: only ``<server environment>/bin/python -m dask ...`` (the gateway's own prefix)."""
        if (not self.preimported_starter or os.path.abspath(cmd[0]) != OWN_PYTHON
                or not self._forkable(cluster, cmd, env, name)):
            return None
        return self._request(cluster, cmd, env, cgroup_dirs, log_path)

    async def _start_from_user_starter(self, cluster: Any, cmd: list[str], env: dict[str, str], name: str,
                                       cgroup_dirs: tuple[str, ...], log_path: str) -> int | None:
        """The pid of the process forked by the user's starter in the cluster's conda-store
        environment, placed and resumed; None where a new Python must start it instead."""
        if (not self.user_starters or not cmd or os.path.abspath(cmd[0]) == OWN_PYTHON
                or not self._forkable(cluster, cmd, env, name)):
            return None
        identity = self._identity(cluster)
        prefix = Path(cmd[0]).parent.parent
        starter = await self._user_starters().get(cmd[0], identity, env,
                                                  await asyncio.to_thread(environment_layout, prefix))
        if starter is None:
            return None
        request = self._request(cluster, cmd, env, (), log_path)
        try:
            pid = await starter.start_process(request)
            starter.release(pid, cgroup_dirs)
        except FreshInterpreterNeeded as e:
            self.log.info("Starting %s's %s with a new Python: %s", cluster.name, name, e)
            return None
        except StarterError as e:
            self.log.error("Cannot start %s's %s: %s", cluster.name, name, e)
            raise RefusedToStart(f"could not start the {name} of cluster {cluster.name}: {e}; "
                                 "nothing of it was run") from None
        except asyncio.CancelledError:  # a child may be held for nobody: it ends with its starter
            await asyncio.shield(self._user_starters().discard(starter, "a start was cancelled"))
            raise
        except (UserStarterFailed, OSError) as e:
            await self._user_starters().discard(starter, str(e))
            self.log.warning("Starting %s's %s with a new Python: its starter failed (%s)",
                             cluster.name, name, e)
            return None
        return pid

    def _user_starters(self) -> UserStarters:
        starters = self.__dict__.get("_qhub_user_starters")
        if starters is None:
            starters = self.__dict__["_qhub_user_starters"] = UserStarters(
                self.user_starter_idle_timeout, self._starter_cgroup, CgroupLimiter.release, log=self.log)
        return starters

    def _starter_cgroup(self, identity: Identity, python: str) -> tuple[str, ...]:
        limiter = self._limiter()
        if limiter is None:
            return ()
        digest = hashlib.sha256(python.encode()).hexdigest()[:12]
        plan = limiter.prepare(f"{identity.name}@dask-starter-{digest}",
                               Limits.from_values(mem_limit=self.user_starter_memory))
        return plan.dirs

    def _starter(self) -> StarterClient:
        """The gateway's own Dask starter (started on first use, again if it died)."""
        starter = self.__dict__.get("_qhub_starter")
        if starter is None:
            starter = self.__dict__["_qhub_starter"] = StarterClient(None, self.log, DASK_PREIMPORT)
        return starter

    async def stop_process(self, pid: int) -> None:
        await super().stop_process(pid)
        dirs = self.__dict__.get("_qhub_cgroups", {}).pop(pid, None)
        if dirs:
            try:
                await asyncio.to_thread(CgroupLimiter.release, dirs)
            except OSError as e:
                self.log.warning("Could not remove the cgroups %s: %s", list(dirs), e)

    # -- dashboards: through the guard, for their owner only --

    async def do_setup(self) -> None:
        await super().do_setup()
        self.__dict__["_qhub_idle_starters"] = asyncio.ensure_future(self._stop_idle_starters())
        limiter = self._limiter()
        if limiter is not None:  # processes of clusters a previous gateway run left behind
            for parent in limiter.layout.values():
                leftovers = [str(d) for d in Path(parent).glob("*@dask-*") if d.is_dir()]
                if leftovers:
                    self.log.info("Removing %d cgroups of an earlier gateway run", len(leftovers))
                    await asyncio.to_thread(CgroupLimiter.release, leftovers)
        if not (self.hub_api_url and self.hub_api_token):
            self.log.warning("hub_api_url/hub_api_token unset: cluster dashboards are not served")
            return
        link = HubLink(api_url=self.hub_api_url, api_token=self.hub_api_token,
                       service_prefix=self.proxy.prefix or "/", hub_prefix=self.hub_prefix)
        guard = DashboardGuard(link, self._dashboard_owner, self._dashboard_target, log=self.log)
        self.__dict__["_qhub_guard"] = guard
        await guard.start()
        # the proxy strips the route's path and appends the rest to the target's
        await self.proxy.add_route(kind="PATH", path="/oauth_callback", target=f"{guard.url}/oauth_callback")
        self.log.info("Cluster dashboards are served to their owners only, through %s", guard.url)

    async def do_cleanup(self) -> None:
        guard = self.__dict__.pop("_qhub_guard", None)
        if guard is not None:
            await guard.stop()
        await super().do_cleanup()
        starter = self.__dict__.pop("_qhub_starter", None)
        if starter is not None:
            await asyncio.to_thread(starter.stop)
        idle = self.__dict__.pop("_qhub_idle_starters", None)
        if idle is not None:
            idle.cancel()
        await self._user_starters().stop_all()

    async def _stop_idle_starters(self) -> None:
        period = max(1.0, min(60.0, self.user_starter_idle_timeout / 4))
        while True:
            await asyncio.sleep(period)
            try:
                await self._user_starters().stop_idle()
            except Exception:  # noqa: BLE001 - the next round tries again
                self.log.exception("Stopping idle Dask starters failed")

    def _dashboard_owner(self, name: str) -> str | None:
        cluster = self.db.get_cluster(name)
        return cluster.username if cluster is not None else None

    def _dashboard_target(self, name: str) -> str:
        cluster = self.db.get_cluster(name)
        return cluster.dashboard_address if cluster is not None else ""

    async def _check_cluster_proxied(self, cluster: Any) -> None:
        # upstream routes /clusters/<name> straight to the (unauthenticated) dashboard
        if cluster.added_to_proxies:
            return
        self.log.info("Adding cluster %s routes to proxies", cluster.name)
        guard = self.__dict__.get("_qhub_guard")
        if guard is not None and cluster.dashboard_address:
            await self.proxy.add_route(kind="PATH", path=f"/clusters/{cluster.name}",
                                       target=f"{guard.url}/clusters/{cluster.name}")
        await self.proxy.add_route(kind="SNI", sni=cluster.name, target=cluster.scheduler_address)
        cluster.added_to_proxies = True
