"""The hub's usage page, registered by every qhub authenticator (`get_handlers`).

``GET /hub/qhub/usage[?month=YYYY-MM]``: admins only (403 for anyone else; a visitor who is not
logged in is sent to the login page). A month's usage (UTC; default this month, counted until now)
per group and per user against their grants, and for each group an SVG chart of its daily cost
(hours when nothing has a cost) stacked by profile. A `month` that is not YYYY-MM, or has not begun,
is a 400 saying so. No external service and no script: the figures come from the ledger, the chart
is drawn here.

Registering the page also starts the hub's usage bookkeeping (`hub.start_hub_usage`:
reconciliation and the Prometheus metrics on /hub/metrics).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from jupyterhub.handlers.base import BaseHandler
from tornado import web

from ..config_errors import ConfigError
from ..hub_identity import get_config
from .api import USAGE_DASK_PATH, DaskUsageHandler
from .chart import stacked_bars
from .hub import hub_ledger, start_hub_usage
from .ledger import Ledger, month_start
from .report import ReportRow, usage_rows
from .stop_reason import stop_reason_handlers

USAGE_PATH = r"/qhub/usage"
MONTH_FORMAT = "%Y-%m"

PAGE = """{% extends "page.html" %}
{% block title %}Usage{% endblock %}
{% block main %}
<div class="container qhub-usage">
{{ body | safe }}
</div>
{% endblock %}
"""


def _cells(row: ReportRow, currency: str) -> str:
    values = [row.sessions, f"{row.server_hours:.1f}", row.workers, f"{row.worker_hours:.1f}",
              f"{row.core_hours:.1f}", f"{row.gpu_hours:.1f}", f"{row.cost:.2f}"]
    return "".join(f'<td class="text-end">{v}</td>' for v in values)


def _table(kind: str, rows: list[ReportRow], currency: str, budgets: dict[str, str]) -> str:
    head = (f"<tr><th>{kind}</th><th>servers</th><th>server hours</th><th>Dask workers</th>"
            f"<th>worker hours</th><th>core-hours</th><th>GPU-hours</th><th>cost ({html.escape(currency)})</th>"
            "<th>monthly grant</th></tr>")
    body = "".join(
        f'<tr data-{kind}="{html.escape(r.name, quote=True)}"><td>{html.escape(r.name)}</td>'
        f"{_cells(r, currency)}<td>{html.escape(budgets.get(r.name, ''))}</td></tr>"
        for r in rows)
    return f'<table class="table table-sm qhub-usage-{kind}">{head}{body}</table>'


def _grant_text(grant: Any, currency: str) -> str:
    budget = grant.monthly
    parts = []
    if budget.gpu_hours is not None:
        parts.append(f"{budget.gpu_hours:g} GPU-hours")
    if budget.core_hours is not None:
        parts.append(f"{budget.core_hours:g} core-hours")
    if budget.cost is not None:
        parts.append(f"{budget.cost:.2f} {currency}")
    return ", ".join(parts)


def month_charts(ledger: Ledger, since: float, until: float, currency: str) -> list[str]:
    """One SVG per group: daily cost (or hours) stacked by profile, from `since` to `until`."""
    days: list[float] = []
    day = since
    while day < until:
        days.append(day)
        day += 86400
    per_group: dict[str, dict[str, list[float]]] = {}
    hours: dict[str, dict[str, list[float]]] = {}
    for i, start in enumerate(days):
        for row in ledger.summary(start, min(start + 86400, until), by=("charged_group", "profile")):
            group = row.key[0] or "(none)"
            for target, value in ((per_group, row.cost), (hours, row.seconds / 3600)):
                series = target.setdefault(group, {}).setdefault(row.key[1] or "(none)", [0.0] * len(days))
                series[i] += value
    labels = [datetime.fromtimestamp(d, UTC).strftime("%Y-%m-%d") for d in days]
    charts = []
    for group in sorted(hours):
        costs = per_group.get(group, {})
        if any(sum(v) > 0 for v in costs.values()):
            charts.append(stacked_bars(f"group {group}: daily cost by profile", labels, costs, currency))
        else:
            charts.append(stacked_bars(f"group {group}: daily hours by profile", labels, hours[group], "hours"))
    return charts


def next_month(since: float) -> float:
    """The first second of the month after the one starting at `since`."""
    first = datetime.fromtimestamp(since, UTC)
    return (first.replace(year=first.year + 1, month=1) if first.month == 12
            else first.replace(month=first.month + 1)).timestamp()


def month_window(text: str, now: float) -> tuple[float, float]:
    """[since, until) of the page's month: `text` is YYYY-MM, or empty for this month. A past month
    runs to its end, this month until `now`. ValueError (what to write instead) for anything else."""
    this_month = month_start(now)
    if not text:
        return this_month, now
    example = datetime.fromtimestamp(this_month, UTC).strftime(MONTH_FORMAT)
    found = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if found is None or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1970:
        raise ValueError(f"month={text[:40]!r} is not a month: write it as YYYY-MM, e.g. month={example}")
    since = datetime(int(found[1]), int(found[2]), 1, tzinfo=UTC).timestamp()
    if since > this_month:
        raise ValueError(f"month={text} has not begun (this month is {example}): pick {example} or an "
                         "earlier month")
    return since, min(next_month(since), now)


def _month_nav(since: float, this_month: float) -> str:
    label = lambda t: datetime.fromtimestamp(t, UTC).strftime(MONTH_FORMAT)  # noqa: E731
    previous = label((datetime.fromtimestamp(since, UTC) - timedelta(days=1)).timestamp())
    links = [f'<a class="qhub-usage-previous" href="?month={previous}">&larr; {previous}</a>']
    if since < this_month:
        following = label(next_month(since))
        links.append(f'<a class="qhub-usage-next" href="?month={following}">{following} &rarr;</a>')
    return (f'<form class="qhub-usage-month" method="get">{" ".join(links)} '
            f'<label>Month <input type="month" name="month" value="{label(since)}" '
            f'max="{label(this_month)}"></label> <button type="submit">Show</button></form>')


class UsagePageHandler(BaseHandler):
    """``GET /hub/qhub/usage[?month=YYYY-MM]`` (admins only)."""

    def initialize(self, config_path: str = "") -> None:
        self.qhub_config_path = config_path

    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        if user is None or not user.admin:
            raise web.HTTPError(403, "The usage page is for admins only.")
        try:
            config = get_config(self.qhub_config_path or None, log=self.log)
            currency, limits = config.usage.currency, config.limits
        except ConfigError:
            currency, limits = "", None
        ledger = hub_ledger(self.db)
        assert ledger is not None  # a hub always has its database
        now = ledger.clock()
        try:
            since, until = month_window(self.get_argument("month", "").strip(), now)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        this_month = month_start(now)
        day_end = (datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
                   + timedelta(days=1)).timestamp()
        groups = usage_rows(ledger, since, until, "group")
        users = usage_rows(ledger, since, until, "user")
        group_grants = {g: _grant_text(grant, currency) for g, grant in (limits.groups if limits else {}).items()}
        user_grants = {u: _grant_text(grant, currency) for u, grant in (limits.users if limits else {}).items()}
        title = datetime.fromtimestamp(since, UTC).strftime("%B %Y")
        if since == this_month:
            period = (f"From {datetime.fromtimestamp(since, UTC):%Y-%m-%d} to now (UTC); running servers and "
                      "workers count until now.")
        else:
            period = (f"From {datetime.fromtimestamp(since, UTC):%Y-%m-%d} to "
                      f"{datetime.fromtimestamp(until, UTC):%Y-%m-%d} (UTC, the end excluded).")
        body = "".join([
            f"<h1>Usage in {html.escape(title)}</h1>",
            _month_nav(since, this_month),
            f"<p>{period} Costs are cost_per_hour of each profile; grants are the current config's.</p>",
            "<h2>By group</h2>", _table("group", groups, currency, group_grants),
            "<h2>By user</h2>", _table("user", users, currency, user_grants),
            "<h2>Per day</h2>",
            *(f'<div class="qhub-usage-chart-box">{svg}</div>'
              for svg in month_charts(ledger, since, min(until, day_end), currency)),
        ])
        template = self.settings["jinja2_env"].from_string(PAGE)
        self.finish(await template.render_async(**self.template_namespace, body=body))


def usage_handlers(app: Any, config_path: str) -> list[tuple[str, type, dict[str, Any]]]:
    start_hub_usage(app)
    return [(USAGE_PATH, UsagePageHandler, {"config_path": config_path}),
            (USAGE_DASK_PATH, DaskUsageHandler, {"config_path": config_path}),
            *stop_reason_handlers()]  # before JupyterHub's own server API: a cull is told apart
