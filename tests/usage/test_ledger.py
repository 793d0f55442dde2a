"""The ledger on a fake clock: sums exact to the second across spawn, stop, cull, restart, crash."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from qhub_hub.usage.ledger import DASK_WORKER, SERVER, Ledger, month_start, server_key, worker_key
from qhub_hub.usage.resources import Resources
from tests.usage.support import T0, FakeClock

GPU = Resources("gpu", cores=3.0, memory=10 * 2**30, gpus=1, cost_per_hour=1.5)
SMALL = Resources("small", cores=0.5, memory=2**30, cost_per_hour=0.05)
WORKER = Resources("Large Worker", cores=2.0, memory=8 * 2**30, cost_per_hour=0.12)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'usage.sqlite'}"


def test_a_session_is_opened_and_closed_exactly(url, clock):
    ledger = Ledger(url, clock)
    ledger.open(SERVER, server_key("dave"), "dave", ["ml", "users"], GPU, charged_group="ml")
    clock.advance(3 * 3600 + 17)  # 3 h 0 min 17 s
    mine, groups = ledger.totals("dave", ["ml", "users"])
    assert (mine.servers, mine.gpus) == (1, 1)  # still running
    assert mine.gpu_hours * 3600 == pytest.approx(3 * 3600 + 17, abs=1e-6)
    assert groups["ml"].gpu_hours == mine.gpu_hours and groups["users"].gpu_hours == 0
    assert ledger.close(server_key("dave"), "stop")
    assert not ledger.close(server_key("dave"), "stop")  # a second stop changes nothing
    clock.advance(3600)
    mine, groups = ledger.totals("dave", ["ml"])
    assert (mine.servers, mine.gpus) == (0, 0)
    assert round(mine.gpu_hours * 3600) == 3 * 3600 + 17
    assert round(mine.core_hours * 3600) == 3 * (3 * 3600 + 17)
    assert mine.cost == pytest.approx(1.5 * (3 * 3600 + 17) / 3600)
    [row] = ledger.intervals(since=T0)
    assert (row.start, row.end, row.end_reason, row.groups) == (T0, T0 + 3 * 3600 + 17, "stop", ("ml", "users"))


def test_cull_and_stop_are_both_recorded_with_their_reason(url, clock):
    ledger = Ledger(url, clock)
    ledger.open(SERVER, server_key("bob"), "bob", ["analysts"], SMALL)
    ledger.open(SERVER, server_key("erin"), "erin", ["finance"], SMALL)
    clock.advance(600)
    ledger.close(server_key("bob"), "cull")
    clock.advance(60)
    ledger.close(server_key("erin"), "stop")
    rows = {r.username: r for r in ledger.intervals()}
    assert (rows["bob"].end - rows["bob"].start, rows["bob"].end_reason) == (600, "cull")
    assert (rows["erin"].end - rows["erin"].start, rows["erin"].end_reason) == (660, "stop")


def test_a_hub_restart_keeps_running_sessions_and_a_crash_closes_at_the_last_seen_time(url, clock):
    ledger = Ledger(url, clock)
    ledger.open(SERVER, server_key("dave"), "dave", ["ml"], GPU, charged_group="ml")
    ledger.open(SERVER, server_key("carol"), "carol", ["ml"], SMALL, charged_group="ml")
    for _ in range(5):  # the hub refreshes `seen` every minute
        clock.advance(60)
        ledger.touch([server_key("dave"), server_key("carol")])
    clock.advance(45)  # ... then crashes; carol's server dies with it, dave's keeps running
    ledger.dispose()
    clock.advance(1000)  # the hub is down for a while
    restarted = Ledger(url, clock)  # a new process, the same database
    closed = restarted.recover(SERVER, running={server_key("dave")})
    assert closed == [server_key("carol")]
    rows = {r.username: r for r in restarted.intervals()}
    assert rows["carol"].end - rows["carol"].start == 300 and rows["carol"].end_reason == "recovered"
    assert rows["dave"].end is None  # still running: still open, counted until now
    mine, _ = restarted.totals("dave", [])
    assert round(mine.gpu_hours * 3600) == 300 + 45 + 1000


def test_dask_workers_scaled_up_and_down(url, clock):
    ledger = Ledger(url, clock)
    for i in range(3):  # scale(3)
        ledger.open(DASK_WORKER, worker_key("c1", f"w{i}"), "carol", ["data-eng", "ml"], WORKER,
                    charged_group="ml", cluster="c1")
    clock.advance(120)
    mine, groups = ledger.totals("carol", ["ml", "data-eng"])
    assert mine.dask_worker_cores == 6 and groups["ml"].dask_worker_cores == 6
    assert groups["data-eng"].dask_worker_cores == 0
    ledger.close(worker_key("c1", "w2"), "scale-down")  # scale(2)
    clock.advance(60)
    ledger.close_many([worker_key("c1", "w0"), worker_key("c1", "w1")], "cluster-stopped")
    mine, _ = ledger.totals("carol", [])
    assert mine.dask_worker_cores == 0 and mine.servers == 0
    assert round(mine.core_hours * 3600) == 2 * (180 + 180 + 120)  # worker-seconds x 2 cores
    assert mine.cost == pytest.approx(0.12 * (180 + 180 + 120) / 3600)


def test_monthly_totals_start_at_the_first_of_the_month(url, clock):
    clock.now = month_start(T0) - 1800  # started half an hour before November
    ledger = Ledger(url, clock)
    ledger.open(SERVER, server_key("dave"), "dave", ["ml"], GPU, charged_group="ml")
    clock.advance(3600)
    mine, _ = ledger.totals("dave", [])
    assert round(mine.gpu_hours * 3600) == 1800  # only November counts


def test_reopening_a_key_closes_the_forgotten_interval(url, clock):
    ledger = Ledger(url, clock)
    ledger.open(SERVER, server_key("dave"), "dave", ["ml"], GPU)
    clock.advance(10)
    ledger.open(SERVER, server_key("dave"), "dave", ["ml"], SMALL)
    rows = ledger.intervals()
    assert [(r.profile, r.end_reason, r.end) for r in rows] == [("gpu", "replaced", T0 + 10), ("small", None, None)]


def test_measured_figures_are_kept(url, clock):
    ledger = Ledger(url, clock)
    ledger.open(SERVER, server_key("dave"), "dave", ["ml"], SMALL)
    clock.advance(30)
    ledger.close(server_key("dave"), "stop", cpu_seconds=12.5, peak_memory=123456)
    [row] = ledger.intervals()
    assert (row.cpu_seconds, row.peak_memory) == (12.5, 123456)


def test_the_database_is_real_sqlite_in_wal_mode(url, tmp_path):
    Ledger(url).open(SERVER, server_key("x"), "x", [], SMALL)
    conn = sqlite3.connect(tmp_path / "usage.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT username, profile FROM qhub_usage_intervals").fetchall() == [("x", "small")]


def test_a_stop_long_after_the_last_sighting_counts_until_then(url, clock):
    ledger = Ledger(url, clock)
    ledger.open(SERVER, server_key("carol"), "carol", ["ml"], SMALL)
    clock.advance(120)
    ledger.touch([server_key("carol")])
    clock.advance(30)
    assert ledger.close(server_key("carol"), "stop", stale_after=180)  # seen 30 s ago: now
    ledger.open(SERVER, server_key("dave"), "dave", ["ml"], SMALL)
    clock.advance(60)
    ledger.touch([server_key("dave")])
    clock.advance(3600)  # the hub was down; the server died meanwhile
    assert ledger.close(server_key("dave"), "stop", stale_after=180)
    rows = {r.username: r for r in ledger.intervals(since=T0)}
    assert (rows["carol"].end - rows["carol"].start, rows["carol"].end_reason) == (150, "stop")
    assert (rows["dave"].end - rows["dave"].start, rows["dave"].end_reason) == (60, "recovered")
