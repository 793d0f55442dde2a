"""The Dask Gateway's side of usage: every worker's life in the ledger, scale-ups within the limits.

`DaskUsageMixin` is part of `gateway.limits.ClusterLimitMixin`, so both backends (local processes
and Kubernetes) carry it. It works from what every backend shares:

- each scheduler heartbeat lists the cluster's workers: a worker seen for the first time opens
  its interval (charged to the group the limits chose), one no longer listed is closed
  ("scale-down"), the others are marked seen; stopping a cluster closes all of its workers;
- the heartbeat's requested worker count (set by ``cluster.scale(n)`` and by adaptive scaling)
  is capped to what the limits leave room for, so adaptive scaling stays within them;
- ``cluster.scale(n)`` beyond the limits is refused at once with HTTP 403 and the figures;
- at start, intervals of clusters that no longer run (a gateway crash) are closed at their last
  seen time.

The user's groups come from the hub (their plan, `hub_plans`), the worker profile's cores and cost
from the plan's profile definitions, the limits from the gateway's copy of the config.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from .hub import USAGE_DB_ENV, ledger_at
from .ledger import DASK_WORKER, Ledger, worker_key
from .limits import Decision, decide
from .resources import Resources, worker_resources

PLAN_CACHE_SECONDS = 30.0


class DaskUsageMixin(LoggingConfigurable):
    usage_db_url = Unicode(
        help=f"""
        SQLAlchemy URL of the usage ledger, the same database the hub records servers in (the
        hub's PostgreSQL database, or the embedded mode's SQLite file). Default: ${USAGE_DB_ENV}.
        Empty: Dask workers are neither recorded nor limited (a warning says so at start).
        """,
        config=True,
    )

    @default("usage_db_url")
    def _default_usage_db_url(self) -> str:
        import os

        return os.environ.get(USAGE_DB_ENV, "")

    # -- what we need to decide --

    def _usage_ledger(self) -> Ledger | None:
        if not self.usage_db_url:
            return None
        return ledger_at(self.usage_db_url)

    def _usage_source(self) -> Any:
        """The `QHubClusterOptions` (config and plans), or None with another options source."""
        source = getattr(self, "cluster_options", None)
        return source if hasattr(source, "plan_source") and hasattr(source, "config") else None

    async def _usage_plan(self, username: str) -> Any:
        cache = self.__dict__.setdefault("_qhub_usage_plans", {})
        hit = cache.get(username)
        if hit is not None and time.monotonic() - hit[0] < PLAN_CACHE_SECONDS:
            return hit[1]
        hub_plan = await self._usage_source().plan_source.fetch(username)
        cache[username] = (time.monotonic(), hub_plan)
        return hub_plan

    async def _usage_worker_resources(self, cluster: Any, hub_plan: Any) -> Resources:
        env = cluster.config.get("environment") or {}
        name = env.get("QHUB_DASK_PROFILE", "")
        profile = hub_plan.dask_worker_profiles.get(name)
        if profile is None:
            return Resources(profile=name)
        return worker_resources(name, profile)

    async def usage_room(self, cluster: Any, wanted: int) -> tuple[Decision, Resources, Any] | None:
        """How many workers `cluster` may have (of `wanted`), given everything else its owner and
        their groups run; None when usage is not tracked here."""
        ledger, source = self._usage_ledger(), self._usage_source()
        if ledger is None or source is None:
            return None
        hub_plan = await self._usage_plan(cluster.username)
        plan = hub_plan.plan
        resources = await self._usage_worker_resources(cluster, hub_plan)
        config = source.config
        mine, by_group = ledger.totals(plan.username, plan.group_names)
        # this cluster's own workers are what is being decided: count everything else
        for interval in ledger.open_intervals(DASK_WORKER, key_prefix=f"dask/{cluster.name}/"):
            mine = _less(mine, interval.cores)
            if interval.charged_group in by_group:
                by_group[interval.charged_group] = _less(by_group[interval.charged_group], interval.cores)
        decision = decide(config.limits, plan.username, plan.group_names, resources.worker_unit(), wanted,
                          user_usage=mine, group_usage=by_group, currency=config.usage.currency,
                          what="workers")
        return decision, resources, plan

    # -- the hooks --

    async def forward_message_to_scheduler(self, cluster: Any, msg: dict) -> Any:
        if msg.get("op") == "scale" and isinstance(msg.get("count"), int):
            room = await self.usage_room(cluster, msg["count"])
            if room is not None and not room[0].allowed:
                raise web.HTTPForbidden(reason=_one_line(
                    f"Cannot scale {cluster.name} to {msg['count']} workers: at most {room[0].count} "
                    f"fit. {room[0].message}"))
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict) -> Any:
        try:
            await self._usage_heartbeat(cluster_name, msg)
        except Exception:  # noqa: BLE001 - the heartbeat must go on; the next one retries
            self.log.exception("Usage bookkeeping of cluster %s failed", cluster_name)
        return await super().on_cluster_heartbeat(cluster_name, msg)

    async def _usage_heartbeat(self, cluster_name: str, msg: dict) -> None:
        ledger = self._usage_ledger()
        if ledger is None or self._usage_source() is None:
            return
        cluster = await self.get_cluster(cluster_name)
        if cluster is None:
            return
        count = msg.get("count")
        room = await self.usage_room(cluster, count if isinstance(count, int) else 0)
        if room is None:
            return
        decision, resources, plan = room
        if isinstance(count, int) and count > decision.count:
            self.log.info("Cluster %s asks for %d workers; its owner's limits leave room for %d: %s",
                          cluster_name, count, decision.count, decision.message)
            msg["count"] = decision.count  # adaptive scaling and scale() stay within the limits
        live = {str(w) for w in [*msg.get("active_workers", ()), *msg.get("closing_workers", ())]}
        prefix = f"dask/{cluster_name}/"
        recorded = {i.key for i in ledger.open_intervals(DASK_WORKER, key_prefix=prefix)}
        keys = {worker_key(cluster_name, w): w for w in live}
        charged = decision.charged_group or plan.primary_group
        for key in sorted(set(keys) - recorded):
            ledger.open(DASK_WORKER, key, plan.username, plan.group_names, resources,
                        charged_group=charged, cluster=cluster_name)
        ledger.close_many(recorded - set(keys), "scale-down")
        ledger.touch(recorded & set(keys))

    async def stop_cluster(self, cluster_name: str, failed: bool = False) -> Any:
        result = await super().stop_cluster(cluster_name, failed=failed)
        ledger = self._usage_ledger()
        if ledger is not None:
            keys = [i.key for i in ledger.open_intervals(DASK_WORKER, key_prefix=f"dask/{cluster_name}/")]
            ledger.close_many(keys, "cluster-stopped")
        return result

    async def setup(self, app: Any) -> None:
        await super().setup(app)
        ledger = self._usage_ledger()
        if ledger is None:
            self.log.warning("usage_db_url (or $%s) is unset: Dask workers are not recorded in the "
                             "usage ledger and not held to the usage limits", USAGE_DB_ENV)
            return
        from dask_gateway_server.models import ClusterStatus

        running = await self.list_clusters(statuses=[ClusterStatus.PENDING, ClusterStatus.RUNNING])
        names = {c.name for c in running}
        stale = [i.key for i in ledger.open_intervals(DASK_WORKER) if i.cluster not in names]
        if stale:
            ledger.recover(DASK_WORKER, running={i.key for i in ledger.open_intervals(DASK_WORKER)
                                                 if i.cluster in names})
            self.log.info("Usage: closed %d Dask worker interval(s) of clusters that no longer run",
                          len(stale))


def _less(totals: Any, cores: float) -> Any:
    from dataclasses import replace

    return replace(totals, dask_worker_cores=max(0.0, totals.dask_worker_cores - cores))


def _one_line(text: str) -> str:
    return " ".join(text.split())
