"""What one plan gives a person, reduced to facts that two configs can be compared on.

A plan of someone who may not log in gives nothing: their `Access` is `NO_ACCESS`, so a user
added to the config shows everything gained and a removed one everything lost.
Ids of users who are not in `security.users` are not numbers a config decides (the hub hands them
out from `security.dynamic_ids`): they read ``dynamic``, and a private primary group ``private``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..policy import UserPlan

DYNAMIC = "dynamic"
PRIVATE = "private"


@dataclass(frozen=True)
class Access:
    may_log_in: bool
    uid: int | str | None  # None: no access
    gid: int | str | None
    primary_group: str | None
    supplemental_gids: tuple[int, ...]
    readonly_gids: tuple[int, ...]
    memberships: tuple[tuple[str, str], ...]  # (group, "rw" | "ro"), by name
    folders: tuple[tuple[str, str], ...]  # (path, "rw" | "ro"), home first
    profiles: tuple[str, ...]  # JupyterLab profile slugs, config order
    dask_profiles: tuple[str, ...]
    namespaces: tuple[str, ...]
    admin: bool


NO_ACCESS = Access(False, None, None, None, (), (), (), (), (), (), (), False)


_ACCESS = {False: "rw", True: "ro"}  # by `readonly`
OWN = "<own>"  # the home folder and namespace of a person known only by a group


def access_of(plan: UserPlan, private_primary: bool, anonymous: bool = False,
              slug_of: Mapping[int, str] | None = None) -> Access:
    """`private_primary`: the config gives users outside security.users a private group.
    `anonymous`: the plan is of a placeholder name; its own home and namespace read ``<own>``.
    `slug_of`: id of each of the config's JupyterLab profiles -> its slug (saves deriving slugs
    again for every plan)."""
    if not plan.may_log_in:
        return NO_ACCESS
    home = plan.home.path
    namespaces = plan.environment_namespaces
    if anonymous:
        home = f"{home.rsplit('/', 1)[0]}/{OWN}"
        namespaces = tuple(OWN if n == plan.unix_name else n for n in namespaces)
    if plan.in_config:
        uid: int | str = plan.uid
        gid: int | str = plan.gid
    else:
        uid = DYNAMIC
        gid = PRIVATE if private_primary else plan.gid
    return Access(
        may_log_in=True,
        uid=uid,
        gid=gid,
        primary_group=plan.primary_group if plan.in_config or not private_primary else PRIVATE,
        supplemental_gids=plan.supplemental_gids,
        readonly_gids=plan.readonly_gids,
        memberships=tuple([(m.name, _ACCESS[m.readonly]) for m in plan.memberships]),
        folders=((home, "rw"), *[(m.path, _ACCESS[m.readonly]) for m in plan.mounts]),
        profiles=(plan.profile_slugs if slug_of is None
                  else tuple(map(slug_of.__getitem__, map(id, plan.jupyterlab_profiles)))),
        dask_profiles=plan.dask_worker_profiles,
        namespaces=namespaces,
        admin=plan.admin,
    )
