"""A per-user limit on running Dask clusters, for any dask-gateway backend.

`dask_gateway.max_clusters_per_user` in the qhub config (or the backend's own
``max_clusters_per_user``) caps how many pending or running clusters one user may have; a request
over the cap is refused with a message saying how to free one (dask-gateway answers 422).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.models import ClusterStatus
from traitlets import Integer
from traitlets.config import LoggingConfigurable

from ..usage.gateway import DaskUsageMixin


class ClusterLimitMixin(DaskUsageMixin, LoggingConfigurable):
    """Put before the backend class: ``class B(ClusterLimitMixin, LocalBackend)``.

    It also records Dask workers in the usage ledger and holds scale-ups to the usage limits
    (`qhub_hub.usage.gateway.DaskUsageMixin`).
    """

    max_clusters_per_user = Integer(
        None,
        allow_none=True,
        min=0,
        help="""
        Most pending or running clusters one user may have; 0: no limit.

        Unset (the default): `dask_gateway.max_clusters_per_user` of the qhub config, read through
        `c.Backend.cluster_options` (a `qhub_hub.gateway_options.QHubClusterOptions`).
        """,
        config=True,
    )

    def _cluster_limit(self) -> int:
        if self.max_clusters_per_user is not None:
            return self.max_clusters_per_user
        source = getattr(self, "cluster_options", None)
        if hasattr(source, "max_clusters_per_user"):
            return int(source.max_clusters_per_user())
        return 0

    async def start_cluster(self, user: Any, cluster_options: Any) -> str:
        limit = self._cluster_limit()
        if not limit:
            return await super().start_cluster(user, cluster_options)
        locks = self.__dict__.setdefault("_qhub_user_locks", defaultdict(asyncio.Lock))
        async with locks[user.name]:  # two requests at once cannot both take the last place
            active = await self.list_clusters(
                username=user.name, statuses=[ClusterStatus.PENDING, ClusterStatus.RUNNING])
            if len(active) >= limit:
                names = ", ".join(sorted(c.name for c in active))
                raise PublicException(
                    f"{user.name!r} already has {len(active)} Dask cluster(s) running, the most "
                    f"allowed (dask_gateway.max_clusters_per_user = {limit}): {names}. Stop one "
                    "(cluster.shutdown(), or Gateway().stop_cluster(name)) and try again.")
            return await super().start_cluster(user, cluster_options)
