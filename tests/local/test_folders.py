"""Homes, the shared folder and group folders on disk, used by real processes of real users."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from qhub_hub.config import load_config
from qhub_hub.local.accounts import account_spec, ensure_account
from qhub_hub.local.folders import (
    Folder,
    FolderError,
    UserFolders,
    ensure_group_folder,
    ensure_shared_root,
    ensure_user_folders,
    user_folders,
)
from qhub_hub.policy import plan_for

from .support import GROUPS, USERS, public_dir, remove_lt_accounts, remove_tree, write_config

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture
def machine():
    """The test config's accounts and folders, made the way a spawn makes them."""
    root = public_dir("folders")
    config = load_config(write_config(root))
    for name in USERS:
        plan = plan_for(config, name, ())
        ensure_account(account_spec(plan), GROUPS)
        ensure_user_folders(user_folders(config, plan))
    yield root, config
    remove_lt_accounts()
    remove_tree(root)


def as_user(config, name: str, code: str) -> subprocess.CompletedProcess:
    """Python `code` in a process with exactly `name`'s plan ids (as their server has)."""
    plan = plan_for(config, name, ())
    return subprocess.run([sys.executable, "-I", "-c", code], user=plan.uid, group=plan.gid,
                          extra_groups=[plan.gid, *plan.supplemental_gids], cwd="/",
                          capture_output=True, text=True, umask=0o022)


def can(config, name: str, code: str) -> bool:
    proc = as_user(config, name, code)
    if proc.returncode not in (0, 13):
        raise AssertionError(proc.stderr)
    return proc.returncode == 0


def attempt(operation: str) -> str:
    """Code exiting 0 if `operation` works, 13 on PermissionError."""
    return f"import os, shutil, sys\ntry:\n    {operation}\nexcept PermissionError:\n    sys.exit(13)\n"


def getfacl(path: Path) -> list[str]:
    out = subprocess.run(["getfacl", "-n", "-p", str(path)], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line and not line.startswith("# file")]


def test_user_folders_of_a_read_only_member(machine):
    root, config = machine
    assert user_folders(config, plan_for(config, "lterin", ())) == UserFolders(
        home=Folder(f"{root}/home/lterin", 41003, 41100, 0o700),
        shared=Folder(f"{root}/shared", 0, 0, 0o1777),
        groups=(Folder(f"{root}/shared/ltanalysts", 0, 41101, 0o2770, "ltanalysts", readonly=True),
                Folder(f"{root}/shared/ltusers", 0, 41100, 0o2770, "ltusers")),
        other_groups=(Folder(f"{root}/shared/ltml", 0, 41102, 0o2770, "ltml"),),
    )
    moved = user_folders(config, plan_for(config, "lterin", ()), "/srv/team-shared")
    assert moved.groups[0].path == "/srv/team-shared/ltanalysts"


def test_modes_owners_and_acls_on_disk(machine):
    root, _ = machine
    home = os.stat(root / "home" / "ltalice")
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (41001, 41100, 0o700)
    shared = os.stat(root / "shared")
    assert (shared.st_uid, shared.st_gid, stat.S_IMODE(shared.st_mode)) == (0, 0, 0o1777)
    group = os.stat(root / "shared" / "ltanalysts")
    assert (group.st_uid, group.st_gid, stat.S_IMODE(group.st_mode)) == (0, 41101, 0o2770)
    assert getfacl(root / "shared" / "ltanalysts") == [
        "# owner: 0", "# group: 41101", "# flags: -s-",
        "user::rwx", "user:41003:r-x", "group::rwx", "mask::rwx", "other::---",
        "default:user::rwx", "default:user:41003:r-x", "default:group::rwx", "default:mask::rwx",
        "default:other::---"]
    assert getfacl(root / "shared" / "ltml")[3:] == [
        "user::rwx", "group::rwx", "other::---",
        "default:user::rwx", "default:group::rwx", "default:mask::rwx", "default:other::---"]
    assert os.readlink(root / "home" / "ltalice" / "shared") == str(root / "shared")


def test_group_files_are_shared_by_members_only(machine):
    root, config = machine
    folder = root / "shared" / "ltanalysts"
    nb, ckpt = folder / "report.ipynb", folder / ".ipynb_checkpoints" / "report-checkpoint.ipynb"
    # alice writes a notebook and its checkpoint with umask 022, as Jupyter does
    assert can(config, "ltalice", attempt(
        f"open({str(nb)!r}, 'w').write('v1'); os.mkdir({str(ckpt.parent)!r}); "
        f"shutil.copy2({str(nb)!r}, {str(ckpt)!r})"))
    assert (os.stat(nb).st_gid, stat.S_IMODE(os.stat(nb).st_mode)) == (41101, 0o660)
    # bob (member) edits both; erin (read-only member) reads but cannot write
    assert can(config, "ltbob", attempt(f"open({str(nb)!r}, 'a').write('bob')"))
    assert can(config, "ltbob", attempt(f"open({str(ckpt)!r}, 'w').write('bob ckpt')"))
    assert can(config, "ltbob", attempt(f"open({str(ckpt.parent / 'other.ipynb')!r}, 'w').write('x')"))
    assert can(config, "lterin", attempt(f"assert open({str(nb)!r}).read() == 'v1bob'"))
    assert can(config, "lterin", attempt(f"open({str(ckpt)!r}).read(); os.listdir({str(folder)!r})"))
    assert not can(config, "lterin", attempt(f"open({str(nb)!r}, 'a')"))
    assert not can(config, "lterin", attempt(f"open({str(folder / 'erin.txt')!r}, 'w')"))
    # frank (no membership) can neither list nor read
    assert not can(config, "ltfrank", attempt(f"os.listdir({str(folder)!r})"))
    assert not can(config, "ltfrank", attempt(f"open({str(nb)!r})"))
    # and nobody but bob reaches bob's group ltml
    assert not can(config, "ltalice", attempt(f"os.listdir({str(root / 'shared' / 'ltml')!r})"))


