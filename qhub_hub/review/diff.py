"""`diff_configs(old, new)`: for each person, what the new config gives or takes compared with the old.

Both configs are planned with `plan_for` (the one policy core); this module only compares the
plans' facts (`access.Access`) and, for profiles a person keeps, the profiles' own settings.
"""

from __future__ import annotations

from typing import Any

from ..config import QHubConfig
from .access import Access
from .changes import Change, ConfigDiff, SubjectDiff
from .subjects import USER, Subject, access_in, subjects
from .warnings import config_warnings

DASK_RESOURCE_FIELDS = ("worker_cores", "worker_cores_limit", "worker_memory", "worker_memory_limit",
                        "image", "max_workers")


def diff_configs(old: QHubConfig, new: QHubConfig, old_name: str = "old", new_name: str = "new") -> ConfigDiff:
    profile_changes = _setting_changes(profile_settings(old), profile_settings(new))
    dask_changes = _setting_changes(dask_settings(old), dask_settings(new))
    users_only = only_users_differ(old, new)
    diffs = []
    accesses: dict[Subject, tuple[Access, Access]] = {}
    everyone = subjects(old, new)
    for subject in everyone:
        if users_only and _same_entry(old, new, subject):
            continue  # same inputs to plan_for, same plan
        before, after = access_in(old, subject), access_in(new, subject)
        accesses[subject] = (before, after)
        changes = diff_access(before, after, profile_changes, dask_changes)
        if changes:
            status = ("added" if not before.may_log_in else "removed" if not after.may_log_in
                      else "changed")
            diffs.append(SubjectDiff(subject, status, tuple(changes)))
    return ConfigDiff(old_name, new_name, tuple(diffs),
                      tuple(config_warnings(old, new, accesses, everyone)))


def only_users_differ(old: QHubConfig, new: QHubConfig) -> bool:
    """True when the configs differ at most in `security.users`.

    A plan is a function of the config's other sections and the user's own entry (the policy
    core's contract, checked by tests/review/test_diff.py): then only people whose entry changed
    need planning, which makes a pull request adding a user to a 10k-user config cheap.
    """
    without_users = {"security": {"users"}}
    return old.model_dump(exclude=without_users) == new.model_dump(exclude=without_users)


def _same_entry(old: QHubConfig, new: QHubConfig, subject: Subject) -> bool:
    if subject.kind != USER:
        return True
    return old.security.users.get(subject.name) == new.security.users.get(subject.name)


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
    if old == new:
        changes += _kept_settings("profile", "JupyterLab profile", old.profiles, profile_changes)
        changes += _kept_settings("dask_profile", "Dask worker profile", old.dask_profiles, dask_changes)
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
    changes += _keyed("membership", "group", dict(old.memberships), dict(new.memberships))
    changes += _keyed("folder", "folder", dict(old.folders), dict(new.folders), gained="gained",
                      lost="lost")
    changes += _listed("profile", "JupyterLab profile", old.profiles, new.profiles)
    changes += _kept_settings("profile", "JupyterLab profile", set(old.profiles) & set(new.profiles),
                              profile_changes, order=new.profiles)
    changes += _listed("dask_profile", "Dask worker profile", old.dask_profiles, new.dask_profiles)
    changes += _kept_settings("dask_profile", "Dask worker profile",
                              set(old.dask_profiles) & set(new.dask_profiles), dask_changes,
                              order=new.dask_profiles)
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


def _kept_settings(kind: str, noun: str, kept: Any, settings_changes: SettingsChanges | None,
                   order: tuple[str, ...] | None = None) -> list[Change]:
    if not settings_changes:
        return []
    names = [n for n in (order if order is not None else kept) if n in kept and n in settings_changes]
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
