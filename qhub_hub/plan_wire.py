"""A user's plan as JSON: what the hub's plan endpoint sends and every other component reads.

The hub is the one authority on a user's plan (`hub_identity.plan_for_hub_user`: their groups
from the last login, their dynamic uid, the config in force). The Dask Gateway, the SSH check and
conda-store's login receive it through ``GET /hub/api/qhub/plans/<name>`` (`plan_api`) and turn
it back into a `UserPlan` here; they never recompute it. The payload also carries the definitions
of the profiles the plan allows, so a reader needs nothing of its own config to act on it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .config_model import DaskWorkerProfile, JupyterLabProfile, QHubConfig
from .policy import Membership, Mount, UserPlan, index_of

WIRE_VERSION = 1


@dataclass(frozen=True)
class HubPlan:
    """A plan as the hub decided it, with the definitions it refers to."""

    plan: UserPlan
    dask_worker_profiles: dict[str, DaskWorkerProfile]  # name -> definition, of the allowed ones
    config_version: str  # digest of the config the hub decided with


def _mount(mount: Mount) -> dict[str, Any]:
    return {f.name: getattr(mount, f.name) for f in fields(Mount)}


def plan_to_wire(config: QHubConfig, plan: UserPlan) -> dict[str, Any]:
    data: dict[str, Any] = {f.name: getattr(plan, f.name) for f in fields(UserPlan)}
    data["memberships"] = [{f.name: getattr(m, f.name) for f in fields(Membership)} for m in plan.memberships]
    data["home"] = _mount(plan.home)
    data["mounts"] = [_mount(m) for m in plan.mounts]
    data["jupyterlab_profiles"] = [p.model_dump(mode="json", exclude_unset=True) for p in plan.jupyterlab_profiles]
    for key in ("supplemental_gids", "readonly_gids", "dask_worker_profiles", "environment_namespaces"):
        data[key] = list(data[key])
    workers = config.profiles.dask_worker
    return {
        "wire_version": WIRE_VERSION,
        "config_version": index_of(config).version,
        "plan": data,
        "dask_worker_profiles": {name: workers[name].model_dump(mode="json", exclude_unset=True)
                                 for name in plan.dask_worker_profiles},
    }


def plan_from_wire(payload: Any) -> HubPlan:
    """The `HubPlan` of a payload of `plan_to_wire`; `ValueError` when it is not one."""
    try:
        if payload.get("wire_version") != WIRE_VERSION:
            raise ValueError(f"plan format {payload.get('wire_version')!r}, expected {WIRE_VERSION}: "
                             "run the same qhub-hub version in the hub and its services")
        data = dict(payload["plan"])
        data["memberships"] = tuple(Membership(**m) for m in data["memberships"])
        data["home"] = Mount(**data["home"])
        data["mounts"] = tuple(Mount(**m) for m in data["mounts"])
        data["jupyterlab_profiles"] = tuple(JupyterLabProfile.model_validate(p)
                                            for p in data["jupyterlab_profiles"])
        for key in ("supplemental_gids", "readonly_gids", "dask_worker_profiles", "environment_namespaces"):
            data[key] = tuple(data[key])
        plan = UserPlan(**data)
        workers = {name: DaskWorkerProfile.model_validate(spec)
                   for name, spec in payload["dask_worker_profiles"].items()}
        return HubPlan(plan, workers, str(payload["config_version"]))
    except (AttributeError, KeyError, TypeError) as e:
        raise ValueError(f"not a qhub plan: {e!r}") from None
