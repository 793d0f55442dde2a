"""`qhub-hub usage`: who used what, and what it cost, from the ledger.

    qhub-hub usage --since 2026-11-01 [--until 2026-12-01] [--by user|group|profile]
                   [--format text|csv|markdown] [--db URL] [--config FILE]

Rows are per user, per group (the group each server or worker was charged to) or per profile, with
server sessions and hours, Dask worker lives and hours, core-hours, GPU-hours and cost; running
servers and workers count until `--until` (default: now). Dates are UTC days (YYYY-MM-DD) or
ISO 8601 times. The ledger is `--db`, else ``$QHUB_USAGE_DB``, else the embedded platform's.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .ledger import DASK_WORKER, Ledger
from .ledgers import LEDGER_FILE, USAGE_DB_ENV

BY = {"user": "username", "group": "charged_group", "profile": "profile"}
FORMATS = ("text", "csv", "markdown")


@dataclass
class ReportRow:
    name: str
    sessions: int = 0
    server_hours: float = 0.0
    workers: int = 0
    worker_hours: float = 0.0
    core_hours: float = 0.0
    gpu_hours: float = 0.0
    cost: float = 0.0


def usage_rows(ledger: Ledger, since: float, until: float, by: str) -> list[ReportRow]:
    """One row per user, group or profile (sorted by cost, then name), and a total row last."""
    rows: dict[str, ReportRow] = {}
    total = ReportRow("total")
    for summary in ledger.summary(since, until, by=(BY[by], "kind")):
        name = summary.key[0] or "(none)"
        row = rows.setdefault(name, ReportRow(name))
        for target in (row, total):
            if summary.key[1] == DASK_WORKER:
                target.workers += summary.intervals
                target.worker_hours += summary.seconds / 3600
            else:
                target.sessions += summary.intervals
                target.server_hours += summary.seconds / 3600
            target.core_hours += summary.core_hours
            target.gpu_hours += summary.gpu_hours
            target.cost += summary.cost
    return [*sorted(rows.values(), key=lambda r: (-r.cost, r.name)), total]


def _cells(row: ReportRow) -> list[str]:
    return [row.name, str(row.sessions), f"{row.server_hours:.2f}", str(row.workers),
            f"{row.worker_hours:.2f}", f"{row.core_hours:.2f}", f"{row.gpu_hours:.2f}", f"{row.cost:.2f}"]


def render(rows: list[ReportRow], by: str, fmt: str, currency: str, title: str) -> str:
    head = [by, "servers", "server hours", "Dask workers", "worker hours", "core-hours", "GPU-hours",
            f"cost ({currency})"]
    table = [_cells(r) for r in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(head)
        writer.writerows(table)
        return out.getvalue()
    if fmt == "markdown":
        def escape(cell: str) -> str:  # a username cannot break the table or inject markup
            return "".join("\\" + c if c in "\\`*_[]<>|" else c for c in cell)

        lines = [f"**{escape(title)}**", "", "| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        lines += ["| " + " | ".join(escape(c) for c in cells) + " |" for cells in table]
        return "\n".join(lines) + "\n"
    widths = [max(len(head[i]), *(len(c[i]) for c in table)) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w)
                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded)

    return "\n".join([title, line(head), *(line(c) for c in table)]) + "\n"


def parse_time(text: str, option: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not a date; write YYYY-MM-DD (UTC) or an "
                         "ISO 8601 time such as 2026-11-01T08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def default_db() -> str | None:
    if os.environ.get(USAGE_DB_ENV):
        return os.environ[USAGE_DB_ENV]
    try:
        from ..local.settings import PlatformSettings, default_state_dir
    except ImportError:
        return None
    path = PlatformSettings(config_path="", state_dir=str(default_state_dir())).hub_dir / LEDGER_FILE
    return f"sqlite:///{path}" if path.exists() else None


def add_usage_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("usage", help="usage and cost per user, group or profile, from the usage ledger")
    p.add_argument("--since", required=True, help="first day (UTC), e.g. 2026-11-01")
    p.add_argument("--until", help="end (exclusive), e.g. 2026-12-01; default: now")
    p.add_argument("--by", choices=sorted(BY), default="user")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--db", help=f"the ledger's SQLAlchemy URL; default: ${USAGE_DB_ENV}, else the "
                   "embedded platform's")
    p.add_argument("--config", help="the qhub config (for the currency)")
    p.set_defaults(func=cmd_usage)


def cmd_usage(args: argparse.Namespace) -> int:
    try:
        since = parse_time(args.since, "--since")
        until = parse_time(args.until, "--until") if args.until else datetime.now(UTC).timestamp()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if until <= since:
        print("error: --until must be after --since", file=sys.stderr)
        return 2
    url = args.db or default_db()
    if not url:
        print(f"error: no usage ledger found; give --db URL (e.g. sqlite:////path/{LEDGER_FILE}) or "
              f"set ${USAGE_DB_ENV}", file=sys.stderr)
        return 2
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        print(f"error: {url}: no such ledger file; check --db", file=sys.stderr)
        return 2
    currency = "cost"
    if args.config:
        from ..config import load_config
        from ..config_errors import ConfigError

        try:
            currency = load_config(args.config).usage.currency
        except ConfigError as e:
            print(f"error: {args.config}: {e}", file=sys.stderr)
            return 2
    try:
        ledger = Ledger(url)
        rows = usage_rows(ledger, since, until, args.by)
    except Exception as e:  # noqa: BLE001 - a database the user named: say what failed, no traceback
        print(f"error: cannot read the usage ledger {url}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    fmt_day = lambda t: datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    title = f"Usage {fmt_day(since)} to {fmt_day(until)} UTC, by {args.by}"
    sys.stdout.write(render(rows, args.by, args.format, currency, title))
    return 0
