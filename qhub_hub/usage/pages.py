"""The hub's usage page, registered by every qhub authenticator (`get_handlers`).

``GET /hub/qhub/usage``: admins only (403 for anyone else; a visitor who is not logged in is sent
to the login page). This month's usage (UTC) per group and per user against their grants, and for
each group an SVG chart of its daily cost (hours when nothing has a cost) stacked by profile. No
external service and no script: the figures come from the ledger, the chart is drawn here.

Registering the page also starts the hub's usage bookkeeping (`hub.start_hub_usage`:
reconciliation and the Prometheus metrics on /hub/metrics).
"""

from __future__ import annotations

import html
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

USAGE_PATH = r"/qhub/usage"

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


class UsagePageHandler(BaseHandler):
    """``GET /hub/qhub/usage`` (admins only)."""

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
        since = month_start(now)
        day_end = (datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
                   + timedelta(days=1)).timestamp()
        groups = usage_rows(ledger, since, now, "group")
        users = usage_rows(ledger, since, now, "user")
        group_grants = {g: _grant_text(grant, currency) for g, grant in (limits.groups if limits else {}).items()}
        user_grants = {u: _grant_text(grant, currency) for u, grant in (limits.users if limits else {}).items()}
        title = datetime.fromtimestamp(since, UTC).strftime("%B %Y")
        body = "".join([
            f"<h1>Usage in {html.escape(title)}</h1>",
            f'<p>From {datetime.fromtimestamp(since, UTC):%Y-%m-%d} to now (UTC); running servers and '
            "workers count until now. Costs are cost_per_hour of each profile.</p>",
            "<h2>By group</h2>", _table("group", groups, currency, group_grants),
            "<h2>By user</h2>", _table("user", users, currency, user_grants),
            "<h2>Per day</h2>",
            *(f'<div class="qhub-usage-chart-box">{svg}</div>'
              for svg in month_charts(ledger, since, min(day_end, now), currency)),
        ])
        template = self.settings["jinja2_env"].from_string(PAGE)
        self.finish(await template.render_async(**self.template_namespace, body=body))


def usage_handlers(app: Any, config_path: str) -> list[tuple[str, type, dict[str, Any]]]:
    start_hub_usage(app)
    return [(USAGE_PATH, UsagePageHandler, {"config_path": config_path}),
            (USAGE_DASK_PATH, DaskUsageHandler, {"config_path": config_path})]
