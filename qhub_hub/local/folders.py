"""The plan's folders on this machine's disk, with real owners, modes and ACLs.

- the home: ``<home_root>/<user>``, owned by the user, `storage.home_mode` (0700); created with the
  contents of /etc/skel and a ``shared`` link to the shared folder; an existing home is only ever
  tightened, and one owned by another uid is refused;
- the shared folder (`storage.shared_root`, or another path the admin chooses on this machine):
  `storage.shared_mode` (1777) root:root. An existing non-empty folder qhub-hub did not create is
  refused unless the admin says to adopt it: qhub-hub never takes over a real /shared unasked;
- ``<shared>/<group>``: root:<gid>, `storage.group_mode` (2770, setgid) and a default ACL
  (``d:u::rwx d:g::rwx d:m::rwx d:o::---``) so everything members create — notebooks,
  ``.ipynb_checkpoints`` and all — is writable by the group whatever the writer's umask, and
  unreadable by anyone else. Read-only members are not in the Unix group: they get a named-user
  ACL entry (``u:<uid>:r-X``, also as default) on the folder and on what the group can read in it.
  A user who stops being a read-only member loses the entry at their next spawn.

Everything is changed through descriptors opened without following symlinks (see acl.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from ..config import QHubConfig
from ..policy import UserPlan
from . import acl

log = logging.getLogger(__name__)
# ACL changes read, modify and write a whole ACL: two spawns granting two users at once must not
# lose one of the entries
_ACL_LOCK = threading.Lock()

MARKER = ".qhub-hub-shared"  # written into a shared folder qhub-hub created or adopted
GROUP_DEFAULT_ACL = "d:u::rwx,d:g::rwx,d:m::rwx,d:o::---"


class FolderError(RuntimeError):
    """A folder on disk is not what the plan needs and qhub-hub will not take it over."""


@dataclass(frozen=True)
class Folder:
    path: str  # on this machine's disk
    uid: int
    gid: int
    mode: int
    group: str | None = None  # a group folder of this group
    readonly: bool = False  # the user is a read-only member of `group`


@dataclass(frozen=True)
class UserFolders:
    home: Folder
    shared: Folder
    groups: tuple[Folder, ...]  # the user's group folders, by group name
    other_groups: tuple[Folder, ...]  # folders of config groups the user is not a member of


def user_folders(config: QHubConfig, plan: UserPlan, shared_dir: str | None = None) -> UserFolders:
    """Where the plan's folders are on disk; `shared_dir` replaces `storage.shared_root` there."""
    root = (shared_dir or config.storage.shared_root).rstrip("/") or "/"
    def on_disk(subpath: str) -> str:
        rest = subpath.removeprefix("shared").lstrip("/")
        return f"{root}/{rest}" if rest else root

    shared, *group_mounts = plan.mounts
    groups = tuple(Folder(on_disk(m.subpath), m.owner_uid, m.owner_gid, m.mode, m.group, m.readonly)
                   for m in group_mounts)
    mine = {f.group for f in groups}
    others = tuple(Folder(f"{root}/{name}", 0, g.gid, config.storage.group_mode, name)
                   for name, g in sorted(config.security.groups.items()) if name not in mine)
    home = plan.home
    return UserFolders(
        home=Folder(home.path, home.owner_uid, home.owner_gid, home.mode),
        shared=Folder(on_disk(shared.subpath), shared.owner_uid, shared.owner_gid, shared.mode),
        groups=groups,
        other_groups=others,
    )


def ensure_user_folders(folders: UserFolders, *, adopt_shared: bool = False) -> None:
    """Create or check every folder of one user (as root)."""
    ensure_shared_root(folders.shared, adopt=adopt_shared)
    ensure_home(folders.home, shared_link=folders.shared.path)
    for folder in folders.groups:
        ensure_group_folder(folder)
        set_readonly_member(folder.path, folders.home.uid, folder.readonly)
    for folder in folders.other_groups:
        if os.path.lexists(folder.path):
            set_readonly_member(folder.path, folders.home.uid, False)


def ensure_shared_root(folder: Folder, *, adopt: bool = False) -> None:
    path = Path(folder.path)
    if not path.exists():
        _makedirs_public(path.parent)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    with acl.opened(str(path)) as (fd, st):
        if not stat.S_ISDIR(st.st_mode):
            raise FolderError(f"{path} is not a directory; remove it or choose another shared folder")
        marker = path / MARKER
        if not marker.exists():
            if any(p.name != "lost+found" for p in path.iterdir()) and not adopt:
                raise FolderError(
                    f"{path} already exists with content that qhub-hub did not create; to use it "
                    f"as the shared folder anyway, run `qhub-hub local up --adopt-shared`, or choose "
                    f"another folder with `--shared-dir`")
            marker.write_text("This folder is managed by qhub-hub (the shared folder).\n")
        _set_owner_mode(fd, st, folder, str(path))


