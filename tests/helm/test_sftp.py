"""SFTP with the qhub accounts: files land with the user's own uid, and a token only opens its
owner's home (the upstream check accepts any valid token for any login name).

accounts.py runs as the SFTP pod's init container does; the token check runs as PAM's pam_exec
runs it (PAM_USER in the environment, the password on stdin ending in NUL) against a real
JupyterHub, and really bind-mounts the home into the chroot (as root, in temporary folders).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qhub_hub.config import load_config
from qhub_hub.policy import plan_for
from tests.support.hub import HubProcess

from . import chart

FILES = chart.CHART / "files" / "sftp"
VERIFY = FILES / "jupyterhub-token-verify.py"


def mounted(path: Path) -> bool:
    return any(line.split()[4] == os.path.realpath(path) for line in Path("/proc/self/mountinfo").open())


def write_accounts(config: dict, out: Path) -> dict:
    config_file = out / "qhub-config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, str(FILES / "accounts.py"), str(out / "accounts")],
                            env={**os.environ, "QHUB_CONFIG": str(config_file)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "accounts" / "accounts.json").read_text())


def test_accounts_are_the_plans_of_the_listed_users(tmp_path):
    data = yaml.safe_load(chart.EXAMPLE_CONFIG.read_text())
    data["security"]["users"]["Dr.Who@example.org"] = {"uid": 3099, "primary_group": "users",
                                                      "secondary_groups": ["ml"]}
    accounts = write_accounts(data, tmp_path)
    config = load_config(data)
    passwd = (tmp_path / "accounts" / "passwd").read_text().splitlines()
    group = (tmp_path / "accounts" / "group").read_text().splitlines()
    assert len(passwd) == len(accounts) == len(config.security.users)
    for username in config.security.users:
        plan = plan_for(config, username)
        account = accounts[plan.unix_name]
        assert account == {"hub_user": username, "uid": plan.uid, "gid": plan.gid,
                           "home": plan.unix_name, "mode": plan.home.mode}
        assert f"{plan.unix_name}:x:{plan.uid}:{plan.gid}:qhub user:{plan.home.path}:/usr/sbin/nologin" in passwd
    escaped = plan_for(config, "Dr.Who@example.org").unix_name
    assert "--" in escaped and accounts[escaped]["hub_user"] == "Dr.Who@example.org"
    by_name = {line.split(":")[0]: line.split(":") for line in group}
    assert by_name["ml"][2] == "2003"
    assert set(by_name["ml"][3].split(",")) == {"carol", "dave", escaped}
    assert by_name["analysts"][3].split(",") == ["alice", "bob"]  # erin reads it only: no membership


def test_start_script_and_nsswitch(tmp_path):
    assert subprocess.run(["sh", "-n", str(FILES / "start.sh")]).returncode == 0
    lines = [line.split() for line in (FILES / "nsswitch.conf").read_text().splitlines()
             if line and not line.startswith("#")]
    databases = {fields[0].rstrip(":"): fields[1:] for fields in lines}
    assert databases["passwd"] == databases["group"] == databases["shadow"] == ["files"]


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts and chown need root")


@pytest.fixture(scope="module")
def hub_with_tokens(tmp_path_factory):
    """A real hub with alice and bob, and an API token of each."""
    hub = HubProcess(tmp_path_factory.mktemp("hub"), extra_config='c.JupyterHub.authenticator_class = "dummy"')
    hub.start()
    try:
        tokens = {}
        for name in ("alice", "bob"):
            assert hub.api("POST", f"/users/{name}")[0] == 201
            status, token = hub.api("POST", f"/users/{name}/tokens", {"note": "sftp"})
            assert status == 201
            tokens[name] = token["token"]
        yield hub, tokens
    finally:
        hub.stop()


@pytest.fixture
def sftp_world(tmp_path, hub_with_tokens):
    """The accounts files of the example config and empty storage folders, as in the SFTP pod."""
    hub, tokens = hub_with_tokens
    accounts = write_accounts(yaml.safe_load(chart.EXAMPLE_CONFIG.read_text()), tmp_path)
    homes, chroots = tmp_path / "homes", tmp_path / "chroots"
    homes.mkdir()
    chroots.mkdir()
    (tmp_path / "hubUrl").write_text(hub.url + "\n")
    try:
        yield {"accounts": accounts, "tokens": tokens, "homes": homes, "chroots": chroots, "dir": tmp_path}
    finally:
        for mount in sorted(chroots.glob("*/*"), reverse=True):
            while mounted(mount):
                subprocess.run(["umount", str(mount)], check=True)


def login(world, user: str, password: str) -> int:
    """Run the check as pam_exec does: PAM_USER set, `password\\0` on stdin, the PAM line's args."""
    args = [sys.executable, str(VERIFY), "--hub-url-file", str(world["dir"] / "hubUrl"),
            "--accounts", str(world["dir"] / "accounts" / "accounts.json"),
            "--homes", str(world["homes"]), "--chroots", str(world["chroots"])]
    result = subprocess.run(args, input=password + "\x00", text=True, timeout=60, capture_output=True,
                            env={"PAM_USER": user, "PATH": os.environ["PATH"]})
    return result.returncode


@needs_root
def test_a_token_opens_its_owners_home_as_the_owner(sftp_world):
    world = sftp_world
    assert login(world, "alice", world["tokens"]["alice"]) == 0
    home = world["homes"] / "alice"
    info = home.stat()
    alice = world["accounts"]["alice"]
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (alice["uid"], alice["gid"], 0o700)
    target = world["chroots"] / "alice" / "alice"
    assert mounted(target)
    chroot = (world["chroots"] / "alice").stat()
    assert chroot.st_uid == 0 and stat.S_IMODE(chroot.st_mode) == 0o755  # sshd's ChrootDirectory rule
    (target / "uploaded.txt").write_text("via sftp")
    assert (home / "uploaded.txt").read_text() == "via sftp"
    # a second login reuses the mount (no second mount stacked on it)
    assert login(world, "alice", world["tokens"]["alice"]) == 0
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").open()]
    assert points.count(os.path.realpath(target)) == 1


@needs_root
def test_a_token_never_opens_someone_elses_home(sftp_world):
    world = sftp_world
    assert login(world, "alice", world["tokens"]["bob"]) == 1
    assert not (world["chroots"] / "alice").exists() and not (world["homes"] / "alice").exists()


@needs_root
@pytest.mark.parametrize("user,password", [
    ("alice", "not-a-token"),
    ("alice", ""),
    ("jovyan", "TOKEN"),          # an image account, not a qhub one: never a shared uid
    ("../alice", "TOKEN"),
    ("frank", "TOKEN"),           # a qhub account, but the token is alice's
])
def test_refusals(sftp_world, user, password):
    world = sftp_world
    token = world["tokens"]["alice"] if password == "TOKEN" else password
    assert login(world, user, token) == 1
    assert list(world["chroots"].iterdir()) == []
