"""Benchmark: the usage ledger (qhub_hub.usage).

    /opt/qhub-hub/bin/python benchmarks/usage.py [--events 2000] [--users 100]

1. Write cost per event: a server session opened and closed through `Ledger.open/close` (each its
   own transaction, as in the hub), against the anchor of the same run: one plain sqlite3 INSERT +
   COMMIT per event into the same file settings (WAL, synchronous=NORMAL) — the database's own cost.
2. A year of usage of `--users` generated users (server sessions on workdays, Dask clusters with
   workers, one charged group each) bulk-loaded, then the `qhub-hub usage` report for the whole
   year by user, by group and by profile (target: <= 1 s each), against the anchor of one plain
   full scan of the same table (`SELECT count(*), sum(end - start)`).
3. The limit check's figures for one spawn (`Ledger.totals`, on the same year of data), and one
   scrape of the usage metrics (what /hub/metrics adds; it runs in the hub's event loop).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from qhub_hub.usage.ledger import DASK_WORKER, SERVER, Ledger, intervals, rebuild_totals, server_key  # noqa: E402
from qhub_hub.usage.metrics import UsageCollector  # noqa: E402
from qhub_hub.usage.report import usage_rows  # noqa: E402
from qhub_hub.usage.resources import Resources  # noqa: E402

YEAR_START = datetime(2025, 12, 1, tzinfo=UTC).timestamp()
YEAR_END = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
PROFILES = [Resources("small", 0.5, 2**30, 0, 0.05), Resources("medium", 1.0, 2 * 2**30, 0, 0.10),
            Resources("highmem", 2.0, 8 * 2**30, 0, 0.40), Resources("gpu", 3.0, 10 * 2**30, 1, 1.50)]
WORKER = Resources("Large Worker", 2.0, 8 * 2**30, 0, 0.12)
GROUPS = ["analysts", "data-eng", "ml", "finance", "research"]


def write_cost(path: Path, events: int) -> tuple[float, float]:
    """Microseconds per event: through the ledger, and plain sqlite3 (the anchor)."""
    ledger = Ledger(f"sqlite:///{path / 'ledger.sqlite'}")
    start = time.perf_counter()
    for i in range(events):
        key = server_key(f"user{i % 100}", str(i))
        ledger.open(SERVER, key, f"user{i % 100}", ["ml", "users"], PROFILES[i % 4], charged_group="ml")
        ledger.close(key, "stop")
    ours = (time.perf_counter() - start) / events * 1e6
    ledger.dispose()

    conn = sqlite3.connect(path / "raw.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, key TEXT, username TEXT, start REAL, end REAL)")
    start = time.perf_counter()
    for i in range(events):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (key, username, start) VALUES (?, ?, ?)", (str(i), "u", time.time()))
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute("UPDATE t SET end = ? WHERE id = last_insert_rowid()", (time.time(),))
        conn.execute("COMMIT")
    raw = (time.perf_counter() - start) / events * 1e6
    conn.close()
    return ours, raw


def generate_year(ledger: Ledger, users: int, seed: int = 1) -> int:
    """Sessions of `users` users over a year, bulk-inserted; returns the number of rows."""
    rng = random.Random(seed)
    rows = []
    day = 86400.0
    for u in range(users):
        name = f"user{u:03d}"
        group = GROUPS[u % len(GROUPS)]
        groups = ",".join(sorted({group, "users"}))
        t = YEAR_START
        while t < YEAR_END:
            if datetime.fromtimestamp(t, UTC).weekday() < 5:
                for _ in range(rng.choice((1, 2, 2, 3))):  # sessions that day
                    begin = t + rng.uniform(7, 17) * 3600
                    length = rng.uniform(0.25, 6) * 3600
                    p = PROFILES[rng.choice((0, 0, 0, 1, 1, 2, 3))]
                    rows.append(dict(kind=SERVER, key=server_key(name), username=name, groups=groups,
                                     charged_group=group, profile=p.profile, cluster=None, cores=p.cores,
                                     memory=p.memory, gpus=p.gpus, cost_per_hour=p.cost_per_hour,
                                     start=begin, end=begin + length, seen=begin + length,
                                     end_reason="stop"))
                    if rng.random() < 0.3:  # a Dask cluster in that session
                        cluster = f"c{len(rows)}"
                        for w in range(rng.randint(2, 8)):
                            rows.append(dict(kind=DASK_WORKER, key=f"dask/{cluster}/{w}", username=name,
                                             groups=groups, charged_group=group, profile=WORKER.profile,
                                             cluster=cluster, cores=WORKER.cores, memory=WORKER.memory,
                                             gpus=0, cost_per_hour=WORKER.cost_per_hour, start=begin,
                                             end=begin + length / 2, seen=begin + length / 2,
                                             end_reason="cluster-stopped"))
            t += day
    with ledger.engine.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(intervals.insert(), rows[chunk:chunk + 5000])
    rebuild_totals(ledger)  # what closing them one by one would have added up
    return len(rows)


def best_of(rounds: int, fn) -> float:  # noqa: ANN001
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="usage-bench-") as tmp:
        path = Path(tmp)
        ours, raw = write_cost(path, args.events)
        print(f"write: {ours:8.1f} us per event (open + close, 2 transactions) through the ledger; "
              f"anchor: {raw:8.1f} us plain sqlite3 insert+update commits ({ours / raw:.1f}x)")

        ledger = Ledger(f"sqlite:///{path / 'year.sqlite'}", clock=lambda: YEAR_END)
        start = time.perf_counter()
        count = generate_year(ledger, args.users)
        print(f"generated: {count} intervals of {args.users} users over a year in "
              f"{time.perf_counter() - start:.1f} s")
        with ledger.engine.connect() as conn:
            driver = conn.connection.dbapi_connection

            def scan() -> None:
                driver.execute('SELECT count(*), sum("end" - start) FROM qhub_usage_intervals').fetchall()

            anchor = best_of(args.rounds, scan)
        print(f"anchor: {anchor:.3f} s one plain full scan of the table")
        report = {}
        for by in ("user", "group", "profile"):
            report[by] = best_of(args.rounds, lambda by=by: usage_rows(ledger, YEAR_START, YEAR_END, by))
            rows = usage_rows(ledger, YEAR_START, YEAR_END, by)
            print(f"report by {by:7s}: {report[by]:.3f} s for {len(rows) - 1} rows "
                  f"({report[by] / anchor:.1f}x the scan; target <= 1 s)")
        checks = []
        for u in range(20):
            start = time.perf_counter()
            ledger.totals(f"user{u:03d}", [GROUPS[u % len(GROUPS)], "users"], now=YEAR_END - 86400 * 3)
            checks.append(time.perf_counter() - start)
        check = statistics.median(checks)
        print(f"spawn check: {check * 1000:.1f} ms median for a user's and their groups' figures")
        registry = CollectorRegistry()
        registry.register(UsageCollector(ledger))
        scrape = best_of(args.rounds, lambda: generate_latest(registry))
        print(f"metrics scrape: {scrape * 1000:.1f} ms ({scrape / anchor:.2f}x the scan)")
        worst = max(report.values())
        print(f"result: ledger_event_us={ours:.0f} anchor_sqlite_event_us={raw:.0f} intervals={count} "
              f"report_year_s={worst:.3f} anchor_scan_s={anchor:.3f} spawn_check_ms={check * 1000:.1f} "
              f"scrape_ms={scrape * 1000:.1f} target_report_s=1 ok={'yes' if worst <= 1 else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
