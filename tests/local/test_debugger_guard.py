"""The kernel debugger on one machine (issue 11): debugpy's TCP port answers carol, never bob.

A real `qhub-hub local up`, real servers and kernels of two real Unix users, ``dbgbob`` and
``dbgcarol``. carol turns JupyterLab's debugger on (a ``debug_request`` ``initialize`` on her
kernel's control channel, as JupyterLab sends it: the kernel starts debugpy on a loopback TCP
port) and, in a second kernel, calls ``debugpy.listen`` herself. bob's process then connects to
every TCP port carol's kernels listen on and speaks the debug adapter protocol (DAP): each
connection is reset before a byte comes back. carol's own process gets the DAP answer on the same
port. The control: a listener carol starts from her kernel *without* the preloaded guard does
answer bob, so the probe can see what the guard hides.

The guard library alone is checked too, outside the platform (a plain TCP server as carol).

Users and groups: names ``dbg*``, ids 48000-48999 (this file's range), removed afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qhub_hub.local.peer_guard import peer_guard_library

from .support import Platform, remove_test_accounts, remove_tree, write_config
from .test_isolation import Kernel

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: real Unix users, setuid")

PREFIX, ID_MIN, ID_MAX = "dbg", 48000, 48999
GROUPS = {"dbgusers": 48100}
USERS = {"dbgbob": {"uid": 48001, "primary_group": "dbgusers"},
         "dbgcarol": {"uid": 48002, "primary_group": "dbgusers"}}
UIDS = {name: spec["uid"] for name, spec in USERS.items()}
GID = GROUPS["dbgusers"]
PROFILES = [{"display_name": "Small", "slug": "small", "default": True,
             "kubespawner_override": {"cpu_limit": 1, "mem_limit": "2G"}}]


def remove_dbg_accounts() -> None:
    """Every dbg* account and group in this file's id range (never anything else), their processes first."""
    remove_test_accounts(PREFIX, ID_MIN, ID_MAX)


# --- a probe run as a given uid: connect, speak DAP (or just listen), report what came back ------

PROBE = r"""
import json, socket, sys
ports = json.loads(sys.argv[1])
body = json.dumps({"seq": 1, "type": "request", "command": "initialize",
                   "arguments": {"adapterID": "probe", "clientID": "probe"}}).encode()
request = b"Content-Length: %d\r\n\r\n" % len(body) + body
result = {}
for port in ports:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(5)
            try:
                s.sendall(request)
            except OSError:
                pass
            data = b""
            while len(data) < 65536:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
                if b'"command": "initialize"' in data or b'"command":"initialize"' in data or b"hello" in data:
                    break
            result[port] = "data: " + data.decode(errors="replace")[:2000] if data else "closed, no data"
    except OSError as e:
        result[port] = f"error: {e}"
print(json.dumps(result))
"""


def probe_as(uid: int, ports: list[int]) -> dict[int, str]:
    proc = subprocess.run([sys.executable, "-I", "-c", PROBE, json.dumps(ports)], capture_output=True,
                          text=True, cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": "/"}, timeout=120,
                          user=uid, group=GID, extra_groups=[])
    assert proc.returncode == 0, proc.stderr
    return {int(port): answer for port, answer in json.loads(proc.stdout).items()}


def refused(answer: str) -> bool:
    """Nothing came back: the connection was reset (or closed) before a byte was sent."""
    return answer == "closed, no data" or "reset" in answer.lower() or "broken pipe" in answer.lower()


def dap_initialized(answer: str) -> bool:
    if not answer.startswith("data: "):
        return False
    body = answer.split("\r\n\r\n", 1)[-1]
    return '"command": "initialize"' in body.replace('":"', '": "') and '"success": true' in \
        body.replace('":true', '": true')


# --- the library alone -----------------------------------------------------------------------------

SERVER = r"""
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello\n")
    c.close()
"""


def serve_as(uid: int, preload: str | None) -> tuple[subprocess.Popen, int]:
    env = {"PATH": "/usr/bin:/bin", **({"LD_PRELOAD": preload} if preload else {})}
    proc = subprocess.Popen([sys.executable, "-I", "-c", SERVER], stdout=subprocess.PIPE, text=True,
                            cwd="/", env=env, user=uid, group=GID, extra_groups=[])
    return proc, int(proc.stdout.readline())


def test_the_guard_resets_other_uids_and_keeps_the_owner_and_root() -> None:
    library = peer_guard_library()
    info = os.stat(library)
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (0, "0o755")  # users read it, cannot change it
    carol, bob = UIDS["dbgcarol"], UIDS["dbgbob"]
    guarded, port = serve_as(carol, library)
    plain, plain_port = serve_as(carol, None)
    try:
        by_bob = probe_as(bob, [port, plain_port])
        assert refused(by_bob[port]), by_bob
        assert "hello" in by_bob[plain_port], by_bob  # the same probe, no guard: bob reads
        assert "hello" in probe_as(carol, [port])[port]
        root = subprocess.run([sys.executable, "-c", f"import socket; print(socket.create_connection("
                               f"('127.0.0.1', {port}), timeout=5).recv(10))"], capture_output=True, text=True)
        assert "hello" in root.stdout, root.stderr
        # a refused connection does not stop the listener: the next one is served
        assert refused(probe_as(bob, [port])[port]) and "hello" in probe_as(carol, [port])[port]
    finally:
        for proc in (guarded, plain):
            proc.kill()
            proc.wait()


