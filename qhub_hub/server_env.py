"""Environment variables every user server gets from its plan, on Kubernetes and locally.

Extensions in the server (video chat rooms, conda-store kernels) read these instead of asking the
hub: the spawner sets them from the plan, so they show exactly what the config allows.
"""

from __future__ import annotations

from .config import QHubConfig
from .policy import UserPlan


def server_environment(config: QHubConfig, plan: UserPlan) -> dict[str, str]:
    video = config.videochat
    return {
        "QHUB_USER": plan.username,
        "QHUB_UNIX_NAME": plan.unix_name,
        "QHUB_GROUPS": ",".join(plan.group_names),
        "QHUB_ENVIRONMENT_NAMESPACES": ",".join(plan.environment_namespaces),
        "QHUB_ENVIRONMENTS_ROOT": config.conda_store.environments_root,
        "QHUB_VIDEOCHAT_URL": video.jitsi_url if video.enabled else "",
        "QHUB_VIDEOCHAT_ROOM_PREFIX": video.room_prefix,
    }
