"""Prometheus metrics of usage, read from the ledger at each scrape (so they include the Dask
workers the gateway records, and survive hub restarts).

Registered in prometheus_client's default registry of the hub process, so they are served by the
hub's own ``/hub/metrics`` (where Prometheus already scrapes JupyterHub; a token with the
``read:metrics`` scope, or ``c.JupyterHub.authenticate_prometheus = False``). Labels: ``user``,
``group`` (the group the usage is charged to) and ``profile``; ``kind`` (``server`` or
``dask_worker``) where both count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .ledger import DASK_WORKER, SERVER, Ledger

LABELS = ["user", "group", "profile"]
PROMETHEUS_SERVICE = "prometheus"  # the chart's hub service Prometheus scrapes as (metrics.prometheusToken)


def prometheus_service(token: str) -> tuple[dict, dict]:
    """The hub service Prometheus scrapes /hub/metrics as, and its role: read:metrics, nothing else."""
    return ({"name": PROMETHEUS_SERVICE, "api_token": token, "display": False},
            {"name": PROMETHEUS_SERVICE, "services": [PROMETHEUS_SERVICE], "scopes": ["read:metrics"]})


class UsageCollector(Collector):
    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def collect(self) -> Iterator:
        now = self.ledger.clock()
        g = {name: GaugeMetricFamily(f"qhub_usage_{name}", text, labels=labels) for name, text, labels in [
            ("running_servers", "Servers running now", LABELS),
            ("requested_cpu_cores", "CPU cores requested by what runs now", [*LABELS, "kind"]),
            ("requested_memory_bytes", "Memory requested by what runs now", [*LABELS, "kind"]),
            ("requested_gpus", "GPUs requested by running servers", LABELS),
            ("dask_clusters", "Dask clusters with running workers", LABELS),
            ("dask_workers", "Dask workers running now", LABELS),
            ("dask_worker_cores", "Cores of the Dask workers running now", LABELS),
            ("cost_per_hour", "What runs now costs per hour (usage.currency)", [*LABELS, "kind"]),
        ]}
        sums: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        clusters: dict[tuple, set] = defaultdict(set)
        for i in self.ledger.open_intervals():
            labels = (i.username, i.charged_group or "", i.profile)
            kinded = (*labels, i.kind)
            sums["requested_cpu_cores"][kinded] += i.cores
            sums["requested_memory_bytes"][kinded] += i.memory
            sums["cost_per_hour"][kinded] += i.cost_per_hour
            if i.kind == SERVER:
                sums["running_servers"][labels] += 1
                sums["requested_gpus"][labels] += i.gpus
            elif i.kind == DASK_WORKER:
                sums["dask_workers"][labels] += 1
                sums["dask_worker_cores"][labels] += i.cores
                clusters[labels].add(i.cluster)
        for labels, names in clusters.items():
            sums["dask_clusters"][labels] = len(names)
        for name, family in g.items():
            for labels, value in sorted(sums[name].items()):
                family.add_metric(list(labels), value)
            yield family
        seconds = CounterMetricFamily("qhub_usage_seconds", "Seconds run, closed and running intervals",
                                      labels=[*LABELS, "kind"])
        cost = CounterMetricFamily("qhub_usage_cost", "Cost so far (usage.currency)", labels=[*LABELS, "kind"])
        for row in self.ledger.counters(now):  # closed totals + open intervals: no history scan
            labels = [row.key[0], row.key[1] or "", row.key[2], row.key[3]]
            seconds.add_metric(labels, row.seconds)
            cost.add_metric(labels, row.cost)
        yield seconds
        yield cost


_registered: dict[str, UsageCollector] = {}


def register_collector(ledger: Ledger) -> UsageCollector:
    """Add the ledger's metrics to the default registry (once per ledger URL and process)."""
    collector = _registered.get(ledger.url)
    if collector is None:
        collector = _registered[ledger.url] = UsageCollector(ledger)
        REGISTRY.register(collector)
    return collector
