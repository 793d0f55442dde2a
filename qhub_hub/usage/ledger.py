"""The usage ledger: every server session and every Dask worker's life, in a real database.

One row per interval: who (user, their groups, the group it is charged to), what (kind, profile,
requested cores, memory, GPUs, cost per hour), when (start, end; `seen` is the last time it was
known to run). SQLAlchemy Core, so the URL may be SQLite (the default; WAL mode, so the hub and the
gateway of the embedded mode can share one file) or the hub's own PostgreSQL/MySQL database.

Durability: a row is written when an interval opens and when it closes, and `seen` is refreshed
periodically (`touch`). After a crash, `recover` closes the intervals whose server or worker is no
longer running at their last `seen` time, so a crash loses at most one refresh period of them.

Times are seconds since the epoch (floats); `clock` is injectable so tests run on a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from .limits import Totals
from .resources import Resources

SERVER = "server"
DASK_WORKER = "dask_worker"
KINDS = (SERVER, DASK_WORKER)

metadata = sa.MetaData()
intervals = sa.Table(
    "qhub_usage_intervals", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),  # server/<user>/<name>, dask/<cluster>/<worker>
    sa.Column("username", sa.String(255), nullable=False),
    sa.Column("groups", sa.Text, nullable=False, default=""),  # comma-separated, sorted
    sa.Column("charged_group", sa.String(64), nullable=True),
    sa.Column("profile", sa.String(255), nullable=False, default=""),
    sa.Column("cluster", sa.String(255), nullable=True),
    sa.Column("cores", sa.Float, nullable=False, default=0.0),
    sa.Column("memory", sa.BigInteger, nullable=False, default=0),
    sa.Column("gpus", sa.Integer, nullable=False, default=0),
    sa.Column("cost_per_hour", sa.Float, nullable=False, default=0.0),
    sa.Column("start", sa.Float, nullable=False),
    sa.Column("end", sa.Float, nullable=True),
    sa.Column("seen", sa.Float, nullable=False),
    sa.Column("end_reason", sa.String(32), nullable=True),
    sa.Column("cpu_seconds", sa.Float, nullable=True),  # measured (embedded mode, cgroup)
    sa.Column("peak_memory", sa.BigInteger, nullable=True),
    sa.Index("qhub_usage_open", "end", "kind"),
    sa.Index("qhub_usage_key", "key", "end"),
    sa.Index("qhub_usage_start", "start"),
    sa.Index("qhub_usage_user", "username", "end"),  # a spawn's check: this user's month
    sa.Index("qhub_usage_group", "charged_group", "end"),  # ... and their groups'
)


# Seconds and cost of the closed intervals, per label set: what the Prometheus counters add the
# open intervals' running part to, so a scrape never sums the whole history.
totals_table = sa.Table(
    "qhub_usage_totals", metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("charged_group", sa.String(64), primary_key=True),  # "" when none
    sa.Column("profile", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("intervals", sa.Integer, nullable=False, default=0),
    sa.Column("seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("cost", sa.Float, nullable=False, default=0.0),
)

# Built once (statement construction is most of a write's cost): close the open intervals of
# :keys at :t, never before they started (a clock stepped backwards), because of :reason.
_OPEN_ROWS = sa.select(
    intervals.c.id, intervals.c.start, intervals.c.seen, intervals.c.username, intervals.c.charged_group,
    intervals.c.profile, intervals.c.kind, intervals.c.cost_per_hour,
).where(intervals.c.key.in_(sa.bindparam("keys", expanding=True)), intervals.c.end.is_(None))
_END_ROW = intervals.update().where(intervals.c.id == sa.bindparam("row_id")).values(
    end=sa.bindparam("row_end"), seen=sa.bindparam("row_end"), end_reason=sa.bindparam("reason"))
_OPEN = intervals.insert()


@dataclass(frozen=True)
class Interval:
    kind: str
    key: str
    username: str
    groups: tuple[str, ...]
    charged_group: str | None
    profile: str
    cluster: str | None
    cores: float
    memory: int
    gpus: int
    cost_per_hour: float
    start: float
    end: float | None
    seen: float
    end_reason: str | None
    cpu_seconds: float | None
    peak_memory: int | None

    @classmethod
    def of(cls, row: sa.Row) -> Interval:
        m = row._mapping
        return cls(m["kind"], m["key"], m["username"], tuple(g for g in m["groups"].split(",") if g),
                   m["charged_group"], m["profile"], m["cluster"], m["cores"], m["memory"], m["gpus"],
                   m["cost_per_hour"], m["start"], m["end"], m["seen"], m["end_reason"],
                   m["cpu_seconds"], m["peak_memory"])


def server_key(username: str, server_name: str = "") -> str:
    return f"server/{username}/{server_name}"


def worker_key(cluster: str, worker: str) -> str:
    return f"dask/{cluster}/{worker}"


def month_start(now: float) -> float:
    """The first second of `now`'s calendar month, UTC: where monthly budgets start."""
    day = datetime.fromtimestamp(now, UTC)
    return day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def sqlite_url(path: str) -> str:
    return f"sqlite:///{path}"


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint, fast commits
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _overlap(since: float, until: float) -> sa.ColumnElement:
    """Seconds of an interval inside [since, until) (an open interval runs until `until`)."""
    end = sa.func.coalesce(intervals.c.end, until)
    end = sa.case((end > until, until), else_=end)
    start = sa.case((intervals.c.start < since, since), else_=intervals.c.start)
    length = end - start
    return sa.case((length > 0, length), else_=0.0)