def test_homes_are_private(machine):
    root, config = machine
    assert can(config, "ltalice", attempt(f"open({str(root / 'home/ltalice/notes.txt')!r}, 'w')"))
    assert not can(config, "ltbob", attempt(f"os.listdir({str(root / 'home/ltalice')!r})"))
    assert not can(config, "ltbob", attempt(f"open({str(root / 'home/ltalice/notes.txt')!r})"))


def test_read_only_grant_covers_existing_readable_files_but_no_private_file_or_symlink(machine):
    root, config = machine
    folder = root / "shared" / "ltml"  # erin is not a member yet
    secret = root / "root-only.txt"
    secret.write_text("root's")
    os.chmod(secret, 0o600)
    assert can(config, "ltbob", attempt(
        f"os.makedirs({str(folder / 'sub')!r}); open({str(folder / 'sub/data.csv')!r}, 'w').write('1'); "
        f"fd = os.open({str(folder / 'private.txt')!r}, os.O_CREAT | os.O_WRONLY, 0o600); "
        f"os.symlink({str(secret)!r}, {str(folder / 'link')!r})"))
    with_ml = config.model_copy(deep=True)
    users = {**config.security.users, "lterin": config.security.users["lterin"].model_copy(
        update={"readonly_groups": ["ltanalysts", "ltml"]})}
    with_ml = config.model_copy(update={"security": config.security.model_copy(update={"users": users})})
    with_ml._index = None
    ensure_user_folders(user_folders(with_ml, plan_for(with_ml, "lterin", ())))
    assert can(config, "lterin", attempt(f"open({str(folder / 'sub/data.csv')!r}).read()"))
    assert not can(config, "lterin", attempt(f"open({str(folder / 'private.txt')!r})"))
    assert "user:41003:r--" not in getfacl(secret)
    assert not any("41003" in line for line in getfacl(secret))
    # erin leaves ltml again: the entries go, on the folder and below
    ensure_user_folders(user_folders(config, plan_for(config, "lterin", ())))
    assert not can(config, "lterin", attempt(f"os.listdir({str(folder)!r})"))
    assert not any("41003" in line for line in getfacl(folder / "sub" / "data.csv"))


def test_existing_shared_folder_with_foreign_content_is_not_taken_over(tmp_path):
    foreign = tmp_path / "shared"
    foreign.mkdir()
    (foreign / "someone-elses.txt").write_text("keep me")
    os.chmod(foreign, 0o755)
    with pytest.raises(FolderError, match=r"already exists with content that qhub-hub did not create; "
                                          r"to use it .* --adopt-shared"):
        ensure_shared_root(Folder(str(foreign), 0, 0, 0o1777))
    assert stat.S_IMODE(os.stat(foreign).st_mode) == 0o755
    ensure_shared_root(Folder(str(foreign), 0, 0, 0o1777), adopt=True)
    assert stat.S_IMODE(os.stat(foreign).st_mode) == 0o1777
    assert (foreign / "someone-elses.txt").read_text() == "keep me"


def test_group_folder_squatted_by_a_user_is_set_aside(machine):
    root, config = machine
    squat = root / "shared" / "ltnew"
    assert can(config, "ltfrank", attempt(f"os.mkdir({str(squat)!r}, 0o777)"))
    ensure_group_folder(Folder(str(squat), 0, 41100, 0o2770, "ltnew"))
    st = os.lstat(squat)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 41100, 0o2770)
    aside = os.lstat(root / "shared" / "ltnew.squatted-by-41004")  # still frank's, not the group's
    assert aside.st_uid == 41004
    # a symlink planted where a group folder will go is refused too, and not followed
    target = root / "target"
    target.mkdir(mode=0o700)
    assert can(config, "ltfrank", attempt(f"os.symlink({str(target)!r}, {str(root / 'shared' / 'ltlink')!r})"))
    with pytest.raises(FolderError, match="is not a directory"):
        ensure_group_folder(Folder(str(root / "shared" / "ltlink"), 0, 41100, 0o2770, "ltlink"))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700


def test_a_home_owned_by_another_uid_is_refused(machine):
    root, config = machine
    os.chown(root / "home" / "ltfrank", 41001, 41100)
    with pytest.raises(FolderError, match="belongs to uid 41001, not to uid 41004"):
        ensure_user_folders(user_folders(config, plan_for(config, "ltfrank", ())))


def test_a_loose_home_is_tightened(machine):
    root, config = machine
    os.chmod(root / "home" / "ltfrank", 0o755)
    ensure_user_folders(user_folders(config, plan_for(config, "ltfrank", ())))
    assert stat.S_IMODE(os.stat(root / "home" / "ltfrank").st_mode) == 0o700
