"""The hub's usage pages, registered by every qhub authenticator (`get_handlers`).

- ``GET /hub/qhub/usage``: admins only (403 for anyone else). This month's usage per group and per
  user, with an SVG chart of each group's daily cost (or hours) stacked by profile. No external
  service, no script.

Registering them also starts the hub's usage bookkeeping (`hub.start_hub_usage`: reconciliation and
the Prometheus metrics on /hub/metrics).
"""

from __future__ import annotations

from typing import Any

from .hub import start_hub_usage


def usage_handlers(app: Any, config_path: str) -> list[tuple[str, type, dict[str, Any]]]:
    start_hub_usage(app)
    return []
