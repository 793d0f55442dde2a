"""The chart's Grafana dashboard: a labelled ConfigMap whose queries use only metrics and labels
the hub really exports (`qhub_hub.usage.metrics`, collected from a real ledger)."""

from __future__ import annotations

import json
import re

import pytest

from qhub_hub.usage.ledger import DASK_WORKER, SERVER, Ledger, server_key, worker_key
from qhub_hub.usage.metrics import UsageCollector
from qhub_hub.usage.resources import Resources
from tests.helm import chart

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def exported(tmp_path) -> dict[str, set[str]]:
    """Sample name -> label names, from a ledger with a server and a Dask worker running."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'u.sqlite'}")
    ledger.open(SERVER, server_key("dave"), "dave", ["ml"], Resources("gpu", 3, 1, 1, 1.5), charged_group="ml")
    ledger.open(DASK_WORKER, worker_key("c", "w"), "dave", ["ml"], Resources("w", 1, 1, 0, 0.1),
                charged_group="ml", cluster="c")
    names: dict[str, set[str]] = {}
    for family in UsageCollector(ledger).collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_dashboard_configmap_queries_exported_metrics(tmp_path):
    values = chart.scenario_values(chart.scenarios()[0])
    objs = chart.objects(chart.render(values))
    config_map = chart.find(objs, "ConfigMap", "qhub-grafana-dashboard-usage")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["qhub-usage.json"])
    assert dashboard["uid"] == "qhub-usage"
    metrics = exported(tmp_path)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        used = set(re.findall(r"\b(qhub_usage_[a-z_]+)", expr))
        assert used, expr
        for name in used:
            assert name in metrics, f"{name} (in {expr}) is not exported"
            labels = set(re.findall(r"by \(([^)]*)\)", expr)[0].replace(" ", "").split(","))
            assert labels <= metrics[name] | {""}, (expr, metrics[name])
