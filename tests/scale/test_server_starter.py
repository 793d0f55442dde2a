"""The server starter (qhub_hub/local/server_starter.py, starter_client.py): servers forked from one
pre-imported root process keep every guarantee of the embedded mode.

A probe script stands in for jupyterhub-singleuser (the starter runs any script with its options, as
the exec path's `python -P -m qhub_hub.server_start <script>` does), and prints what the process
sees. Real servers through the spawner: tests/local (test_isolation.py and others, starter on by
default). Test ids: 49500-49599 (no accounts needed: ids are numbers to the kernel).
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qhub_hub.local.limits import CgroupLimiter, Limits
from qhub_hub.local.process import ProcessSpec, start_process
from qhub_hub.local.server_starter import (
    IMPORT_TIME_VARIABLES,
    TRAIT_DEFAULTS_FROM_ENV,
    StartRequest,
    needs_fresh_interpreter,
)
from qhub_hub.local.starter_client import StarterClient, StarterError
from tests.local.support import public_dir, remove_tree
from tests.support.net import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switches ids and runs a root starter")

ALICE, BOB, SHARED_GID = 49501, 49502, 49590
PYTHON = str(Path(sys.prefix) / "bin" / "python")

PROBE = """
import json, os, random, signal, site, sys, tempfile
import jupyter_core.paths as paths
from jupyter_client.session import Session
from jupyterhub.services.auth import HubAuth
print(json.dumps({
    "ids": [os.getresuid(), os.getresgid(), sorted(os.getgroups())],
    "env": dict(os.environ), "cwd": os.getcwd(), "umask": os.umask(0o22),
    "session_leader": os.getsid(0) == os.getpid(),
    "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
    "jupyter": [paths.jupyter_config_dir(), paths.jupyter_data_dir(), paths.jupyter_runtime_dir(),
                paths.jupyter_path(), paths.jupyter_config_path()],
    "user_site": site.getusersitepackages(), "user_site_on": site.ENABLE_USER_SITE,
    "tmp": tempfile.gettempdir(), "random": random.random(), "argv": sys.argv,
    "signals": [str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD,
                                                   signal.SIGPIPE)],
    "cgroup": open("/proc/self/cgroup").read(),
    "preimported": "jupyter_server.serverapp" in sys.modules,
    "trait_defaults": [Session().username, HubAuth().base_url],
    "cmdline": open("/proc/self/cmdline", "rb").read().decode().replace("\\0", " ").strip(),
}), flush=True)
"""


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    root = public_dir("starter")  # pytest's tmp_path is 0700: the users could not read the probe
    (root / "probe.py").write_text(PROBE)
    for uid in (ALICE, BOB):
        home = root / f"home{uid}"
        home.mkdir(mode=0o700)
        os.chown(home, uid, uid)
    yield root
    remove_tree(root)


@pytest.fixture(scope="module")
def starter(work: Path) -> Iterator[StarterClient]:
    client = StarterClient(str(work / "starter.log"))
    yield client
    client.stop()


def request_for(work: Path, uid: int, **changes) -> StartRequest:
    home = str(work / f"home{uid}")
    base = dict(argv=[str(work / "probe.py"), "--option"],
                env={"HOME": home, "PATH": "/usr/bin:/bin", "USER": f"sst{uid}", "MARK": f"only-{uid}",
                     "LANG": "C.UTF-8"},
                cwd=home, uid=uid, gid=uid, groups=[uid, SHARED_GID], umask=0o027,
                log_path=str(work / f"{uid}-{time.monotonic_ns()}.log"))
    return StartRequest(**{**base, **changes})


def wait_gone(pid: int, timeout: float = 30) -> None:
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout,
               what=f"process {pid} to end and be reaped", interval=0.05)


def probe_output(log_path: str, pid: int) -> dict:
    wait_gone(pid)
    return json.loads(Path(log_path).read_text())


def forked_probe(starter: StarterClient, request: StartRequest) -> dict:
    return probe_output(request.log_path, starter.start_server(request))


def exec_probe(request: StartRequest) -> dict:
    """The same probe through today's exec path: a new Python (process.py, server_start.py)."""
    spec = ProcessSpec(argv=(PYTHON, "-P", "-m", "qhub_hub.server_start", *request.argv),
                       env=request.env, cwd=request.cwd, uid=request.uid, gid=request.gid,
                       groups=tuple(request.groups), umask=request.umask)
    # as from a shell: a test run in the background of a non-interactive shell (as CI runs it)
    # ignores SIGINT, which a new Python would inherit instead of installing its own handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc, _ = start_process(spec, log_path=request.log_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    proc.wait(120)
    return json.loads(Path(request.log_path).read_text())


