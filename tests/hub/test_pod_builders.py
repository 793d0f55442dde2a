"""The pure pod builders, and the init container's script run for real (POSIX sh, as root) on a
directory tree standing in for the shared volume: real owners and modes."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from qhub_hub.config import load_config
from qhub_hub.pod import folders, group_content, init_container, passwd_content, pod_security_context
from qhub_hub.policy import plan_for
from tests.conftest import EXAMPLE_CONFIG
from tests.hub.conftest import example_data

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to other uids needs root")


@pytest.fixture(scope="module")
def config():
    return load_config(EXAMPLE_CONFIG)


def test_security_context_includes_read_only_gids(config):
    erin = plan_for(config, "erin")
    assert pod_security_context(erin) == {
        "runAsUser": 3005, "runAsGroup": 2005, "supplementalGroups": [2001, 2004],
        "fsGroup": 2005, "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}}


def test_nss_files(config):
    alice = plan_for(config, "alice")
    assert passwd_content(alice) == ("root:x:0:0:root:/root:/bin/sh\n"
                                     "alice:x:3001:2005:alice:/home/alice:/bin/bash")
    assert group_content(alice) == ("root:x:0:\nadmin:x:2000:alice\nanalysts:x:2001:alice\nusers:x:2005:")


def test_hostile_username_cannot_add_passwd_lines(config):
    data = example_data()
    data["security"]["allow_unlisted_users"] = True
    open_config = load_config(data)
    plan = plan_for(open_config, "evil\nroot:x:0:0::/:/bin/sh")
    lines = passwd_content(plan).split("\n")
    assert len(lines) == 2 and lines[1].split(":")[2:4] == [str(plan.uid), str(plan.gid)]


def k8s_expand(text: str) -> str:
    """What Kubernetes does to command/args/env with no $(VAR) reference to a defined variable."""
    return text.replace("$$", "$")


def run_init(plan, root: Path) -> subprocess.CompletedProcess:
    container = init_container(plan, "busybox", storage_path=str(root / "volume"), nss_path=str(root / "nss"))
    env = {e["name"]: k8s_expand(e["value"]) for e in container["env"]}
    command = [k8s_expand(c) for c in container["command"]] + [k8s_expand(a) for a in container["args"]]
    return subprocess.run(command, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True)


def owner_mode(path: Path) -> tuple[int, int, str]:
    st = path.lstat()
    return st.st_uid, st.st_gid, f"{stat.S_IMODE(st.st_mode):04o}"


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    (tmp_path / "volume").mkdir()
    (tmp_path / "nss").mkdir()
    return tmp_path


@needs_root
def test_init_creates_missing_folders_with_plan_owner_and_mode(config, volume):
    dave = plan_for(config, "dave")
    result = run_init(dave, volume)
    assert result.returncode == 0, result.stderr
    v = volume / "volume"
    assert owner_mode(v / "home") == (0, 0, "0755")
    assert owner_mode(v / "home" / "dave") == (3004, 2005, "0700")
    assert owner_mode(v / "shared") == (0, 0, "1777")
    assert owner_mode(v / "shared" / "ml") == (0, 2003, "2770")
    assert owner_mode(v / "shared" / "users") == (0, 2005, "2770")
    assert sorted(p.name for p in v.rglob("*")) == ["dave", "home", "ml", "shared", "users"]
    assert (volume / "nss" / "passwd").read_text() == passwd_content(dave) + "\n"
    assert (volume / "nss" / "group").read_text() == group_content(dave) + "\n"
    assert owner_mode(volume / "nss" / "passwd")[2] == "0644"
    # idempotent: a second run changes nothing
    assert run_init(dave, volume).stdout == ""


@needs_root
def test_init_never_loosens_a_home_and_sets_squatted_group_folders_aside(config, volume):
    dave = plan_for(config, "dave")
    v = volume / "volume"
    for sub in ("home", "home/dave", "shared", "shared/ml", "shared/users"):
        (v / sub).mkdir()
    os.chmod(v / "home", 0o755)
    os.chmod(v / "home" / "dave", 0o500)                   # tighter than 0700: kept
    os.chown(v / "home" / "dave", 3004, 2005)
    os.chmod(v / "shared", 0o1777)
    os.chmod(v / "shared" / "ml", 0o777)                   # looser: tightened, setgid added
    os.chown(v / "shared" / "ml", 0, 2003)
    os.chmod(v / "shared" / "users", 0o750)                # a user's folder under a group's name
    os.chown(v / "shared" / "users", 3006, 3006)
    result = run_init(dave, volume)
    assert result.returncode == 0, result.stderr
    assert owner_mode(v / "home" / "dave") == (3004, 2005, "0500")
    assert owner_mode(v / "shared" / "ml") == (0, 2003, "2770")
    # a user's folder under a group's name: set aside (still theirs), a fresh one for the group
    assert owner_mode(v / "shared" / "users") == (0, 2005, "2770")
    assert owner_mode(v / "shared" / "users.squatted-by-3006") == (3006, 3006, "0750")
    assert "shared/ml mode 777 -> 2770" in result.stdout


@needs_root
def test_init_refuses_a_symlink_where_a_folder_belongs(config, volume):
    dave = plan_for(config, "dave")
    v = volume / "volume"
    (v / "home").mkdir()
    (v / "shared").mkdir(mode=0o1777)
    (v / "secret").mkdir(mode=0o700)
    (v / "shared" / "ml").symlink_to("../secret")  # planted by someone with write access to /shared
    result = run_init(dave, volume)
    assert result.returncode == 1
    assert "shared/ml is not a directory (a symlink or a file); an admin must move it away" in result.stderr
    assert owner_mode(v / "secret") == (0, 0, "0700")


def test_folders_parents_first(config):
    assert [f[1] for f in folders(plan_for(config, "erin"))] == [
        "home", "home/erin", "shared", "shared/analysts", "shared/finance", "shared/users"]