class Ledger:
    """Open, close and query usage intervals (see the module docstring)."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time):
        self.url = url
        self.clock = clock
        self.engine = _engine(url)
        metadata.create_all(self.engine)
        with self.engine.connect() as conn:  # a ledger from before the totals table: fill it once
            empty = conn.execute(sa.select(sa.func.count()).select_from(totals_table)).scalar() == 0
            closed = conn.execute(sa.select(intervals.c.id).where(intervals.c.end.is_not(None)).limit(1)).first()
        if empty and closed is not None:
            rebuild_totals(self)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- writing --

    def open(self, kind: str, key: str, username: str, groups: Iterable[str], resources: Resources, *,
             charged_group: str | None = None, cluster: str | None = None,
             start: float | None = None) -> None:
        """Start an interval. An interval still open under the same key ends first ("replaced")."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        now = self.clock() if start is None else start
        with self.engine.begin() as conn:
            self._close(conn, [key], now, "replaced")
            conn.execute(_OPEN, dict(
                kind=kind, key=key, username=username, groups=",".join(sorted(set(groups))),
                charged_group=charged_group, profile=resources.profile, cluster=cluster,
                cores=resources.cores, memory=resources.memory, gpus=resources.gpus,
                cost_per_hour=resources.cost_per_hour, start=now, end=None, seen=now,
                end_reason=None, cpu_seconds=None, peak_memory=None))

    def close(self, key: str, reason: str, *, end: float | None = None,
              cpu_seconds: float | None = None, peak_memory: int | None = None,
              stale_after: float | None = None) -> bool:
        """End the open interval of `key`; False when none was open (already closed).

        With `stale_after`: an interval not seen for longer than that (its process died while
        nobody watched, e.g. with the hub down) ends at its last seen time, reason "recovered".
        """
        now = self.clock() if end is None else end
        measured = {"cpu_seconds": cpu_seconds, "peak_memory": peak_memory}
        with self.engine.begin() as conn:
            rows = conn.execute(_OPEN_ROWS, {"keys": [key]}).all()
            if stale_after is not None and any(r.seen < now - stale_after for r in rows):
                return _end_rows(conn, rows, "recovered", at_seen=True, **measured) > 0
            return _end_rows(conn, rows, reason, end=now, **measured) > 0

    def close_many(self, keys: Collection[str], reason: str, *, end: float | None = None) -> int:
        if not keys:
            return 0
        now = self.clock() if end is None else end
        with self.engine.begin() as conn:
            return self._close(conn, list(keys), now, reason)

    @staticmethod
    def _close(conn: sa.Connection, keys: list[str], end: float, reason: str) -> int:
        total = 0
        for chunk in range(0, len(keys), 500):
            rows = conn.execute(_OPEN_ROWS, {"keys": keys[chunk:chunk + 500]}).all()
            total += _end_rows(conn, rows, reason, end=end)
        return total

    def touch(self, keys: Collection[str], *, at: float | None = None) -> None:
        """Record that the intervals of `keys` still run (what `recover` closes them at)."""
        if not keys:
            return
        now = self.clock() if at is None else at
        with self.engine.begin() as conn:
            keys = list(keys)
            for chunk in range(0, len(keys), 500):
                conn.execute(intervals.update().where(
                    intervals.c.key.in_(keys[chunk:chunk + 500]), intervals.c.end.is_(None)
                ).values(seen=now))

    def recover(self, kind: str, running: Collection[str], *, key_prefix: str = "") -> list[str]:
        """Close the open intervals of `kind` (under `key_prefix`) whose key is not in `running`,
        at the last time they were seen: what a crash left open. Returns their keys."""
        with self.engine.begin() as conn:
            query = sa.select(intervals.c.id, intervals.c.key, intervals.c.seen).where(
                intervals.c.kind == kind, intervals.c.end.is_(None))
            if key_prefix:
                query = query.where(intervals.c.key.startswith(key_prefix, autoescape=True))
            stale = [r for r in conn.execute(query) if r.key not in running]
            for chunk in range(0, len(stale), 500):
                rows = conn.execute(_OPEN_ROWS, {"keys": [r.key for r in stale[chunk:chunk + 500]]}).all()
                _end_rows(conn, rows, "recovered", at_seen=True)
        return [r.key for r in stale]

    # -- reading --

    def open_intervals(self, kind: str | None = None, *, username: str | None = None,
                       key_prefix: str = "") -> list[Interval]:
        query = sa.select(intervals).where(intervals.c.end.is_(None)).order_by(intervals.c.start)
        if kind:
            query = query.where(intervals.c.kind == kind)
        if username is not None:
            query = query.where(intervals.c.username == username)
        if key_prefix:
            query = query.where(intervals.c.key.startswith(key_prefix, autoescape=True))
        with self.engine.connect() as conn:
            return [Interval.of(r) for r in conn.execute(query)]

    def intervals(self, since: float = 0.0, until: float | None = None) -> list[Interval]:
        until = self.clock() if until is None else until
        query = sa.select(intervals).where(
            intervals.c.start <= until, sa.or_(intervals.c.end.is_(None), intervals.c.end > since)
        ).order_by(intervals.c.start, intervals.c.id)
        with self.engine.connect() as conn:
            return [Interval.of(r) for r in conn.execute(query)]

    def summary(self, since: float, until: float | None = None, *,
                by: tuple[str, ...] = ("username",)) -> list[SummaryRow]:
        """Usage inside [since, until) grouped by columns of `SUMMARY_COLUMNS`."""
        return summarize(self, since, self.clock() if until is None else until, by)

    def counters(self, now: float | None = None) -> list[SummaryRow]:
        """Seconds and cost so far per (user, charged group, profile, kind): the closed totals plus
        the open intervals until `now`. Cheap: never sums the whole history."""
        now = self.clock() if now is None else now
        merged: dict[tuple, list[float]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(totals_table)):
                merged[(r.username, r.charged_group, r.profile, r.kind)] = [r.intervals, r.seconds, r.cost]
        for i in self.open_intervals():
            key = (i.username, i.charged_group or "", i.profile, i.kind)
            seconds = max(0.0, now - i.start)
            acc = merged.setdefault(key, [0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += seconds
            acc[2] += seconds * i.cost_per_hour / 3600
        return [SummaryRow(key, int(n), sec, 0.0, 0.0, cost) for key, (n, sec, cost) in sorted(merged.items())]

    def totals(self, username: str, groups: Iterable[str], *, now: float | None = None
               ) -> tuple[Totals, dict[str, Totals]]:
        """What `username` uses, and what is charged to each of `groups`: running now, and used
        this month (UTC) up to `now`."""
        now = self.clock() if now is None else now
        since = month_start(now)
        groups = sorted(set(groups))
        seconds = _overlap(since, now)
        is_server = intervals.c.kind == SERVER
        columns = [
            sa.func.sum(sa.case((sa.and_(is_server, intervals.c.end.is_(None)), 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(is_server, intervals.c.end.is_(None)), intervals.c.gpus),
                                else_=0)),
            sa.func.sum(sa.case((sa.and_(~is_server, intervals.c.end.is_(None)), intervals.c.cores),
                                else_=0.0)),
            sa.func.sum(seconds * intervals.c.gpus),
            sa.func.sum(seconds * intervals.c.cores),
            sa.func.sum(seconds * intervals.c.cost_per_hour),
        ]
        window = sa.and_(intervals.c.start < now,
                         sa.or_(intervals.c.end.is_(None), intervals.c.end > since))
        with self.engine.connect() as conn:
            mine = conn.execute(sa.select(*columns).where(window, intervals.c.username == username)).one()
            by_group = {}
            if groups:
                rows = conn.execute(sa.select(intervals.c.charged_group, *columns).where(
                    window, intervals.c.charged_group.in_(groups)).group_by(intervals.c.charged_group))
                by_group = {r[0]: _totals(r[1:]) for r in rows}
        return _totals(mine), {g: by_group.get(g, Totals()) for g in groups}


def _end_rows(conn: sa.Connection, rows: list, reason: str, *, end: float | None = None,
              at_seen: bool = False, cpu_seconds: float | None = None,
              peak_memory: int | None = None) -> int:
    """End open interval `rows` (of `_OPEN_ROWS`) at `end` (or each at its last seen time), never
    before they started, and add them to the totals."""
    for row in rows:
        row_end = max(row.start, row.seen if at_seen else end)
        conn.execute(_END_ROW, {"row_id": row.id, "row_end": row_end, "reason": reason})
        if cpu_seconds is not None or peak_memory is not None:
            conn.execute(intervals.update().where(intervals.c.id == row.id).values(
                **{k: v for k, v in (("cpu_seconds", cpu_seconds), ("peak_memory", peak_memory))
                   if v is not None}))
        _add_to_totals(conn, row, row_end - row.start)
    return len(rows)


def _add_to_totals(conn: sa.Connection, row: Any, seconds: float) -> None:
    labels = {"username": row.username, "charged_group": row.charged_group or "", "profile": row.profile,
              "kind": row.kind}
    cost = seconds * row.cost_per_hour / 3600
    updated = conn.execute(totals_table.update().where(
        *(totals_table.c[k] == v for k, v in labels.items())
    ).values(intervals=totals_table.c.intervals + 1, seconds=totals_table.c.seconds + seconds,
             cost=totals_table.c.cost + cost)).rowcount
    if not updated:
        conn.execute(totals_table.insert().values(**labels, intervals=1, seconds=seconds, cost=cost))


def rebuild_totals(ledger: Ledger) -> None:
    """Recompute the totals of closed intervals from the intervals (after a bulk load)."""
    end_minus_start = intervals.c.end - intervals.c.start
    labels = [intervals.c.username, sa.func.coalesce(intervals.c.charged_group, ""), intervals.c.profile,
              intervals.c.kind]
    with ledger.engine.begin() as conn:
        conn.execute(totals_table.delete())
        rows = conn.execute(sa.select(*labels, sa.func.count(), sa.func.sum(end_minus_start),
                                      sa.func.sum(end_minus_start * intervals.c.cost_per_hour / 3600))
                            .where(intervals.c.end.is_not(None)).group_by(*labels)).all()
        if rows:
            conn.execute(totals_table.insert(), [
                {"username": r[0], "charged_group": r[1], "profile": r[2], "kind": r[3], "intervals": r[4],
                 "seconds": float(r[5] or 0), "cost": float(r[6] or 0)} for r in rows])


@dataclass(frozen=True)
class SummaryRow:
    key: tuple  # the values of the `by` columns
    intervals: int  # sessions or worker lives overlapping the window
    seconds: float  # their seconds inside the window
    core_hours: float
    gpu_hours: float
    cost: float


SUMMARY_COLUMNS = ("username", "charged_group", "profile", "kind", "cluster")


def summarize(ledger: Ledger, since: float, until: float, by: tuple[str, ...]) -> list[SummaryRow]:
    """Usage inside [since, until) grouped by `by` (columns of SUMMARY_COLUMNS), in one query."""
    unknown = [c for c in by if c not in SUMMARY_COLUMNS]
    if unknown:
        raise ValueError(f"cannot group usage by {unknown}; use some of {SUMMARY_COLUMNS}")
    seconds = _overlap(since, until)
    keys = [intervals.c[c] for c in by]
    query = sa.select(*keys, sa.func.count(), sa.func.sum(seconds), sa.func.sum(seconds * intervals.c.cores),
                      sa.func.sum(seconds * intervals.c.gpus),
                      sa.func.sum(seconds * intervals.c.cost_per_hour)).where(
        intervals.c.start < until, sa.or_(intervals.c.end.is_(None), intervals.c.end > since)
    ).group_by(*keys).order_by(*keys)
    with ledger.engine.connect() as conn:
        return [SummaryRow(tuple(r[:len(by)]), r[len(by)], *(float(v or 0) / d for v, d in
                                                           zip(r[len(by) + 1:], (1, 3600, 3600, 3600), strict=True)))
                for r in conn.execute(query)]


def _totals(row: Iterable) -> Totals:
    servers, gpus, dask_cores, gpu_s, core_s, cost_s = (v or 0 for v in row)
    return Totals(servers=int(servers), gpus=int(gpus), dask_worker_cores=float(dask_cores),
                  gpu_hours=gpu_s / 3600, core_hours=core_s / 3600, cost=cost_s / 3600)
