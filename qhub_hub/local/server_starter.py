"""The server starter: one root-owned process per hub that has imported the user servers' code once
and forks each new server from there, so that a server does not pay for those imports again.

    python -s -P -m qhub_hub.local.server_starter <socket path> [--preimport <module>]
    <environment>/bin/python -P <this file> --as-user --preimport <module>   (fd 0: a socket)

With ``--preimport``, another module names the code to pre-import (the embedded gateway's Dask
schedulers and nannies: `qhub_hub.gateway.dask_preimport`); every step of the child is the same.

With ``--as-user`` it is one user's starter in a conda-store environment (the embedded gateway's
`qhub_hub.gateway.user_starters`): started by root as exactly that user, in that environment's
Python, it serves the one connection it was given on fd 0 and nobody else. Each child passes the
same steps, except those only root may take (its ids are already the user's: they are checked,
not set; the gateway puts it into its cgroups), and then stops itself (SIGSTOP) so that the
gateway can place it before any of its code runs; the gateway resumes it.

Without it, it imports code only (JupyterLab's server application with node hidden, as
`server_start.py` does, Jupyter Server, jupyterhub-singleuser and the server extensions of the
environment), never user data, and runs no event loop and no thread, so a fork copies nothing
but those modules. It listens on a Unix socket in a folder only root can enter, and answers only
root (checked with SO_PEERCRED). It ends when its standard input closes (the hub that started it
ended) or on SIGTERM; the servers it started keep running (they are in their own sessions and
reparented to init, as today's are).

One request is one JSON line (`StartRequest`), one answer is one JSON line: ``{"pid": n}`` once the
child has passed every step below, or ``{"error": "..."}`` and nothing of the server has run.

The child, before any server code runs (`_become_server`): a new session; into the server's
cgroups; stdout/stderr to the server's log, stdin from /dev/null; RLIMIT_AS and CPU affinity where
there is no cgroup; exactly the plan's groups, gid and uid, read back with getresuid/getresgid/
getgroups and refused unless exact; the umask; the environment replaced by exactly the spawner's;
the home as working folder; every other file descriptor closed (the socket included); signal
handlers as a fresh Python has them. Then the server script runs with the same argv as the exec path.

What a fork shares, and why it is acceptable (README, "Servers started from a pre-imported parent"):
- Python's str/bytes hash secret (PYTHONHASHSEED) is chosen once per interpreter, so all servers
  started by one starter share it. It only protects dicts against crafted hash collisions; a user
  can learn it from their own server and could send colliding keys to another user's server, but
  only within requests that server reads before refusing them (Tornado caps headers at 64 KiB), so
  at worst a slower refusal. `random` is reseeded at fork by Python itself, `tempfile` names reseed
  per pid, OpenSSL reseeds at fork, `secrets`/`uuid4` read the kernel.
- Module-level values computed from the environment at import: the starter runs with a minimal
  environment, and a spawn whose environment sets any variable read at import by the pre-imported
  modules (`IMPORT_TIME_VARIABLES`, or any PYTHON* variable) is started by the exec path instead.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
from dataclasses import asdict, dataclass, field

# read by the pre-imported modules when imported, so a fork would keep the starter's value
# (found by reading their module-level code; tests/scale/test_server_starter.py checks it)
IMPORT_TIME_VARIABLES = (
    "JUPYTERHUB_SINGLEUSER_APP",
    "JUPYTERHUB_SINGLEUSER_EXTENSION",
    "JUPYTERHUB_XSRF_ANONYMOUS_ID_HEADERS",
    "JUPYTERHUB_METRICS_PREFIX",
    "JUPYTERHUB_SERVER_SPAWN_DURATION_SECONDS_BUCKETS",
    "JUPYTERHUB_SERVER_STOP_DURATION_SECONDS_BUCKETS",
    "JUPYTER_ALLOW_INSECURE_WRITES",
    "GATEWAY_WS_PING_INTERVAL_SECS",
    "TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR",
    "TORNADO_EXTENSION",
    "TORNADO_NO_EXTENSION",
    "PYZMQ_BACKEND",
    "MSGPACK_PUREPYTHON",
    "AIOHTTP_NO_EXTENSIONS",
    "FROZENLIST_NO_EXTENSIONS",
    "MULTIDICT_NO_EXTENSIONS",
    "PROPCACHE_NO_EXTENSIONS",
    "YARL_NO_EXTENSIONS",
    # JupyterLab's PyPI extension manager reads the proxy once (read-only in our environment)
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
    # class attributes and trait defaults of rarely set options (internal SSL, a kernel gateway)
    "JUPYTERHUB_SSL_KEYFILE", "JUPYTERHUB_SSL_CERTFILE", "JUPYTERHUB_SSL_CLIENT_CA",
    "JUPYTERHUB_SINGLEUSER_LOAD_OTHER_EXTENSIONS",
    "KERNEL_LAUNCH_TIMEOUT", "JUPYTER_GATEWAY_MAX_REQUEST_RETRIES",
)
# trait defaults written in class bodies from variables that every spawn sets (so the exec path is no
# way out): (module, class, trait, variable, default from its value); the child sets them again
TRAIT_DEFAULTS_FROM_ENV = (
    ("jupyter_client.session", "Session", "username", "USER", lambda v: "username" if v is None else v),
    ("jupyterhub.services.auth", "HubAuth", "base_url", "JUPYTERHUB_SERVICE_PREFIX", lambda v: v or "/"),
)
# read by the interpreter at its own start (sys.path, flags, hashing, encodings)
STARTUP_PREFIX = "PYTHON"
# the server code imported once in the starter (the environment's enabled server extensions)
PREIMPORTED = (
    "jupyter_server.serverapp",
    "jupyterhub.singleuser",
    "jupyter_server_terminals",
    "notebook_shim",
    "jupyterlab_server",
)
MAX_REQUEST = 1 << 20
# --as-user: each child stops itself once ready, for the gateway to place it and resume it
_hold_for_placement = False
# `--preimport <module>`: another set of pre-imported code (e.g. qhub_hub.gateway.dask_preimport).
# That module has `preimport()` (run once in the starter) and may have `after_environment()` (run in
# each child as the user, after its environment is set, before its code; `NeedsFreshInterpreter`
# from it means the start goes back to a fresh interpreter, any other exception refuses the start).
_after_environment = None


def needs_fresh_interpreter(env: dict[str, str]) -> list[str]:
    """The variables of `env` that a forked server would not honour (empty: the starter can start it)."""
    return sorted(name for name in env
                  if name in IMPORT_TIME_VARIABLES or name.startswith(STARTUP_PREFIX))


@dataclass(frozen=True)
class StartRequest:
    """What the spawner asks for: the `ProcessSpec` of process.py, the cgroups and the log."""

    argv: list[str]
    env: dict[str, str] = field(repr=False)
    cwd: str
    uid: int
    gid: int
    groups: list[int]
    umask: int = 0o022
    address_space: int | None = None
    cpus: list[int] | None = None
    cgroup_dirs: list[str] = field(default_factory=list)
    log_path: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> StartRequest:
        return cls(**json.loads(raw))


class StartRefused(Exception):
    """A step before the server code failed; the message says which."""


class NeedsFreshInterpreter(StartRefused):
    """The process needs something a fork cannot give it (e.g. its Dask config differs in a value
    read at import); nothing of it has run, and its caller starts it as a fresh interpreter."""


# --- the child -------------------------------------------------------------------------------------


def _become_server(request: StartRequest, status_fd: int) -> None:
    """In the forked child, as root: every step before server code (see the module docstring)."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    for d in request.cgroup_dirs:
        try:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        except OSError as e:
            raise StartRefused(f"could not put the server into its cgroup {d} ({e})") from None
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if request.log_path:
        log = _open_log(request.log_path)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
    else:
        os.dup2(2, 1)  # the starter's stderr is the hub's output, its stdout a pipe to the hub
    if request.address_space:
        resource.setrlimit(resource.RLIMIT_AS, (request.address_space, request.address_space))
    if request.cpus:
        os.sched_setaffinity(0, request.cpus)
    try:
        if sorted(set(os.getgroups())) != sorted(set(request.groups)):
            os.setgroups(request.groups)  # only root may, even to the same list (--as-user: already set)
        os.setresgid(request.gid, request.gid, request.gid)
        os.setresuid(request.uid, request.uid, request.uid)
    except (OSError, ValueError) as e:
        raise StartRefused(f"switching to uid {request.uid}, gid {request.gid}, groups "
                           f"{_short(request.groups)} failed ({getattr(e, 'strerror', None) or e})"
                           ) from None
    problems = []
    if os.getresuid() != (request.uid,) * 3:
        problems.append(f"uids are {os.getresuid()}")
    if os.getresgid() != (request.gid,) * 3:
        problems.append(f"gids are {os.getresgid()}")
    if sorted(set(os.getgroups())) != sorted(set(request.groups)):
        problems.append(f"groups are {sorted(os.getgroups())}")
    if problems:
        raise StartRefused(f"after switching ids the process did not have exactly uid "
                           f"{request.uid}, gid {request.gid}, groups {request.groups}: "
                           f"{'; '.join(problems)}")
    os.umask(request.umask)
    os.environ.clear()
    os.environ.update(request.env)
    try:
        os.chdir(request.cwd)
    except OSError as e:
        raise StartRefused(f"cannot enter {request.cwd} as uid {request.uid} ({e.strerror})") from None
    _forget_starter_state()
    if _after_environment is not None:
        try:
            _after_environment()
        except NeedsFreshInterpreter:
            raise
        except Exception as e:  # noqa: BLE001 - the profile's own check, its message is the answer
            raise StartRefused(f"the pre-imported code could not take the process's environment "
                               f"({e})") from None
    os.closerange(3, status_fd)
    os.closerange(status_fd + 1, _max_fd())


