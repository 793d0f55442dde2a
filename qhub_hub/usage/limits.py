"""The limit rules, as pure functions: config grants + current usage -> allowed or refused with figures.

Who is capped by what (`limits` in the config, `config_model.UsageLimits`):

- ``limits.groups.<g>``: a grant the members of `g` share: what they run together and what they
  used together this month (usage is *charged* to one group per server or worker);
- a user in several limited groups is charged to the most generous one: among the groups whose
  grant admits the request, the one with the most room left (ties: by name). When none admits
  it, the refusal gives every group's figures;
- ``limits.users.<name>``: caps that user's own usage, in addition to their group's grant;
- ``limits.default``: per-user caps for users none of whose groups has an entry (and who are not
  charged to a group).

Concurrent caps (servers, GPUs, Dask worker cores) count what runs now plus the request. Monthly
budgets (GPU-hours, core-hours, cost, calendar month in UTC) refuse a new server or worker once
used up, and only when the request uses that resource (a CPU-only server is not refused by a
GPU-hour budget).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..config_model import Grant, UsageLimits


@dataclass(frozen=True)
class Unit:
    """One server or one Dask worker: what it asks for."""

    servers: int = 0  # 1 for a server, 0 for a worker
    gpus: int = 0
    cores: float = 0.0  # a server's requested cores (core-hours); a worker's worker_cores
    dask_cores: float = 0.0  # a worker's cores (the concurrent Dask cap); 0 for a server
    cost_per_hour: float = 0.0


@dataclass(frozen=True)
class Totals:
    """What a user or a group uses: now (concurrent) and this month (budgets)."""

    servers: int = 0
    gpus: int = 0
    dask_worker_cores: float = 0.0
    gpu_hours: float = 0.0
    core_hours: float = 0.0
    cost: float = 0.0


NO_USAGE = Totals()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    count: int  # how many units are allowed (== asked when allowed)
    charged_group: str | None  # the group the usage is charged to (None: no group grant applies)
    message: str = ""  # why not (empty when allowed)


def _num(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def _money(value: float) -> str:
    return f"{value:.2f}"


def room(grant: Grant, used: Totals, unit: Unit, who: str, currency: str) -> tuple[int | None, str]:
    """How many more `unit`s fit `grant` given `used` (None: no cap), and the figures of the
    tightest cap (for a refusal)."""
    fits: list[tuple[int, str]] = []
    if grant.servers is not None and unit.servers:
        fits.append(((grant.servers - used.servers) // unit.servers,
                     f"{who} has {used.servers} of {grant.servers} servers running"))
    if grant.gpus is not None and unit.gpus:
        fits.append(((grant.gpus - used.gpus) // unit.gpus,
                     f"{who} uses {used.gpus} of {grant.gpus} GPUs and this asks for {unit.gpus} more"))
    if grant.dask_worker_cores is not None and unit.dask_cores:
        left = grant.dask_worker_cores - used.dask_worker_cores
        fits.append((math.floor(left / unit.dask_cores + 1e-9),
                     f"{who} uses {_num(used.dask_worker_cores)} of {_num(grant.dask_worker_cores)} "
                     f"Dask worker cores and each worker asks for {_num(unit.dask_cores)}"))
    budget = grant.monthly
    spent = [
        (budget.gpu_hours, used.gpu_hours, unit.gpus, "GPU-hours", _num),
        (budget.core_hours, used.core_hours, unit.cores, "core-hours", _num),
        (budget.cost, used.cost, unit.cost_per_hour, currency, _money),
    ]
    for cap, have, asks, what, fmt in spent:
        if cap is not None and asks and have >= cap:
            fits.append((0, f"{who} has used {fmt(have)} of {fmt(cap)} {what} this month"))
    if not fits:
        return None, ""
    count, figures = min(fits, key=lambda f: f[0])
    return max(0, count), figures


def _headroom(grant: Grant, used: Totals) -> tuple[float, ...]:
    """Sort key of "most generous": the smallest share of any cap left (a cap not set: all of it)."""
    shares = []
    pairs = [(grant.servers, used.servers), (grant.gpus, used.gpus),
             (grant.dask_worker_cores, used.dask_worker_cores),
             (grant.monthly.gpu_hours, used.gpu_hours), (grant.monthly.core_hours, used.core_hours),
             (grant.monthly.cost, used.cost)]
    for cap, have in pairs:
        if cap is not None:
            shares.append((cap - have) / cap if cap else 0.0)
    return (min(shares) if shares else 1.0,)


def decide(
    limits: UsageLimits,
    username: str,
    groups: Iterable[str],
    unit: Unit,
    count: int,
    *,
    user_usage: Totals,
    group_usage: Mapping[str, Totals],
    currency: str = "USD",
    what: str = "server",
) -> Decision:
    """May `username` (member of `groups`) start `count` more `unit`s now?

    `user_usage` is the user's own totals; `group_usage` the totals charged to each group.
    Allowed or not, `count` in the answer is how many would fit (for capping a scale-up).
    """
    limited = sorted(g for g in set(groups) if g in limits.groups)
    allowed = count
    reasons: list[str] = []
    own = limits.users.get(username)
    personal = own if own is not None else (limits.default if not limited else None)
    if personal is not None:
        fit, figures = room(personal, user_usage, unit, f"user {username}", currency)
        if fit is not None and fit < allowed:
            allowed = fit
            reasons.append(figures)
    charged: str | None = None
    if limited:
        options = []
        for group in limited:
            used = group_usage.get(group, NO_USAGE)
            fit, figures = room(limits.groups[group], used, unit, f"group {group}", currency)
            options.append((group, count if fit is None else min(fit, count), figures,
                            _headroom(limits.groups[group], used)))
        # the most generous: the one fitting the most units, then the most room left; max() keeps
        # the first of equals, and `limited` is sorted: ties go to the first name
        best = max(options, key=lambda o: (o[1], o[3]))
        charged = best[0]
        if best[1] < allowed:
            allowed = best[1]
            reasons += [o[2] for o in options if o[2]]
    allowed = max(0, allowed)
    if allowed >= count:
        return Decision(True, count, charged)
    asked = "a server" if what == "server" else f"{count} more Dask worker(s)"
    message = (f"Not enough of your limits left for {asked}: " + "; ".join(dict.fromkeys(reasons))
               + ". Stop something you run, or ask an admin to raise the limit (limits in the "
               "platform's config).")
    return Decision(False, allowed, charged, message)


def grant_for_display(limits: UsageLimits, username: str, groups: Iterable[str]) -> dict[str, Grant]:
    """The grants that apply to a user, by who they cover ('user alice', 'group ml')."""
    limited = sorted(g for g in set(groups) if g in limits.groups)
    shown: dict[str, Grant] = {f"group {g}": limits.groups[g] for g in limited}
    own = limits.users.get(username)
    if own is not None:
        shown[f"user {username}"] = own
    elif not limited and limits.default is not None:
        shown[f"user {username}"] = limits.default
    return shown