# --- no state shared between users; nothing of the starter in a server ---------------------------


def test_two_users_see_exactly_their_own_ids_env_and_home(work: Path, starter: StarterClient) -> None:
    os.environ["SST_HUB_ONLY"] = "root's secret"  # in the hub's environment, never in a server's
    try:
        alice_request, bob_request = request_for(work, ALICE), request_for(work, BOB)
        alice, bob = forked_probe(starter, alice_request), forked_probe(starter, bob_request)
    finally:
        del os.environ["SST_HUB_ONLY"]
    for seen, request in ((alice, alice_request), (bob, bob_request)):
        uid = request.uid
        assert seen["ids"] == [[uid] * 3, [uid] * 3, [uid, SHARED_GID]]
        assert seen["env"] == request.env  # replaced, exactly: no root or hub variable
        assert seen["cwd"] == request.cwd and seen["umask"] == 0o027
        assert seen["jupyter"][0] == f"{request.cwd}/.jupyter"
        assert seen["user_site"].startswith(f"{request.cwd}/.local/")
        assert seen["argv"] == request.argv
        assert seen["cmdline"] == " ".join(request.argv)  # what ps and pgrep -f show
        assert seen["session_leader"] and seen["preimported"]
        assert seen["fds"] == [0, 1, 2, 3]  # 3: the probe's own listdir; socket and pipes closed
        assert seen["signals"] == [str(signal.default_int_handler), str(signal.SIG_DFL),
                                   str(signal.SIG_DFL), str(signal.SIG_IGN)]
    assert alice["random"] != bob["random"]
    assert f"home{BOB}" not in json.dumps(alice) and "only-49502" not in json.dumps(alice)
    assert f"home{ALICE}" not in json.dumps(bob) and "only-49501" not in json.dumps(bob)


def test_a_forked_server_computes_what_a_new_python_computes(work: Path, starter: StarterClient) -> None:
    # values derived from the environment (Jupyter's paths, the user's site-packages, TMPDIR,
    # signal dispositions) must not keep what the starter computed at import time
    env_extra = {"TMPDIR": str(work / f"home{ALICE}"), "JUPYTERHUB_SERVICE_PREFIX": "/user/sst-alice/",
                 "JUPYTER_CONFIG_DIR": "/nowhere/config",
                 "JUPYTER_DATA_DIR": "/nowhere/data", "JUPYTER_PATH": "/nowhere/path"}
    base = request_for(work, ALICE)
    forked = forked_probe(starter, request_for(work, ALICE, env={**base.env, **env_extra}))
    fresh = exec_probe(request_for(work, ALICE, env={**base.env, **env_extra}))
    for key in ("ids", "env", "cwd", "umask", "session_leader", "jupyter", "user_site", "user_site_on",
                "tmp", "argv", "signals", "preimported", "trait_defaults"):
        assert forked[key] == fresh[key], (key, forked[key], fresh[key])
    assert forked["jupyter"][0] == "/nowhere/config" and forked["tmp"] == env_extra["TMPDIR"]
    assert forked["trait_defaults"] == ["sst49501", "/user/sst-alice/"]


ENV_READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\(|environ\.setdefault\()\s*["']([A-Za-z_]\w*)["']"""
                      r"""|["']([A-Za-z_]\w*)["']\s+(?:not\s+)?in\s+os\.environ""")
WINDOWS_ONLY = {"PROGRAMDATA", "PATHEXT"}  # read under `if os.name == "nt"` at import
# a class-body default that a @default method replaces (traitlets uses the method)
OVERRIDDEN = {"JUPYTERHUB_API_URL"}


class ImportTimeReads(ast.NodeVisitor):
    """Variable names read by code that runs at import (not inside a function or a lambda)."""

    def __init__(self, source: str):
        self.lines, self.names = source.splitlines(), set()

    def visit_FunctionDef(self, node: ast.AST) -> None:  # runs when called, not at import
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_Expr(self, node: ast.AST) -> None:  # a statement's own lines (without function bodies)
        segment = "\n".join(self.lines[node.lineno - 1:node.end_lineno])
        if "environ" in segment or "getenv" in segment:
            self.names.update(a or b for a, b in ENV_READ.findall(segment))

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt) and not isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.If | ast.Try
                | ast.With | ast.For | ast.While):
            self.visit_Expr(node)
        super().generic_visit(node)


