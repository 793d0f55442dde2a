"""`qhub-hub local up` on real users: ids in servers, shared folders, SSH, restart, down.

One platform for the module (own config in the lt* range, state dir, free ports); the tests run in
file order and build on each other's servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import pytest

from qhub_hub.local.settings import PlatformSettings
from qhub_hub.local.ssh import PAM_DIR

from .support import running_platform

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

PLAN_IDS = {
    "ltalice": "uid=41001(ltalice) gid=41100(ltusers) groups=41100(ltusers),41101(ltanalysts)",
    "ltbob": "uid=41002(ltbob) gid=41100(ltusers) groups=41100(ltusers),41101(ltanalysts),41102(ltml)",
    "lterin": "uid=41003(lterin) gid=41100(ltusers) groups=41100(ltusers)",
    "ltfrank": "uid=41004(ltfrank) gid=41100(ltusers) groups=41100(ltusers)",
}
PROFILES = {"ltalice": "analyst", "ltbob": "ml", "lterin": "small", "ltfrank": None}


@pytest.fixture(scope="module")
def platform():
    with running_platform("platform", ssh={"enabled": True}, dask_gateway={"enabled": True}) as platform:
        yield platform


@pytest.fixture(scope="module")
def tokens(platform):
    return {name: platform.token_for(name) for name in PLAN_IDS}


@pytest.fixture(scope="module")
def servers(platform, tokens):
    for name, profile in PROFILES.items():  # all at once: the hub starts them concurrently
        status, body = platform.api("POST", f"/users/{name}/server", {"profile": profile} if profile else {})
        assert status in (201, 202), (name, status, body)
    return {name: platform.wait_ready(name) for name in PROFILES}


def server_state(platform, name: str) -> dict:
    status, model = platform.api("GET", f"/users/{name}")
    return model["servers"][""]["state"]


def test_up_provisions_accounts_and_starts_every_component(platform):
    status = platform.cli("status")
    lines = status.stdout.splitlines()
    for component in ("proxy", "hub", "dask-gateway", "sshd"):
        assert any(re.match(rf"\s+{component}\s+running, pid \d+", line) for line in lines), status.stdout
    # accounts and folders exist before anyone logs in (SSH works from the start)
    ids = subprocess.run(["id", "ltbob"], capture_output=True, text=True).stdout.strip()
    assert ids == PLAN_IDS["ltbob"]
    assert (platform.root / "home" / "ltfrank").is_dir()
    settings = PlatformSettings.load(platform.state_dir)
    assert (PAM_DIR / f"qhub-sshd-{settings.instance}").exists()


def test_profiles_are_enforced_on_the_server(platform, tokens):
    status, body = platform.api("POST", "/users/ltalice/server", {"profile": "ml"})
    assert (status, body["message"]) == (403, "'ltalice' may not use the profile 'ml'. Profiles you "
                                              "may use: small, analyst.")
    status, body = platform.api("POST", "/users/ltalice/server", {"profile": "huge"})
    assert status == 400 and "There is no profile 'huge'" in body["message"]


async def test_servers_run_with_the_plan_ids(platform, tokens, servers):
    for name, expected in PLAN_IDS.items():
        code, out = await platform.terminal(name, tokens[name], "id")
        assert (code, out.strip()) == (0, expected)


def test_profile_resources_are_the_server_cgroup(platform, servers):
    state = server_state(platform, "ltbob")
    memory = next(d for d in state["cgroups"] if "/memory/" in d)
    cpu = next(d for d in state["cgroups"] if "/cpu/" in d)
    assert Path(memory, "memory.limit_in_bytes").read_text().strip() == str(4 * 2**30)
    assert Path(memory, "memory.soft_limit_in_bytes").read_text().strip() == str(2**30)
    assert Path(cpu, "cpu.cfs_quota_us").read_text().strip() == "200000"
    assert str(state["pid"]) in Path(memory, "cgroup.procs").read_text().split()


async def test_group_notebooks_through_jupyter(platform, tokens, servers):
    nb = {"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    path = "api/contents/shared/ltanalysts/analysis.ipynb"
    status, _ = platform.server_request("ltalice", tokens["ltalice"], "PUT", path, nb)
    assert status == 201
    status, _ = platform.server_request("ltalice", tokens["ltalice"], "POST", f"{path}/checkpoints")
    assert status == 201
    # bob (member) saves over alice's notebook and checkpoints it in alice's .ipynb_checkpoints
    nb["content"]["metadata"] = {"edited_by": "bob"}
    assert platform.server_request("ltbob", tokens["ltbob"], "PUT", path, nb)[0] == 200
    assert platform.server_request("ltbob", tokens["ltbob"], "POST", f"{path}/checkpoints")[0] == 201
    # erin (read-only member) reads it, cannot save it
    status, model = platform.server_request("lterin", tokens["lterin"], "GET", path)
    assert status == 200 and model["content"]["metadata"] == {"edited_by": "bob"}
    status, body = platform.server_request("lterin", tokens["lterin"], "PUT", path, nb)
    assert status == 403 and "Permission denied" in body["message"]
    # frank (not a member) can neither read it nor list the folder
    status, body = platform.server_request("ltfrank", tokens["ltfrank"], "GET", path)
    assert status in (403, 404, 500) and "edited_by" not in json.dumps(body)
    code, out = await platform.terminal("ltfrank", tokens["ltfrank"], f"ls {platform.root}/shared/ltanalysts")
    assert code == 2 and "Permission denied" in out
    # bob's ml folder is out of alice's reach; alice's home is out of bob's
    code, out = await platform.terminal("ltalice", tokens["ltalice"], f"touch {platform.root}/shared/ltml/x")
    assert code == 1 and "Permission denied" in out
    code, out = await platform.terminal("ltbob", tokens["ltbob"], f"cat {platform.root}/home/ltalice/.bashrc")
    assert code == 1 and "Permission denied" in out
    ckpt = platform.root / "shared/ltanalysts/.ipynb_checkpoints/analysis-checkpoint.ipynb"
    assert (ckpt.stat().st_gid, ckpt.stat().st_mode & 0o777) == (41101, 0o660)


async def test_server_environment(platform, tokens, servers):
    # a JupyterLab terminal is a login shell (/etc/profile resets PATH): the profile hook restores
    # the server's environment; the server's Python environment is not writable by the user
    code, out = await platform.terminal("ltbob", tokens["ltbob"], (
        "echo $QHUB_USER $QHUB_GROUPS; echo $JUPYTERHUB_API_TOKEN | wc -c; python -c 'import site, os, sys; "
        "print(sys.prefix, os.access(site.getsitepackages()[0], os.W_OK))'"))
    assert code == 0, out
    assert out.split() == ["ltbob", "ltanalysts,ltml,ltusers", "33", sys.prefix, "False"]
    env_file = platform.state_dir / "sessions" / "41002.env"
    assert "TOKEN" not in env_file.read_text() and env_file.stat().st_uid == 41002


async def test_dask_gateway_needs_no_arguments_in_a_server(platform, tokens, servers):
    code, out = await platform.terminal("ltalice", tokens["ltalice"], (
        "python -c 'from dask_gateway import Gateway; g = Gateway(); print(g.address, g.list_clusters())'"),
        timeout=60)
    assert code == 0, out
    assert re.search(r"http://127\.0\.0\.1:\d+/services/dask-gateway \[\]", out), out


def ssh_options(platform, **kw):
    return dict(host="127.0.0.1", port=platform.ssh_port, known_hosts=None, **kw)


async def ssh_refused(platform, **kw) -> bool:
    try:
        async with asyncssh.connect(**ssh_options(platform, **kw)):
            return False
    except (asyncssh.PermissionDenied, asyncssh.ConnectionLost):
        # a refused password is PermissionDenied; after an accepted key, PAM's account step
        # refusing makes sshd drop the connection
        return True


async def test_ssh_token_login_runs_as_the_user_with_the_server_environment(platform, tokens, servers):
    async with asyncssh.connect(**ssh_options(platform, username="ltbob", password=tokens["ltbob"])) as conn:
        result = await conn.run("id; echo $QHUB_GROUPS; pwd", check=True)
        assert result.stdout.splitlines() == [PLAN_IDS["ltbob"], "ltanalysts,ltml,ltusers",
                                              str(platform.root / "home" / "ltbob")]
        # an interactive login shell (as VS Code's terminal or `ssh host`) gets the same PATH
        shell = await conn.create_process(term_type="xterm")
        shell.stdin.write("echo PATH=$PATH; exit\n")
        output = await asyncio.wait_for(shell.stdout.read(), 30)
        assert re.search(rf"PATH={re.escape(sys.prefix)}/bin:", output), output
        async with conn.start_sftp_client() as sftp:
            async with sftp.open("shared/ltml/from-sftp.txt", "w") as f:
                await f.write("via sftp")
    written = platform.root / "shared" / "ltml" / "from-sftp.txt"
    st = written.stat()
    assert (st.st_uid, st.st_gid, written.read_text()) == (41002, 41102, "via sftp")


async def test_ssh_refuses_wrong_tokens_and_users_the_config_does_not_admit(platform, tokens):
    assert await ssh_refused(platform, username="ltbob", password="0" * 32)
    assert await ssh_refused(platform, username="ltbob", password=tokens["ltalice"])
    assert await ssh_refused(platform, username="root", password=tokens["ltalice"])
    # a hub user with a valid token and a Unix account, but not in the config
    subprocess.run(["useradd", "-u", "41050", "-g", "41100", "-M", "-d", str(platform.root / "home/ltstranger"),
                    "-s", "/bin/bash", "ltstranger"], check=True)
    stranger_token = platform.token_for("ltstranger")
    assert await ssh_refused(platform, username="ltstranger", password=stranger_token)
    log = (platform.state_dir / "logs" / "ssh-check.log").read_text()
    assert "account 'ltstranger' from 127.0.0.1: refused: the config does not admit 'ltstranger'" in log
    assert "the token belongs to hub user 'ltalice', not to the account 'ltbob'" in log


async def test_ssh_public_keys_and_the_openssh_client(platform, tmp_path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    for name in ("ltalice", "ltstranger"):
        ssh_dir = platform.root / "home" / name / ".ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(key.export_public_key().decode())
        uid = 41001 if name == "ltalice" else 41050
        for p in (ssh_dir.parent, ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(p, uid, 41100)
        os.chmod(ssh_dir, 0o700)
        os.chmod(ssh_dir.parent, 0o700)
    assert await ssh_refused(platform, username="ltstranger", client_keys=[key])
    sshd_log = (platform.state_dir / "logs" / "sshd.log").read_text()
    assert "Access denied for user ltstranger by PAM account configuration" in sshd_log
    identity = tmp_path / "id_ed25519"
    identity.write_bytes(key.export_private_key())
    identity.chmod(0o600)
    (tmp_path / "hello.txt").write_text("hello from OpenSSH sftp")
    (tmp_path / "batch").write_text(f"put {tmp_path / 'hello.txt'} hello.txt\n")
    common = ["-i", str(identity), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
              "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
    sftp = subprocess.run(["sftp", *common, "-P", str(platform.ssh_port), "-b", str(tmp_path / "batch"),
                           "ltalice@127.0.0.1"], capture_output=True, text=True, timeout=60)
    assert sftp.returncode == 0, sftp.stderr
    uploaded = platform.root / "home" / "ltalice" / "hello.txt"
    assert (uploaded.stat().st_uid, uploaded.read_text()) == (41001, "hello from OpenSSH sftp")
    ssh = subprocess.run(["ssh", *common, "-p", str(platform.ssh_port), "ltalice@127.0.0.1", "id"],
                         capture_output=True, text=True, timeout=60)
    assert (ssh.returncode, ssh.stdout.strip()) == (0, PLAN_IDS["ltalice"]), ssh.stderr


async def test_hub_restart_keeps_servers_running_and_reachable(platform, tokens, servers):
    pids = {name: server_state(platform, name)["pid"] for name in PLAN_IDS}
    hub_pid = int((platform.state_dir / "run" / "hub.pid").read_text())
    platform.cli("restart")
    assert int((platform.state_dir / "run" / "hub.pid").read_text()) != hub_pid
    for name, pid in pids.items():
        model = platform.wait_ready(name, timeout=30)
        assert model["servers"][""]["state"]["pid"] == pid
        os.kill(pid, 0)
        status, _ = platform.server_request(name, tokens[name], "GET", "api/status")
        assert status == 200
    code, out = await platform.terminal("ltalice", tokens["ltalice"], "id")
    assert (code, out.strip()) == (0, PLAN_IDS["ltalice"])


def test_down_stops_servers_and_everything_else(platform, servers):
    pids = {name: server_state(platform, name)["pid"] for name in PLAN_IDS}
    settings = PlatformSettings.load(platform.state_dir)
    down = platform.down()
    assert down.returncode == 0, down.stderr
    assert "qhub-hub is down" in down.stdout
    time.sleep(0.5)
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    leftovers = subprocess.run(["pgrep", "-u", "41001,41002,41003,41004"], capture_output=True, text=True)
    assert leftovers.stdout == ""
    assert not (PAM_DIR / f"qhub-sshd-{settings.instance}").exists()
    for port in (platform.port, platform.ssh_port, settings.hub_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert platform.cli("status", check=False).returncode == 3