def ensure_home(folder: Folder, *, shared_link: str | None = None) -> bool:
    """Create the home (True) or check it; never loosens an existing one."""
    path = Path(folder.path)
    _makedirs_public(path.parent)
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        created = False
    with acl.opened(str(path)) as (fd, st):
        if not stat.S_ISDIR(st.st_mode):
            raise FolderError(f"the home {path} is not a directory; move it away so qhub-hub can "
                              "create the home")
        if created:
            os.chown(f"/proc/self/fd/{fd}", folder.uid, folder.gid)
            os.chmod(f"/proc/self/fd/{fd}", folder.mode)
            _fill_new_home(path, folder, shared_link)
            return True
        if st.st_uid != folder.uid:
            raise FolderError(
                f"the home {path} belongs to uid {st.st_uid}, not to uid {folder.uid} of its user; "
                f"if it is theirs, `chown -R {folder.uid}:{folder.gid} {path}`, otherwise move it away")
        loose = stat.S_IMODE(st.st_mode) & ~folder.mode
        if loose:
            os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode) & folder.mode)
            log.warning("tightened the mode of %s from %04o (storage.home_mode is %04o)",
                        path, stat.S_IMODE(st.st_mode), folder.mode)
    return False


def ensure_group_folder(folder: Folder) -> None:
    path = Path(folder.path)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    with acl.opened(str(path)) as (fd, st):
        if not stat.S_ISDIR(st.st_mode):
            raise FolderError(f"the group folder {path} is not a directory; move it away")
        if st.st_uid != 0:
            raise FolderError(
                f"the group folder {path} belongs to uid {st.st_uid}, not root: someone created it "
                f"before qhub-hub; move it away (and its content into a new {path} if wanted)")
        _set_owner_mode(fd, st, folder, str(path))
        with _ACL_LOCK:
            if not acl.has_default_acl(fd):
                acl.setfacl([fd], "-m", GROUP_DEFAULT_ACL, what=str(path))


def set_readonly_member(path: str, uid: int, readonly: bool) -> None:
    """Give `uid` read access to a group folder's tree (readonly=True) or remove it."""
    with _ACL_LOCK:
        _set_readonly_member(path, uid, readonly)


def _set_readonly_member(path: str, uid: int, readonly: bool) -> None:
    try:
        with acl.opened(path) as (fd, st):
            if not stat.S_ISDIR(st.st_mode):
                return
            present = uid in acl.named_users(fd)
            if readonly and not present:
                acl.apply_to_tree(fd, ("-m", f"u:{uid}:rX,d:u:{uid}:rX"), ("-m", f"u:{uid}:r"),
                                  lambda s: bool(s.st_mode & stat.S_IRGRP), what=path)
            elif not readonly and (present or uid in acl.named_users(fd, "default")):
                acl.apply_to_tree(fd, ("-x", f"u:{uid},d:u:{uid}"), ("-x", f"u:{uid}"),
                                  lambda s: True, what=path)
    except FileNotFoundError:
        return


def _set_owner_mode(fd: int, st: os.stat_result, folder: Folder, what: str) -> None:
    if (st.st_uid, st.st_gid) != (folder.uid, folder.gid):
        os.chown(f"/proc/self/fd/{fd}", folder.uid, folder.gid)
        log.info("set the owner of %s to %d:%d", what, folder.uid, folder.gid)
    # chown clears setgid: compare with a fresh stat
    if stat.S_IMODE(os.fstat(fd).st_mode) != folder.mode:
        os.chmod(f"/proc/self/fd/{fd}", folder.mode)


def _makedirs_public(path: Path) -> None:
    """Missing parents of homes and shared folders: root-owned and traversable (0755)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o755)
        except FileExistsError:
            pass


def _fill_new_home(path: Path, folder: Folder, shared_link: str | None) -> None:
    """/etc/skel and a `shared` link, into a home just created (nothing of the user's is there)."""
    skel = Path("/etc/skel")
    if skel.is_dir():
        for src in skel.iterdir():
            if src.is_file() and not src.is_symlink():
                dst = path / src.name
                shutil.copyfile(src, dst)
                os.chown(dst, folder.uid, folder.gid)
                os.chmod(dst, 0o644)
    if shared_link:
        link = path / "shared"
        os.symlink(shared_link, link)
        os.lchown(link, folder.uid, folder.gid)
