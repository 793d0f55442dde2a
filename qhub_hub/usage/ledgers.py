"""Which ledger a process writes to: one `Ledger` per database URL and process.

Shared by the hub (qhub_hub.usage.hub) and the Dask Gateway (qhub_hub.usage.gateway), so it imports
nothing of either: the gateway's image has no JupyterHub.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .ledger import Ledger

USAGE_DB_ENV = "QHUB_USAGE_DB"
LEDGER_FILE = "qhub-usage.sqlite"

_ledgers: dict[str, Ledger] = {}
_ledgers_lock = threading.Lock()
_clock: list[Callable[[], float]] = [time.time]  # what this process's ledgers read the time from


def ledger_at(url: str) -> Ledger:
    """One `Ledger` per URL and process."""
    with _ledgers_lock:
        ledger = _ledgers.get(url)
        if ledger is None:
            ledger = _ledgers[url] = Ledger(url, _clock[0])
        return ledger


def set_ledger_clock(clock: Callable[[], float]) -> None:
    """Make this process's ledgers read the time from `clock` (seconds since the epoch). For tests
    that show a fixed month: a hub's config file may call it before the hub starts."""
    with _ledgers_lock:
        _clock[0] = clock
        for ledger in _ledgers.values():
            ledger.clock = clock
