"""Dask worker bookkeeping, the same wherever it runs: in the gateway with the ledger at hand, or in
the hub for a gateway that asks it (`api`, the Kubernetes chart's way).

`cluster_heartbeat` takes what a scheduler's heartbeat says (the workers it has, how many it wants)
and returns how many workers the limits allow; it opens an interval for each new worker (charged to
the group the limits chose), closes the ones gone ("scale-down") and marks the others seen.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from ..config_model import QHubConfig
from ..policy import UserPlan
from .ledger import DASK_WORKER, Ledger, worker_key
from .limits import Decision, Totals, decide
from .resources import Resources, worker_resources


def profile_resources(config: QHubConfig, profile_name: str) -> Resources:
    profile = config.profiles.dask_worker.get(profile_name)
    return worker_resources(profile_name, profile) if profile is not None else Resources(profile_name)


def _less(totals: Totals, cores: float) -> Totals:
    return replace(totals, dask_worker_cores=max(0.0, totals.dask_worker_cores - cores))


def cluster_room(ledger: Ledger, config: QHubConfig, plan: UserPlan, cluster: str, resources: Resources,
                 wanted: int) -> Decision:
    """How many workers `cluster` may have (of `wanted`), counting everything else its owner and
    their groups run."""
    mine, by_group = ledger.totals(plan.username, plan.group_names)
    for interval in ledger.open_intervals(DASK_WORKER, key_prefix=f"dask/{cluster}/"):
        mine = _less(mine, interval.cores)
        if interval.charged_group in by_group:
            by_group[interval.charged_group] = _less(by_group[interval.charged_group], interval.cores)
    return decide(config.limits, plan.username, plan.group_names, resources.worker_unit(), max(0, wanted),
                  user_usage=mine, group_usage=by_group, currency=config.usage.currency, what="workers")


def cluster_heartbeat(ledger: Ledger, config: QHubConfig, plan: UserPlan, cluster: str, profile_name: str,
                      wanted: int, workers: Collection[str] | None) -> Decision:
    """The limits' answer for `wanted` workers; records `workers` (None: only decide)."""
    resources = profile_resources(config, profile_name)
    decision = cluster_room(ledger, config, plan, cluster, resources, wanted)
    if workers is None:
        return decision
    recorded = {i.key for i in ledger.open_intervals(DASK_WORKER, key_prefix=f"dask/{cluster}/")}
    live = {worker_key(cluster, str(w)) for w in workers}
    charged = decision.charged_group or plan.primary_group
    for key in sorted(live - recorded):
        ledger.open(DASK_WORKER, key, plan.username, plan.group_names, resources, charged_group=charged,
                    cluster=cluster)
    ledger.close_many(recorded - live, "scale-down")
    ledger.touch(recorded & live)
    return decision


def cluster_stopped(ledger: Ledger, cluster: str) -> int:
    keys = [i.key for i in ledger.open_intervals(DASK_WORKER, key_prefix=f"dask/{cluster}/")]
    return ledger.close_many(keys, "cluster-stopped")


def recover_clusters(ledger: Ledger, running: Collection[str]) -> list[str]:
    """Close, at their last seen time, the workers of clusters that no longer run."""
    keep = {i.key for i in ledger.open_intervals(DASK_WORKER) if i.cluster in set(running)}
    return ledger.recover(DASK_WORKER, running=keep)
