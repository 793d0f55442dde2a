"""Changes that damage data or access, each with what to do before the change lands.

- uid_renumbered: a user's uid changes; files on disk keep the old uid;
- uid_reused: a uid the old config gave to someone else; the new holder gets their files;
- gid_renumbered: a group's gid changes; files in its folder keep the old gid;
- group_removed: a group goes; its folder stays, owned by a gid no group has;
- gid_reused: a removed or renumbered group's gid now belongs to another group, whose members get
  the old group's files;
- last_admin_removed: nobody is a hub admin any more;
- default_profile_narrowed: the profile a user gets without choosing gives less than before;
- dynamic_ids_moved: identity-provider users' recorded uids fall outside the new range.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..config import JupyterLabProfile, QHubConfig
from ..naming import unix_name
from ..units import parse_bytes, parse_cpu
from .access import Access
from .changes import ReviewWarning
from .subjects import Subject


def config_warnings(old: QHubConfig, new: QHubConfig, accesses: Mapping[Subject, tuple[Access, Access]],
                    anyone_else_admin: Callable[[], bool]) -> list[ReviewWarning]:
    """`accesses`: before and after of the people whose plan may have changed;
    `anyone_else_admin()`: whether one of the others (who keep their access) is an admin."""
    return [*_uids(old, new), *_groups(old, new), *_last_admin(new, accesses, anyone_else_admin),
            *_default_profile(old, new), *_dynamic_ids(old, new)]


def _uids(old: QHubConfig, new: QHubConfig) -> list[ReviewWarning]:
    out = []
    old_users, new_users = old.security.users, new.security.users
    old_holder = {u.uid: name for name, u in old_users.items()}
    roots = f"{new.storage.home_root} {new.storage.shared_root}"
    for name, user in new_users.items():
        before = old_users.get(name)
        if before is not None and before.uid != user.uid:
            out.append(ReviewWarning(
                "uid_renumbered", name,
                f"{name}'s uid changes from {before.uid} to {user.uid}: files on disk keep uid "
                f"{before.uid} (the home {new.storage.home_root}/{unix_name(name)} and what "
                f"{name} wrote in {new.storage.shared_root}), so {name} can no longer write them",
                f"keep uid {before.uid}, or re-own the files when the change lands: "
                f"`find {roots} -xdev -uid {before.uid} -exec chown -h {user.uid} {{}} +`"))
        holder = old_holder.get(user.uid)
        if holder is not None and holder != name:
            out.append(ReviewWarning(
                "uid_reused", name,
                f"uid {user.uid} was {holder}'s in the old config and is now {name}'s: {name} "
                f"owns every file {holder} left on disk",
                f"give {name} an unused uid, or move {holder}'s files away and re-own them first"))
    return out


def _groups(old: QHubConfig, new: QHubConfig) -> list[ReviewWarning]:
    out = []
    old_groups, new_groups = old.security.groups, new.security.groups
    new_holder = {g.gid: name for name, g in new_groups.items()}
    shared = new.storage.shared_root
    old_members: dict[str, list[str]] | None = None
    for name, group in old_groups.items():
        folder = f"{shared}/{name}"
        after = new_groups.get(name)
        if after is None:
            if old_members is None:
                old_members = _members(old)
            members = old_members.get(name, [])
            out.append(ReviewWarning(
                "group_removed", name,
                f"the group {name} (gid {group.gid}) is removed: {folder} stays on disk owned by "
                f"gid {group.gid}, which no group has any more"
                + (f"; {len(members)} member(s) lose it ({_some(members)})" if members else ""),
                f"move or archive the data in {folder} (qhub-hub never deletes it), or keep the group"))
        elif after.gid != group.gid:
            out.append(ReviewWarning(
                "gid_renumbered", name,
                f"the group {name}'s gid changes from {group.gid} to {after.gid}: files in {folder} "
                f"keep gid {group.gid}, so its members lose group access to them",
                f"keep gid {group.gid}, or re-group the files when the change lands: "
                f"`find {shared} -xdev -gid {group.gid} -exec chgrp -h {after.gid} {{}} +`"))
        holder = new_holder.get(group.gid)
        if holder is not None and holder != name:
            out.append(ReviewWarning(
                "gid_reused", holder,
                f"gid {group.gid} was the group {name}'s and is now {holder}'s: members of {holder} "
                f"can read and write the files {name} left in {folder}",
                f"give {holder} an unused gid, or move {folder} away first"))
    return out


def _members(config: QHubConfig) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, user in config.security.users.items():
        for group in {user.primary_group, *user.secondary_groups, *user.readonly_groups}:
            out.setdefault(group, []).append(name)
    return {g: sorted(names) for g, names in out.items()}


def _last_admin(new: QHubConfig, accesses: Mapping[Subject, tuple[Access, Access]],
                anyone_else_admin: Callable[[], bool]) -> list[ReviewWarning]:
    lost = sorted(s.label for s, (a, b) in accesses.items() if a.admin and not b.admin)
    if not lost or any(b.admin for _, b in accesses.values()) or anyone_else_admin():
        return []
    groups = new.security.admin_group_names
    return [ReviewWarning(
        "last_admin_removed", "admin",
        f"nobody is a hub admin in the new config (before: {_some(lost)}): nobody can manage "
        "users and servers from the hub",
        "keep at least one user a read-write member of "
        + (f"an admin group ({', '.join(groups)})" if groups else "an admin group (security.admin_groups)"))]


def default_profile(config: QHubConfig) -> JupyterLabProfile | None:
    """The profile a user gets without choosing: the one marked default, else the first."""
    profiles = config.profiles.jupyterlab
    return next((p for p in profiles if p.default), profiles[0] if profiles else None)


def _resources(profile: JupyterLabProfile) -> dict[str, float | None]:
    o = profile.kubespawner_override
    return {
        "cpu_limit": o.cpu_limit,
        "cpu_guarantee": o.cpu_guarantee or 0,
        "mem_limit": None if o.mem_limit is None else parse_bytes(o.mem_limit),
        "mem_guarantee": parse_bytes(o.mem_guarantee) if o.mem_guarantee is not None else 0,
        "gpus": sum(parse_cpu(v) for k, v in o.extra_resource_limits.items() if "gpu" in k),
    }


def _default_profile(old: QHubConfig, new: QHubConfig) -> list[ReviewWarning]:
    a, b = default_profile(old), default_profile(new)
    if a is None or b is None:
        return []
    ra, rb = _resources(a), _resources(b)
    # an unset limit is no limit: narrowing is a limit set or lowered, or a guarantee lowered
    narrowed = [key for key in ra if rb[key] is not None and (ra[key] is None or rb[key] < ra[key])]
    if not narrowed:
        return []
    oa, ob = a.kubespawner_override, b.kubespawner_override
    detail = ", ".join(f"{key} {_setting(oa, key)} -> {_setting(ob, key)}" for key in narrowed)
    which = (f"'{b.profile_slug}'" if a.profile_slug == b.profile_slug
             else f"'{a.profile_slug}' -> '{b.profile_slug}'")
    return [ReviewWarning(
        "default_profile_narrowed", b.profile_slug,
        f"the default profile ({which}), which users get without choosing, gives less: {detail}",
        "make sure that is intended and tell users; anyone who needs more must pick a larger profile")]


def _setting(override: Any, key: str) -> str:
    if key == "gpus":
        return str(override.gpus)
    value = getattr(override, key)
    return "unset" if value is None else str(value)


def _dynamic_ids(old: QHubConfig, new: QHubConfig) -> list[ReviewWarning]:
    a, b = old.security.dynamic_ids, new.security.dynamic_ids
    old_range = range(a.uid_start, a.uid_start + a.uid_count)
    new_range = range(b.uid_start, b.uid_start + b.uid_count)
    out = []
    if not (new_range.start <= old_range.start and old_range.stop <= new_range.stop):
        out.append(ReviewWarning(
            "dynamic_ids_moved", "security.dynamic_ids",
            f"the uid range of identity-provider users changes from {old_range.start}.."
            f"{old_range.stop - 1} to {new_range.start}..{new_range.stop - 1}: users whose "
            "recorded uid falls outside get a new uid at their next spawn; their files keep the old one",
            "keep the old range inside the new one, or re-own those users' files after their next spawn"))
    if a.primary_group != b.primary_group:
        out.append(ReviewWarning(
            "dynamic_ids_moved", "security.dynamic_ids.primary_group",
            f"the primary group of identity-provider users changes from {a.primary_group or 'private'} "
            f"to {b.primary_group or 'private'}: their new files get the new gid, old files keep theirs",
            "make sure that is intended; re-group old files with chgrp if they must stay shared"))
    return out


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
