"""JupyterLab and Dask worker profiles of both generations -> qhub-hub profiles.

Who may use a profile is decided by the caller (QHub 0.3 and Nebari say it differently); this
module carries over what a profile gives: names, resources, image, and reports every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import FORBIDDEN_OVERRIDES, DaskWorkerProfile, KubespawnerOverride
from .images import is_stock_image
from .report import Report

OVERRIDE_KEYS = frozenset(KubespawnerOverride.model_fields) - {"image"}
WORKER_KEYS = frozenset(DaskWorkerProfile.model_fields) - {"image", "users", "groups"}


def image_setting(report: Report, path: tuple, image: Any) -> str | None:
    if not isinstance(image, str) or not image.strip():
        report.needs_decision(path, f"image {image!r} is not an image name; not carried over")
        return None
    if is_stock_image(image):
        report.dropped(path, f"{image} is the old platform's stock image; qhub-hub's own lab image "
                       "(the chart's default) takes its place")
        return None
    report.mapped(path, f"kept as {image}: rebuild it FROM qhub-hub's lab image (images/lab) so "
                  "environments show as kernels and per-user uids resolve")
    return image


def kubespawner_override(report: Report, path: tuple, override: Any) -> dict[str, Any]:
    if override is None:
        report.mapped(path, "no override")
        return {}
    if not isinstance(override, Mapping):
        report.needs_decision(path, "not a mapping; not carried over")
        return {}
    report.mapped(path, "kubespawner_override, key by key below")
    out: dict[str, Any] = {}
    for key, value in override.items():
        key_path = (*path, key)
        if key == "image":
            image = image_setting(report, key_path, value)
            if image:
                out["image"] = image
        elif key in OVERRIDE_KEYS:
            out[key] = value
            report.mapped(key_path, f"kubespawner_override.{key}")
        elif key in FORBIDDEN_OVERRIDES:
            report.dropped(key_path, "qhub-hub sets ids, mounts and security settings from "
                           "security.users and storage, never from a profile")
        else:
            allowed = ", ".join(sorted(KubespawnerOverride.model_fields))
            report.needs_decision(key_path, f"{key!r} is not a setting qhub-hub lets a profile pass to "
                                  f"KubeSpawner (allowed: {allowed}); not carried over")
    return out


def jupyterlab_profile(report: Report, path: tuple, profile: Mapping[str, Any]) -> dict[str, Any]:
    """The profile without its access lists (the caller adds `users`/`groups`)."""
    out: dict[str, Any] = {"display_name": str(profile.get("display_name") or f"Profile {path[-1] + 1}")}
    if "display_name" in profile:
        report.mapped((*path, "display_name"), "display_name (the slug derives from it, as KubeSpawner's did)")
    else:
        report.needs_decision(path, f"no display_name; named {out['display_name']!r}")
    if profile.get("description") is not None:
        out["description"] = str(profile["description"])
    if "description" in profile:
        report.mapped((*path, "description"), "description")
    if "default" in profile:
        report.mapped((*path, "default"), "default")
        if profile["default"] is True:
            out["default"] = True
    if "kubespawner_override" in profile:
        override = kubespawner_override(report, (*path, "kubespawner_override"), profile["kubespawner_override"])
        if override:
            out["kubespawner_override"] = override
    if "profile_options" in profile:
        choices = profile.get("profile_options") or {}
        names = ", ".join(str(k) for k in choices) if isinstance(choices, Mapping) else ""
        report.needs_decision((*path, "profile_options"), f"qhub-hub profiles have no sub-options ({names}); "
                              "make each choice a profile of its own if users need it")
    return out


def dask_worker_profile(report: Report, path: tuple, worker: Any) -> dict[str, Any] | None:
    if not isinstance(worker, Mapping):
        report.needs_decision(path, "not a mapping; not carried over")
        return None
    out: dict[str, Any] = {}
    for key, value in worker.items():
        key_path = (*path, key)
        if key in WORKER_KEYS:
            out[key] = value
            report.mapped(key_path, f"profiles.dask_worker.<name>.{key}")
        elif key == "image":
            image = image_setting(report, key_path, value)
            if image:
                out["image"] = image
        elif key == "worker_threads":
            report.dropped(key_path, "qhub-hub gives a worker one thread per core of worker_cores_limit")
        elif key.startswith("scheduler_"):
            report.needs_decision(key_path, "qhub-hub sizes every scheduler alike "
                                  "(dask_gateway.scheduler_cores / scheduler_memory); set those if needed")
        else:
            report.needs_decision(key_path, f"{key!r} is not a qhub-hub worker profile setting; not carried over")
    return out


def dask_worker_profiles(report: Report, workers: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """`profiles.dask_worker` of a QHub or Nebari file (`origin`), each reported; all open to everyone."""
    report.mapped(("profiles", "dask_worker"), f"profiles.dask_worker (open to everyone, as in {origin})")
    out: dict[str, Any] = {}
    for name, worker in workers.items():
        path = ("profiles", "dask_worker", str(name))
        converted = dask_worker_profile(report, path, worker)
        if converted is not None:
            report.mapped(path, f"profiles.dask_worker[{name!r}]")
            out[str(name)] = converted
    return out


def with_access(profile: dict[str, Any], access: dict[str, Any]) -> dict[str, Any]:
    """The profile with `users`/`groups` before its kubespawner_override, for readers."""
    override = profile.get("kubespawner_override")
    out = {k: v for k, v in profile.items() if k != "kubespawner_override"}
    out.update(access)
    if override is not None:
        out["kubespawner_override"] = override
    return out
