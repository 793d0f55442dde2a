"""Dask scheduler preload: the gateway hears of a new scheduler as soon as it listens.

dask-gateway's own preload (``dask_gateway.scheduler_preload``, loaded just before this file)
starts a heartbeat loop whose first beat waits a fixed 0.25 s. The gateway marks the cluster
running, and `new_cluster()` returns, only when that beat brings the scheduler's addresses, so
every cluster start paid those 0.25 s. This preload sends the first heartbeat at once (the
scheduler already listens when preloads start). The loop goes on unchanged; its own first beat
is a repeat, which is harmless because a heartbeat reports state, not events.

Loaded by file path in the cluster's environment (like `qhub_peer_guard.py`): it imports only the
standard library.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("distributed.scheduler")


async def dask_setup(scheduler: Any) -> None:
    service = scheduler.services.get("gateway")  # set by dask-gateway's preload
    if service is None:
        logger.warning("qhub_prompt_heartbeat: no dask-gateway service on this scheduler; nothing to do")
        return
    try:
        await service.heartbeat()
    except Exception as e:  # noqa: BLE001 - the loop's own beat retries with backoff
        logger.warning("qhub_prompt_heartbeat: the first heartbeat failed (%s); the heartbeat loop "
                       "retries", e)