# --- on the platform --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    remove_dbg_accounts()
    root = Path(tempfile.mkdtemp(prefix="qhub-dbg-", dir="/tmp"))
    root.chmod(0o755)
    running = Platform(root, write_config(root, users=USERS, groups=GROUPS, profiles=PROFILES))
    try:
        running.up()
        yield running
    finally:
        running.down()
        remove_dbg_accounts()
        remove_tree(root)
        for uid in UIDS.values():
            remove_tree(Path(f"/run/qhub-hub/{uid}"))


async def debug_request(kernel: Kernel, command: str, arguments: dict, timeout: float = 60) -> dict:
    """A DAP request through the kernel's control channel, as JupyterLab's debugger sends it."""
    msg_id = uuid.uuid4().hex
    kernel.conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": kernel.user, "session": uuid.uuid4().hex,
                   "msg_type": "debug_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "control",
        "content": {"seq": 1, "type": "request", "command": command, "arguments": arguments}}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(kernel.conn.read_message(), deadline - time.monotonic())
        assert raw is not None, "kernel websocket closed"
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "debug_reply":
            return msg["content"]
    raise AssertionError(f"no debug_reply to {command!r} in {timeout}s")


def listening_ports(uid: int) -> set[int]:
    """TCP ports in LISTEN state whose socket belongs to `uid` (the kernel's socket tables)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[7]) == uid:
                found.add(int(fields[1].rsplit(":", 1)[1], 16))
    return found


def kernel_pids(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and b"ipykernel" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


UNGUARDED = r"""
import os, subprocess, sys
server = '''
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello"); c.close()
'''
env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
unguarded = subprocess.Popen([sys.executable, "-c", server], env=env, stdout=subprocess.PIPE, text=True)
print("UNGUARDED", unguarded.stdout.readline().strip(), "END")
"""


def test_bob_gets_nothing_from_carols_debugger_and_carol_debugs(platform: Platform) -> None:
    carol_token = platform.token_for("dbgcarol")
    platform.start_server("dbgcarol")
    carol, bob = UIDS["dbgcarol"], UIDS["dbgbob"]
    before = listening_ports(carol)  # her Jupyter server's port (it answers only with her hub token)

    async def run() -> tuple[dict, int, int]:
        # JupyterLab's debugger: initialize on the control channel starts debugpy in the kernel
        lab = await Kernel(platform, "dbgcarol", carol_token).start()
        assert "ready" in await lab.execute("print('ready')", "ready")
        reply = await debug_request(lab, "initialize", {
            "clientID": "jupyterlab", "clientName": "JupyterLab", "adapterID": "python",
            "pathFormat": "path", "linesStartAt1": True, "columnsStartAt1": True,
            "supportsVariableType": True, "supportsVariablePaging": True,
            "supportsRunInTerminalRequest": True, "locale": "en"})
        # and a kernel calling debugpy.listen itself, then starting a listener without the guard
        own = await Kernel(platform, "dbgcarol", carol_token).start()
        out = await own.execute("import debugpy\nprint('DEBUGPY', debugpy.listen(('127.0.0.1', 0))[1], 'END')",
                                "END")
        port = int(out.split("DEBUGPY", 1)[1].split()[0])
        out = await own.execute(UNGUARDED, "END")
        unguarded = int(out.split("UNGUARDED", 1)[1].split()[0])
        return reply, port, unguarded

    reply, listen_port, unguarded_port = asyncio.run(run())
    # carol's debugger works through her kernel: debugpy's own answer to initialize
    assert reply.get("success") is True and reply.get("command") == "initialize", reply
    assert reply.get("body", {}).get("supportsConfigurationDoneRequest") is True, reply
    for pid in kernel_pids(carol):  # every kernel of carol's runs with the guard preloaded
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert any(e.startswith(b"LD_PRELOAD=") and b"peer-guard-" in e for e in environ), pid

    # every TCP port carol's processes listen on now but the control listener: debugpy's adapters'
    # client and server ports of both kernels
    debugger_ports = sorted(listening_ports(carol) - before - {unguarded_port})
    assert listen_port in debugger_ports and len(debugger_ports) >= 3, debugger_ports
    by_bob = probe_as(bob, [*debugger_ports, unguarded_port])
    assert all(refused(by_bob[p]) for p in debugger_ports), by_bob
    assert "hello" in by_bob[unguarded_port], by_bob  # the probe reads what is not guarded
    # carol herself connects to the debugpy she started and gets its DAP answer
    by_carol = probe_as(carol, [listen_port])
    assert dap_initialized(by_carol[listen_port]), by_carol
    # and bob, trying again while carol is connected, still gets nothing
    assert refused(probe_as(bob, [listen_port])[listen_port])
