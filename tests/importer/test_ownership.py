"""`qhub-hub migrate-ownership` on real files, as root: a volume laid out as Nebari left it (every
file uid 1000, gid 100), a dry run that changes nothing, a real run that re-owns exactly the users'
homes and their groups' folders, and nothing else: not /shared/users, not files outside, never the
target of a symbolic link, never a file with a hard link elsewhere."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qhub_hub.config import load_config
from qhub_hub.importer import import_file
from qhub_hub.importer.ownership import MigrationError, migrate_ownership
from qhub_hub.naming import unix_name
from qhub_hub.policy import plan_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="re-owning files needs root (CI runs as root)")

DATA = Path(__file__).parent / "data"
NEBARI_UID, NEBARI_GID = 1000, 100
ODD_NAME = "bob.smith@example.org"  # Nebari's home folder name: the hub username, unescaped


@pytest.fixture
def config(tmp_path):
    result = import_file(DATA / "nebari-keycloak.yaml")
    path = tmp_path / "qhub-config.yaml"
    path.write_text(result.config_text())
    return path


def make(path: Path, *, uid=NEBARI_UID, gid=NEBARI_GID, mode=0o664, text="x", folder=False):
    if folder:
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


@pytest.fixture
def volume(tmp_path) -> Path:
    root = tmp_path / "volume"
    make(root / "outside", folder=True, mode=0o755)
    make(root / "outside" / "secret.txt")
    make(root / "outside" / "hard-target.txt")
    make(root / "elsewhere.txt")
    make(root / "home", folder=True, uid=0, gid=0, mode=0o755)
    alice = root / "home" / "alice"
    make(alice, folder=True, mode=0o755)
    make(alice / "notebook.ipynb")
    make(alice / "sub", folder=True, mode=0o775)
    make(alice / "sub" / "data.csv")
    make(alice / "root-owned.txt", uid=0, gid=0, mode=0o644)
    os.symlink(root / "outside" / "secret.txt", alice / "link-out")
    os.lchown(alice / "link-out", NEBARI_UID, NEBARI_GID)
    os.symlink(root / "outside", alice / "linkdir")
    os.link(root / "outside" / "hard-target.txt", alice / "hard.txt")
    bob = root / "home" / ODD_NAME
    make(bob, folder=True, mode=0o755)
    make(bob / "analysis.py")
    make(root / "shared", folder=True, uid=0, gid=0, mode=0o777)
    make(root / "shared" / "analyst", folder=True, mode=0o777)
    make(root / "shared" / "analyst" / "report.csv")
    os.symlink(root / "outside", root / "shared" / "developer")  # a config group's folder, as a link
    os.symlink(root / "outside", root / "home" / "mallory")  # a "home" that is a link
    make(root / "shared" / "users", folder=True, mode=0o777)
    make(root / "shared" / "users" / "everyone.txt")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            st = os.lstat(Path(folder) / name)
            out[str((Path(folder) / name).relative_to(root))] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return out


def ids(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qhub_hub.cli", "migrate-ownership", *args],
                          capture_output=True, text=True, timeout=120)


def test_dry_run_lists_and_changes_nothing(config, volume):
    before = snapshot(volume)
    result = cli(str(config), "--root", str(volume), "--from-uid", "1000", "--dry-run", "--verbose")
    assert result.returncode == 0, result.stderr
    assert snapshot(volume) == before
    out = result.stdout
    cfg = load_config(config)
    alice, bob = plan_for(cfg, "alice"), plan_for(cfg, ODD_NAME)
    assert f"would rename home/{ODD_NAME} -> home/{unix_name(ODD_NAME)}" in out
    assert (f"would change home/alice: owner 1000:100 -> {alice.uid}:{alice.gid}; mode 0755 -> 0700; "
            f"4 entries inside 1000 -> {alice.uid}:{alice.gid}") in out
    assert f"would change home/{ODD_NAME}: owner 1000:100 -> {bob.uid}:{bob.gid}" in out
    assert ("would change shared/analyst: owner 1000:100 -> 0:2002; mode 0777 -> 2770; "
            "1 entries inside 1000 -> 0:2002") in out
    assert "left alone: home/alice/hard.txt: has 2 hard links" in out
    assert "left alone: shared/users: not a group of the config" in out
    assert "left alone: shared/developer: not a folder (a link or a file)" in out
    assert "mallory" not in out
    cfg_ids = f"1000:100 -> {alice.uid}:{alice.gid}"
    for path in ("notebook.ipynb", "sub", "sub/data.csv", "link-out"):  # --verbose: every path
        assert f"  home/alice/{path}: {cfg_ids}" in out
    assert "outside/" not in out and "elsewhere" not in out and "link-out" not in out.replace(
        "home/alice/link-out", "")


def test_real_run_reowns_exactly_homes_and_group_folders(config, volume):
    before = snapshot(volume)
    cfg = load_config(config)
    alice, bob = plan_for(cfg, "alice"), plan_for(cfg, ODD_NAME)
    assert alice.uid != NEBARI_UID and bob.uid != alice.uid
    lines: list[str] = []
    summary = migrate_ownership(cfg, volume, NEBARI_UID, dry_run=False, say=lines.append)

    home = volume / "home" / "alice"
    assert ids(home) == (alice.uid, alice.gid) and stat.S_IMODE(os.lstat(home).st_mode) == 0o700
    for name in ("notebook.ipynb", "sub", "sub/data.csv", "link-out"):
        assert ids(home / name) == (alice.uid, alice.gid), name  # a link is re-owned itself (lchown)
    assert ids(home / "root-owned.txt") == (0, 0) and ids(home / "linkdir") == (0, 0)
    assert ids(home / "hard.txt") == (NEBARI_UID, NEBARI_GID)  # a hard link may live elsewhere too
    assert not (volume / "home" / ODD_NAME).exists()
    moved = volume / "home" / unix_name(ODD_NAME)
    assert ids(moved) == (bob.uid, bob.gid) and ids(moved / "analysis.py") == (bob.uid, bob.gid)
    analyst = volume / "shared" / "analyst"
    assert ids(analyst) == (0, 2002) and stat.S_IMODE(os.lstat(analyst).st_mode) == 0o2770
    assert ids(analyst / "report.csv") == (0, 2002)

    after = snapshot(volume)
    changed = {p for p in before if before[p] != after.get(p)} | (set(before) ^ set(after))
    allowed = ("home/alice", f"home/{ODD_NAME}", f"home/{unix_name(ODD_NAME)}", "shared/analyst")
    assert changed and all(p.startswith(allowed) for p in changed), changed
    for untouched in ("outside", "outside/secret.txt", "outside/hard-target.txt", "elsewhere.txt", "home",
                      "shared", "shared/users", "shared/users/everyone.txt", "home/alice/hard.txt"):
        assert after[untouched] == before[untouched], untouched
    assert summary.renamed == 1 and summary.changed == 9

    # idempotent: nothing left to do
    again: list[str] = []
    summary = migrate_ownership(cfg, volume, NEBARI_UID, dry_run=False, say=again.append)
    assert summary.changed == 0 and summary.renamed == 0 and snapshot(volume) == after
    assert not [line for line in again if line.startswith("changed")]


def test_a_linked_home_root_is_refused(config, volume, tmp_path):
    elsewhere = tmp_path / "elsewhere-homes"
    (volume / "home").rename(elsewhere)
    os.symlink(elsewhere, volume / "home")
    before = snapshot(elsewhere)
    with pytest.raises(MigrationError, match="not a link"):
        migrate_ownership(load_config(config), volume, NEBARI_UID, dry_run=False, say=lambda _: None)
    assert snapshot(elsewhere) == before


def test_users_whose_dynamic_uids_collide_are_refused(config, volume):
    data = yaml.safe_load(config.read_text())
    data["security"]["dynamic_ids"] = {"uid_start": 300000, "uid_count": 1}  # one uid for everyone
    before = snapshot(volume)
    with pytest.raises(MigrationError, match=r"alice, bob\.smith@example\.org -> uid 300000"):
        migrate_ownership(load_config(data), volume, NEBARI_UID, dry_run=False, say=lambda _: None)
    assert snapshot(volume) == before


def test_the_command_needs_a_valid_config(tmp_path, volume):
    bad = tmp_path / "bad.yaml"
    bad.write_text("security:\n  users:\n    x: {uid: 5}\n")
    result = cli(str(bad), "--root", str(volume))
    assert result.returncode == 1 and "security.users.x" in result.stderr and "Traceback" not in result.stderr


def test_a_uid_that_belongs_to_a_config_user_is_refused(volume, tmp_path):
    """QHub 0.3 ran alice as uid 1000: her files must not be handed to anyone."""
    path = tmp_path / "qhub03.yaml"
    path.write_text(import_file(DATA / "qhub03-password.yaml").config_text())
    before = snapshot(volume)
    with pytest.raises(MigrationError, match="uid 1000 is alice's in the config"):
        migrate_ownership(load_config(path), volume, NEBARI_UID, dry_run=False, say=lambda _: None)
    assert snapshot(volume) == before
