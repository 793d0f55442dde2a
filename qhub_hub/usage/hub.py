"""The hub's side of usage: a spawn is checked against the limits and recorded; a stop closes it.

Called from `spawner_options.PlanSpawnerMixin` (every qhub spawner, both backends):

- `admit_server(spawner, config, plan, profile)`: after the profile is decided, the limits are
  checked with the ledger's figures and, when allowed, the session is opened at once (checking and
  opening happen without yielding to the event loop, so two spawns cannot both take the last
  place). Refused: a `Refusal` with the figures (the mixin answers 403).
- `server_stopped(spawner)`: from the spawner's post-stop hook, which JupyterHub runs after every
  stop (a user's, an admin's, the idle culler's, a server found dead, a failed start); the end
  reason is "culled" when the idle culler asked (`stop_reason`), else "stop".
- `reconcile(app)`: every minute (``$QHUB_USAGE_REFRESH_SECONDS``) the hub marks the sessions of
  running servers as seen and closes the ones whose server is gone (after a hub crash: at their
  last seen time).

Where the ledger lives: ``$QHUB_USAGE_DB`` (an SQLAlchemy URL) if set; else the hub's own database
when it is not SQLite (PostgreSQL, MySQL: tables ``qhub_usage_*``); else an SQLite file
``qhub-usage.sqlite`` beside the hub's SQLite file (its own file: the hub's own SQLite database is
not in WAL mode, and a long read there would block a usage write).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from ..config_model import JupyterLabProfile, QHubConfig
from ..policy import UserPlan
from .ledger import SERVER, Ledger, server_key

# where ledgers live, without the hub's own modules (the gateway imports it too)
from .ledgers import LEDGER_FILE, USAGE_DB_ENV, ledger_at, set_ledger_clock  # noqa: F401 - re-exported
from .limits import decide
from .resources import server_resources
from .stop_reason import stop_reason

REFRESH_ENV = "QHUB_USAGE_REFRESH_SECONDS"  # how often running sessions are marked seen (default 60)
REFRESH_SECONDS = 60.0

_log = logging.getLogger("qhub_hub.usage")
_refresh = [REFRESH_SECONDS]  # this hub's refresh period


class Refusal(Exception):
    """A spawn over a limit; the message gives the figures."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def ledger_url(hub_db_url: str | None) -> str:
    """The ledger's URL for a hub whose database is `hub_db_url` (see the module docstring)."""
    configured = os.environ.get(USAGE_DB_ENV, "").strip()
    if configured:
        return configured
    if not hub_db_url:
        return f"sqlite:///{Path.cwd() / LEDGER_FILE}"
    url = make_url(hub_db_url)
    if url.get_backend_name() != "sqlite":
        return hub_db_url
    if not url.database or url.database == ":memory:":
        return "sqlite://"
    return f"sqlite:///{Path(url.database).absolute().parent / LEDGER_FILE}"


def _hub_db_url(db: Any) -> str | None:
    try:
        return db.get_bind().url.render_as_string(hide_password=False)
    except Exception:  # noqa: BLE001 - no session: fall back to the working directory
        return None


def hub_ledger(db: Any) -> Ledger | None:
    """The ledger of the hub owning the SQLAlchemy session `db`; None outside a hub (a spawner
    without a database, as in unit tests, and no $QHUB_USAGE_DB): nothing is recorded then."""
    url = _hub_db_url(db)
    if url is None and not os.environ.get(USAGE_DB_ENV, "").strip():
        return None
    return ledger_at(ledger_url(url))


def spawner_key(spawner: Any) -> str:
    return server_key(spawner.user.name, getattr(spawner, "name", "") or "")


def admit_server(spawner: Any, config: QHubConfig, plan: UserPlan,
                 profile: JupyterLabProfile | None) -> str | None:
    """Check the limits and open the session; returns the group it is charged to.

    A spawner that already holds an open session (JupyterHub asks twice: `apply_user_options`,
    then `start`) is not checked or opened again.
    """
    key = spawner_key(spawner)
    if getattr(spawner, "_qhub_usage_key", None) == key:
        return getattr(spawner, "_qhub_usage_group", None)
    ledger = hub_ledger(getattr(spawner.user, "db", None))
    if ledger is None:
        return None
    resources = server_resources(profile)
    groups = plan.group_names
    mine, by_group = ledger.totals(plan.username, groups)
    # a session left open under this key (a crash, not reconciled yet) ends at its last sighting
    # and does not count against the new one
    stale = [i for i in ledger.open_intervals(SERVER, username=plan.username) if i.key == key]
    for interval in stale:
        mine, by_group = _without(interval, mine, by_group)
    if stale:
        ledger.close(key, "replaced", stale_after=3 * _refresh[0])
    decision = decide(config.limits, plan.username, groups, resources.server_unit(), 1,
                      user_usage=mine, group_usage=by_group, currency=config.usage.currency)
    if not decision.allowed:
        raise Refusal(decision.message)
    charged = decision.charged_group or plan.primary_group
    ledger.open(SERVER, key, plan.username, groups, resources, charged_group=charged)
    spawner._qhub_usage_key = key
    spawner._qhub_usage_group = charged
    return charged


