"""The policy core: who a user is on the platform, as pure functions of the config.

`plan_for(config, username, groups_from_identity_provider)` -> `UserPlan`. No I/O, no JupyterHub:
the Kubernetes spawner, the local spawner, the authenticator and the Dask Gateway options only
translate a plan. The config is indexed once (`config.index`) so a plan costs microseconds.

Ids of users who are not in `security.users` (they come from the identity provider): the uid is
the first free id at or after ``uid_start + sha256(username) mod uid_count`` (wrapping inside the
range), where free means neither a config uid nor in `taken_uids` for another user. The hub passes
the uids it has already handed out as `taken_uids`, so the rule is deterministic for a given
history and never gives one uid to two users. Their primary group is
`security.dynamic_ids.primary_group`, or a private group named after the user with gid = uid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from .config_model import GitHubAuth, IdentityProviderGroup, JupyterLabProfile, QHubConfig
from .naming import unix_name


class PlanError(RuntimeError):
    """No plan can be made (e.g. the dynamic uid range is full); the message says what to do."""


@dataclass(frozen=True)
class Membership:
    name: str
    gid: int
    readonly: bool = False


@dataclass(frozen=True)
class Mount:
    """A folder in the user's server. `subpath` is relative to the storage root (one RWX volume)."""

    path: str
    subpath: str
    owner_uid: int
    owner_gid: int
    mode: int
    readonly: bool = False
    group: str | None = None


@dataclass(frozen=True)
class UserPlan:
    username: str  # as the hub knows it
    unix_name: str  # account, home folder and conda-store namespace name
    uid: int
    gid: int
    primary_group: str
    memberships: tuple[Membership, ...]  # every config group, primary included, sorted by name
    supplemental_gids: tuple[int, ...]  # read-write groups other than the primary, sorted
    readonly_gids: tuple[int, ...]  # groups the user may only read, sorted
    home: Mount
    mounts: tuple[Mount, ...]  # /shared, then /shared/<group> for each membership
    jupyterlab_profiles: tuple[JupyterLabProfile, ...] = field(repr=False)  # config order
    dask_worker_profiles: tuple[str, ...]  # names, config order
    environment_namespaces: tuple[str, ...]  # own, groups', global
    admin: bool
    may_log_in: bool
    in_config: bool  # listed in security.users (False: identity-provider user with dynamic ids)

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.memberships)

    @property
    def profile_slugs(self) -> tuple[str, ...]:
        return tuple(p.profile_slug for p in self.jupyterlab_profiles)

    @property
    def group_mounts(self) -> tuple[Mount, ...]:
        return tuple(m for m in self.mounts if m.group)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for `qhub-hub explain` and for auth_state."""
        data = asdict(self)
        data["jupyterlab_profiles"] = list(self.profile_slugs)
        for mount in [data["home"], *data["mounts"]]:
            mount["mode"] = f"{mount['mode']:04o}"
        return data


class ConfigIndex:
    """Lookups built once per config, so that planning a user is a few dict and set operations."""

    def __init__(self, config: QHubConfig):
        sec = config.security
        auth = sec.authentication
        # GitHub organizations (``org`` or ``org:team``) that admit their members without a group
        self.admitting_idp_groups = frozenset(
            auth.config.allowed_organizations if isinstance(auth, GitHubAuth) else ())
        self.gids = {name: g.gid for name, g in sec.groups.items()}
        self.config_uids = {u.uid for u in sec.users.values()}
        self.admin_groups = frozenset(sec.admin_group_names)
        self.idp_groups: dict[str, IdentityProviderGroup] = {
            name: target if isinstance(target, IdentityProviderGroup) else IdentityProviderGroup(group=target)
            for name, target in sec.identity_provider_groups.items()
        }
        self.profiles_by_slug = {p.profile_slug: p for p in config.profiles.jupyterlab}
        self._config = config
        self.jupyterlab = _Gates([(p.profile_slug, p) for p in config.profiles.jupyterlab])
        self.dask_worker = _Gates(list(config.profiles.dask_worker.items()))
        st = config.storage
        self.shared_mount = Mount(st.shared_root, "shared", 0, 0, st.shared_mode)
        # plans are immutable, so every plan naming a group shares its Membership and Mount
        self._group_parts: dict[tuple[str, bool], tuple[Membership, Mount]] = {}

    def group_parts(self, name: str, readonly: bool) -> tuple[Membership, Mount]:
        """The membership of group `name` and its folder /shared/<name> (read-only or not)."""
        key = (name, readonly)
        found = self._group_parts.get(key)
        if found is None:
            gid, st = self.gids[name], self._config.storage
            found = self._group_parts[key] = (
                Membership(name, gid, readonly),
                Mount(f"{st.shared_root}/{name}", f"shared/{name}", 0, gid, st.group_mode,
                      readonly=readonly, group=name))
        return found

    @cached_property
    def version(self) -> str:
        """A digest of the whole config: two components deciding with the same version agree."""
        return hashlib.sha256(self._config.model_dump_json().encode()).hexdigest()[:16]


def index_of(config: QHubConfig) -> ConfigIndex:
    """The config's lookups, built on first use and kept with the config (it is immutable)."""
    # read the private attribute's slot directly: pydantic's __getattr__ costs more than a plan's
    # own dict lookups
    index = config.__pydantic_private__.get("_index")
    if index is None:
        index = config._index = ConfigIndex(config)
    return index


