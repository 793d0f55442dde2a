"""The folders the embedded mode gives a set of plans, and how each is held to them.

One function, `expected_folders`, so that when the folder rules become one spec shared by the
Kubernetes init container and the local mode, only this lookup changes. It asks the local mode
itself (`local.folders.user_folders`) where each folder is and with which owner and mode, and
states how `local.folders` treats an existing folder:

- home: owned by the user's uid; its mode may be tighter than `storage.home_mode`, never looser
  (`ensure_home` only ever tightens); its group is not managed;
- the shared folder: exactly root:root and `storage.shared_mode`;
- a group folder: root-owned, the group's gid, exactly `storage.group_mode`, a default ACL, and a
  named-user ACL entry for exactly its read-only members.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config import QHubConfig
from ..local.folders import Folder, user_folders
from ..policy import UserPlan

HOME, SHARED, GROUP = "home", "shared", "group"


@dataclass
class ExpectedFolder:
    kind: str  # HOME, SHARED or GROUP
    folder: Folder  # path, uid, gid, mode as local.folders makes it
    exact_mode: bool  # False: tighter is fine (homes)
    check_gid: bool
    default_acl: bool
    readonly_uids: set[int] = field(default_factory=set)  # named-user ACL entries it must have
    owner_label: str = ""  # whose folder, for messages


def expected_folders(config: QHubConfig, plans: Iterable[UserPlan],
                     shared_dir: str | None = None) -> dict[str, ExpectedFolder]:
    """Path -> what the folder must be, for every folder of every plan (and every config group)."""
    out: dict[str, ExpectedFolder] = {}
    for plan in plans:
        folders = user_folders(config, plan, shared_dir)
        out.setdefault(folders.home.path, ExpectedFolder(HOME, folders.home, False, False, False,
                                                         owner_label=plan.username))
        out.setdefault(folders.shared.path, ExpectedFolder(SHARED, folders.shared, True, True, False))
        for folder in (*folders.groups, *folders.other_groups):
            expected = out.setdefault(folder.path, ExpectedFolder(
                GROUP, Folder(folder.path, folder.uid, folder.gid, folder.mode, folder.group),
                True, True, True, owner_label=folder.group or ""))
            if folder.readonly:
                expected.readonly_uids.add(folders.home.uid)
    return out
