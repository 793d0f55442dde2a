"""`QHubLocalSpawner`: the plan's user server as a local process of the user's real Unix account.

At every spawn, from the user's plan (computed from the current config by `PlanSpawnerMixin`, which
also offers only the allowed profiles and refuses others with 403/400):

1. the Unix account and groups exist with the config's uid, primary gid and read-write groups
   (`accounts.py`; an existing account or group with other ids fails the spawn, naming it);
2. the home, the shared folder and the user's group folders exist with their owners, modes and
   ACLs (`folders.py`);
3. the server runs as exactly uid / gid / [gid + supplemental gids] (`process.py`: a failed or
   incomplete switch fails the spawn, nothing runs with other ids), in the home, with the root-owned
   single-user environment of the hub (`cmd`), and inside a cgroup holding the profile's memory and
   CPU limits (`limits.py`);
4. its environment (minus secrets) is written for the user's terminals and SSH sessions
   (`session_env.py`).

Servers survive a hub restart (the pid and cgroups are in the spawner state).

Not root: every server runs as the hub's own Unix user (a single-user demo); the hub says so loudly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Bool, Dict, Integer, Unicode, default

from ..conda_store.kernels import jupyter_server_args
from ..config import JupyterLabProfile
from ..policy import UserPlan
from ..spawner_options import PlanSpawnerMixin, SpawnRefused
from ..usage.measure import measure_cgroups
from .accounts import AccountError, account_spec, ensure_account
from .acl import AclError
from .folders import FolderError, ensure_user_folders, user_folders
from .limits import CgroupLimiter, CgroupPlan, Limits, rlimit_fallback
from .peer_guard import VARIABLE as PEER_GUARD_VARIABLE
from .peer_guard import PeerGuardError, peer_guard_library
from .process import ProcessSpec, ProcessStartError, close_gate, open_gate, start_process
from .runtime_dir import RUNTIME_ROOT, ensure_runtime_dir
from .server_starter import StartRequest, needs_fresh_interpreter
from .session_env import VARIABLE as SESSION_ENV_VARIABLE
from .session_env import env_file, session_environment, write_session_env
from .start_queue import start_turn, usable_cpus, wait_listening
from .starter_client import StarterClient, StarterError

PROFILE_TRAITS = ("mem_limit", "mem_guarantee", "cpu_limit", "cpu_guarantee", "default_url",
                  "start_timeout")
_LIMITERS: dict[str, CgroupLimiter] = {}
_STARTER: list[StarterClient] = []  # the hub's one server starter, made on first use


def running_as_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class Prepared:
    uid: int | None
    gid: int | None
    groups: tuple[int, ...] | None
    home: str
    runtime_dir: str = ""  # JUPYTER_RUNTIME_DIR (kernel connection files and IPC sockets)
    peer_guard: str = ""  # the kernels' LD_PRELOAD library (peer_guard.py); empty: unguarded


class QHubLocalSpawner(PlanSpawnerMixin, LocalProcessSpawner):
    """Runs each user's server as their real Unix account, with the ids and folders of their plan."""

    shared_dir = Unicode(
        "",
        config=True,
        help="Folder on this machine used as the shared folder (and parent of the group folders). "
        "Empty (default): the config's storage.shared_root, e.g. /shared.",
    )
    adopt_shared = Bool(
        False,
        config=True,
        help="Take over an existing, non-empty shared folder that qhub-hub did not create "
        "(default False: such a folder fails the spawn with a message, it is never changed unasked).",
    )
    server_log_dir = Unicode(
        "",
        config=True,
        help="Folder for one log file per user server (<unix name>.log, root-only). Empty (default): "
        "servers log to the hub's output.",
    )
    limit_resources = Bool(
        True,
        config=True,
        help="Enforce the profile's mem_limit/cpu_limit (and guarantees) with a cgroup per server, "
        "or, where no cgroup can be made, with RLIMIT_AS and CPU affinity (default True).",
    )
    cgroup_name = Unicode(
        "qhub-servers",
        config=True,
        help="Name of the cgroup, below the hub's own, that holds one cgroup per user server.",
    )
    session_env_dir = Unicode(
        "",
        config=True,
        help="Folder where each user's server environment (without tokens) is written as <uid>.env "
        "for their other shells: JupyterLab terminals (login shells reset PATH) and SSH sessions. "
        "Empty (default): not written.",
    )
    demo_mode = Bool(
        config=True,
        help="Run every server as the hub's own Unix user, without accounts, ids or ACLs: a "
        "single-user demo. Default: on when the hub does not run as root (ids cannot be applied).",
    )
    demo_home_root = Unicode(
        "",
        config=True,
        help="In demo mode, where the users' home folders are made. Empty (default): the config's "
        "storage.home_root.",
    )

    runtime_dir_root = Unicode(
        RUNTIME_ROOT,
        config=True,
        help="Folder holding one private folder per user (<root>/<uid>, mode 0700, owned by the "
        "user) that is their server's JUPYTER_RUNTIME_DIR: kernel connection files and the kernels' "
        "IPC sockets live there, so no other user can reach a kernel. Default /run/qhub-hub.",
    )

    guard_kernel_ports = Bool(
        True,
        config=True,
        help="Preload the peer guard (qhub_hub/local/peer_guard.c) into every kernel of a user "
        "server, so that TCP ports a kernel or its children listen on (the debugger's debugpy, a "
        "web app run from a notebook) accept connections of the same user and root only. "
        "Default True; ignored in the demo mode (one Unix user).",
    )

    concurrent_starts = Integer(
        0,
        config=True,
        help="At most this many user servers start at once; the others wait their turn, first come "
        "first served (a start is CPU work: fifty at once on two cores all end late). A server holds "
        "its turn until it listens on its port or its process ends. 0 (default): twice the number "
        "of CPUs the hub may use. A negative value: no limit.",
    )

    preimported_starter = Bool(
        True,
        config=True,
        help="Start user servers by forking them from one root-owned process per hub that has "
        "already imported the server code (Jupyter Server, JupyterLab, jupyterhub-singleuser), "
        "instead of running a new Python for each: about half the CPU of a server start. The ids, "
        "cgroups, environment and limits of each server are the same either way. A spawn whose "
        "environment sets PYTHON* or another variable read at import time, a changed `cmd`, and "
        "the demo mode use a new Python. False: always a new Python. Default True.",
    )

    gateway_environment = Dict(
        config=True,
        help="DASK_GATEWAY__* (and related) variables of the platform's Dask Gateway, given to every "
        "server while dask_gateway.enabled is true in the config. `local up` sets them. Default: none.",
    )

    @default("demo_mode")
    def _demo_mode_default(self) -> bool:
        return not running_as_root()

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        # the hub's own environment: root-owned, so users cannot install into it; its
        # jupyterhub-singleuser run by qhub_hub.server_start (JupyterLab imported without a node call)
        bin_dir = Path(sys.prefix) / "bin"
        return [str(bin_dir / "python"), "-P", "-m", "qhub_hub.server_start",
                str(bin_dir / "jupyterhub-singleuser")]

    @default("default_url")
    def _default_url_default(self) -> str:
        return "/lab"

    def get_args(self) -> list[str]:
        # stop promptly on the hub's SIGINT: without a terminal, Jupyter Server would otherwise ask
        # "Shut down this Jupyter server (y/[n])?" and carry on
        # and the user's conda-store environments (QHUB_ENVIRONMENT_NAMESPACES) are its kernels.
        args = [*super().get_args(), "--ServerApp.answer_yes=True", *jupyter_server_args()]
        if self._prepared is not None and self._prepared.runtime_dir:
            # kernels talk ZeroMQ over unix sockets in the user's 0700 runtime folder, not over
            # loopback TCP ports that every local user could connect to (not in the demo mode:
            # one Unix user, and home paths may be too long for unix socket addresses)
            args.append("--KernelManager.transport=ipc")
        if self._prepared is not None and self._prepared.peer_guard:
            # kernels start with the peer guard preloaded (kernel_manager.py)
            args.append("--MappingKernelManager.kernel_manager_class="
                        "qhub_hub.local.kernel_manager.GuardedKernelManager")
        return args

    _prepared: Prepared | None = None
    cgroups: tuple[str, ...] = ()

    # --- profile --------------------------------------------------------------------------------

    def qhub_apply_profile(self, profile: JupyterLabProfile | None, plan: UserPlan) -> None:
        """Apply the profile's resources and server settings; unset ones fall back to the config."""
        if not hasattr(self, "_configured_traits"):
            self._configured_traits = {name: getattr(self, name) for name in PROFILE_TRAITS}
        override = profile.kubespawner_override if profile else None
        for name in PROFILE_TRAITS:
            value = getattr(override, name, None) if override else None
            setattr(self, name, value if value is not None else self._configured_traits[name])

    def resource_limits(self) -> Limits:
        return Limits.from_values(self.mem_limit, self.mem_guarantee, self.cpu_limit, self.cpu_guarantee)

    # --- environment ------------------------------------------------------------------------------

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        plan, prepared = self.qhub_user_plan, self._prepared
        if plan is None or prepared is None:
            return env
        env["USER"] = env["LOGNAME"] = plan.unix_name if not self.demo_mode else _me()
        env["HOME"] = prepared.home
        env["SHELL"] = "/bin/bash"
        if prepared.runtime_dir:
            env["JUPYTER_RUNTIME_DIR"] = prepared.runtime_dir
        if prepared.peer_guard:
            env[PEER_GUARD_VARIABLE] = prepared.peer_guard
        return env

    def qhub_managed_environment(self) -> dict[str, str]:
        env = super().qhub_managed_environment()
        if self.gateway_environment and self.qhub_config.dask_gateway.enabled:
            env.update(self.gateway_environment)
        return env

    # --- start ------------------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        # The mixin's server-side check, run again at start (as the mixin's own start() does): the
        # plan and profile are decided now, from the current config. LocalProcessSpawner.start is
        # not called: it would run the server as the hub username with the machine's groups.
        await self.qhub_apply_user_options(self.user_options)
        plan = self.qhub_user_plan
        assert plan is not None
        self._prepared = await asyncio.to_thread(self._prepare, plan)
        if self.port == 0:
            self.port = random_port()
        env = self.get_env()
        if self.session_env_dir and not self.demo_mode:
            env[SESSION_ENV_VARIABLE] = str(env_file(self.session_env_dir, plan.uid))
            await asyncio.to_thread(write_session_env, self.session_env_dir, plan.uid,
                                    session_environment(env))
        spec, cgroup = self._process_spec(plan, env)
        log_path = None
        if self.server_log_dir:
            os.makedirs(self.server_log_dir, mode=0o700, exist_ok=True)
            log_path = os.path.join(self.server_log_dir, f"{self._server_key(plan)}.log")
        self.log.info("Starting %s's server %s%s", plan.username, spec.describe(),
                      f" in cgroups {list(cgroup.dirs)}" if cgroup else "")
        host = self.ip or "127.0.0.1"
        starts = self.concurrent_starts or 2 * usable_cpus()
        turn = start_turn(starts) if starts > 0 else nullcontext()
        async with turn:  # see start_queue.py
            if self._prepared.runtime_dir:  # again: while this start waited for its turn, a
                # `local down` (another platform's) may have removed the folder of a uid without
                # processes (remove_idle_runtime_dirs)
                try:
                    ensure_runtime_dir(self.runtime_dir_root, plan.uid, plan.gid)
                except OSError as e:
                    raise SpawnRefused(500, f"Cannot start the server of {plan.username!r}: its "
                                            f"private runtime folder in {self.runtime_dir_root} "
                                            f"({e})") from None
            request = self._starter_request(spec, cgroup, log_path, env)
            if request is not None:
                started = asyncio.ensure_future(asyncio.to_thread(self._starter().start_server, request))
                try:
                    # shielded: a cancelled spawn cannot stop the thread, so the server it may still
                    # start is ended when it does, instead of running unknown to the hub
                    pid = await asyncio.shield(started)
                except asyncio.CancelledError:
                    started.add_done_callback(_end_started_server)
                    raise
                except StarterError as e:
                    if cgroup is not None:
                        await asyncio.to_thread(CgroupLimiter.release, cgroup.dirs)
                    self.log.error("Cannot start %s's server: %s", plan.username, e)
                    raise SpawnRefused(500, f"Cannot start the server of {plan.username!r}: {e}. "
                                            f"Nothing of the server was run.") from None
                self.proc, self.pid = None, pid  # the starter's child: poll() and stop() use the pid

                def alive() -> bool:
                    return _pid_alive(pid)
            else:
                proc = self._start_new_python(spec, cgroup, log_path, plan)
                self.proc, self.pid = proc, proc.pid

                def alive() -> bool:
                    return proc.poll() is None
            self.cgroups = cgroup.dirs if cgroup else ()
            # a process that ends here fails the spawn as usual (JupyterHub polls it)
            await wait_listening(self.port, alive, self.http_timeout, host)
        return (host, self.port)

    def _start_new_python(self, spec: ProcessSpec, cgroup: CgroupPlan | None, log_path: str | None,
                          plan: UserPlan):
        """The exec path: a new Python for the server (process.py), gated until it is in its cgroup."""
        try:
            proc, gate = start_process(spec, log_path=log_path, gated=cgroup is not None)
        except ProcessStartError as e:
            self.log.error("%s", e)
            raise SpawnRefused(500, str(e)) from None
        if gate is not None:
            try:
                CgroupLimiter.attach(cgroup, proc.pid)
            except OSError as e:
                close_gate(gate)
                proc.wait()
                raise SpawnRefused(500, f"could not put {plan.username}'s server into its cgroup "
                                        f"({e}); nothing was run") from None
            open_gate(gate)
        return proc

    def _starter_request(self, spec: ProcessSpec, cgroup: CgroupPlan | None, log_path: str | None,
                         env: dict[str, str]) -> StartRequest | None:
        """What to ask the server starter for, or None where a new Python must start the server."""
        default_cmd = self._cmd_default()
        if (not self.preimported_starter or self.demo_mode or not running_as_root()
                or spec.uid is None or spec.gid is None or list(self.cmd) != default_cmd):
            return None
        unhonoured = needs_fresh_interpreter(env)
        if unhonoured:
            self.log.info("Starting this server with a new Python: its environment sets %s, which "
                          "a pre-imported server would not honour", ", ".join(unhonoured))
            return None
        script_and_options = spec.argv[len(default_cmd) - 1:]
        return StartRequest(argv=list(script_and_options), env=dict(spec.env), cwd=spec.cwd,
                            uid=spec.uid, gid=spec.gid, groups=list(spec.groups or (spec.gid,)),
                            umask=spec.umask, address_space=spec.address_space,
                            cpus=sorted(spec.cpus) if spec.cpus else None,
                            cgroup_dirs=list(cgroup.dirs) if cgroup else [], log_path=log_path)

    def _starter(self) -> StarterClient:
        if not _STARTER:
            log_path = None
            if self.server_log_dir:
                os.makedirs(self.server_log_dir, mode=0o700, exist_ok=True)
                log_path = os.path.join(self.server_log_dir, "@server-starter.log")
            _STARTER.append(StarterClient(log_path, self.log))
        return _STARTER[0]

    def _server_key(self, plan: UserPlan) -> str:
        return plan.unix_name + (f".{self.name}" if self.name else "")

    def _prepare(self, plan: UserPlan) -> Prepared:
        """Accounts and folders for `plan` (blocking: runs in a thread)."""
        config = self.qhub_config
        try:
            if self.demo_mode:
                return self._prepare_demo(plan)
            ensure_account(account_spec(plan),
                           {name: g.gid for name, g in config.security.groups.items()})
            ensure_user_folders(user_folders(config, plan, self.shared_dir or None),
                                adopt_shared=self.adopt_shared)
        except (AccountError, FolderError, AclError) as e:
            self.log.error("Cannot start %s's server: %s", plan.username, e)
            raise SpawnRefused(500, f"Cannot start the server of {plan.username!r}: {e}") from None
        groups = (plan.gid, *plan.supplemental_gids)
        try:
            runtime = ensure_runtime_dir(self.runtime_dir_root, plan.uid, plan.gid)
        except OSError as e:
            raise SpawnRefused(500, f"Cannot start the server of {plan.username!r}: its private "
                                    f"runtime folder in {self.runtime_dir_root} ({e})") from None
        guard = ""
        if self.guard_kernel_ports:
            try:
                guard = peer_guard_library()
            except (PeerGuardError, OSError) as e:
                raise SpawnRefused(500, f"Cannot start the server of {plan.username!r}: {e}") from None
        return Prepared(plan.uid, plan.gid, tuple(sorted(set(groups))), plan.home.path, runtime, guard)

    def _prepare_demo(self, plan: UserPlan) -> Prepared:
        config = self.qhub_config
        root = self.demo_home_root or config.storage.home_root
        home = os.path.join(root, plan.unix_name)
        os.makedirs(home, mode=0o700, exist_ok=True)
        for folder in user_folders(config, plan, self.shared_dir or None).groups:
            os.makedirs(folder.path, mode=0o770, exist_ok=True)
        return Prepared(None, None, None, home)

    def _process_spec(self, plan: UserPlan, env: dict[str, str]) -> tuple[ProcessSpec, CgroupPlan | None]:
        prepared = self._prepared
        assert prepared is not None
        if not self.demo_mode and (prepared.uid, prepared.gid) != (plan.uid, plan.gid):
            raise SpawnRefused(500, "the config changed while the server was being prepared; "
                                    "start it again")
        limits = self.resource_limits() if self.limit_resources else Limits()
        cgroup = None
        extra: dict[str, Any] = {}
        if not limits.empty:
            limiter = self._limiter()
            if limiter.available:
                try:
                    cgroup = limiter.prepare(self._server_key(plan), limits)
                except OSError as e:
                    raise SpawnRefused(500, f"could not set up the resource limits of {plan.username}'s "
                                            f"server (cgroup: {e}); nothing was run") from None
            else:
                fallback = rlimit_fallback(limits, plan.uid)
                extra = {"address_space": fallback.get("as"),
                         "cpus": frozenset(fallback["cpus"]) if "cpus" in fallback else None}
        spec = ProcessSpec(
            argv=(*self.cmd, *self.get_args()),
            env=env,
            cwd=prepared.home,
            uid=prepared.uid,
            gid=prepared.gid,
            groups=prepared.groups,
            **extra,
        )
        return spec, cgroup

    def _limiter(self) -> CgroupLimiter:
        limiter = _LIMITERS.get(self.cgroup_name)
        if limiter is None:
            limiter = _LIMITERS[self.cgroup_name] = CgroupLimiter(self.cgroup_name)
            if not limiter.available:
                self.log.warning("Profile memory/CPU limits fall back to RLIMIT_AS per process and "
                                 "CPU affinity: %s", limiter.problem)
        return limiter

    # --- state, poll, stop -----------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.cgroups:
            state["cgroups"] = list(self.cgroups)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.cgroups = tuple(state.get("cgroups", ()))

    def clear_state(self) -> None:
        super().clear_state()
        # the cgroups are released by poll/stop, after the process is gone

    async def poll(self) -> int | None:
        status = await super().poll()
        if status is not None and self.cgroups:
            await self._release_cgroups()
        return status

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        if self.cgroups:
            await self._release_cgroups()

    async def _release_cgroups(self) -> None:
        dirs, self.cgroups = self.cgroups, ()
        self.qhub_measured = measure_cgroups(dirs)  # for the usage ledger (post-stop hook)
        try:
            await asyncio.to_thread(CgroupLimiter.release, dirs)
        except OSError as e:
            self.log.warning("Could not remove the cgroups %s: %s", list(dirs), e)


def _end_started_server(started: asyncio.Future) -> None:
    if not started.cancelled() and started.exception() is None:
        with suppress(ProcessLookupError):
            os.kill(started.result(), signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
