"""The qhub config and a hub user's plan, as seen from inside a running JupyterHub.

- `get_config(path=None)` loads the config named by `path` or by the environment variable
  ``QHUB_CONFIG``. It is cached and re-read when the file changes (mtime, size or inode: a
  Kubernetes ConfigMap update swaps a symlink), so editing the config needs no hub restart. When an
  edit is invalid, the last good config stays in force and every problem is logged once; the hub
  keeps running. A process that starts while the file is invalid uses the last good copy named by
  ``$QHUB_LAST_GOOD_CONFIG`` (`qhub_hub.last_good`; each new valid version refreshes it) and logs
  why; without such a copy, `ConfigError` is raised.
- `plan_for_hub_user(config, user)` computes the `UserPlan` of a JupyterHub `User` from the groups
  its identity provider reported at the last login (kept in ``auth_state["qhub"]`` by the qhub
  authenticators) and, for users not listed in ``security.users``, the uid the hub handed them
  (see `qhub_hub.uid_registry`). The plan is always computed from the *current* config, so an edit
  (a user moved to another group, a profile opened to a group) applies at the next spawn.

  Without auth_state (no ``JUPYTERHUB_CRYPT_KEY``), the identity-provider groups are unknown and the
  plan is derived from the user's JupyterHub groups instead. A JupyterHub group only ever adds the
  config group of the same name, and read-only when the config maps any identity-provider group
  to it read-only (least privilege: nothing reached through the hub's groups can be more than the
  identity provider would have given).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import QHubConfig, load_config
from .config_errors import ConfigError, Problem
from .last_good import load_last_good, save_last_good
from .policy import UserPlan, index_of, plan_for
from .uid_registry import REGISTRY, DynamicUidRegistry

CONFIG_ENV = "QHUB_CONFIG"
AUTH_STATE_KEY = "qhub"  # auth_state["qhub"] = {"idp_groups": [...], "uid": ..., ...}

_log = logging.getLogger("qhub_hub")


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[int, ...] | None
    config: QHubConfig | None
    error: ConfigError | None


_cache: dict[str, _Loaded] = {}
_cache_lock = threading.Lock()


def config_path(path: str | os.PathLike | None = None) -> Path:
    """The config file to use: `path`, else $QHUB_CONFIG; `ConfigError` if neither is set."""
    chosen = os.fspath(path) if path else os.environ.get(CONFIG_ENV, "")
    if not chosen:
        raise ConfigError([Problem("", f"no qhub config given: set the environment variable "
                                       f"{CONFIG_ENV} to the config file, or set qhub_config_path "
                                       "on the authenticator and spawner")])
    return Path(chosen)


def _stamp(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)  # follows symlinks: a ConfigMap update changes the target's inode
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


def get_config(
    path: str | os.PathLike | None = None, log: logging.Logger | None = None
) -> QHubConfig:
    """The current config (see the module docstring); cheap to call on every request."""
    log = log or _log
    resolved = config_path(path)
    key = str(resolved.absolute())
    stamp = _stamp(resolved)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached.stamp == stamp:
            if cached.config is None:
                raise cached.error  # type: ignore[misc]
            return cached.config
        try:
            config = load_config(resolved)
        except ConfigError as e:
            if cached is not None and cached.config is not None:
                log.error("The qhub config %s was changed but is not valid; the previous config "
                          "stays in force until it is fixed:\n%s", resolved, e)
                _cache[key] = _Loaded(stamp, cached.config, e)
                return cached.config
            fallback = load_last_good(resolved)  # a process started while the file is invalid
            if fallback is not None:
                log.error("The qhub config %s is not valid; the last good copy %s is used until it "
                          "is fixed:\n%s", resolved, fallback[1], e)
                _cache[key] = _Loaded(stamp, fallback[0], e)
                return fallback[0]
            _cache[key] = _Loaded(stamp, None, e)
            raise
        save_last_good(resolved)  # no-op unless $QHUB_LAST_GOOD_CONFIG names a copy
        if cached is not None:
            log.info("Reloaded the qhub config %s", resolved)
        _cache[key] = _Loaded(stamp, config, None)
        return config


def config_problem(path: str | os.PathLike | None = None) -> ConfigError | None:
    """The problems of the file on disk if it is invalid (while an older config stays in force)."""
    try:
        get_config(path)
    except ConfigError as e:
        return e
    loaded = _cache.get(str(config_path(path).absolute()))
    return loaded.error if loaded else None


def forget_configs() -> None:
    """Drop the cache (tests)."""
    with _cache_lock:
        _cache.clear()


# --- a hub user's plan ---------------------------------------------------------------------------


def qhub_state(auth_state: Mapping[str, Any] | None) -> dict[str, Any]:
    """The qhub part of an auth_state ({} when there is none)."""
    if not isinstance(auth_state, Mapping):
        return {}
    state = auth_state.get(AUTH_STATE_KEY)
    return dict(state) if isinstance(state, Mapping) else {}


def idp_groups_from_hub_groups(
    config: QHubConfig, username: str, hub_groups: Iterable[str]
) -> list[str]:
    """Identity-provider group names that give at most what the user's JupyterHub groups say.

    Used when auth_state is not available. Groups the config already gives the user are skipped
    (so a read-only member listed in security.users stays read-only); for any other config group,
    a read-only mapping is preferred over a read-write one.
    """
    index = index_of(config)
    base = plan_for(config, username, ())
    have = set(base.group_names)
    chosen: list[str] = []
    for group in hub_groups:
        if group in have or group not in index.gids:
            continue
        sources = [name for name, target in index.idp_groups.items() if target.group == group]
        if group not in index.idp_groups:
            sources.append(group)  # a same-named IdP group maps to it without an entry
        if not sources:
            continue
        readonly = [s for s in sources if s in index.idp_groups and index.idp_groups[s].readonly]
        chosen.append((readonly or sources)[0])
    return chosen


async def plan_for_hub_user(
    config: QHubConfig, user: Any, *, registry: DynamicUidRegistry | None = None
) -> UserPlan:
    """The plan of a JupyterHub `User` (the hub's wrapper: name, groups, get_auth_state, db).

    For a user not listed in security.users, the uid comes from `registry` (assigned on first
    need, then stable); a newly assigned uid is saved into the user's auth_state when there is one.
    """
    registry = registry or REGISTRY
    auth_state = await user.get_auth_state() if hasattr(user, "get_auth_state") else None
    state = qhub_state(auth_state)
    if isinstance(state.get("idp_groups"), list):
        idp_groups = [str(g) for g in state["idp_groups"]]
    else:
        hub_groups = [g.name for g in getattr(user, "groups", [])]
        idp_groups = idp_groups_from_hub_groups(config, user.name, hub_groups)
    plan = plan_for(config, user.name, idp_groups)
    if plan.in_config or not plan.may_log_in:  # config ids; or refused anyway: no uid taken
        return plan
    recorded = state.get("uid") if isinstance(state.get("uid"), int) else None
    uid = await registry.uid_for(config, user.name, getattr(user, "db", None), recorded=recorded)
    if uid != recorded and auth_state:
        await user.save_auth_state({**auth_state, AUTH_STATE_KEY: {**state, "uid": uid}})
    return plan_for(config, user.name, idp_groups, dynamic_uid=uid)


def auth_state_summary(plan: UserPlan, idp_groups: Iterable[str]) -> dict[str, Any]:
    """What the authenticators keep in auth_state["qhub"]: the identity-provider groups (the
    input the plan is recomputed from) and, for reading, the ids and groups at login time."""
    return {
        "idp_groups": sorted(set(idp_groups)),
        "uid": plan.uid,
        "gid": plan.gid,
        "supplemental_gids": list(plan.supplemental_gids),
        "readonly_gids": list(plan.readonly_gids),
        "groups": list(plan.group_names),
        "unix_name": plan.unix_name,
        "in_config": plan.in_config,
    }