def _open_log(path: str) -> int:
    """The log, opened as root: a regular file only, never through a symlink or into a FIFO (the
    gateway's logs are in the user's own folder, where the user could put either)."""
    import fcntl
    import stat

    try:
        log = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                      0o600)
    except OSError as e:
        raise StartRefused(f"cannot open the log {path} ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(log).st_mode):
        os.close(log)
        raise StartRefused(f"the log {path} is not a regular file")
    fcntl.fcntl(log, fcntl.F_SETFL, fcntl.fcntl(log, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return log


def _forget_starter_state() -> None:
    """Values cached from the starter's environment that a fresh interpreter computes from the user's."""
    import locale
    import site
    import tempfile

    tempfile.tempdir = None  # TMPDIR
    for module, class_name, trait, variable, value_of in TRAIT_DEFAULTS_FROM_ENV:
        if module in sys.modules:
            _set_trait_default(getattr(sys.modules[module], class_name), trait,
                               value_of(os.environ.get(variable)))
    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")  # LANG / LC_*: the interpreter's own start-up step
    # the user's ~/.local site-packages, which a fresh `python` (without -s) adds for its user unless
    # it runs in a venv without system site-packages; the starter itself runs with -s so that
    # root's never is
    site.USER_BASE = site.USER_SITE = None
    site.ENABLE_USER_SITE = _venv_allows_user_site()
    if site.ENABLE_USER_SITE:
        site.addusersitepackages(set(sys.path))


def _set_trait_default(cls: type, name: str, value: object) -> None:
    """What the class body would have computed: the trait's default, and the copy of it that
    traitlets keeps per class (and subclass) for new instances."""
    cls.class_traits()[name].default_value = value  # type: ignore[attr-defined]
    pending, seen = [cls], set()
    while pending:
        klass = pending.pop()
        if klass in seen:
            continue
        seen.add(klass)
        statics = klass.__dict__.get("_static_immutable_initial_values")
        if statics is not None and name in statics:
            statics[name] = value
        pending.extend(klass.__subclasses__())


def _venv_allows_user_site() -> bool:
    """False in a venv made without system site-packages (as site.py decides at start-up)."""
    if sys.prefix == sys.base_prefix:
        return True
    try:
        with open(os.path.join(sys.prefix, "pyvenv.cfg")) as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip().lower() == "include-system-site-packages":
                    return value.strip().lower() == "true"
    except OSError:
        pass
    return True


def _short(groups: list[int]) -> str:
    return str(groups) if len(groups) <= 20 else f"[{len(groups)} groups]"


def _max_fd() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 65536


def _show_command(argv: list[str]) -> None:
    """ps, top and `pgrep -f jupyterhub-singleuser` show the server's command, not the starter's
    (the title is cut to the space the starter's own command line had)."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(" ".join([sys.executable, *argv] if argv[0] == "-m" else argv))


def _run_server(argv: list[str]) -> int:
    """The server script, as `python <script> <options>` runs it; returns the exit status."""
    import runpy
    import traceback

    try:
        if argv[0] == "-m":  # `python -m <module> ...`: sys.argv[0] becomes the module's file
            sys.argv = list(argv[1:])
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            runpy.run_path(argv[0], run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - the child must end here, never return to the starter
        traceback.print_exc()
        code = 1
    return code


def _die_with_parent(parent: int | None) -> None:
    """While held (--as-user): killed if the starter ends first (the gateway never resumed it, e.g.
    its start was cancelled). A process stopped in a session of its own is not hung up by the
    kernel when its parent ends, so without this it would stay stopped forever. None: undo it."""
    import ctypes

    pr_set_pdeathsig = 1
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL if parent else 0) != 0:
        raise StartRefused(f"prctl(PR_SET_PDEATHSIG) failed ({os.strerror(ctypes.get_errno())})")
    if parent and os.getppid() != parent:  # the starter ended before the line above
        os._exit(1)


def _child(request: StartRequest, status_fd: int, parent: int) -> None:
    """The forked child: never returns (it must not run the starter's loop)."""
    code = 1
    try:
        try:
            _become_server(request, status_fd)
            if _hold_for_placement:
                _die_with_parent(parent)
        except NeedsFreshInterpreter as e:
            os.write(status_fd, f"fresh: {e}".encode())
            return
        except Exception as e:  # noqa: BLE001 - every failure before server code is the answer
            os.write(status_fd, f"error: {e}".encode())
            return
        os.write(status_fd, b"ok")
        os.close(status_fd)
        if _hold_for_placement:
            os.kill(os.getpid(), signal.SIGSTOP)  # until the gateway has placed it (SIGCONT)
            _die_with_parent(None)  # placed and resumed: it outlives its starter, as servers do
        _show_command(request.argv)
        code = _run_server(request.argv)
        with contextlib.suppress(BaseException):
            threading._shutdown()  # type: ignore[attr-defined] - as interpreter exit does
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os._exit(code)


# --- the starter -----------------------------------------------------------------------------------


def preimport() -> None:
    """Import the servers' code (not run it): JupyterLab with node hidden (server_start.py) first."""
    import importlib

    from ..server_start import import_jupyterlab

    with contextlib.suppress(ImportError):
        import setproctitle

        # set up first: it finds the command line's memory through the environment as it was at
        # start, which import_jupyterlab (PATH) and every child (all of it) change
        setproctitle.setproctitle(setproctitle.getproctitle())
    import_jupyterlab()
    for name in PREIMPORTED:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    if threading.active_count() != 1:
        raise SystemExit("qhub_hub.local.server_starter: importing the server code started threads "
                         f"({[t.name for t in threading.enumerate()]}); a fork would lose them")
    gc.collect()
    gc.freeze()  # keep the imported objects out of later collections: fewer copied pages per fork


def start_server(request: StartRequest) -> int:
    """Fork a server for `request`; its pid once it passed every step before server code."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(request, write_fd, parent)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as status:
        answer = status.read().decode(errors="replace")
    if answer == "ok" and not _hold_for_placement:
        return pid
    if answer == "ok":
        try:
            _, status = os.waitpid(pid, os.WUNTRACED)  # reported stopped, not reaped
        except ChildProcessError:
            status = 0
        if os.WIFSTOPPED(status):
            return pid
        answer = "error: the process ended before the gateway could place it"
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    if answer.startswith("fresh: "):
        raise NeedsFreshInterpreter(answer.removeprefix("fresh: "))
    raise StartRefused(answer.removeprefix("error: ") or
                       "the server process ended before its ids were set")


def _reap(*_: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _answer(conn: socket.socket) -> None:
    conn.settimeout(30)
    if _peer_uid(conn) != 0:
        conn.sendall(b'{"error": "only root may start servers"}\n')
        return
    raw = b""
    while not raw.endswith(b"\n") and len(raw) < MAX_REQUEST:
        chunk = conn.recv(65536)
        if not chunk:
            return
        raw += chunk
    conn.sendall(_start_answer(raw))


def _start_answer(raw: bytes) -> bytes:
    """The answer line to one request line."""
    try:
        request = StartRequest.from_json(raw)
        if request.uid == 0 or request.gid == 0:
            raise StartRefused("refusing to start a server as root")
        answer = {"pid": start_server(request)}
    except NeedsFreshInterpreter as e:
        answer = {"error": str(e), "fresh": True}
    except StartRefused as e:
        answer = {"error": str(e)}
    except (TypeError, ValueError) as e:
        answer = {"error": f"bad request ({e})"}
    return json.dumps(answer).encode() + b"\n"


def preimport_profile(module_name: str) -> None:
    """Another profile's code instead of the servers' (`--preimport`), and its per-child step."""
    import importlib

    global _after_environment
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(setproctitle.getproctitle())  # as in preimport()
    profile = importlib.import_module(module_name)
    profile.preimport()
    _after_environment = getattr(profile, "after_environment", None)
    if threading.active_count() != 1:
        raise SystemExit(f"qhub_hub.local.server_starter: importing {module_name}'s code started "
                         f"threads ({[t.name for t in threading.enumerate()]}); a fork would lose them")
    gc.collect()
    gc.freeze()


def serve(socket_path: str, profile: str | None = None) -> None:
    """Answer start requests on `socket_path` until stdin closes or SIGTERM."""
    if os.geteuid() != 0:
        raise SystemExit("qhub_hub.local.server_starter: runs as root only")
    folder = os.path.dirname(socket_path)
    info = os.stat(folder)
    if info.st_uid != 0 or info.st_mode & 0o077:
        raise SystemExit(f"qhub_hub.local.server_starter: {folder} must be root's, mode 0700")
    if profile:
        preimport_profile(profile)
    else:
        preimport()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(socket_path)
        listener.listen(64)
        print("ready", flush=True)
        while True:
            readable, _, _ = select.select([listener, sys.stdin], [], [])
            if sys.stdin in readable and not os.read(sys.stdin.fileno(), 4096):
                return  # the hub is gone
            if listener in readable:
                conn, _ = listener.accept()
                with conn:
                    try:
                        _answer(conn)
                    except OSError as e:
                        print(f"server starter: a request failed: {e}", file=sys.stderr, flush=True)
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(socket_path)
            os.rmdir(folder)  # made for this starter (starter_client.py)


def serve_as_user(profile: str) -> None:
    """One user's starter (``--as-user``): requests on the socket at fd 0 until it closes."""
    global _hold_for_placement
    if os.geteuid() == 0 or os.getuid() == 0:
        raise SystemExit("qhub_hub.local.server_starter --as-user: never as root")
    _hold_for_placement = True
    import ctypes  # noqa: F401 - each held child uses it (_die_with_parent): imported once here
    try:
        conn = socket.socket(fileno=0)
        peer = _peer_uid(conn)  # of the socketpair's maker
    except OSError:
        peer = None  # a pipe, a terminal, /dev/null
    if peer != 0:
        raise SystemExit("qhub_hub.local.server_starter --as-user: fd 0 must be root's socket")
    preimport_profile(profile)
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    conn.sendall(b"ready\n")
    pending = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return  # the gateway closed it, or ended
        pending += chunk
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            conn.sendall(_start_answer(raw + b"\n"))
        if len(pending) > MAX_REQUEST:
            conn.sendall(b'{"error": "request too long"}\n')
            return


def _as_package_parts() -> None:
    """Run by path in an environment without qhub-hub: this file and the --preimport module (both
    standard library only, besides the environment's own Dask) import as parts of ``qhub_hub``,
    whose package ``__init__`` files are not run (they need the platform's environment)."""
    import types

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name, folder in (("qhub_hub", root), ("qhub_hub.local", os.path.join(root, "local")),
                         ("qhub_hub.gateway", os.path.join(root, "gateway"))):
        package = types.ModuleType(name)
        package.__path__ = [folder]
        sys.modules[name] = package


if __name__ == "__main__":
    if sys.argv[1:2] == ["--as-user"]:
        _as_package_parts()
    # one module under both names: a --preimport module's `NeedsFreshInterpreter` is this one's
    sys.modules.setdefault("qhub_hub.local.server_starter", sys.modules[__name__])
    if len(sys.argv) == 4 and sys.argv[1:3] == ["--as-user", "--preimport"]:
        serve_as_user(sys.argv[3])
    elif len(sys.argv) == 2:
        serve(sys.argv[1])
    elif len(sys.argv) == 4 and sys.argv[2] == "--preimport":
        serve(sys.argv[1], sys.argv[3])
    else:
        sys.exit("usage: python -s -P -m qhub_hub.local.server_starter <socket path> "
                 "[--preimport <module>], or python -P <this file> --as-user --preimport <module>")
