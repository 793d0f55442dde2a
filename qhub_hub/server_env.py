"""Environment variables every user server gets from its plan, on Kubernetes and locally.

Extensions in the server (video chat rooms, conda-store kernels) read these instead of asking the
hub: the spawner sets them from the plan, so they show exactly what the config allows.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from .config import QHubConfig
from .policy import UserPlan


def group_video_rooms(config: QHubConfig, plan: UserPlan, room_key: bytes) -> dict[str, str]:
    """The Jitsi room of each of the user's groups: ``<prefix>-group-<group>-<16 hex of HMAC>``.

    The HMAC is keyed by a hub secret no user server holds, so on a shared Jitsi server nobody can
    guess a group's room from its name, and a user only learns the rooms of their own groups.
    """
    prefix = config.videochat.room_prefix.lower()
    return {
        group: f"{prefix}-group-{group}-"
        + hmac.new(room_key, f"{prefix}/{group}".encode(), hashlib.sha256).hexdigest()[:16]
        for group in plan.group_names
    }


def server_environment(config: QHubConfig, plan: UserPlan, *, room_key: bytes | None = None) -> dict[str, str]:
    """The QHUB_* variables of the user's server. With `room_key` (a hub secret), group video
    rooms get unguessable names (QHUB_VIDEOCHAT_ROOMS, a JSON object group -> room)."""
    video = config.videochat
    env = {
        "QHUB_USER": plan.username,
        "QHUB_UNIX_NAME": plan.unix_name,
        "QHUB_GROUPS": ",".join(plan.group_names),
        "QHUB_ENVIRONMENT_NAMESPACES": ",".join(plan.environment_namespaces),
        "QHUB_ENVIRONMENTS_ROOT": config.conda_store.environments_root,
        "QHUB_VIDEOCHAT_URL": video.jitsi_url if video.enabled else "",
        "QHUB_VIDEOCHAT_ROOM_PREFIX": video.room_prefix,
    }
    if room_key and video.enabled:
        env["QHUB_VIDEOCHAT_ROOMS"] = json.dumps(group_video_rooms(config, plan, room_key), sort_keys=True)
    return env