def test_every_variable_read_at_import_is_known(work: Path) -> None:
    # Module-level code of the pre-imported modules that reads the environment keeps the starter's
    # value in every fork; each such variable must send a spawn to the exec path.
    script = textwrap.dedent("""
        import json, sys
        from qhub_hub.local.server_starter import preimport
        preimport()
        print(json.dumps(sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())})))
    """)
    out = subprocess.run([PYTHON, "-s", "-P", "-c", script], capture_output=True, text=True,
                         check=True, timeout=180, env={"PATH": os.environ["PATH"]}, cwd="/")
    files = [f for f in json.loads(out.stdout.splitlines()[-1]) if f.endswith(".py")]
    assert any(f.endswith("jupyterhub/singleuser/__init__.py") for f in files)
    read_at_import: dict[str, str] = {}
    for file in files:
        source = Path(file).read_text(errors="replace")
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        reads = ImportTimeReads(source)
        reads.visit(tree)
        read_at_import.update(dict.fromkeys(reads.names, file))
    assert "JUPYTERHUB_SINGLEUSER_APP" in read_at_import  # the scan finds what it must
    unknown = {name: file for name, file in read_at_import.items()
               if name not in IMPORT_TIME_VARIABLES and name not in WINDOWS_ONLY | OVERRIDDEN
               and name not in {row[3] for row in TRAIT_DEFAULTS_FROM_ENV}
               and not name.lstrip("_").startswith("PYTHON")}
    assert not unknown, f"read at import by pre-imported modules, not in IMPORT_TIME_VARIABLES: {unknown}"


def test_a_spawn_that_sets_import_time_variables_needs_a_new_python() -> None:
    assert needs_fresh_interpreter({"HOME": "/h", "PATH": "/bin", "JUPYTERHUB_API_TOKEN": "t"}) == []
    assert needs_fresh_interpreter({"PYTHONPATH": "/x", "JUPYTERHUB_SINGLEUSER_APP": "notebook",
                                    "HOME": "/h"}) == ["JUPYTERHUB_SINGLEUSER_APP", "PYTHONPATH"]


# --- the ids are exact, or nothing runs --------------------------------------------------------------


def test_a_failed_setuid_fails_the_start_and_runs_nothing(work: Path) -> None:
    # a root hub without CAP_SETUID (a container that dropped it): the starter's setresuid fails
    marker = work / "ran-after-failed-setuid"
    script = textwrap.dedent(f"""
        from qhub_hub.local.server_starter import StartRequest
        from qhub_hub.local.starter_client import StarterClient, StarterError
        client = StarterClient()
        try:
            client.start_server(StartRequest(argv=["/usr/bin/touch", {str(marker)!r}], env={{}},
                                             cwd="/", uid={ALICE}, gid={ALICE}, groups=[{ALICE}]))
        except StarterError as e:
            print(e)
        else:
            print("started")
        finally:
            client.stop()
    """)
    proc = subprocess.run(["setpriv", "--bounding-set", "-setuid", "--inh-caps", "-setuid", PYTHON, "-c",
                           script], capture_output=True, text=True, timeout=180, cwd="/")
    assert proc.stdout.strip() == (f"switching to uid {ALICE}, gid {ALICE}, groups [{ALICE}] failed "
                                   "(Operation not permitted)"), proc.stderr
    time.sleep(0.2)
    assert not marker.exists()


def test_too_many_groups_fail_the_start(work: Path, starter: StarterClient) -> None:
    request = request_for(work, ALICE, groups=list(range(100000, 100000 + 70000)))  # > NGROUPS_MAX
    with pytest.raises(StarterError, match=r"switching to uid 49501, gid 49501, groups \[70000 groups\] failed"):
        starter.start_server(request)
    assert not Path(request.log_path).exists() or Path(request.log_path).read_text() == ""


def test_root_ids_are_refused(work: Path, starter: StarterClient) -> None:
    with pytest.raises(StarterError, match="refusing to start a server as root"):
        starter.start_server(StartRequest(**{**request_for(work, ALICE).__dict__, "uid": 0}))


def test_a_missing_cgroup_fails_the_start_and_runs_nothing(work: Path, starter: StarterClient) -> None:
    request = request_for(work, ALICE, cgroup_dirs=[str(work / "no-such-cgroup")])
    with pytest.raises(StarterError, match=r"could not put the server into its cgroup .*no-such-cgroup"):
        starter.start_server(request)
    assert not Path(request.log_path).exists()


def test_a_missing_home_fails_the_start(work: Path, starter: StarterClient) -> None:
    with pytest.raises(StarterError, match=r"cannot enter /nonexistent-sst as uid 49501"):
        starter.start_server(request_for(work, ALICE, cwd="/nonexistent-sst"))


