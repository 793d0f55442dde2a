"""`diff_configs(old, new)`: for each person, what the new config gives or takes compared with the old.

Plans come from `plan_for` (the one policy core); this module only compares the plans' facts
(`access.Access`) and, for profiles a person keeps, the profiles' own settings. Only the people a
change can reach (`reach.py`) are planned in both configs; of the others, only those with a profile
whose settings changed, once.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..config import QHubConfig
from .access import Access
from .changes import Change, ConfigDiff, SubjectDiff
from .reach import EVERYONE, Members, admitted_users, dask_gates, jupyterlab_gates, reached_users
from .subjects import USER, Planner, Subject, subjects
from .warnings import config_warnings

DASK_RESOURCE_FIELDS = ("worker_cores", "worker_cores_limit", "worker_memory", "worker_memory_limit",
                        "image", "max_workers")


def diff_configs(old: QHubConfig, new: QHubConfig, old_name: str = "old", new_name: str = "new") -> ConfigDiff:
    with collector_paused():
        return _diff_configs(old, new, old_name, new_name)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Configs, plans and their facts make no reference cycles worth collecting, but while
    thousands are made Python's cyclic collector would walk every object of both configs again and
    again (a third of the time of planning 10k people)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _diff_configs(old: QHubConfig, new: QHubConfig, old_name: str, new_name: str) -> ConfigDiff:
    profile_changes = _setting_changes(profile_settings(old), profile_settings(new))
    dask_changes = _setting_changes(dask_settings(old), dask_settings(new))
    members = Members(new)
    reached = reached_users(old, new, members)
    with_settings_changed = _keeping_changed_profiles(old, profile_changes, dask_changes, members)
    before_of, after_of = Planner(old), Planner(new)
    diffs = []
    accesses: dict[Subject, tuple[Access, Access]] = {}
    everyone = subjects(old, new)
    for subject in everyone:
        if subject.kind != USER or reached is EVERYONE or subject.name in reached:
            before, after = before_of.access(subject), after_of.access(subject)
            accesses[subject] = (before, after)
        elif with_settings_changed is EVERYONE or subject.name in with_settings_changed:
            before = after = before_of.access(subject)  # not reached: the same plan in both
        else:
            continue  # the same plan in both, and no profile of theirs changed
        changes = diff_access(before, after, profile_changes, dask_changes)
        if changes:
            status = ("added" if not before.may_log_in else "removed" if not after.may_log_in
                      else "changed")
            diffs.append(SubjectDiff(subject, status, tuple(changes)))

    def anyone_else_admin() -> bool:
        admins = members.of(new.security.admin_group_names)  # an admin is a member of one
        return any(after_of.access(s).admin for s in everyone
                   if s not in accesses and (s.kind != USER or s.name in admins))

    return ConfigDiff(old_name, new_name, tuple(diffs),
                      tuple(config_warnings(old, new, accesses, anyone_else_admin)))


def _keeping_changed_profiles(old: QHubConfig, profile_changes: SettingsChanges,
                              dask_changes: SettingsChanges, members: Members) -> set[str] | None:
    """Users of security.users whom a profile with changed settings may admit (`EVERYONE`: all)."""
    jupyterlab = admitted_users(jupyterlab_gates(old), profile_changes, members) if profile_changes else set()
    dask = admitted_users(dask_gates(old), dask_changes, members) if dask_changes else set()
    if jupyterlab is EVERYONE or dask is EVERYONE:
        return EVERYONE
    return jupyterlab | dask


def profile_settings(config: QHubConfig) -> dict[str, dict[str, Any]]:
    """JupyterLab profile slug -> the settings its server gets (kubespawner_override, set keys)."""
    return {p.profile_slug: p.kubespawner_override.model_dump(mode="json", exclude_defaults=True)
            for p in config.profiles.jupyterlab}


def dask_settings(config: QHubConfig) -> dict[str, dict[str, Any]]:
    return {name: {k: getattr(w, k) for k in DASK_RESOURCE_FIELDS}
            for name, w in config.profiles.dask_worker.items()}


SettingsChanges = dict[str, tuple[str, dict[str, Any], dict[str, Any]]]


def _setting_changes(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> SettingsChanges:
    """Name -> ("key a -> b, ...", old settings, new settings) for every profile in both configs
    whose settings differ."""
    out = {}
    for name in old.keys() & new.keys():
        a, b = old[name], new[name]
        if a != b:
            text = ", ".join(f"{key} {_show(a.get(key))} -> {_show(b.get(key))}"
                             for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key))
            out[name] = (text, a, b)
    return out


def diff_access(old: Access, new: Access, profile_changes: SettingsChanges | None = None,
                dask_changes: SettingsChanges | None = None) -> list[Change]:
    """Every change from `old` to `new`, in reading order (login, ids, groups, folders, profiles,
    Dask profiles, namespaces, admin)."""
    changes: list[Change] = []
    if old is new or old == new:
        changes += _kept_settings("profile", "JupyterLab profile", old.profiles, old.profiles, profile_changes)
        changes += _kept_settings("dask_profile", "Dask worker profile", old.dask_profiles, old.dask_profiles,
                                  dask_changes)
        return changes
    if old.may_log_in != new.may_log_in:
        changes.append(Change("login", None, old.may_log_in, new.may_log_in,
                              f"may log in: {_yes(old.may_log_in)} -> {_yes(new.may_log_in)}"))
    if old.uid != new.uid:
        changes.append(Change("uid", None, old.uid, new.uid, f"uid: {_show(old.uid)} -> {_show(new.uid)}"))
    if old.gid != new.gid:
        groups = (f" (primary group {_show(old.primary_group)} -> {_show(new.primary_group)})"
                  if old.primary_group != new.primary_group and new.primary_group != new.gid else "")
        changes.append(Change("gid", None, old.gid, new.gid,
                              f"gid: {_show(old.gid)} -> {_show(new.gid)}{groups}"))
    elif old.primary_group != new.primary_group:
        changes.append(Change("primary_group", None, old.primary_group, new.primary_group,
                              f"primary group: {_show(old.primary_group)} -> {_show(new.primary_group)}"))
    if old.supplemental_gids != new.supplemental_gids:
        changes.append(Change("supplemental_gids", None, list(old.supplemental_gids),
                              list(new.supplemental_gids),
                              f"supplemental gids: {_ids(old.supplemental_gids)} -> "
                              f"{_ids(new.supplemental_gids)}"))
    if old.readonly_gids != new.readonly_gids:
        changes.append(Change("readonly_gids", None, list(old.readonly_gids), list(new.readonly_gids),
                              f"read-only gids: {_ids(old.readonly_gids)} -> {_ids(new.readonly_gids)}"))
    # (each comparison only when the two differ: most people re-planned keep most of their access)
    if old.memberships != new.memberships:
        changes += _keyed("membership", "group", dict(old.memberships), dict(new.memberships))
    if old.folders != new.folders:
        changes += _keyed("folder", "folder", dict(old.folders), dict(new.folders), gained="gained",
                          lost="lost")
    if old.profiles != new.profiles:
        changes += _listed("profile", "JupyterLab profile", old.profiles, new.profiles)
    changes += _kept_settings("profile", "JupyterLab profile", old.profiles, new.profiles, profile_changes)
    if old.dask_profiles != new.dask_profiles:
        changes += _listed("dask_profile", "Dask worker profile", old.dask_profiles, new.dask_profiles)
    changes += _kept_settings("dask_profile", "Dask worker profile", old.dask_profiles, new.dask_profiles,
                              dask_changes)
    if old.namespaces != new.namespaces:
        changes += _listed("namespace", "environment namespace", old.namespaces, new.namespaces)
    if old.admin != new.admin:
        changes.append(Change("admin", None, old.admin, new.admin,
                              "admin: gained" if new.admin else "admin: lost"))
    return changes


_ACCESS = {"rw": "read-write", "ro": "read-only"}


def _keyed(kind: str, noun: str, old: dict[str, str], new: dict[str, str], gained: str = "added",
           lost: str = "removed") -> list[Change]:
    out = []
    for name in new:
        if name not in old:
            out.append(Change(f"{kind}_{gained}", name, None, new[name],
                              f"{noun} {gained}: {name} ({_ACCESS[new[name]]})"))
    for name in old:
        if name not in new:
            out.append(Change(f"{kind}_{lost}", name, old[name], None,
                              f"{noun} {lost}: {name} ({_ACCESS[old[name]]})"))
    for name in new:
        if name in old and old[name] != new[name]:
            out.append(Change(f"{kind}_access", name, old[name], new[name],
                              f"{noun} {name}: {_ACCESS[old[name]]} -> {_ACCESS[new[name]]}"))
    return out


def _listed(kind: str, noun: str, old: tuple[str, ...], new: tuple[str, ...]) -> list[Change]:
    old_set, new_set = set(old), set(new)
    return ([Change(f"{kind}_gained", name, None, name, f"{noun} gained: {name}")
             for name in new if name not in old_set]
            + [Change(f"{kind}_lost", name, name, None, f"{noun} lost: {name}")
               for name in old if name not in new_set])


def _kept_settings(kind: str, noun: str, old: tuple[str, ...], new: tuple[str, ...],
                   settings_changes: SettingsChanges | None) -> list[Change]:
    """A change for each profile in both `old` and `new` whose settings changed, in `new`'s order."""
    if not settings_changes:
        return []
    names = [n for n in new if n in settings_changes and n in old]
    return [Change(f"{kind}_resources", name, settings_changes[name][1], settings_changes[name][2],
                   f"{noun} {name}: {settings_changes[name][0]}") for name in names]


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return repr(value)
    return str(value)


def _ids(ids: tuple[int, ...]) -> str:
    return ", ".join(map(str, ids)) if ids else "none"
