"""The local rendering: a `ClusterChoice` as the cluster config of our local backend.

Schedulers and workers run as the user's uid, primary gid and supplemental gids from the plan (as
the user's server does), with the chosen environment's Python. `QHubLocalBackend` reads the ids
from this config and refuses to start anything without them.
"""

from __future__ import annotations

from typing import Any

from ..config import QHubConfig
from ..policy import UserPlan
from ..units import parse_bytes
from .choice import ClusterChoice, dask_commands, managed_environment, threads_for, whole_cores


def local_cluster_config(config: QHubConfig, plan: UserPlan, choice: ClusterChoice) -> dict[str, Any]:
    """Overrides for `QHubLocalClusterConfig` (all keys are its traits)."""
    profile = choice.profile
    gateway = config.dask_gateway
    return {
        **dask_commands(choice),
        "environment": managed_environment(plan, choice, home=plan.home.path),
        "worker_cores": whole_cores(profile.worker_cores),
        "worker_threads": threads_for(profile),
        "worker_memory": parse_bytes(profile.worker_memory_limit),
        "scheduler_cores": whole_cores(gateway.scheduler_cores),
        "scheduler_memory": parse_bytes(gateway.scheduler_memory),
        # cgroup CPU quotas (QHubLocalBackend.cgroup_name): a worker's limit, the scheduler's cores
        "worker_cpu_limit": float(profile.worker_cores_limit),
        "scheduler_cpu_limit": float(gateway.scheduler_cores),
        "cluster_max_workers": choice.max_workers,
        "idle_timeout": choice.idle_timeout,
        "uid": plan.uid,
        "gid": plan.gid,
        # read-write groups only: a read-only member reads the group's folder through an ACL
        # (qhub_hub.local), never through membership, exactly as in their server
        "supplemental_gids": list(plan.supplemental_gids),
        "unix_name": plan.unix_name,
    }
