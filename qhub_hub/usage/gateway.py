"""The Dask Gateway's side of usage: every worker's life in the ledger, scale-ups within the limits.

`DaskUsageMixin` is part of `gateway.limits.ClusterLimitMixin`, so both backends (local processes
and Kubernetes) carry it. It works from what every backend shares:

- each scheduler heartbeat lists the cluster's workers: a worker seen for the first time opens
  its interval (charged to the group the limits chose), one no longer listed is closed
  ("scale-down"), the others are marked seen; stopping a cluster closes all of its workers;
- the heartbeat's requested worker count (set by ``cluster.scale(n)`` and by adaptive scaling)
  is capped to what the limits leave room for, so adaptive scaling stays within them;
- ``cluster.scale(n)`` beyond the limits is refused at once with the figures: a `PublicException`,
  which dask-gateway-server answers 409 with the message as the body's error, and which the
  dask_gateway client raises as ``GatewayClusterError(<the message>)``. (A 403 would reach the user
  as a bare "403 Forbidden": for 403 the client shows only the HTTP reason phrase, and the
  gateway's Go proxy, like traefik, replaces any reason phrase with the standard one.) When the
  limits cannot be checked (the hub does not answer), scale() is refused the same way, with why;
- at start, intervals of clusters that no longer run (a gateway crash) are closed at their last
  seen time.

Two ways to the ledger: with `usage_db_url` (the embedded mode: the hub's SQLite file on the same
machine) the gateway writes it itself, deciding with the user's plan from the hub and its copy of
the config; without it, it asks the hub (`usage.api`, with its hub token; the Kubernetes chart's
way), which decides with its own plan and config. Neither: workers are not recorded or limited.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
from dask_gateway_server.backends.base import PublicException
from traitlets import Bool, Unicode, default
from traitlets.config import LoggingConfigurable

from ..hub_plans import PlanUnavailable, hub_client
from .dask import cluster_heartbeat, cluster_stopped, recover_clusters
from .ledger import Ledger
from .ledgers import USAGE_DB_ENV, ledger_at

PLAN_CACHE_SECONDS = 30.0
HUB_TIMEOUT = 10.0


class UsageUnavailable(RuntimeError):
    """The hub did not answer a usage request."""


class DaskUsageMixin(LoggingConfigurable):
    usage_db_url = Unicode(
        help=f"""
        SQLAlchemy URL of the usage ledger the hub records servers in (the embedded mode's SQLite
        file, or the hub's PostgreSQL database): the gateway then records Dask workers itself.
        Default: ${USAGE_DB_ENV}. Empty: the gateway asks the hub (``/hub/api/qhub/usage/dask``,
        with its hub token, which reads users' plans already), see `usage_through_hub`.
        """,
        config=True,
    )

    usage_through_hub = Bool(
        True,
        help="Without usage_db_url: record Dask workers and ask for their limits through the hub's "
        "usage endpoint (default True). False: workers are neither recorded nor limited.",
        config=True,
    )

    @default("usage_db_url")
    def _default_usage_db_url(self) -> str:
        return os.environ.get(USAGE_DB_ENV, "")

    # -- where decisions are made --

    def _usage_ledger(self) -> Ledger | None:
        return ledger_at(self.usage_db_url) if self.usage_db_url else None

    def _usage_source(self) -> Any:
        """The `QHubClusterOptions` (config and plans), or None with another options source."""
        source = getattr(self, "cluster_options", None)
        return source if hasattr(source, "plan_source") and hasattr(source, "config") else None

    def _usage_mode(self) -> str:
        if self._usage_source() is None:
            return ""
        if self.usage_db_url:
            return "ledger"
        return "hub" if self.usage_through_hub else ""

    async def _usage_plan(self, username: str) -> Any:
        cache = self.__dict__.setdefault("_qhub_usage_plans", {})
        hit = cache.get(username)
        if hit is not None and time.monotonic() - hit[0] < PLAN_CACHE_SECONDS:
            return hit[1]
        hub_plan = await self._usage_source().plan_source.fetch(username)
        cache[username] = (time.monotonic(), hub_plan)
        return hub_plan

    async def _ask_hub(self, path: str, body: dict) -> dict:
        source = self._usage_source().plan_source.resolved()
        if not source.api_url:
            raise UsageUnavailable("no hub API URL is configured")
        url = f"{source.api_url.rstrip('/')}/qhub/usage/dask{path}"
        try:
            async with hub_client(HUB_TIMEOUT) as client:
                response = await client.post(url, json=body, headers=source.headers())
        except httpx.HTTPError as e:
            raise UsageUnavailable(f"the hub at {source.api_url} cannot be reached ({type(e).__name__})") from None
        if response.status_code != 200:
            raise UsageUnavailable(f"the hub answered HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    async def usage_decide(self, cluster: Any, wanted: int, workers: list[str] | None) -> tuple[int, str] | None:
        """(workers allowed of `wanted`, refusal message), recording `workers` when given;
        None when usage is not tracked here."""
        mode = self._usage_mode()
        if not mode:
            return None
        profile = (cluster.config.get("environment") or {}).get("QHUB_DASK_PROFILE", "")
        if mode == "hub":
            answer = await self._ask_hub(f"/{cluster.name}", {"user": cluster.username, "profile": profile,
                                                              "wanted": wanted, "workers": workers})
            return int(answer["allowed"]), str(answer.get("message") or "")
        try:
            hub_plan = await self._usage_plan(cluster.username)
        except PlanUnavailable as e:
            raise UsageUnavailable(str(e)) from None
        decision = cluster_heartbeat(self._usage_ledger(), self._usage_source().config, hub_plan.plan,
                                     cluster.name, profile, wanted, workers)
        return decision.count, decision.message

    # -- the hooks --

    async def forward_message_to_scheduler(self, cluster: Any, msg: dict) -> Any:
        if msg.get("op") == "scale" and isinstance(msg.get("count"), int):
            try:
                answer = await self.usage_decide(cluster, msg["count"], None)
            except UsageUnavailable as e:  # said to the user, as a refusal is (see the module docstring)
                raise PublicException(f"Cannot check your limits now, so {cluster.name} is not scaled: "
                                      f"{e}.") from None
            if answer is not None and answer[0] < msg["count"]:
                raise PublicException(_one_line(
                    f"Cannot scale {cluster.name} to {msg['count']} workers: at most {answer[0]} fit. "
                    f"{answer[1]}"))
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict) -> Any:
        try:
            await self._usage_heartbeat(cluster_name, msg)
        except Exception as e:  # noqa: BLE001 - the heartbeat must go on; the next one retries
            self.log.warning("Usage bookkeeping of cluster %s failed: %s", cluster_name, e)
        return await super().on_cluster_heartbeat(cluster_name, msg)

    async def _usage_heartbeat(self, cluster_name: str, msg: dict) -> None:
        if not self._usage_mode():
            return
        cluster = await self.get_cluster(cluster_name)
        if cluster is None:
            return
        count = msg.get("count") if isinstance(msg.get("count"), int) else 0
        workers = sorted({str(w) for w in [*msg.get("active_workers", ()), *msg.get("closing_workers", ())]})
        answer = await self.usage_decide(cluster, count, workers)
        if answer is not None and count > answer[0]:
            self.log.info("Cluster %s asks for %d workers; its owner's limits leave room for %d: %s",
                          cluster_name, count, answer[0], answer[1])
            msg["count"] = answer[0]  # adaptive scaling and scale() stay within the limits

    async def stop_cluster(self, cluster_name: str, failed: bool = False) -> Any:
        result = await super().stop_cluster(cluster_name, failed=failed)
        try:
            mode = self._usage_mode()
            if mode == "ledger":
                cluster_stopped(self._usage_ledger(), cluster_name)
            elif mode == "hub":
                await self._ask_hub(f"/{cluster_name}", {"stopped": True})
        except Exception as e:  # noqa: BLE001 - stopping must not fail; recovery closes them later
            self.log.warning("Could not record the end of cluster %s's workers: %s", cluster_name, e)
        return result

    async def setup(self, app: Any) -> None:
        await super().setup(app)
        mode = self._usage_mode()
        if not mode:
            self.log.warning("Dask workers are not recorded in the usage ledger nor held to the usage "
                             "limits (no usage_db_url / $%s and usage_through_hub is off, or the cluster "
                             "options are not qhub's)", USAGE_DB_ENV)
            return
        from dask_gateway_server.models import ClusterStatus

        running = [c.name for c in await self.list_clusters(statuses=[ClusterStatus.PENDING,
                                                                      ClusterStatus.RUNNING])]
        # in the background: the hub may start after the gateway (it waits for its services)
        self.__dict__["_qhub_usage_recovery"] = asyncio.ensure_future(self._usage_recover(mode, running))

    async def _usage_recover(self, mode: str, running: list[str], attempts: int = 60) -> None:
        for attempt in range(attempts):
            try:
                if mode == "ledger":
                    closed = recover_clusters(self._usage_ledger(), running)
                else:
                    closed = (await self._ask_hub("", {"running": running}))["closed"]
            except Exception as e:  # noqa: BLE001 - retried; the gateway runs meanwhile
                if attempt == attempts - 1:
                    self.log.warning("Could not close the workers of clusters that no longer run: %s", e)
                    return
                await asyncio.sleep(5)
                continue
            if closed:
                self.log.info("Usage: closed %d Dask worker interval(s) of clusters that no longer run",
                              len(closed))
            return


def _one_line(text: str) -> str:
    return " ".join(text.split())

