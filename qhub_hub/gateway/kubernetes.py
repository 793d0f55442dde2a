"""The Kubernetes rendering: a `ClusterChoice` as overrides of dask-gateway's `KubeClusterConfig`.

Scheduler and worker pods get:
- the image of the worker profile, else of the user's server profile, else the server default image;
- the conda-store namespace of the chosen environment mounted read-only at the same path as in the
  notebook, and the environment's own Python as the command (``python -m dask scheduler|worker``);
- the user's ids and security contexts exactly as in the notebook pod (`qhub_hub.pod`: uid,
  primary gid, read-write and read-only groups, no privilege escalation, all capabilities dropped);
- on workers, when storage is configured: the user's home, /shared and their group folders
  (read-only where the plan says so), as subPaths of the one storage volume.
"""

from __future__ import annotations

from typing import Any

from ..config import QHubConfig, slugify
from ..pod import CONDA_VOLUME, STORAGE_VOLUME, container_security_context, pod_security_context
from ..policy import UserPlan
from ..units import parse_bytes
from .choice import ClusterChoice, KubernetesSettings, dask_commands, managed_environment, threads_for


def kubernetes_cluster_config(config: QHubConfig, plan: UserPlan, choice: ClusterChoice,
                              settings: KubernetesSettings) -> dict[str, Any]:
    """Overrides for `KubeClusterConfig` (every key is one of its traits)."""
    profile = choice.profile
    gateway = config.dask_gateway
    root = config.conda_store.environments_root.rstrip("/")
    namespace = choice.environment.namespace

    conda_volume = {"name": CONDA_VOLUME,
                    "persistentVolumeClaim": {"claimName": settings.conda_store_claim, "readOnly": True}}
    conda_mount = {"name": CONDA_VOLUME, "mountPath": f"{root}/{namespace}", "subPath": namespace,
                   "readOnly": True}
    user_storage = settings.mount_user_storage and settings.storage_claim is not None
    # the image environment is in the image: no conda-store namespace to mount
    env_volumes = [] if choice.environment.in_image else [conda_volume]
    env_mounts = [] if choice.environment.in_image else [conda_mount]
    worker_volumes = list(env_volumes)
    worker_mounts = list(env_mounts)
    if user_storage:
        worker_volumes.append({"name": STORAGE_VOLUME,
                               "persistentVolumeClaim": {"claimName": settings.storage_claim}})
        for mount in (plan.home, *plan.mounts):
            entry: dict[str, Any] = {"name": STORAGE_VOLUME, "mountPath": mount.path,
                                     "subPath": mount.subpath}
            if mount.readonly:
                entry["readOnly"] = True
            worker_mounts.append(entry)

    pod_security = pod_security_context(plan)
    container_security = container_security_context(plan)
    labels = {"qhub/user": plan.unix_name, "qhub/worker-profile": slugify(choice.profile_name)}
    annotations = {"qhub/username": plan.username, "qhub/environment": choice.environment.key}

    overrides: dict[str, Any] = {
        "image": choice.image or settings.default_image,
        **dask_commands(choice),
        "environment": managed_environment(plan, choice, home=plan.home.path if user_storage else "/tmp"),
        "worker_cores": profile.worker_cores,
        "worker_cores_limit": profile.worker_cores_limit,
        "worker_memory": parse_bytes(profile.worker_memory),
        "worker_memory_limit": parse_bytes(profile.worker_memory_limit),
        "worker_threads": threads_for(profile),
        "scheduler_cores": gateway.scheduler_cores,
        "scheduler_cores_limit": gateway.scheduler_cores,
        "scheduler_memory": parse_bytes(gateway.scheduler_memory),
        "scheduler_memory_limit": parse_bytes(gateway.scheduler_memory),
        "cluster_max_workers": choice.max_workers,
        "idle_timeout": choice.idle_timeout,
        "scheduler_extra_pod_config": {"securityContext": pod_security, "volumes": env_volumes},
        "scheduler_extra_container_config": {"securityContext": container_security,
                                             "volumeMounts": env_mounts},
        "worker_extra_pod_config": {"securityContext": pod_security, "volumes": worker_volumes},
        "worker_extra_container_config": {"securityContext": container_security,
                                          "volumeMounts": worker_mounts},
        "scheduler_extra_pod_labels": labels,
        "worker_extra_pod_labels": labels,
        "scheduler_extra_pod_annotations": annotations,
        "worker_extra_pod_annotations": annotations,
    }
    if settings.image_pull_policy:
        overrides["image_pull_policy"] = settings.image_pull_policy
    return overrides