class _Gates:
    """Which of a list of profiles admit whom, indexed so that a plan does not test every profile:
    open ones, then the ones naming the user or one of their groups, in config order."""

    def __init__(self, items: list[tuple[str, Any]]):
        self.items = items  # (name, profile), config order
        self._names = [name for name, _ in items]
        self._profiles = [profile for _, profile in items]
        self.open: list[int] = []
        # gated profiles admitting someone -> (names, profiles) they get; people share these
        self._chosen: dict[frozenset[int], tuple[tuple[str, ...], tuple[Any, ...]]] = {}
        self.by_user: dict[str, list[int]] = {}
        self.by_group: dict[str, list[int]] = {}
        for i, (_, item) in enumerate(items):
            if item.users is None and item.groups is None:
                self.open.append(i)
                continue
            for user in item.users or ():
                self.by_user.setdefault(user, []).append(i)
            for group in item.groups or ():
                self.by_group.setdefault(group, []).append(i)

    def admitted(self, username: str, groups: frozenset[str]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """(names, profiles) admitting `username` with `groups`, in config order."""
        gated: set[int] = set(self.by_user.get(username, ()))
        for group in groups:
            found = self.by_group.get(group)
            if found:
                gated.update(found)
        key = frozenset(gated)
        chosen = self._chosen.get(key)
        if chosen is None:
            order = sorted(key.union(self.open))
            chosen = self._chosen[key] = (tuple(map(self._names.__getitem__, order)),
                                          tuple(map(self._profiles.__getitem__, order)))
        return chosen


def plan_for(
    config: QHubConfig,
    username: str,
    groups_from_identity_provider: Iterable[str] = (),
    *,
    taken_uids: Mapping[int, str] | None = None,
    dynamic_uid: int | None = None,
) -> UserPlan:
    """The plan for `username` given the groups their identity provider reports.

    Everything that decides the plan is here: config users and groups, identity-provider group
    mapping (read-only mappings included), admission (`security.users`, a mapped group,
    `allow_unlisted_users`, GitHub `allowed_organizations`), profiles, folders and namespaces.

    `taken_uids` maps uids already handed to identity-provider users to their usernames; it only
    matters for users not listed in `security.users`. `dynamic_uid`, for such a user, is the uid
    the hub already handed them (`qhub_hub.uid_registry`); it replaces the search.
    """
    index = index_of(config)
    sec = config.security
    groups_from_identity_provider = tuple(groups_from_identity_provider)
    safe = unix_name(username)
    user = sec.users.get(username)

    rw: set[str] = set()
    ro: set[str] = set()
    idp_mapped = False
    for idp_group in groups_from_identity_provider:
        target = index.idp_groups.get(idp_group)
        if target is None and idp_group in index.gids:
            target = IdentityProviderGroup(group=idp_group)
        if target is not None:
            idp_mapped = True
            (ro if target.readonly else rw).add(target.group)

    if user is not None:
        uid = user.uid
        primary, gid = user.primary_group, index.gids[user.primary_group]
        rw.update(user.secondary_groups)
        ro.update(user.readonly_groups)
    else:
        uid = dynamic_uid if dynamic_uid is not None else _dynamic_uid(config, index, username, taken_uids or {})
        primary = sec.dynamic_ids.primary_group
        gid = uid if primary is None else index.gids[primary]
    if primary is not None:
        rw.add(primary)
    ro -= rw
    names = sorted(rw | ro)
    parts = [index.group_parts(name, name in ro) for name in names]
    memberships = tuple([membership for membership, _ in parts])
    if primary is None:
        primary = safe  # a private group, gid = uid, with no folder of its own
    member_of = frozenset(names)
    st = config.storage
    home = Mount(f"{st.home_root}/{safe}", f"home/{safe}", uid, gid, st.home_mode)
    mounts = (index.shared_mount, *[mount for _, mount in parts])
    rw_names = rw
    _, profiles = index.jupyterlab.admitted(username, member_of)

    return UserPlan(
        username=username,
        unix_name=safe,
        uid=uid,
        gid=gid,
        primary_group=primary,
        memberships=memberships,
        supplemental_gids=tuple(sorted({index.gids[n] for n in rw_names if n != primary} - {gid})),
        readonly_gids=tuple(sorted(index.gids[n] for n in ro)),
        home=home,
        mounts=mounts,
        jupyterlab_profiles=profiles,
        dask_worker_profiles=index.dask_worker.admitted(username, member_of)[0],
        environment_namespaces=_environment_namespaces(config, index, safe, member_of),
        admin=not index.admin_groups.isdisjoint(rw_names),
        may_log_in=(user is not None or idp_mapped or sec.allow_unlisted_users
                    or not index.admitting_idp_groups.isdisjoint(groups_from_identity_provider)),
        in_config=user is not None,
    )


def _environment_namespaces(config: QHubConfig, index: ConfigIndex, safe: str,
                            member_of: frozenset[str]) -> tuple[str, ...]:
    """Own, groups', global; a Unix name that is also a group's or the global namespace is not
    the user's own (they would otherwise see, and get mounted, a namespace that is not theirs)."""
    glob = config.conda_store.global_namespace
    own = () if safe in index.gids or safe == glob else (safe,)
    return tuple(dict.fromkeys((*own, *sorted(member_of), glob)))


def _dynamic_uid(config: QHubConfig, index: ConfigIndex, username: str, taken: Mapping[int, str]) -> int:
    dyn = config.security.dynamic_ids
    start = int.from_bytes(hashlib.sha256(username.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    for step in range(dyn.uid_count):
        uid = dyn.uid_start + (start + step) % dyn.uid_count
        if uid not in index.config_uids and taken.get(uid, username) == username:
            return uid
    raise PlanError(f"no free uid left in security.dynamic_ids ({dyn.uid_start}.."
                    f"{dyn.uid_start + dyn.uid_count - 1}); enlarge uid_count")


def profile_by_slug(config: QHubConfig, slug: str) -> JupyterLabProfile | None:
    """The config's JupyterLab profile with `slug`, allowed or not."""
    return index_of(config).profiles_by_slug.get(slug)
