"""An accepted Dask cluster request, and what every rendering of it shares.

`gateway_options.QHubClusterOptions` decides a `ClusterChoice` from the user's plan; the renderers
(`gateway.local`, `gateway.kubernetes`) turn it into a backend's cluster config with the helpers
here. Nothing in this module decides who may do what.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config_model import DaskWorkerProfile
from ..policy import UserPlan
from .environments import WorkerEnvironment


@dataclass(frozen=True)
class KubernetesSettings:
    """Where things are on Kubernetes: set by the Helm chart in the gateway's config."""

    default_image: str  # the user server image (singleuser.image), used when no profile names one
    conda_store_claim: str  # PVC holding <namespace>/envs/<name>, mounted read-only
    storage_claim: str | None = None  # PVC holding home/<user> and shared/...; None: no such mounts
    mount_user_storage: bool = True  # mount home and shared folders on workers (as in the notebook)
    image_pull_policy: str | None = None


@dataclass(frozen=True)
class ClusterChoice:
    """An accepted request: what the renderers turn into a backend's cluster config."""

    profile_name: str
    profile: DaskWorkerProfile
    environment: WorkerEnvironment
    versions: Mapping[str, str | None]
    max_workers: int
    idle_timeout: float  # seconds, 0: never
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None  # Kubernetes only


def managed_environment(plan: UserPlan, choice: ClusterChoice, home: str) -> dict[str, str]:
    """The variables every scheduler and worker gets (the user's extras go underneath). The image
    environment keeps the image's own PATH."""
    prefix = str(choice.environment.prefix)
    paths = {} if choice.environment.in_image else {
        "PATH": f"{prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "CONDA_PREFIX": prefix,
        "CONDA_DEFAULT_ENV": prefix,
    }
    return {
        **choice.environment_variables,
        **paths,
        "HOME": home,
        "USER": plan.unix_name,
        "LOGNAME": plan.unix_name,
        "QHUB_USER": plan.username,
        "QHUB_DASK_PROFILE": choice.profile_name,
        "QHUB_DASK_ENVIRONMENT": choice.environment.key,
    }


def dask_commands(choice: ClusterChoice) -> dict[str, list[str]]:
    """Scheduler and worker commands run by the environment's own Python.

    distributed 2026 no longer installs ``dask-scheduler``/``dask-worker``; ``python -m dask
    scheduler`` also makes sure the chosen environment's interpreter runs, whatever PATH says.
    """
    python = str(choice.environment.python)
    return {"scheduler_cmd": [python, "-m", "dask", "scheduler"],
            "worker_cmd": [python, "-m", "dask", "worker"]}


def whole_cores(cores: float) -> int:
    return max(1, math.ceil(cores))


def threads_for(profile: DaskWorkerProfile) -> int:
    return max(1, int(profile.worker_cores_limit))