def _without(interval: Any, mine: Any, by_group: dict) -> tuple[Any, dict]:
    def less(t: Any) -> Any:
        return replace(t, servers=max(0, t.servers - 1), gpus=max(0, t.gpus - interval.gpus))

    by_group = dict(by_group)
    if interval.charged_group in by_group:
        by_group[interval.charged_group] = less(by_group[interval.charged_group])
    return less(mine), by_group


def server_stopped(spawner: Any, reason: str | None = None) -> None:
    """Close the session of `spawner` (JupyterHub's post-stop hook: after every kind of stop).
    `reason` default: "culled" when the idle culler asked for the stop, else "stop"."""
    reason = reason or stop_reason()
    key = getattr(spawner, "_qhub_usage_key", None) or spawner_key(spawner)
    spawner._qhub_usage_key = None
    try:
        # not seen for three refreshes: it died while the hub was down; count it until last seen
        measured = getattr(spawner, "qhub_measured", None)  # embedded mode: from the server's cgroup
        spawner.qhub_measured = None
        ledger = hub_ledger(getattr(spawner.user, "db", None))
        if ledger is None:
            return
        ledger.close(
            key, reason, stale_after=3 * _refresh[0],
            cpu_seconds=getattr(measured, "cpu_seconds", None),
            peak_memory=getattr(measured, "peak_memory", None))
    except Exception:  # noqa: BLE001 - a stop must never fail because of the ledger
        _log.exception("Could not record the end of %s in the usage ledger", key)


def running_server_keys(app: Any) -> set[str]:
    """Keys of the servers the hub has running or starting (its in-memory spawners)."""
    keys: set[str] = set()
    for user in list(getattr(app, "users", {}).values()):
        for name, spawner in list(user.spawners.items()):
            if spawner.active:
                keys.add(server_key(user.name, name or ""))
    return keys


def reconcile(app: Any, ledger: Ledger) -> list[str]:
    """Mark running servers' sessions as seen; close the others at their last seen time."""
    running = running_server_keys(app)
    ledger.touch(running)
    closed = ledger.recover(SERVER, running)
    if closed:
        _log.info("Usage: closed %d session(s) whose server is gone: %s", len(closed), ", ".join(closed))
    return closed


def start_hub_usage(app: Any, refresh: float | None = None) -> Ledger:
    """In the hub process: reconcile every `refresh` seconds, serve the metrics."""
    from tornado.ioloop import PeriodicCallback

    refresh = refresh or float(os.environ.get(REFRESH_ENV) or REFRESH_SECONDS)
    _refresh[0] = refresh

    from .metrics import register_collector

    ledger = ledger_at(ledger_url(getattr(app, "db_url", None)))
    register_collector(ledger)
    if getattr(app, "_qhub_usage_loop", None) is None:
        def tick() -> None:
            try:
                reconcile(app, ledger)
            except Exception:  # noqa: BLE001 - keep the loop alive; the next tick retries
                _log.exception("Usage reconciliation failed")

        # the first pass runs once the hub has checked its spawners (init_spawners)
        loop = PeriodicCallback(tick, refresh * 1000, jitter=0.05)
        loop.start()
        app._qhub_usage_loop = loop
    return ledger


def usage_of(ledger: Ledger, config: QHubConfig, username: str, groups: Iterable[str]) -> list[str]:
    """Lines for a user: their usage this month against each grant that covers them."""
    from .limits import grant_for_display

    mine, by_group = ledger.totals(username, groups)
    lines = []
    for who, grant in grant_for_display(config.limits, username, groups).items():
        used = mine if who.startswith("user ") else by_group.get(who.split(" ", 1)[1], mine)
        month, now = [], []
        if grant.monthly.gpu_hours is not None:
            month.append(f"{used.gpu_hours:.1f} of {grant.monthly.gpu_hours:g} GPU-hours")
        if grant.monthly.core_hours is not None:
            month.append(f"{used.core_hours:.1f} of {grant.monthly.core_hours:g} core-hours")
        if grant.monthly.cost is not None:
            month.append(f"{used.cost:.2f} of {grant.monthly.cost:.2f} {config.usage.currency}")
        if grant.servers is not None:
            now.append(f"{used.servers} of {grant.servers} servers")
        if grant.gpus is not None:
            now.append(f"{used.gpus} of {grant.gpus} GPUs")
        if grant.dask_worker_cores is not None:
            now.append(f"{used.dask_worker_cores:g} of {grant.dask_worker_cores:g} Dask worker cores")
        parts = ([f"used {', '.join(month)} this month"] if month else []) + (
            [f"running {', '.join(now)}"] if now else [])
        if parts:
            lines.append(f"{who}: " + "; ".join(parts))
    return lines


def budget_html(spawner: Any, config: QHubConfig, plan: UserPlan) -> str:
    """The spawn page's line: the user's usage this month against the grants that cover them."""
    import html

    ledger = hub_ledger(getattr(spawner.user, "db", None))
    if ledger is None:
        return ""
    try:
        lines = usage_of(ledger, config, plan.username, plan.group_names)
    except Exception:  # noqa: BLE001 - the form must show even when the ledger cannot be read
        _log.exception("Could not read the usage of %s for the spawn page", plan.username)
        return ""
    if not lines:
        return ""
    items = "".join(f'<li class="qhub-budget-line">{html.escape(line)}</li>' for line in lines)
    return f'<div class="qhub-budget"><p>Your limits:</p><ul>{items}</ul></div>'