def test_the_server_is_in_its_cgroup_before_it_runs(work: Path, starter: StarterClient) -> None:
    limiter = CgroupLimiter("qhub-sst-servers")
    if not limiter.available:
        pytest.skip(f"no cgroups here: {limiter.problem}")
    plan = limiter.prepare("sst-alice", Limits.from_values("300M", None, 1, None))
    try:
        seen = forked_probe(starter, request_for(work, ALICE, cgroup_dirs=list(plan.dirs)))
        for d in plan.dirs:
            assert "/qhub-sst-servers/sst-alice" in d
        assert "/qhub-sst-servers/sst-alice" in seen["cgroup"]
    finally:
        CgroupLimiter.release(plan.dirs)


# --- only root asks; the starter's life ---------------------------------------------------------------


def test_the_socket_folder_is_roots_alone_and_others_cannot_connect(work: Path,
                                                                    starter: StarterClient) -> None:
    starter.start_server(request_for(work, ALICE))  # running
    folder = Path(starter.socket_path).parent
    info = folder.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (0, 0o700)
    pid = os.fork()
    if pid == 0:  # as ALICE, try to reach it
        try:
            os.setgroups([])
            os.setresgid(ALICE, ALICE, ALICE)
            os.setresuid(ALICE, ALICE, ALICE)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(starter.socket_path)
            os._exit(0)
        except PermissionError:
            os._exit(13)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 13


def test_a_non_root_peer_is_refused_even_with_access_to_the_socket(work: Path,
                                                                  starter: StarterClient) -> None:
    starter.start_server(request_for(work, ALICE))
    read_fd, write_fd = os.pipe()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(starter.socket_path)  # connected as root, then the peer drops to ALICE:
        pid = os.fork()  # SO_PEERCRED is who connected, so a second connection is made as ALICE
        if pid == 0:
            try:
                inner = socket.socket(socket.AF_UNIX)
                folder_fd = os.open(Path(starter.socket_path).parent, os.O_PATH)
                os.setgroups([])
                os.setresgid(ALICE, ALICE, ALICE)
                os.setresuid(ALICE, ALICE, ALICE)
                try:
                    inner.connect(f"/proc/self/fd/{folder_fd}/starter.sock")
                except PermissionError:
                    os.write(write_fd, b"no access")
                    os._exit(0)
                inner.sendall(request_for(work, ALICE).to_json())
                os.write(write_fd, inner.recv(4096))
            finally:
                os._exit(0)
        os.close(write_fd)
        os.waitpid(pid, 0)
        answer = os.read(read_fd, 4096)
        os.close(read_fd)
    # either the folder keeps ALICE out, or the starter refuses her by her credentials
    assert answer in (b"no access", b'{"error": "only root may start servers"}\n')


def test_children_are_reaped_by_the_starter(work: Path, starter: StarterClient) -> None:
    request = request_for(work, ALICE)
    pid = starter.start_server(request)
    wait_gone(pid)  # a zombie would keep /proc/<pid>


def test_a_dead_starter_is_started_again_on_the_next_start(work: Path, starter: StarterClient) -> None:
    starter.start_server(request_for(work, ALICE))
    old = starter.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while starter.pid == old and time.monotonic() < deadline:  # .pid reaps the ended starter
        time.sleep(0.05)
    seen = forked_probe(starter, request_for(work, BOB))
    assert seen["ids"][0] == [BOB] * 3
    assert starter.pid not in (None, old)


def test_the_starter_ends_with_the_hub_and_its_servers_stay(work: Path) -> None:
    sleeper = work / "sleeper.py"
    sleeper.write_text("import time\ntime.sleep(30)\n")
    script = textwrap.dedent(f"""
        import json, sys
        from qhub_hub.local.server_starter import StartRequest
        from qhub_hub.local.starter_client import StarterClient
        client = StarterClient()
        pid = client.start_server(StartRequest(argv=[{str(sleeper)!r}], env={{}}, cwd="/",
                                               uid={ALICE}, gid={ALICE}, groups=[{ALICE}]))
        print(json.dumps([client.pid, pid, client.socket_path]))
    """)
    out = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=180, cwd="/")
    starter_pid, server_pid, socket_path = json.loads(out.stdout.splitlines()[-1])
    try:
        wait_gone(starter_pid, 30)  # the hub (this subprocess) ended: so did its starter
        assert not Path(socket_path).parent.exists()
        assert Path(f"/proc/{server_pid}").exists()  # the server runs on, as exec'd ones do
        assert os.stat(f"/proc/{server_pid}").st_uid == ALICE
    finally:
        os.kill(server_pid, signal.SIGKILL)
