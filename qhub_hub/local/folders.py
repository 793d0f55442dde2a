"""The plan's folders on this machine's disk, with real owners, modes and ACLs.

Owners and modes follow `qhub_hub.folder_rules`, the rules the Kubernetes init container applies too:

- the home: ``<home_root>/<user>``, owned by the user, `storage.home_mode` (0700); created with the
  contents of /etc/skel and a ``shared`` link to the shared folder; an existing home is only ever
  tightened, and one owned by another uid is refused;
- the shared folder (`storage.shared_root`, or another path the admin chooses on this machine):
  `storage.shared_mode` (1777) root:root. An existing non-empty folder qhub-hub did not create is
  refused unless the admin says to adopt it: qhub-hub never takes over a real /shared unasked;
- ``<shared>/<group>``: root:<gid>, `storage.group_mode` (2770, setgid; one a user made in advance
  through the world-writable shared folder is set aside) and a default ACL
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
from ..folder_rules import Found, Role, decide, not_a_folder, set_aside_name
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
    if not os.path.lexists(path):
        _makedirs_public(path.parent)
    elif path.is_dir() and not path.is_symlink() and not (path / MARKER).exists():
        # this machine's own folder: never taken over unasked (a pod's volume has no such history)
        if any(p.name != "lost+found" for p in path.iterdir()) and not adopt:
            raise FolderError(
                f"{path} already exists with content that qhub-hub did not create; to use it "
                f"as the shared folder anyway, run `qhub-hub local up --adopt-shared`, or choose "
                f"another folder with `--shared-dir`")
    apply_rule("platform", folder)
    marker = path / MARKER
    if not marker.exists():
        marker.write_text("This folder is managed by qhub-hub (the shared folder).\n")


def ensure_home(folder: Folder, *, shared_link: str | None = None) -> bool:
    """Create the home (True) or check it, by `folder_rules` (never loosened, never another's)."""
    _makedirs_public(Path(folder.path).parent)
    created = apply_rule("home", folder)
    if created:
        _fill_new_home(Path(folder.path), folder, shared_link)
    return created


def ensure_group_folder(folder: Folder) -> None:
    apply_rule("group", folder)
    with acl.opened(folder.path) as (fd, _), _ACL_LOCK:
        if not acl.has_default_acl(fd):
            acl.setfacl([fd], "-m", GROUP_DEFAULT_ACL, what=folder.path)


def found_at(path: str) -> Found:
    """What is at `path`, without following a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Found("missing")
    if stat.S_ISLNK(st.st_mode):
        return Found("symlink")
    if not stat.S_ISDIR(st.st_mode):
        return Found("other")
    return Found("directory", st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


def apply_rule(role: Role, folder: Folder) -> bool:
    """Make `folder` what the plan needs by `folder_rules.decide`; True when it was created.

    Raises `FolderError` with the rule's message when it refuses.
    """
    path = folder.path
    found = found_at(path)
    steps = decide(role, path, folder.uid, folder.gid, folder.mode, found)
    if steps.refuse:
        raise FolderError(steps.refuse)
    if steps.set_aside:
        taken = 0
        while os.path.lexists(aside := set_aside_name(path, found.uid, taken)):
            taken += 1
        os.rename(path, aside)
        log.warning("%s belonged to uid %d, not root: set aside as %s", path, found.uid, aside)
    if steps.create:
        os.mkdir(path, 0o700)
    with acl.opened(path) as (fd, st):  # opened without following: a swap in between fails here
        if not stat.S_ISDIR(st.st_mode):
            raise FolderError(not_a_folder(path))
        if steps.owner is not None:
            os.chown(f"/proc/self/fd/{fd}", *steps.owner)
            if not steps.create:
                log.info("set the owner of %s to %d:%d", path, *steps.owner)
        have = stat.S_IMODE(os.fstat(fd).st_mode)  # chown may have cleared setgid
        if steps.mode is not None and have != steps.mode:
            os.chmod(f"/proc/self/fd/{fd}", steps.mode)
            if not steps.create:
                log.warning("changed the mode of %s from %04o to %04o", path, have, steps.mode)
    return steps.create


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
