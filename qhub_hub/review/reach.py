"""Who a config change can reach: the users of `security.users` whose plan may differ.

`diff_configs` plans only them in both configs (and always the few people known by
identity-provider group, who are not in `security.users`); everyone else has the same plan in
both. A plan (`plan_for`) of a user listed in `security.users` depends on:

- their own entry (uid, primary, secondary and read-only groups);
- the gids of the groups it names, and which of them are admin groups;
- whether a group is named like them (that environment namespace is then the group's, not theirs);
- the JupyterLab and Dask profiles' gates (open, or naming the user or one of their groups) and
  the profiles' order; a profile's settings are compared separately (`diff.py`);
- `storage` and `conda_store.global_namespace`, which reach everyone.

Sections no plan of a listed user reads (`INERT`) reach no one. Any other difference reaches
everyone, so a field added to the config later is safe until it is declared here.
tests/review/test_diff_reach.py checks the narrowed diff against planning everyone, for each kind
of change and for a change of every field of the config.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import Any

from ..config import QHubConfig
from ..naming import unix_name

EVERYONE = None  # a reach of everyone

# Config fields that no plan of a user in security.users reads: the identity-provider settings
# decide only the plans of people outside security.users, and those are always planned.
INERT: dict[str, Any] = {
    "project_name": True, "environments": True, "dask_gateway": True, "ssh": True,
    "videochat": True, "cull": True, "usage": True, "limits": True,
    "conda_store": {"enabled", "url", "environments_root", "environments_folder"},
    "security": {"authentication", "identity_provider_groups", "allow_unlisted_users", "dynamic_ids"},
}
# Config fields whose changes are narrowed to the people they reach, item by item.
NARROWED: dict[str, Any] = {
    "security": {"users", "groups", "admin_groups"},
    "profiles": {"jupyterlab", "dask_worker"},
}
_NOT_COMPARED = {**INERT, "security": INERT["security"] | NARROWED["security"],
                 "profiles": NARROWED["profiles"]}

Gate = tuple[tuple[str, ...] | None, tuple[str, ...] | None]  # (users, groups); both None: open


class Members:
    """Users of `security.users` by the groups their entry names (any access) and by Unix name."""

    def __init__(self, config: QHubConfig):
        self._users = config.security.users

    @cached_property
    def by_group(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for name, user in self._users.items():
            for group in (user.primary_group, *user.secondary_groups, *user.readonly_groups):
                out.setdefault(group, set()).add(name)
        return out

    @cached_property
    def by_unix_name(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for name in self._users:
            out.setdefault(unix_name(name), set()).add(name)
        return out

    def of(self, groups: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for group in groups:
            out |= self.by_group.get(group, set())
        return out

    def named(self, names: Iterable[str]) -> set[str]:
        """Users whose Unix name is one of `names`."""
        out: set[str] = set()
        for name in names:
            out |= self.by_unix_name.get(name, set())
        return out


def reached_users(old: QHubConfig, new: QHubConfig, members: Members) -> set[str] | None:
    """Users of `security.users` (in either config) whose plan may differ; `EVERYONE` (None) when
    a change may reach anyone. `members`: of `new` (the users it does not list are reached anyway,
    and the others have the same entry in both configs)."""
    if old.model_dump(exclude=_NOT_COMPARED) != new.model_dump(exclude=_NOT_COMPARED):
        return EVERYONE
    old_users, new_users = old.security.users, new.security.users
    reached = {name for name in old_users.keys() | new_users.keys()
               if old_users.get(name) != new_users.get(name)}
    old_groups, new_groups = old.security.groups, new.security.groups
    groups = {name for name in old_groups.keys() | new_groups.keys()
              if old_groups.get(name) != new_groups.get(name)}
    if groups:
        reached |= members.named(groups)
    groups |= set(old.security.admin_group_names) ^ set(new.security.admin_group_names)
    for gates in (_gate_changes(jupyterlab_gates(old), jupyterlab_gates(new)),
                  _gate_changes(dask_gates(old), dask_gates(new))):
        if gates is EVERYONE:
            return EVERYONE
        gate_users, gate_groups = gates
        reached |= gate_users
        groups |= gate_groups
    return reached | members.of(groups)


def admitted_users(gates: dict[str, Gate], names: Iterable[str], members: Members) -> set[str] | None:
    """Users of security.users the profiles `names` admit (`EVERYONE` if one is open)."""
    users: set[str] = set()
    groups: set[str] = set()
    for name in names:
        gate_users, gate_groups = gates[name]
        if gate_users is None and gate_groups is None:
            return EVERYONE
        users.update(gate_users or ())
        groups.update(gate_groups or ())
    return users | members.of(groups)


def jupyterlab_gates(config: QHubConfig) -> dict[str, Gate]:
    """Profile slug -> gate, in config order."""
    return {p.profile_slug: _gate(p) for p in config.profiles.jupyterlab}


def dask_gates(config: QHubConfig) -> dict[str, Gate]:
    return {name: _gate(p) for name, p in config.profiles.dask_worker.items()}


def _gate(profile: Any) -> Gate:
    return (None if profile.users is None else tuple(profile.users),
            None if profile.groups is None else tuple(profile.groups))


def _gate_changes(old: dict[str, Gate], new: dict[str, Gate]) -> tuple[set[str], set[str]] | None:
    """(users, groups) named by the gates of profiles added, removed or re-gated; `EVERYONE` when
    such a profile is open to all, or when the profiles kept change order (a plan lists them in
    config order)."""
    if [n for n in old if n in new] != [n for n in new if n in old]:
        return EVERYONE
    users: set[str] = set()
    groups: set[str] = set()
    for name in old.keys() | new.keys():
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        for gate in (before, after):
            if gate is None:  # not in this config
                continue
            gate_users, gate_groups = gate
            if gate_users is None and gate_groups is None:
                return EVERYONE
            users.update(gate_users or ())
            groups.update(gate_groups or ())
    return users, groups
