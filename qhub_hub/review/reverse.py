"""Reverse queries of `qhub-hub explain`: who may start a profile, who reads and writes a folder,
who is in a group and what it grants.

Every answer comes from the plans (`plan_for`) of every person `subjects.py` knows: config users,
members of each identity-provider group mapping, and other identity-provider users when the config
admits them. What a group grants is the difference between the plan of someone in it and of
someone in no group, so the answer follows the policy core, whatever its rules.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ..config import QHubConfig
from ..policy import plan_for
from .subjects import IDP_GROUP, UNLISTED, USER, Subject, access_in, subjects


class QueryError(ValueError):
    """The profile, folder or group is not in the config; the message lists what is."""


def _bucket(subject: Subject, out: dict[str, Any], key: str) -> None:
    if subject.kind == USER:
        out.setdefault(key, {}).setdefault("users", []).append(subject.name)
    elif subject.kind == IDP_GROUP:
        out.setdefault(key, {}).setdefault("identity_provider_groups", []).append(subject.name)
    else:
        out.setdefault(key, {})["any_other_identity_provider_user"] = True


def who_may_start(config: QHubConfig, slug: str) -> dict[str, Any]:
    profile = next((p for p in config.profiles.jupyterlab if p.profile_slug == slug), None)
    if profile is None:
        known = ", ".join(p.profile_slug for p in config.profiles.jupyterlab) or "none"
        raise QueryError(f"no JupyterLab profile with slug {slug!r} in the config (profiles: {known})")
    out: dict[str, Any] = {"profile": slug, "display_name": profile.display_name,
                           "open_to_everyone": not profile.restricted,
                           "default": profile.default}
    for subject in subjects(config):
        if slug in access_in(config, subject).profiles:
            _bucket(subject, out, "may_start")
    out.setdefault("may_start", {})
    return out


def who_reads_and_writes(config: QHubConfig, path: str) -> dict[str, Any]:
    wanted = posixpath.normpath(path) if path.startswith("/") else path
    out: dict[str, Any] = {"folder": wanted}
    seen = False
    for subject in subjects(config):
        for folder, access in access_in(config, subject).folders:
            if folder == wanted:
                seen = True
                _bucket(subject, out, "writes" if access == "rw" else "reads_only")
    if not seen:
        st = config.storage
        raise QueryError(f"no one's server has the folder {wanted!r}; folders are "
                         f"{st.home_root}/<user>, {st.shared_root} and {st.shared_root}/<group>")
    out.setdefault("writes", {})
    out.setdefault("reads_only", {})
    return out


def group_report(config: QHubConfig, name: str) -> dict[str, Any]:
    group = config.security.groups.get(name)
    if group is None:
        known = ", ".join(sorted(config.security.groups)) or "none"
        raise QueryError(f"no group {name!r} in security.groups (groups: {known})")
    out: dict[str, Any] = {"group": name, "gid": group.gid}
    for subject in subjects(config):
        membership = dict(access_in(config, subject).memberships).get(name)
        if membership:
            _bucket(subject, out, "read_write_members" if membership == "rw" else "read_only_members")
    out.setdefault("read_write_members", {})
    out.setdefault("read_only_members", {})
    out["grants"] = _grants(config, name)
    return out


def _grants(config: QHubConfig, name: str) -> dict[str, Any]:
    """What a read-write member gets that someone in no group does not (from two plans)."""
    probe = Subject(UNLISTED, "").placeholder_username
    without = plan_for(config, probe, (), dynamic_uid=0)
    member = plan_for(config, probe, (_read_write_source(config, name),), dynamic_uid=0)
    gained = {
        "folders": [m.path for m in member.mounts if m.path not in {x.path for x in without.mounts}],
        "jupyterlab_profiles": [s for s in member.profile_slugs if s not in without.profile_slugs],
        "dask_worker_profiles": [d for d in member.dask_worker_profiles
                                 if d not in without.dask_worker_profiles],
        "environment_namespaces": [n for n in member.environment_namespaces
                                   if n not in without.environment_namespaces],
        "admin": member.admin and not without.admin,
    }
    return gained


def _read_write_source(config: QHubConfig, name: str) -> str:
    """An identity-provider group name that makes someone a read-write member of `name`."""
    mappings = config.security.identity_provider_groups
    if name not in mappings:
        return name  # a same-named identity-provider group maps to the config group
    for source, target in mappings.items():
        if getattr(target, "group", target) == name and not getattr(target, "readonly", False):
            return source
    raise QueryError(f"{name!r} is also the name of an identity-provider group mapped elsewhere and "
                     "no mapping gives it read-write; its grants cannot be shown")
