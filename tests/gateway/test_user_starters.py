"""A user's Dask starter is the user's own process: the gateway checks what it says before acting.

`UserStarter` and `UserStarters` against real processes: fake starters (scripts speaking the
starter's protocol on the socket the gateway gives them) that lie, stall, break or behave, run as
an unprivileged uid (42351, no account needed); and the real `server_starter.py --as-user`, which
refuses to run as root or without the gateway's socket. The real starter forking real clusters is
in test_preimported.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qhub_hub.gateway import user_starters
from qhub_hub.gateway.user_starters import Identity, UserStarter, UserStarterFailed, UserStarters
from qhub_hub.local.server_starter import StartRequest

from .harness import base_folder, remove_tree

USER = Identity(42351, 42350, (), "gwus")

FAKE_HEAD = f"""#!{sys.executable}
import json, os, signal, socket, subprocess, sys, time
with open(os.path.join(os.path.dirname(sys.argv[0]), f"starts-{{os.getuid()}}"), "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
conn = socket.socket(fileno=0)
"""
ANSWERS = {
    # the pid the test passed in HOME, one of the few variables a starter keeps (root's process)
    "foreign": 'conn.sendall(json.dumps({"pid": int(os.environ["HOME"])}).encode() + b"\\n")',
    # its own child, running
    "running": 'child = subprocess.Popen(["sleep", "60"])\n'
               '    conn.sendall(json.dumps({"pid": child.pid}).encode() + b"\\n")',
    # its own child, stopped before anything of it ran: what the real starter does
    "held": 'child = subprocess.Popen(["sh", "-c", "kill -STOP $$; echo resumed > " + sys.argv[0] + ".out"])\n'
            '    while not open(f"/proc/{child.pid}/stat").read().split(") ")[1].startswith("T"):\n'
            '        time.sleep(0.01)\n'
            '    conn.sendall(json.dumps({"pid": child.pid}).encode() + b"\\n")',
    # the same, answered late (after writing the child's pid where the test finds it)
    "late": 'child = subprocess.Popen(["sh", "-c", "kill -STOP $$; echo resumed > " + sys.argv[0] + ".out"])\n'
            '    open(sys.argv[0] + ".pid", "w").write(str(child.pid))\n'
            '    time.sleep(1)\n'
            '    conn.sendall(json.dumps({"pid": child.pid}).encode() + b"\\n")',
    "garbage": 'conn.sendall(b"this is not JSON\\n")',
    "endless": 'conn.sendall(b"x" * 200000)',
    "silent": 'time.sleep(60)',
    "refusal": 'conn.sendall(b\'{"error": "cannot enter /w as uid 42351 (Permission denied)"}\\n\')',
}


@pytest.fixture
def folder(require_root):
    base = base_folder("qhub-gwus-")
    base.chmod(0o1777)  # the fakes (two uids) write what they did here
    yield base
    remove_tree(base)


def fake_starter(folder: Path, answer: str, ready: bool = True) -> str:
    script = FAKE_HEAD + ('conn.sendall(b"ready\\n")\n' if ready else 'sys.exit(3)\n')
    script += f"for line in conn.makefile('rb'):\n    {ANSWERS[answer]}\n"
    path = folder / f"python-{answer}"
    path.write_text(script)
    path.chmod(0o755)
    return str(path)


def request() -> StartRequest:
    return StartRequest(argv=["-m", "dask", "scheduler"], env={}, cwd="/", uid=USER.uid, gid=USER.gid,
                        groups=[])


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]


async def started(python: str, env: dict[str, str] | None = None) -> UserStarter:
    starter = UserStarter(python, USER, env or {"HOME": "/"})
    await starter.start()
    return starter


async def test_a_held_child_of_the_starter_is_checked_and_resumed(folder: Path) -> None:
    starter = await started(fake_starter(folder, "held"))
    try:
        pid = await starter.start_process(request())
        assert state(pid) == "T"
        starter.release(pid, ())
        deadline = time.monotonic() + 10
        while not Path(f"{folder}/python-held.out").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert Path(f"{folder}/python-held.out").read_text() == "resumed\n"
        # started as exactly the user, in the environment's Python, with the starter's arguments
        assert (folder / "starts-42351").read_text() == (
            f"-P {user_starters.STARTER_FILE} --as-user --preimport qhub_hub.gateway.dask_preimport\n")
    finally:
        await starter.stop()
    assert starter.proc is not None and starter.proc.returncode is not None


async def test_a_pid_that_is_not_its_stopped_child_is_refused_and_left_alone(folder: Path) -> None:
    """The starter names root's process (a pid anybody can see): the gateway does not move, resume
    or kill it. A running child of its own is refused too (it may already be running its code)."""
    victim = subprocess.Popen(["sleep", "60"])
    try:
        victim.send_signal(signal.SIGSTOP)
        while state(victim.pid) != "T":
            time.sleep(0.01)
        starter = await started(fake_starter(folder, "foreign"), {"HOME": str(victim.pid)})
        try:
            pid = await starter.start_process(request())
            assert pid == victim.pid
            with pytest.raises(UserStarterFailed, match=rf"named process {victim.pid}, which is not its "
                                                        r"stopped child as uid 42351: its parent is .*its uids"):
                starter.release(pid, ("/nonexistent-cgroup",))
            assert state(victim.pid) == "T" and victim.poll() is None
        finally:
            await starter.stop()
    finally:
        victim.kill()
        victim.wait()
    starter = await started(fake_starter(folder, "running"))
    try:
        pid = await starter.start_process(request())
        with pytest.raises(UserStarterFailed, match="it is not stopped"):
            starter.release(pid, ())
        assert state(pid) in "SR"
        os.kill(pid, signal.SIGKILL)  # the fake's child, left running by the gateway
    finally:
        await starter.stop()


@pytest.mark.parametrize(("answer", "message"), [
    ("garbage", "the starter answered b'this is not JSON"),
    ("endless", "the starter's answer was unreadable"),
    ("silent", "the starter took over 1 s to answer"),
])
async def test_answers_that_break_the_protocol_are_refused(folder: Path, monkeypatch, answer: str,
                                                           message: str) -> None:
    monkeypatch.setattr(user_starters, "ANSWER_TIMEOUT", 1.0)
    starter = await started(fake_starter(folder, answer))
    try:
        with pytest.raises(UserStarterFailed, match=message):
            await starter.start_process(request())
    finally:
        await starter.stop()


async def test_a_refusal_of_the_child_is_the_starts_error(folder: Path) -> None:
    from qhub_hub.local.starter_client import StarterError

    starter = await started(fake_starter(folder, "refusal"))
    try:
        with pytest.raises(StarterError, match=r"cannot enter /w as uid 42351 \(Permission denied\)"):
            await starter.start_process(request())
    finally:
        await starter.stop()


async def test_a_starter_that_cannot_start_is_not_tried_again_until_its_environment_changes(
        folder: Path, caplog) -> None:
    log = logging.getLogger("test-user-starters")
    made: list[tuple[str, ...]] = []
    starters = UserStarters(600, lambda identity, python: made.append((identity.name, python)) or (),
                            lambda dirs: None, log=log)
    python = fake_starter(folder, "held", ready=False)
    with caplog.at_level(logging.INFO, logger=log.name):
        assert await starters.get(python, USER, {"HOME": "/"}, ("layout", 1)) is None
        assert await starters.get(python, USER, {"HOME": "/"}, ("layout", 1)) is None
        assert len((folder / "starts-42351").read_text().splitlines()) == 1
        assert await starters.get(python, USER, {"HOME": "/"}, ("layout", 2)) is None
    assert len((folder / "starts-42351").read_text().splitlines()) == 2
    assert made == [("gwus", python)] * 2
    assert "No pre-imported Dask starter for uid 42351 in " in caplog.text
    assert "its clusters start new Pythons" in caplog.text


async def test_starters_are_kept_per_user_and_environment_and_replaced_or_stopped(folder: Path) -> None:
    released: list[tuple[str, ...]] = []

    def cgroup(identity: Identity, python: str) -> tuple[str, ...]:  # a folder standing in for one
        path = folder / f"cg-{identity.uid}"
        path.mkdir(exist_ok=True)
        return (str(path),)

    starters = UserStarters(600, cgroup, released.append)
    python = fake_starter(folder, "held")
    first = await starters.get(python, USER, {"HOME": "/"}, ("layout", 1))
    assert first is not None and first.alive and first.cgroup_dirs == (f"{folder}/cg-42351",)
    assert (folder / "cg-42351" / "cgroup.procs").read_text() == str(first.proc.pid)  # before exec
    assert await starters.get(python, USER, {"HOME": "/"}, ("layout", 1)) is first
    other_user = Identity(42352, 42350, (), "gwus2")
    second = await starters.get(python, other_user, {"HOME": "/"}, ("layout", 1))
    assert second is not None and second is not first
    # the environment changed on disk: a new starter; the old one ends and its cgroup is released
    third = await starters.get(python, USER, {"HOME": "/"}, ("layout", 2))
    assert third is not None and third is not first and not first.alive
    assert released == [(f"{folder}/cg-42351",)]
    # the user's groups changed (a new plan): a new starter as well
    regrouped = Identity(USER.uid, USER.gid, (42353,), USER.name)
    fourth = await starters.get(python, regrouped, {"HOME": "/"}, ("layout", 2))
    assert fourth is not None and fourth is not third and not third.alive
    # idle ones are stopped; the gateway's end stops the rest
    starters.idle_timeout = 0
    fourth.last_used = second.last_used = time.monotonic() - 1
    await starters.stop_idle()
    assert not fourth.alive and not second.alive
    assert await starters.get(python, USER, {"HOME": "/"}, ("layout", 2)) is not fourth
    await starters.stop_all()
    assert len(released) == 5


async def test_a_start_cancelled_before_its_answer_retires_the_starter(folder: Path) -> None:
    """The cluster stopped while its process was being forked: the late answer must not be taken
    for the next request's, and the process forked for nobody must not run."""
    starters = UserStarters(600, lambda identity, python: (), lambda dirs: None)
    python = fake_starter(folder, "late")
    starter = await starters.get(python, USER, {"HOME": "/"}, ("layout", 1))
    assert starter is not None
    task = asyncio.ensure_future(starter.start_process(request()))
    pid_file = Path(python + ".pid")
    while not pid_file.exists():
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not starter.alive and "before its answer was read" in starter.broken
    replacement = await starters.get(python, USER, {"HOME": "/"}, ("layout", 1))
    assert replacement is not None and replacement is not starter
    assert starter.proc is not None and starter.proc.returncode is not None
    orphan = int(pid_file.read_text())  # never resumed (the real starter's die with it: below)
    assert state(orphan) == "T" and not Path(python + ".out").exists()
    os.kill(orphan, signal.SIGKILL)
    await starters.stop_all()


def real_request(folder: Path, script: str) -> StartRequest:
    path = folder / "process.py"
    path.write_text(script)
    path.chmod(0o644)
    return StartRequest(argv=[str(path)], env={"HOME": str(folder), "PATH": "/usr/bin:/bin"},
                        cwd=str(folder), uid=USER.uid, gid=USER.gid, groups=[])


async def test_the_real_starter_holds_each_child_until_released_and_it_dies_unreleased(folder: Path) -> None:
    """`server_starter.py --as-user` in a real environment (the platform's own, run as uid 42351):
    a child runs nothing until the gateway resumes it; resumed, it outlives its starter; never
    resumed, it ends with its starter instead of staying stopped."""
    script = ("import os, sys, time\ntime.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)\n"
              "open(os.path.join(os.getcwd(), f'ran-{os.getpid()}'), 'w').write(repr(os.getresuid()))\n")
    starter = await started(sys.executable, {"HOME": str(folder)})
    try:
        held = await starter.start_process(real_request(folder, script))
        await asyncio.sleep(1)
        assert state(held) == "T" and not (folder / f"ran-{held}").exists()
        released = await starter.start_process(real_request(folder, script))
        starter.release(released, ())
        assert held_pid_alive(held)
    finally:
        await starter.stop()
    deadline = time.monotonic() + 10
    while held_pid_alive(held) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not held_pid_alive(held)  # killed with its starter (PR_SET_PDEATHSIG), never ran
    while not (folder / f"ran-{released}").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert (folder / f"ran-{released}").read_text() == "(42351, 42351, 42351)"
    assert not (folder / f"ran-{held}").exists()


def held_pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and state(pid) != "Z"


def test_the_real_starter_refuses_root_and_any_fd_0_but_roots_socket(require_root) -> None:
    from qhub_hub.local import server_starter

    command = [sys.executable, "-P", server_starter.__file__, "--as-user", "--preimport",
               "qhub_hub.gateway.dask_preimport"]
    as_root = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert as_root.returncode != 0 and "--as-user: never as root" in as_root.stderr

    def as_user() -> None:
        os.setgroups([])
        os.setresgid(USER.gid, USER.gid, USER.gid)
        os.setresuid(USER.uid, USER.uid, USER.uid)

    piped = subprocess.run(command, input="", capture_output=True, text=True, timeout=60,
                           preexec_fn=as_user, cwd="/")
    assert piped.returncode != 0 and "fd 0 must be root's socket" in piped.stderr, piped.stderr
