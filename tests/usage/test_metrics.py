"""The usage metrics after a scripted day on a fake clock, read back with prometheus_client's
parser (the hub serves the same collector on /hub/metrics: tests/usage/test_hub_usage.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from qhub_hub.usage.hub import ledger_url
from qhub_hub.usage.ledger import DASK_WORKER, SERVER, Ledger, server_key, worker_key
from qhub_hub.usage.metrics import UsageCollector
from qhub_hub.usage.resources import Resources
from tests.usage.support import FakeClock

GPU = Resources("gpu", cores=3.0, memory=10 * 2**30, gpus=1, cost_per_hour=1.5)
SMALL = Resources("small", cores=0.5, memory=2**30, cost_per_hour=0.05)
WORKER = Resources("Large Worker", cores=2.0, memory=8 * 2**30, cost_per_hour=0.12)


def scrape(ledger: Ledger) -> dict[tuple, float]:
    registry = CollectorRegistry()
    registry.register(UsageCollector(ledger))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_scripted_day(tmp_path: Path):
    clock = FakeClock()
    ledger = Ledger(f"sqlite:///{tmp_path / 'u.sqlite'}", clock)
    # 09:00 dave starts a GPU server (ml); 09:30 bob a small one (analysts)
    ledger.open(SERVER, server_key("dave"), "dave", ["ml"], GPU, charged_group="ml")
    clock.advance(1800)
    ledger.open(SERVER, server_key("bob"), "bob", ["analysts"], SMALL, charged_group="analysts")
    # 10:00 dave's cluster: 3 workers; 11:00 scaled to 1
    clock.advance(1800)
    for i in range(3):
        ledger.open(DASK_WORKER, worker_key("c1", str(i)), "dave", ["ml"], WORKER, charged_group="ml", cluster="c1")
    clock.advance(3600)
    ledger.close_many([worker_key("c1", "1"), worker_key("c1", "2")], "scale-down")
    # 12:00 bob is culled; 13:00 the scrape
    clock.advance(3600)
    ledger.close(server_key("bob"), "stop")
    clock.advance(3600)
    got = scrape(ledger)

    def value(name, **labels):
        return got.get((name, tuple(sorted(labels.items()))))

    dave_gpu = {"user": "dave", "group": "ml", "profile": "gpu"}
    dave_dask = {"user": "dave", "group": "ml", "profile": "Large Worker"}
    bob = {"user": "bob", "group": "analysts", "profile": "small"}
    assert value("qhub_usage_running_servers", **dave_gpu) == 1
    assert value("qhub_usage_running_servers", **bob) is None  # culled
    assert value("qhub_usage_requested_gpus", **dave_gpu) == 1
    assert value("qhub_usage_requested_cpu_cores", **dave_gpu, kind="server") == 3.0
    assert value("qhub_usage_requested_memory_bytes", **dave_dask, kind="dask_worker") == 8 * 2**30
    assert value("qhub_usage_dask_clusters", **dave_dask) == 1
    assert value("qhub_usage_dask_workers", **dave_dask) == 1
    assert value("qhub_usage_dask_worker_cores", **dave_dask) == 2.0
    assert value("qhub_usage_cost_per_hour", **dave_gpu, kind="server") == 1.5
    assert value("qhub_usage_cost_per_hour", **dave_dask, kind="dask_worker") == 0.12
    # counters: seconds and cost so far, exact to the second
    assert value("qhub_usage_seconds_total", **dave_gpu, kind="server") == 4 * 3600
    assert value("qhub_usage_seconds_total", **bob, kind="server") == 2.5 * 3600
    assert value("qhub_usage_seconds_total", **dave_dask, kind="dask_worker") == 3 * 3600 + 2 * 3600
    assert value("qhub_usage_cost_total", **dave_gpu, kind="server") == pytest.approx(6.0)
    assert value("qhub_usage_cost_total", **dave_dask, kind="dask_worker") == pytest.approx(5 * 0.12)
    assert value("qhub_usage_cost_total", **bob, kind="server") == pytest.approx(0.125)


@pytest.mark.parametrize(("hub_db", "env", "expected"), [
    ("sqlite:////srv/jupyterhub/jupyterhub.sqlite", "", "sqlite:////srv/jupyterhub/qhub-usage.sqlite"),
    ("postgresql://hub:pw@db/hub", "", "postgresql://hub:pw@db/hub"),
    ("sqlite://", "", "sqlite://"),
    ("postgresql://hub:pw@db/hub", "postgresql://usage@db/usage", "postgresql://usage@db/usage"),
])
def test_where_the_ledger_lives(monkeypatch, hub_db, env, expected):
    monkeypatch.setenv("QHUB_USAGE_DB", env)
    assert ledger_url(hub_db) == expected


def test_counters_from_the_totals_equal_a_scan_of_the_history(tmp_path: Path):
    import random

    from qhub_hub.usage.ledger import rebuild_totals

    rng = random.Random(7)
    clock = FakeClock()
    ledger = Ledger(f"sqlite:///{tmp_path / 'u.sqlite'}", clock)
    open_keys: list[str] = []
    for step in range(300):
        clock.advance(rng.randint(1, 900))
        if open_keys and rng.random() < 0.45:
            key = open_keys.pop(rng.randrange(len(open_keys)))
            if rng.random() < 0.2:
                ledger.recover(SERVER if key.startswith("server/") else DASK_WORKER,
                               running=set(open_keys), key_prefix=key)
            else:
                ledger.close(key, "stop")
        else:
            user = f"u{rng.randint(0, 5)}"
            if rng.random() < 0.5:
                key = server_key(user, str(step))
                ledger.open(SERVER, key, user, ["g"], rng.choice([GPU, SMALL]), charged_group=rng.choice(["g", None]))
            else:
                key = worker_key(f"c{step % 4}", str(step))
                ledger.open(DASK_WORKER, key, user, ["g"], WORKER, charged_group="g", cluster=f"c{step % 4}")
            open_keys.append(key)
            if rng.random() < 0.3:
                ledger.touch(open_keys)
    scan = {(r.key[0], r.key[1] or "", r.key[2], r.key[3]): (r.intervals, r.seconds, r.cost)
            for r in ledger.summary(0.0, clock.now, by=("username", "charged_group", "profile", "kind"))}
    counted = {r.key: (r.intervals, r.seconds, r.cost) for r in ledger.counters()}
    assert counted.keys() == scan.keys()
    for key, (n, seconds, cost) in scan.items():
        assert counted[key][0] == n and counted[key][1] == pytest.approx(seconds) and \
            counted[key][2] == pytest.approx(cost), key
    rebuild_totals(ledger)
    assert {r.key: (r.intervals, round(r.seconds, 6)) for r in ledger.counters()} == \
        {k: (v[0], round(v[1], 6)) for k, v in counted.items()}
